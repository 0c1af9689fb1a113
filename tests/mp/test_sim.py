# Tests of the simulated hardware in tools/sim: 1-Wire probes, DHT, pins and IRQs, UART, GNSS route, WDT, RTC, scenarios
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import asyncio
import errno
import os
import sys
import time

import dht
import ds18x20
import machine
import micropython
import nmea_route
import onewire
import scenario
import world
from drivers import board
from machine import UART, WDT, Pin

FRONT = "28A1B2C304000096"
REAR = "28112233050000FC"
# ROM IDs that differ from FRONT in one late bit each; CRC bytes computed by hand.
NEAR_32 = "28A1B2C30500003D"
NEAR_48 = "28A1B2C3040001C8"
NEAR_55 = "28A1B2C30400801A"

NMEA = {"file": "tests/data/nmea/skytraq-dgps.log", "baud": 9600, "loop": True}
_TMP = "/tmp/vt-sim-test"


def _hex(text):
    return bytes(int(h, 16) for h in text.split())


def _world(data):
    w = world.World(data)
    world.set_current(w)
    return w


def _bus(probes):
    w = _world({"probes": probes})
    return w, ds18x20.DS18X20(onewire.OneWire(Pin(board.ONEWIRE_PIN)))


def _raises(fn, exc_type):
    try:
        fn()
    except exc_type as e:
        return e
    raise AssertionError("%s not raised" % exc_type.__name__)


# Dallas CRC-8


def test_crc8_hand_values():
    # Byte 7 of a ROM ID and byte 8 of a scratchpad are CRC-8 of the bytes before.
    assert onewire.crc8(_hex("28 A1 B2 C3 04 00 00")) == 0x96
    assert onewire.crc8(_hex("31 FF 4B 46 7F FF 0F 10")) == 0x24
    assert onewire.crc8(_hex("50 05 4B 46 7F FF 0C 10")) == 0x1C
    assert onewire.crc8(_hex("31 FF 4B 46 7F FF 0F 10 24")) == 0
    assert onewire.crc8(bytes(9)) == 0


# DS18B20 on the 1-Wire bus

# Field case B1: (degC, scratchpad after a 12-bit conversion).
B1_FRAMES = (
    (-12.9375, "31 FF 4B 46 7F FF 0F 10 24"),
    (-25.0625, "6F FE 4B 46 7F FF 01 10 61"),
    (-0.0625, "FF FF 4B 46 7F FF 01 10 9A"),
    (-55.0, "90 FC 4B 46 7F FF 10 10 EE"),
    (25.0625, "91 01 4B 46 7F FF 0F 10 25"),
)


def test_scratchpad_b1_frames():
    for celsius, frame in B1_FRAMES:
        w, ds = _bus([{"rom": FRONT, "temp": [[0, celsius]]}])
        ds.convert_temp()
        w.advance(0.76)
        assert bytes(ds.read_scratch(scenario.parse_rom(FRONT))) == _hex(frame), frame
        assert ds.read_temp(scenario.parse_rom(FRONT)) == celsius, frame


def test_power_on_value_before_conversion():
    # Field case B2, frame 1: +85.0 degC with byte 6 = 0x0C.
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.0]]}])
    rom = scenario.parse_rom(FRONT)
    assert bytes(ds.read_scratch(rom)) == _hex("50 05 4B 46 7F FF 0C 10 1C")
    assert ds.read_temp(rom) == 85.0


def test_real_85_after_conversion():
    # Field case B2, frame 2: a real 85 degC conversion has byte 6 = 0x10.
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 85.0]]}])
    ds.convert_temp()
    w.advance(0.76)
    assert bytes(ds.read_scratch(scenario.parse_rom(FRONT))) == _hex("50 05 4B 46 7F FF 10 10 BD")


def test_conversion_takes_750_ms():
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.0], [10, 4.0], [10, -12.9375]]}])
    rom = scenario.parse_rom(FRONT)
    ds.convert_temp()
    w.advance(0.76)
    assert ds.read_temp(rom) == 4.0
    w.advance(10)
    ds.convert_temp()
    w.advance(0.7)
    assert ds.read_temp(rom) == 4.0  # the previous value until the time is up
    w.advance(0.06)
    assert ds.read_temp(rom) == -12.9375


def test_conversion_status_read_slots():
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.0]]}])
    ds.convert_temp()
    assert ds.ow.readbit() == 0  # busy
    w.advance(0.76)
    assert ds.ow.readbit() == 1  # done


def test_resolution_9_bit():
    # Config 0x1F selects 9 bits: 93.75 ms per conversion, steps of 0.5 degC.
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.3]]}])
    rom = scenario.parse_rom(FRONT)
    ds.write_scratch(rom, b"\x4b\x46\x1f")
    ds.convert_temp()
    w.advance(0.05)
    assert ds.read_temp(rom) == 85.0
    w.advance(0.05)
    assert ds.read_temp(rom) == 4.5
    assert ds.buf[4] == 0x1F


def test_read_blocks_for_bus_time():
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.0]]}])
    rom = scenario.parse_rom(FRONT)
    start = time.ticks_ms()
    ds.read_temp(rom)
    assert time.ticks_diff(time.ticks_ms(), start) >= 11  # about 13 ms on an ESP32


def test_absent_probe_reads_ff():
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.0]]}, {"rom": REAR, "temp": [[0, 5.0]]}])
    w.set_probe_fault(FRONT, "absent")
    ow = ds.ow
    assert ow.reset() is True  # REAR still responds
    ow.select_rom(scenario.parse_rom(FRONT))
    ow.writebyte(0xBE)
    buf = bytearray(9)
    ow.readinto(buf)
    assert bytes(buf) == b"\xff" * 9
    e = _raises(lambda: ds.read_scratch(scenario.parse_rom(FRONT)), Exception)
    assert str(e) == "CRC error"


def test_empty_bus():
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.0]], "faults": [{"from": 0, "kind": "absent"}]}])
    assert ds.ow.reset() is False
    _raises(lambda: ds.ow.reset(True), onewire.OneWireError)
    assert ds.scan() == []
    _raises(ds.convert_temp, onewire.OneWireError)


def test_no_probes_at_all():
    w, ds = _bus([])
    assert ds.scan() == []
    assert ds.ow.reset() is False


def test_crc_fault():
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.0]]}])
    w.set_probe_fault(FRONT, "crc")
    e = _raises(lambda: ds.read_temp(scenario.parse_rom(FRONT)), Exception)
    assert str(e) == "CRC error"


def test_zero_fault_passes_crc():
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.0]]}])
    w.set_probe_fault(FRONT, "zero")
    assert ds.read_temp(scenario.parse_rom(FRONT)) == 0.0
    assert bytes(ds.buf) == bytes(9)


