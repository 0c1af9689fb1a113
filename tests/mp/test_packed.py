# Tests of firmware.packed: byte layout and size, JSON rendering of every record kind, truncation, heap use
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Expected bytes and texts are worked out by hand in the comments from the
# layout comment at the top of firmware/packed.py. Unix times were checked
# with CPython's calendar.timegm. Positions come from field case A1.

import gc
import json

import micropython

from firmware import nmea
from firmware.alarms import ACKNOWLEDGED, ACTIVE, CLEARED, NORMAL, PENDING, RAISED, Alarm
from firmware.packed import ALARM, EVENT, TELEMETRY, PackError, Packer, clock_offset_ms, header, render

_DEV = "TRK-0042"
_LINK = '{"queued":3,"dropped":0,"sent":40,"reconnects":1}'
_PROBE_NAMES = ["front", "rear", "return-air", "floor"]


class FakeNames:
    """In-RAM stand-in for store.Names: index() adds unknown values, get() returns None past the end."""

    def __init__(self, items=None):
        self.items = items if items is not None else []

    def index(self, value):
        if value in self.items:
            return self.items.index(value)
        self.items.append(value)
        return len(self.items) - 1

    def get(self, i):
        if 0 <= i < len(self.items):
            return self.items[i]
        return None


class FakeUptime:
    def __init__(self, ms):
        self.value_ms = ms

    def ms(self, now_ms=None):
        return self.value_ms


class FakeClock:
    """Unix ms of the record's moment, or None while the clock is not set."""

    def __init__(self, unix_ms=None):
        self.unix_ms = unix_ms

    def unix_ms_at(self, ticks):
        return self.unix_ms


class FakeProbes:
    def __init__(self, names, value_mc, state, extra=()):
        self.names = names
        self.value_mc = value_mc
        self.state = state
        self.extra = list(extra)


class FakeHumidity:
    def __init__(self, temp_mc, rh_mrh, state="ok"):
        self.temp_mc = temp_mc
        self.rh_mrh = rh_mrh
        self.state = state


class FakeGNSS:
    def __init__(self, fix, has_fix=True, age_ms=420):
        self.fix = fix
        self._has_fix = has_fix
        self._age_ms = age_ms

    def has_fix(self):
        return self._has_fix

    def fix_age_ms(self):
        return self._age_ms


class FakeInputs:
    def __init__(self, *active):
        self.names = active

    def active(self, name):
        return name in self.names


class FakeAlarms:
    """The engine state the packer reads, set by hand."""

    def __init__(self, alarms, jt808=(0, 0), trip=0, early=False, moving=False, excursion=False, seat=False):
        self.all = alarms
        self.jt808_lo, self.jt808_hi = jt808
        self.trip = trip
        self.early = early
        self.moving = moving
        self._excursion = excursion
        self.seat_occupied = seat

    def update_jt808(self):
        pass

    def excursion(self):
        return self._excursion


def _fix(**values):
    f = nmea.Fix()
    for name in values:
        setattr(f, name, values[name])
    return f


def _south_west_fix():
    # 17 deg 08.5' S, 179 deg 59.4' W from field case A1, 2026-03-16 10:15:04 UTC.
    return _fix(valid=True, quality=2, lat_deg=17, lat_min_e7=85000000, lat_neg=True, lon_deg=179,
                lon_min_e7=594000000, lon_neg=True, alt_mm=-12049, speed_kn_e3=8000, course_e2=27000,
                sats=9, hdop_e2=110, year=2026, month=3, day=16, hour=10, minute=15, second=4)


def _alarm_set():
    # Telemetry lists active alarm i of this list as index i of the schema's keys.
    alarms = [Alarm("temp_high", "rear"), Alarm("temp_low", "rear"),
              Alarm("sensor_fault", "return-air"), Alarm("sos", "")]
    alarms[0].state = ACTIVE
    alarms[1].state = NORMAL
    alarms[2].state = PENDING  # pending is not active, so it is not listed
    alarms[3].state = ACTIVE
    return FakeAlarms(alarms, jt808=(1, 0))  # SOS is JT/T 808 bit 0


def _packer(names=None, boot_id=7, uptime_ms=412345, unix_ms=None):
    names = names if names is not None else FakeNames()
    p = Packer(names, boot_id, FakeUptime(uptime_ms), FakeClock(unix_ms))
    p.set_schema(_PROBE_NAMES, [a.key for a in _alarm_set().all])
    return p


def _sensors():
    probes = FakeProbes(_PROBE_NAMES, [4125, -18250, None, -50], ["ok", "ok", "absent", "ok"])
    return probes, FakeHumidity(5150, 79849)


