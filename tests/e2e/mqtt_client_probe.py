# MicroPython side of the MQTT end-to-end tests: runs one scenario and prints tagged JSON lines
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Run from the repository root by tests/e2e/test_mqtt_client.py:
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

from firmware import config
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
            await client.publish(args["publish"], args.get("payload", "hello"), qos=1)
            emit("PUBLISHED", topic=args["publish"])
        if args.get("idle_s"):
            # Stay idle so that only keepalive traffic flows.
            t1 = time.ticks_ms()
            while client.connected and time.ticks_diff(time.ticks_ms(), t1) < args["idle_s"] * 1000:
                await asyncio.sleep_ms(50)
            emit("IDLE", connected=client.connected, elapsed_ms=time.ticks_diff(time.ticks_ms(), t1),
                 error=describe(client.error) if client.error else None)
        await client.disconnect()
    except OSError as e:
        info = describe(e)
        info["is_mqtt_error"] = isinstance(e, MQTTError)
        info["elapsed_ms"] = time.ticks_diff(time.ticks_ms(), t0)
        emit("ERROR", **info)
    tick_task.cancel()
    emit("LAG", max_ms=lag[0], ticks=lag[1])


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


async def uplink(args):
    # Queue records while the broker is down, then report progress until the
    # test has restarted the broker and every record has gone out.
    from firmware.uplink import Uplink

    cfg = config.merge(
        config.DEFAULTS,
        {
            "queue_len": args["queue_len"],
            "mqtt": {
                "host": args.get("host", "127.0.0.1"),
                "port": args["port"],
                "keepalive_s": 5,
                "timeout_s": 2,
                "backoff_max_s": 1,
                "topic_prefix": "fleet",
            },
        },
    )
    assert not config.validate(cfg), config.validate(cfg)
    gate = FileGate(args["gate"]) if args.get("gate") else None
    up = Uplink(cfg, "TRK-0042", link=gate, boot_id=args.get("boot_id", 5), fw="test-fw")

    seq = 1
    for _ in range(args["records"]):
        up.put("telemetry", '{"seq":%d}' % seq)
        seq += 1
    emit("QUEUED", **up.stats())

    task = asyncio.create_task(up.run())
    last = None

    async def report_until(done, limit_ms):
        nonlocal last
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < limit_ms:
            s = up.stats()
            if s != last:
                emit("STATS", **s)
                last = s
            if done():
                return True
            await asyncio.sleep_ms(20)
        return False

    if args.get("stay_online"):
        # Last-will scenario: report ONLINE and wait to be killed.
        await report_until(lambda: up.connected, 10000)
        emit("ONLINE", **up.stats())
        await asyncio.sleep(60)
        return

    ok = await report_until(lambda: up.queued == 0 and up.connected, 20000)
    emit("PHASE1", ok=ok, **up.stats())
    if args.get("outage_records"):
        # The test stops the broker now; queue more records once the loss is seen.
        ok = await report_until(lambda: not up.connected, 20000)
        for _ in range(args["outage_records"]):
            up.put("telemetry", '{"seq":%d}' % seq)
            seq += 1
        emit("OUTAGE", ok=ok, **up.stats())
        ok = await report_until(lambda: up.queued == 0 and up.connected, 20000)
        emit("PHASE2", ok=ok, **up.stats())
    task.cancel()
    await asyncio.sleep_ms(0)


SCENARIOS = {"pubsub": pubsub, "connect": connect_once, "uplink": uplink}

if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        params = json.load(f)
    asyncio.run(SCENARIOS[sys.argv[1]](params))
