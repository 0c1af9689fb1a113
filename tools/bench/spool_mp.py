# Spool benchmarks under the unix port: append cost, bytes per record, capacity, flushes and flash erases
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Run by tools/bench.py from the repository root:
#   micropython tools/bench/spool_mp.py WORKDIR
# Prints one "name|value|unit|note" row per measurement. The append cost is
# measured on the host filesystem under WORKDIR. The erase counts come from
# LittleFS (vfs.VfsLfs2, as on the ESP32) on the file-backed NOR flash of
# tools/sim/flash.py, with an image file under WORKDIR.

import gc
import os
import sys
import time

sys.path[:] = ["build/bench/sim", "build/bench", ".frozen", "tools/bench"]

import micropython
import vfs
from flash import BLOCK_BYTES, FileFlash

import firmware.store as store_module
from firmware import config, defaults, log
from firmware.packed import TELEMETRY
from firmware.spool import Spool
from firmware.store import Names, Store
from reference import Reference

log.console = False  # full-spool drops are logged on purpose

_FRAME_OVERHEAD_BYTES = 7  # sync byte, 2-byte length, CRC-32 (firmware/spool.py)
_MIB = 1048576
# The ESP32's vfs partition on a 4 MB module: 512 blocks of 4 KiB.
_FLASH_BYTES = 2 * _MIB
_FLASH_MOUNT = "/bench_flash"
# The flash wear budget is at most about one 4 KiB erase per 10 s of logging one record per 10 s.
_LOG_PERIOD_S = 10
_SIMULATED_S = 3600


def row(name, value, unit, note=""):
    print("%s|%s|%s|%s" % (name, value, unit, note))


def _remove_tree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        child = path + "/" + name
        if os.stat(child)[0] & 0x4000:
            _remove_tree(child)
        else:
            os.remove(child)
    os.rmdir(path)


def _spool_config(root):
    return config.merge(defaults.DEFAULTS, {"spool": {"dir": root}})


