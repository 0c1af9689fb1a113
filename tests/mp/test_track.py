# Tests of firmware.track: triggers on hand-computed synthetic tracks, hysteresis, jitter, odometer file, allocation
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Positions are degrees x 10^6. One unit of latitude is 6371008.8 m * pi / 180
# / 1e6 = 0.1111951 m on the mean-radius sphere, so a step of 120 units north
# is 13.3434 m: 48.04 km/h at one fix per second. The expected distances in
# _STEPS were computed in CPython with haversine on that sphere, independently
# of firmware.track.

import os

import micropython

from firmware import log
from firmware.track import (DISTANCE, HEADING, REASONS, SPEED, START, STOP, TIME, Track, _step_mm, fix_e6,
                            load_odometer)

# The defaults proposed for firmware/defaults.py.
_CFG = {
    "moving_s": 300,
    "stopped_s": 3600,
    "distance_m": 100,
    "heading_deg": 10,
    "speed_kmh": 10,
    "start_kmh": 8,
    "start_s": 3,
    "stop_kmh": 5,
    "stop_s": 120,
    "ignition": True,
}

_LAT = 31200000  # 31.2 N, 121.4 E
_LON = 121400000
_NORTH_M = 0.1111951  # metres per unit of latitude
_PATH = "/tmp/vt-track-odometer"
_LOG_PATH = "/tmp/vt-track-log.txt"


def _cfg(**changes):
    cfg = dict(_CFG)
    cfg.update(changes)
    return cfg


def _kn(kmh):
    # NMEA speed, knots x 1000, for a speed in km/h (1 kn = 1.852 km/h).
    return int(kmh / 1.852 * 1000 + 0.5)


class Drive:
    """Feeds a Track one fix per second and records (second, reason) of every point."""

    def __init__(self, track):
        self.track = track
        self.t = 0  # seconds of the next fix
        self.lat = _LAT
        self.lon = _LON
        self.points = []

    def fix(self, kmh, dlat=0, dlon=0, course=0, ignition=True, valid=True):
        self.lat += dlat
        self.lon += dlon
        reason = self.track.update(self.t * 1000, valid, self.lat, self.lon, _kn(kmh), course, ignition)
        if reason:
            self.points.append((self.t, reason))
        self.t += 1
        return reason

    def north(self, seconds, kmh=48, dlat=120, course=0, ignition=True):
        # Drive north: dlat units per fix (120 units = 13.3434 m).
        for _ in range(seconds):
            self.fix(kmh, dlat, 0, course, ignition)

    def stand(self, seconds, kmh=0, ignition=True):
        for _ in range(seconds):
            self.fix(kmh, 0, 0, 0, ignition)


def _odometer(track):
    return track.odometer_m + track.odometer_rest_mm / 1000


def _started(cfg=None):
    # A Drive that has just started: fixes at 0, 1 and 2 s at 48 km/h, START
    # at 3 s. The first fix, held until then, is at _LAT + 120, and the START
    # fix at _LAT + 480 is accepted.
    d = Drive(Track(cfg or _cfg()))
    d.north(4)
    assert d.points == [(3, START)], d.points
    return d


# Conversions and distances


def test_fix_e6_values():
    # 31 deg 12.3456789 min = 31.20576131... deg.
    assert fix_e6(31, 123456789, False) == 31205761
    assert fix_e6(33, 520000000, True) == -33866667
    # 0.0003 min = 0.5 units, rounded away from zero.
    assert fix_e6(0, 300, False) == 1
    assert fix_e6(0, 300, True) == -1
    assert fix_e6(0, 299, False) == 0
    assert fix_e6(179, 599999999, True) == -180000000


# (lat1, lon1, lat2, lon2, haversine mm on the mean-radius sphere)
_STEPS = (
    (31200000, 121400000, 31200120, 121400000, 13343.4),
    (31200000, 121400000, 31200000, 121400120, 11413.5),
    (31200000, 121400000, 31200045, 121400038, 6172.6),
    (60000000, 25000000, 60000030, 25000090, 6013.8),
    (78200000, 15600000, 78200500, 15640000, 911236.9),
    (-33868000, 151209000, -33860000, 151230000, 2133295.4),
    (45000000, 7000000, 45090000, 7000000, 10007557.2),
    (0, 179999990, 0, -179999990, 2223.9),
    (31200000, 121400000, 31900000, 121800000, 86574604.8),
    (45000000, 7000000, 45000000, 7000000, 0.0),
)


