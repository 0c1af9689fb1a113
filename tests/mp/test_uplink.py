# Tests of firmware.uplink with a fake MQTT client over a flash store: order, batches, window, acks, resends, time
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# The store is a real firmware.store.Store on LittleFS over a RAM block
# device, filled by a real Packer. FakeClient stands in for MQTTClient: it
# keeps every message the "broker" received, sends PUBACKs after a set delay
# or holds them, and can drop the connection like a reset.

import asyncio
import json
import sys
from time import ticks_add, ticks_diff, ticks_ms

import vfs

from firmware import config, defaults, log
from firmware.alarms import CLEARED, RAISED, Alarm
from firmware.mqtt import MQTTError
from firmware.packed import ALARM, EVENT, TELEMETRY, Packer
from firmware.store import Store
from firmware.uplink import Uplink, _jitter
from ramflash import RAMBlockDevice

_MOUNT = "/uplinktest"
_DEV = "TRK-0042"
_STATUS = b"fleet/TRK-0042/status"
_TOPIC_KINDS = {
    b"fleet/TRK-0042/telemetry": "telemetry",
    b"fleet/TRK-0042/alarm": "alarm",
    b"fleet/TRK-0042/event": "event",
    b"fleet/TRK-0042/batch": "batch",
}
# Unix ms at uptime 0 of boot 7: records made every 30 s of uptime get t = 1773655692.1 + 30 n.
_OFFSET_MS = 1773655692100

log.console = False  # the tests provoke warnings on purpose


class FakeClient:
    """Stand-in for MQTTClient: a broker that keeps what it receives and acknowledges on request."""

    def __init__(self):
        self.connected = False
        self.error = None
        self.connects = 0
        self.connect_ms = []  # ticks_ms() of every connect attempt
        self.refuse_connects = 0  # the next connects raise ECONNREFUSED
        self.received = []  # (connection number, topic, payload, qos, retain, ticks_ms())
        self.acked = []  # (connection number, topic, payload) of every PUBACK the uplink waited for
        self.subscribed = []
        self.ack_delay_ms = 0
        self.hold_acks = False  # while True, no record gets its PUBACK
        self.fail_publishes = []  # numbers (from 1, status excluded) of record publishes that fail
        self.record_publishes = 0
        self.max_unacked = 0  # maximum number of record publishes sent and not yet acknowledged to the uplink
        self._pid = 0
        self._pending = {}  # packet id -> (PUBACK due at ticks, topic, payload)
        self._arrived = set()  # packet ids whose PUBACK came in before the connection dropped

    async def connect(self, clean=True):
        self.connects += 1
        self.connect_ms.append(ticks_ms())
        # As MQTTClient.connect(): packet ids of the old connection are forgotten.
        self._pending = {}
        self._arrived = set()
        await asyncio.sleep_ms(0)
        if self.refuse_connects:
            self.refuse_connects -= 1
            self.error = OSError(111)
            raise self.error
        self.connected = True
        self.error = None
        return False

    def close(self):
        if self.connected:
            self.drop(MQTTError("connection closed"))

    def drop(self, error=None):
        """End the connection like a reset: PUBACKs that have not arrived yet never will."""
        now = ticks_ms()
        for pid in self._pending:
            due, topic, payload = self._pending[pid]
            if (topic == _STATUS or not self.hold_acks) and ticks_diff(due, now) <= 0:
                self._arrived.add(pid)
        self.connected = False
        self.error = error or OSError(104)

    def _unacked_records(self):
        return len([pid for pid in self._pending if self._pending[pid][1] != _STATUS])

    async def publish(self, topic, payload, qos=0, retain=False, wait=True):
        if not self.connected:
            raise self.error or MQTTError("not connected")
        await asyncio.sleep_ms(0)
        if topic != _STATUS:
            self.record_publishes += 1
            if self.record_publishes in self.fail_publishes:
                self.drop()
                raise self.error
        # A real client has written the bytes to the socket when publish returns,
        # and the uplink reuses its batch buffer, so keep a copy.
        if not isinstance(payload, (str, bytes)):
            payload = bytes(payload)
        self.received.append((self.connects, topic, payload, qos, retain, ticks_ms()))
        if not qos:
            return None
        self._pid = self._pid % 65535 + 1
        pid = self._pid
        self._pending[pid] = (ticks_add(ticks_ms(), self.ack_delay_ms), topic, payload)
        self.max_unacked = max(self.max_unacked, self._unacked_records())
        if wait:
            await self.wait_puback(pid)
            return None
        return pid

    async def wait_puback(self, pid):
        if pid not in self._pending:
            raise MQTTError("no PUBACK pending for packet id %d" % pid)
        due, topic, payload = self._pending[pid]
        while self.connected and ((self.hold_acks and topic != _STATUS) or ticks_diff(due, ticks_ms()) > 0):
            await asyncio.sleep_ms(1)
        del self._pending[pid]
        if not self.connected and pid not in self._arrived:
            raise MQTTError("connection lost while waiting for PUBACK of packet id %d: %s" % (pid, self.error))
        self.acked.append((self.connects, topic, payload))

    async def subscribe(self, topic, qos=1):
        if not self.connected:
            raise self.error or MQTTError("not connected")
        self.subscribed.append((topic, qos))
        return qos


