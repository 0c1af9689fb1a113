# End-to-end test of records made through a broker outage: all delivered, the loop responsive and idle
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# 200 records are made at 10 per second while the broker is stopped for 5 s.
# The MicroPython side is the "outage_delivery" scenario of
# tests/e2e/mqtt_client_probe.py: the real Store, Packer and Uplink of
# firmware/ on the default configuration (only the broker port and the spool
# folder differ), with a fake probe reading of -18.00 C - 0.01 C per seq. The
# backend is a paho-mqtt subscriber with a persistent session on a mosquitto
# with persistence, so it misses nothing that the broker acknowledged, across
# the restart too.

import os
import time
from pathlib import Path

from delivery import DurableRecorder, check_complete
from faults import RestartableMosquitto
from test_mqtt_client import Probe, spool_dir  # noqa: F401 (a fixture)

DEVICE = "TRK-0042"
BOOT = 7
RECORDS = 200
INTERVAL_MS = 100
# The broker stops this long after the first record, and stays down for OUTAGE_S.
OUTAGE_AT_S = 3.0
OUTAGE_S = 5.0
LAG_MAX_MS = 100
LAG_P99_MS = 20
OUTAGE_CPU_PERCENT = 5.0
# t and up have 0.1 s resolution, and a record may be made up to LAG_MAX_MS late.
T_TOLERANCE_S = 0.25


def cpu_seconds(pid):
    """Return the user plus system CPU time of process pid so far, from /proc/<pid>/stat."""
    stat = Path("/proc/%d/stat" % pid).read_text()
    # The command name in brackets may contain spaces, so fields count from the
    # last ")". utime and stime are fields 14 and 15 of the line.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile_ms(counts, fraction):
    """Return the lateness in ms that fraction of the ticks did not exceed, from counts per ms."""
    needed = fraction * sum(counts)
    running = 0
    for ms, n in enumerate(counts):
        running += n
        if running >= needed:
            return ms
    return len(counts) - 1


def reading_c(seq):
    """Return the probe reading that the probe process puts into record seq (1..999), in degrees Celsius."""
    return round(-18.0 - seq / 100, 2)


def test_outage_delivers_every_record(tmp_path, mp_bin, spool_dir):
    broker = RestartableMosquitto(tmp_path / "broker").start()
    recorder = None
    probe = None
    try:
        recorder = DurableRecorder(broker.port, "fleet", DEVICE)
        probe = Probe(mp_bin, "outage_delivery", {
            "port": broker.port,
            "spool_dir": spool_dir,
            "boot_id": BOOT,
            "records": RECORDS,
            "interval_ms": INTERVAL_MS,
        })
        started = probe.expect("STARTED")
        started_at = time.monotonic()
        time.sleep(max(0.0, started_at + OUTAGE_AT_S - time.monotonic()))
        before_outage = len(recorder.seqs(BOOT))

        # The CPU time is read once the broker is gone and again just before it
        # comes back. In that window the uplink waits and retries, while records
        # are still made and the ticker runs.
        broker.stop()
        outage_started = time.monotonic()
        cpu_before = cpu_seconds(probe.proc.pid)
        time.sleep(OUTAGE_S)
        cpu_after = cpu_seconds(probe.proc.pid)
        outage_s = time.monotonic() - outage_started
        broker.start()
        restarted_at = time.monotonic()

        done = probe.expect("DONE", timeout_s=30)
        missing = recorder.wait_for_seqs(BOOT, RECORDS, 10)
        lines = probe.finish()
        arrivals = recorder.snapshot()
    finally:
        if probe is not None:
            probe.kill()
        if recorder is not None:
            recorder.stop()
        broker.stop()

    unique = {}
    for a in arrivals:
        unique.setdefault(a.key, a.record)
    produced = done["made"]
    delivered = len(unique)
    duplicates = len(arrivals) - delivered
    cpu_percent = 100 * (cpu_after - cpu_before) / outage_s
    p99_ms = percentile_ms(done["lag_counts"], 0.99)
    made_lines = [fields for tag, fields in lines if tag == "MADE"]
    print("records produced %d, delivered %d, duplicates removed %d, dropped %d, max loop lag %d ms, "
          "CPU during outage %.1f %%" % (produced, delivered, duplicates, produced - delivered, done["lag_max_ms"],
                                         cpu_percent))
    print("before the outage %d records arrived; at most %d waited on flash; %d reconnects; "
          "loop lag p99 %d ms over %d ticks; outage %.1f s" % (
              before_outage, max(m["depth"] for m in made_lines), done["reconnects"], p99_ms, sum(done["lag_counts"]),
              outage_s))
    # The time of the worst tick separates an uplink stall (at the outage or
    # the restart) from a machine that was busy elsewhere.
    print("largest loop lag at %.2f s after the start; outage from %.2f s to %.2f s" % (
        done["lag_max_at_ms"] / 1000, outage_started - started_at, restarted_at - started_at))

    # The uplink was live before the outage and noticed it.
    assert started["ok"] is True
    assert before_outage > 0
    assert any(not m["connected"] for m in made_lines)
    assert done["reconnects"] >= 1

    # Every record arrived, once after de-duplication, with the reading made for it.
    assert produced == RECORDS
    assert missing == []
    assert set(unique) == {(DEVICE, BOOT, seq) for seq in range(1, RECORDS + 1)}
    for (dev, boot, seq), record in sorted(unique.items()):
        assert record["kind"] == "telemetry", record
        assert record["probes"] == {"cargo": {"c": reading_c(seq)}}, record
    assert done["ok"] is True
    assert done["queued"] == 0
    assert done["dropped"] == 0
    # check_complete also asserts that repeats equal their first arrival and that every t is a plausible date.
    check_complete(arrivals, boots=[BOOT], device_id=DEVICE)

    # Each record carries the time it was made, one interval after the one
    # before, also when it waited out the outage on flash.
    t_first = unique[(DEVICE, BOOT, 1)]["t"]
    drift = [abs(unique[(DEVICE, BOOT, seq)]["t"] - t_first - (seq - 1) * INTERVAL_MS / 1000)
             for seq in range(1, RECORDS + 1)]
    assert max(drift) <= T_TOLERANCE_S, drift

    # The loop stayed responsive, so the 10 ms ticker and the record schedule were never LAG_MAX_MS late.
    assert done["lag_max_ms"] < LAG_MAX_MS
    assert p99_ms < LAG_P99_MS
    late_ms = [m["at_ms"] - (m["seq"] - 1) * INTERVAL_MS for m in made_lines]
    assert max(late_ms) < LAG_MAX_MS, late_ms

    # The probe process stayed idle while the uplink waited for the broker.
    assert cpu_percent <= OUTAGE_CPU_PERCENT
