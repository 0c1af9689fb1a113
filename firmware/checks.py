# Configuration checks: every key's type and range, and the rules across keys
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Loaded only while a configuration is loaded or validated (firmware.config.load
# and validate), then dropped from memory again: the checks take about 14 KB of
# heap on the 64-bit unix port, which a running terminal does not need. The
# checks of probes, zones and the route are in firmware.listchecks.

import json
from array import array

from firmware.config import CONFIG_PATH, GOOD_PATH, SECRET_KEYS, compact_points, merge

SHAPE_POINTS_MAX = 40  # polygon points of all zones and route points together

# One rule per line: key path, type, minimum, maximum ("-" for none). "num"
# accepts int or float, "num?" also null; "a|b" lists the allowed strings. The
# bounds of "str" and "hex" are lengths, those of "probes", "zones" and "route"
# counts. Text rather than tuples, because validation runs while the heap is
# fragmented: as strings the table takes about 2 KB of heap, as 65 tuples about
# 10 KB (64-bit unix port). Several short strings rather than one, so that each
# fits in a small free block. rules() gives the tuples.
RULES = (
    """
device_id str 0 64
interval_s int 1 86400
alarm_interval_s int 1 86400
sample_s int 1 3600
probes probes 0 16
dht.enabled bool - -
dht.model DHT22|DHT11 - -
dht.interval_s int 2 3600
dht.temp_low num? -40 80
dht.temp_high num? -40 80
dht.rh_low num? 0 100
dht.rh_high num? 0 100
gnss.enabled bool - -
gnss.baud int 1200 921600
""",
    """
alarm.delay_s int 0 86400
alarm.hysteresis_c num 0.01 20
alarm.hysteresis_rh num 0.1 50
alarm.cumulative_s int 0 604800
alarm.early_s int 0 86400
alarm.early_margin_c num 0 20
alarm.early_margin_rh num 0 50
alarm.early_delay_s int 0 86400
alarm.trend_horizon_s int 0 7200
alarm.trend_window_s int 30 3600
alarm.fault_count int 1 100
alarm.gnss_silent_s int 0 86400
alarm.gnss_nofix_s int 0 86400
alarm.moving_kmh int 1 50
alarm.door_open_delay_s int 0 86400
""",
    """
alarm.sos_clear_hold_s int 1 60
alarm.overspeed_kmh int 0 250
alarm.overspeed_s int 0 3600
alarm.stop_s int 0 86400
zones zones 0 8
route.points route 0 24
route.width_m int 10 5000
remote.key hex 32 128
version int 0 1000000000
inputs.debounce_ms int 1 1000
""",
    """
mqtt.host str 1 253
mqtt.port int 1 65535
mqtt.client_id str 0 64
mqtt.user str 0 128
mqtt.password str 0 256
mqtt.tls bool - -
mqtt.ca_file str 0 128
mqtt.server_hostname str 0 253
mqtt.keepalive_s int 5 3600
mqtt.topic_prefix str 1 64
mqtt.timeout_s int 1 120
mqtt.backoff_max_s int 1 3600
wifi.ssid str 0 32
wifi.password str 0 64
mqtt.window int 1 32
mqtt.batch_bytes int 1024 65536
""",
    """
spool.dir str 2 64
spool.segment_bytes int 2048 65536
spool.max_segments int 2 1024
spool.flush_s int 1 600
spool.flush_records int 1 64
spool.time_wait_s int 0 86400
log.level debug|info|warning|error - -
log.file str 0 128
log.file_max_bytes int 1024 1048576
watchdog_s int 0 600
""",
)


def rules():
    """Yield every rule as (key, type, minimum, maximum), in table order."""
    for text in RULES:
        start = 1
        while True:
            end = text.find("\n", start)
            if end < 0:
                break
            yield _parse(text[start:end])
            start = end + 1


def _parse(line):
    key, kind, lo, hi = line.split()
    if "|" in kind:
        kind = tuple(kind.split("|"))
    return key, kind, _bound(lo), _bound(hi)


def _bound(text):
    if text == "-":
        return None
    return float(text) if "." in text else int(text)



_NOT_OBJECT = "must be an object of settings, got %r"


def _unknown(d, prefix, errors):
    # Report keys of d that RULES does not know. A dict is walked into when some
    # rule lies below it. No flat copy of the configuration is made, because at
    # run time the heap may lack one free block large enough for its table.
    for k in d:
        v = d[k]
        key = prefix + k
        if _rule(key):
            continue
        if not _has_rules_below(key + "."):
            errors.append((key, "unknown key"))
        elif isinstance(v, dict):
            _unknown(v, key + ".", errors)
        else:
            errors.append((key, _NOT_OBJECT % (v,)))


def _rule(key):
    probe = "\n" + key + " "
    for text in RULES:
        i = text.find(probe)
        if i >= 0:
            return _parse(text[i + 1 : text.find("\n", i + 1)])
    return None


def _has_rules_below(prefix):
    probe = "\n" + prefix
    for text in RULES:
        if text.find(probe) >= 0:
            return True
    return False


_MISSING = object()


def _lookup(cfg, key):
    # The value at a dotted key, or _MISSING.
    v = cfg
    for part in key.split("."):
        if not isinstance(v, dict) or part not in v:
            return _MISSING
        v = v[part]
    return v


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(key, v, rule, errors, lists=None):
    _, kind, lo, hi = rule
    if isinstance(kind, tuple):
        if v not in kind:
            errors.append((key, "must be one of %s, got %r" % ("/".join(kind), v)))
        return
    if kind == "bool":
        if not isinstance(v, bool):
            errors.append((key, "must be true or false, got %r" % (v,)))
        return
    if kind == "str":
        if not isinstance(v, str):
            errors.append((key, "must be a string, got %r" % (v,)))
        elif not lo <= len(v) <= hi:
            errors.append((key, "length must be %d..%d, got %d" % (lo, hi, len(v))))
        return
    if kind in ("probes", "zones", "route"):
        # Their checks (and for zones and the route, the geometry code) are
        # loaded only when such a key is checked. With lists, the caller runs
        # them after it has dropped this module (firmware.config.validate).
        if lists is not None:
            lists.append((key, v, kind, lo, hi))
            return
        from firmware import listchecks

        listchecks.check(key, v, kind, lo, hi, errors)
        return
    if kind == "hex":
        # Empty, or lo..hi hex digits.
        if not isinstance(v, str):
            errors.append((key, "must be a string of hex digits, got %r" % (v,)))
        elif v and (not lo <= len(v) <= hi or len(v) % 2 or not _is_hex(v)):
            errors.append((key, "must be empty or an even number %d..%d of hex digits" % (lo, hi)))
        return
    if v is None and kind == "num?":
        return
    if kind == "int" and not (isinstance(v, int) and not isinstance(v, bool)):
        errors.append((key, "must be an integer, got %r" % (v,)))
        return
    if kind != "int" and not _is_num(v):
        errors.append((key, "must be a number, got %r" % (v,)))
        return
    if not lo <= v <= hi:
        errors.append((key, "must be %s..%s, got %r" % (lo, hi, v)))


def _is_hex(text):
    for c in text:
        if c not in "0123456789abcdefABCDEF":
            return False
    return True


def _affected(key, changed):
    # Whether a change of any key in changed can change the value at key.
    for c in changed:
        if key == c or key.startswith(c + ".") or c.startswith(key + "."):
            return True
    return False


def validate(cfg, changed=None, lists=None):
    """Return a list of (key, reason) for every problem in a merged configuration.

    With changed, a list of the dotted keys that differ from a configuration
    that passed validation, only the rules of those keys run, and every rule
    across keys. Unknown keys are looked for everywhere. With lists, the checks
    of probes, zones and the route are not run but appended to it as
    (key, value, kind, lo, hi), the arguments of firmware.listchecks.check.
    """
    errors = []
    _unknown(cfg, "", errors)
    # The keys in a section that is not an object are not reported one by one.
    broken = tuple(k + "." for k, r in errors if r.startswith(_NOT_OBJECT[:20]))
    for rule in rules():
        key = rule[0]
        if changed is not None and not _affected(key, changed):
            continue
        if broken and key.startswith(broken):
            continue
        value = _lookup(cfg, key)
        if value is _MISSING:
            errors.append((key, "missing"))
            continue
        if key in SECRET_KEYS:
            # Report what is wrong with a secret without its value.
            found = []
            _check(key, value, rule, found)
            errors.extend((k, "invalid (%s; value not shown)" % r.split(",")[0]) for k, r in found)
            continue
        _check(key, value, rule, errors, lists)
    _check_device_id(cfg.get("device_id"), errors)
    _check_topic_prefix(cfg, errors)
    d = cfg.get("dht") if isinstance(cfg.get("dht"), dict) else {}
    for lo, hi in (("temp_low", "temp_high"), ("rh_low", "rh_high")):
        a, b = d.get(lo), d.get(hi)
        if _is_num(a) and _is_num(b) and not a < b:
            errors.append(("dht." + lo, "must be below dht.%s (%r), got %r" % (hi, b, a)))
    _check_early(cfg, errors)
    _check_shape_points(cfg, errors)
    return errors


def _check_shape_points(cfg, errors):
    # Measured at 112wK during a trip (docs/config.md, section 5): with 64
    # points, gets and self-tests ran out of memory. The points may be packed
    # arrays (firmware.config.compact_points), two numbers per point.
    route = cfg.get("route")
    n_route = _count(route.get("points")) if isinstance(route, dict) else 0
    n_poly = 0
    zones = cfg.get("zones")
    if isinstance(zones, list):
        for z in zones:
            if isinstance(z, dict) and z.get("type") == "polygon":
                n_poly += _count(z.get("points"))
    if n_poly + n_route > SHAPE_POINTS_MAX:
        errors.append(("route.points" if n_route else "zones", "polygon points (%d) and route points (%d) together"
                       " must be at most %d, got %d" % (n_poly, n_route, SHAPE_POINTS_MAX, n_poly + n_route)))


def _check_early(cfg, errors):
    # The early-warning limits must still leave a range: low + margin < high - margin.
    ranges = []
    probes = cfg.get("probes")
    if isinstance(probes, list):
        for i, p in enumerate(probes):
            if isinstance(p, dict):
                ranges.append(("probes[%d]" % i, p.get("low"), p.get("high"), "alarm.early_margin_c"))
    d = cfg.get("dht") if isinstance(cfg.get("dht"), dict) else {}
    ranges.append(("dht.temp", d.get("temp_low"), d.get("temp_high"), "alarm.early_margin_c"))
    ranges.append(("dht.rh", d.get("rh_low"), d.get("rh_high"), "alarm.early_margin_rh"))
    for key, low, high, margin_key in ranges:
        m = _lookup(cfg, margin_key)
        if _is_num(low) and _is_num(high) and _is_num(m) and low < high and not low + m < high - m:
            errors.append((margin_key, "%r leaves no range between %s low %r and high %r" % (m, key, low, high)))


def _count(points):
    if isinstance(points, array):
        return len(points) // 2
    return len(points) if isinstance(points, list) else 0


def _check_topic_prefix(cfg, errors):
    # Every topic starts with the prefix: a wildcard in it makes every publish
    # invalid, and brokers reserve topics starting with '$'.
    m = cfg.get("mqtt")
    prefix = m.get("topic_prefix") if isinstance(m, dict) else None
    if not isinstance(prefix, str):
        return
    bad = prefix.startswith("$") or prefix.startswith("/") or prefix.endswith("/") or "//" in prefix
    for c in prefix:
        if c in "+#" or c < " ":
            bad = True
    if bad:
        errors.append(("mqtt.topic_prefix", "must not contain '+', '#' or control characters, start with '$', "
                       "or have an empty level, got %r" % prefix))


def _check_device_id(dev, errors):
    # The id is a level of every MQTT topic, so it must not contain topic syntax.
    if isinstance(dev, str):
        for c in dev:
            if c in "/+#" or c <= " ":
                errors.append(("device_id", "must not contain '/', '+', '#', spaces or control characters, got %r" % dev))
                return


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def load(path=CONFIG_PATH, good_path=GOOD_PATH):
    """Load, merge and validate the configuration.

    Returns (config, errors, source): errors lists (key, reason) pairs for what
    was wrong with the file at path, and source is "file", "last-good" or
    "defaults" to tell which configuration is in force.
    """
    # Only loading needs the defaults; a remote change is validated without them.
    from firmware.defaults import DEFAULTS

    errors = []
    try:
        patch = _read_json(path)
        if not isinstance(patch, dict):
            errors.append((path, "must contain a JSON object, got %s" % type(patch).__name__))
    except OSError:
        # No file is not an error: a new device runs on the defaults.
        patch = {}
    except ValueError as e:
        errors.append((path, "invalid JSON (%s)" % e))

    if not errors:
        cfg = merge(DEFAULTS, patch)
        errors = validate(cfg)
        if not errors:
            _save_good(patch, good_path)
            compact_points(cfg)
            return cfg, [], "file"

    try:
        cfg = merge(DEFAULTS, _read_json(good_path))
        if not validate(cfg):
            compact_points(cfg)
            return cfg, errors, "last-good"
    except (OSError, ValueError):
        pass
    return merge(DEFAULTS, {}), errors, "defaults"


def _save_good(patch, good_path):
    # Keep a copy of the last configuration that passed validation, written to
    # a temporary file first so a power cut never leaves a half-written copy.
    text = json.dumps(patch)
    try:
        with open(good_path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    try:
        import os

        tmp = good_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, good_path)
    except OSError:
        pass
