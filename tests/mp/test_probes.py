# Tests of firmware.probes: cycles by ROM ID, field cases B1/B2/B4, faults over time, allocation
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import asyncio
import time

import micropython
import world
from drivers import board
from drivers.ds18b20 import DS18B20Bus
from firmware.probes import Probes, ProbesError
from onewire import OneWireError

FRONT = "28A1B2C304000096"
REAR = "28112233050000FC"
SPARE = "28334455060000D4"  # CRC byte 0xD4 computed with a separate CRC-8 script

CONFIG = [
    {"rom": "28:A1:B2:C3:04:00:00:96", "name": "cargo_front", "low": 2, "high": 8},
    {"rom": "28:11:22:33:05:00:00:FC", "name": "cargo_rear", "low": 2, "high": 8},
]

# Scratchpads with their CRC-8 in byte 8 (the first four from the field cases,
# the others computed with a separate CRC-8 script).
T_25_0625 = "91 01 4B 46 7F FF 0F 10 25"  # 25.0625 degC
T_MINUS_12_9375 = "31 FF 4B 46 7F FF 0F 10 24"  # -12.9375 degC
T_85_POWER_ON = "50 05 4B 46 7F FF 0C 10 1C"  # 85.0 degC, byte 6 = 0x0C
T_85_CONVERTED = "50 05 4B 46 7F FF 10 10 BD"  # 85.0 degC, byte 6 = 0x10
T_80 = "00 05 4B 46 7F FF 10 10 A0"  # 80.0 degC
T_4 = "40 00 4B 46 7F FF 10 10 20"  # 4.0 degC


def _rom(text):
    return bytes.fromhex(text.replace(":", ""))


def _frame(text):
    return bytes(int(h, 16) for h in text.split())


class ScriptedDS:
    """Stand-in for the stock ds18x20.DS18X20 that plays back scripted scans and scratchpads.

    present: ROM IDs on the bus, in the order scan() returns them.
    frames: {rom: [frame after conversion 1, after conversion 2, ...]}; the
    last frame repeats. Errors follow the stock driver: OneWireError without
    a presence pulse, Exception("CRC error") for nine 0xFF bytes.
    """

    def __init__(self, frames, present):
        self.frames = frames
        self.present = present
        self.buf = bytearray(9)
        self.conversions = 0
        self.scans = 0

    def scan(self):
        self.scans += 1
        return [bytearray(rom) for rom in self.present]

    def convert_temp(self):
        if not self.present:
            raise OneWireError()
        self.conversions += 1

    def read_scratch(self, rom):
        if not self.present:
            raise OneWireError()
        if rom not in self.present:
            for i in range(9):
                self.buf[i] = 0xFF
            raise Exception("CRC error")
        script = self.frames[rom]
        frame = _frame(script[min(self.conversions, len(script)) - 1])
        for i in range(9):
            self.buf[i] = frame[i]
        return self.buf


def _scripted(frames, present, config=CONFIG):
    # A stand-in bus has no conversion time, so the cycles need not wait 750 ms.
    ds = ScriptedDS(frames, present)
    p = Probes(DS18B20Bus(ds), config)
    p.convert_ms = 10
    return ds, p


class CountingBus(DS18B20Bus):
    """DS18B20Bus on the simulated bus that counts conversions and scans."""

    def __init__(self, ds):
        super().__init__(ds)
        self.conversions = 0
        self.scans = 0

    def convert(self):
        self.conversions += 1
        return super().convert()

    def scan(self):
        self.scans += 1
        return super().scan()


def _sim(probes, config=CONFIG):
    w = world.World({"probes": probes})
    world.set_current(w)
    bus = CountingBus(board.onewire_bus())
    return w, bus, Probes(bus, config)


def test_config_roms_and_names():
    _, p = _scripted({}, [])
    assert p.names == ["cargo_front", "cargo_rear"]
    assert p.roms == [_rom(FRONT), _rom(REAR)]
    assert p.state == ["pending", "pending"]
    assert p.value_mc == [None, None]


def test_config_bad_rom_rejected():
    try:
        Probes(DS18B20Bus(ScriptedDS({}, [])), [{"rom": "28A1B2", "name": "x"}])
    except ProbesError as e:
        assert "28A1B2" in str(e)
    else:
        raise AssertionError("short ROM ID accepted")


