# A config/set that ran out of memory during the run, handled at the next start while the heap is empty
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# With zones, a route and a trip in force, a large change can find no room
# for the remote code, the message and two configurations at once. After its
# last retry the running terminal saves the message and restarts.
# firmware.app runs handle() first thing at boot, before the modules that stay
# loaded, and take() sends the reply and stores the records once the uplink
# and the spool exist. Both files are removed before they are used, so a
# message that fails here cannot make the terminal restart again and again.
#
# NOTE: a change that passes validation but does not fit in the heap at boot
# would make every start fail until boot.py enters safe mode, because
# config.good.json is saved when config.json validates, not after a healthy
# run. The point limits in firmware.checks keep zones and the route to what
# was measured to fit at 112wK.

import gc
import json
import os
import time

from firmware import log
from firmware.app import PENDING_SET_PATH as PENDING_PATH  # written by Terminal._save_set
from firmware.transient import unload

RESULT_PATH = "/remote_result.json"  # {"reply": text, "events": [[name, extra], ...]}

_log = log.get("remote")


def _read(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    os.remove(path)
    return data


def handle():
    """Handle the saved config/set, if there is one, and keep its reply for take()."""
    data = _read(PENDING_PATH)
    if data is None:
        return
    try:
        _handle(data)
    except Exception as e:
        # Also a MemoryError: the message is lost, but the terminal starts.
        _log.exc(e, "handling the saved config/set message failed")
        _save_result(None, [("message", "handling the message after the restart failed: %r; send it again" % e)])
    gc.collect()


def _handle(data):
    head, _, payload = data.partition(b"\n")
    from firmware import config

    cfg, errors, source = config.load()
    config = None
    unload("firmware.config")
    from firmware.remote import Remote

    # The change goes to config.json here, and the start that follows reads it.
    r = Remote(cfg, None, cfg["remote"]["key"], lambda new_cfg, changed: "restart", None)
    r.cfg_from_file = source == "file" and not errors
    try:
        # The message was handled before, so its counter may equal the last accepted one.
        reply = r.handle("config/set", payload, head == b"1", len(payload), True)
        _save_result(reply, None, r.events)
    finally:
        r = None
        for name in ("firmware.remote", "firmware.remoteset", "firmware.signing", "firmware.checks",
                     "firmware.listchecks", "firmware.geobuild", "firmware.geo", "firmware.defaults",
                     "firmware.config"):
            unload(name)


def _save_result(reply, errors, events=()):
    if reply is None and errors:
        reply = json.dumps({"id": None, "ok": False, "topic": "config/set",
                            "errors": [{"key": k, "reason": v} for k, v in errors]}, separators=(",", ":"))
    if reply is None:
        # An unsigned retained set that changes nothing has no reply.
        reply = ""
    elif not isinstance(reply, str):
        # firmware.remote builds replies as a list of bytearrays.
        reply = b"".join(reply).decode()
    with open(RESULT_PATH, "w") as f:
        json.dump({"reply": reply, "events": events}, f)


def take(term):
    """Send the reply and store the records of a config/set handled by handle() at this start."""
    data = _read(RESULT_PATH)
    if data is None:
        return
    try:
        result = json.loads(data)
        for name, extra in result["events"]:
            term.record_event(name, time.ticks_ms(), extra)
        if result["reply"]:
            term.uplink.send("reply", result["reply"])
    except (ValueError, KeyError, TypeError) as e:
        _log.error("%s is not readable (%s); the reply to the saved config/set is lost", RESULT_PATH, e)
