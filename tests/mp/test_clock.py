# Tests of firmware.clock: calendar arithmetic and when GNSS time is trusted
from firmware import clock


class _Fix:
    def __init__(self, y, mo, d, h, mi, s, ms=0, valid=True):
        self.year, self.month, self.day = y, mo, d
        self.hour, self.minute, self.second, self.ms = h, mi, s, ms
        self.valid = valid


def test_unix_seconds_known_values():
    # Reference values: date -u -d '2000-01-01' +%s etc.
    assert clock.unix_seconds(1970, 1, 1, 0, 0, 0) == 0
    assert clock.unix_seconds(2000, 1, 1, 0, 0, 0) == 946684800
    assert clock.unix_seconds(2026, 3, 20, 6, 15, 30) == 1773987330
    assert clock.unix_seconds(2024, 2, 29, 23, 59, 59) == 1709251199


def test_iso_round_trip():
    assert clock.iso_utc(1773987330) == "2026-03-20T06:15:30Z"
    assert clock.iso_utc(951782400) == "2000-02-29T00:00:00Z"
    assert clock.iso_utc(0) == "1970-01-01T00:00:00Z"


def test_two_agreeing_fixes_set_clock():
    c = clock.Clock(min_year=2026)
    assert not c.offer_fix(_Fix(2026, 3, 16, 8, 10, 16), now_ms=1000)
    assert c.unix_ms_at(1000) is None
    assert c.offer_fix(_Fix(2026, 3, 16, 8, 10, 17), now_ms=2000)
    assert c.unix_ms_at(2000) == clock.unix_seconds(2026, 3, 16, 8, 10, 17) * 1000
    assert c.unix_ms_at(1500) == clock.unix_seconds(2026, 3, 16, 8, 10, 16) * 1000 + 500


def test_default_dates_never_set_clock():
    # Case F3: 1980 default date, then a week-rollover date 2006-07-31 with status A.
    c = clock.Clock(min_year=2026)
    assert not c.offer_fix(_Fix(1980, 1, 5, 23, 59, 58, valid=False), now_ms=0)
    assert not c.offer_fix(_Fix(2006, 7, 31, 8, 10, 15), now_ms=1000)
    assert not c.offer_fix(_Fix(2006, 7, 31, 8, 10, 16), now_ms=2000)
    assert not c.synced()


def test_disagreeing_fixes_rejected():
    c = clock.Clock(min_year=2026)
    c.offer_fix(_Fix(2026, 3, 16, 8, 10, 16), now_ms=0)
    assert not c.offer_fix(_Fix(2026, 3, 16, 8, 15, 0), now_ms=1000), "a 284 s jump in 1 s of ticks"
    assert c.offer_fix(_Fix(2026, 3, 16, 8, 15, 1), now_ms=2000)


def test_uptime_accumulates():
    u = clock.Uptime()
    base = u._last
    assert u.ms(base + 500) == 500
    assert u.ms(base + 1500) == 1500


def test_civil_weekday():
    # 2026-12-04 is a Friday (weekday 4 with Monday = 0); 2000-01-01 a Saturday.
    assert clock.civil_from_unix(clock.unix_seconds(2026, 12, 4, 21, 31, 22)) == (2026, 12, 4, 4, 21, 31, 22)
    assert clock.civil_from_unix(946684800)[3] == 5


def test_drift_measured_once_a_minute():
    # The clock is set at tick 2000. The GNSS fixes then run 1 ms per 10 s
    # faster than ticks_ms(): 100 ppm, so the local clock falls behind.
    c = clock.Clock(min_year=2026)
    c.offer_fix(_Fix(2026, 3, 16, 8, 10, 16), now_ms=1000)
    assert c.offer_fix(_Fix(2026, 3, 16, 8, 10, 17), now_ms=2000)
    assert c.drift_ms is None
    assert c.drift_ppm is None
    # 30 s later: not due yet.
    assert not c.offer_fix(_Fix(2026, 3, 16, 8, 10, 47, 3), now_ms=32000)
    assert c.drift_checks == 0
    # 60 s after the set, GNSS time is 8:11:17.006 and the ticks give 8:11:17.000.
    assert not c.offer_fix(_Fix(2026, 3, 16, 8, 11, 17, 6), now_ms=62000)
    assert c.drift_checks == 1
    assert c.drift_ms == -6
    assert c.drift_ppm == -100
    # The next check comes 60 s later, not at the next fix.
    assert not c.offer_fix(_Fix(2026, 3, 16, 8, 11, 18, 6), now_ms=63000)
    assert c.drift_checks == 1
    assert not c.offer_fix(_Fix(2026, 3, 16, 8, 12, 17, 12), now_ms=122000)
    assert c.drift_checks == 2
    assert c.drift_ms == -12
    assert c.drift_max_ms == 12
    # The clock itself is not stepped: it still counts from the first fix.
    assert c.unix_ms_at(122000) == clock.unix_seconds(2026, 3, 16, 8, 12, 17) * 1000


def test_drift_ignores_invalid_and_default_dates():
    c = clock.Clock(min_year=2026)
    c.offer_fix(_Fix(2026, 3, 16, 8, 10, 16), now_ms=1000)
    c.offer_fix(_Fix(2026, 3, 16, 8, 10, 17), now_ms=2000)
    assert not c.offer_fix(_Fix(2026, 3, 16, 8, 11, 17, valid=False), now_ms=62000)
    assert not c.offer_fix(_Fix(2006, 7, 31, 8, 11, 17), now_ms=62000)
    assert c.drift_checks == 0
    assert c.drift_ms is None
    # A local clock ahead of GNSS gives a positive drift.
    assert not c.offer_fix(_Fix(2026, 3, 16, 8, 11, 16, 500), now_ms=62000)
    assert c.drift_ms == 500


def test_drift_skips_gnss_time_jumps():
    # A replayed capture that starts over sets GNSS time back 24 s. That is
    # counted as a jump, and the drift keeps the sum of the normal changes.
    c = clock.Clock(min_year=2026)
    c.offer_fix(_Fix(2026, 3, 16, 8, 10, 16), now_ms=1000)
    c.offer_fix(_Fix(2026, 3, 16, 8, 10, 17), now_ms=2000)
    c.offer_fix(_Fix(2026, 3, 16, 8, 11, 17, 6), now_ms=62000)
    assert c.drift_ms == -6
    c.offer_fix(_Fix(2026, 3, 16, 8, 11, 53, 12), now_ms=122000)
    assert c.time_jumps == 1
    assert c.drift_ms == -6
    assert c.drift_checks == 1
    # The next check is measured from the jumped time: 6 ms more in a minute.
    c.offer_fix(_Fix(2026, 3, 16, 8, 12, 53, 18), now_ms=182000)
    assert c.time_jumps == 1
    assert c.drift_ms == -12
    assert c.drift_checks == 2
