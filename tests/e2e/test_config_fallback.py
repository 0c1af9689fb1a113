# End to end: config.json at start, a bad one falling back to the last good one and zones published as written
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import json
import time

from conftest import REPO, Mosquitto
from scenario_expect import Recorder, run_vterm
from test_remote_config import cpython_hash

SCENARIO = REPO / "tests" / "data" / "scenarios" / "e2e.json"


def _start_twice(tmp_path, device, edit, topic, first_s, second_s, extra=()):
    """Run the terminal, change its config.json with edit(cfg), and run it again.

    Returns the state folder, the second run's exit status and output, and a
    recorder of topic over the second run.
    """
    broker = Mosquitto(tmp_path / "broker").start()
    state = tmp_path / "state"
    try:
        rc, out = run_vterm(broker.port, SCENARIO, device, state, first_s, ["--quiet"])
        assert rc == 0, out
        cfg = json.loads((state / "config.json").read_text())
        edit(cfg)
        (state / "config.json").write_text(json.dumps(cfg))

        rec = Recorder(broker.port, topic)
        try:
            rc, out = run_vterm(broker.port, SCENARIO, device, state, second_s, list(extra))
            time.sleep(1.0)
        finally:
            rec.stop()
    finally:
        broker.stop()
    return state, rc, out, rec


def _break(cfg):
    cfg["colour"] = "blue"
    cfg["mqtt"]["keepalive_s"] = 1


def test_bad_config_falls_back_to_last_good(tmp_path):
    state, rc, out, rec = _start_twice(tmp_path, "TRK-CFG", _break, "fleet/TRK-CFG/#", 6, 14)
    assert (state / "config.good.json").exists(), "a valid config was not kept as the last good one"
    assert rc == 0, out[-3000:]
    assert "config mqtt.keepalive_s: must be 5..3600, got 1" in out
    assert "config colour: unknown key" in out
    # Records of the first run that it had no time to mark delivered may come
    # again (same boot and seq), so only the second run's boot event counts.
    boots = [e for e in rec.of("event") if e["event"] == "boot" and e["boot"] != 1]
    assert len(boots) == 1, boots
    assert boots[0]["config"] == "last-good"
    assert sorted(boots[0]["config_errors"]) == ["colour: unknown key", "mqtt.keepalive_s: must be 5..3600, got 1"]
    assert boots[0]["boot"] == 2, "the boot counter on the state folder did not persist"
    assert rec.of("telemetry"), "no telemetry while running on the last good config"


# A polygon and a route with float coordinates (kept packed in the heap), and a
# circle with whole-number coordinates (kept as written).
ZONES = [{"name": "depot", "type": "polygon",
          "points": [[31.21, 121.45], [31.22, 121.45], [31.22, 121.47], [31.21, 121.45]], "door_ok": True},
         {"name": "yard", "type": "circle", "lat": 31, "lon": 121, "radius_m": 300}]
ROUTE = {"points": [[31.2, 121.4], [31.25, 121.45], [31.3, 121.5]], "width_m": 800}


def _add_shapes(cfg):
    cfg["zones"] = ZONES
    cfg["route"] = ROUTE


def test_zones_from_file_published_as_written(tmp_path):
    _, rc, out, rec = _start_twice(tmp_path, "TRK-PTS", _add_shapes, "fleet/TRK-PTS/config", 4, 6, ["--quiet"])
    assert rc == 0, out[-3000:]
    docs = rec.of("config")
    assert docs, out[-3000:]
    doc = docs[-1]
    # The points come back with the values and types of the file, and the
    # hash is the one a backend computes from the document with CPython.
    assert doc["config"]["zones"] == ZONES
    assert doc["config"]["route"] == ROUTE
    assert json.dumps(doc["config"]["zones"], sort_keys=True) == json.dumps(ZONES, sort_keys=True)
    assert cpython_hash(doc["config"]) == doc["hash"]
