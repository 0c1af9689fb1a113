# Heap taken by the record store and the uplink under the unix port, for a run with -X heapsize=112wK
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Run by tools/bench.py from the repository root:
#   micropython -X heapsize=112wK tools/bench/heap_mp.py WORKDIR
# Prints one "name|value|unit|note" row per measurement. Every figure is a
# gc.mem_alloc() difference after gc.collect(), on this 64-bit port, where
# pointers and object headers take twice the bytes they take on the ESP32.
# Buffers (bytearrays) take the same bytes on both.

import gc
import sys

sys.path[:] = ["build/bench", ".frozen"]

from firmware import config, defaults


def row(name, value, unit, note=""):
    print("%s|%s|%s|%s" % (name, value, unit, note))


def allocated():
    gc.collect()
    return gc.mem_alloc()


def main():
    workdir = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
    cfg = config.merge(defaults.DEFAULTS, {"spool": {"dir": workdir + "/heap-spool"}})
    total = gc.mem_free() + gc.mem_alloc()

    start = allocated()
    from firmware.store import Store
    from firmware.uplink import Uplink

    imported = allocated()
    store = Store(cfg)
    with_store = allocated()
    # Both objects stay referenced from this frame while the heap is measured.
    uplink = Uplink(cfg, "esp32-a4cf12b3c0de", store, boot_id=3, fw="bench")
    with_uplink = allocated()

    row("heap: store + uplink modules", imported - start, "bytes", "store, spool, packed, clock, log, uplink, mqtt (.mpy)")
    row("heap: Store object", with_store - imported, "bytes", "2 spools with their 1 KiB batch and frame buffers, names, clocks")
    row("heap: Uplink object", with_uplink - with_store, "bytes", "topics, MQTTClient and its buffers, not connected")
    row("heap: Store + Uplink objects", with_uplink - imported, "bytes", "of a %d-byte heap (-X heapsize=112wK)" % total)


main()
