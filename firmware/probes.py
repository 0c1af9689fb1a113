# Cargo temperature probes: DS18B20 measurement cycles for the configured probes, addressed by ROM ID
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage:
#   probes = Probes(DS18B20Bus(board.onewire_bus()), cfg["probes"], cfg["alarm"]["fault_count"])
#   asyncio.create_task(probes.run(cfg["interval_s"], on_cycle=publish))
#
# Every per-probe list is indexed like the configuration list, and a probe is
# read only through its own ROM ID. A probe that is missing, or that the bus
# scan returns in another order, therefore never shifts a name or a value to
# another probe.
#
# One cycle:
#   1. Convert T to all probes, then await the 12-bit conversion time.
#   2. Read each configured ROM.
#   3. When a ROM did not answer, scan the bus (up to 3 tries) to tell a probe
#      that has left the bus from a failed read. A probe that the scan finds
#      gets one more conversion and read.
#   4. A reading of exactly 85.0 degC (the power-on register value) is
#      re-measured with a second conversion when it has the power-up
#      signature, is the probe's first reading, or jumps far from its last
#      good value. It is accepted only when the second conversion again gives
#      85.0 degC without the signature.
#   5. Record the results. A probe without a good reading gets value None and
#      a fault state, never its previous value, a neighbour's value or 0.

import asyncio
import time

from micropython import const

from drivers.ds18b20 import ABSENT, CRC, OK, POWER_ON, RAW_POWER_ON, STATUS_NAMES, parse_rom, raw_to_mc
from firmware import log

_log = log.get("probes")

_CONVERT_MS = const(750)  # 12-bit (factory default) maximum conversion time, DS18B20 datasheet
_SCAN_TRIES = const(3)
_SCAN_RETRY_MS = const(50)
_SCAN_EVERY_CYCLES = const(10)  # also scan this often to list probes that are not configured
_JUMP_MC = const(10000)  # an 85.0 degC reading this far from the last good value is re-measured
_MIN_PAUSE_MS = const(100)  # run() waits at least this long between cycles, even after an overrun
_ERROR_LOG_EVERY = const(60)


class ProbesError(ValueError):
    """An invalid probe configuration; the message names the probe and the bad value."""


def rom_hex(rom):
    """Return a ROM ID as 16 upper-case hex digits, the form used in config.json."""
    return "".join("%02X" % b for b in rom)


def _log_repeated(e, message, count):
    # Log the first failure in a row with its traceback, then every 60th.
    if count % _ERROR_LOG_EVERY == 1:
        _log.exc(e, "%s (%d in a row)", message, count)


