# Signed remote messages: HMAC-SHA256 with a per-device key and a counter that must increase
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# A signed message is the JSON text that is signed, a newline, and the
# HMAC-SHA256 of exactly those bytes as 64 lowercase hex digits:
#
#   {"ctr":42,"set":{"alarm":{"delay_s":120}}}\n<64 hex digits>
#
# The MAC covers the bytes as received, so the sender and the terminal never
# have to serialise JSON the same way. "ctr" is an integer that must be higher
# than that of every message accepted before (a counter or a Unix time), so a
# recorded message cannot be replayed. The highest accepted counter is kept on
# flash and survives reboots.
#
# Usage:
#   verifier = Verifier(bytes.fromhex(key_hex), "/auth_counter")
#   message = verifier.verify(payload)    # the decoded JSON object, or SigningError
#
# firmware/remote.py uses it for the config/set and cmd topics (docs/remote.md).

import hashlib
import json
import os

from micropython import const

from firmware import log

_log = log.get("signing")

_BLOCK_BYTES = const(64)  # SHA-256 block size, for the HMAC key padding
_MAC_HEX_CHARS = const(64)
_MESSAGE_MAX_BYTES = const(4096)
# Room for a Unix time in milliseconds (1.8e12 in 2027). Larger than a small int
# on the ESP32, which only costs an allocation per message.
_COUNTER_MAX = 1 << 48


class SigningError(ValueError):
    """A message that failed authentication; the reason and the offending value are in the message."""


class ReplayError(SigningError):
    """A correctly signed message whose counter is not above the last accepted one."""

    def __init__(self, counter, last_counter):
        super().__init__("ctr %d is not above the last accepted %d: a replayed or reordered message" % (
            counter, last_counter))
        self.counter = counter
        self.last_counter = last_counter


def hmac_sha256(key, message):
    """Return the HMAC-SHA256 (RFC 2104) of message under key, as 32 bytes."""
    if len(key) > _BLOCK_BYTES:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK_BYTES - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(message)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def _same(a, b):
    # Compares every byte whatever the first difference, so the time taken does
    # not tell a sender how much of a forged MAC was right.
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def split(payload):
    """Return (signed part as a memoryview of payload, MAC bytes) of a signed message, or raise SigningError."""
    if len(payload) > _MESSAGE_MAX_BYTES:
        raise SigningError("message of %d bytes is longer than the maximum of %d" % (len(payload), _MESSAGE_MAX_BYTES))
    # No copy of the signed part: a block of its size is often not free.
    mv = memoryview(payload)
    cut = len(mv) - 1
    while cut >= 0 and mv[cut] != 0x0A:  # the last newline
        cut -= 1
    if cut < 0:
        raise SigningError("message is not signed: no newline before a MAC")
    mac_hex = bytes(mv[cut + 1 :]).strip()
    if len(mac_hex) != _MAC_HEX_CHARS:
        raise SigningError("MAC must be %d hex digits, got %d characters" % (_MAC_HEX_CHARS, len(mac_hex)))
    try:
        mac = bytes.fromhex(mac_hex.decode())
    except (ValueError, UnicodeError):
        raise SigningError("MAC %r is not hex" % (mac_hex[:16],))
    return mv[:cut], mac


class Verifier:
    """MAC and counter check of the signed messages for one device key."""

    def __init__(self, key, counter_path):
        if len(key) < 16:
            raise SigningError("device key of %d bytes is too short; use at least 16 (32 recommended)" % len(key))
        self._key = key
        self._path = counter_path
        self.last_counter = self._load()

    def _load(self):
        try:
            with open(self._path) as f:
                return int(f.read().strip() or 0)
        except OSError:
            return 0
        except ValueError:
            # Refusing every message would lock the device out, so the file counts
            # as lost. Older signed messages can then be replayed until a new one
            # is accepted, which is why this is logged as an error.
            _log.error("%s is unreadable; accepting any counter above 0", self._path)
            return 0

    def _save(self, counter):
        temp = self._path + ".tmp"
        with open(temp, "w") as f:
            f.write("%d\n" % counter)
        os.rename(temp, self._path)

    def verify(self, payload, again=False):
        """Return the decoded JSON object of a correctly signed, new message; raise SigningError otherwise.

        The counter is stored before the message is returned, so a message is
        accepted once even when the power goes while it is applied. With again,
        the last counter is accepted once more. The terminal passes it only for
        a message it kept after running out of memory, never for one from the network.
        """
        signed, mac = split(payload)
        if not _same(hmac_sha256(self._key, signed), mac):
            raise SigningError("MAC does not match the device key")
        try:
            message = json.loads(signed)
        except ValueError:
            raise SigningError("signed part is not valid JSON")
        if not isinstance(message, dict):
            raise SigningError("signed part must be a JSON object, got %s" % type(message).__name__)
        counter = message.get("ctr")
        if not isinstance(counter, int) or isinstance(counter, bool) or not 0 < counter <= _COUNTER_MAX:
            raise SigningError("ctr must be an integer 1..%d, got %r" % (_COUNTER_MAX, counter))
        if again and counter == self.last_counter:
            return message
        if counter <= self.last_counter:
            raise ReplayError(counter, self.last_counter)
        try:
            self._save(counter)
        except OSError as e:
            # Without the stored counter a reboot would accept a replay of this message.
            raise SigningError("cannot store counter %d in %s: %s" % (counter, self._path, e))
        self.last_counter = counter
        return message
