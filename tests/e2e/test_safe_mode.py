# End to end: the safe-mode escapes keep the application from starting and leave the flash as it was
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import json

import pytest

from conftest import REPO, Mosquitto
from scenario_expect import Recorder, run_vterm

SCENARIO = REPO / "tests" / "data" / "scenarios" / "e2e.json"


@pytest.mark.parametrize("setup, reason", [
    ("flag", "SAFE MODE: file /safe_mode exists"),
    ("fails", "SAFE MODE: 3 failed runs in a row (/bootguard.json)"),
])
def test_safe_mode_skips_application(tmp_path, setup, reason):
    state = tmp_path / "state"
    state.mkdir()
    if setup == "flag":
        (state / "safe_mode").write_text("")
    else:
        (state / "bootguard.json").write_text(json.dumps({"fails": 3}))
    (state / "keep.txt").write_text("provisioning data")
    broker = Mosquitto(tmp_path / "broker").start()
    rec = Recorder(broker.port, "fleet/TRK-SAFE/#")
    try:
        rc, out = run_vterm(broker.port, SCENARIO, "TRK-SAFE", state, 8)
    finally:
        rec.stop()
        broker.stop()
    assert rc == 0, out
    assert reason in out
    assert "the firmware stopped by itself" in out
    assert rec.messages == [], "the application published in safe mode"
    assert (state / "keep.txt").read_text() == "provisioning data"
