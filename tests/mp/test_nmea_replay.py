# Tests of tools/sim/nmea_replay: epochs of real captures, pacing, looping and the date rewrite
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import os

import micropython
import nmea_replay
from nmea_replay import Capture, Replay

_DATA = "tests/data/nmea/"
_TMP = "/tmp/vt-nmea-replay-test"

# Two sentences of skytraq-dgps.log, with checksums 0x72 and 0x52 in the file.
SKY_RMC = b"$GPRMC,213121.000,A,4404.1295864,N,12118.8685453,W,000.0,122.7,070416,,,D*72"
SKY_ZDA = b"$GPZDA,213121.000,07,04,2016,00,00*52"
# The same with the date 2026-03-16; checksums computed with pynmea2.
SKY_RMC_2026 = b"$GPRMC,213121.000,A,4404.1295864,N,12118.8685453,W,000.0,122.7,160326,,,D*76"
SKY_ZDA_2026 = b"$GPZDA,213121.000,16,03,2026,00,00*56"


def _xor(body):
    # Independent NMEA checksum: XOR of the characters between '$' and '*'.
    x = 0
    for i in range(len(body)):
        x ^= body[i]
    return x


def _write(name, text):
    try:
        os.mkdir(_TMP)
    except OSError:
        pass
    path = _TMP + "/" + name
    with open(path, "wb") as f:
        f.write(text)
    return path


def _lines(data):
    # Split epoch bytes into lines, each still ending in CRLF.
    out = []
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            end = len(data) - 1
        out.append(bytes(data[start : end + 1]))
        start = end + 1
    return out


def _first_epoch_lines(path):
    # The data lines before the second GGA, read here without nmea_replay:
    # no comments, no blank lines, no line ends.
    out = []
    with open(path, "rb") as f:
        while True:
            line = f.readline()
            if not line:
                return out
            line = line.rstrip(b"\r\n")
            if not line.strip() or line.startswith(b"#"):
                continue
            if line.startswith(b"$GPGGA,") and out:
                return out
            out.append(line)


class Sink:
    """Collects what Replay.pump() hands over, like the UART's receive buffer."""

    def __init__(self):
        self.data = bytearray()

    def put(self, data, start, end):
        self.data += data[start:end]


def test_time_fields():
    assert nmea_replay.sentence_time_ms(SKY_RMC) == ((21 * 60 + 31) * 60 + 21) * 1000
    gll = b"$GPGLL,4404.1295864,N,12118.8685453,W,213121.000,A,D*47"
    assert nmea_replay.sentence_time_ms(gll) == 77_481_000
    assert nmea_replay.sentence_time_ms(b"$GNRMC,000512.20,V,,,,,,,,,,N,V*1F") == 312_200
    assert nmea_replay.sentence_time_ms(b" $GPGGA,101530.5,,,,,0,00,,,,,,,*00") == 36_930_500


def test_sentences_without_time():
    assert nmea_replay.sentence_time_ms(b"$GPGSA,A,3,09,23,08,11,27,28,,,,,,,2.5,1.2,2.2*39") is None
    psti = b"$PSTI,030,213121.000,A,4404.1295864,N,12118.8685453,W,1102.537*13"
    assert nmea_replay.sentence_time_ms(psti) is None
    assert nmea_replay.sentence_time_ms(b"$GPGGA,,,,,,0,00,,,,,,,*66") is None
    assert nmea_replay.sentence_time_ms(b"$GPGGA,2a3121.000,,,,,0,00,,,,,,,*66") is None
    assert nmea_replay.sentence_time_ms(b"\x81\x92garbage") is None


