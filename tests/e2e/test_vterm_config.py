# tools/vterm.py writes the unit's config.json: the scenario's settings until the unit accepts a remote change
import json

import vterm

SCENARIO = {"config": {"interval_s": 60, "alarm": {"delay_s": 300}}}


def _run(state, device="TRK-9", port=1884):
    vterm.write_config(state, SCENARIO, device, "127.0.0.1", port)
    return json.loads((state / "config.json").read_text())


def test_first_start_writes_scenario(tmp_path):
    cfg = _run(tmp_path)
    assert cfg == {"interval_s": 60, "alarm": {"delay_s": 300}, "device_id": "TRK-9",
                   "mqtt": {"host": "127.0.0.1", "port": 1884}}


def test_scenario_reapplied_before_remote_change(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"interval_s": 10, "alarm": {"stop_s": 900}}))
    cfg = _run(tmp_path)
    assert cfg["interval_s"] == 60
    assert cfg["alarm"] == {"stop_s": 900, "delay_s": 300}


def test_remote_changes_survive_restart(tmp_path, capsys):
    # What the firmware leaves after an accepted config/set: the patch with its version.
    remote = {"version": 2, "interval_s": 15, "alarm": {"delay_s": 120}, "device_id": "TRK-9",
              "mqtt": {"host": "127.0.0.1", "port": 1884}}
    (tmp_path / "config.json").write_text(json.dumps(remote))
    cfg = _run(tmp_path, port=1999)
    assert cfg["interval_s"] == 15
    assert cfg["alarm"] == {"delay_s": 120}
    assert cfg["version"] == 2
    # Where this run's broker is still comes from the command line.
    assert cfg["mqtt"] == {"host": "127.0.0.1", "port": 1999}
    assert "has remote changes (version 2); the scenario's config is not applied again" in capsys.readouterr().out
