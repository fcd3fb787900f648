"""The MQTT codec against bytes assembled by hand from the MQTT 3.1.1 and 5.0 specifications, and
properties: what is encoded decodes to the same packet, any chunking of a stream gives the same
packets, and no input raises anything but `MqttProtocolError`."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqtt.codec import (
    PINGREQ_PACKET,
    PINGRESP_PACKET,
    V5,
    V311,
    Connack,
    Disconnect,
    MqttProtocolError,
    Packet,
    Pingresp,
    Puback,
    Publish,
    Pubrel,
    StreamDecoder,
    Suback,
    encode_connack,
    encode_connect,
    encode_disconnect,
    encode_puback,
    encode_publish,
    encode_server_disconnect,
    encode_suback,
    encode_subscribe,
    encode_varint,
)

MQTT = "00 04 4d 51 54 54"  # the protocol name, a length-prefixed "MQTT"


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [  # MQTT 5 table 1-1 (3.1.1 table 2.4): the boundaries of one to four bytes
        (0, "00"),
        (127, "7f"),
        (128, "80 01"),
        (321, "c1 02"),
        (16383, "ff 7f"),
        (16384, "80 80 01"),
        (2097151, "ff ff 7f"),
        (2097152, "80 80 80 01"),
        (268435455, "ff ff ff 7f"),
    ],
)
def test_variable_byte_integers(value: int, encoded: str) -> None:
    assert encode_varint(value) == hx(encoded)


def test_a_variable_byte_integer_past_four_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_varint(268435456)


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (
            encode_connect("abc", version=V311, keepalive_s=60),
            f"10 0f {MQTT} 04 00 00 3c 00 03 61 62 63",
        ),
        (
            encode_connect("abc", version=V311, keepalive_s=60, username="u", password="p"),
            f"10 15 {MQTT} 04 c0 00 3c 00 03 61 62 63 00 01 75 00 01 70",
        ),
        (
            encode_connect("abc", version=V311, keepalive_s=60, clean_start=True),
            f"10 0f {MQTT} 04 02 00 3c 00 03 61 62 63",
        ),
        (  # session expiry 7 days, receive maximum 65535, maximum packet size 16 MiB
            encode_connect(
                "lux",
                keepalive_s=30,
                session_expiry_s=604800,
                maximum_packet_size=16 * 1024 * 1024,
            ),
            f"10 1d {MQTT} 05 00 00 1e 0d 11 00 09 3a 80 21 ff ff 27 01 00 00 00 00 03 6c 75 78",
        ),
        (
            encode_subscribe(1, "a/#", 1, version=V5, retain_handling=1),
            "82 09 00 01 00 00 03 61 2f 23 11",
        ),
        (encode_subscribe(1, "a/#", 1, version=V311), "82 08 00 01 00 03 61 2f 23 01"),
        (encode_publish(Publish(b"a/b", b"hi"), version=V311), "30 07 00 03 61 2f 62 68 69"),
        (
            encode_publish(Publish(b"a/b", b"hi", 1, 10, retain=True, dup=True)),
            "3b 0a 00 03 61 2f 62 00 0a 00 68 69",
        ),
        (encode_puback(10), "40 02 00 0a"),
        (encode_puback(10, 0x87, version=V311), "40 02 00 0a"),
        (encode_puback(10, 0x87), "40 03 00 0a 87"),
        (PINGREQ_PACKET, "c0 00"),
        (encode_disconnect(), "e0 00"),
        (encode_disconnect(0x81, version=V311), "e0 00"),
        (encode_disconnect(0x81), "e0 01 81"),
    ],
)
def test_what_the_client_sends(packet: bytes, expected: str) -> None:
    assert packet == hx(expected)


@pytest.mark.parametrize(
    ("version", "data", "expected"),
    [
        (V311, "20 02 00 00", Connack(False, 0)),
        (V311, "20 02 01 00", Connack(True, 0)),
        (V311, "20 02 00 02", Connack(False, 133)),
        (V311, "20 02 00 04", Connack(False, 134)),
        (V311, "20 02 00 05", Connack(False, 135)),
        (V5, "20 03 00 86 00", Connack(False, 134)),
        (V5, "20 09 01 00 06 21 00 14 13 00 3c", Connack(True, 0, {0x21: 20, 0x13: 60})),
        (V311, "90 03 00 01 01", Suback(1, (1,))),
        (V5, "90 04 00 01 00 87", Suback(1, (0x87,))),
        (V311, "30 07 00 03 61 2f 62 68 69", Publish(b"a/b", b"hi")),
        (V311, "33 09 00 03 61 2f 62 ff fe 68 69", Publish(b"a/b", b"hi", 1, 0xFFFE, True)),
        (V5, "3b 0a 00 03 61 2f 62 00 0a 00 68 69", Publish(b"a/b", b"hi", 1, 10, True, True)),
        (  # payload format indicator and a user property are skipped
            V5,
            "32 10 00 01 74 00 05 09 01 01 26 00 01 6b 00 01 76 78",
            Publish(b"t", b"x", 1, 5),
        ),
        (V311, "30 05 00 03 61 ff 62", Publish(b"a\xffb", b"")),
        (V311, "40 02 00 0a", Puback(10)),
        (V5, "40 03 00 07 10", Puback(7, 0x10)),
        (V5, "40 04 00 07 87 00", Puback(7, 0x87)),
        (V311, "d0 00", Pingresp()),
        (V5, "e0 00", Disconnect()),
        (V5, "e0 01 8e", Disconnect(0x8E)),
        # QoS 2 (aedes forwards a QoS 2 publication at QoS 2 to a QoS 1 subscription)
        (V5, "34 07 00 01 74 00 01 00 78", Publish(b"t", b"x", 2, 1)),
        (V311, "3c 06 00 01 74 01 02 78", Publish(b"t", b"x", 2, 0x102, dup=True)),
        (V311, "62 02 00 07", Pubrel(7)),
        (V5, "62 03 00 07 92", Pubrel(7, 0x92)),
        (V5, "62 04 00 07 00 00", Pubrel(7)),
        # A 3.1.1 broker's CONNACK to an MQTT 5 CONNECT: unacceptable protocol version (aedes)
        (V5, "20 02 00 01", Connack(False, 0x84)),
        (V5, "e0 0a 98 08 1f 00 05 61 64 6d 69 6e", Disconnect(0x98, "admin")),
    ],
)
def test_what_the_broker_sends(version: int, data: str, expected: Packet) -> None:
    assert StreamDecoder(version).feed(hx(data)) == [expected]


def test_a_two_byte_remaining_length() -> None:
    packet = hx("30 cb 01 00 01 74") + bytes(200)
    assert StreamDecoder(V311).feed(packet) == [Publish(b"t", bytes(200))]


@pytest.mark.parametrize(
    ("version", "data", "reason"),
    [
        (V311, "30 ff ff ff ff 7f", 0x81),  # a remaining length of five bytes
        (V311, "36 06 00 01 74 00 01 78", 0x81),  # QoS 3
        (V5, "32 09 00 01 74 00 01 03 23 00 01", 0x94),  # a topic alias, none allowed
        (V5, "30 03 00 00 00", 0x94),  # an empty topic (only meaningful with an alias)
        (V311, "32 05 00 01 74 00 00", 0x81),  # packet id 0
        (V311, "30 03 00 05 74", 0x81),  # the topic runs past the packet
        (V311, "30 01 00", 0x81),  # too short for a topic length
        (V5, "30 03 00 01 74", 0x81),  # MQTT 5 without a property length
        (V5, "30 05 00 01 74 01 7f", 0x81),  # an unknown property
        (V311, "e0 00", 0x82),  # a broker does not DISCONNECT under 3.1.1
        (V5, "50 02 00 01", 0x82),  # PUBREC: luxtel never publishes at QoS 2
        (V5, "70 02 00 01", 0x82),  # PUBCOMP: the same
        (V311, "60 02 00 01", 0x81),  # PUBREL without its flags 0x2
        (V311, "62 03 00 01 00", 0x81),  # a 3.1.1 PUBREL is two bytes
        (V5, "f0 00", 0x82),  # AUTH: luxtel uses no authentication method
        (V5, "42 02 00 01", 0x81),  # PUBACK with flags
        (V311, "20 02 00 09", 0x81),  # no such 3.1.1 return code
        (V311, "d0 01 00", 0x81),  # PINGRESP with a body
    ],
)
def test_what_the_decoder_refuses(version: int, data: str, reason: int) -> None:
    with pytest.raises(MqttProtocolError) as refused:
        StreamDecoder(version).feed(hx(data))
    assert refused.value.reason == reason


def test_an_oversized_packet_is_refused_from_its_header_alone() -> None:
    decoder = StreamDecoder(V5, max_packet_size=100)
    with pytest.raises(MqttProtocolError, match="over the limit") as refused:
        decoder.feed(hx("30 e8 07"))  # 1000 bytes announced, none of them sent yet
    assert refused.value.reason == 0x95


def test_a_packet_split_inside_its_length_bytes_waits_for_the_rest() -> None:
    decoder = StreamDecoder(V311)
    packet = hx("30 cb 01 00 01 74") + bytes(200)
    assert decoder.feed(packet[:2]) == []
    assert decoder.feed(packet[2:3]) == []
    assert decoder.feed(packet[3:100]) == []
    assert decoder.feed(packet[100:] + PINGRESP_PACKET) == [
        Publish(b"t", bytes(200)),
        Pingresp(),
    ]


# ---- properties --------------------------------------------------------------------------

versions = st.sampled_from([V311, V5])
topics = st.binary(min_size=1, max_size=40)
payloads = st.binary(max_size=300)


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    qos = draw(st.integers(0, 1))
    packet_id = draw(st.integers(1, 0xFFFF)) if qos else 0
    return Publish(
        draw(topics), draw(payloads), qos, packet_id, draw(st.booleans()), draw(st.booleans())
    )


@st.composite
def server_packets(draw: st.DrawFn, version: int) -> tuple[bytes, Packet]:
    """A packet a broker may send a client, encoded, and what it must decode to."""
    kind = draw(st.sampled_from(["publish", "puback", "connack", "suback", "ping", "disconnect"]))
    if kind == "publish":
        packet = draw(publishes())
        return encode_publish(packet, version=version), packet
    if kind == "puback":
        packet_id = draw(st.integers(0, 0xFFFF))
        reason = draw(st.sampled_from([0, 0x10, 0x80, 0x87])) if version == V5 else 0
        return encode_puback(packet_id, reason, version=version), Puback(packet_id, reason)
    if kind == "connack":
        present = draw(st.booleans())
        code = draw(
            st.sampled_from([0, 133, 134, 135] + ([136, 138, 140] if version == V5 else []))
        )
        properties = draw(st.dictionaries(st.sampled_from([0x21, 0x13, 0x27]), st.integers(1, 9)))
        if version != V5:
            properties = {}
        encoded = encode_connack(present, code, version=version, properties=properties)
        return encoded, Connack(present, code, dict(properties))
    if kind == "suback":
        packet_id = draw(st.integers(0, 0xFFFF))
        codes = tuple(draw(st.lists(st.sampled_from([0, 1, 0x80]), min_size=1, max_size=4)))
        return encode_suback(packet_id, codes, version=version), Suback(packet_id, codes)
    if kind == "disconnect" and version == V5:
        code = draw(st.sampled_from([0, 0x8B, 0x8E, 0x98]))
        text = draw(st.none() | st.text(max_size=20))
        return encode_server_disconnect(code, text), Disconnect(code, text)
    return PINGRESP_PACKET, Pingresp()


@given(versions, st.data())
def test_every_packet_decodes_to_what_was_encoded(version: int, data: st.DataObject) -> None:
    encoded, packet = data.draw(server_packets(version))
    assert StreamDecoder(version).feed(encoded) == [packet]


@given(versions, st.data(), st.lists(st.integers(0, 10_000), max_size=30))
def test_any_chunking_of_a_stream_gives_the_same_packets(
    version: int, data: st.DataObject, cuts: list[int]
) -> None:
    pairs = data.draw(st.lists(server_packets(version), max_size=20))
    stream = b"".join(encoded for encoded, _ in pairs)
    bounds = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    decoder = StreamDecoder(version)
    decoded: list[Packet] = []
    for start, stop in itertools.pairwise(bounds):
        decoded += decoder.feed(stream[start:stop])
    assert decoded == [packet for _, packet in pairs]


@given(versions, st.integers(2, 400), st.lists(st.binary(max_size=64), max_size=12))
def test_arbitrary_bytes_raise_only_the_protocol_error(
    version: int, limit: int, chunks: list[bytes]
) -> None:
    decoder = StreamDecoder(version, max_packet_size=limit)
    with contextlib.suppress(MqttProtocolError):
        for chunk in chunks:
            decoder.feed(chunk)


@given(versions, st.data(), st.lists(st.tuples(st.integers(0), st.integers(0, 255)), max_size=6))
def test_corrupted_streams_raise_only_the_protocol_error(
    version: int, data: st.DataObject, flips: list[tuple[int, int]]
) -> None:
    """Valid packets with a few bytes changed: the inputs a byte of random noise rarely reaches."""
    pairs = data.draw(st.lists(server_packets(version), min_size=1, max_size=8))
    stream = bytearray(b"".join(encoded for encoded, _ in pairs))
    for position, value in flips:
        stream[position % len(stream)] = value
    with contextlib.suppress(MqttProtocolError):
        StreamDecoder(version, max_packet_size=1000).feed(bytes(stream))
