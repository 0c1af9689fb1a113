# End to end: remote configuration and commands, sent with tools/remote.py to the virtual terminal over mosquitto
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# One run of the virtual terminal with a remote key. Before it starts, a
# signed config/set is published retained. While it runs, tools/remote.py
# sends a valid set, an invalid one, unsigned, forged, replayed, oversized and
# deeply nested messages, a get and commands. The checks compare the replies,
# the retained configuration and config.json in the state folder with values
# written here, and recompute the configuration hash with CPython's json and
# hashlib, never with the firmware's code.

import hashlib
import json
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import REPO
from scenario_expect import Recorder, run_vterm

DEVICE = "TRK-RMT"
KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
OTHER_KEY = "ff" * 32
INTERVAL_S = 10
DURATION_S = 75
# A gap between two telemetry records may exceed the interval by this much.
GAP_SLACK_S = 3.0

SCENARIO = {
    "name": "remote-config",
    "description": "Quiet parked truck, no alarm, so telemetry comes every interval_s while remote messages arrive.",
    "duration_s": DURATION_S,
    "config": {
        "interval_s": INTERVAL_S,
        "alarm_interval_s": INTERVAL_S,
        "sample_s": 2,
        "probes": [{"rom": "28A1B2C304000096", "name": "front", "low": 2.0, "high": 8.0}],
        "dht": {"enabled": True, "model": "DHT22", "interval_s": 10},
        "remote": {"key": KEY},
        "log": {"level": "info"},
    },
    "probes": [{"rom": "28A1B2C304000096", "temp": [[0, 4.0]]}],
    "dht": {"model": "DHT22", "temp": [[0, 5.0]], "rh": [[0, 80.0]]},
    "inputs": {"ignition": [[0, 1]]},
    "nmea": {"file": "tests/data/nmea/skytraq-dgps.log", "baud": 9600, "loop": True, "date": "today"},
}


def cpython_hash(cfg):
    """Return the configuration hash as docs/remote.md defines it, computed with CPython's json."""
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def nested(levels):
    """Return a set message body nested `levels` deep in all, counting the message object."""
    return '{"a":' * (levels - 2) + "{}" + "}" * (levels - 2)


class Cli:
    """Runs tools/remote.py against one broker and device."""

    def __init__(self, port):
        self.port = port

    def __call__(self, *args, key=KEY):
        cmd = [sys.executable, str(REPO / "tools" / "remote.py"), "--broker", "127.0.0.1:%d" % self.port,
               "--device", DEVICE, "--timeout", "15"]
        if key:
            cmd += ["--key", key]
        proc = subprocess.run(cmd + list(args), cwd=str(REPO), capture_output=True, text=True, timeout=60)
        reply = json.loads(proc.stdout) if proc.stdout.strip() else None
        return {"rc": proc.returncode, "reply": reply, "stderr": proc.stderr}


def wait_for(condition, timeout_s, what):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out after %g s waiting for %s" % (timeout_s, what))


