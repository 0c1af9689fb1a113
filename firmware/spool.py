# Crash-safe record spool on flash: CRC-framed segment files, batched writes, acknowledged delivery
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage:
#   spool = Spool("/spool")
#   spool.append(payload)              # copies into the RAM batch, allocates nothing
#   spool.flush()                      # every few seconds: one write and one sync
#   for token, payload in spool.peek(8, 4096):
#       publish(payload)               # then, on the broker's PUBACK:
#   spool.ack(token)
#   spool.save_position()              # batched by the caller, it costs a flash commit
#
# Layout under root: segment files 00000001.seg, 00000002.seg, ... hold frames in
# append order, and the file "position" holds "<segment> <offset>" of the first
# undelivered frame. A frame is 0xA5, the payload length (2 bytes little-endian),
# the payload, then the CRC-32 (binascii.crc32, 4 bytes little-endian) of the
# length bytes and the payload. A power cut can leave a partial frame only at the
# end of the last segment, and the constructor cuts it off. Records still in the
# RAM batch when the power goes are lost: that window is the caller's flush
# interval, or batch_bytes of records, whichever fills first.

import binascii
import errno
import os

from micropython import const

from firmware import log
from firmware.transient import unload

_log = log.get("spool")
_frame = None
_frame_mv = None

_SYNC = const(0xA5)
_HEADER_BYTES = const(3)  # sync byte and 2-byte length
_CRC_BYTES = const(4)
_FRAME_OVERHEAD_BYTES = const(7)
_PAYLOAD_MAX_BYTES = const(1024)
_FRAME_MAX_BYTES = const(1031)
# MicroPython's errno module has no ENOSPC; 28 is its value on Linux and on the
# ESP32 (newlib), and LittleFS errors arrive as that number.
_ENOSPC = const(28)
# On a full 16-block test image, LittleFS (2.11, bundled with MicroPython 1.29)
# raised ENAMETOOLONG when no directory entry fitted for a new file. Our names
# have 12 characters, so here the error means a full flash.
_ENAMETOOLONG = const(36)
_EIO = const(5)


class SpoolError(OSError):
    """Misuse of the spool: invalid settings, an oversized record, an unknown token."""


