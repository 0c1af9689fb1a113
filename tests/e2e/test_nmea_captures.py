# Differential tests of firmware/nmea.py on real receiver captures, against pynmea2 and gpsd's output
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# The captures in tests/data/nmea are GPSD regression logs (see LICENSE.md there).
# Every data line goes through our parser under CPython and through pynmea2;
# every gpsd TPV report in the matching .log.chk is compared with our state
# after the input line that gpsd echoed just before it.
# Run with -s to see how many lines and reports were compared per file.

import datetime
import json
import sys
from pathlib import Path

import pynmea2
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from firmware import nmea  # noqa: E402

DATA = REPO / "tests" / "data" / "nmea"
CAPTURES = sorted(p.name for p in DATA.glob("*.log"))

# Captures every test run must have; the simulator replays skytraq-dgps.log by default.
REQUIRED = (
    "skytraq-dgps.log",
    "quectel-l76k-nmea.log",
    "beidou-bd.log",
    "ublox-8.log",
    "firefly-II.log",
    "geos-1m.log",
    "nmea-rtk.log",
    "neo-m8n.log",
    "garmin15x.log",
)

DECODED = {"RMC": nmea.RMC, "GGA": nmea.GGA, "VTG": nmea.VTG, "GNS": nmea.GNS, "GLL": nmea.GLL}

DEG_TOL = 1e-7  # against pynmea2, which converts the same digits in double precision
GPSD_DEG_TOL = 1e-6  # gpsd prints 9 decimals after its own conversion

# gpsd moves dates it finds too old forward by 1024 GPS weeks. Of our captures
# only neo-m8n.log (RMC dated 2015-03-18, gpsd reports 2034-11-01) is affected.
GPS_WEEK_ROLLOVER = datetime.timedelta(weeks=1024)


def data_lines(path):
    """Return the capture's data lines: no '#' header, no blank lines, CR removed."""
    lines = []
    for raw in path.read_bytes().split(b"\n"):
        raw = raw.rstrip(b"\r")
        if raw and not raw.startswith(b"#"):
            lines.append(raw)
    return lines


def reader_view(raw):
    """Return what the GNSS reader passes to the parser for this line.

    The reader starts a line at '$' and drops bytes outside a line, so a
    leading space (beidou-bd.log) or noise before the '$' (ublox-8.log) is gone.
    """
    start = raw.find(b"$")
    return raw if start < 0 else raw[start:]


def parse_pynmea2(line):
    """Return pynmea2's sentence object for the line, or None when it rejects it."""
    try:
        return pynmea2.parse(line.decode("latin-1"))
    except pynmea2.ParseError:
        return None


def unknown_to_pynmea2(line):
    """Return True when pynmea2 rejects the line only because it has no class for its sentence type."""
    try:
        pynmea2.parse(line.decode("latin-1"))
    except pynmea2.SentenceTypeError:
        return True
    except pynmea2.ParseError:
        return False
    return False


def rejection_count(p):
    return (
        p.checksum_errors + p.no_checksum + p.garbage + p.proprietary + p.bad_values
    )


def opt_float(value):
    if value is None or value == "":
        return None
    return float(value)


def our_coord(deg, min_e7, neg):
    if deg is None:
        return None
    value = deg + min_e7 / 600000000
    return -value if neg else value


def check_time(p, stamp, where):
    if stamp is None:
        assert p.hour is None, where
        return
    assert p.hour == stamp.hour, where
    assert p.minute == stamp.minute, where
    assert p.second == stamp.second, where
    # pynmea2 goes through a float, so allow it less than 1 ms of error.
    assert abs(p.ms * 1000 - stamp.microsecond) < 1000, where


def check_position(p, msg, where):
    if msg.lat == "" or msg.lon == "":
        assert p.lat_deg is None, where
        assert p.lon_deg is None, where
        return
    lat = our_coord(p.lat_deg, p.lat_min_e7, p.lat_neg)
    lon = our_coord(p.lon_deg, p.lon_min_e7, p.lon_neg)
    assert abs(lat - msg.latitude) <= DEG_TOL, where
    assert abs(lon - msg.longitude) <= DEG_TOL, where
    # The 7-decimal strings carry the same value.
    assert abs(float(nmea.lat_str(p)) - msg.latitude) <= DEG_TOL, where
    assert abs(float(nmea.lon_str(p)) - msg.longitude) <= DEG_TOL, where


