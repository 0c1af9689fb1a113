# Heap report of the virtual terminal, read from a dump of tools/sim/heapdump.py
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
"""Read a heap dump of the virtual terminal and report what keeps the heap in use.

    python tools/vterm.py run --heap-dumps --state DIR ...   # in one shell
    touch DIR/heap_dump.request                             # the dump is written within 0.5 s
    python tools/heapmap.py DIR [--paths N]

Prints the objects by kind (count and bytes), the largest free blocks, the
bytes of code and data that each firmware module keeps in the heap, and the modules in
the heap. A
module that is no longer in sys.modules is code that the firmware unloaded
while something still refers to it. For each such module the report gives
its name, its functions, and the shortest chains of references that reach it
from a named object. Exit status 1 on error, with "heapmap: message" on stderr.

The heap layout is that of the MicroPython unix port on 64-bit Linux: 32-byte
blocks, two bits per block in the allocation table, objects as 8-byte words.
The collector marks an object only through a word that holds the address of
its first block, and so does this reader.
"""

import argparse
import collections
import struct
import sys
from pathlib import Path

_PROG = "heapmap"
_FIRMWARE = ("firmware", "drivers")  # the firmware's packages; other modules are the simulator's or MicroPython's
BLOCK_BYTES = 32
_FREE, _HEAD, _TAIL = 0, 1, 2


class HeapMapError(Exception):
    pass