def test_power_on_fault():
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.0]]}])
    rom = scenario.parse_rom(FRONT)
    ds.convert_temp()
    w.advance(0.76)
    w.set_probe_fault(rom, "power_on")
    assert bytes(ds.read_scratch(rom)) == _hex("50 05 4B 46 7F FF 0C 10 1C")
    w.set_probe_fault(rom, None)
    assert ds.read_temp(rom) == 4.0


def test_fault_windows_from_scenario():
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.0]], "faults": [{"from": 5, "to": 8, "kind": "absent"}]}])
    assert len(ds.scan()) == 1
    w.advance(6)
    assert ds.scan() == []
    w.advance(2)
    assert len(ds.scan()) == 1


def test_temperature_override_and_curve():
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 2.0], [100, 12.0]]}])
    rom = scenario.parse_rom(FRONT)
    w.advance(50)
    ds.convert_temp()
    w.advance(0.75)
    # 7.0 degC at 50 s, plus 0.075 degC for the 0.75 s of the conversion.
    assert ds.read_temp(rom) == 7.0625
    w.set_temp(FRONT, -3.5)
    ds.convert_temp()
    w.advance(0.76)
    assert ds.read_temp(rom) == -3.5


def test_scan_finds_all():
    roms = [FRONT, NEAR_32, NEAR_48, NEAR_55, REAR]
    w, ds = _bus([{"rom": r, "temp": [[0, 4.0]]} for r in roms])
    found = ds.scan()
    assert len(found) == 5
    for rom in found:
        assert isinstance(rom, bytearray)
        assert len(rom) == 8
    assert sorted(scenario.rom_text(r) for r in found) == sorted(roms)


def test_scan_order_independent():
    roms = [FRONT, NEAR_32, NEAR_48, NEAR_55, REAR]
    w, ds = _bus([{"rom": r, "temp": [[0, 4.0]]} for r in roms])
    first = [bytes(r) for r in ds.scan()]
    w, ds = _bus([{"rom": r, "temp": [[0, 4.0]]} for r in reversed(roms)])
    assert [bytes(r) for r in ds.scan()] == first


def test_skip_rom_read_with_two_probes_is_garbage():
    # Two probes responding at once drive the line together (wired AND).
    w, ds = _bus([{"rom": FRONT, "temp": [[0, 4.0]]}, {"rom": REAR, "temp": [[0, -12.9375]]}])
    ds.convert_temp()
    w.advance(0.76)
    ow = ds.ow
    ow.reset()
    ow.writebyte(ow.SKIP_ROM)
    ow.writebyte(0xBE)
    buf = bytearray(9)
    ow.readinto(buf)
    # 4.0 degC is 40 00, -12.9375 degC is 31 FF: 0x40 & 0x31 = 0x00, 0x00 & 0xFF = 0x00.
    assert buf[0] == 0x00
    assert buf[1] == 0x00
    assert onewire.crc8(buf) != 0


def test_other_pin_has_no_devices():
    w = _world({"probes": [{"rom": FRONT, "temp": [[0, 4.0]]}]})
    ow = onewire.OneWire(Pin(5))
    assert ow.reset() is False
    assert ow.scan() == []


# DHT


def _dht(spec, model="DHT22"):
    w = _world({"dht": spec})
    cls = dht.DHT11 if model == "DHT11" else dht.DHT22
    return w, cls(Pin(board.DHT_PIN))


def test_dht22_c1_frame():
    w, sensor = _dht({"model": "DHT22", "temp": [[0, 22.5]], "rh": [[0, 43.7]]})
    w.advance(2.5)
    sensor.measure()
    assert bytes(sensor.buf) == _hex("01 B5 00 E1 97")
    assert abs(sensor.humidity() - 43.7) < 1e-6
    assert abs(sensor.temperature() - 22.5) < 1e-6


def test_dht22_c2_frames():
    cases = (
        (-10.1, "sign_magnitude", "02 8C 80 65 73"),
        (-0.1, "sign_magnitude", "02 8C 80 01 0F"),
        (0.0, "sign_magnitude", "02 8C 00 00 8E"),
        (-10.1, "twos_complement", "02 8C FF 9B 28"),
    )
    for celsius, encoding, frame in cases:
        w, sensor = _dht({"temp": [[0, celsius]], "rh": [[0, 65.2]], "encoding": encoding})
        w.advance(2)
        sensor.measure()
        assert bytes(sensor.buf) == _hex(frame), frame


def test_dht22_stock_decoding():
    w, sensor = _dht({"temp": [[0, -10.1]], "rh": [[0, 65.2]]})
    w.advance(2)
    sensor.measure()
    assert abs(sensor.temperature() + 10.1) < 1e-6
    assert abs(sensor.humidity() - 65.2) < 1e-6


def test_dht11_frame():
    # 45 %RH, 22.5 degC: 2D 00 16 05, sum 0x48.
    w, sensor = _dht({"model": "DHT11", "temp": [[0, 22.5]], "rh": [[0, 45.0]]}, "DHT11")
    w.advance(1.5)
    sensor.measure()
    assert bytes(sensor.buf) == _hex("2D 00 16 05 48")
    assert sensor.humidity() == 45
    assert sensor.temperature() == 22


def _timed_out(sensor):
    try:
        sensor.measure()
    except OSError as e:
        assert e.errno == errno.ETIMEDOUT
        return True
    return False


def test_dht_read_spacing():
    # Field case C1: silent in the first second and within 2 s of the last
    # response. Every measure() call also moves the clock by its 0.27 s.
    w, sensor = _dht({"model": "DHT22", "temp": [[0, 22.5]], "rh": [[0, 43.7]]})
    w.advance(0.3)
    assert _timed_out(sensor)
    w.advance(0.8)  # about 1.4 s after power-up
    assert not _timed_out(sensor)
    w.advance(0.8)  # about 1.1 s after the last response
    assert _timed_out(sensor)
    w.advance(1.3)  # about 2.6 s after the last response
    assert not _timed_out(sensor)
    assert bytes(sensor.buf) == _hex("01 B5 00 E1 97")


def test_dht11_spacing_is_1_s():
    w, sensor = _dht({"model": "DHT11", "temp": [[0, 22.5]], "rh": [[0, 45.0]]}, "DHT11")
    w.advance(1.1)
    assert not _timed_out(sensor)
    w.advance(0.4)  # about 0.7 s after the last response
    assert _timed_out(sensor)
    w.advance(0.3)  # about 1.2 s after the last response
    assert not _timed_out(sensor)


