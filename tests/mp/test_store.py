# Tests of firmware.store on LittleFS over a RAM block device and on the host filesystem: names, clocks, flushes, power cuts
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Every scenario runs twice: on LittleFS, where a power cut is a copy of the
# flash bytes at that moment mounted on its own, and on the host filesystem
# in /tmp, where a power cut is a new Store opened on the same folder while
# the old one still holds its unflushed records in RAM.

import asyncio
import json
import os

import micropython
import vfs

from firmware import config, defaults, log
from firmware.packed import ALARM, EVENT, TELEMETRY
from firmware.store import Clocks, Names, Store, StoreError
from ramflash import RAMBlockDevice

_BLOCKS = 64
_MOUNT = "/storetest"
_SNAPSHOT_MOUNT = "/storesnap"
_HOST_DIR = "/tmp/vt-store-test"

log.console = False  # the tests provoke errors on purpose


def _remove_tree(path):
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for name in entries:
        child = path + "/" + name
        if os.stat(child)[0] & 0x4000:  # S_IFDIR
            _remove_tree(child)
        else:
            os.remove(child)
    os.rmdir(path)


class LittleFS:
    """Fresh LittleFS whose power_cut() mounts a copy of the flash as it is at that moment."""

    name = "littlefs"

    def __init__(self):
        self.bdev = RAMBlockDevice(_BLOCKS)
        vfs.VfsLfs2.mkfs(self.bdev)
        vfs.mount(vfs.VfsLfs2(self.bdev), _MOUNT)
        self.root = _MOUNT + "/spool"
        self._snapshot = False

    def power_cut(self):
        if self._snapshot:
            vfs.umount(_SNAPSHOT_MOUNT)
        vfs.mount(vfs.VfsLfs2(RAMBlockDevice(_BLOCKS, bytearray(self.bdev.data))), _SNAPSHOT_MOUNT)
        self._snapshot = True
        return _SNAPSHOT_MOUNT + "/spool"

    def close(self):
        if self._snapshot:
            vfs.umount(_SNAPSHOT_MOUNT)
        vfs.umount(_MOUNT)


class HostFolder:
    """Fresh folder in /tmp, where what was written to a file survives the process, as after SIGKILL."""

    name = "host"

    def __init__(self):
        _remove_tree(_HOST_DIR)
        os.mkdir(_HOST_DIR)
        self.root = _HOST_DIR + "/spool"

    def power_cut(self):
        return self.root

    def close(self):
        _remove_tree(_HOST_DIR)


def _on_both(check):
    for make in (LittleFS, HostFolder):
        fs = make()
        try:
            check(fs)
        finally:
            fs.close()


def _cfg(root, flush_records=4, flush_s=10):
    return config.merge(defaults.DEFAULTS, {"spool": {"dir": root, "flush_records": flush_records, "flush_s": flush_s}})


def _record(kind, n):
    # The store does not read records, so any bytes do. These name their number.
    return b"%d:record-%04d" % (kind, n)


def _payloads(spool):
    return [p for t, p in spool.peek(1000, 1000000)]


def _read_text(path):
    with open(path) as f:
        return f.read()


# Names


def _check_names_stable(fs):
    os.mkdir(fs.root)
    path = fs.root + "/names.json"
    names = Names(path)
    schema = [["front", "rear"], ["temp_high:rear", "sos"]]
    assert names.index(schema) == 0, fs.name
    assert names.index("rear") == 1, fs.name
    assert names.index("front") == 2, fs.name
    assert names.index("rear") == 1, fs.name
    assert json.loads(_read_text(path)) == [schema, "rear", "front"], fs.name

    again = Names(path)
    assert again.get(0) == schema, fs.name
    assert again.get(1) == "rear", fs.name
    assert again.get(2) == "front", fs.name
    assert again.get(3) is None, fs.name
    assert again.get(-1) is None, fs.name
    # Known values keep their index; a new one comes after them.
    assert again.index(["front", "rear"]) == 3, fs.name
    assert again.index(schema) == 0, fs.name
    assert again.index("front") == 2, fs.name
    assert Names(path).get(3) == ["front", "rear"], fs.name


def test_names_stable_across_reopen():
    _on_both(_check_names_stable)


def _check_names_unreadable(fs):
    os.mkdir(fs.root)
    path = fs.root + "/names.json"
    for text in ('{"front": 1}', "[\"front\", "):
        with open(path, "w") as f:
            f.write(text)
        names = Names(path)
        assert names.get(0) is None, (fs.name, text)
        assert names.index("rear") == 0, (fs.name, text)
        assert Names(path).get(0) == "rear", (fs.name, text)