def _first_record(p):
    probes, humidity = _sensors()
    gnss = FakeGNSS(_south_west_fix())
    return bytes(p.telemetry(0, probes, humidity, gnss, FakeInputs("door", "ignition"), _alarm_set()))


# Record 1 of boot 7 at uptime 412.345 s, clock not set, byte by byte:
#   75           kind 1 | door 0x04 | ignition 0x10 | GNSS 0x20 | DHT 0x40
#   07 01 9b20   boot 7, seq 1, uptime 4123 ds (4123 = 32 * 128 + 27: 0x9b 0x20)
#   01           schema: Names index 0 + 1
#   9d01         front 4.125 C -> 413 (half away from zero)
#   dff8         rear -18.25 C -> -1825 = 0xf8df
#   0180         return-air absent -> -32768 + 1 = 0x8001
#   fbff         floor -0.05 C -> -5 = 0xfffb
#   34e031       DHT 5.15 C -> 52 = 0x034, 79.849 %RH -> 798 = 0x31e: 0x034 | 0x31e << 12, 3 bytes
#   0f ff        GNSS fix | position | south | west; every field present
#   11 db9d15    lat 17 deg, 8.5' = 1416667e-7 deg = 0x159ddb
#   b3 e00f97    lon 179 deg, 59.4' = 9900000e-7 deg = 0x970fe0
#   02 ef01      q 2, alt -12.049 m -> -120 dm, zigzag 239
#   9401 8c15    8.0 kn = 14.816 km/h -> 148, course 270.0 -> 2700
#   09 6e 04     sats 9, hdop 1.10 -> 110, age 420 ms -> 4
#   d1e0be9b0d   utc absolute: 1773656104 << 1 | 1 = 3547312209 as varint
#   c0           status: JT/T 808 word 0x40 and alarm list 0x80 follow, no trip, not moving
#   01 00        JT/T 808 bits 0-15 = 1 (SOS), bits 16-31 = 0
#   02 00 03     2 active alarms: temp_high:rear (key 0) and sos (key 3)
_FIRST_RECORD = bytes.fromhex(
    "7507019b20019d01dff80180fbff34e0310fff11db9d15b3e00f9702ef0194018c15096e04d1e0be9b0d"
    "c00100020003"
)

_FIRST_JSON = (
    '{"v":1,"kind":"telemetry","dev":"TRK-0042","boot":7,"seq":1,"t":null,"t_unknown":true,"up":412.3,'
    '"probes":{"front":{"c":4.13},"rear":{"c":-18.25},"return-air":{"c":null,"fault":"absent"},"floor":{"c":-0.05}},'
    '"dht":{"c":5.2,"rh":79.8},'
    '"gnss":{"fix":true,"q":2,"lat":-17.1416667,"lon":-179.9900000,"alt":-12.0,"kmh":14.8,"course":270.0,'
    '"sats":9,"hdop":1.10,"age_s":0.4,"utc":"2026-03-16T10:15:04Z"},'
    '"trip":null,"moving":false,"excursion":false,"jt808":1,'
    '"in":{"door":1,"sos":0,"ign":1,"seat":0},"alarms":["temp_high:rear","sos"],'
    '"link":{"queued":3,"dropped":0,"sent":40,"reconnects":1}}'
)


def test_telemetry_bytes_by_hand():
    p = _packer()
    packed = _first_record(p)
    assert packed == _FIRST_RECORD, packed.hex()
    assert len(packed) == 48


def test_telemetry_renders_hand_made_json():
    names = FakeNames()
    packed = _first_record(_packer(names))
    text = render(packed, _DEV, names, None, _LINK)
    assert text == _FIRST_JSON, text


def test_telemetry_fields_after_json_loads():
    names = FakeNames()
    d = json.loads(render(_first_record(_packer(names)), _DEV, names, None, _LINK))
    assert d["v"] == 1
    assert d["kind"] == "telemetry"
    assert d["dev"] == "TRK-0042"
    assert d["boot"] == 7
    assert d["seq"] == 1
    assert d["t"] is None
    assert d["t_unknown"] is True
    assert d["up"] == 412.3

    assert d["probes"]["front"] == {"c": 4.13}
    assert d["probes"]["rear"] == {"c": -18.25}
    assert d["probes"]["return-air"] == {"c": None, "fault": "absent"}
    assert d["probes"]["floor"] == {"c": -0.05}
    assert d["dht"] == {"c": 5.2, "rh": 79.8}

    g = d["gnss"]
    assert g["fix"] is True
    assert g["q"] == 2
    assert g["lat"] == -17.1416667
    assert g["lon"] == -179.99
    assert g["alt"] == -12.0
    assert g["kmh"] == 14.8
    assert g["course"] == 270.0
    assert g["sats"] == 9
    assert g["hdop"] == 1.1
    assert g["age_s"] == 0.4
    assert g["utc"] == "2026-03-16T10:15:04Z"

    assert d["in"] == {"door": 1, "sos": 0, "ign": 1, "seat": 0}
    assert d["alarms"] == ["temp_high:rear", "sos"]
    assert d["jt808"] == 1
    assert d["trip"] is None
    assert d["link"] == {"queued": 3, "dropped": 0, "sent": 40, "reconnects": 1}
    assert "unknown_probes" not in d


