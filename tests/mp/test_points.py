# Tests of packed zone and route points (firmware.config.compact_points): same text, hash, shapes and checks
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import json
import math
import os
from array import array

from firmware import config, defaults
from firmware.alarms import Alarms
from firmware.remote import Remote, canonical, config_hash

_RING = [[51.46, 7.01], [51.47, 7.01], [51.47, 7.03], [51.46, 7.01]]
_ROUTE = [[51.4, 7.0], [51.45, 7.05], [51.5, 7.1]]
_DIR = "/tmp/vt-points-test"
_CONFIG = _DIR + "/config.json"


def _cfg(patch):
    return config.merge(defaults.DEFAULTS, patch)


def test_packed_text_and_hash_unchanged():
    cfg = _cfg({"zones": [{"name": "bay", "type": "polygon", "points": _RING}],
                "route": {"points": _ROUTE, "width_m": 800}})
    text = canonical(cfg)
    before = config_hash(cfg)
    config.compact_points(cfg)
    assert isinstance(cfg["zones"][0]["points"], array)
    assert list(cfg["route"]["points"]) == [51.4, 7.0, 51.45, 7.05, 51.5, 7.1]
    assert canonical(cfg) == text
    assert config_hash(cfg) == before
    # The text as CPython writes it: json.dumps(route, separators=(",", ":"), sort_keys=True).
    assert canonical(cfg["route"]) == '{"points":[[51.4,7.0],[51.45,7.05],[51.5,7.1]],"width_m":800}'
    assert config.points_list(cfg["route"]["points"]) == _ROUTE


def test_compact_leaves_defaults_whole_numbers_and_bad_lists():
    cfg = _cfg({"route": {"points": _ROUTE, "width_m": 800}})
    config.compact_points(cfg)
    assert defaults.DEFAULTS["route"] == {"points": [], "width_m": 500}
    # An empty route and points with a whole number stay lists: an array would write 51 as 51.0.
    plain = _cfg({"zones": [{"name": "z", "type": "polygon",
                             "points": [[51, 7.0], [51.1, 7.0], [51.1, 7.1], [51, 7.0]]}]})
    config.compact_points(plain)
    assert plain["route"] is defaults.DEFAULTS["route"]
    assert plain["route"]["points"] == []
    assert type(plain["zones"][0]["points"]) is list
    assert canonical(plain["zones"][0]["points"]) == "[[51,7.0],[51.1,7.0],[51.1,7.1],[51,7.0]]"
    bad = {"route": {"points": [[51.0, 7.0], [51.1]]}, "zones": [{"points": [[51.0, "7"]]}, {"type": "circle"}]}
    config.compact_points(bad)
    assert type(bad["route"]["points"]) is list
    assert type(bad["zones"][0]["points"]) is list


def test_load_packs_points_and_builds_the_same_shapes():
    try:
        os.mkdir(_DIR)
    except OSError:
        pass
    patch = {"zones": [{"name": "bay", "type": "polygon", "points": _RING}],
             "route": {"points": _ROUTE, "width_m": 800}}
    with open(_CONFIG, "w") as f:
        f.write(json.dumps(patch))
    cfg, errors, source = config.load(_CONFIG, _DIR + "/good.json")
    assert (errors, source) == ([], "file")
    assert isinstance(cfg["zones"][0]["points"], array)
    assert isinstance(cfg["route"]["points"], array)
    # The last-good copy is the file's JSON, and the hash is that of the lists.
    with open(_DIR + "/good.json") as f:
        assert json.load(f) == patch
    plain = _cfg(patch)
    assert config_hash(cfg) == config_hash(plain)
    # The shapes built from the arrays give the same results as those built from the lists.
    a = Alarms(cfg, False, lambda alarm, change, now: None)
    b = Alarms(plain, False, lambda alarm, change, now: None)
    for lat, lon in ((5146500, 701500), (5146100, 702900), (5140000, 700000), (5147000, 705000)):
        assert a.zones[0][1].contains(lat, lon) == b.zones[0][1].contains(lat, lon), (lat, lon)
        assert a.corridor.distance_m(lat, lon) == b.corridor.distance_m(lat, lon), (lat, lon)
    assert a.zones[0][1].contains(5146500, 701500) is True
    assert a.corridor.distance_m(5140000, 700000) == 0