class FakeUptime:
    def __init__(self):
        self.value_ms = 0

    def ms(self, now_ms=None):
        return self.value_ms


class FakeClock:
    def unix_ms_at(self, ticks):
        return None


class FakeProbes:
    names = ["front", "rear"]
    value_mc = [4125, -18250]
    state = ["ok", "ok"]
    extra = []


class FakeHumidity:
    state = "ok"
    temp_mc = 5150
    rh_mrh = 79849


class FakeAlarms:
    all = [Alarm("temp_high", "rear")]
    trip = 0
    early = moving = seat_occupied = False
    jt808_lo = jt808_hi = 0

    def update_jt808(self):
        pass

    def excursion(self):
        return False


class Maker:
    """Record factory for one boot: records 30 s of uptime apart, put into the store."""

    def __init__(self, store, boot_id=7):
        self.store = store
        self.uptime = FakeUptime()
        self.packer = Packer(store.names, boot_id, self.uptime, FakeClock())
        self.packer.set_schema(FakeProbes.names, [a.key for a in FakeAlarms.all])

    def _next(self):
        self.uptime.value_ms += 30000
        return self.packer.seq + 1

    def telemetry(self):
        seq = self._next()
        self.store.put(TELEMETRY, self.packer.telemetry(0, FakeProbes(), FakeHumidity(), None, None, FakeAlarms()))
        return seq

    def event(self, name="door_open", extra=None):
        seq = self._next()
        self.store.put(EVENT, self.packer.event(0, name, None, None, extra))
        return seq

    def alarm(self, raised=True):
        seq = self._next()
        a = Alarm("temp_high", "rear")
        a.value_m = 9125
        a.limit_m = 8000
        self.store.put(ALARM, self.packer.alarm(0, a, RAISED if raised else CLEARED, None, None))
        return seq

    def raw(self, kind, data):
        # A record that the packer would never make; it takes no sequence number.
        self.store.put(kind, data)


class Env:
    """A fresh flash store, an Uplink on it for boot 7 and a FakeClient in place of its MQTT client."""

    def __init__(self, window=8, batch_bytes=8192, time_wait_s=0, boot_id=7, offset_ms=_OFFSET_MS, **mqtt):
        self.bdev = RAMBlockDevice(64)
        vfs.VfsLfs2.mkfs(self.bdev)
        vfs.mount(vfs.VfsLfs2(self.bdev), _MOUNT)
        try:
            mqtt["window"] = window
            mqtt["batch_bytes"] = batch_bytes
            self.cfg = config.merge(defaults.DEFAULTS, {"mqtt": mqtt, "spool": {"dir": _MOUNT + "/spool"}})
            self.store = Store(self.cfg)
            if offset_ms is not None:
                self.store.clocks.set(boot_id, offset_ms)
            self.up = Uplink(self.cfg, _DEV, self.store, boot_id=boot_id, fw="1.4.0", time_wait_s=time_wait_s)
        except BaseException:
            vfs.umount(_MOUNT)
            raise
        self.up._backoff_first_ms = 5
        self.up._backoff_max_ms = 20
        self.client = FakeClient()
        self.up._client = self.client
        self.maker = Maker(self.store, boot_id)

    def close(self):
        vfs.umount(_MOUNT)


async def _run_until(up, condition, limit_ms=2000):
    task = asyncio.create_task(up.run())
    waited = 0
    while not condition() and waited < limit_ms:
        await asyncio.sleep_ms(5)
        waited += 5
    task.cancel()
    await asyncio.sleep_ms(0)
    assert condition(), "condition not met within %d ms" % limit_ms
    return waited