def clear_retained(port, topic):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-clear-%d" % time.time_ns())
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from conftest import Mosquitto

    tmp = tmp_path_factory.mktemp("remote")
    scenario_path = tmp / "remote.json"
    scenario_path.write_text(json.dumps(SCENARIO))
    state = tmp / "state"
    broker = Mosquitto(tmp / "broker").start()
    base = "fleet/%s/" % DEVICE
    recorders = {kind: Recorder(broker.port, base + kind) for kind in ("telemetry", "config", "reply")}
    cli = Cli(broker.port)
    steps = {}
    files = {}
    vterm = {}
    thread = None
    replay_ctr = None
    late_config = []
    try:
        # 1. A signed set published retained while the terminal is not running.
        retained_ctr = int(time.time() * 1000)
        steps["retained"] = cli("--retain", "--timeout", "0", "--ctr", str(retained_ctr),
                                "set", '{"alarm":{"delay_s":33}}')

        thread = threading.Thread(target=lambda: vterm.update(
            zip(("rc", "out"), run_vterm(broker.port, scenario_path, DEVICE, state, DURATION_S))))
        thread.start()
        try:
            wait_for(lambda: [d for d in recorders["config"].of("config") if d["version"] == 1], 40,
                     "the retained set to be applied (config version 1)")
        except AssertionError as e:
            raise AssertionError("%s; replies: %s" % (e, recorders["reply"].of("reply")))
        files["after_retained"] = json.loads((state / "config.json").read_text())
        # Cleared, so that a reconnect does not deliver it again.
        clear_retained(broker.port, base + "config/set")

        # 2. Messages while it runs.
        steps["valid"] = cli("set", '{"alarm":{"delay_s":45},"dht":{"temp_high":30}}')
        files["after_valid"] = (state / "config.json").read_bytes()
        steps["invalid"] = cli("set", '{"interval_s":0,"alarm":{"delay_s":-5},"colour":"blue"}')
        files["after_invalid"] = (state / "config.json").read_bytes()
        steps["unsigned"] = cli("set", '{"alarm":{"delay_s":46}}', key=None)
        steps["forged"] = cli("set", '{"alarm":{"delay_s":47}}', key=OTHER_KEY)
        replay_ctr = str(int(time.time() * 1000))
        steps["first"] = cli("--ctr", replay_ctr, "set", '{"alarm":{"delay_s":50}}')
        steps["replayed"] = cli("--ctr", replay_ctr, "set", '{"alarm":{"delay_s":50}}')
        steps["oversized"] = cli("set", json.dumps({"note": "x" * 5000}))
        steps["deep"] = cli("set", nested(9))
        files["after_rejected"] = (state / "config.json").read_bytes()
        steps["get"] = cli("get")
        steps["selftest"] = cli("cmd", "selftest")
        steps["bad_cmd"] = cli("cmd", "trip_start", "trip=T-1", "kind=dairy")
        steps["sent_until"] = time.monotonic()
        thread.join(DURATION_S + 90)
        time.sleep(1.0)
        # A backend that subscribes later gets the last configuration at once.
        late = Recorder(broker.port, base + "config")
        time.sleep(1.0)
        late.stop()
        late_config = late.messages
    finally:
        if thread is not None:
            thread.join(DURATION_S + 90)
        for rec in recorders.values():
            rec.stop()
        broker.stop()
    return {"steps": steps, "files": files, "vterm": vterm, "recorders": recorders, "replay_ctr": replay_ctr,
            "late_config": late_config}


def _reply(run, step):
    return run["steps"][step]["reply"]


def _error_keys(reply):
    return sorted(e["key"] for e in reply["errors"])


def test_vterm_ran_without_crash(run):
    assert run["vterm"].get("rc") == 0, run["vterm"].get("out", "")[-3000:]
    out = run["vterm"]["out"]
    assert "Traceback" not in out, out[-3000:]
    assert "application crashed" not in out


def test_retained_set_applied_at_start(run):
    step = run["steps"]["retained"]
    assert step["rc"] == 0, step["stderr"]
    assert "without waiting for a reply" in step["stderr"]
    ident = step["stderr"].split(" with id ")[1].split()[0]
    replies = [m[3] for m in run["recorders"]["reply"].messages if m[3].get("id") == ident]
    assert len(replies) == 1, replies
    assert replies[0]["ok"] is True
    assert replies[0]["version"] == 1
    assert run["files"]["after_retained"]["alarm"]["delay_s"] == 33
    assert run["files"]["after_retained"]["version"] == 1


def test_valid_set(run):
    step = run["steps"]["valid"]
    assert step["rc"] == 0, step["stderr"]
    reply = step["reply"]
    assert reply["ok"] is True
    assert reply["topic"] == "config/set"
    assert reply["version"] == 2
    assert reply["applied"] == "live"
    assert reply["id"].startswith("cli-")

    saved = json.loads(run["files"]["after_valid"])
    assert saved["alarm"]["delay_s"] == 45
    assert saved["dht"]["temp_high"] == 30
    assert saved["version"] == 2
    assert saved["remote"]["key"] == KEY, "the key in config.json was lost or redacted"
    assert saved["probes"] == SCENARIO["config"]["probes"]

    docs = [d for d in run["recorders"]["config"].of("config") if d["version"] == 2]
    assert docs, "no retained config with version 2"
    doc = docs[0]
    assert doc["hash"] == reply["hash"]
    assert doc["config"]["alarm"]["delay_s"] == 45
    assert doc["config"]["dht"]["temp_high"] == 30
    assert doc["config"]["remote"]["key"] == "***"
    assert doc["config"]["device_id"] == DEVICE


def test_published_hash_recomputed_in_cpython(run):
    docs = run["recorders"]["config"].of("config")
    assert len({d["version"] for d in docs}) >= 3, [d["version"] for d in docs]
    for doc in docs:
        assert cpython_hash(doc["config"]) == doc["hash"], doc["version"]


def test_config_topic_retained(run):
    late = run["late_config"]
    assert len(late) == 1, late
    assert late[0][2] is True, "the configuration was not published retained"
    assert late[0][3]["version"] == 3
    assert late[0][3]["config"]["alarm"]["delay_s"] == 50


