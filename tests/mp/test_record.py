# Tests of firmware.record: number formatting and that every record is valid JSON
import json

from firmware.alarms import Alarms
from firmware.clock import Clock, Uptime
from firmware.record import Records, fixed


def test_fixed_rounding():
    assert fixed(4125, 2) == "4.13"
    assert fixed(-12937, 2) == "-12.94"
    assert fixed(-4, 2) == "0.00"
    assert fixed(-5, 2) == "-0.01"
    assert fixed(85000, 1) == "85.0"
    assert fixed(43749, 1) == "43.7"
    assert fixed(None, 1) == "null"


class _Probes:
    names = ["front", "rear"]
    value_mc = [4125, None]
    state = ["ok", "absent"]
    extra = ["28C0FFEE0A00007E"]


class _Hum:
    state = "ok"
    temp_mc = 22500
    rh_mrh = 43700


class _Gnss:
    def snapshot(self):
        return {"fix": True, "lat": "31.2366833", "lon": "-121.4753833", "utc": "2026-03-20T06:15:30Z", "sats": 9}


class _Inputs:
    def active(self, name):
        return name == "door"


def test_telemetry_json():
    al = Alarms([("front", 2.0, 8.0, 0.5)], 0, 3, 0, 3, lambda a, r, n: None)
    rec = Records("TRK-0042", 7, Clock(), Uptime())
    text = rec.telemetry(0, _Probes(), _Hum(), _Gnss(), _Inputs(), al, {"queued": 1, "dropped": 0})
    d = json.loads(text)
    assert d["dev"] == "TRK-0042"
    assert d["boot"] == 7
    assert d["seq"] == 1
    assert d["t"] is None, "no clock yet: no absolute time"
    assert d["probes"] == {"front": {"c": 4.13}, "rear": {"c": None, "fault": "absent"}}
    assert d["unknown_probes"] == ["28C0FFEE0A00007E"]
    assert d["dht"] == {"c": 22.5, "rh": 43.7}
    assert d["gnss"]["lon"] == -121.4753833
    assert d["gnss"]["utc"] == "2026-03-20T06:15:30Z"
    assert d["in"] == {"door": 1, "sos": 0, "ign": 0}
    assert d["link"] == {"queued": 1, "dropped": 0}
    assert json.loads(rec.telemetry(0, _Probes(), _Hum(), _Gnss(), _Inputs(), al, {}))["seq"] == 2


def test_alarm_and_event_json():
    al = Alarms([("front", 2.0, 8.0, 0.5)], 0, 3, 0, 3, lambda a, r, n: None)
    al.sample("front", 9125, 0, "ok", 0)
    a = al.channels["front"].limits[0].alarm
    rec = Records("TRK-0042", 7, Clock(), Uptime())
    d = json.loads(rec.alarm(0, a, True, _Gnss(), _Inputs(), "C"))
    assert (d["alarm"], d["channel"], d["state"]) == ("temp_high", "front", "raised")
    assert (d["value"], d["limit"], d["unit"]) == (9.13, 8.0, "C")
    assert d["gnss"]["lat"] == 31.2366833
    e = json.loads(rec.event(0, "door_open", None, _Inputs(), {"fw": "0.1.0"}))
    assert (e["event"], e["fw"], e["gnss"]) == ("door_open", "0.1.0", None)
