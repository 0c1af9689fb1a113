# Remote commands, loaded with firmware.remote for each cmd message
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Kept out of firmware/app.py so that its bytecode is in the heap only while a
# command runs. Each function takes the running Terminal. A configuration
# change is put in force by firmware/apply.py instead.

import gc
import time
from micropython import const

from firmware import alarms as _alarms
from firmware import log
from firmware.remote import RemoteError

_RESET_DELAY_MS = const(3000)  # time for the reply to leave before a requested restart

_log = log.get("app")


def trip_summary(term):
    """Return the running trip's id, type and seconds out of range per channel."""
    out = {}
    for name in term.alarms.channels:
        out[name] = term.alarms.channels[name].out_ms // 1000
    return {"trip": term.alarms.trip_id, "type": _alarms.TRIP_TYPES[term.alarms.trip], "out_of_range_s": out}


def cmd_trip_start(term, args):
    if term.alarms.trip:
        raise RemoteError("trip %s is running; end it first" % term.alarms.trip_id)
    now = time.ticks_ms()
    kind = _alarms.TRIP_TYPES.index(args["type"])
    term.alarms.trip_start(kind, args["trip"], now)
    term.packer.set_trip(args["trip"])
    term.save_trip(now)
    term.record_event("trip_start", now, {"trip": args["trip"], "type": args["type"]})
    return {"trip": args["trip"], "type": args["type"], "early_s": term.alarms.early_left_ms(now) // 1000}


def cmd_trip_end(term, args):
    if not term.alarms.trip:
        raise RemoteError("no trip is running")
    now = time.ticks_ms()
    summary = trip_summary(term)
    term.alarms.trip_end(now)
    term.packer.set_trip(None)
    term.save_trip(now)
    term.record_event("trip_end", now, summary)
    return summary


def cmd_ack(term, args):
    done = term.alarms.ack(args["alarm"], time.ticks_ms())
    if not done:
        raise RemoteError("no active, unacknowledged alarm matches %r" % args["alarm"])
    return {"acknowledged": done}


def cmd_flush(term, args):
    term.store.flush()
    term.store.save_positions()
    return {"queued": term.store.depth()}


def cmd_reboot(term, args):
    term.reset_at = time.ticks_add(time.ticks_ms(), _RESET_DELAY_MS)
    return {"in_s": _RESET_DELAY_MS // 1000}


def cmd_selftest(term, args):
    p = term.probes
    probes = {}
    for i in range(len(p.names)):
        v = p.value_mc[i]
        probes[p.names[i]] = {"state": p.state[i], "c": None if v is None else v / 1000}
    out = {"probes": probes, "unknown_probes": list(p.extra), "alarms": term.alarms.active_keys(),
           "queued": term.store.depth(), "dropped": term.store.dropped(), "heap_free": gc.mem_free(),
           "config_version": term.cfg["version"], "clock_set": term.clock.unix_ms_at(time.ticks_ms()) is not None}
    c = term.clock
    # Local time minus GNSS time, measured once a minute after the clock was set (firmware/clock.py).
    out["clock"] = {"drift_ms": c.drift_ms, "drift_max_ms": c.drift_max_ms, "drift_ppm": c.drift_ppm,
                    "checks": c.drift_checks, "time_jumps": c.time_jumps}
    h = term.humidity
    if h is not None:
        out["dht"] = {"state": h.state, "c": None if h.temp_mc is None else h.temp_mc / 1000,
                      "rh": None if h.rh_mrh is None else h.rh_mrh / 1000}
    g = term.gnss
    if g is not None:
        out["gnss"] = {"fix": g.has_fix(), "age_ms": g.fix_age_ms(), "sentences": g.parser.counters()}
    return out


# Command name -> function(term, args). firmware.remote has checked the name and the arguments.
COMMANDS = {
    "trip_start": cmd_trip_start,
    "trip_end": cmd_trip_end,
    "ack": cmd_ack,
    "flush": cmd_flush,
    "reboot": cmd_reboot,
    "selftest": cmd_selftest,
}
