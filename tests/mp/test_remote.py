# Tests of firmware.remote: config/set, config/get and cmd handling on real files, signatures, limits, hash
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import json
import os

from firmware import config, defaults, log
from firmware.remote import Remote, RemoteError, canonical, scan

_DIR = "/tmp/vt-remote-test"
_CONFIG = _DIR + "/config.json"
_COUNTER = _DIR + "/auth_counter"
_KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"  # bytes(range(32)).hex()
_KEY3 = "6465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283"  # bytes(range(100, 132)).hex()
_FRONT = {"rom": "28A1B2C304000096", "name": "front", "low": 2.0, "high": 8.0}
_REAR = {"rom": "28112233050000FC", "name": "rear", "low": 2.0, "high": 8.0}
_PATCH = {"device_id": "TRK-T", "interval_s": 30, "probes": [_FRONT, _REAR], "dht": {"temp_low": 2, "temp_high": 8}}

# MACs below were computed in CPython, independently of firmware.signing:
#   hmac.new(bytes.fromhex(KEY), TEXT.encode(), hashlib.sha256).hexdigest()
_SET_90 = '{"id":"s1","ctr":1000,"set":{"interval_s":90}}'
_SET_90_MAC = "1b7a8fc04fdfd73be175bca630cc8d85efd53dc8d7bc70ef8acd310580c6715d"  # KEY = _KEY
_SET_90_MAC_OTHER_KEY = "038af0fb5d5b60f92117455f642fa9cf53a18972262923cd10c804815728fdf1"  # KEY = "6b" * 32
_CMD_FLUSH = '{"id":"c1","ctr":1001,"cmd":"flush"}'
_CMD_FLUSH_MAC = "b5b71c7c01a023f116cd0aa84d8bdebf14ffd7c28d1e45614d68517601ba8549"  # KEY = _KEY
_SET_OLD = '{"ctr":999,"set":{"interval_s":75}}'
_SET_OLD_MAC = "a7502691ae09efc75d23e32e8f7de97a30a9d58fa6eccbf4261ec71a5559571b"  # KEY = _KEY
_SET_KEY = '{"id":"k1","ctr":1002,"set":{"remote":{"key":"%s"}}}' % _KEY3
_SET_KEY_MAC = "f3e1b523837615f5c1d3ef5b5508b6c1a6cf08ba72d33ab2951906d112ab4930"  # KEY = _KEY
_SET_120 = '{"id":"k2","ctr":1003,"set":{"interval_s":120}}'
_SET_120_MAC_KEY = "c9db151b38d020c1c45f17e5fcbd22a7049461c9dec6530069ef9d98ca129d5d"  # KEY = _KEY
_SET_120_MAC_KEY3 = "fea75ff293934e091d4b8024b936a6750adc2aa0d858bf56aa263a06e97b92fa"  # KEY = _KEY3


def _signed(text, mac):
    return (text + "\n" + mac).encode()


class _App:
    """Records the calls the Remote makes into the application."""

    def __init__(self, applied="live"):
        self.applied = applied
        self.calls = []
        self.commands = {
            "trip_start": self._trip_start,
            "flush": lambda args: {"records": 12},
            "ack": self._ack,
        }

    def apply(self, cfg, keys):
        self.calls.append(("apply", cfg, keys))
        if isinstance(self.applied, Exception):
            raise self.applied
        return self.applied

    def _trip_start(self, args):
        self.calls.append(("trip_start", args))
        return {"trip": args["trip"]}

    def _ack(self, args):
        if args["alarm"] != "sos":
            raise RemoteError("no active alarm %r" % args["alarm"])
        return {"acked": ["sos"]}


def _setup(patch=_PATCH, key="", app=None, config_path=_CONFIG):
    try:
        os.mkdir(_DIR)
    except OSError:
        pass
    for name in os.listdir(_DIR):
        os.remove(_DIR + "/" + name)
    with open(_CONFIG, "w") as f:
        f.write(json.dumps(patch))
    app = app or _App()
    cfg = config.merge(defaults.DEFAULTS, patch)
    assert config.validate(cfg) == []
    r = Remote(cfg, patch, key, app.apply, app.commands, config_path=config_path, counter_path=_COUNTER)
    return r, app


