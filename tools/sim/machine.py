# Simulated ESP32 machine module: Pin, Signal, UART, WDT, RTC and resets, backed by the world
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Names, constants, return values and exceptions follow the stock ESP32 port of
# MicroPython. Every object belongs to the world that was current when it was
# created (world.current()).
#
# What the pins do:
# - board.DOOR_PIN, SOS_PIN, IGNITION_PIN, SEAT_PIN and SAFE_MODE_PIN read the
#   scenario level, turned into the electrical level by board.ACTIVE_LOW (the
#   BOOT button on SAFE_MODE_PIN is active low too), with contact bounce.
#   Their IRQ handlers are called by the world task at each edge (see world.py).
# - Output pins keep their level history (world.pin_history()).
# - Any other input reads its pull: 1 with PULL_UP, else 0.
#
# The GNSS UART (board.GNSS_UART_ID) receives the scenario's NMEA capture, or
# the sentences synthesised along its route, at the scenario's baud rate. The
# bytes go into a receive buffer of rxbuf bytes plus the 128-byte hardware
# FIFO; bytes that arrive while it is full are lost and counted in
# world.uart_overflow_bytes, as on the ESP32 where the driver drops them
# without an error. If the UART's baud rate differs from the
# receiver's, the bytes arrive as non-ASCII garbage. Other UARTs never receive
# anything. Nothing written to a UART goes anywhere.
#
# Resets end the interpreter with a status the host tool turns into a restart:
# 3 watchdog, 125 machine.reset(), 126 machine.soft_reset().
#
# Heap: on the ESP32, Pin objects and their IRQ objects, WDT and RTC are static
# C objects, and a UART's buffers are in the IDF heap. The objects here are
# Python objects in the firmware's heap instead, so what their constructors and
# Pin.irq() allocate is added to world.board_heap_bytes, which the world
# reports as the simulator's (tests/e2e/scenario_expect.py subtracts it).

import gc
import io
import time

from micropython import const

import world
from drivers import board

PWRON_RESET = const(1)
HARD_RESET = const(2)
WDT_RESET = const(3)
DEEPSLEEP_RESET = const(4)
SOFT_RESET = const(5)

_FIFO_BYTES = const(128)
_POLL = const(3)
_POLL_RD = const(1)
_POLL_WR = const(4)
_EINVAL = const(22)
_CPU_FREQS_HZ = (80_000_000, 160_000_000, 240_000_000)

# GPIOs of an ESP32-WROOM-32; 34-39 are input only.
_VALID_GPIOS = tuple(range(0, 20)) + (21, 22, 23, 25, 26, 27) + tuple(range(32, 40))
_FIRST_INPUT_ONLY = const(34)

_freq_hz = 160_000_000


def _board_heap(method):
    # Count the bytes method allocates as board heap. A collection inside it
    # makes the count smaller, never larger, so the firmware is not flattered.
    def counted(*args, **kwargs):
        before = gc.mem_alloc()
        try:
            return method(*args, **kwargs)
        finally:
            used = gc.mem_alloc() - before
            if used > 0:
                world.current().board_heap(used)

    return counted


class Pin:
    """A GPIO (see the module header for what each pin is connected to)."""

    IN = const(1)
    OUT = const(3)
    OPEN_DRAIN = const(7)
    PULL_DOWN = const(1)
    PULL_UP = const(2)
    PULL_HOLD = const(4)
    IRQ_RISING = const(1)
    IRQ_FALLING = const(2)
    WAKE_LOW = const(4)
    WAKE_HIGH = const(5)
    DRIVE_0 = const(0)
    DRIVE_1 = const(1)
    DRIVE_2 = const(2)
    DRIVE_3 = const(3)

    @_board_heap
    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if id not in _VALID_GPIOS:
            raise ValueError("invalid pin")
        # The GPIO number; the stock Pin has no such attribute.
        self.sim_gpio = id
        self._world = world.current()
        self._mode = Pin.IN
        self._pull = None
        self._irq_flags = 0
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if mode != -1:
            if mode in (Pin.OUT, Pin.OPEN_DRAIN) and self.sim_gpio >= _FIRST_INPUT_ONLY:
                raise ValueError("pin can only be input")
            self._mode = mode
        if pull != -1:
            self._pull = pull
        if value is not None:
            self._world.set_output(self.sim_gpio, 1 if value else 0)

    def value(self, v=None):
        if v is not None:
            self._world.set_output(self.sim_gpio, 1 if v else 0)
            return None
        gpio = self.sim_gpio
        if self._mode == Pin.OUT:
            return self._world.outputs.get(gpio, 0)
        level = self._world.pin_level(gpio)
        if level is not None:
            return level
        if self._mode == Pin.OPEN_DRAIN:
            return self._world.outputs.get(gpio, 1)
        return 1 if self._pull == Pin.PULL_UP else 0

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    @_board_heap
    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, *, wake=None, hard=False):
        """Set handler(pin) for the trigger edges; handler None disables the IRQ. Returns the IRQ object."""
        self._world.set_irq(self.sim_gpio, self, handler, trigger)
        return _PinIRQ(self, trigger if handler is not None else 0)

    def __repr__(self):
        return "Pin(%d)" % self.sim_gpio