def _remote(patch):
    try:
        os.mkdir(_DIR)
    except OSError:
        pass
    with open(_CONFIG, "w") as f:
        f.write(json.dumps(patch))
    cfg = _cfg(patch)
    config.compact_points(cfg)
    r = Remote(cfg, None, "", lambda c, keys: "live", {}, config_path=_CONFIG, counter_path=_DIR + "/ctr")
    r.cfg_from_file = True
    return r


def _send(r, text):
    reply = r.handle("config/set", text.encode())
    return None if reply is None else json.loads(b"".join(reply).decode())


def test_stored_patch_shares_points_in_force():
    r = _remote({"route": {"points": _ROUTE, "width_m": 800}, "version": 3})
    reply = _send(r, '{"set":{"alarm":{"delay_s":90}}}')
    assert reply["ok"] is True, reply
    assert reply["version"] == 4, reply
    # config.json was read for the change; its route points are the ones in force, not a second copy.
    assert r.patch["route"]["points"] is r.cfg["route"]["points"]
    with open(_CONFIG) as f:
        assert json.load(f)["route"] == {"points": _ROUTE, "width_m": 800}
    assert reply["hash"] == config_hash(_cfg({"route": {"points": _ROUTE, "width_m": 800},
                                              "alarm": {"delay_s": 90}, "version": 4}))


def test_same_points_sent_again_change_nothing():
    r = _remote({"zones": [{"name": "bay", "type": "polygon", "points": _RING}],
                 "route": {"points": _ROUTE, "width_m": 800}, "version": 2})
    text = '{"id":"a","set":{"zones":[{"name":"bay","type":"polygon","points":%s}],"route":{"points":%s}}}' % (
        json.dumps(_RING), json.dumps(_ROUTE))
    reply = _send(r, text)
    assert reply["ok"] is True, reply
    assert reply["applied"] == "unchanged", reply
    assert reply["version"] == 2, reply
    # One coordinate differs: a change of zones only.
    moved = [[51.46, 7.01], [51.47, 7.01], [51.47, 7.04], [51.46, 7.01]]
    reply = _send(r, '{"set":{"zones":[{"name":"bay","type":"polygon","points":%s}]}}' % json.dumps(moved))
    assert reply["ok"] is True, reply
    assert reply["version"] == 3, reply
    with open(_CONFIG) as f:
        saved = json.load(f)
    assert saved["zones"][0]["points"] == moved
    assert saved["route"]["points"] == _ROUTE


def test_same_value_of_another_type_is_a_change():
    # 1 == True and 7 == 7.0 in Python, but the JSON text and the hash differ, and
    # a flag given as 1 is invalid. Neither may get the reply "unchanged".
    ring = "[[51.46,7.0],[51.47,7.0],[51.47,7.03],[51.46,7.0]]"
    r = _remote({"zones": [{"name": "bay", "type": "polygon", "points": json.loads(ring), "stop_ok": True}],
                 "version": 2})
    assert isinstance(r.cfg["zones"][0]["points"], array)
    reply = _send(r, '{"set":{"zones":[{"name":"bay","type":"polygon","points":%s,"stop_ok":1}]}}' % ring)
    assert reply["ok"] is False, reply
    assert reply["errors"] == [{"key": "zones[0].stop_ok", "reason": "must be true or false, got 1"}], reply
    # The same ring with 7 for 7.0 is written as sent.
    whole = ring.replace("7.0]", "7]")
    reply = _send(r, '{"set":{"zones":[{"name":"bay","type":"polygon","points":%s,"stop_ok":true}]}}' % whole)
    assert reply["ok"] is True, reply
    assert reply["version"] == 3, reply
    with open(_CONFIG) as f:
        assert json.load(f)["zones"][0]["points"][0] == [51.46, 7]


def test_point_limit_counts_points_in_force():
    # 24 packed route points in force and a polygon of 17 points: 41, over the limit of 40.
    route = [[44.0 + 0.009 * i, -121.31 + 0.002 * (i % 3)] for i in range(24)]
    r = _remote({"route": {"points": route, "width_m": 1000}, "version": 1})
    assert isinstance(r.cfg["route"]["points"], array)
    step = 2 * math.pi / 16
    ring = [[44.1 + 0.01 * math.cos(i * step), -121.2 + 0.014 * math.sin(i * step)] for i in range(16)]
    ring.append(ring[0])
    reply = _send(r, '{"set":{"zones":[{"name":"yard","type":"polygon","points":%s}]}}' % json.dumps(ring))
    assert reply["ok"] is False
    assert reply["errors"] == [{"key": "route.points", "reason": "polygon points (17) and route points (24) together"
                                " must be at most 40, got 41"}], reply
