# Loop lag of a 10 ms asyncio ticker while the uplink works, and the backlog drain rate, under the unix port
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Run by tools/bench.py from the repository root, against a broker or port it set up:
#   micropython -X heapsize=112wK tools/bench/uplink_mp.py MODE HOST PORT SECONDS WORKDIR [BACKLOG]
# MODE names the case in the rows: "idle" (broker up, nothing waiting), "down"
# (closed port), "blackhole" (accepts TCP, never answers) or "drain" (the
# records waiting in WORKDIR/spool-drain, run until the broker has
# acknowledged them all, or for at most SECONDS). Mode "fill" only stores
# BACKLOG records in WORKDIR/spool-drain and exits, so that the drain starts
# in a fresh interpreter, as after a reboot, with a heap that the filling did
# not shape.
#
# The firmware's Store (in WORKDIR on the host filesystem) and Uplink run with
# the default configuration, and a producer stores one reference telemetry
# record per second the way the terminal's app does (pack, Store.put,
# gc.collect). A ticker task sleeps 10 ms at a time and records how late it
# woke. "@start" and "@end" lines mark the measured interval, so that the
# caller can read the process's CPU time at both ends. Then one
# "name|value|unit|note" row per measurement follows.

import asyncio
import gc
import sys
import time
from array import array

sys.path[:] = ["build/bench/sim", "build/bench", ".frozen", "tools/bench"]

from firmware import config, defaults
from firmware.packed import TELEMETRY
from firmware.store import Store
from firmware.uplink import Uplink
from reference import DEVICE_ID, Reference

_TICK_MS = 10
_LAG_BINS = 1000  # 0.1 ms bins up to 100 ms
_PRODUCE_MS = 1000
_CONNECT_WAIT_MS = 5000
_CHECK_MS = 10
_BOOT_ID = 3
_REPORT_PAUSE_MS = 200  # time for the caller to read the CPU counters after "@end"

_CASES = {
    "idle": "broker up and idle",
    "down": "broker down (port closed)",
    "blackhole": "broker black-holed",
    "drain": "backlog draining",
}


def row(name, value, unit, note=""):
    print("%s|%s|%s|%s" % (name, value, unit, note))


