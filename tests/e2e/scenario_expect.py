# Expected values computed from a scenario file and its NMEA capture, independently of the firmware
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pynmea2

from conftest import REPO


def curve(points, t):
    """Piecewise-linear value of [[t, v], ...] at t, constant outside the points."""
    if t <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t0 <= t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return points[-1][1]


def crossing(points, level, rising, after=0.0):
    """First time after `after` where the curve passes level upwards (rising) or downwards."""
    t = after
    while t <= points[-1][0] + 1:
        v = curve(points, t)
        if (v > level) if rising else (v <= level):
            return t
        t += 0.01
    return None


def capture_positions(path):
    """Map "hh:mm:ss" -> (lat, lon) from the capture's RMC/GGA sentences, decoded by pynmea2."""
    out = {}
    for raw in Path(path).read_bytes().split(b"\n"):
        line = raw.strip().decode("latin-1")
        if not line.startswith("$") or line.startswith("$P"):
            continue
        try:
            msg = pynmea2.parse(line)
        except pynmea2.ParseError:
            continue
        if getattr(msg, "sentence_type", "") not in ("RMC", "GGA") or not getattr(msg, "lat", ""):
            continue
        out[msg.timestamp.strftime("%H:%M:%S")] = (msg.latitude, msg.longitude)
    return out


class Recorder:
    """paho-mqtt subscriber that keeps every message with its arrival time."""

    def __init__(self, port, topic):
        self.messages = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-recorder-%d" % time.time_ns())
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        kind = msg.topic.rsplit("/", 1)[-1]
        data = json.loads(msg.payload)
        now = time.monotonic()
        with self._lock:
            if kind == "batch":
                # A batch is a JSON array of records, each naming its kind.
                for record in data:
                    self.messages.append((now, record["kind"], False, record))
            else:
                self.messages.append((now, kind, msg.retain, data))

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def of(self, kind):
        return [m[3] for m in self.messages if m[1] == kind]


def run_vterm(port, scenario, device_id, state, duration, extra=()):
    """Run tools/vterm.py to the end and return its exit status and output."""
    cmd = [sys.executable, str(REPO / "tools" / "vterm.py"), "run", "--broker", "127.0.0.1:%d" % port,
           "--scenario", str(scenario), "--device-id", device_id, "--state", str(state),
           "--duration", str(duration), *extra]
    proc = subprocess.run(cmd, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=duration + 60)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


# 112wK on this 64-bit port: the ESP32's Python heap, about 112 KB, with each word doubled.
HEAP_BUDGET = 112 * 1024 * 2


def firmware_heap(out):
    """Return the most live heap the firmware held in a vterm run, from its console output.

    tools/vterm.py holds back what the simulator leaves of its share, so the
    firmware has the heap that the "[sim] ballast" line states (--heap, to
    within one 1,064-byte chunk). Its use is that minus the lowest free heap
    logged (after a collection), minus the simulated board objects made for
    the firmware (pins, their IRQs, the UART and its buffers, watchdog, RTC),
    which on the ESP32 are static C objects or live in the IDF heap. For those
    the simulator gives back one ballast chunk per whole 1,064 bytes, so only
    the rest is subtracted here. The 1-Wire and DHT driver objects, frozen
    Python objects on the ESP32, are counted as the firmware's.
    """
    ballast = re.search(r"\[sim\] ballast (\d+) bytes, so the firmware has (\d+) bytes of heap", out)
    assert ballast, "the simulator did not report the firmware's heap"
    has = int(ballast.group(2))
    board = [int(b) for b in re.findall(r"\[sim\] board objects heap (\d+) bytes", out)]
    assert board, "the simulator did not report the heap of its board objects"
    free = [int(f) for f in re.findall(r"(\d+) bytes heap free", out)]
    assert len(free) >= 5, "too few heap lines in the output"
    return has - min(free) - max(board) % _BALLAST_CHUNK_BYTES


# tools/sim/vterm_main.py: a ballast chunk with its slot in the list.
_BALLAST_CHUNK_BYTES = 1064


def firmware_heap_size(out):
    """Return the heap the firmware had in a vterm run (the "[sim] ballast" line)."""
    m = re.search(r"\[sim\] ballast \d+ bytes, so the firmware has (\d+) bytes of heap", out)
    assert m, "the simulator did not report the firmware's heap"
    return int(m.group(1))


def seed_trip(state, trip_id, kind, early_left_s=0):
    """Put a running trip in a terminal's flash folder, as the terminal leaves it for after a restart."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "trip.json").write_text(json.dumps({"id": trip_id, "type": kind, "early_left_s": early_left_s, "out_s": {}}))

