# Putting a validated configuration in force: live where the running terminal can take it, else by a restart
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Loaded with firmware.remote only while an accepted config/set is applied.

import time
from micropython import const

from firmware import log

_RESET_DELAY_MS = const(3000)  # time for the reply to leave before a requested restart

_log = log.get("app")


# Settings the running terminal takes over without a restart.
_LIVE_PREFIXES = ("alarm.", "zones", "route.", "interval_s", "alarm_interval_s", "dht.temp_", "dht.rh_",
                  "remote.", "version")


def live_key(key, old, new):
    """Return True when a change of key can be put in force without a restart."""
    for p in _LIVE_PREFIXES:
        if key.startswith(p):
            return True
    if key == "probes":
        # New limits apply at once. Other probe changes rebuild the channels, so they need a restart.
        a, b = old["probes"], new["probes"]
        if len(a) != len(b):
            return False
        for i in range(len(a)):
            if a[i]["rom"] != b[i]["rom"] or a[i]["name"] != b[i]["name"]:
                return False
        return True
    return False


def apply_config(term, new_cfg, changed):
    """Put a validated configuration in force; return "live" or "restart"."""
    restart = []
    for key in changed:
        if not live_key(key, term.cfg, new_cfg):
            restart.append(key)
    if restart:
        # config.json contains the change, and the next start reads it.
        term.reset_at = time.ticks_add(time.ticks_ms(), _RESET_DELAY_MS)
        term.cfg = new_cfg
        term.config_source = "file"
        _log.warning("configuration changed (%s); restarting to apply it", ", ".join(restart))
        term.config_changed = True
        return "restart"
    try:
        term.alarms.configure(new_cfg)
    except MemoryError:
        # The file is written, so a restart puts the change in force.
        term.reset_at = time.ticks_add(time.ticks_ms(), _RESET_DELAY_MS)
        term.cfg = new_cfg
        term.config_source = "file"
        _log.error("out of memory applying the configuration; restarting to apply it")
        return "restart"
    term.cfg = new_cfg
    term.config_source = "file"
    _log.info("configuration applied: %s", ", ".join(changed))
    term.config_changed = True
    return "live"
