# End to end: every alarm rule's raise and clear times, from the broker side, against two scenarios
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# A cold-chain and a hazmat scenario run at the same time, each in its own
# virtual terminal. The expected times are computed here from the scenario
# files (curves, route geometry with haversine distances, input edges), never
# from the firmware's code. A trip is running from boot: its state is put in
# the terminal's flash folder before it starts, as a terminal finds it after a
# restart. Commands (acknowledge, end of trip) go over MQTT during the run.

import json
import math
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import REPO
from scenario_expect import HEAP_BUDGET, Recorder, crossing, curve, firmware_heap, run_vterm, seed_trip

SCENARIOS = REPO / "tests" / "data" / "scenarios"
COLD = "TRK-COLD"
HAZ = "TRK-HAZ"
# Firmware uptime against scenario time: one 2 s sample (or 1 s fix) late at
# most, and up to 1.5 s early for the world's start before the firmware's.
EARLY_S = 1.5
LATE_S = 3.0
_EARTH_M = 6371000.0


def _within(actual, expected, what, early=EARLY_S, late=LATE_S):
    assert expected - early <= actual <= expected + late, "%s at %.1f s, expected %.1f s" % (what, actual, expected)


class Commander:
    """Sends commands at fixed uptimes, counted from the terminal's first online status."""

    def __init__(self, port, device, rec, schedule):
        self.port = port
        self.device = device
        self.rec = rec
        self.schedule = schedule  # [(uptime_s, command, args), ...]
        self.sent = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        t0 = None
        deadline = time.monotonic() + 120
        while t0 is None and time.monotonic() < deadline:
            for m in list(self.rec.messages):
                if m[1] == "status" and m[3].get("state") == "online":
                    t0 = m[0]
                    break
            time.sleep(0.05)
        if t0 is None:
            return
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cmd-%s" % self.device)
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        try:
            for at, cmd, args in self.schedule:
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                body = {"id": "%s-%d" % (cmd, at), "cmd": cmd, "args": args}
                client.publish("fleet/%s/cmd" % self.device, json.dumps(body), qos=1).wait_for_publish(5)
                self.sent.append((at, cmd))
        finally:
            client.loop_stop()
            client.disconnect()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from conftest import Mosquitto

    tmp = tmp_path_factory.mktemp("alarms")
    broker = Mosquitto(tmp / "broker").start()
    plan = {
        COLD: ("cold-alarms.json", "LOAD-C1", "cold_chain", 50, [(147, "ack", {"alarm": "all"}), (150, "trip_end", {})]),
        HAZ: ("hazmat-alarms.json", "LOAD-H1", "hazmat", 0, [(75, "ack", {"alarm": "sos"})]),
    }
    out = {}
    threads = []
    try:
        for dev, (name, trip, kind, early, schedule) in plan.items():
            sc = json.loads((SCENARIOS / name).read_text())
            state = tmp / dev
            seed_trip(state, trip, kind, early)
            rec = Recorder(broker.port, "fleet/%s/#" % dev)
            cmd = Commander(broker.port, dev, rec, schedule)
            entry = out[dev] = {"sc": sc, "rec": rec, "cmd": cmd, "trip": trip}

            def run(entry=entry, name=name, dev=dev, state=state, sc=sc):
                entry["rc"], entry["out"] = run_vterm(broker.port, SCENARIOS / name, dev, state, sc["duration_s"])

            t = threading.Thread(target=run)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        time.sleep(1.0)
    finally:
        for entry in out.values():
            entry["rec"].stop()
        broker.stop()
    return out


def _alarms(entry, key, state):
    found = []
    for a in entry["rec"].of("alarm"):
        k = "%s:%s" % (a["alarm"], a["channel"]) if a["channel"] else a["alarm"]
        if k == key and a["state"] == state:
            found.append(a)
    return found


def _one(entry, key, state):
    found = _alarms(entry, key, state)
    assert len(found) == 1, "%s %s: %s" % (key, state, found)
    return found[0]


def _events(entry, name):
    return [e for e in entry["rec"].of("event") if e["event"] == name]


# Both runs


