# Compact binary form of records for the flash spool, and its JSON rendering for the uplink
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# A telemetry record with 4 probes, a DHT and a position packs into 40 to 44
# bytes, against about 500 bytes of JSON, so that a 1 MiB spool holds a week
# of records at one per 30 s. The JSON that backends receive (docs/payload.md)
# is made from the packed form only when the record is sent, with its time
# computed then from the uptime, so a record made before the clock was set
# still gets its right time.
#
# Layout (integers little-endian; "varint" is LEB128, "zigzag" maps signed to unsigned):
#   byte 0    bits 0-1 kind (1 telemetry, 2 alarm, 3 event), bit 2 door open,
#             bit 3 SOS pressed, bit 4 ignition on, bit 5 GNSS block follows,
#             bits 6-7 kind-specific flags (below)
#   varint    boot id, varint seq, varint uptime in 0.1 s
#   telemetry (bit 6: DHT, bit 7: unknown probes)
#             varint schema (Names index of [probe names, alarm keys], 0 = none, else index + 1),
#             int16 per probe in 0.01 degC (_FAULT_BASE + code for a fault),
#             [DHT: 3 bytes, 12-bit 0.1 degC (-2048 + code for a fault) | 12-bit 0.1 %RH << 12],
#             [unknown probes: count, 8 ROM bytes each], GNSS block, status block
#   alarm     (bit 6: value and limit, bit 7: detail)
#             byte kind index (ALARM_KINDS), byte: bits 0-1 change (raised, cleared,
#             acknowledged), bits 2-3 severity, bit 4 ETA follows, bit 5 zone follows,
#             varint channel (0 = none, else Names index + 1), [zigzag value, zigzag limit
#             in 0.01 of the kind's unit], [byte detail code (DETAILS)], [varint ETA s],
#             [varint zone Names index], GNSS block, status block
#   event     (bit 7: extra fields)
#             byte event index (0xFF: varint length and the name follow),
#             [varint length and the JSON text of the extra fields, without braces], GNSS block
#   status    byte: bits 0-1 trip type (TRIP_TYPES), bit 2 early-warning phase, bit 3 moving,
#             bit 4 excursion, bit 5 passenger seat occupied, bit 6 JT/T 808 word follows,
#             bit 7 active alarm list follows (telemetry); [varint trip id Names index + 1, when
#             a trip is on], [varint JT/T 808 alarm flags bits 0-15, varint bits 16-31],
#             [varint count, varint index in the schema's alarm keys for each active alarm]
#   GNSS      byte: bit 0 fix, bit 1 position, bit 2 lat south, bit 3 lon west, bit 7 unused;
#             byte: presence of q, alt, kmh, course, sats, hdop, age, utc
#             (bits 0-7); then position (byte degrees and 3-byte 1e-7 degree fraction, for lat
#             and lon), byte q, zigzag alt 0.1 m, varint kmh 0.1, varint course 0.1 deg,
#             byte sats, varint hdop 0.01, varint age 0.1 s, utc (below)
#   utc       zigzag seconds relative to the record's own time (byte 0 of the value's LSB
#             group set = relative) or absolute Unix seconds: varint (seconds << 1 | 1) when
#             the clock was not set yet, (zigzag delta << 1) otherwise

import json

from micropython import const

from firmware.clock import unix_seconds

TELEMETRY = const(1)
ALARM = const(2)
EVENT = const(3)
KIND_NAMES = (None, "telemetry", "alarm", "event")

_DOOR = const(0x04)
_SOS = const(0x08)
_IGN = const(0x10)
_GNSS = const(0x20)
_FLAG6 = const(0x40)
_FLAG7 = const(0x80)

_G_FIX = const(0x01)
_G_POS = const(0x02)
_G_SOUTH = const(0x04)
_G_WEST = const(0x08)

_ACTIVE = const(2)  # alarms.ACTIVE
_FAULT_BASE = const(-32768)
_DHT_FAULT_BASE = const(-2048)
_NO_RH = const(0xFFF)
_RECORD_MAX_BYTES = const(1024)
_EXTRA_MAX_BYTES = const(600)
_UNKNOWN_ROMS_MAX = const(8)

