"""The C splitter of plain PUBLISH packets (`mqtt/publish_frames.c`) against the Python
decoder it speeds up: any stream, valid or corrupted, chunked any way, must give the same
packets and the same protocol error at the same point."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from mqtt import publish_frames
from mqtt.codec import (
    PINGRESP_PACKET,
    V5,
    V311,
    MqttProtocolError,
    Packet,
    Publish,
    StreamDecoder,
    encode_publish,
)
from tests.test_mqtt_codec import server_packets, versions


def outcome(
    version: int, limit: int, chunks: list[bytes], *, in_c: bool
) -> tuple[list[Packet], tuple[str, int] | None]:
    """The packets decoded, and the protocol error that ended the stream (if one did)."""
    decoder = StreamDecoder(version, max_packet_size=limit, in_c=in_c)
    decoded: list[Packet] = []
    try:
        for chunk in chunks:
            decoded += decoder.feed(chunk)
    except MqttProtocolError as error:
        return decoded, (str(error), error.reason)
    return decoded, None


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    return [stream[start:stop] for start, stop in itertools.pairwise(bounds)]


@settings(max_examples=500)
@given(versions, st.data(), st.lists(st.integers(0, 10_000), max_size=30))
def test_a_valid_stream_splits_as_in_python(
    version: int, data: st.DataObject, cuts: list[int]
) -> None:
    pairs = data.draw(st.lists(server_packets(version), max_size=20))
    chunks = chunked(b"".join(encoded for encoded, _ in pairs), cuts)
    in_c = outcome(version, 1 << 20, chunks, in_c=True)
    assert in_c == outcome(version, 1 << 20, chunks, in_c=False)
    assert in_c == ([packet for _, packet in pairs], None)
    assert all(type(p) is Publish for p in in_c[0] if isinstance(p, tuple))


@settings(max_examples=1000)
@given(
    versions,
    st.data(),
    st.lists(st.tuples(st.integers(0), st.integers(0, 255)), max_size=6),
    st.lists(st.integers(0, 10_000), max_size=8),
    st.integers(2, 400),
)
def test_a_corrupted_stream_fails_as_in_python(
    version: int,
    data: st.DataObject,
    flips: list[tuple[int, int]],
    cuts: list[int],
    limit: int,
) -> None:
    """Valid packets with a few bytes changed (a QoS of 2, a packet id of 0, a length past the
    data or the limit, MQTT 5 properties, another packet type), under a random size limit."""
    pairs = data.draw(st.lists(server_packets(version), min_size=1, max_size=8))
    stream = bytearray(b"".join(encoded for encoded, _ in pairs))
    for position, value in flips:
        stream[position % len(stream)] = value
    chunks = chunked(bytes(stream), cuts)
    assert outcome(version, limit, chunks, in_c=True) == outcome(version, limit, chunks, in_c=False)


@given(versions, st.lists(st.binary(max_size=64), max_size=12), st.integers(2, 400))
def test_arbitrary_bytes_fail_as_in_python(version: int, chunks: list[bytes], limit: int) -> None:
    assert outcome(version, limit, chunks, in_c=True) == outcome(version, limit, chunks, in_c=False)


def test_it_takes_the_run_of_plain_publishes_and_stops_at_anything_else() -> None:
    plain = [Publish(b"a/b", b"{}", 1, 7), Publish(b"c", b"x" * 300, 0, 0, True, True)]
    stream = b"".join(encode_publish(p, version=V311) for p in plain)
    out: list[Packet] = []
    assert publish_frames.split(Publish, stream + PINGRESP_PACKET, 0, False, 1 << 20, out) == len(
        stream
    )
    assert out == plain
    assert all(type(p) is Publish for p in out)
    with_properties = bytes([0x30, 6, 0, 1, ord("t"), 2, 0x01, 1])  # MQTT 5: a property
    assert publish_frames.split(Publish, with_properties, 0, True, 1 << 20, []) == 0
    assert publish_frames.split(Publish, stream[:-1], 0, False, 1 << 20, []) == len(
        encode_publish(plain[0], version=V311)
    )
    assert StreamDecoder(V5).feed(with_properties) == [Publish(b"t", b"", 0, 0)]


def test_a_qos_2_publish_is_left_to_python() -> None:
    stream = bytes([0x34, 5, 0, 1, ord("t"), 0, 1])
    assert publish_frames.split(Publish, stream, 0, False, 1 << 30, []) == 0
    assert StreamDecoder(V311).feed(stream) == [Publish(b"t", b"", 2, 1)]


def test_what_it_leaves_to_python_raises_there() -> None:
    for stream in (
        bytes([0x36, 5, 0, 1, ord("t"), 0, 1]),  # QoS 3
        bytes([0x32, 5, 0, 1, ord("t"), 0, 0]),  # packet id 0
        bytes([0x30, 3, 0, 0, ord("t")]),  # an empty topic
        bytes([0x30, 0x85, 0x80, 0x80, 0x80, 0x00, 0, 1, ord("t"), 0, 0]),  # a 5-byte length
        bytes([0x32, 3, 0, 1, ord("t")]),  # no room for the packet id
    ):
        assert publish_frames.split(Publish, stream, 0, False, 1 << 30, []) == 0, stream
        in_c = outcome(V311, 1 << 30, [stream], in_c=True)
        assert in_c == outcome(V311, 1 << 30, [stream], in_c=False)
        assert in_c[1] is not None, stream