def test_dht_measure_blocks():
    w, sensor = _dht({"temp": [[0, 4.0]], "rh": [[0, 75.0]]})
    w.advance(2)
    start = time.ticks_ms()
    sensor.measure()
    blocked_ms = time.ticks_diff(time.ticks_ms(), start)
    assert blocked_ms >= 265
    assert blocked_ms < 400


def test_dht_faults():
    w, sensor = _dht(
        {
            "temp": [[0, 4.0]],
            "rh": [[0, 75.0]],
            "faults": [{"from": 10, "to": 20, "kind": "timeout"}, {"from": 30, "to": 40, "kind": "checksum"}],
        }
    )
    w.advance(12)
    assert _timed_out(sensor)
    w.advance(20)
    e = _raises(sensor.measure, Exception)
    assert str(e) == "checksum error"
    assert sensor.buf[4] != (sensor.buf[0] + sensor.buf[1] + sensor.buf[2] + sensor.buf[3]) & 0xFF
    w.advance(10)
    assert not _timed_out(sensor)


def test_dht_overrides():
    w, sensor = _dht({"temp": [[0, 4.0]], "rh": [[0, 75.0]]})
    w.advance(2)
    w.set_dht(22.5, 43.7, None)
    sensor.measure()
    assert bytes(sensor.buf) == _hex("01 B5 00 E1 97")
    w.advance(2)
    w.set_dht(fault="timeout")
    assert _timed_out(sensor)


def test_dht_absent():
    w = _world({})
    sensor = dht.DHT22(Pin(board.DHT_PIN))
    w.advance(5)
    assert _timed_out(sensor)
    w = _world({"dht": {}})
    wrong_pin = dht.DHT22(Pin(14))
    w.advance(5)
    assert _timed_out(wrong_pin)


# Pins and input edges


def test_input_levels_and_bounce():
    w = _world({"inputs": {"door": [[0.2, 1], [0.5, 0]], "bounce_ms": 4}})
    door = w.inputs["door"]
    assert door.level(199) == 0
    assert door.level(200) == 1  # first contact
    assert door.level(202) == 0  # bounced back half-way through 4 ms
    assert door.level(204) == 1  # settled
    assert door.level(499) == 1
    assert door.level(500) == 0
    assert door.level(502) == 1
    assert door.level(504) == 0
    assert w.input_level("door", 0.202) == 1  # scenario level, no bounce


def test_input_pins_follow_active_low():
    w = _world({"inputs": {"door": [[0, 1]], "sos": [[0, 1]], "ignition": [[0, 1]]}})
    assert Pin(board.DOOR_PIN, Pin.IN, Pin.PULL_UP).value() == 1  # door open
    assert Pin(board.SOS_PIN, Pin.IN, Pin.PULL_UP).value() == 0  # SOS pressed pulls to GND
    assert Pin(board.IGNITION_PIN, Pin.IN).value() == 1
    w = _world({})
    assert Pin(board.SOS_PIN, Pin.IN, Pin.PULL_UP).value() == 1
    assert Pin(board.IGNITION_PIN, Pin.IN).value() == 0


def test_input_pin_over_time():
    w = _world({"inputs": {"sos": [[1, 1], [2, 0]], "bounce_ms": 3}})
    sos = Pin(board.SOS_PIN, Pin.IN, Pin.PULL_UP)
    assert sos.value() == 1
    w.advance(1.5)
    assert sos.value() == 0
    w.advance(1)
    assert sos.value() == 1


def test_safe_mode_pin():
    w = _world({})
    assert board.safe_mode_pin().value() == 1
    w = _world({"inputs": {"safe_mode": [[0, 1]]}})
    assert board.safe_mode_pin().value() == 0


def test_plain_pins():
    w = _world({})
    assert Pin(18, Pin.IN, Pin.PULL_UP).value() == 1
    assert Pin(19, Pin.IN).value() == 0
    _raises(lambda: Pin(20), ValueError)
    _raises(lambda: Pin(board.IGNITION_PIN, Pin.OUT), ValueError)


def test_output_history():
    w = _world({})
    buzzer, led = board.output_pins()
    buzzer.on()
    led.value(1)
    buzzer.off()
    assert [level for _, level in w.pin_history(board.BUZZER_PIN)] == [0, 1, 0]
    assert [level for _, level in w.pin_history(board.LED_PIN)] == [0, 1]
    assert buzzer.value() == 0
    assert led.value() == 1


async def test_irq_fires_at_scenario_time():
    w = _world({"inputs": {"door": [[0.2, 1], [0.4, 0]]}})
    calls = []

    def handler(pin):
        calls.append((pin, time.ticks_diff(time.ticks_ms(), w.start_ms), pin.value()))

    door = Pin(board.DOOR_PIN, Pin.IN, Pin.PULL_UP)
    irq = door.irq(handler=handler, trigger=Pin.IRQ_RISING)
    task = w.start_in_loop()
    await asyncio.sleep_ms(550)
    task.cancel()
    assert len(calls) == 1
    pin, at_ms, level = calls[0]
    assert pin is door
    assert 200 <= at_ms <= 260
    assert level == 1
    assert irq.flags() == Pin.IRQ_RISING


async def test_irq_sees_bounce():
    w = _world({"inputs": {"sos": [[0.1, 1]], "bounce_ms": 6}})
    times = []
    sos = Pin(board.SOS_PIN, Pin.IN, Pin.PULL_UP)
    sos.irq(handler=lambda pin: times.append(time.ticks_diff(time.ticks_ms(), w.start_ms)))
    task = w.start_in_loop()
    await asyncio.sleep_ms(250)
    task.cancel()
    # Falling at the press, rising at the bounce (3 ms), falling when it settles (6 ms).
    assert len(times) == 3
    assert 100 <= times[0] <= 160
    assert times[2] - times[0] >= 5


async def test_irq_trigger_and_disable():
    # SOS is active low: a press is a falling edge.
    w = _world({"inputs": {"sos": [[0.05, 1], [0.1, 0], [0.15, 1]]}})
    falls = []
    sos = Pin(board.SOS_PIN, Pin.IN, Pin.PULL_UP)
    sos.irq(handler=lambda pin: falls.append(pin.value()), trigger=Pin.IRQ_FALLING)
    task = w.start_in_loop()
    await asyncio.sleep_ms(125)
    sos.irq(handler=None)
    await asyncio.sleep_ms(100)
    task.cancel()
    assert falls == [0]


# UART


def test_uart_pacing():
    w = _world({"nmea": NMEA})
    first = w.nmea.epoch_bytes(0)
    uart = UART(board.GNSS_UART_ID, baudrate=9600, rxbuf=2048, timeout=0)
    assert uart.any() <= 2
    w.advance(0.5)
    n = uart.any()
    assert 480 <= n <= 490  # 9600 baud, 10 bits a byte: 960 bytes/s
    assert uart.read(17) == b"$GPGGA,213121.000"
    assert uart.read(17) == first[17:34]
    w.advance(0.05)
    assert n - 34 + 48 <= uart.any() <= n - 34 + 48 + 10