FAULTS = ("pending", "absent", "crc", "power_on", "zero", "error", "timeout", "checksum", "range")
# Alarm details: the sensor faults, then the reasons of the other rules.
DETAILS = FAULTS + ("early", "moving", "sealed", "zone", "inside", "outside")
# New kinds go at the end: records on flash refer to them by index.
ALARM_KINDS = ("temp_high", "temp_low", "rh_high", "rh_low", "sensor_fault", "sos", "door_open",
               "temp_cumulative", "rh_cumulative", "temp_trend", "rh_trend", "gnss_silent", "gnss_nofix",
               "seat", "overspeed", "stop", "geofence", "route")
# Unit and JSON decimals of an alarm's value and limit, by kind index.
_ALARM_UNITS = ("C", "C", "%RH", "%RH", None, None, None, "s", "s", "C", "%RH", "s", "s",
                None, "km/h", "s", None, "m")
_UNIT_PLACES = {"C": 2, "%RH": 2, "s": 0, "km/h": 1, "m": 0}
CHANGES = ("raised", "cleared", "acknowledged")
SEVERITIES = ("info", "warning", "critical")
TRIP_TYPES = (None, "cold_chain", "hazmat")
EVENTS = ("boot", "door_open", "door_closed", "sos_pressed", "sos_released", "ignition_on", "ignition_off",
          "config_applied", "config_rejected", "seat_occupied", "seat_vacated", "zone_enter", "zone_exit",
          "trip_start", "trip_end", "command", "auth_rejected")


def clock_offset_ms(clock, uptime, now_ms):
    """Return Unix ms minus uptime ms for this boot, or None while the clock is not set."""
    unix_ms = clock.unix_ms_at(now_ms)
    if unix_ms is None:
        return None
    return unix_ms - uptime.ms(now_ms)


class PackError(ValueError):
    """A packed record that cannot be read: the bad byte offset and value are in the message."""


def _fault_code(state):
    try:
        return FAULTS.index(state)
    except ValueError:
        return FAULTS.index("error")


def _detail_code(detail):
    try:
        return DETAILS.index(detail)
    except ValueError:
        return FAULTS.index("error")


def _zig(v):
    # Zigzag: 0, -1, 1, -2, ... to 0, 1, 2, 3, ..., so small negatives stay short varints.
    return v << 1 if v >= 0 else ((-v) << 1) - 1


