# Tests of drivers.dht_sensor: frame decoding, field cases C1/C2, error mapping, the simulated sensor
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import errno
import time

import micropython
import world
from drivers import board
from drivers import dht_sensor
from drivers.dht_sensor import CHECKSUM, ERROR, OK, RANGE, TIMEOUT, DHTSensor


def _frame(text):
    return bytearray(int(h, 16) for h in text.split())


class FrameDev:
    """Stand-in for a stock dht object: measure() raises the queued error or keeps buf."""

    def __init__(self, text="01 B5 00 E1 97"):
        self.buf = _frame(text)
        self.error = None

    def measure(self):
        if self.error is not None:
            raise self.error


# Field case C2: DHT22 below 0 degC. Byte 4 is (b0 + b1 + b2 + b3) & 0xFF;
# RH 0x028C = 652 tenths = 65.2 %RH in every frame.
C2_FRAMES = (
    ("02 8C 80 65 73", -101),  # sign bit + magnitude 0x65 = 101: -10.1 degC
    ("02 8C 80 01 0F", -1),  # -0.1 degC
    ("02 8C 00 00 8E", 0),  # 0.0 degC
    ("02 8C FF 9B 28", -101),  # two's complement 0xFF9B = -101, never -3266.7
)


def test_c2_checksums():
    for text, _ in C2_FRAMES:
        frame = _frame(text)
        assert (frame[0] + frame[1] + frame[2] + frame[3]) & 0xFF == frame[4], text


def test_c2_frames_decode():
    for text, temp_dc in C2_FRAMES:
        status, temp, rh = dht_sensor.decode_dht22(_frame(text))
        assert status == OK, text
        assert temp == temp_dc, text
        assert rh == 652, text


def test_c2_never_minus_3266():
    _, temp, _ = dht_sensor.decode_dht22(_frame("02 8C FF 9B 28"))
    assert temp != -32667


def test_c1_frame_decode():
    # 0x01B5 = 437 tenths = 43.7 %RH, 0x00E1 = 225 tenths = 22.5 degC.
    status, temp, rh = dht_sensor.decode_dht22(_frame("01 B5 00 E1 97"))
    assert status == OK
    assert temp == 225
    assert rh == 437


def test_dht22_bad_checksum():
    status, temp, rh = dht_sensor.decode_dht22(_frame("01 B5 00 E1 98"))
    assert status == CHECKSUM
    assert temp is None
    assert rh is None


def test_dht22_humidity_over_100():
    # RH 0x03E9 = 100.1 %RH, T 22.5 degC; 03 + E9 + 00 + E1 = 0x1CD.
    status, temp, rh = dht_sensor.decode_dht22(_frame("03 E9 00 E1 CD"))
    assert status == RANGE
    assert temp is None
    assert rh is None


def test_dht22_humidity_100_accepted():
    # RH 0x03E8 = 100.0 %RH; 03 + E8 + 00 + E1 = 0x1CC.
    status, _, rh = dht_sensor.decode_dht22(_frame("03 E8 00 E1 CC"))
    assert status == OK
    assert rh == 1000


def test_dht22_temperature_limits():
    # 0x0320 = 80.0 degC is the top of the range; 0x0321 = 80.1 degC is out.
    assert dht_sensor.decode_dht22(_frame("02 8C 03 20 B1"))[0] == OK
    assert dht_sensor.decode_dht22(_frame("02 8C 03 21 B2"))[0] == RANGE
    # 0x8190 = -40.0 degC is the bottom; 0x8191 = -40.1 degC is out.
    assert dht_sensor.decode_dht22(_frame("02 8C 81 90 9F"))[1] == -400
    assert dht_sensor.decode_dht22(_frame("02 8C 81 91 A0"))[0] == RANGE


def test_dht22_garbage_temperature_range():
    # 0x7FFF is 3276.7 degC as sign-and-magnitude and as two's complement.
    status, _, _ = dht_sensor.decode_dht22(_frame("02 8C 7F FF 0C"))
    assert status == RANGE


def test_dht11_decode():
    # 45.0 %RH, 22.5 degC; 2D + 00 + 16 + 05 = 0x48.
    status, temp, rh = dht_sensor.decode_dht11(_frame("2D 00 16 05 48"))
    assert status == OK
    assert temp == 225
    assert rh == 450


def test_dht11_out_of_range():
    # 55 degC is above the DHT11 range of 0..50 degC; 2D + 00 + 37 + 00 = 0x64.
    assert dht_sensor.decode_dht11(_frame("2D 00 37 00 64"))[0] == RANGE
    # 101 %RH; 65 + 00 + 16 + 00 = 0x7B.
    assert dht_sensor.decode_dht11(_frame("65 00 16 00 7B"))[0] == RANGE
    # A decimal byte above 9 is not a DHT11 frame; 2D + 00 + 16 + 0A = 0x4D.
    assert dht_sensor.decode_dht11(_frame("2D 00 16 0A 4D"))[0] == RANGE


