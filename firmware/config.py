# Configuration: every default in one place, the device's config.json, validated as a whole
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# config.json on flash holds only what differs from DEFAULTS. At boot it is merged
# over the defaults and the result is checked as a whole. A bad file or value is
# reported with its key and reason, and the terminal runs on the last good
# configuration (config.good.json) or, failing that, on the defaults.

import json

CONFIG_PATH = "/config.json"
GOOD_PATH = "/config.good.json"

# Each leaf: default value. RULES below gives the type and range of every key.
DEFAULTS = {
    "device_id": "",
    "interval_s": 60,
    "alarm_interval_s": 15,
    "sample_s": 2,
    "probes": [],
    "dht": {
        "enabled": True,
        "model": "DHT22",
        "interval_s": 10,
        "temp_low": None,
        "temp_high": None,
        "rh_low": None,
        "rh_high": None,
    },
    "gnss": {"enabled": True, "baud": 9600},
    "alarm": {
        "delay_s": 60,
        "hysteresis_c": 0.5,
        "hysteresis_rh": 2.0,
        "fault_count": 3,
        "door_open_delay_s": 0,
        "sos_clear_hold_s": 3,
    },
    "inputs": {"debounce_ms": 50},
    "mqtt": {
        "host": "127.0.0.1",
        "port": 1883,
        "client_id": "",
        "user": "",
        "password": "",
        "tls": False,
        "ca_file": "",
        "server_hostname": "",
        "keepalive_s": 30,
        "topic_prefix": "fleet",
        "timeout_s": 10,
        "backoff_max_s": 60,
        # QoS 1 publishes in flight at once, and the largest batch of backlog records in one message.
        "window": 8,
        "batch_bytes": 4096,
    },
    "wifi": {"ssid": "", "password": ""},
    # Records wait on flash until the broker acknowledges them (firmware/store.py).
    # 64 segments of 16 KiB hold about 20,000 records of 4 probes, DHT and position.
    "spool": {
        "dir": "/spool",
        "segment_bytes": 16384,
        "max_segments": 64,
        "flush_s": 10,
        "flush_records": 16,
        "time_wait_s": 600,
    },
    "log": {"level": "warning", "file": "/log.txt", "file_max_bytes": 16384},
    "watchdog_s": 30,
}

# Key path -> (type, minimum, maximum). "num" accepts int or float; "num?" also None.
# A tuple of strings as the type lists the allowed values.
RULES = {
    "device_id": ("str", 0, 64),
    "interval_s": ("int", 1, 86400),
    "alarm_interval_s": ("int", 1, 86400),
    "sample_s": ("int", 1, 3600),
    "probes": ("probes", 0, 16),
    "dht.enabled": ("bool", None, None),
    "dht.model": (("DHT22", "DHT11"), None, None),
    "dht.interval_s": ("int", 2, 3600),
    "dht.temp_low": ("num?", -40, 80),
    "dht.temp_high": ("num?", -40, 80),
    "dht.rh_low": ("num?", 0, 100),
    "dht.rh_high": ("num?", 0, 100),
    "gnss.enabled": ("bool", None, None),
    "gnss.baud": ("int", 1200, 921600),
    "alarm.delay_s": ("int", 0, 86400),
    "alarm.hysteresis_c": ("num", 0.01, 20),
    "alarm.hysteresis_rh": ("num", 0.1, 50),
    "alarm.fault_count": ("int", 1, 100),
    "alarm.door_open_delay_s": ("int", 0, 86400),
    "alarm.sos_clear_hold_s": ("int", 1, 60),
    "inputs.debounce_ms": ("int", 1, 1000),
    "mqtt.host": ("str", 1, 253),
    "mqtt.port": ("int", 1, 65535),
    "mqtt.client_id": ("str", 0, 64),
    "mqtt.user": ("str", 0, 128),
    "mqtt.password": ("str", 0, 256),
    "mqtt.tls": ("bool", None, None),
    "mqtt.ca_file": ("str", 0, 128),
    "mqtt.server_hostname": ("str", 0, 253),
    "mqtt.keepalive_s": ("int", 5, 3600),
    "mqtt.topic_prefix": ("str", 1, 64),
    "mqtt.timeout_s": ("int", 1, 120),
    "mqtt.backoff_max_s": ("int", 1, 3600),
    "wifi.ssid": ("str", 0, 32),
    "wifi.password": ("str", 0, 64),
    "mqtt.window": ("int", 1, 32),
    "mqtt.batch_bytes": ("int", 1024, 65536),
    "spool.dir": ("str", 2, 64),
    "spool.segment_bytes": ("int", 2048, 65536),
    "spool.max_segments": ("int", 2, 1024),
    "spool.flush_s": ("int", 1, 600),
    "spool.flush_records": ("int", 1, 64),
    "spool.time_wait_s": ("int", 0, 86400),
    "log.level": (("debug", "info", "warning", "error"), None, None),
    "log.file": ("str", 0, 128),
    "log.file_max_bytes": ("int", 1024, 1048576),
    "watchdog_s": ("int", 0, 600),
}

# Keys that are never printed or logged.
SECRET_KEYS = ("mqtt.password", "wifi.password")

