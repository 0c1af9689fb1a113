# GNSS reader task: NMEA lines from the receiver's UART, the latest fix and its age
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
#   gnss = GNSS(board.gnss_uart(9600), on_fix=clock.offer_fix)
#   asyncio.create_task(gnss.run())
#   ...
#   gnss.fix, gnss.has_fix()   # the last valid fix, and whether it is current
#
# Bytes are read in chunks through asyncio.StreamReader and split into lines in
# preallocated buffers. A line starts at '$' and ends at CR or LF. Noise between
# lines, a line cut short by a new '$' and the rest of a line longer than the
# buffer are dropped and counted on the parser, so the next sentence is never lost.

import asyncio
import time

from micropython import const

from firmware import log
from firmware import nmea

_log = log.get("gnss")

# The ESP32 UART FIFO is 128 bytes; one read takes at most that much.
_CHUNK_BYTES = const(128)
# Maximum line length kept (nmea.MAX_LINE). NMEA 0183 allows 82 characters, but
# lines of up to 100 occur in our captures (skytraq-dgps.log, 7-decimal minutes).
_LINE_BYTES = const(256)
_RETRY_MS = const(1000)  # wait after a failed read
_IDLE_MS = const(20)  # wait after a read that returned nothing
# Default for "the fix is current": a 1 Hz receiver misses four epochs.
FIX_MAX_AGE_MS = const(5000)

# Line splitter states.
_IDLE = const(0)  # between lines: anything but CR, LF or space is noise
_LINE = const(1)  # collecting a line that began with '$'
_SKIP = const(2)  # dropping the rest of an overlong line until '$', CR or LF

_CR = const(0x0D)
_LF = const(0x0A)
_SPACE = const(0x20)
_DOLLAR = const(0x24)

# Read and callback failures logged: the first, then every _LOG_EVERY-th.
_LOG_EVERY = const(100)
# Fix ages stop growing here, because time.ticks_diff() wraps after 2^29 ms
# (about 6.2 days). One day keeps a margin for callers that ask once a day.
MAX_AGE_MS = const(86400000)


class GNSS:
    """Reader of one NMEA receiver: keeps a Parser, a copy of the last valid fix and timestamps."""

    def __init__(self, stream, on_fix=None):
        # stream: machine.UART(timeout=0) or any stream asyncio can poll.
        # on_fix(parser) is called after every position sentence with a valid fix.
        self.stream = stream
        self.on_fix = on_fix
        self.parser = nmea.Parser()
        # Parser state copied at the last position sentence with a valid fix.
        self.fix = nmea.Fix()
        self.last_data_ms = None  # time.ticks_ms() of the last byte received
        self.last_fix_ms = None  # time.ticks_ms() of the last valid position
        self.read_errors = 0
        self.callback_errors = 0
        self._chunk = bytearray(_CHUNK_BYTES)
        self._line = bytearray(_LINE_BYTES)
        self._length = 0
        self._state = _IDLE
        self._noise = False  # noise seen since the last line ended

    async def run(self):
        """Read the stream until the task is cancelled; a failed read is logged and retried after _RETRY_MS."""
        reader = asyncio.StreamReader(self.stream)
        chunk = self._chunk
        while True:
            try:
                n = await reader.readinto(chunk)
                if not n:
                    # A stream polled as readable that returns no data must not
                    # make this loop spin.
                    await asyncio.sleep_ms(_IDLE_MS)
                    continue
                self.last_data_ms = time.ticks_ms()
                self.feed(chunk, n)
            except Exception as e:  # OSError from the UART; CancelledError passes
                self.read_errors += 1
                if self.read_errors % _LOG_EVERY == 1:
                    _log.warning("read failed (%d so far), retry in %d ms: %r", self.read_errors, _RETRY_MS, e)
                await asyncio.sleep_ms(_RETRY_MS)

    def feed(self, data, n):
        """Split data[0:n] into lines and parse each complete one."""
        line = self._line
        parser = self.parser
        state = self._state
        length = self._length
        for i in range(n):
            c = data[i]
            if c == _DOLLAR:
                # A '$' always starts a sentence. What was collected before it
                # had no line end, so it is garbage, like noise between lines.
                if state == _LINE or self._noise:
                    parser.garbage += 1
                self._noise = False
                line[0] = c
                length = 1
                state = _LINE
            elif c == _CR or c == _LF:
                if state == _LINE:
                    self._line_done(length)
                elif self._noise:
                    parser.garbage += 1
                    self._noise = False
                state = _IDLE
            elif state == _LINE:
                if length < _LINE_BYTES:
                    line[length] = c
                    length += 1
                else:
                    parser.overlong += 1
                    state = _SKIP
            elif state == _IDLE and c != _SPACE:
                self._noise = True
        self._state = state
        self._length = length

    def _line_done(self, length):
        parser = self.parser
        code = parser.parse(self._line, length)
        if code == nmea.REJECTED or code == nmea.VTG or code == nmea.OTHER or not parser.valid:
            return
        # RMC, GGA, GNS or GLL with a valid fix.
        self.last_fix_ms = time.ticks_ms()
        self.fix.copy_from(parser)
        if self.on_fix is None:
            return
        try:
            self.on_fix(parser)
        except Exception as e:
            # The caller's bug must not stop the reader; log it without flooding.
            self.callback_errors += 1
            if self.callback_errors % _LOG_EVERY == 1:
                _log.exc(e, "on_fix callback failed (%d so far)", self.callback_errors)

    def fix_age_ms(self):
        """Return the ms since the last valid position (at most MAX_AGE_MS), or None before the first one."""
        if self.last_fix_ms is None:
            return None
        now = time.ticks_ms()
        age = time.ticks_diff(now, self.last_fix_ms)
        if age > MAX_AGE_MS:
            # Move the stamp along so that the age stays at the cap instead of
            # wrapping. That works while this is called at least every 5 days.
            self.last_fix_ms = time.ticks_add(now, -MAX_AGE_MS)
            age = MAX_AGE_MS
        return age

    def has_fix(self, max_age_ms=FIX_MAX_AGE_MS):
        """Return True when the receiver reports a fix and the last one is at most max_age_ms old."""
        age = self.fix_age_ms()
        return age is not None and age <= max_age_ms and self.parser.valid

    def counters(self):
        """Return the parser's line counters plus read and callback failures (allocates)."""
        counts = self.parser.counters()
        counts["read_errors"] = self.read_errors
        counts["callback_errors"] = self.callback_errors
        return counts
