# Remote configuration and commands for a terminal over MQTT, from a PC (docs/remote.md)
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
"""Send a config/set, config/get or cmd message to one terminal and print its reply.

    python tools/remote.py [--broker HOST:PORT] [--prefix fleet] --device ID
                           [--key HEX | --key-file F] [--ctr N] [--retain] [--timeout S]
                           set JSON_OR_@FILE | get | cmd NAME [key=value | key:=JSON ...]

The message gets a random id, is signed with HMAC-SHA256 when a key is given
(config/get is never signed, because the terminal replies to it without one), is
published with QoS 1, and the reply with the same id on <prefix>/<device>/reply
is printed as JSON on stdout. Exit status 0 when the reply has "ok": true, 1 on
ok:false, on a timeout or on any other error, with "remote: message" on stderr.
"""

import argparse
import hashlib
import hmac
import json
import math
import secrets
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

_PROG = "remote"
_CONNECT_TIMEOUT_S = 10.0


# One broker-address syntax and one error type for the host tools.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from vterm import CommandError, parse_broker  # noqa: E402


def read_key(args):
    """Return the device key as bytes from --key or --key-file, or None when neither is given."""
    if args.key_file:
        try:
            text = Path(args.key_file).read_text().strip()
        except OSError as e:
            raise CommandError("--key-file: cannot read %s: %s" % (args.key_file, e.strerror))
    elif args.key:
        text = args.key.strip()
    else:
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise CommandError("the key must be hex digits (as in the terminal's remote.key)")
    if len(key) < 16:
        raise CommandError("the key has %d bytes; the terminal needs 16..64 (32..128 hex digits)" % len(key))
    return key


def sign(text, key):
    """Return the signed payload: the JSON text, a newline and its HMAC-SHA256 in hex."""
    data = text.encode()
    return data + b"\n" + hmac.new(key, data, hashlib.sha256).hexdigest().encode()


def _finite(text):
    value = float(text)
    if math.isinf(value):
        raise ValueError("number %s is too large for a double" % text)
    return value


def _no_constant(name):
    raise ValueError("%s is not a JSON number" % name)


def loads(text):
    """Return json.loads(text), with an error for numbers that JSON cannot carry (1e400, NaN, Infinity)."""
    # CPython would read them as inf or nan and write them back as Infinity or NaN,
    # which are not JSON, so the terminal would reply "invalid JSON".
    return json.loads(text, parse_float=_finite, parse_constant=_no_constant)


def parse_change(text):
    """Return the object of `set`: JSON text, or @FILE for a file that contains it."""
    source = "the change"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text()
        except OSError as e:
            raise CommandError("set: cannot read %s: %s" % (source, e.strerror))
    try:
        change = loads(text)
    except ValueError as e:
        raise CommandError("set: %s is not valid JSON: %s" % (source, e))
    if not isinstance(change, dict):
        raise CommandError("set: %s must be a JSON object such as {\"interval_s\": 30}" % source)
    return change