def test_invalid_set_reports_all_errors(run):
    step = run["steps"]["invalid"]
    assert step["rc"] == 1
    reply = step["reply"]
    assert reply["ok"] is False
    assert reply["version"] == 2
    assert _error_keys(reply) == ["alarm.delay_s", "colour", "interval_s"]
    assert "config/set rejected" in step["stderr"]
    assert run["files"]["after_invalid"] == run["files"]["after_valid"], "config.json changed after a rejected set"


def test_unsigned_and_forged_rejected(run):
    for name, words in (("unsigned", "not signed"), ("forged", "MAC does not match")):
        step = run["steps"][name]
        assert step["rc"] == 1, name
        reply = step["reply"]
        assert reply["ok"] is False, name
        assert reply["id"] is None, name
        assert _error_keys(reply) == ["auth"], name
        assert words in reply["errors"][0]["reason"], reply


def test_replayed_rejected(run):
    first = run["steps"]["first"]
    assert first["rc"] == 0, first["stderr"]
    assert first["reply"]["version"] == 3
    step = run["steps"]["replayed"]
    assert step["rc"] == 1
    assert step["reply"]["id"] is None
    assert _error_keys(step["reply"]) == ["auth"]
    ctr = run["replay_ctr"]
    assert "ctr %s is not above the last accepted %s" % (ctr, ctr) in step["reply"]["errors"][0]["reason"]


def test_oversized_and_deep_rejected(run):
    reply = _reply(run, "oversized")
    assert run["steps"]["oversized"]["rc"] == 1
    assert _error_keys(reply) == ["message"]
    assert "longer than the limit of 4096" in reply["errors"][0]["reason"]
    reply = _reply(run, "deep")
    assert run["steps"]["deep"]["rc"] == 1
    assert reply["errors"] == [{"key": "message", "reason": "nested deeper than 8 levels"}]
    saved = json.loads(run["files"]["after_rejected"])
    assert saved["version"] == 3
    assert saved["alarm"]["delay_s"] == 50


def test_get_and_commands(run):
    step = run["steps"]["get"]
    assert step["rc"] == 0, step["stderr"]
    reply = step["reply"]
    assert reply["version"] == 3
    assert reply["config"]["alarm"]["delay_s"] == 50
    assert reply["config"]["remote"]["key"] == "***"
    assert cpython_hash(reply["config"]) == reply["hash"]

    step = run["steps"]["selftest"]
    assert step["rc"] == 0, step["stderr"]
    assert step["reply"]["cmd"] == "selftest"
    assert step["reply"]["result"]["config_version"] == 3

    step = run["steps"]["bad_cmd"]
    assert step["rc"] == 1
    assert _error_keys(step["reply"]) == ["args.kind", "args.type"]


def test_telemetry_kept_its_interval(run):
    tel = run["recorders"]["telemetry"].messages
    records = [m[3] for m in tel]
    assert len(records) >= DURATION_S // INTERVAL_S - 2, len(records)
    ups = [r["up"] for r in records if r["boot"] == 1]
    for prev, cur in zip(ups, ups[1:]):
        assert cur - prev <= INTERVAL_S + GAP_SLACK_S, "records made %.1f s apart at up %.1f" % (cur - prev, prev)
    # Arrival at the broker too, from the first record to the end of the remote messages.
    arrivals = [m[0] for m in tel]
    for prev, cur in zip(arrivals, arrivals[1:]):
        assert cur - prev <= INTERVAL_S + GAP_SLACK_S, "telemetry arrived %.1f s apart" % (cur - prev)
    assert arrivals[-1] >= run["steps"]["sent_until"], "telemetry stopped before the remote messages ended"


@pytest.mark.parametrize("args, error", [
    (("set", '{"route":{"points":[[1e400,-121.3],[44.1,-121.3]]}}'),
     "set: the change is not valid JSON: number 1e400 is too large for a double"),
    (("set", '{"alarm":{"delay_s":NaN}}'), "set: the change is not valid JSON: NaN is not a JSON number"),
    (("cmd", "trip_start", "trip=T1", "n:=-Infinity"), "cmd: value of n is not valid JSON: -Infinity is not a JSON number"),
])
def test_cli_rejects_numbers_json_cannot_carry(args, error):
    # CPython reads these as inf or nan and would send Infinity or NaN, which
    # the terminal cannot parse. The tool stops before it connects.
    out = Cli(1)(*args, key=None)
    assert out["rc"] == 1
    assert out["reply"] is None
    assert out["stderr"] == "remote: %s\n" % error
