# End to end: a config.json with bad values is reported and the terminal runs on the last good one
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import json
import time

from conftest import REPO, Mosquitto
from scenario_expect import Recorder, run_vterm

SCENARIO = REPO / "tests" / "data" / "scenarios" / "e2e.json"


def test_bad_config_falls_back_to_last_good(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    state = tmp_path / "state"
    try:
        rc, out = run_vterm(broker.port, SCENARIO, "TRK-CFG", state, 6, ["--quiet"])
        assert rc == 0, out
        assert (state / "config.good.json").exists(), "a valid config was not kept as the last good one"

        cfg = json.loads((state / "config.json").read_text())
        cfg["colour"] = "blue"
        cfg["mqtt"]["keepalive_s"] = 1
        (state / "config.json").write_text(json.dumps(cfg))

        rec = Recorder(broker.port, "fleet/TRK-CFG/#")
        try:
            rc, out = run_vterm(broker.port, SCENARIO, "TRK-CFG", state, 14)
            time.sleep(1.0)
        finally:
            rec.stop()
    finally:
        broker.stop()

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