@pytest.mark.parametrize("dev", [COLD, HAZ])
def test_runs_end_cleanly(runs, dev):
    e = runs[dev]
    assert e["rc"] == 0, e["out"][-3000:]
    assert "Traceback" not in e["out"], e["out"][-3000:]
    assert "MemoryError" not in e["out"]


@pytest.mark.parametrize("dev", [COLD, HAZ])
def test_firmware_heap_within_budget(runs, dev):
    # The hazmat run keeps the zone and route geometry in the heap as well.
    used = firmware_heap(runs[dev]["out"])
    assert used < HEAP_BUDGET, "firmware uses %d of %d bytes" % (used, HEAP_BUDGET)
    print("%s: firmware live heap %d bytes of %d" % (dev, used, HEAP_BUDGET))


@pytest.mark.parametrize("dev", [COLD, HAZ])
def test_sampling_never_stopped(runs, dev):
    e = runs[dev]
    tel = e["rec"].of("telemetry")
    interval = e["sc"]["config"]["interval_s"]
    assert len(tel) >= e["sc"]["duration_s"] // interval
    for prev, cur in zip(tel, tel[1:]):
        assert cur["up"] - prev["up"] <= interval + 2.5, (prev["seq"], cur["seq"])


# Cold chain


def _rear(sc):
    return sc["probes"][1]["temp"]


def _front(sc):
    return sc["probes"][0]["temp"]


def test_early_phase_raises_at_tighter_limit(runs):
    e = runs[COLD]
    a = e["sc"]["config"]["alarm"]
    early_limit = 8.0 - a["early_margin_c"]
    cross = crossing(_front(e["sc"]), early_limit, rising=True)
    raised = _one(e, "temp_high:front", "raised")
    _within(raised["up"], cross + a["early_delay_s"], "temp_high:front (early phase) raised")
    assert raised["limit"] == early_limit, raised
    assert raised["detail"] == "early", raised
    assert raised["trip"] == {"id": "LOAD-C1", "type": "cold_chain", "early": True}
    back = crossing(_front(e["sc"]), early_limit - a["hysteresis_c"], rising=False, after=cross + 1)
    _within(_one(e, "temp_high:front", "cleared")["up"], back, "temp_high:front cleared")
    # The front probe never passes the normal 8.0 C limit.
    assert max(v for _, v in _front(e["sc"])) < 8.0


def test_early_phase_ends_on_time(runs):
    e = runs[COLD]
    tel = [r for r in e["rec"].of("telemetry") if r["boot"] == 1]
    assert [r["trip"]["early"] for r in tel if r["up"] < 48] and all(r["trip"]["early"] for r in tel if r["up"] < 48)
    later = [r for r in tel if 52 < r["up"] < 147]
    assert later
    assert not any(r["trip"]["early"] for r in later)


def _trend_expectation(points, window_s, horizon_s, limit, phase_s, sample_s=2.0):
    # Return the first sample whose fitted crossing of the limit is within the
    # horizon, and that ETA, for samples taken at phase_s + k * sample_s. The
    # fit is a least-squares slope, in floats, over the last 16 readings (one
    # per sample while the point step is shorter than the sample period). Each
    # reading is rounded to 1/16 C as a DS18B20 reports it.
    n = 16
    samples = []
    t = phase_s
    while t <= points[-1][0]:
        samples.append((t, round(curve(points, t) * 16) / 16))
        if len(samples) >= n:
            last = samples[-n:]
            ts = [s[0] for s in last]
            vs = [s[1] for s in last]
            tm = sum(ts) / n
            vm = sum(vs) / n
            slope = sum((a - tm) * (b - vm) for a, b in zip(ts, vs)) / sum((a - tm) ** 2 for a in ts)
            fit = vm + slope * (ts[-1] - tm)
            if slope > 0 and fit < limit and (limit - fit) / slope <= horizon_s:
                return t, (limit - fit) / slope
        t += sample_s
    return None, None


