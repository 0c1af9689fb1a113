# QoS 1 publish rate of firmware.mqtt against a broker, with a window of publishes in flight
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Run from the repository root under the unix port, against a broker you started:
#   micropython tools/bench/mqtt_rate_mp.py HOST PORT COUNT WINDOW [PAYLOAD_BYTES]
# WINDOW 1 uses publish(wait=True), one message in flight at a time; a larger
# WINDOW keeps that many publish(wait=False) in flight and waits for the
# PUBACKs in send order. Prints one line:
#   qos1_rate window=W count=N seconds=S rate=R
# where R is messages per second, from the first publish to the last PUBACK.

import asyncio
import sys
import time

_TOPIC = b"bench/qos1_rate"
_PAYLOAD_BYTES = 200


async def measure(host, port, count, window, payload_bytes=_PAYLOAD_BYTES):
    """Publish count QoS 1 messages with up to window in flight; return the seconds taken."""
    from firmware.mqtt import MQTTClient

    if count < 1 or window < 1:
        raise ValueError("count and window must be at least 1, got %d and %d" % (count, window))
    payload = bytes(i & 0xFF for i in range(payload_bytes))
    client = MQTTClient("bench-qos1-rate", host, port)
    await client.connect()
    try:
        t0 = time.ticks_us()
        if window == 1:
            for _ in range(count):
                await client.publish(_TOPIC, payload, qos=1)
        else:
            in_flight = []  # packet ids in send order
            for _ in range(count):
                if len(in_flight) == window:
                    await client.wait_puback(in_flight.pop(0))
                in_flight.append(await client.publish(_TOPIC, payload, qos=1, wait=False))
            while in_flight:
                await client.wait_puback(in_flight.pop(0))
        seconds = time.ticks_diff(time.ticks_us(), t0) / 1_000_000
    finally:
        await client.disconnect()
    return seconds


def main(argv):
    if len(argv) not in (5, 6):
        print("usage: micropython tools/bench/mqtt_rate_mp.py HOST PORT COUNT WINDOW [PAYLOAD_BYTES]")
        return 2
    host = argv[1]
    port, count, window = int(argv[2]), int(argv[3]), int(argv[4])
    payload_bytes = int(argv[5]) if len(argv) == 6 else _PAYLOAD_BYTES
    seconds = asyncio.run(measure(host, port, count, window, payload_bytes))
    print("qos1_rate window=%d count=%d seconds=%.3f rate=%.0f" % (window, count, seconds, count / seconds))
    return 0


if __name__ == "__main__":
    # Run as a script, the firmware package is two folders above this file. An
    # importer such as a bench runner sets sys.path itself.
    sys.path[:0] = [sys.argv[0].rpartition("tools/bench")[0] or "."]
    sys.exit(main(sys.argv))