class _PinIRQ:
    def __init__(self, pin, trigger):
        self._pin = pin
        self._trigger = trigger

    def trigger(self):
        return self._trigger

    def flags(self):
        """Return the edge (IRQ_RISING or IRQ_FALLING) of the last IRQ."""
        return self._pin._irq_flags


class Signal:
    """A pin with optional inversion: on() means active."""

    def __init__(self, pin, invert=False):
        self._pin = pin
        self._invert = invert

    def value(self, v=None):
        flip = 1 if self._invert else 0
        if v is None:
            return self._pin.value() ^ flip
        level = 1 if v else 0
        self._pin.value(level ^ flip)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class _RxBuffer:
    """Receive ring of a UART: driver buffer plus hardware FIFO; overflow is counted, not raised."""

    def __init__(self, size, w):
        self.buf = bytearray(size)
        self.head = 0
        self.count = 0
        self.garble = False
        self._world = w

    def put(self, data, start, end):
        buf = self.buf
        size = len(buf)
        free = size - self.count
        if end - start > free:
            self._world.uart_overflow_bytes += end - start - free
            end = start + free
        i = self.head + self.count
        if i >= size:
            i -= size
        garble = self.garble
        for k in range(start, end):
            b = data[k]
            if garble:
                # A receiver at another baud rate makes framing noise: no '$', no line end.
                b = (b * 7) & 0x7F | 0x80
            buf[i] = b
            i += 1
            if i == size:
                i = 0
        self.count += end - start

    def take(self, out, n):
        # Move n bytes into out[0:n] without allocating.
        buf = self.buf
        size = len(buf)
        i = self.head
        for k in range(n):
            out[k] = buf[i]
            i += 1
            if i == size:
                i = 0
        self.head = i
        self.count -= n

    def find_lf(self):
        # Return the length up to and including the first b"\n", or 0.
        buf = self.buf
        size = len(buf)
        i = self.head
        for k in range(self.count):
            if buf[i] == 0x0A:
                return k + 1
            i += 1
            if i == size:
                i = 0
        return 0


class UART(io.IOBase):
    """A UART; board.GNSS_UART_ID receives the scenario's GNSS receiver output (see the module header)."""

    @_board_heap
    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, **kwargs):
        self._world = world.current()
        self._id = id
        self._rx = None
        self._replay = None
        self.init(baudrate, bits, parity, stop, **kwargs)

    def init(
        self,
        baudrate=9600,
        bits=8,
        parity=None,
        stop=1,
        *,
        tx=None,
        rx=None,
        rts=None,
        cts=None,
        txbuf=256,
        rxbuf=256,
        timeout=0,
        timeout_char=0,
        invert=0,
        flow=0
    ):
        w = self._world
        self.baudrate = baudrate
        self._timeout_ms = timeout
        self._rx = _RxBuffer(rxbuf + _FIFO_BYTES, w)
        self.written = 0
        self._replay = None
        if self._id == board.GNSS_UART_ID:
            # The receiver has been sending since power-up (or since nmea.from_s),
            # but bytes count only from here: before the UART exists, nothing
            # receives them.
            self._replay = w.gnss_feed(w.now_ms())
        if self._replay is not None:
            self._rx.garble = baudrate != w.nmea_baud
            if self._rx.garble:
                w.log("GNSS UART opened at %d baud, the receiver sends at %d" % (baudrate, w.nmea_baud))

    def deinit(self):
        self._replay = None

    def _pump(self):
        if self._replay is not None:
            self._replay.pump(self._world.now_ms(), self._rx)

    def _wait(self):
        # With timeout > 0 a read waits up to timeout ms for the first byte.
        if self._timeout_ms <= 0 or self._replay is None:
            return
        end = time.ticks_add(time.ticks_ms(), self._timeout_ms)
        while not self._rx.count and time.ticks_diff(end, time.ticks_ms()) > 0:
            time.sleep_ms(1)
            self._pump()

    def any(self):
        self._pump()
        return self._rx.count

    def readinto(self, buf, nbytes=None):
        """Read up to len(buf) (or nbytes) waiting bytes into buf; None when nothing is waiting."""
        self._pump()
        self._wait()
        n = len(buf) if nbytes is None else min(nbytes, len(buf))
        if n > self._rx.count:
            n = self._rx.count
        if not n:
            return None
        self._rx.take(buf, n)
        return n

    def read(self, nbytes=None):
        self._pump()
        self._wait()
        n = self._rx.count if nbytes is None else min(nbytes, self._rx.count)
        if not n:
            return None
        out = bytearray(n)
        self._rx.take(out, n)
        return bytes(out)

    def readline(self):
        """Return the waiting bytes up to and including b"\\n", a partial line without one, or None."""
        self._pump()
        self._wait()
        n = self._rx.find_lf() or self._rx.count
        if not n:
            return None
        out = bytearray(n)
        self._rx.take(out, n)
        return bytes(out)

    def write(self, buf):
        self.written += len(buf)
        return len(buf)

    def flush(self):
        pass

    def txdone(self):
        return True

    def sendbreak(self):
        pass

    def ioctl(self, req, arg):
        # Only polling is supported. The unix port's poller first requests a
        # file descriptor (request 10), and -EINVAL means there is none, while 0
        # would make it poll stdin.
        if req != _POLL:
            return -_EINVAL
        self._pump()
        ready = arg & _POLL_WR
        if arg & _POLL_RD and self._rx.count:
            ready |= _POLL_RD
        return ready


