# Tests of firmware.alarms: every rule's raise and clear times, computed by hand, and no allocation
import micropython

from firmware import config, defaults
from firmware.alarms import (ACKNOWLEDGED, ACTIVE, CLEARED, COLD_CHAIN, CRITICAL, HAZMAT, NORMAL, PENDING,
                             RAISED, WARNING, Alarms)


def _cfg(alarm=None, **top):
    patch = {"probes": [{"rom": "28A1B2C304000096", "name": "rear", "low": 2.0, "high": 8.0}],
             "dht": {"rh_high": 90.0},
             "alarm": {"delay_s": 10, "early_s": 0, "trend_horizon_s": 0, "gnss_silent_s": 0, "gnss_nofix_s": 0}}
    if alarm:
        patch["alarm"].update(alarm)
    patch.update(top)
    cfg = config.merge(defaults.DEFAULTS, patch)
    errors = config.validate(cfg)
    assert not errors, errors
    return cfg


def _engine(ev, alarm=None, **top):
    return Alarms(_cfg(alarm, **top), True, lambda a, change, now: ev.append((a.key, change, now)))


class FakeFix:
    def __init__(self):
        self.lat_deg = 31
        self.lat_min_e7 = 120000000  # 31.2 degrees
        self.lat_neg = False
        self.lon_deg = 121
        self.lon_min_e7 = 300000000  # 121.5 degrees
        self.lon_neg = False
        self.speed_kn_e3 = 0


class FakeGNSS:
    def __init__(self):
        self.fix = FakeFix()
        self.fixed = True
        self.last_data_ms = 0

    def has_fix(self):
        return self.fixed

    def kmh(self, kmh_e2):
        # Knots x 1000 whose km/h x 100 (x 1.852, rounded) is kmh_e2: 1 kn = 1.852 km/h.
        self.fix.speed_kn_e3 = (kmh_e2 * 10000 + 926) // 1852


# Temperature and humidity


def test_high_raises_after_delay():
    ev = []
    al = _engine(ev)
    al.sample("rear", 8100, 0, "ok", 1000)
    assert ev == []
    assert al.channels["rear"].high.state == PENDING
    al.sample("rear", 8200, 0, "ok", 10999)
    assert ev == [], "raised before the 10 s delay"
    al.sample("rear", 8200, 0, "ok", 11000)
    assert ev == [("temp_high:rear", RAISED, 11000)]
    a = al.channels["rear"].high
    assert (a.value_m, a.limit_m, a.severity) == (8200, 8000, CRITICAL)


def test_pending_resets_when_back_in_range():
    ev = []
    al = _engine(ev)
    al.sample("rear", 8100, 0, "ok", 0)
    al.sample("rear", 7900, 0, "ok", 5000)
    al.sample("rear", 8100, 0, "ok", 9000)
    al.sample("rear", 8100, 0, "ok", 15000)
    assert ev == [], "the delay must restart after a return into range"
    al.sample("rear", 8100, 0, "ok", 19000)
    assert ev == [("temp_high:rear", RAISED, 19000)]


def test_clear_needs_hysteresis():
    ev = []
    al = _engine(ev, {"delay_s": 0})
    al.sample("rear", 9000, 0, "ok", 0)
    assert ev == [("temp_high:rear", RAISED, 0)]
    al.sample("rear", 7600, 0, "ok", 1000)
    assert len(ev) == 1, "7.6 C is inside 8.0 but not below 8.0 - 0.5"
    al.sample("rear", 7500, 0, "ok", 2000)
    assert ev[1] == ("temp_high:rear", CLEARED, 2000)


def test_low_limit_negative_values():
    ev = []
    cfg = _cfg({"delay_s": 0}, probes=[{"rom": "28A1B2C304000096", "name": "freezer", "low": -25.0, "high": -18.0}])
    al = Alarms(cfg, False, lambda a, c, n: ev.append((a.key, c)))
    # Case B1: -25.0625 C is below a -25.0 low limit; -12.9375 C is above -18.0.
    al.sample("freezer", -25062, 0, "ok", 0)
    assert ev == [("temp_low:freezer", RAISED)]
    al.sample("freezer", -24400, 0, "ok", 1)
    assert ev[-1] == ("temp_low:freezer", CLEARED)
    al.sample("freezer", -12937, 0, "ok", 2)
    assert ev[-1] == ("temp_high:freezer", RAISED)