def test_names_unreadable_file_starts_new():
    _on_both(_check_names_unreadable)


def test_names_full_raises():
    fs = HostFolder()
    try:
        os.mkdir(fs.root)
        path = fs.root + "/names.json"
        names = Names(path)
        for i in range(1000):
            assert names.index("n%d" % i) == i
        try:
            names.index("one too many")
            raised = None
        except StoreError as e:
            raised = str(e)
        assert raised is not None
        assert "full (1000 entries)" in raised, raised
        assert "one too many" in raised, raised
        assert isinstance(StoreError("x"), OSError)
        assert Names(path).get(999) == "n999"
    finally:
        fs.close()


# Clocks


def _check_clocks_reopen(fs):
    os.mkdir(fs.root)
    path = fs.root + "/clocks"
    clocks = Clocks(path)
    assert clocks.get(7) is None, fs.name
    clocks.set(7, 1773655692100)
    clocks.set(8, -5)
    clocks.set(9, 1773700000000)
    clocks.set(8, 1773660000000)  # a second set of one boot replaces its offset
    assert _read_text(path) == "7 1773655692100\n8 1773660000000\n9 1773700000000\n", fs.name

    again = Clocks(path)
    assert again.get(7) == 1773655692100, fs.name
    assert again.get(8) == 1773660000000, fs.name
    assert again.get(9) == 1773700000000, fs.name
    assert again.get(10) is None, fs.name


def test_clocks_keep_offsets_across_reopen():
    _on_both(_check_clocks_reopen)


def _check_clocks_cap(fs):
    os.mkdir(fs.root)
    path = fs.root + "/clocks"
    clocks = Clocks(path)
    for boot in range(1, 71):
        clocks.set(boot, 1773000000000 + boot * 1000)
    again = Clocks(path)
    # 70 boots, 64 kept: boots 1 to 6 are forgotten, oldest first.
    for boot in range(1, 7):
        assert again.get(boot) is None, (fs.name, boot)
    for boot in range(7, 71):
        assert again.get(boot) == 1773000000000 + boot * 1000, (fs.name, boot)
    lines = _read_text(path).split("\n")
    assert len(lines) == 65, fs.name  # 64 lines and the empty text after the last newline
    assert lines[0] == "7 1773000007000", fs.name


def test_clocks_cap_at_64_boots():
    _on_both(_check_clocks_cap)


def test_clocks_invalid_line_keeps_earlier():
    fs = HostFolder()
    try:
        os.mkdir(fs.root)
        path = fs.root + "/clocks"
        with open(path, "w") as f:
            f.write("3 1000\n4 20x0\n5 3000\n")
        clocks = Clocks(path)
        assert clocks.get(3) == 1000
        assert clocks.get(4) is None
        assert clocks.get(5) is None
    finally:
        fs.close()


# Store: flushes and power cuts


def _check_alarm_flushed_at_once(fs):
    store = Store(_cfg(fs.root, flush_records=16))
    store.put(TELEMETRY, _record(TELEMETRY, 1))
    store.put(ALARM, _record(ALARM, 2))
    assert store.alarm.pending_bytes == 0, fs.name
    assert store.main.pending_bytes > 0, fs.name

    after = Store(_cfg(fs.power_cut(), flush_records=16))
    assert _payloads(after.alarm) == [_record(ALARM, 2)], fs.name
    assert after.alarm.depth() == 1, fs.name


def test_alarm_put_survives_power_cut():
    _on_both(_check_alarm_flushed_at_once)


def _check_main_flush_records(fs):
    store = Store(_cfg(fs.root, flush_records=4))
    for n in range(1, 4):
        store.put(TELEMETRY if n % 2 else EVENT, _record(TELEMETRY, n))
    assert store.main.flushes == 0, fs.name
    assert store.depth() == 3, fs.name
    assert Store(_cfg(fs.power_cut())).depth() == 0, fs.name

    store.put(TELEMETRY, _record(TELEMETRY, 4))
    assert store.main.flushes == 1, fs.name
    assert store.main.pending_bytes == 0, fs.name
    after = Store(_cfg(fs.power_cut()))
    assert _payloads(after.main) == [_record(TELEMETRY, n) for n in range(1, 5)], fs.name


def test_main_flushes_after_flush_records():
    _on_both(_check_main_flush_records)


