# Simulated DS18x20 driver with the API and errors of the stock ds18x20 module, on the simulated bus
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Only the onewire API is used, so the bus model in onewire.py decides what
# each call returns. As in the stock module, read_scratch() returns the
# driver's own 9-byte buffer (.buf), which the next read overwrites, and a CRC
# mismatch raises a plain Exception("CRC error").

from micropython import const

_CONVERT_T = const(0x44)
_READ_SCRATCH = const(0xBE)
_WRITE_SCRATCH = const(0x4E)

# Family codes: DS18S20, DS1822, DS18B20.
_FAMILIES = (0x10, 0x22, 0x28)


class DS18X20:
    def __init__(self, onewire):
        self.ow = onewire
        self.buf = bytearray(9)

    def scan(self):
        """Return the ROM IDs of the temperature sensors on the bus."""
        return [rom for rom in self.ow.scan() if rom[0] in _FAMILIES]

    def convert_temp(self):
        """Start a conversion on every sensor at once; returns at once (wait 750 ms at 12 bits)."""
        self.ow.reset(True)
        self.ow.writebyte(self.ow.SKIP_ROM)
        self.ow.writebyte(_CONVERT_T)

    def read_scratch(self, rom):
        """Read the 9-byte scratchpad into self.buf and return it; raise Exception("CRC error")."""
        self.ow.reset(True)
        self.ow.select_rom(rom)
        self.ow.writebyte(_READ_SCRATCH)
        self.ow.readinto(self.buf)
        if self.ow.crc8(self.buf):
            raise Exception("CRC error")
        return self.buf

    def write_scratch(self, rom, buf):
        """Write TH, TL and (DS18B20 only) the config byte: buf contains 2 or 3 bytes."""
        self.ow.reset(True)
        self.ow.select_rom(rom)
        self.ow.writebyte(_WRITE_SCRATCH)
        self.ow.write(buf)

    def read_temp(self, rom):
        """Return the temperature in degC from the scratchpad (no conversion is started)."""
        buf = self.read_scratch(rom)
        if rom[0] == 0x10:
            # DS18S20: 0.5 degC steps in byte 0 (sign in byte 1), refined by
            # COUNT_REMAIN (byte 6) and COUNT_PER_C (byte 7).
            half_degrees = buf[0] | (0xFF00 if buf[1] else 0)
            if half_degrees & 0x8000:
                half_degrees -= 0x10000
            return (half_degrees >> 1) - 0.25 + (buf[7] - buf[6]) / buf[7]
        raw = buf[1] << 8 | buf[0]
        if raw & 0x8000:
            raw -= 0x10000
        return raw / 16
