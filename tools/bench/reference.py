# Reference telemetry record for the benchmarks: 4 probes, a DHT22 and a GNSS fix from a real capture
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Imported by the tools/bench/*_mp.py scripts under the unix port, after they
# have put the compiled firmware on sys.path. The record is the one the issue
# sizes the spool for: four DS18B20 probes, a DHT22 and a full position.
#
#   ref = Reference(store.names, boot_id=3)
#   packed = ref.telemetry()          # memoryview into the packer's buffer
#   text = ref.render(packed)         # the JSON a backend receives

import time

from firmware.alarms import Alarms
from firmware.clock import Clock, Uptime, unix_seconds
from firmware.gnss import GNSS
from firmware.packed import Packer, clock_offset_ms, render

DEVICE_ID = "esp32-a4cf12b3c0de"  # the default id form: "esp32-" and the 12-digit MAC
PROBE_NAMES = ("front", "middle", "rear", "return-air")
# A DGPS fix with every field the packer stores (GGA, GLL, and RMC with the date).
CAPTURE = "tests/data/nmea/skytraq-dgps.log"
LINK_JSON = '{"queued":10000,"dropped":0,"sent":123456,"reconnects":12}'
# The record is one day into a trip at one record per 30 s: uptime and seq
# then take as many varint bytes as during most of a week-long trip.
TRIP_UPTIME_MS = 86400000
TRIP_SEQ = 2880


class Probes:
    names = PROBE_NAMES
    value_mc = [3125, 4062, -18250, 5937]
    state = ["ok", "ok", "ok", "ok"]
    extra = []


class Humidity:
    state = "ok"
    temp_mc = 5100
    rh_mrh = 80200


class Inputs:
    def active(self, name):
        return name == "ignition"


def gnss_with_fix(path=CAPTURE):
    """Return a firmware.gnss.GNSS fed from an NMEA capture until it has a valid fix with a date."""
    gnss = GNSS(None)
    with open(path, "rb") as f:
        for raw in f:
            if raw.startswith(b"$"):
                line = bytearray(raw.rstrip() + b"\r\n")
                gnss.feed(line, len(line))
            fix = gnss.fix
            if gnss.parser.valid and fix.year is not None and fix.alt_mm is not None and fix.speed_kn_e3 is not None:
                return gnss
    raise ValueError("no dated fix with altitude and speed in %s" % path)


def clock_from_fix(fix):
    """Return a firmware.clock.Clock set to the fix's UTC time now, as the terminal sets it from GNSS."""
    # Clock.offer_fix() takes dates from 2026 on and needs two fixes. The
    # capture is from 2016, so the anchor is set directly.
    clock = Clock()
    clock.base_unix_ms = unix_seconds(fix.year, fix.month, fix.day, fix.hour, fix.minute, fix.second) * 1000
    clock.base_ms = time.ticks_ms()
    return clock


def alarms_for(probe_names):
    """Return an alarm set with high and low limits on every probe and on the DHT, as a configured terminal has."""
    from firmware import config, defaults

    cfg = config.merge(defaults.DEFAULTS, {
        "probes": [{"rom": "", "name": name, "low": 2.0, "high": 8.0} for name in probe_names],
        "dht": {"temp_low": 0.0, "temp_high": 10.0, "rh_low": 40.0, "rh_high": 95.0},
        "alarm": {"cumulative_s": 3600, "overspeed_kmh": 90, "stop_s": 900},
    })
    return Alarms(cfg, True, lambda alarm, change, now_ms: None)


class TripUptime(Uptime):
    """Uptime that starts TRIP_UPTIME_MS into the trip."""

    def ms(self, now_ms=None):
        return super().ms(now_ms) + TRIP_UPTIME_MS


class Reference:
    """The reference sensors, a Packer for one boot and the clock offset its records render with."""

    def __init__(self, names, boot_id=3):
        self.names = names
        self.boot_id = boot_id
        self.probes = Probes()
        self.humidity = Humidity()
        self.inputs = Inputs()
        self.gnss = gnss_with_fix()
        self.alarms = alarms_for(PROBE_NAMES)
        self.uptime = TripUptime()
        self.clock = clock_from_fix(self.gnss.fix)
        self.packer = Packer(names, boot_id, self.uptime, self.clock)
        self.packer.set_schema(PROBE_NAMES, [a.key for a in self.alarms.all])
        self.packer.seq = TRIP_SEQ
        self.offset_ms = clock_offset_ms(self.clock, self.uptime, time.ticks_ms())

    def telemetry(self, now_ms=None):
        """Pack one telemetry record; the memoryview is valid until the next call."""
        if now_ms is None:
            now_ms = time.ticks_ms()
        return self.packer.telemetry(now_ms, self.probes, self.humidity, self.gnss, self.inputs, self.alarms)

    def render(self, packed, link=LINK_JSON):
        return render(packed, DEVICE_ID, self.names, self.offset_ms, link)
