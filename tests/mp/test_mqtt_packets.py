# Tests of firmware.mqtt: exact packet bytes, and the QoS 1 in-flight window over a fake stream
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import asyncio
import time

import micropython

from firmware import mqtt, mqttconnect

# Field case D1: a 32-byte topic, and the fixed headers that the MQTT 3.1.1
# Remaining Length encoding gives around the one/two/three byte boundaries.
_D1_TOPIC = b"fleet/acme/v1/TRK-0042/telemetry"
_D1_PUBLISH = (
    (91, 127, b"\x32\x7f"),
    (92, 128, b"\x32\x80\x01"),
    (300, 336, b"\x32\xd0\x02"),
    (16347, 16383, b"\x32\xff\x7f"),
    (16348, 16384, b"\x32\x80\x80\x01"),
)


def _payload(n):
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def test_d1_topic_is_32_bytes():
    assert len(_D1_TOPIC) == 32


def test_d1_publish_fixed_headers():
    for size, remaining, header in _D1_PUBLISH:
        pkt = mqtt.publish_packet(_D1_TOPIC, _payload(size), qos=1, pid=7)
        assert bytes(pkt[: len(header)]) == header, (size, bytes(pkt[:4]))
        assert len(pkt) == len(header) + remaining, size


def test_d1_publish_body_after_header():
    pkt = mqtt.publish_packet(_D1_TOPIC, _payload(16348), qos=1, pid=0x0102)
    body = bytes(pkt[4:])
    assert body[:2] == b"\x00\x20"
    assert body[2:34] == _D1_TOPIC
    assert body[34:36] == b"\x01\x02"
    assert body[36:] == _payload(16348)


def _d1_connect():
    return mqttconnect.connect_packet(
        "acme-trk-0042-3c71bf8a1d24",
        30,
        clean=True,
        user="trk-0042@fleet.acme.example",
        password="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL",
        will=("fleet/acme/v1/TRK-0042/status", '{"state":"offline"}', 1, True),
    )


def test_d1_connect_fixed_header():
    pkt = _d1_connect()
    assert bytes(pkt[:3]) == b"\x10\xa9\x01"
    assert len(pkt) == 3 + 169


def test_d1_connect_fields():
    pkt = bytes(_d1_connect())
    # Variable header: "MQTT", level 4, flags user|password|will retain|will QoS 1|will|clean.
    assert pkt[3:13] == b"\x00\x04MQTT\x04\xee\x00\x1e"
    assert pkt[13:41] == b"\x00\x1aacme-trk-0042-3c71bf8a1d24"
    assert pkt[41:72] == b"\x00\x1dfleet/acme/v1/TRK-0042/status"
    assert pkt[72:93] == b'\x00\x13{"state":"offline"}'
    assert pkt[93:122] == b"\x00\x1btrk-0042@fleet.acme.example"
    assert pkt[122:] == b"\x00\x300123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL"


def test_d1_subscribe_fixed_header():
    topic_filter = "fleet/acme/v1/" + "c" * 116
    assert len(topic_filter) == 130
    pkt = bytes(mqtt.subscribe_packet(5, topic_filter, 1))
    assert pkt[:3] == b"\x82\x87\x01"
    assert len(pkt) == 3 + 135
    assert pkt[3:5] == b"\x00\x05"
    assert pkt[5:7] == b"\x00\x82"
    assert pkt[7:137] == topic_filter.encode()
    assert pkt[137] == 1


def test_connect_will_and_credentials_bytes():
    # Worked out by hand:
    #   fixed header      10 1f            CONNECT, remaining length 31
    #   protocol name     00 04 'MQTT'
    #   level, flags      04 ee            user 80|password 40|will retain 20|will QoS 1 08|will 04|clean 02
    #   keepalive         00 3c            60 s
    #   client id         00 02 'c1'
    #   will topic        00 03 'w/s'
    #   will payload      00 03 'off'
    #   user name         00 01 'u'
    #   password          00 02 'pw'      10 + 4 + 5 + 5 + 3 + 4 = 31
    expected = (
        b"\x10\x1f\x00\x04MQTT\x04\xee\x00\x3c"
        b"\x00\x02c1\x00\x03w/s\x00\x03off\x00\x01u\x00\x02pw"
    )
    pkt = mqttconnect.connect_packet("c1", 60, True, "u", "pw", ("w/s", b"off", 1, True))
    assert bytes(pkt) == expected