def test_uart_overflow_counted():
    w = _world({"nmea": NMEA})
    first = w.nmea.epoch_bytes(0)
    uart = UART(board.GNSS_UART_ID, baudrate=9600, rxbuf=256)
    w.advance(0.99)
    # The whole first epoch (under 960 bytes) has arrived into 256 + 128 bytes.
    assert uart.any() == 384
    assert w.uart_overflow_bytes == len(first) - 384
    assert uart.read() == first[:384]
    assert uart.read() is None


def test_uart_readinto_and_readline():
    w = _world({"nmea": NMEA})
    first = w.nmea.epoch_bytes(0)
    uart = UART(board.GNSS_UART_ID, baudrate=9600, rxbuf=2048)
    buf = bytearray(32)
    assert uart.readinto(buf) is None
    w.advance(0.3)
    assert uart.readinto(buf) == 32
    assert bytes(buf) == first[:32]
    line_end = first.find(b"\n") + 1
    assert uart.readline() == first[32:line_end]
    assert uart.readline().startswith(b"$GPGLL,")


def test_uart_readinto_allocates_nothing():
    w = _world({"nmea": NMEA})
    uart = UART(board.GNSS_UART_ID, baudrate=9600, rxbuf=2048)
    buf = bytearray(128)
    w.advance(0.3)
    uart.any()
    micropython.heap_lock()
    try:
        n = uart.readinto(buf)
    finally:
        micropython.heap_unlock()
    assert n == 128


def test_uart_ioctl():
    w = _world({"nmea": NMEA})
    # The world clock is held at 0 ms: at 9600 baud a byte arrives about every
    # millisecond, so a slow start of the test would otherwise find data waiting.
    clock = [0]
    w.now_ms = lambda: clock[0]
    uart = UART(board.GNSS_UART_ID, baudrate=9600, rxbuf=2048)
    assert uart.ioctl(10, 0) == -22  # no file descriptor: never 0 (stdin)
    assert uart.ioctl(1, 0) == -22
    assert uart.ioctl(3, 1) == 0
    assert uart.ioctl(3, 4) == 4
    clock[0] = 100
    assert uart.ioctl(3, 1) == 1
    assert uart.ioctl(3, 5) == 5


def test_uart_wrong_baud_is_noise():
    w = _world({"nmea": NMEA})
    uart = UART(board.GNSS_UART_ID, baudrate=4800, rxbuf=2048)
    w.advance(0.5)
    data = uart.read()
    assert len(data) > 400
    for b in data:
        assert b >= 0x80


def test_other_uart_is_silent():
    w = _world({"nmea": NMEA})
    uart = UART(1, baudrate=9600)
    w.advance(1)
    assert uart.any() == 0
    assert uart.read() is None
    assert uart.write(b"$PMTK220,1000*1F\r\n") == 18


async def test_uart_stream_reader():
    w = _world({"nmea": NMEA})
    uart = board.gnss_uart(9600)
    reader = asyncio.StreamReader(uart)
    buf = bytearray(64)
    n = await asyncio.wait_for_ms(reader.readinto(buf), 500)
    assert n > 0
    assert bytes(buf[:n]) == w.nmea.epoch_bytes(0)[:n]


# Watchdog, resets, RTC, identity


def test_watchdog_expiry_check():
    w = _world({})
    wdt = WDT(timeout=100)
    assert not w.watchdog_expired()
    w.advance(0.2)
    assert w.watchdog_expired()
    wdt.feed()
    assert not w.watchdog_expired()
    _raises(lambda: WDT(timeout=0), ValueError)


def test_resets_exit_with_status():
    w = _world({})
    e = _raises(machine.reset, SystemExit)
    assert e.args[0] == 125
    assert w.exit_status == 125
    e = _raises(machine.soft_reset, SystemExit)
    assert e.args[0] == 126


def _run_script(name, text):
    try:
        os.mkdir(_TMP)
    except OSError:
        pass
    path = "%s/%s" % (_TMP, name)
    with open(path, "w") as f:
        f.write(text)
    out = path + ".out"
    status = os.system("%s %s > %s 2>&1" % (sys.executable, path, out))
    with open(out) as f:
        return status >> 8, f.read()


def test_watchdog_resets_from_world_task():
    status, output = _run_script(
        "wdt.py",
        "import sys\n"
        "sys.path[:] = ['%s/tools/sim', '%s', '.frozen']\n"
        "import asyncio, machine, world\n"
        "w = world.World({})\n"
        "world.set_current(w)\n"
        "async def main():\n"
        "    w.start_in_loop()\n"
        "    machine.WDT(timeout=100)\n"
        "    await asyncio.sleep_ms(2000)\n"
        "    print('not reset')\n"
        "asyncio.run(main())\n" % (os.getcwd(), os.getcwd()),
    )
    assert status == 3
    assert "WDT timeout" in output
    assert "not reset" not in output


def test_rtc_runs_on():
    w = _world({})
    rtc = machine.RTC()
    assert rtc.datetime()[:3] == (2000, 1, 1)
    rtc.datetime((2026, 3, 16, 6, 8, 10, 16, 0))
    assert rtc.datetime()[:7] == (2026, 3, 16, 0, 8, 10, 16)  # a Monday
    w.advance(2)
    assert rtc.datetime()[6] == 18
    rtc.datetime((2024, 2, 28, 0, 23, 59, 59, 0))
    w.advance(2)
    assert rtc.datetime()[:7] == (2024, 2, 29, 3, 0, 0, 1)  # a Thursday


def test_identity():
    w = _world({})
    assert machine.reset_cause() == machine.PWRON_RESET
    assert machine.unique_id() == b"\x24\x0a\xc4\x5e\x17\x01"
    w = _world({"unique_id": "24:0A:C4:00:00:2A"})
    assert machine.unique_id() == b"\x24\x0a\xc4\x00\x00\x2a"


# Scenarios


def test_curve_values():
    points = [(0, 3.5), (60, 4.0), (90, 9.0)]
    assert scenario.curve_value(points, -5) == 3.5
    assert scenario.curve_value(points, 30) == 3.75
    assert scenario.curve_value(points, 75) == 6.5
    assert scenario.curve_value(points, 90) == 9.0
    assert scenario.curve_value(points, 500) == 9.0


def test_curve_step():
    points = [(0, 4.0), (10, 4.0), (10, 9.0), (20, 9.0)]
    assert scenario.curve_value(points, 9.99) == 4.0
    assert scenario.curve_value(points, 10) == 9.0


