# Fuzz tests of the GNSS reader path: noise, mangled and overlong lines through firmware.gnss
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Every input comes from one seed, which each test prints and every failure
# message contains. NMEA_FUZZ_SEED=<seed> repeats a run. The checks: no
# exception leaves the reader (run() would count it as a read error), a good
# RMC after any noise is decoded, the line buffer never grows, feed() and
# parse() allocate nothing for garbage, and the heap does not grow over many
# rounds of noise.

import asyncio
import gc
import os
import random

import micropython

from firmware import gnss
from firmware import nmea
from test_gnss import FakeUART, _drained

_DATA = "tests/data/nmea/"

# Rounds of noise plus one good RMC in test_reader_fuzz_rounds. The file runs
# in about 4 s under the unix port on a 2-core PC, most of it spent waiting
# for the reader task.
FUZZ_ROUNDS = 150
# Rounds before the heap is measured, and rounds measured after that.
_WARM_UP_ROUNDS = 5
_MEASURED_ROUNDS = 60
# Heap growth allowed over the measured rounds, because the conservative
# collector may keep a few blocks alive through stale pointers on the C
# stack. The measured rounds have about 450 lines, so a leak of one 16-byte
# block per line would grow the heap by about 7 KB.
_HEAP_SLACK_BYTES = 2048

_seed_text = os.getenv("NMEA_FUZZ_SEED")
SEED = int(_seed_text) if _seed_text else int.from_bytes(os.urandom(4), "little")


def _seeded(offset):
    # One seed per test, so that each test repeats alone.
    random.seed(SEED + offset)
    print("NMEA_FUZZ_SEED=%d" % SEED)


def _with_checksum(payload):
    checksum = 0
    for c in payload:
        checksum ^= c
    return b"$%s*%02X" % (payload, checksum)


def _load_corpus():
    # Data lines of two captures, without their line ends. skytraq-dgps.log
    # has RMC, GGA, GLL, VTG, GSA, GSV and $PSTI lines, and telit-pls83-w.log
    # has GNS lines.
    lines = []
    for name in ("skytraq-dgps.log", "telit-pls83-w.log"):
        with open(_DATA + name, "rb") as f:
            for raw in f:
                raw = raw.rstrip(b"\r\n")
                if raw.startswith(b"$"):
                    lines.append(raw)
    return lines


_CORPUS = _load_corpus()


def _random_bytes(size):
    data = bytearray(size)
    for i in range(size):
        data[i] = random.getrandbits(8)
    return data


def _mutated_line():
    # One capture line mangled in one of ten ways, without its line end.
    line = random.choice(_CORPUS)
    payload = line[1:-3]
    choice = random.randrange(10)
    if choice == 0:
        # Cut short.
        return line[: random.randrange(len(line))]

    if choice == 1:
        # Spliced: the end of another line after the start of this one.
        other = random.choice(_CORPUS)
        return line[: random.randrange(len(line))] + other[random.randrange(1, len(other)) :]

    if choice == 2:
        # A NUL, control or high byte inside, with a matching checksum.
        data = bytearray(payload)
        data[random.randrange(len(data))] = random.choice((0, 0x0D, 0x0A, 0x7F, 0x80, 0xB5, 0xFF))
        return _with_checksum(data)

    if choice == 3:
        # A wrong checksum.
        return line[:-2] + b"%02X" % random.getrandbits(8)

    if choice == 4:
        # The whole line in lowercase, a one-digit checksum, or no checksum.
        return random.choice((line.lower(), line[:-1], line[:-3]))

    if choice == 5:
        # Emptied fields with the checksum recomputed.
        fields = payload.split(b",")
        for k in range(1, len(fields)):
            if random.getrandbits(2) == 0:
                fields[k] = b""
        return _with_checksum(b",".join(fields))

    if choice == 6:
        # Changed digits with the checksum recomputed, which may give minute
        # 75 or day 39.
        data = bytearray(payload)
        for _ in range(3):
            k = random.randrange(6, len(data))
            if 0x30 <= data[k] <= 0x39:
                data[k] = 0x30 + random.randrange(10)
        return _with_checksum(data)

    if choice == 7:
        # The line's address, then random printable fields and the right checksum.
        text = bytearray(payload[:6])
        for _ in range(random.randrange(80)):
            text.append(random.choice(b"0123456789,,,,..-NSEWAV"))
        return _with_checksum(text)

    if choice == 8:
        # A field out of range or malformed, with the checksum recomputed.
        fields = payload.split(b",")
        k = random.randrange(1, len(fields))
        fields[k] = random.choice((b"6075.5", b"99", b"-1", b"1.2.3", b"ZZ", b"999999999", b"246099", b"310299"))
        return _with_checksum(b",".join(fields))

    # Two lines without a line end between them.
    return line + random.choice(_CORPUS)


