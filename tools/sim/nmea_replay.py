# NMEA capture replay for the simulated GNSS UART: epochs, the capture's own pace, date rewriting
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# A capture is a text file of NMEA sentences as a receiver sent them, such as
# the GPSD regression logs under tests/data/nmea/. Capture indexes the file
# once and reads one epoch at a time from it, so a large capture does not sit
# in the interpreter's heap next to the firmware. Replay turns the epochs into
# bytes on a simulated serial line.
#
# Rules (docs/scenario.md repeats them for scenario authors):
# - Lines that start with '#' and blank lines are skipped. LF and CRLF line
#   ends are both accepted; every line is sent with CRLF, as receivers do. A
#   last line without any line end is sent without one.
# - An epoch starts at a sentence whose time field (hhmmss or hhmmss.sss)
#   differs from the current epoch's time. Sentences without a time (GSA,
#   GSV, VTG, TXT, proprietary $P...) belong to the current epoch, and so do
#   lines before the first time.
# - Each epoch is released the capture's own time step after the previous
#   one (the difference of the two times, across midnight too). A step longer
#   than 5 s, or a time going backwards, is shortened to 1 s, so receiver
#   restarts and cut-together captures do not stall the replay.
# - When looping, the first epoch follows the last one after the last
#   epoch's own step (1 s for a capture of one epoch).
# - With a date, the date fields of RMC (ddmmyy) and ZDA (dd,mm,yyyy) are
#   replaced and the checksum is recomputed. A sentence whose checksum was
#   wrong stays wrong by the same XOR difference, and empty date fields stay
#   empty. Times of day and positions are never changed.
# - On the line, a byte takes 10 bit times (8N1), so baud/10 bytes arrive per
#   second. An epoch that needs longer than the step to the next one delays
#   that one, as a receiver with too little baud rate for its output would.
# - With from_ms (the scenario's nmea.from_s), the line stays silent before
#   that time, and the first epoch is released then, or when the UART opens
#   if that is later. So GNSS time can reach the firmware long after boot.

from array import array

from micropython import const

_MAX_STEP_MS = const(5000)
_LONG_STEP_MS = const(1000)
_DAY_MS = const(86_400_000)

# Sentence formatter (characters 3-5 of the address) -> index of its UTC time field.
_TIME_FIELD = {
    b"GGA": 1,
    b"RMC": 1,
    b"GLL": 5,
    b"ZDA": 1,
    b"GNS": 1,
    b"GST": 1,
    b"GBS": 1,
    b"GRS": 1,
}
_RMC_DATE_FIELD = const(9)
_ZDA_DAY_FIELD = const(2)

_HASH = const(0x23)
_CR = const(0x0D)
_LF = const(0x0A)
_DOLLAR = const(0x24)
_STAR = const(0x2A)
_COMMA = const(0x2C)
_P = const(0x50)
_HEX = b"0123456789ABCDEF"
_RMC_WIDTHS = (6,)
_ZDA_WIDTHS = (2, 2, 4)
# Results of _date_in_place().
_DATE_NONE = const(0)  # no date to set: the line stays as it is
_DATE_SET = const(1)  # set in place
_DATE_RESIZE = const(2)  # date fields of other widths, or an odd checksum: _rewrite_date_fields()


def checksum(body):
    """Return the NMEA checksum of body: the XOR of its bytes (the text between '$' and '*')."""
    x = 0
    for b in body:
        x ^= b
    return x


def _sentence_bounds(line):
    # Return (index of '$', index of '*' or len(line)); '$' is -1 when missing.
    i = 0
    n = len(line)
    while i < n and line[i] == 0x20:
        i += 1
    if i == n or line[i] != _DOLLAR:
        return -1, n
    star = line.find(b"*", i)
    return i, (n if star < 0 else star)


def _formatter(address):
    # Return b"RMC" for b"GPRMC"; None for proprietary ($P...) and odd addresses.
    if len(address) != 5 or address[0] == _P:
        return None
    return address[2:5]