def _errors(data):
    try:
        scenario.validate(data)
    except scenario.ScenarioError as e:
        return dict(e.errors)
    raise AssertionError("scenario accepted: %r" % (data,))


def test_scenario_errors_name_key():
    errors = _errors(
        {
            "probes": [
                {"rom": "28A1B2C304000097", "temp": [[0, 4]]},
                {"rom": FRONT, "temp": [[10, 4], [5, 6]]},
                {"rom": REAR, "temp": [[0, 4]], "faults": [{"from": 5, "to": 3, "kind": "absent"}]},
                {"rom": "28:11:22:33:05:00:00:FC", "temp": [[0, 4]], "colour": 1},
            ],
            "dht": {"model": "DHT21", "rh": [[0, 120]]},
            "inputs": {"door": [[0, 2]], "bounce_ms": 100},
            "nmea": {"file": "x.log", "baud": 9600, "date": "2026-02-30"},
            "speed": 3,
        }
    )
    assert errors["probes[0].rom"] == "CRC byte is 97 but bytes 0-6 give 96, got '28A1B2C304000097'"
    assert errors["probes[1].temp[1]"] == "time 5 is before the previous point's 10"
    assert errors["probes[2].faults[0].to"] == "must be a time after from (5) or left out, got 3"
    assert errors["probes[3].rom"] == "ROM ID 28112233050000FC listed twice"
    assert "unknown key" in errors["probes[3].colour"]
    assert errors["dht.model"] == "must be one of DHT22/DHT11, got 'DHT21'"
    assert errors["dht.rh[0]"] == "value must be 0..100, got 120"
    assert "0..1" in errors["inputs.door[0]"]
    assert errors["inputs.bounce_ms"] == "must be an integer 0..50, got 100"
    assert errors["nmea.date"] == "day must be 1..28 in that month, got '2026-02-30'"
    assert "unknown key" in errors["speed"]


def test_scenario_defaults():
    sc = scenario.validate({})
    assert sc["probes"] == []
    assert sc["dht"] is None
    assert sc["nmea"] is None
    assert sc["inputs"]["bounce_ms"] == 0
    assert sc["duration_s"] == 0
    sc = scenario.validate({"nmea": {"file": "a.log"}, "dht": {}})
    assert sc["nmea"] == {"file": "a.log", "baud": 9600, "loop": True, "date": None, "from_s": 0}
    assert sc["dht"]["model"] == "DHT22"
    assert sc["dht"]["encoding"] == "sign_magnitude"


def test_default_scenario_file_valid():
    sc = scenario.load("tools/scenarios/cold-chain.json")
    assert len(sc["probes"]) == 3
    assert sc["nmea"]["date"] == "today"


def test_missing_capture_named():
    try:
        world.World({"nmea": {"file": "tests/data/nmea/none.log"}})
    except scenario.ScenarioError as e:
        assert e.errors[0][0] == "nmea.file"
        assert "none.log" in e.errors[0][1]
    else:
        raise AssertionError("a missing capture was accepted")


# Passenger seat


def test_seat_pin_reads_active_low():
    w = _world({"inputs": {"seat": [[0, 1]]}})
    assert Pin(board.SEAT_PIN, Pin.IN, Pin.PULL_UP).value() == 0  # occupied: the switch pulls to GND
    assert board.input_pins()["seat"].value() == 0
    assert w.input_level("seat", 0) == 1
    w = _world({})
    assert board.input_pins()["seat"].value() == 1  # no points: empty seat
    assert w.input_level("seat", 100) == 0


def test_seat_pin_choice():
    # A pin with an internal pull-up (GPIO34-39 have none), used by nothing else,
    # and no strapping pin, so an occupied seat at reset cannot change the boot.
    others = (board.ONEWIRE_PIN, board.DHT_PIN, board.GNSS_RX_PIN, board.GNSS_TX_PIN, board.DOOR_PIN,
              board.SOS_PIN, board.IGNITION_PIN, board.BUZZER_PIN, board.LED_PIN, board.SAFE_MODE_PIN)
    assert board.SEAT_PIN not in others
    assert board.SEAT_PIN < 34
    assert board.SEAT_PIN not in (0, 2, 5, 12, 15)
    assert board.ACTIVE_LOW["seat"] is True


def test_seat_levels_with_bounce():
    w = _world({"inputs": {"seat": [[1, 1], [2, 0]], "bounce_ms": 4}})
    seat = Pin(board.SEAT_PIN, Pin.IN, Pin.PULL_UP)
    assert seat.value() == 1
    inp = w.inputs["seat"]
    # Logical levels: occupied at 1000 ms, back once at 1002 ms, settled at 1004 ms.
    assert inp.level(999) == 0
    assert inp.level(1000) == 1
    assert inp.level(1002) == 0
    assert inp.level(1004) == 1
    assert inp.level(2000) == 0
    assert inp.level(2002) == 1
    assert inp.level(2004) == 0
    w.advance(1.5)
    assert seat.value() == 0
    w.advance(1)
    assert seat.value() == 1


async def test_seat_irq_edges():
    w = _world({"inputs": {"seat": [[0.1, 1], [0.3, 0]]}})
    seen = []
    seat = Pin(board.SEAT_PIN, Pin.IN, Pin.PULL_UP)
    seat.irq(handler=lambda pin: seen.append((time.ticks_diff(time.ticks_ms(), w.start_ms), pin.value())))
    task = w.start_in_loop()
    await asyncio.sleep_ms(450)
    task.cancel()
    # Occupied is a falling edge, empty again a rising one.
    assert len(seen) == 2, seen
    assert 100 <= seen[0][0] <= 160
    assert seen[0][1] == 0
    assert 300 <= seen[1][0] <= 360
    assert seen[1][1] == 1


def test_seat_level_validated():
    errors = _errors({"inputs": {"seat": [[0, 2]]}})
    assert errors["inputs.seat[0]"] == "value must be 0..1, got 2"


# GNSS route

# 1000 m along a meridian is 1000 / 6371000 rad of latitude (0.0089932 deg).
# 1000 m in 60 s is 60 km/h = 60000 / 1852 kn = 32.39741 kn.
_KM_LAT_DEG = 0.008993216059187304
_KN_60_KMH = 32.39740820734341


def _receiver(nmea):
    w = _world({"nmea": nmea})
    return w, w.nmea_route


def _checksum(text):
    x = 0
    for c in text:
        x ^= ord(c)
    return "%02X" % x


def _sentence(body):
    return "$%s*%s\r\n" % (body, _checksum(body))


def _write(receiver, epoch_s, index):
    buf = bytearray(nmea_route.SENTENCE_MAX)
    n = receiver.write_sentence(epoch_s, index, buf)
    return bytes(buf[:n]).decode()


