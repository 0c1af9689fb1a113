# Opening a spool at boot: segment scan, torn-tail cut, saved delivery position
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Spool.__init__ loads this module, calls open_spool() and drops it again
# (firmware/transient.py), so the code that runs once per boot is not in the
# heap while the terminal runs. The functions work on the Spool's fields; the
# frame format is described in firmware/spool.py.

import os

from micropython import const

from firmware import log

_log = log.get("spool")

_FRAME_OVERHEAD_BYTES = const(7)  # spool._FRAME_OVERHEAD_BYTES
_FRAME_MAX_BYTES = const(1031)  # spool._FRAME_MAX_BYTES
_NO_LIMIT_BYTES = const(0x3FFFFFFF)  # largest small int on a 32-bit port
_EIO = const(5)


def open_spool(sp):
    """Read the segments and the saved position of sp; return the saved (segment, offset)."""
    try:
        os.stat(sp._root)
    except OSError:
        os.mkdir(sp._root)
    sp._remove_quietly(sp._temp_path())  # left by a power cut during a copy or position save
    saved = _load_position_file(sp)
    _load_segments(sp, saved[0])
    _seek_position(sp, saved[0], saved[1])
    return saved


def _scan(sp, number, limit):
    """Walk the valid frames of a segment that end at or before byte offset limit.

    Returns (frame count, offset after the last of them).
    """
    count = 0
    end = 0
    try:
        f = open(sp._path(number), "rb")
    except OSError:
        return 0, 0
    try:
        while True:
            n = sp._read_frame(f)
            if n < 0 or end + n + _FRAME_OVERHEAD_BYTES > limit:
                break
            count += 1
            end += n + _FRAME_OVERHEAD_BYTES
    finally:
        f.close()
    return count, end


def _load_segments(sp, saved_number):
    numbers = []
    for name in os.listdir(sp._root):
        if len(name) == 12 and name.endswith(".seg"):
            try:
                numbers.append(int(name[:8]))
            except ValueError:
                pass
    numbers.sort()

    # NOTE: this reads and checks every frame, up to max_segments *
    # segment_bytes (1 MiB by default). The boot time that costs on an
    # ESP32 has not been measured.
    for number in numbers:
        count, end = _scan(sp, number, _NO_LIMIT_BYTES)
        size = sp._file_size(sp._path(number))
        if end < size:
            # NOTE: a power cut leaves invalid bytes only at the end, but a
            # corrupted frame in the middle (a flipped bit) also ends the
            # scan there, and the valid frames after it are not read.
            sp.recovered_bytes += size - end
            _log.warning("segment %d: %d invalid bytes after offset %d ignored", number, size - end, end)
        sp._segments.append(number)
        sp._counts.append(count)
        sp._ends.append(end)

    if not numbers:
        # Continue the numbering of the saved position, so that it cannot
        # point past the new records.
        sp._append_segment(max(saved_number, 1))
    elif sp._ends[-1] < sp._file_size(sp._path(numbers[-1])):
        if not _cut_tail(sp, numbers[-1], sp._ends[-1]):
            # The reader stops at the recorded end, and new frames go to a
            # new segment, so the invalid tail is never read.
            sp._append_segment(numbers[-1] + 1)


def _cut_tail(sp, number, end):
    """Shorten the last segment to its valid frames so that new frames follow them directly.

    Returns False, after counting and logging the error, when the flash write fails.
    """
    # LittleFS has no truncate: copy the valid prefix to a temporary file and
    # rename it over the segment, which LittleFS does atomically.
    temp = sp._temp_path()
    mv = sp._frame_mv
    try:
        with open(sp._path(number), "rb") as src, open(temp, "wb") as dst:
            left = end
            while left:
                n = src.readinto(mv[: min(left, _FRAME_MAX_BYTES)])
                if not n:
                    raise OSError(_EIO)
                dst.write(mv[:n])
                left -= n
        os.rename(temp, sp._path(number))
    except OSError as e:
        sp.write_errors += 1
        _log.error("cutting the invalid tail of segment %d failed: %s", number, e)
        sp._remove_quietly(temp)
        return False
    return True


def _load_position_file(sp):
    """Return the saved (segment, offset), or (0, 0) when there is none."""
    try:
        with open(sp._position_path()) as f:
            text = f.read()
    except OSError:
        return 0, 0
    try:
        number, offset = [int(word) for word in text.split()]
    except ValueError:
        _log.warning("invalid position file %r; delivering from the oldest record", text)
        return 0, 0
    return number, offset


def _seek_position(sp, number, offset):
    """Set the read position from a saved one and count the undelivered records."""
    i = sp._index_of(number)
    if i == len(sp._segments):
        _log.warning("saved position %d:%d is past the last segment; delivering from the oldest record", number, offset)
        i = 0
    if sp._segments[i] != number:
        # The saved segment is gone, so it was fully delivered or dropped.
        offset = 0
    ordinal, aligned = _scan(sp, sp._segments[i], offset)
    if aligned != offset:
        # Going back to a frame start sends a record twice rather than never.
        _log.warning("saved offset %d of segment %d is not a frame start; using %d", offset, sp._segments[i], aligned)
    sp._read_number = sp._segments[i]
    sp._read_offset = aligned
    sp._read_ordinal = ordinal
    sp._depth = sum(sp._counts[i:]) - ordinal
    sp._delete_delivered()
