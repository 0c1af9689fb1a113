# Safe-mode decision at boot and the crash counter that protects against boot loops
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# boot.py calls check(); main.py starts the application only when safe_reason
# is None. The application is skipped when the BOOT pin is held low, when the
# file /safe_mode exists (mpremote can create it, see the README), or after
# MAX_FAILS consecutive failed runs: an unhandled exception counted by main.py,
# or a watchdog reset counted here. The app clears the counter once it has run
# healthily for HEALTHY_S seconds.

import json
from micropython import const

MAX_FAILS = const(3)
HEALTHY_S = const(300)
STATE_PATH = "/bootguard.json"
SAFE_FLAG_PATH = "/safe_mode"

# Reason the application is not started, or None.
safe_reason = None


def _read():
    try:
        with open(STATE_PATH) as f:
            d = json.load(f)
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def fails():
    n = _read().get("fails", 0)
    return n if isinstance(n, int) else 0


def _write(n):
    try:
        with open(STATE_PATH, "w") as f:
            json.dump({"fails": n}, f)
    except OSError:
        pass


def count_failure():
    """Count one failed run (called before a deliberate reset after a crash)."""
    _write(fails() + 1)


def mark_healthy():
    if fails():
        _write(0)


def check(safe_pin=None, reset_cause=None, wdt_reset=3):
    """Decide whether to skip the application; sets and returns safe_reason."""
    global safe_reason
    safe_reason = None
    if reset_cause == wdt_reset:
        count_failure()
    if safe_pin is not None and safe_pin.value() == 0:
        safe_reason = "safe-mode pin held low at boot"
    else:
        try:
            import os

            os.stat(SAFE_FLAG_PATH)
            safe_reason = "file %s exists" % SAFE_FLAG_PATH
        except OSError:
            n = fails()
            if n >= MAX_FAILS:
                safe_reason = "%d failed runs in a row (%s)" % (n, STATE_PATH)
    return safe_reason