def _messages(client, connection=None):
    """Return (topic kind, payload) of every record message received, status excluded."""
    out = []
    for conn, topic, payload, qos, retain, at in client.received:
        if topic != _STATUS and (connection is None or conn == connection):
            # MQTTClient.publish takes str or bytes; compare as text.
            if isinstance(payload, bytes):
                payload = payload.decode()
            out.append((_TOPIC_KINDS[topic], payload))
    return out


def _records(messages):
    """Return (topic kind, record dict) of every record, batches unpacked, in arrival order."""
    out = []
    for kind, payload in messages:
        value = json.loads(payload)
        if kind == "batch":
            assert isinstance(value, list), payload
            for record in value:
                out.append((kind, record))
        else:
            out.append((kind, value))
    return out


def _seqs(messages):
    return [r["seq"] for k, r in _records(messages)]


def _acked_seqs(client):
    seqs = set()
    for conn, topic, payload in client.acked:
        if topic != _STATUS:
            if isinstance(payload, bytes):
                payload = payload.decode()
            seqs.update(_seqs([(_TOPIC_KINDS[topic], payload)]))
    return seqs


# Construction, topics, configuration


def test_topics():
    env = Env(topic_prefix="fleet/acme/v1")
    try:
        up = env.up
        assert up.topic("telemetry") == b"fleet/acme/v1/TRK-0042/telemetry"
        assert up.topic("alarm") == b"fleet/acme/v1/TRK-0042/alarm"
        assert up.topic("event") == b"fleet/acme/v1/TRK-0042/event"
        assert up.topic("status") == b"fleet/acme/v1/TRK-0042/status"
        assert up.topic("batch") == b"fleet/acme/v1/TRK-0042/batch"
    finally:
        env.close()


def test_client_id_and_offline_will():
    env = Env()
    try:
        client = Uplink(env.cfg, _DEV, env.store)._client
        assert client.will == (b"fleet/TRK-0042/status", b'{"state":"offline"}', 1, True)
        assert client.client_id == b"TRK-0042"
    finally:
        env.close()
    env = Env(client_id="acme-trk-0042")
    try:
        assert Uplink(env.cfg, _DEV, env.store)._client.client_id == b"acme-trk-0042"
    finally:
        env.close()


def _tls_error(**mqtt):
    try:
        Env(tls=True, **mqtt).close()
    except ValueError as e:
        return str(e)
    return None


def test_tls_without_ca_rejected():
    message = _tls_error()
    assert message is not None
    assert "mqtt.ca_file" in message, message


def test_tls_unreadable_ca_rejected():
    message = _tls_error(ca_file="/nonexistent/ca.der")
    assert message is not None
    assert "/nonexistent/ca.der" in message, message


def test_stats_keys():
    env = Env()
    try:
        env.maker.telemetry()
        env.maker.alarm()
        assert env.up.stats() == {
            "connected": False,
            "sent": 0,
            "dropped": 0,
            "reconnects": 0,
            "queued": 2,
            "last_error": "",
        }
    finally:
        env.close()


def test_jitter_within_quarter():
    values = set()
    for _ in range(200):
        ms = _jitter(4000)
        assert 3000 <= ms <= 5000, ms
        values.add(ms)
    assert len(values) > 20


# Delivery order


def _fill_mixed(maker):
    # seq 1 telemetry, 2 alarm, 3 event, 4-9 telemetry, 10 alarm, 11 telemetry, 12 event.
    maker.telemetry()
    maker.alarm()
    maker.event("door_open")
    for _ in range(6):
        maker.telemetry()
    maker.alarm(raised=False)
    maker.telemetry()
    maker.event("door_closed")


async def test_order_alarms_newest_backlog():
    env = Env()
    try:
        _fill_mixed(env.maker)
        await _run_until(env.up, lambda: env.store.depth() == 0)
        client = env.client
        assert client.received[0][1:5] == (_STATUS, '{"state":"online","boot":7,"fw":"1.4.0"}', 1, True)
        records = _records(_messages(client))
        # Alarms first, oldest first, each on the alarm topic.
        assert [(k, r["seq"]) for k, r in records[:2]] == [("alarm", 2), ("alarm", 10)], records[:2]
        # Then the newest record of the main spool, on its own topic.
        assert (records[2][0], records[2][1]["seq"]) == ("event", 12), records[2]
        # Then the backlog, oldest first.
        backlog = [r["seq"] for k, r in records[3:] if r["seq"] != 12]
        assert backlog == [1, 3, 4, 5, 6, 7, 8, 9, 11], backlog
        kinds = {2: "alarm", 10: "alarm", 3: "event", 12: "event"}
        for k, r in records:
            assert r["kind"] == kinds.get(r["seq"], "telemetry"), r
    finally:
        env.close()


