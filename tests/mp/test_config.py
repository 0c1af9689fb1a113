# Tests of firmware.config: defaults, merging, validation messages and the last-good fallback
import json
import os
import sys

from drivers import ds18b20
from firmware import config, defaults

_TMP = "/tmp/vt-config-test"


def _paths():
    try:
        os.mkdir(_TMP)
    except OSError:
        pass
    for f in ("config.json", "good.json", "good.json.tmp"):
        try:
            os.remove(_TMP + "/" + f)
        except OSError:
            pass
    return _TMP + "/config.json", _TMP + "/good.json"


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_defaults_valid():
    assert config.validate(config.merge(defaults.DEFAULTS, {})) == []


def test_errors_name_key_and_value():
    cfg = config.merge(defaults.DEFAULTS, {"interval_s": 0, "mqtt": {"port": "1883", "colour": 1}})
    errors = dict(config.validate(cfg))
    assert errors["interval_s"] == "must be 1..86400, got 0"
    assert errors["mqtt.port"] == "must be an integer, got '1883'"
    assert errors["mqtt.colour"] == "unknown key"


def test_bool_is_not_an_int():
    errors = dict(config.validate(config.merge(defaults.DEFAULTS, {"queue_len": True})))
    assert "queue_len" in errors


def test_probe_rules():
    probes = [
        {"rom": "28:A1:B2:C3:04:00:00:96", "name": "front", "low": 2.0, "high": 8.0},
        {"rom": "28A1B2C304000097", "name": "rear"},
        {"rom": "28112233050000FC", "name": "front", "low": 9, "high": 8},
        {"rom": "28A1B2C304000096", "name": "dup"},
        {"rom": "nothex", "name": "x", "colour": "red"},
    ]
    errors = dict(config.validate(config.merge(defaults.DEFAULTS, {"probes": probes})))
    assert "probes[0].rom" not in errors
    assert "CRC byte does not match" in errors["probes[1].rom"]
    assert errors["probes[2].name"] == "name 'front' used twice"
    assert errors["probes[2]"] == "low (9) must be below high (8)"
    assert "listed twice" in errors["probes[3].rom"]
    assert errors["probes[4].colour"] == "unknown key"
    assert "16 hex digits" in errors["probes[4].rom"]


def test_rom_crc_case_b4_ids():
    # The ROM IDs of case B4 carry a valid Dallas CRC-8 in their last byte.
    assert ds18b20.rom_crc_ok(ds18b20.parse_rom("28:A1:B2:C3:04:00:00:96"))
    assert ds18b20.rom_crc_ok(ds18b20.parse_rom("28:11:22:33:05:00:00:FC"))
    assert not ds18b20.rom_crc_ok(ds18b20.parse_rom("28:11:22:33:05:00:00:FD"))


def test_load_missing_file_gives_defaults():
    path, good = _paths()
    cfg, errors, source = config.load(path, good)
    assert errors == []
    assert source == "file"
    assert cfg["interval_s"] == defaults.DEFAULTS["interval_s"]


def test_broken_file_falls_back_to_last_good():
    path, good = _paths()
    _write(path, json.dumps({"interval_s": 30}))
    cfg, errors, source = config.load(path, good)
    assert (cfg["interval_s"], errors, source) == (30, [], "file")
    _write(path, '{"interval_s": 30,')
    cfg, errors, source = config.load(path, good)
    assert source == "last-good"
    assert cfg["interval_s"] == 30
    assert errors[0][0] == path
    assert errors[0][1].startswith("invalid JSON")


def test_bad_value_without_good_copy_gives_defaults():
    path, good = _paths()
    _write(path, json.dumps({"mqtt": {"port": 70000}}))
    cfg, errors, source = config.load(path, good)
    assert source == "defaults"
    assert cfg["mqtt"]["port"] == 1883
    assert errors == [("mqtt.port", "must be 1..65535, got 70000")]


def test_redacted_hides_secrets():
    cfg = config.merge(defaults.DEFAULTS, {"mqtt": {"password": "s3cret"}})
    red = config.redacted(cfg)
    assert red["mqtt"]["password"] == "***"
    assert cfg["mqtt"]["password"] == "s3cret"


def test_secret_values_never_in_errors():
    cfg = config.merge(defaults.DEFAULTS, {"mqtt": {"password": ["hunter2-secret"]}, "wifi": {"password": 987654321}})
    errors = config.validate(cfg)
    text = repr(errors)
    assert "hunter2" not in text
    assert "987654321" not in text
    assert ("mqtt.password", "invalid (must be a string; value not shown)") in errors


def test_device_id_topic_characters_rejected():
    for bad in ("a/b", "#", "trk+1", "trk 1"):
        errors = dict(config.validate(config.merge(defaults.DEFAULTS, {"device_id": bad})))
        assert "device_id" in errors, bad
    assert config.validate(config.merge(defaults.DEFAULTS, {"device_id": "TRK-0042_a.b"})) == []


def test_topic_prefix_without_topic_syntax():
    for bad in ("fleet/#", "fl+eet", "$SYS", "/fleet", "fleet/", "a//b", "fleet\n"):
        errors = dict(config.validate(config.merge(defaults.DEFAULTS, {"mqtt": {"topic_prefix": bad}})))
        assert "mqtt.topic_prefix" in errors, bad
        assert repr(bad) in errors["mqtt.topic_prefix"], errors
    for good in ("fleet", "acme/fleet", "fl\u20acet"):
        assert config.validate(config.merge(defaults.DEFAULTS, {"mqtt": {"topic_prefix": good}})) == [], good


