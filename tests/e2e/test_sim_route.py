# End-to-end test of the simulated GNSS route receiver: its UART bytes under the unix port, checked with pynmea2
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# A small MicroPython script builds a world from a route scenario, opens the
# GNSS UART and reads it while the world clock moves, printing each line with
# the world time at which it had arrived. Every sentence is parsed by pynmea2
# and compared with positions, speeds and courses that this file computes
# from the route by itself: linear interpolation, haversine speed, and a
# course from a local flat-earth approximation, so the great-circle bearing
# of the simulator is checked by a different method.

import datetime
import json
import math
import subprocess

import pynmea2
import pytest

from conftest import REPO

EARTH_RADIUS_M = 6371000.0  # the radius docs/scenario.md gives for the route speeds
BAUD = 9600
POLL_MS = 20

READER = """
import json, sys
sys.path[:] = ["tools/sim", "", ".frozen"]
import world
from drivers import board
from machine import UART

with open(sys.argv[1]) as f:
    sc = json.load(f)
w = world.World(sc)
world.set_current(w)
uart = UART(board.GNSS_UART_ID, baudrate=%d, rxbuf=4096)
print("open", w.now_ms())
pending = b""
for _ in range(int(float(sys.argv[2]) * 1000) // %d):
    w.advance(%d / 1000)
    data = uart.read()
    if not data:
        continue
    now = w.now_ms()
    pending += data
    while True:
        i = pending.find(b"\\n")
        if i < 0:
            break
        line = pending[: i + 1]
        pending = pending[i + 1 :]
        print("line", now, 1 if line.endswith(b"\\r\\n") else 0, line.decode().rstrip())
print("overflow", w.uart_overflow_bytes)
""" % (BAUD, POLL_MS, POLL_MS)

# South and west of the equator and Greenwich: standing, north, east, south-west
# at 95 km/h, standing again, with a nofix and a silent gap.
SANTIAGO = {
    "route": [
        [0, -33.45, -70.66],
        [4, -33.45, -70.66],
        [14, -33.449, -70.66],
        [24, -33.449, -70.6585],
        [34, -33.4506781, -70.6605113],
        [40, -33.4506781, -70.6605113],
    ],
    "date": "2026-03-16",
    "start": "10:00:00",
    "gaps": [{"from": 16, "to": 19, "kind": "nofix"}, {"from": 26, "to": 28.5, "kind": "silent"}],
    "hdop": 1.3,
    "sats": 8,
    "alt_m": 570.0,
}
# North and east, GPS talker, across midnight into a new year, north-east at
# first, then east, and an endless silent gap at the end.
MUNICH = {
    "route": [[0, 48.137, 11.575], [20, 48.1385, 11.5772], [30, 48.1385, 11.5812]],
    "date": "2024-12-31",
    "start": "23:59:50",
    "talker": "GP",
    "gaps": [{"from": 33, "kind": "silent"}],
}


def expected_at(route, t):
    """Return (lat, lon, speed kn, course deg or None) on the route at t, computed here, not by the simulator."""
    if t <= route[0][0]:
        return route[0][1], route[0][2], 0.0, None
    for (t0, lat0, lon0), (t1, lat1, lon1) in zip(route, route[1:]):
        if t0 <= t < t1:
            f = (t - t0) / (t1 - t0)
            lat = lat0 + (lat1 - lat0) * f
            lon = lon0 + (lon1 - lon0) * f
            if (lat0, lon0) == (lat1, lon1):
                return lat, lon, 0.0, None
            speed_kn = haversine_m(lat0, lon0, lat1, lon1) / (t1 - t0) / 1852 * 3600
            return lat, lon, speed_kn, flat_course_deg(lat0, lon0, lat1, lon1)
    return route[-1][1], route[-1][2], 0.0, None


