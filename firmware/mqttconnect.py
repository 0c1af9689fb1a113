# MQTT connect: DNS in a worker thread, non-blocking TCP connect, TLS, CONNECT and CONNACK
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# MQTTClient.connect() (firmware/mqtt.py) loads this module for each connection
# and drops it again, so the code is in the heap only while a connection opens.
# The functions work on the client's fields.

import asyncio
import errno
import select
import socket
from time import ticks_diff, ticks_ms

from micropython import const

from firmware import log
from firmware.mqtt import MQTTError, _check_string, _header, _put_string, _to_bytes

_log = log.get("mqtt")

_CONNECT_POLL_MS = const(5)
_DNS_POLL_MS = const(20)
# setsockopt values of Linux and lwIP; the unix port's socket module does not export them.
_IPPROTO_TCP = const(6)
_TCP_NODELAY = const(1)
_CONNECT = const(0x10)
_CONNACK = const(0x20)

# CONNACK return codes 1-5 (MQTT 3.1.1, section 3.2.2.3)
_CONNACK_MEANING = (
    "accepted",
    "unacceptable protocol version",
    "identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorised",
)


def connect_packet(client_id, keepalive_s, clean=True, user=b"", password=b"", will=None):
    """Build a CONNECT packet. The will is (topic, payload, qos, retain) or None."""
    client_id = _to_bytes(client_id)
    user = _to_bytes(user)
    password = _to_bytes(password)
    if password and not user:
        raise ValueError("MQTT 3.1.1 allows a password only together with a user name")
    if not 0 <= keepalive_s <= 65535:
        raise ValueError("keepalive must be 0..65535 s, got %d" % keepalive_s)
    flags = 0x02 if clean else 0
    remaining = 10 + 2 + len(client_id)
    _check_string("client id", client_id)
    if will:
        will_topic = _to_bytes(will[0])
        will_payload = _to_bytes(will[1])
        _check_string("will topic", will_topic)
        _check_string("will payload", will_payload)
        flags |= 0x04 | (will[2] & 3) << 3 | (0x20 if will[3] else 0)
        remaining += 4 + len(will_topic) + len(will_payload)
    if user:
        _check_string("user name", user)
        flags |= 0x80
        remaining += 2 + len(user)
    if password:
        _check_string("password", password)
        flags |= 0x40
        remaining += 2 + len(password)

    buf, pos = _header(_CONNECT, remaining)
    pos = _put_string(buf, pos, b"MQTT")
    buf[pos] = 4  # protocol level 4 = MQTT 3.1.1
    buf[pos + 1] = flags
    buf[pos + 2] = keepalive_s >> 8
    buf[pos + 3] = keepalive_s & 0xFF
    pos = _put_string(buf, pos + 4, client_id)
    if will:
        pos = _put_string(buf, pos, will_topic)
        pos = _put_string(buf, pos, will_payload)
    if user:
        pos = _put_string(buf, pos, user)
    if password:
        pos = _put_string(buf, pos, password)
    return buf


def _is_ip_literal(host):
    if ":" in host:
        return True  # IPv6
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not part or not part.isdigit():
            return False
    return True


async def connect(c, clean=True):
    """Open the connection and send CONNECT; return the CONNACK session-present flag."""
    c.close()
    c.error = None
    # Packet ids of the old connection can get no ack any more. Their waiters
    # were woken by close() and raise when they find their entry gone.
    c._pending.clear()
    c._inflight = 0
    addr_info = await _resolve(c)
    try:
        return await asyncio.wait_for_ms(_open(c, addr_info, clean), c._timeout_ms)
    except asyncio.TimeoutError:
        err = MQTTError(
            "timed out after %d s %s (%s:%d)" % (c.timeout_s, c._stage, c.host, c.port)
        )
    except ValueError as e:
        # mbedTLS reports certificate problems (bad CA, host name mismatch) as ValueError.
        reason = " ".join(str(e).split())  # mbedTLS wraps its text in newlines
        err = MQTTError("TLS handshake with %s:%d failed: %s" % (c.host, c.port, reason))
    except OSError as e:
        err = e
    c.close()
    c.error = err
    raise err