def test_humidity_channel_has_its_own_limits():
    ev = []
    al = _engine(ev, {"delay_s": 0})
    al.sample("rh", 90500, 0, "ok", 0)
    assert ev == [("rh_high:rh", RAISED, 0)]
    al.sample("rh", 88500, 0, "ok", 1)  # hysteresis_rh 2.0: 88.5 is not below 88.0
    al.sample("rh", 88000, 0, "ok", 2)
    assert ev[-1] == ("rh_high:rh", CLEARED, 2)


def test_fault_after_count_is_neither_in_nor_out():
    ev = []
    al = _engine(ev, {"delay_s": 0, "cumulative_s": 10})
    al.trip_start(COLD_CHAIN, "T1", 0)
    al.sample("rear", 9000, 0, "ok", 0)
    assert ev == [("temp_high:rear", RAISED, 0)]
    al.sample("rear", None, 1, "crc", 2000)
    al.sample("rear", None, 2, "crc", 4000)
    assert len(ev) == 1
    al.sample("rear", None, 3, "crc", 6000)
    assert ev[-1] == ("sensor_fault:rear", RAISED, 6000)
    assert al.channels["rear"].fault.detail == "crc"
    assert al.channels["rear"].high.state == ACTIVE, "a fault must not clear the limit alarm"
    # No out-of-range time: from 0 s on the next reading was a fault, so what the
    # temperature did from then until 60 s is unknown and not counted.
    al.sample("rear", 9000, 0, "ok", 60000)
    assert ev[-1] == ("sensor_fault:rear", CLEARED, 60000)
    assert al.channels["rear"].out_ms == 0
    al.sample("rear", 9000, 0, "ok", 62000)
    assert al.channels["rear"].out_ms == 2000


# Trip phases, cumulative excursions and trends


def test_early_phase_tightens_limit_and_delay():
    ev = []
    al = _engine(ev, {"early_s": 600, "early_margin_c": 1.0, "early_delay_s": 5})
    al.trip_start(COLD_CHAIN, "T1", 0)
    assert al.early
    al.sample("rear", 7200, 0, "ok", 0)  # above 8.0 - 1.0
    al.sample("rear", 7200, 0, "ok", 4999)
    assert ev == []
    al.sample("rear", 7200, 0, "ok", 5000)
    assert ev == [("temp_high:rear", RAISED, 5000)]
    a = al.channels["rear"].high
    assert (a.limit_m, a.detail) == (7000, "early")
    al.tick(599999)
    assert al.early
    al.tick(600000)
    assert not al.early
    # Normal limit 8.0 with hysteresis 0.5: 7.2 is below 7.5, so the alarm clears.
    al.sample("rear", 7200, 0, "ok", 600500)
    assert ev[-1] == ("temp_high:rear", CLEARED, 600500)
    # After the early phase 7.2 C no longer counts as out of range.
    al.sample("rear", 7200, 0, "ok", 700000)
    assert al.channels["rear"].high.state == NORMAL


def test_cumulative_excursion_counts_only_during_trip():
    ev = []
    al = _engine(ev, {"delay_s": 30, "cumulative_s": 60})
    # 20 s cycles: 10 s out of range (samples at 0..8 s), 10 s in range (10..18 s).
    t = 0
    for c in range(3):
        for k in range(10):
            al.sample("rear", 9000 if k < 5 else 5000, 0, "ok", c * 20000 + k * 2000)
    assert al.channels["rear"].out_ms == 0, "no trip: nothing is counted"
    al.trip_start(COLD_CHAIN, "T1", 60000)
    for c in range(8):
        for k in range(10):
            t = 60000 + c * 20000 + k * 2000
            al.sample("rear", 9000 if k < 5 else 5000, 0, "ok", t)
    # Each cycle adds the 5 gaps that start at an out-of-range sample: 10 s. The
    # sixth cycle reaches 60 s at its first in-range sample, 60 + 5 x 20 + 10 s.
    assert ev == [("temp_cumulative:rear", RAISED, 170000)], ev
    a = al.channels["rear"].cumulative
    assert (a.value_m, a.limit_m) == (60000, 60000)
    al.trip_end(300000)
    assert ev[-1] == ("temp_cumulative:rear", CLEARED, 300000)


