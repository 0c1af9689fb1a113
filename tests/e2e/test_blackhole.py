# End to end: a broker that accepts TCP and never answers must not delay sampling or alarms
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# The terminal's console log (timestamps in seconds since boot) shows when it
# stored each telemetry record and when it raised each alarm; both must stay on
# the scenario's schedule while every MQTT connect attempt hangs until timeout.

import json
import re
import socket
import threading

from conftest import REPO, free_port
from scenario_expect import crossing, run_vterm, seed_trip

SCENARIO = REPO / "tests" / "data" / "scenarios" / "e2e.json"
_DURATION_S = 60


class SilentListener:
    """Accepts TCP connections and never sends a byte."""

    def __init__(self):
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.accepted = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def close(self):
        self._stop = True
        self.thread.join(2)
        for c in self.accepted:
            c.close()
        self.sock.close()


def test_silent_broker_does_not_stall_the_loop(tmp_path):
    sc = json.loads(SCENARIO.read_text())
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(sc))
    bh = SilentListener()
    try:
        # A sealed cold-chain trip is running, so the door opening is an alarm.
        seed_trip(tmp_path / "state", "LOAD-BH", "cold_chain")
        rc, out = run_vterm(bh.port, scenario, "TRK-BH", tmp_path / "state", _DURATION_S, ["--verbose"])
    finally:
        bh.close()
    assert rc == 0, out[-3000:]
    assert bh.accepted, "the terminal never tried to connect"

    line = re.compile(r"fw\| (\d+\.\d{3}) \[(\w+)\] (\w): (.*)")
    events = [(float(m.group(1)), m.group(2), m.group(4)) for m in map(line.search, out.splitlines()) if m]
    stored = [t for t, sub, msg in events if sub == "app" and msg.startswith("telemetry seq")]
    assert len(stored) >= 8, out[-3000:]
    for a, b in zip(stored, stored[1:]):
        assert b - a <= sc["config"]["interval_s"] + 2.5, "telemetry stalled %.1f s at %.1f s" % (b - a, a)

    raised = {msg.split(" raised")[0]: t for t, sub, msg in events if sub == "alarm" and " raised" in msg}
    assert "door_open" in raised, raised
    assert abs(raised["door_open"] - 15) <= 3
    assert "sos" in raised, raised
    assert abs(raised["sos"] - 30) <= 3
    pts = next(p for p in sc["probes"] if p["rom"] == "28112233050000FC")["temp"]
    due = crossing(pts, 8.0, rising=True) + sc["config"]["alarm"]["delay_s"]
    assert "temp_high:rear" in raised
    assert due - 3 <= raised["temp_high:rear"] <= due + 5, (due, raised["temp_high:rear"])

    # Nothing was delivered, so every record made so far waits on flash.
    last = re.findall(r"telemetry seq (\d+) stored \((\d+) waiting, (\d+) dropped", out)[-1]
    seq, waiting, dropped = map(int, last)
    assert waiting == seq, last
    assert dropped == 0, last
    assert "MemoryError" not in out

    # The simulated outputs: the door opening during the sealed trip is a
    # critical alarm, so the LED lights and the buzzer sounds at the door edge.
    sim = re.compile(r"\[sim\] (\d+\.\d+) s (buzzer|LED) (on|off)")
    outputs = [(float(m.group(1)), m.group(2), m.group(3)) for m in map(sim.search, out.splitlines()) if m]
    led_on = [t for t, what, level in outputs if what == "LED" and level == "on"]
    buzzer_on = [t for t, what, level in outputs if what == "buzzer" and level == "on"]
    assert led_on, "LED never lit"
    assert abs(led_on[0] - 15) <= 3, led_on[:3]
    assert buzzer_on, "buzzer never sounded"
    assert abs(buzzer_on[0] - 15) <= 3, buzzer_on[:3]
    # Silent once the door closes at 25 s, until SOS (critical) at 30 s.
    assert not [t for t in buzzer_on if 26.5 <= t <= 29.5], buzzer_on
    assert [t for t in buzzer_on if abs(t - 30) <= 3], buzzer_on