def test_connect_minimal_bytes():
    # 10 18 (remaining 10 + 2 + 12 = 24), "MQTT" level 4, flags 02 (clean only),
    # keepalive 00 1e (30 s), client id 00 0c "veh-0001-abc"
    expected = b"\x10\x18\x00\x04MQTT\x04\x02\x00\x1e\x00\x0cveh-0001-abc"
    assert bytes(mqttconnect.connect_packet(b"veh-0001-abc", 30)) == expected


def test_connect_keeps_session_flag():
    pkt = mqttconnect.connect_packet("c", 30, clean=False)
    assert pkt[9] == 0x00


def test_connect_password_without_user_rejected():
    try:
        mqttconnect.connect_packet("c", 30, password="pw")
    except ValueError as e:
        assert "password" in str(e)
    else:
        raise AssertionError("no ValueError")


def test_publish_qos0_bytes():
    # 31 = PUBLISH, QoS 0, retain; remaining 2 + 3 + 2 = 7; no packet id at QoS 0.
    pkt = mqtt.publish_packet("a/b", b"hi", qos=0, retain=True)
    assert bytes(pkt) == b"\x31\x07\x00\x03a/b" + b"hi"


def test_publish_qos1_bytes():
    # 32 = PUBLISH, QoS 1; remaining 2 + 3 + 2 (packet id 0x1234) + 2 = 9.
    pkt = mqtt.publish_packet(b"a/b", "hi", qos=1, pid=0x1234)
    assert bytes(pkt) == b"\x32\x09\x00\x03a/b\x12\x34hi"


def test_publish_dup_flag():
    pkt = mqtt.publish_packet("t", b"", qos=1, pid=1, dup=True)
    assert pkt[0] == 0x3A


def test_publish_qos1_needs_pid():
    try:
        mqtt.publish_packet("t", b"x", qos=1, pid=0)
    except ValueError as e:
        assert "packet id" in str(e)
    else:
        raise AssertionError("no ValueError")


def test_publish_qos2_rejected():
    try:
        mqtt.publish_packet("t", b"x", qos=2, pid=1)
    except ValueError as e:
        assert "qos" in str(e)
    else:
        raise AssertionError("no ValueError")


def test_publish_empty_payload():
    assert bytes(mqtt.publish_packet("t", b"")) == b"\x30\x03\x00\x01t"


def test_pingreq_and_disconnect_bytes():
    assert mqtt.PINGREQ == b"\xc0\x00"
    assert mqtt.DISCONNECT == b"\xe0\x00"


def test_puback_bytes():
    assert mqtt.puback_packet(0xABCD) == b"\x40\x02\xab\xcd"


def test_remaining_length_known_encodings():
    # Values from the MQTT 3.1.1 table of 1-4 byte limits.
    assert mqtt.encode_remaining_length(0) == b"\x00"
    assert mqtt.encode_remaining_length(127) == b"\x7f"
    assert mqtt.encode_remaining_length(128) == b"\x80\x01"
    assert mqtt.encode_remaining_length(16383) == b"\xff\x7f"
    assert mqtt.encode_remaining_length(16384) == b"\x80\x80\x01"
    assert mqtt.encode_remaining_length(2097151) == b"\xff\xff\x7f"
    assert mqtt.encode_remaining_length(2097152) == b"\x80\x80\x80\x01"
    assert mqtt.encode_remaining_length(268435455) == b"\xff\xff\xff\x7f"


def test_remaining_length_round_trip():
    for n in (0, 1, 127, 128, 321, 16383, 16384, 2097151, 2097152, 268435455):
        encoded = mqtt.encode_remaining_length(n)
        value, end = mqtt.decode_remaining_length(b"\x30" + encoded + b"rest", 1)
        assert value == n, n
        assert end == 1 + len(encoded), n


def test_remaining_length_too_large():
    for n in (268435456, -1):
        try:
            mqtt.encode_remaining_length(n)
        except ValueError as e:
            assert str(n) in str(e)
        else:
            raise AssertionError("no ValueError for %d" % n)


def test_remaining_length_five_bytes_rejected():
    try:
        mqtt.decode_remaining_length(b"\xff\xff\xff\xff\x01")
    except ValueError as e:
        assert "4 bytes" in str(e)
    else:
        raise AssertionError("no ValueError")


def test_remaining_length_truncated():
    try:
        mqtt.decode_remaining_length(b"\x80\x80")
    except ValueError as e:
        assert "truncated" in str(e)
    else:
        raise AssertionError("no ValueError")


def test_packet_ids_wrap_and_skip_pending():
    client = mqtt.MQTTClient("c", "127.0.0.1")
    assert client._next_pid() == 1
    assert client._next_pid() == 2
    client._pid = 65534
    client._pending[1] = None
    assert client._next_pid() == 65535
    assert client._next_pid() == 2


