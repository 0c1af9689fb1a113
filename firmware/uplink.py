# Uplink: delivers the records of the flash store over MQTT, and supervises the connection
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage:
#   uplink = Uplink(cfg, "TRK-0042", store, link=wlan.create(cfg), boot_id=17, fw="1.4.0")
#   asyncio.create_task(uplink.run())
#
# Records wait in the store (firmware/store.py) until the broker acknowledges
# them. On every connection the uplink sends, with up to mqtt.window QoS 1
# publishes in flight: the alarms, oldest first; then the newest record, so a
# live view is current at once; then the backlog, oldest first, in batches (a
# JSON array on <prefix>/<device>/batch) of at most mqtt.batch_bytes. A record
# leaves the store only after its PUBACK, so after a failure it is sent again
# on the next connection: a backend may see a record twice, never zero times,
# and drops duplicates by (dev, boot, seq).
#
# Records of this boot wait while the clock is unknown, for at most
# spool.time_wait_s of uptime, so that they go out with their right time.
# Alarm records are sent at once, without that wait.

import asyncio
import gc
import json
import random
from time import ticks_diff, ticks_ms

from micropython import const

from firmware import log
from firmware.mqtt import MQTTClient, MQTTError
from firmware.packed import KIND_NAMES, PackError, header, render

_log = log.get("uplink")

KINDS = ("telemetry", "alarm", "event", "status", "batch")

_BACKOFF_FIRST_MS = const(1000)
_STABLE_SESSION_MS = const(30000)  # a session this long resets the backoff
_IDLE_CHECK_MS = const(1000)
_LINK_POLL_MS = const(500)
_ERROR_TEXT_MAX = const(80)
_PEEK_RECORDS = const(32)
_PEEK_BYTES = const(1024)  # packed bytes of alarms read from flash at a time
# Up to this many waiting records go out one per message on their own topic; more go in batches.
_SINGLE_MAX = const(3)
_SHORT_HEAP_WAIT_MS = const(500)  # a record that does not fit in the heap is rendered again this much later
_OUTBOX_MAX = const(4)

_OFFLINE = b'{"state":"offline"}'
_EARLY = "early"  # in-flight marker of the newest record, sent ahead of the backlog