def test_step_matches_haversine():
    for lat1, lon1, lat2, lon2, expected in _STEPS:
        got = _step_mm(lat1, lon1, lat2, lon2)
        # 1 mm of rounding plus 0.011%, the worst of 100,000 random steps of
        # up to 10 km at latitudes up to 80 in CPython.
        assert abs(got - expected) <= 1 + expected * 0.00011, (lat1, lon1, lat2, lon2, got, expected)
        assert _step_mm(lat2, lon2, lat1, lon1) == got


def test_step_of_distant_positions_is_capped():
    # 7 degrees apart: counted as 1000 km, so that no length reaches 2**30 mm.
    assert _step_mm(0, 0, 7000000, 0) == 1000000000
    assert _step_mm(10000000, 20000000, 10000000, -170000000) == 1000000000


# Triggers


def test_distance_every_100_m_at_computed_times():
    d = _started(_cfg(heading_deg=0, speed_kmh=0))
    # START at 3 s accepted the fix: 3 steps of 13.3434 m from the held first
    # fix, 40.03 m. A point needs 100 whole metres more, and the mark is the
    # whole metres at the point. 7 steps are 93.4 m and 8 steps 106.7 m, so
    # each point comes 8 fixes after the one before: 11, 19, ..., 99 s.
    d.north(97)
    assert d.t == 101
    assert d.points == [(3, START)] + [(t, DISTANCE) for t in range(11, 100, 8)], d.points
    # 100 steps of 13.3434 m.
    assert abs(_odometer(d.track) - 1334.34) < 0.1, _odometer(d.track)
    assert d.track.lat == _LAT + 101 * 120


def test_time_periods_moving_and_stopped():
    d = Drive(Track(_cfg(distance_m=0, heading_deg=0, speed_kmh=0, stop_s=60)))
    # Stopped from 0 s: a point every 3600 s.
    d.stand(7201)
    assert d.points == [(3600, TIME), (7200, TIME)], d.points
    # Driving from 7201 s: START 3 s later, then every 300 s.
    d.points = []
    d.north(700)
    assert d.points == [(7204, START), (7504, TIME), (7804, TIME)], d.points
    # Standing from 7901 s: STOP 60 s later, then every 3600 s.
    d.points = []
    d.stand(3700)
    assert d.points == [(7961, STOP), (11561, TIME)], d.points


def test_time_without_fix():
    track = Track(_cfg())
    assert track.update(0, False, 0, 0, None, None, True) == 0
    assert track.update(3599000, False, 0, 0, None, None, True) == 0
    assert track.update(3600000, False, 0, 0, None, None, True) == TIME
    assert track.lat is None
    assert not track.moving


def test_heading_in_90_degree_turn():
    d = _started(_cfg(distance_m=0, speed_kmh=0))
    # The START point took course 0. Turning east 5 degrees a second, each 10
    # degrees from the last point is a point: at 10, 20, ..., 90 degrees.
    for k in range(1, 19):
        d.fix(48, 60, 60, course=k * 500)
    assert d.points[1:] == [(3 + 2 * k, HEADING) for k in range(1, 10)], d.points
    # Through north: 0 to 355 degrees is a 5 degree turn, 0 to 350 a 10
    # degree turn, and 359 to 4 degrees is 14 degrees from 350.
    d = _started(_cfg(distance_m=0, speed_kmh=0))
    assert d.fix(48, 120, 0, course=35500) == 0
    assert d.fix(48, 120, 0, course=35000) == HEADING
    assert d.fix(48, 120, 0, course=35900) == 0
    assert d.fix(48, 120, 0, course=400) == HEADING


def test_heading_ignored_below_start_speed():
    d = _started(_cfg(distance_m=0, speed_kmh=0))
    # At 6 km/h the course is noise: no point for a 90 degree swing.
    for k in range(10):
        assert d.fix(6, 15, 0, course=9000 * (k % 2)) == 0
    # Back at speed, the course is compared with the START point's (0) again.
    assert d.fix(48, 120, 0, course=500) == 0
    assert d.fix(48, 120, 0, course=1000) == HEADING


def test_speed_change():
    d = _started(_cfg(distance_m=0, heading_deg=0))
    # From 48 km/h, 3 km/h more each second: 51, 54, 57, 60 (12 from 48: a
    # point), 63, 66, 69, 72 (12 from 60: a point).
    for k in range(1, 9):
        d.fix(48 + 3 * k, 120)
    assert d.points[1:] == [(7, SPEED), (11, SPEED)], d.points
    # Slowing down counts the same: 62 is 10 below 72.
    assert d.fix(62, 120) == SPEED