def test_time_from_clock_offset():
    names = FakeNames()
    packed = _first_record(_packer(names))
    # The record was made 0.4 s after the fix of 10:15:04 (1773656104 s):
    # Unix ms 1773656104400 at uptime 412300 ms, so the offset is 1773655692100.
    text = render(packed, _DEV, names, 1773655692100, _LINK)
    assert '"t":1773656104.4,"up":412.3,' in text, text
    d = json.loads(text)
    assert d["t"] == 1773656104.4
    assert "t_unknown" not in d
    # An absolute utc does not depend on the offset.
    assert d["gnss"]["utc"] == "2026-03-16T10:15:04Z"


def test_time_rounds_to_tenth():
    names = FakeNames()
    packed = _first_record(_packer(names))
    # 1773655692149 + 412300 = 1773656104449 ms rounds to .4, and one ms more rounds to .5.
    assert '"t":1773656104.4,' in render(packed, _DEV, names, 1773655692149, _LINK)
    assert '"t":1773656104.5,' in render(packed, _DEV, names, 1773655692150, _LINK)


def _week_old_record(names):
    # Seq 20160 (a week at one record per 30 s) at uptime 604800 s. The clock
    # is set: the record is made at Unix ms 1774260904400 (2026-03-23
    # 10:15:04.4), and the fix is of 10:15:02, 2 s before its reference second.
    p = _packer(names, uptime_ms=604800000, unix_ms=1774260904400)
    p.seq = 20159
    # 44.0688265 N, 121.3144758 W: 4.12959' and 18.868548' as minutes x 1e7.
    fix = _fix(valid=True, quality=1, lat_deg=44, lat_min_e7=41295900, lat_neg=False, lon_deg=121,
               lon_min_e7=188685480, lon_neg=True, alt_mm=1122549, speed_kn_e3=35000, course_e2=9250,
               sats=10, hdop_e2=80, year=2026, month=3, day=23, hour=10, minute=15, second=2)
    probes, humidity = _sensors()
    return bytes(p.telemetry(0, probes, humidity, FakeGNSS(fix, age_ms=2400), FakeInputs(), FakeAlarms([])))


def test_week_old_record_size():
    # 1 kind, 1 boot, 3 seq (20160 > 16383), 4 uptime (6048000 ds > 2**21),
    # 1 schema, 8 probes, 3 DHT, 2 GNSS flags, 8 position, 1 q, 3 alt
    # (11225 dm, zigzag 22450 > 16383), 2 km/h (648), 2 course (925),
    # 1 sats, 1 hdop, 1 age, 1 utc (relative, zigzag -2 = 3, shifted: 6),
    # 1 status (no trip, no alarm) = 44 bytes. With the 7-byte frame that is 51 bytes, 321 per
    # 16 KiB segment: 63 segments (one is always being dropped or filled) hold 20,223.
    packed = _week_old_record(FakeNames())
    assert len(packed) == 44, packed.hex()
    assert packed[2:5] == bytes((0xC0, 0x9D, 0x01)), packed.hex()  # 20160 = 157 * 128 + 64
    assert packed[5:9] == bytes((0x80, 0x92, 0xF1, 0x02)), packed.hex()  # 6048000 = (2 * 128 + 113) * 128 * 128 + 18 * 128
    assert packed[-2] == 0x06, packed.hex()
    assert header(packed) == (TELEMETRY, 7, 20160, 6048000)


def test_relative_utc_renders_from_offset():
    names = FakeNames()
    packed = _week_old_record(names)
    # The store keeps the same offset the packer used: 1774260904400 - 604800000.
    d = json.loads(render(packed, _DEV, names, 1773656104400, None))
    assert d["t"] == 1774260904.4
    assert d["up"] == 604800.0
    g = d["gnss"]
    assert g["utc"] == "2026-03-23T10:15:02Z"
    assert g["lat"] == 44.0688265
    assert g["lon"] == -121.3144758
    assert g["alt"] == 1122.5
    assert g["kmh"] == 64.8  # 35 kn x 1.852 = 64.82
    assert g["course"] == 92.5
    assert g["hdop"] == 0.8
    assert g["age_s"] == 2.4
    assert d["link"] == {}


