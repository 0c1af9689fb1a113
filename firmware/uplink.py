# Uplink: bounded RAM queue of outgoing records and the MQTT connection supervisor
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage:
#   uplink = Uplink(cfg, "TRK-0042", link=wlan.create(cfg), boot_id=17, fw="1.4.0")
#   asyncio.create_task(uplink.run())
#   uplink.put("telemetry", b'{"t":-18250}')        # never blocks, never raises
#
# Records wait in a ring of cfg["queue_len"] slots. When the ring is full, put()
# drops the oldest record and counts it in `dropped`. run() keeps one
# connection to the broker and sends records in order: a QoS 1 record leaves
# the ring only after its PUBACK, so after a failure it is sent again on the
# next connection (the backend may see it twice, never zero times).
# The queue lives in RAM only: a reset loses what was not yet sent.

import asyncio
import json
import random
from time import ticks_diff, ticks_ms

from micropython import const

from firmware import log
from firmware.mqtt import MQTTClient, MQTTError

_log = log.get("uplink")

KINDS = ("telemetry", "alarm", "event", "status")

_BACKOFF_FIRST_MS = const(1000)
_STABLE_SESSION_MS = const(30000)  # a session this long resets the backoff
_IDLE_CHECK_MS = const(1000)
_LINK_POLL_MS = const(500)
_DROP_WARNING_MS = const(60000)
_ERROR_TEXT_MAX = const(80)

_OFFLINE = b'{"state":"offline"}'