async def _open(c, addr_info, clean):
    c._stage = "waiting for the TCP connection"
    sock = socket.socket(addr_info[0], addr_info[1], addr_info[2])
    c._sock = sock
    sock.setblocking(False)
    # With Nagle's algorithm each PUBLISH of a window waits until the previous
    # segment is acknowledged. Through a 20 ms round-trip proxy on the unix port,
    # window 8 gave about 120 messages/s with Nagle and 250-300 without
    # (tests/e2e/test_mqtt_client.py, test_qos1_rate_window_vs_wait).
    try:
        sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
    except OSError as e:
        _log.debug("TCP_NODELAY not set: %s", e)
    try:
        sock.connect(addr_info[-1])
    except OSError as e:
        if e.errno != errno.EINPROGRESS:
            raise
    await _wait_writable(sock)

    if c.ssl:
        c._stage = "in the TLS handshake"
        sock = c.ssl.wrap_socket(
            sock, server_hostname=c.server_hostname, do_handshake_on_connect=False
        )
        c._sock = sock
        sock.setblocking(False)
    c._stream = asyncio.StreamReader(sock)

    # The TLS handshake runs inside this first write. A refused TCP
    # connection shows here too, as OSError ECONNREFUSED.
    await c._send(
        connect_packet(c.client_id, c.keepalive_s, clean, c.user, c.password, c.will)
    )

    c._stage = "waiting for CONNACK"
    buf = c._rxbuf
    await c._recv_into(buf, 4)
    if buf[0] != _CONNACK or buf[1] != 2:
        raise MQTTError("expected CONNACK, got packet 0x%02x 0x%02x" % (buf[0], buf[1]))
    rc = buf[3]
    if rc:
        meaning = _CONNACK_MEANING[rc] if rc < len(_CONNACK_MEANING) else "unknown reason"
        raise MQTTError("connection refused: %s (rc %d)" % (meaning, rc), rc)

    c.connected = True
    c._ping_sent_ms = None
    c._reader_task = asyncio.create_task(c._read_loop())
    if c.keepalive_s:
        c._ping_task = asyncio.create_task(c._keepalive_loop())
    return bool(buf[2] & 1)

async def _wait_writable(sock):
    # A non-blocking connect has finished when the socket polls writable. A refused
    # connect polls POLLERR/POLLHUP, and the first write then raises the real errno.
    # asyncio has no public "wait until writable", so this polls a private poller.
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    try:
        while not poller.poll(0):
            await asyncio.sleep_ms(_CONNECT_POLL_MS)
    finally:
        poller.unregister(sock)

async def _resolve(c):
    # Returns one getaddrinfo() entry: (family, type, proto, canonname, sockaddr).
    if _is_ip_literal(c.host):
        # getaddrinfo of an address literal needs no DNS query, so it returns at once.
        return socket.getaddrinfo(c.host, c.port, 0, socket.SOCK_STREAM)[0]
    try:
        import _thread
    except ImportError:
        # TODO this is blocking! A port without _thread resolves on the loop's thread.
        return socket.getaddrinfo(c.host, c.port, 0, socket.SOCK_STREAM)[0]

    # NOTE: the threaded DNS path runs on the unix port (tests use "localhost")
    # but is untested on the ESP32, including the worker's stack size.
    if c._dns_lock is None:
        c._dns_lock = _thread.allocate_lock()
    with c._dns_lock:
        start = not c._dns_busy
        if start:
            c._dns_busy = True
            c._dns_result = None
    if start:
        try:
            _thread.start_new_thread(_dns_worker, (c, c.host, c.port))
        except Exception:
            # No memory for the worker's stack: let the next attempt try again.
            with c._dns_lock:
                c._dns_busy = False
            raise

    # A worker left over from a timed-out lookup is waited for again, never doubled.
    started_ms = ticks_ms()
    while True:
        with c._dns_lock:
            result = c._dns_result
            if result is not None:
                c._dns_result = None
        if result is not None:
            break
        if ticks_diff(ticks_ms(), started_ms) >= c._timeout_ms:
            result = MQTTError("timed out after %d s resolving %s" % (c.timeout_s, c.host))
            break
        await asyncio.sleep_ms(_DNS_POLL_MS)

    if isinstance(result, tuple):
        c._dns_cache = result
        return result
    if c._dns_cache is not None:
        _log.warning("DNS lookup of %s failed (%s); using the last good address", c.host, result)
        return c._dns_cache
    if isinstance(result, OSError):
        raise result
    raise MQTTError("DNS lookup of %s failed: %r" % (c.host, result))

def _dns_worker(c, host, port):
    # Runs in a _thread worker, because getaddrinfo blocks until the DNS server replies.
    try:
        result = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    except Exception as e:
        result = e
    with c._dns_lock:
        c._dns_result = result
        c._dns_busy = False
