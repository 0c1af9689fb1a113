# Tests of firmware.gnss: line splitting over chunked reads, noise, resync, overlong lines, fix state
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import asyncio
import errno
import io
import time

import micropython

from firmware import gnss
from firmware import nmea

_DATA = "tests/data/nmea/"
_MP_STREAM_POLL = 3
_POLL_RD = 1


class FakeUART(io.IOBase):
    """A UART(timeout=0) stand-in: readinto returns what has been fed, None when empty."""

    def __init__(self):
        self.rx = bytearray()
        self.failures = 0  # readinto calls still to fail with OSError(EIO)

    def feed(self, data):
        self.rx.extend(data)

    def readinto(self, buf):
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EIO)
        n = min(len(buf), len(self.rx))
        if not n:
            return None
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n

    def ioctl(self, request, arg):
        if request == _MP_STREAM_POLL:
            if self.rx or self.failures:
                return arg & _POLL_RD
            return 0
        # The unix port requests a file descriptor (request 10) first, and 0 would mean stdin.
        return -22


async def _drained(uart, timeout_ms=3000):
    # The reader parses a chunk right after reading it, before it yields, so an
    # empty buffer means everything fed so far has been handled.
    start = time.ticks_ms()
    while uart.rx or uart.failures:
        assert time.ticks_diff(time.ticks_ms(), start) < timeout_ms, "reader did not drain the stream"
        await asyncio.sleep_ms(1)


async def _deliver(uart, data, size):
    for i in range(0, len(data), size):
        uart.feed(data[i : i + size])
        await _drained(uart)


async def _run_reader(data, size, on_fix=None):
    uart = FakeUART()
    g = gnss.GNSS(uart, on_fix)
    task = asyncio.create_task(g.run())
    await _deliver(uart, data, size)
    task.cancel()
    await asyncio.sleep_ms(0)
    return g


def _crlf(lines):
    return b"".join(line.encode() + b"\r\n" for line in lines)


# Case A4 lines; 300 bytes of 0x55 arrive before the last one, with no line end.
_A4 = (
    "$GNRMC,000512.00,V,,,,,,,,,,N,V*1F",
    "$GNVTG,,T,,M,,N,,K,N*32",
    "$GNGGA,000512.00,,,,,0,00,99.99,,,,,,*7E",
    "$GNGGA,101530.00,4846.1234567,N,00221.7654321,E,4,14,0.7,48.123,M,46.500,M,1.0,0000*68",
    "$GNGGA,101531.00,4846.1234600,N,00221.7654400,E,4,14,0.7,48.130,M,46.500,M,1.0,0000*6D",
)
_A4_STREAM = _crlf(_A4[:4]) + b"\x55" * 300 + _crlf(_A4[4:])

_BDRMC = "$BDRMC,061530.00,A,3114.2010,N,12128.5230,E,12.5,45.0,200326,,,A*44"
_GBGGA = "$GBGGA,061530.00,3114.2010,N,12128.5230,E,1,09,1.1,12.0,M,8.5,M,,*70"


def _nmea_line(body):
    checksum = 0
    for c in body.encode():
        checksum ^= c
    return "$%s*%02X" % (body, checksum)


async def test_a4_noise_then_sentence():
    for size in (1, 7, 13, 128):
        seen = []
        g = await _run_reader(_A4_STREAM, size, lambda p: seen.append(p.lat_min_e7))
        p = g.parser
        assert p.sentences == 5, size
        assert p.garbage == 1, size
        assert p.overlong == 0, size
        # Line 5: 46.12346' / 60 = 0.768724333 deg
        assert seen == [461234567, 461234600], size
        assert nmea.lat_str(g.fix) == "48.7687243", size
        assert g.fix.alt_mm == 48130, size
        assert g.last_data_ms is not None, size
        assert g.last_fix_ms is not None, size


