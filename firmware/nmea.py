# NMEA 0183 sentence parser for GNSS receivers (RMC, GGA, VTG, GNS, GLL), without heap allocation
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Runs under MicroPython and CPython 3.11 and imports nothing from the firmware.
#
#   p = Parser()
#   code = p.parse(line, n)        # line: bytes/bytearray starting with '$'
#   if code and p.valid:
#       print(format_deg(p.lat_deg, p.lat_min_e7, p.lat_neg), utc_iso(p))
#
# parse() never raises on bad input and allocates nothing for the sentence types
# above or for rejected lines: digits are read straight from the caller's buffer
# with integer arithmetic, field offsets go to a preallocated array, and results
# are small ints, bools or None. Numbers are kept as scaled ints (minutes x 10^7,
# mm, knots x 1000) because the ESP32's single-precision floats hold only about
# 7 significant digits and every float is a heap object. The helper functions at
# the end allocate and are meant for building a record once per interval.

from array import array

try:
    from micropython import const
except ImportError:  # CPython, where the host-side tests import this module

    def const(value):
        return value


# Sentence codes returned by Parser.parse(). REJECTED (0) covers every line that
# was not accepted: bad framing, bad checksum, proprietary, malformed fields.
REJECTED = const(0)
RMC = const(1)
GGA = const(2)
VTG = const(3)
GNS = const(4)
GLL = const(5)
OTHER = const(6)  # valid talker sentence of a type we do not decode (GSV, GSA, ZDA, TXT, ...)

# Maximum line length the GNSS reader passes to parse().
MAX_LINE = const(256)

# Maximum line length parse() accepts after dropping CR/LF, because field offsets
# are kept as 16-bit numbers.
_MAX_LENGTH = const(0xFFFF)

# Field offsets kept per line. Sentences we decode have at most 14 fields;
# GSV with four satellites and a signal ID has 21.
_MAX_FIELDS = const(40)

# Sentence types as the three type characters packed into an int.
_TYPE_RMC = const(0x524D43)
_TYPE_GGA = const(0x474741)
_TYPE_VTG = const(0x565447)
_TYPE_GNS = const(0x474E53)
_TYPE_GLL = const(0x474C4C)

# Field reader results besides a value. Both are below any value a field can
# produce and still small ints on a 32-bit port (31-bit signed).
_EMPTY = const(-0x40000000)
_BAD = const(-0x3FFFFFFF)
_OK = const(1)

# Characters, as byte values.
_CR = const(0x0D)
_LF = const(0x0A)
_DOLLAR = const(0x24)
_STAR = const(0x2A)
_COMMA = const(0x2C)
_MINUS = const(0x2D)
_DOT = const(0x2E)
_CHAR_0 = const(0x30)
_CHAR_5 = const(0x35)
_CHAR_9 = const(0x39)
_CHAR_A = const(0x41)
_CHAR_E = const(0x45)
_CHAR_F = const(0x46)
_CHAR_N = const(0x4E)
_CHAR_P = const(0x50)
_CHAR_S = const(0x53)
_CHAR_V = const(0x56)
_CHAR_W = const(0x57)
_CHAR_Z = const(0x5A)
_LOWER_A = const(0x61)
_LOWER_F = const(0x66)

_MIN_E7_PER_DEG = const(600000000)  # 60 minutes x 10^7
_MAX_COURSE_E2 = const(36000)
_HALF_DAY_S = const(43200)

# Days per month of a non-leap year; index 0 is unused.
_MONTH_DAYS = b"\x00\x1f\x1c\x1f\x1e\x1f\x1e\x1f\x1f\x1e\x1f\x1e\x1f"

# GNS mode character -> GGA-style fix quality: A autonomous 1, D differential 2,
# P precise 3, R RTK fixed 4, F RTK float 5, E estimated 6, M manual 7,
# S simulator 8. N (no fix) and unknown letters give 0.
_GNS_QUALITY = b"ADPRFEMS"