class Probes:
    """The configured DS18B20 probes and their latest readings, one list entry per probe."""

    def __init__(self, bus, probes_cfg, fault_count=3):
        self._bus = bus
        self.fault_count = fault_count
        self.names = []
        self.roms = []
        for index, probe in enumerate(probes_cfg):
            rom = self._parse_probe_rom(index, probe)
            self.roms.append(rom)
            self.names.append(probe.get("name") or rom_hex(rom))

        count = len(self.roms)
        self.value_mc = [None] * count  # int m degC, None without a good reading this cycle
        # "pending" until the first cycle, then a status name of drivers.ds18b20,
        # or "error" after a cycle that ended in an unexpected exception.
        self.state = ["pending"] * count
        self.fails = [0] * count  # consecutive cycles without a good reading
        self.sample_ms = [None] * count  # time.ticks_ms() of the last good reading
        self.cycle_ms = 0  # time.ticks_ms() at the start of the last cycle (run())
        self.extra = []  # hex ROM IDs of DS18B20s on the bus that are not configured
        self.missing = []  # names of configured probes that were absent in the last cycle
        self.cycles = 0
        # Wait after Convert T; unit tests with a stand-in bus shorten it.
        self.convert_ms = _CONVERT_MS

        # Working storage of one cycle, allocated once.
        self._status = [OK] * count
        self._raw = [0] * count
        self._last_mc = [None] * count  # last accepted value, kept through faults for the jump check
        self._changed = [False] * count

    def _parse_probe_rom(self, index, probe):
        text = probe.get("rom") if isinstance(probe, dict) else None
        if not isinstance(text, str):
            raise ProbesError("probe %d: ROM ID missing, got %r" % (index, probe))
        try:
            rom = parse_rom(text)
        except ValueError as e:
            raise ProbesError("probe %d: %s, got %r" % (index, e, text))
        if rom in self.roms:
            raise ProbesError("probe %d: ROM ID %s listed twice" % (index, text))
        return rom

    def is_lost(self, index):
        """Return True once a probe has failed fault_count cycles in a row."""
        return self.fails[index] >= self.fault_count

    async def run(self, period_s, on_cycle=None):
        """Run a measurement cycle every period_s seconds (cycle time included) forever.

        on_cycle() is called after each cycle. Exceptions from a cycle or from
        on_cycle are logged and the loop goes on. cycle_ms is the ticks_ms() at
        which the cycle started, just before Convert T: the time of its values.
        """
        period_ms = period_s * 1000
        cycle_errors = 0
        callback_errors = 0
        while True:
            start_ms = self.cycle_ms = time.ticks_ms()
            try:
                await self.cycle()
                cycle_errors = 0
            except Exception as e:
                cycle_errors += 1
                _log_repeated(e, "measurement cycle failed", cycle_errors)
                self._fail_all()
            if on_cycle is not None:
                try:
                    on_cycle()
                    callback_errors = 0
                except Exception as e:
                    callback_errors += 1
                    _log_repeated(e, "on_cycle callback failed", callback_errors)

            elapsed_ms = time.ticks_diff(time.ticks_ms(), start_ms)
            await asyncio.sleep_ms(max(period_ms - elapsed_ms, _MIN_PAUSE_MS))

    def _fail_all(self):
        # After an unexpected exception no value of this cycle can be trusted.
        for i in range(len(self.roms)):
            self.value_mc[i] = None
            self.fails[i] += 1
            if self.state[i] != "error" or self.fails[i] == self.fault_count:
                self._changed[i] = True
            self.state[i] = "error"
        self._report_changes()

    async def cycle(self):
        """Measure every configured probe once and update the per-probe lists.

        Takes one conversion time (750 ms) when all probes respond, and up to
        three plus the scan delays when a probe needs a rescan or a re-measure.
        """
        sent = await self._convert()
        for i in range(len(self.roms)):
            self._read(i, sent)
            # Each read blocks the interpreter for about 13 ms of 1-Wire bus time,
            # so let other tasks run between probes.
            await asyncio.sleep_ms(0)

        if ABSENT in self._status or self.cycles % _SCAN_EVERY_CYCLES == 0:
            await self._rescan()
        await self._confirm_power_on_values()

        now_ms = time.ticks_ms()
        for i in range(len(self.roms)):
            self._record(i, now_ms)
        self.cycles += 1
        self._report_changes()

    async def _convert(self):
        # Return whether a Convert T reached the bus, after awaiting the conversion.
        if not self._bus.convert():
            return False
        await asyncio.sleep_ms(self.convert_ms)
        return True

    def _read(self, i, sent):
        if not sent:
            self._status[i] = ABSENT
            return
        self._status[i] = self._bus.read(self.roms[i])
        self._raw[i] = self._bus.raw

    async def _rescan(self):
        # A ROM that did not respond is either gone or had a bad read. Scan up to
        # _SCAN_TRIES times, because one scan on a long cable can miss a device,
        # and re-measure the probes that the scan finds.
        found = self._bus.scan()
        tries = 1
        while tries < _SCAN_TRIES and self._absent_not_in(found):
            await asyncio.sleep_ms(_SCAN_RETRY_MS)
            for rom in self._bus.scan():
                if rom not in found:
                    found.append(rom)
            tries += 1
        self.extra = [rom_hex(rom) for rom in found if rom not in self.roms]

        retry = [i for i in range(len(self.roms)) if self._status[i] == ABSENT and self.roms[i] in found]
        if not retry:
            return
        sent = await self._convert()
        for i in retry:
            self._read(i, sent)
            if sent and self._status[i] == ABSENT:
                # The scan saw the device but its scratchpad read failed again:
                # a read error (contact or cable), not a probe that has left.
                self._status[i] = CRC

    def _absent_not_in(self, found):
        for i in range(len(self.roms)):
            if self._status[i] == ABSENT and self.roms[i] not in found:
                return True
        return False

    def _is_suspect(self, i):
        status = self._status[i]
        if status == POWER_ON:
            return True
        if status != OK or self._raw[i] != RAW_POWER_ON:
            return False
        last_mc = self._last_mc[i]
        if last_mc is None:
            return True
        return abs(raw_to_mc(RAW_POWER_ON) - last_mc) > _JUMP_MC

    async def _confirm_power_on_values(self):
        # 85.0 degC is also a legal temperature, so a suspect reading gets a second
        # conversion. Clones may lack the 0x0C power-up signature, so the second
        # conversion is the check that always applies: a probe that reset or
        # never converted shows the signature or reads differently the second time.
        suspects = [i for i in range(len(self.roms)) if self._is_suspect(i)]
        if not suspects:
            return
        sent = await self._convert()
        for i in suspects:
            self._read(i, sent)

    def _record(self, i, now_ms):
        # Bookkeeping of one probe after the bus reads. Allocates nothing, so the
        # test can run it under micropython.heap_lock().
        status = self._status[i]
        if status == OK:
            value_mc = raw_to_mc(self._raw[i])
            self.value_mc[i] = value_mc
            self._last_mc[i] = value_mc
            self.sample_ms[i] = now_ms
            self.fails[i] = 0
        else:
            self.value_mc[i] = None
            self.fails[i] += 1
            if self.fails[i] == self.fault_count:
                self._changed[i] = True

        state = STATUS_NAMES[status]
        if self.state[i] != state:
            self.state[i] = state
            self._changed[i] = True

    def _report_changes(self):
        # Log state changes after the bookkeeping, so that only a change allocates.
        changed = False
        for i in range(len(self.roms)):
            if not self._changed[i]:
                continue
            self._changed[i] = False
            changed = True
            state = self.state[i]
            if state == "ok":
                _log.info("probe %s (%s) ok: %d mC", self.names[i], rom_hex(self.roms[i]), self.value_mc[i])
            elif self.fails[i] >= self.fault_count:
                _log.warning(
                    "probe %s (%s) lost: %s for %d cycles",
                    self.names[i],
                    rom_hex(self.roms[i]),
                    state,
                    self.fails[i],
                )
            else:
                _log.warning("probe %s (%s) failed: %s", self.names[i], rom_hex(self.roms[i]), state)
        if changed:
            self._update_missing()

    def _update_missing(self):
        # A separate method because a comprehension that uses self turns self into
        # a closure cell, which allocates on every call of the enclosing method.
        self.missing = [self.names[i] for i in range(len(self.roms)) if self.state[i] == "absent"]
