# Tests of firmware.signing: HMAC-SHA256 against RFC 4231, signed message checks, counter on flash
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import os

from firmware.signing import ReplayError, SigningError, Verifier, hmac_sha256, split

_DIR = "/tmp/vt-signing-test"
_KEY = bytes(range(32))


def _clean():
    try:
        os.mkdir(_DIR)
    except OSError:
        pass
    for name in os.listdir(_DIR):
        os.remove(_DIR + "/" + name)


def _sign(text, key=_KEY):
    data = text.encode()
    return data + b"\n" + hmac_sha256(key, data).hex().encode()


def _raises(fn, words):
    try:
        fn()
    except SigningError as e:
        assert words in str(e), str(e)
        return
    raise AssertionError("no SigningError")


def test_hmac_rfc4231_vectors():
    # RFC 4231 test cases 1, 2, 3 and 6 (6 has a key longer than the block).
    assert hmac_sha256(b"\x0b" * 20, b"Hi There").hex() == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    assert hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    assert hmac_sha256(b"\xaa" * 20, b"\xdd" * 50).hex() == (
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe")
    assert hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First").hex() == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_split_signed_message():
    signed, mac = split(b'{"ctr":1}\n' + b"ab" * 32)
    assert isinstance(signed, memoryview)  # no copy of the signed part
    assert bytes(signed) == b'{"ctr":1}'
    assert mac == b"\xab" * 32
    _raises(lambda: split(b'{"ctr":1}'), "no newline")
    _raises(lambda: split(b'{"ctr":1}\nabcd'), "64 hex digits, got 4")
    _raises(lambda: split(b'{"ctr":1}\n' + b"zz" * 32), "not hex")
    _raises(lambda: split(b"x" * 4097), "4097 bytes")


def test_valid_message_accepted_and_counter_stored():
    _clean()
    v = Verifier(_KEY, _DIR + "/counter")
    message = v.verify(_sign('{"ctr":5,"set":{"interval_s":30}}'))
    assert message == {"ctr": 5, "set": {"interval_s": 30}}
    assert v.last_counter == 5
    with open(_DIR + "/counter") as f:
        assert f.read() == "5\n"
    # A new verifier, as after a reboot, keeps the counter.
    assert Verifier(_KEY, _DIR + "/counter").last_counter == 5


def test_replay_and_old_counter_rejected():
    _clean()
    v = Verifier(_KEY, _DIR + "/counter")
    payload = _sign('{"ctr":7}')
    v.verify(payload)
    _raises(lambda: v.verify(payload), "ctr 7 is not above the last accepted 7")
    _raises(lambda: v.verify(_sign('{"ctr":6}')), "ctr 6 is not above")
    assert v.verify(_sign('{"ctr":1796414400123}'))["ctr"] == 1796414400123


def test_kept_message_accepted_again():
    # The terminal handles a message it kept once more after running out of
    # memory: the same counter passes then, an older one or a forged MAC never.
    _clean()
    v = Verifier(_KEY, _DIR + "/counter")
    payload = _sign('{"ctr":9,"cmd":"flush"}')
    assert v.verify(payload)["ctr"] == 9
    assert v.verify(payload, True)["cmd"] == "flush"
    assert v.last_counter == 9
    _raises(lambda: v.verify(_sign('{"ctr":8}'), True), "ctr 8 is not above the last accepted 9")
    _raises(lambda: v.verify(payload.replace(b"flush", b"flusH"), True), "MAC does not match")
    _raises(lambda: v.verify(payload), "ctr 9 is not above the last accepted 9")


def test_replay_error_carries_counters():
    _clean()
    v = Verifier(_KEY, _DIR + "/counter")
    v.verify(_sign('{"ctr":7}'))
    for text, counter in (('{"ctr":7}', 7), ('{"ctr":3}', 3)):
        try:
            v.verify(_sign(text))
        except ReplayError as e:
            assert isinstance(e, SigningError)
            assert e.counter == counter
            assert e.last_counter == 7
            continue
        raise AssertionError("no ReplayError for %s" % text)


def test_forged_and_wrong_key_rejected():
    _clean()
    v = Verifier(_KEY, _DIR + "/counter")
    good = _sign('{"ctr":3,"cmd":"reboot"}')
    forged = good.replace(b"reboot", b"rebooT")
    _raises(lambda: v.verify(forged), "MAC does not match")
    _raises(lambda: v.verify(_sign('{"ctr":3}', key=b"k" * 32)), "MAC does not match")
    # A rejected message leaves the counter alone.
    assert v.last_counter == 0
    assert v.verify(good)["cmd"] == "reboot"


def test_bad_counter_and_body_rejected():
    _clean()
    v = Verifier(_KEY, _DIR + "/counter")
    _raises(lambda: v.verify(_sign('{"set":{}}')), "ctr must be an integer")
    _raises(lambda: v.verify(_sign('{"ctr":"9"}')), "got '9'")
    _raises(lambda: v.verify(_sign('{"ctr":true}')), "got True")
    _raises(lambda: v.verify(_sign('{"ctr":0}')), "got 0")
    _raises(lambda: v.verify(_sign("[1,2]")), "must be a JSON object, got list")
    _raises(lambda: v.verify(_sign('{"ctr":1')), "not valid JSON")
    assert v.last_counter == 0


def test_short_key_and_broken_counter_file():
    _raises(lambda: Verifier(b"short", _DIR + "/counter"), "5 bytes is too short")
    _clean()
    with open(_DIR + "/counter", "w") as f:
        f.write("garbage")
    assert Verifier(_KEY, _DIR + "/counter").last_counter == 0