class Spool:
    """Store records on flash in order until their delivery is acknowledged."""

    def __init__(self, root, segment_bytes=16384, max_segments=64, batch_bytes=1024):
        # A batch must take at least one frame of the largest payload, so a
        # lower batch_bytes is raised to that size.
        self._batch_limit = max(batch_bytes, _FRAME_MAX_BYTES)
        if segment_bytes < self._batch_limit:
            raise SpoolError("segment_bytes %d is smaller than one batch (%d bytes)" % (segment_bytes, self._batch_limit))
        if max_segments < 2:
            raise SpoolError("max_segments %d is below the minimum of 2" % max_segments)
        self._root = root
        self._segment_bytes = segment_bytes
        self._max_segments = max_segments

        self._batch = bytearray(self._batch_limit)
        self._batch_mv = memoryview(self._batch)
        self._batch_len = 0
        self._batch_count = 0
        # Read buffer for one frame, shared by all spools: a read ends within the call that starts it.
        global _frame, _frame_mv
        if _frame is None:
            _frame = bytearray(_FRAME_MAX_BYTES)
            _frame_mv = memoryview(_frame)
        self._frame = _frame
        self._frame_mv = _frame_mv

        self.appended = 0
        self.dropped = 0
        self.recovered_bytes = 0
        self.write_errors = 0
        self.flushes = 0
        self._failed_flushes = 0  # consecutive failures, so only the first is logged

        # Parallel lists, oldest segment first; the last segment is the one written to.
        self._segments = []  # segment numbers
        self._counts = []  # valid frames in each segment
        self._ends = []  # byte offset after the last valid frame of each segment
        self._depth = 0  # undelivered records on flash (the batch is counted apart)
        # Delivery position: the first undelivered frame, and how many frames
        # of its segment come before it.
        self._read_number = 0
        self._read_offset = 0
        self._read_ordinal = 0

        # The opening code is needed once per boot, so it is loaded for this call only.
        from firmware import spoolopen

        try:
            self._saved_position = spoolopen.open_spool(self)
        finally:
            unload("firmware.spoolopen")

    # Paths and files

    def _path(self, number):
        return "%s/%08d.seg" % (self._root, number)

    def _temp_path(self):
        return self._root + "/tmp"

    def _position_path(self):
        return self._root + "/position"

    def _remove_quietly(self, path):
        try:
            os.remove(path)
        except OSError:
            pass

    def _remove_segment_file(self, number):
        try:
            os.remove(self._path(number))
        except OSError as e:
            if e.errno == errno.ENOENT:
                return  # a write segment that no flush has created yet
            # A leftover file only brings back delivered records at the next open.
            self.write_errors += 1
            _log.error("removing segment %d failed: %s", number, e)

    def _file_size(self, path):
        try:
            return os.stat(path)[6]
        except OSError:
            return 0

    # Frames

    def _read_frame(self, f):
        """Read the frame at the file position into self._frame.

        Returns the payload length, or -1 when the bytes there are not a whole
        frame with a valid sync byte, length and CRC.
        """
        buf = self._frame
        mv = self._frame_mv
        if f.readinto(mv[:_HEADER_BYTES]) != _HEADER_BYTES or buf[0] != _SYNC:
            return -1
        n = buf[1] | buf[2] << 8
        if n > _PAYLOAD_MAX_BYTES:
            return -1
        tail = n + _CRC_BYTES
        if f.readinto(mv[_HEADER_BYTES : _HEADER_BYTES + tail]) != tail:
            return -1
        i = _HEADER_BYTES + n
        stored = buf[i] | buf[i + 1] << 8 | buf[i + 2] << 16 | buf[i + 3] << 24
        if binascii.crc32(mv[1:i]) != stored:
            return -1
        return n

    # Segments

    def _index_of(self, number):
        """Return the index of the first segment numbered number or higher."""
        i = 0
        while i < len(self._segments) and self._segments[i] < number:
            i += 1
        return i

    def _append_segment(self, number):
        self._segments.append(number)
        self._counts.append(0)
        self._ends.append(0)

    def _start_segment(self):
        """Make a new, empty write segment, dropping the oldest ones beyond capacity."""
        while len(self._segments) >= self._max_segments:
            self._drop_oldest_segment()
        self._append_segment(self._segments[-1] + 1)
        self._delete_delivered()

    def _pop_oldest_segment(self):
        number = self._segments.pop(0)
        self._counts.pop(0)
        self._ends.pop(0)
        self._remove_segment_file(number)
        if not self._segments:
            self._append_segment(number + 1)
        if self._read_number == number:
            self._read_number = self._segments[0]
            self._read_offset = 0
            self._read_ordinal = 0

    def _drop_oldest_segment(self):
        """Delete the oldest segment, counting its undelivered records in dropped."""
        number = self._segments[0]
        lost = 0
        if number == self._read_number:
            lost = self._counts[0] - self._read_ordinal
        self.dropped += lost
        self._depth -= lost
        _log.warning("segment %d dropped to make room: %d undelivered records lost", number, lost)
        self._pop_oldest_segment()

    def _delete_delivered(self):
        """Delete fully delivered segments other than the write segment."""
        while len(self._segments) > 1:
            number = self._segments[0]
            if number == self._read_number and self._read_ordinal < self._counts[0]:
                return
            self._pop_oldest_segment()

    def _lose_rest(self, i, offset, ordinal):
        # The frames were valid when written or scanned, so the flash changed
        # under them since: count them as dropped and never read past offset.
        lost = self._counts[i] - ordinal
        number = self._segments[i]
        _log.error("segment %d: invalid frame at offset %d; %d records lost", number, offset, lost)
        self.dropped += lost
        self._depth -= lost
        self._counts[i] = ordinal
        self._ends[i] = offset
        if i == len(self._segments) - 1:
            self._start_segment()

    # Writing

    @property
    def pending_bytes(self):
        """Bytes of frames in the RAM batch, not yet on flash."""
        return self._batch_len

    def append(self, payload):
        """Copy one record (bytes, bytearray or memoryview) into the RAM batch.

        Allocates nothing unless the batch is full. Then it flushes first, and
        if that flush fails, it drops the oldest batched records to make room
        and counts them in dropped.
        """
        n = len(payload)
        if n > _PAYLOAD_MAX_BYTES:
            raise SpoolError("record of %d bytes is longer than the maximum of %d" % (n, _PAYLOAD_MAX_BYTES))
        size = n + _FRAME_OVERHEAD_BYTES
        if self._batch_len + size > self._batch_limit:
            self.flush()
            while self._batch_len + size > self._batch_limit:
                self._drop_batched_record()

        # The CRC is filled in by flush(): on a 32-bit port a CRC-32 above
        # 2**30 is a heap-allocated integer.
        i = self._batch_len
        buf = self._batch
        buf[i] = _SYNC
        buf[i + 1] = n & 0xFF
        buf[i + 2] = n >> 8
        self._batch_mv[i + _HEADER_BYTES : i + _HEADER_BYTES + n] = payload
        self._batch_len = i + size
        self._batch_count += 1
        self.appended += 1

    def _drop_batched_record(self):
        size = self._batch[1] | self._batch[2] << 8
        self._shift(size + _FRAME_OVERHEAD_BYTES)
        self._batch_count -= 1
        self.dropped += 1

    def _seal_batch(self):
        """Write the CRC of every frame in the batch."""
        buf = self._batch
        i = 0
        while i < self._batch_len:
            n = buf[i + 1] | buf[i + 2] << 8
            j = i + _HEADER_BYTES + n
            crc = binascii.crc32(self._batch_mv[i + 1 : j])
            buf[j] = crc & 0xFF
            buf[j + 1] = (crc >> 8) & 0xFF
            buf[j + 2] = (crc >> 16) & 0xFF
            buf[j + 3] = (crc >> 24) & 0xFF
            i = j + _CRC_BYTES

    def flush(self):
        """Write the RAM batch to flash and sync it.

        Returns True when nothing is left in RAM. The frames that fit go to the
        write segment and the rest start a new one, so segments fill to the
        byte. On a full flash (ENOSPC, or ENAMETOOLONG for a new file) the
        oldest segment is dropped and the write tried once more. Other flash
        errors are counted in write_errors and logged, and the records stay in
        RAM for the next flush. Every OSError from the filesystem is caught.
        """
        if not self._batch_len:
            return True
        self._seal_batch()
        room = self._segment_bytes - self._ends[-1]
        if self._batch_len > room:
            n, count = self._prefix(room)
            if n and not self._write_part(n, count):
                return False
            self._start_segment()
        return self._write_part(self._batch_len, self._batch_count)

    def _prefix(self, room):
        """Return (bytes, frames) of the longest run of whole batch frames that fits in room bytes."""
        buf = self._batch
        i = 0
        count = 0
        while i < self._batch_len:
            size = (buf[i + 1] | buf[i + 2] << 8) + _FRAME_OVERHEAD_BYTES
            if i + size > room:
                break
            i += size
            count += 1
        return i, count

    def _write_part(self, n, count):
        err = self._write_batch(n, count)
        if err == _ENOSPC or err == _ENAMETOOLONG:
            # Flash full: the newest records take the room of the oldest.
            self._drop_oldest_segment()
            err = self._write_batch(n, count)
        if err:
            self.write_errors += 1
            self._failed_flushes += 1
            if self._failed_flushes == 1:
                _log.error("flush of %d bytes to segment %d failed (errno %d); records stay in RAM", n, self._segments[-1], err)
            return False

        if self._failed_flushes:
            _log.warning("flush succeeded after %d failed attempts", self._failed_flushes)
            self._failed_flushes = 0
        self.flushes += 1
        return True

    def _write_batch(self, n, count):
        """Append the first n bytes (count frames) of the sealed batch to the write segment.

        Returns 0, or the errno of the failure.
        """
        number = self._segments[-1]
        path = self._path(number)
        try:
            with open(path, "ab") as f:
                if f.write(self._batch_mv[:n]) != n:
                    raise OSError(_EIO)
                f.flush()  # LittleFS commits the data here (lfs_file_sync)
        except OSError as e:
            self._check_failed_write(path)
            return e.errno or _EIO

        self._counts[-1] += count
        self._ends[-1] += n
        self._depth += count
        self._shift(n)
        self._batch_count -= count
        return 0

    def _shift(self, n):
        """Remove the first n bytes of the batch, moving the rest to its start."""
        # Slice assignment is a plain memcpy, so the copy goes in pieces of at
        # most n bytes, which never overlap.
        mv = self._batch_mv
        rest = self._batch_len - n
        i = 0
        while i < rest:
            k = min(n, rest - i)
            mv[i : i + k] = mv[n + i : n + i + k]
            i += k
        self._batch_len = rest

    def _check_failed_write(self, path):
        # LittleFS keeps the last committed file on a failed write, but a POSIX
        # filesystem may keep part of it. New frames must not follow such bytes.
        expected = self._ends[-1]
        if self._file_size(path) == expected:
            return
        if expected == 0:
            self._remove_quietly(path)
        else:
            self._start_segment()

    # Reading and delivery

    def depth(self):
        """Return the number of undelivered records, in RAM and on flash."""
        return self._depth + self._batch_count

    def _check_token(self, token):
        try:
            number, offset, ordinal = token
        except (TypeError, ValueError):
            raise SpoolError("invalid token %r" % (token,))
        return number, offset, ordinal

    def peek(self, max_count, max_bytes, after=None):
        """Return up to max_count (token, payload) pairs of the next undelivered records, oldest first.

        Flushes the batch first, so records in RAM are included unless that
        flush fails. The payloads add up to at most max_bytes, except that
        one record is always returned when there is any. With after, a token
        from an earlier peek, the list starts after that record, so a caller
        can keep several records in flight.
        """
        self.flush()
        number, offset, ordinal = self._read_number, self._read_offset, self._read_ordinal
        if after is not None:
            start = self._check_token(after)
            if (start[0], start[1]) > (number, offset):
                number, offset, ordinal = start

        out = []
        budget = max_bytes
        i = self._index_of(number)
        while i < len(self._segments) and budget >= 0 and len(out) < max_count:
            if self._segments[i] != number:
                number, offset, ordinal = self._segments[i], 0, 0
            budget = self._read_segment(i, offset, ordinal, out, max_count, budget)
            # Look the next segment up by number: reading may drop segments.
            i = self._index_of(number + 1)
        return out

    def _read_segment(self, i, offset, ordinal, out, max_count, budget):
        """Append records of segment i from offset to out.

        Returns the payload bytes still allowed, or -1 once a limit is reached.
        """
        number = self._segments[i]
        end = self._ends[i]
        if offset >= end:
            return budget
        try:
            f = open(self._path(number), "rb")
        except OSError:
            self._lose_rest(i, offset, ordinal)
            return budget
        try:
            f.seek(offset)
            while offset < end:
                if len(out) >= max_count:
                    return -1
                n = self._read_frame(f)
                if n < 0:
                    self._lose_rest(i, offset, ordinal)
                    return budget
                if out and n > budget:
                    return -1
                offset += n + _FRAME_OVERHEAD_BYTES
                ordinal += 1
                budget -= n
                out.append(((number, offset, ordinal), bytes(self._frame_mv[_HEADER_BYTES : _HEADER_BYTES + n])))
        except OSError as e:
            # A read error may pass, so end this peek and keep the records.
            _log.error("reading segment %d at offset %d failed: %s", number, offset, e)
            return -1
        finally:
            f.close()
        return budget

    def newest(self):
        """Return (token, payload) of the newest undelivered record, or None.

        Flushes the batch first. Reads the newest segment from its start to
        find the last frame, so it suits an occasional call (once per
        connection), not every record.
        """
        self.flush()
        if not self.depth():
            return None
        i = len(self._segments) - 1
        while i > 0 and not self._counts[i]:
            i -= 1
        number = self._segments[i]
        if not self._counts[i] or (number, self._ends[i]) <= (self._read_number, self._read_offset):
            return None
        start = 0
        try:
            with open(self._path(number), "rb") as f:
                for _ in range(self._counts[i] - 1):
                    n = self._read_frame(f)
                    if n < 0:
                        return None
                    start += n + _FRAME_OVERHEAD_BYTES
                n = self._read_frame(f)
        except OSError as e:
            _log.error("reading segment %d failed: %s", number, e)
            return None
        if n < 0 or start + n + _FRAME_OVERHEAD_BYTES != self._ends[i]:
            return None
        token = (number, self._ends[i], self._counts[i])
        return token, bytes(self._frame_mv[_HEADER_BYTES : _HEADER_BYTES + n])

    def ack(self, token):
        """Mark the record of token, and every record before it, delivered.

        A token at or before the current position (a repeated acknowledgement,
        or a record dropped meanwhile) is ignored. Call save_position() to
        make the position survive a reboot.
        """
        number, offset, ordinal = self._check_token(token)
        if (number, offset) <= (self._read_number, self._read_offset):
            return
        i = self._index_of(number)
        if i == len(self._segments) or self._segments[i] != number or offset > self._ends[i] or ordinal > self._counts[i]:
            raise SpoolError("token %r is past the last record" % (token,))

        first = self._index_of(self._read_number)
        delivered = sum(self._counts[first:i]) - self._read_ordinal + ordinal
        self._depth -= delivered
        self._read_number = number
        self._read_offset = offset
        self._read_ordinal = ordinal
        self._delete_delivered()

    def save_position(self):
        """Persist the delivery position if it moved since the last save.

        Writes a temporary file and renames it over the position file, so a
        power cut leaves the old or the new position. Returns False, after
        counting and logging the error, when the flash write fails.
        """
        position = (self._read_number, self._read_offset)
        if position == self._saved_position:
            return True
        temp = self._temp_path()
        try:
            with open(temp, "w") as f:
                f.write("%d %d\n" % position)
            os.rename(temp, self._position_path())
        except OSError as e:
            self.write_errors += 1
            _log.error("saving the delivery position %d:%d failed: %s", position[0], position[1], e)
            self._remove_quietly(temp)
            return False
        self._saved_position = position
        return True

    def stats(self):
        """Return the counters as a dict, for telemetry."""
        return {
            "appended": self.appended,
            "dropped": self.dropped,
            "recovered_bytes": self.recovered_bytes,
            "write_errors": self.write_errors,
            "flushes": self.flushes,
            "depth": self.depth(),
            "pending_bytes": self._batch_len,
            "segments": len(self._segments),
        }
