# MicroPython side of the MQTT end-to-end tests: runs one scenario and prints tagged JSON lines
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Run from the repository root by tests/e2e/test_mqtt_client.py and test_outage_delivery.py:
#   micropython tests/e2e/mqtt_client_probe.py SCENARIO ARGS.json
# where ARGS.json holds the scenario's parameters, e.g. {"port": 1883}.
# Each output line is "TAG {json}". The pytest side reads them as they come,
# because some scenarios wait for the test to act (start or stop a broker).

import sys

sys.path[:0] = ["", "tools/sim"]

import asyncio
import json
import os
import time

from firmware import config, defaults
from firmware.mqtt import MQTTClient, MQTTError


def emit(tag, **fields):
    print(tag, json.dumps(fields))


def pattern(n, seed=0):
    # Steps of 7 (coprime to 256) cycle through all byte values, so a lost, added
    # or altered byte changes the comparison.
    return bytes((i * 7 + 3 + seed) & 0xFF for i in range(n))


def describe(e):
    return {
        "type": type(e).__name__,
        "errno": e.errno if isinstance(e.errno, int) else None,
        "rc": getattr(e, "rc", None),
        "text": str(e),
    }


async def pubsub(args):
    # Connect, subscribe to a 130-character filter (a retained message waits on it),
    # loop a message through the broker, then publish the D1 payload sizes.
    received = []

    def on_message(topic, payload, retain):
        received.append((topic, payload, retain))

    client = MQTTClient(args["client_id"], "127.0.0.1", args["port"], on_message=on_message)
    session = await client.connect()
    emit("CONNECTED", session_present=session)

    granted = await client.subscribe(args["long_filter"], 1)
    emit("SUBACK", topic_len=len(args["long_filter"]), granted=granted)
    granted = await client.subscribe(args["loop_topic"], 1)
    await client.publish(args["loop_topic"], b"loop-qos1", qos=1)

    for size in args["qos0_sizes"]:
        await client.publish(args["topic"], pattern(size, 0), qos=0)
        emit("PUBLISHED", qos=0, size=size)
    for size in args["qos1_sizes"]:
        await client.publish(args["topic"], pattern(size, 1), qos=1)
        emit("PUBLISHED", qos=1, size=size)

    for _ in range(200):
        if len(received) >= 2:
            break
        await asyncio.sleep_ms(10)
    for topic, payload, retain in received:
        emit("MESSAGE", topic=topic.decode(), payload=payload.decode(), retain=retain)
    emit("STATE", connected=client.connected)
    await client.disconnect()
    emit("DONE", connected=client.connected)


async def connect_once(args):
    # One connection attempt with the given settings; prints the outcome and timing.
    ctx = None
    if args.get("ca"):
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        with open(args["ca"], "rb") as f:
            ctx.load_verify_locations(cadata=f.read())
        if args.get("cert"):
            with open(args["cert"], "rb") as f:
                cert = f.read()
            with open(args["key"], "rb") as f:
                key = f.read()
            ctx.load_cert_chain(cert, key)

    client = MQTTClient(
        args.get("client_id", "probe"),
        args.get("host", "127.0.0.1"),
        args["port"],
        user=args.get("user", ""),
        password=args.get("password", ""),
        keepalive_s=args.get("keepalive_s", 30),
        ssl=ctx,
        server_hostname=args.get("server_hostname"),
        timeout_s=args.get("timeout_s", 10),
        will=tuple(args["will"]) if args.get("will") else None,
    )

    # A 10 ms ticker shows whether anything blocks the loop during the attempt.
    lag = [0, 0]

    async def ticker():
        while True:
            t0 = time.ticks_ms()
            await asyncio.sleep_ms(10)
            late = time.ticks_diff(time.ticks_ms(), t0) - 10
            lag[0] = max(lag[0], late)
            lag[1] += 1

    tick_task = asyncio.create_task(ticker())
    t0 = time.ticks_ms()
    try:
        await client.connect()
        emit("CONNECTED", elapsed_ms=time.ticks_diff(time.ticks_ms(), t0))
        if args.get("publish"):
            payload = pattern(args["payload_size"], 1) if args.get("payload_size") else args.get("payload", "hello")
            await client.publish(args["publish"], payload, qos=1)
            emit("PUBLISHED", topic=args["publish"])
        if args.get("idle_s"):
            # Stay idle so that only keepalive traffic flows.
            t1 = time.ticks_ms()
            while client.connected and time.ticks_diff(time.ticks_ms(), t1) < args["idle_s"] * 1000:
                await asyncio.sleep_ms(50)
            emit("IDLE", connected=client.connected, elapsed_ms=time.ticks_diff(time.ticks_ms(), t1),
                 error=describe(client.error) if client.error else None)
        if args.get("drop"):
            client.close()  # no DISCONNECT, so the broker publishes the last will
        else:
            await client.disconnect()
    except OSError as e:
        info = describe(e)
        info["is_mqtt_error"] = isinstance(e, MQTTError)
        info["elapsed_ms"] = time.ticks_diff(time.ticks_ms(), t0)
        emit("ERROR", **info)
    tick_task.cancel()
    emit("LAG", max_ms=lag[0], ticks=lag[1])