def test_route_north_speed_and_course():
    w, r = _receiver({"route": [[0, 31.0, 35.0], [60, 31.0 + _KM_LAT_DEG, 35.0]]})
    lat, lon, speed_kn, course = r.position(30)
    assert abs(lat - (31.0 + _KM_LAT_DEG / 2)) < 1e-12
    assert lon == 35.0
    assert abs(speed_kn - _KN_60_KMH) < 1e-6
    assert course == 0.0


def test_route_east_at_latitude_31():
    # 1000 m along the parallel at 31 N is 1000 / (6371000 cos 31) rad = 0.0104918 deg
    # of longitude. The great circle starts 0.0104918 / 2 * sin 31 = 0.0027 deg
    # north of east, and is shorter than the parallel by far less than 1 mm.
    w, r = _receiver({"route": [[0, 31.0, 35.0], [60, 31.0, 35.010491786203021]]})
    lat, lon, speed_kn, course = r.position(15)
    assert lat == 31.0
    assert abs(lon - (35.0 + 0.010491786203021 / 4)) < 1e-12
    assert abs(speed_kn - _KN_60_KMH) < 1e-4
    assert abs(course - 89.9973) < 0.0005


def test_route_stands_still():
    w, r = _receiver({"route": [[10, 31.0, 35.0], [40, 31.0, 35.0], [100, 31.0 + _KM_LAT_DEG, 35.0]]})
    # Before the first point, between equal points and after the last point.
    assert r.position(0) == (31.0, 35.0, 0.0, None)
    assert r.position(25) == (31.0, 35.0, 0.0, None)
    assert r.position(100) == (31.0 + _KM_LAT_DEG, 35.0, 0.0, None)
    assert r.position(500) == (31.0 + _KM_LAT_DEG, 35.0, 0.0, None)
    # The segment that starts at 40 s applies from 40 s on.
    assert abs(r.position(40)[2] - _KN_60_KMH) < 1e-6
    # Standing: speed 0.000 and an empty course field.
    assert _write(r, 25, nmea_route.RMC) == _sentence("GNRMC,080025.00,A,3100.00000,N,03500.00000,E,0.000,,%s,,,A"
                                                      % _today_ddmmyy())


def _today_ddmmyy():
    year, month, day = time.gmtime()[:3]
    return "%02d%02d%02d" % (day, month, year % 100)


def test_route_sentences_south_west():
    # 0.01 deg of latitude south in 100 s: 6371000 * 0.01 * pi / 180 = 1111.949 m,
    # 11.11949 m/s = 21.6146 kn, course 180. At 50 s: 33.505 S = 33 deg 30.30000 min,
    # 70.65 W = 70 deg 39.00000 min.
    nmea = {"route": [[0, -33.5, -70.65], [100, -33.51, -70.65]], "date": "2026-03-16", "start": "12:00:00",
            "talker": "GP", "hdop": 1.25, "sats": 7, "alt_m": -12.5}
    w, r = _receiver(nmea)
    assert _write(r, 50, nmea_route.RMC) == _sentence("GPRMC,120050.00,A,3330.30000,S,07039.00000,W,21.615,180.00,160326,,,A")
    assert _write(r, 50, nmea_route.GGA) == _sentence("GPGGA,120050.00,3330.30000,S,07039.00000,W,1,07,1.25,-12.5,M,0.0,M,,")


def test_route_default_gga():
    w, r = _receiver({"route": [[0, 48.0, 11.5]], "date": "2026-03-16"})
    # 11.5 E = 11 deg 30.00000 min. Defaults: talker GN, 10 satellites, HDOP 0.90, 100.0 m.
    assert _write(r, 0, nmea_route.GGA) == _sentence("GNGGA,080000.00,4800.00000,N,01130.00000,E,1,10,0.90,100.0,M,0.0,M,,")


def test_route_date_rolls_over_at_midnight():
    w, r = _receiver({"route": [[0, 10.0, 20.0]], "date": "2024-02-28", "start": "23:59:58"})
    assert _write(r, 1, nmea_route.RMC).split(",")[1] == "235959.00"
    assert _write(r, 1, nmea_route.RMC).split(",")[9] == "280224"
    assert _write(r, 2, nmea_route.RMC).split(",")[1] == "000000.00"
    assert _write(r, 2, nmea_route.RMC).split(",")[9] == "290224"  # 2024 is a leap year
    w, r = _receiver({"route": [[0, 10.0, 20.0]], "date": "2026-12-31", "start": "23:59:59"})
    assert _write(r, 1, nmea_route.RMC).split(",")[9] == "010127"
    assert _write(r, 86401, nmea_route.RMC).split(",")[9] == "020127"


def test_route_sentence_fits_82_chars():
    # The widest fields: 3 digits of longitude degrees, a 4-digit speed
    # (0.02 deg in 1 s is 2224 m/s, 4323 kn), negative altitude, HDOP 50.00.
    nmea = {"route": [[0, -89.99999, -179.99999], [1, -89.97999, -179.99999]], "hdop": 50, "sats": 99,
            "alt_m": -500, "date": "2026-03-16"}
    w, r = _receiver(nmea)
    rmc = _write(r, 0, nmea_route.RMC)
    gga = _write(r, 0, nmea_route.GGA)
    assert len(rmc) <= 82, rmc
    assert len(gga) <= 82, gga
    assert rmc.split(",")[3:7] == ["8959.99940", "S", "17959.99940", "W"]
    assert gga.split(",")[6:10] == ["1", "99", "50.00", "-500.0"]


def test_route_nofix_sentences():
    w, r = _receiver({"route": [[0, 48.0, 11.5]], "date": "2026-03-16",
                      "gaps": [{"from": 5, "to": 7, "kind": "nofix"}]})
    assert _write(r, 5, nmea_route.RMC) == _sentence("GNRMC,080005.00,V,,,,,,,160326,,,N")
    assert _write(r, 6, nmea_route.GGA) == _sentence("GNGGA,080006.00,,,,,0,00,99.99,,,,,,")
    assert _write(r, 7, nmea_route.RMC).split(",")[2] == "A"


def _route_lines(nmea, seconds, step_s=0.25):
    # Read the GNSS UART while the world clock moves; return {epoch: [line, ...]} by the time field.
    w = _world({"nmea": nmea})
    uart = UART(board.GNSS_UART_ID, baudrate=9600, rxbuf=2048)
    start_s = scenario.parse_time_of_day(nmea.get("start", "08:00:00"))
    data = b""
    for _ in range(int(seconds / step_s)):
        w.advance(step_s)
        data += uart.read() or b""
    lines = {}
    for line in data.split(b"\r\n")[:-1]:
        tod = line.split(b",")[1]
        epoch = int(tod[0:2]) * 3600 + int(tod[2:4]) * 60 + int(tod[4:6]) - start_s
        lines.setdefault(epoch, []).append(line.decode() + "\r\n")
    return w, lines


