# Tests of firmware.nmea: field cases A1, A2, A4, A7, F3, counters, rounding and zero allocation
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Expected values come from the field-case descriptions (decimal degrees,
# km/h) or are worked out by hand in the comments. Checksums of the made-up
# lines are computed by nmea_line() below, which is checked against the
# checksums printed in the case files.

import micropython

from firmware import nmea

_DATA = "tests/data/nmea/"


def nmea_line(body):
    # "$" + body + "*hh": hh is the XOR of every character of body.
    checksum = 0
    for c in body.encode():
        checksum ^= c
    return ("$%s*%02X" % (body, checksum)).encode()


def parse(p, line):
    if isinstance(line, str):
        line = line.encode()
    return p.parse(line, len(line))


def close(a, b, tolerance):
    return abs(a - b) <= tolerance


def test_nmea_line_helper_matches_case_checksums():
    assert nmea_line("GNRMC,101500.00,A,4330.0000,N,00012.0000,E,35.0,92.5,160326,,,A,V")[-3:] == b"*30"
    assert nmea_line("GPTXT,01,01,02,ANTSTATUS=OPEN")[-3:] == b"*2B"


# Case A1: the hemisphere sign applies to the whole value, also below 1 degree
# and near 180 degrees.
_A1 = (
    "$GNRMC,101500.00,A,4330.0000,N,00012.0000,E,35.0,92.5,160326,,,A,V*30",
    "$GNRMC,101501.00,A,4330.0000,N,00012.0000,W,35.0,272.5,160326,,,A,V*1F",
    "$GNGGA,101502.00,0012.0000,S,03645.0000,E,1,09,1.0,1850.0,M,-12.0,M,,*75",
    "$GNRMC,101503.00,A,1708.5000,S,17959.4000,W,8.0,270.0,160326,,,A,V*32",
    "$GNRMC,101504.00,A,1708.5000,S,17959.4000,E,8.0,90.0,160326,,,A,V*1B",
)
# 12' = 0.2 deg, 45' = 0.75 deg, 8.5' = 0.1416667 deg, 59.4' = 0.99 deg.
_A1_EXPECTED = (
    ("43.5000000", "0.2000000", 43.5, 0.2),
    ("43.5000000", "-0.2000000", 43.5, -0.2),
    ("-0.2000000", "36.7500000", -0.2, 36.75),
    ("-17.1416667", "-179.9900000", -17.141667, -179.99),
    ("-17.1416667", "179.9900000", -17.141667, 179.99),
)


def test_a1_hemisphere_sign():
    p = nmea.Parser()
    codes = (nmea.RMC, nmea.RMC, nmea.GGA, nmea.RMC, nmea.RMC)
    for i in range(len(_A1)):
        lat_text, lon_text, lat, lon = _A1_EXPECTED[i]
        assert parse(p, _A1[i]) == codes[i], _A1[i]
        assert p.valid, _A1[i]
        assert nmea.lat_str(p) == lat_text, nmea.lat_str(p)
        assert nmea.lon_str(p) == lon_text, nmea.lon_str(p)
        assert close(nmea.lat_float(p), lat, 1e-6), nmea.lat_float(p)
        assert close(nmea.lon_float(p), lon, 1e-6), nmea.lon_float(p)
    assert p.sentences == 5


def test_a1_sign_flags_and_minutes():
    p = nmea.Parser()
    parse(p, _A1[1])
    assert (p.lon_deg, p.lon_min_e7, p.lon_neg) == (0, 120000000, True)
    parse(p, _A1[2])
    assert (p.lat_deg, p.lat_min_e7, p.lat_neg) == (0, 120000000, True)
    assert (p.lon_deg, p.lon_min_e7, p.lon_neg) == (36, 450000000, False)
    parse(p, _A1[3])
    assert (p.lon_deg, p.lon_min_e7, p.lon_neg) == (179, 594000000, True)


# Case A2: a checksum of 0x00 is valid; a wrong or missing one rejects the line.
_A2 = (
    "$GNRMC,074512.00,A,4404.2150,N,00512.8830,E,14.1,128.4,150326,,,A,V*00",
    "$GNRMC,074512.00,A,4404.2150,N,00512.8830,E,14.1,128.4,150326,,,A,V*01",
    "$GNRMC,074512.00,A,4404.2150,N,00512.8830,E,14.1,128.4,150326,,,A,V",
)


def test_a2_checksum_zero_accepted():
    p = nmea.Parser()
    assert parse(p, _A2[0]) == nmea.RMC
    assert p.valid
    assert nmea.utc_iso(p) == "2026-03-15T07:45:12Z"
    # 4.2150' = 0.07025 deg; 12.8830' = 0.2147167 deg.
    assert nmea.lat_str(p) == "44.0702500"
    assert nmea.lon_str(p) == "5.2147167"
    assert p.speed_kn_e3 == 14100
    # 14.1 kn x 1.852 = 26.1132 km/h
    assert nmea.speed_kmh_e2(p) == 2611
    assert p.course_e2 == 12840
    assert p.checksum_errors == 0


def test_a2_wrong_checksum_rejected():
    p = nmea.Parser()
    parse(p, _A2[0])
    count = p.position_count
    assert parse(p, _A2[1]) == nmea.REJECTED
    assert p.checksum_errors == 1
    assert p.sentences == 1
    assert p.position_count == count


def test_a2_missing_checksum_rejected():
    p = nmea.Parser()
    assert parse(p, _A2[2]) == nmea.REJECTED
    assert p.no_checksum == 1
    assert p.sentences == 0
    assert not p.valid
    assert p.lat_deg is None


def test_checksum_lowercase_hex():
    p = nmea.Parser()
    line = "$GNRMC,000512.00,V,,,,,,,,,,N,V*1f"
    assert parse(p, line) == nmea.RMC
    assert p.checksum_errors == 0


# Case A4: all-empty "no fix" sentences and a line longer than 82 characters.
_A4 = (
    "$GNRMC,000512.00,V,,,,,,,,,,N,V*1F\r\n",
    "$GNVTG,,T,,M,,N,,K,N*32\r\n",
    "$GNGGA,000512.00,,,,,0,00,99.99,,,,,,*7E\r\n",
    "$GNGGA,101530.00,4846.1234567,N,00221.7654321,E,4,14,0.7,48.123,M,46.500,M,1.0,0000*68\r\n",
    "$GNGGA,101531.00,4846.1234600,N,00221.7654400,E,4,14,0.7,48.130,M,46.500,M,1.0,0000*6D\r\n",
)


def test_a4_empty_rmc():
    p = nmea.Parser()
    assert parse(p, _A4[0]) == nmea.RMC
    assert not p.valid
    assert (p.hour, p.minute, p.second, p.ms) == (0, 5, 12, 0)
    assert p.lat_deg is None
    assert p.lon_deg is None
    assert p.speed_kn_e3 is None
    assert p.course_e2 is None
    assert p.year is None
    assert nmea.utc_iso(p) is None
    assert p.position_count == 0


def test_a4_empty_vtg():
    p = nmea.Parser()
    assert parse(p, _A4[1]) == nmea.VTG
    assert p.speed_kn_e3 is None
    assert p.course_e2 is None
    assert not p.valid


def test_a4_no_fix_gga():
    p = nmea.Parser()
    assert parse(p, _A4[2]) == nmea.GGA
    assert not p.valid
    assert p.quality == 0
    assert p.sats == 0
    assert p.alt_mm is None
    assert p.hdop_e2 == 9999
    assert p.lat_deg is None


def test_a4_long_rtk_gga():
    p = nmea.Parser()
    assert len(_A4[3]) == 88
    assert parse(p, _A4[3]) == nmea.GGA
    assert p.valid
    assert p.quality == 4
    assert p.sats == 14
    assert p.alt_mm == 48123
    assert p.hdop_e2 == 70
    assert (p.lat_deg, p.lat_min_e7) == (48, 461234567)
    assert (p.lon_deg, p.lon_min_e7) == (2, 217654321)
    # 46.1234567' / 60 = 0.768724278 deg; 21.7654321' / 60 = 0.362757202 deg
    assert nmea.lat_str(p) == "48.7687243"
    assert nmea.lon_str(p) == "2.3627572"
    assert close(nmea.lat_float(p), 48.768724278, 1e-7)
    assert p.position_count == 1


def test_a4_sequence():
    p = nmea.Parser()
    for line in _A4:
        assert parse(p, line) != nmea.REJECTED, line
    assert p.sentences == 5
    # 46.12346' / 60 = 0.768724333 deg
    assert p.lat_min_e7 == 461234600
    assert nmea.lat_str(p) == "48.7687243"
    assert p.alt_mm == 48130
    assert p.position_count == 2


# Case A7: every two-letter talker is handled alike; TXT and proprietary are not positions.
_A7 = (
    "$BDRMC,061530.00,A,3114.2010,N,12128.5230,E,12.5,45.0,200326,,,A*44",
    "$GBGGA,061530.00,3114.2010,N,12128.5230,E,1,09,1.1,12.0,M,8.5,M,,*70",
    "$GARMC,061531.00,A,3114.2030,N,12128.5250,E,12.4,45.2,200326,,,A,V*38",
    "$GLGGA,061531.00,3114.2030,N,12128.5250,E,1,07,1.3,12.1,M,8.5,M,,*76",
    "$GPTXT,01,01,02,ANTSTATUS=OPEN*2B",
    "$PUBX,00,061532.00,3114.2050,N,12128.5270,E,20.1,G3,3.1,4.2,23.2,45.3,0.00,,1.1,1.5,1.0,9,0,0*61",
)


def test_a7_beidou_rmc():
    p = nmea.Parser()
    assert parse(p, _A7[0]) == nmea.RMC
    assert p.valid
    assert nmea.utc_iso(p) == "2026-03-20T06:15:30Z"
    # 14.2010' = 0.2366833 deg, 28.5230' = 0.4753833 deg
    assert nmea.lat_str(p) == "31.2366833"
    assert nmea.lon_str(p) == "121.4753833"
    # 12.5 kn x 1.852 = 23.15 km/h
    assert nmea.speed_kmh_e2(p) == 2315
    assert p.course_e2 == 4500


def test_a7_talkers_alike():
    p = nmea.Parser()
    parse(p, _A7[0])
    assert parse(p, _A7[1]) == nmea.GGA
    assert p.valid
    assert p.quality == 1
    assert p.sats == 9
    assert nmea.lat_str(p) == "31.2366833"
    assert nmea.lon_str(p) == "121.4753833"
    assert parse(p, _A7[2]) == nmea.RMC
    assert p.valid
    assert nmea.lat_str(p) == "31.2367167"
    assert nmea.lon_str(p) == "121.4754167"
    assert parse(p, _A7[3]) == nmea.GGA
    assert p.valid
    assert p.sats == 7
    assert p.position_count == 4


def test_a7_text_and_proprietary_ignored():
    p = nmea.Parser()
    for line in _A7[:4]:
        parse(p, line)
    assert parse(p, _A7[4]) == nmea.OTHER
    assert p.unsupported == 1
    assert parse(p, _A7[5]) == nmea.REJECTED
    assert p.proprietary == 1
    # Neither changed the position of line 4.
    assert nmea.lat_str(p) == "31.2367167"
    assert p.position_count == 4
    assert p.sentences == 5


# Case F3: status V with the receiver's default date, then a fix.
_F3 = (
    "$GPRMC,235958.200,V,,,,,0.00,0.00,050180,,,N*43",
    "$GPRMC,000002.200,V,,,,,0.00,0.00,060180,,,N*42",
    "$GNRMC,081015.00,A,6931.2200,N,13301.4500,W,3.2,211.0,310706,,,A,V*29",
    "$GNRMC,081016.00,A,6931.2200,N,13301.4500,W,3.2,211.0,160326,,,A,V*29",
)


def test_f3_status_v_no_fix():
    p = nmea.Parser()
    assert parse(p, _F3[0]) == nmea.RMC
    assert not p.valid
    assert (p.hour, p.minute, p.second, p.ms) == (23, 59, 58, 200)
    assert (p.year, p.month, p.day) == (2080, 1, 5)
    assert nmea.utc_iso(p) == "2080-01-05T23:59:58.200Z"
    assert parse(p, _F3[1]) == nmea.RMC
    assert not p.valid
    assert (p.year, p.month, p.day) == (2080, 1, 6)
    assert p.position_count == 0


def test_f3_fix_position():
    p = nmea.Parser()
    for line in _F3[:3]:
        parse(p, line)
    assert p.valid
    # 31.22' = 0.5203333 deg, 1.45' = 0.0241667 deg
    assert nmea.lat_str(p) == "69.5203333"
    assert nmea.lon_str(p) == "-133.0241667"
    assert close(nmea.lat_float(p), 69.520333, 1e-6)
    assert close(nmea.lon_float(p), -133.024167, 1e-6)
    assert (p.year, p.month, p.day) == (2006, 7, 31)
    assert parse(p, _F3[3]) == nmea.RMC
    assert nmea.utc_iso(p) == "2026-03-16T08:10:16Z"
    assert p.position_count == 2


def test_garbage_counters():
    p = nmea.Parser()
    body = "GPGGA,123519.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,"
    good = nmea_line(body)
    assert parse(p, good) == nmea.GGA
    position = p.position_count
    rejected = (
        good[1:],  # no '$'
        b"\x00" + good,  # starts with a NUL
        good[:20] + b"\x07" + good[21:],  # non-printable byte
        good[:20] + b"\xb5" + good[21:],  # byte above 0x7E
        good[:-1],  # one hex digit
        good + b"0",  # three hex digits
        good[:-2] + b"G0",  # not hex
        nmea_line("GPGGAX,123519.00,4807.0380,N,01131.0000,E,1,08"),  # 6-letter address
        nmea_line("GPGGA,123519.00,4807.0380,N"),  # too few fields
        nmea_line("GPRMC,123519.00,A,4807.0380,N,01131.0000,E"),
        nmea_line("GPVTG,054.7,T,034.4,M"),
        nmea_line("GPGLL,4807.0380,N,01131.0000,E"),
        nmea_line("GNGNS,123519.00,4807.0380,N"),
        # 45 fields do not fit the 40 field offsets kept per line.
        nmea_line(body + ",1" * 31),
        b"$GP",
        b"",
    )

    for line in rejected:
        assert p.parse(line, len(line)) == nmea.REJECTED, line
    assert p.garbage == len(rejected)
    assert p.sentences == 1
    assert p.checksum_errors == 0
    assert p.no_checksum == 0
    assert p.position_count == position


def test_bad_values_keep_state():
    p = nmea.Parser()
    parse(p, _A7[0])
    count = p.position_count
    rejected = (
        "GPGGA,12a519.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,",
        "GPGGA,123519.00,4807.0380,Q,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,",
        "GPGGA,123519.00,4860.0000,N,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,",
        "GPGGA,123519.00,9100.0000,N,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,",
        "GPGGA,123519.00,4807.0380,N,18030.0000,E,1,08,0.9,545.4,M,46.9,M,,",
        "GPGGA,123519.00,4807.0380,N,01131.0000,E,1,08,0.9,5.4.4,M,46.9,M,,",
        "GPGGA,123519.00,4807.0380,N,01131.0000,E,-1,08,0.9,545.4,M,46.9,M,,",
        "GPGGA,253519.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,",
        "GPGGA,123519.00,4807.0380,N,01131.0000,E,1,08,0.9,1234567.0,M,46.9,M,,",
        "GPRMC,123519.00,A,4807.0380,N,01131.0000,E,0.1,12.0,321326,,,A",
        "GPRMC,123519.00,AV,4807.0380,N,01131.0000,E,0.1,12.0,010326,,,A",
        "GPRMC,123519.00,A,4807.0380,N,01131.0000,E,-0.1,12.0,010326,,,A",
        "GPRMC,123519.00,A,4807.0380,N,01131.0000,E,0.1,360.01,010326,,,A",
        "GPGGA,123519.00,4807.0380,N,01131.0000,E,1,-8,0.9,545.4,M,46.9,M,,",
        "GPVTG,05x.7,T,034.4,M,005.5,N,010.2,K,A",
        "GPVTG,054.7,T,034.4,M,-005.5,N,010.2,K,A",
    )
    for body in rejected:
        assert parse(p, nmea_line(body)) == nmea.REJECTED, body
    assert p.bad_values == len(rejected)
    assert p.garbage == 0
    assert p.position_count == count
    assert nmea.lat_str(p) == "31.2366833"
    assert nmea.utc_iso(p) == "2026-03-20T06:15:30Z"
    assert p.speed_kn_e3 == 12500


def test_many_fields_unsupported_type():
    p = nmea.Parser()
    assert parse(p, nmea_line("GPXYZ" + ",1" * 60)) == nmea.OTHER
    assert p.unsupported == 1
    assert p.garbage == 0


def test_negative_altitude():
    p = nmea.Parser()
    assert parse(p, nmea_line("GPGGA,123519.00,3130.0000,N,03524.0000,E,1,08,0.9,-430.5,M,20.1,M,,")) == nmea.GGA
    assert p.alt_mm == -430500
    assert p.valid


def test_long_line_and_rounding():
    p = nmea.Parser()
    # 10 decimals of minutes: 46.1234567850 rounds up to 46.1234568.
    body = "GNGGA,101530.0000,4846.1234567850,N,00221.7654321449,W,4,14,0.71,48.1234,M,46.5000,M,1.0,0000,EXTRA,FIELDS,FOR,LENGTH"
    line = nmea_line(body) + b"\r\n"
    assert len(line) > 120
    assert parse(p, line) == nmea.GGA
    assert p.lat_min_e7 == 461234568
    assert p.lon_min_e7 == 217654321
    assert p.lon_neg
    assert p.alt_mm == 48123
    # Rounding 59.99999996' carries into the degrees.
    assert parse(p, nmea_line("GNGGA,101531.00,4859.99999996,N,00000.00000004,E,1,14,0.7,48.1,M,,M,,")) == nmea.GGA
    assert (p.lat_deg, p.lat_min_e7) == (49, 0)
    assert (p.lon_deg, p.lon_min_e7) == (0, 0)


def test_without_line_end_and_crlf():
    p = nmea.Parser()
    line = bytearray((_A2[0] + "\r\n").encode())
    assert p.parse(line, len(line)) == nmea.RMC
    assert p.parse(line, len(line) - 2) == nmea.RMC
    # n shorter than the line: the checksum is cut off.
    assert p.parse(line, 40) == nmea.REJECTED
    assert p.no_checksum == 1


def test_gns_modes():
    p = nmea.Parser()
    assert parse(p, nmea_line("GNGNS,074150.799,,,,,NNNN,00,,,0.0,,0000")) == nmea.GNS
    assert not p.valid
    assert p.quality == 0
    assert p.sats == 0
    assert p.hdop_e2 is None
    line = nmea_line("GNGNS,120213.000,5957.0062,N,01100.6429,E,NDD,11,1.3,168.9,39.5,,,V")
    assert parse(p, line) == nmea.GNS
    assert p.valid
    assert p.quality == 2
    assert p.sats == 11
    assert p.alt_mm == 168900
    # 57.0062' = 0.9501033 deg
    assert nmea.lat_str(p) == "59.9501033"
    assert p.position_count == 1


def test_gll_status():
    p = nmea.Parser()
    assert parse(p, "$GPGLL,4808.9977,N,01135.0800,E,235723.02,A,A*63") == nmea.GLL
    assert p.valid
    assert (p.hour, p.minute, p.second, p.ms) == (23, 57, 23, 20)
    assert nmea.lon_str(p) == "11.5846667"
    assert parse(p, nmea_line("GPGLL,4808.9977,N,01135.0800,E,235724.02,V,N")) == nmea.GLL
    assert not p.valid
    assert p.position_count == 1


def test_no_fix_with_position():
    # Some receivers repeat the last position while they have no fix. The
    # position is stored, but the fix is not valid and position_count stays.
    p = nmea.Parser()
    lines = (
        ("GPRMC,123519.00,V,4807.0380,N,01131.0000,E,0.1,12.0,010326,,,A", nmea.RMC),
        ("GPGGA,123519.00,4807.0380,N,01131.0000,E,0,08,0.9,545.4,M,46.9,M,,", nmea.GGA),
        ("GPGGA,123519.00,4807.0380,N,01131.0000,E,,08,0.9,545.4,M,46.9,M,,", nmea.GGA),
        ("GNGNS,123519.00,4807.0380,N,01131.0000,E,NN,08,0.9,545.4,46.9,,", nmea.GNS),
        ("GPGLL,4807.0380,N,01131.0000,E,123519.00,V,N", nmea.GLL),
    )
    for body, code in lines:
        assert parse(p, nmea_line(body)) == code, body
        assert not p.valid, body
        assert nmea.lat_str(p) == "48.1173000", body
    assert p.position_count == 0
    assert p.quality == 0


def test_dollar_inside_line_rejected():
    p = nmea.Parser()
    line = b"$GPGGA,1235$GNRMC,000512.00,V,,,,,,,,,,N,V*1F"
    assert p.parse(line, len(line)) == nmea.REJECTED
    assert p.garbage == 1


def test_rmc_mode_n_not_valid():
    p = nmea.Parser()
    assert parse(p, nmea_line("GPRMC,123519.00,A,4807.0380,N,01131.0000,E,0.1,12.0,010326,,,N")) == nmea.RMC
    assert not p.valid
    # NMEA 2.0 RMC without the mode field.
    assert parse(p, nmea_line("GPRMC,123519.00,A,4807.0380,N,01131.0000,E,0.1,12.0,010326,,")) == nmea.RMC
    assert p.valid


def test_date_moves_on_at_midnight():
    p = nmea.Parser()
    parse(p, nmea_line("GPRMC,235959.80,A,4807.0380,N,01131.0000,E,0.1,12.0,311226,,,A"))
    parse(p, nmea_line("GPGGA,000000.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,"))
    assert nmea.utc_iso(p) == "2027-01-01T00:00:00Z"
    # 2028 is a leap year.
    parse(p, nmea_line("GPRMC,235959.00,A,4807.0380,N,01131.0000,E,0.1,12.0,280228,,,A"))
    parse(p, nmea_line("GPGLL,4807.0380,N,01131.0000,E,000000.00,A,A"))
    assert (p.year, p.month, p.day) == (2028, 2, 29)
    # A small step back in time (out-of-order talkers) does not move the date.
    parse(p, nmea_line("GPRMC,120000.00,A,4807.0380,N,01131.0000,E,0.1,12.0,150328,,,A"))
    parse(p, nmea_line("GPGGA,115959.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,"))
    assert (p.year, p.month, p.day) == (2028, 3, 15)


def test_format_deg_edges():
    assert nmea.format_deg(None, None, False) is None
    assert nmea.format_deg(0, 0, True) == "0.0000000"
    # 0.0000029' = 0.48e-7 deg rounds to 0, 0.0000030' = 0.5e-7 deg rounds up.
    assert nmea.format_deg(0, 29, True) == "0.0000000"
    assert nmea.format_deg(0, 30, True) == "-0.0000001"
    assert nmea.format_deg(17, 85000000, True) == "-17.1416667"
    # 59.9999999' = 0.99999999833 deg rounds to a whole degree.
    assert nmea.format_deg(179, 599999999, False) == "180.0000000"
    assert nmea.format_deg(121, 285230000, False) == "121.4753833"


def test_utc_iso_fraction():
    p = nmea.Parser()
    parse(p, nmea_line("GPRMC,081016.05,A,6931.2200,N,13301.4500,W,3.2,211.0,160326,,,A"))
    assert p.ms == 50
    assert nmea.utc_iso(p) == "2026-03-16T08:10:16.050Z"


def test_fix_copy():
    p = nmea.Parser()
    parse(p, _A7[0])
    parse(p, _A7[1])
    fix = nmea.Fix()
    fix.copy_from(p)
    parse(p, _A7[3])
    assert nmea.lat_str(fix) == "31.2366833"
    assert fix.sats == 9
    assert fix.speed_kn_e3 == 12500
    assert nmea.utc_iso(fix) == "2026-03-20T06:15:30Z"
    assert fix.position_count == 2


def _data_lines(name):
    # Yield the capture's lines one at a time (the files are up to 200 KB),
    # without '#' header lines and blank lines.
    with open(_DATA + name, "rb") as f:
        while True:
            raw = f.readline()
            if not raw:
                return
            if raw[0] not in b"#\r\n":
                yield raw


def test_heap_lock_detects_allocation():
    # Without this the allocation test below could pass on a port whose
    # heap_lock() does nothing.
    micropython.heap_lock()
    try:
        bytearray(8)
        allocated = True
    except MemoryError:
        allocated = False
    micropython.heap_unlock()
    assert not allocated


def test_parse_allocates_nothing():
    # Every data line of four captures plus the field cases, including the
    # rejected ones (checksum errors, garbage, proprietary, bad values).
    p = nmea.Parser()
    buf = bytearray(nmea.MAX_LINE)
    failures = []
    codes = [0] * 7

    def check(line):
        n = len(line)
        buf[:n] = line
        micropython.heap_lock()
        try:
            code = p.parse(buf, n)
        except MemoryError:
            code = -1
        micropython.heap_unlock()
        if code < 0:
            failures.append(line)
        else:
            codes[code] += 1

    for name in ("skytraq-dgps.log", "ublox-8.log", "nmea-rtk.log", "firefly-II.log", "beidou-bd.log"):
        for line in _data_lines(name):
            check(line)
    for case in (_A1, _A2, _A4, _A7, _F3):
        for line in case:
            check(line.encode())
    check(nmea_line("GPGGA,12a519.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,"))
    check(nmea_line("GPGGA,123519.00,4807.0380,N"))

    assert failures == [], failures[:3]
    # 1024 + 1009 + 244 + 69 + 79 capture lines, 23 case lines and 2 made-up ones.
    assert sum(codes) == 2450, sum(codes)
    # Every kind of outcome was exercised.
    for code in (nmea.REJECTED, nmea.RMC, nmea.GGA, nmea.VTG, nmea.GNS, nmea.GLL, nmea.OTHER):
        assert codes[code] > 0, code
    assert p.checksum_errors > 0
    assert p.garbage > 0
    assert p.proprietary > 0
    assert p.bad_values > 0
    assert p.no_checksum > 0


def test_capture_counts_skytraq():
    # 1024 data lines: 96 $PSTI, 544 of types we skip (GSA, GSV, ZDA, GST),
    # 96 each of GGA, GLL, RMC and VTG, per the capture's type counts.
    p = nmea.Parser()
    fixes = 0
    for line in _data_lines("skytraq-dgps.log"):
        code = p.parse(line, len(line))
        if code == nmea.RMC and p.valid:
            fixes += 1
    assert p.sentences == 928
    assert p.proprietary == 96
    assert p.unsupported == 544
    assert fixes == 96
    assert p.position_count == 96 * 3
    # Last epoch: $GPRMC,213256.000,A,4404.1291692,N,12118.8674826,W,...
    # 4.1291692' = 0.0688195 deg, 18.8674826' = 0.3144580 deg
    assert nmea.lat_str(p) == "44.0688195"
    assert nmea.lon_str(p) == "-121.3144580"
