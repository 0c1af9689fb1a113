# End to end: nothing is lost through broker outages, cut connections, power cuts, a full flash and late GNSS time
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Each delivery test runs the virtual terminal against a real mosquitto while
# a backend subscriber with a persistent session (delivery.DurableRecorder)
# records everything, injects one kind of fault (faults.py), and then checks
# that every record the terminal made arrived, once after de-duplication,
# with a sound time. Each prints its line "records produced P, delivered D,
# duplicates removed U, dropped X".
#
# The terminal's console tells what it made: "[app] I: device <id> boot <n>"
# at start and "[app] I: telemetry seq <n> ..." for each telemetry record
# (log level info in the scenarios). Seqs are shared by all record kinds, so
# every seq up to a logged telemetry seq was made too.
#
# The first tests check the fault-injection tools themselves; the others run
# the firmware's flash spool with acknowledged delivery, batches and
# back-dated time.

import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

import pynmea2

from conftest import REPO, free_port, micropython_bin
from delivery import DurableRecorder, check_batches, check_complete, dedupe, highest_seqs
from faults import Blackhole, CutProxy, RestartableMosquitto, VtermProcess
from scenario_expect import seed_trip

SCENARIO = REPO / "tests" / "data" / "scenarios" / "delivery.json"
LATE_GNSS = REPO / "tests" / "data" / "scenarios" / "delivery-late-gnss.json"
DEFAULT_DATE = REPO / "tests" / "data" / "scenarios" / "delivery-default-date.json"
PREFIX = "fleet"

_BOOT_LINE = re.compile(r"\[app\] I: device \S+ boot (\d+)")
_CLOCK_SET_LINE = re.compile(r"(\d+\.\d+) \[clock\] I: clock set from GNSS: (\S+)")
_TELEMETRY_LINE = re.compile(r"(\d+\.\d+) \[app\] I: telemetry seq (\d+)")


# Helpers


def _merge(base, patch):
    out = dict(base)
    for k, v in patch.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _scenario(tmp_path, source=SCENARIO, **patch):
    """Write the scenario with patch merged in (nested dicts key by key), and return its path and contents."""
    sc = _merge(json.loads(source.read_text()), patch)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(sc))
    return path, sc


def _boot_of(text):
    m = _BOOT_LINE.search(text)
    return int(m.group(1)) if m else None


def _telemetry_logged(text):
    """Return [(console seconds, seq)] of the telemetry records one start logged."""
    return [(float(m.group(1)), int(m.group(2))) for m in _TELEMETRY_LINE.finditer(text)]


def _wait_until(condition, timeout_s, description):
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout_s, description))
        time.sleep(0.1)


def _drain(term, rec, timeout_s=40):
    """Wait for the next telemetry record the running terminal makes, then for every record of its boot up to it.

    Returns (boot, seq). Records made before that one, held back by an
    outage, must have arrived by then.
    """
    boot = int(term.wait_for(_BOOT_LINE.pattern, 20).group(1))
    logged = len(_telemetry_logged(term.run_output()))
    _wait_until(lambda: len(_telemetry_logged(term.run_output())) > logged, 20, "a new telemetry record")
    seq = _telemetry_logged(term.run_output())[-1][1]
    missing = rec.wait_for_seqs(boot, seq, timeout_s)
    assert not missing, "boot %d: records %s of 1..%d never arrived\n%s" % (boot, missing[:30], seq, term.output[-3000:])
    return boot, seq


def _check_loop_kept_pace(term, interval_s, label):
    # The uplink must never block the loop: one telemetry record per interval
    # went on being made during the fault.
    times = [t for t, _ in _telemetry_logged(term.run_output(0))]
    assert len(times) >= 5, "%s: only %d telemetry records logged" % (label, len(times))
    for a, b in zip(times, times[1:]):
        assert b - a <= interval_s + 2.0, "%s: no telemetry record for %.1f s after %.1f s" % (label, b - a, a)


# Up to this many waiting records the terminal sends one per message, without batches.
_SINGLE_MAX = 3


def _check_reconnect_order(records, since_s, label):
    """Check the order of what arrives after a reconnect at monotonic time since_s.

    Records that were held back arrive as: alarms, then the newest record
    alone, then the backlog oldest first in batches. Returns the number of
    held-back records that arrived after since_s.
    """
    before = {a.key for a in records if a.monotonic_s < since_s}
    after = [a for a in records if a.monotonic_s >= since_s and a.key not in before and a.kind != "alarm"]
    assert after, "%s: nothing arrived after the reconnect" % label
    if not any(a.in_batch for a in after):
        # At most _SINGLE_MAX records waited, so each went alone, oldest first.
        seqs = [a.record["seq"] for a in after]
        assert len(seqs) <= _SINGLE_MAX, "%s: %d records came back without a batch" % (label, len(seqs))
        assert seqs == sorted(seqs), "%s: %s not oldest first" % (label, seqs)
        return len(after)
    first = after[0]
    assert not first.in_batch, "%s: the first record after the reconnect (seq %d) came in a batch, not alone" % (
        label, first.record["seq"])
    batched = [a for a in after if a.in_batch]
    assert batched, "%s: no backlog batch after the reconnect" % label
    oldest = min(a.record["seq"] for a in after)
    assert batched[0].record["seq"] == oldest, "%s: the first batch starts at seq %d, the oldest waiting is %d" % (
        label, batched[0].record["seq"], oldest)
    assert batched[0].record["seq"] < first.record["seq"], \
        "%s: the record sent alone (seq %d) is older than the backlog (seq %d)" % (
            label, first.record["seq"], batched[0].record["seq"])
    return len(after)