class Uplink:
    def __init__(self, cfg, device_id, store, link=None, boot_id=0, fw="dev", on_message=None, time_wait_s=None,
                 rx_spill=None):
        m = cfg["mqtt"]
        self.device_id = device_id
        self.store = store
        self.link = link
        self.boot_id = boot_id
        self.fw = fw
        self.host = m["host"]
        self.port = m["port"]
        self._backoff_max_ms = m["backoff_max_s"] * 1000
        self._backoff_first_ms = _BACKOFF_FIRST_MS
        self._window = m["window"]
        self._batch_bytes = m["batch_bytes"]
        if time_wait_s is None:
            time_wait_s = cfg["spool"]["time_wait_s"]
        self._time_wait_ms = time_wait_s * 1000
        self._started_ms = ticks_ms()

        # One topic per record kind, built once.
        self._prefix = "%s/%s/" % (m["topic_prefix"], device_id)
        self._topics = {}
        for kind in KINDS:
            self._topics[kind] = self.topic(kind)
        self._subscriptions = []
        # Replies and the retained configuration: (topic, text, retain), sent before any record.
        self._outbox = []
        # on_connect() is called after every connect, e.g. to queue the retained configuration.
        self.on_connect = None

        self._wake = asyncio.Event()
        store.on_stored = self._wake.set
        self._batch_buf = bytearray(self._batch_bytes)
        self._batch_buf[0] = 0x5B  # "["
        self._batch_mv = memoryview(self._batch_buf)
        # (packet id or None, spool or _EARLY or None, token, record count), in send order.
        self._inflight = []
        self._cursor_alarm = None
        self._cursor_main = None
        # Token of the newest record once the broker acknowledged it ahead of the backlog.
        self._early = None
        # Token of the newest record while its early publish waits for its PUBACK on this connection.
        self._early_inflight = None

        self.connected = False
        self.sent = 0
        self.reconnects = 0
        self.bad_records = 0
        self.short_heap = 0  # times a record waited for heap to be rendered
        self.last_error = ""

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
            rx_spill=rx_spill,
        )

    def topic(self, kind):
        """Return the topic of one record kind: b"<prefix>/<device_id>/<kind>"."""
        return (self._prefix + kind).encode()

    def subscribe(self, kind, qos=1):
        """Subscribe to <prefix>/<device_id>/<kind> now and after every reconnect."""
        self._subscriptions.append((self.topic(kind), qos))

    @property
    def rx_size(self):
        """Payload bytes of the last message received, also when it was too large to deliver."""
        return self._client.rx_size

    @property
    def rx_spilled(self):
        """True when the last message had no room in the heap and is whole in the file from rx_spill."""
        return self._client.rx_spilled

    def send(self, kind, text, retain=False):
        """Queue a message for <prefix>/<device_id>/<kind>; it goes first on the next connection.

        For replies, not records: it is kept in RAM only, and at most _OUTBOX_MAX wait.
        """
        if len(self._outbox) >= _OUTBOX_MAX:
            dropped = self._outbox.pop(0)
            _log.warning("outbox full; dropped a message for %s", dropped[0])
        self._outbox.append((self.topic(kind), text, retain))
        self._wake.set()

    def stats(self):
        """Return the counters for telemetry."""
        return {
            "connected": self.connected,
            "sent": self.sent,
            "dropped": self.store.dropped(),
            "reconnects": self.reconnects,
            "queued": self.store.depth(),
            "last_error": self.last_error,
        }

    def _link_json(self):
        return '{"queued":%d,"dropped":%d,"sent":%d,"reconnects":%d}' % (
            self.store.depth(), self.store.dropped(), self.sent, self.reconnects)

    # ---- supervisor -------------------------------------------------------

    async def run(self):
        """Keep a broker connection and deliver stored records, forever."""
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
                # Whatever was not acknowledged goes again from the stored positions.
                self._inflight = []
                self._cursor_alarm = None
                self._cursor_main = None
                self._early_inflight = None

            if ticks_diff(ticks_ms(), started_ms) >= _STABLE_SESSION_MS:
                backoff_ms = self._backoff_first_ms
            delay_ms = _jitter(backoff_ms)
            self.reconnects += 1
            self.last_error = str(error)[:_ERROR_TEXT_MAX]
            _log.warning(
                "MQTT broker %s:%d: %s; retrying in %d ms (%d records waiting)",
                self.host, self.port, self.last_error, delay_ms, self.store.depth(),
            )
            await asyncio.sleep_ms(delay_ms)
            backoff_ms = min(backoff_ms * 2, self._backoff_max_ms)

    async def _wait_link(self):
        if self.link is None:
            return
        while not self.link.is_up():
            await asyncio.sleep_ms(_LINK_POLL_MS)

    async def _session(self):
        client = self._client
        await client.connect(clean=True)
        self.connected = True
        _log.info("connected to MQTT broker %s:%d (%d records waiting)", self.host, self.port, self.store.depth())

        status = '{"state":"online","boot":%d,"fw":%s}' % (self.boot_id, json.dumps(self.fw))
        await client.publish(self._topics["status"], status, qos=1, retain=True)
        # A clean session starts without subscriptions, so they are made again every time.
        for topic, qos in self._subscriptions:
            await client.subscribe(topic, qos)
        if self.on_connect is not None:
            self.on_connect()

        newest_sent = False
        while True:
            if self.link is not None and not self.link.is_up():
                raise MQTTError("network link down")
            if self._outbox:
                # In a coroutine of its own: this one lives as long as the
                # connection, and its frame would keep the last text sent.
                await self._send_queued(client)
                continue
            if await self._send_alarms(client):
                continue
            if not newest_sent:
                newest_sent = True
                await self._send_newest(client)
            if await self._send_backlog(client):
                continue
            if self._inflight:
                await self._settle(client)
                continue
            await self._wait_for_records(client)

    async def _send_queued(self, client):
        topic, text, retain = self._outbox[0]
        await client.publish(topic, text, qos=1, retain=retain)
        self._outbox.pop(0)

    async def _wait_for_records(self, client):
        self._wake.clear()
        try:
            await asyncio.wait_for_ms(self._wake.wait(), _IDLE_CHECK_MS)
        except asyncio.TimeoutError:
            pass
        if not client.connected:
            raise client.error or MQTTError("connection lost")

    # ---- sending ----------------------------------------------------------

    def _ready(self, boot):
        """Return True when a main-spool record of this boot may go now: its time is known or never will be."""
        if boot != self.boot_id or self.store.clocks.get(boot) is not None:
            return True
        return ticks_diff(ticks_ms(), self._started_ms) >= self._time_wait_ms

    def _render(self, packed, boot, link):
        return render(packed, self.device_id, self.store.names, self.store.clocks.get(boot), link)

    async def _publish(self, client, topic, text, spool, token, count):
        while len(self._inflight) >= self._window:
            await self._settle(client)
        pid = await client.publish(topic, text, qos=1, wait=False)
        self._inflight.append((pid, spool, token, count))

    async def _settle(self, client):
        """Wait for the oldest publish in flight and release its records from the store."""
        pid, spool, token, count = self._inflight.pop(0)
        if pid is not None:
            await client.wait_puback(pid)
        if spool is _EARLY:
            self._early = token
        elif spool is not None:
            spool.ack(token)
        self.sent += count

    async def _short_heap(self, token):
        # The heap is short for a moment, most often while a remote message is
        # handled right after a connect. The session stays up, and the record
        # is rendered again shortly, in order.
        self.short_heap += 1
        _log.warning("no heap to render the record at %r (%d times so far); trying again in %d ms",
                     token, self.short_heap, _SHORT_HEAP_WAIT_MS)
        gc.collect()
        await asyncio.sleep_ms(_SHORT_HEAP_WAIT_MS)

    def _skip(self, spool, token, e):
        # A record that cannot be rendered would block every record after it.
        self.bad_records += 1
        _log.error("record at %r of the %s spool skipped: %s", token, "alarm" if spool is self.store.alarm else "main", e)
        self._inflight.append((None, spool, token, 0))

    async def _send_alarms(self, client):
        spool = self.store.alarm
        items = spool.peek(self._window, _PEEK_BYTES, after=self._cursor_alarm)
        if not items:
            return False
        for token, packed in items:
            before = self._cursor_alarm
            self._cursor_alarm = token
            try:
                text = self._render(packed, _kind_and_boot(packed)[1], None)
            except (PackError, IndexError, ValueError) as e:
                self._skip(spool, token, e)
                continue
            except MemoryError:
                # Peeked again from the record before it.
                self._cursor_alarm = before
                await self._short_heap(token)
                return True
            await self._publish(client, self._topics["alarm"], text, spool, token, 1)
        return True

    async def _send_newest(self, client):
        spool = self.store.main
        if spool.depth() <= _SINGLE_MAX:
            return  # the backlog path sends them one by one anyway
        got = spool.newest()
        if got is None or got[0] == self._early:
            return
        token, packed = got
        kind, boot = _kind_and_boot(packed)
        if not self._ready(boot):
            return
        try:
            text = self._render(packed, boot, self._link_json())
        except (PackError, IndexError, ValueError, MemoryError):
            return  # the backlog path meets it again and skips it there, or sends it

        self._early_inflight = token
        await self._publish(client, self._topics[KIND_NAMES[kind]], text, _EARLY, token, 1)

    async def _send_backlog(self, client):
        spool = self.store.main
        # About 10 JSON bytes per packed byte: read little more than one batch from flash.
        items = spool.peek(_PEEK_RECORDS, self._batch_bytes // 4, after=self._cursor_main)
        if not items:
            return False
        single = len(items) <= _SINGLE_MAX
        link = self._link_json()

        buf = self._batch_buf
        n = 1  # bytes of the batch so far, starting with "["
        count = 0
        first = None
        first_kind = 0
        last = None
        for token, packed in items:
            if token == self._early or token == self._early_inflight:
                last = token  # already delivered ahead of the backlog
                continue
            kind, boot = _kind_and_boot(packed)
            if not self._ready(boot):
                break
            if count:
                # Rendering takes milliseconds per record on an ESP32: let sampling run in between.
                await asyncio.sleep_ms(0)
            try:
                text = self._render(packed, boot, link).encode()
            except (PackError, IndexError, ValueError) as e:
                if count:
                    break  # skip it on its own, after this batch
                self._cursor_main = token
                self._skip(spool, token, e)
                return True
            except MemoryError:
                if count:
                    break  # send what is rendered, and this record with the next batch
                await self._short_heap(token)
                return True

            if not count:
                first = text
                first_kind = kind
            else:
                # The batch is written into one buffer allocated at start, so a
                # batch never needs a large free block on a fragmented heap.
                if count == 1:
                    if 1 + len(first) + 1 + len(text) + 1 > len(buf):
                        break
                    n = self._put(buf, 1, first)
                elif n + 1 + len(text) + 1 > len(buf):
                    break
                buf[n] = 0x2C  # ","
                n = self._put(buf, n + 1, text)
            text = None
            count += 1
            last = token
            if single:
                break

        if last is None:
            return False
        self._cursor_main = last
        if not count:
            self._inflight.append((None, spool, last, 0))
        elif count == 1:
            await self._publish(client, self._topics[KIND_NAMES[first_kind]], first, spool, last, 1)
        else:
            buf[n] = 0x5D  # "]"
            await self._publish(client, self._topics["batch"], self._batch_mv[: n + 1], spool, last, count)
        return True

    @staticmethod
    def _put(buf, n, data):
        buf[n : n + len(data)] = data
        return n + len(data)


def _kind_and_boot(packed):
    # A record too short for its header gets boot None: render() rejects it
    # too, and the caller skips it.
    try:
        h = header(packed)
    except PackError:
        return 0, None
    return h[0], h[1]


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