def _hhmmss_ms(field):
    # Return the time of day in ms of b"hhmmss" or b"hhmmss.sss", or None.
    if len(field) < 6:
        return None
    for i in range(6):
        if not 0x30 <= field[i] <= 0x39:
            return None
    hours = int(field[0:2])
    minutes = int(field[2:4])
    seconds = int(field[4:6])
    # 60 seconds is a leap second.
    if hours > 23 or minutes > 59 or seconds > 60:
        return None
    ms = ((hours * 60 + minutes) * 60 + seconds) * 1000
    if len(field) > 7 and field[6] == 0x2E:
        scale = 100
        for i in range(7, min(len(field), 10)):
            digit = field[i] - 0x30
            if not 0 <= digit <= 9:
                return None
            ms += digit * scale
            scale //= 10
    return ms


def sentence_time_ms(line):
    """Return the UTC time of day in ms that a sentence carries, or None if it carries none."""
    start, end = _sentence_bounds(line)
    if start < 0:
        return None
    fields = line[start + 1 : end].split(b",")
    index = _TIME_FIELD.get(_formatter(fields[0]))
    if index is None or index >= len(fields):
        return None
    return _hhmmss_ms(fields[index])


def rewrite_date(line, date):
    """Return line with its RMC or ZDA date set to date (year, month, day), or line unchanged.

    Only sentences with a two-digit checksum are changed; see the module header.
    """
    buf = bytearray(line)
    done = _date_in_place(buf, 0, len(buf), date)
    if done == _DATE_NONE:
        return line
    if done == _DATE_SET:
        return bytes(buf)
    return _rewrite_date_fields(line, date)


def _date_in_place(buf, a, b, date):
    # Set the date of the sentence in buf[a:b] without allocating, when its
    # date fields have the usual widths (RMC ddmmyy, ZDA dd,mm,yyyy). The
    # replay calls this for every RMC and ZDA line on the simulated UART, whose
    # bytes share the firmware's heap.
    i = a
    while i < b and buf[i] == 0x20:
        i += 1
    if i == b or buf[i] != _DOLLAR:
        return _DATE_NONE
    star = buf.find(b"*", i, b)
    if star < 0 or star + 3 > b:
        return _DATE_NONE
    # The address: five characters, not proprietary, formatter RMC or ZDA.
    if i + 6 >= star or buf[i + 6] != _COMMA or buf[i + 1] == _P:
        return _DATE_NONE

    f1, f2, f3 = buf[i + 3], buf[i + 4], buf[i + 5]
    if f1 == 0x52 and f2 == 0x4D and f3 == 0x43:  # RMC
        first, widths = _RMC_DATE_FIELD, _RMC_WIDTHS
    elif f1 == 0x5A and f2 == 0x44 and f3 == 0x41:  # ZDA
        first, widths = _ZDA_DAY_FIELD, _ZDA_WIDTHS
    else:
        return _DATE_NONE
    high = _hex_digit(buf[star + 1])
    low = _hex_digit(buf[star + 2])

    # The start of field `first` and the end of the last date field.
    field = 0
    k = i + 1
    while field < first:
        k = buf.find(b",", k, star)
        if k < 0:
            return _DATE_NONE
        k += 1
        field += 1
    starts = k
    n = len(widths)
    end = k
    for w in range(n):
        end = buf.find(b",", k, star)
        if end < 0:
            end = star
            if w < n - 1:
                return _DATE_NONE  # fewer fields than the date needs
        if end - k != widths[w]:
            # An empty last field means no date, and other widths need a new line.
            return _DATE_NONE if w == n - 1 and end == k else _DATE_RESIZE
        k = end + 1
    if high < 0 or low < 0:
        return _DATE_RESIZE

    year, month, day = date
    delta = 0
    k = starts
    for w in range(n):
        if first == _RMC_DATE_FIELD:
            delta ^= _put_digits(buf, k, day, 2) ^ _put_digits(buf, k + 2, month, 2) ^ _put_digits(buf, k + 4, year % 100, 2)
        elif w == 0:
            delta ^= _put_digits(buf, k, day, 2)
        elif w == 1:
            delta ^= _put_digits(buf, k, month, 2)
        else:
            delta ^= _put_digits(buf, k, year, 4)
        k += widths[w] + 1

    # A wrong checksum stays wrong by the same difference.
    value = (high << 4 | low) ^ delta
    buf[star + 1] = _HEX[value >> 4]
    buf[star + 2] = _HEX[value & 15]
    return _DATE_SET