def test_config_duplicate_rom_rejected():
    config = [{"rom": FRONT, "name": "a"}, {"rom": FRONT.lower(), "name": "b"}]
    try:
        Probes(DS18B20Bus(ScriptedDS({}, [])), config)
    except ProbesError as e:
        assert "twice" in str(e)
    else:
        raise AssertionError("duplicate ROM ID accepted")


async def test_b4_scan_sequence():
    # Field case B4: the scan results of five cycles, played back exactly.
    front, rear = _rom(FRONT), _rom(REAR)
    ds, p = _scripted({front: [T_25_0625], rear: [T_MINUS_12_9375]}, [front, rear])

    await p.cycle()
    assert p.value_mc == [25062, -12938]
    assert p.state == ["ok", "ok"]

    ds.present = []
    scans = ds.scans
    await p.cycle()
    assert p.value_mc == [None, None]
    assert p.state == ["absent", "absent"]
    assert ds.scans - scans == 3
    assert p.missing == ["cargo_front", "cargo_rear"]

    ds.present = [rear]
    scans = ds.scans
    await p.cycle()
    assert p.value_mc[0] is None
    assert p.state[0] == "absent"
    assert p.value_mc[1] == -12938
    assert p.state[1] == "ok"
    assert ds.scans - scans == 3
    assert p.missing == ["cargo_front"]

    ds.present = [rear, front]
    await p.cycle()
    assert p.value_mc == [25062, -12938]
    assert p.state == ["ok", "ok"]
    assert p.missing == []

    ds.present = [front, rear]
    await p.cycle()
    assert p.value_mc == [25062, -12938]
    assert p.fails == [0, 0]


async def test_b4_lost_after_fault_count():
    front, rear = _rom(FRONT), _rom(REAR)
    ds, p = _scripted({front: [T_4], rear: [T_4]}, [rear])
    for expected_fails in (1, 2, 3):
        await p.cycle()
        assert p.fails[0] == expected_fails
        assert p.is_lost(0) == (expected_fails >= 3)
        assert p.value_mc[0] is None
        assert p.value_mc[1] == 4000
        assert not p.is_lost(1)


async def test_b2_power_on_signature_not_published():
    front = _rom(FRONT)
    ds, p = _scripted({front: [T_85_POWER_ON]}, [front], CONFIG[:1])
    await p.cycle()
    assert ds.conversions == 2
    assert p.state == ["power_on"]
    assert p.value_mc == [None]
    assert p.sample_ms == [None]


async def test_b2_real_85_confirmed():
    front = _rom(FRONT)
    ds, p = _scripted({front: [T_85_CONVERTED]}, [front], CONFIG[:1])
    await p.cycle()
    assert ds.conversions == 2  # first reading after power-up: measured twice
    assert p.state == ["ok"]
    assert p.value_mc == [85000]


async def test_b2_clone_85_replaced():
    # A clone without the 0x0C signature reads 85.0 before its first good
    # conversion; the second conversion gives the real value.
    front = _rom(FRONT)
    ds, p = _scripted({front: [T_85_CONVERTED, T_4]}, [front], CONFIG[:1])
    await p.cycle()
    assert ds.conversions == 2
    assert p.value_mc == [4000]


async def test_b2_jump_to_85_remeasured():
    front = _rom(FRONT)
    ds, p = _scripted({front: [T_4, T_85_CONVERTED, T_4]}, [front], CONFIG[:1])
    await p.cycle()
    assert p.value_mc == [4000]
    assert ds.conversions == 1
    await p.cycle()
    assert ds.conversions == 3
    assert p.value_mc == [4000]


async def test_b2_85_near_previous_accepted():
    # From 80.0 degC, 85.0 degC is a 5 degC step and needs no second conversion.
    front = _rom(FRONT)
    ds, p = _scripted({front: [T_80, T_85_CONVERTED]}, [front], CONFIG[:1])
    await p.cycle()
    assert p.value_mc == [80000]
    await p.cycle()
    assert ds.conversions == 2
    assert p.value_mc == [85000]