def test_relative_utc_without_offset_is_null():
    # Should the boot's offset be lost, the relative utc cannot be resolved.
    names = FakeNames()
    d = json.loads(render(_week_old_record(names), _DEV, names, None, None))
    assert d["t"] is None
    assert d["t_unknown"] is True
    assert d["gnss"]["utc"] is None
    assert d["gnss"]["lat"] == 44.0688265


def test_number_formatting():
    # Probe m°C to 0.01 and DHT to 0.1, rounded half away from zero.
    cases = (
        (4125, "4.13"),
        (-12937, "-12.94"),
        (-4, "0.00"),
        (-5, "-0.01"),
        (-50, "-0.05"),
        (-999, "-1.00"),
        (0, "0.00"),
        (125000, "125.00"),
        (-55000, "-55.00"),
    )
    names = FakeNames()
    p = Packer(names, 1, FakeUptime(50), FakeClock())
    probe_names = ["p%d" % i for i in range(len(cases))]
    p.set_schema(probe_names, [])
    probes = FakeProbes(probe_names, [c[0] for c in cases], ["ok"] * len(cases))
    text = render(p.telemetry(0, probes, FakeHumidity(85000, 43749), None, None, FakeAlarms([])), _DEV, names, None)
    for i in range(len(cases)):
        assert '"p%d":{"c":%s}' % (i, cases[i][1]) in text, (cases[i], text)
    assert '"dht":{"c":85.0,"rh":43.7}' in text, text
    assert '"up":0.1,' in text, text  # 50 ms rounds up to 0.1 s
    d = json.loads(text)
    assert d["probes"]["p4"]["c"] == -0.05
    assert d["gnss"] is None
    assert d["in"] == {"door": 0, "sos": 0, "ign": 0, "seat": 0}
    assert d["alarms"] == []


def test_negative_dht_and_zero_rh():
    names = FakeNames()
    p = Packer(names, 1, FakeUptime(0), FakeClock())
    d = json.loads(render(p.telemetry(0, None, FakeHumidity(-39950, 0), None, None, FakeAlarms([])), _DEV, names, None))
    assert d["dht"] == {"c": -40.0, "rh": 0.0}
    assert "probes" not in d


def test_faults_render_as_null():
    names = FakeNames()
    p = Packer(names, 1, FakeUptime(0), FakeClock())
    states = ["pending", "absent", "crc", "power_on", "zero", "error", "bus_glitch"]
    probe_names = ["f%d" % i for i in range(len(states))]
    p.set_schema(probe_names, [])
    probes = FakeProbes(probe_names, [None] * len(states), states)
    packed = p.telemetry(0, probes, FakeHumidity(None, None, "timeout"), None, None, FakeAlarms([]))
    d = json.loads(render(packed, _DEV, names, None))
    for i in range(6):
        assert d["probes"]["f%d" % i] == {"c": None, "fault": states[i]}, i
    # A state the encoding has no code for is reported as "error".
    assert d["probes"]["f6"] == {"c": None, "fault": "error"}
    assert d["dht"] == {"c": None, "rh": None, "fault": "timeout"}
    for fault in ("checksum", "range"):
        packed = p.telemetry(0, None, FakeHumidity(None, None, fault), None, None, FakeAlarms([]))
        assert json.loads(render(packed, _DEV, names, None))["dht"] == {"c": None, "rh": None, "fault": fault}


def test_unknown_probes_keep_rom_format():
    # probes.rom_hex and config.json write ROM IDs in capitals, as the
    # telemetry did before the packed form.
    names = FakeNames()
    p = Packer(names, 1, FakeUptime(0), FakeClock())
    p.set_schema(["front"], [])
    probes = FakeProbes(["front"], [4125], ["ok"], ["28C0FFEE0A00007E", "28A1B2C304000096"])
    packed = p.telemetry(0, probes, None, None, None, FakeAlarms([]))
    # 4 header bytes (uptime 0 is one byte), schema, probe, count 2, 16 ROM bytes, status.
    assert len(packed) == 4 + 1 + 2 + 1 + 16 + 1
    d = json.loads(render(packed, _DEV, names, None))
    assert d["unknown_probes"] == ["28C0FFEE0A00007E", "28A1B2C304000096"], d["unknown_probes"]


def test_no_gnss_with_active_alarms():
    # GNSS disabled (gnss None) while alarms are active: the mask must still render.
    names = FakeNames()
    p = _packer(names)
    probes, humidity = _sensors()
    packed = p.telemetry(0, probes, humidity, None, FakeInputs(), _alarm_set())
    d = json.loads(render(packed, _DEV, names, None, _LINK))
    assert d["gnss"] is None
    assert d["alarms"] == ["temp_high:rear", "sos"]


