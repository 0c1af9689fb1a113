# Tests of firmware.humidity: start delay, read spacing, retries, fault states, field case C1
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import asyncio
import time

import world
from drivers import board
from drivers.dht_sensor import CHECKSUM, OK, RANGE, TIMEOUT, DHTSensor
from firmware.humidity import Humidity, HumidityError


class TimedSensor:
    """Wraps a DHTSensor and records the ticks_ms of every read."""

    def __init__(self, sensor):
        self._sensor = sensor
        self.read_ms = []

    @property
    def temp_dc(self):
        return self._sensor.temp_dc

    @property
    def rh_dr(self):
        return self._sensor.rh_dr

    def read(self):
        self.read_ms.append(time.ticks_ms())
        return self._sensor.read()


class ScriptedSensor:
    """Stand-in for DHTSensor that returns queued statuses; an Exception in the queue is raised."""

    def __init__(self, results, temp_dc=40, rh_dr=750):
        self.results = results
        self.temp_dc = temp_dc
        self.rh_dr = rh_dr
        self.reads = 0

    def read(self):
        result = self.results[min(self.reads, len(self.results) - 1)]
        self.reads += 1
        if isinstance(result, Exception):
            raise result
        return result


def _fast(sensor, interval_s=2):
    # Shortened timing for stand-in sensors, which have no timing rules of their own.
    h = Humidity(sensor, "DHT22", interval_s)
    h.start_delay_ms = 20
    h.min_interval_ms = 20
    return h


def _sim(dht):
    w = world.World({"dht": dht})
    world.set_current(w)
    sensor = TimedSensor(DHTSensor(board.dht_sensor(dht["model"]), dht["model"]))
    return w, sensor


def _gaps_ms(stamps):
    return [time.ticks_diff(stamps[i], stamps[i - 1]) for i in range(1, len(stamps))]


async def test_c1_first_read_after_2_s():
    # Field case C1: reads at 0.3 s and 1.1 s after power-up time out. So the
    # first read waits 2 s after start, and it gets 43.7 %RH and 22.5 degC.
    w, sensor = _sim({"model": "DHT22", "temp": [[0, 22.5]], "rh": [[0, 43.7]]})
    start_ms = time.ticks_ms()
    h = Humidity(sensor, "DHT22", 10)
    assert h.state == "pending"
    status = await h.sample()
    assert status == OK
    assert time.ticks_diff(sensor.read_ms[0], start_ms) >= 2000
    assert len(sensor.read_ms) == 1
    assert h.temp_mc == 22500
    assert h.rh_mrh == 43700
    assert h.state == "ok"
    assert 0 <= time.ticks_diff(h.sample_ms, sensor.read_ms[0]) < 500  # taken when measure() returned


async def test_c1_early_read_times_out():
    # The timeline of the field case driven by hand: the part is silent for
    # 1 s after power-up, which is why Humidity waits 2 s before its first read.
    w, sensor = _sim({"model": "DHT22", "temp": [[0, 22.5]], "rh": [[0, 43.7]]})
    await asyncio.sleep_ms(300)
    assert sensor.read() == TIMEOUT
    assert sensor.temp_dc is None
    await asyncio.sleep_ms(800)
    status = sensor.read()
    assert status in (OK, TIMEOUT)  # a real part may still time out at 1.1 s
    if status == OK:
        assert sensor.temp_dc == 225
        assert sensor.rh_dr == 437


async def test_timeouts_then_ok_after_retry():
    w, sensor = _sim({"model": "DHT22", "temp": [[0, 4.0]], "rh": [[0, 75.0]]})
    w.set_dht(4.0, 75.0, "timeout")
    h = Humidity(sensor, "DHT22", 10)

    async def clear_fault():
        await asyncio.sleep_ms(3000)
        w.set_dht(4.0, 75.0, None)

    asyncio.create_task(clear_fault())
    status = await h.sample()
    assert status == OK
    assert len(sensor.read_ms) == 2  # 2 s: timeout, 4 s: frame
    assert _gaps_ms(sensor.read_ms)[0] >= 2000
    assert h.temp_mc == 4000
    assert h.rh_mrh == 75000
    assert h.fails == 0