async def test_bookkeeping_allocates_nothing():
    front, rear = _rom(FRONT), _rom(REAR)
    ds, p = _scripted({front: [T_4], rear: [T_25_0625]}, [front, rear])
    await p.cycle()
    now_ms = time.ticks_ms()

    # Steady state: both probes read again.
    micropython.heap_lock()
    try:
        p._record(0, now_ms)
        p._record(1, now_ms)
        p._report_changes()
    finally:
        micropython.heap_unlock()
    assert p.value_mc == [4000, 25062]
    assert p.sample_ms == [now_ms, now_ms]

    # A fault and a state change are recorded without allocation too; only the
    # log line of the change (in _report_changes) allocates.
    p._status[0] = 2  # ds18b20.CRC
    micropython.heap_lock()
    try:
        p._record(0, now_ms + 1000)
    finally:
        micropython.heap_unlock()
    assert p.value_mc[0] is None
    assert p.state[0] == "crc"
    assert p.fails[0] == 1
    assert p.sample_ms[0] == now_ms


async def test_read_and_record_no_alloc():
    # The bus reads and the bookkeeping of a cycle. The stand-in returns its
    # shared buffer like the stock driver, whose read path allocates nothing.
    class FixedDS:
        def __init__(self):
            self.buf = bytearray(_frame(T_MINUS_12_9375))

        def scan(self):
            return [bytearray(_rom(FRONT)), bytearray(_rom(REAR))]

        def convert_temp(self):
            pass

        def read_scratch(self, rom):
            return self.buf

    p = Probes(DS18B20Bus(FixedDS()), CONFIG)
    await p.cycle()
    now_ms = time.ticks_ms()
    micropython.heap_lock()
    try:
        for i in range(2):
            p._read(i, True)
            p._record(i, now_ms)
        p._report_changes()
    finally:
        micropython.heap_unlock()
    assert p.value_mc == [-12938, -12938]
    assert p.state == ["ok", "ok"]
    assert p.sample_ms == [now_ms, now_ms]


async def test_run_survives_exceptions():
    front = _rom(FRONT)
    calls = []

    class FailingOnceDS(ScriptedDS):
        def convert_temp(self):
            if not calls:
                calls.append("failed")
                raise RuntimeError("bus driver bug")
            super().convert_temp()

    ds = FailingOnceDS({front: [T_4]}, [front])
    p = Probes(DS18B20Bus(ds), CONFIG[:1])
    cycles = []

    def on_cycle():
        cycles.append((p.value_mc[0], p.state[0]))
        if len(cycles) == 2:
            raise ValueError("consumer bug")

    task = asyncio.create_task(p.run(1, on_cycle))
    await asyncio.sleep_ms(3500)
    task.cancel()
    assert cycles[0] == (None, "error")  # the failed first cycle
    assert cycles[1] == (4000, "ok")
    assert len(cycles) >= 3  # the exception from on_cycle did not stop the loop


async def test_run_period_includes_cycle():
    front = _rom(FRONT)
    ds, p = _scripted({front: [T_4]}, [front], CONFIG[:1])
    p.convert_ms = 500
    stamps = []
    task = asyncio.create_task(p.run(1, lambda: stamps.append(time.ticks_ms())))
    await asyncio.sleep_ms(3300)
    task.cancel()
    # Cycles end at about 500, 1500 and 2500 ms. A period that did not include
    # the 500 ms cycle would space them 1500 ms apart.
    assert len(stamps) == 3
    gap_ms = time.ticks_diff(stamps[2], stamps[1])
    assert 950 <= gap_ms <= 1150


async def test_run_cycle_ms_is_cycle_start():
    # cycle_ms, read in on_cycle, is the time the cycle started (before the
    # 500 ms conversion): the alarm delays count from it.
    front = _rom(FRONT)
    ds, p = _scripted({front: [T_4]}, [front], CONFIG[:1])
    p.convert_ms = 500
    seen = []
    task = asyncio.create_task(p.run(1, lambda: seen.append((p.cycle_ms, time.ticks_ms()))))
    await asyncio.sleep_ms(1800)
    task.cancel()
    assert len(seen) == 2, seen
    for started, ended in seen:
        assert 450 <= time.ticks_diff(ended, started) <= 650, (started, ended)
    assert 950 <= time.ticks_diff(seen[1][0], seen[0][0]) <= 1150


