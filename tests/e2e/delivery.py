# A backend that must miss nothing: a persistent-session subscriber, record de-duplication and delivery checks
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
#   rec = DurableRecorder(broker.port, "fleet", "TRK-1")   # before the terminal starts
#   ...
#   rec.report(produced, "broker restarts")   # prints "broker restarts: records produced P, delivered D, ..."
#   check_complete(rec.records, boots=1)
#
# A record is identified by (dev, boot, seq). It arrives alone on
# <prefix>/<dev>/telemetry|alarm|event, or inside a JSON array on
# <prefix>/<dev>/batch, and may arrive more than once (QoS 1 resends). The
# checks here compare what arrived with the rules of the payload contract,
# never with the firmware's own code.

import calendar
import json
import threading
import time

import paho.mqtt.client as mqtt

RECORD_KINDS = ("telemetry", "alarm", "event")
# 2026-01-01T00:00:00Z: no record of this firmware can be older.
MIN_UNIX_S = calendar.timegm((2026, 1, 1, 0, 0, 0))
# t and up have 0.1 s resolution, so t - up of one boot may differ by one step, plus float error.
T_UP_TOLERANCE_S = 0.15
# Values that the terminal fills in when it publishes, not when it makes the
# record, so two sends of one record may differ in them.
PUBLISH_TIME_KEYS = ("link",)

# Default dates that a record must never carry, by where they come from.
_DEFAULT_DATES = (
    (calendar.timegm((1970, 1, 1, 0, 0, 0)), "1970-01-01 (Unix epoch, clock never set)"),
    (calendar.timegm((1980, 1, 6, 0, 0, 0)), "1980-01-06 (GPS epoch, receiver without time)"),
    (calendar.timegm((2000, 1, 1, 0, 0, 0)), "2000-01-01 (ESP32 RTC after a power cut)"),
    (calendar.timegm((1999, 8, 22, 0, 0, 0)), "1999-08-22 (first GPS week rollover)"),
    (calendar.timegm((2019, 4, 7, 0, 0, 0)), "2019-04-07 (second GPS week rollover)"),
)
# A receiver with the rollover bug reports a date 1024 weeks too early.
_ROLLOVER_S = 1024 * 7 * 86400


def date_problem(t):
    """Return why Unix time t is not a plausible record time, or None when it is."""
    for start, name in _DEFAULT_DATES:
        if start <= t < start + 366 * 86400:
            return "%s is within a year after %s" % (_iso(t), name)
    if time.time() - _ROLLOVER_S - 86400 <= t <= time.time() - _ROLLOVER_S + 86400:
        return "%s is 1024 weeks before now (GPS week rollover)" % _iso(t)
    if t < MIN_UNIX_S:
        return "%s is before 2026-01-01" % _iso(t)
    if t > time.time() + 86400:
        return "%s is more than a day in the future" % _iso(t)
    return None


def _iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Arrival:
    """One record as it arrived: the record, its topic kind, whether it came in a batch, and its place in the arrival order."""

    __slots__ = ("record", "topic", "in_batch", "index", "message", "monotonic_s")

    def __init__(self, record, topic, in_batch, index, message, monotonic_s):
        self.record = record
        self.topic = topic
        self.in_batch = in_batch
        self.index = index  # arrival order over all records
        self.message = message  # arrival order over all messages
        self.monotonic_s = monotonic_s

    @property
    def key(self):
        r = self.record
        return (r.get("dev"), r.get("boot"), r.get("seq"))

    @property
    def kind(self):
        return self.record.get("kind", self.topic)