def _read(path=_CONFIG):
    with open(path, "rb") as f:
        return f.read()


def _joined(pieces):
    # Replies come in pieces of 128 bytes (firmware.remote._PIECE_BYTES), the last one shorter or equal.
    assert all(len(p) == 128 for p in pieces[:-1]), [len(p) for p in pieces]
    assert 0 < len(pieces[-1]) <= 128, [len(p) for p in pieces]
    return b"".join(pieces)


def _send(r, kind, text, retained=False):
    reply = r.handle(kind, text if isinstance(text, bytes) else text.encode(), retained, 0)
    return None if reply is None else json.loads(_joined(reply))


def _error_keys(reply):
    return sorted(e["key"] for e in reply["errors"])


def _reason(reply, key):
    return [e["reason"] for e in reply["errors"] if e["key"] == key][0]


def test_valid_set_bumps_version():
    r, app = _setup()
    old_cfg = r.cfg
    old_hash = r.hash
    reply = _send(r, "config/set", '{"id":"r1","set":{"alarm":{"delay_s":120},"interval_s":45}}')
    assert reply["ok"] is True, reply
    assert reply["id"] == "r1"
    assert reply["topic"] == "config/set"
    assert reply["version"] == 1
    assert reply["applied"] == "live"
    assert reply["hash"] == r.hash
    assert len(reply["hash"]) == 16
    assert reply["hash"] != old_hash

    # config.json contains the old patch, the change and the new version, nothing else.
    expected = {"device_id": "TRK-T", "interval_s": 45, "probes": [_FRONT, _REAR],
                "dht": {"temp_low": 2, "temp_high": 8}, "alarm": {"delay_s": 120}, "version": 1}
    assert json.loads(_read()) == expected
    assert r.patch == expected
    assert r.cfg["alarm"]["delay_s"] == 120
    assert r.cfg["alarm"]["hysteresis_c"] == 0.5, "a sibling key of the change was lost"
    assert r.cfg["interval_s"] == 45
    assert r.version == 1
    assert old_cfg["interval_s"] == 30, "the old configuration dict was changed in place"

    assert len(app.calls) == 1
    name, cfg, keys = app.calls[0]
    assert cfg is r.cfg
    assert sorted(keys) == ["alarm.delay_s", "interval_s"]
    assert r.events == [("config_applied", {"version": 1, "hash": r.hash, "keys": keys, "applied": "live"})]

    reply = _send(r, "config/set", '{"id":2,"set":{"interval_s":50}}')
    assert reply["version"] == 2
    assert json.loads(_read())["version"] == 2
    assert json.loads(_read())["alarm"] == {"delay_s": 120}


def test_patch_read_only_for_set():
    # The app passes patch=None: gets and commands never read config.json, a set
    # merges its change over the file's content.
    r, app = _setup()
    r = Remote(r.cfg, None, "", app.apply, app.commands, config_path=_CONFIG, counter_path=_COUNTER)
    os.remove(_CONFIG)
    reply = _send(r, "config/get", '{"id":"g1"}')
    assert reply["ok"] is True, reply
    assert r.patch is None
    with open(_CONFIG, "w") as f:
        f.write(json.dumps(_PATCH))
    reply = _send(r, "config/set", '{"id":"s1","set":{"interval_s":45}}')
    assert reply["ok"] is True, reply
    expected = {"device_id": "TRK-T", "interval_s": 45, "probes": [_FRONT, _REAR],
                "dht": {"temp_low": 2, "temp_high": 8}, "version": 1}
    assert json.loads(_read()) == expected
    assert r.patch == expected


