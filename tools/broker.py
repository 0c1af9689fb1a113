# Embedded MQTT broker for the virtual terminal: mosquitto when installed, amqtt otherwise
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

_AMQTT_MAIN = """
import asyncio, sys
from amqtt.broker import Broker

async def main(port):
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:%d" % port}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    while True:
        await asyncio.sleep(3600)

asyncio.run(main(int(sys.argv[1])))
"""


class BrokerError(Exception):
    pass


def free_port(preferred=1883):
    """Return preferred when it is free on 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise BrokerError("no free TCP port on 127.0.0.1")


def wait_port(port, timeout_s):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def find_mosquitto():
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None
    )


class EmbeddedBroker:
    """Starts a broker on 127.0.0.1 and stops it on stop(); .kind is "mosquitto" or "amqtt"."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.proc = None
        self.kind = None
        self._tmp = None

    def start(self):
        exe = find_mosquitto()
        if exe:
            self._tmp = tempfile.TemporaryDirectory(prefix="vterm-broker-")
            conf = os.path.join(self._tmp.name, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % self.port)
            cmd = [exe, "-c", conf]
            self.kind = "mosquitto"
        else:
            try:
                import amqtt  # noqa: F401
            except ImportError:
                raise BrokerError("no broker: install mosquitto or `pip install amqtt`, or pass --broker HOST:PORT")
            cmd = [sys.executable, "-c", _AMQTT_MAIN, str(self.port)]
            self.kind = "amqtt"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, 15):
            self.stop()
            raise BrokerError("%s did not open port %d within 15 s" % (self.kind, self.port))
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