class Uplink:
    def __init__(self, cfg, device_id, link=None, boot_id=0, fw="dev", on_message=None):
        m = cfg["mqtt"]
        self.device_id = device_id
        self.link = link
        self.boot_id = boot_id
        self.fw = fw
        self.host = m["host"]
        self.port = m["port"]
        self._backoff_max_ms = m["backoff_max_s"] * 1000
        self._backoff_first_ms = _BACKOFF_FIRST_MS

        # One topic per record kind, built once so that put() only looks them up.
        self._prefix = "%s/%s/" % (m["topic_prefix"], device_id)
        self._topics = {}
        for kind in KINDS:
            self._topics[kind] = self.topic(kind)
        self._subscriptions = []

        # Ring of records: three parallel arrays, preallocated so put() stores references only.
        n = cfg["queue_len"]
        self._capacity = n
        self._ring_topic = [None] * n
        self._ring_payload = [None] * n
        self._ring_flags = bytearray(n)  # bit 0 = QoS 1, bit 1 = retain
        self._head = 0
        self._removed = 0  # records taken off the head, by sending or by dropping
        self._wake = asyncio.Event()

        self.connected = False
        self.sent = 0
        self.dropped = 0
        self.reconnects = 0
        self.queued = 0
        self.last_error = ""
        self._bad_kind = None
        self._dropped_reported = 0
        self._drop_warning_ms = None

        self._client = MQTTClient(
            m["client_id"] or device_id,
            self.host,
            self.port,
            user=m["user"],
            password=m["password"],
            keepalive_s=m["keepalive_s"],
            ssl=_tls_context(m) if m["tls"] else None,
            server_hostname=m["server_hostname"] or None,
            timeout_s=m["timeout_s"],
            will=(self._topics["status"], _OFFLINE, 1, True),
            on_message=on_message,
        )

    def topic(self, kind):
        """Return the topic of one record kind: b"<prefix>/<device_id>/<kind>"."""
        return (self._prefix + kind).encode()

    def subscribe(self, kind, qos=1):
        """Subscribe to <prefix>/<device_id>/<kind> now and after every reconnect."""
        self._subscriptions.append((self.topic(kind), qos))

    # ---- queue ------------------------------------------------------------

    def put(self, kind, payload, qos=1, retain=False):
        """Queue one record for sending. When the queue is full, drop the oldest record.

        Never blocks, never raises and allocates nothing: it stores references
        into preallocated slots (the unit tests check this under heap_lock).
        """
        topic = self._topics.get(kind)
        if topic is None:
            self._bad_kind = kind
            self.dropped += 1
            return
        n = self._capacity
        if self.queued == n:
            self._head = (self._head + 1) % n
            self._removed += 1
            self.queued -= 1
            self.dropped += 1
        tail = (self._head + self.queued) % n
        self._ring_topic[tail] = topic
        self._ring_payload[tail] = payload
        flags = 0
        if qos:
            flags = 1
        if retain:
            flags |= 2
        self._ring_flags[tail] = flags
        self.queued += 1
        self._wake.set()

    def _pop_head(self):
        n = self._capacity
        self._ring_topic[self._head] = None
        self._ring_payload[self._head] = None
        self._head = (self._head + 1) % n
        self._removed += 1
        self.queued -= 1

    def stats(self):
        """Return the counters for telemetry."""
        return {
            "connected": self.connected,
            "sent": self.sent,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "queued": self.queued,
            "last_error": self.last_error,
        }

    def _report_drops(self):
        # put() must not allocate, so it only counts. The warnings come from here,
        # at most once a minute, with the number dropped since the last one.
        if self._bad_kind is not None:
            _log.warning("dropped a record of unknown kind %r", self._bad_kind)
            self._bad_kind = None
        if self.dropped == self._dropped_reported:
            return
        now = ticks_ms()
        if self._drop_warning_ms is not None and ticks_diff(now, self._drop_warning_ms) < _DROP_WARNING_MS:
            return
        _log.warning(
            "queue full (%d records): dropped %d oldest records, %d in total",
            self._capacity,
            self.dropped - self._dropped_reported,
            self.dropped,
        )
        self._dropped_reported = self.dropped
        self._drop_warning_ms = now

    # ---- supervisor -------------------------------------------------------

    async def run(self):
        """Keep a broker connection and send queued records, forever."""
        backoff_ms = self._backoff_first_ms
        while True:
            await self._wait_link()
            started_ms = ticks_ms()
            error = None
            try:
                await self._session()
            except OSError as e:
                error = e
            except Exception as e:
                # A bug, not a network fault: log the traceback but keep the uplink alive.
                _log.exc(e, "uplink session failed")
                error = e
            finally:
                self.connected = False
                self._client.close()

            if ticks_diff(ticks_ms(), started_ms) >= _STABLE_SESSION_MS:
                backoff_ms = self._backoff_first_ms
            delay_ms = _jitter(backoff_ms)
            self.reconnects += 1
            self.last_error = str(error)[:_ERROR_TEXT_MAX]
            _log.warning(
                "MQTT broker %s:%d: %s; retrying in %d ms", self.host, self.port, self.last_error, delay_ms
            )
            self._report_drops()
            await asyncio.sleep_ms(delay_ms)
            backoff_ms = min(backoff_ms * 2, self._backoff_max_ms)

    async def _wait_link(self):
        if self.link is None:
            return
        while not self.link.is_up():
            self._report_drops()
            await asyncio.sleep_ms(_LINK_POLL_MS)

    async def _session(self):
        client = self._client
        await client.connect(clean=True)
        self.connected = True
        _log.info("connected to MQTT broker %s:%d", self.host, self.port)

        status = '{"state":"online","boot":%d,"fw":%s}' % (self.boot_id, json.dumps(self.fw))
        await client.publish(self._topics["status"], status, qos=1, retain=True)
        # A clean session starts without subscriptions, so they are made again every time.
        for topic, qos in self._subscriptions:
            await client.subscribe(topic, qos)

        while True:
            if self.link is not None and not self.link.is_up():
                raise MQTTError("network link down")
            if not self.queued:
                await self._wait_for_records(client)
                continue
            await self._send_head(client)

    async def _wait_for_records(self, client):
        self._report_drops()
        self._wake.clear()
        try:
            await asyncio.wait_for_ms(self._wake.wait(), _IDLE_CHECK_MS)
        except asyncio.TimeoutError:
            pass
        if not client.connected:
            raise client.error or MQTTError("connection lost")

    async def _send_head(self, client):
        head = self._head
        removed = self._removed
        flags = self._ring_flags[head]
        await client.publish(
            self._ring_topic[head], self._ring_payload[head], qos=flags & 1, retain=bool(flags & 2)
        )
        # put() may have dropped this record while it was in flight. Then the
        # slot at the head already contains a newer record, which must stay, and the
        # record did arrive, so it does not count as dropped.
        if self._removed == removed:
            self._pop_head()
        else:
            self.dropped -= 1
            self._dropped_reported = min(self._dropped_reported, self.dropped)
        self.sent += 1


def _jitter(ms):
    # Spread reconnects over -25 % .. +25 % so a fleet does not reconnect in step.
    return ms * (768 + random.getrandbits(9)) // 1024


def _tls_context(m):
    # Configuration errors raise ValueError here, at construction, not at every connect.
    import ssl

    if not m["ca_file"]:
        raise ValueError("mqtt.tls needs mqtt.ca_file (a DER CA certificate on flash)")
    try:
        with open(m["ca_file"], "rb") as f:
            ca = f.read()
    except OSError as e:
        raise ValueError("mqtt.ca_file %r cannot be read: %s" % (m["ca_file"], e))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca)
    return ctx
