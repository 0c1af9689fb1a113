# Remote configuration changes: a config/set message checked, written to flash and put in force
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Loaded by firmware.remote for a config/set message only, and dropped with it.

import os
from array import array
from micropython import const

from firmware import config
from firmware.remote import _dump, _log, _object, config_hash
from firmware.transient import unload

_FIXED_KEYS = ("device_id", "version")
_EVENT_ERRORS = const(5)  # errors listed in a config_rejected record


def start(r, message, ident, errors, quiet, size):
    """Check a config/set message and compute the new configuration; return finish()'s reply, or the pending tuple with r.validate_later."""
    change = message.get("set")
    if not isinstance(change, dict):
        errors.append(("set", "must be an object of the keys to change, got %r" % (change,)))
        change = {}
    for key in _FIXED_KEYS:
        if key in change:
            errors.append((key, "cannot be set remotely"))
    if r.patch is None:
        r.patch = _read_patch(r._config_path)
        # The stored patch was read from config.json: what it shares with the
        # configuration in force is taken from there, so that zones and a route
        # are not in the heap twice while the change is checked.
        _share(r.patch, r.cfg)
    change = {k: change[k] for k in change if k not in _FIXED_KEYS}
    patch = config.merge(r.patch, change)
    if r.cfg_from_file:
        # cfg is the defaults merged with r.patch, so this equals the merge
        # below. It shares the sections that the change leaves alone with cfg
        # and needs no firmware.defaults (4.6 KB), at the peak of a set.
        new_cfg = config.merge(r.cfg, change)
    else:
        new_cfg = _merge_defaults(patch)
    # The configuration in force passed validation, so only what changed is checked.
    keys = _changed(r.cfg, new_cfg, "", [])
    pending = (ident, patch, new_cfg, errors, quiet, size, keys)
    if r.validate_later:
        return pending
    errors.extend(config.validate(new_cfg, keys))
    return finish(r, *pending)


def _merge_defaults(patch):
    from firmware.defaults import DEFAULTS

    try:
        return config.merge(DEFAULTS, patch)
    finally:
        # The sections that patch leaves alone stay in the result, and the
        # module is unloaded, also when the merge runs out of memory.
        DEFAULTS = None
        unload("firmware.defaults")


def finish(r, ident, patch, new_cfg, errors, quiet, size, keys):
    """Write and apply a validated change, or reject it; return the reply (JSON in a bytearray), or None."""
    if errors:
        # The reply lists every error. The record keeps the first few, so that
        # a change full of errors does not need a large block of heap.
        r.events.append(("config_rejected", {"errors": ["%s: %s" % e for e in errors[:_EVENT_ERRORS]],
                                             "error_count": len(errors)}))
        _log.warning("config/set (id %r) rejected, %d error(s), first %s: %s", ident, len(errors), *errors[0])
        return r._error("config/set", ident, errors)

    if not keys:
        # An unsigned retained set arrives again at every connect: no reply then.
        return None if quiet else _set_ok(r, ident, "unchanged")

    # The new state is computed before config.json is replaced, so that a
    # MemoryError leaves the old configuration in force on flash and in RAM.
    version = r.version + 1
    patch["version"] = version
    new_cfg["version"] = version
    new_hash = config_hash(new_cfg)
    try:
        _write(r, patch)
    except OSError as e:
        _log.error("cannot write %s: %s", r._config_path, e)
        return r._error("config/set", ident, [("file", "cannot write %s: %s; nothing changed"
                                                  % (r._config_path, e))])

    key_changed = new_cfg["remote"]["key"] != r.cfg["remote"]["key"]
    r.patch = patch
    r.cfg = new_cfg
    r.version = version
    r.hash = new_hash
    if key_changed:
        r._use_key(new_cfg["remote"]["key"])
    try:
        applied = r._apply(new_cfg, keys) if r._apply else "restart"
    except Exception as e:
        # The configuration is on flash, so the next start uses it.
        _log.exc(e, "applying config version %d failed; it takes effect at the next restart", version)
        applied = "restart"
    r.events.append(("config_applied", {"version": version, "hash": new_hash, "keys": keys,
                                           "applied": applied}))
    _log.info("config version %d (%s) applied %s: %s", version, new_hash, applied, " ".join(keys))
    return _set_ok(r, ident, applied)

def _set_ok(r, ident, applied):
    return _object([("id", ident), ("ok", True), ("topic", "config/set"), ("version", r.version),
                    ("hash", r.hash), ("applied", applied)])

def _read_patch(path):
    # config.json holds only what differs from the defaults. A file that is
    # missing or unreadable here was replaced by the defaults at boot.
    import json

    try:
        with open(path) as f:
            patch = json.load(f)
    except (OSError, ValueError):
        return {}
    return patch if isinstance(patch, dict) else {}


def _share(patch, cfg):
    # Replace each list of patch that equals the value at the same key of cfg by cfg's.
    for k in patch:
        v = patch[k]
        c = cfg.get(k)
        if isinstance(v, dict) and isinstance(c, dict):
            _share(v, c)
        elif isinstance(v, list) and _same(v, c):
            patch[k] = c


def _same(a, b):
    # a == b, with packed points (firmware.config.compact_points) equal to their
    # lists. Values of different types differ although == returns True for
    # them (1 and true, 5 and 5.0). Their JSON text and hash differ, and a bool
    # given as 1 must reach validation.
    if a is b:
        return True
    if isinstance(a, array) or isinstance(b, array):
        if isinstance(a, (list, array)) and isinstance(b, (list, array)):
            return _same(config.points_list(a), config.points_list(b))
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        if len(a) != len(b):
            return False
        for k in a:
            if k not in b or not _same(a[k], b[k]):
                return False
        return True
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        for i in range(len(a)):
            if not _same(a[i], b[i]):
                return False
        return True
    return type(a) is type(b) and a == b


def _write(r, patch):
    # Streamed into a temporary file, then renamed, so a power cut leaves
    # the old or the new config.json, never half of one.
    temp = r._config_path + ".tmp"
    try:
        with open(temp, "w") as f:
            _dump(patch, f.write)
        os.rename(temp, r._config_path)
    except (OSError, MemoryError):
        try:
            os.remove(temp)
        except OSError:
            pass
        raise


def _changed(old, new, prefix, out):
    # Dotted key paths whose value differs; lists count as one value.
    for k in new:
        a = old.get(k)
        if isinstance(a, dict) and isinstance(new[k], dict):
            _changed(a, new[k], prefix + k + ".", out)
        elif k not in old or not _same(a, new[k]):
            out.append(prefix + k)
    return out