def _check_no_crash(term):
    # A MemoryError or a traceback means the terminal restarted on its own, which
    # the delivery checks alone might not notice.
    assert "MemoryError" not in term.output, "the firmware ran out of heap"
    assert "fw| Traceback" not in term.output, "the firmware raised an exception"


def _show(term):
    # The whole console goes to console.txt next to the state folder; pytest
    # shows the printed tail only when the test fails.
    path = term.state.parent / "console.txt"
    path.write_text(term.output)
    print("---- terminal console, last 4000 characters (all of it in %s) ----" % path)
    print(term.output[-4000:])


# The fault-injection tools on their own


class _EchoServer:
    """Sends back what each connection sends, one thread per connection, and keeps every byte it read."""

    def __init__(self):
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(4)
        self.received = bytearray()
        self.closed = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn):
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self.closed += 1
                    return
                self.received += data
                try:
                    conn.sendall(data)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def _connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.settimeout(2)
    return s


def test_blackhole_accepts_and_stays_silent():
    bh = Blackhole()
    try:
        s = _connect(bh.port)
        s.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00")
        s.settimeout(0.5)
        with pytest.raises(socket.timeout):
            s.recv(1)
        s.close()
        assert bh.accepted == 1
        assert bh.received_bytes == 14
    finally:
        bh.close()
    with pytest.raises(ConnectionRefusedError):
        _connect(bh.port)


def test_proxy_forwards_and_cuts():
    echo = _EchoServer()
    proxy = CutProxy(None, echo.port)
    try:
        a = _connect(proxy.port)
        b = _connect(proxy.port)
        a.sendall(b"hello")
        assert a.recv(16) == b"hello"
        b.sendall(b"world")
        assert b.recv(16) == b"world"
        assert proxy.cut() == 2
        for s in (a, b):
            with pytest.raises(ConnectionResetError):
                s.recv(16)
            s.close()
        assert proxy.cuts == 1
        assert proxy.accepted == 2
        assert proxy.client_bytes == 10
        assert proxy.target_bytes == 10
        # The proxy still accepts new connections after a cut.
        c = _connect(proxy.port)
        c.sendall(b"again")
        assert c.recv(16) == b"again"
        c.close()
    finally:
        proxy.close()
        echo.close()


def test_proxy_cut_after_bytes_breaks_packet():
    echo = _EchoServer()
    proxy = CutProxy(None, echo.port)
    try:
        a = _connect(proxy.port)
        a.sendall(b"0123456789")
        assert a.recv(16) == b"0123456789"
        cut = proxy.cut_after_bytes(25)
        assert not cut.is_set()
        a.sendall(b"A" * 20)
        assert a.recv(32) == b"A" * 20
        # 5 more bytes reach the server, the other 35 of this packet do not.
        a.sendall(b"B" * 40)
        assert cut.wait(5)
        with pytest.raises(ConnectionResetError):
            while a.recv(64):
                pass
        a.close()
        _wait_until(lambda: echo.closed == 1, 5, "the server to see the close")
        assert bytes(echo.received) == b"0123456789" + b"A" * 20 + b"B" * 5
        assert proxy.cuts == 1
        with pytest.raises(ValueError):
            proxy.cut_after_bytes(0)
    finally:
        proxy.close()
        echo.close()


def test_proxy_pause_refuses_connections():
    echo = _EchoServer()
    proxy = CutProxy(None, echo.port)
    try:
        open_conn = _connect(proxy.port)
        proxy.pause()
        with pytest.raises(ConnectionRefusedError):
            _connect(proxy.port)
        # A connection made before the pause goes on working.
        open_conn.sendall(b"still")
        assert open_conn.recv(16) == b"still"
        proxy.resume()
        again = _connect(proxy.port)
        again.sendall(b"back")
        assert again.recv(16) == b"back"
        again.close()
        open_conn.close()
    finally:
        proxy.close()
        echo.close()


def test_proxy_to_closed_target_resets_client():
    proxy = CutProxy(None, free_port())
    try:
        # The reset can reach the client before connect() returns on a busy
        # machine, or at the first read; either way the client sees a reset.
        with pytest.raises(ConnectionResetError):
            s = _connect(proxy.port)
            try:
                s.recv(16)
            finally:
                s.close()
        assert proxy.accepted == 0
    finally:
        proxy.close()


