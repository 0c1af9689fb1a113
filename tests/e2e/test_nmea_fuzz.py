# Fuzz tests of firmware/nmea.py: random bytes, cut, spliced, oversized and mangled capture lines
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Every input comes from one seed. The fuzz tests print it (run with -s) and
# every failure message contains it; NMEA_FUZZ_SEED=<seed> repeats a run.
#
# For every input, parse() must return a sentence code without raising, count
# the line exactly once, and leave the navigation state unchanged when it
# rejects the line. An accepted line is checked against facts computed here:
# its framing, its '*hh' checksum (parse() rejects a line without one) and
# the ranges of the decoded values, also against the line's own text. Mutations
# that keep every field in NMEA format (emptied fields, changed digits, new
# values, checksum recomputed) must decode as pynmea2 decodes them, except
# where Checker.compare() names a known difference.

import datetime
import os
import random
import re
import sys
from pathlib import Path

import pynmea2
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# test_nmea_captures also puts the repository on sys.path for firmware.nmea.
from test_nmea_captures import (  # noqa: E402
    CAPTURES,
    COMPARE,
    DATA,
    DECODED,
    data_lines,
    parse_pynmea2,
    reader_view,
)

from firmware import nmea  # noqa: E402

# Inputs per fuzz kind. With 11 kinds the file runs in about 6 s on one core
# of a 2-core PC (CPython 3.11).
FUZZ_ROUNDS = 15000