def test_trend_warns_before_the_crossing():
    ev = []
    # Window 160 s: a point every 10 s. Rising 0.01 C/s from 4.00 C.
    al = _engine(ev, {"trend_window_s": 160, "trend_horizon_s": 900, "delay_s": 0})
    for t in range(0, 150000, 2000):
        al.sample("rear", 4000 + t // 100, 0, "ok", t)
    assert ev == [], "15 points are not enough for a fit"
    al.sample("rear", 5500, 0, "ok", 150000)
    # Points 4.00, 4.10 ... 5.50 C: the fit gives 5.50 C now, 0.1 C per 10 s, so
    # 8.0 C is 2.5 C or 250 s away.
    assert ev == [("temp_trend:rear", RAISED, 150000)]
    a = al.channels["rear"].trend
    assert (a.eta_s, a.value_m, a.limit_m, a.severity) == (250, 5500, 8000, WARNING)
    # Falling again: the slope turns and the warning clears once the fit follows.
    t = 152000
    v = 5500
    while al.channels["rear"].trend.state == ACTIVE and t < 400000:
        v -= 20
        al.sample("rear", v, 0, "ok", t)
        t += 2000
    assert ev[-1][:2] == ("temp_trend:rear", CLEARED)


def test_trend_ignores_noise_and_far_crossings():
    ev = []
    al = _engine(ev, {"trend_window_s": 160, "trend_horizon_s": 900})
    # 1-bit DS18B20 noise (0.0625 C) around 4.0 C: no warning.
    for t in range(0, 400000, 2000):
        al.sample("rear", 4000 + (62 if (t // 2000) % 2 else 0), 0, "ok", t)
    # Rising 0.001 C/s: 8.0 C is 4000 s away, beyond the 900 s horizon.
    for t in range(400000, 800000, 2000):
        al.sample("rear", 4000 + (t - 400000) // 1000, 0, "ok", t)
    assert ev == []


# Inputs


def test_sos_latched_until_ack_or_long_press():
    ev = []
    al = _engine(ev)
    al.sos_changed(True, 0)
    al.sos_changed(False, 200)
    assert ev == [("sos", RAISED, 0)]
    al.sos_changed(True, 10000)
    al.sos_changed(False, 11000)  # 1 s < sos_clear_hold_s 3
    assert len(ev) == 1
    assert al.ack("sos", 12000) == ["sos"]
    assert ev[1:] == [("sos", ACKNOWLEDGED, 12000), ("sos", CLEARED, 12000)]
    al.sos_changed(True, 20000)
    al.sos_changed(False, 20100)
    al.sos_changed(True, 30000)
    al.sos_changed(False, 33000)
    assert ev[-2:] == [("sos", RAISED, 20000), ("sos", CLEARED, 33000)]


def test_long_first_press_does_not_clear():
    ev = []
    al = _engine(ev)
    al.sos_changed(True, 0)
    al.sos_changed(False, 5000)
    assert ev == [("sos", RAISED, 0)]


def test_ack_silences_but_keeps_alarm_visible():
    ev = []
    al = _engine(ev, {"delay_s": 0})
    al.sample("rear", 9000, 0, "ok", 0)
    assert al.max_severity() == CRITICAL
    assert al.max_severity(False) == CRITICAL
    assert al.ack("all", 1000) == ["temp_high:rear"]
    assert ev[-1] == ("temp_high:rear", ACKNOWLEDGED, 1000)
    assert al.channels["rear"].high.state == ACTIVE
    assert al.max_severity() == CRITICAL
    assert al.max_severity(False) == -1
    assert al.ack("all", 2000) == [], "acknowledged once"


def test_door_rules():
    ev = []
    g = FakeGNSS()
    al = _engine(ev, {"door_open_delay_s": 2})
    al.position(g, 0)
    al.door_changed(True, 1000)
    al.tick(5000)
    assert ev == [], "stopped, no trip, no zones: opening is allowed"
    al.door_changed(False, 6000)
    g.kmh(2000)  # 20 km/h
    al.position(g, 7000)
    assert al.moving
    al.door_changed(True, 8000)
    al.tick(9999)
    assert ev == []
    al.tick(10000)
    assert ev == [("door_open", RAISED, 10000)]
    assert al.door.detail == "moving"
    assert al.door.jt808_bit == 31
    al.door_changed(False, 11000)
    assert ev[-1] == ("door_open", CLEARED, 11000)
    g.kmh(0)
    al.position(g, 12000)
    al.trip_start(COLD_CHAIN, "T1", 12000)
    al.door_changed(True, 13000)
    al.tick(15000)
    assert ev[-1] == ("door_open", RAISED, 15000)
    assert al.door.detail == "sealed"


def test_seat_occupied_during_hazmat_trip():
    ev = []
    al = _engine(ev)
    al.seat_changed(True, 0)
    assert ev == []
    al.trip_start(HAZMAT, "H1", 1000)
    assert ev == [("seat", RAISED, 1000)]
    al.seat_changed(False, 2000)
    assert ev[-1] == ("seat", CLEARED, 2000)
    al.seat_changed(True, 3000)
    al.trip_end(4000)
    assert ev[-2:] == [("seat", RAISED, 3000), ("seat", CLEARED, 4000)]


# Motion and GNSS


def test_overspeed_after_duration_with_hysteresis():
    ev = []
    g = FakeGNSS()
    al = _engine(ev, {"overspeed_kmh": 80, "overspeed_s": 10})
    g.kmh(9000)
    for t in range(0, 10001, 1000):
        al.position(g, t)
        al.tick(t)
    assert ev == [("overspeed", RAISED, 10000)]
    assert al.overspeed.value_m == 90000
    assert al.overspeed.limit_m == 80000
    g.kmh(7800)  # below 80 but not by the 3 km/h hysteresis
    al.position(g, 11000)
    al.tick(11000)
    assert len(ev) == 1
    g.kmh(7600)
    al.position(g, 12000)
    al.tick(12000)
    assert ev[-1] == ("overspeed", CLEARED, 12000)
    assert al.overspeed.value_m == 76000, "the clear carries the speed that cleared it"


def test_unscheduled_stop_only_on_trip():
    ev = []
    g = FakeGNSS()
    al = _engine(ev, {"stop_s": 60})
    for t in range(0, 120001, 1000):
        al.position(g, t)
        al.tick(t)
    assert ev == []
    al.trip_start(HAZMAT, "H1", 120000)
    for t in range(121000, 200001, 1000):
        al.position(g, t)
        al.tick(t)
    assert ev == [("stop", RAISED, 181000)], ev
    g.kmh(3000)
    al.position(g, 201000)
    al.tick(201000)
    assert ev[-1] == ("stop", CLEARED, 201000)


def test_gnss_silent_and_no_fix():
    ev = []
    g = FakeGNSS()
    al = _engine(ev, {"gnss_silent_s": 30, "gnss_nofix_s": 300})
    g.last_data_ms = 1000
    al.tick(30999, g)
    assert ev == []
    al.tick(31000, g)
    assert ev == [("gnss_silent", RAISED, 31000)]
    g.last_data_ms = 40000
    al.tick(40000, g)
    assert ev[-1] == ("gnss_silent", CLEARED, 40000)
    g.fixed = False
    al.tick(41000, g)
    al.ignition_changed(True, 50000)
    for t in range(50000, 350001, 1000):
        g.last_data_ms = t
        al.tick(t, g)
    assert ev[-1] == ("gnss_nofix", RAISED, 350000)
    assert al.gnss_nofix.jt808_bit == 5
    g.fixed = True
    al.tick(351000, g)
    assert ev[-1] == ("gnss_nofix", CLEARED, 351000)


def test_jt808_word_halves():
    ev = []
    g = FakeGNSS()
    al = _engine(ev, {"overspeed_kmh": 80, "overspeed_s": 0})
    al.update_jt808()
    assert (al.jt808_lo, al.jt808_hi) == (0, 0)
    al.sos_changed(True, 0)
    g.kmh(9000)
    al.position(g, 0)
    al.tick(0)
    al.door_changed(True, 0)
    al.update_jt808()
    # SOS bit 0 and overspeed bit 1; illegal door opening bit 31 = bit 15 of the high half.
    assert (al.jt808_lo, al.jt808_hi) == (0x0003, 0x8000)


# Allocation


def test_full_evaluation_allocates_nothing():
    ev = []
    g = FakeGNSS()
    # The fake fix is at 31.2 N 121.5 E: inside the circle, outside the polygon,
    # 1.1 km from the route.
    zones = [{"name": "yard", "type": "circle", "lat": 31.2, "lon": 121.5, "radius_m": 500, "stop_ok": True},
             {"name": "plant", "type": "polygon", "alarm": "inside", "door_ok": True,
              "points": [[31.21, 121.51], [31.21, 121.52], [31.22, 121.52], [31.22, 121.51], [31.21, 121.51]]}]
    route = {"points": [[31.21, 121.49], [31.21, 121.52], [31.23, 121.53]], "width_m": 300}
    al = _engine(ev, {"overspeed_kmh": 80, "stop_s": 600, "cumulative_s": 3600, "trend_horizon_s": 900,
                      "trend_window_s": 32, "gnss_silent_s": 30, "gnss_nofix_s": 300, "early_s": 600},
                 zones=zones, route=route)
    al.trip_start(COLD_CHAIN, "T1", 0)
    g.kmh(5000)
    # Warm up: raise the alarms whose steady state is then checked.
    al.sample("rear", 9000, 0, "ok", 0)
    al.sample("rear", 9000, 0, "ok", 20000)
    al.sample("rh", 50000, 0, "ok", 20000)
    al.sample("dht", 5000, 0, "ok", 20000)
    for t in range(0, 21000, 1000):
        g.last_data_ms = t
        al.position(g, t)
        al.tick(t, g)
    n = len(ev)
    micropython.heap_lock()
    try:
        for t in range(22000, 80000, 2000):
            g.last_data_ms = t
            al.sample("rear", 9000 + t // 1000, 0, "ok", t)
            al.sample("dht", 5000, 0, "ok", t)
            al.sample("rh", 50000 + t // 100, 0, "ok", t)
            al.position(g, t)
            al.tick(t, g)
            al.update_jt808()
            al.excursion()
            al.any_active()
            al.max_severity(False)
    finally:
        micropython.heap_unlock()
    assert len(ev) == n, ev[n:]
    assert al.channels["rear"].high.state == ACTIVE
    assert al.zones_in == 1, "inside the yard circle only"
    assert al.route.state == ACTIVE, "1.1 km off the route"


def test_trend_ignores_recovery_and_turned_tail():
    ev = []
    al = _engine(ev, {"trend_window_s": 30, "trend_horizon_s": 60, "delay_s": 600})
    # 9.0 C falls 0.5 C/s to 6.0 C, then slowly on. The slope reaches the 2.0 C
    # limit within the horizon. But about 6 C is on the high side of the 2..8 C
    # range, so this is a recovery, not a trend towards the low limit.
    t = 0
    for k in range(16):
        al.sample("rear", 9000, 0, "ok", t)
        t += 2000
    for v in (8000, 7000, 6000, 5975, 5950, 5925, 5900, 5875, 5850, 5825, 5800, 5775):
        al.sample("rear", v, 0, "ok", t)
        t += 2000
    assert [e for e in ev if e[0] == "temp_trend:rear"] == []
    # Rising fast to 7.5 C and then falling: the whole window still slopes up,
    # but its last quarter falls, so no warning.
    ev[:] = []
    al2 = _engine(ev, {"trend_window_s": 30, "trend_horizon_s": 60})
    values = [4000] * 4 + [4600, 5200, 5800, 6400, 7000, 7500, 7500, 7500, 7500, 7000, 6500, 6000]
    for k in range(len(values)):
        al2.sample("rear", values[k], 0, "ok", k * 2000)
    assert ev == []


def test_indication_patterns_by_severity():
    from firmware.alarms import INDICATE_PHASES, INFO, indication

    def cycle(sev, loud):
        buzz = [indication(sev, loud, p)[0] for p in range(INDICATE_PHASES)]
        led = [indication(sev, loud, p)[1] for p in range(INDICATE_PHASES)]
        return buzz, led

    buzz, led = cycle(CRITICAL, True)
    assert sum(buzz) == 10, "critical: 200 ms beep every second, LED on"
    assert all(led), "critical: 200 ms beep every second, LED on"
    assert buzz[0]
    assert buzz[5]
    assert not buzz[1]
    buzz, led = cycle(CRITICAL, False)
    assert sum(buzz) == 0, "acknowledged: silent, still shown"
    assert all(led), "acknowledged: silent, still shown"
    buzz, led = cycle(WARNING, True)
    assert sum(buzz) == 2, "warning: beep every 5 s, LED 600/400 ms"
    assert sum(led) == 30, "warning: beep every 5 s, LED 600/400 ms"
    assert led[:5] == [True, True, True, False, False]
    buzz, led = cycle(INFO, True)
    assert sum(buzz) == 0
    assert sum(led) == 5
    assert cycle(-1, False) == ([False] * INDICATE_PHASES, [False] * INDICATE_PHASES)


def test_configure_keeps_unchanged_zone_shapes():
    # A remote change of another key passes a new configuration whose zones are
    # equal but new objects (read back from config.json). The shapes in force
    # stay: building them again would load firmware.geobuild beside the remote
    # code, and the vehicle would enter the zone it is in a second time.
    import json

    zones = [{"name": "yard", "type": "circle", "lat": 31.2, "lon": 121.5, "radius_m": 500}]
    ev = []
    entered = []
    al = _engine(ev, zones=zones)
    al.on_zone = lambda name, inside, now: entered.append((name, inside, now))
    g = FakeGNSS()
    al.position(g, 1000)
    assert entered == [("yard", True, 1000)]
    shapes = al.zones
    cfg = json.loads(json.dumps(_cfg({"delay_s": 20}, zones=zones)))
    al.configure(cfg)
    assert al.delay_ms == 20000
    assert al.zones is shapes
    al.position(g, 2000)
    assert entered == [("yard", True, 1000)], "no second entry into an unchanged zone"
    # A changed zone is built again, and the vehicle enters it anew.
    moved = [{"name": "yard", "type": "circle", "lat": 31.2, "lon": 121.5, "radius_m": 800}]
    al.configure(_cfg({"delay_s": 20}, zones=moved))
    assert al.zones is not shapes
    assert al.zones[0][1].radius_m == 800
    al.position(g, 3000)
    assert entered == [("yard", True, 1000), ("yard", True, 3000)]


def test_route_change_restarts_confirmation_and_removal_clears():
    # The fake fix is at 31.2 N 121.5 E, 1.1 km south of a route along 31.21 N.
    far = {"points": [[31.21, 121.49], [31.21, 121.52]], "width_m": 300}
    near = {"points": [[31.2, 121.49], [31.2, 121.52]], "width_m": 300}
    ev = []
    g = FakeGNSS()
    al = _engine(ev, route=far)
    for t in range(0, 11000, 1000):
        al.position(g, t)
    assert al.route.state == ACTIVE
    assert ev[-1][:2] == ("route", RAISED)

    # Still off the changed route: the alarm stays, and no event is sent.
    farther = {"points": [[31.22, 121.49], [31.22, 121.52]], "width_m": 300}
    n = len(ev)
    al.configure(_cfg({}, route=farther))
    al.position(g, 12000)
    assert al.route.state == ACTIVE
    assert len(ev) == n

    # On the new route: cleared at the next fix.
    al.configure(_cfg({}, route=near))
    al.position(g, 13000)
    assert al.route.state != ACTIVE
    assert ev[-1][:2] == ("route", CLEARED)

    # Off a new route: 10 s from the change, not from the first deviation.
    al.configure(_cfg({}, route=far))
    for t in range(14000, 20000, 1000):
        al.position(g, t)
    al.configure(_cfg({}, route=farther))
    for t in range(20000, 29000, 1000):
        al.position(g, t)
    assert al.route.state != ACTIVE, "9 s off the changed route"
    al.position(g, 30000)
    assert al.route.state == ACTIVE, "10 s off the changed route"

    # Route removed: the alarm clears at once, without a fix.
    n = len(ev)
    al.configure(_cfg({}, route={"points": [], "width_m": 300}))
    assert al.route.state != ACTIVE
    assert ev[n][:2] == ("route", CLEARED)