def test_skytraq_epochs():
    # skytraq-dgps.log: 96 GGA sentences, one per second, 1024 data lines.
    cap = Capture(_DATA + "skytraq-dgps.log")
    assert cap.epoch_count == 96
    assert cap.step_ms(0) == 0
    for i in range(1, cap.epoch_count):
        assert cap.step_ms(i) == 1000, i
    total = 0
    for i in range(cap.epoch_count):
        lines = _lines(cap.epoch_bytes(i))
        total += len(lines)
        assert lines[0].startswith(b"$GPGGA,"), i
        assert sum(1 for line in lines if line.startswith(b"$GPGGA,")) == 1, i
    assert total == 1024
    cap.close()


def test_epoch_holds_untimed_lines():
    # Epoch 0 is every data line before the second GGA, in file order.
    path = _DATA + "skytraq-dgps.log"
    expected = [line + b"\r\n" for line in _first_epoch_lines(path)]
    cap = Capture(path)
    assert _lines(cap.epoch_bytes(0)) == expected
    assert expected[3].startswith(b"$BDGSA,")
    assert expected[-1].startswith(b"$PSTI,")
    cap.close()


def test_comments_skipped_and_crlf():
    # skytraq-dgps.log has LF line ends, mt3339.log CRLF; both have '#' headers.
    for name in ("skytraq-dgps.log", "mt3339.log"):
        cap = Capture(_DATA + name)
        for i in range(cap.epoch_count):
            data = cap.epoch_bytes(i)
            assert data.count(b"\n") == data.count(b"\r\n"), (name, i)
            assert data.endswith(b"\r\n"), (name, i)
            for line in _lines(data):
                assert not line.startswith(b"#"), (name, i)
                assert line.strip(), (name, i)
        cap.close()


def test_capture_rates():
    hemi = Capture(_DATA + "hemi.log")
    steps = [hemi.step_ms(i) for i in range(1, hemi.epoch_count)]
    assert 500 in steps  # the 2 Hz part
    assert set(steps) == {500, 1000}
    hemi.close()

    l76k = Capture(_DATA + "quectel-l76k-nmea.log")
    for i in range(1, l76k.epoch_count):
        assert l76k.step_ms(i) == 200, i
    l76k.close()


def test_long_gap_shortened():
    # nmea-rtk.log: 10 Hz, with a gap of about 10 minutes between its two parts.
    cap = Capture(_DATA + "nmea-rtk.log")
    steps = [cap.step_ms(i) for i in range(1, cap.epoch_count)]
    assert steps.count(1000) == 1
    assert steps.count(100) == len(steps) - 1
    cap.close()


def test_midnight_and_backwards_steps():
    path = _write(
        "midnight.log",
        b"# header\n"
        b"$GPGSV,1,1,00*79\n"
        b"$GPGGA,235959.00,,,,,0,00,,,,,,,*66\r\n"
        b"$GPGGA,000000.00,,,,,0,00,,,,,,,*66\r\n"
        b"\r\n"
        b"$GPGGA,000000.50,,,,,0,00,,,,,,,*66\r\n"
        b"$GPGGA,235000.00,,,,,0,00,,,,,,,*66\r\n"
        b"$GPGGA,235003.00,,,,,0,00,,,,,,,*66\r\n"
        b"$GPGGA,235009.00,,,,,0,00,,,,,,,*66",
    )
    cap = Capture(path)
    assert cap.epoch_count == 6
    assert [cap.step_ms(i) for i in range(6)] == [0, 1000, 500, 1000, 3000, 1000]
    # The GSV before the first time belongs to the first epoch.
    assert cap.epoch_bytes(0) == b"$GPGSV,1,1,00*79\r\n$GPGGA,235959.00,,,,,0,00,,,,,,,*66\r\n"
    # The last line has no line end in the file, so none is sent.
    assert cap.epoch_bytes(5) == b"$GPGGA,235009.00,,,,,0,00,,,,,,,*66"
    assert cap.loop_step_ms() == 1000
    cap.close()


def test_rewrite_rmc_date():
    out = nmea_replay.rewrite_date(SKY_RMC, (2026, 3, 16))
    assert out == SKY_RMC_2026
    star = out.find(b"*")
    assert _xor(out[1:star]) == int(out[star + 1 :], 16)


