# Synthesised GNSS receiver for the simulated UART: RMC and GGA once a second along a scenario route
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# The scenario's nmea.route lists [seconds, lat, lon] points (docs/scenario.md,
# section 7). Receiver computes what a receiver on the truck would report at
# a whole second of world time, and RouteFeed puts that on a serial line at
# the receiver's baud rate, like nmea_replay.Replay does for a capture.
#
# Model:
# - Between two route points the position moves linearly in latitude and
#   longitude. Speed over ground is the haversine distance between the two
#   points divided by their time difference, so it is constant on a segment.
#   Course over ground is the initial true bearing from the first point to
#   the second one. Before the first point, after the last one and between
#   two equal points the truck stands still: speed 0 and an empty course
#   field.
# - Epoch k (world time k seconds) carries the time of day start_s + k and
#   the position at k seconds. It sends RMC, then GGA, in the NMEA 0183 4.x
#   form of u-blox receivers, with 5 decimals of minutes.
# - In a "silent" gap the receiver sends nothing. In a "nofix" gap it sends
#   both sentences with time and date but without a position: RMC status V and
#   mode N, GGA quality 0.
#
# Heap: the route sits in three arrays of doubles, and each sentence is
# written into one 82-byte buffer when its turn on the line comes, so no
# stream is ever built in memory. The position math uses floats, which
# allocate on the heap of the unix port.

import math
from array import array

from micropython import const

# Mean Earth radius in metres (the IUGG mean radius, 6371008.8 m, rounded).
EARTH_RADIUS_M = 6371000.0
# One international knot is 1852 m per hour.
KN_PER_M_S = 3600 / 1852

SENTENCES_PER_EPOCH = const(2)
RMC = const(0)
GGA = const(1)
# NMEA 0183 limits a sentence to 82 characters, '$' and CRLF included.
SENTENCE_MAX = const(82)

_EPOCH_MS = const(1000)
_DAY_S = const(86400)
# Minutes x 10^5 in a degree: 5 decimals of minutes.
_E5_PER_DEG = const(6_000_000)
_E5_PER_MIN = const(100_000)
_DOT = const(0x2E)
_COMMA = const(0x2C)
_HEX = b"0123456789ABCDEF"
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def distance_m(lat1, lon1, lat2, lon2):
    """Return the great-circle (haversine) distance in metres between two points in degrees."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    half_dp = (p2 - p1) / 2
    half_dl = math.radians(lon2 - lon1) / 2
    a = math.sin(half_dp) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(half_dl) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def bearing_deg(lat1, lon1, lat2, lon2):
    """Return the initial true bearing in degrees (0 <= b < 360) from the first point to the second."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360


def add_days(date, days):
    """Return (year, month, day) days after date (a (year, month, day) tuple), Gregorian calendar."""
    year, month, day = date
    for _ in range(days):
        last = _DAYS_IN_MONTH[month - 1]
        if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
            last = 29
        day += 1
        if day > last:
            day = 1
            month += 1
            if month > 12:
                month = 1
                year += 1
    return (year, month, day)


def _digits(buf, i, value, width):
    # Write value as exactly width decimal digits, zero-padded, and return the next index.
    end = i + width
    j = end
    while j > i:
        j -= 1
        buf[j] = 0x30 + value % 10
        value //= 10
    return end


def _fixed(buf, i, value, places):
    # Write value / 10**places (value >= 0) with places decimals and no leading zeros.
    scale = 10**places
    whole = value // scale
    width = 1
    limit = 10
    while whole >= limit:
        width += 1
        limit *= 10
    i = _digits(buf, i, whole, width)
    buf[i] = _DOT
    return _digits(buf, i + 1, value - whole * scale, places)


def _text(buf, i, text):
    for c in text:
        buf[i] = c
        i += 1
    return i


