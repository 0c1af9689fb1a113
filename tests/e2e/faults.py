# Fault injection for end-to-end tests: silent and cutting TCP peers, a restartable broker, a killable terminal
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
#   bh = Blackhole(port)                  # accepts TCP, never sends a byte
#   proxy = CutProxy(listen_port, broker.port)
#   proxy.cut()                           # reset every open connection at once
#   proxy.cut_after_bytes(300)            # reset once 300 more client bytes went through
#   proxy.pause(); proxy.resume()         # refuse new connections for a while
#   broker = RestartableMosquitto(tmp / "broker").start()
#   broker.stop(); broker.start()         # same port; the sessions survive in its persistence file
#   term = VtermProcess(proxy.port, scenario, "TRK-1", tmp / "state").start()
#   term.kill_firmware()                  # SIGKILL of the micropython process, like a power cut
#   term.start()                          # boots again on the same state folder
#
# Everything listens on 127.0.0.1 only. Each class runs at most one thread of
# its own and ends it in close() or stop().

import os
import pwd
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import REPO, Mosquitto, free_port, wait_port

_BUFFER_BYTES = 65536
_POLL_S = 0.05


def _reset(sock):
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN:
    # the peer gets ECONNRESET, as when a NAT or a mobile network drops a flow.
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _listener(port):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    sock.setblocking(False)
    return sock