def test_rewrite_keeps_time_and_position():
    out = nmea_replay.rewrite_date(SKY_RMC, (2026, 3, 16)).split(b",")
    old = SKY_RMC.split(b",")
    for i in range(len(old) - 1):
        if i != 9:
            assert out[i] == old[i], i
    assert out[9] == b"160326"


def test_rewrite_zda_date():
    out = nmea_replay.rewrite_date(SKY_ZDA, (2026, 3, 16))
    assert out == SKY_ZDA_2026
    star = out.find(b"*")
    assert _xor(out[1:star]) == int(out[star + 1 :], 16)


def test_rewrite_keeps_bad_checksum_bad():
    # The right checksum of SKY_RMC is 0x72; with *00 it is off by 0x72, and
    # stays off by 0x72 after the rewrite: 0x76 ^ 0x72 = 0x04.
    bad = SKY_RMC[:-2] + b"00"
    out = nmea_replay.rewrite_date(bad, (2026, 3, 16))
    assert out == SKY_RMC_2026[:-2] + b"04"


def test_rewrite_leaves_other_lines():
    empty_date = b"$GPRMC,000000.00,V,,,,,,,,,,N*7D"
    assert nmea_replay.rewrite_date(empty_date, (2026, 3, 16)) == empty_date
    no_checksum = b"$GPRMC,213121.000,A,4404.1295864,N,12118.8685453,W,000.0,122.7,070416"
    assert nmea_replay.rewrite_date(no_checksum, (2026, 3, 16)) == no_checksum
    gga = b"$GPGGA,213121.000,4404.1295864,N,12118.8685453,W,2,07,1.2,1102.537,M,-20.300,M,,0000*5F"
    assert nmea_replay.rewrite_date(gga, (2026, 3, 16)) == gga
    with_cr = SKY_RMC + b"\r"
    assert nmea_replay.rewrite_date(with_cr, (2026, 3, 16)) == SKY_RMC_2026 + b"\r"


def test_capture_with_date():
    cap = Capture(_DATA + "skytraq-dgps.log", (2026, 3, 16))
    data = cap.epoch_bytes(0)
    assert SKY_RMC_2026 + b"\r\n" in data
    assert SKY_ZDA_2026 + b"\r\n" in data
    # The PSTI sentence also carries 070416 but is proprietary and left alone.
    assert data.count(b"070416") == 1
    cap.close()


def test_two_digit_year():
    rmc = b"$GPRMC,235959.00,A,4404.1295864,N,12118.8685453,W,000.0,122.7,010108,,,D*00"
    out = nmea_replay.rewrite_date(rmc, (2024, 2, 29))
    assert out.split(b",")[9] == b"290224"


def test_replay_pace():
    cap = Capture(_DATA + "skytraq-dgps.log")
    first = cap.epoch_bytes(0)
    second = cap.epoch_bytes(1)
    # One epoch fits in one second at 9600 baud (960 bytes/s).
    assert len(first) < 960
    replay = Replay(cap, 9600, True, 5000)
    sink = Sink()
    replay.pump(4000, sink)
    assert len(sink.data) == 0
    replay.pump(5100, sink)
    assert bytes(sink.data) == first[:96]  # 100 ms x 0.96 bytes/ms
    replay.pump(5999, sink)
    assert bytes(sink.data) == first
    replay.pump(6000, sink)
    assert len(sink.data) == len(first)  # the next epoch is due at 6000 ms
    replay.pump(6250, sink)
    assert bytes(sink.data) == first + second[:240]
    assert replay.epochs_sent == 1
    cap.close()