class Fix:
    """Navigation state as ints, bools and None, where None means "not reported"."""

    def __init__(self):
        self.clear()

    def clear(self):
        """Forget every value, as at power-up."""
        # True when the latest position sentence (RMC, GGA, GNS, GLL) had a fix:
        # RMC status A, GGA quality > 0, a GNS mode other than all N, GLL status A.
        self.valid = False

        # GGA fix quality: 0 none, 1 GPS, 2 DGPS, 3 PPS, 4 RTK fixed, 5 RTK float,
        # 6 estimated, 7 manual, 8 simulator. GNS modes are mapped to the same numbers.
        self.quality = None

        # Position of the latest position sentence: whole degrees, minutes x 10^7
        # (0..599999999, more decimals rounded half up), True for south/west.
        # Degrees are None when that sentence had no position.
        self.lat_deg = None
        self.lat_min_e7 = None
        self.lat_neg = False
        self.lon_deg = None
        self.lon_min_e7 = None
        self.lon_neg = False

        self.alt_mm = None  # GGA/GNS altitude above mean sea level, mm
        self.speed_kn_e3 = None  # RMC/VTG speed over ground, knots x 1000
        self.course_e2 = None  # RMC/VTG course over ground, degrees true x 100
        self.sats = None  # GGA/GNS satellites used
        self.hdop_e2 = None  # GGA/GNS horizontal dilution of precision x 100

        # UTC time of the latest sentence that has a time field; ms is truncated.
        self.hour = None
        self.minute = None
        self.second = None
        self.ms = None

        # UTC date from the latest RMC (year = 2000 + yy), moved on by one day when
        # a sentence without a date shows that midnight has passed.
        self.year = None
        self.month = None
        self.day = None

        # Counts position sentences with a valid fix; a change means a new fix.
        self.position_count = 0

    def copy_from(self, other):
        """Copy every value of another Fix (or Parser) without allocating."""
        self.valid = other.valid
        self.quality = other.quality
        self.lat_deg = other.lat_deg
        self.lat_min_e7 = other.lat_min_e7
        self.lat_neg = other.lat_neg
        self.lon_deg = other.lon_deg
        self.lon_min_e7 = other.lon_min_e7
        self.lon_neg = other.lon_neg
        self.alt_mm = other.alt_mm
        self.speed_kn_e3 = other.speed_kn_e3
        self.course_e2 = other.course_e2
        self.sats = other.sats
        self.hdop_e2 = other.hdop_e2
        self.hour = other.hour
        self.minute = other.minute
        self.second = other.second
        self.ms = other.ms
        self.year = other.year
        self.month = other.month
        self.day = other.day
        self.position_count = other.position_count


def _days_in_month(year, month):
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month]


def _hex_value(c):
    if _CHAR_0 <= c <= _CHAR_9:
        return c - _CHAR_0
    if _CHAR_A <= c <= _CHAR_F:
        return c - _CHAR_A + 10
    if _LOWER_A <= c <= _LOWER_F:
        return c - _LOWER_A + 10
    return -1