def test_triggers_at_the_same_fix():
    d = _started(_cfg(distance_m=0))
    # 15 degrees and 12 km/h at once.
    assert d.fix(60, 120, 0, course=1500) == HEADING | SPEED


def test_disabled_triggers_never_fire():
    d = Drive(Track(_cfg(moving_s=0, stopped_s=0, distance_m=0, heading_deg=0, speed_kmh=0, stop_s=60)))
    d.stand(10000)
    d.north(1000)
    for k in range(200):
        d.fix(20 + k % 60, 90, 90, course=(k * 1700) % 36000)
    d.stand(5000)
    assert d.points == [(10003, START), (11260, STOP)], d.points
    assert REASONS[4] == "start"
    assert REASONS[5] == "stop"


# Moving and stopped


def test_start_needs_speed_for_start_s():
    d = Drive(Track(_cfg()))
    # 7 km/h is below start_kmh: never a start.
    for _ in range(100):
        d.fix(7, 5)
    # 9 km/h for 2 s, then 7 km/h: the timer starts again.
    d.fix(9, 25)
    d.fix(9, 25)
    d.fix(7, 20)
    d.stand(5)
    assert d.points == [], d.points
    # 9 km/h from 108 s: at start_s = 3 s, START at 111 s.
    for _ in range(4):
        d.fix(9, 25)
    assert d.points == [(111, START)], d.points
    assert d.track.moving


def test_stop_needs_slow_speed_for_stop_s():
    d = _started(_cfg(distance_m=0, heading_deg=0, speed_kmh=0))
    # 6 km/h is at stop_kmh or faster: no stop however long.
    for _ in range(600):
        d.fix(6, 15)
    assert d.points[1:] == [(303, TIME), (603, TIME)], d.points
    # 3 km/h from 604 s would stop at 724 s, but 6 km/h for one fix at 654 s
    # starts the 120 s again: STOP at 775 s.
    d.points = []
    for _ in range(50):
        d.fix(3, 7)
    d.fix(6, 15)
    for _ in range(130):
        d.fix(3, 7)
    assert d.points == [(775, STOP)], d.points
    assert not d.track.moving


def test_ignition_off_stops_at_once():
    d = _started()
    d.north(10)
    assert d.fix(48, 120, ignition=False) == STOP
    assert not d.track.moving
    # Speed with the ignition off does not start.
    for _ in range(10):
        assert d.fix(48, 120, ignition=False) == 0
    assert not d.track.moving
    # With the ignition on again it does, after start_s.
    d.north(3)
    assert d.fix(48, 120) == START


def test_ignition_ignored_when_not_wired():
    d = Drive(Track(_cfg(ignition=False)))
    for _ in range(4):
        d.fix(48, 120, ignition=False)
    assert d.points == [(3, START)], d.points
    assert d.track.moving


def test_lost_fix_keeps_moving_state():
    d = _started()
    # 60 s without a fix (a tunnel) is neither slow nor fast.
    for _ in range(60):
        d.fix(0, 120, valid=False)
    assert d.track.moving
    assert d.track.lat == _LAT + 4 * 120
    # The fix after the tunnel is 64 steps from the first fix: all counted.
    d.fix(48, 120)
    assert abs(_odometer(d.track) - 64 * 120 * _NORTH_M) < 0.1, _odometer(d.track)


# Position hold and the odometer


def _jitter(i):
    # Pseudo-random offset of -270..270 units (about 30 m) for fix i.
    return (i * 7919 + 13) % 541 - 270


def test_jitter_while_stopped_gives_one_position():
    d = Drive(Track(_cfg()))
    for i in range(3600):
        # Receiver noise: about 30 m around the depot, 0..3 km/h, and a
        # 12 km/h spike every 100 s.
        d.lat = _LAT + _jitter(i)
        d.lon = _LON + _jitter(i + 1000)
        kmh = 12 if i % 100 == 50 else i % 4
        d.fix(kmh)
    assert d.points == [], d.points
    assert d.track.odometer_m == 0
    assert d.track.odometer_rest_mm == 0
    assert (d.track.lat, d.track.lon) == (_LAT + _jitter(0), _LON + _jitter(1000))
    assert not d.track.moving