async def test_newest_not_sent_twice_in_connection():
    env = Env()
    try:
        _fill_mixed(env.maker)
        await _run_until(env.up, lambda: env.store.depth() == 0)
        seqs = _seqs(_messages(env.client, connection=1))
        for seq in range(1, 13):
            assert seqs.count(seq) == 1, (seq, seqs)
        assert env.up.sent == 12
    finally:
        env.close()


async def test_few_records_go_one_per_message():
    env = Env()
    try:
        env.maker.telemetry()
        env.maker.event("ignition_on")
        env.maker.telemetry()
        await _run_until(env.up, lambda: env.store.depth() == 0)
        messages = _messages(env.client)
        assert [k for k, p in messages] == ["telemetry", "event", "telemetry"], messages
        assert _seqs(messages) == [1, 2, 3]
        assert env.up.sent == 3
    finally:
        env.close()


# Batches and window


async def test_batches_are_arrays_under_batch_bytes():
    env = Env(batch_bytes=1024)
    try:
        for _ in range(40):
            env.maker.telemetry()
        await _run_until(env.up, lambda: env.store.depth() == 0)
        messages = _messages(env.client)
        batches = [p for k, p in messages if k == "batch"]
        assert len(batches) >= 5, len(messages)
        for payload in batches:
            assert payload[0] == "[", payload[:20]
            assert len(payload.encode()) <= 1024, len(payload.encode())
            records = json.loads(payload)
            assert len(records) >= 2, payload
            for record in records:
                assert record["kind"] == "telemetry", record
                assert record["dev"] == _DEV, record
        # The newest went ahead, and the rest came oldest first, each once.
        seqs = _seqs(messages)
        assert seqs[0] == 40, seqs
        assert [s for s in seqs[1:] if s != 40] == list(range(1, 40)), seqs
        assert env.client.acked
    finally:
        env.close()


async def test_batch_bytes_counts_utf8_bytes():
    # Driver names in Cyrillic: 2 bytes per character in the UTF-8 payload.
    env = Env(batch_bytes=1024)
    try:
        for _ in range(6):
            env.maker.event("config_applied", {"note": "ж" * 250})
        await _run_until(env.up, lambda: env.store.depth() == 0)
        for kind, payload in _messages(env.client):
            assert len(payload.encode()) <= 1024 or kind != "batch", (kind, len(payload), len(payload.encode()))
        assert sorted(set(_seqs(_messages(env.client)))) == [1, 2, 3, 4, 5, 6]
    finally:
        env.close()


async def _check_window(window):
    env = Env(window=window, batch_bytes=1024)
    try:
        env.client.ack_delay_ms = 3
        for i in range(30):
            if i % 8 == 0:
                env.maker.alarm(raised=i % 16 == 0)
            env.maker.telemetry()
        await _run_until(env.up, lambda: env.store.depth() == 0, 5000)
        assert env.client.max_unacked == window, (window, env.client.max_unacked)
        # More messages than one window holds, so publishes waited for PUBACKs on the way.
        assert len(_messages(env.client)) > window + 1, len(_messages(env.client))
        assert sorted(set(_seqs(_messages(env.client)))) == list(range(1, 35))
    finally:
        env.close()


async def test_window_limits_unacked_publishes():
    await _check_window(3)
    await _check_window(1)
    await _check_window(8)


async def test_records_leave_store_only_after_puback():
    env = Env(window=4, batch_bytes=1024)
    try:
        for _ in range(10):
            env.maker.telemetry()
        env.maker.alarm()
        env.client.hold_acks = True
        task = asyncio.create_task(env.up.run())
        await asyncio.sleep_ms(100)
        # The alarm, the newest record and 3 batches of 3 would be 5 messages; the window takes 4.
        assert len(_messages(env.client)) == 4, _messages(env.client)
        assert env.store.depth() == 11
        assert env.up.sent == 0
        env.client.hold_acks = False
        waited = 0
        while env.store.depth() and waited < 2000:
            await asyncio.sleep_ms(5)
            waited += 5
        task.cancel()
        await asyncio.sleep_ms(0)
        assert env.store.depth() == 0
        assert _acked_seqs(env.client) == set(range(1, 12))
        assert env.up.sent >= 11
    finally:
        env.close()


