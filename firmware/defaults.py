# Every configuration key's default value, the base that config.json is merged over
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Loaded only while a configuration is loaded at boot or a remote change is
# merged, then dropped (firmware/transient.py): the configuration in force
# shares the sections it does not change with this dict, so they stay.

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
