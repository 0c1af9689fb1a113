# Heap dumps of the virtual terminal, which tools/heapmap.py reads to report what keeps the heap in use
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Host only, loaded by tools/sim/vterm_main.py when VTERM_HEAP_DUMPS is set
# (tools/vterm.py run --heap-dumps). Then:
#   1. At start, micropython.mem_info(1) prints where the GC pool starts.
#      tools/vterm.py writes that address to <state>/heap_pool.txt and leaves
#      the rest of the block map out of its output.
#   2. watch() is a task in the firmware's loop. When <state>/heap_dump.request
#      exists, it deletes the file, collects, and writes:
#        heap_dump.txt  "P", "T", "Q" and "L" lines (see _write_labels)
#        heap_dump.bin  the whole heap area: allocation table, then the pool
#
# The dump runs between two tasks of the loop, so no firmware frame is on the
# C stack, and a collection there frees what the firmware no longer refers to.
#
# It needs the unix port's 64-bit object layout (REPR_A, 8-byte words),
# uctypes and the address printed by mem_info(1).

import gc
import os
import sys
from array import array

import uctypes
from micropython import const

_POLL_MS = const(500)
_REQUEST = "/heap_dump.request"
_POOL = "/heap_pool.txt"


def print_pool():
    """Print the GC block map, whose first line gives the pool's address."""
    import micropython

    micropython.mem_info(1)


def _word(addr):
    return uctypes.struct(addr, {"w": uctypes.UINT64 | 0}).w


class _Names:
    pass


def _qstr_word(name):
    # The object word of the interned string name, as a module's globals
    # store its __name__. setattr() interns it, and dir() returns it. The
    # attribute is deleted again, so that the class stays small.
    setattr(_Names, name, None)
    for k in dir(_Names):
        if k == name:
            name = k
    delattr(_Names, name)
    box = [name]
    # A list object is (type, alloc, len, items): the first item's word.
    return _word(_word(id(box) + 24))


def _module_names():
    # Names of the firmware's modules, also those not loaded now, so that a
    # module left in the heap after it was unloaded can be named.
    out = []
    for root in ("/code", "/app"):
        for pkg in ("firmware", "drivers"):
            try:
                files = os.listdir(root + "/" + pkg)
            except OSError:
                continue
            for f in files:
                if f.endswith(".py") or f.endswith(".mpy"):
                    name = pkg + "." + f.rsplit(".", 1)[0]
                    if name not in out:
                        out.append(name)
    return out


def _write_labels(fh):
    # T name word: the type word of an object of that kind.
    def fun():
        pass

    def gen():
        yield

    def outer(x):
        return lambda: x

    class Cls:
        def meth(self):
            pass

    for name, obj in (("function", fun), ("generator_function", gen), ("generator", gen()), ("closure", outer(1)), ("bound_method", Cls().meth),
                      ("module", sys), ("dict", {}), ("str", "a string that is not interned"),
                      ("bytes", b"x" * 40), ("bytearray", bytearray(1)), ("list", []), ("tuple", (1, 2)),
                      ("type", Cls), ("memoryview", memoryview(b"")), ("float", 1.5), ("array", array("b"))):
        fh.write("T %s %d\n" % (name, _word(id(obj))))
    import asyncio

    fh.write("T Task %d\n" % _word(id(asyncio.current_task())))
    # Q name word: interned module names, and __name__ itself.
    for name in ["__name__", "__main__"] + list(sys.modules) + _module_names():
        fh.write("Q %s %d\n" % (name, _qstr_word(name)))
    # L address text: every loaded module, its globals, and what they name.
    for name in list(sys.modules):
        m = sys.modules[name]
        fh.write("L %d module %s\n" % (id(m), name))
        d = m.__dict__
        fh.write("L %d globals of %s\n" % (id(d), name))
        for k in list(d):
            v = d[k]
            kind = type(v).__name__
            if kind in ("function", "generator", "closure", "type", "dict", "list", "bytearray", "tuple"):
                fh.write("L %d %s.%s\n" % (id(v), name, k))
            if kind == "type":
                attrs = v.__dict__
                for a in list(attrs):
                    fh.write("L %d %s.%s.%s\n" % (id(attrs[a]), name, k, a))


def dump(prefix="/heap_dump"):
    """Write prefix.txt and prefix.bin, and return the free heap at the dump."""
    with open(_POOL) as f:
        pool_start = int(f.read().strip(), 16)
    heap_bytes = int(os.getenv("VTERM_HEAP_BYTES"))
    with open(prefix + ".txt", "w") as fh:
        _write_labels(fh)
        gc.collect()
        total = gc.mem_alloc() + gc.mem_free()
        pool_end = pool_start + total
        # The pool ends where the area given to the GC ends, and the allocation
        # table starts the area: up to one block earlier after alignment.
        area = uctypes.bytearray_at(pool_end - heap_bytes, heap_bytes)
        # Written last: the table in the .bin describes the heap with these objects.
        fh.write("P %d %d %d %d\n" % (pool_start, pool_end, pool_end - heap_bytes, gc.mem_free()))
    with open(prefix + ".bin", "wb") as fb:
        fb.write(area)
    return gc.mem_free()


async def watch():
    """Dump the heap each time the request file appears (a task in the firmware's loop)."""
    import asyncio

    while True:
        await asyncio.sleep_ms(_POLL_MS)
        try:
            os.remove(_REQUEST)
        except OSError:
            continue
        try:
            free = dump()
        except Exception as e:
            # The dump allocates in the firmware's heap, so it can fail, and the firmware runs on.
            print("[sim] heap dump failed: %r" % e)
            continue
        print("[sim] heap dump written, %d bytes free" % free)
