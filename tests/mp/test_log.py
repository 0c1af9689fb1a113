# Tests of firmware.log: levels, prefixes and the size-capped log file
import os

from firmware import log

_PATH = "/tmp/vt-log-test.txt"


def _clean():
    for p in (_PATH, _PATH + ".1"):
        try:
            os.remove(p)
        except OSError:
            pass


def _read(path):
    with open(path) as f:
        return f.read()


def test_level_filters_and_prefix():
    _clean()
    log.setup("warning", _PATH, 4096)
    lg = log.get("unit")
    lg.info("not written %d", 1)
    lg.warning("bad value %r", "x")
    text = _read(_PATH)
    assert "not written" not in text
    assert "[unit] W: bad value 'x'" in text
    log.setup("warning", None)


def test_file_rotates_at_cap():
    _clean()
    log.setup("info", _PATH, 1024)
    log.console = False
    lg = log.get("rot")
    for i in range(100):
        lg.warning("line %03d with some padding to fill the file", i)
    size = os.stat(_PATH)[6]
    old = os.stat(_PATH + ".1")[6]
    assert size <= 1024
    assert old <= 1024
    assert "line 099" in _read(_PATH)
    log.console = True
    log.setup("warning", None)


def test_unknown_level_rejected():
    try:
        log.setup("verbose")
    except ValueError as e:
        assert "verbose" in str(e)
    else:
        raise AssertionError("no ValueError for an unknown level")


def test_info_lines_stay_off_the_file():
    _clean()
    log.setup("info", _PATH, 4096)
    log.console = False
    lg = log.get("quiet")
    lg.info("console only")
    lg.error("to flash")
    log.console = True
    text = _read(_PATH)
    assert "console only" not in text
    assert "[quiet] E: to flash" in text
    log.setup("warning", None)