def haversine_m(lat1, lon1, lat2, lon2):
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((phi2 - phi1) / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def flat_course_deg(lat1, lon1, lat2, lon2):
    # East and north offsets on a plane tangent at the mean latitude. Over a few
    # hundred metres this is within 0.01 degree of the great-circle bearing.
    east = (lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    north = lat2 - lat1
    return math.degrees(math.atan2(east, north)) % 360


def gap_at(nmea, t):
    for gap in nmea.get("gaps", []):
        if gap["from"] <= t and ("to" not in gap or t < gap["to"]):
            return gap["kind"]
    return None


def nmea_checksum(body):
    x = 0
    for c in body.encode():
        x ^= c
    return "%02X" % x


def run_reader(tmp_path, mp_bin, nmea, seconds):
    scenario = tmp_path / "route.json"
    scenario.write_text(json.dumps({"nmea": nmea}))
    script = tmp_path / "reader.py"
    script.write_text(READER)
    proc = subprocess.run([mp_bin, str(script), str(scenario), str(seconds)], cwd=str(REPO),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    open_ms = None
    overflow = None
    lines = []
    for row in proc.stdout.splitlines():
        kind, _, rest = row.partition(" ")
        if kind == "open":
            open_ms = int(rest)
        elif kind == "overflow":
            overflow = int(rest)
        elif kind == "line":
            at_ms, crlf, text = rest.split(" ", 2)
            lines.append((int(at_ms), crlf == "1", text))
    assert open_ms is not None and overflow is not None, proc.stdout
    return open_ms, overflow, lines


def epoch_of(msg, nmea):
    """Return the world second k of a sentence from its time of day and the scenario's start."""
    hours, minutes, seconds = (int(x) for x in nmea["start"].split(":"))
    start_s = hours * 3600 + minutes * 60 + seconds
    tod = msg.timestamp.hour * 3600 + msg.timestamp.minute * 60 + msg.timestamp.second
    assert msg.timestamp.microsecond == 0
    return (tod - start_s) % 86400


@pytest.mark.parametrize("name,nmea,seconds", [("santiago", SANTIAGO, 42), ("munich", MUNICH, 38)])
def test_route_sentences_match_route(tmp_path, mp_bin, name, nmea, seconds):
    open_ms, overflow, lines = run_reader(tmp_path, mp_bin, nmea, seconds)
    assert overflow == 0
    talker = nmea.get("talker", "GN")
    start_day = datetime.date.fromisoformat(nmea["date"])
    start_tod = datetime.datetime.strptime(nmea["start"], "%H:%M:%S")
    by_epoch = {}

    for at_ms, crlf, text in lines:
        # Framing: CRLF, at most 82 characters with it, and a checksum that
        # both our XOR and pynmea2 accept.
        assert crlf, text
        assert len(text) + 2 <= 82, text
        assert text.startswith("$") and text[-3] == "*", text
        assert text[-2:] == nmea_checksum(text[1:-3]), text
        msg = pynmea2.parse(text, check=True)
        assert msg.talker == talker, text
        assert msg.sentence_type in ("RMC", "GGA"), text
        k = epoch_of(msg, nmea)
        by_epoch.setdefault(k, []).append((at_ms, text, msg))

    first = -(-open_ms // 1000)
    last = seconds - 1
    for k in range(first, last + 1):
        kind = gap_at(nmea, k)
        if kind == "silent":
            assert k not in by_epoch, (k, by_epoch.get(k))
            continue
        assert k in by_epoch, "no sentences for epoch %d" % k
        (rmc_ms, rmc_text, rmc), (gga_ms, gga_text, gga) = by_epoch[k]
        assert rmc.sentence_type == "RMC" and gga.sentence_type == "GGA", (rmc_text, gga_text)
        assert len(rmc.data) == 12, rmc_text  # time ... mode, NMEA 0183 4.x without nav status
        assert len(gga.data) == 14, gga_text

        # Pacing: epoch k starts at k s; a byte takes 10 bit times, and GGA follows RMC.
        rmc_done = k * 1000 + len(rmc_text + "\r\n") * 10_000 / BAUD
        gga_done = k * 1000 + math.ceil(len(rmc_text + "\r\n") * 10_000 / BAUD) + len(gga_text + "\r\n") * 10_000 / BAUD
        assert rmc_done - 1 <= rmc_ms <= rmc_done + POLL_MS + 20, (k, rmc_ms, rmc_done)
        assert gga_done - 1 <= gga_ms <= gga_done + POLL_MS + 20, (k, gga_ms, gga_done)

        # Time of day and date: start + k seconds.
        when = datetime.datetime.combine(start_day, start_tod.time()) + datetime.timedelta(seconds=k)
        assert rmc.timestamp.replace(tzinfo=None) == when.time(), rmc_text
        assert gga.timestamp.replace(tzinfo=None) == when.time(), gga_text
        assert rmc.datestamp == when.date(), rmc_text

        if kind == "nofix":
            assert rmc.status == "V", rmc_text
            assert rmc.mode_indicator == "N", rmc_text
            assert rmc.lat == "" and rmc.lon == "" and rmc.spd_over_grnd is None, rmc_text
            assert gga.gps_qual == 0, gga_text
            assert gga.lat == "" and gga.lon == "", gga_text
            continue

        lat, lon, speed_kn, course = expected_at(nmea["route"], k)
        assert rmc.status == "A", rmc_text
        assert rmc.mode_indicator == "A", rmc_text
        assert gga.gps_qual == 1, gga_text
        assert gga.num_sats == "%02d" % nmea.get("sats", 10), gga_text
        assert float(gga.horizontal_dil) == nmea.get("hdop", 0.9), gga_text
        assert gga.altitude == nmea.get("alt_m", 100.0), gga_text
        for m, text in ((rmc, rmc_text), (gga, gga_text)):
            assert len(m.lat.split(".")[1]) == 5 and len(m.lon.split(".")[1]) == 5, text
            assert abs(m.latitude - lat) < 1e-5, (text, lat)
            assert abs(m.longitude - lon) < 1e-5, (text, lon)
        assert abs(rmc.spd_over_grnd - speed_kn) < 0.05, (rmc_text, speed_kn)
        if course is None:
            assert rmc.spd_over_grnd == 0, rmc_text
            assert rmc.true_course is None, rmc_text
        else:
            diff = (rmc.true_course - course + 180) % 360 - 180
            assert abs(diff) < 0.5, (rmc_text, course)

    # Nothing for epochs outside the run, and each epoch sent once.
    assert set(by_epoch) <= set(range(first, last + 2))
    for k, sentences in by_epoch.items():
        assert len(sentences) == 2 or k == last + 1, (k, sentences)


def test_route_speeds_cover_the_scenario(tmp_path, mp_bin):
    # The Santiago route has a 95 km/h stretch; make sure the run above saw it,
    # so the speed check is not only comparing zeros.
    _, _, lines = run_reader(tmp_path, mp_bin, SANTIAGO, 36)
    speeds = [pynmea2.parse(text).spd_over_grnd for _, _, text in lines if "RMC," in text and ",A," in text]
    kmh = max(speeds) * 1.852
    assert 94.5 < kmh < 95.5, speeds
    assert min(speeds) == 0
