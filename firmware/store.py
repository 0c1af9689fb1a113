# Record store on flash: the alarm and main spools, the name dictionary and per-boot clock offsets
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Layout under cfg["spool"]["dir"] (default /spool):
#   alarm/       spool of alarm records, written to flash at once
#   main/        spool of telemetry and event records, written in batches
#   names.json   JSON list: probe and channel names, and schemas, that packed records refer to by index
#   clocks       one "boot offset_ms" line per boot whose clock was set from GNSS
#
# Alarm records are few and must survive a power cut that follows them, so each
# is flushed at once. Telemetry is flushed every spool.flush_s seconds or every
# spool.flush_records records: on LittleFS every flush rewrites the last block
# of the segment file, and batching keeps that to about one erase per flush.
# The records still in RAM when the power goes are lost; that is the window.

import asyncio
import json
import os

from micropython import const

from firmware import log
from firmware.packed import ALARM
from firmware.spool import Spool

_log = log.get("store")

_ALARM_SEGMENT_BYTES = const(4096)
_ALARM_SEGMENTS = const(8)
_CLOCKS_KEPT = const(64)
_NAMES_MAX = const(1000)


def _ensure_dir(path):
    try:
        os.stat(path)
    except OSError:
        os.mkdir(path)


def write_atomic(path, text):
    # LittleFS renames atomically, so a power cut leaves the old or the new file.
    temp = path + ".tmp"
    with open(temp, "w") as f:
        f.write(text)
    os.rename(temp, path)


class StoreError(OSError):
    """A name dictionary or clock file that cannot be used; the path and reason are in the message."""


class Names:
    """Append-only dictionary of names and schemas; an index never changes meaning once given."""

    def __init__(self, path):
        self.path = path
        self._items = []
        try:
            with open(path) as f:
                items = json.load(f)
            if not isinstance(items, list):
                raise ValueError("not a list")
            self._items = items
        except OSError:
            pass
        except ValueError as e:
            # NOTE: alarms that refer to lost names still go out, named "#<index>", but
            # telemetry whose schema is lost cannot be decoded and is skipped by the uplink.
            _log.error("%s is unreadable (%s); starting a new name dictionary", path, e)

    def get(self, i):
        if 0 <= i < len(self._items):
            return self._items[i]
        return None

    def index(self, value):
        """Return the index of value, adding it (and writing the file) when it is new."""
        try:
            return self._items.index(value)
        except ValueError:
            pass
        if len(self._items) >= _NAMES_MAX:
            raise StoreError("name dictionary %s is full (%d entries); cannot add %r" % (self.path, _NAMES_MAX, value))
        self._items.append(value)
        try:
            write_atomic(self.path, json.dumps(self._items))
        except OSError as e:
            # Kept in RAM, so the records of this boot still render.
            _log.error("cannot write %s: %s", self.path, e)
        return len(self._items) - 1


class Clocks:
    """Per-boot clock offsets (Unix ms = offset + uptime ms), for back-dating records."""

    def __init__(self, path):
        self.path = path
        self._offsets = {}
        self._order = []
        try:
            with open(path) as f:
                for line in f:
                    words = line.split()
                    if len(words) == 2:
                        self._remember(int(words[0]), int(words[1]))
        except OSError:
            pass
        except ValueError as e:
            _log.error("%s has an invalid line (%s); keeping the lines before it", path, e)

    def _remember(self, boot, offset_ms):
        if boot not in self._offsets:
            self._order.append(boot)
        self._offsets[boot] = offset_ms
        while len(self._order) > _CLOCKS_KEPT:
            del self._offsets[self._order.pop(0)]

    def get(self, boot):
        return self._offsets.get(boot)

    def set(self, boot, offset_ms):
        self._remember(boot, offset_ms)
        text = "".join("%d %d\n" % (b, self._offsets[b]) for b in self._order)
        try:
            write_atomic(self.path, text)
        except OSError as e:
            _log.error("cannot write %s: %s; records of boot %d made before a reboot will have no time", self.path, e, boot)


class Store:
    def __init__(self, cfg):
        s = cfg["spool"]
        root = s["dir"]
        _ensure_dir(root)
        self.root = root
        self.names = Names(root + "/names.json")
        self.clocks = Clocks(root + "/clocks")
        self.alarm = Spool(root + "/alarm", _ALARM_SEGMENT_BYTES, _ALARM_SEGMENTS)
        self.main = Spool(root + "/main", s["segment_bytes"], s["max_segments"])
        self.flush_ms = s["flush_s"] * 1000
        self.flush_records = s["flush_records"]
        self._unflushed = 0
        self.on_stored = None  # called after each put, for the uplink

    def put(self, kind, packed):
        """Append one packed record; allocates nothing except when a flush is due."""
        if kind == ALARM:
            self.alarm.append(packed)
            self.alarm.flush()
        else:
            self.main.append(packed)
            self._unflushed += 1
            if self._unflushed >= self.flush_records:
                self.flush()
        if self.on_stored is not None:
            self.on_stored()

    def flush(self):
        self._unflushed = 0
        self.main.flush()
        self.alarm.flush()

    def save_positions(self):
        self.alarm.save_position()
        self.main.save_position()

    def depth(self):
        return self.alarm.depth() + self.main.depth()

    def dropped(self):
        return self.alarm.dropped + self.main.dropped

    async def run(self):
        """Flush and save the delivery positions every spool.flush_s seconds."""
        while True:
            await asyncio.sleep_ms(self.flush_ms)
            if self._unflushed:
                self.flush()
            self.save_positions()

    def stats(self):
        return {"alarm": self.alarm.stats(), "main": self.main.stats()}