def check_optional(ours, scale, theirs, tolerance, where):
    if theirs is None:
        assert ours is None, where
    else:
        assert ours is not None, where
        # tolerance is half a unit of our last digit; 1e-9 covers float error.
        assert abs(ours / scale - float(theirs)) <= tolerance + 1e-9, where


def compare_rmc(p, msg, where):
    check_time(p, msg.timestamp, where)
    check_position(p, msg, where)
    check_optional(p.speed_kn_e3, 1000, msg.spd_over_grnd, 0.0005, where)
    check_optional(p.course_e2, 100, msg.true_course, 0.005, where)
    if msg.datestamp is None:
        assert p.year is None, where
    else:
        assert (p.year, p.month, p.day) == (
            msg.datestamp.year,
            msg.datestamp.month,
            msg.datestamp.day,
        ), where
    has_position = msg.lat != "" and msg.lon != ""
    expected_valid = msg.status == "A" and msg.mode_indicator != "N" and has_position
    assert p.valid == expected_valid, where


def compare_gga(p, msg, where):
    check_time(p, msg.timestamp, where)
    check_position(p, msg, where)
    assert p.quality == msg.gps_qual, where
    check_optional(p.sats, 1, opt_float(msg.num_sats), 0, where)
    check_optional(p.hdop_e2, 100, opt_float(msg.horizontal_dil), 0.005, where)
    check_optional(p.alt_mm, 1000, msg.altitude, 0.0005, where)
    has_position = msg.lat != "" and msg.lon != ""
    expected_valid = bool(msg.gps_qual) and has_position
    assert p.valid == expected_valid, where


def compare_gns(p, msg, where):
    check_time(p, msg.timestamp, where)
    check_position(p, msg, where)
    check_optional(p.sats, 1, opt_float(msg.num_sats), 0, where)
    check_optional(p.hdop_e2, 100, opt_float(msg.hdop), 0.005, where)
    check_optional(p.alt_mm, 1000, opt_float(msg.altitude), 0.0005, where)
    has_fix = msg.mode_indicator.strip("N") != ""
    expected_valid = has_fix and msg.lat != ""
    assert p.valid == expected_valid, where
    assert (p.quality > 0) == has_fix, where


def compare_gll(p, msg, where):
    check_time(p, msg.timestamp, where)
    check_position(p, msg, where)
    expected_valid = msg.status == "A" and msg.faa_mode != "N" and msg.lat != ""
    assert p.valid == expected_valid, where


def compare_vtg(p, msg, where):
    check_optional(p.course_e2, 100, msg.true_track, 0.005, where)
    check_optional(p.speed_kn_e3, 1000, msg.spd_over_grnd_kts, 0.0005, where)


COMPARE = {
    "RMC": compare_rmc,
    "GGA": compare_gga,
    "GNS": compare_gns,
    "GLL": compare_gll,
    "VTG": compare_vtg,
}


def test_required_captures_present():
    for name in REQUIRED:
        assert (DATA / name).is_file(), name
        assert (DATA / (name + ".chk")).is_file(), name
    assert (DATA / "LICENSE.md").is_file()


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_matches_pynmea2(name):
    p = nmea.Parser()
    compared = {}
    rejected_by_both = 0
    ours_stricter = 0
    unknown_type = 0
    for number, raw in enumerate(data_lines(DATA / name), 1):
        where = "%s data line %d: %r" % (name, number, raw[:90])
        line = reader_view(raw)
        before = rejection_count(p)
        code = p.parse(line, len(line))
        msg = parse_pynmea2(raw)

        # A line pynmea2 rejects is rejected and counted by us too. When the
        # reader drops noise in front of a '$', what follows may still be a
        # good sentence, and then pynmea2 gets that part too.
        if msg is None:
            alone = nmea.Parser()
            if unknown_to_pynmea2(raw) and alone.parse(raw, len(raw)) == nmea.OTHER:
                # A well-formed sentence of a type neither parser decodes,
                # such as the Loran-C GLC of a chartplotter.
                assert code == nmea.OTHER, where
                unknown_type += 1
                continue
            alone = nmea.Parser()
            assert alone.parse(raw, len(raw)) == nmea.REJECTED, where
            assert rejection_count(alone) == 1, where
            rejected_by_both += 1
            if line != raw:
                msg = parse_pynmea2(line)
            if msg is None:
                assert code == nmea.REJECTED, where
                assert rejection_count(p) == before + 1, where
                continue

        # pynmea2 tolerates a missing checksum; we reject such lines.
        if b"*" not in line:
            assert code == nmea.REJECTED, where
            assert p.no_checksum > 0, where
            ours_stricter += 1
            continue

        if not isinstance(msg, pynmea2.TalkerSentence):
            assert code == nmea.REJECTED, where
            assert line.startswith(b"$P"), where
            continue
        kind = msg.sentence_type
        if kind not in DECODED:
            assert code == nmea.OTHER, where
            continue
        assert code == DECODED[kind], where
        COMPARE[kind](p, msg, where)
        compared[kind] = compared.get(kind, 0) + 1

    print(
        "\n%s: compared with pynmea2 %s; rejected by both %d; no checksum (only we reject) %d;"
        " types neither decodes %d" % (name, compared, rejected_by_both, ours_stricter, unknown_type)
    )
    assert sum(compared.values()) > 0
    # Every capture has position sentences; GGA or RMC must have been decoded.
    assert compared.get("GGA", 0) + compared.get("RMC", 0) > 0


