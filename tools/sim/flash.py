# File-backed NOR flash block device for vfs.VfsLfs2 on the unix port, with wear counters
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage (MicroPython):
#   import flash, vfs
#   dev = flash.FileFlash("state/flash.img", 64 * 1024)   # creates an erased image if missing
#   if dev.created:
#       vfs.VfsLfs2.mkfs(dev)
#   vfs.mount(vfs.VfsLfs2(dev), "/spool")
#   print(dev.stats())        # reads, programmed bytes, erases, most erases of one block
#
# The image file is the flash: erased bytes are 0xFF, an erase sets a whole
# 4096-byte block to 0xFF, and programming can only clear bits (the new byte is
# the AND of the old one and the written one), as on the SPI NOR flash of an
# ESP32 module. A program that would need to set a bit counts in
# program_conflicts, because LittleFS always erases a block before it programs
# it again. Erases and programs go to the file descriptor in write() calls of
# up to 256 bytes (the unix port's files have no user-space buffer), so the
# image survives a SIGKILL of the interpreter as flash survives a power cut,
# and a SIGKILL in the middle of an operation leaves it partly done, as a power
# cut does.
#
# The block device protocol is the extended one that vfs.VfsLfs2 uses:
# readblocks(block, buf, offset), writeblocks(block, buf, offset) programs
# without erasing, and ioctl(6, block) erases one block.

import os

from micropython import const

BLOCK_BYTES = const(4096)
ERASED = const(0xFF)
_CHUNK_BYTES = const(256)  # erases and programs go to the file in pieces of this size

_IOCTL_INIT = const(1)
_IOCTL_DEINIT = const(2)
_IOCTL_SYNC = const(3)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_BLOCK_ERASE = const(6)
_EINVAL = const(22)
_EIO = const(5)


class FlashError(OSError):
    """An image file that does not fit the requested flash, or an access outside the flash."""


def _file_size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


class FileFlash:
    """A flash chip of size_bytes in 4096-byte erase blocks, stored in the file at path."""

    def __init__(self, path, size_bytes):
        if size_bytes <= 0 or size_bytes % BLOCK_BYTES:
            raise FlashError(_EINVAL, "flash size must be a positive multiple of %d bytes, got %d" % (BLOCK_BYTES, size_bytes))
        self.path = path
        self.block_count = size_bytes // BLOCK_BYTES
        self.size_bytes = size_bytes

        # Erased bytes and a scratch buffer for the AND of a program, allocated
        # once and small, because the simulator shares the firmware's heap.
        self._erased = bytearray(_CHUNK_BYTES)
        for i in range(_CHUNK_BYTES):
            self._erased[i] = ERASED
        self._scratch = bytearray(_CHUNK_BYTES)
        self._scratch_mv = memoryview(self._scratch)

        existing = _file_size(path)
        self.created = existing < 0
        if self.created:
            self._create()
        elif existing != size_bytes:
            raise FlashError(_EINVAL, "flash image %s has %d bytes, not %d: delete it to make a new one" % (path, existing, size_bytes))
        self._file = open(path, "r+b")

        self.read_ops = 0
        self.read_bytes = 0
        self.program_ops = 0
        self.program_bytes = 0
        self.program_conflicts = 0
        self.erases = 0
        self.block_erases = [0] * self.block_count  # erases of each block

    def _create(self):
        # A new chip comes erased.
        with open(self.path, "wb") as f:
            for _ in range(self.block_count * (BLOCK_BYTES // _CHUNK_BYTES)):
                f.write(self._erased)

    def _check(self, block, offset, n):
        if not 0 <= block < self.block_count or offset < 0 or offset + n > BLOCK_BYTES:
            raise FlashError(_EIO, "flash access of %d bytes at block %d offset %d is outside %d blocks" % (n, block, offset, self.block_count))

    def readblocks(self, block, buf, offset=0):
        """Read len(buf) bytes from offset in block into buf."""
        n = len(buf)
        self._check(block, offset, n)
        f = self._file
        f.seek(block * BLOCK_BYTES + offset)
        if f.readinto(buf) != n:
            raise FlashError(_EIO, "short read from %s at block %d" % (self.path, block))
        self.read_ops += 1
        self.read_bytes += n

    def writeblocks(self, block, buf, offset=None):
        """Program buf at offset in block. Without an offset, erase the block first (the simple protocol)."""
        n = len(buf)
        if offset is None:
            self._erase(block)
            offset = 0
        self._check(block, offset, n)
        f = self._file
        address = block * BLOCK_BYTES + offset

        # NOR programming only clears bits: the result is old AND new.
        conflict = False
        done = 0
        while done < n:
            size = min(n - done, _CHUNK_BYTES)
            old = self._scratch_mv[:size]
            f.seek(address + done)
            f.readinto(old)
            for i in range(size):
                b = buf[done + i]
                if b & old[i] != b:
                    conflict = True
                old[i] &= b
            f.seek(address + done)
            f.write(old)
            done += size
        if conflict:
            self.program_conflicts += 1
        self.program_ops += 1
        self.program_bytes += n

    def _erase(self, block):
        self._check(block, 0, BLOCK_BYTES)
        f = self._file
        f.seek(block * BLOCK_BYTES)
        for _ in range(BLOCK_BYTES // _CHUNK_BYTES):
            f.write(self._erased)
        self.erases += 1
        self.block_erases[block] += 1

    def ioctl(self, op, arg):
        """Return the result of block device control request op: 0 when done, the block count or size, or -EINVAL."""
        if op == _IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == _IOCTL_BLOCK_SIZE:
            return BLOCK_BYTES
        if op == _IOCTL_BLOCK_ERASE:
            self._erase(arg)
            return 0
        if op == _IOCTL_SYNC:
            self._file.flush()
            return 0
        if op == _IOCTL_INIT or op == _IOCTL_DEINIT:
            return 0
        return -_EINVAL

    def stats(self):
        """Return the wear counters since this object was made, as a dict."""
        return {
            "read_ops": self.read_ops,
            "read_bytes": self.read_bytes,
            "program_ops": self.program_ops,
            "program_bytes": self.program_bytes,
            "program_conflicts": self.program_conflicts,
            "erases": self.erases,
            "max_block_erases": max(self.block_erases),
            "blocks": self.block_count,
        }

    def close(self):
        self._file.close()