class Ticker:
    """Sleeps _TICK_MS at a time and counts how late each wake-up was, in a histogram of 0.1 ms bins."""

    def __init__(self):
        # The last bin counts every lag of _LAG_BINS / 10 ms or more; max_us keeps the exact worst.
        self.bins = array("H", bytes(2 * (_LAG_BINS + 1)))
        self.count = 0
        self.max_us = 0
        self.running = True

    async def run(self):
        bins = self.bins
        while self.running:
            t0 = time.ticks_us()
            await asyncio.sleep_ms(_TICK_MS)
            late = time.ticks_diff(time.ticks_us(), t0) - _TICK_MS * 1000
            if late < 0:
                late = 0
            bins[min(late // 100, _LAG_BINS)] += 1
            if late > self.max_us:
                self.max_us = late
            self.count += 1

    def percentile_ms(self, percent):
        """Return the lag in ms that percent of the ticks did not exceed (upper edge of its 0.1 ms bin)."""
        rank = (self.count * percent + 99) // 100
        seen = 0
        for i in range(_LAG_BINS + 1):
            seen += self.bins[i]
            if seen >= rank:
                return min((i + 1) / 10, self.max_us / 1000)
        return self.max_us / 1000


async def produce(store, ref):
    # As the app's publish_telemetry(): pack, store and collect once per record.
    while True:
        await asyncio.sleep_ms(_PRODUCE_MS)
        store.put(TELEMETRY, ref.telemetry())
        gc.collect()


def count_messages(uplink, counts):
    # Wraps the client's publish to count the messages per topic kind (telemetry, batch, status).
    client = uplink._client
    publish = client.publish

    def counting(topic, payload, qos=0, retain=False, wait=True):
        kind = topic.rpartition(b"/")[2]
        counts[kind] = counts.get(kind, 0) + 1
        return publish(topic, payload, qos, retain, wait)

    client.publish = counting


async def wait_until(condition, limit_ms):
    waited = 0
    while not condition() and waited < limit_ms:
        await asyncio.sleep_ms(_CHECK_MS)
        waited += _CHECK_MS
    return condition()


async def measure(mode, host, port, seconds, workdir, backlog):
    spool_dir = workdir + "/spool-" + ("drain" if mode == "fill" else mode)
    cfg = config.merge(defaults.DEFAULTS, {"mqtt": {"host": host, "port": port}, "spool": {"dir": spool_dir}})
    store = Store(cfg)
    ref = Reference(store.names, _BOOT_ID)
    # The clock of this boot is known, so no record waits for it.
    store.clocks.set(_BOOT_ID, ref.offset_ms)
    if mode == "fill":
        for _ in range(backlog):
            store.put(TELEMETRY, ref.telemetry())
        store.flush()
        return
    backlog = store.depth()
    uplink = Uplink(cfg, DEVICE_ID, store, boot_id=_BOOT_ID, fw="bench")
    counts = {}
    count_messages(uplink, counts)
    gc.collect()

    tasks = [asyncio.create_task(uplink.run()), asyncio.create_task(store.run())]
    if mode == "idle" and not await wait_until(lambda: uplink.connected, _CONNECT_WAIT_MS):
        raise RuntimeError("no connection to %s:%d within %d ms" % (host, port, _CONNECT_WAIT_MS))
    ticker = Ticker()
    sent = uplink.sent
    reconnects = uplink.reconnects
    tasks.append(asyncio.create_task(ticker.run()))
    tasks.append(asyncio.create_task(produce(store, ref)))
    print("@start")
    t0 = time.ticks_ms()

    limit_ms = int(seconds * 1000)
    if mode == "drain":
        drained = await wait_until(lambda: store.depth() == 0, limit_ms)
    else:
        await asyncio.sleep_ms(limit_ms)
    elapsed_ms = time.ticks_diff(time.ticks_ms(), t0)
    print("@end")
    time.sleep_ms(_REPORT_PAUSE_MS)

    ticker.running = False
    for task in tasks:
        task.cancel()
    await asyncio.sleep_ms(0)

    p50 = ticker.percentile_ms(50)
    p99 = ticker.percentile_ms(99)
    worst = ticker.max_us / 1000
    attempts = uplink.reconnects - reconnects
    note = "%d ticks over %.1f s" % (ticker.count, elapsed_ms / 1000)
    if mode in ("down", "blackhole"):
        note += ", %d failed connection attempts" % attempts
    case = _CASES[mode]
    if mode == "drain":
        case = "%d-record %s" % (backlog, case)
    row("loop lag, " + case, "%.1f/%.1f/%.1f" % (p50, p99, worst), "ms p50/p99/max", note)

    if mode == "drain":
        records = uplink.sent - sent
        batches = counts.get(b"batch", 0)
        note = "%d records acked in %.1f s: %d batch and %d single messages, window %d, batch_bytes %d" % (
            records, elapsed_ms / 1000, batches, counts.get(b"telemetry", 0),
            cfg["mqtt"]["window"], cfg["mqtt"]["batch_bytes"])
        if not drained:
            note += "; NOT drained: %d records left, last uplink error: %s" % (store.depth(), uplink.last_error)
        row("backlog drain rate", int(records * 1000 / elapsed_ms), "records/s", note)


def main(argv):
    if len(argv) not in (6, 7):
        print("usage: micropython tools/bench/uplink_mp.py MODE HOST PORT SECONDS WORKDIR [BACKLOG]")
        return 2
    mode = argv[1]
    if mode not in _CASES and mode != "fill":
        print("uplink_mp: unknown mode %r, expected one of %s" % (mode, ", ".join(_CASES)))
        return 2
    backlog = int(argv[6]) if len(argv) == 7 else 0
    asyncio.run(measure(mode, argv[2], int(argv[3]), float(argv[4]), argv[5], backlog))
    return 0


sys.exit(main(sys.argv))
