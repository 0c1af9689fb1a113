# Tests of firmware.uplink: bounded queue, drop-oldest, allocation-free put, supervisor with a fake client
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import asyncio
import sys

import micropython

from firmware import config
from firmware.uplink import Uplink, _jitter


def _cfg(queue_len=4, **mqtt):
    return config.merge(config.DEFAULTS, {"queue_len": queue_len, "mqtt": mqtt})


def _uplink(queue_len=4, **mqtt):
    up = Uplink(_cfg(queue_len, **mqtt), "TRK-0042", boot_id=17, fw="1.4.0")
    up._backoff_first_ms = 5
    up._backoff_max_ms = 20
    return up


def _ring(up):
    # The queued payloads, oldest first, read straight from the ring.
    out = []
    for i in range(up.queued):
        out.append(up._ring_payload[(up._head + i) % up._capacity])
    return out


class FakeClient:
    """Stands in for MQTTClient: records publishes and fails on request."""

    def __init__(self):
        self.connected = False
        self.error = None
        self.connects = 0
        self.closes = 0
        self.published = []
        self.subscribed = []
        self.refuse_connects = 0
        self.fail_once = []
        self.publish_delay_ms = 0

    async def connect(self, clean=True):
        self.connects += 1
        await asyncio.sleep_ms(0)
        if self.refuse_connects:
            self.refuse_connects -= 1
            raise OSError(111)
        self.connected = True
        self.error = None
        return False

    async def publish(self, topic, payload, qos=0, retain=False):
        await asyncio.sleep_ms(self.publish_delay_ms)
        if isinstance(payload, bytes) and payload in self.fail_once:
            self.fail_once.remove(payload)
            self.connected = False
            self.error = OSError(104)
            raise self.error
        self.published.append((topic, payload, qos, retain))

    async def subscribe(self, topic, qos=1):
        self.subscribed.append((topic, qos))
        return qos

    def close(self):
        self.closes += 1
        self.connected = False


async def _run_until(up, condition, limit_ms=2000):
    task = asyncio.create_task(up.run())
    waited = 0
    while not condition() and waited < limit_ms:
        await asyncio.sleep_ms(5)
        waited += 5
    task.cancel()
    await asyncio.sleep_ms(0)
    assert condition(), "condition not met within %d ms" % limit_ms


def _payloads(client, topic):
    return [p for t, p, q, r in client.published if t == topic]


def test_topics():
    up = _uplink(topic_prefix="fleet/acme/v1")
    assert up.topic("telemetry") == b"fleet/acme/v1/TRK-0042/telemetry"
    assert up.topic("alarm") == b"fleet/acme/v1/TRK-0042/alarm"
    assert up.topic("event") == b"fleet/acme/v1/TRK-0042/event"
    assert up.topic("status") == b"fleet/acme/v1/TRK-0042/status"


def test_queue_keeps_order():
    up = _uplink(queue_len=8)
    for p in (b"r1", b"r2", b"r3"):
        up.put("telemetry", p)
    assert up.queued == 3
    assert _ring(up) == [b"r1", b"r2", b"r3"]
    assert up.dropped == 0


def test_queue_full_drops_oldest():
    up = _uplink(queue_len=4)
    for i in range(1, 11):
        up.put("telemetry", b"r%d" % i)
    assert up.queued == 4
    assert up.dropped == 6
    assert _ring(up) == [b"r7", b"r8", b"r9", b"r10"]


def test_queue_stores_qos_and_retain():
    up = _uplink(queue_len=4)
    up.put("alarm", b"a", qos=0, retain=True)
    up.put("event", b"e")
    assert up._ring_flags[up._head] == 2
    assert up._ring_flags[(up._head + 1) % 4] == 1
    assert up._ring_topic[up._head] == b"fleet/TRK-0042/alarm"


def test_put_unknown_kind_counts_drop():
    up = _uplink()
    up.put("nonsense", b"x")
    assert up.queued == 0
    assert up.dropped == 1