def test_no_gnss_no_alarms():
    names = FakeNames()
    p = _packer(names)
    probes, humidity = _sensors()
    alarms = _alarm_set()
    for a in alarms.all:
        a.state = NORMAL
    alarms.jt808_lo = 0
    packed = p.telemetry(0, probes, humidity, None, FakeInputs(), alarms)
    # 5 header bytes, schema, 8 probe bytes, 3 DHT bytes, status byte.
    assert len(packed) == 18
    assert packed[-1:] == b"\x00"
    d = json.loads(render(packed, _DEV, names, None, _LINK))
    assert d["gnss"] is None
    assert d["alarms"] == []


def test_gnss_before_first_fix():
    # No position, no values: every field null, fix false.
    names = FakeNames()
    p = _packer(names)
    probes, humidity = _sensors()
    packed = p.telemetry(0, probes, humidity, FakeGNSS(nmea.Fix(), False, None), FakeInputs(), FakeAlarms([]))
    d = json.loads(render(packed, _DEV, names, None, _LINK))
    assert d["gnss"] == {"fix": False, "q": None, "lat": None, "lon": None, "alt": None, "kmh": None,
                         "course": None, "sats": None, "hdop": None, "age_s": None, "utc": None}


# Field case A1: the hemisphere sign applies to the whole value, below 1
# degree and near 180 degrees.
_A1 = (
    ("$GNRMC,101500.00,A,4330.0000,N,00012.0000,E,35.0,92.5,160326,,,A,V*30", "43.5000000", "0.2000000"),
    ("$GNRMC,101501.00,A,4330.0000,N,00012.0000,W,35.0,272.5,160326,,,A,V*1F", "43.5000000", "-0.2000000"),
    ("$GNGGA,101502.00,0012.0000,S,03645.0000,E,1,09,1.0,1850.0,M,-12.0,M,,*75", "-0.2000000", "36.7500000"),
    ("$GNRMC,101503.00,A,1708.5000,S,17959.4000,W,8.0,270.0,160326,,,A,V*32", "-17.1416667", "-179.9900000"),
    ("$GNRMC,101504.00,A,1708.5000,S,17959.4000,E,8.0,90.0,160326,,,A,V*1B", "-17.1416667", "179.9900000"),
)
_A1_DEGREES = ((43.5, 0.2), (43.5, -0.2), (-0.2, 36.75), (-17.141667, -179.99), (-17.141667, 179.99))


def test_a1_coordinates_keep_hemisphere():
    names = FakeNames()
    p = Packer(names, 1, FakeUptime(0), FakeClock())
    for i in range(len(_A1)):
        line, lat, lon = _A1[i]
        parser = nmea.Parser()
        assert parser.parse(line.encode(), len(line)) != nmea.REJECTED, line
        text = render(p.event(0, "door_open", FakeGNSS(parser), None), _DEV, names, None)
        assert '"lat":%s,"lon":%s,' % (lat, lon) in text, (line, text)
        g = json.loads(text)["gnss"]
        assert abs(g["lat"] - _A1_DEGREES[i][0]) < 5e-7, (line, g["lat"])
        assert abs(g["lon"] - _A1_DEGREES[i][1]) < 5e-7, (line, g["lon"])
        assert -180 <= g["lon"] <= 180, line


def test_minutes_rounding_carries_into_degree():
    # 59.99999999' rounds to a whole degree: 12 deg 59.99999999' E = 13.0000000.
    names = FakeNames()
    p = Packer(names, 1, FakeUptime(0), FakeClock())
    fix = _fix(valid=True, lat_deg=0, lat_min_e7=1, lat_neg=True, lon_deg=12, lon_min_e7=599999999, lon_neg=False)
    text = render(p.event(0, "door_open", FakeGNSS(fix), None), _DEV, names, None)
    # 1e-7 minute is below half of 1e-7 degree, so the latitude is 0 and carries no sign.
    assert '"lat":0.0000000,"lon":13.0000000,' in text, text


def test_alarm_bytes_and_json():
    names = FakeNames()
    p = _packer(names, uptime_ms=412345)
    a = Alarm("temp_high", "rear")
    a.value_m = 9125
    a.limit_m = 8000
    packed = bytes(p.alarm(0, a, RAISED, None, None))
    # 42        kind 2 | value and limit 0x40, no GNSS block
    # 07 01 9b20  boot 7, seq 1, uptime 4123 ds
    # 00        temp_high (index 0)
    # 08        raised (0) | critical (2) << 2
    # 02        channel "rear": Names index 1 (after the schema) + 1
    # a20e      value 9.125 C -> 913, zigzag 1826 = 14 * 128 + 34
    # c00c      limit 8.000 C -> 800, zigzag 1600 = 12 * 128 + 64
    # 00        status: no engine state given
    assert packed == bytes.fromhex("4207019b20000802a20ec00c00"), packed.hex()
    text = render(packed, _DEV, names, None)
    assert '"alarm":"temp_high","channel":"rear","state":"raised","severity":"critical",' in text, text
    assert '"value":9.13,"limit":8.00,"unit":"C",' in text, text
    d = json.loads(text)
    assert d["kind"] == "alarm"
    assert d["seq"] == 1
    assert d["value"] == 9.13
    assert d["limit"] == 8.0
    assert d["gnss"] is None
    assert d["in"] == {"door": 0, "sos": 0, "ign": 0, "seat": 0}
    assert (d["trip"], d["moving"], d["excursion"], d["jt808"]) == (None, False, False, 0)
    assert "link" not in d
    assert "detail" not in d
    assert d["t_unknown"] is True