class Parser(Fix):
    """Parser of one NMEA line at a time, holding the navigation state and line counters."""

    def __init__(self):
        super().__init__()
        # Start offset of each field. Field k ends at _starts[k + 1] - 1, so the
        # entry after the last field points just past the '*'.
        self._starts = array("H", bytes(2 * (_MAX_FIELDS + 1)))
        self._fields = 0
        self._too_many = False  # the line had more than _MAX_FIELDS fields
        # Results of the composite field readers (coordinate, time, date).
        self._coord_deg = 0
        self._coord_min_e7 = 0
        self._coord_neg = False
        self._lat_deg = 0
        self._lat_min_e7 = 0
        self._lat_neg = False
        self._t_hour = 0
        self._t_minute = 0
        self._t_second = 0
        self._t_ms = 0
        self._d_year = 0
        self._d_month = 0
        self._d_day = 0
        # Time of day (s) at which the date was last set or moved on.
        self._date_tod_s = 0
        self.reset_counters()

    def reset_counters(self):
        """Set every line counter to zero."""
        self.sentences = 0  # accepted: decoded types plus OTHER
        self.checksum_errors = 0  # '*hh' present but different from the XOR of the line
        self.no_checksum = 0  # no '*hh' at all
        self.garbage = 0  # no '$', non-printable byte, bad address or '*', too few fields
        self.proprietary = 0  # '$P...' sentences, skipped
        self.unsupported = 0  # valid framing, type not decoded (also counted in sentences)
        self.bad_values = 0  # decoded type with an unreadable or out-of-range field
        self.overlong = 0  # lines longer than the reader's buffer, counted by the reader

    def counters(self):
        """Return the line counters as a dict (allocates)."""
        return {
            "sentences": self.sentences,
            "checksum_errors": self.checksum_errors,
            "no_checksum": self.no_checksum,
            "garbage": self.garbage,
            "proprietary": self.proprietary,
            "unsupported": self.unsupported,
            "bad_values": self.bad_values,
            "overlong": self.overlong,
        }

    def parse(self, buf, n):
        """Parse buf[0:n], one line with or without CR/LF; return its sentence code or REJECTED."""
        # Drop the line terminator.
        if n > len(buf):
            n = len(buf)
        while n > 0 and (buf[n - 1] == _LF or buf[n - 1] == _CR):
            n -= 1
        if n < 7 or n > _MAX_LENGTH or buf[0] != _DOLLAR:
            self.garbage += 1
            return REJECTED

        # Find the field starts and the '*' and XOR everything in between.
        starts = self._starts
        starts[0] = 1
        fields = 1
        too_many = False
        checksum = 0
        star = -1
        i = 1
        while i < n:
            c = buf[i]
            if c == _STAR:
                star = i
                break
            # Only printable ASCII; a '$' inside a line means two lines ran together.
            if c < 0x20 or c > 0x7E or c == _DOLLAR:
                self.garbage += 1
                return REJECTED
            if c == _COMMA:
                if fields < _MAX_FIELDS:
                    starts[fields] = i + 1
                    fields += 1
                else:
                    too_many = True
            checksum ^= c
            i += 1
        if star < 0:
            self.no_checksum += 1
            return REJECTED
        if n - star != 3:
            self.garbage += 1
            return REJECTED
        high = _hex_value(buf[star + 1])
        low = _hex_value(buf[star + 2])
        if high < 0 or low < 0:
            self.garbage += 1
            return REJECTED
        # Compare numerically, so that '*00' is as good as any other value.
        if (high << 4 | low) != checksum:
            self.checksum_errors += 1
            return REJECTED
        starts[fields] = star + 1
        self._fields = fields
        self._too_many = too_many

        # The address is "$P" + maker + type for proprietary sentences, else a
        # two-character talker and a three-letter type, e.g. "$GBGGA".
        if buf[1] == _CHAR_P:
            self.proprietary += 1
            return REJECTED
        # starts[1] - 1 is the end of the address, also when the line has no comma.
        if starts[1] != 7:
            self.garbage += 1
            return REJECTED
        for i in range(1, 6):
            c = buf[i]
            if not (_CHAR_A <= c <= _CHAR_Z or _CHAR_0 <= c <= _CHAR_9):
                self.garbage += 1
                return REJECTED

        kind = buf[3] << 16 | buf[4] << 8 | buf[5]
        if kind == _TYPE_RMC:
            code = self._rmc(buf)
        elif kind == _TYPE_GGA:
            code = self._gga(buf)
        elif kind == _TYPE_VTG:
            code = self._vtg(buf)
        elif kind == _TYPE_GNS:
            code = self._gns(buf)
        elif kind == _TYPE_GLL:
            code = self._gll(buf)
        else:
            self.unsupported += 1
            code = OTHER
        if code != REJECTED:
            self.sentences += 1
        return code

    # Field readers. Each reads field k of the current line; the caller has
    # checked that the line has that many fields.

    def _too_short(self, min_fields):
        # Count and reject a line with fewer fields than its type needs, or with
        # more than the offset array holds.
        if self._fields < min_fields or self._too_many:
            self.garbage += 1
            return True
        return False

    def _decimal(self, buf, k, places, int_digits, signed):
        # Return the field as an int scaled by 10^places, rounded half up on the
        # first dropped digit, or _EMPTY / _BAD. A '-' is _BAD unless signed.
        # int_digits + places <= 9 keeps the value a small int on 32-bit ports.
        starts = self._starts
        i = starts[k]
        end = starts[k + 1] - 1
        if i == end:
            return _EMPTY

        neg = False
        if buf[i] == _MINUS:
            if not signed:
                return _BAD
            neg = True
            i += 1
        value = 0
        whole = 0
        decimals = -1  # -1 until the '.' is seen
        round_up = False
        digits = 0
        while i < end:
            c = buf[i]
            i += 1
            if c == _DOT:
                if decimals >= 0:
                    return _BAD
                decimals = 0
                continue
            if c < _CHAR_0 or c > _CHAR_9:
                return _BAD
            digits += 1
            if decimals < 0:
                whole += 1
                if whole > int_digits:
                    return _BAD
                value = value * 10 + c - _CHAR_0
            elif decimals < places:
                value = value * 10 + c - _CHAR_0
                decimals += 1
            elif decimals == places:
                round_up = c >= _CHAR_5
                decimals += 1

        if digits == 0:
            return _BAD
        if decimals < 0:
            decimals = 0
        while decimals < places:
            value *= 10
            decimals += 1
        if round_up:
            value += 1
        if neg:
            return -value
        return value

    def _char(self, buf, k):
        # Return the one character of field k, 0 when empty, -1 when longer.
        starts = self._starts
        i = starts[k]
        size = starts[k + 1] - 1 - i
        if size == 0:
            return 0
        if size == 1:
            return buf[i]
        return -1

    def _empty(self, k):
        starts = self._starts
        return starts[k] == starts[k + 1] - 1

    def _coord(self, buf, k, max_deg, positive, negative):
        # Read "dddmm.mmmm" in field k and the hemisphere letter in field k+1
        # into _coord_deg, _coord_min_e7 and _coord_neg.
        if self._empty(k):
            return _EMPTY
        hemisphere = self._char(buf, k + 1)
        if hemisphere == positive:
            self._coord_neg = False
        elif hemisphere == negative:
            self._coord_neg = True
        else:
            return _BAD

        # Whole part: degrees then two digits of minutes. Fraction: minutes x 10^7.
        starts = self._starts
        i = starts[k]
        end = starts[k + 1] - 1
        whole = 0
        whole_digits = 0
        while i < end and buf[i] != _DOT:
            c = buf[i]
            if c < _CHAR_0 or c > _CHAR_9 or whole_digits == 5:
                return _BAD
            whole = whole * 10 + c - _CHAR_0
            whole_digits += 1
            i += 1
        if whole_digits == 0:
            return _BAD
        fraction = 0
        places = 0
        round_up = False
        if i < end:
            i += 1  # skip the '.'
        while i < end:
            c = buf[i]
            if c < _CHAR_0 or c > _CHAR_9:
                return _BAD
            if places < 7:
                fraction = fraction * 10 + c - _CHAR_0
            elif places == 7:
                round_up = c >= _CHAR_5
            places += 1
            i += 1
        while places < 7:
            fraction *= 10
            places += 1
        if round_up:
            fraction += 1

        deg = whole // 100
        minutes = whole % 100
        if minutes >= 60:
            return _BAD
        min_e7 = minutes * 10000000 + fraction
        if min_e7 >= _MIN_E7_PER_DEG:
            # Rounding 59.99999995 up reaches a whole degree.
            deg += 1
            min_e7 -= _MIN_E7_PER_DEG
        if deg > max_deg or (deg == max_deg and min_e7 > 0):
            return _BAD
        self._coord_deg = deg
        self._coord_min_e7 = min_e7
        return _OK

    def _time(self, buf, k):
        # Read "hhmmss" with optional decimals into the _t_* values.
        starts = self._starts
        i = starts[k]
        end = starts[k + 1] - 1
        if i == end:
            return _EMPTY
        if end - i < 6:
            return _BAD
        for j in range(i, i + 6):
            c = buf[j]
            if c < _CHAR_0 or c > _CHAR_9:
                return _BAD
        hour = (buf[i] - _CHAR_0) * 10 + buf[i + 1] - _CHAR_0
        minute = (buf[i + 2] - _CHAR_0) * 10 + buf[i + 3] - _CHAR_0
        second = (buf[i + 4] - _CHAR_0) * 10 + buf[i + 5] - _CHAR_0
        # 60 is a leap second.
        if hour > 23 or minute > 59 or second > 60:
            return _BAD

        # Fraction of a second: the first three digits, so ms is truncated.
        ms = 0
        i += 6
        if i < end:
            if buf[i] != _DOT:
                return _BAD
            i += 1
            scale = 100
            while i < end:
                c = buf[i]
                if c < _CHAR_0 or c > _CHAR_9:
                    return _BAD
                ms += (c - _CHAR_0) * scale
                scale //= 10
                i += 1
        self._t_hour = hour
        self._t_minute = minute
        self._t_second = second
        self._t_ms = ms
        return _OK

    def _date(self, buf, k):
        # Read "ddmmyy" into the _d_* values.
        starts = self._starts
        i = starts[k]
        end = starts[k + 1] - 1
        if i == end:
            return _EMPTY
        if end - i != 6:
            return _BAD
        for j in range(i, end):
            c = buf[j]
            if c < _CHAR_0 or c > _CHAR_9:
                return _BAD
        day = (buf[i] - _CHAR_0) * 10 + buf[i + 1] - _CHAR_0
        month = (buf[i + 2] - _CHAR_0) * 10 + buf[i + 3] - _CHAR_0
        year = 2000 + (buf[i + 4] - _CHAR_0) * 10 + buf[i + 5] - _CHAR_0
        if month < 1 or month > 12 or day < 1 or day > _days_in_month(year, month):
            return _BAD
        self._d_year = year
        self._d_month = month
        self._d_day = day
        return _OK

    # State updates, called only after every field of a sentence has been read,
    # so that a rejected sentence changes nothing.

    def _set_time(self, result, has_date):
        if result == _EMPTY:
            self.hour = None
            self.minute = None
            self.second = None
            self.ms = None
            return
        tod_s = self._t_hour * 3600 + self._t_minute * 60 + self._t_second
        if has_date:
            self._date_tod_s = tod_s
        elif self.day is not None and self._date_tod_s - tod_s > _HALF_DAY_S:
            # A dateless sentence (GGA, GNS, GLL) from after midnight arrived
            # before the next RMC, so the date moves on by one day.
            self._next_day()
            self._date_tod_s = tod_s
        self.hour = self._t_hour
        self.minute = self._t_minute
        self.second = self._t_second
        self.ms = self._t_ms

    def _next_day(self):
        year = self.year
        month = self.month
        if self.day < _days_in_month(year, month):
            self.day += 1
            return
        self.day = 1
        if month < 12:
            self.month = month + 1
        else:
            self.month = 1
            self.year = year + 1

    def _read_position(self, buf, k):
        # Read latitude (fields k, k+1) into _lat_* and longitude (k+2, k+3) into
        # _coord_*. Returns _OK, _BAD, or _EMPTY when either one is missing.
        lat = self._coord(buf, k, 90, _CHAR_N, _CHAR_S)
        self._lat_deg = self._coord_deg
        self._lat_min_e7 = self._coord_min_e7
        self._lat_neg = self._coord_neg
        lon = self._coord(buf, k + 2, 180, _CHAR_E, _CHAR_W)
        if lat == _BAD or lon == _BAD:
            return _BAD
        if lat == _OK and lon == _OK:
            return _OK
        return _EMPTY

    def _set_position(self, position, valid):
        # Store what _read_position() read; a fix without a position is no fix.
        if position == _OK:
            self.lat_deg = self._lat_deg
            self.lat_min_e7 = self._lat_min_e7
            self.lat_neg = self._lat_neg
            self.lon_deg = self._coord_deg
            self.lon_min_e7 = self._coord_min_e7
            self.lon_neg = self._coord_neg
        else:
            valid = False
            self.lat_deg = None
            self.lat_min_e7 = None
            self.lat_neg = False
            self.lon_deg = None
            self.lon_min_e7 = None
            self.lon_neg = False
        self.valid = valid
        if valid:
            self.position_count += 1

    def _reject_values(self):
        self.bad_values += 1
        return REJECTED

    # Sentence decoders. Each returns its sentence code, or REJECTED after
    # counting why.

    def _rmc(self, buf):
        # $--RMC,time,status,lat,N/S,lon,E/W,speed kn,course,ddmmyy,magvar,E/W[,mode[,nav status]]
        if self._too_short(10):
            return REJECTED
        time = self._time(buf, 1)
        status = self._char(buf, 2)
        position = self._read_position(buf, 3)
        speed = self._decimal(buf, 7, 3, 5, False)
        course = self._decimal(buf, 8, 2, 3, False)
        date = self._date(buf, 9)
        mode = 0
        if self._fields > 12:
            mode = self._char(buf, 12)
        if (
            time == _BAD
            or position == _BAD
            or speed == _BAD
            or course == _BAD
            or course > _MAX_COURSE_E2
            or date == _BAD
            or status < 0
            or mode < 0
        ):
            return self._reject_values()

        if date == _OK:
            self.year = self._d_year
            self.month = self._d_month
            self.day = self._d_day
        else:
            self.year = None
            self.month = None
            self.day = None
        self._set_time(time, date == _OK)
        self.speed_kn_e3 = None if speed == _EMPTY else speed
        self.course_e2 = None if course == _EMPTY else course
        # NMEA 2.3 added the mode field. Mode N means "not valid" whatever the status is.
        self._set_position(position, status == _CHAR_A and mode != _CHAR_N)
        return RMC

    def _gga(self, buf):
        # $--GGA,time,lat,N/S,lon,E/W,quality,sats,hdop,alt,M,geoid sep,M,age,station
        if self._too_short(10):
            return REJECTED
        time = self._time(buf, 1)
        position = self._read_position(buf, 2)
        quality = self._decimal(buf, 6, 0, 2, False)
        sats = self._decimal(buf, 7, 0, 3, False)
        hdop = self._decimal(buf, 8, 2, 4, False)
        alt = self._decimal(buf, 9, 3, 6, True)
        if (
            time == _BAD
            or position == _BAD
            or quality == _BAD
            or sats == _BAD
            or hdop == _BAD
            or alt == _BAD
        ):
            return self._reject_values()

        self._set_time(time, False)
        self.quality = None if quality == _EMPTY else quality
        self.sats = None if sats == _EMPTY else sats
        self.hdop_e2 = None if hdop == _EMPTY else hdop
        self.alt_mm = None if alt == _EMPTY else alt
        self._set_position(position, quality != _EMPTY and quality > 0)
        return GGA

    def _gns(self, buf):
        # $--GNS,time,lat,N/S,lon,E/W,mode per constellation,sats,hdop,alt,geoid sep,age,station[,nav status]
        if self._too_short(10):
            return REJECTED
        time = self._time(buf, 1)
        position = self._read_position(buf, 2)
        sats = self._decimal(buf, 7, 0, 3, False)
        hdop = self._decimal(buf, 8, 2, 4, False)
        alt = self._decimal(buf, 9, 3, 6, True)
        if (
            time == _BAD
            or position == _BAD
            or sats == _BAD
            or hdop == _BAD
            or alt == _BAD
        ):
            return self._reject_values()

        # The quality is that of the first constellation with a fix.
        quality = 0
        starts = self._starts
        for i in range(starts[6], starts[7] - 1):
            c = buf[i]
            if c != _CHAR_N:
                quality = self._gns_quality(c)
                break
        self._set_time(time, False)
        self.quality = quality
        self.sats = None if sats == _EMPTY else sats
        self.hdop_e2 = None if hdop == _EMPTY else hdop
        self.alt_mm = None if alt == _EMPTY else alt
        self._set_position(position, quality > 0)
        return GNS

    def _gns_quality(self, c):
        for i in range(len(_GNS_QUALITY)):
            if _GNS_QUALITY[i] == c:
                return i + 1
        return 0

    def _gll(self, buf):
        # $--GLL,lat,N/S,lon,E/W,time,status[,mode]
        if self._too_short(7):
            return REJECTED
        position = self._read_position(buf, 1)
        time = self._time(buf, 5)
        status = self._char(buf, 6)
        mode = 0
        if self._fields > 7:
            mode = self._char(buf, 7)
        if time == _BAD or position == _BAD or status < 0 or mode < 0:
            return self._reject_values()

        self._set_time(time, False)
        self._set_position(position, status == _CHAR_A and mode != _CHAR_N)
        return GLL

    def _vtg(self, buf):
        # $--VTG,course true,T,course magnetic,M,speed kn,N,speed km/h,K[,mode]
        if self._too_short(9):
            return REJECTED
        course = self._decimal(buf, 1, 2, 3, False)
        speed = self._decimal(buf, 5, 3, 5, False)
        if course == _BAD or course > _MAX_COURSE_E2 or speed == _BAD:
            return self._reject_values()
        self.course_e2 = None if course == _EMPTY else course
        self.speed_kn_e3 = None if speed == _EMPTY else speed
        return VTG


