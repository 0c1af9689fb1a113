# MQTT 3.1.1 client for asyncio: QoS 0/1 publish, subscribe, keepalive, last will, TLS
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage:
#   client = MQTTClient("trk-0042", "192.0.2.10", user="trk", password="secret",
#                       will=(b"fleet/trk-0042/status", b'{"state":"offline"}', 1, True))
#   await client.connect()
#   await client.publish(b"fleet/trk-0042/telemetry", b'{"t":-18250}', qos=1)
#
#   # Several QoS 1 publishes in flight: send now, wait for each PUBACK later.
#   pid = await client.publish(b"fleet/trk-0042/batch", batch, qos=1, wait=False)
#   ...
#   await client.wait_puback(pid)
#
# Errors: link failures (refused, reset, unreachable) raise OSError; protocol
# failures and timeouts raise MQTTError, which is also an OSError, so one
# `except OSError` covers both. After any error the connection is dead:
# call close(), then connect() again.
#
# The socket is non-blocking, every network await has a timeout, and a DNS
# name is resolved in a _thread worker, so waiting on the network never blocks
# the asyncio loop. NOTE: the TLS handshake itself is computed inside the first
# write and does block; about a second per handshake on an ESP32 is an estimate
# from old reports, not measured here.

import asyncio
from time import ticks_diff, ticks_ms

from micropython import const

from firmware import log
from firmware.transient import unload

_log = log.get("mqtt")

_MAX_REMAINING_LENGTH = const(268435455)  # 4 length bytes of 7 bits each
_MAX_STRING_BYTES = const(65535)
_RX_MAX_BYTES = const(4096)  # larger incoming payloads are skipped, not delivered
_RX_CHUNK_BYTES = const(64)
# QoS 1 payloads above this size are written after the header instead of copied into one packet.
_COPY_MAX_BYTES = const(512)
_KEEPALIVE_TICK_MS = const(1000)

# Packet types (high nibble of the first byte)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)  # low nibble 0b0010 is required for SUBSCRIBE
_SUBACK = const(0x90)
_PINGRESP = const(0xD0)

# States of a packet id in MQTTClient._pending. An ack stores its result
# instead, which is never negative (PUBACK 0, SUBACK the granted QoS or 0x80).
_LOST = const(-1)  # the connection ended before the ack arrived
_AWAITING_PUBACK = const(-2)
_AWAITING_SUBACK = const(-3)

PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"


class MQTTError(OSError):
    """A protocol failure or timeout. Its rc is the CONNACK return code when the broker rejected the connection."""

    def __init__(self, message, rc=None):
        super().__init__(message)
        self.rc = rc


def _to_bytes(value):
    return value.encode() if isinstance(value, str) else value


def _length_size(n):
    if not 0 <= n <= _MAX_REMAINING_LENGTH:
        raise ValueError("remaining length must be 0..268435455, got %d" % n)
    size = 1
    while n > 127:
        n >>= 7
        size += 1
    return size


def _put_length(buf, pos, n):
    # Seven bits per byte, least significant group first. Bit 7 set means another byte follows.
    while True:
        byte = n & 0x7F
        n >>= 7
        buf[pos] = byte | 0x80 if n else byte
        pos += 1
        if not n:
            return pos


def _put_string(buf, pos, data):
    n = len(data)
    buf[pos] = n >> 8
    buf[pos + 1] = n & 0xFF
    buf[pos + 2 : pos + 2 + n] = data
    return pos + 2 + n


def _check_string(name, data):
    if len(data) > _MAX_STRING_BYTES:
        raise ValueError("%s must be at most 65535 bytes, got %d" % (name, len(data)))


def encode_remaining_length(n):
    """Return the 1-4 byte encoding of an MQTT Remaining Length (ValueError outside 0..268435455)."""
    buf = bytearray(_length_size(n))
    _put_length(buf, 0, n)
    return bytes(buf)


def decode_remaining_length(buf, pos=0):
    """Decode the Remaining Length starting at buf[pos] and return (value, position after it)."""
    value = 0
    shift = 0
    for i in range(4):
        if pos + i >= len(buf):
            raise ValueError("remaining length truncated after %d bytes" % i)
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ValueError("remaining length longer than 4 bytes")


def _header(packet_type, remaining, left_out=0):
    # Allocates the whole packet at once (less left_out bytes of payload sent
    # separately) so that it can be sent in one write.
    buf = bytearray(1 + _length_size(remaining) + remaining - left_out)
    buf[0] = packet_type
    return buf, _put_length(buf, 1, remaining)


