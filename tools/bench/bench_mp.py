# Micro-benchmarks of firmware hot paths, run under the unix port by tools/bench.py
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Prints one "name|value|unit|note" row per measurement.

import gc
import sys
import time

sys.path[:] = ["build/bench/sim", "build/bench", ".frozen"]

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
    from firmware import app, gnss, humidity, inputs, mqtt, nmea, probes, uplink  # noqa: F401
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
    from firmware.alarms import Alarms

    al = Alarms([("a", 2.0, 8.0, 0.5), ("b", 2.0, 8.0, 0.5), ("c", 2.0, 8.0, 0.5), ("rh", None, 90.0, 2.0)],
                60, 3, 0, 3, lambda a, r, n: None)
    n = 20000
    t0 = time.ticks_us()
    for i in range(n):
        al.sample("a", 5000, 0, "ok", i)
    dt = time.ticks_diff(time.ticks_us(), t0)
    row("alarm check", "%.2f" % (dt / n), "us/sample", "one channel, two limits")


def bench_record():
    from firmware.alarms import Alarms
    from firmware.clock import Clock, Uptime
    from firmware.record import Records

    class P:
        names = ["front", "rear", "return-air"]
        value_mc = [4125, 9437, -18062]
        state = ["ok", "ok", "ok"]
        extra = []

    class H:
        state = "ok"
        temp_mc = 5100
        rh_mrh = 80200

    class G:
        def snapshot(self):
            return {"fix": True, "q": 2, "lat": "44.0688265", "lon": "-121.3144758", "alt": 1122.5, "kmh": 0.0,
                    "course": 122.7, "sats": 10, "hdop": 0.8, "age_s": 0.4, "utc": "2026-12-04T21:31:21Z"}

    class I:
        def active(self, name):
            return False

    al = Alarms([("front", 2.0, 8.0, 0.5)], 60, 3, 0, 3, lambda a, r, n: None)
    rec = Records("TRK-0001", 3, Clock(), Uptime())
    link = {"queued": 0, "dropped": 0, "sent": 40, "reconnects": 0}
    n = 200
    gc.collect()
    t0 = time.ticks_us()
    for _ in range(n):
        text = rec.telemetry(0, P(), H(), G(), I(), al, link)
    dt = time.ticks_diff(time.ticks_us(), t0)
    row("telemetry record build", "%.0f" % (dt / n), "us/record", "3 probes, DHT, GNSS")
    row("telemetry record size", len(text), "bytes", "JSON payload")


lines = load_lines()
bench_modules()
bench_nmea(lines)
bench_alarms()
bench_record()
gc.collect()
row("heap free at end", gc.mem_free(), "bytes", "")