def parse_args_list(items):
    """Return the args object of `cmd` from key=value (a string) and key:=JSON items."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or key == ":":
            raise CommandError("cmd: argument %r must be key=value or key:=JSON" % item)
        if key.endswith(":"):
            key = key[:-1]
            try:
                out[key] = loads(value)
            except ValueError as e:
                raise CommandError("cmd: value of %s is not valid JSON: %s" % (key, e))
        else:
            out[key] = value
    return out


class Exchange:
    """One MQTT connection that publishes a message and waits for the reply with its id."""

    def __init__(self, host, port, reply_topic):
        self.host = host
        self.port = port
        self.reply_topic = reply_topic
        self.kind = None
        self.expected_id = None
        self.reply = None
        self.reply_text = None
        self._subscribed = threading.Event()
        self._replied = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id="remote-cli-%s" % secrets.token_hex(4))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, rc, p: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.connect_error = str(reason_code)
            self._subscribed.set()
            return
        client.subscribe(self.reply_topic, qos=1)

    def _on_message(self, client, userdata, msg):
        try:
            reply = json.loads(msg.payload)
        except ValueError:
            return
        if self.expected_id is None or not isinstance(reply, dict):
            return
        # A message that failed authentication gets a reply with id null, because
        # the terminal does not trust its id: such a reply to the same topic counts.
        if reply.get("id") == self.expected_id or reply.get("id") is None and reply.get("topic") == self.kind:
            self.reply = reply
            self.reply_text = msg.payload.decode("utf-8", "replace")
            self._replied.set()

    def start(self):
        self.connect_error = None
        try:
            self.client.connect(self.host, self.port)
        except OSError as e:
            raise CommandError("cannot connect to the MQTT broker %s:%d: %s" % (self.host, self.port, e))
        self.client.loop_start()
        if not self._subscribed.wait(_CONNECT_TIMEOUT_S):
            raise CommandError("connection to the MQTT broker %s:%d timed out after %.0f s" % (
                self.host, self.port, _CONNECT_TIMEOUT_S))
        if self.connect_error:
            raise CommandError("the MQTT broker %s:%d refused the connection: %s" % (
                self.host, self.port, self.connect_error))

    def send(self, kind, topic, payload, ident, retain, timeout_s):
        """Publish payload with QoS 1 and return the reply with id ident, or None on timeout."""
        self.kind = kind
        self.expected_id = ident
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(_CONNECT_TIMEOUT_S)
        except (RuntimeError, ValueError) as e:
            raise CommandError("publish to %s failed: %s" % (topic, e))
        if not info.is_published():
            raise CommandError("the broker did not acknowledge the message on %s" % topic)
        if timeout_s and self._replied.wait(timeout_s):
            return self.reply
        return None

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def do_exchange(state, kind, body, sign_it=True):
    """Send one message of kind ("config/set", "config/get", "cmd") and print the reply."""
    args = state["args"]
    ident = "cli-" + secrets.token_hex(4)
    message = {"id": ident}
    key = state["key"]
    if key is not None and sign_it:
        message["ctr"] = args.ctr if args.ctr is not None else int(time.time() * 1000)
    message.update(body)
    text = json.dumps(message, separators=(",", ":"))
    payload = sign(text, key) if key is not None and sign_it else text.encode()

    base = "%s/%s/" % (args.prefix, args.device)
    exchange = Exchange(state["host"], state["port"], base + "reply")
    exchange.start()
    try:
        reply = exchange.send(kind, base + kind, payload, ident, args.retain, args.timeout)
    finally:
        exchange.stop()

    if not args.timeout:
        print("%s: published %d bytes with id %s to %s%s without waiting for a reply" % (
            _PROG, len(payload), ident, base + kind, " (retained)" if args.retain else ""), file=sys.stderr)
        return 0
    if reply is None:
        hint = "; the retained message stays at the broker" if args.retain else ""
        raise CommandError("%s: timed out after %g s waiting for the reply with id %s on %sreply"
                           " (is the terminal %s connected?)%s" % (kind, args.timeout, ident, base, args.device, hint))
    print(exchange.reply_text)
    sys.stdout.flush()
    if reply.get("ok") is not True:
        errors = reply.get("errors") or []
        summary = "; ".join("%s: %s" % (e.get("key"), e.get("reason")) for e in errors if isinstance(e, dict))
        raise CommandError("%s rejected: %s" % (kind, summary or "no reason given"))
    return 0


def do_set(state, args):
    return do_exchange(state, "config/set", {"set": parse_change(args.change)})


def do_get(state, args):
    return do_exchange(state, "config/get", {}, sign_it=False)


def do_cmd(state, args):
    return do_exchange(state, "cmd", {"cmd": args.name, "args": parse_args_list(args.args)})


def argparse_main():
    p = argparse.ArgumentParser(prog=_PROG, description="send remote configuration and commands to a terminal")
    p.add_argument("--broker", default="127.0.0.1:1883", help="MQTT broker HOST:PORT (default 127.0.0.1:1883)")
    p.add_argument("--prefix", default="fleet", help="topic prefix, the terminal's mqtt.topic_prefix (default fleet)")
    p.add_argument("--device", required=True, help="device id of the terminal")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--key", help="device key in hex (remote.key); signs config/set and cmd")
    key.add_argument("--key-file", help="file that contains the device key in hex")
    p.add_argument("--ctr", type=int, help="counter of a signed message (default: Unix time in milliseconds)")
    p.add_argument("--retain", action="store_true",
                   help="publish retained, so a terminal that is offline gets it when it connects")
    # The reply to a set that is applied through a restart comes about 15 s after the set.
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the reply (default 30; 0 publishes without waiting)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("set", help="change configuration keys")
    s.add_argument("change", help='JSON object of the keys to change, e.g. \'{"alarm":{"delay_s":120}}\', or @FILE')
    s.set_defaults(func=do_set)
    g = sub.add_parser("get", help="print the active configuration (secrets shown as ***)")
    g.set_defaults(func=do_get)
    c = sub.add_parser("cmd", help="run a command: trip_start, trip_end, ack, flush, reboot, selftest")
    c.add_argument("name", help="command name")
    c.add_argument("args", nargs="*", help="arguments as key=value (a string) or key:=JSON")
    c.set_defaults(func=do_cmd)
    return p


def main(argv=None):
    args = argparse_main().parse_args(argv)
    try:
        if args.ctr is not None and not 0 < args.ctr <= 1 << 48:
            raise CommandError("--ctr: must be 1..%d, got %d" % (1 << 48, args.ctr))
        if args.timeout < 0:
            raise CommandError("--timeout: must be 0 or more seconds, got %g" % args.timeout)
        host, port = parse_broker(args.broker)
        state = {"args": args, "host": host, "port": port, "key": read_key(args)}
        return args.func(state, args)
    except CommandError as e:
        sys.stdout.flush()
        print("%s: %s" % (_PROG, e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("%s: interrupted" % _PROG, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