async def window(args):
    # Publish one QoS 1 message per entry of args["sizes"] with up to args["window"]
    # in flight, waiting for the PUBACKs in send order as the uplink does.
    client = MQTTClient(args["client_id"], "127.0.0.1", args["port"], timeout_s=5)
    await client.connect()
    # Start just below the wrap so the ids go 65533..65535 and then on from 1.
    client._pid = args.get("pid_start", 0)

    in_flight = []  # packet ids in send order
    first_pids = []
    reused = 0
    acked = 0
    max_inflight = 0
    for i, size in enumerate(args["sizes"]):
        if len(in_flight) == args["window"]:
            await client.wait_puback(in_flight.pop(0))
            acked += 1
        pid = await client.publish(args["topic"], pattern(size, i), qos=1, wait=False)
        if pid in in_flight:
            reused += 1
        in_flight.append(pid)
        if len(first_pids) < 12:
            first_pids.append(pid)
        max_inflight = max(max_inflight, client.inflight)
    while in_flight:
        await client.wait_puback(in_flight.pop(0))
        acked += 1
    emit("WINDOW", acked=acked, reused=reused, max_inflight=max_inflight, inflight=client.inflight,
         first_pids=first_pids)

    # A wait for a PUBACK that has already arrived returns at once.
    pid = await client.publish(args["late_topic"], b"late", qos=1, wait=False)
    t0 = time.ticks_ms()
    while client.inflight and time.ticks_diff(time.ticks_ms(), t0) < 2000:
        await asyncio.sleep_ms(5)
    inflight = client.inflight
    t1 = time.ticks_us()
    await client.wait_puback(pid)
    emit("LATE", inflight=inflight, wait_us=time.ticks_diff(time.ticks_us(), t1))
    await client.disconnect()


