# Alarm rules evaluated locally: thresholds with delay and hysteresis, sensor faults, SOS, door
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Every alarm moves NORMAL -> PENDING -> ACTIVE -> NORMAL. Entering ACTIVE is a
# "raised" event and leaving it a "cleared" event; both go to the emit callback
# at once, so a network outage never delays an alarm decision. Values are ints
# in milli-units (m°C, milli-%RH) and times are ticks_ms(), so the steady-state
# check allocates nothing.

import time
from micropython import const

from firmware import log

NORMAL = const(0)
PENDING = const(1)
ACTIVE = const(2)

_STATE_NAMES = ("normal", "pending", "active")

_log = log.get("alarm")


class Alarm:
    """One alarm instance, e.g. temp_high on channel "rear"."""

    def __init__(self, kind, channel, severity):
        self.kind = kind
        self.channel = channel
        self.severity = severity
        self.key = kind + ":" + channel if channel else kind
        self.state = NORMAL
        self.since_ms = 0
        # Value in milli-units that caused the last change, or None.
        self.value_m = None
        self.limit_m = None
        self.detail = None


class _Limit:
    """A high or low threshold on one channel, with delay and hysteresis."""

    def __init__(self, alarm, limit_m, hyst_m, above, delay_ms):
        self.alarm = alarm
        self.limit_m = limit_m
        # Back inside by the hysteresis before the alarm clears.
        self.clear_m = limit_m - hyst_m if above else limit_m + hyst_m
        self.above = above
        self.delay_ms = delay_ms
        alarm.limit_m = limit_m

    def outside(self, v):
        return v > self.limit_m if self.above else v < self.limit_m

    def back_inside(self, v):
        return v <= self.clear_m if self.above else v >= self.clear_m


class _Channel:
    def __init__(self, name, limits, fault_alarm):
        self.name = name
        self.limits = limits
        self.fault_alarm = fault_alarm


def _milli(v):
    return None if v is None else int(round(v * 1000))


class Alarms:
    """Alarm engine for the first set of rules.

    channels: list of (name, low, high, hysteresis) in display units (°C or %RH);
    emit(alarm, raised, now_ms) is called on every raise and clear.
    """

    def __init__(self, channels, delay_s, fault_count, door_open_delay_s, sos_clear_hold_s, emit):
        self._emit = emit
        self.fault_count = fault_count
        self.door_open_delay_ms = door_open_delay_s * 1000
        self.sos_hold_ms = sos_clear_hold_s * 1000
        self.channels = {}
        self.all = []
        delay_ms = delay_s * 1000
        for name, low, high, hyst in channels:
            limits = []
            hyst_m = _milli(hyst)
            kind = "rh" if name == "rh" else "temp"
            if high is not None:
                a = self._new(kind + "_high", name, "critical")
                limits.append(_Limit(a, _milli(high), hyst_m, True, delay_ms))
            if low is not None:
                a = self._new(kind + "_low", name, "critical")
                limits.append(_Limit(a, _milli(low), hyst_m, False, delay_ms))
            fault = self._new("sensor_fault", name, "warning")
            self.channels[name] = _Channel(name, limits, fault)
        self.sos = self._new("sos", "", "critical")
        self.door = self._new("door_open", "", "warning")
        self._door_open_ms = None
        self._sos_press_ms = None
        self._sos_was_active = False

    def _new(self, kind, channel, severity):
        a = Alarm(kind, channel, severity)
        self.all.append(a)
        return a

    def _set(self, a, state, now_ms):
        was_active = a.state == ACTIVE
        a.state = state
        a.since_ms = now_ms
        if state == ACTIVE and not was_active:
            if a.value_m is None:
                _log.warning("%s raised", a.key)
            else:
                _log.warning("%s raised at %s (limit %s)", a.key, a.value_m / 1000, a.limit_m / 1000)
            self._emit(a, True, now_ms)
        elif was_active and state != ACTIVE:
            _log.info("%s cleared", a.key)
            self._emit(a, False, now_ms)

    # Thresholds and sensor faults

    def sample(self, name, value_m, fails, detail, now_ms):
        """Feed one reading: value_m in milli-units, or None with the channel's consecutive fail count."""
        ch = self.channels[name]
        if value_m is None:
            # A faulty channel is neither in range nor out of range: threshold
            # states hold until a real value comes back.
            fa = ch.fault_alarm
            if fails >= self.fault_count and fa.state != ACTIVE:
                fa.detail = detail
                self._set(fa, ACTIVE, now_ms)
            return
        if ch.fault_alarm.state == ACTIVE:
            self._set(ch.fault_alarm, NORMAL, now_ms)
        for lim in ch.limits:
            self._check_limit(lim, value_m, now_ms)

    def _check_limit(self, lim, v, now_ms):
        a = lim.alarm
        a.value_m = v
        if a.state == NORMAL:
            if lim.outside(v):
                a.state = PENDING
                a.since_ms = now_ms
                if lim.delay_ms == 0:
                    self._set(a, ACTIVE, now_ms)
        elif a.state == PENDING:
            if not lim.outside(v):
                a.state = NORMAL
            elif time.ticks_diff(now_ms, a.since_ms) >= lim.delay_ms:
                self._set(a, ACTIVE, now_ms)
        elif lim.back_inside(v):
            self._set(a, NORMAL, now_ms)

    # Inputs

    def door_changed(self, opened, now_ms):
        if opened:
            self._door_open_ms = now_ms
            self.tick(now_ms)
        else:
            self._door_open_ms = None
            if self.door.state == ACTIVE:
                self._set(self.door, NORMAL, now_ms)

    def sos_changed(self, pressed, now_ms):
        """SOS raises on press and stays latched; a press held for sos_clear_hold_s clears it."""
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

    def tick(self, now_ms):
        """Time-driven rules; called every second and on input changes."""
        opened = self._door_open_ms
        if opened is not None and self.door.state != ACTIVE:
            if time.ticks_diff(now_ms, opened) >= self.door_open_delay_ms:
                self._set(self.door, ACTIVE, now_ms)

    # Reporting

    def any_active(self):
        for a in self.all:
            if a.state == ACTIVE:
                return True
        return False

    def active_keys(self):
        return [a.key for a in self.all if a.state == ACTIVE]

    def max_severity(self):
        sev = None
        for a in self.all:
            if a.state == ACTIVE:
                if a.severity == "critical":
                    return "critical"
                sev = a.severity
        return sev


def state_name(state):
    return _STATE_NAMES[state]
