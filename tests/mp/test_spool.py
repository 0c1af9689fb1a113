# Tests of firmware.spool on LittleFS over a RAM block device: order, torn tails, capacity, full flash, power cuts
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import gc
import os
import random

import micropython
import vfs

from firmware import log
from firmware.spool import Spool, SpoolError
from ramflash import BLOCK_BYTES as _BLOCK_BYTES, RAMBlockDevice

_MOUNT = "/spooltest"
_ROOT = "/spooltest/spool"
_SNAPSHOT_MOUNT = "/spoolsnap"

log.console = False  # the tests provoke warnings on purpose


def _mount_fresh(block_count=64):
    bdev = RAMBlockDevice(block_count)
    vfs.VfsLfs2.mkfs(bdev)
    vfs.mount(vfs.VfsLfs2(bdev), _MOUNT)
    return bdev


def _payload(seq):
    # Variable length (10 to 49 bytes) so frames do not line up with blocks.
    head = b"rec%06d:" % seq
    return head + bytes((seq + k) & 0xFF for k in range(seq % 40))


def _seq_of(payload):
    return int(payload[3:9])


# Each peek opens a segment file, and that leaves about 6 KB of garbage on the
# unix port. Collecting it keeps a long result list from failing on a fragmented heap.


def _peek_all(spool):
    """Return every undelivered payload in order, acknowledging nothing."""
    out = []
    after = None
    while True:
        gc.collect()
        batch = spool.peek(7, 300, after)
        if not batch:
            return out
        for token, payload in batch:
            out.append(payload)
        after = batch[-1][0]


def _drain(spool):
    """Deliver and acknowledge every record; return the payloads in order."""
    out = []
    while True:
        gc.collect()
        batch = spool.peek(5, 200)
        if not batch:
            return out
        for token, payload in batch:
            out.append(payload)
        spool.ack(batch[-1][0])


def _segment_files(root=_ROOT):
    return sorted(name for name in os.listdir(root) if name.endswith(".seg"))


def _read_file(path):
    with open(path, "rb") as f:
        return f.read()


def _write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_frame_bytes_on_flash():
    _mount_fresh()
    try:
        spool = Spool(_ROOT)
        spool.append(b"TRK-0042 -18500")
        assert spool.flush()
        # Frame computed with CPython zlib.crc32 over b"\x0f\x00" + payload = 0xE3F5FBC5.
        expected = bytes.fromhex("a50f0054524b2d30303432202d3138353030c5fbf5e3")
        assert _read_file(_ROOT + "/00000001.seg") == expected
    finally:
        vfs.umount(_MOUNT)


def test_order_across_segments():
    _mount_fresh()
    try:
        spool = Spool(_ROOT, segment_bytes=2048, batch_bytes=512)
        for seq in range(200):
            spool.append(_payload(seq))
            if seq % 10 == 9:
                spool.flush()
        assert spool.depth() == 200
        assert len(_segment_files()) >= 3

        received = _drain(spool)
        assert received == [_payload(seq) for seq in range(200)]
        assert spool.depth() == 0
        # Delivered segments are deleted; the write segment stays.
        assert len(_segment_files()) == 1
        assert spool.stats()["dropped"] == 0
        assert spool.stats()["appended"] == 200
    finally:
        vfs.umount(_MOUNT)


def test_segments_fill_to_the_byte():
    _mount_fresh()
    try:
        # 57-byte payloads make 64-byte frames: 32 fill a 2048-byte segment
        # exactly. Flushes of 5 frames straddle every segment boundary.
        spool = Spool(_ROOT, segment_bytes=2048, batch_bytes=512)
        payloads = [b"rec%06d:" % seq + bytes(47) for seq in range(70)]
        for seq in range(70):
            spool.append(payloads[seq])
            if seq % 5 == 4:
                assert spool.flush()
        assert spool.flush()
        files = _segment_files()
        assert files == ["00000001.seg", "00000002.seg", "00000003.seg"], files
        assert len(_read_file(_ROOT + "/00000001.seg")) == 2048
        assert len(_read_file(_ROOT + "/00000002.seg")) == 2048
        assert len(_read_file(_ROOT + "/00000003.seg")) == 6 * 64
        assert spool.stats()["flushes"] == 14 + 2  # two flushes wrote their batch in two parts
        # Reopened, the same 70 records come back in order.
        assert _drain(Spool(_ROOT, segment_bytes=2048, batch_bytes=512)) == payloads
    finally:
        vfs.umount(_MOUNT)