async def wait_for_file(path, limit_ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < limit_ms:
        try:
            os.stat(path)
            return True
        except OSError:
            await asyncio.sleep_ms(10)
    return False


async def window_held(args):
    # Put args["count"] QoS 1 publishes in flight to a broker that does not
    # acknowledge them, then wait for each PUBACK. The test either kills the
    # broker or, with a fake broker, lets the wait time out.
    client = MQTTClient("probe-held", "127.0.0.1", args["port"], timeout_s=args["timeout_s"])
    await client.connect()
    emit("CONNECTED")
    if args.get("gate"):
        # The test stops the broker (SIGSTOP) and then creates the gate file.
        emit("GATE", ok=await wait_for_file(args["gate"], 10000))

    lag = [0]

    async def ticker():
        while True:
            t0 = time.ticks_ms()
            await asyncio.sleep_ms(10)
            lag[0] = max(lag[0], time.ticks_diff(time.ticks_ms(), t0) - 10)

    tick_task = asyncio.create_task(ticker())
    pids = []
    for i in range(args["count"]):
        pids.append(await client.publish(args["topic"], pattern(20, i), qos=1, wait=False))

    outcomes = {}

    async def wait_one(pid):
        t0 = time.ticks_ms()
        try:
            await client.wait_puback(pid)
            info = {"ok": True}
        except OSError as e:
            info = describe(e)
            info["is_mqtt_error"] = isinstance(e, MQTTError)
        info["elapsed_ms"] = time.ticks_diff(time.ticks_ms(), t0)
        outcomes[pid] = info

    async def wait_all():
        if args.get("sequential"):
            # As the uplink does: one wait after the other, in send order.
            for pid in pids:
                await wait_one(pid)
        else:
            await asyncio.gather(*[wait_one(pid) for pid in pids])

    # The waits are already running when the test learns that the packets are in flight.
    waits = asyncio.create_task(wait_all())
    await asyncio.sleep_ms(20)
    emit("INFLIGHT", inflight=client.inflight, pids=pids)
    await waits
    tick_task.cancel()
    emit("WAITED", outcomes=[outcomes[pid] for pid in pids], connected=client.connected,
         inflight=client.inflight, error=describe(client.error) if client.error else None, lag_ms=lag[0])

    # A second wait for the same packet id finds nothing pending.
    await wait_one(pids[0])
    emit("AGAIN", **outcomes[pids[0]])
    client.close()


# ---- uplink over the flash store --------------------------------------------

DEVICE_ID = "TRK-0042"
PROBE_NAMES = ("cargo",)


def reading_mc(seq):
    # The probe reading of record seq (-18.01 C for seq 1 or 1001), so the
    # test can tell that a delivered record carries the values made for it.
    return -18000 - (seq % 1000) * 10


class FileGate:
    # Link stand-in: the link is up while the file exists, so the test can hold
    # the uplink back while it restarts the broker and its own subscriber.
    def __init__(self, path):
        self.path = path

    def is_up(self):
        try:
            os.stat(self.path)
            return True
        except OSError:
            return False


class Readings:
    # The probes.Probes fields that Packer.telemetry reads: one probe, no unknown ROMs.
    names = PROBE_NAMES
    state = ["ok"]
    extra = []

    def __init__(self):
        self.value_mc = [0]


class NoAlarms:
    # The engine state the packer reads: no trip, nothing active.
    all = []
    trip = 0
    early = moving = seat_occupied = False
    jt808_lo = jt808_hi = 0

    @staticmethod
    def update_jt808():
        pass

    @staticmethod
    def excursion():
        return False


class NoClock:
    # Packer reads the clock only for GNSS times, and these records have no GNSS block.
    def unix_ms_at(self, ticks):
        return None


class RecordMaker:
    """Telemetry records of one boot, packed by the real Packer and appended to the real Store."""

    def __init__(self, store, boot_id, first_seq):
        # Imported here because the other scenarios need that heap for their 16 KB payloads.
        from firmware.clock import Uptime
        from firmware.packed import TELEMETRY, Packer

        self.kind = TELEMETRY
        self.store = store
        self.uptime = Uptime()
        self.packer = Packer(store.names, boot_id, self.uptime, NoClock())
        self.packer.seq = first_seq - 1
        self.packer.set_schema(PROBE_NAMES, ())
        self.readings = Readings()
        # The host clock replaces a GNSS fix, so records carry their making time in "t".
        store.clocks.set(boot_id, int(time.time() * 1000) - self.uptime.ms())

    def make(self):
        """Store the next record and return its seq."""
        seq = self.packer.seq + 1
        self.readings.value_mc[0] = reading_mc(seq)
        now = time.ticks_ms()
        self.store.put(self.kind, self.packer.telemetry(now, self.readings, None, None, None, NoAlarms))
        return seq


class LagMeter:
    """A 10 ms ticker: its largest lateness shows whether anything blocked the loop."""

    def __init__(self):
        self.max_ms = 0
        self.ticks = 0

    async def run(self):
        while True:
            t0 = time.ticks_ms()
            await asyncio.sleep_ms(10)
            self.max_ms = max(self.max_ms, time.ticks_diff(time.ticks_ms(), t0) - 10)
            self.ticks += 1


def time_awaits(client):
    # Replace the client's network calls by wrappers that print one AWAIT line
    # per call: its duration and the error it raised, if any.
    def timed(name, method):
        async def call(*args, **kwargs):
            t0 = time.ticks_ms()
            error = None
            try:
                return await method(*args, **kwargs)
            except BaseException as e:
                error = "%s: %s" % (type(e).__name__, e)
                raise
            finally:
                emit("AWAIT", call=name, ms=time.ticks_diff(time.ticks_ms(), t0), error=error)

        return call

    for name in ("connect", "publish", "wait_puback"):
        setattr(client, name, timed(name, getattr(client, name)))


def uplink_config(args):
    cfg = config.merge(
        defaults.DEFAULTS,
        {
            "mqtt": {
                "host": "127.0.0.1",
                "port": args["port"],
                "keepalive_s": 5,
                "timeout_s": args.get("timeout_s", 2),
                "backoff_max_s": 1,
                "topic_prefix": "fleet",
            },
            # flush_records 1 puts every record on flash before store.put returns,
            # so a SIGKILL loses none. With larger values the records of the last
            # flush_s seconds or flush_records records may be lost in a power cut.
            "spool": {"dir": args["spool_dir"], "flush_s": 1, "flush_records": 1},
        },
    )
    errors = config.validate(cfg)
    if errors:
        raise ValueError("invalid probe configuration: %r" % (errors,))
    return cfg


def start_uplink(args):
    """Open the store, start its flush task and build the uplink. Return (store, uplink, maker)."""
    from firmware.store import Store
    from firmware.uplink import Uplink

    cfg = uplink_config(args)
    store = Store(cfg)
    maker = RecordMaker(store, args["boot_id"], args.get("first_seq", 1))
    gate = FileGate(args["gate"]) if args.get("gate") else None
    up = Uplink(cfg, DEVICE_ID, store, link=gate, boot_id=args["boot_id"], fw="test-fw")
    if args.get("time_awaits"):
        time_awaits(up._client)
    asyncio.create_task(store.run())
    return store, up, maker


async def report_stats(up):
    # A STATS line whenever the uplink's counters change, for the test to wait on.
    last = None
    while True:
        s = up.stats()
        if s != last:
            emit("STATS", **s)
            last = s
        await asyncio.sleep_ms(20)


async def until(condition, limit_ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < limit_ms:
        if condition():
            return True
        await asyncio.sleep_ms(10)
    return condition()


async def uplink(args):
    # Store records while the broker is absent, deliver them, then store more
    # during an outage that the test makes (link down and broker restarted).
    store, up, maker = start_uplink(args)
    seqs = []
    for _ in range(args["records"]):
        seqs.append(maker.make())
    emit("STORED", seqs=seqs, **up.stats())

    asyncio.create_task(up.run())
    asyncio.create_task(report_stats(up))

    if args.get("stay_online"):
        # Last-will scenario: report ONLINE and wait to be killed.
        await until(lambda: up.connected, 10000)
        emit("ONLINE", **up.stats())
        await asyncio.sleep(60)
        return

    def delivered():
        return store.depth() == 0 and up.connected

    ok = await until(delivered, 20000)
    emit("PHASE1", ok=ok, **up.stats())
    if args.get("outage_records"):
        # The test takes the link down now. Records are made once the uplink has noticed.
        ok = await until(lambda: not up.connected, 20000)
        seqs = []
        for _ in range(args["outage_records"]):
            seqs.append(maker.make())
        emit("OUTAGE", ok=ok, seqs=seqs, **up.stats())
        ok = await until(delivered, 20000)
        emit("PHASE2", ok=ok, **up.stats())


async def outage_reboot(args):
    # One boot of a terminal through a broker outage and a power dip: make
    # records first_seq..last_seq every interval_ms. With pause_after_seq, wait after that record until the
    # broker acknowledged it, print ACKED and wait for resume_file, which the
    # test creates once it has stopped the broker. With hold, wait to be
    # SIGKILLed after the last record; otherwise print DONE once every stored
    # record is delivered.
    store, up, maker = start_uplink(args)
    lag = LagMeter()
    asyncio.create_task(lag.run())
    asyncio.create_task(up.run())
    asyncio.create_task(report_stats(up))

    t_start = time.ticks_ms()
    interval_ms = args["interval_ms"]
    due = t_start
    for _ in range(args["first_seq"], args["last_seq"] + 1):
        wait_ms = time.ticks_diff(due, time.ticks_ms())
        if wait_ms > 0:
            await asyncio.sleep_ms(wait_ms)
        due = time.ticks_add(due, interval_ms)
        seq = maker.make()
        emit("MADE", seq=seq, at_ms=time.ticks_diff(time.ticks_ms(), t_start), depth=store.depth(),
             connected=up.connected, lag_ms=lag.max_ms)
        if seq == args.get("pause_after_seq"):
            ok = await until(lambda: store.depth() == 0, 10000)
            emit("ACKED", seq=seq, ok=ok, sent=up.sent)
            ok = await wait_for_file(args["resume_file"], 10000)
            emit("RESUMED", ok=ok, at_ms=time.ticks_diff(time.ticks_ms(), t_start))
            due = time.ticks_add(time.ticks_ms(), interval_ms)

    if args.get("hold"):
        await asyncio.sleep(60)
        return
    ok = await until(lambda: store.depth() == 0 and up.connected, args.get("deliver_limit_ms", 20000))
    emit("DONE", ok=ok, lag_ms=lag.max_ms, ticks=lag.ticks, **up.stats())


# ---- steady records through a broker outage, firmware defaults -------------


class LagHistogram:
    """A 10 ms ticker that counts its ticks by lateness in whole milliseconds.

    counts[i] is the number of ticks that woke i ms late. The last entry also
    counts every tick later than that, and max_ms is the exact largest lateness.
    """

    def __init__(self, top_ms=200):
        self.counts = [0] * (top_ms + 1)
        self.max_ms = 0
        # When the latest tick of max_ms woke, in ms after the ticker started.
        self.max_at_ms = 0
        self.running = True

    async def run(self):
        top = len(self.counts) - 1
        start = time.ticks_ms()
        while self.running:
            t0 = time.ticks_ms()
            await asyncio.sleep_ms(10)
            late = max(0, time.ticks_diff(time.ticks_ms(), t0) - 10)
            if late >= self.max_ms:
                self.max_ms = late
                self.max_at_ms = time.ticks_diff(time.ticks_ms(), start)
            self.counts[min(late, top)] += 1


def start_default_uplink(args):
    """Build the store, record maker and uplink on the firmware's default settings.

    Only the broker port and the spool folder differ from defaults.DEFAULTS, so the
    flush batching, the publish window, the timeouts and the reconnect backoff are the defaults.
    """
    from firmware.store import Store
    from firmware.uplink import Uplink

    cfg = config.merge(defaults.DEFAULTS, {"mqtt": {"port": args["port"]}, "spool": {"dir": args["spool_dir"]}})
    errors = config.validate(cfg)
    if errors:
        raise ValueError("invalid probe configuration: %r" % (errors,))
    store = Store(cfg)
    maker = RecordMaker(store, args["boot_id"], 1)
    up = Uplink(cfg, DEVICE_ID, store, boot_id=args["boot_id"], fw="test-fw")
    asyncio.create_task(store.run())
    return store, up, maker


async def outage_delivery(args):
    # Make args["records"] telemetry records, one every args["interval_ms"],
    # while the test stops the broker for a few seconds and starts it again.
    # Prints STARTED once the uplink is connected and records begin, MADE per
    # record, and DONE with the loop lag histogram once every record is
    # acknowledged or args["deliver_limit_ms"] has passed after the last one.
    store, up, maker = start_default_uplink(args)
    asyncio.create_task(up.run())
    ok = await until(lambda: up.connected, args.get("connect_limit_ms", 10000))

    lag = LagHistogram()
    asyncio.create_task(lag.run())
    t_start = time.ticks_ms()
    emit("STARTED", ok=ok)

    # Each record is due at a fixed time after the start, so a late one does not delay the rest.
    interval_ms = args["interval_ms"]
    for i in range(args["records"]):
        wait_ms = time.ticks_diff(time.ticks_add(t_start, i * interval_ms), time.ticks_ms())
        if wait_ms > 0:
            await asyncio.sleep_ms(wait_ms)
        seq = maker.make()
        emit("MADE", seq=seq, at_ms=time.ticks_diff(time.ticks_ms(), t_start), depth=store.depth(),
             connected=up.connected)

    ok = await until(lambda: store.depth() == 0 and up.connected, args.get("deliver_limit_ms", 20000))
    lag.running = False
    counts = lag.counts
    while counts and not counts[-1]:
        counts.pop()
    emit("DONE", ok=ok, made=maker.packer.seq, lag_max_ms=lag.max_ms, lag_max_at_ms=lag.max_at_ms, lag_counts=counts,
         elapsed_ms=time.ticks_diff(time.ticks_ms(), t_start), **up.stats())


SCENARIOS = {
    "pubsub": pubsub,
    "connect": connect_once,
    "window": window,
    "window_held": window_held,
    "uplink": uplink,
    "outage_reboot": outage_reboot,
    "outage_delivery": outage_delivery,
}

if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        params = json.load(f)
    asyncio.run(SCENARIOS[sys.argv[1]](params))