SEED = int(os.environ.get("NMEA_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))

CODES = (nmea.REJECTED, nmea.RMC, nmea.GGA, nmea.VTG, nmea.GNS, nmea.GLL, nmea.OTHER)
# Attributes of the navigation state, as Fix() sets them.
STATE_NAMES = tuple(vars(nmea.Fix()))
HEX_DIGITS = b"0123456789ABCDEFabcdef"
ADDRESS = re.compile(rb"[A-Z0-9]{5}")
SHOWN_BYTES = 300  # bytes of an input shown in a failure message

# What a fuzz input must give. ANY: any code, with the checks that apply to
# it. REJECT: REJECTED. MUTATED: when accepted, pynmea2's decoding where the
# two can be compared. VALID: its sentence code and pynmea2's decoding.
ANY = "any"
REJECT = "reject"
MUTATED = "mutated"
VALID = "valid"


def xor(data):
    checksum = 0
    for c in data:
        checksum ^= c
    return checksum


def with_checksum(payload):
    """Return b"$" + payload + b"*hh" with the right checksum."""
    return b"$%s*%02X" % (payload, xor(payload))


def split_sentence(line):
    """Return (payload, line end) of a capture line "$payload*hh" + line end."""
    body = line.rstrip(b"\r\n")
    return body[1:-3], line[len(body) :]


def navigation_state(p):
    return tuple(getattr(p, name) for name in STATE_NAMES)


def outcome_count(p):
    # Every call of parse() adds one to exactly one of these.
    return (
        p.sentences
        + p.checksum_errors
        + p.no_checksum
        + p.garbage
        + p.proprietary
        + p.bad_values
    )


def check_framing(line, code, where):
    body = line.rstrip(b"\r\n")
    assert body[:1] == b"$", where
    assert body[-3:-2] == b"*", where
    payload = body[1:-3]
    for c in payload:
        assert 0x20 <= c <= 0x7E, where
        assert c not in b"$*", where
    hex_text = body[-2:]
    assert hex_text[0] in HEX_DIGITS, where
    assert hex_text[1] in HEX_DIGITS, where
    assert int(hex_text, 16) == xor(payload), where
    assert ADDRESS.fullmatch(payload[:5]), where
    assert payload[:1] != b"P", where
    assert payload[5:6] in (b",", b""), where
    assert code == DECODED.get(payload[2:5].decode(), nmea.OTHER), where


def check_coordinate(deg, min_e7, max_deg, where):
    assert 0 <= deg <= max_deg, where
    assert 0 <= min_e7 < 600000000, where
    assert deg < max_deg or min_e7 == 0, where


def check_ranges(p, where):
    if p.lat_deg is not None:
        check_coordinate(p.lat_deg, p.lat_min_e7, 90, where)
        check_coordinate(p.lon_deg, p.lon_min_e7, 180, where)
        assert abs(nmea.lat_float(p)) <= 90, where
        assert abs(nmea.lon_float(p)) <= 180, where
    else:
        assert p.lon_deg is None, where
        assert not p.valid, where
    if p.hour is not None:
        assert 0 <= p.hour <= 23, where
        assert 0 <= p.minute <= 59, where
        # 60 is a leap second.
        assert 0 <= p.second <= 60, where
        assert 0 <= p.ms <= 999, where
    if p.year is not None:
        # Two-digit years map to 2000..2099, and a dateless sentence after
        # midnight on 2099-12-31 moves the date to 2100.
        assert 2000 <= p.year <= 2100, where
        try:
            datetime.date(p.year, p.month, p.day)
        except ValueError as e:
            pytest.fail("no such date %d-%02d-%02d (%s): %s" % (p.year, p.month, p.day, e, where))
    if p.speed_kn_e3 is not None:
        assert 0 <= p.speed_kn_e3 < 100000000, where
    if p.course_e2 is not None:
        assert 0 <= p.course_e2 <= 36000, where
    if p.quality is not None:
        assert 0 <= p.quality <= 99, where
    if p.sats is not None:
        assert 0 <= p.sats <= 999, where
    if p.hdop_e2 is not None:
        assert 0 <= p.hdop_e2 < 1000000, where
    if p.alt_mm is not None:
        assert abs(p.alt_mm) < 1000000000, where


# Field numbers of the time, coordinates and date (the address is field 0).
TEXT_FIELDS = {
    "RMC": {"time": 1, "lat": 3, "lon": 5, "date": 9},
    "GGA": {"time": 1, "lat": 2, "lon": 4},
    "GNS": {"time": 1, "lat": 2, "lon": 4},
    "GLL": {"lat": 1, "lon": 3, "time": 5},
    "VTG": {},
}
# Fix quality of a GNS mode letter; N and other letters give 0.
GNS_QUALITY = {"A": 1, "D": 2, "P": 3, "R": 4, "F": 5, "E": 6, "M": 7, "S": 8}


def check_coordinate_text(text, max_deg, where):
    # "dddmm.mmmm": the last two digits before the '.' are whole minutes.
    whole = text.split(".")[0]
    assert whole.isdigit(), where
    assert int(whole) % 100 < 60, where
    minutes = float(text[max(len(whole) - 2, 0) :])
    # Rounding to 10^-7 minutes may take 90 deg + 10^-8' to 90 deg.
    assert int(whole) // 100 + minutes / 60 <= max_deg + 1e-9, where


def check_field_text(line, p, where):
    """Check the decoded time, coordinates, date and GNS quality against the line's own text."""
    fields = line.rstrip(b"\r\n")[1:-3].decode().split(",")
    kind = fields[0][2:5]
    if kind not in TEXT_FIELDS:
        return
    index = TEXT_FIELDS[kind]
    if "time" in index and fields[index["time"]]:
        text = fields[index["time"]]
        assert text[:6].isdigit(), where
        assert int(text[0:2]) <= 23, where
        assert int(text[2:4]) <= 59, where
        assert int(text[4:6]) <= 60, where
        assert (p.hour, p.minute, p.second) == (int(text[0:2]), int(text[2:4]), int(text[4:6])), where
    if "lat" in index and fields[index["lat"]]:
        check_coordinate_text(fields[index["lat"]], 90, where)
        assert fields[index["lat"] + 1] in ("N", "S"), where
    if "lon" in index and fields[index["lon"]]:
        check_coordinate_text(fields[index["lon"]], 180, where)
        assert fields[index["lon"] + 1] in ("E", "W"), where
    if "date" in index and fields[index["date"]]:
        text = fields[index["date"]]
        try:
            date = datetime.date(2000 + int(text[4:6]), int(text[2:4]), int(text[0:2]))
        except ValueError as e:
            pytest.fail("no such date %r (%s): %s" % (text, e, where))
        assert (p.year, p.month, p.day) == (date.year, date.month, date.day), where
    if kind == "GNS":
        letters = fields[6].lstrip("N")
        assert p.quality == GNS_QUALITY.get(letters[:1], 0), where


def pynmea2_converts(msg):
    """Return True when pynmea2 converts every typed field of msg.

    pynmea2 returns the field's text when its converter fails (a second of
    60), and its latitude and longitude raise ValueError for minutes without
    decimals.
    """
    for field in type(msg).fields:
        if len(field) >= 3 and isinstance(getattr(msg, field[1]), str):
            return False
    if isinstance(msg, pynmea2.nmea_utils.LatLonFix):
        try:
            msg.latitude
            msg.longitude
        except ValueError:
            return False
    return True


def pynmea2_century_differs(msg):
    # pynmea2 reads years 69..99 as 1969..1999; firmware/nmea.py reads every
    # two-digit year as 20yy (a receiver's default date 050180 is 2080).
    date = getattr(msg, "datestamp", None)
    return isinstance(date, datetime.date) and date.year < 2000


class Checker:
    """One Parser fed every input of a fuzz kind, with the checks for each result."""

    def __init__(self, kind, rng):
        self.kind = kind
        self.rng = rng
        self.p = nmea.Parser()
        self.inputs = 0
        self.accepted = 0
        self.compared = 0
        self.not_compared = 0

    def where(self, line):
        excerpt = line if len(line) <= SHOWN_BYTES else line[:SHOWN_BYTES] + b"... (%d bytes)" % len(line)
        return "NMEA_FUZZ_SEED=%d, %s input %d: %r" % (SEED, self.kind, self.inputs, excerpt)

    def arguments(self, line):
        # Return (buf, n) for parse(). The GNSS reader passes a buffer that is
        # longer than the line and contains the end of an earlier one, so
        # parse() must stop at n. An n beyond the buffer means the whole buffer.
        choice = self.rng.random()
        if choice < 0.45:
            return line, len(line)
        if choice < 0.9:
            return bytearray(line) + b"*00\r\n$GPRMC,1"[self.rng.randrange(14) :], len(line)
        return line, len(line) + self.rng.randrange(1, 300)

    def parse(self, line, expect=ANY):
        self.inputs += 1
        where = self.where(line)
        p = self.p
        state = navigation_state(p)
        count = outcome_count(p)
        try:
            code = p.parse(*self.arguments(line))
        except Exception as e:
            pytest.fail("parse() raised %r: %s" % (e, where))

        assert code in CODES, where
        assert outcome_count(p) == count + 1, where
        if code == nmea.REJECTED:
            assert expect != VALID, where
            assert navigation_state(p) == state, where
            return code
        assert expect != REJECT, where
        self.accepted += 1
        check_framing(line, code, where)
        check_ranges(p, where)
        check_field_text(line, p, where)
        if expect in (MUTATED, VALID) and code != nmea.OTHER:
            self.compare(line, code, expect, where)
        return code

    def compare(self, line, code, expect, where):
        msg = parse_pynmea2(line)
        assert msg is not None, where
        kind = msg.sentence_type
        assert DECODED[kind] == code, where
        if not pynmea2_converts(msg) or pynmea2_century_differs(msg):
            assert expect != VALID, where
            self.not_compared += 1
            return
        if kind in ("GLL", "GNS") and (msg.lat == "") != (msg.lon == ""):
            # compare_gll() and compare_gns() expect a fix when only the
            # latitude is there, but parse() takes a fix without a position
            # as no fix.
            assert not self.p.valid, where
            assert self.p.lat_deg is None, where
            self.not_compared += 1
            return
        COMPARE[kind](self.p, msg, where)
        self.compared += 1

    def report(self):
        print(
            "\nNMEA_FUZZ_SEED=%d %s: %d inputs, %d accepted, %d compared with pynmea2, %d not comparable"
            % (SEED, self.kind, self.inputs, self.accepted, self.compared, self.not_compared)
        )


def load_corpus():
    """Return the capture lines that parse() accepts, as the reader passes them, with CR LF."""
    p = nmea.Parser()
    lines = []
    for name in CAPTURES:
        for raw in data_lines(DATA / name):
            line = reader_view(raw) + b"\r\n"
            if p.parse(line, len(line)) != nmea.REJECTED:
                lines.append(line)
    return lines


CORPUS = load_corpus()
# Lines of the types parse() decodes, for the field mutations.
DECODED_CORPUS = [line for line in CORPUS if line[3:6].decode() in DECODED]


# Field values in NMEA format that both parsers read, by sentence type and
# field number (the address is field 0).


def time_field(rng):
    text = "%02d%02d%02d" % (rng.randrange(24), rng.randrange(60), rng.randrange(60))
    decimals = rng.randrange(5)
    if decimals:
        text += "." + "".join(rng.choice("0123456789") for _ in range(decimals))
    return text


def minutes_text(rng):
    return "%02d.%s" % (rng.randrange(60), "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 9))))


def lat_field(rng):
    if rng.random() < 0.05:
        return "9000." + "0" * rng.randrange(1, 6)
    return "%02d%s" % (rng.randrange(90), minutes_text(rng))


def lon_field(rng):
    if rng.random() < 0.05:
        return "18000." + "0" * rng.randrange(1, 6)
    return "%03d%s" % (rng.randrange(180), minutes_text(rng))


def date_field(rng):
    # Years below 69, which pynmea2 also reads as 20yy.
    day = datetime.date(2000, 1, 1) + datetime.timedelta(days=rng.randrange(25202))
    return day.strftime("%d%m%y")


def decimal_field(rng, whole_digits, decimals, signed=False):
    text = str(rng.randrange(10 ** rng.randrange(1, whole_digits + 1)))
    places = rng.randrange(decimals + 1)
    if places:
        text += "." + "".join(rng.choice("0123456789") for _ in range(places))
    if signed and rng.random() < 0.3:
        text = "-" + text
    return text


def course_field(rng):
    if rng.random() < 0.05:
        return "360.00"
    return "%d.%02d" % (rng.randrange(360), rng.randrange(100))


def ns_field(rng):
    return rng.choice("NS")


def ew_field(rng):
    return rng.choice("EW")


SCHEMA = {
    "RMC": (
        None,
        time_field,
        lambda rng: rng.choice("AV"),
        lat_field,
        ns_field,
        lon_field,
        ew_field,
        lambda rng: decimal_field(rng, 4, 4),
        course_field,
        date_field,
        lambda rng: decimal_field(rng, 2, 1),
        ew_field,
        lambda rng: rng.choice("ADEFMNRS"),
        lambda rng: rng.choice("SCUV"),
    ),
    "GGA": (
        None,
        time_field,
        lat_field,
        ns_field,
        lon_field,
        ew_field,
        lambda rng: str(rng.randrange(9)),
        lambda rng: "%02d" % rng.randrange(40),
        lambda rng: decimal_field(rng, 2, 2),
        lambda rng: decimal_field(rng, 5, 3, signed=True),
        lambda rng: "M",
        lambda rng: decimal_field(rng, 3, 2, signed=True),
        lambda rng: "M",
        lambda rng: decimal_field(rng, 2, 1),
        lambda rng: "%04d" % rng.randrange(1024),
    ),
    "GNS": (
        None,
        time_field,
        lat_field,
        ns_field,
        lon_field,
        ew_field,
        lambda rng: "".join(rng.choice("NADPRFEMS") for _ in range(rng.randrange(1, 5))),
        lambda rng: "%02d" % rng.randrange(40),
        lambda rng: decimal_field(rng, 2, 2),
        lambda rng: decimal_field(rng, 5, 3, signed=True),
        lambda rng: decimal_field(rng, 3, 2, signed=True),
        lambda rng: decimal_field(rng, 2, 1),
        lambda rng: "%04d" % rng.randrange(1024),
        lambda rng: rng.choice("SCUV"),
    ),
    "GLL": (
        None,
        lat_field,
        ns_field,
        lon_field,
        ew_field,
        time_field,
        lambda rng: rng.choice("AV"),
        lambda rng: rng.choice("ADEMNS"),
    ),
    "VTG": (
        None,
        course_field,
        lambda rng: "T",
        course_field,
        lambda rng: "M",
        lambda rng: decimal_field(rng, 4, 3),
        lambda rng: "N",
        lambda rng: decimal_field(rng, 4, 3),
        lambda rng: "K",
        lambda rng: rng.choice("ADEMN"),
    ),
}


# Fuzz kinds. Each yields (input, expectation).


def random_bytes(rng):
    for _ in range(FUZZ_ROUNDS):
        data = rng.randbytes(rng.randrange(130))
        choice = rng.random()
        if choice < 0.3:
            data = b"$" + data
        elif choice < 0.6:
            # Right framing and checksum, so only the byte checks can reject it.
            data = with_checksum(data.replace(b"*", b"").replace(b"$", b""))
        yield data, ANY


def random_text(rng):
    # Printable sentences made of the characters that fields contain, mostly
    # with the right checksum, so that they reach the field readers. Some
    # addresses are lowercase, proprietary, too short or too long.
    alphabet = "0123456789" * 4 + ".,,,,,--NSEWAVMTK "
    types = list(SCHEMA) + ["GSV", "TXT", "ZDA", "RM", "GGAX"]
    for _ in range(FUZZ_ROUNDS):
        address = rng.choice(("GP", "GN", "BD", "GA", "GL", "gp", "P", "G")) + rng.choice(types)
        fields = "".join(rng.choice(alphabet) for _ in range(rng.randrange(80)))
        payload = (address + "," + fields).encode()
        if rng.random() < 0.9:
            line = with_checksum(payload)
        else:
            line = b"$%s*%02X" % (payload, rng.randrange(256))
        yield line + rng.choice((b"", b"\r\n", b"\n")), ANY


def truncated(rng):
    # Every strict prefix of a sentence (its line end removed) lacks the
    # checksum or part of it, so parse() must reject it.
    count = 0
    while count < FUZZ_ROUNDS:
        line = rng.choice(CORPUS)
        body = line.rstrip(b"\r\n")
        if rng.random() < 0.1:
            cuts = range(len(body))
        else:
            cuts = (rng.randrange(len(body)),)
        for cut in cuts:
            yield body[:cut] + rng.choice((b"", b"\r\n")), REJECT
            count += 1
        yield line[: rng.randrange(len(line) + 1)], ANY
        count += 1


def spliced(rng):
    for _ in range(FUZZ_ROUNDS):
        first = rng.choice(CORPUS)
        second = rng.choice(CORPUS)
        choice = rng.random()
        if choice < 0.4:
            # The first line lost its end and the second line its start.
            yield first[: rng.randrange(len(first))] + second[rng.randrange(1, len(second)) :], ANY
        elif choice < 0.7:
            # Two whole lines without a line end between them, so a '$' is
            # inside the line.
            yield first.rstrip(b"\r\n") + second, REJECT
        else:
            # A cut line glued to a whole one.
            yield first[: rng.randrange(len(first))] + second, ANY


def nul_and_high_bytes(rng):
    # Non-printable bytes inside the sentence. Half keep the original checksum,
    # half get one that includes the new bytes, and parse() must reject both.
    for _ in range(FUZZ_ROUNDS):
        payload, end = split_sentence(rng.choice(CORPUS))
        data = bytearray(payload)
        for _ in range(rng.randint(1, 3)):
            value = rng.choice((0, rng.randrange(0x80, 0x100), rng.randrange(1, 0x20), 0x7F))
            position = rng.randrange(len(data) + 1)
            if rng.random() < 0.5 and position < len(data):
                data[position] = value
            else:
                data.insert(position, value)
        if rng.random() < 0.5:
            line = with_checksum(bytes(data))
        else:
            line = b"$" + bytes(data) + b"*%02X" % xor(payload)
        yield line + end, REJECT


def huge_lines(rng):
    # 10 KB lines, and a few beyond 65535 bytes, the largest field offset
    # parse() stores. Fewer rounds, because each input is large.
    for i in range(FUZZ_ROUNDS // 20):
        size = 10240 if i % 25 else 70000 + rng.randrange(1000)
        choice = rng.randrange(6)
        if choice == 0:
            yield rng.randbytes(size), ANY
        elif choice == 1:
            text = bytes(rng.choice(b"ABCDEFGHIJ0123456789.,") for _ in range(size))
            yield with_checksum(b"GPTXT," + text) + b"\r\n", ANY
        elif choice == 2:
            # A good sentence whose fields run on: too many fields, then too long.
            payload, end = split_sentence(rng.choice(DECODED_CORPUS))
            yield with_checksum(payload + b",1" * (size // 2)) + end, REJECT
        elif choice == 3:
            # A good sentence, then noise without a line end.
            yield rng.choice(CORPUS).rstrip(b"\r\n") + rng.randbytes(size), REJECT
        elif choice == 4:
            yield b"$" * size, REJECT
        else:
            # One field that long, in a type we decode. The sentence is
            # accepted when parse() skips that field (VTG's magnetic course).
            payload, end = split_sentence(rng.choice(DECODED_CORPUS))
            fields = payload.split(b",")
            fields[rng.randrange(1, len(fields))] = b"9" * size
            yield with_checksum(b",".join(fields)) + end, ANY


def mangled_checksums(rng):
    for _ in range(FUZZ_ROUNDS):
        line = rng.choice(CORPUS)
        payload, end = split_sentence(line)
        checksum = xor(payload)
        choice = rng.randrange(9)
        if choice == 0:
            # A random value: right once in 256 times.
            yield b"$%s*%02X" % (payload, rng.randrange(256)) + end, ANY
        elif choice == 1:
            yield b"$%s*%02x" % (payload, checksum) + end, MUTATED
        elif choice == 2:
            yield b"$%s*%X" % (payload, checksum & 0xF) + end, REJECT
        elif choice == 3:
            yield b"$%s*%03X" % (payload, checksum) + end, REJECT
        elif choice == 4:
            yield b"$%s" % payload + end, REJECT
        elif choice == 5:
            yield b"$%s**%02X" % (payload, checksum) + end, REJECT
        elif choice == 6:
            # One hex digit replaced by a character that is not one.
            pair = bytes((rng.choice(b"GZgz ,.-*$"), rng.choice(HEX_DIGITS)))
            yield b"$%s*%s" % (payload, pair[:: rng.choice((1, -1))]) + end, REJECT
        elif choice == 7:
            # A '*' inside the payload, with the checksum of what precedes it.
            cut = rng.randrange(1, len(payload))
            yield b"$%s*%02X%s*%02X" % (payload[:cut], xor(payload[:cut]), payload[cut:], checksum) + end, REJECT
        else:
            # The checksum of the payload with the '$' included.
            yield b"$%s*%02X" % (payload, checksum ^ 0x24) + end, REJECT


def odd_line_ends(rng):
    for _ in range(FUZZ_ROUNDS):
        payload, end = split_sentence(rng.choice(CORPUS))
        line = with_checksum(payload)
        choice = rng.randrange(4)
        if choice == 0:
            # Any mix of CR and LF at the end is a line end.
            tail = bytes(rng.choice(b"\r\n") for _ in range(rng.randrange(6)))
            yield line + tail, MUTATED
        elif choice == 1:
            # CR or LF inside the sentence, including just before the '*'.
            data = bytearray(line)
            for _ in range(rng.randint(1, 2)):
                position = rng.choice((rng.randrange(1, len(data) - 3), len(data) - 3))
                data.insert(position, rng.choice(b"\r\n"))
            yield bytes(data) + end, REJECT
        elif choice == 2:
            # A line end in front of the '$'.
            yield rng.choice((b"\r\n", b"\n", b"\r")) + line + end, REJECT
        else:
            # A line end between the checksum digits.
            yield line[:-1] + rng.choice((b"\r", b"\n")) + line[-1:] + end, REJECT


def emptied_fields(rng):
    # Receivers without a fix send empty fields.
    for _ in range(FUZZ_ROUNDS):
        payload, end = split_sentence(rng.choice(DECODED_CORPUS))
        fields = payload.split(b",")
        for k in range(1, len(fields)):
            if rng.random() < 0.3:
                fields[k] = b""
        yield with_checksum(b",".join(fields)) + end, MUTATED


def changed_digits(rng):
    # Digits changed with the checksum recomputed, as after a bit error that
    # the checksum missed. A value out of range (minute 61, day 35) must then
    # be rejected.
    for _ in range(FUZZ_ROUNDS):
        payload, end = split_sentence(rng.choice(DECODED_CORPUS))
        data = bytearray(payload)
        positions = [i for i in range(6, len(data)) if 0x30 <= data[i] <= 0x39]
        if not positions:
            continue
        for _ in range(rng.randint(1, 3)):
            data[rng.choice(positions)] = rng.choice(b"0123456789")
        yield with_checksum(bytes(data)) + end, MUTATED


def new_values(rng):
    # Fields replaced by other values in NMEA format and range, so both
    # parsers must accept and agree.
    for _ in range(FUZZ_ROUNDS):
        payload, end = split_sentence(rng.choice(DECODED_CORPUS))
        fields = payload.decode().split(",")
        schema = SCHEMA[fields[0][2:5]]
        for k in range(1, min(len(fields), len(schema))):
            if rng.random() < 0.5:
                fields[k] = schema[k](rng)
        # A coordinate needs its hemisphere letter, which the capture line
        # leaves empty when it had no position.
        for k in range(1, min(len(fields), len(schema)) - 1):
            if schema[k] in (lat_field, lon_field) and fields[k]:
                fields[k + 1] = schema[k + 1](rng)
        yield with_checksum(",".join(fields).encode()) + end, VALID


KINDS = {
    "random_bytes": random_bytes,
    "random_text": random_text,
    "truncated": truncated,
    "spliced": spliced,
    "nul_and_high_bytes": nul_and_high_bytes,
    "huge_lines": huge_lines,
    "mangled_checksums": mangled_checksums,
    "odd_line_ends": odd_line_ends,
    "emptied_fields": emptied_fields,
    "changed_digits": changed_digits,
    "new_values": new_values,
}

# Kinds whose inputs are mostly valid sentences: at least half of them must
# have been compared with pynmea2, so that the comparison cannot silently
# stop happening.
MOSTLY_COMPARED = ("emptied_fields", "changed_digits", "new_values")


def test_corpus_loaded():
    assert len(CORPUS) > 5000
    kinds = {line[3:6] for line in DECODED_CORPUS}
    assert kinds == {b"RMC", b"GGA", b"VTG", b"GNS", b"GLL"}


@pytest.mark.parametrize("kind", list(KINDS))
def test_fuzz(kind):
    # A seed per kind, so that each test repeats alone with the same seed.
    rng = random.Random("%d %s" % (SEED, kind))
    checker = Checker(kind, rng)
    for line, expect in KINDS[kind](rng):
        checker.parse(line, expect)
    checker.report()
    assert checker.inputs >= FUZZ_ROUNDS // 20
    if kind in MOSTLY_COMPARED:
        assert checker.compared >= checker.inputs // 2, (SEED, checker.compared, checker.inputs)


def test_valid_after_fuzz():
    # After every kind of noise, the same parser still decodes a good sentence.
    rng = random.Random("%d after" % SEED)
    checker = Checker("after", rng)
    line = b"$BDRMC,061530.00,A,3114.2010,N,12128.5230,E,12.5,45.0,200326,,,A*44\r\n"
    for kind, generate in KINDS.items():
        for count, (noise, expect) in enumerate(generate(rng)):
            if count == 50:
                break
            checker.parse(noise, expect)
        assert checker.parse(line, VALID) == nmea.RMC, kind
        p = checker.p
        assert p.valid, kind
        assert nmea.lat_str(p) == "31.2366833", kind
        assert nmea.utc_iso(p) == "2026-03-20T06:15:30Z", kind
    checker.report()


def test_line_over_65535_bytes_rejected():
    # parse() keeps field offsets as 16-bit numbers. A field that starts
    # beyond offset 65535 (here 70008) would raise OverflowError under
    # CPython and be stored modulo 65536 under MicroPython.
    line = with_checksum(b"GPTXT," + b"A" * 70000 + b",1") + b"\r\n"
    p = nmea.Parser()
    assert p.parse(line, len(line)) == nmea.REJECTED
    assert p.garbage == 1
    # parse() accepts lines of up to 65535 bytes, and this one has its '*'
    # at offset 65532.
    longest = with_checksum(b"GPTXT," + b"A" * 65523 + b",1")
    assert len(longest) == 65535
    assert p.parse(longest, len(longest)) == nmea.OTHER
    too_long = with_checksum(b"GPTXT," + b"A" * 65524 + b",1")
    assert p.parse(too_long, len(too_long)) == nmea.REJECTED
    assert p.garbage == 2


def test_rmc_day_beyond_month_rejected():
    # A date that the calendar does not have must not reach the clock, which
    # would count 31 June as 1 July. The line is an RMC of furuno_gl_ga.log
    # with one digit of its longitude and one of its date changed.
    p = nmea.Parser()
    found = b"$GNRMC,120219.000,A,5957.0062,N,01100.6427,E,0.00,0.00,310622,,,D,V*0F\r\n"
    assert p.parse(found, len(found)) == nmea.REJECTED
    assert p.bad_values == 1
    assert p.year is None

    # Leap days are accepted in leap years only.
    p = nmea.Parser()
    cases = (
        (b"310226", nmea.REJECTED),
        (b"300226", nmea.REJECTED),
        (b"290226", nmea.REJECTED),
        (b"290228", nmea.RMC),
        (b"310426", nmea.REJECTED),
        (b"300426", nmea.RMC),
        (b"311226", nmea.RMC),
        (b"290200", nmea.RMC),
    )
    for date, code in cases:
        line = with_checksum(b"GPRMC,123519.00,A,4807.0380,N,01131.0000,E,0.1,12.0,%s,,,A" % date)
        assert p.parse(line, len(line)) == code, date
    assert p.bad_values == 4
    assert (p.year, p.month, p.day) == (2000, 2, 29)
