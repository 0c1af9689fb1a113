# Shared pytest fixtures: paths, free ports and real mosquitto brokers
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

sys.path.insert(0, str(REPO / "tools"))
from broker import wait_port as _wait_port  # noqa: E402


def micropython_bin():
    """Return the path of the unix-port `micropython` command of this venv."""
    exe = VENV_BIN / "micropython"
    if exe.exists():
        return str(exe)
    found = shutil.which("micropython")
    if not found:
        pytest.fail("micropython command not found: run `make venv` first")
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout_s=10.0):
    if not _wait_port(port, timeout_s):
        raise TimeoutError("nothing listens on 127.0.0.1:%d after %.1f s" % (port, timeout_s))


class Mosquitto:
    """A mosquitto broker on 127.0.0.1 with its own config file in a temporary folder."""

    def __init__(self, workdir, extra_conf="", port=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.proc = None

    def start(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            pytest.fail("mosquitto not found: install it with `apt-get install mosquitto`")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "listener %d 127.0.0.1\n" % self.port
            + "persistence false\n"
            + ("allow_anonymous true\n" if "allow_anonymous" not in self.extra_conf else "")
            + self.extra_conf
        )
        self.log = open(self.workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def mp_bin():
    return micropython_bin()
