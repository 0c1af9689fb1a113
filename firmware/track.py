# Track logic of the GNSS tracker: when a track point is due, moving or stopped, and the odometer
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
#   track = Track(cfg["track"], load_odometer())
#   # every second, with the current fix or None while there is none:
#   reason = track.update_fix(now_ms, gnss.fix if gnss.has_fix() else None, ignition)
#   if reason:
#       ...  # record a track point at track.lat, track.lon (degrees x 10^6)
#   if track.save_due:
#       track.save()
#
# update() returns 0 or the OR of the reason bits below. START and STOP come
# alone, while TIME, DISTANCE, HEADING and SPEED may come together. Each
# trigger is measured from the last point, whatever its reason, and 0 in the
# configuration turns it off.
#
# Moving and stopped have hysteresis: the track starts moving after the GNSS
# speed stayed at start_kmh or faster for start_s, and stops after it stayed
# below stop_kmh for stop_s. With the ignition wired (track.ignition), the
# ignition off stops the track at once and keeps it stopped.
#
# The odometer is the sum of straight lines between accepted positions. A
# position is accepted while moving, from a valid fix at stop_kmh or faster
# that lies at least _MIN_STEP_MM from the last accepted one, and that is not
# a jump (see _MAX_M_PER_S). A track point while moving also accepts the
# current fix. While stopped the last accepted position is held, so GNSS noise
# around a parked vehicle neither moves the position nor adds distance.
# Distance driven slowly is not lost, because the next accepted position is
# measured from the held one.
#
# update() and update_fix() allocate nothing: every value is a small int on a
# 32-bit port (below 2**30), with the bounds worked out at each product.
# load_odometer() and save() allocate and use the file system.
#
# Runs under MicroPython and CPython (for the host-side tests). Only
# load_odometer() and save() need MicroPython.

from array import array

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


try:
    from time import ticks_diff
except ImportError:  # CPython, where the tests pass plain millisecond counts

    def ticks_diff(a, b):
        return a - b


ODOMETER_PATH = "/odometer"

# Reason bits returned by update(). REASONS[i] is the name of bit i.
TIME = const(1)
DISTANCE = const(2)
HEADING = const(4)
SPEED = const(8)
START = const(16)
STOP = const(32)
REASONS = ("time", "distance", "heading", "speed", "start", "stop")

# Steps shorter than this are GNSS noise rather than motion. ublox-8.log in
# tests/data/nmea, standing still, moves less than 1 m from fix to fix but 13 m
# in 72 s. At 1 Hz, 5 m still keeps every fix at 18 km/h and faster.
_MIN_STEP_MM = const(5000)
# A fix that lies further from the last plausible fix than this speed allows is
# a jump (an outlier of a receiver with a poor view of the sky) and is skipped.
# 70 m/s is 252 km/h.
_MAX_M_PER_S = const(70)
# After this many jumps in a row the fix is taken as valid, because then the
# receiver did move or the earlier fix was the outlier.
_JUMPS_MAX = const(3)
# The odometer is due to be saved after this much distance, and at every stop.
# A save rewrites a file of a few bytes, which LittleFS keeps inline in the
# directory's metadata. In test_track.py (LittleFS on tools/sim/flash.py, an
# otherwise empty 2 MiB file system) 300 saves programmed about 230 bytes each
# and erased 16 blocks in all. At 90 km/h that is about 5 erases an hour, against
# about 360 an hour for the spool's flushes every 10 s (docs/benchmarks.md).
# A power cut loses at most this distance.
_SAVE_EVERY_M = const(1000)
# Odometer values beyond this are rejected when read (a million km).
_ODOMETER_MAX_M = const(1000000000)

# Millimetres per 10^-6 degree of latitude on a sphere of radius 6371008.8 m,
# the mean Earth radius that firmware.geo also uses: 6371008800 * pi / 180 / 1e6
# = 111.19508 mm, in Q10 fixed point 113864.76, stored as 113865.
_MM_Q10 = const(113865)
# Steps whose degree differences are at most this (1 km) are computed in Q10,
# longer ones in whole mm: 9400 * 113865 < 2**30.
_FINE_E6 = const(9400)
# Positions more than 6 degrees apart (667 km north-south) count as _FAR_MM
# apart, so that no length reaches 2**30 mm.
_FAR_E6 = const(6000000)
_FAR_MM = const(1000000000)
# The distances east and north are scaled down to at most this before they
# are squared: 2 * 23170**2 < 2**30.
_MAX_LEG = const(23170)
_DEG_180_E6 = const(180000000)
_DEG_360_E6 = const(360000000)