def _check_power_cut_window(fs):
    store = Store(_cfg(fs.root, flush_records=4))
    for n in range(1, 11):
        store.put(TELEMETRY, _record(TELEMETRY, n))
    store.put(ALARM, _record(ALARM, 11))
    store.put(EVENT, _record(EVENT, 12))
    # Records 1-8 were flushed in two batches of 4, and 9, 10 and 12 are still in RAM.
    assert store.depth() == 12, fs.name
    assert store.main.pending_bytes > 0, fs.name

    after = Store(_cfg(fs.power_cut(), flush_records=4))
    assert _payloads(after.main) == [_record(TELEMETRY, n) for n in range(1, 9)], fs.name
    assert _payloads(after.alarm) == [_record(ALARM, 11)], fs.name
    assert after.depth() == 9, fs.name
    assert after.dropped() == 0, fs.name

    # The reopened store appends after what survived.
    after.put(TELEMETRY, _record(TELEMETRY, 13))
    after.flush()
    final = Store(_cfg(after.root))
    assert _payloads(final.main)[-2:] == [_record(TELEMETRY, 8), _record(TELEMETRY, 13)], fs.name


def test_power_cut_loses_only_unflushed():
    _on_both(_check_power_cut_window)


def _check_flush_and_positions(fs):
    store = Store(_cfg(fs.root, flush_records=16))
    for n in range(1, 6):
        store.put(TELEMETRY, _record(TELEMETRY, n))
    store.flush()
    assert Store(_cfg(fs.power_cut())).depth() == 5, fs.name

    batch = store.main.peek(3, 100000)
    store.main.ack(batch[-1][0])
    assert store.depth() == 2, fs.name
    # The acknowledgement is not on flash until save_positions().
    assert Store(_cfg(fs.power_cut())).depth() == 5, fs.name
    store.save_positions()
    after = Store(_cfg(fs.power_cut()))
    assert _payloads(after.main) == [_record(TELEMETRY, 4), _record(TELEMETRY, 5)], fs.name


def test_flush_and_saved_positions():
    _on_both(_check_flush_and_positions)


def _check_put_no_allocation(fs):
    store = Store(_cfg(fs.root, flush_records=16))
    woken = []
    event = asyncio.Event()
    records = [_record(TELEMETRY, n) for n in range(12)]
    store.put(TELEMETRY, records[0])  # warm-up
    for on_stored in (None, event.set):
        store.on_stored = on_stored
        error = None
        micropython.heap_lock()
        try:
            for n in range(1, 6):
                store.put(TELEMETRY if n % 2 else EVENT, records[n])
        except MemoryError as e:
            error = e
        micropython.heap_unlock()
        assert error is None, (fs.name, on_stored)
        woken.append(event.is_set())
    assert woken == [False, True], fs.name
    assert store.main.flushes == 0, fs.name
    assert store.depth() == 11, fs.name


def test_put_allocates_nothing_before_flush():
    _on_both(_check_put_no_allocation)


def test_stats_depth_and_dropped():
    fs = LittleFS()
    try:
        store = Store(_cfg(fs.root))
        store.put(TELEMETRY, _record(TELEMETRY, 1))
        store.put(ALARM, _record(ALARM, 2))
        s = store.stats()
        assert s["alarm"]["appended"] == 1
        assert s["alarm"]["flushes"] == 1
        assert s["main"]["appended"] == 1
        assert s["main"]["depth"] == 1
        assert store.depth() == 2
        assert store.dropped() == 0
        # Every file named in the layout comment is under spool.dir.
        store.names.index("front")
        store.clocks.set(1, 1000)
        assert sorted(os.listdir(fs.root)) == ["alarm", "clocks", "main", "names.json"]
    finally:
        fs.close()


async def test_run_flushes_every_flush_s():
    fs = LittleFS()
    try:
        store = Store(_cfg(fs.root, flush_records=16, flush_s=1))
        store.flush_ms = 40  # shorter than the 1 s minimum of the configuration, to keep the test fast
        task = asyncio.create_task(store.run())
        store.put(TELEMETRY, _record(TELEMETRY, 1))
        batch = store.main.peek(1, 1000)  # peek flushes: one flush so far
        store.main.ack(batch[0][0])
        store.put(TELEMETRY, _record(TELEMETRY, 2))
        assert store.main.flushes == 1
        await asyncio.sleep_ms(100)
        task.cancel()
        await asyncio.sleep_ms(0)
        assert store.main.flushes == 2
        after = Store(_cfg(fs.power_cut()))
        # run() saved the position after record 1 and flushed record 2.
        assert _payloads(after.main) == [_record(TELEMETRY, 2)]
    finally:
        fs.close()