def test_recorder_session_survives_broker_restart(tmp_path):
    import paho.mqtt.client as mqtt

    broker = RestartableMosquitto(tmp_path / "broker").start()
    rec = DurableRecorder(broker.port, PREFIX, "TRK-SESSION")
    pub = None
    try:
        rec.stop()  # the backend goes away, and its session stays in the broker
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        batch = [{"v": 1, "kind": "telemetry", "dev": "TRK-SESSION", "boot": 1, "seq": s, "t": None,
                  "t_unknown": True, "up": s * 1.0} for s in (2, 3)]
        infos = [pub.publish("fleet/TRK-SESSION/event", json.dumps(
                     {"v": 1, "kind": "event", "dev": "TRK-SESSION", "boot": 1, "seq": 1, "t": None,
                      "t_unknown": True, "up": 0.5, "event": "boot"}), qos=1),
                 pub.publish("fleet/TRK-SESSION/batch", json.dumps(batch), qos=1)]
        for info in infos:
            info.wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()

        # SIGTERM makes mosquitto save the queued messages, which must survive the restart.
        broker.stop()
        assert broker.persistence_path.exists()
        broker.start()
        assert broker.starts == 2
        rec = DurableRecorder(broker.port, PREFIX, "TRK-SESSION")
        _wait_until(lambda: len(rec.snapshot()) == 3, 10, "the three records queued for the session")
        records = rec.snapshot()
        assert [a.key for a in records] == [("TRK-SESSION", 1, 1), ("TRK-SESSION", 1, 2), ("TRK-SESSION", 1, 3)]
        assert [a.in_batch for a in records] == [False, True, True]
        assert [a.kind for a in records] == ["event", "telemetry", "telemetry"]
        assert rec.errors == []
        assert check_complete(records, boots=1, device_id="TRK-SESSION") == {1: 3}
        assert check_batches(rec, 2048) == 1
        report = rec.report(label="session")
        assert report["line"] == "session: records produced 3, delivered 3, duplicates removed 0, dropped 0"
    finally:
        rec.stop()
        broker.stop()


def test_check_complete_finds_faults():
    from delivery import Arrival

    def arrivals(*records):
        return [Arrival(r, r.get("kind", "telemetry"), False, i, i, 0.0) for i, r in enumerate(records)]

    def rec(seq, t, up, **extra):
        return dict({"dev": "D", "boot": 1, "seq": seq, "t": t, "up": up}, **extra)

    good = arrivals(rec(1, 1790000000.0, 1.0), rec(2, 1790000001.0, 2.0), rec(3, None, 3.0, t_unknown=True))
    assert check_complete(good, boots=1) == {1: 3}
    cases = [
        (arrivals(rec(1, None, 1.0, t_unknown=True), rec(3, None, 3.0, t_unknown=True)), "records missing below seq 3: 2"),
        (arrivals(rec(1, None, 1.0)), "t_unknown is not true"),
        (arrivals(rec(1, 1790000000.0, 1.0), rec(2, 1790000001.3, 2.0)), "t - up varies by 0.30 s"),
        (arrivals(rec(1, 946684800.0 + 5, 1.0)), "2000-01-01"),
        (arrivals(rec(1, 315964800.0 + 5, 1.0)), "1980-01-06"),
        (arrivals(rec(1, 1700000000.0, 1.0)), "before 2026-01-01"),
        (arrivals(rec(1, None, 1.0, t_unknown=True, x=1), rec(1, None, 1.0, t_unknown=True, x=2)), "differ"),
        (arrivals(rec(1, None, 1.0, t_unknown=True), dict(rec(1, None, 1.0, t_unknown=True), boot=2)), "boots [1, 2]"),
    ]
    for records, expected in cases:
        with pytest.raises(AssertionError) as e:
            check_complete(records, boots=1)
        assert expected in str(e.value), (expected, str(e.value))
    # Values filled in at publish time may differ between two sends of one record.
    resent = arrivals(rec(1, None, 1.0, t_unknown=True, link={"sent": 1}),
                      rec(1, None, 1.0, t_unknown=True, link={"sent": 2}))
    assert check_complete(resent, boots=1) == {1: 1}


# The flash image and the killable terminal


_FLASH_MAIN = """
import os

# Appends numbered lines to a file on the LittleFS image and renames a
# counter file over the old one, until it is killed. At start it checks
# what the earlier runs left.
LOG = "/spool/log.txt"
try:
    with open(LOG) as f:
        text = f.read()
except OSError:
    text = ""
lines = text.split("\\n")
tail = lines.pop()
numbers = [int(x) for x in lines]
ok = numbers == list(range(1, len(numbers) + 1)) and tail == ""
try:
    with open("/spool/last") as f:
        last = int(f.read())
except OSError:
    last = 0
n = len(numbers)
print("check", "ok" if ok and n - 1 <= last <= n else "bad", n, last, repr(tail))
if os.getenv("FLASH_CHECK_ONLY"):
    raise SystemExit(0)
while True:
    n += 1
    with open(LOG, "a") as f:
        f.write("%d\\n" % n)
    with open("/spool/last.tmp", "w") as f:
        f.write(str(n))
    os.rename("/spool/last.tmp", "/spool/last")
"""