async def test_dollar_starts_new_line():
    data = b"$GNGGA,101530.00,4846.12" + _crlf((_BDRMC,))
    g = await _run_reader(data, 5)
    assert g.parser.garbage == 1
    assert g.parser.sentences == 1
    assert g.parser.no_checksum == 0
    assert nmea.lat_str(g.fix) == "31.2366833"


async def test_overlong_line_skipped():
    data = b"$GPTXT," + b"A" * 300 + b"\r\n" + _crlf((_BDRMC,))
    g = await _run_reader(data, 64)
    assert g.parser.overlong == 1
    assert g.parser.garbage == 0
    assert g.parser.sentences == 1
    assert g.fix.valid


async def test_line_of_buffer_size_accepted():
    # "$" + 252 characters + "*hh" = 256 bytes fills the line buffer exactly.
    fits = _nmea_line("GPTXT,01,01,02," + "B" * 237)
    assert len(fits) == 256
    too_long = _nmea_line("GPTXT,01,01,02," + "B" * 238)
    g = await _run_reader(_crlf((fits, too_long, _BDRMC)), 100)
    assert g.parser.unsupported == 1
    assert g.parser.overlong == 1
    assert g.parser.sentences == 2


async def test_noise_inside_unterminated_line():
    # Line 4 loses its CR LF and noise follows; the buffer cap ends that line
    # and the next '$' starts line 5.
    data = _A4[3].encode() + b"\x55" * 300 + _crlf((_A4[4],))
    g = await _run_reader(data, 32)
    assert g.parser.overlong == 1
    assert g.parser.sentences == 1
    assert g.fix.lat_min_e7 == 461234600


async def test_binary_noise_before_sentence():
    # The first data line of ublox-8.log: 114 non-ASCII bytes, then a good RMC.
    with open(_DATA + "ublox-8.log", "rb") as f:
        raw = f.readline()
        while raw.startswith(b"#"):
            raw = f.readline()
    assert raw.find(b"$GNRMC") > 100
    g = await _run_reader(raw, 17)
    assert g.parser.garbage == 1
    assert g.parser.sentences == 1
    assert g.fix.valid
    assert nmea.utc_iso(g.fix) == "2017-01-10T00:09:41Z"


async def test_read_error_retried():
    uart = FakeUART()
    g = gnss.GNSS(uart)
    task = asyncio.create_task(g.run())
    uart.failures = 1
    uart.feed(_crlf((_BDRMC,)))
    await _drained(uart)
    assert g.read_errors == 1
    assert g.parser.sentences == 1
    # The task is still reading.
    uart.feed(_crlf((_GBGGA,)))
    await _drained(uart)
    assert g.parser.sentences == 2
    assert not task.done()
    task.cancel()
    await asyncio.sleep_ms(0)


async def test_callback_error_counted():
    def broken(p):
        raise ValueError("clock rejected %d" % p.position_count)

    g = await _run_reader(_crlf((_BDRMC, _GBGGA)), 40, broken)
    assert g.callback_errors == 2
    assert g.parser.sentences == 2
    assert g.fix.sats == 9


async def test_callback_only_for_valid_positions():
    calls = []
    lines = (
        "$GNRMC,000512.00,V,,,,,,,,,,N,V*1F",
        "$GNGGA,000512.00,,,,,0,00,99.99,,,,,,*7E",
        "$GNVTG,,T,,M,,N,,K,N*32",
        "$GPTXT,01,01,02,ANTSTATUS=OPEN*2B",
        _BDRMC,
        "$GNVTG,,T,,M,0.029,N,0.053,K,A*30",
        _GBGGA,
    )
    g = await _run_reader(_crlf(lines), 128, lambda p: calls.append(p.position_count))
    assert calls == [1, 2]


def test_fix_state_before_fix():
    g = gnss.GNSS(FakeUART())
    f = g.fix
    assert not f.valid
    for key in ("quality", "lat_deg", "lon_deg", "alt_mm", "speed_kn_e3", "course_e2", "sats", "hdop_e2", "year"):
        assert getattr(f, key) is None, key
    assert g.fix_age_ms() is None
    assert not g.has_fix()