class Heap:
    """A heap dump: blocks, objects and the references between them."""

    def __init__(self, folder):
        folder = Path(folder)
        self.types = {}  # type word -> kind name
        self.qstrs = {}  # object word of an interned string -> the string
        self.labels = {}  # address -> what the dump named it
        self.live_modules = set()
        self.pool_start = None

        try:
            lines = (folder / "heap_dump.txt").read_text().splitlines()
            self.data = (folder / "heap_dump.bin").read_bytes()
        except OSError as e:
            raise HeapMapError("cannot read the dump in %s: %s" % (folder, e.strerror or e))
        for n, line in enumerate(lines, 1):
            parts = line.split(" ", 2)
            try:
                if parts[0] == "P":
                    self.pool_start, self.pool_end, self.area_start, self.free_logged = map(int, line.split()[1:])
                elif parts[0] == "T":
                    self.types[int(parts[2])] = parts[1]
                elif parts[0] == "Q":
                    self.qstrs[int(parts[2])] = parts[1]
                elif parts[0] == "L":
                    addr = int(parts[1])
                    self.labels.setdefault(addr, parts[2])
                    if parts[2].startswith("module "):
                        self.live_modules.add(addr)
            except (IndexError, ValueError):
                raise HeapMapError("heap_dump.txt line %d: cannot read %r" % (n, line[:80]))

        if self.pool_start is None:
            raise HeapMapError("heap_dump.txt has no P line: the dump was cut short")
        self.blocks = (self.pool_end - self.pool_start) // BLOCK_BYTES
        if len(self.data) != self.pool_end - self.area_start:
            raise HeapMapError("heap_dump.bin has %d bytes, but its P line gives %d: the dump is incomplete" % (
                len(self.data), self.pool_end - self.area_start))

        self._table = self._find_table()
        self.sizes = self._objects()
        self._referrers = None

    # The allocation table

    def _kind(self, table, i):
        return (self.data[table + i // 4] >> (2 * (i % 4))) & 3

    def _find_table(self):
        # The table starts the area the GC was given, which ends at the pool's
        # end after alignment to a block, so it is 0 to 24 bytes after the
        # computed start. Taken: the offset whose free blocks match the free
        # heap the dump logged, with no tail block after a free one.
        best = None
        for offset in range(0, BLOCK_BYTES, 8):
            prev = _FREE
            free = 0
            valid = True
            for i in range(self.blocks):
                k = self._kind(offset, i)
                if k == _TAIL and prev == _FREE:
                    valid = False
                    break
                free += k == _FREE
                prev = k
            if valid:
                diff = abs(free * BLOCK_BYTES - self.free_logged)
                if best is None or diff < best[0]:
                    best = (diff, offset)
        # A few objects (the open files) are made after the free heap is logged.
        if best is None or best[0] > 64 * BLOCK_BYTES:
            raise HeapMapError("no allocation table in heap_dump.bin matches the logged free heap of %d bytes"
                               % self.free_logged)
        return best[1]

    def _objects(self):
        sizes = {}
        i = 0
        while i < self.blocks:
            if self._kind(self._table, i) == _HEAD:
                j = i + 1
                while j < self.blocks and self._kind(self._table, j) == _TAIL:
                    j += 1
                sizes[self.pool_start + i * BLOCK_BYTES] = (j - i) * BLOCK_BYTES
                i = j
            else:
                i += 1
        return sizes

    # Objects

    def word(self, addr):
        return struct.unpack_from("<Q", self.data, addr - self.area_start)[0]

    def words(self, addr):
        return struct.unpack_from("<%dQ" % (self.sizes[addr] // 8), self.data, addr - self.area_start)

    def kind(self, addr):
        """Return the kind of the object at addr: a type name, "instance of X", or "?" (raw data, code, tables)."""
        t = self.word(addr)
        if t in self.types:
            return self.types[t]
        if t in self.sizes:
            return "instance of " + self.labels.get(t, "a class at %x" % t)
        return "?"

    def module_name(self, addr):
        """Return the __name__ in the globals of the module object at addr, or None."""
        globals_ = self.word(addr + 8)
        if globals_ not in self.sizes:
            return None
        # A dict is (type, map), and the map is (used and flags, alloc, table of key/value pairs).
        alloc, table = self.word(globals_ + 16), self.word(globals_ + 24)
        if table not in self.sizes:
            return None
        for i in range(min(alloc, self.sizes[table] // 16)):
            if self.qstrs.get(self.word(table + 16 * i)) == "__name__":
                value = self.word(table + 16 * i + 8)
                return self.qstrs.get(value, "a name not in the dump (%x)" % value)
        return None

    def describe(self, addr):
        kind = self.kind(addr)
        text = "%x %s, %d bytes" % (addr, kind, self.sizes[addr])
        if addr in self.labels:
            text += " (%s)" % self.labels[addr]
        elif kind in ("function", "generator_function"):
            # (type, module, ...)
            module = self.word(addr + 8)
            if module in self.sizes:
                text += " of %s" % self.labels.get(module, "module %s" % self.module_name(module))
        elif kind in ("closure", "generator", "bound_method"):
            # A generator is (type, pending exception, function, ...), a closure or bound method (type, function, ...).
            fun = self._function(addr)
            text += " of %s" % (self.labels.get(fun) or (self.describe(fun) if fun in self.sizes else "?"))
        elif kind == "module":
            text += " %s" % self.module_name(addr)
        return text

    def _function(self, addr):
        return self.word(addr + (16 if self.kind(addr) == "generator" else 8))

    def _named(self, addr):
        # A chain ends at an object that the dump named, or at the frame of a named coroutine.
        if addr in self.labels:
            return True
        return self.kind(addr) == "generator" and self._function(addr) in self.labels

    def referrers(self, addr):
        if self._referrers is None:
            refs = collections.defaultdict(list)
            for a in self.sizes:
                for w in self.words(a):
                    if w in self.sizes and w != a:
                        refs[w].append(a)
            self._referrers = refs
        return self._referrers.get(addr, [])

    def dead_modules(self):
        """Return the module objects that are not in sys.modules, as [(address, name)]."""
        out = []
        for addr in self.sizes:
            if self.kind(addr) == "module" and addr not in self.live_modules:
                out.append((addr, self.module_name(addr)))
        return out

    def functions_of(self, module):
        return [a for a in self.sizes if self.kind(a) in ("function", "generator_function") and self.word(a + 8) == module]

    def kept_bytes(self, addr):
        """Return the bytes of the objects that addr reaches without passing through a named object or another module."""
        return self._reach_bytes(addr, {addr}, lambda w: not self._named(w) and self.kind(w) != "module")

    def _reach_bytes(self, addr, seen, follow):
        # Sum the sizes of addr and of every object reached from it through
        # objects that follow() accepts and that are not in seen yet. Each
        # object reached is added to seen.
        stack = [addr]
        total = 0
        while stack:
            a = stack.pop()
            total += self.sizes[a]
            for w in self.words(a):
                if w in self.sizes and w not in seen and follow(w):
                    seen.add(w)
                    stack.append(w)
        return total

    def module_bytes(self):
        """Return {module name: bytes} of the code and data that each module in sys.modules keeps in the heap.

        A module keeps its globals and what they reach: functions defined in
        it, classes, constants, bytecode. The walk stops at instances, tasks,
        coroutines, bound methods and closures, which belong to the running
        program rather than to a module, and at functions of other modules.
        An object reached from two modules counts for the first in name order
        (firmware and drivers first).
        """
        stop = ("Task", "generator", "bound_method", "closure", "module")
        owned = set()
        out = {}
        names = {}
        for addr in self.live_modules:
            names[self.labels[addr][len("module "):]] = addr

        for name in sorted(names, key=lambda n: (not n.startswith(_FIRMWARE), n)):
            addr = names[name]

            def follow(w, module=addr):
                k = self.kind(w)
                if k in stop or k.startswith("instance of "):
                    return False
                return k not in ("function", "generator_function") or self.word(w + 8) == module

            owned.add(addr)
            out[name] = self._reach_bytes(addr, owned, follow)
        return out

    def free_blocks(self):
        """Return the sizes in bytes of the runs of free blocks, largest first."""
        runs = []
        run = 0
        for i in range(self.blocks):
            if self._kind(self._table, i) == _FREE:
                run += 1
            elif run:
                runs.append(run * BLOCK_BYTES)
                run = 0
        if run:
            runs.append(run * BLOCK_BYTES)
        runs.sort(reverse=True)
        return runs

    def holder_paths(self, addr, count=3, depth=20):
        """Return the shortest reference chains from named objects to addr, each a list that starts at the named object."""
        parent = {addr: None}
        queue = collections.deque([(addr, 0)])
        found = []
        while queue and len(found) < count:
            a, d = queue.popleft()
            if d >= depth:
                continue
            for r in self.referrers(a):
                if r in parent:
                    continue
                # A module's own functions refer to it, but they do not keep it alive.
                if a == addr and self.kind(r) in ("function", "generator_function") and self.word(r + 8) == addr:
                    continue
                parent[r] = a
                if self._named(r):
                    found.append(r)
                    if len(found) >= count:
                        break
                else:
                    queue.append((r, d + 1))
        paths = []
        for start in found:
            path = []
            a = start
            while a is not None:
                path.append(a)
                a = parent[a]
            paths.append(path)
        return paths


def report(heap, out, paths=3):
    kinds = collections.Counter()
    total = collections.Counter()
    for addr, size in heap.sizes.items():
        k = heap.kind(addr)
        if k.startswith("instance of "):
            k = "instance"
        kinds[k] += 1
        total[k] += size
    used = sum(heap.sizes.values())
    out.write("heap (firmware and simulator): %d bytes in %d objects, %d bytes free (pool %x, %d blocks)\n" % (
        used, len(heap.sizes), heap.free_logged, heap.pool_start, heap.blocks))
    out.write("%-18s %8s %8s\n" % ("kind", "objects", "bytes"))
    for k in sorted(total, key=lambda k: -total[k]):
        out.write("%-18s %8d %8d\n" % ("raw data, code" if k == "?" else k, kinds[k], total[k]))
    free = heap.free_blocks()
    out.write("free: %d runs of free blocks; the largest %s bytes\n" % (
        len(free), ", ".join(str(n) for n in free[:5]) or "none"))
    sizes = heap.module_bytes()
    fw = sorted((n for n in sizes if n.startswith(_FIRMWARE)), key=lambda n: -sizes[n])
    out.write("\ncode and data kept by the firmware's modules: %d bytes in %d modules\n" % (
        sum(sizes[n] for n in fw), len(fw)))
    for n in fw:
        out.write("  %8d  %s\n" % (sizes[n], n))
    others = [n for n in sizes if not n.startswith(_FIRMWARE)]
    out.write("kept by other modules (simulator, asyncio): %d bytes in %d modules\n\n" % (
        sum(sizes[n] for n in others), len(others)))
    dead = heap.dead_modules()
    out.write("modules: %d in sys.modules, %d unloaded but still in the heap\n" % (len(heap.live_modules), len(dead)))
    for addr, name in dead:
        out.write("\nunloaded module %s still in the heap: %d functions, about %d bytes with its code and data\n"
                  % (name, len(heap.functions_of(addr)), heap.kept_bytes(addr)))
        chains = heap.holder_paths(addr, paths)
        if not chains:
            out.write("  held by nothing in the heap: a word on the C stack or a root pointer\n")
        for chain in chains:
            out.write("  held through:\n")
            for a in chain:
                out.write("    %s\n" % heap.describe(a))
    return dead


def main(argv=None):
    p = argparse.ArgumentParser(prog=_PROG, description="Report what keeps the virtual terminal's heap in use, from a heap dump.")
    p.add_argument("folder", help="the state folder that contains heap_dump.txt and heap_dump.bin")
    p.add_argument("--paths", type=int, default=3, help="reference chains shown per unloaded module (default 3)")
    args = p.parse_args(argv)
    try:
        report(Heap(args.folder), sys.stdout, args.paths)
    except HeapMapError as e:
        print("%s: %s" % (_PROG, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