def test_set_into_cfg_equals_defaults_merge():
    # A terminal whose configuration came from config.json merges a change into
    # it directly (cfg_from_file). The result and the file must be those of
    # the merge over the defaults, set after set.
    sets = ('{"set":{"alarm":{"delay_s":90},"dht":{"temp_low":null}}}',
            '{"set":{"zones":[{"name":"bay","type":"circle","lat":51.46,"lon":7.01,"radius_m":300}]}}',
            '{"set":{"alarm":{"early_s":600},"route":{"points":[[51.4,7.0],[51.5,7.1]],"width_m":800}}}',
            '{"set":{"zones":[]}}')
    results = []
    for from_file in (False, True):
        r, app = _setup()
        r.cfg_from_file = from_file
        configs = []
        for i, text in enumerate(sets):
            reply = _send(r, "config/set", text)
            assert reply["ok"] is True, reply
            assert reply["version"] == i + 1
            configs.append((r.cfg, r.hash, _read()))
        results.append(configs)
    for i in range(len(sets)):
        assert results[1][i][0] == results[0][i][0], i
        assert results[1][i][1] == results[0][i][1], i
        assert results[1][i][2] == results[0][i][2], i
    assert results[1][-1][0]["alarm"]["delay_s"] == 90
    assert results[1][-1][0]["alarm"]["early_s"] == 600
    assert results[1][-1][0]["zones"] == []
    assert results[1][-1][0]["route"]["width_m"] == 800


def test_set_lists_replace_null_kept():
    r, app = _setup()
    reply = _send(r, "config/set", '{"set":{"probes":[%s],"dht":{"temp_low":null}}}' % json.dumps(_REAR))
    assert reply["ok"] is True, reply
    assert r.cfg["probes"] == [_REAR]
    assert r.cfg["dht"]["temp_low"] is None
    assert r.cfg["dht"]["temp_high"] == 8
    assert json.loads(_read())["dht"] == {"temp_low": None, "temp_high": 8}

    # null for a section is not a deletion: it replaces the section and fails validation.
    before = _read()
    reply = _send(r, "config/set", '{"set":{"alarm":null}}')
    assert reply["ok"] is False
    assert "alarm" in _error_keys(reply)
    assert _read() == before


def test_invalid_set_reports_all_errors():
    r, app = _setup()
    before = _read()
    old_cfg = r.cfg
    reply = _send(r, "config/set",
                  '{"id":"bad","set":{"interval_s":0,"alarm":{"delay_s":"60","bogus":1,"fault_count":3},'
                  '"gnss":{"baud":5}}}')
    assert reply["ok"] is False
    assert reply["id"] == "bad"
    assert reply["version"] == 0
    assert reply["hash"] == r.hash
    assert _error_keys(reply) == ["alarm.bogus", "alarm.delay_s", "gnss.baud", "interval_s"]
    assert _reason(reply, "interval_s") == "must be 1..86400, got 0"
    assert _reason(reply, "alarm.delay_s") == "must be an integer, got '60'"
    assert _reason(reply, "alarm.bogus") == "unknown key"
    assert _read() == before, "config.json changed after a rejected set"
    assert r.cfg is old_cfg
    assert r.version == 0
    assert app.calls == []
    assert r.events[0][0] == "config_rejected"
    assert "interval_s: must be 1..86400, got 0" in r.events[0][1]["errors"]


def test_rejected_event_keeps_five_errors():
    r, app = _setup()
    reply = _send(r, "config/set", '{"set":{"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7}}')
    assert reply["ok"] is False
    assert len(reply["errors"]) == 7
    name, extra = r.events[0]
    assert name == "config_rejected"
    assert extra["error_count"] == 7
    # The first five of the reply's errors, in the reply's order.
    assert extra["errors"] == ["%s: unknown key" % e["key"] for e in reply["errors"][:5]]
    assert all(e["reason"] == "unknown key" for e in reply["errors"])


def _two_step(text, key=""):
    # The app's path: handle() stops before validation, then a new Remote finishes.
    r, app = _setup(key=key)
    r.validate_later = True
    pending = r.handle("config/set", text if isinstance(text, bytes) else text.encode(), False, 0)
    assert isinstance(pending, tuple), pending
    assert len(pending) == 7
    pending[3].extend(config.validate(pending[2], pending[6]))
    r2 = Remote(r.cfg, r.patch, key, app.apply, app.commands, config_path=_CONFIG, counter_path=_COUNTER)
    return r2, app, json.loads(_joined(r2.finish_set(pending)))