# Helpers for building records. They accept a Parser or a Fix and allocate.


def format_deg(deg, min_e7, neg):
    """Format degrees and minutes x 10^7 as decimal degrees with 7 decimals, e.g. "-17.1416667".

    Integer arithmetic only, because a single-precision float cannot hold
    10^-7 degree at 121 degrees. Returns None when deg is None.
    """
    if deg is None:
        return None
    fraction = (min_e7 + 30) // 60  # 10^-7 degree, rounded half up
    if fraction >= 10000000:
        deg += 1
        fraction -= 10000000
    sign = "-" if neg and (deg or fraction) else ""
    return "%s%d.%07d" % (sign, deg, fraction)


def lat_str(p):
    """Return the latitude of p as a decimal-degree string, or None."""
    return format_deg(p.lat_deg, p.lat_min_e7, p.lat_neg)


def lon_str(p):
    """Return the longitude of p as a decimal-degree string, or None."""
    return format_deg(p.lon_deg, p.lon_min_e7, p.lon_neg)


def _to_float(deg, min_e7, neg):
    value = deg + min_e7 / _MIN_E7_PER_DEG
    return -value if neg else value


def lat_float(p):
    """Return the latitude of p in degrees (south negative) as a float, or None."""
    if p.lat_deg is None:
        return None
    return _to_float(p.lat_deg, p.lat_min_e7, p.lat_neg)


def lon_float(p):
    """Return the longitude of p in degrees (west negative) as a float, or None."""
    if p.lon_deg is None:
        return None
    return _to_float(p.lon_deg, p.lon_min_e7, p.lon_neg)


def speed_kmh_e2(p):
    """Return the speed of p in km/h x 100 (1 kn = 1.852 km/h, rounded half up), or None."""
    if p.speed_kn_e3 is None:
        return None
    return (p.speed_kn_e3 * 1852 + 5000) // 10000


def utc_iso(p):
    """Return the UTC date and time of p as "2026-03-20T06:15:30Z" (".sss" added when ms != 0), or None."""
    if p.year is None or p.hour is None:
        return None
    text = "%04d-%02d-%02dT%02d:%02d:%02d" % (p.year, p.month, p.day, p.hour, p.minute, p.second)
    if p.ms:
        return "%s.%03dZ" % (text, p.ms)
    return text + "Z"