def test_flash_image_survives_sigkill(tmp_path):
    sys.path.insert(0, str(REPO / "tools"))
    import vterm

    # The compiled simulator and drivers, with a main.py of this test in place of the firmware.
    code = tmp_path / "code"
    code.mkdir()
    built = vterm.build(REPO / "build" / "vterm", with_sim=True)
    (code / "sim").symlink_to(built / "sim")
    (code / "drivers").symlink_to(built / "drivers")
    (code / "boot.py").write_text("")
    (code / "main.py").write_text(_FLASH_MAIN)
    scenario = tmp_path / "empty.json"
    scenario.write_text("{}")
    state = tmp_path / "state"
    state.mkdir()
    env = dict(os.environ, VTERM_STATE=str(state), VTERM_SCENARIO=str(scenario), VTERM_REPO=str(REPO),
               VTERM_CODE=str(code), VTERM_FLASH_KIB="64")
    cmd = [micropython_bin(), str(REPO / "tools" / "sim" / "vterm_boot.py")]
    rng = random.Random(7)
    counts = []
    for i in range(10):
        proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        first = proc.stdout.readline().decode()
        flash_line = proc.stdout.readline().decode()
        check = proc.stdout.readline().decode()
        time.sleep(rng.uniform(0.2, 0.6))
        proc.kill()
        proc.wait()
        proc.stdout.close()
        assert first.startswith("[sim] scenario unnamed"), first
        assert flash_line.strip() == "[sim] flash flash.img: 64 KiB LittleFS at /spool, %s" % (
            "formatted" if i == 0 else "mounted"), flash_line
        assert check.startswith("check ok "), "run %d found %r" % (i, check)
        counts.append(int(check.split()[2]))
    assert (state / "flash.img").stat().st_size == 65536

    out = subprocess.run(cmd, cwd=str(REPO), env=dict(env, FLASH_CHECK_ONLY="1"), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=30).stdout.decode()
    check = out.splitlines()[2]
    assert check.startswith("check ok "), out
    counts.append(int(check.split()[2]))
    assert counts[0] == 0
    # Every run wrote lines that the next one found.
    assert all(b > a for a, b in zip(counts, counts[1:])), counts
    wear = re.search(r"\[sim\] flash wear this run: (\d+) erases \(at most (\d+) of one block\), "
                     r"(\d+) bytes programmed, (\d+) bytes read", out)
    assert wear, out
    assert int(wear.group(1)) == 0, "a read-only run erased blocks: %s" % wear.group(0)
    assert int(wear.group(4)) > 0