def _put_digits(buf, at, value, width):
    # Write value as width decimal digits at buf[at], and return the XOR of the old and the new bytes.
    delta = 0
    for k in range(at + width - 1, at - 1, -1):
        new = 0x30 + value % 10
        delta ^= buf[k] ^ new
        buf[k] = new
        value //= 10
    return delta


def _hex_digit(c):
    if 0x30 <= c <= 0x39:
        return c - 0x30
    c |= 0x20
    if 0x61 <= c <= 0x66:
        return c - 0x61 + 10
    return -1


def _rewrite_date_fields(line, date):
    # The general case of rewrite_date(): fields of any width, a new line.
    start, end = _sentence_bounds(line)
    try:
        received = int(line[end + 1 : end + 3], 16)
    except ValueError:
        return line
    body = line[start + 1 : end]
    fields = body.split(b",")
    kind = _formatter(fields[0])
    year, month, day = date
    if kind == b"RMC" and len(fields) > _RMC_DATE_FIELD and fields[_RMC_DATE_FIELD]:
        fields[_RMC_DATE_FIELD] = b"%02d%02d%02d" % (day, month, year % 100)
    elif kind == b"ZDA" and len(fields) > _ZDA_DAY_FIELD + 2 and fields[_ZDA_DAY_FIELD + 2]:
        fields[_ZDA_DAY_FIELD] = b"%02d" % day
        fields[_ZDA_DAY_FIELD + 1] = b"%02d" % month
        fields[_ZDA_DAY_FIELD + 2] = b"%04d" % year
    else:
        return line
    new_body = b",".join(fields)
    # Keep a wrong checksum wrong: carry over its difference from the right one.
    error = checksum(body) ^ received
    return b"%s%s*%02X%s" % (line[: start + 1], new_body, checksum(new_body) ^ error, line[end + 3 :])


def _blank(buf, start, end):
    # True when buf[start:end] is only spaces and tabs, tested without a copy.
    for k in range(start, end):
        if buf[k] not in (0x20, 0x09):
            return False
    return True