def test_trend_warning_before_the_excursion(runs):
    e = runs[COLD]
    a = e["sc"]["config"]["alarm"]
    # Where the terminal's 2 s samples fall against the scenario clock depends
    # on its boot, and the 1/16 C rounding makes the warning come up to one
    # sample earlier or later with that phase. So the expectation is the span
    # over phases in 0.25 s steps, and the test allows one sample interval
    # (and the usual record latency) either side of that span.
    fits = [_trend_expectation(_rear(e["sc"]), a["trend_window_s"], a["trend_horizon_s"], 8.0, q / 4) for q in range(8)]
    assert all(at is not None for at, _ in fits)
    first = min(at for at, _ in fits)
    last = max(at for at, _ in fits)
    raised = _one(e, "temp_trend:rear", "raised")
    assert first - 2.0 <= raised["up"] <= last + 4.0, "temp_trend:rear raised at %.1f s, expected %.1f to %.1f s" % (
        raised["up"], first, last)
    assert min(abs(raised["eta_s"] - eta) for _, eta in fits) <= 6, (raised["eta_s"], fits)
    assert raised["limit"] == 8.0
    assert raised["severity"] == "warning"
    cross = crossing(_rear(e["sc"]), 8.0, rising=True)
    assert raised["up"] < cross - 20, "the warning must come well before the crossing"
    # It clears once the limit itself is crossed and the limit alarm takes over.
    _within(_one(e, "temp_trend:rear", "cleared")["up"], cross, "temp_trend:rear cleared")


def test_limit_alarm_delay_and_hysteresis(runs):
    e = runs[COLD]
    a = e["sc"]["config"]["alarm"]
    cross = crossing(_rear(e["sc"]), 8.0, rising=True)
    raised = _one(e, "temp_high:rear", "raised")
    _within(raised["up"], cross + a["delay_s"], "temp_high:rear raised")
    assert raised["value"] > 8.0
    assert raised["limit"] == 8.0
    assert "detail" not in raised
    assert raised["gnss"]["lat"] is not None
    back = crossing(_rear(e["sc"]), 8.0 - a["hysteresis_c"], rising=False, after=cross + 5)
    _within(_one(e, "temp_high:rear", "cleared")["up"], back, "temp_high:rear cleared")


def test_cumulative_excursion(runs):
    e = runs[COLD]
    a = e["sc"]["config"]["alarm"]
    cross = crossing(_rear(e["sc"]), 8.0, rising=True)
    raised = _one(e, "temp_cumulative:rear", "raised")
    _within(raised["up"], cross + a["cumulative_s"], "temp_cumulative:rear raised")
    assert raised["unit"] == "s"
    assert raised["limit"] == a["cumulative_s"]
    assert _alarms(e, "temp_cumulative:front", "raised") == []


def test_door_opened_during_sealed_trip(runs):
    e = runs[COLD]
    raised = _one(e, "door_open", "raised")
    _within(raised["up"], 100, "door_open raised")
    assert raised["detail"] == "sealed"
    assert raised["jt808"] & (1 << 31)
    _within(_one(e, "door_open", "cleared")["up"], 103, "door_open cleared")


def test_faster_logging_during_excursion(runs):
    e = runs[COLD]
    tel = [r for r in e["rec"].of("telemetry") if 120 <= r["up"] <= 142]
    assert any(r["excursion"] for r in tel)
    for prev, cur in zip(tel, tel[1:]):
        assert cur["up"] - prev["up"] <= e["sc"]["config"]["alarm_interval_s"] + 2.5


def test_ack_and_trip_end_commands(runs):
    e = runs[COLD]
    assert [c for _, c in e["cmd"].sent] == ["ack", "trip_end"]
    acked = _one(e, "temp_cumulative:rear", "acknowledged")
    _within(acked["up"], 147, "temp_cumulative:rear acknowledged", early=2.0)
    cleared = _one(e, "temp_cumulative:rear", "cleared")
    _within(cleared["up"], 150, "temp_cumulative:rear cleared at trip end", early=2.0)
    replies = [r for r in e["rec"].of("reply") if r.get("cmd") == "trip_end"]
    assert replies, replies
    assert replies[0]["ok"] is True, replies
    ends = _events(e, "trip_end")
    assert len(ends) == 1, ends
    # Rear out of range (above 8.0 C) from its crossing until it is back below 8.0 C.
    rise = crossing(_rear(e["sc"]), 8.0, rising=True)
    fall = crossing(_rear(e["sc"]), 8.0, rising=False, after=rise + 1)
    assert abs(ends[0]["out_of_range_s"]["rear"] - (fall - rise)) <= 3, ends[0]
    assert ends[0]["out_of_range_s"]["front"] == 0
    assert ends[0]["trip"] == "LOAD-C1"
    tel = [r for r in e["rec"].of("telemetry") if r["up"] > 152]
    assert all(r["trip"] is None for r in tel)