# Failures and resends


async def test_reconnect_resends_unacked():
    env = Env(window=4, batch_bytes=1024)
    try:
        for _ in range(20):
            env.maker.telemetry()
        env.client.hold_acks = True
        task = asyncio.create_task(env.up.run())
        await asyncio.sleep_ms(100)
        first = _seqs(_messages(env.client, connection=1))
        assert first, "nothing sent on the first connection"
        env.client.drop()
        env.client.hold_acks = False
        waited = 0
        while env.store.depth() and waited < 2000:
            await asyncio.sleep_ms(5)
            waited += 5
        task.cancel()
        await asyncio.sleep_ms(0)
        assert env.client.connects == 2
        assert env.up.reconnects == 1
        assert env.up.last_error.startswith("connection lost while waiting for PUBACK"), env.up.last_error
        second = _seqs(_messages(env.client, connection=2))
        # Nothing was acknowledged on the first connection, so all of it came again.
        for seq in first:
            assert seq in second, (seq, first, second)
        assert _acked_seqs(env.client) == set(range(1, 21))
        assert env.store.depth() == 0
        # The status goes out on every connection.
        assert len([r for r in env.client.received if r[1] == _STATUS]) == 2
    finally:
        env.close()


async def test_failed_publish_loses_nothing():
    for failing in (1, 2, 4, 7):
        env = Env(window=3, batch_bytes=1024)
        try:
            env.client.fail_publishes = [failing]
            for i in range(30):
                if i % 10 == 5:
                    env.maker.alarm()
                env.maker.telemetry()
            await _run_until(env.up, lambda: env.store.depth() == 0, 3000)
            assert env.up.reconnects == 1, failing
            # Every record came with a publish that the broker acknowledged.
            assert _acked_seqs(env.client) == set(range(1, 34)), (failing, sorted(_acked_seqs(env.client)))
        finally:
            env.close()


async def test_early_newest_not_resent_after_reconnect():
    # With a window of 1 every publish waits for the one before: the newest
    # (seq 10) is acknowledged, then the batch of 1-3, then the next publish fails.
    env = Env(window=1, batch_bytes=1024)
    try:
        for _ in range(10):
            env.maker.telemetry()
        env.client.fail_publishes = [3]
        await _run_until(env.up, lambda: env.store.depth() == 0)
        first = _seqs(_messages(env.client, connection=1))
        second = _seqs(_messages(env.client, connection=2))
        assert first == [10, 1, 2, 3], first
        assert 10 not in second, second
        assert 1 not in second, second
        assert second == list(range(4, 10)), second
        assert _acked_seqs(env.client) == set(range(1, 11))
    finally:
        env.close()


async def test_new_alarm_overtakes_backlog():
    env = Env(window=1, batch_bytes=1024)
    try:
        for _ in range(60):
            env.maker.telemetry()
        env.client.ack_delay_ms = 5
        task = asyncio.create_task(env.up.run())
        await asyncio.sleep_ms(40)
        alarm_seq = env.maker.alarm()
        waited = 0
        while env.store.depth() and waited < 3000:
            await asyncio.sleep_ms(5)
            waited += 5
        task.cancel()
        await asyncio.sleep_ms(0)
        kinds = [k for k, p in _messages(env.client)]
        position = kinds.index("alarm")
        # Batches were sent before the alarm was made, and more of them after it went.
        assert kinds[:position].count("batch") >= 2, kinds
        assert kinds[position + 1 :].count("batch") >= 2, kinds
        assert json.loads(_messages(env.client)[position][1])["seq"] == alarm_seq
        assert env.store.depth() == 0
    finally:
        env.close()


async def test_retries_with_backoff_after_refused_connects():
    env = Env()
    try:
        env.up._backoff_first_ms = 20
        env.up._backoff_max_ms = 80
        env.client.refuse_connects = 3
        env.maker.telemetry()
        await _run_until(env.up, lambda: env.store.depth() == 0)
        assert env.client.connects == 4
        assert env.up.reconnects == 3
        assert env.up.last_error == "[Errno 111] ECONNREFUSED"
        assert _seqs(_messages(env.client)) == [1]
        # Delays of 20, 40 and 80 ms, each jittered by at most -25 %.
        at = env.client.connect_ms
        assert ticks_diff(at[1], at[0]) >= 15, at
        assert ticks_diff(at[2], at[1]) >= 30, at
        assert ticks_diff(at[3], at[2]) >= 60, at
    finally:
        env.close()


