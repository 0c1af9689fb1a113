# DHT22/DHT11 humidity sensor on the stock dht driver: one measurement, frame decoding, status codes
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage:
#   sensor = DHTSensor(board.dht_sensor("DHT22"), "DHT22")
#   if sensor.read() == OK:
#       temp_mc, rh_mrh = sensor.temp_dc * 100, sensor.rh_dr * 100
#
# The frame is taken from the stock driver's public .buf (bytearray(5), filled
# by measure()) and decoded here, because the stock DHT22.temperature() only
# knows sign-and-magnitude and applies no range check.
#
# Frame: bytes 0-1 humidity, bytes 2-3 temperature, byte 4 = (b0+b1+b2+b3) & 0xFF.
#   DHT22: big-endian tenths of %RH and of degC, temperature as sign bit plus
#          15-bit magnitude; some compatible parts send two's complement.
#   DHT11: integer and decimal (tenths) byte for humidity, then for temperature.

import errno

from micropython import const

# Status codes returned by DHTSensor.read(), decode_dht22() and decode_dht11().
OK = const(0)
TIMEOUT = const(1)  # no response from the sensor (OSError ETIMEDOUT)
ERROR = const(2)  # any other OSError
CHECKSUM = const(3)  # byte 4 does not match the sum of bytes 0-3
RANGE = const(4)  # decoded value outside what the part can measure
STATUS_NAMES = ("ok", "timeout", "error", "checksum", "range")

# Measuring ranges in tenths: DHT22 (AM2302 manual) -40..80 degC and 0..100 %RH,
# DHT11 0..50 degC. Humidity above 100 %RH is never valid.
_DHT22_TEMP_MIN_DC = const(-400)
_DHT22_TEMP_MAX_DC = const(800)
_DHT11_TEMP_MIN_DC = const(0)
_DHT11_TEMP_MAX_DC = const(500)
_RH_MAX_DR = const(1000)

# Tenths of a degree for a frame that cannot be decoded; outside every range.
_INVALID = const(-100000)


def _checksum_ok(buf):
    return (buf[0] + buf[1] + buf[2] + buf[3]) & 0xFF == buf[4]


def _dht22_temp_dc(buf):
    # Standard sign-and-magnitude first. When that lands outside the part's range,
    # the frame may come from a two's-complement clone: -10.1 degC arrives as
    # FF 9B, which sign-and-magnitude would turn into -3266.7 degC.
    magnitude = (buf[2] & 0x7F) << 8 | buf[3]
    temp = -magnitude if buf[2] & 0x80 else magnitude
    if _DHT22_TEMP_MIN_DC <= temp <= _DHT22_TEMP_MAX_DC:
        return temp
    temp = buf[2] << 8 | buf[3]
    if temp & 0x8000:
        temp -= 0x10000
    return temp


def _dht11_tenths(integer, decimal):
    if decimal > 9:
        return _INVALID
    return integer * 10 + decimal


def _decode(buf, dht22, out):
    # Shared by the pure helpers and DHTSensor.read(): sets out.temp_dc and
    # out.rh_dr only when the status is OK, and allocates nothing.
    if not _checksum_ok(buf):
        return CHECKSUM
    if dht22:
        temp = _dht22_temp_dc(buf)
        rh = buf[0] << 8 | buf[1]
        temp_min, temp_max = _DHT22_TEMP_MIN_DC, _DHT22_TEMP_MAX_DC
    else:
        temp = _dht11_tenths(buf[2], buf[3])
        rh = _dht11_tenths(buf[0], buf[1])
        temp_min, temp_max = _DHT11_TEMP_MIN_DC, _DHT11_TEMP_MAX_DC
    if not temp_min <= temp <= temp_max or not 0 <= rh <= _RH_MAX_DR:
        return RANGE
    out.temp_dc = temp
    out.rh_dr = rh
    return OK


class _Reading:
    temp_dc = None
    rh_dr = None


def decode_dht22(buf):
    """Decode a DHT22 frame; return (status, temp_dc, rh_dr) in tenths of degC and %RH.

    temp_dc and rh_dr are None unless the status is OK.
    """
    reading = _Reading()
    status = _decode(buf, True, reading)
    return status, reading.temp_dc, reading.rh_dr


def decode_dht11(buf):
    """Decode a DHT11 frame; return (status, temp_dc, rh_dr) in tenths of degC and %RH.

    temp_dc and rh_dr are None unless the status is OK.
    """
    reading = _Reading()
    status = _decode(buf, False, reading)
    return status, reading.temp_dc, reading.rh_dr


class DHTSensor:
    """One DHT22 or DHT11 read through a stock dht.DHT22/dht.DHT11 object."""

    def __init__(self, dev, model):
        if model not in ("DHT22", "DHT11"):
            raise ValueError("unknown DHT model %r, expected DHT22 or DHT11" % (model,))
        self._dev = dev
        self._dht22 = model == "DHT22"
        self.temp_dc = None  # tenths of degC, set by a read that returns OK
        self.rh_dr = None  # tenths of %RH, set by a read that returns OK

    def read(self):
        """Measure once and return a status; on OK set temp_dc and rh_dr.

        measure() blocks the interpreter for about 270 ms on an ESP32 because the
        stock driver holds the line for the start signal and then reads with
        interrupts off. Allocates nothing when the read succeeds.
        """
        try:
            self._dev.measure()
        except OSError as e:
            # ETIMEDOUT is 116 on ESP32 (newlib) and 110 on other ports.
            if e.errno == errno.ETIMEDOUT:
                return TIMEOUT
            return ERROR
        except MemoryError:
            raise
        except Exception:
            # The stock driver raises a plain Exception("checksum error").
            return CHECKSUM

        return _decode(self._dev.buf, self._dht22, self)
