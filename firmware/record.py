# JSON payloads of telemetry, alarm and event records (the contract is docs/payload.md)
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Records are built as text rather than through json.dumps because positions
# must keep 7 decimals: the ESP32's single-precision floats cannot hold a
# longitude such as 121.4753833 to 1e-6 degree, so coordinates arrive here as
# decimal strings computed with integers and are written as raw JSON numbers.

import json

PAYLOAD_VERSION = 1


def fixed(v_m, decimals):
    """Format an int in milli-units with 1 or 2 decimals ("null" for None), rounding half away from zero."""
    if v_m is None:
        return "null"
    step = 100 if decimals == 1 else 10
    r = (abs(v_m) + step // 2) // step
    sign = "-" if v_m < 0 and r else ""
    if decimals == 1:
        return "%s%d.%d" % (sign, r // 10, r % 10)
    return "%s%d.%02d" % (sign, r // 100, r % 100)


def _obj(d, raw=()):
    # Keys listed in raw hold decimal strings (coordinates) written as JSON numbers.
    items = []
    for k in d:
        v = d[k]
        if k in raw and isinstance(v, str):
            items.append(json.dumps(k) + ":" + v)
        else:
            items.append(json.dumps(k) + ":" + json.dumps(v))
    return "{" + ",".join(items) + "}"


class Records:
    """Numbers and stamps every record: device id, boot id, per-boot sequence, time."""

    def __init__(self, device_id, boot_id, clock, uptime):
        self.device_id = device_id
        self.boot_id = boot_id
        self.clock = clock
        self.uptime = uptime
        self.seq = 0

    def _head(self, now_ms):
        self.seq += 1
        unix_ms = self.clock.unix_ms_at(now_ms)
        up_ms = self.uptime.ms(now_ms)
        return '{"v":%d,"dev":%s,"boot":%d,"seq":%d,"t":%s,"up":%s' % (
            PAYLOAD_VERSION,
            json.dumps(self.device_id),
            self.boot_id,
            self.seq,
            "null" if unix_ms is None else "%d.%03d" % (unix_ms // 1000, unix_ms % 1000),
            fixed(up_ms, 1),
        )

    def telemetry(self, now_ms, probes, humidity, gnss, inputs, alarms, link):
        parts = [self._head(now_ms)]
        if probes is not None:
            items = []
            for i, name in enumerate(probes.names):
                st = probes.state[i]
                if st == "ok":
                    items.append('%s:{"c":%s}' % (json.dumps(name), fixed(probes.value_mc[i], 2)))
                else:
                    items.append('%s:{"c":null,"fault":%s}' % (json.dumps(name), json.dumps(st)))
            parts.append('"probes":{' + ",".join(items) + "}")
            if probes.extra:
                parts.append('"unknown_probes":' + json.dumps(probes.extra))
        if humidity is not None:
            if humidity.state == "ok":
                parts.append('"dht":{"c":%s,"rh":%s}' % (fixed(humidity.temp_mc, 1), fixed(humidity.rh_mrh, 1)))
            else:
                parts.append('"dht":{"c":null,"rh":null,"fault":%s}' % json.dumps(humidity.state))
        parts.append('"gnss":' + self.gnss_json(gnss))
        parts.append('"in":' + self.inputs_json(inputs))
        parts.append('"alarms":' + json.dumps(alarms.active_keys()))
        parts.append('"link":' + _obj(link))
        return ",".join(parts) + "}"

    def gnss_json(self, gnss):
        if gnss is None:
            return "null"
        return _obj(gnss.snapshot(), ("lat", "lon"))

    def inputs_json(self, inputs):
        if inputs is None:
            return "{}"
        return _obj({"door": int(inputs.active("door")), "sos": int(inputs.active("sos")),
                     "ign": int(inputs.active("ignition"))})

    def alarm(self, now_ms, a, raised, gnss, inputs, unit):
        """Build an alarm raise or clear record for an alarms.Alarm."""
        parts = [self._head(now_ms)]
        parts.append('"alarm":%s,"channel":%s,"state":%s,"severity":%s' % (
            json.dumps(a.kind), json.dumps(a.channel or None),
            json.dumps("raised" if raised else "cleared"), json.dumps(a.severity)))
        if a.value_m is not None and a.limit_m is not None:
            parts.append('"value":%s,"limit":%s,"unit":%s' % (fixed(a.value_m, 2), fixed(a.limit_m, 2), json.dumps(unit)))
        if a.detail:
            parts.append('"detail":' + json.dumps(a.detail))
        parts.append('"gnss":' + self.gnss_json(gnss))
        parts.append('"in":' + self.inputs_json(inputs))
        return ",".join(parts) + "}"

    def event(self, now_ms, name, gnss, inputs, extra=None):
        parts = [self._head(now_ms), '"event":' + json.dumps(name)]
        if extra:
            for k in extra:
                parts.append(json.dumps(k) + ":" + json.dumps(extra[k]))
        parts.append('"gnss":' + self.gnss_json(gnss))
        parts.append('"in":' + self.inputs_json(inputs))
        return ",".join(parts) + "}"
