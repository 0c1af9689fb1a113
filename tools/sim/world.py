# The simulated world behind tools/sim: probes, humidity sensor, inputs, GNSS receiver, watchdog, clock
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# One World object contains everything the simulated hardware modules (machine,
# onewire, ds18x20, dht) need, built from a scenario (docs/scenario.md):
#
#   import world
#   w = world.World({"probes": [{"rom": "28A1B2C304000096", "temp": [[0, 4.0]]}]})
#   world.set_current(w)      # modules created after this use w
#   w.set_temp("28A1B2C304000096", -18.5)
#
# Scenario times count from the world's creation, which plays the power-up.
# Pin levels, sensor values and UART bytes are computed when the firmware
# asks for them. Only two things need a task in the firmware's asyncio loop
# (run()): calling Pin.irq() handlers at input edges, and resetting the
# board when the watchdog is not fed. tools/sim/vterm_boot.py starts that task
# in the loop of the firmware's asyncio.run(); a unit test starts it with
# start_in_loop() from inside its own coroutine.
#
# Every clock here is a world clock in ms: time.ticks_ms() since creation,
# plus what advance() added. advance() is for unit tests that must not wait
# in real time; the firmware's own time.ticks_ms() does not move with it.

import sys
import time
from array import array

from micropython import const

import scenario as _scenario
from drivers import board

PWRON_RESET = const(1)

_DHT_POWER_UP_MS = const(1000)
# Minimum spacing of DHT reads after the previous read the part responded to.
_DHT_INTERVAL_MS = {"DHT22": 2000, "DHT11": 1000}
_HISTORY_LEN = const(200)

_INPUT_PINS = {
    "door": board.DOOR_PIN,
    "sos": board.SOS_PIN,
    "ignition": board.IGNITION_PIN,
    "seat": board.SEAT_PIN,
    "safe_mode": board.SAFE_MODE_PIN,
}
# The BOOT button pulls GPIO0 to GND, so safe mode (held) reads 0.
_ACTIVE_LOW = {"safe_mode": True}
for _name in board.ACTIVE_LOW:
    _ACTIVE_LOW[_name] = board.ACTIVE_LOW[_name]
# Words for the inactive and the active level in the verbose event lines.
_LEVEL_WORDS = {
    "door": ("closed", "open"),
    "sos": ("released", "pressed"),
    "ignition": ("off", "on"),
    "seat": ("empty", "occupied"),
    "safe_mode": ("released", "held"),
}
_OUTPUT_NAMES = {board.BUZZER_PIN: "buzzer", board.LED_PIN: "LED"}

# Pin.IRQ_RISING and Pin.IRQ_FALLING of the ESP32 port.
IRQ_RISING = const(1)
IRQ_FALLING = const(2)

_current = None


def current():
    """Return the current world; an empty one is created on first use."""
    global _current
    if _current is None:
        _current = World({})
    return _current


def set_current(w):
    """Make w the world that hardware objects created from now on belong to."""
    global _current
    _current = w


def _rom_bytes(rom):
    if isinstance(rom, str):
        return _scenario.parse_rom(rom)
    return bytes(rom)


def _check_override(kind, kinds):
    # None follows the scenario again; "none" forces a healthy device.
    if kind is not None and kind != "none" and kind not in kinds:
        raise ValueError("fault must be None, 'none' or one of %s, got %r" % ("/".join(kinds), kind))


def _fault_at(faults, t):
    for start, end, kind in faults:
        if start <= t and (end is None or t < end):
            return kind
    return None