def test_set_validated_later_applies():
    r, app, reply = _two_step('{"id":"v1","set":{"alarm":{"delay_s":120}}}')
    assert reply["ok"] is True, reply
    assert reply["id"] == "v1"
    assert reply["version"] == 1
    assert reply["applied"] == "live"
    assert json.loads(_read())["alarm"] == {"delay_s": 120}
    assert r.version == 1
    assert r.cfg["alarm"]["delay_s"] == 120
    assert len(app.calls) == 1


def test_set_validated_later_rejects():
    r, app, reply = _two_step('{"id":"v2","set":{"interval_s":0,"colour":"blue"}}')
    assert reply["ok"] is False
    assert reply["id"] == "v2"
    assert _error_keys(reply) == ["colour", "interval_s"]
    assert _reason(reply, "interval_s") == "must be 1..86400, got 0"
    assert r.version == 0
    assert "version" not in json.loads(_read())
    assert app.calls == []
    assert r.events[0][0] == "config_rejected"


def test_set_validated_later_signed():
    # The signature is checked in the first step; the second step needs no key material.
    r, app, reply = _two_step(_signed(_SET_120, _SET_120_MAC_KEY), key=_KEY)
    assert reply["ok"] is True, reply
    assert reply["id"] == "k2"
    assert reply["version"] == 1
    assert json.loads(_read())["interval_s"] == 120


def test_set_unknown_key_rejected():
    r, app = _setup()
    reply = _send(r, "config/set", '{"set":{"colour":"blue"}}')
    assert reply["ok"] is False
    assert reply["errors"] == [{"key": "colour", "reason": "unknown key"}]
    assert "colour" not in r.cfg


def test_set_fixed_keys_rejected():
    r, app = _setup()
    before = _read()
    reply = _send(r, "config/set", '{"set":{"device_id":"OTHER","version":9,"interval_s":40}}')
    assert reply["ok"] is False
    assert _error_keys(reply) == ["device_id", "version"]
    assert _reason(reply, "device_id") == "cannot be set remotely"
    assert _reason(reply, "version") == "cannot be set remotely"
    assert r.cfg["interval_s"] == 30, "the valid part of a rejected set was applied"
    assert _read() == before


def test_set_cross_field_rule():
    r, app = _setup()
    reply = _send(r, "config/set", '{"set":{"dht":{"temp_low":9}}}')
    assert reply["ok"] is False
    assert _error_keys(reply) == ["dht.temp_low"]
    assert _reason(reply, "dht.temp_low") == "must be below dht.temp_high (8), got 9"


def test_set_message_fields_checked():
    r, app = _setup()
    reply = _send(r, "config/set", '{"id":"x","sett":{"interval_s":40}}')
    assert _error_keys(reply) == ["set", "sett"]
    assert _reason(reply, "sett") == "unknown field"
    reply = _send(r, "config/set", '{"id":"x","set":[1]}')
    assert _reason(reply, "set") == "must be an object of the keys to change, got [1]"
    reply = _send(r, "config/set", '{"id":true,"set":{}}')
    assert reply["id"] is None
    assert _error_keys(reply) == ["id"]
    reply = _send(r, "config/set", '{"id":"%s","set":{}}' % ("x" * 33))
    assert _error_keys(reply) == ["id"]
    reply = _send(r, "config/set", '{"set":')
    assert reply["errors"] == [{"key": "message", "reason": "invalid JSON"}]
    reply = _send(r, "config/set", "[1,2]")
    assert reply["errors"] == [{"key": "message", "reason": "must be a JSON object, got list"}]
    assert r.version == 0


def test_unchanged_set_not_written():
    r, app = _setup()
    before = _read()
    reply = _send(r, "config/set", '{"id":"u","set":{"interval_s":30,"alarm":{"delay_s":60}}}')
    assert reply["ok"] is True
    assert reply["applied"] == "unchanged"
    assert reply["version"] == 0
    assert _read() == before
    assert app.calls == []
    # An unsigned retained set that changes nothing arrives at every connect: no reply.
    assert _send(r, "config/set", '{"set":{"interval_s":30}}', retained=True) is None
    # An empty payload clears a retained message at the broker.
    assert r.handle("config/set", b"", True, 0) is None