def test_read_ok_sets_tenths():
    sensor = DHTSensor(FrameDev("01 B5 00 E1 97"), "DHT22")
    assert sensor.read() == OK
    assert sensor.temp_dc == 225
    assert sensor.rh_dr == 437


def test_read_two_complement_frame():
    sensor = DHTSensor(FrameDev("02 8C FF 9B 28"), "DHT22")
    assert sensor.read() == OK
    assert sensor.temp_dc == -101


def test_read_timeout_by_errno():
    dev = FrameDev()
    dev.error = OSError(errno.ETIMEDOUT)
    assert DHTSensor(dev, "DHT22").read() == TIMEOUT


def test_read_other_oserror():
    dev = FrameDev()
    dev.error = OSError(errno.EIO)
    assert DHTSensor(dev, "DHT22").read() == ERROR


def test_read_checksum_exception():
    dev = FrameDev()
    dev.error = Exception("checksum error")
    assert DHTSensor(dev, "DHT22").read() == CHECKSUM


def test_read_passes_memoryerror():
    dev = FrameDev()
    dev.error = MemoryError()
    try:
        DHTSensor(dev, "DHT22").read()
    except MemoryError:
        pass
    else:
        raise AssertionError("MemoryError reported as a checksum error")


def test_read_failure_keeps_no_value():
    dev = FrameDev("02 8C 03 21 B2")  # 80.1 degC
    sensor = DHTSensor(dev, "DHT22")
    assert sensor.read() == RANGE
    assert sensor.temp_dc is None
    assert sensor.rh_dr is None


def test_unknown_model_rejected():
    try:
        DHTSensor(FrameDev(), "DHT21")
    except ValueError as e:
        assert "DHT21" in str(e)
    else:
        raise AssertionError("DHT21 accepted")


def test_read_allocates_nothing():
    sensor = DHTSensor(FrameDev("02 8C FF 9B 28"), "DHT22")
    micropython.heap_lock()
    try:
        status = sensor.read()
    finally:
        micropython.heap_unlock()
    assert status == OK
    assert sensor.temp_dc == -101


def _sim_sensor(dht, model="DHT22"):
    w = world.World({"dht": dht})
    world.set_current(w)
    return w, DHTSensor(board.dht_sensor(model), model)


def test_sim_read_right_after_power_up():
    # The part does not respond in the first second after power-up.
    w, sensor = _sim_sensor({"model": "DHT22", "temp": [[0, 22.5]], "rh": [[0, 43.7]]})
    assert sensor.read() == TIMEOUT
    assert sensor.temp_dc is None


def test_sim_read_decodes_frame():
    w, sensor = _sim_sensor({"model": "DHT22", "temp": [[0, -10.1]], "rh": [[0, 65.2]]})
    time.sleep_ms(1100)
    assert sensor.read() == OK
    assert sensor.temp_dc == -101
    assert sensor.rh_dr == 652


def test_sim_read_two_complement_part():
    w, sensor = _sim_sensor(
        {"model": "DHT22", "temp": [[0, -10.1]], "rh": [[0, 65.2]], "encoding": "twos_complement"}
    )
    time.sleep_ms(1100)
    assert sensor.read() == OK
    assert sensor.temp_dc == -101


def test_sim_read_faults():
    w, sensor = _sim_sensor({"model": "DHT22", "temp": [[0, 4.0]], "rh": [[0, 75.0]]})
    time.sleep_ms(1100)
    w.set_dht(4.0, 75.0, "checksum")
    assert sensor.read() == CHECKSUM
    time.sleep_ms(2100)
    w.set_dht(4.0, 75.0, "timeout")
    assert sensor.read() == TIMEOUT
    time.sleep_ms(2100)
    w.set_dht(4.0, 75.0, None)
    assert sensor.read() == OK
    assert sensor.temp_dc == 40
    assert sensor.rh_dr == 750


def test_sim_read_too_soon_times_out():
    w, sensor = _sim_sensor({"model": "DHT22", "temp": [[0, 4.0]], "rh": [[0, 75.0]]})
    time.sleep_ms(1100)
    assert sensor.read() == OK
    assert sensor.read() == TIMEOUT  # within 2 s of the previous read


def test_sim_dht11():
    w, sensor = _sim_sensor({"model": "DHT11", "temp": [[0, 22.0]], "rh": [[0, 45.0]]}, "DHT11")
    time.sleep_ms(1100)
    assert sensor.read() == OK
    assert sensor.temp_dc == 220
    assert sensor.rh_dr == 450
