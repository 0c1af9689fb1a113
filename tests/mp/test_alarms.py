# Tests of firmware.alarms: delay, hysteresis, sensor faults, SOS latch, door, no allocation
import micropython

from firmware.alarms import ACTIVE, NORMAL, PENDING, Alarms


def _engine(events, delay_s=10, fault_count=3, door_delay_s=0):
    chans = [("rear", 2.0, 8.0, 0.5), ("rh", None, 90.0, 2.0)]
    return Alarms(chans, delay_s, fault_count, door_delay_s, 3,
                  lambda a, raised, now: events.append((a.key, raised, now)))


def test_high_raises_after_delay():
    ev = []
    al = _engine(ev)
    al.sample("rear", 8100, 0, "ok", 1000)
    assert ev == []
    assert al.channels["rear"].limits[0].alarm.state == PENDING
    al.sample("rear", 8200, 0, "ok", 10999)
    assert ev == [], "raised before the 10 s delay"
    al.sample("rear", 8200, 0, "ok", 11000)
    assert ev == [("temp_high:rear", True, 11000)]


def test_pending_resets_when_back_in_range():
    ev = []
    al = _engine(ev)
    al.sample("rear", 8100, 0, "ok", 0)
    al.sample("rear", 7900, 0, "ok", 5000)
    al.sample("rear", 8100, 0, "ok", 9000)
    al.sample("rear", 8100, 0, "ok", 15000)
    assert ev == [], "the delay must restart after a return into range"
    al.sample("rear", 8100, 0, "ok", 19000)
    assert ev == [("temp_high:rear", True, 19000)]


def test_clear_needs_hysteresis():
    ev = []
    al = _engine(ev, delay_s=0)
    al.sample("rear", 9000, 0, "ok", 0)
    assert ev == [("temp_high:rear", True, 0)]
    al.sample("rear", 7600, 0, "ok", 1000)
    assert len(ev) == 1, "7.6 C is inside 8.0 but not below 8.0 - 0.5"
    al.sample("rear", 7500, 0, "ok", 2000)
    assert ev[1] == ("temp_high:rear", False, 2000)


def test_low_limit_negative_values():
    ev = []
    al = Alarms([("freezer", -25.0, -18.0, 0.5)], 0, 3, 0, 3, lambda a, r, n: ev.append((a.key, r)))
    # Case B1: -25.0625 C is in range for a "warmer than -18 C" rule, -12.9375 C is not.
    al.sample("freezer", -25062, 0, "ok", 0)
    assert ev == [("temp_low:freezer", True)], "-25.06 is below the -25.0 low limit"
    al.sample("freezer", -24400, 0, "ok", 1)
    assert ev[-1] == ("temp_low:freezer", False)
    al.sample("freezer", -12937, 0, "ok", 2)
    assert ev[-1] == ("temp_high:freezer", True)


def test_fault_after_count_and_values_frozen():
    ev = []
    al = _engine(ev)
    al.sample("rear", 8100, 0, "ok", 0)
    al.sample("rear", None, 1, "absent", 2000)
    al.sample("rear", None, 2, "absent", 4000)
    assert ev == []
    al.sample("rear", None, 3, "absent", 6000)
    assert ev == [("sensor_fault:rear", True, 6000)]
    assert al.channels["rear"].fault_alarm.detail == "absent"
    # The threshold alarm stayed pending through the fault and raises on the next real value.
    al.sample("rear", 8100, 0, "ok", 12000)
    assert ("sensor_fault:rear", False, 12000) in ev
    assert ("temp_high:rear", True, 12000) in ev


def test_sos_latched_until_long_press():
    ev = []
    al = _engine(ev)
    al.sos_changed(True, 1000)
    al.sos_changed(False, 1400)
    assert ev == [("sos", True, 1000)]
    assert al.sos.state == ACTIVE
    al.sos_changed(True, 5000)
    al.sos_changed(False, 6000)
    assert al.sos.state == ACTIVE, "a 1 s press must not clear SOS"
    al.sos_changed(True, 9000)
    al.sos_changed(False, 12000)
    assert al.sos.state == NORMAL
    assert ev[-1] == ("sos", False, 12000)


def test_long_first_press_does_not_clear():
    ev = []
    al = _engine(ev)
    al.sos_changed(True, 0)
    al.sos_changed(False, 5000)
    assert al.sos.state == ACTIVE


def test_door_delay():
    ev = []
    al = _engine(ev, door_delay_s=5)
    al.door_changed(True, 0)
    al.tick(4000)
    assert ev == []
    al.tick(5000)
    assert ev == [("door_open", True, 5000)]
    al.door_changed(False, 7000)
    assert ev[-1] == ("door_open", False, 7000)


def test_active_keys_and_severity():
    ev = []
    al = _engine(ev, delay_s=0)
    assert al.max_severity() is None
    al.sample("rh", 95000, 0, "ok", 0)
    assert al.active_keys() == ["rh_high:rh"]
    assert al.max_severity() == "critical"


def test_steady_state_check_allocates_nothing():
    ev = []
    al = _engine(ev)
    al.sample("rear", 5000, 0, "ok", 0)
    al.sample("rear", 8100, 0, "ok", 100)
    micropython.heap_lock()
    try:
        for t in range(200, 5000, 100):
            al.sample("rear", 8100, 0, "ok", t)
            al.sample("rh", 50000, 0, "ok", t)
            al.tick(t)
        al.sample("rear", None, 1, "crc", 5100)
    finally:
        micropython.heap_unlock()
    assert ev == []
