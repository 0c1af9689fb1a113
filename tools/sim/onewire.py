# Simulated 1-Wire bus with the API of the stock onewire module; the devices are the world's probes
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# The bus is simulated bit by bit: reset and presence, ROM commands (SEARCH,
# MATCH, SKIP, READ ROM) and the DS18B20 function commands, with several
# devices driving the line at once as a wired AND. So scan() runs the real
# search algorithm, SKIP ROM followed by Read Scratchpad on a bus with two
# probes reads garbage, and a selected probe that does not respond reads as
# 0xFF bytes (the pull-up).
#
# Only a OneWire on board.ONEWIRE_PIN has devices on it. Each call takes about
# the bus time of a real ESP32: 70 us per bit slot and about 1 ms per reset,
# so one read_temp() blocks for about 13 ms.

import time

from micropython import const

import scenario
import world
from drivers import board

_BIT_US = const(70)
_RESET_US = const(960)

# ROM and function command codes from the DS18B20 datasheet.
_SEARCH_ROM = const(0xF0)
_READ_ROM = const(0x33)
_MATCH_ROM = const(0x55)
_SKIP_ROM = const(0xCC)
_CONVERT_T = const(0x44)
_READ_SCRATCH = const(0xBE)
_WRITE_SCRATCH = const(0x4E)
_COPY_SCRATCH = const(0x48)
_RECALL_EE = const(0xB8)
_READ_POWER = const(0xB4)

# Bus states between two bit slots.
_IDLE = const(0)  # no device listens until the next reset
_ROM_CMD = const(1)  # collecting a ROM command byte
_MATCH = const(2)  # collecting the 64 bits of a ROM ID
_SEARCH = const(3)  # SEARCH ROM: two read slots and one write slot per bit
_FUNC_CMD = const(4)  # collecting a function command byte
_SEND = const(5)  # selected devices send the bytes in self._out
_WRITE = const(6)  # collecting TH, TL and config for Write Scratchpad
_STATUS = const(7)  # read slots return 0 while a selected device is busy


class OneWireError(Exception):
    pass


def crc8(data):
    """Return the Dallas/Maxim CRC-8 of data; 0 for a buffer that ends in its own CRC."""
    return scenario.crc8(data)