def test_jitter_at_red_light_adds_nothing():
    d = _started()
    before = _odometer(d.track)
    lat, lon = d.track.lat, d.track.lon
    # 90 s at a red light, shorter than stop_s: still moving, position held.
    base = d.lat
    for i in range(90):
        d.lat = base + _jitter(i) // 10
        d.fix(i % 3)
    assert d.track.moving
    assert _odometer(d.track) == before
    assert (d.track.lat, d.track.lon) == (lat, lon)


def test_slow_crawl_distance_is_not_lost():
    d = _started()
    # 100 s at 3 km/h (below stop_kmh, shorter than stop_s): 7 units, 0.78 m,
    # a fix. Nothing is counted yet.
    for _ in range(100):
        d.fix(3, 7)
    assert abs(_odometer(d.track) - 3 * 120 * _NORTH_M) < 0.01
    # At speed again the crawl is counted with the next step.
    d.fix(48, 120)
    assert abs(_odometer(d.track) - (4 * 120 + 700) * _NORTH_M) < 0.01, _odometer(d.track)


def test_small_steps_wait_for_5_m():
    d = _started(_cfg(heading_deg=0, speed_kmh=0))
    # 12 km/h, 30 units (3.34 m) a fix: every second fix is accepted.
    d.fix(12, 30)
    assert d.track.lat == _LAT + 480
    d.fix(12, 30)
    assert d.track.lat == _LAT + 540
    assert abs(_odometer(d.track) - 420 * _NORTH_M) < 0.01


def test_jump_is_skipped():
    d = _started()
    d.north(5)
    # One fix 1 km east, then back on the line.
    assert d.fix(48, 120, 9000) == 0
    d.lon -= 9000
    d.north(5)
    assert d.track.jumps == 1
    assert abs(_odometer(d.track) - 14 * 120 * _NORTH_M) < 0.1, _odometer(d.track)
    # Three fixes in a row far away: the third is taken, as if the receiver moved.
    d.fix(48, 0, 9000)
    d.fix(48, 120, 0)
    assert d.track.jumps == 3
    assert abs(_odometer(d.track) - 14 * 120 * _NORTH_M) < 0.1
    d.fix(48, 120, 0)
    assert d.track.jumps == 4
    assert d.track.lon == _LON + 9000


def test_point_while_moving_takes_current_fix():
    d = _started(_cfg(distance_m=0, speed_kmh=0))
    # Steps of 20 units (2.2 m): the second fix, 4.4 m from the accepted one,
    # is a point for its turn, and is accepted for it.
    assert d.fix(20, 20, 0, course=0) == 0
    assert d.track.lat == _LAT + 480
    assert d.fix(20, 20, 0, course=1500) == HEADING
    assert d.track.lat == _LAT + 520
    assert abs(_odometer(d.track) - 400 * _NORTH_M) < 0.01


# The odometer on flash


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _logged():
    with open(_LOG_PATH) as f:
        return f.read()


def test_odometer_saved_and_read_back():
    _remove(_PATH)
    track = Track(_cfg(), 123456)
    assert track.save(_PATH)
    assert load_odometer(_PATH) == 123456
    with open(_PATH) as f:
        assert f.read() == "123456\n"
    assert Track(_cfg(), load_odometer(_PATH)).odometer_m == 123456


def test_missing_or_invalid_file_gives_zero():
    _remove(_LOG_PATH)
    log.setup("warning", _LOG_PATH, 4096)
    log.console = False
    try:
        _remove(_PATH)
        assert load_odometer(_PATH) == 0
        assert "no odometer file %s" % _PATH in _logged()
        for data in (b"", b"12x4\n", b"-5\n", b"1e6\n", b"\xff\xfe\x00", b"2000000000\n", b"123456789012\n"):
            with open(_PATH, "wb") as f:
                f.write(data)
            _remove(_LOG_PATH)
            assert load_odometer(_PATH) == 0, data
            assert "the odometer starts at 0 m" in _logged(), data
    finally:
        log.console = True
        log.setup("warning", None)
        _remove(_PATH)


def test_failed_save_is_logged():
    _remove(_LOG_PATH)
    log.setup("warning", _LOG_PATH, 4096)
    log.console = False
    try:
        track = Track(_cfg(), 5000)
        track.save_due = True
        assert not track.save("/tmp/vt-track-missing-dir/odometer")
        assert "failed to write the odometer (5000 m) to /tmp/vt-track-missing-dir/odometer" in _logged()
    finally:
        log.console = True
        log.setup("warning", None)
    # Not due again until another 1000 m or a stop.
    assert not track.save_due


