# Remote commands: a cmd message checked against its argument rules and run
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Loaded by firmware.remote for a cmd message only, and dropped with it.

from firmware.remote import RemoteError, _log, _object

# Command name -> {argument: rule}. Every argument is required. A rule is
# ("str", min length, max length) or ("choice", allowed values).
COMMANDS = {
    "trip_start": {"trip": ("str", 1, 32), "type": ("choice", ("cold_chain", "hazmat"))},
    "trip_end": {},
    "ack": {"alarm": ("str", 1, 64)},
    "flush": {},
    "reboot": {},
    "selftest": {},
}


def _check_arg(key, v, rule, errors):
    if rule[0] == "choice":
        if not isinstance(v, str) or v not in rule[1]:
            errors.append((key, "must be one of %s, got %r" % ("/".join(rule[1]), v)))
    elif not isinstance(v, str):
        errors.append((key, "must be a string, got %r" % (v,)))
    elif not rule[1] <= len(v) <= rule[2]:
        errors.append((key, "length must be %d..%d, got %d" % (rule[1], rule[2], len(v))))


def run(r, message, ident, errors):
    """Check a cmd message and run the command; return the reply (JSON in a bytearray)."""
    name = message.get("cmd")
    args = message.get("args", {})
    rules = COMMANDS.get(name) if isinstance(name, str) else None
    if rules is None:
        errors.append(("cmd", "unknown command %r; known: %s" % (name, ", ".join(sorted(COMMANDS)))))
    elif not isinstance(args, dict):
        errors.append(("args", "must be an object, got %r" % (args,)))
    else:
        for k in args:
            if k not in rules:
                errors.append(("args." + k, "unknown argument"))
        for k in rules:
            if k not in args:
                errors.append(("args." + k, "missing"))
            else:
                _check_arg("args." + k, args[k], rules[k], errors)
        if not errors and name not in r._commands:
            errors.append(("cmd", "%s is not available on this terminal" % name))
    if not isinstance(name, str):
        name = None

    result = None
    if not errors:
        try:
            result = r._commands[name](args)
        except RemoteError as e:
            errors.append(("cmd", str(e)))
        except Exception as e:
            _log.exc(e, "command %s failed", name)
            errors.append(("cmd", "%s failed: %r" % (name, e)))
    r.events.append(("command", {"cmd": name, "ok": not errors}))
    if errors:
        return r._error("cmd", ident, errors, name)
    return _object([("id", ident), ("ok", True), ("topic", "cmd"), ("cmd", name),
                    ("result", {} if result is None else result)])