def test_set_write_failure():
    missing = _DIR + "/no-such-dir/config.json"
    r, app = _setup(config_path=missing)
    old_cfg = r.cfg
    old_hash = r.hash
    reply = _send(r, "config/set", '{"id":"w","set":{"interval_s":40}}')
    assert reply["ok"] is False
    assert reply["version"] == 0
    assert reply["hash"] == old_hash
    assert _error_keys(reply) == ["file"]
    assert _reason(reply, "file").startswith("cannot write %s: " % missing)
    assert r.cfg is old_cfg
    assert r.patch == _PATCH
    assert r.version == 0
    assert r.hash == old_hash
    assert app.calls == []
    assert sorted(os.listdir(_DIR)) == ["config.json"]


def test_set_memory_error():
    r, app = _setup()
    before = _read()
    validate = config.validate

    def exhausted(cfg, changed=None):
        raise MemoryError

    config.validate = exhausted
    try:
        reply = _send(r, "config/set", '{"id":"m","set":{"interval_s":40}}')
    finally:
        config.validate = validate
    assert reply["ok"] is False
    # The id was read before memory ran out, so the sender can match the reply.
    assert reply["id"] == "m"
    assert reply["errors"][0]["key"] == "message"
    assert reply["errors"][0]["reason"].startswith("out of memory")
    assert reply["version"] == 0
    assert r.cfg["interval_s"] == 30
    assert _read() == before


def test_apply_failure_reports_restart():
    r, app = _setup(app=_App(applied=ValueError("bad probe")))
    reply = _send(r, "config/set", '{"set":{"interval_s":40}}')
    assert reply["ok"] is True
    assert reply["applied"] == "restart"
    assert json.loads(_read())["interval_s"] == 40


def test_get_returns_redacted_config():
    patch = dict(_PATCH, mqtt={"password": "s3cret"}, remote={"key": _KEY})
    r, app = _setup(patch=patch, key=_KEY)
    for payload in (b"", b'{"id":7}'):
        reply = json.loads(_joined(r.handle("config/get", payload, False, 0)))
        assert reply["ok"] is True
        assert reply["topic"] == "config/get"
        assert reply["version"] == 0
        assert reply["hash"] == r.hash
        assert reply["config"]["mqtt"]["password"] == "***"
        assert reply["config"]["remote"]["key"] == "***"
        assert reply["config"]["interval_s"] == 30
    assert reply["id"] == 7
    assert b"s3cret" not in _joined(r.config_text())
    doc = json.loads(_joined(r.config_text()))
    assert doc == {"version": 0, "hash": r.hash, "config": reply["config"]}
    reply = json.loads(_joined(r.handle("config/get", b'{"id":7,"x":1}', False, 0)))
    assert reply["errors"] == [{"key": "x", "reason": "unknown field"}]


def test_signed_set_accepted():
    r, app = _setup(key=_KEY)
    reply = _send(r, "config/set", _signed(_SET_90, _SET_90_MAC))
    assert reply["ok"] is True, reply
    assert reply["id"] == "s1"
    assert r.cfg["interval_s"] == 90
    with open(_COUNTER) as f:
        assert f.read() == "1000\n"
    reply = _send(r, "cmd", _signed(_CMD_FLUSH, _CMD_FLUSH_MAC))
    assert reply == {"id": "c1", "ok": True, "topic": "cmd", "cmd": "flush", "result": {"records": 12}}


def _assert_auth_rejected(reply, r, words):
    assert reply["ok"] is False
    assert reply["id"] is None, "the id of an unauthenticated message was echoed"
    assert len(reply["errors"]) == 1
    assert reply["errors"][0]["key"] == "auth"
    assert words in reply["errors"][0]["reason"], reply
    assert "version" not in reply
    # A record for the first rejection in 10 s; later ones only count.
    assert r.auth_failures >= 1
    if r.auth_failures == 1:
        assert r.events == [("auth_rejected", {"topic": r.events[0][1]["topic"], "reason": reply["errors"][0]["reason"],
                                               "rejected": 1})]
    else:
        assert r.events == []