class SimProbe:
    """A DS18B20 on the 1-Wire bus: registers, Convert T timing, and faults from the scenario."""

    # Conversion time by resolution (config register bits 6:5), from the DS18B20 datasheet.
    _CONVERT_MS = (93.75, 187.5, 375.0, 750.0)
    # TH, TL and config as shipped, recalled from EEPROM at power-up.
    _FACTORY = (0x4B, 0x46, 0x7F)

    def __init__(self, spec):
        self.rom = spec["rom"]
        self._curve = spec["temp"]
        self._faults = spec["faults"]
        self._temp_override = None
        self._fault_override = None
        self.conversions = 0
        self._eeprom = self._FACTORY
        self._th, self._tl, self._config = self._FACTORY
        # The temperature register starts at +85.0 degC (0x0550) with byte 6 = 0x0C.
        self._raw = 0x0550
        self._count_remain = 0x0C
        self._convert_end_s = None
        self._unpowered = False

    def temp_c(self, t):
        """Return the probe's true temperature in degC at world time t (seconds)."""
        if self._temp_override is not None:
            return self._temp_override
        return _scenario.curve_value(self._curve, t)

    def fault(self, t):
        """Return None, "absent", "crc", "power_on" or "zero" at world time t (seconds)."""
        if self._fault_override is not None:
            return None if self._fault_override == "none" else self._fault_override
        return _fault_at(self._faults, t)

    def present(self, t):
        # An unplugged probe loses power: when it responds again it starts over
        # from the power-on register value, as a real part does.
        if self.fault(t) == "absent":
            self._unpowered = True
            return False
        if self._unpowered:
            self._unpowered = False
            self._raw = 0x0550
            self._count_remain = 0x0C
            self._convert_end_s = None
            self.recall_eeprom()
        return True

    def _sync(self, t):
        # Finish a conversion whose time is up: the register then contains
        # the temperature at that moment, rounded to the configured resolution.
        end = self._convert_end_s
        if end is None or t < end:
            return
        self._convert_end_s = None
        bits = 9 + (self._config >> 5 & 3)
        step = 1 << (12 - bits)
        celsius = min(125.0, max(-55.0, self.temp_c(end)))
        raw = int(round(celsius * 16 / step)) * step
        self._raw = raw & 0xFFFF
        # Genuine parts report COUNT_REMAIN = 0x10 - (raw & 0x0F) after a conversion.
        self._count_remain = 0x10 - (raw & 0x0F)
        self.conversions += 1

    def start_conversion(self, t):
        self._sync(t)
        self._convert_end_s = t + self._CONVERT_MS[self._config >> 5 & 3] / 1000

    def converting(self, t):
        self._sync(t)
        return self._convert_end_s is not None

    def scratchpad(self, t, buf):
        """Fill buf (9 bytes) with what a Read Scratchpad returns at world time t."""
        self._sync(t)
        fault = self.fault(t)
        if fault == "zero":
            # A data line stuck low reads as zeros, and the CRC of zeros is 0.
            for i in range(9):
                buf[i] = 0
            return
        if fault == "power_on":
            raw, count_remain = 0x0550, 0x0C
            th, tl, config = self._eeprom
        else:
            raw, count_remain = self._raw, self._count_remain
            th, tl, config = self._th, self._tl, self._config
        buf[0] = raw & 0xFF
        buf[1] = raw >> 8
        buf[2] = th
        buf[3] = tl
        buf[4] = config
        buf[5] = 0xFF
        buf[6] = count_remain
        buf[7] = 0x10
        buf[8] = _scenario.crc8(buf, 8)
        if fault == "crc":
            # One corrupted byte: the MSB of the temperature, 16 degC off.
            buf[1] ^= 0x01

    def write_scratchpad(self, th, tl, config):
        self._th = th
        self._tl = tl
        # Only the resolution bits R1:R0 (6:5) of the config register are writable.
        self._config = config & 0x60 | 0x1F

    def copy_scratchpad(self):
        self._eeprom = (self._th, self._tl, self._config)

    def recall_eeprom(self):
        self._th, self._tl, self._config = self._eeprom