def test_client_password_without_user_rejected():
    try:
        mqtt.MQTTClient("c", "127.0.0.1", password="pw")
    except ValueError as e:
        assert "password" in str(e)
    else:
        raise AssertionError("no ValueError")


def test_mqtt_error_is_oserror():
    e = mqtt.MQTTError("connection refused: not authorised (rc 5)", 5)
    assert isinstance(e, OSError)
    assert e.rc == 5
    assert str(e) == "connection refused: not authorised (rc 5)"


def test_ip_literal_detection():
    assert mqttconnect._is_ip_literal("127.0.0.1")
    assert mqttconnect._is_ip_literal("::1")
    assert not mqttconnect._is_ip_literal("localhost")
    assert not mqttconnect._is_ip_literal("broker.example")
    assert not mqttconnect._is_ip_literal("1.2.3")


# ---- QoS 1 in-flight window, driven over a fake stream ----------------------


class _FakeStream:
    """Fake of the client's StreamReader that records writes, returns fed bytes, and returns EOF once closed."""

    def __init__(self):
        self.sent = bytearray()
        self.rx = bytearray()
        self.eof = False
        self.rx_ready = asyncio.Event()

    def write(self, data):
        self.sent += data

    async def drain(self):
        pass

    async def readinto(self, buf):
        while not self.rx:
            if self.eof:
                return 0
            self.rx_ready.clear()
            await self.rx_ready.wait()
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n

    def feed(self, data):
        self.rx += data
        self.rx_ready.set()

    def close(self):
        self.eof = True
        self.rx_ready.set()


def _client_on_fake_stream(timeout_ms=2000):
    # A client in the state connect() leaves behind, with the reader task
    # running on a fake stream. keepalive_s=0 keeps the ping task out.
    client = mqtt.MQTTClient("c", "127.0.0.1", keepalive_s=0, timeout_s=2)
    client._timeout_ms = timeout_ms
    stream = _FakeStream()
    client._stream = stream
    client.connected = True
    client._reader_task = asyncio.create_task(client._read_loop())
    return client, stream


def _puback(pid):
    return bytes((0x40, 2, pid >> 8, pid & 0xFF))


async def _settle():
    # Give the reader task and any woken waiters a few turns of the loop.
    for _ in range(5):
        await asyncio.sleep_ms(0)


async def test_window_publish_returns_pid_at_once():
    client, stream = _client_on_fake_stream()
    pids = []
    for payload in (b"a", b"b", b"c"):
        pids.append(await client.publish("t", payload, qos=1, wait=False))
    assert pids == [1, 2, 3]
    assert client.inflight == 3
    # Each PUBLISH: 32 = QoS 1; remaining 2 + 1 ("t") + 2 (packet id) + 1 = 6.
    expected = b"\x32\x06\x00\x01t\x00\x01a" b"\x32\x06\x00\x01t\x00\x02b" b"\x32\x06\x00\x01t\x00\x03c"
    assert bytes(stream.sent) == expected
    client.close()


async def test_window_pubacks_out_of_order():
    client, stream = _client_on_fake_stream()
    for _ in range(3):
        await client.publish("t", b"x", qos=1, wait=False)
    stream.feed(_puback(3))
    await _settle()
    assert client.inflight == 2
    stream.feed(_puback(1) + _puback(2))
    await _settle()
    assert client.inflight == 0

    # Every PUBACK is already in, so each wait returns without waiting.
    t0 = time.ticks_ms()
    for pid in (1, 2, 3):
        await client.wait_puback(pid)
    assert time.ticks_diff(time.ticks_ms(), t0) < 50
    assert client._pending == {}
    client.close()


async def test_wait_puback_waits_for_its_ack():
    client, stream = _client_on_fake_stream()
    await client.publish("t", b"x", qos=1, wait=False)
    await client.publish("t", b"y", qos=1, wait=False)
    waiter = asyncio.create_task(client.wait_puback(2))
    await _settle()
    stream.feed(_puback(1))
    await _settle()
    assert not waiter.done()  # the PUBACK of packet id 1 must not end the wait for 2
    stream.feed(_puback(2))
    await _settle()
    assert waiter.done()
    assert client.inflight == 0
    await client.wait_puback(1)
    client.close()


async def test_publish_wait_true_unchanged():
    client, stream = _client_on_fake_stream()

    async def ack_later():
        await asyncio.sleep_ms(20)
        stream.feed(_puback(1))

    asyncio.create_task(ack_later())
    result = await client.publish("t", b"x", qos=1)
    assert result is None
    assert client.inflight == 0
    assert client._pending == {}
    client.close()


