# Remote configuration and commands over MQTT: config/set, config/get and cmd messages and their replies
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage (docs/remote.md describes the topics and every field):
#   r = Remote(cfg, None, cfg["remote"]["key"], apply, commands)  # None: read config.json for a set
#   reply = r.handle("config/set", payload, retained, size)  # JSON for <prefix>/<device>/reply, or None
#   text = r.config_text()                                    # JSON for <prefix>/<device>/config (retained)
#
# With r.validate_later set, handle() returns a tuple instead of validating a
# set: (id, patch, new config, errors, quiet, size, changed keys). The caller
# then drops this module, appends config.validate(pending[2], pending[6]) to
# pending[3] and passes the tuple to finish_set() of a new Remote. This way
# firmware.remote and firmware.checks are never in the heap together.
#
# Both return the JSON text as a bytearray, allocated once at its final size.
# NOTE: the imported module takes about 8 KB of heap on the 64-bit unix port
# (measured from .mpy), so an app short of heap should drop it between messages.
#
# A change is validated as a whole and written to flash before it is put in
# force, so a rejected message or a failed write changes nothing. Commands are
# looked up in firmware.remotecmd.COMMANDS and the app's commands dict:
# nothing runs as code. The set and command code (firmware.remoteset,
# firmware.remotecmd) is loaded only for its kind of message.

import gc
import hashlib
import json
from array import array
from binascii import hexlify
from time import ticks_diff, ticks_ms

from micropython import const

from firmware import config, log
from firmware.transient import unload

_log = log.get("remote")

KINDS = ("config/set", "config/get", "cmd")
_MESSAGE_MAX_BYTES = const(4096)  # the MQTT client skips longer messages unread (firmware/mqtt.py)
_DEPTH_MAX = const(8)
_VALUES_MAX = const(600)
_ID_MAX_CHARS = const(32)
_PIECE_BYTES = const(128)  # replies are built in pieces of this size (why: _Writer)
_AUTH_LOG_MS = const(10000)  # at most one log line per 10 s for rejected signatures
_FIELDS = {"config/set": ("id", "ctr", "set"), "config/get": ("id", "ctr"), "cmd": ("id", "ctr", "cmd", "args")}

# Characters with a short JSON escape, and the letter after the backslash.
_ESCAPED = '\b\f\n\r\t"\\'
_ESCAPE_LETTERS = 'bfnrt"\\'


class RemoteError(Exception):
    """Failure of a remote command, with the reason that goes into the reply."""


def _quote(s, write):
    # A JSON string as CPython's json.dumps writes it (ensure_ascii), so that a
    # backend recomputes the same hash: non-ASCII characters become \uXXXX escapes.
    for c in s:
        if not " " <= c <= "~" or c == '"' or c == "\\":
            break
    else:
        write('"')
        write(s)
        write('"')
        return
    write('"')
    for c in s:
        n = ord(c)
        i = _ESCAPED.find(c)
        if i >= 0:
            write("\\" + _ESCAPE_LETTERS[i])
        elif 0x20 <= n < 0x7F:
            write(c)
        elif n > 0xFFFF:
            n -= 0x10000
            write("\\u%04x\\u%04x" % (0xD800 + (n >> 10), 0xDC00 + (n & 0x3FF)))
        else:
            write("\\u%04x" % n)
    write('"')


def _members(pairs, write):
    # A JSON object with the (key, value) pairs in the given order.
    write("{")
    for i, (k, v) in enumerate(pairs):
        if i:
            write(",")
        _quote(k, write)
        write(":")
        _dump(v, write)
    write("}")


def _dump(value, write):
    # Canonical JSON: object keys sorted, no spaces, numbers as the interpreter
    # prints them. MicroPython's json.dumps cannot sort keys, hence this serializer.
    # The text goes piece by piece to write(), so no list of pieces takes heap.
    if isinstance(value, dict):
        _members(((k, value[k]) for k in sorted(value)), write)
    elif isinstance(value, (list, tuple)):
        write("[")
        for i, v in enumerate(value):
            if i:
                write(",")
            _dump(v, write)
        write("]")
    elif isinstance(value, str):
        _quote(value, write)
    elif isinstance(value, array):
        # Zone or route points packed by config.compact_points: [lat, lon] pairs.
        write("[")
        for i in range(0, len(value), 2):
            write("," if i else "")
            write("[%s,%s]" % (json.dumps(value[i]), json.dumps(value[i + 1])))
        write("]")
    elif value is None or isinstance(value, (bool, int, float)):
        write(json.dumps(value))
    else:
        _quote(str(value), write)