def test_save_due_every_km_and_at_stop():
    d = _started(_cfg(stop_s=10))
    assert not d.track.save_due
    # 1000 m after the start: 75 steps (1000.8 m) in all.
    d.north(71)
    assert not d.track.save_due
    d.north(1)
    assert d.track.save_due
    assert d.track.save(_PATH)
    assert not d.track.save_due
    assert load_odometer(_PATH) == d.track.odometer_m == 1000
    # At the stop with 100 m not saved.
    d.north(8)
    d.stand(10)
    assert not d.track.save_due
    assert d.fix(0) == STOP
    assert d.track.save_due
    assert d.track.save(_PATH)
    assert load_odometer(_PATH) == d.track.odometer_m == 1107
    # A start and stop without new distance do not ask for a save.
    d.stand(4, kmh=9)
    d.stand(11)
    assert d.points[-2:] == [(98, START), (109, STOP)], d.points[-3:]
    assert not d.track.save_due
    assert d.track.odometer_m == 1107
    _remove(_PATH)


def test_save_wears_flash_little():
    import vfs

    import flash

    image = "/tmp/vt-track-flash.img"
    _remove(image)
    dev = flash.FileFlash(image, 2 * 1024 * 1024)
    vfs.VfsLfs2.mkfs(dev)
    vfs.mount(vfs.VfsLfs2(dev), "/vt-track-flash")
    try:
        track = Track(_cfg(), 123456)
        assert track.save("/vt-track-flash/odometer")
        before = dev.stats()
        for _ in range(300):
            track.odometer_m += 1000
            assert track.save("/vt-track-flash/odometer")
        after = dev.stats()
        assert load_odometer("/vt-track-flash/odometer") == 423456
    finally:
        vfs.umount("/vt-track-flash")
        _remove(image)
    erases = after["erases"] - before["erases"]
    programmed = after["program_bytes"] - before["program_bytes"]
    # Measured: 16 erases and 68,224 bytes for the 300 saves.
    assert erases <= 30, erases
    assert programmed <= 300 * 300, programmed


# Allocation


def test_heap_lock_detects_allocation():
    micropython.heap_lock()
    try:
        bytearray(8)
        allocated = True
    except MemoryError:
        allocated = False
    micropython.heap_unlock()
    assert not allocated


class _Fix:
    # The fields of nmea.Fix that update_fix() reads.
    valid = True
    lat_deg = 31
    lat_min_e7 = 120000000
    lat_neg = False
    lon_deg = 121
    lon_min_e7 = 240000000
    lon_neg = False
    speed_kn_e3 = 25918
    course_e2 = 0


def test_update_allocates_nothing():
    track = Track(_cfg(stop_s=30, stopped_s=200), 999500)
    fix = _Fix()
    # Every branch: stand with jitter, start, drive with turns and speed
    # changes, jumps, a gap, slow crawl, stop by speed and by ignition, the
    # time points, and update_fix() with and without a fix.
    n = 2400
    lats = [0] * n
    lons = [0] * n
    speeds = [0] * n
    courses = [0] * n
    lat = _LAT
    lon = _LON
    for i in range(n):
        phase = i // 400
        if phase in (0, 3):
            speeds[i] = i % 4
            lats[i] = lat + _jitter(i)
            lons[i] = lon + _jitter(i + 7)
            continue
        if phase == 5:
            speeds[i] = 3
            lat += 7
        else:
            speeds[i] = _kn(30 + i % 50)
            lat += 60 + i % 50
            lon += 60 - i % 120
        courses[i] = (i * 700) % 36000
        lats[i] = lat
        lons[i] = lon + (9000 if i % 97 == 0 else 0)

    reasons = bytearray(n)
    micropython.heap_lock()
    try:
        for i in range(n):
            now = i * 1000
            ignition = not (1190 <= i < 1200)
            valid = not (1700 <= i < 1760)
            reasons[i] = track.update(now, valid, lats[i], lons[i], speeds[i], courses[i], ignition)
            if i % 300 == 0:
                track.update_fix(now, fix, True)
                track.update_fix(now, None, True)
    finally:
        micropython.heap_unlock()

    seen = 0
    for r in reasons:
        seen |= r
    assert seen == TIME | DISTANCE | HEADING | SPEED | START | STOP, seen
    assert track.jumps > 0
    assert track.save_due
    assert track.odometer_m > 1000000
