# Start script of the virtual terminal: the firmware on the MicroPython unix port with simulated hardware
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
#
# Steps:
# 1. Mount the repository read-only at /app and import the simulator from
#    /app/tools/sim, so `machine`, `onewire`, `ds18x20` and `dht` are the
#    simulated ones for the firmware too.
# 2. Read the scenario and create the World (relative file names in the
#    scenario are relative to the repository, i.e. under /app).
# 3. Replace '/' by the state folder, as the flash filesystem of a board:
#    the firmware's /config.json is <state>/config.json. Unlike on a board,
#    os.listdir('/') also lists the mount point 'app'.
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

_APP = "/app"
_CODE = "/code"


class _StateVfs(vfs.VfsPosix):
    # Workaround: VfsPosix.rename() of this unix-port build converts both paths
    # into one shared buffer, so renaming inside a VfsPosix with a root folder
    # fails with ENOENT. Copying keeps the firmware's write-then-rename working
    # here (not atomic, unlike LittleFS on a board); remove when the port is fixed.
    def rename(self, old, new):
        with open(old, "rb") as f:
            data = f.read()
        with open(new, "wb") as f:
            f.write(data)
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
        try:
            return await coro
        finally:
            task.cancel()

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


def main():
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
    gc.collect()
    heap_before = gc.mem_alloc()
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

    # 3. The state folder as the device filesystem.
    try:
        vfs.umount("/")
        vfs.mount(_StateVfs(state), "/")
    except OSError as e:
        return _fail("cannot mount the state folder %s at /: %s" % (state, e))
    os.chdir("/")
    sys.path[:] = search + ["/lib", ".frozen"]

    # 4. and 5.
    _install_asyncio_hook(w)
    gc.collect()
    # Always printed: tests subtract it to get the firmware's own share of the heap.
    print("[sim] scenario %s, reset cause %d, simulator heap use %d bytes of %d"
          % (w.name, reset_cause, gc.mem_alloc() - heap_before, gc.mem_alloc() + gc.mem_free()))
    try:
        return _boot(w, root)
    except KeyboardInterrupt:
        return 130


sys.exit(main())
