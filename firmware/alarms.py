# Alarm engine: limits, excursions, trends, sensor faults, GNSS, inputs, motion, zones and route
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Every rule runs here, in the loop, whatever the uplink is doing. An alarm moves
# NORMAL -> PENDING -> ACTIVE -> NORMAL. Entering ACTIVE is a "raised" change,
# leaving it a "cleared" change, and an operator's acknowledgement an
# "acknowledged" change. Each change goes to the emit callback at once.
#
# Values are ints in milli-units (m°C, milli-%RH, ms, mm/s never), times are
# ticks_ms(), and positions are degrees x 1e5 (firmware.geo), so a full
# evaluation (sample, position, tick) allocates nothing in steady state. Only a
# change allocates, for its log line and record.

import time
from array import array
from micropython import const

from firmware import log
from firmware.nmea import speed_kmh_e2

NORMAL = const(0)
PENDING = const(1)
ACTIVE = const(2)

# Changes passed to emit(alarm, change, now_ms).
RAISED = const(0)
CLEARED = const(1)
ACKNOWLEDGED = const(2)
CHANGES = ("raised", "cleared", "acknowledged")

INFO = const(0)
WARNING = const(1)
CRITICAL = const(2)
SEVERITIES = ("info", "warning", "critical")

NO_TRIP = const(0)
COLD_CHAIN = const(1)
HAZMAT = const(2)
TRIP_TYPES = (None, "cold_chain", "hazmat")

# kind: (severity, JT/T 808 alarm-flag bit or -1). JT/T 808 has no temperature bits.
RULES = {
    "temp_high": (CRITICAL, -1),
    "temp_low": (CRITICAL, -1),
    "rh_high": (CRITICAL, -1),
    "rh_low": (CRITICAL, -1),
    "temp_cumulative": (CRITICAL, -1),
    "rh_cumulative": (CRITICAL, -1),
    "temp_trend": (WARNING, -1),
    "rh_trend": (WARNING, -1),
    "sensor_fault": (WARNING, -1),
    "sos": (CRITICAL, 0),  # emergency alarm
    "overspeed": (WARNING, 1),
    "gnss_silent": (WARNING, 4),  # GNSS module fault
    "gnss_nofix": (WARNING, 5),  # GNSS antenna disconnected or cut
    "stop": (WARNING, 19),  # overtime parking
    "geofence": (WARNING, 20),  # in/out of area
    "route": (WARNING, 23),  # route deviation
    "door_open": (CRITICAL, 31),  # illegal door opening
    "seat": (CRITICAL, -1),
}

# Trend: the slope is fitted over this many points, spread over trend_window_s.
_TREND_POINTS = const(16)
# Sum of u*u for u = 2i - (n - 1), i = 0..n-1: the fit's denominator for 16 points.
_TREND_DEN = const(1360)
_OVERSPEED_HYST_KMH_E2 = const(300)
_ROUTE_CONFIRM_MS = const(10000)  # outside the corridor this long: one stray fix is not a deviation
_DT_MAX_MS = const(60000)  # maximum gap between samples counted as out-of-range time
_CUM_CAP_MS = const(1000000000)  # stays a small int on the ESP32

_log = log.get("alarm")


class Alarm:
    """One alarm instance, e.g. temp_high on channel "rear"."""

    # Defaults live in the class, so an instance's attribute table holds only
    # what was set: about 200 bytes less per alarm, with 30 or more alarms.
    state = NORMAL
    acked = False
    since_ms = 0
    # What caused the last change, in milli-units of the kind (None if none).
    value_m = None
    limit_m = None
    detail = None  # fault or reason name
    eta_s = None  # trend: seconds until the limit
    zone = None  # geofence: zone name

    def __init__(self, kind, channel):
        self.kind = kind
        self.channel = channel

    @property
    def key(self):
        """"kind:channel", or the kind alone; allocates, so not for the hot path."""
        return self.kind + ":" + self.channel if self.channel else self.kind

    @property
    def severity(self):
        return RULES[self.kind][0]

    @property
    def jt808_bit(self):
        return RULES[self.kind][1]


