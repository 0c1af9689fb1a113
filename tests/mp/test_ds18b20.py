# Tests of drivers.ds18b20: scratchpad decoding, field cases B1/B2, and the driver on the simulated bus
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import asyncio

import micropython
import world
from drivers import board
from drivers import ds18b20
from drivers.ds18b20 import ABSENT, CRC, OK, POWER_ON, ZERO, DS18B20Bus

FRONT = "28A1B2C304000096"
REAR = "28112233050000FC"


def _frame(text):
    return bytes(int(h, 16) for h in text.split())


def _bus(probes):
    w = world.World({"probes": probes})
    world.set_current(w)
    return w, DS18B20Bus(board.onewire_bus())


# Field case B1: freezer temperatures. Each frame's byte 8 is the CRC-8 of
# bytes 0-7; temp_c is signed16(byte1 << 8 | byte0) / 16 and the wrong value is
# the unsigned reading divided by 16.
B1_FRAMES = (
    ("31 FF 4B 46 7F FF 0F 10 24", -207, -12.9375, 4083.0625),
    ("6F FE 4B 46 7F FF 01 10 61", -401, -25.0625, 4070.9375),
    ("FF FF 4B 46 7F FF 01 10 9A", -1, -0.0625, 4095.9375),
    ("90 FC 4B 46 7F FF 10 10 EE", -880, -55.0, 4041.0),
    ("91 01 4B 46 7F FF 0F 10 25", 401, 25.0625, None),
)


def test_crc8_case_frames():
    for text, _, _, _ in B1_FRAMES:
        frame = _frame(text)
        assert ds18b20.crc8(frame[:8]) == frame[8], text
        assert ds18b20.crc8(frame) == 0, text


def test_crc8_rom_ids():
    # Byte 7 of a ROM ID is the CRC-8 of bytes 0-6 (the two probe ROM IDs of field case B4).
    assert ds18b20.crc8(_frame("28 A1 B2 C3 04 00 00")) == 0x96
    assert ds18b20.crc8(_frame("28 11 22 33 05 00 00")) == 0xFC


def test_b1_negative_frames():
    for text, raw, temp_c, wrong_c in B1_FRAMES:
        status, decoded = ds18b20.decode_scratchpad(_frame(text))
        assert status == OK, text
        assert decoded == raw, text
        assert decoded / 16 == temp_c, text
        if wrong_c is not None:
            assert decoded / 16 != wrong_c, text
            assert decoded < 0, text


def test_b1_freezer_alarm_sides():
    # Rule "alarm if warmer than -18 degC": frame 2 stays below, frame 1 is above.
    _, raw1 = ds18b20.decode_scratchpad(_frame(B1_FRAMES[0][0]))
    _, raw2 = ds18b20.decode_scratchpad(_frame(B1_FRAMES[1][0]))
    assert ds18b20.raw_to_mc(raw1) > -18000
    assert ds18b20.raw_to_mc(raw2) < -18000


def test_b2_power_on_signature():
    status, raw = ds18b20.decode_scratchpad(_frame("50 05 4B 46 7F FF 0C 10 1C"))
    assert status == POWER_ON
    assert raw == 0x0550
    assert raw / 16 == 85.0


def test_b2_real_85_degrees():
    status, raw = ds18b20.decode_scratchpad(_frame("50 05 4B 46 7F FF 10 10 BD"))
    assert status == OK
    assert ds18b20.raw_to_mc(raw) == 85000


def test_decode_zero_frame():
    # Nine zero bytes have CRC 0, so a stuck-low line passes the CRC check.
    frame = bytes(9)
    assert ds18b20.crc8(frame) == 0
    status, raw = ds18b20.decode_scratchpad(frame)
    assert status == ZERO
    assert raw == 0


def test_decode_all_ff_absent():
    status, _ = ds18b20.decode_scratchpad(b"\xff" * 9)
    assert status == ABSENT


def test_decode_crc_mismatch():
    frame = bytearray(_frame(B1_FRAMES[4][0]))
    frame[0] ^= 0x01
    status, _ = ds18b20.decode_scratchpad(frame)
    assert status == CRC


def test_raw_to_mc_values():
    assert ds18b20.raw_to_mc(0) == 0
    assert ds18b20.raw_to_mc(16) == 1000
    assert ds18b20.raw_to_mc(0x0550) == 85000
    assert ds18b20.raw_to_mc(0x07D0) == 125000
    assert ds18b20.raw_to_mc(-880) == -55000
    assert ds18b20.raw_to_mc(401) == 25062  # 25062.5 rounded down
    assert ds18b20.raw_to_mc(-207) == -12938  # -12937.5 rounded down
    assert ds18b20.raw_to_mc(-1) == -63  # -62.5 rounded down