async def test_resubscribes_after_reconnect():
    env = Env()
    try:
        env.client.fail_publishes = [1]
        env.up.subscribe("config")
        env.maker.telemetry()
        await _run_until(env.up, lambda: env.store.depth() == 0)
        assert env.client.subscribed == [(b"fleet/TRK-0042/config", 1), (b"fleet/TRK-0042/config", 1)]
        assert env.client.connects == 2
    finally:
        env.close()


class Link:
    def __init__(self):
        self.up = False

    def is_up(self):
        return self.up


async def test_link_down_waits():
    env = Env()
    try:
        link = Link()
        env.up.link = link
        env.maker.telemetry()
        task = asyncio.create_task(env.up.run())
        await asyncio.sleep_ms(100)
        assert env.client.connects == 0
        link.up = True
        waited = 0
        while env.store.depth() and waited < 2000:
            await asyncio.sleep_ms(10)
            waited += 10
        assert env.client.connects == 1
        assert _seqs(_messages(env.client)) == [1]

        # A link that goes down ends the session at the next check, within the 1 s idle wait.
        link.up = False
        waited = 0
        while env.up.connected and waited < 2000:
            await asyncio.sleep_ms(10)
            waited += 10
        task.cancel()
        await asyncio.sleep_ms(0)
        assert not env.up.connected
        assert env.up.last_error == "network link down"
        assert env.client.connects == 1
    finally:
        env.close()


async def test_wakes_on_new_record():
    env = Env()
    try:
        task = asyncio.create_task(env.up.run())
        await asyncio.sleep_ms(20)
        assert env.up.connected
        env.maker.event("sos_pressed")
        await asyncio.sleep_ms(50)  # well below the 1 s idle check, so only the wake-up can explain it
        task.cancel()
        await asyncio.sleep_ms(0)
        messages = _messages(env.client)
        assert [k for k, p in messages] == ["event"], messages
        assert json.loads(messages[0][1])["event"] == "sos_pressed"
    finally:
        env.close()


async def test_link_counters_in_telemetry():
    env = Env()
    try:
        env.client.refuse_connects = 2
        env.maker.telemetry()
        await _run_until(env.up, lambda: env.store.depth() == 0)
        record = json.loads(_messages(env.client)[0][1])
        assert record["link"] == {"queued": 1, "dropped": 0, "sent": 0, "reconnects": 2}
    finally:
        env.close()


# Time


def _t_text(seq):
    # A Maker makes record n at uptime 30 n s, which is Unix time offset + 30 n s.
    return {1: "1773655722.1", 2: "1773655752.1", 5: "1773655842.1"}[seq]


async def test_current_boot_waits_for_clock():
    env = Env(time_wait_s=600, offset_ms=None)
    try:
        for _ in range(5):
            env.maker.telemetry()
        env.maker.alarm()
        task = asyncio.create_task(env.up.run())
        await asyncio.sleep_ms(150)
        # Only the alarm went, at once, without a time.
        messages = _messages(env.client)
        assert [k for k, p in messages] == ["alarm"], messages
        alarm = json.loads(messages[0][1])
        assert alarm["t"] is None
        assert alarm["t_unknown"] is True
        assert env.store.depth() == 5

        env.store.clocks.set(7, _OFFSET_MS)
        waited = 0
        while env.store.depth() and waited < 3000:
            await asyncio.sleep_ms(10)
            waited += 10
        task.cancel()
        await asyncio.sleep_ms(0)
        assert env.store.depth() == 0
        texts = [p for k, p in _messages(env.client)[1:]]
        records = _records(_messages(env.client)[1:])
        for k, r in records:
            assert "t_unknown" not in r, r
        by_seq = {}
        for k, r in records:
            by_seq[r["seq"]] = r
        assert sorted(by_seq) == [1, 2, 3, 4, 5]
        for seq in (1, 2, 5):
            assert by_seq[seq]["t"] == float(_t_text(seq)), by_seq[seq]
            assert any('"seq":%d,"t":%s,' % (seq, _t_text(seq)) in t for t in texts), seq
    finally:
        env.close()