def test_put_allocates_nothing():
    up = _uplink(queue_len=4)
    payload = b'{"t":-18250}'
    up.put("telemetry", payload)  # warm-up outside the lock
    micropython.heap_lock()
    try:
        for _ in range(6):  # past capacity, so the drop-oldest path runs too
            up.put("telemetry", payload)
        up.put("alarm", payload, qos=0, retain=True)
        up.put("nonsense", payload)
    finally:
        micropython.heap_unlock()
    # 8 records into 4 slots drop 4, and the unknown kind is dropped as well.
    assert up.queued == 4
    assert up.dropped == 5
    assert _ring(up)[-1] is payload


def test_stats_keys():
    up = _uplink()
    up.put("telemetry", b"x")
    s = up.stats()
    assert s == {
        "connected": False,
        "sent": 0,
        "dropped": 0,
        "reconnects": 0,
        "queued": 1,
        "last_error": "",
    }


def test_jitter_within_quarter():
    for _ in range(200):
        ms = _jitter(4000)
        assert 3000 <= ms <= 5000, ms


def test_tls_without_ca_rejected():
    try:
        _uplink(tls=True)
    except ValueError as e:
        assert "ca_file" in str(e)
    else:
        raise AssertionError("no ValueError")


def test_tls_unreadable_ca_rejected():
    try:
        _uplink(tls=True, ca_file="/nonexistent/ca.der")
    except ValueError as e:
        assert "/nonexistent/ca.der" in str(e)
    else:
        raise AssertionError("no ValueError")


def test_client_will_is_offline_status():
    up = _uplink()
    assert up._client.will == (b"fleet/TRK-0042/status", b'{"state":"offline"}', 1, True)
    assert up._client.client_id == b"TRK-0042"
    up2 = _uplink(client_id="acme-trk-0042")
    assert up2._client.client_id == b"acme-trk-0042"


async def test_run_sends_status_then_records():
    up = _uplink(queue_len=8)
    client = FakeClient()
    up._client = client
    up.put("telemetry", b"r1")
    up.put("alarm", b"a1", qos=0)
    up.put("telemetry", b"r2")
    await _run_until(up, lambda: up.sent == 3)
    assert client.published[0] == (
        b"fleet/TRK-0042/status",
        '{"state":"online","boot":17,"fw":"1.4.0"}',
        1,
        True,
    )
    assert client.published[1] == (b"fleet/TRK-0042/telemetry", b"r1", 1, False)
    assert client.published[2] == (b"fleet/TRK-0042/alarm", b"a1", 0, False)
    assert client.published[3] == (b"fleet/TRK-0042/telemetry", b"r2", 1, False)
    assert up.queued == 0


async def test_run_wakes_on_put():
    up = _uplink()
    client = FakeClient()
    up._client = client
    task = asyncio.create_task(up.run())
    await asyncio.sleep_ms(20)
    assert up.connected
    up.put("event", b"e1")
    await asyncio.sleep_ms(50)  # well below the 1 s idle check, so only the wake-up can explain it
    task.cancel()
    await asyncio.sleep_ms(0)
    assert _payloads(client, b"fleet/TRK-0042/event") == [b"e1"]


async def test_run_retries_after_refused_connect():
    up = _uplink()
    client = FakeClient()
    client.refuse_connects = 3
    up._client = client
    up.put("telemetry", b"r1")
    await _run_until(up, lambda: up.sent == 1)
    assert client.connects == 4
    assert up.reconnects == 3
    assert up.last_error == "[Errno 111] ECONNREFUSED"
    assert _payloads(client, b"fleet/TRK-0042/telemetry") == [b"r1"]


