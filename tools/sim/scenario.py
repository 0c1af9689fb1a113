# Scenario files of the virtual terminal: loading, validation and piecewise-linear curves
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# A scenario is a JSON object that describes the simulated hardware over time;
# docs/scenario.md describes every key. validate() checks a whole scenario and
# returns a normalised copy (ROM IDs as bytes, pairs as tuples, defaults filled
# in), or raises ScenarioError listing every problem with its key.
#
# This module runs under MicroPython and CPython alike (json only), so the
# host tool can check a scenario before it starts the interpreter.

import json

INPUT_NAMES = ("door", "sos", "ignition", "seat", "safe_mode")
PROBE_FAULTS = ("absent", "crc", "power_on", "zero")
DHT_FAULTS = ("timeout", "checksum")
DHT_MODELS = ("DHT22", "DHT11")
DHT_ENCODINGS = ("sign_magnitude", "twos_complement")
GNSS_GAPS = ("silent", "nofix")
TALKERS = ("GN", "GP")

# 24:0A:C4 is an Espressif MAC prefix; the rest is made up.
DEFAULT_UNIQUE_ID = b"\x24\x0a\xc4\x5e\x17\x01"

_TOP_KEYS = (
    "name",
    "description",
    "duration_s",
    "config",
    "probes",
    "dht",
    "inputs",
    "nmea",
    "unique_id",
)
_PROBE_KEYS = ("rom", "temp", "faults")
_DHT_KEYS = ("model", "temp", "rh", "faults", "encoding")
# nmea is either a capture replay (file) or a receiver synthesised along a route.
_NMEA_FILE_KEYS = ("file", "loop", "from_s")
_NMEA_ROUTE_KEYS = ("route", "start", "gaps", "hdop", "sats", "alt_m", "talker")
_NMEA_KEYS = _NMEA_FILE_KEYS + _NMEA_ROUTE_KEYS + ("baud", "date")
_FAULT_KEYS = ("from", "to", "kind")

_MAX_BOUNCE_MS = 50
# A receiver silent for a day is more than any scenario needs.
_MAX_NMEA_FROM_S = 86400
# Route receiver defaults: a good open-sky fix.
_ROUTE_START = "08:00:00"
_ROUTE_HDOP = 0.9
_ROUTE_SATS = 10
_ROUTE_ALT_M = 100.0
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class ScenarioError(ValueError):
    """An invalid scenario; .errors lists (key, reason) pairs and the message has one per line."""

    def __init__(self, errors):
        super().__init__("\n".join("%s: %s" % e for e in errors))
        self.errors = errors


def crc8(data, n=None):
    """Return the Dallas/Maxim CRC-8 (polynomial x^8 + x^5 + x^4 + 1) of data[0:n]."""
    crc = 0
    for i in range(len(data) if n is None else n):
        b = data[i]
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def parse_rom(text):
    """Return the 8 bytes of a ROM ID written as 16 hex digits, colons allowed; raise ValueError."""
    digits = text.replace(":", "")
    if len(digits) != 16:
        raise ValueError("must have 16 hex digits")
    try:
        return bytes(int(digits[i : i + 2], 16) for i in range(0, 16, 2))
    except ValueError:
        raise ValueError("is not hexadecimal")


def rom_text(rom):
    """Return a ROM ID as 16 upper-case hex digits."""
    return "".join("%02X" % b for b in rom)


def curve_value(points, t):
    """Return the value of a piecewise-linear curve at time t.

    points is a list of (time, value) pairs with non-decreasing times. Before
    the first point and after the last one the curve is constant. Two points
    with the same time make a step; at that time the later value applies.
    """
    if t < points[0][0]:
        return points[0][1]
    for i in range(len(points) - 1, -1, -1):
        t0, v0 = points[i]
        if t >= t0:
            if i + 1 == len(points):
                return v0
            t1, v1 = points[i + 1]
            # t0 < t1 here, because a step at t0 == t1 is resolved by the
            # later point, which this backwards search finds first.
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return points[0][1]