def test_alarm_kinds_json():
    names = FakeNames()
    p = _packer(names)
    gnss = FakeGNSS(_south_west_fix())

    low = Alarm("temp_low", "rear")
    low.value_m = -25055
    low.limit_m = -25000
    d = json.loads(render(p.alarm(0, low, RAISED, gnss, FakeInputs("door")), _DEV, names, None))
    assert (d["alarm"], d["channel"], d["state"], d["severity"]) == ("temp_low", "rear", "raised", "critical")
    assert d["value"] == -25.06
    assert d["limit"] == -25.0
    assert d["unit"] == "C"
    assert d["gnss"]["lat"] == -17.1416667
    assert d["gnss"]["utc"] == "2026-03-16T10:15:04Z"
    assert d["in"] == {"door": 1, "sos": 0, "ign": 0, "seat": 0}

    rh = Alarm("rh_high", "rh")
    rh.value_m = 85300
    rh.limit_m = 85000
    text = render(p.alarm(0, rh, CLEARED, None, None), _DEV, names, None)
    assert '"value":85.30,"limit":85.00,"unit":"%RH"' in text, text
    d = json.loads(text)
    assert (d["alarm"], d["channel"], d["state"]) == ("rh_high", "rh", "cleared")

    fault = Alarm("sensor_fault", "return-air")
    fault.detail = "crc"
    d = json.loads(render(p.alarm(0, fault, RAISED, None, None), _DEV, names, None))
    assert (d["alarm"], d["channel"], d["severity"], d["detail"]) == ("sensor_fault", "return-air", "warning", "crc")
    assert "value" not in d

    sos = Alarm("sos", "")
    d = json.loads(render(p.alarm(0, sos, ACKNOWLEDGED, None, FakeInputs("sos", "ignition")), _DEV, names, None))
    assert (d["alarm"], d["channel"], d["state"]) == ("sos", None, "acknowledged")
    assert d["in"] == {"door": 0, "sos": 1, "ign": 1, "seat": 0}

    door = Alarm("door_open", "")
    door.detail = "moving"
    d = json.loads(render(p.alarm(0, door, RAISED, None, None), _DEV, names, None))
    assert (d["alarm"], d["channel"], d["severity"], d["detail"]) == ("door_open", None, "critical", "moving")
    # Seq is shared by every kind of record of the boot.
    assert d["seq"] == 5


def test_alarm_units_eta_zone_and_status():
    names = FakeNames()
    p = _packer(names)
    trend = Alarm("temp_trend", "rear")
    trend.value_m = 5500
    trend.limit_m = 8000
    trend.eta_s = 250
    p.set_trip("LOAD-77")
    state = FakeAlarms([], jt808=(0x0003, 0x8000), trip=1, early=True, moving=True, excursion=True, seat=True)
    d = json.loads(render(p.alarm(0, trend, RAISED, None, None, state), _DEV, names, None))
    assert (d["alarm"], d["severity"], d["value"], d["limit"], d["unit"], d["eta_s"]) == (
        "temp_trend", "warning", 5.5, 8.0, "C", 250)
    # 0x80000003: SOS, overspeed and illegal door opening.
    assert d["jt808"] == 2147483651
    assert d["trip"] == {"id": "LOAD-77", "type": "cold_chain", "early": True}
    assert (d["moving"], d["excursion"], d["in"]["seat"]) == (True, True, 1)

    # Seconds, km/h and metres with their own decimals; 1234.5 s rounds half away from zero.
    for kind, value_m, limit_m, unit, text in (
        ("temp_cumulative", 1234500, 3600000, "s", '"value":1235,"limit":3600,"unit":"s"'),
        ("overspeed", 93450, 80000, "km/h", '"value":93.5,"limit":80.0,"unit":"km/h"'),
        ("route", 812000, 500000, "m", '"value":812,"limit":500,"unit":"m"'),
        ("stop", 900000, 900000, "s", '"value":900,"limit":900,"unit":"s"'),
    ):
        a = Alarm(kind, "")
        a.value_m = value_m
        a.limit_m = limit_m
        out = render(p.alarm(0, a, RAISED, None, None), _DEV, names, None)
        assert text in out, (kind, out)

    fence = Alarm("geofence", "")
    fence.zone = "plant-B"
    fence.detail = "inside"
    p.set_trip(None)
    d = json.loads(render(p.alarm(0, fence, CLEARED, None, None, FakeAlarms([], trip=2)), _DEV, names, None))
    assert (d["alarm"], d["state"], d["zone"], d["detail"]) == ("geofence", "cleared", "plant-B", "inside")
    assert d["trip"] == {"id": None, "type": "hazmat", "early": False}


