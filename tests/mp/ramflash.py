# Flash stand-in for the unit tests: LittleFS on a bytearray, as the firmware's spool runs on the ESP32
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

BLOCK_BYTES = 4096
_ERASED_BLOCK = b"\xff" * BLOCK_BYTES  # NOR flash reads 0xFF after an erase


class RAMBlockDevice:
    """Block device over a bytearray with the extended interface that vfs.VfsLfs2 uses."""

    def __init__(self, block_count, data=None):
        self.block_count = block_count
        self.data = data if data is not None else bytearray(block_count * BLOCK_BYTES)
        # When a list, every write is logged to it as (byte offset, bytes), so
        # that the flash as it was after any write can be rebuilt.
        self.writes = None

    def readblocks(self, block, buf, offset=0):
        start = block * BLOCK_BYTES + offset
        memoryview(buf)[:] = memoryview(self.data)[start : start + len(buf)]

    def _program(self, start, data):
        memoryview(self.data)[start : start + len(data)] = data
        if self.writes is not None:
            self.writes.append((start, bytes(data)))

    def writeblocks(self, block, buf, offset=0):
        self._program(block * BLOCK_BYTES + offset, buf)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.block_count
        if op == 5:  # block size
            return BLOCK_BYTES
        if op == 6:  # erase
            self._program(arg * BLOCK_BYTES, _ERASED_BLOCK)
        return 0