async def test_failed_record_stays_at_head():
    up = _uplink(queue_len=8)
    client = FakeClient()
    client.fail_once = [b"r2"]
    up._client = client
    for p in (b"r1", b"r2", b"r3"):
        up.put("telemetry", p)
    await _run_until(up, lambda: up.sent == 3)
    assert _payloads(client, b"fleet/TRK-0042/telemetry") == [b"r1", b"r2", b"r3"]
    assert up.reconnects == 1
    assert client.connects == 2
    assert up.last_error == "[Errno 104] ECONNRESET"
    # The status goes out again on the second connection.
    assert len(_payloads(client, b"fleet/TRK-0042/status")) == 2


async def test_drop_of_record_in_flight():
    up = _uplink(queue_len=4)
    client = FakeClient()
    client.publish_delay_ms = 30
    up._client = client
    up.put("telemetry", b"r1")
    task = asyncio.create_task(up.run())
    await asyncio.sleep_ms(45)  # status sent, r1 in flight
    for i in range(2, 7):  # r2..r6: the ring overflows and drops r1 and r2
        up.put("telemetry", b"r%d" % i)
    waited = 0
    while up.queued and waited < 2000:
        await asyncio.sleep_ms(10)
        waited += 10
    task.cancel()
    await asyncio.sleep_ms(0)
    # r1 arrived although put() dropped it in flight, so only r2 counts as lost.
    assert _payloads(client, b"fleet/TRK-0042/telemetry") == [b"r1", b"r3", b"r4", b"r5", b"r6"]
    assert up.dropped == 1
    assert up.sent == 5


async def test_link_down_waits():
    class Link:
        up = False

        def is_up(self):
            return self.up

    link = Link()
    up = Uplink(_cfg(), "TRK-0042", link=link)
    client = FakeClient()
    up._client = client
    up.put("telemetry", b"r1")
    task = asyncio.create_task(up.run())
    await asyncio.sleep_ms(100)
    assert client.connects == 0
    link.up = True
    waited = 0
    while up.sent < 1 and waited < 2000:
        await asyncio.sleep_ms(10)
        waited += 10
    task.cancel()
    await asyncio.sleep_ms(0)
    assert client.connects == 1
    assert _payloads(client, b"fleet/TRK-0042/telemetry") == [b"r1"]


async def test_resubscribes_after_reconnect():
    up = _uplink()
    client = FakeClient()
    client.fail_once = [b"r1"]
    up._client = client
    up.subscribe("config")
    up.put("telemetry", b"r1")
    await _run_until(up, lambda: up.sent == 1)
    assert client.subscribed == [(b"fleet/TRK-0042/config", 1), (b"fleet/TRK-0042/config", 1)]


def test_wlan_none_without_network_module():
    from drivers import wlan

    cfg = config.merge(config.DEFAULTS, {"wifi": {"ssid": "depot", "password": "pw"}})
    saved = sys.modules.pop("network", None)
    try:
        assert wlan.create(cfg) is None
    finally:
        if saved is not None:
            sys.modules["network"] = saved


def test_wlan_none_without_ssid():
    from drivers import wlan

    assert wlan.create(config.merge(config.DEFAULTS, {})) is None


def test_wlan_with_fake_network():
    from drivers import wlan

    class FakeSTA:
        def __init__(self):
            self.calls = []
            self.up = False

        def active(self, on):
            self.calls.append(("active", on))

        def connect(self, ssid, password):
            self.calls.append(("connect", ssid, password))

        def isconnected(self):
            return self.up

        def status(self):
            return 1010 if self.up else 1001

    class FakeNetwork:
        STA_IF = 0
        sta = FakeSTA()

        def WLAN(self, interface):
            assert interface == 0
            return self.sta

    fake = FakeNetwork()
    saved = sys.modules.get("network")
    sys.modules["network"] = fake
    try:
        cfg = config.merge(config.DEFAULTS, {"wifi": {"ssid": "depot", "password": "pw"}})
        w = wlan.create(cfg)
    finally:
        if saved is None:
            del sys.modules["network"]
        else:
            sys.modules["network"] = saved
    assert fake.sta.calls == [("active", True), ("connect", "depot", "pw")]
    assert not w.is_up()
    assert w.status() == 1001
    fake.sta.up = True
    assert w.is_up()