class SimDHT:
    """A DHT22 or DHT11 on board.DHT_PIN: values and faults from the scenario, read rules of the part."""

    def __init__(self, spec):
        self.model = spec["model"]
        self.encoding = spec["encoding"]
        self._temp = spec["temp"]
        self._rh = spec["rh"]
        self._faults = spec["faults"]
        self._temp_override = None
        self._rh_override = None
        self._fault_override = None
        self._last_read_ms = None
        self.reads = 0

    def temp_c(self, t):
        if self._temp_override is not None:
            return self._temp_override
        return _scenario.curve_value(self._temp, t)

    def rh(self, t):
        if self._rh_override is not None:
            return self._rh_override
        return _scenario.curve_value(self._rh, t)

    def fault(self, t):
        """Return None, "timeout" or "checksum" at world time t (seconds)."""
        if self._fault_override is not None:
            return None if self._fault_override == "none" else self._fault_override
        return _fault_at(self._faults, t)

    def responds(self, t_ms):
        """Return True if a start signal at world time t_ms gets a frame back.

        The part stays silent in the first second after power-up, sooner than
        2 s (DHT22) or 1 s (DHT11) after the previous read it responded to,
        and during a "timeout" fault.
        """
        if t_ms < _DHT_POWER_UP_MS:
            return False
        last = self._last_read_ms
        if last is not None and t_ms - last < _DHT_INTERVAL_MS[self.model]:
            return False
        return self.fault(t_ms / 1000) != "timeout"

    def frame(self, t_ms, buf):
        """Fill buf (5 bytes) with the frame sent at world time t_ms; byte 4 is wrong in a "checksum" fault."""
        t = t_ms / 1000
        self._last_read_ms = t_ms
        self.reads += 1
        temp = self.temp_c(t)
        rh = self.rh(t)
        if self.model == "DHT11":
            # Whole %RH, then whole degC and tenths; the DHT11 range is 0..50 degC.
            tenths = int(round(min(50.0, max(0.0, temp)) * 10))
            buf[0] = int(round(min(100.0, max(0.0, rh))))
            buf[1] = 0
            buf[2] = tenths // 10
            buf[3] = tenths % 10
        else:
            rh10 = int(round(min(100.0, max(0.0, rh)) * 10))
            t10 = int(round(min(80.0, max(-40.0, temp)) * 10))
            if t10 < 0 and self.encoding == "sign_magnitude":
                word = 0x8000 | -t10
            else:
                word = t10 & 0xFFFF
            buf[0] = rh10 >> 8
            buf[1] = rh10 & 0xFF
            buf[2] = word >> 8
            buf[3] = word & 0xFF
        buf[4] = (buf[0] + buf[1] + buf[2] + buf[3]) & 0xFF
        if self.fault(t) == "checksum":
            buf[4] = (buf[4] + 1) & 0xFF