def test_vterm_rejects_bad_flash_size(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "flash.img").write_bytes(b"\xff" * 32768)
    base = [sys.executable, str(REPO / "tools" / "vterm.py"), "run", "--broker", "127.0.0.1:1",
            "--scenario", str(SCENARIO), "--state", str(state)]
    for args, message in ((["--flash-kib", "64"], "has 32 KiB, not 64"),
                          (["--flash-kib", "10"], "must be a multiple of 4"),
                          (["--flash-kib", "8"], "from 16 to 16384")):
        proc = subprocess.run(base + args, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        assert proc.returncode == 1, proc.stdout
        assert message in proc.stdout.decode(), proc.stdout
    env = dict(os.environ, VTERM_FLASH_KIB="x")
    proc = subprocess.run(base, cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert proc.returncode == 2, proc.stdout
    assert "invalid integer 'x'" in proc.stdout.decode(), proc.stdout


def test_vterm_kill_and_restart_same_state(tmp_path):
    broker = RestartableMosquitto(tmp_path / "broker").start()
    scenario, _ = _scenario(tmp_path)
    term = VtermProcess(broker.port, scenario, "TRK-KILL1", tmp_path / "state")
    try:
        term.start()
        assert _boot_of(term.wait_for(_BOOT_LINE.pattern, 20).group(0)) == 1
        pid = term.firmware_pid()
        assert pid != term.proc.pid
        assert term.kill_firmware() == 1
        assert "firmware exited with status -9" in term.run_output()
        assert not os.path.exists("/proc/%d" % pid)

        term.start()
        assert _boot_of(term.wait_for(_BOOT_LINE.pattern, 20).group(0)) == 2
        assert term.stop() == 0
        assert len(term.runs) == 2
        assert term.kills == 1
        assert (tmp_path / "state" / "bootcount").read_text().strip() == "2"
    finally:
        term.stop()
        broker.stop()


# Delivery through faults (the firmware with the flash spool)


def test_broker_restarts_during_trip(tmp_path):
    device = "TRK-RESTART"
    broker = RestartableMosquitto(tmp_path / "broker").start()
    rec = DurableRecorder(broker.port, PREFIX, device)
    scenario, sc = _scenario(tmp_path)
    # A sealed cold-chain trip is running, so the door opening is an alarm.
    seed_trip(tmp_path / "state", "LOAD-RESTART", "cold_chain")
    term = VtermProcess(broker.port, scenario, device, tmp_path / "state").start()
    restarts = []
    try:
        term.wait_for(_TELEMETRY_LINE.pattern, 20)
        start = time.monotonic()
        # World time is about 1.5 s ahead of start, so the door opens (at 12 s
        # world time) inside the second outage.
        for down_s, up_s in ((3, 7), (9, 14), (18, 22)):
            time.sleep(max(0, start + down_s - time.monotonic()))
            broker.stop()
            time.sleep(max(0, start + up_s - time.monotonic()))
            broker.start()
            restarts.append(time.monotonic())
        boot, seq = _drain(term, rec)
    finally:
        term.stop()
        rec.stop()
        broker.stop()
        _show(term)

    records = rec.snapshot()
    report = rec.report(label="broker restarts")
    _check_no_crash(term)
    assert rec.errors == []
    assert check_complete(records, boots=1, device_id=device)[1] >= seq
    assert report["dropped"] == 0
    assert check_batches(rec, sc["config"]["mqtt"]["batch_bytes"]) >= 3
    for i, since in enumerate(restarts):
        held_back = _check_reconnect_order(records, since, "restart %d" % (i + 1))
        assert held_back >= 2, "restart %d: only %d records waited for the broker" % (i + 1, held_back)

    # The door alarm was raised while the broker was down. On the reconnect it
    # goes before the telemetry records that waited with it.
    alarms = [a for a in dedupe(records) if a.kind == "alarm" and a.record.get("state") == "raised"]
    assert len(alarms) == 1, [a.record for a in alarms]
    alarm = alarms[0]
    assert alarm.monotonic_s >= restarts[1], "the door alarm did not wait for the second restart"
    waited = [a for a in dedupe(records) if a.kind == "telemetry" and a.record["seq"] < alarm.record["seq"]
              and a.monotonic_s >= restarts[1]]
    assert waited, "no telemetry record waited with the alarm"
    for a in waited:
        assert alarm.index < a.index, "telemetry seq %d arrived before the alarm (seq %d) it waited with" % (
            a.record["seq"], alarm.record["seq"])
    _check_loop_kept_pace(term, sc["config"]["interval_s"], "broker restarts")


def _outage_then_proxy(tmp_path, device, label, outage):
    """Run the terminal against a port that misbehaves (outage(port) -> closer) for 12 s, then forward it to the broker."""
    broker = RestartableMosquitto(tmp_path / "broker").start()
    rec = DurableRecorder(broker.port, PREFIX, device)
    scenario, sc = _scenario(tmp_path)
    port = free_port()
    closer = outage(port)
    term = VtermProcess(port, scenario, device, tmp_path / "state").start()
    proxy = None
    try:
        term.wait_for(_TELEMETRY_LINE.pattern, 20)
        time.sleep(12)
        assert not rec.snapshot(), "records arrived through a port that should not deliver them"
        info = closer()
        proxy = CutProxy(port, broker.port)
        since = time.monotonic()
        boot, seq = _drain(term, rec)
    finally:
        term.stop()
        rec.stop()
        if proxy is not None:
            proxy.close()
        broker.stop()
        _show(term)

    records = rec.snapshot()
    report = rec.report(label=label)
    _check_no_crash(term)
    assert rec.errors == []
    assert check_complete(records, boots=1, device_id=device)[1] >= seq
    assert report["dropped"] == 0
    held_back = _check_reconnect_order(records, since, label)
    assert held_back >= 10, "%s: only %d records waited for the outage to end" % (label, held_back)
    assert check_batches(rec, sc["config"]["mqtt"]["batch_bytes"]) >= 1
    _check_loop_kept_pace(term, sc["config"]["interval_s"], label)
    return info


def test_blackholed_broker(tmp_path):
    holes = []

    def blackhole(port):
        holes.append(Blackhole(port))

        def close():
            holes[0].close()
            return holes[0].accepted

        return close

    accepted = _outage_then_proxy(tmp_path, "TRK-BLACKHOLE", "black-holed broker", blackhole)
    # With mqtt.timeout_s 2 and backoff_max_s 2, a connect attempt every 4 s at most.
    assert accepted >= 2, "the terminal stopped trying after %d connection(s) to the black hole" % accepted


def test_closed_port(tmp_path):
    _outage_then_proxy(tmp_path, "TRK-CLOSED", "closed port", lambda port: (lambda: None))


def test_connection_cut_mid_publish(tmp_path):
    device = "TRK-CUT"
    broker = RestartableMosquitto(tmp_path / "broker").start()
    rec = DurableRecorder(broker.port, PREFIX, device)
    proxy = CutProxy(None, broker.port)
    scenario, sc = _scenario(tmp_path)
    term = VtermProcess(proxy.port, scenario, device, tmp_path / "state").start()
    marks = (40, 150, 400, 900, 1500, 2500)
    try:
        term.wait_for(_TELEMETRY_LINE.pattern, 20)
        time.sleep(2)
        # An outage first, so that a backlog is being sent when the cuts come.
        proxy.pause()
        proxy.cut()
        time.sleep(6)
        for n in marks:
            cut = proxy.cut_after_bytes(n)
            proxy.resume()
            assert cut.wait(20), "no cut within 20 s after arming it at %d bytes" % n
        boot, seq = _drain(term, rec)
    finally:
        term.stop()
        rec.stop()
        proxy.close()
        broker.stop()
        _show(term)

    records = rec.snapshot()
    report = rec.report(label="connection cut mid-publish")
    _check_no_crash(term)
    assert rec.errors == []
    assert check_complete(records, boots=1, device_id=device)[1] >= seq
    assert report["dropped"] == 0
    assert proxy.cuts == 1 + len(marks)
    assert proxy.accepted >= 1 + len(marks)
    assert check_batches(rec, sc["config"]["mqtt"]["batch_bytes"]) >= 1
    _check_loop_kept_pace(term, sc["config"]["interval_s"], "cut mid-publish")


_KILLS = 50
# The broker is down while these runs are killed, so a backlog builds up and
# the runs after them are killed in the middle of draining it.
_BROKER_DOWN_RUNS = range(15, 30)


def test_sigkill_fifty_times(tmp_path):
    device = "TRK-SIGKILL"
    seed = int(os.environ.get("DELIVERY_SEED", time.time()))
    rng = random.Random(seed)
    print("random seed %d (set DELIVERY_SEED to repeat)" % seed)
    broker = RestartableMosquitto(tmp_path / "broker").start()
    rec = DurableRecorder(broker.port, PREFIX, device)
    scenario, sc = _scenario(tmp_path)
    term = VtermProcess(broker.port, scenario, device, tmp_path / "state")
    drain_started = None
    try:
        for i in range(_KILLS):
            if i == _BROKER_DOWN_RUNS.start:
                broker.stop()
            if i == _BROKER_DOWN_RUNS.stop:
                broker.start()
                drain_started = time.monotonic()
            term.start()
            term.firmware_pid()
            time.sleep(rng.uniform(1.0, 2.5))
            assert term.kill_firmware() == 1, term.run_output()[-2000:]
        final_start = time.monotonic()
        term.start()
        last_boot, last_seq = _drain(term, rec)

        # What every killed run logged must have arrived, but for its unflushed tail.
        tail = sc["config"]["spool"]["flush_records"]
        logged_by_boot = {}
        for i in range(_KILLS):
            text = term.run_output(i)
            logged = _telemetry_logged(text)
            if _boot_of(text) is not None and logged:
                logged_by_boot[_boot_of(text)] = logged[-1][1]
        assert len(logged_by_boot) >= _KILLS * 3 // 4, "only %d of %d runs logged a telemetry record" % (
            len(logged_by_boot), _KILLS)

        def all_in():
            top = highest_seqs(rec.snapshot())
            return all(top.get((device, b), 0) >= s - tail for b, s in logged_by_boot.items())

        _wait_until(all_in, 30, "the records of every killed run")
    finally:
        term.stop()
        rec.stop()
        broker.stop()
        _show(term)

    records = rec.snapshot()
    report = rec.report(label="SIGKILL x%d" % _KILLS)
    _check_no_crash(term)
    top = check_complete(records, device_id=device)
    assert rec.errors == []
    assert report["dropped"] == 0
    assert term.kills == _KILLS
    assert top[last_boot] >= last_seq
    for boot, seq in logged_by_boot.items():
        assert boot in top, "boot %d logged seq %d but none of its records arrived" % (boot, seq)
    lost = sum(max(0, seq - top[boot]) for boot, seq in logged_by_boot.items())
    print("unflushed records lost at the kills: %d (at most %d per kill allowed)" % (lost, tail))
    assert check_batches(rec, sc["config"]["mqtt"]["batch_bytes"]) >= 1
    drained_while_killed = [a for a in records if a.in_batch and drain_started <= a.monotonic_s < final_start]
    assert drained_while_killed, "no backlog batch arrived during the killed runs after the broker came back"


# Ignition changes every 0.5 s add two event records a second to the
# telemetry, so the small flash fills within the outage. The segment limit is
# far above what fits, so only the full flash drops records. Each input change
# costs the simulator heap, so the changes stop with the outage and have no
# contact bounce.
_FLASH_KIB = 36
_OUTAGE_S = 30
_TOGGLE_S = 0.5


def test_flash_full_drops_oldest(tmp_path):
    device = "TRK-FULL"
    broker = RestartableMosquitto(tmp_path / "broker").start()
    rec = DurableRecorder(broker.port, PREFIX, device)
    proxy = CutProxy(None, broker.port)
    toggles = [[0, 1]] + [[1 + k * _TOGGLE_S, (k + 1) % 2] for k in range(int(_OUTAGE_S / _TOGGLE_S))]
    scenario, sc = _scenario(tmp_path, config={"spool": {"segment_bytes": 2048, "max_segments": 1024}},
                             inputs={"ignition": toggles, "door": [[0, 0]], "bounce_ms": 0})
    proxy.pause()
    term = VtermProcess(proxy.port, scenario, device, tmp_path / "state",
                        extra=["--flash-kib", str(_FLASH_KIB)]).start()
    try:
        boot = _boot_of(term.wait_for(_BOOT_LINE.pattern, 20).group(0))
        time.sleep(_OUTAGE_S)
        assert not rec.snapshot()
        logged = _telemetry_logged(term.run_output())[-1][1]
        proxy.resume()
        # The newest record comes first after the reconnect, then what is left
        # of the backlog. Wait until nothing more arrives below the newest
        # record of the outage for 3 s.
        _wait_until(lambda: rec.snapshot(), 20, "the first record after the outage")
        outage_seqs = set(range(1, max(logged, rec.snapshot()[0].record["seq"]) + 1))
        counts = []

        def settled():
            counts.append(len(rec.seqs(boot) & outage_seqs))
            return len(counts) > 30 and counts[-1] == counts[-31]

        _wait_until(settled, 60, "the backlog to finish")
        # One more telemetry record, made after the drops, reports their count.
        logged = _telemetry_logged(term.run_output())[-1][1]
        _wait_until(lambda: any(s > logged for s in rec.seqs(boot)), 10, "a record made after the backlog")
    finally:
        term.stop()
        rec.stop()
        proxy.close()
        broker.stop()
        _show(term)

    records = rec.snapshot()
    got = rec.seqs(boot)
    top = max(got)
    missing = sorted(set(range(1, top + 1)) - got)
    telemetry = [a for a in records if a.kind == "telemetry"]
    newest = max(telemetry, key=lambda a: a.record["seq"])
    reported = newest.record.get("link", {}).get("dropped")
    rec.report(label="flash full")
    _check_no_crash(term)
    assert rec.errors == []
    assert "[sim] flash flash.img: %d KiB LittleFS at /spool, formatted" % _FLASH_KIB in term.output
    assert missing, "the %d KiB flash never filled up" % _FLASH_KIB
    assert reported == len(missing), "telemetry seq %d reports %d dropped, %d records are missing: %s" % (
        newest.record["seq"], reported, len(missing), missing[:40])
    assert missing == list(range(1, len(missing) + 1)), "not the oldest records were dropped: %s" % missing[:40]
    # After the dropped ones, every record arrived, with sound times.
    assert check_complete(records, boots=[boot], device_id=device, first_seq={boot: len(missing) + 1}) == {boot: top}
    assert "fw| Traceback" not in term.output


def _capture_epochs(path):
    """Return [(release offset s, seconds of day)] of the capture's epochs, from pynmea2, paced like a receiver.

    An epoch starts at each new RMC or GGA time. Its offset is the sum of
    the steps between epoch times, where a step over 5 s or backwards
    counts 1 s.
    """
    out = []
    for raw in Path(path).read_bytes().split(b"\n"):
        line = raw.strip().decode("latin-1")
        if not line.startswith("$") or line.startswith("$P"):
            continue
        try:
            msg = pynmea2.parse(line)
        except pynmea2.ParseError:
            continue
        if getattr(msg, "sentence_type", "") not in ("RMC", "GGA") or msg.timestamp is None:
            continue
        ts = msg.timestamp
        seconds = ts.hour * 3600 + ts.minute * 60 + ts.second + ts.microsecond / 1e6
        if out and seconds == out[-1][1]:
            continue
        step = 0.0 if not out else seconds - out[-1][1]
        if out and not 0 < step <= 5:
            step = 1.0
        out.append(((out[-1][0] + step) if out else 0.0, seconds))
    return out


def _gnss_unix_at(epochs, day, from_s, world_s):
    # The GNSS time at a world time: from the last epoch released by then, or
    # counted back from the first one for times before the receiver started.
    offset, seconds = epochs[0]
    for e_offset, e_seconds in epochs:
        if e_offset <= world_s - from_s:
            offset, seconds = e_offset, e_seconds
    midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
    return midnight + seconds + (world_s - from_s - offset)


def test_late_gnss_backdates_records(tmp_path):
    device = "TRK-LATE"
    sc = json.loads(LATE_GNSS.read_text())
    from_s = sc["nmea"]["from_s"]
    door_s = sc["inputs"]["door"][0][0]
    broker = RestartableMosquitto(tmp_path / "broker").start()
    rec = DurableRecorder(broker.port, PREFIX, device)
    # A sealed cold-chain trip is running, so the door opening is an alarm.
    seed_trip(tmp_path / "state", "LOAD-LATE", "cold_chain")
    term = VtermProcess(broker.port, LATE_GNSS, device, tmp_path / "state").start()
    try:
        term.wait_for(_TELEMETRY_LINE.pattern, 20)
        _wait_until(lambda: _telemetry_logged(term.run_output())[-1][0] >= from_s + 12, 60, "12 s of GNSS time")
        boot, seq = _drain(term, rec)
    finally:
        term.stop()
        rec.stop()
        broker.stop()
        _show(term)

    records = rec.snapshot()
    report = rec.report(label="late GNSS time")
    _check_no_crash(term)
    assert rec.errors == []
    assert check_complete(records, boots=1, device_id=device)[1] >= seq
    assert report["dropped"] == 0
    unique = dedupe(records)

    # World time of the simulator minus the terminal's uptime, from the door
    # edge. The scenario sets its world time, and the door_open event carries
    # its uptime.
    door = [a for a in unique if a.kind == "event" and a.record.get("event") == "door_open"]
    assert len(door) == 1, [a.record for a in door]
    world_minus_up = door_s - door[0].record["up"]
    assert 0 <= world_minus_up < 3, world_minus_up

    # Alarms go out at once, before the clock is known, so without a time.
    alarms = [a for a in unique if a.kind == "alarm" and a.record.get("alarm") == "door_open"]
    assert [a.record["state"] for a in alarms] == ["raised", "cleared"]
    for a in alarms:
        assert a.record["t"] is None, a.record
        assert a.record["t_unknown"] is True, a.record

    epochs = _capture_epochs(REPO / sc["nmea"]["file"])
    day = date.fromisoformat(sc["nmea"]["date"])
    before_gnss = 0
    errors = []
    for a in unique:
        if a.kind == "alarm":
            continue
        r = a.record
        world_s = r["up"] + world_minus_up
        expected = _gnss_unix_at(epochs, day, from_s, world_s)
        assert r["t"] is not None, "seq %d (up %.1f) was published without its time: %r" % (r["seq"], r["up"], r)
        # The clock is set from one of the epoch's sentences, which arrive up to
        # 0.6 s after the epoch began (550 bytes at 960 bytes/s), and t and up
        # are rounded to 0.1 s.
        assert abs(r["t"] - expected) <= 0.75, "seq %d up %.1f: t %.1f, GNSS time then %.1f (%+.2f s)" % (
            r["seq"], r["up"], r["t"], expected, r["t"] - expected)
        errors.append(r["t"] - expected)
        if world_s < from_s:
            before_gnss += 1
    print("t minus the capture's GNSS time: %+.2f to %+.2f s over %d records, %d made before GNSS time arrived"
          % (min(errors), max(errors), len(errors), before_gnss))
    assert before_gnss >= 10, "only %d records were made before GNSS time arrived" % before_gnss


def test_default_date_receiver_gives_no_wrong_date(tmp_path):
    # The receiver reports 1980-01-06 with status V, then a valid fix dated
    # 2006-07-31 (1024 weeks early), then 2026-11-20 from 08:10:20 on.
    device = "TRK-DATE"
    broker = RestartableMosquitto(tmp_path / "broker").start()
    rec = DurableRecorder(broker.port, PREFIX, device)
    term = VtermProcess(broker.port, DEFAULT_DATE, device, tmp_path / "state").start()
    try:
        clock_set = term.wait_for(_CLOCK_SET_LINE.pattern, 60)
        boot, seq = _drain(term, rec)
    finally:
        term.stop()
        rec.stop()
        broker.stop()
        _show(term)

    # Two agreeing fixes with the true date set the clock: 08:10:20 and 08:10:21.
    assert clock_set.group(2) == "2026-11-20T08:10:21Z", clock_set.group(0)
    assert "GNSS date 2006-07-31 rejected" in term.output
    records = rec.snapshot()
    _check_no_crash(term)
    assert rec.errors == []
    assert check_complete(records, boots=1, device_id=device)[1] >= seq
    day_start = datetime(2026, 11, 20, tzinfo=timezone.utc).timestamp()
    set_up_s = float(clock_set.group(1))
    before_clock = 0
    for a in dedupe(records):
        r = a.record
        if r["t"] is None:
            # Alarms go out at once, before the clock is known, marked so.
            assert a.kind == "alarm", r
            assert r["t_unknown"] is True, r
            continue
        # 08:10:00 is the time of day that the receiver's first seconds
        # correspond to: the replay shortens the jump from 00:00:09 to 1 s.
        assert day_start + 8 * 3600 + 590 <= r["t"] < day_start + 8 * 3600 + 720, (r["seq"], r["t"])
        if r["up"] < set_up_s - 1:
            before_clock += 1
    assert before_clock >= 10, "only %d records were made before the clock was set" % before_clock