async def test_time_wait_then_t_unknown():
    env = Env(time_wait_s=1, offset_ms=None)
    try:
        started = ticks_ms()
        env.up._started_ms = started
        for _ in range(4):
            env.maker.telemetry()
        await _run_until(env.up, lambda: env.store.depth() == 0, 3000)
        first_at = [r[5] for r in env.client.received if r[1] != _STATUS][0]
        assert ticks_diff(first_at, started) >= 1000, ticks_diff(first_at, started)
        records = _records(_messages(env.client))
        assert sorted(set(r["seq"] for k, r in records)) == [1, 2, 3, 4]
        for k, r in records:
            assert r["t"] is None, r
            assert r["t_unknown"] is True, r
    finally:
        env.close()


async def test_earlier_boot_goes_at_once():
    env = Env(time_wait_s=600, boot_id=7, offset_ms=None)
    try:
        # Boot 5 never learnt its time and boot 6 did. This is boot 7, with no time yet.
        old = Maker(env.store, boot_id=5)
        older_seqs = [old.telemetry(), old.event("boot")]
        known = Maker(env.store, boot_id=6)
        env.store.clocks.set(6, _OFFSET_MS)
        known.telemetry()
        env.maker.telemetry()
        waited = await _run_until(env.up, lambda: env.store.depth() == 1)
        assert waited < 500, waited
        records = _records(_messages(env.client))
        got = [(r["boot"], r["seq"]) for k, r in records]
        assert got == [(5, 1), (5, 2), (6, 1)], got
        assert older_seqs == [1, 2]
        assert records[0][1]["t"] is None
        assert records[0][1]["t_unknown"] is True
        assert records[1][1]["t_unknown"] is True
        assert records[2][1]["t"] == 1773655722.1
        assert "t_unknown" not in records[2][1]
    finally:
        env.close()


# Records that cannot be rendered


async def test_unrenderable_record_skipped():
    env = Env()
    try:
        env.maker.telemetry()
        # Kind 0 in byte 0 with a readable header (boot 7, seq 99, uptime 5).
        env.maker.raw(TELEMETRY, b"\x00\x07\x63\x05")
        env.maker.telemetry()
        env.maker.raw(ALARM, b"\x00\x07\x64\x05")
        env.maker.alarm()
        await _run_until(env.up, lambda: env.store.depth() == 0)
        assert env.up.bad_records == 2
        assert sorted(_seqs(_messages(env.client))) == [1, 2, 3]
    finally:
        env.close()


async def test_short_heap_render_retried_in_order():
    # A MemoryError while rendering is a moment without heap, not a bad record:
    # the session stays up and the records go out later, none skipped.
    env = Env()
    try:
        for _ in range(3):
            env.maker.telemetry()
        env.maker.alarm()
        real = env.up._render
        fails = [2]

        def short(packed, boot, link):
            if fails[0]:
                fails[0] -= 1
                raise MemoryError("memory allocation failed, allocating 509 bytes")
            return real(packed, boot, link)

        env.up._render = short
        await _run_until(env.up, lambda: env.store.depth() == 0, 4000)
        assert env.up.short_heap == 2
        assert env.up.bad_records == 0
        assert env.client.connects == 1
        assert sorted(_seqs(_messages(env.client))) == [1, 2, 3, 4]
    finally:
        env.close()


async def test_truncated_record_skipped():
    env = Env()
    try:
        env.maker.telemetry()
        # Byte 0 and the boot id, then nothing: not even a whole header.
        env.maker.raw(TELEMETRY, b"\x01\x07")
        env.maker.telemetry()
        await _run_until(env.up, lambda: env.store.depth() == 0, 1500)
        assert env.up.bad_records == 1
        assert sorted(_seqs(_messages(env.client))) == [1, 2]
    finally:
        env.close()


# WiFi link wrapper used by the uplink


def test_wlan_none_without_network_module():
    from drivers import wlan

    cfg = config.merge(defaults.DEFAULTS, {"wifi": {"ssid": "depot", "password": "pw"}})
    saved = sys.modules.pop("network", None)
    try:
        assert wlan.create(cfg) is None
    finally:
        if saved is not None:
            sys.modules["network"] = saved


def test_wlan_none_without_ssid():
    from drivers import wlan

    assert wlan.create(config.merge(defaults.DEFAULTS, {})) is None


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
        cfg = config.merge(defaults.DEFAULTS, {"wifi": {"ssid": "depot", "password": "pw"}})
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