_PROBE_KEYS = ("rom", "name", "low", "high")


class ConfigError(ValueError):
    """A configuration that failed validation; .errors lists (key, reason) pairs."""

    def __init__(self, errors):
        super().__init__("; ".join("%s: %s" % e for e in errors))
        self.errors = errors


def merge(base, patch):
    """Return a copy of base with patch applied; nested dicts are merged key by key."""
    out = {}
    for k in base:
        out[k] = base[k]
    for k in patch:
        v = patch[k]
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def _flatten(d, prefix, out):
    for k in d:
        v = d[k]
        key = prefix + k
        if isinstance(v, dict) and key + "." not in RULES and any(
            r.startswith(key + ".") for r in RULES
        ):
            _flatten(v, key + ".", out)
        else:
            out[key] = v
    return out


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(key, v, rule, errors):
    kind, lo, hi = rule
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
    if kind == "probes":
        _check_probes(key, v, lo, hi, errors)
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


def rom_crc_ok(rom):
    """Return True if byte 7 of an 8-byte 1-Wire ROM ID is the Dallas CRC-8 of bytes 0-6."""
    from drivers.ds18b20 import crc8

    return crc8(rom) == 0


def parse_rom(text):
    """Return the 8 ROM bytes of "28A1B2C304000096" or "28:A1:B2:C3:04:00:00:96"; raise ValueError."""
    hexdigits = text.replace(":", "").replace("-", "")
    if len(hexdigits) != 16:
        raise ValueError("ROM ID must have 16 hex digits")
    try:
        rom = bytes(int(hexdigits[i : i + 2], 16) for i in range(0, 16, 2))
    except ValueError:
        raise ValueError("ROM ID is not hexadecimal")
    return rom


def _check_probes(key, probes, lo, hi, errors):
    if not isinstance(probes, list):
        errors.append((key, "must be a list of probes, got %r" % (probes,)))
        return
    if len(probes) > hi:
        errors.append((key, "at most %d probes, got %d" % (hi, len(probes))))
    roms = []
    names = []
    for i, p in enumerate(probes):
        pk = "%s[%d]" % (key, i)
        if not isinstance(p, dict):
            errors.append((pk, "must be an object with rom and name, got %r" % (p,)))
            continue
        for k in p:
            if k not in _PROBE_KEYS:
                errors.append((pk + "." + k, "unknown key"))
        rom = p.get("rom")
        try:
            if not isinstance(rom, str):
                raise ValueError("ROM ID must be a string")
            rb = parse_rom(rom)
            if not rom_crc_ok(rb):
                raise ValueError("CRC byte does not match (typo in the ROM ID?)")
            if rb in roms:
                raise ValueError("ROM ID listed twice")
            roms.append(rb)
        except ValueError as e:
            errors.append((pk + ".rom", "%s, got %r" % (e, rom)))
        name = p.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 32:
            errors.append((pk + ".name", "must be a string of 1..32 characters, got %r" % (name,)))
        elif name in names:
            errors.append((pk + ".name", "name %r used twice" % name))
        else:
            names.append(name)
        for lim in ("low", "high"):
            v = p.get(lim)
            if v is not None and (not _is_num(v) or not -55 <= v <= 125):
                errors.append((pk + "." + lim, "must be a number -55..125 or null, got %r" % (v,)))
        low, high = p.get("low"), p.get("high")
        if _is_num(low) and _is_num(high) and not low < high:
            errors.append((pk, "low (%r) must be below high (%r)" % (low, high)))


def validate(cfg):
    """Return a list of (key, reason) for every problem in a merged configuration."""
    errors = []
    flat = _flatten(cfg, "", {})
    for key in flat:
        if key not in RULES:
            errors.append((key, "unknown key"))
    for key in RULES:
        if key not in flat:
            errors.append((key, "missing"))
            continue
        if key in SECRET_KEYS:
            # Report what is wrong with a secret without its value.
            found = []
            _check(key, flat[key], RULES[key], found)
            errors.extend((k, "invalid (%s; value not shown)" % r.split(",")[0]) for k, r in found)
            continue
        _check(key, flat[key], RULES[key], errors)
    _check_device_id(flat.get("device_id"), errors)
    d = cfg.get("dht") if isinstance(cfg.get("dht"), dict) else {}
    for lo, hi in (("temp_low", "temp_high"), ("rh_low", "rh_high")):
        a, b = d.get(lo), d.get(hi)
        if _is_num(a) and _is_num(b) and not a < b:
            errors.append(("dht." + lo, "must be below dht.%s (%r), got %r" % (hi, b, a)))
    return errors


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
            return cfg, [], "file"

    try:
        cfg = merge(DEFAULTS, _read_json(good_path))
        if not validate(cfg):
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


def redacted(cfg):
    """Return a copy of cfg with secrets replaced by "***", for logs and status output."""
    out = merge(cfg, {})
    for key in SECRET_KEYS:
        sect, leaf = key.split(".")
        if isinstance(out.get(sect), dict) and out[sect].get(leaf):
            out[sect] = merge(out[sect], {leaf: "***"})
    return out
