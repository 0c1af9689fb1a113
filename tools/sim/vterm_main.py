# The virtual terminal's start, run by tools/sim/vterm_boot.py: the firmware on the MicroPython unix port with simulated hardware
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# tools/vterm.py runs, from the repository root:
#   micropython -X heapsize=112wK tools/sim/vterm_boot.py
# with these environment variables:
#   VTERM_STATE        absolute path of the folder that plays the device flash
#   VTERM_SCENARIO     path of the scenario JSON (docs/scenario.md)
#   VTERM_REPO         absolute path of the repository
#   VTERM_VERBOSE      "1" prints simulator events as "[sim] ..." lines
#   VTERM_CODE         optional: absolute path of a folder made by `vterm.py build
#                      --with-sim` (firmware/, drivers/ and sim/ as .mpy, boot.py,
#                      main.py), mounted at /code and run instead of the sources,
#                      as a board runs what `make deploy` copied
#   VTERM_RESET_CAUSE  optional: what machine.reset_cause() returns in this run
#                      (1 power-on, the default; 2 after status 125; 3 after
#                      status 3; 5 after status 126)
#   VTERM_FLASH_KIB    optional: size in KiB (a multiple of 4, at least 16)
#                      of a LittleFS flash image, <state>/flash.img, mounted
#                      at /spool (formatted when the file is missing)
#   VTERM_FIRMWARE_HEAP optional: the firmware's heap in bytes (--heap). The
#                      heap the simulator leaves beyond it is taken by a
#                      ballast, so the firmware runs out of memory where a
#                      board would.
#   VTERM_HEAP_DUMPS   optional: "1" loads tools/sim/heapdump.py, which dumps
#                      the heap when <state>/heap_dump.request appears
#   VTERM_HEAP_BYTES   the -X heapsize of this interpreter in bytes (needed
#                      with VTERM_HEAP_DUMPS)
#
# Steps:
# 1. Mount the repository read-only at /app and import the simulator from
#    /app/tools/sim, so `machine`, `onewire`, `ds18x20` and `dht` are the
#    simulated ones for the firmware too.
# 2. Read the scenario and create the World (relative file names in the
#    scenario are relative to the repository, i.e. under /app).
# 3. Replace '/' by the state folder, as the flash filesystem of a board:
#    the firmware's /config.json is <state>/config.json. Unlike on a board,
#    os.listdir('/') also lists the mount point 'app'. With VTERM_FLASH_KIB,
#    /spool is LittleFS (vfs.VfsLfs2, as on the ESP32) on the file-backed
#    flash of tools/sim/flash.py, so a full flash and a power cut in the
#    middle of a write behave as on a board.
# 4. Wrap asyncio.run(): the coroutine the firmware passes in runs next to
#    the world task (world.World.run, which calls Pin.irq() handlers and
#    checks the watchdog) in the same loop. The firmware is not changed; it
#    only has to start its loop with asyncio.run(), as main.py does.
# 5. Run /app/boot.py and then /app/main.py as __main__ in one globals dict,
#    as a board does. As on a board, main.py is skipped when boot.py raises.
#
# Exit status: 0 main.py returned, 1 main.py raised, 2 bad environment or
# scenario, 3 watchdog reset, 125 machine.reset(), 126 machine.soft_reset()
# or SystemExit in boot.py (a board soft-resets), 130 Ctrl-C. When main.py
# ends while the watchdog runs, the script waits for the watchdog to expire,
# because a board in the REPL would be reset by it.

import gc
import os
import sys
import time

import vfs
from micropython import const

_APP = "/app"
_CODE = "/code"
_SPOOL = "/spool"
_FLASH_IMAGE = "flash.img"
_FLASH_MIN_KIB = 16
_COPY_BYTES = 512


class _StateVfs(vfs.VfsPosix):
    # Workaround: VfsPosix.rename() of this unix-port build converts both paths
    # into one shared buffer, so renaming inside a VfsPosix with a root folder
    # fails with ENOENT. Copying keeps the firmware's write-then-rename working
    # here (not atomic, unlike LittleFS on a board); remove when the port is fixed.
    # The copy goes through a buffer made once, counted as the simulator's: it
    # shares the firmware's heap, and a rename on a board allocates nothing.
    _buf = bytearray(_COPY_BYTES)

    def rename(self, old, new):
        buf = self._buf
        with open(old, "rb") as src, open(new, "wb") as dst:
            while True:
                n = src.readinto(buf)
                if not n:
                    break
                dst.write(memoryview(buf)[:n])
        os.remove(old)


