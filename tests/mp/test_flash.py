# Tests of tools/sim/flash: the file-backed NOR flash under LittleFS, its wear counters and a full image
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import os

import vfs
from flash import BLOCK_BYTES, FileFlash, FlashError

_TMP = "/tmp/vt-flash-test"
_MOUNT = "/vt_flash_test"


def _fresh(name):
    try:
        os.mkdir(_TMP)
    except OSError:
        pass
    path = _TMP + "/" + name
    try:
        os.remove(path)
    except OSError:
        pass
    return path


def _raw(path, start, n):
    # The image file read directly, not through the block device.
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(n)


def _mount(dev):
    vfs.mount(vfs.VfsLfs2(dev), _MOUNT)


def _umount():
    vfs.umount(_MOUNT)


def test_new_image_is_erased():
    path = _fresh("new.img")
    dev = FileFlash(path, 4 * BLOCK_BYTES)
    assert dev.created
    assert os.stat(path)[6] == 16384
    assert _raw(path, 0, 16384) == b"\xff" * 16384
    buf = bytearray(32)
    dev.readblocks(3, buf, 4064)
    assert buf == b"\xff" * 32
    assert dev.read_ops == 1
    assert dev.read_bytes == 32
    dev.close()
    again = FileFlash(path, 4 * BLOCK_BYTES)
    assert not again.created
    again.close()


def test_program_clears_bits_only():
    path = _fresh("nor.img")
    dev = FileFlash(path, 2 * BLOCK_BYTES)
    dev.writeblocks(1, b"\xf0\x0f", 10)
    assert _raw(path, 4096 + 10, 2) == b"\xf0\x0f"
    assert dev.program_conflicts == 0
    # 0x0F over 0xF0 needs bits set again: NOR flash gives the AND, 0x00.
    dev.writeblocks(1, b"\x0f\x0f", 10)
    assert _raw(path, 4096 + 10, 2) == b"\x00\x0f"
    assert dev.program_conflicts == 1
    assert dev.program_ops == 2
    assert dev.program_bytes == 4
    assert dev.ioctl(6, 1) == 0
    assert _raw(path, 4096, 4096) == b"\xff" * 4096
    assert dev.erases == 1
    assert dev.block_erases == [0, 1]
    dev.close()


def test_simple_protocol_erases_first():
    # writeblocks(block, buf) without an offset is a whole-block write (FAT uses it).
    path = _fresh("simple.img")
    dev = FileFlash(path, 2 * BLOCK_BYTES)
    dev.writeblocks(0, b"\x00" * 4096, 0)
    dev.writeblocks(0, b"\x5a" * 4096)
    assert _raw(path, 0, 4096) == b"\x5a" * 4096
    assert dev.erases == 1
    assert dev.program_conflicts == 0
    dev.close()


def test_ioctl_answers():
    dev = FileFlash(_fresh("ioctl.img"), 3 * BLOCK_BYTES)
    assert dev.ioctl(4, 0) == 3
    assert dev.ioctl(5, 0) == 4096
    assert dev.ioctl(1, 0) == 0
    assert dev.ioctl(2, 0) == 0
    assert dev.ioctl(3, 0) == 0
    assert dev.ioctl(99, 0) == -22
    dev.close()


def test_access_outside_flash_rejected():
    dev = FileFlash(_fresh("outside.img"), 2 * BLOCK_BYTES)
    for block, offset, n in ((2, 0, 16), (1, 4090, 16), (-1, 0, 1)):
        try:
            dev.readblocks(block, bytearray(n), offset)
        except FlashError as e:
            assert "outside 2 blocks" in str(e), e
        else:
            raise AssertionError("read of block %d offset %d accepted" % (block, offset))
    dev.close()


def test_size_mismatch_rejected():
    path = _fresh("size.img")
    FileFlash(path, 4 * BLOCK_BYTES).close()
    try:
        FileFlash(path, 8 * BLOCK_BYTES)
    except FlashError as e:
        assert "has 16384 bytes, not 32768" in str(e), e
    else:
        raise AssertionError("an image of another size was accepted")
    for size in (0, 1000, 4097):
        try:
            FileFlash(_fresh("bad.img"), size)
        except FlashError as e:
            assert "multiple of 4096" in str(e), e
        else:
            raise AssertionError("flash size %d accepted" % size)