class _Channel:
    """A temperature or humidity channel: its limits, alarms and out-of-range bookkeeping."""

    def __init__(self, name, kind, new):
        self.name = name
        self.high = new(kind + "_high", name)
        self.low = new(kind + "_low", name)
        self.cumulative = new(kind + "_cumulative", name)
        self.trend = new(kind + "_trend", name)
        self.fault = new("sensor_fault", name)
        self.high_m = None  # configured limits, milli-units
        self.low_m = None
        self.hyst_m = 0
        self.margin_m = 0
        self.last_ms = None  # time of the last good sample
        self.last_out = False
        self.out_ms = 0  # out-of-range time in this trip
        self.value_m = None
        # Trend points: values in 0.01 unit (int16: up to 327 C or %RH), newest last.
        self.points = array("h", bytes(2 * _TREND_POINTS))
        self.times = array("i", bytes(4 * _TREND_POINTS))  # ticks_ms of each point
        self.npoints = 0
        self.point_ms = 0


def _text(v_m):
    # Milli-units as a decimal without float rounding noise: 8200 -> "8.2", -25062 -> "-25.062".
    sign = "-" if v_m < 0 else ""
    v_m = abs(v_m)
    return ("%s%d.%03d" % (sign, v_m // 1000, v_m % 1000)).rstrip("0").rstrip(".")


def _points_e5(geo, pts):
    # [(lat_e5, lon_e5)] of zone or route points: a list of [lat, lon], or the
    # flat array of firmware.config.compact_points.
    if isinstance(pts, list):
        return [(geo.deg_e5(p[0]), geo.deg_e5(p[1])) for p in pts]
    return [(geo.deg_e5(pts[i]), geo.deg_e5(pts[i + 1])) for i in range(0, len(pts), 2)]


def _milli(v):
    return None if v is None else int(round(v * 1000))


class Alarms:
    """The alarm engine. emit(alarm, change, now_ms) gets every raise, clear and acknowledgement."""

    def __init__(self, cfg, dht, emit):
        self._emit = emit
        self.all = []
        self.channels = {}
        self._chans = []
        names = [p["name"] for p in cfg["probes"]]
        for name in names:
            self._add_channel(name, "temp")
        if dht:
            self._add_channel("dht", "temp")
            self._add_channel("rh", "rh")
        self.sos = self._new("sos", "")
        self.door = self._new("door_open", "")
        self.seat = self._new("seat", "")
        self.gnss_silent = self._new("gnss_silent", "")
        self.gnss_nofix = self._new("gnss_nofix", "")
        self.overspeed = self._new("overspeed", "")
        self.stop = self._new("stop", "")
        self.geofence = self._new("geofence", "")
        self.route = self._new("route", "")

        self.trip = NO_TRIP
        self.trip_id = None
        self.early = False
        self._trip_ms = 0
        self.moving = False
        self.ignition = False
        self.door_opened = False
        self.seat_occupied = False
        self._door_ms = 0
        self._door_reason = None
        self._sos_press_ms = None
        self._sos_was_active = False
        self._nofix_ms = None
        self._still_ms = None  # stationary since
        self._fast_ms = None  # overspeed since
        self._off_route_ms = None
        self.speed_kmh_e2 = None
        self.lat = None  # e5 degrees of the last fix
        self.lon = None
        self.zones_in = 0  # bit i: inside zone i
        self.zones = []
        self.corridor = None
        self._fix_e5 = None
        self._built = None  # (zones, route, shapes) from build_zones()
        self._shaped = None  # (zones, route) of the configuration the shapes were built from
        # on_zone(name, entered, now_ms): set by the app for enter and exit events.
        self.on_zone = None
        # JT/T 808 alarm-flag word of the active alarms, in two halves that stay small ints.
        self.jt808_lo = 0
        self.jt808_hi = 0
        self._boot_ms = time.ticks_ms()
        self.configure(cfg)

    def _new(self, kind, channel):
        a = Alarm(kind, channel)
        self.all.append(a)
        return a

    def _add_channel(self, name, kind):
        ch = _Channel(name, kind, self._new)
        self.channels[name] = ch
        self._chans.append(ch)

    def configure(self, cfg):
        """Take limits, delays, zones and route from cfg; alarm states are kept."""
        a = cfg["alarm"]
        self.delay_ms = a["delay_s"] * 1000
        self.cumulative_ms = a["cumulative_s"] * 1000
        self.early_ms = a["early_s"] * 1000
        self.early_delay_ms = a["early_delay_s"] * 1000
        self.horizon_s = a["trend_horizon_s"]
        self.step_ms = a["trend_window_s"] * 1000 // _TREND_POINTS
        self.fault_count = a["fault_count"]
        self.silent_ms = a["gnss_silent_s"] * 1000
        self.nofix_ms = a["gnss_nofix_s"] * 1000
        self.moving_e2 = a["moving_kmh"] * 100
        self.door_delay_ms = a["door_open_delay_s"] * 1000
        self.sos_hold_ms = a["sos_clear_hold_s"] * 1000
        self.overspeed_e2 = a["overspeed_kmh"] * 100
        self.overspeed_ms = a["overspeed_s"] * 1000
        self.stop_ms = a["stop_s"] * 1000
        limits = {}
        for p in cfg["probes"]:
            limits[p["name"]] = (p.get("low"), p.get("high"), a["hysteresis_c"], a["early_margin_c"])
        d = cfg["dht"]
        limits["dht"] = (d["temp_low"], d["temp_high"], a["hysteresis_c"], a["early_margin_c"])
        limits["rh"] = (d["rh_low"], d["rh_high"], a["hysteresis_rh"], a["early_margin_rh"])
        for ch in self._chans:
            low, high, hyst, margin = limits.get(ch.name, (None, None, 0, 0))
            ch.low_m = _milli(low)
            ch.high_m = _milli(high)
            ch.hyst_m = _milli(hyst)
            ch.margin_m = _milli(margin)
            if ch.high_m is None and ch.high.state != NORMAL:
                self._set(ch.high, NORMAL, time.ticks_ms())
            if ch.low_m is None and ch.low.state != NORMAL:
                self._set(ch.low, NORMAL, time.ticks_ms())
        self._zone_cfg(cfg)

    def build_zones(self, cfg):
        """Build the shapes of cfg's zones and route now; configure(cfg) then takes them.

        A remote change calls this between validation and applying, while
        little other code is loaded, because the shapes' construction code is large.
        """
        self._built = None
        self._built = (cfg["zones"], cfg["route"], self._shapes(cfg))

    def _zone_cfg(self, cfg):
        built = self._built
        self._built = None
        zones = cfg["zones"]
        route = cfg["route"]
        shaped = self._shaped
        if built is not None and built[0] is zones and built[1] is route:
            self.zones, self.corridor = built[2]
            self._new_shapes()
        elif shaped is None or shaped[0] != zones or shaped[1] != route:
            # The old shapes go first, so that their heap is free for the new ones.
            self.zones = []
            self.corridor = None
            self.zones, self.corridor = self._shapes(cfg)
            self._new_shapes()
        # Otherwise the shapes in force are kept: building them again would
        # load the construction code beside the remote code, and an unchanged
        # zone would be entered a second time.
        self._shaped = (zones, route)

    def _new_shapes(self):
        # Zones are entered again from the next fix. A new route gets the whole
        # confirmation time, and without a route its deviation alarm clears.
        self.zones_in = 0
        self._off_route_ms = None
        if self.corridor is None and self.route.state != NORMAL:
            self._set(self.route, NORMAL, time.ticks_ms())

    def _shapes(self, cfg):
        zones = []
        corridor = None
        if not cfg["zones"] and not cfg["route"]["points"]:
            return zones, corridor
        from firmware import geo
        from firmware.transient import unload

        self._fix_e5 = geo.fix_e5
        try:
            for z in cfg["zones"]:
                if z["type"] == "circle":
                    shape = geo.Circle(geo.deg_e5(z["lat"]), geo.deg_e5(z["lon"]), z["radius_m"])
                else:
                    shape = geo.Polygon(_points_e5(geo, z["points"]))
                alarm = ("none", "inside", "outside").index(z.get("alarm", "none"))
                zones.append((z["name"], shape, alarm, z.get("stop_ok", False), z.get("door_ok", False)))
            pts = cfg["route"]["points"]
            if pts:
                corridor = geo.Corridor(_points_e5(geo, pts), cfg["route"]["width_m"])
        finally:
            # The shapes are built: their construction code leaves the heap.
            unload("firmware.geobuild")
        return zones, corridor

    # Changes

    def _set(self, a, state, now_ms):
        was_active = a.state == ACTIVE
        a.state = state
        a.since_ms = now_ms
        if state == ACTIVE and not was_active:
            a.acked = False
            if a.value_m is None:
                _log.warning("%s raised%s", a.key, " (%s)" % a.detail if a.detail else "")
            else:
                _log.warning("%s raised at %s (limit %s)", a.key, _text(a.value_m), _text(a.limit_m))
            self._emit(a, RAISED, now_ms)
        elif was_active and state != ACTIVE:
            _log.info("%s cleared", a.key)
            self._emit(a, CLEARED, now_ms)

    def _hold(self, a, on, delay_ms, now_ms):
        # A condition that must hold for delay_ms before the alarm is raised.
        if not on:
            if a.state != NORMAL:
                self._set(a, NORMAL, now_ms)
            return
        if a.state == NORMAL:
            a.state = PENDING
            a.since_ms = now_ms
        if a.state == PENDING and time.ticks_diff(now_ms, a.since_ms) >= delay_ms:
            self._set(a, ACTIVE, now_ms)

    # Temperature and humidity

    def sample(self, name, value_m, fails, detail, now_ms):
        """Feed one reading: value_m in milli-units, or None with the channel's consecutive fail count."""
        ch = self.channels[name]
        if value_m is None:
            # A faulty channel is neither in range nor out of range: limit states
            # hold, no out-of-range time is counted, and the trend starts again.
            ch.last_ms = None
            ch.npoints = 0
            fa = ch.fault
            if fails >= self.fault_count and fa.state != ACTIVE:
                fa.detail = detail
                self._set(fa, ACTIVE, now_ms)
            return
        if ch.fault.state == ACTIVE:
            self._set(ch.fault, NORMAL, now_ms)
        ch.value_m = value_m
        early = self.early
        delay = self.early_delay_ms if early else self.delay_ms
        margin = ch.margin_m if early else 0
        if ch.high_m is not None:
            self._limit(ch.high, value_m, ch.high_m - margin, ch.hyst_m, True, delay, now_ms)
        if ch.low_m is not None:
            self._limit(ch.low, value_m, ch.low_m + margin, ch.hyst_m, False, delay, now_ms)
        out = ((ch.high_m is not None and value_m > ch.high_m)
               or (ch.low_m is not None and value_m < ch.low_m))
        self._cumulative(ch, out, now_ms)
        self._trend(ch, value_m, now_ms)

    def _limit(self, a, v, limit, hyst, above, delay_ms, now_ms):
        outside = v > limit if above else v < limit
        if a.state == NORMAL and not outside:
            # The common case touches nothing, so an alarm that never fires keeps
            # its small attribute table.
            return
        a.value_m = v
        a.limit_m = limit
        if a.state == NORMAL:
            a.state = PENDING
            a.since_ms = now_ms
            a.detail = "early" if self.early else None
            if delay_ms == 0:
                self._set(a, ACTIVE, now_ms)
        elif a.state == PENDING:
            if not outside:
                a.state = NORMAL
            elif time.ticks_diff(now_ms, a.since_ms) >= delay_ms:
                self._set(a, ACTIVE, now_ms)
        elif (v <= limit - hyst) if above else (v >= limit + hyst):
            self._set(a, NORMAL, now_ms)

    def _cumulative(self, ch, out, now_ms):
        if self.trip != NO_TRIP and ch.last_ms is not None and ch.last_out:
            dt = time.ticks_diff(now_ms, ch.last_ms)
            if 0 < dt <= _DT_MAX_MS and ch.out_ms < _CUM_CAP_MS:
                ch.out_ms += dt
        ch.last_ms = now_ms
        ch.last_out = out
        a = ch.cumulative
        if self.trip != NO_TRIP and self.cumulative_ms and ch.out_ms >= self.cumulative_ms and a.state != ACTIVE:
            # Stays raised until the trip ends: time out of range only grows.
            a.value_m = ch.out_ms
            a.limit_m = self.cumulative_ms
            self._set(a, ACTIVE, now_ms)

    def _trend(self, ch, v, now_ms):
        if not self.horizon_s:
            return
        if ch.npoints and time.ticks_diff(now_ms, ch.point_ms) < self.step_ms:
            return
        pts = ch.points
        times = ch.times
        n = ch.npoints
        if n == _TREND_POINTS:
            for i in range(_TREND_POINTS - 1):
                pts[i] = pts[i + 1]
                times[i] = times[i + 1]
            n -= 1
        pts[n] = (v + 5) // 10 if v >= 0 else -((-v + 5) // 10)
        times[n] = now_ms
        ch.npoints = n + 1
        ch.point_ms = now_ms
        if ch.npoints < _TREND_POINTS:
            return
        # Least-squares slope over u = 2i - 15: num / _TREND_DEN is 0.01 unit per half step,
        # with the points taken as evenly spaced by their mean spacing (samples
        # come at a steady rate). |pts| <= 15000 (150 °C) keeps num below 4e6.
        num = 0
        total = 0
        for i in range(_TREND_POINTS):
            num += (2 * i - _TREND_POINTS + 1) * pts[i]
            total += pts[i]
        fit = total // _TREND_POINTS + num * (_TREND_POINTS - 1) // _TREND_DEN
        a = ch.trend
        # A warning needs the last quarter of the window to head the same way, so
        # the tail of a curve that has turned does not count. The last reading must
        # also be on the limit's side of the range's middle, so that a recovery
        # from one limit is not a warning about the other.
        recent = pts[_TREND_POINTS - 1] - pts[_TREND_POINTS - 5]
        middle = None
        if ch.high_m is not None and ch.low_m is not None:
            middle = (ch.high_m + ch.low_m) // 20  # in 0.01 unit, like fit
        limit = None
        if num > 0 and recent > 0 and ch.high_m is not None and ch.high.state == NORMAL:
            if middle is None or pts[_TREND_POINTS - 1] > middle:
                limit = ch.high_m
        elif num < 0 and recent < 0 and ch.low_m is not None and ch.low.state == NORMAL:
            if middle is None or pts[_TREND_POINTS - 1] < middle:
                limit = ch.low_m
        eta_s = -1
        if limit is not None:
            gap = (limit + 5) // 10 - fit  # 0.01 unit to go, signed like num
            if gap == 0 or (gap > 0) == (num > 0):
                # steps = gap / (2 num / _TREND_DEN), in 16ths of a step for precision.
                # Beyond 65535 sixteenths the crossing counts as far away, so
                # the product below stays a small int (spacing <= 225 s).
                steps16 = gap * _TREND_DEN * 8 // num
                if steps16 <= 65535:
                    spacing = time.ticks_diff(times[_TREND_POINTS - 1], times[0]) // (_TREND_POINTS - 1)
                    eta_s = steps16 * (spacing // 16) // 1000
        if a.state == ACTIVE:
            # Cleared when the slope turns, the limit alarm takes over, or the
            # crossing moves well beyond the horizon.
            if eta_s < 0 or eta_s > self.horizon_s + self.horizon_s // 4:
                self._set(a, NORMAL, now_ms)
            else:
                a.eta_s = eta_s
        elif 0 <= eta_s <= self.horizon_s:
            a.value_m = fit * 10
            a.limit_m = limit
            a.eta_s = eta_s
            self._set(a, ACTIVE, now_ms)

    # Inputs

    def door_changed(self, opened, now_ms):
        self.door_opened = opened
        if opened:
            self._door_ms = now_ms
            self._door_reason = self._door_illegal()
            self.tick(now_ms)
        else:
            self._door_reason = None
            if self.door.state != NORMAL:
                self._set(self.door, NORMAL, now_ms)

    def _door_illegal(self):
        # Why an opening now is not allowed, or None.
        if self.moving:
            return "moving"
        if self.trip == COLD_CHAIN:
            return "sealed"
        allowed = False
        for i in range(len(self.zones)):
            if self.zones[i][4]:
                if self.zones_in & (1 << i):
                    return None
                allowed = True
        return "zone" if allowed else None

    def seat_changed(self, occupied, now_ms):
        self.seat_occupied = occupied
        self._check_seat(now_ms)

    def _check_seat(self, now_ms):
        on = self.seat_occupied and self.trip == HAZMAT
        if on and self.seat.state != ACTIVE:
            self._set(self.seat, ACTIVE, now_ms)
        elif not on and self.seat.state == ACTIVE:
            self._set(self.seat, NORMAL, now_ms)

    def ignition_changed(self, on, now_ms):
        self.ignition = on

    def sos_changed(self, pressed, now_ms):
        """SOS raises on press and stays latched until acknowledged or a press held for sos_clear_hold_s."""
        if pressed:
            self._sos_press_ms = now_ms
            self._sos_was_active = self.sos.state == ACTIVE
            if not self._sos_was_active:
                self._set(self.sos, ACTIVE, now_ms)
            return
        press = self._sos_press_ms
        self._sos_press_ms = None
        if press is None or not self._sos_was_active:
            return
        if time.ticks_diff(now_ms, press) >= self.sos_hold_ms:
            self._set(self.sos, NORMAL, now_ms)

    # Position and motion

    def position(self, gnss, now_ms):
        """Feed the GNSS state after a new fix, or with gnss=None when there is no receiver."""
        if gnss is None or not gnss.has_fix():
            self.moving = False
            self.speed_kmh_e2 = None
            return
        fix = gnss.fix
        kmh = speed_kmh_e2(fix)
        self.speed_kmh_e2 = kmh
        self.moving = kmh is not None and kmh >= self.moving_e2
        fix_e5 = self._fix_e5
        if fix.lat_deg is None or fix.lon_deg is None or fix_e5 is None:
            return
        self.lat = lat = fix_e5(fix.lat_deg, fix.lat_min_e7, fix.lat_neg)
        self.lon = lon = fix_e5(fix.lon_deg, fix.lon_min_e7, fix.lon_neg)
        inside = 0
        for i in range(len(self.zones)):
            if self.zones[i][1].contains(lat, lon):
                inside |= 1 << i
        changed = inside ^ self.zones_in
        self.zones_in = inside
        if changed and self.on_zone is not None:
            for i in range(len(self.zones)):
                if changed & (1 << i):
                    self.on_zone(self.zones[i][0], bool(inside & (1 << i)), now_ms)
        if self.corridor is not None:
            d = self.corridor.distance_m(lat, lon)
            off = d > self.corridor.width_m
            r = self.route
            if off:
                if self._off_route_ms is None:
                    self._off_route_ms = now_ms
                r.value_m = d * 1000
                r.limit_m = self.corridor.width_m * 1000
                if r.state != ACTIVE and time.ticks_diff(now_ms, self._off_route_ms) >= _ROUTE_CONFIRM_MS:
                    self._set(r, ACTIVE, now_ms)
            else:
                self._off_route_ms = None
                if r.state == ACTIVE and d * 10 <= self.corridor.width_m * 9:
                    r.value_m = d * 1000
                    self._set(r, NORMAL, now_ms)

    def zone_name(self, i):
        return self.zones[i][0]

    def _geofence(self, now_ms):
        g = self.geofence
        hit = None
        for i in range(len(self.zones)):
            z = self.zones[i]
            inside = self.zones_in & (1 << i)
            if (z[2] == 1 and inside) or (z[2] == 2 and not inside):
                hit = z[0]
                break
        if hit is not None and g.state != ACTIVE:
            g.zone = hit
            g.detail = "inside" if z[2] == 1 else "outside"
            self._set(g, ACTIVE, now_ms)
        elif hit is None and g.state == ACTIVE:
            self._set(g, NORMAL, now_ms)

    def _in_stop_zone(self):
        for i in range(len(self.zones)):
            if self.zones[i][3] and self.zones_in & (1 << i):
                return True
        return False

    # Time-driven rules

    def tick(self, now_ms, gnss=None):
        """Called every second and on input changes."""
        if self.early and time.ticks_diff(now_ms, self._trip_ms) >= self.early_ms:
            self.early = False
            _log.info("early-warning phase over")
        if self.door_opened and self._door_reason is not None:
            d = self.door
            if d.state != ACTIVE:
                d.detail = self._door_reason
                self._hold(d, True, self.door_delay_ms, now_ms)

        if gnss is not None:
            self._gnss_health(gnss, now_ms)
        kmh = self.speed_kmh_e2
        if self.overspeed_e2:
            o = self.overspeed
            fast = kmh is not None and kmh > self.overspeed_e2
            if o.state == ACTIVE:
                fast = kmh is not None and kmh > self.overspeed_e2 - _OVERSPEED_HYST_KMH_E2
            if fast or o.state == ACTIVE:
                # While active the value follows the speed, so a clear carries the speed that cleared it.
                o.value_m = kmh * 10 if kmh is not None else o.value_m
                o.limit_m = self.overspeed_e2 * 10
            self._hold(o, fast, self.overspeed_ms, now_ms)

        # Stationary: a current fix below moving_kmh, or no fix with the ignition
        # off. Without a fix and with the ignition on, the truck may be driving
        # through a tunnel, so that time does not count.
        if self.speed_kmh_e2 is not None:
            stopped = not self.moving
        else:
            stopped = not self.ignition
        still = self.trip != NO_TRIP and self.stop_ms and stopped and not self._in_stop_zone()
        s = self.stop
        if still:
            if self._still_ms is None:
                self._still_ms = now_ms
            s.value_m = time.ticks_diff(now_ms, self._still_ms)
            s.limit_m = self.stop_ms
        else:
            self._still_ms = None
        self._hold(s, still, self.stop_ms, now_ms)
        self._geofence(now_ms)

    def _gnss_health(self, gnss, now_ms):
        if self.silent_ms:
            last = gnss.last_data_ms
            quiet = time.ticks_diff(now_ms, self._boot_ms if last is None else last)
            a = self.gnss_silent
            if quiet >= self.silent_ms and a.state != ACTIVE:
                a.value_m = quiet
                a.limit_m = self.silent_ms
                self._set(a, ACTIVE, now_ms)
            elif quiet < self.silent_ms and a.state == ACTIVE:
                self._set(a, NORMAL, now_ms)
        if self.nofix_ms:
            lost = self.ignition and not gnss.has_fix()
            a = self.gnss_nofix
            if lost:
                if self._nofix_ms is None:
                    self._nofix_ms = now_ms
                a.value_m = time.ticks_diff(now_ms, self._nofix_ms)
                a.limit_m = self.nofix_ms
            else:
                self._nofix_ms = None
            self._hold(a, lost, self.nofix_ms, now_ms)

    # Trips and acknowledgements

    def trip_start(self, kind, trip_id, now_ms, early_left_ms=None):
        """Start a trip (COLD_CHAIN or HAZMAT); out-of-range times start from zero."""
        self.trip = kind
        self.trip_id = trip_id
        left = self.early_ms if early_left_ms is None else early_left_ms
        self.early = left > 0
        self._trip_ms = time.ticks_add(now_ms, left - self.early_ms)
        for ch in self._chans:
            ch.out_ms = 0
            if ch.cumulative.state != NORMAL:
                self._set(ch.cumulative, NORMAL, now_ms)
        self._check_seat(now_ms)

    def trip_end(self, now_ms):
        self.trip = NO_TRIP
        self.trip_id = None
        self.early = False
        for ch in self._chans:
            if ch.cumulative.state != NORMAL:
                self._set(ch.cumulative, NORMAL, now_ms)
        self._check_seat(now_ms)
        self._hold(self.stop, False, 0, now_ms)

    def early_left_ms(self, now_ms):
        if not self.early:
            return 0
        return max(0, self.early_ms - time.ticks_diff(now_ms, self._trip_ms))

    def ack(self, key, now_ms):
        """Acknowledge the active alarm key (or "all"); return the keys acknowledged. An acknowledged SOS clears."""
        done = []
        for a in self.all:
            if a.state == ACTIVE and not a.acked and (key == "all" or key == a.key):
                a.acked = True
                done.append(a.key)
                self._emit(a, ACKNOWLEDGED, now_ms)
                if a is self.sos:
                    self._set(a, NORMAL, now_ms)
        return done

    # Reporting

    def any_active(self):
        for a in self.all:
            if a.state == ACTIVE:
                return True
        return False

    def excursion(self):
        """True while a temperature or humidity limit is crossed (pending or active): log faster."""
        for ch in self._chans:
            if ch.high.state != NORMAL or ch.low.state != NORMAL:
                return True
        return False

    def active_keys(self):
        return [a.key for a in self.all if a.state == ACTIVE]

    def max_severity(self, acked=True):
        """Highest severity of the active alarms (acknowledged ones too unless acked=False), or -1."""
        sev = -1
        for a in self.all:
            if a.state == ACTIVE and (acked or not a.acked) and a.severity > sev:
                sev = a.severity
        return sev

    def update_jt808(self):
        """Set jt808_lo and jt808_hi, bits 0-15 and 16-31 of the JT/T 808 alarm-flag word.

        Two halves because bit 31 makes the whole word a long int on the ESP32.
        """
        lo = 0
        hi = 0
        for a in self.all:
            b = a.jt808_bit
            if a.state == ACTIVE and b >= 0:
                if b < 16:
                    lo |= 1 << b
                else:
                    hi |= 1 << (b - 16)
        self.jt808_lo = lo
        self.jt808_hi = hi


# Buzzer and LED patterns by the highest active severity, over a 10 s cycle of 50 phases of 200 ms.
#   critical: LED on, buzzer on in the first phase of every second until acknowledged.
#   warning: LED 600 ms on and 400 ms off, buzzer on one phase every 5 s until acknowledged.
#   info: LED on one phase every 2 s, buzzer silent.
# An alarm stays on the LED until it clears. An acknowledgement only silences the buzzer.
INDICATE_PHASES = const(50)


def indication(severity, loud, phase):
    """Return (buzzer on, LED on) for phase 0..49 of the cycle; severity -1 means no active alarm."""
    if severity == CRITICAL:
        return loud and phase % 5 == 0, True
    if severity == WARNING:
        return loud and phase % 25 == 0, phase % 5 < 3
    if severity == INFO:
        return False, phase % 10 == 0
    return False, False