class _Input:
    """One scenario input (door, SOS, ignition, seat, safe mode) as edges of its logical level over time."""

    def __init__(self, name, points, bounce_ms):
        self.name = name
        self.gpio = _INPUT_PINS[name]
        self.active_low = _ACTIVE_LOW[name]
        self.initial = 0
        # (t_ms, logical level, True for an extra edge of contact bounce), in time order.
        self.edges = []
        self._build(points, bounce_ms)
        # Index of the next edge whose IRQ has not been handled, and the
        # electrical level the IRQ dispatch last saw.
        self.irq_pos = 0
        self.irq_level = self.electrical(self.initial)

    def _build(self, points, bounce_ms):
        level = 0
        changes = []
        for t_s, new in points:
            t_ms = int(round(t_s * 1000))
            if new == level:
                continue
            level = new
            if t_ms == 0:
                self.initial = new
            else:
                changes.append((t_ms, new))
        for i in range(len(changes)):
            t_ms, new = changes[i]
            self.edges.append((t_ms, new, False))
            # A bouncing contact goes back once half-way through the bounce
            # time and settles at its end, unless the next change comes first.
            next_ms = changes[i + 1][0] if i + 1 < len(changes) else None
            if bounce_ms >= 2 and (next_ms is None or t_ms + bounce_ms < next_ms):
                self.edges.append((t_ms + bounce_ms // 2, 1 - new, True))
                self.edges.append((t_ms + bounce_ms, new, True))

    def electrical(self, level):
        return 1 - level if self.active_low else level

    def level(self, t_ms, bounce=True):
        """Return the logical level (1 active) at world time t_ms, with or without contact bounce."""
        level = self.initial
        for t, new, bouncing in self.edges:
            if t > t_ms:
                break
            if bounce or not bouncing:
                level = new
        return level

    def skip_to(self, t_ms):
        # Edges up to t_ms happened before anyone could handle their IRQ.
        while self.irq_pos < len(self.edges) and self.edges[self.irq_pos][0] <= t_ms:
            self.irq_pos += 1
        self.irq_level = self.electrical(self.level(t_ms))

    def next_edge_ms(self):
        if self.irq_pos < len(self.edges):
            return self.edges[self.irq_pos][0]
        return None


class World:
    """Simulated hardware state for one run (see the module header)."""

    def __init__(self, scenario, base_dir=".", verbose=False):
        sc = _scenario.validate(scenario)
        # Only the name is kept: "config" and "description" are for the host tool.
        self.name = sc["name"]
        self.base_dir = base_dir
        self.verbose = verbose

        self.start_ms = time.ticks_ms()
        self._last_ticks = self.start_ms
        self._elapsed_ms = 0
        self._advanced_ms = 0

        self.probes = [SimProbe(p) for p in sc["probes"]]
        self.dht = SimDHT(sc["dht"]) if sc["dht"] is not None else None
        bounce_ms = sc["inputs"]["bounce_ms"]
        self.inputs = {}
        self._input_list = []
        for name in _scenario.INPUT_NAMES:
            inp = _Input(name, sc["inputs"][name], bounce_ms)
            self.inputs[name] = inp
            self._input_list.append(inp)
        self._input_by_gpio = {}
        for inp in self._input_list:
            self._input_by_gpio[inp.gpio] = inp

        # The GNSS receiver: a capture to replay (nmea) or a route to
        # synthesise (nmea_route), at most one of them.
        self.nmea = None
        self.nmea_route = None
        self.nmea_baud = 9600
        self.nmea_loop = True
        self.nmea_from_ms = 0
        if sc["nmea"] is None:
            pass
        elif "route" in sc["nmea"]:
            self._open_route(sc["nmea"])
        else:
            self._open_capture(sc["nmea"])
        self.uart_overflow_bytes = 0

        self.reset_cause = PWRON_RESET
        self.unique_id = sc["unique_id"]
        self.exit_status = None

        # Output level, level history and IRQ registration, by GPIO number.
        self.outputs = {}
        self.history = {}
        for gpio in (board.BUZZER_PIN, board.LED_PIN):
            self._new_history(gpio)
        self.irqs = {}

        # None until a WDT is created.
        self.watchdog_timeout_ms = None
        self._wdt_fed_ms = 0
        # RTC: ms since 2000-01-01 00:00:00 at world time _rtc_set_ms. The
        # ESP32 RTC starts at 2000-01-01 on power-up.
        self.rtc_ms2000 = 0
        self.rtc_set_ms = 0
        # RTC.memory() contents; unlike on a board it does not survive a reset.
        self.rtc_memory = b""

        self.running = False
        self._task = None
        # Heap taken by simulated board objects made for the firmware (machine.py),
        # which on the ESP32 are not in the Python heap. run() prints it.
        self.board_heap_bytes = 0
        self._board_heap_reported = 0
        # Heap held back so the firmware has only its budget (vterm_main.py).
        self._ballast = []
        self._ballast_chunk = 0
        self._ballast_released = 0

    def hold_ballast(self, chunks, chunk_bytes):
        """Keep chunks (heap held back from the firmware); board_heap() frees them as board objects are made."""
        self._ballast = chunks
        self._ballast_chunk = chunk_bytes

    def board_heap(self, used):
        """Count used bytes of simulated board objects and give as much ballast back to the firmware."""
        self.board_heap_bytes += used
        while self._ballast and self._ballast_released + self._ballast_chunk <= self.board_heap_bytes:
            self._ballast.pop()
            self._ballast_released += self._ballast_chunk

    def _open_capture(self, spec):
        import nmea_replay

        path = spec["file"]
        if not path.startswith("/"):
            path = self.base_dir.rstrip("/") + "/" + path
        date = spec["date"]
        if date == "today":
            date = time.gmtime()[:3]
        try:
            self.nmea = nmea_replay.Capture(path, date)
        except (OSError, ValueError) as e:
            raise _scenario.ScenarioError([("nmea.file", "cannot use %s (%s)" % (path, e))])
        self.nmea_baud = spec["baud"]
        self.nmea_loop = spec["loop"]
        self.nmea_from_ms = int(spec["from_s"] * 1000)

    def _open_route(self, spec):
        import nmea_route

        date = spec["date"]
        if date == "today":
            date = time.gmtime()[:3]
        self.nmea_route = nmea_route.Receiver(spec, date)
        self.nmea_baud = spec["baud"]

    def gnss_feed(self, start_ms):
        """Return the byte source (with pump(now_ms, sink)) for a GNSS UART opened at start_ms, or None."""
        if self.nmea_route is not None:
            import nmea_route

            return nmea_route.RouteFeed(self.nmea_route, self.nmea_baud, start_ms)
        if self.nmea is not None:
            import nmea_replay

            return nmea_replay.Replay(self.nmea, self.nmea_baud, self.nmea_loop, start_ms, self.nmea_from_ms)
        return None

    # Clock

    def now_ms(self):
        """Return world time in ms: ticks since creation plus what advance() added."""
        t = time.ticks_ms()
        # Summing short differences keeps the clock right beyond the ticks period of 2**30 ms.
        self._elapsed_ms += time.ticks_diff(t, self._last_ticks)
        self._last_ticks = t
        return self._elapsed_ms + self._advanced_ms

    def now_s(self):
        """Return world time in seconds (a float)."""
        return self.now_ms() / 1000

    def advance(self, seconds):
        """Move the world clock forward (unit tests only; time.ticks_ms() does not move)."""
        self._advanced_ms += int(round(seconds * 1000))

    def log(self, msg):
        """Print "[sim] <time> s <msg>" when the world is verbose."""
        if self.verbose:
            print("[sim] %.3f s %s" % (self.now_ms() / 1000, msg))

    # Sensors

    def _probe(self, rom):
        rom = _rom_bytes(rom)
        for p in self.probes:
            if p.rom == rom:
                return p
        raise ValueError("no probe with ROM ID %s in the scenario" % _scenario.rom_text(rom))

    def set_probe_fault(self, rom, kind):
        """Override a probe's fault: a fault kind, "none" for healthy, or None to follow the scenario."""
        _check_override(kind, _scenario.PROBE_FAULTS)
        self._probe(rom)._fault_override = kind

    def set_temp(self, rom, celsius):
        """Override a probe's temperature in degC; None follows the scenario curve again."""
        self._probe(rom)._temp_override = celsius

    def set_dht(self, temp=None, rh=None, fault=None):
        """Override the humidity sensor's degC, %RH and fault; None follows the scenario (see set_probe_fault)."""
        _check_override(fault, _scenario.DHT_FAULTS)
        if self.dht is None:
            self.dht = SimDHT(_scenario.validate({"dht": {}})["dht"])
        self.dht._temp_override = temp
        self.dht._rh_override = rh
        self.dht._fault_override = fault

    # Inputs and outputs

    def input_level(self, name, t):
        """Return the scenario level of an input at world time t (seconds): 1 active, 0 inactive, no bounce."""
        return self.inputs[name].level(int(round(t * 1000)), False)

    def pin_level(self, gpio):
        """Return the electrical level of a scenario input pin now, bounce included, or None for other pins."""
        inp = self._input_by_gpio.get(gpio)
        if inp is None:
            return None
        return inp.electrical(inp.level(self.now_ms()))

    def set_output(self, gpio, level):
        """Record a level written to an output pin."""
        if self.outputs.get(gpio) == level:
            return
        self.outputs[gpio] = level
        hist = self.history.get(gpio)
        if hist is None:
            hist = self._new_history(gpio)
        times, levels, n = hist
        i = n % _HISTORY_LEN
        times[i] = self.now_ms() / 1000
        levels[i] = level
        hist[2] = n + 1
        if self.verbose:
            name = _OUTPUT_NAMES.get(gpio, "GPIO%d" % gpio)
            self.log("%s %s" % (name, "on" if level else "off"))

    def _new_history(self, gpio):
        # A fixed ring, made with the world for the buzzer and LED, so the
        # simulator's heap share printed at boot does not grow later: a buzzer
        # that beeps every second must not look like a firmware leak.
        hist = self.history[gpio] = [array("d", bytes(8 * _HISTORY_LEN)), bytearray(_HISTORY_LEN), 0]
        return hist

    def pin_history(self, gpio):
        """Return [(world time s, level), ...] of the last level changes of an output pin."""
        hist = self.history.get(gpio)
        if hist is None:
            return []
        times, levels, n = hist
        first = max(0, n - _HISTORY_LEN)
        return [(times[k % _HISTORY_LEN], levels[k % _HISTORY_LEN]) for k in range(first, n)]

    def set_irq(self, gpio, pin, handler, trigger):
        if handler is None:
            self.irqs.pop(gpio, None)
        else:
            self.irqs[gpio] = (pin, handler, trigger)

    def _next_due_input(self, now):
        best = None
        best_ms = 0
        for inp in self._input_list:
            t = inp.next_edge_ms()
            if t is not None and t <= now and (best is None or t < best_ms):
                best = inp
                best_ms = t
        return best

    def _fire_edges(self, now):
        # Handle every edge due by now in time order, across all inputs.
        while True:
            inp = self._next_due_input(now)
            if inp is None:
                return
            t_ms, level, bouncing = inp.edges[inp.irq_pos]
            inp.irq_pos += 1
            if not bouncing:
                self.log("%s %s" % (inp.name, _LEVEL_WORDS[inp.name][level]))
            electrical = inp.electrical(level)
            if electrical == inp.irq_level:
                continue
            inp.irq_level = electrical
            irq = self.irqs.get(inp.gpio)
            if irq is None:
                continue
            pin, handler, trigger = irq
            if trigger & (IRQ_RISING if electrical else IRQ_FALLING):
                pin._irq_flags = IRQ_RISING if electrical else IRQ_FALLING
                try:
                    handler(pin)
                except Exception as e:
                    # Like a scheduled soft IRQ: the error is printed and the program goes on.
                    print("[sim] exception in IRQ handler of Pin(%d):" % inp.gpio)
                    sys.print_exception(e)

    # Watchdog and resets

    def watchdog_start(self, timeout_ms):
        """Start the watchdog, or give it a new timeout; it cannot be stopped."""
        if timeout_ms <= 0:
            raise ValueError("WDT timeout must be above 0 ms, got %r" % (timeout_ms,))
        self.watchdog_timeout_ms = timeout_ms
        self._wdt_fed_ms = self.now_ms()

    def watchdog_feed(self):
        now = self.now_ms()
        # A feed that comes too late means the loop was blocked for longer than
        # the timeout, so the board would have reset already. Unit tests that
        # do not run the world task are spared this check.
        if self.running and self.watchdog_expired(now):
            self._watchdog_reset(now)
        self._wdt_fed_ms = now

    def watchdog_expired(self, now_ms=None):
        """Return True if the watchdog runs and was not fed within its timeout before now_ms."""
        if self.watchdog_timeout_ms is None:
            return False
        if now_ms is None:
            now_ms = self.now_ms()
        return now_ms - self._wdt_fed_ms > self.watchdog_timeout_ms

    def _watchdog_reset(self, now):
        print("WDT timeout")
        self.exit(3, "watchdog not fed for %d ms (timeout %d ms)" % (now - self._wdt_fed_ms, self.watchdog_timeout_ms))

    def exit(self, status, reason):
        """End the interpreter with status, as a reset of the board; the host tool restarts it."""
        self.exit_status = status
        self.log("%s, exit status %d" % (reason, status))
        raise SystemExit(status)

    # The world task

    async def run(self):
        """Call Pin.irq() handlers at input edges and reset on watchdog expiry, until cancelled."""
        import asyncio

        self.running = True
        try:
            now = self.now_ms()
            for inp in self._input_list:
                inp.skip_to(now)
            while True:
                if self.board_heap_bytes != self._board_heap_reported:
                    self._board_heap_reported = self.board_heap_bytes
                    # Always printed: tests subtract it from the firmware's share of the heap.
                    print("[sim] board objects heap %d bytes" % self.board_heap_bytes)
                now = self.now_ms()
                self._fire_edges(now)
                if self.watchdog_expired(now):
                    self._watchdog_reset(now)
                wake_ms = now + 1000
                for inp in self._input_list:
                    t = inp.next_edge_ms()
                    if t is not None and t < wake_ms:
                        wake_ms = t
                if self.watchdog_timeout_ms is not None:
                    t = self._wdt_fed_ms + self.watchdog_timeout_ms + 1
                    if t < wake_ms:
                        wake_ms = t
                await asyncio.sleep_ms(max(0, wake_ms - now))
        finally:
            self.running = False

    def start_in_loop(self):
        """Create the run() task in the running asyncio loop (call from a coroutine) and return it."""
        import asyncio

        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run())
        return self._task