def test_auth_rejections_recorded_once_per_10_s():
    r, app = _setup(key=_KEY)
    r.handle("cmd", b'{"cmd": "flush", "args": {}}', False, 28)
    assert [e[0] for e in r.events] == ["auth_rejected"]
    r.handle("cmd", b'{"cmd": "flush", "args": {}}', False, 28)
    assert r.events == []
    assert r.auth_failures == 2


def test_unsigned_rejected_with_key():
    r, app = _setup(key=_KEY)
    before = _read()
    log_path = _DIR + "/log.txt"
    log.setup("warning", log_path)
    try:
        reply = _send(r, "config/set", '{"id":"u1","ctr":5000,"set":{"interval_s":90}}')
    finally:
        log.setup("warning", None)
    _assert_auth_rejected(reply, r, "not signed")
    with open(log_path) as f:
        logged = f.read()
    assert "[remote] W: config/set rejected: message is not signed" in logged, logged
    reply = _send(r, "cmd", '{"id":"u2","cmd":"flush"}')
    _assert_auth_rejected(reply, r, "not signed")
    assert _read() == before
    assert app.calls == []
    assert r.auth_failures == 2


def test_forged_mac_rejected():
    r, app = _setup(key=_KEY)
    # The MAC of the message with 90, on a message that contains 91.
    reply = _send(r, "config/set", _signed(_SET_90.replace("90", "91"), _SET_90_MAC))
    _assert_auth_rejected(reply, r, "MAC does not match")
    # The right text, signed with another key.
    reply = _send(r, "config/set", _signed(_SET_90, _SET_90_MAC_OTHER_KEY))
    _assert_auth_rejected(reply, r, "MAC does not match")
    assert r.cfg["interval_s"] == 30
    assert _COUNTER.split("/")[-1] not in os.listdir(_DIR)


def test_replay_rejected_redelivery_silent():
    r, app = _setup(key=_KEY)
    payload = _signed(_SET_90, _SET_90_MAC)
    assert _send(r, "config/set", payload)["ok"] is True
    reply = _send(r, "config/set", payload)
    _assert_auth_rejected(reply, r, "ctr 1000 is not above the last accepted 1000")
    # The broker delivers the same retained message again at every connect.
    assert _send(r, "config/set", payload, retained=True) is None
    assert r.events == []
    # A retained message older than the last accepted one is a replay.
    reply = _send(r, "config/set", _signed(_SET_OLD, _SET_OLD_MAC), retained=True)
    _assert_auth_rejected(reply, r, "ctr 999 is not above")
    assert r.cfg["interval_s"] == 90
    assert r.version == 1


def test_key_change_applies_next_message():
    r, app = _setup(key=_KEY)
    reply = _send(r, "config/set", _signed(_SET_KEY, _SET_KEY_MAC))
    assert reply["ok"] is True, reply
    assert r.cfg["remote"]["key"] == _KEY3
    # Signed with the old key: rejected now.
    reply = _send(r, "config/set", _signed(_SET_120, _SET_120_MAC_KEY))
    _assert_auth_rejected(reply, r, "MAC does not match")
    reply = _send(r, "config/set", _signed(_SET_120, _SET_120_MAC_KEY3))
    assert reply["ok"] is True, reply
    assert r.cfg["interval_s"] == 120


def test_oversized_message_reported():
    r, app = _setup()
    reply = json.loads(_joined(r.handle("config/set", None, False, 5000)))
    assert reply["ok"] is False
    assert reply["id"] is None
    assert _error_keys(reply) == ["message"]
    assert "5000 bytes" in _reason(reply, "message")
    reply = json.loads(_joined(r.handle("cmd", None, True, 4097)))
    assert reply["cmd"] is None
    assert "4097 bytes" in _reason(reply, "message")


def _nested(levels):
    # levels of objects in all: {"set":{"a":{"a":...{}}}}
    return '{"set":' + '{"a":' * (levels - 2) + "{}" + "}" * (levels - 2) + "}"