class DurableRecorder:
    """paho-mqtt subscriber with a persistent session (clean_session=False, fixed client id, QoS 1).

    Subscribes to <prefix>/<device_id>/# and keeps every record in arrival
    order, with batches flattened. The broker must be running when it is
    made. Afterwards paho reconnects by itself whenever the broker comes back,
    and the broker keeps what was published meanwhile for this session.
    """

    def __init__(self, port, prefix, device_id, client_id=None):
        self.device_id = device_id
        self.topic = "%s/%s/#" % (prefix, device_id)
        self._prefix = "%s/%s/" % (prefix, device_id)
        self.records = []  # Arrival objects, in arrival order
        self.statuses = []  # (monotonic_s, retain, payload dict) of the status topic
        self.configs = []  # (monotonic_s, retain, payload dict) of the retained configuration
        self.batches = []  # (message index, payload bytes, records) of each batch message
        self.errors = []  # messages that broke the payload contract, as text
        self.messages = 0
        self.connects = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "backend-" + device_id,
                                  clean_session=False)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, codes, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("no SUBACK from the broker on port %d within 10 s" % port)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connects += 1
        # The session keeps the subscription, so subscribing again only costs a packet.
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, msg):
        now = time.monotonic()
        kind = msg.topic[len(self._prefix) :] if msg.topic.startswith(self._prefix) else msg.topic
        with self._lock:
            self.messages += 1
            self._take(kind, msg.payload, msg.retain, now)

    def _take(self, kind, payload, retain, now):
        try:
            data = json.loads(payload)
        except ValueError as e:
            self.errors.append("%s: payload is not JSON (%s): %r" % (kind, e, payload[:120]))
            return
        if kind == "status":
            self.statuses.append((now, retain, data))
            return
        if kind == "config":
            # The retained configuration document, published after every connect.
            self.configs.append((now, retain, data))
            return
        if kind == "batch":
            if not isinstance(data, list) or not data:
                self.errors.append("batch: payload must be a non-empty JSON array, got %r" % (payload[:120],))
                return
            for r in data:
                if not isinstance(r, dict) or r.get("kind") not in RECORD_KINDS:
                    self.errors.append("batch: element without a valid kind: %r" % (r,))
                    continue
                self._add(r, "batch", True, now)
            self.batches.append((self.messages, len(payload), data))
            return
        if kind not in RECORD_KINDS:
            self.errors.append("unexpected topic %s%s" % (self._prefix, kind))
            return
        if not isinstance(data, dict):
            self.errors.append("%s: payload must be a JSON object, got %r" % (kind, payload[:120]))
            return
        if "kind" in data and data["kind"] != kind:
            self.errors.append("%s: record of kind %r on the %s topic" % (kind, data["kind"], kind))
        self._add(data, kind, False, now)

    def _add(self, record, topic, in_batch, now):
        self.records.append(Arrival(record, topic, in_batch, len(self.records), self.messages, now))

    def snapshot(self):
        """Return a copy of the records received so far."""
        with self._lock:
            return list(self.records)

    def seqs(self, boot):
        """Return the set of seqs received for one boot of this device."""
        return {a.record.get("seq") for a in self.snapshot() if a.record.get("boot") == boot}

    def wait_for_seqs(self, boot, last_seq, timeout_s):
        """Wait until every seq 1..last_seq of boot has arrived, and return the missing ones (empty when all came)."""
        end = time.monotonic() + timeout_s
        while True:
            missing = sorted(set(range(1, last_seq + 1)) - self.seqs(boot))
            if not missing or time.monotonic() >= end:
                return missing
            time.sleep(0.1)

    def wait_quiet(self, quiet_s, timeout_s):
        """Wait until no message arrived for quiet_s seconds, at most timeout_s."""
        end = time.monotonic() + timeout_s
        last = self.messages
        still_since = time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.1)
            if self.messages != last:
                last = self.messages
                still_since = time.monotonic()
            elif time.monotonic() - still_since >= quiet_s:
                return True
        return False

    def report(self, produced=None, label=None):
        """Print and return the delivery line: records produced, delivered, duplicates removed, dropped.

        produced defaults to the sum over boots of the highest seq that
        arrived, so then dropped counts the gaps.
        """
        records = self.snapshot()
        unique = {a.key for a in records}
        if produced is None:
            produced = sum(highest_seqs(records).values())
        line = "records produced %d, delivered %d, duplicates removed %d, dropped %d" % (
            produced, len(unique), len(records) - len(unique), produced - len(unique))
        if label:
            line = "%s: %s" % (label, line)
        print(line, flush=True)
        return {"produced": produced, "delivered": len(unique), "duplicates": len(records) - len(unique),
                "dropped": produced - len(unique), "line": line}

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def highest_seqs(records):
    """Return {(dev, boot): highest seq} over the records."""
    out = {}
    for a in records:
        dev, boot, seq = a.key
        if isinstance(seq, int) and seq > out.get((dev, boot), 0):
            out[(dev, boot)] = seq
    return out


def dedupe(records):
    """Return the first arrival of each (dev, boot, seq), in arrival order."""
    seen = set()
    out = []
    for a in records:
        if a.key not in seen:
            seen.add(a.key)
            out.append(a)
    return out