async def test_wait_puback_timeout_ends_connection():
    client, stream = _client_on_fake_stream(timeout_ms=100)
    await client.publish("t", b"x", qos=1, wait=False)
    await client.publish("t", b"y", qos=1, wait=False)
    t0 = time.ticks_ms()
    try:
        await client.wait_puback(1)
    except mqtt.MQTTError as e:
        text = str(e)
    else:
        raise AssertionError("no MQTTError")
    elapsed_ms = time.ticks_diff(time.ticks_ms(), t0)
    assert text == "timed out after 2 s waiting for PUBACK of packet id 1"
    assert 90 <= elapsed_ms <= 300, elapsed_ms
    assert client.connected is False
    assert str(client.error) == text
    assert client.inflight == 0

    # The other packet can get no PUBACK any more: its wait fails at once.
    t0 = time.ticks_ms()
    try:
        await client.wait_puback(2)
    except mqtt.MQTTError as e:
        assert str(e).startswith("connection lost while waiting for PUBACK of packet id 2: timed out")
    else:
        raise AssertionError("no MQTTError")
    assert time.ticks_diff(time.ticks_ms(), t0) < 20
    client.close()


async def test_connection_loss_wakes_all_waiters():
    client, stream = _client_on_fake_stream()
    pids = []
    for i in range(8):
        pids.append(await client.publish("t", b"x", qos=1, wait=False))
    errors = {}

    async def wait_one(pid):
        try:
            await client.wait_puback(pid)
        except mqtt.MQTTError as e:
            errors[pid] = str(e)

    tasks = [asyncio.create_task(wait_one(pid)) for pid in pids]
    await _settle()
    assert errors == {}
    stream.close()  # the broker closed the connection
    await asyncio.wait_for_ms(asyncio.gather(*tasks), 500)
    assert sorted(errors) == pids
    for pid in pids:
        assert errors[pid].startswith("connection lost while waiting for PUBACK of packet id %d: " % pid), errors[pid]
        assert "connection closed by the broker" in errors[pid], errors[pid]
    assert client.connected is False
    assert client.inflight == 0
    assert client._pending == {}
    client.close()


async def test_wait_puback_unknown_pid_raises():
    client, stream = _client_on_fake_stream()
    pid = await client.publish("t", b"x", qos=1, wait=False)
    stream.feed(_puback(pid))
    await _settle()
    await client.wait_puback(pid)
    try:
        await client.wait_puback(pid)
    except mqtt.MQTTError as e:
        assert str(e).startswith("no PUBACK pending for packet id 1:"), str(e)
    else:
        raise AssertionError("no MQTTError for a packet id waited for twice")
    client.close()


async def test_window_ids_wrap_and_skip_in_flight():
    client, stream = _client_on_fake_stream()
    assert await client.publish("t", b"x", qos=1, wait=False) == 1
    client._pid = 65533
    got = []
    for _ in range(3):
        got.append(await client.publish("t", b"x", qos=1, wait=False))
    # 65534, 65535, then 1 is still in flight, so 2.
    assert got == [65534, 65535, 2]
    assert client.inflight == 4
    client.close()


async def test_puback_for_subscribe_id_ignored():
    client, stream = _client_on_fake_stream()
    sub = asyncio.create_task(client.subscribe("s", 1))
    await _settle()
    stream.feed(_puback(1))  # wrong ack type for a SUBSCRIBE
    await _settle()
    assert not sub.done()
    stream.feed(b"\x90\x03\x00\x01\x01")  # SUBACK, packet id 1, granted QoS 1
    assert await asyncio.wait_for_ms(sub, 500) == 1
    assert client.inflight == 0
    client.close()


async def test_puback_bookkeeping_allocates_nothing():
    client, stream = _client_on_fake_stream()
    pid = await client.publish("t", b"x", qos=1, wait=False)
    waiter = asyncio.create_task(client.wait_puback(pid))
    await _settle()
    expected = client._pending[pid]
    micropython.heap_lock()
    try:
        client._ack(pid, expected, 0)
    finally:
        micropython.heap_unlock()
    assert client.inflight == 0
    await asyncio.wait_for_ms(waiter, 500)
    client.close()