class _Writer:
    # The first pass only counts (pieces None). The second fills bytearrays of
    # up to _PIECE_BYTES made for that count, so a reply never needs one large
    # free block, which the heap often lacks while a message is handled. With
    # zones and a route at the limits, gets ran out of memory in 2 of 3 runs
    # with pieces of 256 bytes: no free block of 272 bytes was left. The
    # MQTT client writes the pieces after the packet header. Every character is
    # ASCII, so characters and bytes count the same.
    n = 0
    pieces = None

    def write(self, s):
        if self.pieces is not None:
            data = s.encode()
            done = 0
            while done < len(data):
                i, at = divmod(self.n + done, _PIECE_BYTES)
                k = min(len(data) - done, _PIECE_BYTES - at)
                self.pieces[i][at : at + k] = data[done : done + k]
                done += k
        self.n += len(s)


def _text(emit, value):
    # The JSON text that emit writes for value, as a list of bytearrays.
    w = _Writer()
    emit(value, w.write)
    gc.collect()
    n = w.n
    # The list is made at its final length: growing it would need blocks of
    # up to twice its size on the way.
    pieces = [None] * ((n + _PIECE_BYTES - 1) // _PIECE_BYTES)
    for i in range(len(pieces)):
        pieces[i] = bytearray(min(_PIECE_BYTES, n - i * _PIECE_BYTES))
    w.pieces = pieces
    w.n = 0
    emit(value, w.write)
    return w.pieces


def canonical(value):
    """Return the canonical JSON text of value: json.dumps(value, sort_keys=True, separators=(",", ":")) in CPython."""
    return b"".join(_text(_dump, value)).decode()


def _object(pairs):
    return _text(_members, pairs)


def config_hash(cfg):
    """Return the first 16 hex digits of the SHA-256 of the canonical text of the redacted cfg."""
    h = hashlib.sha256()
    _dump(config.redacted(cfg), h.update)
    return hexlify(h.digest()[:8]).decode()


def scan(data):
    """Return why data is too deeply nested or has too many values for json.loads, or None."""
    # Counts outside strings only. Each comma, colon and opening bracket starts
    # at most one value, so their count bounds the number of values from above.
    depth = 0
    values = 1
    in_string = False
    escaped = False
    for b in data:
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:  # quote
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b == 0x7B or b == 0x5B:  # { [
            depth += 1
            values += 1
            if depth > _DEPTH_MAX:
                return "nested deeper than %d levels" % _DEPTH_MAX
        elif b == 0x7D or b == 0x5D:  # } ]
            depth -= 1
        elif b == 0x2C or b == 0x3A:  # , :
            values += 1
    if values > _VALUES_MAX:
        return "up to %d values (counted by commas, colons and brackets), more than the limit of %d" % (
            values, _VALUES_MAX)
    return None


class Remote:
    """The config/set, config/get and cmd handler of one terminal."""

    def __init__(self, cfg, patch, key_hex, apply, commands, config_path="/config.json",
                 counter_path="/auth_counter", cfg_hash=None):
        self.cfg = cfg
        self.patch = patch
        self._apply = apply
        self._commands = commands or {}
        self._config_path = config_path
        self._counter_path = counter_path
        self._use_key(key_hex)
        self.validate_later = False
        # True when cfg is the defaults merged with config.json as it is on
        # flash. Then a change is merged into cfg. Otherwise (the terminal runs
        # on a fallback configuration) it is merged into the file's content.
        self.cfg_from_file = False
        self.version = cfg.get("version", 0)
        # The caller may pass the hash it kept, which saves a pass over the configuration.
        self.hash = cfg_hash or config_hash(cfg)
        self.events = []
        self._ident = None
        self.out_of_memory = False
        self.auth_failures = 0
        self._auth_logged_ms = None

    def _use_key(self, key_hex):
        # firmware.signing is loaded when a signed message arrives, and only on
        # a terminal that has a key.
        self._verifier = None
        self._key_hex = key_hex

    def _load_verifier(self):
        from firmware.signing import Verifier

        self._verifier = Verifier(bytes.fromhex(self._key_hex), self._counter_path)

    def config_text(self):
        """Return the retained config document (JSON in a bytearray): version, hash and the redacted configuration."""
        return _object([("version", self.version), ("hash", self.hash), ("config", config.redacted(self.cfg))])

    def handle(self, kind, payload, retained=False, size=0, again=False):
        """Handle one message of a kind in KINDS; return the reply (JSON in a bytearray), or None when none is due.

        again is True when the terminal handles a message it kept after running
        out of memory. Its counter may then equal the last accepted one.
        """
        # payload None means the MQTT client skipped a message of size bytes as too long.
        if kind not in KINDS:
            raise RemoteError("unknown message kind %r" % (kind,))
        self.events = []
        self._ident = None  # the message's id once it is known, for an out-of-memory reply
        self.out_of_memory = False
        if payload is not None:
            size = len(payload)
        # Validation needs a few blocks of about 1 KB: free what the firmware left since the last collection.
        gc.collect()
        return self._guarded(kind, size, self._handle, (kind, payload, retained, size, again))

    def finish_set(self, pending):
        """Finish a config/set that handle() returned as a tuple, once pending[3] contains the validation errors too."""
        self._ident = pending[0]
        return self._guarded("config/set", pending[5], self._finish_set, pending)

    def _guarded(self, kind, size, step, args):
        try:
            return step(*args)
        except MemoryError:
            self.out_of_memory = True
            # Nothing is in force before the last step of a change, so the version
            # and hash in this reply tell the sender whether anything changed.
            # No traceback: formatting one needs the memory that just ran out.
            gc.collect()
            try:
                _log.error("out of memory handling a %d-byte %s message", size, kind)
                return self._error(kind, self._ident, [("message", "out of memory handling a %d-byte message" % size)])
            except MemoryError:
                return None

    def _handle(self, kind, payload, retained, size, again):
        if payload is None:
            if size <= _MESSAGE_MAX_BYTES:
                return self._error(kind, None, [("message", "no free memory to receive a %d-byte message;"
                                                 " it was skipped unread, send it again" % size)])
            return self._error(kind, None, [("message", "message of %d bytes is longer than the limit of %d"
                                             " and was skipped unread" % (size, _MESSAGE_MAX_BYTES))])
        if not payload:
            if kind != "config/get":
                return None  # an empty payload clears a retained message at the broker
            payload = b"{}"
        problem = scan(payload)
        if problem:
            return self._error(kind, None, [("message", problem)])

        signed = bool(self._key_hex) and kind != "config/get"
        if signed:
            if self._verifier is None:
                self._load_verifier()
            from firmware.signing import ReplayError, SigningError

            try:
                message = self._verifier.verify(payload, again)
            except ReplayError as e:
                if retained and e.counter == e.last_counter:
                    # The broker delivers a retained message again at every connect.
                    return None
                return self._reject(kind, str(e))
            except SigningError as e:
                return self._reject(kind, str(e))
            # The signature is checked: free the signing code before validation
            # needs the memory. A key change below loads it again.
            self._verifier = None
            e = ReplayError = SigningError = None
            unload("firmware.signing")
            gc.collect()
        else:
            try:
                message = json.loads(payload)
            except ValueError:
                return self._error(kind, None, [("message", "invalid JSON")])
            if not isinstance(message, dict):
                return self._error(kind, None, [("message", "must be a JSON object, got %s" % type(message).__name__)])

        ident = message.get("id")
        if ident is not None and not (isinstance(ident, int) and not isinstance(ident, bool) or
                                      isinstance(ident, str) and 1 <= len(ident) <= _ID_MAX_CHARS):
            return self._error(kind, None, [("id", "must be a string of 1..%d characters or an integer, got %r"
                                             % (_ID_MAX_CHARS, ident))])
        self._ident = ident
        errors = [(k, "unknown field") for k in message if k not in _FIELDS[kind]]
        if kind == "config/set":
            return self._set(message, ident, errors, retained and not signed, size)
        if kind == "cmd":
            return self._cmd(message, ident, errors)
        if errors:
            return self._error(kind, ident, errors)
        return _object([("id", ident), ("ok", True), ("topic", kind), ("version", self.version),
                        ("hash", self.hash), ("config", config.redacted(self.cfg))])

    def _set(self, message, ident, errors, quiet, size):
        # The set and command code is loaded only for its kind of message.
        from firmware import remoteset

        return remoteset.start(self, message, ident, errors, quiet, size)

    def _finish_set(self, *pending):
        from firmware import remoteset

        return remoteset.finish(self, *pending)

    def _cmd(self, message, ident, errors):
        from firmware import remotecmd

        return remotecmd.run(self, message, ident, errors)

    def _error(self, kind, ident, errors, name=None):
        pairs = [("id", ident), ("ok", False), ("topic", kind)]
        if kind == "cmd":
            pairs.append(("cmd", name))
        else:
            pairs.append(("version", self.version))
            pairs.append(("hash", self.hash))
        pairs.append(("errors", [{"key": k, "reason": r} for k, r in errors]))
        return _object(pairs)

    def _reject(self, kind, reason):
        # The id of a message that failed authentication is not trusted, so it is not echoed.
        self.auth_failures += 1
        now = ticks_ms()
        # One log line and one record per 10 s at most, so a flood of forged
        # messages cannot fill the log or wear the flash.
        if self._auth_logged_ms is None or ticks_diff(now, self._auth_logged_ms) >= _AUTH_LOG_MS:
            self._auth_logged_ms = now
            _log.warning("%s rejected: %s (%d rejected so far)", kind, reason, self.auth_failures)
            self.events.append(("auth_rejected", {"topic": kind, "reason": reason, "rejected": self.auth_failures}))
        return _object([("id", None), ("ok", False), ("topic", kind),
                        ("errors", [{"key": "auth", "reason": reason}])])