def test_replay_slow_line_delays_epochs():
    # At 1200 baud (120 bytes/s) an epoch of skytraq-dgps.log takes several seconds.
    cap = Capture(_DATA + "skytraq-dgps.log")
    n = len(cap.epoch_bytes(0))
    replay = Replay(cap, 1200, True, 0)
    sink = Sink()
    end_ms = (n * 10_000 + 1199) // 1200
    replay.pump(end_ms - 10, sink)
    assert len(sink.data) < n
    replay.pump(end_ms, sink)
    assert len(sink.data) == n
    replay.pump(end_ms + 100, sink)
    assert len(sink.data) == n + 12  # the next epoch starts when the line is free
    cap.close()


def test_replay_loop():
    path = _write(
        "two.log",
        b"$GPGGA,120000.00,,,,,0,00,,,,,,,*66\n$GPGGA,120000.50,,,,,0,00,,,,,,,*66\n",
    )
    cap = Capture(path)
    one = cap.epoch_bytes(0)
    two = cap.epoch_bytes(1)
    looped = Replay(cap, 115200, True, 0)
    sink = Sink()
    looped.pump(499, sink)
    assert bytes(sink.data) == one
    looped.pump(999, sink)
    assert bytes(sink.data) == one + two
    # After the last epoch, the first comes again after the last epoch's step.
    looped.pump(1100, sink)
    assert bytes(sink.data) == one + two + one
    assert not looped.done

    once = Replay(cap, 115200, False, 0)
    sink = Sink()
    once.pump(10_000, sink)
    assert bytes(sink.data) == one + two
    assert once.done
    cap.close()


def test_replay_pump_allocates_nothing():
    cap = Capture(_DATA + "skytraq-dgps.log")
    replay = Replay(cap, 9600, True, 0)
    sink = Sink()
    replay.pump(10, sink)
    before = len(sink.data)
    sink.data = bytearray(1000)  # room for what arrives, so put() does not grow it
    sink.put = lambda data, start, end: None
    micropython.heap_lock()
    try:
        for t in range(20, 500, 7):
            replay.pump(t, sink)
    finally:
        micropython.heap_unlock()
    assert before > 0
    assert replay.epochs_sent == 0
    cap.close()


class FixedSink:
    """A receive buffer made once, filled without allocating, for tests under heap_lock()."""

    def __init__(self, size):
        self.data = bytearray(size)
        self.n = 0

    def put(self, data, start, end):
        for i in range(start, end):
            self.data[self.n] = data[i]
            self.n += 1


def test_replay_epochs_allocate_nothing():
    # Epoch starts read the file and rewrite RMC and ZDA dates: all in
    # buffers made once, because the simulated UART shares the firmware's heap.
    cap = Capture(_DATA + "skytraq-dgps.log", (2026, 3, 16))
    replay = Replay(cap, 9600, True, 0)
    sink = FixedSink(20000)
    micropython.heap_lock()
    try:
        for t in range(0, 8000, 50):
            replay.pump(t, sink)
    finally:
        micropython.heap_unlock()
    assert replay.epochs_sent >= 5
    got = bytes(sink.data[: sink.n])
    assert got.count(SKY_RMC_2026 + b"\r\n") == 1
    assert got.count(SKY_ZDA_2026 + b"\r\n") == 1
    dated = 0
    for line in got.split(b"\r\n"):
        if line.startswith(b"$GPRMC") or line.startswith(b"$GPZDA"):
            dated += 1
            assert b",160326," in line or b",16,03,2026," in line, line
            star = line.find(b"*")
            assert _xor(line[1:star]) == int(line[star + 1 :], 16), line
    assert dated >= 2 * replay.epochs_sent
    cap.close()