def _long_line(size):
    # A line that starts like a sentence and has no line end.
    data = bytearray(b"$GPTXT,")
    for _ in range(size - len(data)):
        data.append(random.choice(b"ABCDEFGHIJ0123456789,."))
    return data


def _noise():
    # Some pieces of noise, each ending in a random line end or none.
    pieces = []
    for _ in range(random.randint(1, 8)):
        choice = random.randrange(10)
        if choice < 6:
            pieces.append(_mutated_line())
        elif choice < 9:
            pieces.append(_random_bytes(random.randrange(300)))
        else:
            pieces.append(_long_line(random.randrange(300, 2000)))
        pieces.append(random.choice((b"", b"\r\n", b"\n", b"\r", b"\r\r\n")))
    return b"".join(pieces)


def _good_rmc(r):
    # An RMC whose time and latitude minutes depend on the round r.
    body = b"GNRMC,%02d%02d%02d.00,A,31%02d.%04d,N,12128.5230,E,12.5,45.0,200326,,,A,V" % (
        r // 3600 % 24,
        r // 60 % 60,
        r % 60,
        r % 60,
        r * 7 % 10000,
    )
    return _with_checksum(body)


def _check_good_rmc(g, r, where):
    f = g.fix
    assert f.valid, where
    assert (f.hour, f.minute, f.second) == (r // 3600 % 24, r // 60 % 60, r % 60), where
    # 31 deg and r % 60 minutes, of which r * 7 % 10000 ten-thousandths.
    assert (f.lat_deg, f.lat_min_e7, f.lat_neg) == (31, (r % 60) * 10000000 + (r * 7 % 10000) * 1000, False), where
    assert (f.lon_deg, f.lon_min_e7) == (121, 285230000), where
    assert (f.year, f.month, f.day) == (2026, 3, 20), where


def _range_checker(problems):
    # Return an on_fix callback that records every value out of range.
    def check(p):
        if not (0 <= p.lat_deg <= 90 and 0 <= p.lat_min_e7 < 600000000):
            problems.append(("lat", p.lat_deg, p.lat_min_e7))
        if not (0 <= p.lon_deg <= 180 and 0 <= p.lon_min_e7 < 600000000):
            problems.append(("lon", p.lon_deg, p.lon_min_e7))
        if p.hour is not None and not (p.hour <= 23 and p.minute <= 59 and p.second <= 60 and p.ms <= 999):
            problems.append(("time", p.hour, p.minute, p.second, p.ms))

    return check


async def _fuzz_round(uart, g, r):
    # Feed noise, then a good RMC, and check that the RMC was decoded. Half the
    # rounds add no line end between the noise and the RMC.
    data = _noise() + random.choice((b"", b"\r\n")) + _good_rmc(r) + b"\r\n"
    where = "NMEA_FUZZ_SEED=%d round %d" % (SEED, r)
    # The reader reads up to 128 bytes at a time, so a first piece of random
    # size moves the boundaries of those reads.
    first = random.randrange(1, 128)
    uart.feed(data[:first])
    await _drained(uart)
    uart.feed(data[first:])
    await _drained(uart)
    assert g.read_errors == 0, where
    assert g.callback_errors == 0, where
    assert len(g._line) == nmea.MAX_LINE, where
    _check_good_rmc(g, r, where)


async def test_reader_fuzz_rounds():
    _seeded(1)
    problems = []
    uart = FakeUART()
    g = gnss.GNSS(uart, _range_checker(problems))
    task = asyncio.create_task(g.run())
    positions = 0
    for r in range(FUZZ_ROUNDS):
        await _fuzz_round(uart, g, r)
        assert not task.done(), (SEED, r)
        assert g.fix.position_count > positions, (SEED, r)
        positions = g.fix.position_count
    task.cancel()
    await asyncio.sleep_ms(0)

    assert problems == [], (SEED, problems[:3])
    p = g.parser
    # Garbage, checksum errors, missing checksums and overlong lines occurred.
    assert p.garbage > 0, SEED
    assert p.checksum_errors > 0, SEED
    assert p.no_checksum > 0, SEED
    assert p.overlong > 0, SEED
    assert p.sentences >= FUZZ_ROUNDS, SEED


async def test_rmc_after_10kb_noise():
    _seeded(2)
    for ending in (b"", b"\r\n"):
        uart = FakeUART()
        g = gnss.GNSS(uart)
        task = asyncio.create_task(g.run())
        uart.feed(_random_bytes(10240) + ending + _good_rmc(4321) + b"\r\n")
        await _drained(uart)
        task.cancel()
        await asyncio.sleep_ms(0)
        where = "NMEA_FUZZ_SEED=%d, line end %r" % (SEED, ending)
        assert g.read_errors == 0, where
        assert g.fix.position_count >= 1, where
        _check_good_rmc(g, 4321, where)


async def test_10kb_line_without_line_end():
    # A line that never ends must neither keep the reader waiting nor grow
    # its buffer. After nmea.MAX_LINE bytes the reader drops the rest and
    # counts the line once as overlong, and the next '$' starts a new line.
    _seeded(3)
    for ending in (b"", b"\r\n"):
        where = "NMEA_FUZZ_SEED=%d, line end %r" % (SEED, ending)
        uart = FakeUART()
        g = gnss.GNSS(uart)
        task = asyncio.create_task(g.run())
        data = _long_line(10240)
        for i in range(0, len(data), 128):
            uart.feed(data[i : i + 128])
            # _drained() fails when the reader stops reading.
            await _drained(uart)
            assert g._length <= nmea.MAX_LINE, where
            assert len(g._line) == nmea.MAX_LINE, where
        assert g.parser.overlong == 1, where
        assert g.parser.sentences == 0, where

        uart.feed(ending + _good_rmc(59) + b"\r\n")
        await _drained(uart)
        task.cancel()
        await asyncio.sleep_ms(0)
        assert g.parser.overlong == 1, where
        assert g.parser.sentences == 1, where
        assert g.parser.garbage == 0, where
        _check_good_rmc(g, 59, where)


def test_garbage_allocates_nothing():
    # feed() and parse() get noise between heap_lock() and heap_unlock().
    # test_nmea.test_heap_lock_detects_allocation shows that the lock works.
    _seeded(4)
    g = gnss.GNSS(FakeUART())
    chunk = bytearray(128)
    failures = 0
    for _ in range(40):
        data = _noise()
        for i in range(0, len(data), 128):
            n = min(128, len(data) - i)
            chunk[:n] = data[i : i + n]
            micropython.heap_lock()
            try:
                g.feed(chunk, n)
            except MemoryError:
                failures += 1
            finally:
                micropython.heap_unlock()
    assert failures == 0, SEED
    for count in (g.parser.garbage, g.parser.checksum_errors, g.parser.overlong, g.parser.sentences):
        assert count > 0, (SEED, g.parser.counters())

    p = nmea.Parser()
    buf = bytearray(nmea.MAX_LINE)
    for _ in range(2000):
        line = _mutated_line()[: nmea.MAX_LINE]
        n = len(line)
        buf[:n] = line
        micropython.heap_lock()
        try:
            p.parse(buf, n)
        except MemoryError:
            failures += 1
        finally:
            micropython.heap_unlock()
    assert failures == 0, SEED
    for count in (p.garbage, p.checksum_errors, p.no_checksum, p.bad_values, p.sentences):
        assert count > 0, (SEED, p.counters())


async def test_reader_memory_bounded():
    _seeded(5)
    uart = FakeUART()
    g = gnss.GNSS(uart)
    task = asyncio.create_task(g.run())
    for r in range(_WARM_UP_ROUNDS):
        await _fuzz_round(uart, g, r)
    gc.collect()
    start = gc.mem_alloc()
    peak = start
    for r in range(_WARM_UP_ROUNDS, _WARM_UP_ROUNDS + _MEASURED_ROUNDS):
        await _fuzz_round(uart, g, r)
        gc.collect()
        peak = max(peak, gc.mem_alloc())
    task.cancel()
    await asyncio.sleep_ms(0)
    print("heap after warm-up %d bytes, peak %d bytes" % (start, peak))
    assert peak - start <= _HEAP_SLACK_BYTES, (SEED, start, peak)


def test_line_over_65535_bytes_rejected():
    # parse() keeps field offsets as 16-bit array entries, which MicroPython
    # stores modulo 65536, so this line's second field would start at 4472.
    p = nmea.Parser()
    line = _with_checksum(b"GPTXT," + b"A" * 70000 + b",1")
    assert p.parse(line, len(line)) == nmea.REJECTED
    assert p.garbage == 1
    assert p.sentences == 0


def test_rmc_day_beyond_month_rejected():
    # An RMC of furuno_gl_ga.log with one digit of its longitude and one of
    # its date changed. Its date, 31 June, does not exist.
    p = nmea.Parser()
    line = b"$GNRMC,120219.000,A,5957.0062,N,01100.6427,E,0.00,0.00,310622,,,D,V*0F"
    assert p.parse(line, len(line)) == nmea.REJECTED
    assert p.bad_values == 1
    line = _with_checksum(b"GNRMC,120219.000,A,5957.0062,N,01100.6427,E,0.00,0.00,300622,,,D,V")
    assert p.parse(line, len(line)) == nmea.RMC
    assert (p.year, p.month, p.day) == (2022, 6, 30)
