# firmware/track.py on real receiver captures: distance against gpsd's positions, position hold while standing
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# The captures in tests/data/nmea are GPSD regression logs (see LICENSE.md
# there). Each one goes through firmware/nmea.py and firmware/track.py under
# CPython, the track fed after every position sentence with a fix, as the GNSS
# reader's on_fix callback would. The reference distance is the haversine sum
# over gpsd's own TPV positions in the matching .log.chk, on a sphere of the
# mean Earth radius, computed here and nowhere else.
# Run with -s to see the distances per capture.

import ast
import inspect
import json
import math
import subprocess
import sys
import types

import pytest

from conftest import REPO, micropython_bin

sys.path.insert(0, str(REPO))

from firmware import track as track_module  # noqa: E402

DATA = REPO / "tests" / "data" / "nmea"
EARTH_RADIUS_M = 6371008.8

# The defaults proposed for firmware/defaults.py.
CFG = {
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

# Receivers standing still: every speed they report is below 0.2 m/s, yet
# gpsd's positions wander by the metres given (haversine sum over all epochs).
STATIONARY = {
    "beidou-bd.log": 53.91,
    "geos-1m.log": 25.79,
    "ublox-8.log": 17.52,
    "ublox-neo-m9n-nmea.log": 3.69,
    "neo-m8n.log": 3.42,
    "skytraq-dgps.log": 2.86,
    "firefly-II.log": 2.45,
    "mt3339.log": 2.08,
    "sirfstarv-nmea.log": 1.33,
    "quectel-L70.log": 1.23,
}

# Receivers moving at driving speed, which the track must see start. Of the
# captures here only garmin15x.log qualifies: 7 s at 7.6 to 9.8 km/h along a
# straight 15.4 m. nmea-rtk.log stays below 6 km/h, and quectel-eg25-g.log
# jumps by up to 200 m between epochs with reported speeds below 12 km/h.
DRIVING = ("garmin15x.log", "bundg_zeus_9.log")


def haversine_m(lat1, lon1, lat2, lon2):
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def gpsd_epochs(name):
    """Return [(ms of the UTC day or None, lat, lon)] of gpsd's TPV reports with a position, one per epoch.

    An epoch is one time. gpsd reports the first fixes of some captures without
    a time, and those count as one epoch per position.
    """
    epochs = []
    for line in (DATA / (name + ".chk")).read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        report = json.loads(line)
        if report.get("class") != "TPV" or "lat" not in report:
            continue
        ms = None
        t = report.get("time")  # "2022-10-18T11:32:58.000Z"
        if t:
            ms = (int(t[11:13]) * 3600 + int(t[14:16]) * 60) * 1000 + round(float(t[17:-1]) * 1000)
        epoch = (ms, report["lat"], report["lon"])
        if epochs and epochs[-1][0] == ms and (ms is not None or epochs[-1] == epoch):
            continue
        epochs.append(epoch)
    return epochs


def gpsd_path_m(epochs):
    return sum(haversine_m(a[1], a[2], b[1], b[2]) for a, b in zip(epochs, epochs[1:]))


def replay(path, cfg):
    """Feed a capture to a Track and return (ms, reason, moving, lat, lon, odometer mm) after every fix."""
    # Runs under CPython and, sent as source, under the unix port.
    from firmware import nmea
    from firmware.track import Track

    parser = nmea.Parser()
    track = Track(cfg)
    results = []
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    for raw in lines:
        start = raw.find(b"$")
        if raw.startswith(b"#") or start < 0:
            continue
        line = raw[start:].rstrip(b"\r")
        code = parser.parse(line, len(line))
        if code not in (nmea.RMC, nmea.GGA, nmea.GNS, nmea.GLL) or not parser.valid or parser.hour is None:
            continue
        now_ms = ((parser.hour * 60 + parser.minute) * 60 + parser.second) * 1000 + parser.ms
        reason = track.update_fix(now_ms, parser, True)
        odometer_mm = track.odometer_m * 1000 + track.odometer_rest_mm
        results.append((now_ms, reason, track.moving, track.lat, track.lon, odometer_mm))
    return results


def replay_on_unix_port(name, cfg):
    code = "import sys\nsys.path.insert(0, %r)\n%s\nprint(repr(replay(%r, %r)))\n" % (
        str(REPO), inspect.getsource(replay), str(DATA / name), cfg)
    proc = subprocess.run([micropython_bin(), "-X", "heapsize=4M", "-c", code], cwd=str(REPO),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr or proc.stdout
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def clock(ms):
    """Format ms of the UTC day as "11:32:58.000", or "(no time)"."""
    if ms is None:
        return "(no time)"
    return "%02d:%02d:%06.3f" % (ms // 3600000, ms // 60000 % 60, ms % 60000 / 1000)


def e6(degrees):
    return round(degrees * 1e6)


@pytest.mark.parametrize("name", sorted(STATIONARY))
def test_stationary_capture_holds_one_position(name):
    epochs = gpsd_epochs(name)
    wander = gpsd_path_m(epochs)
    results = replay(DATA / name, CFG)
    print("%s: %d gpsd epochs %s..%s UTC, gpsd path %.2f m, track %.3f m, distinct positions %d" % (
        name, len(epochs), clock(epochs[0][0]), clock(epochs[-1][0]), wander, results[-1][5] / 1000,
        len({(r[3], r[4]) for r in results})))
    # The capture does wander, so holding the position is what keeps the distance at 0.
    assert wander == pytest.approx(STATIONARY[name], abs=0.005)
    assert len(results) >= len(epochs)
    for now_ms, reason, moving, lat, lon, odometer_mm in results:
        assert reason == 0, (now_ms, reason)
        assert not moving, now_ms
        assert odometer_mm == 0, now_ms
        assert (lat, lon) == (results[0][3], results[0][4]), now_ms
    # The held position is the first fix, as gpsd decoded it. gpsd prints 9
    # decimals and the track keeps 6, so the last digit may differ by 1.
    first = epochs[0]
    assert abs(results[0][3] - e6(first[1])) <= 1
    assert abs(results[0][4] - e6(first[2])) <= 1


@pytest.mark.parametrize("name", DRIVING)
def test_driving_capture_distance_matches_gpsd(name):
    epochs = gpsd_epochs(name)
    results = replay(DATA / name, CFG)
    starts = [r[0] for r in results if r[1] & track_module.START]
    assert len(starts) == 1, starts
    assert results[-1][2], "moving at the end"

    # The odometer covers gpsd's epochs from the first up to the one whose fix
    # was accepted last, because the first fix is held until the start and
    # then counted from.
    last_change_ms = None
    odometer_mm = 0
    for r in results:
        if r[5] != odometer_mm:
            odometer_mm = r[5]
            last_change_ms = r[0]
    times = [e[0] for e in epochs]
    end = times.index(last_change_ms)
    reference = gpsd_path_m(epochs[: end + 1])
    ours = odometer_mm / 1000
    print("%s: epochs %s..%s UTC (%d of %d), start at %s, track %.3f m, gpsd %.3f m, %+.3f%%" % (
        name, clock(times[0]), clock(times[end]), end + 1, len(epochs), clock(starts[0]), ours, reference,
        (ours - reference) / reference * 100))
    assert reference >= 0.9 * gpsd_path_m(epochs)
    assert abs(ours - reference) <= 0.01 * reference
    # The last accepted position is gpsd's at that epoch.
    assert abs(results[-1][3] - e6(epochs[end][1])) <= 1
    assert abs(results[-1][4] - e6(epochs[end][2])) <= 1


@pytest.mark.parametrize("name", ("garmin15x.log", "beidou-bd.log", "nmea-rtk.log"))
def test_unix_port_gives_same_results(name):
    # nmea-rtk.log: 10 fixes a second, with start and stop thresholds low
    # enough for its walking speed, so that every trigger runs.
    cfg = dict(CFG, start_kmh=3, start_s=1, stop_kmh=1) if name == "nmea-rtk.log" else CFG
    ours = replay(DATA / name, cfg)
    reasons = 0
    for r in ours:
        reasons |= r[1]
    assert ours == replay_on_unix_port(name, cfg)
    if name == "nmea-rtk.log":
        assert reasons & track_module.START, reasons
        assert reasons & track_module.HEADING, reasons


# Every int in update() must stay a small int on a 32-bit port (below 2**30),
# or MicroPython allocates a long int. The unix port is 64-bit, so heap_lock()
# in tests/mp cannot show this. Here every arithmetic result in a copy of
# firmware/track.py is checked while extreme tracks run.


class _CheckInts(ast.NodeTransformer):
    """Wraps every arithmetic expression and augmented assignment in _small()."""

    def _wrap(self, node):
        return ast.copy_location(ast.Call(func=ast.Name("_small", ast.Load()), args=[node], keywords=[]), node)

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return self._wrap(node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        return self._wrap(node)

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        load = ast.copy_location(type(node.target)(**{**vars(node.target), "ctx": ast.Load()}), node.target)
        value = self._wrap(ast.copy_location(ast.BinOp(load, node.op, node.value), node))
        return ast.copy_location(ast.Assign(targets=[node.target], value=value), node)


def checked_track_module(largest):
    source = (REPO / "firmware" / "track.py").read_text()
    tree = ast.fix_missing_locations(_CheckInts().visit(ast.parse(source)))
    module = types.ModuleType("track_checked")

    def small(value):
        if isinstance(value, int) and not isinstance(value, bool):
            assert -(2**30) <= value < 2**30, value
            largest[0] = max(largest[0], abs(value))
        return value

    module._small = small
    exec(compile(tree, "firmware/track.py", "exec"), module.__dict__)
    return module


def test_update_ints_stay_small():
    largest = [0]
    checked = checked_track_module(largest)
    extreme = dict(CFG, moving_s=86400, stopped_s=86400, distance_m=100000, speed_kmh=250, start_kmh=50,
                   stop_kmh=50)
    for cfg in (CFG, extreme):
        for lat0, lon0 in ((0, 0), (89900000, 179990000), (-89900000, -179990000), (45000000, -179999000)):
            # Odometer near its documented maximum, 2 fixes a second up to a
            # tick count near 2**30, steps of up to 0.8 km a fix, jumps across
            # the globe, 250 km/h, every course, gaps and the ignition.
            track = checked.Track(cfg, 1000000000 - 10000000)
            now = 0
            lat = lat0
            lon = lon0
            for i in range(6000):
                now += 500 if i % 500 else 80000000
                moving = (i // 700) % 2 == 0
                if moving:
                    lat += (i * 37) % 14000 - 7000 if abs(lat) < 89000000 else -(lat // abs(lat)) * 5000
                    lon += (i * 53) % 14000 - 7000
                    if lon >= 180000000:
                        lon -= 360000000
                    elif lon < -180000000:
                        lon += 360000000
                fix_lat = -lat if i % 211 == 0 else lat
                speed = (i * 997) % 135000 if moving else i % 5
                valid = i % 97 != 0
                track.update(now, valid, fix_lat, lon, speed, (i * 1777) % 36001, i % 300 != 0)
    assert 2**29 < largest[0] < 2**30, largest[0]