def _pieces_len(pieces):
    n = 0
    for p in pieces:
        n += len(p)
    return n


def publish_packet(topic, payload, qos=0, retain=False, pid=0, dup=False, header_only=False):
    """Build a PUBLISH packet. QoS 1 needs a packet id (pid), QoS 0 ignores it.

    With header_only, return the packet without its payload, to be sent
    followed by the payload: a large payload is then not copied. The payload
    may be a list of buffers, sent one after the other, only with header_only.
    """
    topic = _to_bytes(topic)
    if isinstance(payload, list):
        if not header_only:
            raise ValueError("a payload in pieces is sent after the header (header_only)")
        n = _pieces_len(payload)
    else:
        payload = _to_bytes(payload)
        n = len(payload)
    _check_string("topic", topic)
    if qos not in (0, 1):
        raise ValueError("qos must be 0 or 1, got %r" % (qos,))
    if qos and not 1 <= pid <= 65535:
        raise ValueError("QoS 1 needs a packet id 1..65535, got %r" % (pid,))
    remaining = 2 + len(topic) + n
    first = _PUBLISH | qos << 1
    if qos:
        remaining += 2
    if dup:
        first |= 0x08
    if retain:
        first |= 0x01
    buf, pos = _header(first, remaining, n if header_only else 0)
    pos = _put_string(buf, pos, topic)
    if qos:
        buf[pos] = pid >> 8
        buf[pos + 1] = pid & 0xFF
        pos += 2
    if not header_only:
        buf[pos:] = payload
    return buf


def subscribe_packet(pid, topic_filter, qos=1):
    """Build a SUBSCRIBE packet for one topic filter."""
    topic_filter = _to_bytes(topic_filter)
    _check_string("topic filter", topic_filter)
    buf, pos = _header(_SUBSCRIBE, 2 + 2 + len(topic_filter) + 1)
    buf[pos] = pid >> 8
    buf[pos + 1] = pid & 0xFF
    pos = _put_string(buf, pos + 2, topic_filter)
    buf[pos] = qos
    return buf


def puback_packet(pid):
    return bytes((_PUBACK, 2, pid >> 8, pid & 0xFF))


def _current_task():
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None  # called outside a running loop