def test_reopen_resumes_at_saved_position():
    _mount_fresh()
    try:
        spool = Spool(_ROOT, segment_bytes=2048)
        for seq in range(120):
            spool.append(_payload(seq))
        spool.flush()

        batch = spool.peek(20, 10000)
        assert len(batch) == 20
        spool.ack(batch[-1][0])
        assert spool.save_position()
        batch = spool.peek(30, 10000)
        spool.ack(batch[-1][0])  # acknowledged up to 49, saved only up to 19
        assert spool.depth() == 70

        reopened = Spool(_ROOT, segment_bytes=2048)
        assert reopened.depth() == 100
        received = _drain(reopened)
        assert received == [_payload(seq) for seq in range(20, 120)]
    finally:
        vfs.umount(_MOUNT)


def test_peek_limits_and_after_token():
    _mount_fresh()
    try:
        spool = Spool(_ROOT)
        for seq in range(10):
            spool.append(_payload(seq))
        first = spool.peek(3, 10000)
        assert [p for t, p in first] == [_payload(s) for s in range(3)]
        # peek does not consume: the same records come again until acknowledged.
        assert spool.peek(1, 10000)[0][1] == _payload(0)
        following = spool.peek(3, 10000, first[-1][0])
        assert [p for t, p in following] == [_payload(s) for s in range(3, 6)]
        # The byte limit stops before a record that would pass it (payload 3 is 12 bytes).
        assert len(spool.peek(10, len(_payload(0)) + len(_payload(1)) + 5)) == 2
        # One record is returned even when it is larger than max_bytes.
        assert len(spool.peek(10, 1)) == 1
    finally:
        vfs.umount(_MOUNT)


def test_misuse_raises_spool_error():
    _mount_fresh()
    try:
        spool = Spool(_ROOT)
        try:
            spool.append(b"x" * 1025)
            raised = False
        except SpoolError:
            raised = True
        assert raised
        try:
            spool.ack("not a token")
            raised = False
        except SpoolError:
            raised = True
        assert raised
        try:
            spool.ack((1, 999999, 5))
            raised = False
        except SpoolError:
            raised = True
        assert raised
        try:
            Spool(_ROOT, segment_bytes=1000)
            raised = False
        except SpoolError:
            raised = True
        assert raised
        assert isinstance(SpoolError("x"), OSError)
    finally:
        vfs.umount(_MOUNT)


def _ten_records_one_segment():
    spool = Spool(_ROOT)
    for seq in range(10):
        spool.append(_payload(seq))
    spool.flush()
    path = _ROOT + "/" + _segment_files()[0]
    return path, _read_file(path)


def test_torn_tail_every_cut_length():
    _mount_fresh()
    try:
        path, data = _ten_records_one_segment()
        last_frame_bytes = len(_payload(9)) + 7
        good = data[: len(data) - last_frame_bytes]
        for kept_bytes in range(1, last_frame_bytes):
            _write_file(path, data[: len(good) + kept_bytes])
            spool = Spool(_ROOT)
            assert spool.recovered_bytes == kept_bytes, kept_bytes
            assert os.stat(path)[6] == len(good), kept_bytes
            assert spool.depth() == 9, kept_bytes
            assert _peek_all(spool) == [_payload(seq) for seq in range(9)], kept_bytes

            # New records follow the cut directly.
            spool.append(b"after the cut")
            spool.flush()
            reopened = Spool(_ROOT)
            assert reopened.recovered_bytes == 0, kept_bytes
            assert _peek_all(reopened)[-2:] == [_payload(8), b"after the cut"], kept_bytes
            _write_file(path, data)
    finally:
        vfs.umount(_MOUNT)


def test_flipped_byte_detected_by_crc():
    _mount_fresh()
    try:
        path, data = _ten_records_one_segment()
        last_frame_bytes = len(_payload(9)) + 7
        start = len(data) - last_frame_bytes
        # One flipped bit in the payload, then in the CRC, of the last frame.
        for index in (start + 5, len(data) - 2):
            corrupt = bytearray(data)
            corrupt[index] ^= 0x10
            _write_file(path, corrupt)
            spool = Spool(_ROOT)
            assert spool.recovered_bytes == last_frame_bytes, index
            assert _peek_all(spool) == [_payload(seq) for seq in range(9)], index
            _write_file(path, data)

        # A flipped byte in the fourth record ends the segment's valid records there.
        fourth = sum(len(_payload(seq)) + 7 for seq in range(3))
        corrupt = bytearray(data)
        corrupt[fourth + 4] ^= 0x01
        _write_file(path, corrupt)
        spool = Spool(_ROOT)
        assert spool.recovered_bytes == len(data) - fourth
        assert _peek_all(spool) == [_payload(seq) for seq in range(3)]
    finally:
        vfs.umount(_MOUNT)