def _east_scales():
    # Millimetres per 10^-6 degree of longitude in Q10 at each whole degree of
    # latitude 0..90, and one more entry for the interpolation at 90. Computed
    # once at import. Single-precision floats (ESP32) are good to about 6e-8,
    # 0.007 of an entry, so each entry is within 1 of the exact value.
    from math import cos, pi

    return array("i", [int(_MM_Q10 * cos(d * pi / 180) + 0.5) for d in range(91)] + [0])


_EAST_Q10 = _east_scales()


def fix_e6(deg, min_e7, neg):
    """Convert an NMEA coordinate (nmea.Fix fields) to signed degrees x 10^6, rounded half away from zero."""
    # 10^6 / 60 / 10^7 = 1 / 600, and min_e7 < 6e8.
    value = deg * 1000000 + (min_e7 + 300) // 600
    return -value if neg else value


def _east_q10(lat_e6):
    # Return mm per 10^-6 degree of longitude in Q10 at a latitude, linearly
    # interpolated between whole degrees (error below 1e-4 of the value up to
    # latitude 80).
    if lat_e6 < 0:
        lat_e6 = -lat_e6
    i = lat_e6 // 1000000
    # f <= 15625, and neighbouring entries differ by at most 1988.
    f = (lat_e6 - i * 1000000) >> 6
    a = _EAST_Q10[i]
    return a - ((a - _EAST_Q10[i + 1]) * f + 7812) // 15625


def _mul_q10(d, q):
    # Return d * q / 1024 rounded, for 0 <= d <= _FAR_E6 and q <= _MM_Q10:
    # (d >> 10) * q <= 5859 * 113865 = 6.7e8 and (d & 1023) * q < 1.2e8.
    return (d >> 10) * q + (((d & 1023) * q + 512) >> 10)