# A polygon whose edges 0 and 2 cross, which only the geometry check finds.
_BOW_TIE = [[31.2, 121.4], [31.21, 121.42], [31.21, 121.4], [31.2, 121.41], [31.2, 121.4]]


def test_validate_changed_keys_only():
    # interval_s 0 is invalid, but only a check of interval_s reports it.
    cfg = config.merge(defaults.DEFAULTS, {"interval_s": 0, "alarm": {"delay_s": 90}})
    assert config.validate(cfg, ["alarm.delay_s"]) == []
    assert dict(config.validate(cfg, ["interval_s"]))["interval_s"] == "must be 1..86400, got 0"
    assert "interval_s" in dict(config.validate(cfg))


def test_validate_changed_skips_unchanged_zones():
    zones = [{"name": "yard", "type": "polygon", "points": _BOW_TIE}]
    cfg = config.merge(defaults.DEFAULTS, {"zones": zones})
    assert config.validate(cfg, ["interval_s"]) == []
    reason = dict(config.validate(cfg, ["zones"]))["zones[0].points"]
    assert reason.startswith("edges "), reason
    assert "firmware.listchecks" not in sys.modules
    assert "firmware.geobuild" not in sys.modules


def test_validate_runs_list_checks_after_dropping_the_checks():
    # A zone is checked with only the list checks and the geometry code loaded:
    # the scalar checks are unloaded first, so both never take heap together.
    from firmware import listchecks

    seen = []
    real = listchecks.check

    def spy(key, v, kind, lo, hi, errors):
        seen.append((key, "firmware.checks" in sys.modules))
        real(key, v, kind, lo, hi, errors)

    listchecks.check = spy
    zones = [{"name": "yard", "type": "polygon", "points": _BOW_TIE}]
    cfg = config.merge(defaults.DEFAULTS, {"zones": zones, "interval_s": 0})
    errors = dict(config.validate(cfg, ["zones", "interval_s"]))
    assert seen == [("zones", False)]
    assert errors["interval_s"] == "must be 1..86400, got 0"
    assert errors["zones[0].points"].startswith("edges 0 and 2 cross"), errors
    assert "firmware.listchecks" not in sys.modules
    assert "firmware.checks" not in sys.modules


def test_validate_changed_keeps_cross_and_unknown_rules():
    cfg = config.merge(defaults.DEFAULTS, {"dht": {"temp_low": 9, "temp_high": 5}, "colour": "blue"})
    errors = dict(config.validate(cfg, ["interval_s"]))
    assert errors["dht.temp_low"] == "must be below dht.temp_high (5), got 9"
    assert errors["colour"] == "unknown key"


def test_non_object_section_one_error():
    # {"alarm": null} in a set replaces the whole section: one error for the
    # section, not "unknown key" plus every setting below it as "missing".
    for value in (None, 5, [], "x"):
        cfg = config.merge(defaults.DEFAULTS, {"alarm": value})
        assert config.validate(cfg) == [("alarm", "must be an object of settings, got %r" % (value,))]
    cfg = config.merge(defaults.DEFAULTS, {"route": None, "dht": {"enabled": "yes"}})
    errors = config.validate(cfg, ["route", "dht.enabled"])
    assert ("route", "must be an object of settings, got None") in errors
    assert [k for k, r in errors if k.startswith("route.")] == []
    assert [k for k, r in errors if k == "dht.enabled"] == ["dht.enabled"]


def _ring(lat0, lon0, n):
    # A closed polygon of n points (the last repeats the first) on a circle of about 1 km.
    import math

    pts = [[lat0 + 0.01 * math.sin(2 * math.pi * i / (n - 1)), lon0 + 0.014 * math.cos(2 * math.pi * i / (n - 1))]
           for i in range(n - 1)]
    return pts + [pts[0]]


def _shapes_cfg(polygon_sizes, route_points):
    zones = [{"name": "p%d" % i, "type": "polygon", "points": _ring(44.0 + 0.05 * i, -121.2, n)}
             for i, n in enumerate(polygon_sizes)]
    route = [[44.0 + 0.009 * i, -121.3 + 0.002 * (i % 3)] for i in range(route_points)]
    return config.merge(defaults.DEFAULTS, {"zones": zones, "route": {"points": route, "width_m": 500}})


def test_zone_limit_is_8():
    # Two 10-point polygons and six circles (measured at 112wK with a trip running, docs/config.md section 5).
    cfg = _shapes_cfg((10, 10), 20)
    circles = [{"name": "c%d" % i, "type": "circle", "lat": 44.2 + 0.03 * i, "lon": -121.0, "radius_m": 500}
               for i in range(7)]
    cfg["zones"] = cfg["zones"] + circles[:6]
    assert config.validate(cfg) == []
    cfg["zones"] = cfg["zones"] + circles[6:]
    assert config.validate(cfg) == [("zones", "at most 8 zones, got 9")]


def test_shape_points_limit_is_40_together():
    assert config.validate(_shapes_cfg((10, 10), 20)) == []
    assert config.validate(_shapes_cfg((), 24)) == []
    assert config.validate(_shapes_cfg((32,), 8)) == []
    assert config.validate(_shapes_cfg((12, 10), 20)) == [
        ("route.points", "polygon points (22) and route points (20) together must be at most 40, got 42")]
    assert config.validate(_shapes_cfg((16, 16, 10), 0)) == [
        ("zones", "polygon points (42) and route points (0) together must be at most 40, got 42")]
    errors = config.validate(_shapes_cfg((), 25))
    assert ("route.points", "at most 24 points, got 25") in errors