class WDT:
    """The task watchdog: when feed() is not called within timeout ms, the board resets (status 3)."""

    @_board_heap
    def __init__(self, id=0, timeout=5000):
        self._world = world.current()
        self._world.watchdog_start(timeout)

    def feed(self):
        self._world.watchdog_feed()


def _days_from_civil(year, month, day):
    # Days since 2000-01-01 of a Gregorian date.
    if month <= 2:
        year -= 1
        month += 12
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month - 3) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 730425


def _civil_from_days(days):
    # (year, month, day) of a day count since 2000-01-01.
    z = days + 730425
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


class RTC:
    """The real-time clock: datetime() runs on from the last value set, 2000-01-01 at power-up."""

    @_board_heap
    def __init__(self, id=0):
        self._world = world.current()

    def datetime(self, datetimetuple=None):
        """Return or set (year, month, day, weekday, hours, minutes, seconds, microseconds); Monday is 0."""
        w = self._world
        if datetimetuple is not None:
            year, month, day, _, hours, minutes, seconds, micros = datetimetuple
            secs = _days_from_civil(year, month, day) * 86400 + hours * 3600 + minutes * 60 + seconds
            w.rtc_ms2000 = secs * 1000 + micros // 1000
            w.rtc_set_ms = w.now_ms()
            return None
        ms = w.rtc_ms2000 + w.now_ms() - w.rtc_set_ms
        secs = ms // 1000
        days = secs // 86400
        secs -= days * 86400
        year, month, day = _civil_from_days(days)
        # 2000-01-01 was a Saturday, weekday 5.
        weekday = (days + 5) % 7
        return (year, month, day, weekday, secs // 3600, secs // 60 % 60, secs % 60, ms % 1000 * 1000)

    def init(self, datetimetuple):
        self.datetime(datetimetuple)

    def memory(self, data=None):
        """Return or set the RTC memory (at most 2048 bytes); in the simulator it lasts one run only."""
        if data is None:
            return self._world.rtc_memory
        if len(data) > 2048:
            raise ValueError("buffer too long")
        self._world.rtc_memory = bytes(data)
        return None


def reset():
    world.current().exit(125, "machine.reset()")


def soft_reset():
    world.current().exit(126, "machine.soft_reset()")


def reset_cause():
    return world.current().reset_cause


def unique_id():
    return world.current().unique_id


def freq(hz=None):
    global _freq_hz
    if hz is None:
        return _freq_hz
    if hz not in _CPU_FREQS_HZ:
        raise ValueError("frequency must be 80MHz, 160MHz or 240MHz")
    _freq_hz = hz
    return None


def idle():
    # The ESP32 waits for the next interrupt, at most one 10 ms FreeRTOS tick.
    time.sleep_ms(1)


def lightsleep(time_ms=None):
    time.sleep_ms(time_ms or 0)


def disable_irq():
    return 0


def enable_irq(state):
    pass