def test_littlefs_files_survive_remount():
    path = _fresh("lfs.img")
    dev = FileFlash(path, 16 * BLOCK_BYTES)
    vfs.VfsLfs2.mkfs(dev)
    _mount(dev)
    try:
        os.mkdir(_MOUNT + "/spool")
        with open(_MOUNT + "/spool/a.bin", "wb") as f:
            f.write(bytes(range(256)) * 20)
        with open(_MOUNT + "/small.txt", "w") as f:
            f.write("hello")
    finally:
        _umount()
    dev.close()

    dev = FileFlash(path, 16 * BLOCK_BYTES)
    assert not dev.created
    _mount(dev)
    try:
        assert sorted(os.listdir(_MOUNT)) == ["small.txt", "spool"]
        with open(_MOUNT + "/spool/a.bin", "rb") as f:
            assert f.read() == bytes(range(256)) * 20
        with open(_MOUNT + "/small.txt") as f:
            assert f.read() == "hello"
    finally:
        _umount()
    # Mounting and reading wrote nothing.
    assert dev.program_bytes == 0
    assert dev.erases == 0
    assert dev.read_ops > 0
    dev.close()


def test_counters_count_file_writes():
    path = _fresh("wear.img")
    dev = FileFlash(path, 16 * BLOCK_BYTES)
    vfs.VfsLfs2.mkfs(dev)
    formatted = dev.stats()
    # mkfs writes the superblock pair and the root directory.
    assert formatted["erases"] >= 2
    assert formatted["program_bytes"] > 0
    _mount(dev)
    try:
        with open(_MOUNT + "/data.bin", "wb") as f:
            f.write(b"\x00" * 10000)
    finally:
        _umount()
    after = dev.stats()
    # 10,000 bytes take three 4096-byte blocks, each erased before it is programmed.
    assert after["program_bytes"] - formatted["program_bytes"] >= 10000
    assert after["erases"] - formatted["erases"] >= 3
    assert after["program_conflicts"] == 0
    assert after["max_block_erases"] >= 1
    assert after["blocks"] == 16
    assert sum(dev.block_erases) == after["erases"]
    dev.close()


def test_full_image_raises_enospc_and_remounts():
    path = _fresh("full.img")
    dev = FileFlash(path, 8 * BLOCK_BYTES)
    vfs.VfsLfs2.mkfs(dev)
    _mount(dev)
    chunk = b"r" * 100
    written = 0
    error = None
    try:
        with open(_MOUNT + "/log.bin", "wb") as f:
            for _ in range(1000):
                try:
                    f.write(chunk)
                    f.flush()
                except OSError as e:
                    error = e
                    break
                written += len(chunk)
    except OSError as e:
        # The close may fail the same way. LittleFS keeps the last synced state.
        error = error or e
    finally:
        _umount()
    dev.close()
    assert error is not None, "8 blocks took 100 KB"
    # LittleFS 2.11 reports a full flash as ENOSPC, or ENAMETOOLONG when no
    # directory entry fits.
    assert error.errno in (28, 36), error
    assert 8000 <= written < 8 * BLOCK_BYTES, written

    dev = FileFlash(path, 8 * BLOCK_BYTES)
    _mount(dev)
    try:
        size = os.stat(_MOUNT + "/log.bin")[6]
        # Everything up to the last successful flush is there.
        assert size >= written, (size, written)
        with open(_MOUNT + "/log.bin", "rb") as f:
            assert f.read(300) == chunk * 3
        os.remove(_MOUNT + "/log.bin")
        with open(_MOUNT + "/after.txt", "w") as f:
            f.write("room again")
        with open(_MOUNT + "/after.txt") as f:
            assert f.read() == "room again"
    finally:
        _umount()
    dev.close()