def test_garbage_in_earlier_segment():
    _mount_fresh()
    try:
        spool = Spool(_ROOT, segment_bytes=2048, batch_bytes=512)
        for seq in range(120):
            spool.append(_payload(seq))
            spool.flush()
        names = _segment_files()
        assert len(names) >= 3
        first_path = _ROOT + "/" + names[0]
        first = _read_file(first_path)
        count_first = 0
        offset = 0
        while offset < len(first):
            offset += len(_payload(count_first)) + 7
            count_first += 1

        # Overwrite the sync byte of the sixth frame with garbage.
        sixth = sum(len(_payload(seq)) + 7 for seq in range(5))
        corrupt = bytearray(first)
        corrupt[sixth] = 0x00
        _write_file(first_path, corrupt)

        reopened = Spool(_ROOT, segment_bytes=2048, batch_bytes=512)
        assert reopened.recovered_bytes == len(first) - sixth
        expected = [_payload(seq) for seq in range(5)] + [_payload(seq) for seq in range(count_first, 120)]
        assert reopened.depth() == len(expected)
        assert _drain(reopened) == expected
    finally:
        vfs.umount(_MOUNT)


def test_capacity_drops_oldest_counted():
    _mount_fresh()
    try:
        spool = Spool(_ROOT, segment_bytes=2048, max_segments=3)
        for seq in range(300):
            spool.append(_payload(seq))
        spool.flush()
        assert len(_segment_files()) == 3
        depth = spool.depth()

        received = _drain(spool)
        seqs = [_seq_of(p) for p in received]
        assert len(seqs) == depth
        assert seqs[-1] == 299
        assert seqs == list(range(seqs[0], 300))
        assert received == [_payload(seq) for seq in seqs]
        assert seqs[0] > 0
        assert spool.dropped == seqs[0]
        assert spool.depth() == 0
    finally:
        vfs.umount(_MOUNT)


def test_capacity_drop_with_partial_delivery():
    _mount_fresh()
    try:
        spool = Spool(_ROOT, segment_bytes=2048, max_segments=3)
        for seq in range(40):
            spool.append(_payload(seq))
        batch = spool.peek(10, 10000)
        spool.ack(batch[-1][0])  # records 0-9 delivered, 10-39 waiting
        for seq in range(40, 300):
            spool.append(_payload(seq))
        spool.flush()

        seqs = [_seq_of(p) for p in _drain(spool)]
        assert seqs == list(range(seqs[0], 300))
        # Only undelivered records (10 onwards) count as dropped.
        assert spool.dropped == seqs[0] - 10
    finally:
        vfs.umount(_MOUNT)


def test_flash_full_drops_oldest():
    _mount_fresh(block_count=16)
    try:
        spool = Spool(_ROOT, segment_bytes=4096, max_segments=64)
        for seq in range(3000):
            spool.append(_payload(seq))
            if seq % 20 == 19:
                spool.flush()
        spool.flush()
        assert spool.dropped > 0
        # 16 blocks hold far less than the 3000 records, so the segment limit was never reached.
        assert len(_segment_files()) < 64
        depth = spool.depth()

        received = _drain(spool)
        seqs = [_seq_of(p) for p in received]
        assert len(seqs) == depth
        assert seqs == list(range(seqs[0], 3000))
        assert received == [_payload(seq) for seq in seqs]
        assert spool.dropped == seqs[0]
        assert spool.appended == 3000
    finally:
        vfs.umount(_MOUNT)


def _fill_filesystem():
    """Create filler files, large then small, until LittleFS has no room left; return their names."""
    names = []
    for size in (4096, 512, 64):
        while len(names) < 200:
            name = "%s/filler%d" % (_MOUNT, len(names))
            try:
                _write_file(name, b"\xee" * size)
            except OSError as e:
                # ENOSPC, or ENAMETOOLONG when no directory entry fits any more
                assert e.errno in (28, 36)
                break
            names.append(name)
    return names


def test_flash_full_keeps_batch_in_ram():
    _mount_fresh(block_count=16)
    try:
        spool = Spool(_ROOT, batch_bytes=1024)
        fillers = _fill_filesystem()

        for seq in range(100):
            spool.append(_payload(seq))
        assert not spool.flush()
        assert spool.write_errors >= 1
        assert spool.pending_bytes > 0
        assert spool.dropped > 0
        kept_in_ram = spool.depth()
        assert spool.dropped == 100 - kept_in_ram

        for name in os.listdir(_MOUNT):
            if name.startswith("filler"):
                os.remove(_MOUNT + "/" + name)
        assert spool.flush()
        assert spool.pending_bytes == 0
        seqs = [_seq_of(p) for p in _drain(spool)]
        assert seqs == list(range(100 - kept_in_ram, 100))
    finally:
        vfs.umount(_MOUNT)