# The following tests use the simulated 1-Wire bus (tools/sim).


async def test_sim_b1_freezer_values():
    w, bus, p = _sim([{"rom": FRONT, "temp": [[0, -12.9375]]}, {"rom": REAR, "temp": [[0, -25.0625]]}])
    await p.cycle()
    assert p.value_mc == [-12938, -25063]
    assert p.state == ["ok", "ok"]
    assert p.value_mc[0] > -18000  # warmer than -18 degC: alarm side
    assert p.value_mc[1] < -18000


async def test_sim_names_follow_rom_order():
    # The world lists the probes in the opposite order from the configuration.
    w, bus, p = _sim([{"rom": REAR, "temp": [[0, 6.5]]}, {"rom": FRONT, "temp": [[0, 3.0]]}])
    await p.cycle()
    assert p.names == ["cargo_front", "cargo_rear"]
    assert p.value_mc == [3000, 6500]


async def test_sim_faults_over_time():
    w, bus, p = _sim([{"rom": FRONT, "temp": [[0, 3.5]]}, {"rom": REAR, "temp": [[0, 5.0]]}])
    front = _rom(FRONT)
    await p.cycle()
    assert p.value_mc == [3500, 5000]
    good_ms = p.sample_ms[0]

    w.set_probe_fault(front, "crc")
    await p.cycle()
    assert p.state[0] == "crc"
    assert p.value_mc[0] is None
    assert p.fails[0] == 1
    assert p.value_mc[1] == 5000

    w.set_probe_fault(front, "zero")
    await p.cycle()
    assert p.state[0] == "zero"
    assert p.value_mc[0] is None  # never 0.0 degC
    assert p.fails[0] == 2

    w.set_probe_fault(front, "absent")
    await p.cycle()
    assert p.state[0] == "absent"
    assert p.value_mc[0] is None
    assert p.fails[0] == 3
    assert p.is_lost(0)
    assert p.missing == ["cargo_front"]
    assert p.sample_ms[0] == good_ms
    assert p.value_mc[1] == 5000

    w.set_probe_fault(front, None)
    w.set_temp(front, 4.25)
    await p.cycle()
    assert p.state[0] == "ok"
    assert p.value_mc[0] == 4250
    assert p.fails[0] == 0
    assert not p.is_lost(0)
    assert p.missing == []
    assert time.ticks_diff(p.sample_ms[0], good_ms) > 0


async def test_sim_power_on_fault():
    w, bus, p = _sim([{"rom": FRONT, "temp": [[0, 4.0]]}], CONFIG[:1])
    w.set_probe_fault(_rom(FRONT), "power_on")
    await p.cycle()
    assert bus.conversions == 2
    assert p.state == ["power_on"]
    assert p.value_mc == [None]


async def test_sim_85_at_power_up_confirmed():
    w, bus, p = _sim([{"rom": FRONT, "temp": [[0, 85.0]]}], CONFIG[:1])
    await p.cycle()
    assert bus.conversions == 2
    assert p.state == ["ok"]
    assert p.value_mc == [85000]
    await p.cycle()
    assert bus.conversions == 3  # 85.0 again is no jump from 85.0
    assert p.value_mc == [85000]


async def test_sim_empty_bus():
    w, bus, p = _sim([{"rom": FRONT, "temp": [[0, 4.0]]}, {"rom": REAR, "temp": [[0, 4.0]]}])
    w.set_probe_fault(_rom(FRONT), "absent")
    w.set_probe_fault(_rom(REAR), "absent")
    await p.cycle()
    assert bus.scans == 3
    assert p.state == ["absent", "absent"]
    assert p.value_mc == [None, None]
    assert p.extra == []


async def test_sim_no_probes_on_bus():
    w, bus, p = _sim([])
    await p.cycle()
    assert p.state == ["absent", "absent"]
    assert p.value_mc == [None, None]


async def test_sim_extra_probe_listed():
    w, bus, p = _sim(
        [
            {"rom": FRONT, "temp": [[0, 4.0]]},
            {"rom": SPARE, "temp": [[0, 9.0]]},
            {"rom": REAR, "temp": [[0, 5.0]]},
        ]
    )
    await p.cycle()
    assert p.extra == [SPARE]
    assert p.value_mc == [4000, 5000]