class OneWire:
    SEARCH_ROM = const(0xF0)
    MATCH_ROM = const(0x55)
    SKIP_ROM = const(0xCC)

    def __init__(self, pin):
        self.pin = pin
        pin.init(pin.OPEN_DRAIN, pin.PULL_UP)
        self._world = world.current()
        self._devices = self._world.probes if pin.sim_gpio == board.ONEWIRE_PIN else []
        self._state = _IDLE
        self._selected = []
        self._byte = 0
        self._nbits = 0
        self._collected = bytearray(8)
        self._ncollected = 0
        self._out = bytearray(9)
        self._outbit = 0
        self._tmp = bytearray(9)
        self._search_bit = 0
        self._search_phase = 0
        self._owed_us = 0

    def _now(self):
        return self._world.now_s()

    def _stall(self, us):
        # Bus time is owed and slept once it reaches 1 ms. Sleeping per bit
        # slot would add the sleep call's own overhead to every bit.
        self._owed_us += us
        if self._owed_us >= 1000:
            time.sleep_us(self._owed_us)
            self._owed_us = 0

    # Bit slots

    def _reset_bus(self):
        t = self._now()
        self._selected = [d for d in self._devices if d.present(t)]
        self._state = _ROM_CMD if self._selected else _IDLE
        self._byte = 0
        self._nbits = 0
        return bool(self._selected)

    def _read_slot(self):
        state = self._state
        if state == _SEND:
            i = self._outbit
            self._outbit = i + 1
            if i >= 72:
                return 1
            return self._out[i >> 3] >> (i & 7) & 1
        if state == _SEARCH:
            return self._search_read()
        if state == _STATUS:
            return self._status_bit()
        # No device drives the line, so the pull-up reads 1.
        return 1

    def _write_slot(self, bit):
        state = self._state
        if state == _SEARCH:
            self._search_write(bit)
            return
        if state == _SEND:
            # A write-1 slot is a read slot to the devices; the data bit is lost.
            self._outbit += 1
            return
        if state not in (_ROM_CMD, _MATCH, _FUNC_CMD, _WRITE):
            return
        self._byte |= bit << self._nbits
        self._nbits += 1
        if self._nbits == 8:
            b = self._byte
            self._byte = 0
            self._nbits = 0
            self._on_byte(b)

    def _on_byte(self, b):
        state = self._state
        if state == _ROM_CMD:
            self._rom_command(b)
        elif state == _MATCH:
            self._collected[self._ncollected] = b
            self._ncollected += 1
            if self._ncollected == 8:
                rom = bytes(self._collected)
                self._selected = [d for d in self._selected if d.rom == rom]
                self._state = _FUNC_CMD if self._selected else _IDLE
        elif state == _FUNC_CMD:
            self._function_command(b)
        elif state == _WRITE:
            self._collected[self._ncollected] = b
            self._ncollected += 1
            if self._ncollected == 3:
                for d in self._selected:
                    d.write_scratchpad(self._collected[0], self._collected[1], self._collected[2])
                self._state = _IDLE

    def _rom_command(self, b):
        if b == _MATCH_ROM:
            self._state = _MATCH
            self._ncollected = 0
        elif b == _SKIP_ROM:
            self._state = _FUNC_CMD
        elif b == _SEARCH_ROM:
            self._state = _SEARCH
            self._search_bit = 0
            self._search_phase = 0
        elif b == _READ_ROM:
            self._send_and(lambda d, buf: _copy_rom(d.rom, buf))
        else:
            self._state = _IDLE

    def _function_command(self, b):
        t = self._now()
        if b == _CONVERT_T:
            for d in self._selected:
                d.start_conversion(t)
            self._state = _STATUS
        elif b == _READ_SCRATCH:
            self._send_and(lambda d, buf: d.scratchpad(t, buf))
        elif b == _WRITE_SCRATCH:
            self._state = _WRITE
            self._ncollected = 0
        elif b == _COPY_SCRATCH:
            for d in self._selected:
                d.copy_scratchpad()
            self._state = _STATUS
        elif b == _RECALL_EE:
            for d in self._selected:
                d.recall_eeprom()
            self._state = _STATUS
        elif b == _READ_POWER:
            # Every simulated probe has its own VDD supply: the read slot stays 1.
            self._state = _STATUS
        else:
            self._state = _IDLE

    def _send_and(self, fill):
        # Every selected device drives the line at once: the master reads the AND.
        out = self._out
        for i in range(9):
            out[i] = 0xFF
        for d in self._selected:
            fill(d, self._tmp)
            for i in range(9):
                out[i] &= self._tmp[i]
        self._outbit = 0
        self._state = _SEND

    def _status_bit(self):
        t = self._now()
        for d in self._selected:
            if d.converting(t):
                return 0
        return 1

    def _search_read(self):
        # Phase 0: every device sends its ROM bit; phase 1: its complement.
        phase = self._search_phase
        if phase > 1:
            self._state = _IDLE
            return 1
        i = self._search_bit
        bit = 1
        for d in self._selected:
            bit &= (d.rom[i >> 3] >> (i & 7) & 1) ^ phase
        self._search_phase = phase + 1
        return bit

    def _search_write(self, bit):
        if self._search_phase != 2:
            self._state = _IDLE
            return
        i = self._search_bit
        self._selected = [d for d in self._selected if d.rom[i >> 3] >> (i & 7) & 1 == bit]
        self._search_bit = i + 1
        self._search_phase = 0
        if self._search_bit == 64:
            self._state = _FUNC_CMD if self._selected else _IDLE

    # The stock API

    def reset(self, required=False):
        """Send a reset pulse; return True if a device responded with a presence pulse."""
        found = self._reset_bus()
        self._stall(_RESET_US)
        if required and not found:
            raise OneWireError("no presence pulse on the 1-Wire bus")
        return found

    def readbit(self):
        bit = self._read_slot()
        self._stall(_BIT_US)
        return bit

    def readbyte(self):
        b = 0
        for i in range(8):
            b |= self._read_slot() << i
        self._stall(8 * _BIT_US)
        return b

    def readinto(self, buf):
        for k in range(len(buf)):
            b = 0
            for i in range(8):
                b |= self._read_slot() << i
            buf[k] = b
        self._stall(len(buf) * 8 * _BIT_US)

    def writebit(self, value):
        self._write_slot(1 if value else 0)
        self._stall(_BIT_US)

    def writebyte(self, value):
        for i in range(8):
            self._write_slot(value >> i & 1)
        self._stall(8 * _BIT_US)

    def write(self, buf):
        for b in buf:
            for i in range(8):
                self._write_slot(b >> i & 1)
        self._stall(len(buf) * 8 * _BIT_US)

    def select_rom(self, rom):
        self.reset()
        self.writebyte(_MATCH_ROM)
        self.write(rom)

    def scan(self):
        """Return the ROM IDs (bytearray(8) each) of the devices present now; [] on an empty bus."""
        found = []
        prefix = bytearray(8)
        last_conflict = 64
        while True:
            if not self.reset():
                return found
            self.writebyte(_SEARCH_ROM)
            conflict = -1
            for i in range(64):
                bit = self.readbit()
                complement = self.readbit()
                if bit and complement:
                    # No device responded to this bit, because one left in the middle of the search.
                    return found
                if bit == complement:
                    # Devices differ here. Take 1 where the previous pass took
                    # its last 0, keep the previous choice before that, and
                    # take 0 (remembering the spot) after it.
                    if i < last_conflict:
                        bit = prefix[i >> 3] >> (i & 7) & 1
                        if not bit:
                            conflict = i
                    elif i == last_conflict:
                        bit = 1
                    else:
                        bit = 0
                        conflict = i
                if bit:
                    prefix[i >> 3] |= 1 << (i & 7)
                else:
                    prefix[i >> 3] &= ~(1 << (i & 7)) & 0xFF
                self.writebit(bit)
            found.append(bytearray(prefix))
            if conflict < 0:
                return found
            last_conflict = conflict

    def crc8(self, data):
        return crc8(data)


def _copy_rom(rom, buf):
    for i in range(8):
        buf[i] = rom[i]
    buf[8] = 0xFF