def test_cold_no_other_alarms(runs):
    keys = {"%s:%s" % (a["alarm"], a["channel"]) if a["channel"] else a["alarm"] for a in runs[COLD]["rec"].of("alarm")}
    assert keys == {"temp_high:front", "temp_trend:rear", "temp_high:rear", "temp_cumulative:rear", "door_open"}, keys


# Hazmat


def _track(sc, t):
    """Position on the scenario route at time t, interpolated as the simulator's receiver does."""
    pts = sc["nmea"]["route"]
    if t <= pts[0][0]:
        return pts[0][1], pts[0][2]
    for (t0, la0, lo0), (t1, la1, lo1) in zip(pts, pts[1:]):
        if t0 <= t <= t1:
            f = (t - t0) / (t1 - t0)
            return la0 + (la1 - la0) * f, lo0 + (lo1 - lo0) * f
    return pts[-1][1], pts[-1][2]


def _haversine(a, b):
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp = p2 - p1
    dl = math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_M * math.asin(math.sqrt(h))


def _first_time(sc, test, start=0.0, step=0.05):
    t = start
    while t <= sc["duration_s"]:
        if test(t):
            return t
        t += step
    return None


def _corridor_distance(sc, pos):
    # Distance to the polyline: the smallest distance to points spaced 1 m along it.
    best = None
    pts = sc["config"]["route"]["points"]
    for a, b in zip(pts, pts[1:]):
        n = int(_haversine(a, b)) + 1
        for i in range(n + 1):
            q = (a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n)
            d = _haversine(pos, q)
            best = d if best is None or d < best else best
    return best


def test_seat_during_hazmat_trip(runs):
    e = runs[HAZ]
    _within(_one(e, "seat", "raised")["up"], 5, "seat raised")
    _within(_one(e, "seat", "cleared")["up"], 12, "seat cleared")
    assert [x["up"] for x in _events(e, "seat_occupied")]


def test_geofence_enter_exit(runs):
    e = runs[HAZ]
    sc = e["sc"]
    school = [z for z in sc["config"]["zones"] if z["name"] == "school"][0]
    centre = (school["lat"], school["lon"])
    enter = _first_time(sc, lambda t: _haversine(_track(sc, t), centre) < school["radius_m"])
    leave = _first_time(sc, lambda t: _haversine(_track(sc, t), centre) >= school["radius_m"], start=enter + 1)
    raised = _one(e, "geofence", "raised")
    _within(raised["up"], enter, "geofence raised")
    assert raised["zone"] == "school"
    assert raised["detail"] == "inside"
    assert raised["jt808"] & (1 << 20)
    _within(_one(e, "geofence", "cleared")["up"], leave, "geofence cleared")
    entered = [x for x in _events(e, "zone_enter") if x["zone"] == "school"]
    assert len(entered) == 1
    _within(entered[0]["up"], enter, "zone_enter school")
    # Leaving the depot polygon (a 120 m square around the start).
    depot = [x for x in _events(e, "zone_exit") if x["zone"] == "depot"]
    assert len(depot) == 1, _events(e, "zone_exit")
    start = sc["nmea"]["route"][0][1:]
    out = _first_time(sc, lambda t: abs(_track(sc, t)[1] - start[1]) * math.cos(math.radians(start[0])) * math.radians(1) * _EARTH_M > 60)
    _within(depot[0]["up"], out, "zone_exit depot")


def test_door_opened_while_moving(runs):
    e = runs[HAZ]
    raised = _one(e, "door_open", "raised")
    _within(raised["up"], 30, "door_open raised")
    assert raised["detail"] == "moving"
    assert raised["moving"] is True
    assert raised["jt808"] & (1 << 31)
    _within(_one(e, "door_open", "cleared")["up"], 33, "door_open cleared")