def _comparable(record):
    return {k: v for k, v in record.items() if k not in PUBLISH_TIME_KEYS}


def check_complete(records, boots=None, device_id=None, first_seq=None):
    """Assert that the records of every boot are seq 1..max without gaps, consistent duplicates and sound times.

    boots: the number of boots expected (ids 1..n) or a collection of boot
    ids; None accepts whatever boots arrived. first_seq: {boot: seq} for
    boots whose oldest records were dropped; records before it are ignored.
    Returns {boot: highest seq}. Checks, each with its own assert:
    - every record has an int dev, boot and seq, and dev is device_id when given;
    - per boot, after de-duplication, the seqs are exactly 1..max (first_seq..max);
    - two arrivals of one (dev, boot, seq) are equal in everything but the
      values filled in at publish time (PUBLISH_TIME_KEYS);
    - t is null together with "t_unknown": true, or a number with no
      t_unknown flag (or false), of a plausible date (date_problem), and
      t - up is the same for every record of the boot within 0.15 s.
    """
    first_seq = first_seq or {}
    records = [a for a in records if a.record.get("boot") not in first_seq
               or a.record.get("seq", 0) >= first_seq[a.record["boot"]]]
    assert records, "no records arrived"
    for a in records:
        dev, boot, seq = a.key
        assert isinstance(boot, int) and isinstance(seq, int), "record without int boot and seq: %r" % (a.record,)
        if device_id is not None:
            assert dev == device_id, "record of device %r, expected %r: %r" % (dev, device_id, a.record)

    first = {}
    for a in records:
        if a.key not in first:
            first[a.key] = a
            continue
        assert _comparable(a.record) == _comparable(first[a.key].record), \
            "two arrivals of %r differ:\n%r\n%r" % (a.key, first[a.key].record, a.record)

    by_boot = {}
    for dev, boot, seq in first:
        by_boot.setdefault(boot, set()).add(seq)
    if boots is not None:
        expected = set(range(1, boots + 1)) if isinstance(boots, int) else set(boots)
        assert set(by_boot) == expected, "boots %s arrived, expected %s" % (sorted(by_boot), sorted(expected))
    for boot, seqs in sorted(by_boot.items()):
        missing = sorted(set(range(first_seq.get(boot, 1), max(seqs) + 1)) - seqs)
        assert not missing, "boot %d: %d records missing below seq %d: %s" % (
            boot, len(missing), max(seqs), _ranges(missing))

    offsets = {}
    for key, a in first.items():
        r = a.record
        t = r.get("t")
        if t is None:
            assert "t" in r, "record without a t key: %r" % (r,)
            assert r.get("t_unknown") is True, "t is null but t_unknown is not true: %r" % (r,)
            continue
        assert not r.get("t_unknown"), "t is %r but t_unknown is set: %r" % (t, r)
        problem = date_problem(t)
        assert problem is None, "boot %d seq %d: %s" % (key[1], key[2], problem)
        offsets.setdefault(key[1], []).append((t - r["up"], key[2]))
    for boot, values in offsets.items():
        low = min(values)
        high = max(values)
        assert high[0] - low[0] <= T_UP_TOLERANCE_S, \
            "boot %d: t - up varies by %.2f s (seq %d: %.2f, seq %d: %.2f)" % (
                boot, high[0] - low[0], low[1], low[0], high[1], high[0])
    return {boot: max(seqs) for boot, seqs in by_boot.items()}


def check_batches(recorder, max_bytes):
    """Assert that every batch fits max_bytes and lists its records oldest first, and return the number of batches."""
    with recorder._lock:
        batches = list(recorder.batches)
    for index, size, data in batches:
        assert size <= max_bytes, "batch message %d has %d bytes, more than %d" % (index, size, max_bytes)
        keys = [(r.get("boot"), r.get("seq")) for r in data]
        assert keys == sorted(keys), "batch message %d is not oldest first: %s" % (index, keys)
        assert len(set(keys)) == len(keys), "batch message %d repeats a record: %s" % (index, keys)
    return len(batches)


def _ranges(numbers):
    # "3-7, 9, 12-13" for [3, 4, 5, 6, 7, 9, 12, 13], cut after 20 ranges.
    out = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    text = ", ".join("%d" % a if a == b else "%d-%d" % (a, b) for a, b in out[:20])
    return text + (", ..." if len(out) > 20 else "")