class Blackhole:
    """A TCP server that accepts every connection and never sends a byte, like a broker behind a dead route."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.accepted = 0
        self.received_bytes = 0
        self._sock = _listener(self.port)
        self._conns = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="blackhole-%d" % self.port, daemon=True)
        self._thread.start()

    def _serve(self):
        sel = selectors.DefaultSelector()
        sel.register(self._sock, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in sel.select(_POLL_S):
                if key.fileobj is self._sock:
                    try:
                        conn, _ = self._sock.accept()
                    except OSError:
                        continue
                    conn.setblocking(False)
                    self._conns.append(conn)
                    self.accepted += 1
                    sel.register(conn, selectors.EVENT_READ)
                    continue
                # Read and discard, so the client's writes succeed and only its reads wait.
                try:
                    data = key.fileobj.recv(_BUFFER_BYTES)
                except OSError:
                    data = b""
                if data:
                    self.received_bytes += len(data)
                else:
                    sel.unregister(key.fileobj)
        sel.close()

    def close(self):
        """Stop listening and close every accepted connection (the clients see FIN)."""
        self._stop.set()
        self._thread.join(5)
        for conn in self._conns:
            conn.close()
        self._sock.close()


class _Pair:
    """One proxied connection: the client socket, the target socket and the bytes waiting for each."""

    def __init__(self, client, target):
        self.client = client
        self.target = target
        self.to_target = bytearray()
        self.to_client = bytearray()


class CutProxy:
    """A TCP forwarder from listen_port to target_port on 127.0.0.1 that can break its connections on request.

    All sockets belong to the proxy thread. The public methods hand it a
    command and wait until it has been carried out.
    """

    def __init__(self, listen_port, target_port):
        # listen_port None: any free port.
        self.port = listen_port or free_port()
        self.target_port = target_port
        self.accepted = 0
        self.cuts = 0  # cut() calls that found connections, and armed cuts that happened
        self.client_bytes = 0  # forwarded from clients to the target
        self.target_bytes = 0  # forwarded from the target to clients
        self._pairs = []
        self._cut_after = None  # client bytes still let through before the armed cut
        self._cut_done = threading.Event()
        self._commands = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._sock = None
        self._listen()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, name="cutproxy-%d" % self.port, daemon=True)
        self._thread.start()

    # Commands from the test thread

    def _run(self, fn):
        done = threading.Event()
        with self._lock:
            self._commands.append((fn, done))
        self._wake_w.send(b"x")
        if not done.wait(5):
            raise TimeoutError("the proxy thread did not answer within 5 s")

    def cut(self):
        """Reset every open connection at once, in both directions, and return how many were open."""
        found = []

        def cut():
            n = self._cut_all()
            if n:
                self.cuts += 1
            found.append(n)

        self._run(cut)
        return found[0]

    def cut_after_bytes(self, n):
        """Arm a cut: once n more bytes from clients have gone through, reset every connection.

        Only the first n bytes of the chunk that crosses the mark are forwarded,
        so the target receives a packet broken off in the middle. Returns an Event
        that is set when the cut has happened.
        """
        if n < 1:
            raise ValueError("cut_after_bytes needs n >= 1, got %d" % n)

        def arm():
            self._cut_after = n
            self._cut_done.clear()

        self._run(arm)
        return self._cut_done

    def pause(self):
        """Close the listening socket so that new connections are refused. Open ones go on."""
        self._run(self._unlisten)

    def resume(self):
        """Listen again on the same port."""
        self._run(self._listen)

    def close(self):
        """Reset every connection, stop listening and end the proxy thread."""

        def stop():
            self._cut_all()
            self._unlisten()
            self._stop = True

        self._run(stop)
        self._thread.join(5)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    # The proxy thread

    def _listen(self):
        if self._sock is None:
            self._sock = _listener(self.port)
            self._sel.register(self._sock, selectors.EVENT_READ)

    def _unlisten(self):
        if self._sock is not None:
            self._sel.unregister(self._sock)
            self._sock.close()
            self._sock = None

    def _cut_all(self):
        n = len(self._pairs)
        for pair in list(self._pairs):
            self._drop(pair, reset=True)
        return n

    def _drop(self, pair, reset):
        self._pairs.remove(pair)
        for sock in (pair.client, pair.target):
            try:
                self._sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            if reset:
                _reset(sock)
            else:
                sock.close()

    def _accept(self):
        try:
            client, _ = self._sock.accept()
        except OSError:
            return
        try:
            target = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
        except OSError:
            # The target is down, so the client gets a reset, as from a closed port.
            _reset(client)
            return
        self.accepted += 1
        client.setblocking(False)
        target.setblocking(False)
        pair = _Pair(client, target)
        self._pairs.append(pair)
        self._sel.register(client, selectors.EVENT_READ, pair)
        self._sel.register(target, selectors.EVENT_READ, pair)

    def _update_events(self, pair):
        # Wait for writability only while bytes wait for that socket.
        self._sel.modify(pair.client, selectors.EVENT_READ | (selectors.EVENT_WRITE if pair.to_client else 0), pair)
        self._sel.modify(pair.target, selectors.EVENT_READ | (selectors.EVENT_WRITE if pair.to_target else 0), pair)

    def _from_client(self, pair, data):
        if self._cut_after is not None and len(data) >= self._cut_after:
            # The target gets the bytes up to the mark and then an orderly close,
            # so it surely reads the broken-off packet. The client gets a reset,
            # like every other open connection.
            pair.to_target += data[: self._cut_after]
            self.client_bytes += self._cut_after
            self._cut_after = None
            self._pairs.remove(pair)
            for sock in (pair.client, pair.target):
                self._sel.unregister(sock)
            pair.target.setblocking(True)
            pair.target.settimeout(2)
            try:
                pair.target.sendall(pair.to_target)
            except OSError:
                pass
            pair.target.close()
            _reset(pair.client)
            self._cut_all()
            self.cuts += 1
            self._cut_done.set()
            return False
        if self._cut_after is not None:
            self._cut_after -= len(data)
        pair.to_target += data
        self.client_bytes += len(data)
        return True

    def _flush(self, sock, buf):
        try:
            sent = sock.send(buf)
        except BlockingIOError:
            return True
        except OSError:
            return False
        del buf[:sent]
        return True

    def _on_event(self, sock, mask, pair):
        if pair not in self._pairs:
            return
        is_client = sock is pair.client
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(_BUFFER_BYTES)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                # When one side closes or resets, close the other side too (FIN),
                # as a router passes on the end of a connection.
                self._drop(pair, reset=False)
                return
            if data:
                if is_client:
                    if not self._from_client(pair, data):
                        return
                else:
                    pair.to_client += data
                    self.target_bytes += len(data)
        ok = self._flush(pair.target, pair.to_target) and self._flush(pair.client, pair.to_client)
        if not ok:
            self._drop(pair, reset=True)
            return
        self._update_events(pair)

    def _serve(self):
        while not self._stop:
            for key, mask in self._sel.select(_POLL_S):
                if key.fileobj is self._wake_r:
                    self._wake_r.recv(64)
                    with self._lock:
                        commands, self._commands = self._commands, []
                    for fn, done in commands:
                        fn()
                        done.set()
                elif key.fileobj is self._sock:
                    self._accept()
                else:
                    self._on_event(key.fileobj, mask, key.data)


class RestartableMosquitto(Mosquitto):
    """A mosquitto with persistence on, which stop() ends by SIGTERM and start() brings back on the same port.

    The persistence file lives in workdir, so a subscriber with a persistent
    session (clean_session=False, a fixed client id, QoS 1) gets every message
    that was published while it was disconnected, across broker restarts too.
    Queued messages for such a session are not limited (max_queued_messages 0).
    """

    def __init__(self, workdir, extra_conf="", port=None):
        super().__init__(workdir, extra_conf, port)
        self.starts = 0

    def start(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            raise RuntimeError("mosquitto not found: install it with `apt-get install mosquitto`")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "listener %d 127.0.0.1\n" % self.port
            + "allow_anonymous true\n"
            + "persistence true\n"
            # Started as root, mosquitto would switch to the user "mosquitto",
            # which cannot write the test's folder. Other users stay as they are.
            + "user %s\n" % pwd.getpwuid(os.getuid()).pw_name
            + "persistence_location %s/\n" % self.workdir
            + "persistence_file mosquitto.db\n"
            + "max_queued_messages 0\n"
            + self.extra_conf
        )
        self.log = open(self.workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        # The port may still be held for a moment by the previous process.
        wait_port(self.port, 15)
        self.starts += 1
        return self

    def stop(self):
        """Stop by SIGTERM, which makes mosquitto write its persistence file."""
        super().stop()
        if getattr(self, "log", None) is not None:
            self.log.close()
            self.log = None

    @property
    def persistence_path(self):
        return self.workdir / "mosquitto.db"


def _children(pid):
    # Linux only: the processes whose parent is pid, from /proc/<n>/stat.
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc/%s/stat" % entry).read_text()
        except OSError:
            continue
        # The command name in brackets may contain spaces, so fields count from the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


class VtermProcess:
    """`tools/vterm.py run` in the background on a fixed state folder, started and killed on request.

    output collects the console of every start in order, and each start
    begins a new entry in runs. kill_firmware() SIGKILLs the micropython
    process (the child of vterm.py), which is how a board loses power;
    vterm.py then exits with status 1.
    """

    def __init__(self, port, scenario, device_id, state, extra=()):
        self.port = port
        self.scenario = Path(scenario)
        self.device_id = device_id
        self.state = Path(state)
        self.extra = list(extra)
        self.proc = None
        self.runs = []  # one list of console lines per start
        self.kills = 0
        self._reader = None
        self._lock = threading.Lock()

    @property
    def output(self):
        with self._lock:
            return "\n".join(line for run in self.runs for line in run)

    def run_output(self, index=-1):
        """Return the console text of one start (the last by default)."""
        with self._lock:
            return "\n".join(self.runs[index])

    def start(self):
        """Start vterm.py with --duration 0, and return once its process exists (the firmware boots later)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("vterm is already running (pid %d)" % self.proc.pid)
        cmd = [sys.executable, str(REPO / "tools" / "vterm.py"), "run", "--broker", "127.0.0.1:%d" % self.port,
               "--scenario", str(self.scenario), "--device-id", self.device_id, "--state", str(self.state),
               "--duration", "0", *self.extra]
        lines = []
        with self._lock:
            self.runs.append(lines)
        self.proc = subprocess.Popen(cmd, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, args=(self.proc, lines), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc, lines):
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                lines.append(line)

    def firmware_pid(self, timeout_s=10.0):
        """Return the pid of the running micropython process, waiting up to timeout_s for it to start."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError("vterm.py is not running:\n%s" % self.run_output()[-2000:])
            children = _children(self.proc.pid)
            if children:
                return children[0]
            time.sleep(0.02)
        raise TimeoutError("vterm.py started no firmware process within %.0f s" % timeout_s)

    def kill_firmware(self, timeout_s=10.0):
        """SIGKILL the micropython process, wait for vterm.py to exit, and return its exit status."""
        os.kill(self.firmware_pid(), signal.SIGKILL)
        self.kills += 1
        return self._wait(timeout_s)

    def stop(self, timeout_s=15.0):
        """Stop vterm.py as Ctrl-C does (it SIGKILLs the firmware), and return its exit status, or None if never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self._wait(timeout_s)

    def _wait(self, timeout_s):
        try:
            rc = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(5)
        self.proc.stdout.close()
        return rc

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_for(self, pattern, timeout_s, index=-1):
        """Wait until a console line of one start matches the regular expression, and return the match."""
        regex = re.compile(pattern)
        end = time.monotonic() + timeout_s
        seen = 0
        while True:
            with self._lock:
                lines = self.runs[index][seen:]
            for line in lines:
                m = regex.search(line)
                if m:
                    return m
            seen += len(lines)
            if index == -1 and not self.running() and not self._reader.is_alive():
                raise RuntimeError("vterm.py exited (status %s) before a console line matched %r; last lines:\n%s"
                                   % (self.proc.returncode, pattern, self.run_output(index)[-2000:]))
            if time.monotonic() >= end:
                raise TimeoutError("no console line matched %r within %.0f s; last lines:\n%s"
                                   % (pattern, timeout_s, self.run_output(index)[-2000:]))
            time.sleep(0.05)