def test_rewrite_date_of_unusual_width():
    # A one-digit day in ZDA cannot be set in place: the line gets longer and
    # the checksum is computed over the new text (here by hand: XOR of the body).
    zda = b"$GPZDA,213121.000,7,04,2016,00,00*"
    zda += b"%02X" % _xor(zda[1:-1])
    out = nmea_replay.rewrite_date(zda, (2026, 3, 16))
    assert out[: out.find(b"*")] == b"$GPZDA,213121.000,16,03,2026,00,00"
    assert out == SKY_ZDA_2026
    path = _write("narrow.log", zda + b"\n")
    cap = Capture(path, (2026, 3, 16))
    assert cap.epoch_bytes(0) == SKY_ZDA_2026 + b"\r\n"
    cap.close()


def test_rewrite_lower_case_checksum():
    lower = SKY_RMC[:-2] + b"72".lower()
    assert nmea_replay.rewrite_date(b"$GPZDA,213121.000,07,04,2016,00,00*5a", (2026, 3, 16))[-2:] == b"5E"
    assert nmea_replay.rewrite_date(lower, (2026, 3, 16)) == SKY_RMC_2026


def test_empty_capture_rejected():
    path = _write("empty.log", b"# only a comment\n\n")
    try:
        Capture(path)
    except ValueError as e:
        assert "no NMEA sentences" in str(e)
    else:
        raise AssertionError("a capture without sentences was accepted")


def test_replay_silent_before_from_ms():
    cap = Capture(_DATA + "skytraq-dgps.log")
    first = cap.epoch_bytes(0)
    second = cap.epoch_bytes(1)
    # The UART opens at 1000 ms, and the receiver starts sending at 20,000 ms.
    replay = Replay(cap, 9600, True, 1000, 20_000)
    sink = Sink()
    replay.pump(19_999, sink)
    assert len(sink.data) == 0
    assert replay.epochs_sent == 0
    replay.pump(20_100, sink)
    assert bytes(sink.data) == first[:96]  # 100 ms x 0.96 bytes/ms
    # The capture's pace counts from from_ms: the second epoch is due 1 s later.
    replay.pump(20_999, sink)
    assert bytes(sink.data) == first
    replay.pump(21_250, sink)
    assert bytes(sink.data) == first + second[:240]
    cap.close()


def test_replay_from_ms_before_uart_opens():
    # A receiver that started sending before the UART opened: bytes count from the opening.
    cap = Capture(_DATA + "skytraq-dgps.log")
    first = cap.epoch_bytes(0)
    late = Replay(cap, 9600, True, 5000, 2000)
    sink = Sink()
    late.pump(4999, sink)
    assert len(sink.data) == 0
    late.pump(5100, sink)
    assert bytes(sink.data) == first[:96]
    cap.close()


def test_scenario_from_s_checked():
    import scenario

    nmea = {"file": "tests/data/nmea/skytraq-dgps.log"}
    assert scenario.validate({"nmea": nmea})["nmea"]["from_s"] == 0
    nmea["from_s"] = 45.5
    assert scenario.validate({"nmea": nmea})["nmea"]["from_s"] == 45.5
    for bad in (-1, "30", True, None, 86401):
        nmea["from_s"] = bad
        try:
            scenario.validate({"nmea": nmea})
        except scenario.ScenarioError as e:
            assert e.errors == [("nmea.from_s", "must be 0..86400 seconds, got %r" % (bad,))], e.errors
        else:
            raise AssertionError("nmea.from_s %r accepted" % (bad,))


def test_uart_silent_until_from_s():
    import world
    from drivers import board
    from machine import UART

    w = world.World({"nmea": {"file": _DATA + "skytraq-dgps.log", "from_s": 30}})
    world.set_current(w)
    first = w.nmea.epoch_bytes(0)
    uart = UART(board.GNSS_UART_ID, baudrate=9600, rxbuf=2048)
    w.advance(29.9)
    assert uart.any() == 0
    assert uart.read() is None
    w.advance(0.2)
    # Between 0.1 and 0.2 s of bytes at 960 bytes/s, depending on the ms that really passed.
    n = uart.any()
    assert 96 <= n <= 200, n
    assert uart.read(n) == first[:n]