def _round_div(v, d):
    # Integer division rounding half away from zero.
    if v < 0:
        return -((-v + d // 2) // d)
    return (v + d // 2) // d


class Packer:
    """Packs records into one preallocated buffer; each call returns a memoryview of the record."""

    def __init__(self, names, boot_id, uptime, clock):
        self.names = names
        self.boot_id = boot_id
        self.uptime = uptime
        self.clock = clock
        self.seq = 0
        self._buf = bytearray(_RECORD_MAX_BYTES)
        self._mv = memoryview(self._buf)
        self._views = {}  # record length -> memoryview of that many bytes of _buf
        self._n = 0
        self.schema = 0
        self._alarm_keys = ()
        self._up_ds = 0
        self._trip = 0

    def set_schema(self, probe_names, alarm_keys):
        """Register the channel layout of this configuration; telemetry refers to it by one number."""
        self.schema = self.names.index([list(probe_names), list(alarm_keys)]) + 1
        self._alarm_keys = alarm_keys

    # Byte writers

    def _byte(self, v):
        self._buf[self._n] = v & 0xFF
        self._n += 1

    def _u16(self, v):
        b = self._buf
        i = self._n
        b[i] = v & 0xFF
        b[i + 1] = (v >> 8) & 0xFF
        self._n = i + 2

    def _varint(self, v):
        b = self._buf
        i = self._n
        while v > 0x7F:
            b[i] = (v & 0x7F) | 0x80
            v >>= 7
            i += 1
        b[i] = v
        self._n = i + 1

    def _zigzag(self, v):
        self._varint(_zig(v))

    def _head(self, kind, flags, now_ms, inputs):
        self.seq += 1
        if inputs is not None:
            if inputs.active("door"):
                flags |= _DOOR
            if inputs.active("sos"):
                flags |= _SOS
            if inputs.active("ignition"):
                flags |= _IGN
        self._n = 0
        self._byte(kind | flags)
        self._varint(self.boot_id)
        self._varint(self.seq)
        self._up_ds = (self.uptime.ms(now_ms) + 50) // 100
        self._varint(self._up_ds)

    def set_trip(self, trip_id):
        """Name the trip that records carry from now on (None: no trip); allocates once per trip."""
        self._trip = 0 if trip_id is None else self.names.index(trip_id) + 1

    def _status(self, alarms, telemetry):
        flags = 0
        lo = hi = count = 0
        if alarms is not None:
            alarms.update_jt808()
            lo = alarms.jt808_lo
            hi = alarms.jt808_hi
            flags = alarms.trip & 3
            if alarms.early:
                flags |= 4
            if alarms.moving:
                flags |= 8
            if alarms.excursion():
                flags |= 16
            if alarms.seat_occupied:
                flags |= 32
            if telemetry:
                for a in alarms.all:
                    if a.state == _ACTIVE:
                        count += 1
        if lo or hi:
            flags |= 64
        if count:
            flags |= 128
        self._byte(flags)
        if flags & 3:
            self._varint(self._trip)
        if lo or hi:
            self._varint(lo)
            self._varint(hi)
        if count:
            # The active alarms as indexes into the schema's alarm keys.
            self._varint(count)
            i = 0
            for a in alarms.all:
                if a.state == _ACTIVE:
                    self._varint(i)
                i += 1

    def _gnss(self, gnss, now_ms):
        g = 0
        if gnss is None:
            return
        fix = gnss.fix
        if gnss.has_fix():
            g |= _G_FIX
        if fix.lat_deg is not None and fix.lon_deg is not None:
            g |= _G_POS
            if fix.lat_neg:
                g |= _G_SOUTH
            if fix.lon_neg:
                g |= _G_WEST
        age_ms = gnss.fix_age_ms()
        has_utc = fix.year is not None and fix.hour is not None

        present = 0
        if fix.quality is not None:
            present |= 1
        if fix.alt_mm is not None:
            present |= 2
        if fix.speed_kn_e3 is not None:
            present |= 4
        if fix.course_e2 is not None:
            present |= 8
        if fix.sats is not None:
            present |= 16
        if fix.hdop_e2 is not None:
            present |= 32
        if age_ms is not None:
            present |= 64
        if has_utc:
            present |= 128

        self._byte(g)
        self._byte(present)
        if g & _G_POS:
            self._degrees(fix.lat_deg, fix.lat_min_e7)
            self._degrees(fix.lon_deg, fix.lon_min_e7)
        if present & 1:
            self._byte(fix.quality)
        if present & 2:
            self._zigzag(_round_div(fix.alt_mm, 100))
        if present & 4:
            # knots x 1000 to km/h x 10: x 1.852 / 100
            self._varint((fix.speed_kn_e3 * 1852 + 50000) // 100000)
        if present & 8:
            self._varint((fix.course_e2 + 5) // 10)
        if present & 16:
            self._byte(fix.sats)
        if present & 32:
            self._varint(fix.hdop_e2)
        if present & 64:
            self._varint((age_ms + 50) // 100)
        if has_utc:
            self._utc(fix, now_ms)

    def _degrees(self, deg, min_e7):
        fraction = (min_e7 + 30) // 60  # 1e-7 degree, rounded half up, as nmea.format_deg
        if fraction >= 10000000:
            deg += 1
            fraction -= 10000000
        self._byte(deg)
        self._byte(fraction)
        self._byte(fraction >> 8)
        self._byte(fraction >> 16)

    def _utc(self, fix, now_ms):
        fix_s = unix_seconds(fix.year, fix.month, fix.day, fix.hour, fix.minute, fix.second)
        offset_ms = clock_offset_ms(self.clock, self.uptime, now_ms)
        if offset_ms is None:
            self._varint(fix_s << 1 | 1)
        else:
            # The same reference time as render() computes from the stored uptime.
            d = fix_s - (offset_ms + self._up_ds * 100) // 1000
            self._varint(_zig(d) << 1)

    def _done(self):
        # A memoryview slice is a heap object, so one per record length is kept:
        # records come in a few lengths, and once each was seen no call allocates.
        n = self._n
        view = self._views.get(n)
        if view is None:
            view = self._views[n] = self._mv[:n]
        return view

    # Records

    def telemetry(self, now_ms, probes, humidity, gnss, inputs, alarms):
        flags = 0
        if humidity is not None:
            flags |= _FLAG6
        extra = probes.extra if probes is not None else ()
        if extra:
            flags |= _FLAG7
        if gnss is not None:
            flags |= _GNSS
        self._head(TELEMETRY, flags, now_ms, inputs)

        self._varint(self.schema if probes is not None else 0)
        if probes is not None:
            for i in range(len(probes.names)):
                if probes.state[i] == "ok":
                    self._u16(_round_div(probes.value_mc[i], 10))
                else:
                    self._u16(_FAULT_BASE + _fault_code(probes.state[i]))

        if humidity is not None:
            # 3 bytes: 12-bit two's-complement temperature in 0.1 degC (the DHT22
            # spans -40..80 degC) and 12-bit humidity in 0.1 %RH above it.
            if humidity.state == "ok":
                c = _round_div(humidity.temp_mc, 100) & 0xFFF
                rh = _round_div(humidity.rh_mrh, 100)
            else:
                c = (_DHT_FAULT_BASE + _fault_code(humidity.state)) & 0xFFF
                rh = _NO_RH
            self._byte(c)
            self._byte(c >> 8 | (rh & 0xF) << 4)
            self._byte(rh >> 4)

        if extra:
            n = min(len(extra), _UNKNOWN_ROMS_MAX)
            self._byte(n)
            for k in range(n):
                rom = extra[k]
                for j in range(8):
                    self._byte(int(rom[2 * j : 2 * j + 2], 16))

        self._gnss(gnss, now_ms)
        self._status(alarms, True)
        return self._done()

    def alarm(self, now_ms, a, change, gnss, inputs, alarms=None):
        """Pack an alarm change (alarms.RAISED, CLEARED or ACKNOWLEDGED) with the engine's status."""
        flags = _GNSS if gnss is not None else 0
        has_value = a.value_m is not None and a.limit_m is not None
        if has_value:
            flags |= _FLAG6
        if a.detail:
            flags |= _FLAG7
        self._head(ALARM, flags, now_ms, inputs)
        self._byte(ALARM_KINDS.index(a.kind))
        b = change | a.severity << 2
        if a.eta_s is not None:
            b |= 0x10
        if a.zone is not None:
            b |= 0x20
        self._byte(b)
        self._varint(self.names.index(a.channel) + 1 if a.channel else 0)
        if has_value:
            self._zigzag(_round_div(a.value_m, 10))
            self._zigzag(_round_div(a.limit_m, 10))
        if a.detail:
            self._byte(_detail_code(a.detail))
        if a.eta_s is not None:
            self._varint(a.eta_s)
        if a.zone is not None:
            self._varint(self.names.index(a.zone))
        self._gnss(gnss, now_ms)
        self._status(alarms, False)
        return self._done()

    def event(self, now_ms, name, gnss, inputs, extra=None):
        flags = _GNSS if gnss is not None else 0
        text = None
        if extra:
            text = json.dumps(extra)[1:-1].encode()
            if len(text) > _EXTRA_MAX_BYTES:
                text = json.dumps({"truncated": len(text)})[1:-1].encode()
            flags |= _FLAG7
        self._head(EVENT, flags, now_ms, inputs)
        try:
            self._byte(EVENTS.index(name))
        except ValueError:
            raw = name.encode()[:64]
            self._byte(0xFF)
            self._bytes(raw)
        if text is not None:
            self._bytes(text)
        self._gnss(gnss, now_ms)
        return self._done()

    def _bytes(self, data):
        self._varint(len(data))
        n = self._n
        self._mv[n : n + len(data)] = data
        self._n = n + len(data)


# Reading


class _Reader:
    def __init__(self, data):
        self.data = data
        self.i = 0

    def byte(self):
        i = self.i
        if i >= len(self.data):
            raise PackError("record ends at byte %d" % i)
        self.i = i + 1
        return self.data[i]

    def u16(self):
        return self.byte() | self.byte() << 8

    def s16(self):
        v = self.u16()
        return v - 0x10000 if v & 0x8000 else v

    def varint(self):
        v = 0
        shift = 0
        while True:
            b = self.byte()
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 63:
                raise PackError("varint longer than 9 bytes at byte %d" % self.i)

    def zigzag(self):
        v = self.varint()
        return -((v + 1) >> 1) if v & 1 else v >> 1

    def text(self):
        n = self.varint()
        if self.i + n > len(self.data):
            raise PackError("text of %d bytes at byte %d passes the end" % (n, self.i))
        s = bytes(self.data[self.i : self.i + n]).decode()
        self.i += n
        return s


def header(data):
    """Return (kind, boot, seq, up_ds) of a packed record."""
    r = _Reader(data)
    b = r.byte()
    return b & 3, r.varint(), r.varint(), r.varint()


def _dec(v, places):
    # Fixed-point int to a JSON number with `places` decimals ("-0.05", "12.3").
    step = 10**places
    sign = "-" if v < 0 else ""
    v = abs(v)
    return "%s%d.%0*d" % (sign, v // step, places, v % step)


def _deg(deg, fraction, neg):
    sign = "-" if neg and (deg or fraction) else ""
    return "%s%d.%07d" % (sign, deg, fraction)


def _name(names, index):
    value = names.get(index)
    return "#%d" % index if value is None else value


def _gnss_json(r, t_s):
    g = r.byte()
    present = r.byte()
    lat = lon = "null"
    if g & _G_POS:
        lat = _deg(r.byte(), r.byte() | r.byte() << 8 | r.byte() << 16, g & _G_SOUTH)
        lon = _deg(r.byte(), r.byte() | r.byte() << 8 | r.byte() << 16, g & _G_WEST)
    q = alt = kmh = course = sats = hdop = age = utc = "null"
    if present & 1:
        q = str(r.byte())
    if present & 2:
        alt = _dec(r.zigzag(), 1)
    if present & 4:
        kmh = _dec(r.varint(), 1)
    if present & 8:
        course = _dec(r.varint(), 1)
    if present & 16:
        sats = str(r.byte())
    if present & 32:
        hdop = _dec(r.varint(), 2)
    if present & 64:
        age = _dec(r.varint(), 1)
    if present & 128:
        v = r.varint()
        if v & 1:
            utc_s = v >> 1
        else:
            d = v >> 1
            d = -((d + 1) >> 1) if d & 1 else d >> 1
            utc_s = None if t_s is None else t_s + d
        if utc_s is not None:
            from firmware.clock import iso_utc

            utc = '"%s"' % iso_utc(utc_s)
    text = '{"fix":%s,"q":%s,"lat":%s,"lon":%s,"alt":%s,"kmh":%s,"course":%s,"sats":%s,"hdop":%s,"age_s":%s,"utc":%s}' % (
        "true" if g & _G_FIX else "false", q, lat, lon, alt, kmh, course, sats, hdop, age, utc)
    return text, g


def render(data, device_id, names, offset_ms, link=None):
    """Return the JSON text of a packed record (docs/payload.md).

    offset_ms is the record's boot clock offset (Unix ms = offset + uptime ms),
    or None when the time of that boot is unknown. link is the telemetry
    "link" object text, taken when the record is sent.
    """
    r = _Reader(data)
    b0 = r.byte()
    kind = b0 & 3
    if kind not in (TELEMETRY, ALARM, EVENT):
        raise PackError("kind %d in byte 0 (0x%02x) is unknown" % (kind, b0))
    boot = r.varint()
    seq = r.varint()
    up_ds = r.varint()
    t_s = None
    if offset_ms is None:
        t = 'null,"t_unknown":true'
    else:
        t_ms = offset_ms + up_ds * 100
        t_ds = (t_ms + 50) // 100
        t = "%d.%d" % (t_ds // 10, t_ds % 10)
        t_s = t_ms // 1000
    parts = ['{"v":1,"kind":"%s","dev":%s,"boot":%d,"seq":%d,"t":%s,"up":%s' % (
        KIND_NAMES[kind], json.dumps(device_id), boot, seq, t, _dec(up_ds, 1))]
    if kind == TELEMETRY:
        st = _telemetry_body(r, b0, parts, names, t_s)
        parts.insert(len(parts) - 1, _inputs(b0, st))
        parts.append('"link":' + (link or "{}"))
    elif kind == ALARM:
        _alarm_body(r, b0, parts, names)
        parts.append('"gnss":' + (_gnss_json(r, t_s)[0] if b0 & _GNSS else "null"))
        parts.append(_inputs(b0, _status_json(r, parts, names)))
    else:
        e = r.byte()
        if e == 0xFF:
            name = r.text()
        elif e < len(EVENTS):
            name = EVENTS[e]
        else:
            name = "#%d" % e
        parts.append('"event":' + json.dumps(name))
        if b0 & _FLAG7:
            extra = r.text()
            if extra:
                parts.append(extra)
        parts.append('"gnss":' + (_gnss_json(r, t_s)[0] if b0 & _GNSS else "null"))
        parts.append(_inputs(b0, -1))
    if r.i != len(data):
        raise PackError("%d bytes left after the %s record at byte %d" % (len(data) - r.i, KIND_NAMES[kind], r.i))
    return ",".join(parts) + "}"


def _telemetry_body(r, b0, parts, names, t_s):
    schema = r.varint()
    probe_names = ()
    alarm_keys = ()
    if schema:
        entry = names.get(schema - 1)
        if entry is None:
            raise PackError("schema %d is not in the name dictionary" % (schema - 1))
        probe_names, alarm_keys = entry
        items = []
        for name in probe_names:
            v = r.s16()
            if v < _FAULT_BASE + len(FAULTS):
                items.append('%s:{"c":null,"fault":"%s"}' % (json.dumps(name), FAULTS[v - _FAULT_BASE]))
            else:
                items.append('%s:{"c":%s}' % (json.dumps(name), _dec(v, 2)))
        parts.append('"probes":{' + ",".join(items) + "}")

    if b0 & _FLAG6:
        v = r.byte() | r.byte() << 8 | r.byte() << 16
        c = v & 0xFFF
        if c & 0x800:
            c -= 0x1000
        rh = v >> 12
        if c < _DHT_FAULT_BASE + len(FAULTS):
            parts.append('"dht":{"c":null,"rh":null,"fault":"%s"}' % FAULTS[c - _DHT_FAULT_BASE])
        else:
            parts.append('"dht":{"c":%s,"rh":%s}' % (_dec(c, 1), _dec(rh, 1)))

    if b0 & _FLAG7:
        roms = []
        for _ in range(r.byte()):
            roms.append('"' + "".join("%02X" % r.byte() for _ in range(8)) + '"')
        parts.append('"unknown_probes":[' + ",".join(roms) + "]")

    parts.append('"gnss":' + (_gnss_json(r, t_s)[0] if b0 & _GNSS else "null"))
    st = _status_json(r, parts, names)
    active = []
    if st & 128:
        for _ in range(r.varint()):
            i = r.varint()
            active.append(json.dumps(alarm_keys[i] if i < len(alarm_keys) else "#%d" % i))
    parts.append('"alarms":[' + ",".join(active) + "]")
    return st


def _inputs(b0, status):
    # The seat input is in the status byte; events have none (status -1).
    seat = ',"seat":%d' % (status >> 5 & 1) if status >= 0 else ""
    return '"in":{"door":%d,"sos":%d,"ign":%d%s}' % (b0 >> 2 & 1, b0 >> 3 & 1, b0 >> 4 & 1, seat)


def _status_json(r, parts, names):
    flags = r.byte()
    trip = "null"
    kind = flags & 3
    tid = r.varint() if kind else 0
    jt = 0
    if flags & 64:
        jt = r.varint()
        jt |= r.varint() << 16
    if kind:
        trip = '{"id":%s,"type":"%s","early":%s}' % (
            json.dumps(_name(names, tid - 1)) if tid else "null", TRIP_TYPES[kind] or "#%d" % kind,
            "true" if flags & 4 else "false")
    parts.append('"trip":%s,"moving":%s,"excursion":%s,"jt808":%d' % (
        trip, "true" if flags & 8 else "false", "true" if flags & 16 else "false", jt))
    return flags


def _value(v, places):
    # v in 0.01 of the unit, shown with `places` decimals, rounded half away from zero.
    if places == 2:
        return _dec(v, 2)
    return _dec(_round_div(v, 10 ** (2 - places)), places) if places else str(_round_div(v, 100))


def _alarm_body(r, b0, parts, names):
    k = r.byte()
    kind = ALARM_KINDS[k] if k < len(ALARM_KINDS) else "#%d" % k
    b = r.byte()
    ch = r.varint()
    channel = json.dumps(_name(names, ch - 1)) if ch else "null"
    change = b & 3
    sev = b >> 2 & 3
    parts.append('"alarm":"%s","channel":%s,"state":"%s","severity":"%s"' % (
        kind, channel, CHANGES[change] if change < 3 else "#3", SEVERITIES[sev] if sev < 3 else "#3"))
    if b0 & _FLAG6:
        unit = _ALARM_UNITS[k] if k < len(_ALARM_UNITS) else None
        places = _UNIT_PLACES.get(unit, 2)
        parts.append('"value":%s,"limit":%s,"unit":%s' % (
            _value(r.zigzag(), places), _value(r.zigzag(), places), json.dumps(unit)))
    if b0 & _FLAG7:
        code = r.byte()
        parts.append('"detail":"%s"' % (DETAILS[code] if code < len(DETAILS) else "#%d" % code))
    if b & 0x10:
        parts.append('"eta_s":%d' % r.varint())
    if b & 0x20:
        parts.append('"zone":%s' % json.dumps(_name(names, r.varint())))
