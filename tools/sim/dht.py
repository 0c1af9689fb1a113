# Simulated DHT11/DHT22 driver with the API and errors of the stock dht module
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# measure() blocks the whole interpreter for about 270 ms like the stock
# driver on an ESP32 (250 ms line high, 18 ms start pulse, about 5 ms of
# data), then either fills .buf with the 5-byte frame of the world's sensor
# or raises OSError(errno.ETIMEDOUT) when the part does not respond (see
# world.SimDHT.responds). A frame whose byte 4 is not the sum of bytes 0-3
# raises a plain Exception("checksum error"), as the stock module does.
# Only a sensor object on board.DHT_PIN reaches the simulated part.

import errno
import time

from micropython import const

import world
from drivers import board

_MEASURE_MS = const(270)


class DHTBase:
    def __init__(self, pin):
        self.pin = pin
        self.buf = bytearray(5)
        self._world = world.current()

    def measure(self):
        """Read one frame into self.buf; raise OSError(ETIMEDOUT) or Exception("checksum error")."""
        w = self._world
        start_ms = w.now_ms()
        time.sleep_ms(_MEASURE_MS)
        sensor = w.dht if self.pin.sim_gpio == board.DHT_PIN else None
        if sensor is None or not sensor.responds(start_ms):
            raise OSError(errno.ETIMEDOUT)
        buf = self.buf
        sensor.frame(start_ms, buf)
        if (buf[0] + buf[1] + buf[2] + buf[3]) & 0xFF != buf[4]:
            raise Exception("checksum error")


class DHT11(DHTBase):
    def humidity(self):
        return self.buf[0]

    def temperature(self):
        return self.buf[2]


class DHT22(DHTBase):
    def humidity(self):
        return (self.buf[0] << 8 | self.buf[1]) * 0.1

    def temperature(self):
        # Sign and magnitude: bit 15 is the sign, the rest tenths of a degree.
        t = ((self.buf[2] & 0x7F) << 8 | self.buf[3]) * 0.1
        if self.buf[2] & 0x80:
            t = -t
        return t
