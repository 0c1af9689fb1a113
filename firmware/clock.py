# UTC clock set from GNSS: Unix epoch seconds, whatever epoch the port's time module uses
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# The terminal has no trustworthy time at boot: the ESP32 RTC counts from
# 2000-01-01 after a power cut and receivers report default dates (1980, 2000,
# a date 1024 weeks old) until they have a fix. The clock is set only from a
# valid fix whose date lies between the firmware build year and 20 years after
# it, and only when two consecutive fixes agree with the elapsed ticks. Until
# then records carry their uptime and no absolute time. Once set, the clock
# runs on ticks_ms(), and a fix each minute measures its drift from GNSS time.

import time
from micropython import const

from firmware import log

# Oldest year this firmware accepts from GNSS; receivers' default dates are older.
BUILD_YEAR = const(2026)
_MAX_YEARS_AHEAD = const(20)
# Two fixes agree when the GNSS time advanced as much as the ticks did, within this.
_AGREE_MS = const(1500)
# A set clock is compared with GNSS time this often. Not per fix: Unix ms are
# big ints on a 32-bit port, so each comparison allocates a few objects.
_DRIFT_CHECK_MS = const(60000)
# A drift this large is logged (again each time it doubles).
_DRIFT_WARN_MS = const(1000)
# Between two checks a crystal drifts a few ms (100 ppm of a minute is 6 ms).
# A larger change means the GNSS time jumped (a receiver reset, or a replayed
# capture that starts over), so it is counted in time_jumps, not as drift.
_JUMP_MS = const(1000)

_log = log.get("clock")


def days_from_civil(y, m, d):
    """Return days since 1970-01-01 for a proleptic Gregorian date."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def unix_seconds(y, mo, d, h, mi, s):
    """Return Unix epoch seconds (UTC) for a calendar date and time."""
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s


def civil_from_unix(unix_s):
    """Return (year, month, day, weekday, hour, minute, second) for Unix seconds; weekday 0 is Monday."""
    days, rem = divmod(int(unix_s), 86400)
    # Inverse of days_from_civil (same era arithmetic, run backwards).
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    y += m <= 2
    # 1970-01-01 was a Thursday (weekday 3).
    return y, m, d, (days + 3) % 7, rem // 3600, rem // 60 % 60, rem % 60


def iso_utc(unix_s):
    """Format Unix seconds as "2026-03-20T06:15:30Z" without the port's epoch or time zone."""
    y, m, d, _, hh, mm, ss = civil_from_unix(unix_s)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, m, d, hh, mm, ss)


class Clock:
    def __init__(self, min_year=BUILD_YEAR):
        self.min_year = min_year
        # Unix time in ms at tick base_ms once set; None until then.
        self.base_unix_ms = None
        self.base_ms = 0
        self._cand_unix_ms = None
        self._cand_ms = 0
        self.rejected = 0
        # The clock runs on ticks_ms() once set. Later fixes measure how far
        # it drifted: local time minus GNSS time, ms (positive: ahead), summed
        # over the checks without a jump of the GNSS time.
        self.drift_ms = None
        self.drift_max_ms = 0  # the largest absolute drift_ms seen
        self.drift_ppm = None  # drift_ms per time since the clock was set, parts per million
        self.drift_checks = 0
        self.time_jumps = 0
        self._offset_ms = None  # local minus GNSS time at the last check
        self._set_unix_ms = None
        self._drift_due_ms = 0
        self._drift_warn_ms = _DRIFT_WARN_MS

    def synced(self):
        return self.base_unix_ms is not None

    def offer_fix(self, p, now_ms=None):
        """Consider a valid GNSS fix (an nmea.Parser) as a time source; return True when the clock was set."""
        if p.year is None or p.hour is None or not p.valid:
            return False
        if not self.min_year <= p.year <= self.min_year + _MAX_YEARS_AHEAD:
            self.rejected += 1
            if self.rejected == 1:
                _log.warning("GNSS date %04d-%02d-%02d rejected (before %d or too far ahead)",
                             p.year, p.month, p.day, self.min_year)
            return False
        if now_ms is None:
            now_ms = time.ticks_ms()
        if self.base_unix_ms is not None:
            # NOTE: the clock is not stepped to GNSS again. Records of this boot
            # take their time from one offset, which a step would move for the
            # records already stored too. The drift is only measured.
            if time.ticks_diff(now_ms, self._drift_due_ms) >= 0:
                self._measure_drift(p, now_ms)
            return False
        unix_ms = unix_seconds(p.year, p.month, p.day, p.hour, p.minute, p.second) * 1000 + (p.ms or 0)
        cand = self._cand_unix_ms
        self._cand_unix_ms = unix_ms
        if cand is None:
            self._cand_ms = now_ms
            return False
        elapsed = time.ticks_diff(now_ms, self._cand_ms)
        self._cand_ms = now_ms
        if abs((unix_ms - cand) - elapsed) > _AGREE_MS or unix_ms <= cand:
            return False
        self.base_unix_ms = unix_ms
        self.base_ms = now_ms
        self._set_unix_ms = unix_ms
        self._drift_due_ms = time.ticks_add(now_ms, _DRIFT_CHECK_MS)
        _log.info("clock set from GNSS: %s", iso_utc(unix_ms // 1000))
        return True

    def _measure_drift(self, p, now_ms):
        self._drift_due_ms = time.ticks_add(now_ms, _DRIFT_CHECK_MS)
        gnss_ms = unix_seconds(p.year, p.month, p.day, p.hour, p.minute, p.second) * 1000 + (p.ms or 0)
        offset = self.unix_ms_at(now_ms) - gnss_ms
        last = self._offset_ms
        self._offset_ms = offset
        if last is None:
            last = 0  # the clock was set with no offset
        if abs(offset - last) > _JUMP_MS:
            self.time_jumps += 1
            return
        drift = (self.drift_ms or 0) + offset - last
        self.drift_ms = drift
        self.drift_checks += 1
        if abs(drift) > self.drift_max_ms:
            self.drift_max_ms = abs(drift)
        elapsed = gnss_ms - self._set_unix_ms
        if elapsed > 0:
            self.drift_ppm = drift * 1_000_000 // elapsed
        if abs(drift) >= self._drift_warn_ms:
            self._drift_warn_ms = 2 * abs(drift)
            _log.warning("clock drifted %d ms from GNSS time in %d s (%s ppm)", drift, elapsed // 1000,
                         self.drift_ppm)

    def unix_ms_at(self, ticks):
        """Return Unix time in ms at a ticks_ms() value, or None while the clock is not set."""
        if self.base_unix_ms is None:
            return None
        return self.base_unix_ms + time.ticks_diff(ticks, self.base_ms)

    def rebase(self, now_ms=None):
        """Move the tick anchor to now; call at least daily because ticks_diff only spans about 6 days."""
        if self.base_unix_ms is None:
            return
        if now_ms is None:
            now_ms = time.ticks_ms()
        self.base_unix_ms += time.ticks_diff(now_ms, self.base_ms)
        self.base_ms = now_ms


class Uptime:
    """Milliseconds since boot that keep counting past the ticks_ms() wrap (about 12 days)."""

    def __init__(self):
        self._last = time.ticks_ms()
        self._total_ms = 0

    def ms(self, now_ms=None):
        # Each call adds the ticks elapsed since the previous call, so it must be
        # called more often than every 6 days (the app does it every second).
        if now_ms is None:
            now_ms = time.ticks_ms()
        self._total_ms += time.ticks_diff(now_ms, self._last)
        self._last = now_ms
        return self._total_ms