def test_route_silent_and_nofix_gaps():
    nmea = {"route": [[0, 48.0, 11.5], [20, 48.0 + _KM_LAT_DEG, 11.5]], "date": "2026-03-16",
            "gaps": [{"from": 3, "to": 5, "kind": "silent"}, {"from": 6, "to": 8, "kind": "nofix"}]}
    w, lines = _route_lines(nmea, 10.5)
    for epoch in (1, 2, 5, 6, 7, 8, 9, 10):
        assert len(lines.get(epoch, [])) == 2, (epoch, lines.get(epoch))
        assert lines[epoch][0].startswith("$GNRMC,")
        assert lines[epoch][1].startswith("$GNGGA,")
    assert 3 not in lines
    assert 4 not in lines
    for epoch in (6, 7):
        assert lines[epoch][0].split(",")[2] == "V"
        assert lines[epoch][1].split(",")[6] == "0"
    # After the gap the truck is where the route is by then: 8/20 of 1000 m north.
    rmc = lines[8][0].split(",")
    assert rmc[2] == "A"
    assert rmc[3] == "4800.21584"  # 0.4 * 0.0089932 deg = 0.215837 min
    assert w.uart_overflow_bytes == 0


def test_route_endless_silent_gap():
    nmea = {"route": [[0, 48.0, 11.5]], "gaps": [{"from": 3, "kind": "silent"}]}
    w, lines = _route_lines(nmea, 8)
    assert sorted(lines) == [e for e in (0, 1, 2) if e in lines]
    assert 2 in lines


def test_route_pacing_9600_baud():
    w = _world({"nmea": {"route": [[0, 48.0, 11.5]], "date": "2026-03-16"}})
    r = w.nmea_route
    uart = UART(board.GNSS_UART_ID, baudrate=9600, rxbuf=2048)
    rmc = _write(r, 2, nmea_route.RMC).encode()
    gga = _write(r, 2, nmea_route.GGA).encode()
    w.advance(1.9)
    uart.read()
    # Nothing arrives between the end of epoch 1 and the start of epoch 2.
    assert uart.any() == 0
    # 50 ms into epoch 2: 9600 baud, 10 bits a byte, is 48 bytes.
    w.advance(0.15)
    n = uart.any()
    assert 48 <= n <= 58, n
    assert uart.read(n) == rmc[:n]
    # RMC and GGA take (len * 10 / 9600) s each; both are complete by then.
    w.advance((len(rmc) + len(gga)) * 10 / 9600 - 0.05 + 0.002)
    assert uart.read() == (rmc + gga)[n:]


def test_route_uart_readinto_allocates_nothing():
    w = _world({"nmea": {"route": [[0, 48.0, 11.5]]}})
    uart = UART(board.GNSS_UART_ID, baudrate=9600, rxbuf=2048)
    buf = bytearray(64)
    w.advance(1.5)
    uart.any()
    micropython.heap_lock()
    try:
        n = uart.readinto(buf)
        waiting = uart.any()
    finally:
        micropython.heap_unlock()
    assert n == 64
    assert waiting > 0


def test_route_wrong_baud_is_noise():
    w = _world({"nmea": {"route": [[0, 48.0, 11.5]], "baud": 4800}})
    uart = UART(board.GNSS_UART_ID, baudrate=9600, rxbuf=2048)
    w.advance(1.5)
    data = uart.read()
    assert len(data) > 100
    for b in data:
        assert b >= 0x80


def test_route_scenario_defaults():
    sc = scenario.validate({"nmea": {"route": [[0, 48, 11.5], [60, 48.01, 11.5]]}})
    assert sc["nmea"] == {
        "route": [(0, 48, 11.5), (60, 48.01, 11.5)],
        "baud": 9600,
        "date": "today",
        "start_s": 8 * 3600,
        "gaps": [],
        "hdop": 0.9,
        "sats": 10,
        "alt_m": 100.0,
        "talker": "GN",
    }


def test_route_scenario_errors_name_key():
    errors = _errors({"nmea": {"route": [[0, 48, 11], [0, 48.1, 11]], "start": "8:00", "gaps": [{"from": 1, "kind": "tunnel"}],
                               "hdop": 0, "sats": 3, "talker": "BD", "alt_m": 10000, "date": None, "loop": True,
                               "from_s": 5}})
    assert errors["nmea.route[1]"] == "time 0 must be after the previous point's 0 (to stop, repeat a position at a later time)"
    assert errors["nmea.start"] == 'must be "HH:MM:SS", got \'8:00\''
    assert errors["nmea.gaps[0].kind"] == "must be one of silent/nofix, got 'tunnel'"
    assert errors["nmea.hdop"] == "must be a number 0.1..50, got 0"
    assert errors["nmea.sats"] == "must be an integer 4..99, got 3"
    assert errors["nmea.talker"] == "must be one of GN/GP, got 'BD'"
    assert errors["nmea.alt_m"] == "must be -500..9000 metres above sea level, got 10000"
    assert errors["nmea.date"] == 'must be "today" or "YYYY-MM-DD" with a route, got None'
    assert errors["nmea.loop"] == "applies only to a capture (nmea.file), got True"
    assert errors["nmea.from_s"] == "applies only to a capture (nmea.file), got 5"


def test_route_point_errors():
    cases = (
        ([], "nmea.route", "must be a non-empty list of [seconds, lat, lon] points, got []"),
        ([[0, 48]], "nmea.route[0]", "must be a [seconds, lat, lon] list of numbers, got [0, 48]"),
        ([[-1, 48, 11]], "nmea.route[0]", "time must be 0 or more seconds, got -1"),
        ([[0, 91, 11]], "nmea.route[0]", "latitude must be -90..90 degrees, got 91"),
        ([[0, 48, -181]], "nmea.route[0]", "longitude must be -180..180 degrees, got -181"),
        ([[0, 0, 179], [10, 0, -179]], "nmea.route[1]",
         "longitude -179 is more than 180 degrees from the previous point's 179: a segment cannot cross the antimeridian"),
    )
    for route, key, message in cases:
        errors = _errors({"nmea": {"route": route}})
        assert errors[key] == message, (route, errors)
    errors = _errors({"nmea": {"route": [[0, 48, 11]], "start": "24:00:00"}})
    assert errors["nmea.start"] == "hours must be 00..23, minutes and seconds 00..59, got '24:00:00'"