def test_alarm_channel_missing_from_names():
    # A record whose channel name was lost still renders, with "#<index>".
    names = FakeNames()
    p = _packer(names)
    a = Alarm("temp_high", "rear")
    packed = p.alarm(0, a, RAISED, None, None)
    d = json.loads(render(packed, _DEV, FakeNames(), None))
    assert d["channel"] == "#1"


def test_boot_event_with_extras():
    names = FakeNames()
    p = Packer(names, 12, FakeUptime(1234), FakeClock())
    extra = {"fw": "0.1.0", "reset_cause": 3, "config": "last-good",
             "config_errors": ["interval_s: must be 1..86400, got 0"]}
    packed = p.event(0, "boot", None, FakeInputs("ignition"), extra)
    assert packed[0] == 0x93  # kind 3 | ignition 0x10 | extra fields 0x80
    text = render(packed, _DEV, names, None)
    assert text.startswith('{"v":1,"kind":"event","dev":"TRK-0042","boot":12,"seq":1,"t":null,"t_unknown":true,"up":1.2,'), text
    d = json.loads(text)
    assert d["event"] == "boot"
    assert d["fw"] == "0.1.0"
    assert d["reset_cause"] == 3
    assert d["config"] == "last-good"
    assert d["config_errors"] == ["interval_s: must be 1..86400, got 0"]
    assert d["gnss"] is None
    assert d["in"] == {"door": 0, "sos": 0, "ign": 1}


def test_event_without_extras():
    names = FakeNames()
    p = Packer(names, 12, FakeUptime(0), FakeClock())
    packed = bytes(p.event(0, "ignition_off", None, None))
    # 03 kind 3, 0c boot 12, 01 seq, 00 uptime, 06 event "ignition_off"
    assert packed == bytes.fromhex("030c010006"), packed.hex()
    d = json.loads(render(packed, _DEV, names, None))
    assert d["event"] == "ignition_off"
    assert d["gnss"] is None


def test_event_unknown_name():
    names = FakeNames()
    p = Packer(names, 12, FakeUptime(0), FakeClock())
    packed = bytes(p.event(0, "geofence_exit", None, None))
    # 03 0c 01 00, then 0xff and the name with its length (13)
    assert packed == bytes.fromhex("030c0100ff0d") + b"geofence_exit", packed.hex()
    assert json.loads(render(packed, _DEV, names, None))["event"] == "geofence_exit"


def test_event_extra_truncated():
    names = FakeNames()
    p = Packer(names, 12, FakeUptime(0), FakeClock())
    errors = ["x" * 700]
    packed = p.event(0, "config_rejected", None, None, {"config_errors": errors})
    d = json.loads(render(packed, _DEV, names, None))
    assert d["event"] == "config_rejected"
    assert "config_errors" not in d
    # The fields that did not fit are replaced by their length in bytes.
    assert d["truncated"] == len(json.dumps({"config_errors": errors})) - 2


def test_event_non_ascii_extra():
    names = FakeNames()
    p = Packer(names, 12, FakeUptime(0), FakeClock())
    packed = p.event(0, "config_rejected", None, None, {"driver": "Jürgen Müller"})
    assert json.loads(render(packed, "LKW-München-07", names, None))["driver"] == "Jürgen Müller"


def test_seq_shared_and_header():
    names = FakeNames()
    p = _packer(names, boot_id=300, uptime_ms=99)
    probes, humidity = _sensors()
    t = bytes(p.telemetry(0, probes, humidity, None, None, FakeAlarms([])))
    a = bytes(p.alarm(0, Alarm("sos", ""), RAISED, None, None))
    e = bytes(p.event(0, "sos_pressed", None, None))
    # Boot 300 = 2 * 128 + 44 is the varint 0xac 0x02, and uptime 99 ms rounds to 1 ds.
    assert t[1:3] == b"\xac\x02"
    assert header(t) == (TELEMETRY, 300, 1, 1)
    assert header(a) == (ALARM, 300, 2, 1)
    assert header(e) == (EVENT, 300, 3, 1)


