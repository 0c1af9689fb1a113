# Tests of firmware.bootguard: safe mode from the pin, the flag file and the crash counter
import os

from firmware import bootguard

_DIR = "/tmp/vt-bootguard"


class _Pin:
    def __init__(self, level):
        self.level = level

    def value(self):
        return self.level


def _setup():
    try:
        os.mkdir(_DIR)
    except OSError:
        pass
    bootguard.STATE_PATH = _DIR + "/bootguard.json"
    bootguard.SAFE_FLAG_PATH = _DIR + "/safe_mode"
    for p in (bootguard.STATE_PATH, bootguard.SAFE_FLAG_PATH):
        try:
            os.remove(p)
        except OSError:
            pass


def test_normal_boot_starts_app():
    _setup()
    assert bootguard.check(_Pin(1), 1) is None
    assert bootguard.safe_reason is None


def test_pin_held_low():
    _setup()
    assert bootguard.check(_Pin(0), 1) == "safe-mode pin held low at boot"


def test_flag_file():
    _setup()
    open(bootguard.SAFE_FLAG_PATH, "w").close()
    assert "exists" in bootguard.check(_Pin(1), 1)


def test_three_failures_then_healthy_run():
    _setup()
    for _ in range(2):
        bootguard.count_failure()
    assert bootguard.check(_Pin(1), 1) is None
    # A watchdog reset counts as the third failure.
    reason = bootguard.check(_Pin(1), 3, wdt_reset=3)
    assert reason == "3 failed runs in a row (%s)" % bootguard.STATE_PATH
    bootguard.mark_healthy()
    assert bootguard.fails() == 0
    assert bootguard.check(_Pin(1), 1) is None


def test_power_on_reset_does_not_count():
    _setup()
    bootguard.check(_Pin(1), 1)
    bootguard.check(_Pin(1), 5)
    assert bootguard.fails() == 0
