# Configuration: every default in one place, the device's config.json, validated as a whole
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# config.json on flash holds only what differs from DEFAULTS. At boot it is merged
# over the defaults and the result is checked as a whole. A bad file or value is
# reported with its key and reason, and the terminal runs on the last good
# configuration (config.good.json) or, failing that, on the defaults.


CONFIG_PATH = "/config.json"
GOOD_PATH = "/config.good.json"

# Each leaf: default value. RULES in firmware/checks.py gives the type and range of every key.
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
        # Temperature and humidity: out of range for delay_s in a row, or for
        # cumulative_s in all during a trip (0 turns the cumulative alarm off).
        "delay_s": 60,
        "hysteresis_c": 0.5,
        "hysteresis_rh": 2.0,
        "cumulative_s": 0,
        # Early-warning phase after trip start: limits tighter by the margins, shorter delay.
        "early_s": 1800,
        "early_margin_c": 1.0,
        "early_margin_rh": 3.0,
        "early_delay_s": 10,
        # Trend warning: the slope over trend_window_s reaches a limit within trend_horizon_s.
        "trend_horizon_s": 900,
        "trend_window_s": 300,
        "fault_count": 3,
        # GNSS: no NMEA bytes for gnss_silent_s; no fix for gnss_nofix_s with the ignition on.
        "gnss_silent_s": 30,
        "gnss_nofix_s": 300,
        # Moving means a current fix at moving_kmh or faster.
        "moving_kmh": 5,
        "door_open_delay_s": 0,
        "sos_clear_hold_s": 3,
        "overspeed_kmh": 0,
        "overspeed_s": 10,
        "stop_s": 0,
    },
    # Geofences: up to 16 circles or polygons (decimal degrees, closed rings).
    "zones": [],
    # Route corridor: a polyline and its half-width; no points means no route.
    "route": {"points": [], "width_m": 500},
    # Per-device key (hex) for signed remote messages; empty accepts unsigned ones.
    "remote": {"key": ""},
    # Raised by the terminal on every accepted remote change.
    "version": 0,
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

# Keys that are never printed or logged.
SECRET_KEYS = ("mqtt.password", "wifi.password", "remote.key")

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


def validate(cfg, changed=None):
    """Return a list of (key, reason) for every problem in a merged configuration.

    changed, the dotted keys that differ from a configuration that passed,
    limits the checks to those keys and the rules across keys.
    """
    # The checks take about 14 KB of heap (64-bit unix port), needed only at boot
    # and when a remote change arrives, so they are loaded for the call and dropped.
    from firmware import checks

    try:
        return checks.validate(cfg, changed)
    finally:
        unload("firmware.listchecks")
        unload("firmware.checks")
        unload("firmware.geobuild")


def unload(name):
    """Drop a module loaded for one task (firmware.checks, firmware.remote) so gc frees its bytecode."""
    import sys

    import firmware

    sys.modules.pop(name, None)
    attr = name.split(".")[-1]
    if attr in firmware.__dict__:
        delattr(firmware, attr)


def load(path=CONFIG_PATH, good_path=GOOD_PATH):
    """Load, merge and validate the configuration (firmware.checks.load); returns (config, errors, source)."""
    from firmware import checks

    try:
        return checks.load(path, good_path)
    finally:
        unload("firmware.listchecks")
        unload("firmware.checks")
        unload("firmware.geobuild")


def redacted(cfg):
    """Return a copy of cfg with secrets replaced by "***", for logs and status output."""
    out = merge(cfg, {})
    for key in SECRET_KEYS:
        sect, leaf = key.split(".")
        if isinstance(out.get(sect), dict) and out[sect].get(leaf):
            out[sect] = merge(out[sect], {leaf: "***"})
    return out