async def test_connect_drops_ids_of_old_connection():
    client, stream = _client_on_fake_stream()
    pid = await client.publish("t", b"x", qos=1, wait=False)
    stream.close()
    await _settle()
    assert client.connected is False
    # connect() to a closed port fails, but first drops the old packet ids.
    client.port = 9
    try:
        await client.connect()
    except OSError:
        pass
    assert client._pending == {}
    assert client.inflight == 0
    try:
        await client.wait_puback(pid)
    except mqtt.MQTTError as e:
        assert "sent before connect()" in str(e)
    else:
        raise AssertionError("no MQTTError")


def test_publish_header_only_leaves_payload_out():
    # A 300-byte QoS 1 payload on a 32-byte topic: remaining length 2 + 32 + 2 + 300
    # = 336 = 0xD0 0x02, so the header is 3 + 2 + 32 + 2 = 39 bytes.
    topic = b"fleet/acme/v1/TRK-0042/telemetry"[:32]
    payload = bytes(range(256)) + bytes(44)
    head = mqtt.publish_packet(topic, payload, 1, False, 7, header_only=True)
    assert len(head) == 39
    assert bytes(head[:3]) == b"\x32\xd0\x02"
    assert bytes(head[3:5]) == b"\x00\x20"
    assert bytes(head[37:39]) == b"\x00\x07"
    assert bytes(head) + payload == bytes(mqtt.publish_packet(topic, payload, 1, False, 7))


def test_publish_payload_in_pieces():
    # The same 300 bytes as three pieces (remote replies come like this): the
    # header counts their sum, 0xD0 0x02 as above.
    topic = b"fleet/acme/v1/TRK-0042/telemetry"[:32]
    payload = bytes(range(256)) + bytes(44)
    pieces = [bytearray(payload[:256]), bytearray(payload[256:290]), bytearray(payload[290:])]
    head = mqtt.publish_packet(topic, pieces, 1, False, 7, header_only=True)
    assert bytes(head) == bytes(mqtt.publish_packet(topic, payload, 1, False, 7, header_only=True))
    try:
        mqtt.publish_packet(topic, pieces, 1, False, 7)
    except ValueError as e:
        assert "header_only" in str(e)
    else:
        raise AssertionError("pieces accepted without header_only")


def _incoming(client, body):
    # Feed one PUBLISH body (after the fixed header) to client's reader.
    pos = [0]

    async def recv_into(buf, n):
        buf[0:n] = body[pos[0] : pos[0] + n]
        pos[0] += n

    client._recv_into = recv_into


class _Spill:
    def __init__(self, fail_after=None):
        self.data = bytearray()
        self.closed = False
        self._fail_after = fail_after

    def write(self, b):
        if self._fail_after is not None and len(self.data) >= self._fail_after:
            raise OSError(28)  # ENOSPC
        self.data += b

    def close(self):
        self.closed = True


def _no_block(n):
    # No free block for a payload; the topic (3 bytes here) still fits.
    if n > 16:
        raise MemoryError("memory allocation failed, allocating %d bytes" % n)
    return bytearray(n)


async def test_incoming_publish_without_heap_goes_to_spill():
    got = []
    requests = []
    spill = _Spill()

    def rx_spill(topic, size, retain):
        requests.append((topic, size, retain))
        return spill

    client = mqtt.MQTTClient("t", "127.0.0.1", on_message=lambda t, p, r: got.append((t, p, r)), rx_spill=rx_spill)
    # Topic "a/b" (length 3), then 150 bytes: more than two reads of the 64-byte buffer.
    payload = bytes(range(150))
    body = b"\x00\x03a/b" + payload
    _incoming(client, body)
    mqtt.bytearray = _no_block  # the payload finds no free block; the module's global shadows the builtin
    try:
        await client._read_publish(0x30, len(body))
    finally:
        del mqtt.bytearray
    assert requests == [(b"a/b", 150, False)]
    assert spill.data == payload
    assert spill.closed
    assert got == [(b"a/b", None, False)]
    assert client.rx_spilled is True
    assert client.rx_size == 150

    # The flash fills after the first write: the rest is read and dropped, and rx_spilled is False.
    spill = _Spill(fail_after=1)
    got.clear()
    _incoming(client, body)
    mqtt.bytearray = _no_block
    try:
        await client._read_publish(0x30, len(body))
    finally:
        del mqtt.bytearray
    assert spill.data == payload[:64]
    assert spill.closed
    assert got == [(b"a/b", None, False)]
    assert client.rx_spilled is False

    # With a free block the payload is a bytearray, and rx_spill is not called.
    requests.clear()
    _incoming(client, body)
    await client._read_publish(0x31, len(body))
    assert requests == []
    assert got[-1] == (b"a/b", bytearray(payload), True)
    assert client.rx_spilled is False