def _fail(msg):
    print("vterm_boot: " + msg)
    return 2


def _run_file(path, g):
    with open(path) as f:
        source = f.read()
    code = compile(source, path, "exec")
    del source
    gc.collect()
    exec(code, g)


def _install_asyncio_hook(w):
    import asyncio

    run = asyncio.run

    async def with_world(coro):
        task = w.start_in_loop()
        dumps = None
        if "heapdump" in sys.modules:
            dumps = asyncio.create_task(sys.modules["heapdump"].watch())
        try:
            return await coro
        finally:
            task.cancel()
            if dumps is not None:
                dumps.cancel()

    def run_with_world(coro):
        return run(with_world(coro))

    asyncio.run = run_with_world


def _wait_for_watchdog(w):
    # A board whose main.py has ended sits in the REPL until the watchdog bites.
    if w.watchdog_timeout_ms is None:
        return
    while not w.watchdog_expired():
        time.sleep_ms(50)
    print("WDT timeout")
    w.exit_status = 3


def _open_flash(state, kib_text):
    # Returns the block device of <state>/flash.img, or an error message. The
    # file is opened through the host path, before '/' is replaced.
    import flash

    try:
        kib = int(kib_text)
    except ValueError:
        kib = -1
    if kib < _FLASH_MIN_KIB or kib % 4:
        return "VTERM_FLASH_KIB must be a multiple of 4 of at least %d, got %r" % (_FLASH_MIN_KIB, kib_text)
    try:
        return flash.FileFlash(state + "/" + _FLASH_IMAGE, kib * 1024)
    except OSError as e:
        return "cannot open the flash image: %s" % (e.args[-1],)


def _mount_flash(dev):
    # Returns None, or an error message. A new image is formatted first, as a
    # board formats a blank flash at its first boot.
    try:
        if dev.created:
            vfs.VfsLfs2.mkfs(dev)
        vfs.mount(vfs.VfsLfs2(dev), _SPOOL)
    except OSError as e:
        return "cannot mount LittleFS of %s at %s: %s (delete the file to format a new one)" % (dev.path, _SPOOL, e)
    return None


def _boot(w, root):
    # Returns the exit status of one run of boot.py and main.py.
    g = {"__name__": "__main__"}
    try:
        _run_file(root + "/boot.py", g)
    except SystemExit:
        if w.exit_status is not None:
            return w.exit_status
        return 126
    except Exception as e:
        print("[sim] boot.py raised, main.py is skipped as on a board:")
        sys.print_exception(e)
        _wait_for_watchdog(w)
        return w.exit_status or 0

    status = 0
    try:
        _run_file(root + "/main.py", g)
    except SystemExit as e:
        if w.exit_status is not None:
            return w.exit_status
        return e.args[0] if e.args and isinstance(e.args[0], int) else 0
    except Exception as e:
        sys.print_exception(e)
        status = 1
    _wait_for_watchdog(w)
    return w.exit_status or status