def _expect_pack_error(data, names, words):
    try:
        render(data, _DEV, names, None)
    except PackError as e:
        assert words in str(e), (words, str(e))
        return
    raise AssertionError("no PackError for %s" % bytes(data).hex())


def test_truncated_record_names_byte_offset():
    names = FakeNames()
    p = _packer(names)
    records = [_first_record(p), bytes(p.alarm(0, Alarm("temp_low", "rear"), RAISED, FakeGNSS(_south_west_fix()), None)),
               bytes(p.event(0, "door_closed", FakeGNSS(_south_west_fix()), None))]
    for full in records:
        json.loads(render(full, _DEV, names, None))
        for n in range(len(full)):
            _expect_pack_error(full[:n], names, "record ends at byte %d" % n)


def test_truncated_text_raises():
    names = FakeNames()
    p = Packer(names, 12, FakeUptime(0), FakeClock())
    full = bytes(p.event(0, "boot", None, None, {"fw": "0.1.0"}))
    # Header 4 bytes, event index, then the text length at byte 5 and the text from byte 6.
    _expect_pack_error(full[:9], names, "passes the end")
    _expect_pack_error(full[:6], names, "text of %d bytes at byte 6 passes the end" % full[5])


def test_extra_bytes_and_unknown_kind_raise():
    names = FakeNames()
    full = _first_record(_packer(names))
    _expect_pack_error(full + b"\x00", names, "1 bytes left after the telemetry record at byte 48")
    # Kind 0 in the low bits of byte 0.
    _expect_pack_error(b"\x00\x07\x01\x05", names, "kind 0 in byte 0 (0x00) is unknown")
    _expect_pack_error(b"", names, "record ends at byte 0")
    # A telemetry record whose schema is not in the name dictionary cannot be read.
    _expect_pack_error(full, FakeNames(), "schema 0 is not in the name dictionary")


def test_header_of_truncated_record_raises():
    try:
        header(b"\x01\x07")
        raised = False
    except PackError:
        raised = True
    assert raised


def test_clock_offset_ms():
    uptime = FakeUptime(412300)
    assert clock_offset_ms(FakeClock(), uptime, 0) is None
    assert clock_offset_ms(FakeClock(1773656104400), uptime, 0) == 1773655692100


def _allocated_bytes(fn):
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        fn()
        return gc.mem_alloc() - before
    finally:
        gc.enable()


def _allocates_under_lock(fn):
    micropython.heap_lock()
    try:
        fn()
        failed = False
    except MemoryError:
        failed = True
    micropython.heap_unlock()
    return failed


class _Scene:
    """Everything one packer call needs, so that each lambda below closes over one name only."""


def test_heap_use_of_packing():
    # Report the heap the packer takes per record. An allocation does not fail
    # the test, but a wrong record packed meanwhile does.
    # A lambda that closes over more than a few names allocates its argument
    # array when called, hence the _Scene holder.
    s = _Scene()
    s.p = _packer()
    s.probes, s.humidity = _sensors()
    s.gnss = FakeGNSS(_south_west_fix())
    s.no_date = FakeGNSS(_fix(valid=True, lat_deg=1, lat_min_e7=0, lon_deg=2, lon_min_e7=0))
    s.inputs = FakeInputs("door", "ignition")
    s.alarms = _alarm_set()
    s.alarm = Alarm("temp_high", "rear")
    s.alarm.value_m = 9125
    s.alarm.limit_m = 8000

    calls = (
        ("telemetry, GNSS with utc", lambda: s.p.telemetry(0, s.probes, s.humidity, s.gnss, s.inputs, s.alarms)),
        ("telemetry, GNSS without utc", lambda: s.p.telemetry(0, s.probes, s.humidity, s.no_date, s.inputs, s.alarms)),
        ("telemetry, no GNSS", lambda: s.p.telemetry(0, s.probes, s.humidity, None, s.inputs, s.alarms)),
        ("alarm, GNSS with utc", lambda: s.p.alarm(0, s.alarm, RAISED, s.gnss, s.inputs, s.alarms)),
        ("alarm, no GNSS", lambda: s.p.alarm(0, s.alarm, RAISED, None, s.inputs, s.alarms)),
        ("nothing (check of the method)", lambda: None),
    )
    for label, fn in calls:
        fn()  # warm-up: names, first calls
        size = _allocated_bytes(fn)
        failed = _allocates_under_lock(fn)
        print("  heap: packed %s: %d bytes allocated%s" % (label, size, ", MemoryError under heap_lock" if failed else ""))

    # The packer still produces the right bytes after all that.
    s.p.seq = 0
    assert _first_record(s.p) == _FIRST_RECORD
