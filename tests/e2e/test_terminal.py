# End to end: the virtual terminal (firmware under the unix port, 112wK heap) against a real mosquitto
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# One run of tests/data/scenarios/e2e.json; every check compares what a
# subscriber received with values computed from the scenario file and from
# pynmea2's decoding of the NMEA capture, never with the firmware's own code.

import json
import re
import threading
import time

import pytest

from conftest import REPO
from scenario_expect import (HEAP_BUDGET, Recorder, capture_positions, crossing, curve, firmware_heap,
                             firmware_heap_size, run_vterm, seed_trip)

SCENARIO = REPO / "tests" / "data" / "scenarios" / "e2e.json"
DEVICE = "TRK-E2E"
# Offset between scenario time (world start) and the firmware's uptime, plus
# the time from a probe's conversion to the record: the window searched on the curve.
_WINDOW_S = (-3.0, 3.0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from conftest import Mosquitto

    tmp = tmp_path_factory.mktemp("e2e")
    broker = Mosquitto(tmp / "broker").start()
    rec = Recorder(broker.port, "fleet/%s/#" % DEVICE)
    late = []

    def subscribe_late():
        # A backend that connects mid-trip gets the retained status at once.
        late.append(Recorder(broker.port, "fleet/%s/status" % DEVICE))

    timer = threading.Timer(40.0, subscribe_late)
    timer.start()
    try:
        sc = json.loads(SCENARIO.read_text())
        # A sealed cold-chain trip is running, so the door opening is an alarm.
        seed_trip(tmp / "state", "LOAD-E2E", "cold_chain")
        rc, out = run_vterm(broker.port, SCENARIO, DEVICE, tmp / "state", sc["duration_s"])
        time.sleep(2.0)
        after = Recorder(broker.port, "fleet/%s/status" % DEVICE)
        time.sleep(1.0)
        after.stop()
    finally:
        timer.cancel()
        rec.stop()
        for r in late:
            r.stop()
        broker.stop()
    return {"rc": rc, "out": out, "rec": rec, "sc": sc, "late": late, "after": after}


def _probe_curve(sc, name):
    rom = next(p["rom"] for p in sc["config"]["probes"] if p["name"] == name)
    return next(p for p in sc["probes"] if p["rom"] == rom)


def _alarm(run, key, state):
    found = [a for a in run["rec"].of("alarm")
             if "%s:%s" % (a["alarm"], a["channel"]) == key or (a["alarm"] == key and not a["channel"])]
    return [a for a in found if a["state"] == state]


def test_vterm_exit_and_no_crash(run):
    assert run["rc"] == 0, run["out"][-3000:]
    assert "Traceback" not in run["out"], run["out"][-3000:]
    assert "MemoryError" not in run["out"]


def test_firmware_heap_share_fits_esp32_budget(run):
    # The firmware ran with the 112wK budget and no more: the simulator held back its spare heap.
    size = firmware_heap_size(run["out"])
    assert HEAP_BUDGET <= size < HEAP_BUDGET + 1064, size
    firmware_live = firmware_heap(run["out"])
    assert firmware_live < HEAP_BUDGET, "firmware uses %d of %d bytes" % (firmware_live, HEAP_BUDGET)
    print("firmware live heap %d bytes of the 112wK budget (%d)" % (firmware_live, HEAP_BUDGET))


def test_status_online_then_last_will(run):
    status = [(m[2], m[3]) for m in run["rec"].messages if m[1] == "status"]
    assert status, "no status message"
    assert status[0][1]["state"] == "online"
    assert status[-1][1] == {"state": "offline"}, "last will not delivered after SIGKILL"


def test_status_retained(run):
    assert run["late"], "the late subscriber did not start"
    mid = run["late"][0].messages
    assert mid, "no retained status for a subscriber that joined mid-trip"
    assert mid[0][2] is True, "status during the trip was not retained"
    assert mid[0][3]["state"] == "online"
    end = run["after"].messages
    assert len(end) == 1, end
    assert end[0][2] is True
    assert end[0][3] == {"state": "offline"}


def test_every_record_delivered_in_order(run):
    recs = [m[3] for m in run["rec"].messages if m[1] in ("telemetry", "alarm", "event")]
    seqs = [r["seq"] for r in recs]
    assert sorted(seqs) == list(range(1, len(seqs) + 1)), "missing or repeated sequence numbers: %s" % seqs
    # Alarms overtake the other records; within each stream the order is kept.
    alarm_seqs = [r["seq"] for r in recs if r["kind"] == "alarm"]
    other_seqs = [r["seq"] for r in recs if r["kind"] != "alarm"]
    assert alarm_seqs == sorted(alarm_seqs), alarm_seqs
    assert other_seqs == sorted(other_seqs), other_seqs
    assert all(m[1] == m[3]["kind"] for m in run["rec"].messages if m[1] in ("telemetry", "alarm", "event"))
    # The retained configuration document is the only other message besides the status.
    assert {m[1] for m in run["rec"].messages} == {"telemetry", "alarm", "event", "status", "config"}
    assert {r["boot"] for r in recs} == {1}
    assert {r["dev"] for r in recs} == {DEVICE}


def test_telemetry_interval(run):
    tel = run["rec"].of("telemetry")
    sc = run["sc"]
    assert len(tel) >= 10
    clears = [a["up"] for a in run["rec"].of("alarm") if a["state"] == "cleared"]
    for prev, cur in zip(tel, tel[1:]):
        gap = cur["up"] - prev["up"]
        # The short interval applies while an alarm stays active. An alarm that
        # clears in between brings back the normal interval, even when another
        # is raised before the next record.
        cleared = any(prev["up"] < t < cur["up"] for t in clears)
        both = prev["alarms"] and cur["alarms"] and not cleared
        interval = sc["config"]["alarm_interval_s"] if both else sc["config"]["interval_s"]
        assert gap <= interval + 2.5, "gap %.1f s after seq %d (interval %d)" % (gap, prev["seq"], interval)
        assert gap >= 2.0, "two records %.1f s apart at seq %d" % (gap, prev["seq"])
    quiet = [cur["up"] - prev["up"] for prev, cur in zip(tel, tel[1:]) if not prev["alarms"] and not cur["alarms"]]
    assert quiet, "no stretch without alarms"
    for gap in quiet:
        assert abs(gap - sc["config"]["interval_s"]) <= 2.5


def test_probe_temperatures_follow_curves(run):
    sc = run["sc"]
    checked = 0
    for rec in run["rec"].of("telemetry"):
        for name, p in rec["probes"].items():
            if p.get("c") is None:
                continue
            pts = _probe_curve(sc, name)["temp"]
            lo, hi = rec["up"] + _WINDOW_S[0], rec["up"] + _WINDOW_S[1]
            values = [curve(pts, lo + i * (hi - lo) / 60) for i in range(61)]
            assert min(values) - 0.1 <= p["c"] <= max(values) + 0.1, \
                "%s = %s at up %.1f, curve %.2f..%.2f" % (name, p["c"], rec["up"], min(values), max(values))
            checked += 1
    assert checked >= 30


def test_humidity_values(run):
    sc = run["sc"]["dht"]
    ok = [r for r in run["rec"].of("telemetry") if r["dht"].get("rh") is not None]
    assert len(ok) >= 5
    for r in ok:
        assert abs(r["dht"]["c"] - curve(sc["temp"], r["up"])) <= 0.15
        # The DHT is read every 10 s, so its value may be that old.
        lo = curve(sc["rh"], r["up"] - 13)
        hi = curve(sc["rh"], r["up"] + 3)
        assert lo - 0.15 <= r["dht"]["rh"] <= hi + 0.15, (r["up"], r["dht"])


def test_positions_equal_capture(run):
    cap = capture_positions(REPO / run["sc"]["nmea"]["file"])
    fixes = [r["gnss"] for r in run["rec"].of("telemetry") if r["gnss"] and r["gnss"]["fix"]]
    assert len(fixes) >= 5, "too few telemetry records with a fix"
    for g in fixes:
        hms = g["utc"][11:19]
        assert hms in cap, "fix time %s is not an epoch of the capture" % g["utc"]
        lat, lon = cap[hms]
        assert abs(g["lat"] - lat) <= 1e-6, (g, lat)
        assert abs(g["lon"] - lon) <= 1e-6, (g, lon)


def test_records_carry_time_once_clock_set(run):
    tel = run["rec"].of("telemetry")
    stamped = [r for r in tel if r["t"] is not None]
    assert stamped, "the clock was never set from GNSS"
    for r in stamped:
        assert r["t"] > 1.7e9, "a default date slipped through: %s" % r["t"]
    first = tel.index(stamped[0])
    assert all(r["t"] is not None for r in tel[first:]), "time lost after being set"


def test_excursion_alarm_delay_and_hysteresis(run):
    sc = run["sc"]
    pts = _probe_curve(sc, "rear")["temp"]
    delay = sc["config"]["alarm"]["delay_s"]
    cross = crossing(pts, 8.0, rising=True)
    back = crossing(pts, 8.0 - sc["config"]["alarm"]["hysteresis_c"], rising=False, after=cross + 5)
    raised = _alarm(run, "temp_high:rear", "raised")
    cleared = _alarm(run, "temp_high:rear", "cleared")
    assert len(raised) == 1, raised
    assert len(cleared) == 1, cleared
    assert cross + delay - 3 <= raised[0]["up"] <= cross + delay + 5, (cross + delay, raised[0]["up"])
    assert raised[0]["value"] > 8.0
    assert raised[0]["limit"] == 8.0
    assert back - 3 <= cleared[0]["up"] <= back + 5, (back, cleared[0]["up"])
    assert cleared[0]["value"] <= 7.5
    assert cleared[0]["gnss"]["lat"] is not None, "alarm without position"


def test_door_and_sos(run):
    ev = run["rec"].of("event")
    names = [(e["event"], e["up"]) for e in ev]
    opened = [u for n, u in names if n == "door_open"]
    closed = [u for n, u in names if n == "door_closed"]
    assert len(opened) == 1, names
    assert len(closed) == 1, names
    assert 15 - 3 <= opened[0] <= 15 + 3
    assert 25 - 3 <= closed[0] <= 25 + 3
    # The container is sealed for the cold-chain trip.
    door = _alarm(run, "door_open", "raised")
    assert len(door) == 1, door
    assert door[0]["detail"] == "sealed"
    assert door[0]["trip"] == {"id": "LOAD-E2E", "type": "cold_chain", "early": False}
    assert 15 - 3 <= door[0]["up"] <= 15 + 3
    assert door[0]["jt808"] == 1 << 31
    assert len(_alarm(run, "door_open", "cleared")) == 1
    sos_r = _alarm(run, "sos", "raised")
    sos_c = _alarm(run, "sos", "cleared")
    assert len(sos_r) == 1, sos_r
    assert len(sos_c) == 1, sos_c
    assert 30 - 3 <= sos_r[0]["up"] <= 30 + 3
    # Cleared by the 4 s press that starts at 80 s, when the button is released.
    assert 84 - 3 <= sos_c[0]["up"] <= 84 + 3
    assert sos_r[0]["gnss"]["lat"] is not None


def test_unplugged_probe_fault(run):
    tel = run["rec"].of("telemetry")
    during = [r for r in tel if 60 <= r["up"] <= 70]
    assert during
    for r in during:
        assert r["probes"]["return-air"] == {"c": None, "fault": "absent"}
        assert r["probes"]["rear"]["c"] is not None, "a missing probe shifted another probe's value"
    raised = _alarm(run, "sensor_fault:return-air", "raised")
    cleared = _alarm(run, "sensor_fault:return-air", "cleared")
    assert len(raised) == 1, raised
    assert raised[0]["detail"] == "absent"
    assert 50 <= raised[0]["up"] <= 50 + 15
    assert len(cleared) == 1, cleared
    assert 75 - 2 <= cleared[0]["up"] <= 75 + 8


def test_no_unexpected_alarms(run):
    keys = {"%s:%s" % (a["alarm"], a["channel"]) if a["channel"] else a["alarm"] for a in run["rec"].of("alarm")}
    assert keys == {"temp_high:rear", "door_open", "sos", "sensor_fault:return-air"}, keys