class Capture:
    """An NMEA capture file split into epochs; epoch_bytes(i) reads one epoch from the file."""

    def __init__(self, path, date=None):
        # date: (year, month, day) to write into RMC and ZDA sentences, or None.
        self.path = path
        self.date = date
        self._file = open(path, "rb")
        # File offset of each epoch's first line and the ms before it is released.
        self._starts = array("i")
        self._steps = array("i")
        self._size = 0
        longest = self._index()
        if not self._starts:
            self._file.close()
            raise ValueError("no NMEA sentences in %s" % path)
        # Read and output buffers for read_epoch(), made once. A line without
        # CR gains 2 bytes, and a date field narrower than usual a few more.
        self._raw = bytearray(longest)
        self.out = bytearray(longest * 2)

    def _index(self):
        f = self._file
        offset = 0
        epoch_ms = None
        while True:
            line = f.readline()
            if not line:
                break
            line_offset = offset
            offset += len(line)
            if line[0] == _HASH or not line.strip():
                continue
            if not self._starts:
                self._starts.append(0)
                self._steps.append(0)
            t = sentence_time_ms(line)
            if t is None or t == epoch_ms:
                continue
            if epoch_ms is None:
                # The first time seen belongs to the epoch already open.
                epoch_ms = t
                continue
            step = (t - epoch_ms) % _DAY_MS
            if step > _MAX_STEP_MS:
                step = _LONG_STEP_MS
            self._starts.append(line_offset)
            self._steps.append(step)
            epoch_ms = t
        self._size = offset
        longest = 0
        starts = self._starts
        for i in range(len(starts)):
            end = starts[i + 1] if i + 1 < len(starts) else offset
            longest = max(longest, end - starts[i])
        return longest

    @property
    def epoch_count(self):
        return len(self._starts)

    def step_ms(self, i):
        """Return the ms between the release of epoch i-1 and epoch i (0 for the first epoch)."""
        return self._steps[i]

    def loop_step_ms(self):
        """Return the ms between the last epoch and the first one when the replay starts over."""
        n = len(self._steps)
        return self._steps[n - 1] if n > 1 else _LONG_STEP_MS

    def epoch_bytes(self, i):
        """Return epoch i as the receiver sends it: CRLF line ends, comments dropped, dates rewritten."""
        return bytes(self.out[: self.read_epoch(i)])

    def read_epoch(self, i):
        """Put epoch i, like epoch_bytes(), at the start of self.out, and return its length.

        Replay uses this, so the bytes on the line need no new buffer per epoch:
        on a board they are in the UART driver's buffer, outside the Python heap.
        It allocates nothing, but for a date field of an unusual width.
        """
        start = self._starts[i]
        end = self._starts[i + 1] if i + 1 < len(self._starts) else self._size
        raw = self._raw
        self._file.seek(start)
        n = self._file.readinto(raw, end - start)
        out = self.out
        pos = 0
        k = 0
        while k < n:
            j = raw.find(b"\n", k, n)
            last = j < 0
            if last:
                j = n
            e = j
            if e > k and raw[e - 1] == _CR:
                e -= 1
            if e > k and raw[k] != _HASH and not _blank(raw, k, e):
                first = pos
                for c in range(k, e):
                    out[pos] = raw[c]
                    pos += 1
                if self.date is not None and _date_in_place(out, first, pos, self.date) == _DATE_RESIZE:
                    line = _rewrite_date_fields(bytes(raw[k:e]), self.date)
                    pos = first + len(line)
                    out[first:pos] = line
                # The piece after the last LF had no line end in the file.
                if not last:
                    out[pos] = _CR
                    out[pos + 1] = _LF
                    pos += 2
            k = j + 1
        return pos

    def close(self):
        self._file.close()


class Replay:
    """The bytes of a capture on a serial line: epoch by epoch at the capture's pace, baud/10 bytes/s.

    pump(now_ms, sink) hands sink.put(data, start, end) every byte that has
    arrived by now_ms. Time is in ms on any clock; the first epoch is released
    at start_ms (when the UART opens) or at from_ms, whichever is later.
    """

    def __init__(self, capture, baud, loop=True, start_ms=0, from_ms=0):
        self.capture = capture
        self.baud = baud
        self.loop = loop
        self.done = False
        self.epochs_sent = 0
        self._epoch = 0
        # When the current epoch is due by the capture's pace, and when its
        # first byte goes on the line (later if the line is still busy).
        first_ms = max(start_ms, from_ms)
        self._release_ms = first_ms
        self._wire_ms = first_ms
        self._n = -1  # length of the current epoch in capture.out, -1 before it is read
        self._sent = 0

    def pump(self, now_ms, sink):
        """Pass the bytes that arrived up to now_ms to sink; allocates nothing (Capture.read_epoch)."""
        # A board's UART does not use the Python heap, but this code runs in the
        # firmware's heap, where an allocation could fail.
        data = self.capture.out
        while not self.done:
            if now_ms < self._wire_ms:
                return
            n = self._n
            if n < 0:
                n = self._n = self.capture.read_epoch(self._epoch)
                self._sent = 0
            due = (now_ms - self._wire_ms) * self.baud // 10_000
            if due > n:
                due = n
            if due > self._sent:
                sink.put(data, self._sent, due)
                self._sent = due
            if due < n:
                return
            self._next_epoch(n)

    def _next_epoch(self, n):
        # The line is busy until the last stop bit of this epoch has gone out.
        line_free_ms = self._wire_ms + (n * 10_000 + self.baud - 1) // self.baud
        self._n = -1
        self.epochs_sent += 1
        self._epoch += 1
        if self._epoch == self.capture.epoch_count:
            if not self.loop:
                self.done = True
                return
            self._epoch = 0
            step = self.capture.loop_step_ms()
        else:
            step = self.capture.step_ms(self._epoch)
        self._release_ms += step
        self._wire_ms = max(self._release_ms, line_free_ms)