def gpsd_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_matches_gpsd(name):
    # The .chk file echoes each input line and follows it with the reports gpsd
    # made after that line, so a report is compared with our state at that point.
    p = nmea.Parser()
    positions = 0
    times = 0
    altitudes = 0
    for raw in (DATA / (name + ".chk")).read_bytes().split(b"\n"):
        raw = raw.rstrip(b"\r")
        if not raw or raw.startswith(b"#"):
            continue
        if not raw.startswith(b"{"):
            line = reader_view(raw)
            p.parse(line, len(line))
            continue
        report = json.loads(raw)
        if report.get("class") != "TPV":
            continue
        where = "%s: %s" % (name, raw[:160])

        if "lat" in report:
            assert report["mode"] >= 2, where
            assert p.valid, where
            assert abs(nmea.lat_float(p) - report["lat"]) <= GPSD_DEG_TOL, where
            assert abs(nmea.lon_float(p) - report["lon"]) <= GPSD_DEG_TOL, where
            assert abs(float(nmea.lat_str(p)) - report["lat"]) <= GPSD_DEG_TOL, where
            assert abs(float(nmea.lon_str(p)) - report["lon"]) <= GPSD_DEG_TOL, where
            positions += 1

        if "altMSL" in report and p.alt_mm is not None:
            assert abs(p.alt_mm / 1000 - report["altMSL"]) <= 0.0005, where
            altitudes += 1

        # gpsd keeps the time of an earlier sentence when a later one has an
        # empty time field (hemi.log, quectel-eg25-g.log); we report None then.
        if "time" in report and p.hour is not None:
            theirs = gpsd_time(report["time"])
            ours = datetime.time(p.hour, p.minute, p.second, p.ms * 1000)
            assert ours == theirs.time(), where
            # hemi.log has no RMC, so gpsd's date comes from ZDA, which we skip.
            if p.year is not None:
                date = datetime.date(p.year, p.month, p.day)
                if name == "neo-m8n.log":
                    date += GPS_WEEK_ROLLOVER
                assert date == theirs.date(), where
            times += 1

    print(
        "\n%s: gpsd TPV reports compared: %d positions, %d times, %d altitudes"
        % (name, positions, times, altitudes)
    )
    assert positions > 0
    assert times > 0


def test_capture_counters_ublox8():
    # Line 11 is binary noise followed by a good RMC, and the capture ends in
    # the middle of an RMC, before its checksum.
    p = nmea.Parser()
    for raw in data_lines(DATA / "ublox-8.log"):
        p.parse(raw, len(raw))
    assert p.garbage == 1
    assert p.no_checksum == 1
    assert p.checksum_errors == 0

    p = nmea.Parser()
    for raw in data_lines(DATA / "ublox-8.log"):
        line = reader_view(raw)
        p.parse(line, len(line))
    assert p.garbage == 0
    assert p.no_checksum == 1
    assert p.sentences == 1008


def test_capture_counters_firefly():
    # All 23 GGA sentences carry a wrong checksum (a receiver firmware bug).
    p = nmea.Parser()
    for raw in data_lines(DATA / "firefly-II.log"):
        p.parse(raw, len(raw))
    assert p.checksum_errors == 23
    assert p.sentences == 46
