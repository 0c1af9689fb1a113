# Cargo humidity and air temperature from one DHT22/DHT11, sampled on a timer with retries
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage:
#   humidity = Humidity(DHTSensor(board.dht_sensor("DHT22"), "DHT22"), "DHT22", interval_s=10)
#   asyncio.create_task(humidity.run(on_sample=publish))
#
# Timing rules of the part: no response within 1 s after power-up, and a DHT22
# needs 2 s between reads (a DHT11 1 s). Here the first read comes at least
# 2 s after the Humidity object was created and all reads are at least 2 s
# apart for both models. A failed read is retried up to 3 times. When all
# attempts fail, temp_mc and rh_mrh become None with a fault state, never
# 0 %RH or 0.0 degC. sample_ms stays the time of the last good reading, so
# a consumer that looks before the next sample gets the last values with
# their original time.

import asyncio
import time

from micropython import const

from drivers.dht_sensor import OK, STATUS_NAMES
from firmware import log

_log = log.get("dht")

_START_DELAY_MS = const(2000)  # the part responds from 1 s after power-up; 2 s leaves a margin
# DHT22 minimum between reads. The MicroPython docs give 1 s for the DHT11,
# but 2 s is used for both as a margin.
_MIN_INTERVAL_MS = const(2000)
_RETRIES = const(3)
_ERROR_LOG_EVERY = const(60)


class HumidityError(ValueError):
    """An invalid humidity sensor configuration; the message contains the bad value."""


def _log_repeated(e, message, count):
    # Log the first failure in a row with its traceback, then every 60th.
    if count % _ERROR_LOG_EVERY == 1:
        _log.exc(e, "%s (%d in a row)", message, count)


class Humidity:
    """The latest DHT reading in firmware units (m degC, m %RH) and its fault state."""

    def __init__(self, sensor, model="DHT22", interval_s=10, fault_count=3):
        if model not in ("DHT22", "DHT11"):
            raise HumidityError("unknown DHT model %r, expected DHT22 or DHT11" % (model,))
        if interval_s * 1000 < _MIN_INTERVAL_MS:
            raise HumidityError("dht interval must be at least 2 s, got %r" % (interval_s,))
        self._sensor = sensor
        self.model = model
        self.interval_ms = interval_s * 1000
        self.fault_count = fault_count

        self.temp_mc = None  # int m degC, None when the last sample failed
        self.rh_mrh = None  # int milli-%RH, None when the last sample failed
        self.state = "pending"  # "pending" until the first sample, then a status name
        self.fails = 0  # consecutive failed samples
        self.sample_ms = None  # time.ticks_ms() of the last good reading
        self.reads = 0  # calls to the sensor, retries included

        # Timing of the part; unit tests with a stand-in sensor shorten these.
        self.start_delay_ms = _START_DELAY_MS
        self.min_interval_ms = _MIN_INTERVAL_MS
        self._start_ms = time.ticks_ms()
        self._last_read_ms = None

    def is_lost(self):
        """Return True once fault_count samples in a row have failed."""
        return self.fails >= self.fault_count

    async def run(self, on_sample=None):
        """Take a sample every interval_s seconds forever and call on_sample() after each.

        Exceptions from a sample or from on_sample are logged and the loop goes on.
        """
        sample_errors = 0
        callback_errors = 0
        while True:
            start_ms = time.ticks_ms()
            try:
                await self.sample()
                sample_errors = 0
            except Exception as e:
                sample_errors += 1
                _log_repeated(e, "sample failed", sample_errors)
                self._record(None)
            if on_sample is not None:
                try:
                    on_sample()
                    callback_errors = 0
                except Exception as e:
                    callback_errors += 1
                    _log_repeated(e, "on_sample callback failed", callback_errors)

            elapsed_ms = time.ticks_diff(time.ticks_ms(), start_ms)
            # sample() itself keeps the reads at least min_interval_ms apart.
            await asyncio.sleep_ms(max(self.interval_ms - elapsed_ms, 0))

    async def sample(self):
        """Read the sensor, retrying up to 3 times, update the attributes and return the status."""
        for attempt in range(1 + _RETRIES):
            await self._wait_until_ready()
            # NOTE: measure() blocks the whole interpreter for about 270 ms on an
            # ESP32 (start signal, then a read with interrupts off). That is
            # accepted because it happens at most once per 2 s and the GNSS UART
            # buffer is sized for a 2 s stall (board.gnss_rxbuf).
            status = self._sensor.read()
            self._last_read_ms = time.ticks_ms()
            self.reads += 1
            if status == OK:
                break
            if attempt < _RETRIES:
                _log.debug("%s read failed: %s, retrying", self.model, STATUS_NAMES[status])

        self._record(status)
        return status

    async def _wait_until_ready(self):
        now_ms = time.ticks_ms()
        if self._last_read_ms is None:
            wait_ms = self.start_delay_ms - time.ticks_diff(now_ms, self._start_ms)
        else:
            wait_ms = self.min_interval_ms - time.ticks_diff(now_ms, self._last_read_ms)
        if wait_ms > 0:
            await asyncio.sleep_ms(wait_ms)

    def _record(self, status):
        # status None is an unexpected exception, reported as state "error".
        old_state = self.state
        if status == OK:
            self.temp_mc = self._sensor.temp_dc * 100
            self.rh_mrh = self._sensor.rh_dr * 100
            self.sample_ms = self._last_read_ms
            self.fails = 0
            self.state = "ok"
        else:
            self.temp_mc = None
            self.rh_mrh = None
            self.fails += 1
            self.state = "error" if status is None else STATUS_NAMES[status]

        if self.state != old_state:
            if self.state == "ok":
                _log.info("%s ok: %d mC, %d m%%RH", self.model, self.temp_mc, self.rh_mrh)
            else:
                _log.warning("%s sample failed: %s", self.model, self.state)
        if self.fails == self.fault_count:
            _log.warning("%s lost: %s for %d samples", self.model, self.state, self.fails)