def test_depth_limit():
    assert scan(_nested(8).encode()) is None
    assert scan(_nested(9).encode()) == "nested deeper than 8 levels"
    assert scan(b"[" * 9 + b"]" * 9) == "nested deeper than 8 levels"
    # Brackets inside strings are text, not nesting.
    assert scan(b'{"trip":"[[[[[[[[[[{{{{"}') is None
    assert scan(b'{"trip":"\\"[[[[[[[[[[\\\\"}') is None
    r, app = _setup()
    reply = _send(r, "config/set", _nested(9))
    assert reply["errors"] == [{"key": "message", "reason": "nested deeper than 8 levels"}]
    reply = _send(r, "config/set", _nested(8))
    assert _error_keys(reply) == ["a"], "an 8-level message was not parsed"


def test_value_count_limit():
    # [0,0,...] with 599 zeros is 600 values (599 numbers and the list).
    assert scan(("[" + ",".join(["0"] * 599) + "]").encode()) is None
    reason = scan(("[" + ",".join(["0"] * 600) + "]").encode())
    assert reason == "up to 601 values (counted by commas, colons and brackets), more than the limit of 600"
    # Commas inside strings do not count.
    assert scan(('{"a":"' + "," * 1000 + '"}').encode()) is None
    r, app = _setup()
    reply = _send(r, "config/set", '{"set":{"probes":[' + ",".join(["{}"] * 400) + "]}}")
    assert _error_keys(reply) == ["message"]
    assert r.version == 0


def test_commands_valid():
    r, app = _setup()
    reply = _send(r, "cmd", '{"id":"t","cmd":"trip_start","args":{"trip":"T-77","type":"hazmat"}}')
    assert reply == {"id": "t", "ok": True, "topic": "cmd", "cmd": "trip_start", "result": {"trip": "T-77"}}
    assert app.calls == [("trip_start", {"trip": "T-77", "type": "hazmat"})]
    assert r.events == [("command", {"cmd": "trip_start", "ok": True})]
    # "args" may be left out when a command has none.
    reply = _send(r, "cmd", '{"cmd":"flush"}')
    assert reply["result"] == {"records": 12}
    reply = _send(r, "cmd", '{"cmd":"ack","args":{"alarm":"sos"}}')
    assert reply["result"] == {"acked": ["sos"]}


def test_commands_invalid():
    r, app = _setup()
    reply = _send(r, "cmd", '{"id":1,"cmd":"format_flash"}')
    assert reply["ok"] is False
    assert reply["cmd"] == "format_flash"
    assert _reason(reply, "cmd").startswith("unknown command 'format_flash'; known: ack, flush, reboot")
    reply = _send(r, "cmd", '{"cmd":"trip_start","args":{"trip":5,"kind":"x"}}')
    assert _error_keys(reply) == ["args.kind", "args.trip", "args.type"]
    assert _reason(reply, "args.kind") == "unknown argument"
    assert _reason(reply, "args.trip") == "must be a string, got 5"
    assert _reason(reply, "args.type") == "missing"
    reply = _send(r, "cmd", '{"cmd":"trip_start","args":{"trip":"%s","type":"dairy"}}' % ("x" * 33))
    assert _reason(reply, "args.trip") == "length must be 1..32, got 33"
    assert _reason(reply, "args.type") == "must be one of cold_chain/hazmat, got 'dairy'"
    reply = _send(r, "cmd", '{"cmd":"flush","args":[]}')
    assert _reason(reply, "args") == "must be an object, got []"
    reply = _send(r, "cmd", '{"cmd":7}')
    assert reply["cmd"] is None
    # Known to the protocol but not given by this app.
    reply = _send(r, "cmd", '{"cmd":"reboot"}')
    assert _reason(reply, "cmd") == "reboot is not available on this terminal"
    # RemoteError from the app goes into the reply.
    reply = _send(r, "cmd", '{"id":"a","cmd":"ack","args":{"alarm":"door_open"}}')
    assert reply["ok"] is False
    assert reply["errors"] == [{"key": "cmd", "reason": "no active alarm 'door_open'"}]
    assert r.events == [("command", {"cmd": "ack", "ok": False})]
    assert app.calls == []