def test_fix_state_after_fix():
    g = gnss.GNSS(FakeUART())
    data = _crlf((_BDRMC, _GBGGA))
    g.feed(data, len(data))
    f = g.fix
    assert g.has_fix()
    assert f.quality == 1
    assert nmea.lat_str(f) == "31.2366833"
    assert nmea.lon_str(f) == "121.4753833"
    assert f.alt_mm == 12000
    # 12.5 kn x 1.852 = 23.15 km/h
    assert nmea.speed_kmh_e2(f) == 2315
    assert f.course_e2 == 4500
    assert f.sats == 9
    assert f.hdop_e2 == 110
    assert g.fix_age_ms() < 100
    assert nmea.utc_iso(f) == "2026-03-20T06:15:30Z"


def test_fix_kept_after_loss():
    g = gnss.GNSS(FakeUART())
    data = _crlf((_BDRMC, _GBGGA))
    g.feed(data, len(data))
    time.sleep_ms(120)
    assert g.fix_age_ms() >= 120
    assert g.has_fix(5000)
    assert not g.has_fix(100)
    # Losing the fix keeps the last position; has_fix() turns false at once.
    lost = _crlf((_nmea_line("GNRMC,061531.00,V,,,,,,,200326,,,N,V"),))
    g.feed(lost, len(lost))
    assert not g.has_fix()
    assert nmea.lat_str(g.fix) == "31.2366833"
    assert nmea.utc_iso(g.fix) == "2026-03-20T06:15:30Z"


def test_fix_age_capped():
    g = gnss.GNSS(FakeUART())
    data = _crlf((_BDRMC,))
    g.feed(data, len(data))
    # Pretend the fix is two days old.
    g.last_fix_ms = time.ticks_add(time.ticks_ms(), -2 * 86400000)
    assert g.fix_age_ms() == gnss.MAX_AGE_MS
    assert g.fix_age_ms() <= gnss.MAX_AGE_MS + 5
    assert not g.has_fix()


def test_feed_allocates_nothing():
    g = gnss.GNSS(FakeUART())
    chunk = bytearray(128)
    failures = 0
    with open(_DATA + "skytraq-dgps.log", "rb") as f:
        while True:
            n = f.readinto(chunk)
            if not n:
                break
            micropython.heap_lock()
            try:
                g.feed(chunk, n)
            except MemoryError:
                failures += 1
            micropython.heap_unlock()
    assert failures == 0
    assert g.parser.sentences == 928
    assert g.fix.valid


def test_replay_matches_line_parser():
    # The whole capture, header included, in chunks of 1 to 128 bytes, gives
    # the same result as parsing its data lines one by one. Each '#' header
    # line is noise to the reader and counts once as garbage. One header line,
    # "# Notes: $GLGSV  for GLONASS sats, and $GPGSV for GNSS sats", contains two
    # '$': "$GLGSV  for GLONASS sats, and " is cut short by the second one
    # (garbage) and "$GPGSV for GNSS sats" ends without a checksum.
    reference = nmea.Parser()
    headers = 0
    with open(_DATA + "neo-m8n.log", "rb") as f:
        for raw in f:
            if raw.startswith(b"#"):
                headers += 1
            else:
                reference.parse(raw, len(raw))

    g = gnss.GNSS(FakeUART())
    chunk = bytearray(128)
    size = 1
    with open(_DATA + "neo-m8n.log", "rb") as f:
        while True:
            piece = f.read(size)
            if not piece:
                break
            chunk[: len(piece)] = piece
            g.feed(chunk, len(piece))
            size = size % 128 + 1

    p = g.parser
    assert p.sentences == reference.sentences
    assert p.sentences == 293
    assert headers == 5
    assert p.garbage == headers + 1
    assert p.no_checksum == 1
    assert p.position_count == reference.position_count
    assert nmea.lat_str(g.fix) == nmea.lat_str(reference)
    assert nmea.utc_iso(g.fix) == nmea.utc_iso(reference)
