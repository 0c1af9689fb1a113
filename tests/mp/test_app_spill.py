# Tests of the terminal's intake of a config/set that finds no heap block: rx_spill and _on_message (firmware/app.py)
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import os

from firmware import app

_DIR = "/tmp/vt-spill-test"
_PENDING = _DIR + "/remote_pending.bin"
_PREFIX = b"fleet/TRK-S/"


class _Uplink:
    rx_spilled = False
    rx_size = 0

    def topic(self, kind):
        return _PREFIX + kind.encode()


class _Term:
    # The parts of Terminal that rx_spill and _on_message use.
    def __init__(self):
        self.uplink = _Uplink()
        self.reset_at = None
        self._inbox = []
        self._inbox_ready = _Event()

    rx_spill = app.Terminal.rx_spill
    _on_message = app.Terminal._on_message


class _Event:
    def set(self):
        pass


def _setup():
    try:
        os.mkdir(_DIR)
    except OSError:
        pass
    for name in ("remote_pending.bin", "remote_pending.bin.part"):
        try:
            os.remove(_DIR + "/" + name)
        except OSError:
            pass
    app.PENDING_SET_PATH = _PENDING
    return _Term()


def _own_path(test):
    # Each test points app.PENDING_SET_PATH at its folder and puts it back after.
    def run():
        saved = app.PENDING_SET_PATH
        try:
            test()
        finally:
            app.PENDING_SET_PATH = saved

    return run


def _receive(term, topic, payload, retained=False):
    # What firmware.mqtt does for a message without a heap block: the file, the payload in pieces, the call.
    f = term.rx_spill(topic, len(payload), retained)
    if f is not None:
        for i in range(0, len(payload), 64):
            f.write(payload[i : i + 64])
        f.close()
    term.uplink.rx_spilled = f is not None
    term.uplink.rx_size = len(payload)
    term._on_message(topic, None, retained)
    return f is not None


@_own_path
def test_set_without_heap_saved_for_boot():
    term = _setup()
    payload = b'{"id":"big","set":{"alarm":{"delay_s":46}}' + b" " * 200 + b"}"
    assert _receive(term, _PREFIX + b"config/set", payload)
    # The file that firmware.remoteboot reads at boot: "0" (not retained), a newline, the message.
    with open(_PENDING, "rb") as f:
        assert f.read() == b"0\n" + payload
    assert term.reset_at is not None
    assert term._inbox == []
    # A second one while the first waits for the restart is skipped and goes to the inbox, which replies.
    assert not _receive(term, _PREFIX + b"config/set", b'{"set":{}}')
    assert term._inbox == [("config/set", None, False, 10, 0)]
    with open(_PENDING, "rb") as f:
        assert f.read() == b"0\n" + payload


@_own_path
def test_retained_set_and_other_kinds_skipped():
    for topic, retained in ((b"config/set", True), (b"cmd", False), (b"config/get", False)):
        term = _setup()
        assert not _receive(term, _PREFIX + topic, b'{"id":1}', retained)
        assert term.reset_at is None
        assert term._inbox == [(topic.decode(), None, retained, 8, 0)]
        try:
            os.stat(_PENDING)
            raise AssertionError("%s saved" % topic)
        except OSError:
            pass


@_own_path
def test_spill_that_failed_is_not_saved():
    # The flash filled while the payload was written: mqtt reports rx_spilled False.
    term = _setup()
    f = term.rx_spill(_PREFIX + b"config/set", 300, False)
    f.write(b"{")
    f.close()
    term.uplink.rx_spilled = False
    term.uplink.rx_size = 300
    term._on_message(_PREFIX + b"config/set", None, False)
    assert term.reset_at is None
    assert term._inbox == [("config/set", None, False, 300, 0)]
    try:
        os.stat(_PENDING)
        raise AssertionError("saved")
    except OSError:
        pass