def _step_mm(lat1, lon1, lat2, lon2):
    # Return the distance in mm between two positions in degrees x 10^6: the
    # equirectangular projection at their mean latitude on the mean-radius
    # sphere, the formula firmware.geo also uses. Within 1 mm plus 0.011% of
    # haversine for steps up to 10 km up to latitude 80 (the worst of 100,000
    # random steps in CPython).
    dlat = lat2 - lat1
    dlon = lon2 - lon1
    if dlon > _DEG_180_E6:
        dlon -= _DEG_360_E6
    elif dlon < -_DEG_180_E6:
        dlon += _DEG_360_E6
    if dlat < 0:
        dlat = -dlat
    if dlon < 0:
        dlon = -dlon
    if dlat > _FAR_E6 or dlon > _FAR_E6:
        return _FAR_MM

    # Millimetres north (y) and east (x), in Q10 for short steps (fraction = 10).
    q = _east_q10((lat1 + lat2) >> 1)
    if dlat <= _FINE_E6 and dlon <= _FINE_E6:
        y = dlat * _MM_Q10
        x = dlon * q
        fraction = 10
    else:
        y = _mul_q10(dlat, _MM_Q10)
        x = _mul_q10(dlon, q)
        fraction = 0

    # Scale both down by 2**shift, rounding once, until they can be squared.
    shift = 0
    m = x if x > y else y
    while m > _MAX_LEG:
        m >>= 1
        shift += 1
    if shift:
        half = 1 << (shift - 1)
        x = (x + half) >> shift
        y = (y + half) >> shift

    # Integer square root of x^2 + y^2 < 2**30, rounded to the nearest unit,
    # by Newton's iteration down from x + y >= the root.
    n = x * x + y * y
    if n == 0:
        return 0
    r = x + y
    while True:
        smaller = (r + n // r) >> 1
        if smaller >= r:
            break
        r = smaller
    if n - r * r > r:
        r += 1

    # Back to mm: r * 2**(shift - fraction), which is at most 1.42 * 6.7e8.
    shift -= fraction
    if shift >= 0:
        return r << shift
    return (r + (1 << (-shift - 1))) >> -shift


def _kn_e3(kmh):
    # km/h to knots x 1000 (1 kn = 1.852 km/h), rounded.
    return (kmh * 1000000 + 926) // 1852


class Track:
    """Track state of one vehicle: motion, held position, odometer and the track-point triggers."""

    def __init__(self, cfg_track, odometer_m=0):
        # Position of the last accepted fix, or the held position while
        # stopped, in degrees x 10^6. None before the first valid fix.
        self.lat = None
        self.lon = None
        self.moving = False
        self.odometer_m = odometer_m
        self.odometer_rest_mm = 0  # 0..999 mm beyond odometer_m, not saved
        # True when the odometer should be written to flash (save()).
        self.save_due = False
        self.jumps = 0  # fixes skipped as jumps since boot
        self._saved_m = odometer_m

        # The last fix that was not a jump, and consecutive jumps since.
        self._good_lat = None
        self._good_lon = None
        self._good_ms = 0
        self._jumps_in_row = 0

        # Hysteresis timers: since when the speed is at start_kmh or faster
        # while stopped, or below stop_kmh while moving (None: not now).
        self._fast_ms = None
        self._slow_ms = None

        # Values at the last track point. _point_ms is None until the first
        # update(), and the course and speed until a usable one comes.
        self._point_ms = None
        self._point_m = odometer_m
        self._point_course = None
        self._point_speed = None
        self.configure(cfg_track)

    def configure(self, cfg_track):
        """Take the periods, thresholds and triggers of a (validated) track configuration."""
        c = cfg_track
        self._moving_ms = c["moving_s"] * 1000
        self._stopped_ms = c["stopped_s"] * 1000
        self._distance_m = c["distance_m"]
        self._heading_e2 = c["heading_deg"] * 100
        self._speed_step = _kn_e3(c["speed_kmh"])
        self._start_kn = _kn_e3(c["start_kmh"])
        self._start_ms = c["start_s"] * 1000
        self._stop_kn = _kn_e3(c["stop_kmh"])
        self._stop_ms = c["stop_s"] * 1000
        self._use_ignition = c["ignition"]

    def update_fix(self, now_ms, fix, ignition):
        """Feed an nmea.Fix or Parser with a current fix, or None without one, and return what update() returns."""
        if fix is None or not fix.valid or fix.lat_deg is None or fix.lon_deg is None:
            return self.update(now_ms, False, 0, 0, None, None, ignition)
        return self.update(
            now_ms,
            True,
            fix_e6(fix.lat_deg, fix.lat_min_e7, fix.lat_neg),
            fix_e6(fix.lon_deg, fix.lon_min_e7, fix.lon_neg),
            fix.speed_kn_e3,
            fix.course_e2,
            ignition,
        )

    def update(self, now_ms, valid, lat_e6, lon_e6, speed_kn_e3, course_e2, ignition):
        """Feed one GNSS epoch (about once a second) and return 0 or the reason bits of a track point due now.

        now_ms is time.ticks_ms(). Without a valid fix only the time trigger
        and the ignition act. A speed of None counts as standing still.
        """
        # NOTE: a receiver that sends neither RMC nor VTG reports no speed,
        # so it never starts the track.
        if self._point_ms is None:
            self._point_ms = now_ms
        speed = 0 if speed_kn_e3 is None else speed_kn_e3
        if valid and self._jump(now_ms, lat_e6, lon_e6):
            valid = False
        if valid and self.lat is None:
            # The first fix is the held position.
            self.lat = lat_e6
            self.lon = lon_e6

        # Moving or stopped, with hysteresis.
        reason = 0
        ignition_off = self._use_ignition and not ignition
        if self.moving:
            if ignition_off:
                reason = STOP
            elif valid and speed < self._stop_kn:
                if self._slow_ms is None:
                    self._slow_ms = now_ms
                if ticks_diff(now_ms, self._slow_ms) >= self._stop_ms:
                    reason = STOP
            else:
                self._slow_ms = None
        elif valid and not ignition_off and speed >= self._start_kn:
            if self._fast_ms is None:
                self._fast_ms = now_ms
            if ticks_diff(now_ms, self._fast_ms) >= self._start_ms:
                reason = START
        else:
            self._fast_ms = None
        if reason:
            self.moving = reason == START
            self._fast_ms = None
            self._slow_ms = None
            if reason == STOP and self.odometer_m != self._saved_m:
                self.save_due = True

        # The odometer: only real motion moves the accepted position.
        usable = valid and self.moving and speed >= self._stop_kn
        if usable:
            step = _step_mm(self.lat, self.lon, lat_e6, lon_e6)
            if step >= _MIN_STEP_MM:
                self._accept(lat_e6, lon_e6, step)
                step = 0
        trusted_course = valid and course_e2 is not None and speed >= self._start_kn
        if trusted_course and self._point_course is None:
            self._point_course = course_e2
        if valid and self._point_speed is None:
            self._point_speed = speed

        # The triggers, measured from the last point.
        if not reason:
            period = self._moving_ms if self.moving else self._stopped_ms
            if period and ticks_diff(now_ms, self._point_ms) >= period:
                reason = TIME
            if self.moving and valid:
                if self._distance_m and self.odometer_m - self._point_m >= self._distance_m:
                    reason |= DISTANCE
                if self._heading_e2 and trusted_course:
                    turn = course_e2 - self._point_course
                    if turn < 0:
                        turn = -turn
                    if turn > 18000:
                        turn = 36000 - turn
                    if turn >= self._heading_e2:
                        reason |= HEADING
                if self._speed_step:
                    change = speed - self._point_speed
                    if change < 0:
                        change = -change
                    if change >= self._speed_step:
                        reason |= SPEED
        if not reason:
            return 0

        # A point while moving is placed at the current fix, also when it is
        # closer than _MIN_STEP_MM to the last accepted position.
        if usable and step > 0:
            self._accept(lat_e6, lon_e6, step)
        self._point_ms = now_ms
        self._point_m = self.odometer_m
        self._point_course = course_e2 if trusted_course else None
        self._point_speed = speed if valid else None
        return reason

    def _jump(self, now_ms, lat_e6, lon_e6):
        # Return True when the fix is too far from the last good fix for the
        # time between them, and remember the fix as good otherwise.
        if self._good_lat is not None:
            dt_ms = ticks_diff(now_ms, self._good_ms)
            if dt_ms < 1000:
                # Fixes come about once a second, so a shorter gap is timing noise.
                dt_ms = 1000
            # dt_ms < 2**30, so dt_ms // 100 * 7 < 7.6e7.
            if _step_mm(self._good_lat, self._good_lon, lat_e6, lon_e6) // 1000 > dt_ms // 100 * (_MAX_M_PER_S // 10):
                self.jumps += 1
                self._jumps_in_row += 1
                if self._jumps_in_row < _JUMPS_MAX:
                    return True
        self._jumps_in_row = 0
        self._good_lat = lat_e6
        self._good_lon = lon_e6
        self._good_ms = now_ms
        return False

    def _accept(self, lat_e6, lon_e6, step_mm):
        # Move the accepted position and add the step (at most _FAR_MM).
        self.lat = lat_e6
        self.lon = lon_e6
        rest = self.odometer_rest_mm + step_mm
        if rest >= 1000:
            metres = rest // 1000
            rest -= metres * 1000
            # NOTE: beyond 2**30 m (1.07 million km) odometer_m is a long int
            # on the ESP32, and then each change allocates.
            self.odometer_m += metres
            if self.odometer_m - self._saved_m >= _SAVE_EVERY_M:
                self.save_due = True
        self.odometer_rest_mm = rest

    def save(self, path=ODOMETER_PATH):
        """Write the odometer (whole metres) to path atomically, and return False after logging a failure."""
        from firmware.store import write_atomic

        # A failed write is not retried before the next due save, so a broken
        # file system is not written to every second.
        self.save_due = False
        self._saved_m = self.odometer_m
        try:
            write_atomic(path, "%d\n" % self.odometer_m)
        except OSError as e:
            from firmware import log

            log.get("track").error("failed to write the odometer (%d m) to %s: %s, trying again after %d m "
                                   "or at the next stop", self.odometer_m, path, e, _SAVE_EVERY_M)
            return False
        return True


def load_odometer(path=ODOMETER_PATH):
    """Return the odometer in metres saved at path, or 0 after logging a warning when the file is missing or invalid."""
    from firmware import log

    try:
        with open(path, "rb") as f:
            data = f.read(16)
    except OSError as e:
        log.get("track").warning("no odometer file %s (%s), so the odometer starts at 0 m", path, e)
        return 0
    text = data.strip()
    valid = 0 < len(text) <= 10
    for c in text:
        if c < 0x30 or c > 0x39:
            valid = False
    if valid:
        value = int(text)
        if value <= _ODOMETER_MAX_M:
            return value
    log.get("track").warning("odometer file %s contains %r, which is not a number of metres up to %d, "
                             "so the odometer starts at 0 m", path, data, _ODOMETER_MAX_M)
    return 0