class Receiver:
    """A receiver moving along a route: the position at any time and the sentences of each epoch."""

    def __init__(self, spec, date):
        # spec is the scenario's validated nmea object with a route, and date the
        # (year, month, day) at world time 0.
        points = spec["route"]
        self._t = array("d", [p[0] for p in points])
        self._lat = array("d", [p[1] for p in points])
        self._lon = array("d", [p[2] for p in points])
        self.date = date
        self.start_s = spec["start_s"]
        self.gaps = spec["gaps"]
        self.talker = spec["talker"].encode()
        self._hdop_e2 = int(round(spec["hdop"] * 100))
        self._sats = spec["sats"]
        self._alt_e1 = int(round(spec["alt_m"] * 10))
        # The epoch whose values below were computed, so RMC and GGA of one
        # epoch share one computation.
        self._epoch = None
        self._fix = False
        self._tod_s = 0
        self._day = date
        self._day_offset = 0
        self._lat_e5 = 0
        self._south = False
        self._lon_e5 = 0
        self._west = False
        self._speed_e3 = 0
        self._course_e2 = -1

    def _point_before(self, t):
        # Return the index of the last route point at or before t, or -1.
        lo = 0
        hi = len(self._t)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._t[mid] <= t:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1

    def position(self, t):
        """Return (lat, lon, speed in knots, course in degrees or None when standing) at world time t seconds."""
        i = self._point_before(t)
        last = len(self._t) - 1
        if i < 0:
            return self._lat[0], self._lon[0], 0.0, None
        if i == last:
            return self._lat[last], self._lon[last], 0.0, None
        t0 = self._t[i]
        lat0 = self._lat[i]
        lon0 = self._lon[i]
        lat1 = self._lat[i + 1]
        lon1 = self._lon[i + 1]
        dt = self._t[i + 1] - t0
        f = (t - t0) / dt
        lat = lat0 + (lat1 - lat0) * f
        lon = lon0 + (lon1 - lon0) * f
        if lat0 == lat1 and lon0 == lon1:
            return lat, lon, 0.0, None
        speed_kn = distance_m(lat0, lon0, lat1, lon1) / dt * KN_PER_M_S
        return lat, lon, speed_kn, bearing_deg(lat0, lon0, lat1, lon1)

    def gap(self, t):
        """Return the (from, to, kind) gap window that covers world time t seconds, or None."""
        for window in self.gaps:
            if window[0] <= t and (window[1] is None or t < window[1]):
                return window
        return None

    def _compute(self, epoch_s):
        self._epoch = epoch_s
        tod = self.start_s + epoch_s
        day_offset = tod // _DAY_S
        if day_offset != self._day_offset:
            self._day = add_days(self.date, day_offset)
            self._day_offset = day_offset
        self._tod_s = tod - day_offset * _DAY_S
        window = self.gap(epoch_s)
        self._fix = window is None or window[2] != "nofix"
        if not self._fix:
            return
        lat, lon, speed_kn, course = self.position(epoch_s)
        self._south = lat < 0
        self._west = lon < 0
        self._lat_e5 = int(round(abs(lat) * _E5_PER_DEG))
        self._lon_e5 = int(round(abs(lon) * _E5_PER_DEG))
        self._speed_e3 = int(round(speed_kn * 1000))
        if course is None:
            self._course_e2 = -1
        else:
            # 359.996 degrees rounds to 360.00, which is 0.00.
            self._course_e2 = int(round(course * 100)) % 36000

    def write_sentence(self, epoch_s, index, buf):
        """Write sentence index (RMC or GGA) of the epoch at world second epoch_s into buf and return its length.

        buf needs SENTENCE_MAX bytes. The sentence ends with its checksum and CRLF.
        """
        if epoch_s != self._epoch:
            self._compute(epoch_s)
        buf[0] = 0x24  # '$'
        i = _text(buf, 1, self.talker)
        i = _text(buf, i, b"RMC," if index == RMC else b"GGA,")
        tod = self._tod_s
        i = _digits(buf, i, tod // 3600, 2)
        i = _digits(buf, i, tod // 60 % 60, 2)
        i = _digits(buf, i, tod % 60, 2)
        i = _text(buf, i, b".00,")
        if index == RMC:
            i = self._rmc_fields(buf, i)
        else:
            i = self._gga_fields(buf, i)

        # The checksum is the XOR of the bytes between '$' and '*'.
        x = 0
        for k in range(1, i):
            x ^= buf[k]
        buf[i] = 0x2A  # '*'
        buf[i + 1] = _HEX[x >> 4]
        buf[i + 2] = _HEX[x & 0x0F]
        buf[i + 3] = 0x0D
        buf[i + 4] = 0x0A
        return i + 5

    def _position_fields(self, buf, i):
        # ddmm.mmmmm,N|S,dddmm.mmmmm,E|W
        for value, width, letter in (
            (self._lat_e5, 2, b"S" if self._south else b"N"),
            (self._lon_e5, 3, b"W" if self._west else b"E"),
        ):
            deg = value // _E5_PER_DEG
            rest = value - deg * _E5_PER_DEG
            i = _digits(buf, i, deg, width)
            i = _digits(buf, i, rest // _E5_PER_MIN, 2)
            buf[i] = _DOT
            i = _digits(buf, i + 1, rest % _E5_PER_MIN, 5)
            buf[i] = _COMMA
            buf[i + 1] = letter[0]
            buf[i + 2] = _COMMA
            i += 3
        return i

    def _rmc_fields(self, buf, i):
        # status,lat,N/S,lon,E/W,speed kn,course,ddmmyy,magvar,E/W,mode
        if not self._fix:
            i = _text(buf, i, b"V,,,,,,,")
        else:
            i = _text(buf, i, b"A,")
            i = self._position_fields(buf, i)
            i = _fixed(buf, i, self._speed_e3, 3)
            buf[i] = _COMMA
            i += 1
            if self._course_e2 >= 0:
                i = _fixed(buf, i, self._course_e2, 2)
            buf[i] = _COMMA
            i += 1
        year, month, day = self._day
        i = _digits(buf, i, day, 2)
        i = _digits(buf, i, month, 2)
        i = _digits(buf, i, year % 100, 2)
        # Empty magnetic variation, then the mode: A = autonomous fix, N = no fix.
        return _text(buf, i, b",,,A" if self._fix else b",,,N")

    def _gga_fields(self, buf, i):
        # lat,N/S,lon,E/W,quality,sats,hdop,alt,M,geoid separation,M,age,station
        if not self._fix:
            # u-blox receivers send quality 0, no satellites and HDOP 99.99 without a fix.
            return _text(buf, i, b",,,,0,00,99.99,,,,,,")
        i = self._position_fields(buf, i)
        i = _text(buf, i, b"1,")
        i = _digits(buf, i, self._sats, 2)
        buf[i] = _COMMA
        i = _fixed(buf, i + 1, self._hdop_e2, 2)
        buf[i] = _COMMA
        i += 1
        alt = self._alt_e1
        if alt < 0:
            buf[i] = 0x2D  # '-'
            i += 1
            alt = -alt
        i = _fixed(buf, i, alt, 1)
        # The simulated geoid is the WGS84 ellipsoid: separation 0.0 m.
        return _text(buf, i, b",M,0.0,M,,")


class RouteFeed:
    """A Receiver's sentences on a serial line: epoch k starts at world second k, baud/10 bytes/s.

    pump(now_ms, sink) hands sink.put(data, start, end) every byte that has
    arrived by now_ms, with the same contract as nmea_replay.Replay. Bytes
    count from start_ms, when the UART opens: the first epoch sent is the
    first whole second at or after it.
    """

    def __init__(self, receiver, baud, start_ms):
        self.receiver = receiver
        self.baud = baud
        self.done = False
        self.sentences_sent = 0
        self._buf = bytearray(SENTENCE_MAX)
        self._len = 0
        self._sent = 0
        self._index = RMC
        self._epoch = (start_ms + _EPOCH_MS - 1) // _EPOCH_MS
        # When the current sentence's first byte goes on the line.
        self._wire_ms = self._epoch * _EPOCH_MS
        self._skip_silent()

    def _skip_silent(self):
        # Move self._epoch past silent gaps. A gap without an end ends the feed.
        while True:
            window = self.receiver.gap(self._epoch)
            if window is None or window[2] != "silent":
                break
            if window[1] is None:
                self.done = True
                return
            end = int(math.ceil(window[1]))
            self._epoch = end if end > self._epoch else self._epoch + 1
        start = self._epoch * _EPOCH_MS
        if start > self._wire_ms:
            self._wire_ms = start

    def pump(self, now_ms, sink):
        """Pass the bytes that arrived up to now_ms to sink; computes a sentence only when its turn comes."""
        # NOTE: Receiver.write_sentence() computes in floats and formats text,
        # about 1.2 KB of short-lived heap per sentence (measured on the unix
        # port), in the heap the firmware shares. A board's UART allocates nothing.
        while not self.done:
            if now_ms < self._wire_ms:
                return
            if self._len == 0:
                self._len = self.receiver.write_sentence(self._epoch, self._index, self._buf)
                self._sent = 0
            n = self._len
            due = (now_ms - self._wire_ms) * self.baud // 10_000
            if due > n:
                due = n
            if due > self._sent:
                sink.put(self._buf, self._sent, due)
                self._sent = due
            if due < n:
                return

            # The line is busy until the last stop bit of this sentence has gone out.
            self._wire_ms += (n * 10_000 + self.baud - 1) // self.baud
            self._len = 0
            self.sentences_sent += 1
            self._index += 1
            if self._index == SENTENCES_PER_EPOCH:
                self._index = RMC
                self._epoch += 1
                self._skip_silent()
