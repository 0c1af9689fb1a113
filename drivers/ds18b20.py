# DS18B20 probes on the stock ds18x20 driver: bus scan, Convert T, scratchpad read and decoding
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage (the caller awaits the conversion time between convert() and read()):
#   bus = DS18B20Bus(board.onewire_bus())
#   roms = bus.scan()
#   if bus.convert():
#       await asyncio.sleep_ms(750)
#       if bus.read(roms[0]) == OK:
#           temp_mc = raw_to_mc(bus.raw)
#
# Scratchpad layout (DS18B20 datasheet): byte 0 temperature LSB, byte 1 MSB
# (two's complement, 1/16 degC at 12 bit), bytes 2-4 TH, TL and configuration,
# byte 6 COUNT REMAIN, byte 8 Dallas/Maxim CRC-8 of bytes 0-7.

from micropython import const
from onewire import OneWireError

# Status codes returned by DS18B20Bus.read() and decode_scratchpad().
OK = const(0)
ABSENT = const(1)  # no presence pulse, or the ROM did not respond (9 x 0xFF)
CRC = const(2)  # scratchpad CRC mismatch
POWER_ON = const(3)  # 85.0 degC with the power-up signature, so no conversion happened
ZERO = const(4)  # nine zero bytes: data line stuck low
STATUS_NAMES = ("ok", "absent", "crc", "power_on", "zero")

FAMILY_DS18B20 = const(0x28)
RAW_POWER_ON = const(0x0550)  # +85.0 degC, the register value after power-up
_POWER_ON_COUNT_REMAIN = const(0x0C)


def crc8(data):
    """Return the Dallas/Maxim CRC-8 of data; 0 for a buffer that ends in its own CRC."""
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def rom_crc_ok(rom):
    """Return True if byte 7 of an 8-byte 1-Wire ROM ID is the Dallas CRC-8 of bytes 0-6."""
    return crc8(rom) == 0


def parse_rom(text):
    """Return the 8 ROM bytes of "28A1B2C304000096" or "28:A1:B2:C3:04:00:00:96"; raise ValueError."""
    hexdigits = text.replace(":", "").replace("-", "")
    if len(hexdigits) != 16:
        raise ValueError("ROM ID must have 16 hex digits")
    try:
        rom = bytes(int(hexdigits[i : i + 2], 16) for i in range(0, 16, 2))
    except ValueError:
        raise ValueError("ROM ID is not hexadecimal")
    return rom


def raw_to_mc(raw):
    """Convert a raw 1/16 degC reading to milli-degrees C, rounding half steps down.

    One step is 62.5 m degC, so odd raw values fall on a half and floor division
    rounds them toward minus infinity: -1 (-0.0625 degC) gives -63.
    """
    return raw * 125 // 2


def _raw_value(buf):
    # The register is two's complement: without the sign step -12.9375 degC
    # (0xFF31) would come out as 4083.0625 degC.
    raw = buf[1] << 8 | buf[0]
    if raw & 0x8000:
        raw -= 0x10000
    return raw


def _all_bytes(buf, value):
    for b in buf:
        if b != value:
            return False
    return True


def _classify(buf):
    # Status of a scratchpad whose CRC is already known to be good.
    if _all_bytes(buf, 0):
        return ZERO
    if buf[0] == 0x50 and buf[1] == 0x05 and buf[6] == _POWER_ON_COUNT_REMAIN:
        return POWER_ON
    return OK


def decode_scratchpad(buf):
    """Check and decode a 9-byte scratchpad; return (status, raw) with raw in 1/16 degC.

    raw is the decoded register value for every status, including the
    statuses whose value must not be used.
    """
    if crc8(buf) != 0:
        status = ABSENT if _all_bytes(buf, 0xFF) else CRC
    else:
        status = _classify(buf)
    return status, _raw_value(buf)


class DS18B20Bus:
    """DS18B20 probes on one 1-Wire bus, driven through a stock ds18x20.DS18X20 object."""

    def __init__(self, ds):
        self._ds = ds
        self.raw = 0  # last value read, 1/16 degC, signed
        self.count_remain = 0  # scratchpad byte 6 of the last read

    def scan(self):
        """Return the ROM IDs (8 bytes each) of the DS18B20s on the bus; [] on any bus error.

        ROMs of other families and ROMs whose CRC byte is wrong are left out.
        """
        try:
            found = self._ds.scan()
        except Exception:
            return []
        roms = []
        for rom in found:
            if len(rom) == 8 and rom[0] == FAMILY_DS18B20 and crc8(rom) == 0:
                roms.append(bytes(rom))
        return roms

    def convert(self):
        """Send Convert T to every probe; return False when no device sent a presence pulse."""
        try:
            self._ds.convert_temp()
        except OneWireError:
            return False
        return True

    def read(self, rom):
        """Read one probe's scratchpad; return a status and store the value in self.raw.

        Allocates nothing when the read succeeds.
        """
        try:
            buf = self._ds.read_scratch(rom)
        except OneWireError:
            return ABSENT
        except MemoryError:
            raise
        except Exception:
            # The stock driver raises a plain Exception("CRC error") after it has
            # read the nine bytes into its .buf. When other devices sent the
            # presence pulse but the selected ROM stays silent, the pull-up makes
            # all nine bytes read 0xFF.
            if _all_bytes(self._ds.buf, 0xFF):
                return ABSENT
            return CRC

        self.raw = _raw_value(buf)
        self.count_remain = buf[6]
        return _classify(buf)
