# Tests of firmware.mqtt packet encoding: exact bytes of CONNECT, PUBLISH, SUBSCRIBE, PINGREQ
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

from firmware import mqtt

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
    return mqtt.connect_packet(
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
    pkt = mqtt.connect_packet("c1", 60, True, "u", "pw", ("w/s", b"off", 1, True))
    assert bytes(pkt) == expected


def test_connect_minimal_bytes():
    # 10 18 (remaining 10 + 2 + 12 = 24), "MQTT" level 4, flags 02 (clean only),
    # keepalive 00 1e (30 s), client id 00 0c "veh-0001-abc"
    expected = b"\x10\x18\x00\x04MQTT\x04\x02\x00\x1e\x00\x0cveh-0001-abc"
    assert bytes(mqtt.connect_packet(b"veh-0001-abc", 30)) == expected


def test_connect_keeps_session_flag():
    pkt = mqtt.connect_packet("c", 30, clean=False)
    assert pkt[9] == 0x00


def test_connect_password_without_user_rejected():
    try:
        mqtt.connect_packet("c", 30, password="pw")
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
    assert mqtt._is_ip_literal("127.0.0.1")
    assert mqtt._is_ip_literal("::1")
    assert not mqtt._is_ip_literal("localhost")
    assert not mqtt._is_ip_literal("broker.example")
    assert not mqtt._is_ip_literal("1.2.3")