async def test_timeouts_exhaust_retries():
    w, sensor = _sim({"model": "DHT22", "temp": [[0, 4.0]], "rh": [[0, 75.0]]})
    w.set_dht(4.0, 75.0, "timeout")
    h = Humidity(sensor, "DHT22", 10)
    status = await h.sample()
    assert status == TIMEOUT
    assert len(sensor.read_ms) == 4  # one read and 3 retries
    for gap_ms in _gaps_ms(sensor.read_ms):
        assert gap_ms >= 2000
    assert h.state == "timeout"
    assert h.temp_mc is None  # never 0.0 degC
    assert h.rh_mrh is None  # never 0 %RH
    assert h.fails == 1
    assert h.sample_ms is None


async def test_checksum_state():
    sensor = ScriptedSensor([CHECKSUM])
    h = _fast(sensor)
    assert await h.sample() == CHECKSUM
    assert sensor.reads == 4
    assert h.state == "checksum"
    assert h.temp_mc is None
    assert h.rh_mrh is None


async def test_range_state():
    h = _fast(ScriptedSensor([RANGE]))
    assert await h.sample() == RANGE
    assert h.state == "range"
    assert h.temp_mc is None


async def test_failure_clears_values_keeps_time():
    # A good sample, then a failed one: values go to None, sample_ms stays the
    # time of the last good reading.
    sensor = ScriptedSensor([OK, TIMEOUT])
    h = _fast(sensor)
    await h.sample()
    assert h.temp_mc == 4000
    assert h.rh_mrh == 75000
    good_ms = h.sample_ms
    await h.sample()
    assert h.state == "timeout"
    assert h.temp_mc is None
    assert h.rh_mrh is None
    assert h.sample_ms == good_ms


async def test_lost_after_fault_count():
    h = _fast(ScriptedSensor([TIMEOUT]))
    for expected in (1, 2, 3):
        await h.sample()
        assert h.fails == expected
        assert h.is_lost() == (expected >= 3)


async def test_negative_temperature_units():
    h = _fast(ScriptedSensor([OK], temp_dc=-101, rh_dr=652))
    await h.sample()
    assert h.temp_mc == -10100
    assert h.rh_mrh == 65200


async def test_run_survives_exceptions():
    sensor = ScriptedSensor([RuntimeError("driver bug"), OK])
    h = _fast(sensor)
    h.interval_ms = 100
    seen = []

    def on_sample():
        seen.append(h.state)
        if len(seen) == 2:
            raise ValueError("consumer bug")

    task = asyncio.create_task(h.run(on_sample))
    await asyncio.sleep_ms(450)
    task.cancel()
    assert seen[0] == "error"
    assert seen[1] == "ok"
    assert len(seen) >= 3
    assert h.temp_mc == 4000


async def test_run_interval():
    sensor = ScriptedSensor([OK])
    h = _fast(sensor)
    h.interval_ms = 200
    stamps = []
    task = asyncio.create_task(h.run(lambda: stamps.append(time.ticks_ms())))
    await asyncio.sleep_ms(700)
    task.cancel()
    # The first sample waits the 20 ms start delay inside its 200 ms slot, so
    # the samples end at about 20, 200, 400 and 600 ms.
    assert len(stamps) == 4
    for gap_ms in _gaps_ms(stamps)[1:]:
        assert 190 <= gap_ms <= 240


def test_interval_below_2_s_rejected():
    try:
        Humidity(ScriptedSensor([OK]), "DHT22", 1)
    except HumidityError as e:
        assert "1" in str(e)
    else:
        raise AssertionError("interval 1 s accepted")


def test_unknown_model_rejected():
    try:
        Humidity(ScriptedSensor([OK]), "AM2320")
    except HumidityError as e:
        assert "AM2320" in str(e)
    else:
        raise AssertionError("AM2320 accepted")
