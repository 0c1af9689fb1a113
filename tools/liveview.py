# Live view: subscribes to the terminal's topics and prints one line per message, as a backend sees them
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt


def _fmt_num(v, unit=""):
    return "-" if v is None else "%s%s" % (v, unit)


def summarize(kind, payload, retain):
    """Return a one-line description of one message on <prefix>/<device>/<kind>."""
    try:
        d = json.loads(payload)
    except ValueError:
        return "%-9s (not JSON) %r" % (kind, payload[:80])
    if kind != "batch" and not isinstance(d, dict):
        # Anyone may publish on the terminal's topics, e.g. a list on config/set.
        return "%-9s (not a JSON object) %r" % (kind, payload[:80])
    try:
        return _describe(kind, d, payload, retain)
    except (AttributeError, KeyError, TypeError, ValueError):
        # A message of an unexpected shape must not stop the live view.
        return "%-9s (unexpected fields) %r" % (kind, payload[:80])


def _describe(kind, d, payload, retain):
    if kind == "status":
        return "status    %s%s" % (d.get("state"), " (retained)" if retain else "")
    if kind == "batch":
        # Backlog after an outage: one line per batch, not per record.
        if not isinstance(d, list) or not d:
            return "batch     (not a list of records) %r" % (payload[:80],)
        kinds = {}
        for r in d:
            kinds[r.get("kind")] = kinds.get(r.get("kind"), 0) + 1
        return "batch     %d records, boot %s seq %s..%s (%s)" % (
            len(d), d[0].get("boot"), d[0].get("seq"), d[-1].get("seq"),
            ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items())))
    head = "#%-4s" % d.get("seq", "?")
    if kind == "telemetry":
        parts = [head]
        for name, p in (d.get("probes") or {}).items():
            parts.append("%s %s" % (name, _fmt_num(p.get("c"), "C") if p.get("c") is not None else p.get("fault")))
        dht = d.get("dht")
        if dht:
            parts.append("dht %s" % ("%sC %s%%" % (dht["c"], dht["rh"]) if dht.get("c") is not None else dht.get("fault")))
        g = d.get("gnss") or {}
        if g.get("lat") is not None:
            parts.append("pos %.5f,%.5f %s" % (g["lat"], g["lon"], "fix" if g.get("fix") else "no fix"))
        else:
            parts.append("no position")
        ins = d.get("in") or {}
        parts.append("door %s" % ("OPEN" if ins.get("door") else "closed"))
        alarms = d.get("alarms") or []
        parts.append("alarms: %s" % (", ".join(alarms) if alarms else "none"))
        return "telemetry " + "  ".join(parts)
    if kind == "alarm":
        what = "%s%s" % (d.get("alarm"), ":" + d["channel"] if d.get("channel") else "")
        extra = ""
        if d.get("value") is not None:
            extra = " value %s limit %s %s" % (d["value"], d.get("limit"), d.get("unit", ""))
        if d.get("detail"):
            extra += " (%s)" % d["detail"]
        return "ALARM     %s %s %s%s" % (head, what, d.get("state", "").upper(), extra)
    if kind == "event":
        return "event     %s %s" % (head, d.get("event"))
    return "%-9s %s" % (kind, payload[:100])


class LiveView:
    """A paho-mqtt subscriber in a background thread that prints and optionally records messages."""

    def __init__(self, host, port, topic, record_path=None, out=sys.stdout):
        self.host = host
        self.port = port
        self.topic = topic
        self.out = out
        self.count = 0
        self._record = open(record_path, "a") if record_path else None
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="vterm-liveview-%d" % time.time_ns())
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, msg):
        kind = msg.topic.rsplit("/", 1)[-1]
        text = msg.payload.decode("utf-8", "replace")
        with self._lock:
            self.count += 1
            self.out.write("%s %s\n" % (time.strftime("%H:%M:%S"), summarize(kind, text, msg.retain)))
            self.out.flush()
            if self._record:
                self._record.write(json.dumps({"rx": time.time(), "topic": msg.topic, "retain": msg.retain,
                                               "payload": text}) + "\n")
                self._record.flush()

    def start(self):
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()
        if self._record:
            self._record.close()