def test_overspeed(runs):
    e = runs[HAZ]
    sc = e["sc"]
    a = sc["config"]["alarm"]
    pts = sc["nmea"]["route"]
    # The 95 km/h leg: from the route's third to fourth point.
    fast_from, fast_to = pts[2][0], pts[3][0]
    kmh = _haversine(pts[2][1:], pts[3][1:]) / (fast_to - fast_from) * 3.6
    assert kmh > a["overspeed_kmh"]
    raised = _one(e, "overspeed", "raised")
    _within(raised["up"], fast_from + a["overspeed_s"], "overspeed raised")
    assert abs(raised["value"] - kmh) < 1.0
    assert raised["limit"] == a["overspeed_kmh"]
    assert raised["unit"] == "km/h"
    _within(_one(e, "overspeed", "cleared")["up"], fast_to, "overspeed cleared")
    tel = [r for r in e["rec"].of("telemetry") if fast_from + a["overspeed_s"] + 2 <= r["up"] <= fast_to - 1]
    assert tel and all(r["jt808"] & 2 for r in tel)


def test_route_deviation(runs):
    e = runs[HAZ]
    sc = e["sc"]
    width = sc["config"]["route"]["width_m"]
    off = _first_time(sc, lambda t: _corridor_distance(sc, _track(sc, t)) > width, start=50, step=0.25)
    back = _first_time(sc, lambda t: _corridor_distance(sc, _track(sc, t)) <= 0.9 * width, start=off + 20, step=0.25)
    raised = _one(e, "route", "raised")
    _within(raised["up"], off + 10, "route raised")  # 10 s outside before a deviation counts
    assert raised["limit"] == width
    assert raised["value"] > width
    assert raised["jt808"] & (1 << 23)
    _within(_one(e, "route", "cleared")["up"], back, "route cleared")


def test_unscheduled_stop(runs):
    e = runs[HAZ]
    sc = e["sc"]
    pts = sc["nmea"]["route"]
    # The stop: two equal consecutive route points outside the depot.
    stop = [(a[0], b[0]) for a, b in zip(pts, pts[1:]) if a[1:] == b[1:] and a[0] > 20][0]
    raised = _one(e, "stop", "raised")
    _within(raised["up"], stop[0] + sc["config"]["alarm"]["stop_s"], "stop raised")
    assert raised["jt808"] & (1 << 19)
    _within(_one(e, "stop", "cleared")["up"], stop[1], "stop cleared")


def test_sos_acknowledged_remotely(runs):
    e = runs[HAZ]
    raised = _one(e, "sos", "raised")
    _within(raised["up"], 70, "sos raised")
    assert raised["gnss"]["lat"] is not None
    assert raised["jt808"] & 1
    acked = _one(e, "sos", "acknowledged")
    cleared = _one(e, "sos", "cleared")
    _within(acked["up"], 75, "sos acknowledged", early=2.0)
    assert cleared["up"] == acked["up"]
    replies = [r for r in e["rec"].of("reply") if r.get("cmd") == "ack"]
    assert replies, replies
    assert replies[0]["ok"] is True, replies
    assert replies[0]["result"]["acknowledged"] == ["sos"], replies


def test_gnss_silent_and_no_fix(runs):
    e = runs[HAZ]
    a = e["sc"]["config"]["alarm"]
    gaps = {g["kind"]: (g["from"], g["to"]) for g in e["sc"]["nmea"]["gaps"]}
    silent = gaps["silent"]
    # The last sentences before the gap end about 0.2 s after the whole second before it.
    _within(_one(e, "gnss_silent", "raised")["up"], silent[0] - 1 + a["gnss_silent_s"], "gnss_silent raised")
    _within(_one(e, "gnss_silent", "cleared")["up"], silent[1], "gnss_silent cleared")
    nofix = gaps["nofix"]
    raised = _one(e, "gnss_nofix", "raised")
    _within(raised["up"], nofix[0] + a["gnss_nofix_s"], "gnss_nofix raised")
    _within(_one(e, "gnss_nofix", "cleared")["up"], nofix[1], "gnss_nofix cleared")


def test_hazmat_no_other_alarms(runs):
    keys = {a["alarm"] for a in runs[HAZ]["rec"].of("alarm")}
    assert keys == {"seat", "geofence", "door_open", "overspeed", "route", "stop", "sos", "gnss_silent", "gnss_nofix"}, keys