def main(heap_before):
    """Run the terminal; heap_before is what the interpreter had allocated before any simulator code."""
    state = os.getenv("VTERM_STATE")
    scenario_path = os.getenv("VTERM_SCENARIO")
    repo = os.getenv("VTERM_REPO")
    if not state or not scenario_path or not repo:
        return _fail("VTERM_STATE, VTERM_SCENARIO and VTERM_REPO must be set (tools/vterm.py sets them)")
    try:
        reset_cause = int(os.getenv("VTERM_RESET_CAUSE") or "1")
    except ValueError:
        return _fail("VTERM_RESET_CAUSE must be 1..5, got %r" % os.getenv("VTERM_RESET_CAUSE"))

    # 1. The repository at /app, and the simulator before the firmware on sys.path.
    try:
        vfs.mount(vfs.VfsPosix(repo), _APP, readonly=True)
    except OSError as e:
        return _fail("cannot mount the repository %s at %s: %s" % (repo, _APP, e))
    code = os.getenv("VTERM_CODE")
    if code:
        try:
            vfs.mount(vfs.VfsPosix(code), _CODE, readonly=True)
        except OSError as e:
            return _fail("cannot mount the compiled firmware %s at %s: %s" % (code, _CODE, e))
        search = [_CODE + "/sim", _CODE]
        root = _CODE
    else:
        search = [_APP + "/tools/sim", _APP]
        root = _APP
    sys.path[:] = search + [".frozen"]

    # 2. The world, while host paths (the scenario file) are still reachable.
    import scenario
    import world

    try:
        data = scenario.read(scenario_path)
        w = world.World(data, base_dir=_APP, verbose=os.getenv("VTERM_VERBOSE") == "1")
    except scenario.ScenarioError as e:
        return _fail("invalid scenario %s:\n%s" % (scenario_path, e))
    # The host tool applies "config"; the simulator keeps nothing of the raw file.
    del data
    w.reset_cause = reset_cause
    world.set_current(w)
    # The firmware imports these anyway; importing them here lets the log
    # line below tell how much of the heap the simulator takes.
    import dht
    import ds18x20
    import machine
    import nmea_replay
    import onewire

    if os.getenv("VTERM_HEAP_DUMPS"):
        import heapdump

        heapdump.print_pool()

    flash_dev = None
    if os.getenv("VTERM_FLASH_KIB"):
        flash_dev = _open_flash(state, os.getenv("VTERM_FLASH_KIB"))
        if isinstance(flash_dev, str):
            return _fail(flash_dev)

    # 3. The state folder as the device filesystem, and the flash image in it.
    try:
        vfs.umount("/")
        vfs.mount(_StateVfs(state), "/")
    except OSError as e:
        return _fail("cannot mount the state folder %s at /: %s" % (state, e))
    os.chdir("/")
    if flash_dev is not None:
        error = _mount_flash(flash_dev)
        if error:
            return _fail(error)
    sys.path[:] = search + ["/lib", ".frozen"]

    # 4. and 5.
    _install_asyncio_hook(w)
    gc.collect()
    sim_use = gc.mem_alloc() - heap_before
    # Always printed: tests subtract it to get the firmware's own share of the heap.
    print("[sim] scenario %s, reset cause %d, simulator heap use %d bytes of %d"
          % (w.name, reset_cause, sim_use, gc.mem_alloc() + gc.mem_free()))
    budget = os.getenv("VTERM_FIRMWARE_HEAP")
    if budget:
        error = _take_ballast(w, int(budget), heap_before)
        if error:
            return _fail(error)
    if flash_dev is not None:
        print("[sim] flash %s: %d KiB LittleFS at %s, %s" % (
            _FLASH_IMAGE, flash_dev.size_bytes // 1024, _SPOOL, "formatted" if flash_dev.created else "mounted"))
    try:
        status = _boot(w, root)
    except KeyboardInterrupt:
        status = 130
    if flash_dev is not None:
        # Only when the interpreter ends by itself: a SIGKILL prints nothing.
        print("[sim] flash wear this run: %s" % _wear_text(flash_dev.stats()))
    return status


# Each chunk is a bytearray: 1024 bytes of data and a 32-byte object, plus
# its 8-byte slot in the list.
_BALLAST_CHUNK = const(1024)
_BALLAST_CHUNK_COST = const(1064)
_BALLAST_SLACK_SLOTS = const(8)


def _take_ballast(w, budget, base):
    # What was allocated before the simulator started (this script's bytecode,
    # sys.path) counts as the firmware's, as a board's boot state does. Chunks
    # are freed as the firmware makes simulated board objects (machine.py
    # counts them in w.board_heap_bytes), because on a board those are not in
    # the Python heap.
    spare = gc.mem_free() - (budget - base) - _BALLAST_SLACK_SLOTS * 8
    if spare < 0:
        return "the simulator leaves %d bytes of heap, less than the firmware's %d: raise SIM_HEAP in tools/vterm.py" % (
            gc.mem_free() + base, budget)
    before = gc.mem_alloc()
    n = spare // _BALLAST_CHUNK_COST
    chunks = [None] * (n + _BALLAST_SLACK_SLOTS)
    for i in range(n):
        chunks[i] = bytearray(_BALLAST_CHUNK)
    # The collector is conservative: a start-up object that a stale stack
    # word kept alive at the last collection may be freed now. Take that too,
    # into the spare slots, so the firmware has its budget to within a chunk.
    gc.collect()
    while n < len(chunks) and gc.mem_free() + base - budget >= _BALLAST_CHUNK_COST - 8:
        chunks[n] = bytearray(_BALLAST_CHUNK)
        n += 1
        gc.collect()
    del chunks[n:]
    w.hold_ballast(chunks, _BALLAST_CHUNK_COST)
    gc.collect()
    # Always printed: the firmware's heap is what is left plus what it had at the start.
    print("[sim] ballast %d bytes, so the firmware has %d bytes of heap" % (
        gc.mem_alloc() - before, gc.mem_free() + base))
    return None


def _wear_text(st):
    return "%d erases (at most %d of one block), %d bytes programmed, %d bytes read" % (
        st["erases"], st["max_block_erases"], st["program_bytes"], st["read_bytes"])