def test_route_and_file_exclusive():
    errors = _errors({"nmea": {"file": "a.log", "route": [[0, 48, 11]]}})
    assert errors["nmea.file"] == "cannot be combined with nmea.route: give a capture to replay or a route, got 'a.log'"
    errors = _errors({"nmea": {"file": "a.log", "gaps": [], "start": "08:00:00"}})
    assert errors["nmea.gaps"] == "applies only to a route (nmea.route), got []"
    assert errors["nmea.start"] == "applies only to a route (nmea.route), got '08:00:00'"
    errors = _errors({"nmea": {"baud": 9600}})
    assert errors["nmea.file"] == "must be the path of a capture file (or give nmea.route instead), got None"


def test_hazmat_scenario_file():
    sc = scenario.load("tools/scenarios/hazmat.json")
    assert 600 <= sc["duration_s"] <= 620
    w = world.World({"nmea": scenario.read("tools/scenarios/hazmat.json")["nmea"]})
    r = w.nmea_route
    # A stretch at 95 km/h (95000 / 1852 = 51.296 kn), a 3-minute stop, and back at the depot.
    assert abs(r.position(75)[2] - 95000 / 1852) < 0.01
    for t in (125, 200, 304.9):
        assert r.position(t)[2] == 0.0
    assert r.position(305)[2] > 0
    # The lay-by off the route: stopped from 385 s to 535 s, longer than alarm.stop_s.
    assert sc["config"]["alarm"]["stop_s"] < 535 - 385
    for t in (385, 460, 534.9):
        assert r.position(t)[2] == 0.0
        assert abs(r.position(t)[0] - 51.46343) < 1e-6
    assert r.position(0)[:2] == r.position(sc["duration_s"])[:2]
    assert 0 < r.position(40)[2] < 60000 / 1852


# The virtual terminal's start script


def _sh(cmd):
    return os.system(cmd) >> 8


def _vterm(boot_src, main_src, data, env=""):
    # A throw-away repository with the real simulator and board map, and the given boot.py and main.py.
    repo = _TMP + "/repo"
    state = _TMP + "/state"
    _sh("rm -rf %s %s && mkdir -p %s/tools %s" % (repo, state, repo, state))
    _sh("ln -s %s/tools/sim %s/tools/sim && ln -s %s/drivers %s/drivers" % (os.getcwd(), repo, os.getcwd(), repo))
    for name, text in (("boot.py", boot_src), ("main.py", main_src)):
        with open("%s/%s" % (repo, name), "w") as f:
            f.write(text)
    import json

    with open(_TMP + "/scenario.json", "w") as f:
        f.write(json.dumps(data))
    out = _TMP + "/vterm.out"
    status = _sh(
        "%s VTERM_STATE=%s VTERM_SCENARIO=%s/scenario.json VTERM_REPO=%s VTERM_VERBOSE=1 %s %s/tools/sim/vterm_boot.py > %s 2>&1"
        % (env, state, _TMP, repo, sys.executable, os.getcwd(), out)
    )
    with open(out) as f:
        return status, f.read()


_IRQ_MAIN = """
import asyncio, os, sys, time
import machine, world
from drivers import board
fired = []
def on_edge(pin):
    fired.append(time.ticks_diff(time.ticks_ms(), world.current().start_ms))
async def main():
    door = machine.Pin(board.DOOR_PIN, machine.Pin.IN, machine.Pin.PULL_UP)
    door.irq(handler=on_edge, trigger=machine.Pin.IRQ_RISING)
    await asyncio.sleep_ms(700)
print("boot said", booted)
asyncio.run(main())
print("fired", len(fired), fired[0] if fired else -1)
print("path", sys.path[0], os.getcwd())
with open("/written.txt", "w") as f:
    f.write("on the device flash")
"""


def test_vterm_boot_runs_firmware():
    status, output = _vterm("booted = 'yes'\n", _IRQ_MAIN, {"inputs": {"door": [[0.4, 1]]}})
    assert status == 0, output
    assert "boot said yes" in output  # boot.py and main.py share their globals
    assert "path /app/tools/sim /" in output
    assert "[sim]" in output
    assert "door open" in output
    line = [x for x in output.split("\n") if x.startswith("fired ")][0]
    count, at_ms = line.split()[1:]
    assert count == "1"
    assert 400 <= int(at_ms) <= 500
    with open(_TMP + "/state/written.txt") as f:
        assert f.read() == "on the device flash"


_BUDGET_MAIN = """
import gc
gc.collect()
print("free", gc.mem_free())
try:
    big = bytearray(gc.mem_free() + 2048)
    print("allocated past the budget")
except MemoryError:
    print("out of memory past the budget")
"""


def test_vterm_boot_strict_heap_budget():
    # VTERM_FIRMWARE_HEAP=150000: whatever the simulator leaves beyond 150,000
    # bytes is taken by a ballast of 1,064-byte chunks, so the firmware has the
    # budget to within one chunk, and no more.
    status, output = _vterm("", _BUDGET_MAIN, {}, env="VTERM_FIRMWARE_HEAP=150000")
    assert status == 0, output
    line = [x for x in output.split("\n") if x.startswith("[sim] ballast ")][0]
    words = line.split()
    ballast, firmware = int(words[2]), int(words[8])
    assert ballast > 100000, line  # the port's default heap is much larger than the budget
    assert 150000 <= firmware < 150000 + 1064, line
    free = int([x for x in output.split("\n") if x.startswith("free ")][0].split()[1])
    assert free < 150000, output
    assert "out of memory past the budget" in output


def test_vterm_boot_without_budget_has_no_ballast():
    status, output = _vterm("", _BUDGET_MAIN, {})
    assert status == 0, output
    assert "[sim] ballast" not in output


def test_vterm_boot_watchdog_reset():
    main_src = "import asyncio, machine\nasync def main():\n    machine.WDT(timeout=300)\n    await asyncio.sleep(5)\nasyncio.run(main())\nprint('survived')\n"
    status, output = _vterm("", main_src, {})
    assert status == 3, output
    assert "WDT timeout" in output
    assert "survived" not in output


def test_vterm_boot_reset_status():
    main_src = "import machine\ntry:\n    machine.reset()\nexcept Exception:\n    print('caught')\n"
    status, output = _vterm("", main_src, {})
    assert status == 125, output
    assert "caught" not in output


def test_vterm_boot_skips_main_after_boot_error():
    status, output = _vterm("raise ValueError('bad boot')\n", "print('main ran')\n", {})
    assert status == 0, output
    assert "bad boot" in output
    assert "main ran" not in output


def test_vterm_boot_bad_scenario():
    status, output = _vterm("", "print('main ran')\n", {"probes": [{"rom": "28A1B2C304000097", "temp": [[0, 4]]}]})
    assert status == 2, output
    assert "probes[0].rom" in output
    assert "main ran" not in output