def bench_append(workdir):
    ref = Reference(Names(workdir + "/names.json"))
    packed = bytes(ref.telemetry())
    framed = len(packed) + _FRAME_OVERHEAD_BYTES
    row("spool bytes per record", framed, "bytes", "%d packed + %d frame" % (len(packed), _FRAME_OVERHEAD_BYTES))
    row("records per MiB of spool", _MIB // framed, "records", "1 MiB / bytes per record")

    # Spool.append alone: a copy into the RAM batch, timed in groups of
    # flush_records with the flush outside the timing.
    cfg = defaults.DEFAULTS["spool"]
    group = cfg["flush_records"]
    root = workdir + "/append"
    _remove_tree(root)
    spool = Spool(root, cfg["segment_bytes"], cfg["max_segments"])
    n = 0
    dt = 0
    for _ in range(400):
        t0 = time.ticks_us()
        for _ in range(group):
            spool.append(packed)
        dt += time.ticks_diff(time.ticks_us(), t0)
        n += group
        spool.flush()
    row("spool append", "%.2f" % (dt / n), "us/record", "Spool.append into the RAM batch")

    fails = 0
    micropython.heap_lock()
    try:
        for _ in range(group - 1):
            try:
                spool.append(ref.telemetry())
            except MemoryError:
                fails += 1
    finally:
        micropython.heap_unlock()
    row("pack + append allocations", fails, "records that allocated", "of %d, heap locked, no flush due" % (group - 1))

    # Store.put as the terminal calls it: pack, append, and a flush every
    # flush_records records. Here a flush is a write and an fsync of a host
    # file, so the figure varies with the host's disk.
    root = workdir + "/put"
    _remove_tree(root)
    store = Store(_spool_config(root))
    ref = Reference(store.names)
    n = 6400
    gc.collect()
    t0 = time.ticks_us()
    for _ in range(n):
        store.put(TELEMETRY, ref.telemetry())
    dt = time.ticks_diff(time.ticks_us(), t0)
    row("pack + Store.put", "%.1f" % (dt / n), "us/record", "incl. a flush (write + fsync of a host file) every %d records" % group)

    # Capacity of the default spool, counted: the records on it when the first one is dropped.
    while not store.main.dropped:
        store.put(TELEMETRY, ref.telemetry())
    store.flush()
    row("default spool capacity", store.main.depth(), "records",
        "%d segments x %d bytes, oldest dropped beyond" % (cfg["max_segments"], cfg["segment_bytes"]))


class _SimAsyncio:
    """Stand-in for asyncio inside firmware.store: sleep_ms hands control back to the driver at once."""

    @staticmethod
    def sleep_ms(ms):
        yield


def _store_task(store):
    # Runs the real Store.run() coroutine with simulated time: each send()
    # ends one spool.flush_s period (flush if records wait, save positions).
    store_module.asyncio = _SimAsyncio
    task = store.run()
    task.send(None)  # up to the first sleep
    return task


def _mount_flash(workdir, name):
    path = workdir + "/" + name
    try:
        os.remove(path)
    except OSError:
        pass
    dev = FileFlash(path, _FLASH_BYTES)
    vfs.VfsLfs2.mkfs(dev)
    vfs.mount(vfs.VfsLfs2(dev), _FLASH_MOUNT)
    return dev


def _wear(dev, before):
    after = dev.stats()
    return after["erases"] - before["erases"], after["program_bytes"] - before["program_bytes"]


def bench_wear(workdir, online):
    """Log one record per 10 s for a simulated hour on LittleFS; return (erases, programmed bytes, flushes)."""
    import asyncio

    dev = _mount_flash(workdir, "flash-online.img" if online else "flash-offline.img")
    try:
        store = Store(_spool_config(_FLASH_MOUNT + "/spool"))
        ref = Reference(store.names)
        flush_s = store.flush_ms // 1000
        task = _store_task(store)
        before = dev.stats()
        flushes = store.main.flushes
        for _ in range(_SIMULATED_S // flush_s):
            for _ in range(max(flush_s // _LOG_PERIOD_S, 1)):
                store.put(TELEMETRY, ref.telemetry())
                if online:
                    # What Uplink does for a new record on a live connection:
                    # peek (which flushes) and, on the PUBACK, ack.
                    store.alarm.peek(8, 4096)
                    items = store.main.peek(64, 4096)
                    store.main.ack(items[-1][0])
            task.send(None)
        erases, programmed = _wear(dev, before)
        flushes = store.main.flushes - flushes
    finally:
        store_module.asyncio = asyncio
        vfs.umount(_FLASH_MOUNT)
        dev.close()
    return erases, programmed, flushes


def bench_flash(workdir):
    periods = _SIMULATED_S // 10
    for online in (False, True):
        erases, programmed, flushes = bench_wear(workdir, online)
        case = "delivered at once" if online else "broker down"
        if online:
            note = "%s: flush by the uplink's peek, position saved every 10 s" % case
        else:
            note = "%s: Store.run flushes every spool.flush_s" % case
        row("flushes per hour (%s)" % case, flushes, "flushes", "1 record per 10 s, spool.flush_s %d" % defaults.DEFAULTS["spool"]["flush_s"])
        row("flash erases per 10 s (%s)" % case, "%.2f" % (erases / periods), "4 KiB erases", note)
        row("flash erases per hour (%s)" % case, erases, "4 KiB erases", "LittleFS on tools/sim/flash.py, 2 MiB")
        row("flash programmed per flush (%s)" % case, programmed // max(flushes, 1), "bytes", "LittleFS copies the partial last block")


def bench_full_flash(workdir):
    """Fill the default spool on a 2 MiB LittleFS until it drops its oldest record; report the blocks it takes."""
    dev = _mount_flash(workdir, "flash-full.img")
    try:
        store = Store(_spool_config(_FLASH_MOUNT + "/spool"))
        ref = Reference(store.names)
        while not store.main.dropped:
            store.put(TELEMETRY, ref.telemetry())
        store.flush()
        free_blocks = os.statvfs(_FLASH_MOUNT)[3]
        depth = store.main.depth()
    finally:
        vfs.umount(_FLASH_MOUNT)
        dev.close()
    used = dev.block_count - free_blocks
    row("flash used by a full default spool", used * BLOCK_BYTES // 1024, "KiB",
        "%d records; LittleFS blocks incl. metadata, of %d KiB" % (depth, _FLASH_BYTES // 1024))


def main():
    workdir = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
    bench_append(workdir)
    bench_flash(workdir)
    bench_full_flash(workdir)


main()