def test_hash_matches_cpython():
    # Expected value computed in CPython from the redacted form of cfg below:
    #   text = json.dumps(redacted, sort_keys=True, separators=(",", ":"))
    #   hashlib.sha256(text.encode()).hexdigest()[:16]
    # where redacted is cfg with mqtt.password and remote.key replaced by "***".
    cfg = {"device_id": "TRK-\u00e9", "interval_s": 60, "alarm": {"hysteresis_c": 0.5, "delay_s": 15},
           "probes": [{"name": "rear", "low": -2.5, "high": 8.0}], "dht": {"temp_low": None, "enabled": True},
           "mqtt": {"password": "pw", "topic_prefix": "fleet"}, "remote": {"key": _KEY},
           "note": "a\"b\\c\n\t\u2028\U0001F600"}
    r = Remote(cfg, {}, "", None, {}, config_path=_CONFIG, counter_path=_COUNTER)
    assert r.hash == "1255fef8e8e4a935"
    # The text CPython's json.dumps printed for the same value.
    assert canonical(config.redacted(cfg)) == (
        '{"alarm":{"delay_s":15,"hysteresis_c":0.5},"device_id":"TRK-\\u00e9","dht":{"enabled":true,'
        '"temp_low":null},"interval_s":60,"mqtt":{"password":"***","topic_prefix":"fleet"},'
        '"note":"a\\"b\\\\c\\n\\t\\u2028\\ud83d\\ude00","probes":[{"high":8.0,"low":-2.5,"name":"rear"}],'
        '"remote":{"key":"***"}}')


def test_unknown_kind_raises():
    r, app = _setup()
    try:
        r.handle("config/delete", b"{}", False, 0)
    except RemoteError as e:
        assert "config/delete" in str(e)
        return
    raise AssertionError("no RemoteError")


class _TermWithoutRoom:
    # A stand-in for firmware.app.Terminal in which the remote code no longer
    # fits after the checks ran.
    cfg = {"version": 3}
    _cfg_hash = "0123456789abcdef"

    def _drop_remote(self):
        pass

    def _unload_geo(self):
        pass

    def _remote_handler(self):
        raise MemoryError("memory allocation failed, allocating 592 bytes")


def test_set_reply_when_reload_fails():
    from firmware.app import Terminal

    r, _ = _setup()
    r.validate_later = True
    pending = r.handle("config/set", b'{"id":"m1","set":{"interval_s":45}}', False, 0)
    before = _read()
    r2, reply = Terminal._validate_set(_TermWithoutRoom(), pending)
    assert r2 is None
    # Written as firmware.remote writes replies: no space after "," and ":".
    assert '": ' not in reply, reply
    assert '", "' not in reply, reply
    assert '], "' not in reply, reply
    reply = json.loads(reply)
    assert reply["id"] == "m1"
    assert reply["ok"] is False
    assert reply["topic"] == "config/set"
    assert reply["version"] == 3
    assert reply["hash"] == "0123456789abcdef"
    assert reply["errors"] == [{"key": "message",
                                "reason": "out of memory applying the configuration; nothing changed, send it again"}]
    assert _read() == before


class _TermApplyFails:
    # A stand-in for firmware.app.Terminal whose alarm engine fails to take a change.
    reset_at = None

    class alarms:
        @staticmethod
        def configure(cfg):
            raise ValueError("shape failed")

    def __init__(self):
        self.cfg = {"version": 1, "zones": []}


def test_failed_live_apply_schedules_restart():
    # firmware.remoteset replies "restart" when applying raises: the terminal
    # must then restart, or the change on flash is not in force.
    import time

    from firmware.app import Terminal

    term = _TermApplyFails()
    try:
        Terminal._control(term, "apply", ({"version": 2, "zones": [1]}, ["zones"]))
    except ValueError:
        pass
    else:
        raise AssertionError("no ValueError")
    assert term.reset_at is not None
    assert 0 < time.ticks_diff(term.reset_at, time.ticks_ms()) <= 3000
    # A get before the restart shows the configuration of the reply.
    assert term.cfg == {"version": 2, "zones": [1]}
