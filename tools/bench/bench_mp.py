# Micro-benchmarks of firmware hot paths, run under the unix port by tools/bench.py
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Prints one "name|value|unit|note" row per measurement. Argument: a scratch
# folder for the name dictionary of the reference record.

import gc
import sys
import time

sys.path[:] = ["build/bench/sim", "build/bench", ".frozen", "tools/bench"]

_CAPTURES = ("tests/data/nmea/skytraq-dgps.log", "tests/data/nmea/quectel-l76k-nmea.log")


def row(name, value, unit, note=""):
    print("%s|%s|%s|%s" % (name, value, unit, note))


def load_lines():
    lines = []
    for path in _CAPTURES:
        with open(path, "rb") as f:
            for raw in f:
                raw = raw.strip()
                if raw.startswith(b"$"):
                    lines.append(bytearray(raw))
    return lines


def bench_modules():
    gc.collect()
    before = gc.mem_alloc()
    from firmware import app, gnss, humidity, inputs, mqtt, nmea, packed, probes, spool, store, uplink  # noqa: F401
    from drivers import dht_sensor, digital_inputs, ds18b20, indicator, wlan  # noqa: F401

    gc.collect()
    row("firmware modules loaded (.mpy)", gc.mem_alloc() - before, "bytes", "heap after import, this port")


def bench_nmea(lines):
    from firmware import nmea

    p = nmea.Parser()
    rounds = 20
    gc.collect()
    t0 = time.ticks_us()
    for _ in range(rounds):
        for ln in lines:
            p.parse(ln, len(ln))
    dt = time.ticks_diff(time.ticks_us(), t0)
    n = rounds * len(lines)
    row("NMEA parse", int(n * 1_000_000 / dt), "sentences/s", "%d lines of 2 captures" % len(lines))
    row("NMEA parse", "%.1f" % (dt / n), "us/sentence", "")

    # Allocation count: parse with the heap locked; any allocation raises.
    import micropython

    fails = 0
    micropython.heap_lock()
    try:
        for ln in lines:
            try:
                p.parse(ln, len(ln))
            except MemoryError:
                fails += 1
    finally:
        micropython.heap_unlock()
    row("NMEA parse allocations", fails, "sentences that allocated", "of %d" % len(lines))


def bench_alarms():
    from reference import PROBE_NAMES, Reference, alarms_for
    from firmware.store import Names

    ref = Reference(Names("/tmp/bench-alarm-names.json"))
    al = alarms_for(PROBE_NAMES)
    al.trip_start(1, "BENCH", 0)
    n = 2000
    t0 = time.ticks_us()
    for i in range(n):
        # One full record: every channel, the position and the time-driven rules.
        for name in PROBE_NAMES:
            al.sample(name, 5000, 0, "ok", i * 1000)
        al.sample("dht", 5000, 0, "ok", i * 1000)
        al.sample("rh", 80000, 0, "ok", i * 1000)
        al.position(ref.gnss, i * 1000)
        al.tick(i * 1000, ref.gnss)
        al.update_jt808()
    dt = time.ticks_diff(time.ticks_us(), t0)
    row("alarm check", "%.1f" % (dt / n), "us/record", "%d channels, position, tick" % (len(PROBE_NAMES) + 2))


def bench_record(workdir):
    from firmware.store import Names
    from reference import Reference

    ref = Reference(Names(workdir + "/names.json"))
    n = 2000
    gc.collect()
    t0 = time.ticks_us()
    for _ in range(n):
        packed = ref.telemetry()
    dt = time.ticks_diff(time.ticks_us(), t0)
    row("telemetry pack", "%.1f" % (dt / n), "us/record", "Packer.telemetry: 4 probes, DHT, GNSS fix")
    row("telemetry packed size", len(packed), "bytes", "plus a 7-byte spool frame on flash")

    # Once each record length was seen the packer allocates nothing (firmware/packed.py).
    import micropython

    fails = 0
    micropython.heap_lock()
    try:
        for _ in range(100):
            try:
                ref.telemetry()
            except MemoryError:
                fails += 1
    finally:
        micropython.heap_unlock()
    row("telemetry pack allocations", fails, "records that allocated", "of 100, heap locked")

    packed = bytes(packed)
    n = 500
    gc.collect()
    t0 = time.ticks_us()
    for _ in range(n):
        text = ref.render(packed)
    dt = time.ticks_diff(time.ticks_us(), t0)
    row("telemetry render", "%.1f" % (dt / n), "us/record", "packed.render to the JSON payload")
    row("telemetry JSON size", len(text), "bytes", "as published alone, with the link object")


workdir = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
lines = load_lines()
bench_modules()
bench_nmea(lines)
bench_alarms()
bench_record(workdir)
gc.collect()
row("heap free at end", gc.mem_free(), "bytes", "")