class MQTTClient:
    def __init__(
        self,
        client_id,
        host,
        port=1883,
        user="",
        password="",
        keepalive_s=30,
        ssl=None,
        server_hostname=None,
        timeout_s=10,
        will=None,
        on_message=None,
        rx_spill=None,
    ):
        self.client_id = _to_bytes(client_id)
        self.host = host
        self.port = port
        self.user = _to_bytes(user or b"")
        self.password = _to_bytes(password or b"")
        if self.password and not self.user:
            raise ValueError("MQTT 3.1.1 allows a password only together with a user name")
        if will is not None and (len(will) != 4 or will[2] not in (0, 1, 2)):
            raise ValueError("will must be (topic, payload, qos 0-2, retain), got %r" % (will,))
        self.keepalive_s = keepalive_s
        self.ssl = ssl
        self.server_hostname = server_hostname or host
        self.timeout_s = timeout_s
        self.will = will
        self.on_message = on_message
        # When a payload finds no free block, rx_spill(topic, size, retain)
        # returns a file for it, or None to skip the message. The payload is
        # written to that file in pieces of the 64-byte read buffer.
        self.rx_spill = rx_spill
        self.rx_size = 0  # payload bytes of the last message received
        self.rx_spilled = False  # the last message's payload is whole in the rx_spill file

        self.connected = False
        # The exception that ended the last connection, None while it is healthy.
        self.error = None
        self._timeout_ms = timeout_s * 1000
        self._sock = None
        self._stream = None
        self._write_lock = asyncio.Lock()
        self._reader_task = None
        self._ping_task = None
        self._pid = 0
        # Packet id -> _AWAITING_PUBACK, _AWAITING_SUBACK, _LOST or the ack's result.
        # One shared event instead of one per packet id: every ack or failure pulses
        # it (set, then clear at once), and each waiter then checks its own entry.
        self._pending = {}
        self._settled = asyncio.Event()
        self._inflight = 0
        self._last_tx_ms = 0
        self._ping_sent_ms = None
        self._rxbuf = bytearray(_RX_CHUNK_BYTES)
        self._stage = ""

        # DNS worker state, shared with a _thread worker, so only touched under _dns_lock.
        self._dns_lock = None
        self._dns_busy = False
        self._dns_result = None
        self._dns_cache = None

    # ---- connection -------------------------------------------------------

    async def connect(self, clean=True):
        """Open the connection and send CONNECT; return the CONNACK session-present flag."""
        # The connect code runs once per connection, so it is loaded for the call only.
        from firmware import mqttconnect

        try:
            return await mqttconnect.connect(self, clean)
        finally:
            mqttconnect = None
            unload("firmware.mqttconnect")

    async def disconnect(self):
        """Send DISCONNECT (so the broker discards the last will) and close the connection."""
        try:
            if self.connected:
                await self._send(DISCONNECT)
        finally:
            self.close()

    def close(self):
        """Drop the connection without DISCONNECT, so the broker publishes the last will."""
        if self._sock is not None or self.connected:
            self._fail(self.error or MQTTError("connection closed"))
        # _fail cancelled the tasks, which takes them off the poller, so no poll
        # runs on the closed socket.
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._stream = None

    def _fail(self, err):
        # Mark the connection dead and wake every coroutine that waits for an ack.
        # The socket stays open until close(), after the tasks have left the poller.
        if self.error is None:
            self.error = err
        self.connected = False
        current = _current_task()
        for task in (self._reader_task, self._ping_task):
            if task is not None and task is not current:
                task.cancel()
        self._reader_task = None
        self._ping_task = None
        pending = self._pending
        for pid in pending:
            if pending[pid] < _LOST:
                pending[pid] = _LOST
        self._inflight = 0
        self._pulse()

    def _pulse(self):
        # Wake every waiter at once. The event is cleared straight away, because the
        # woken tasks are already queued and later waiters must wait for the next pulse.
        self._settled.set()
        self._settled.clear()

    # ---- sending ----------------------------------------------------------

    async def _send(self, packet, tail=None):
        # One write per packet where possible: small writes stall on Nagle's
        # algorithm plus delayed ACK (TCP_NODELAY is set too). A large payload
        # goes as a second write (tail) so it is never copied.
        async with self._write_lock:
            stream = self._stream
            if stream is None:
                raise self.error or MQTTError("not connected")
            try:
                stream.write(packet)
                if isinstance(tail, list):
                    for piece in tail:
                        stream.write(piece)
                elif tail is not None:
                    stream.write(tail)
                await asyncio.wait_for_ms(stream.drain(), self._timeout_ms)
            except asyncio.TimeoutError:
                err = MQTTError(
                    "timed out after %d s sending to %s:%d" % (self.timeout_s, self.host, self.port)
                )
                self._fail(err)
                raise err
            except OSError as e:
                self._fail(e)
                raise
        self._last_tx_ms = ticks_ms()

    def _next_pid(self):
        pid = self._pid
        while True:
            pid = pid % 65535 + 1
            if pid not in self._pending:
                self._pid = pid
                return pid

    @property
    def inflight(self):
        """Number of QoS 1 publishes sent whose PUBACK has not arrived yet."""
        return self._inflight

    def _forget(self, pid):
        if self._pending.pop(pid, _LOST) == _AWAITING_PUBACK:
            self._inflight -= 1

    async def _until_settled(self, pid):
        # A missing entry counts as settled, so that connect() dropping it ends the wait.
        pending = self._pending
        while pending.get(pid, _LOST) < _LOST:
            await self._settled.wait()

    async def _wait_ack(self, pid, ack_name):
        # Wait for the ack of pid, forget pid, and return the ack's result.
        pending = self._pending
        if pid not in pending:
            raise MQTTError(
                "no %s pending for packet id %d: already waited for, or sent before connect()" % (ack_name, pid)
            )
        try:
            if pending[pid] < _LOST:
                try:
                    await asyncio.wait_for_ms(self._until_settled(pid), self._timeout_ms)
                except asyncio.TimeoutError:
                    err = MQTTError(
                        "timed out after %d s waiting for %s of packet id %d" % (self.timeout_s, ack_name, pid)
                    )
                    self._fail(err)
                    raise err
            result = pending.get(pid, _LOST)
        finally:
            self._forget(pid)
        if result == _LOST:
            raise MQTTError(
                "connection lost while waiting for %s of packet id %d: %s" % (ack_name, pid, self.error)
            )
        return result

    async def publish(self, topic, payload, qos=0, retain=False, wait=True):
        """Send a PUBLISH. At QoS 1, return after the PUBACK, or with wait=False return the packet id at once."""
        # With wait=False the packet id stays pending, and counts in inflight, until
        # wait_puback(pid) or the next connect(). At QoS 0 the result is None.
        if not self.connected:
            raise self.error or MQTTError("not connected")
        if not qos:
            if isinstance(payload, list):
                await self._send(publish_packet(topic, payload, 0, retain, header_only=True), payload)
            else:
                await self._send(publish_packet(topic, payload, 0, retain))
            return None
        pid = self._next_pid()
        tail = None
        if isinstance(payload, list) or len(payload) > _COPY_MAX_BYTES:
            tail = payload if isinstance(payload, list) else _to_bytes(payload)
            packet = publish_packet(topic, tail, qos, retain, pid, header_only=True)
        else:
            packet = publish_packet(topic, payload, qos, retain, pid)

        # Registered before the send, so a PUBACK that comes back at once finds its entry.
        self._pending[pid] = _AWAITING_PUBACK
        self._inflight += 1
        try:
            await self._send(packet, tail)
        except BaseException:
            # Also on cancellation, so a half-sent packet never stays counted in flight.
            self._forget(pid)
            raise
        if not wait:
            return pid
        await self._wait_ack(pid, "PUBACK")
        return None

    async def wait_puback(self, pid):
        """Wait up to timeout_s for the PUBACK of a publish(wait=False), then forget its packet id."""
        # Returns at once when the PUBACK has already arrived. Raises MQTTError on a
        # timeout (which also ends the connection), when the connection ends first,
        # and for a packet id that is not pending.
        await self._wait_ack(pid, "PUBACK")

    async def subscribe(self, topic_filter, qos=1):
        """Subscribe to one topic filter and return the granted QoS. Raise MQTTError if rejected."""
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1, got %r" % (qos,))
        if not self.connected:
            raise self.error or MQTTError("not connected")
        pid = self._next_pid()
        packet = subscribe_packet(pid, topic_filter, qos)
        self._pending[pid] = _AWAITING_SUBACK
        try:
            await self._send(packet)
        except BaseException:
            self._forget(pid)
            raise
        granted = await self._wait_ack(pid, "SUBACK")
        if granted == 0x80:
            raise MQTTError("broker rejected the subscription to %s" % (_to_bytes(topic_filter),))
        return granted

    # ---- background tasks -------------------------------------------------

    async def _keepalive_loop(self):
        # PINGREQ after keepalive_s/2 without sending anything, well inside the
        # broker's limit of 1.5 x keepalive_s. No PINGRESP within timeout_s means
        # the link is dead even when TCP has not noticed yet.
        half_ms = self.keepalive_s * 500
        try:
            while True:
                await asyncio.sleep_ms(_KEEPALIVE_TICK_MS)
                now = ticks_ms()
                if self._ping_sent_ms is not None:
                    if ticks_diff(now, self._ping_sent_ms) > self._timeout_ms:
                        self._fail(MQTTError("no PINGRESP within %d s" % self.timeout_s))
                        return
                elif ticks_diff(now, self._last_tx_ms) >= half_ms:
                    self._ping_sent_ms = now
                    await self._send(PINGREQ)
        except OSError as e:
            self._fail(e)

    async def _read_loop(self):
        # With pings every keepalive_s/2, a healthy broker sends something at
        # least every keepalive_s/2 + timeout_s, so longer silence means a dead
        # link. One extra keepalive tick lets the missing PINGRESP be reported
        # first, because that error is more precise.
        silence_ms = (self.keepalive_s * 1000 + self._timeout_ms + _KEEPALIVE_TICK_MS) if self.keepalive_s else 0
        try:
            while True:
                if silence_ms:
                    await asyncio.wait_for_ms(self._read_packet(), silence_ms)
                else:
                    await self._read_packet()
        except asyncio.TimeoutError:
            self._fail(MQTTError("nothing received from %s:%d for %d ms" % (self.host, self.port, silence_ms)))
        except OSError as e:
            self._fail(e)
        except Exception as e:
            _log.exc(e, "MQTT reader failed")
            self._fail(MQTTError("reader failed: %r" % (e,)))

    async def _recv_into(self, buf, n):
        # Fill buf[0:n]. A TLS socket returns None while a record is still incomplete.
        mv = memoryview(buf)
        got = 0
        while got < n:
            count = await self._stream.readinto(mv[got:n])
            if count is None:
                continue
            if not count:
                raise MQTTError("connection closed by the broker (%s:%d)" % (self.host, self.port))
            got += count

    async def _read_packet(self):
        buf = self._rxbuf
        await self._recv_into(buf, 1)
        first = buf[0]
        remaining = 0
        for i in range(4):
            await self._recv_into(buf, 1)
            remaining |= (buf[0] & 0x7F) << (7 * i)
            if not buf[0] & 0x80:
                break
        else:
            raise MQTTError("malformed remaining length in packet 0x%02x" % first)

        kind = first & 0xF0
        if kind == _PUBLISH:
            await self._read_publish(first, remaining)
        elif kind == _PUBACK and remaining == 2:
            await self._recv_into(buf, 2)
            self._ack(buf[0] << 8 | buf[1], _AWAITING_PUBACK, 0)
        elif kind == _SUBACK and remaining == 3:
            await self._recv_into(buf, 3)
            self._ack(buf[0] << 8 | buf[1], _AWAITING_SUBACK, buf[2])
        elif kind == _PINGRESP and remaining == 0:
            self._ping_sent_ms = None
        else:
            raise MQTTError("unexpected packet 0x%02x with remaining length %d" % (first, remaining))

    def _ack(self, pid, expected, result):
        # Store the result of an ack that was expected for pid and wake the waiters.
        # It runs once per QoS 1 publish and allocates nothing.
        pending = self._pending
        if pending.get(pid) != expected:
            _log.debug("unexpected ack for packet id %d", pid)
            return
        pending[pid] = result
        if expected == _AWAITING_PUBACK:
            self._inflight -= 1
        self._pulse()

    async def _read_publish(self, first, remaining):
        qos = (first >> 1) & 3
        retain = bool(first & 1)
        if qos > 1:
            # subscribe() accepts QoS 0 and 1 only, so a conforming broker never sends QoS 2.
            raise MQTTError("unexpected PUBLISH with QoS %d" % qos)
        buf = self._rxbuf
        await self._recv_into(buf, 2)
        topic_len = buf[0] << 8 | buf[1]
        payload_len = remaining - 2 - topic_len - (2 if qos else 0)
        if payload_len < 0:
            raise MQTTError("malformed PUBLISH: topic length %d, remaining length %d" % (topic_len, remaining))
        topic = bytearray(topic_len)
        await self._recv_into(topic, topic_len)
        pid = 0
        if qos:
            await self._recv_into(buf, 2)
            pid = buf[0] << 8 | buf[1]

        payload = spill = None
        self.rx_spilled = False
        if payload_len <= _RX_MAX_BYTES:
            try:
                payload = bytearray(payload_len)
            except MemoryError:
                # No free block that large right now: skip the message like an
                # oversized one, so the connection survives. The handler replies,
                # or gets the payload in a file from rx_spill.
                if self.rx_spill is not None:
                    spill = self.rx_spill(bytes(topic), payload_len, retain)
                if spill is None:
                    _log.warning("no memory for a %d-byte message on %s; skipped", payload_len,
                                 bytes(topic).decode())
        if payload is None:
            skipped = payload_len
            try:
                while skipped:
                    chunk = min(skipped, len(buf))
                    await self._recv_into(buf, chunk)
                    skipped -= chunk
                    if spill is not None:
                        try:
                            spill.write(buf if chunk == len(buf) else memoryview(buf)[:chunk])
                        except OSError as e:
                            _log.error("cannot write a %d-byte message to flash: %s; skipped", payload_len, e)
                            spill.close()
                            spill = None
            finally:
                if spill is not None:
                    spill.close()
            self.rx_spilled = spill is not None
            if payload_len > _RX_MAX_BYTES:
                _log.warning("skipped a %d-byte message on %s (limit %d)", payload_len, bytes(topic).decode(),
                             _RX_MAX_BYTES)
        else:
            await self._recv_into(payload, payload_len)

        if qos:
            await self._send(puback_packet(pid))
        self.rx_size = payload_len
        if self.on_message is not None:
            # payload None: the message was skipped (too large, or no memory for
            # it), and rx_size has its size so the handler can reply with a clear
            # error. Otherwise payload is a new bytearray that the handler may keep.
            # It is not copied, because heap blocks of a few KB are scarce.
            try:
                self.on_message(bytes(topic), payload, retain)
            except Exception as e:
                # A bug in the handler must not take the connection down.
                _log.exc(e, "message handler failed for %s", topic)