async def test_bus_reads_sim_probes():
    w, bus = _bus([{"rom": FRONT, "temp": [[0, -12.9375]]}, {"rom": REAR, "temp": [[0, 4.5]]}])
    roms = bus.scan()
    assert len(roms) == 2
    assert bytes.fromhex(FRONT) in roms
    assert bytes.fromhex(REAR) in roms
    assert isinstance(roms[0], bytes)

    assert bus.convert() is True
    await asyncio.sleep_ms(800)
    assert bus.read(bytes.fromhex(FRONT)) == OK
    assert bus.raw == -207
    assert bus.read(bytes.fromhex(REAR)) == OK
    assert bus.raw == 72  # 4.5 * 16


async def test_bus_read_before_conversion():
    # A probe that has never converted returns the power-on value with byte 6 = 0x0C.
    w, bus = _bus([{"rom": FRONT, "temp": [[0, 4.0]]}])
    assert bus.read(bytes.fromhex(FRONT)) == POWER_ON
    assert bus.raw == 0x0550
    assert bus.count_remain == 0x0C


async def test_bus_fault_statuses():
    w, bus = _bus([{"rom": FRONT, "temp": [[0, 4.0]]}, {"rom": REAR, "temp": [[0, 5.0]]}])
    front = bytes.fromhex(FRONT)
    assert bus.convert()
    await asyncio.sleep_ms(800)

    w.set_probe_fault(front, "crc")
    assert bus.read(front) == CRC
    w.set_probe_fault(front, "zero")
    assert bus.read(front) == ZERO
    w.set_probe_fault(front, "power_on")
    assert bus.read(front) == POWER_ON
    w.set_probe_fault(front, "absent")
    assert bus.read(front) == ABSENT  # nine 0xFF bytes while REAR keeps the bus alive
    assert bus.read(bytes.fromhex(REAR)) == OK
    assert bus.raw == 80
    w.set_probe_fault(front, None)
    # Plugged back in, the probe has restarted: power-on value until a new conversion.
    assert bus.read(front) == POWER_ON
    assert bus.convert()
    await asyncio.sleep_ms(800)
    assert bus.read(front) == OK
    assert bus.raw == 64


def test_bus_empty():
    w, bus = _bus([{"rom": FRONT, "temp": [[0, 4.0]]}])
    w.set_probe_fault(bytes.fromhex(FRONT), "absent")
    assert bus.scan() == []
    assert bus.convert() is False
    assert bus.read(bytes.fromhex(FRONT)) == ABSENT  # no presence pulse: OneWireError


def test_bus_scan_never_raises():
    class BrokenDS:
        def scan(self):
            raise OSError(5)

    assert DS18B20Bus(BrokenDS()).scan() == []


def test_bus_scan_filters_family_and_crc():
    class ListDS:
        def scan(self):
            return [
                bytearray(_frame("28 A1 B2 C3 04 00 00 96")),
                bytearray(_frame("28 A1 B2 C3 04 00 00 97")),  # bad CRC byte
                bytearray(_frame("10 00 00 00 00 00 00 00")),  # DS18S20 family
            ]

    assert DS18B20Bus(ListDS()).scan() == [bytes.fromhex(FRONT)]


def test_bus_read_allocates_nothing():
    # A stand-in for the stock DS18X20 whose read_scratch returns its shared
    # buffer, as the stock driver does, so only DS18B20Bus.read() is measured.
    class FixedDS:
        def __init__(self):
            self.buf = bytearray(_frame(B1_FRAMES[0][0]))

        def read_scratch(self, rom):
            return self.buf

    bus = DS18B20Bus(FixedDS())
    rom = bytes.fromhex(FRONT)
    micropython.heap_lock()
    try:
        status = bus.read(rom)
    finally:
        micropython.heap_unlock()
    assert status == OK
    assert bus.raw == -207
    assert bus.count_remain == 0x0F



def test_bus_read_passes_memoryerror():
    # A MemoryError is not a CRC error, so it must reach the caller.
    class NoMemoryDS:
        buf = bytearray(9)

        def read_scratch(self, rom):
            raise MemoryError()

    try:
        DS18B20Bus(NoMemoryDS()).read(bytes.fromhex(FRONT))
    except MemoryError:
        pass
    else:
        raise AssertionError("MemoryError reported as a read status")