def test_append_allocates_nothing():
    _mount_fresh()
    try:
        spool = Spool(_ROOT, segment_bytes=8192, batch_bytes=4096)
        cases = []
        for size in (0, 1, 57, 1024):
            raw = bytes((i * 7) & 0xFF for i in range(size))
            cases.append(raw)
            cases.append(bytearray(raw))
            cases.append(memoryview(bytearray(raw)))
        for payload in cases:
            spool.flush()
            error = None
            micropython.heap_lock()
            try:
                spool.append(payload)
            except MemoryError as e:
                error = e
            micropython.heap_unlock()
            assert error is None, len(payload)
            assert spool.pending_bytes == len(payload) + 7, len(payload)

        received = [p for t, p in spool.peek(len(cases), 100000)]
        assert received == [bytes(p) for p in cases]
    finally:
        vfs.umount(_MOUNT)


def _rebuild_flash(image, base, writes, count):
    """Fill image with the flash bytes after the first count logged writes on top of base."""
    mv = memoryview(image)
    mv[:] = base
    for i in range(count):
        start, chunk = writes[i]
        mv[start : start + len(chunk)] = chunk


def _check_power_cut(data, cut, index):
    """Open a spool on the flash as a power cut left it and check what it delivers."""
    appended, durable, acked = cut
    bdev = RAMBlockDevice(len(data) // _BLOCK_BYTES, data)
    vfs.mount(vfs.VfsLfs2(bdev), _SNAPSHOT_MOUNT)
    try:
        root = _SNAPSHOT_MOUNT + "/spool"
        spool = Spool(root, segment_bytes=2048)
        received = _peek_all(spool)
        seqs = [_seq_of(p) for p in received]
        label = (index, appended, durable, acked, seqs[:1], seqs[-1:])
        assert spool.depth() == len(seqs), label
        assert received == [_payload(seq) for seq in seqs], label
        if seqs:
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), label
            # Nothing unacknowledged is lost, and nothing never appended appears.
            assert seqs[0] <= acked, label
            assert seqs[-1] + 1 >= durable, label
            assert seqs[-1] < appended, label
        else:
            assert durable <= acked, label

        # The recovered spool takes new records after the old ones.
        spool.append(b"after power cut")
        spool.flush()
        assert _peek_all(Spool(root, segment_bytes=2048))[-1] == b"after power cut", label
    finally:
        vfs.umount(_SNAPSHOT_MOUNT)


def test_power_cut_at_random_writes():
    # Every block write is logged; a power cut after write k is the flash
    # image with the first k writes applied. Block writes are atomic here,
    # as LittleFS assumes of a program operation.
    # The flash images are allocated first, while the heap is least fragmented.
    base = bytearray(32 * _BLOCK_BYTES)
    image = bytearray(32 * _BLOCK_BYTES)
    bdev = _mount_fresh(block_count=32)
    random.seed(20260807)
    cuts = {}  # write count -> (appended, durable, acked) at that moment
    try:
        spool = Spool(_ROOT, segment_bytes=2048)
        base[:] = bdev.data
        bdev.writes = []
        appended = durable = acked = 0

        def note(start, state):
            # Record the state that a cut during the operation must satisfy.
            # The next operation overwrites the entry for the cut right after this one.
            for k in range(start, len(bdev.writes) + 1):
                cuts[k] = state

        for seq in range(400):
            spool.append(_payload(seq))
            appended = seq + 1
            if seq % 7 == 6 or seq % 25 == 24:
                start = len(bdev.writes)
                spool.flush()
                # A cut during the flush may or may not keep this batch.
                note(start, (appended, durable, acked))
                durable = appended
            if seq % 25 == 24:
                batch = spool.peek(random.getrandbits(4) + 1, 10000)
                start = len(bdev.writes)
                spool.ack(batch[-1][0])
                # Segments are deleted only after the acknowledgement, so a
                # cut from here on may lose the newly acknowledged records.
                acked = _seq_of(batch[-1][1]) + 1
                if random.getrandbits(1):
                    spool.save_position()
                note(start, (appended, durable, acked))
        writes = bdev.writes
        bdev.writes = None
        assert spool.dropped == 0
    finally:
        vfs.umount(_MOUNT)

    # Cut points chosen at random among all writes, plus the first and the last.
    points = sorted(cuts)
    assert len(points) > 100
    chosen = [points[0], points[-1]]
    for i in range(40):
        chosen.append(points[random.getrandbits(16) % len(points)])
    for index, count in enumerate(chosen):
        gc.collect()
        _rebuild_flash(image, base, writes, count)
        _check_power_cut(image, cuts[count], index)