def read(path):
    """Return the JSON object of a scenario file, not yet validated; raise ScenarioError."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ScenarioError([(path, "cannot read the file (%s)" % e)])
    try:
        return json.loads(text)
    except ValueError as e:
        raise ScenarioError([(path, "invalid JSON (%s)" % e)])


def load(path):
    """Read and validate a scenario file; return the normalised scenario."""
    return validate(read(path))


def validate(data):
    """Check a scenario given as a dict; return a normalised copy or raise ScenarioError."""
    errors = []
    if not isinstance(data, dict):
        raise ScenarioError([("scenario", "must be a JSON object, got %r" % (data,))])
    _unknown_keys(data, _TOP_KEYS, "", errors)

    out = {
        "name": _text(data, "name", "unnamed", errors),
        "description": _text(data, "description", "", errors),
        "duration_s": 0,
        "config": {},
        "probes": [],
        "dht": None,
        "inputs": _inputs(data.get("inputs", {}), errors),
        "nmea": None,
        "unique_id": DEFAULT_UNIQUE_ID,
    }

    duration = data.get("duration_s", 0)
    if not _is_num(duration) or duration < 0:
        errors.append(("duration_s", "must be 0 (run forever) or more seconds, got %r" % (duration,)))
    else:
        out["duration_s"] = duration

    config = data.get("config", {})
    if not isinstance(config, dict):
        errors.append(("config", "must be an object (a config.json patch), got %r" % (config,)))
    else:
        out["config"] = config

    out["probes"] = _probes(data.get("probes", []), errors)
    if data.get("dht") is not None:
        out["dht"] = _dht(data["dht"], errors)
    if data.get("nmea") is not None:
        out["nmea"] = _nmea(data["nmea"], errors)
    if "unique_id" in data:
        out["unique_id"] = _unique_id(data["unique_id"], errors)

    if errors:
        raise ScenarioError(errors)
    return out


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _unknown_keys(d, allowed, prefix, errors):
    for k in d:
        if k not in allowed:
            errors.append((prefix + k, "unknown key (expected one of %s)" % ", ".join(allowed)))


def _text(data, key, default, errors):
    v = data.get(key, default)
    if not isinstance(v, str):
        errors.append((key, "must be a string, got %r" % (v,)))
        return default
    return v


def _curve(v, key, low, high, errors):
    # A curve is a list of [seconds, value] pairs with non-decreasing times.
    if not isinstance(v, list) or not v:
        errors.append((key, "must be a non-empty list of [seconds, value] pairs, got %r" % (v,)))
        return None
    points = []
    for i, p in enumerate(v):
        pk = "%s[%d]" % (key, i)
        if not isinstance(p, list) or len(p) != 2 or not _is_num(p[0]) or not _is_num(p[1]):
            errors.append((pk, "must be a [seconds, value] pair of numbers, got %r" % (p,)))
            return None
        t, value = p
        if t < 0:
            errors.append((pk, "time must be 0 or more seconds, got %r" % (t,)))
            return None
        if points and t < points[-1][0]:
            errors.append((pk, "time %r is before the previous point's %r" % (t, points[-1][0])))
            return None
        if not low <= value <= high:
            errors.append((pk, "value must be %s..%s, got %r" % (low, high, value)))
            return None
        points.append((t, value))
    return points


def _faults(v, key, kinds, errors):
    # Fault windows: {"from": s, "to": s, "kind": k}; "to" may be left out (the fault never ends).
    if not isinstance(v, list):
        errors.append((key, "must be a list of {from, to, kind} objects, got %r" % (v,)))
        return []
    faults = []
    for i, f in enumerate(v):
        fk = "%s[%d]" % (key, i)
        if not isinstance(f, dict):
            errors.append((fk, "must be an object with from, to and kind, got %r" % (f,)))
            continue
        _unknown_keys(f, _FAULT_KEYS, fk + ".", errors)
        start = f.get("from")
        end = f.get("to")
        kind = f.get("kind")
        if not _is_num(start) or start < 0:
            errors.append((fk + ".from", "must be 0 or more seconds, got %r" % (start,)))
            continue
        if end is not None and (not _is_num(end) or end <= start):
            errors.append((fk + ".to", "must be a time after from (%r) or left out, got %r" % (start, end)))
            continue
        if kind not in kinds:
            errors.append((fk + ".kind", "must be one of %s, got %r" % ("/".join(kinds), kind)))
            continue
        faults.append((start, end, kind))
    return faults


def _probes(v, errors):
    if not isinstance(v, list):
        errors.append(("probes", "must be a list of probe objects, got %r" % (v,)))
        return []
    probes = []
    roms = []
    for i, p in enumerate(v):
        pk = "probes[%d]" % i
        if not isinstance(p, dict):
            errors.append((pk, "must be an object with rom and temp, got %r" % (p,)))
            continue
        _unknown_keys(p, _PROBE_KEYS, pk + ".", errors)
        rom = _rom(p.get("rom"), pk + ".rom", errors)
        if rom is not None:
            if rom in roms:
                errors.append((pk + ".rom", "ROM ID %s listed twice" % rom_text(rom)))
                rom = None
            else:
                roms.append(rom)
        # The DS18B20 measures -55..125 degC.
        temp = _curve(p.get("temp"), pk + ".temp", -55, 125, errors)
        faults = _faults(p.get("faults", []), pk + ".faults", PROBE_FAULTS, errors)
        if rom is not None and temp is not None:
            probes.append({"rom": rom, "temp": temp, "faults": faults})
    return probes


def _rom(v, key, errors):
    if not isinstance(v, str):
        errors.append((key, "must be a string of 16 hex digits, got %r" % (v,)))
        return None
    try:
        rom = parse_rom(v)
    except ValueError as e:
        errors.append((key, "%s, got %r" % (e, v)))
        return None
    if rom[0] != 0x28:
        errors.append((key, "family code must be 28 (DS18B20), got %02X in %r" % (rom[0], v)))
        return None
    crc = crc8(rom, 7)
    if crc != rom[7]:
        errors.append((key, "CRC byte is %02X but bytes 0-6 give %02X, got %r" % (rom[7], crc, v)))
        return None
    return rom


def _dht(v, errors):
    if not isinstance(v, dict):
        errors.append(("dht", "must be an object or null, got %r" % (v,)))
        return None
    _unknown_keys(v, _DHT_KEYS, "dht.", errors)
    model = v.get("model", "DHT22")
    if model not in DHT_MODELS:
        errors.append(("dht.model", "must be one of %s, got %r" % ("/".join(DHT_MODELS), model)))
    encoding = v.get("encoding", "sign_magnitude")
    if encoding not in DHT_ENCODINGS:
        errors.append(("dht.encoding", "must be one of %s, got %r" % ("/".join(DHT_ENCODINGS), encoding)))
    # The limits are what the DHT22 can report; a DHT11 is clamped to 0..50 degC when encoding.
    temp = _curve(v.get("temp", [[0, 20.0]]), "dht.temp", -40, 80, errors)
    rh = _curve(v.get("rh", [[0, 50.0]]), "dht.rh", 0, 100, errors)
    faults = _faults(v.get("faults", []), "dht.faults", DHT_FAULTS, errors)
    return {"model": model, "temp": temp, "rh": rh, "faults": faults, "encoding": encoding}


def _inputs(v, errors):
    out = {"bounce_ms": 0}
    for name in INPUT_NAMES:
        out[name] = []
    if not isinstance(v, dict):
        errors.append(("inputs", "must be an object, got %r" % (v,)))
        return out
    _unknown_keys(v, INPUT_NAMES + ("bounce_ms",), "inputs.", errors)
    bounce = v.get("bounce_ms", 0)
    if not isinstance(bounce, int) or isinstance(bounce, bool) or not 0 <= bounce <= _MAX_BOUNCE_MS:
        errors.append(("inputs.bounce_ms", "must be an integer 0..%d, got %r" % (_MAX_BOUNCE_MS, bounce)))
    else:
        out["bounce_ms"] = bounce
    for name in INPUT_NAMES:
        if name not in v:
            continue
        key = "inputs." + name
        levels = _curve(v[name], key, 0, 1, errors)
        if levels is None:
            continue
        for i, (t, level) in enumerate(levels):
            if level not in (0, 1) or isinstance(level, float):
                errors.append(("%s[%d]" % (key, i), "level must be 0 or 1, got %r" % (level,)))
                levels = None
                break
        if levels is not None:
            out[name] = levels
    return out


def _nmea(v, errors):
    if not isinstance(v, dict):
        errors.append(("nmea", "must be an object or null, got %r" % (v,)))
        return None
    _unknown_keys(v, _NMEA_KEYS, "nmea.", errors)
    if "route" in v:
        if "file" in v:
            errors.append(("nmea.file", "cannot be combined with nmea.route: give a capture to replay or a route, got %r"
                           % (v["file"],)))
        _keys_of_other_mode(v, ("loop", "from_s"), "a capture (nmea.file)", errors)
        return _nmea_route(v, errors)
    _keys_of_other_mode(v, _NMEA_ROUTE_KEYS, "a route (nmea.route)", errors)

    path = v.get("file")
    if not isinstance(path, str) or not path:
        errors.append(("nmea.file", "must be the path of a capture file (or give nmea.route instead), got %r" % (path,)))
    baud = _nmea_baud(v, errors)
    loop = v.get("loop", True)
    if not isinstance(loop, bool):
        errors.append(("nmea.loop", "must be true or false, got %r" % (loop,)))
    date = v.get("date")
    if date is not None and date != "today":
        try:
            date = parse_date(date)
        except ValueError as e:
            errors.append(("nmea.date", "%s, got %r" % (e, date)))
    # The receiver is silent before from_s, as one that starts late or has no
    # sky view. The capture starts at its first epoch then.
    from_s = v.get("from_s", 0)
    if not _is_num(from_s) or not 0 <= from_s <= _MAX_NMEA_FROM_S:
        errors.append(("nmea.from_s", "must be 0..%d seconds, got %r" % (_MAX_NMEA_FROM_S, from_s)))
        from_s = 0
    return {"file": path, "baud": baud, "loop": loop, "date": date, "from_s": from_s}


def _keys_of_other_mode(v, keys, mode, errors):
    for k in keys:
        if k in v:
            errors.append(("nmea." + k, "applies only to %s, got %r" % (mode, v[k])))


def _nmea_baud(v, errors):
    baud = v.get("baud", 9600)
    if not isinstance(baud, int) or isinstance(baud, bool) or not 1200 <= baud <= 921600:
        errors.append(("nmea.baud", "must be an integer 1200..921600, got %r" % (baud,)))
        return 9600
    return baud


def _nmea_route(v, errors):
    # A synthesised receiver: positions along the route, its own clock and date.
    out = {
        "route": _route(v.get("route"), errors),
        "baud": _nmea_baud(v, errors),
        "date": "today",
        "start_s": 0,
        "gaps": _faults(v.get("gaps", []), "nmea.gaps", GNSS_GAPS, errors),
        "hdop": _ROUTE_HDOP,
        "sats": _ROUTE_SATS,
        "alt_m": _ROUTE_ALT_M,
        "talker": "GN",
    }

    # A receiver with a fix always has the date, so null is not allowed here.
    date = v.get("date", "today")
    if date is None:
        errors.append(("nmea.date", 'must be "today" or "YYYY-MM-DD" with a route, got None'))
    elif date != "today":
        try:
            out["date"] = parse_date(date)
        except ValueError as e:
            errors.append(("nmea.date", "%s, got %r" % (e, date)))

    start = v.get("start", _ROUTE_START)
    try:
        out["start_s"] = parse_time_of_day(start)
    except ValueError as e:
        errors.append(("nmea.start", "%s, got %r" % (e, start)))

    # GGA carries HDOP with two decimals and the satellite count with two digits.
    # A 3D fix needs at least 4 satellites.
    hdop = v.get("hdop", _ROUTE_HDOP)
    if not _is_num(hdop) or not 0.1 <= hdop <= 50:
        errors.append(("nmea.hdop", "must be a number 0.1..50, got %r" % (hdop,)))
    else:
        out["hdop"] = hdop
    sats = v.get("sats", _ROUTE_SATS)
    if not isinstance(sats, int) or isinstance(sats, bool) or not 4 <= sats <= 99:
        errors.append(("nmea.sats", "must be an integer 4..99, got %r" % (sats,)))
    else:
        out["sats"] = sats
    alt = v.get("alt_m", _ROUTE_ALT_M)
    if not _is_num(alt) or not -500 <= alt <= 9000:
        errors.append(("nmea.alt_m", "must be -500..9000 metres above sea level, got %r" % (alt,)))
    else:
        out["alt_m"] = alt
    talker = v.get("talker", "GN")
    if talker not in TALKERS:
        errors.append(("nmea.talker", "must be one of %s, got %r" % ("/".join(TALKERS), talker)))
    else:
        out["talker"] = talker
    return out


def _route(v, errors):
    # [seconds, lat, lon] points with increasing times. The truck moves in a
    # straight line (in degrees) from one point to the next.
    key = "nmea.route"
    if not isinstance(v, list) or not v:
        errors.append((key, "must be a non-empty list of [seconds, lat, lon] points, got %r" % (v,)))
        return None
    points = []
    for i, p in enumerate(v):
        pk = "%s[%d]" % (key, i)
        if not isinstance(p, list) or len(p) != 3 or not (_is_num(p[0]) and _is_num(p[1]) and _is_num(p[2])):
            errors.append((pk, "must be a [seconds, lat, lon] list of numbers, got %r" % (p,)))
            return None
        t, lat, lon = p
        # The comparisons are written so that NaN fails them too.
        if not t >= 0:
            errors.append((pk, "time must be 0 or more seconds, got %r" % (t,)))
            return None
        if points and not t > points[-1][0]:
            errors.append((pk, "time %r must be after the previous point's %r (to stop, repeat a position at a later time)"
                           % (t, points[-1][0])))
            return None
        if not -90 <= lat <= 90:
            errors.append((pk, "latitude must be -90..90 degrees, got %r" % (lat,)))
            return None
        if not -180 <= lon <= 180:
            errors.append((pk, "longitude must be -180..180 degrees, got %r" % (lon,)))
            return None
        if points and abs(lon - points[-1][2]) > 180:
            errors.append((pk, "longitude %r is more than 180 degrees from the previous point's %r: a segment cannot cross the antimeridian"
                           % (lon, points[-1][2])))
            return None
        points.append((t, lat, lon))
    return points


def parse_time_of_day(text):
    """Return the seconds since midnight of a "HH:MM:SS" string; raise ValueError if it is no valid time."""
    if not isinstance(text, str) or len(text) != 8 or text[2] != ":" or text[5] != ":":
        raise ValueError('must be "HH:MM:SS"')
    for i in (0, 1, 3, 4, 6, 7):
        if text[i] not in "0123456789":
            raise ValueError('must be "HH:MM:SS" of digits')
    hours, minutes, seconds = int(text[0:2]), int(text[3:5]), int(text[6:8])
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError("hours must be 00..23, minutes and seconds 00..59")
    return (hours * 60 + minutes) * 60 + seconds


def parse_date(text):
    """Return (year, month, day) of a "YYYY-MM-DD" string; raise ValueError if it is no real date."""
    if not isinstance(text, str) or len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError('must be "today", "YYYY-MM-DD" or null')
    try:
        year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    except ValueError:
        raise ValueError("must be a date of digits YYYY-MM-DD")
    # The RMC sentence carries a two-digit year, read by parsers as 2000-2099.
    if not 2000 <= year <= 2099 or not 1 <= month <= 12:
        raise ValueError("year must be 2000..2099 and month 1..12")
    days = _DAYS_IN_MONTH[month - 1]
    if month == 2 and year % 4 == 0:
        days = 29
    if not 1 <= day <= days:
        raise ValueError("day must be 1..%d in that month" % days)
    return (year, month, day)


def _unique_id(v, errors):
    try:
        if not isinstance(v, str) or len(v.replace(":", "")) != 12:
            raise ValueError
        digits = v.replace(":", "")
        return bytes(int(digits[i : i + 2], 16) for i in range(0, 12, 2))
    except ValueError:
        errors.append(("unique_id", "must be 12 hex digits (a MAC address), got %r" % (v,)))
        return DEFAULT_UNIQUE_ID
