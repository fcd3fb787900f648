"""MQTT 3.1.1 and 5.0 packets, encoded and decoded as luxtel's ingest needs them: pure, no I/O.

Why hand-written rather than paho-mqtt: the receive path is the hot path of ingest (issue 7:
≤ 20 µs of CPU per reading end to end). paho-mqtt 2.x reads each packet with several small
`recv` calls and parses MQTT 5 properties in Python objects; a bare paho subscriber measured
~53k QoS 1 msgs/s at 100 % of a core on this machine, ~19 µs per message — the whole budget
before luxtel decodes anything. `StreamDecoder.feed` slices every complete PUBLISH out of a
large received chunk in one loop and builds one small tuple per message (see
`bench/receive.py` for the measured figures against paho).

Only the client side of the packets luxtel uses is here: CONNECT (no will; persistent session),
CONNACK, SUBSCRIBE/SUBACK and UNSUBSCRIBE/UNSUBACK (several topic filters in one packet), PUBLISH
and PUBACK both ways, the receiver's half of QoS 2 (PUBLISH at QoS 2 and PUBREL in, PUBREC and
PUBCOMP out: luxtel subscribes at QoS ≤ 1, but some brokers — aedes — deliver a QoS 2
publication at QoS 2 all the same), PINGREQ/PINGRESP, DISCONNECT both ways.
The decoder reads what a broker sends a client; anything else — a PUBREC or PUBCOMP (luxtel never
publishes at QoS 2), topic aliases (luxtel advertises Topic Alias Maximum 0), AUTH, a malformed
length, a packet over the size limit — raises `MqttProtocolError`, and nothing else does,
whatever the bytes. QoS 2 PUBLISHes are split here, not in C: they are rare.

CONNACK reason codes are given in MQTT 5 numbering for both versions (3.1.1 return code 4,
"bad user name or password", decodes as 134), so the caller handles one set. A broker that does
not speak MQTT 5 may answer an MQTT 5 CONNECT with a 3.1.1 CONNACK (two bytes, return code 1,
"unacceptable protocol version", as aedes does): that decodes as 132, unsupported protocol
version.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from mqtt import publish_frames
from mqtt.errors import MqttError

V311 = 4
V5 = 5

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14

MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
PACKET_TOO_LARGE = 0x95
UNSUPPORTED_PROTOCOL_VERSION = 0x84
SESSION_TAKEN_OVER = 0x8E
TOPIC_ALIAS_INVALID = 0x94

MAX_REMAINING_LENGTH = 268_435_455
"""The largest remaining length four length bytes can hold (both versions)."""

REASON_NAMES = {
    0x00: "success",
    0x04: "disconnect with will message",
    0x10: "no matching subscribers",
    0x11: "no subscription existed",
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x8F: "topic filter invalid",
    0x90: "topic name invalid",
    0x93: "receive maximum exceeded",
    0x94: "topic alias invalid",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x98: "administrative action",
    0x99: "payload format invalid",
    0x9A: "retain not supported",
    0x9B: "QoS not supported",
    0x9C: "use another server",
    0x9D: "server moved",
    0x9F: "connection rate exceeded",
}

_V311_CONNACK_TO_V5 = {0: 0x00, 1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87}
_V5_CONNACK_TO_V311 = {v5: v3 for v3, v5 in _V311_CONNACK_TO_V5.items()}


def reason_name(code: int) -> str:
    """A reason code as words, with its number: `bad user name or password (134)`."""
    return f"{REASON_NAMES.get(code, 'reason code')} ({code})"


class MqttProtocolError(MqttError):
    """The bytes from the broker are not MQTT that luxtel accepts; `reason` is the MQTT 5
    reason code to disconnect with (malformed 0x81, protocol error 0x82, too large 0x95...)."""

    def __init__(self, message: str, reason: int = MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


# ---- packets ---------------------------------------------------------------------------------


class Publish(NamedTuple):
    """A PUBLISH. `topic` stays bytes: a topic that is not UTF-8 must reach the dead letter.
    A NamedTuple because one is built per message on the hot path (cheaper than a dataclass)."""

    topic: bytes
    payload: bytes
    qos: int = 0
    packet_id: int = 0
    retain: bool = False
    dup: bool = False


@dataclass(frozen=True, slots=True)
class Connack:
    """`reason_code` in MQTT 5 numbering for both versions; `properties` by property id."""

    session_present: bool
    reason_code: int
    properties: dict[int, int | str | bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Suback:
    packet_id: int
    reason_codes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unsuback:
    """`reason_codes`: one per topic filter under MQTT 5 (0x11: there was no such
    subscription); empty under 3.1.1, whose UNSUBACK carries none."""

    packet_id: int
    reason_codes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Puback:
    packet_id: int
    reason_code: int = 0


@dataclass(frozen=True, slots=True)
class Pubrel:
    """The second step of a QoS 2 delivery: the broker releases packet id `packet_id`."""

    packet_id: int
    reason_code: int = 0


@dataclass(frozen=True, slots=True)
class Pingresp:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    """`reason_string` is MQTT 5's Reason String property, when the broker gave one."""

    reason_code: int = 0
    reason_string: str | None = None


_new_publish = tuple.__new__
"""Builds a `Publish` in C: `Publish(...)` runs a Python-level `__new__`, ~0.3 µs a message."""

Packet = Publish | Connack | Suback | Unsuback | Puback | Pubrel | Pingresp | Disconnect

# ---- properties (MQTT 5 §2.2.2.2) ------------------------------------------------------------

SESSION_EXPIRY_INTERVAL = 0x11
SERVER_KEEP_ALIVE = 0x13
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27

_BYTE, _TWO, _FOUR, _VARINT, _UTF8, _BINARY, _PAIR = range(7)
_PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _UTF8, 0x08: _UTF8, 0x09: _BINARY, 0x0B: _VARINT,
    0x11: _FOUR, 0x12: _UTF8, 0x13: _TWO, 0x15: _UTF8, 0x16: _BINARY, 0x17: _BYTE,
    0x18: _FOUR, 0x19: _BYTE, 0x1A: _UTF8, 0x1C: _UTF8, 0x1F: _UTF8, 0x21: _TWO,
    0x22: _TWO, 0x23: _TWO, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}  # fmt: skip


def encode_varint(value: int) -> bytes:
    """MQTT's variable byte integer (remaining length, property lengths)."""
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        raise ValueError(f"{value} does not fit an MQTT variable byte integer")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """The variable byte integer at `pos` (before `end`) and the position after it."""
    value = 0
    for shift in (0, 7, 14, 21):
        if pos >= end:
            raise MqttProtocolError("a variable byte integer runs past the packet")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise MqttProtocolError("a variable byte integer longer than four bytes")


def _string(text: str) -> bytes:
    return _binary(text.encode())


def _binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("an MQTT string or binary field holds at most 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def _read_binary(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    if pos + 2 > end:
        raise MqttProtocolError("a length-prefixed field runs past the packet")
    stop = pos + 2 + ((data[pos] << 8) | data[pos + 1])
    if stop > end:
        raise MqttProtocolError("a length-prefixed field runs past the packet")
    return data[pos + 2 : stop], stop


def _read_utf8(data: bytes, pos: int, end: int) -> tuple[str, int]:
    raw, pos = _read_binary(data, pos, end)
    try:
        return raw.decode(), pos
    except UnicodeDecodeError:
        raise MqttProtocolError("a string property is not UTF-8") from None


def read_properties(data: bytes, pos: int, end: int) -> tuple[dict[int, int | str | bytes], int]:
    """The MQTT 5 property block at `pos`, by property id (user properties are skipped)."""
    length, pos = _read_varint(data, pos, end)
    stop = pos + length
    if stop > end:
        raise MqttProtocolError("the properties run past the packet")
    properties: dict[int, int | str | bytes] = {}
    while pos < stop:
        identifier, pos = _read_varint(data, pos, stop)
        kind = _PROPERTY_TYPES.get(identifier)
        value: int | str | bytes
        if kind is None:
            raise MqttProtocolError(f"unknown property {identifier:#x}")
        if kind in (_BYTE, _TWO, _FOUR):
            size = 1 if kind == _BYTE else 2 if kind == _TWO else 4
            if pos + size > stop:
                raise MqttProtocolError("a property runs past the properties")
            value = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        elif kind == _VARINT:
            value, pos = _read_varint(data, pos, stop)
        elif kind == _UTF8:
            value, pos = _read_utf8(data, pos, stop)
        elif kind == _BINARY:
            value, pos = _read_binary(data, pos, stop)
        else:
            _, pos = _read_utf8(data, pos, stop)
            _, pos = _read_utf8(data, pos, stop)
            continue
        properties[identifier] = value
    return properties, stop


def _properties(values: dict[int, int]) -> bytes:
    """A property block of integer properties (all that luxtel sends)."""
    sizes = {_BYTE: 1, _TWO: 2, _FOUR: 4}
    body = b"".join(
        bytes([identifier]) + value.to_bytes(sizes[_PROPERTY_TYPES[identifier]], "big")
        for identifier, value in values.items()
    )
    return encode_varint(len(body)) + body


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_varint(len(body)) + body


# ---- encoding: what the client sends ---------------------------------------------------------


def encode_connect(
    client_id: str,
    *,
    version: int = V5,
    keepalive_s: int = 60,
    clean_start: bool = False,
    session_expiry_s: int = 0,
    receive_maximum: int = 65535,
    maximum_packet_size: int | None = None,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """CONNECT without a will. With 3.1.1, `clean_start` is the clean-session flag and the
    MQTT 5 properties (session expiry, receive maximum, maximum packet size) are not sent."""
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    flags |= 0x02 if clean_start else 0
    body = _string("MQTT") + bytes([version, flags]) + keepalive_s.to_bytes(2, "big")
    if version == V5:
        properties = {SESSION_EXPIRY_INTERVAL: session_expiry_s, RECEIVE_MAXIMUM: receive_maximum}
        if maximum_packet_size is not None:
            properties[MAXIMUM_PACKET_SIZE] = maximum_packet_size
        body += _properties(properties)
    body += _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _binary(password.encode())
    return _packet(CONNECT << 4, body)


def _filters(topic_filters: str | Sequence[str]) -> list[str]:
    filters = [topic_filters] if isinstance(topic_filters, str) else list(topic_filters)
    if not filters:
        raise ValueError("at least one topic filter")
    return filters


def encode_subscribe(
    packet_id: int,
    topic_filters: str | Sequence[str],
    qos: int,
    *,
    version: int = V5,
    retain_handling: int = 0,
) -> bytes:
    """SUBSCRIBE to one filter or several (one packet; the SUBACK has a code for each, in
    order), all with the same options. MQTT 5 options: QoS and retain handling (1: send
    retained messages only for a new subscription), no-local and retain-as-published off."""
    options = bytes([qos | (retain_handling << 4 if version == V5 else 0)])
    properties = b"\x00" if version == V5 else b""
    body = packet_id.to_bytes(2, "big") + properties
    body += b"".join(_string(f) + options for f in _filters(topic_filters))
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def encode_unsubscribe(
    packet_id: int, topic_filters: str | Sequence[str], *, version: int = V5
) -> bytes:
    """UNSUBSCRIBE from one filter or several (one packet)."""
    properties = b"\x00" if version == V5 else b""
    body = packet_id.to_bytes(2, "big") + properties
    body += b"".join(_string(f) for f in _filters(topic_filters))
    return _packet(UNSUBSCRIBE << 4 | 0x02, body)


def encode_publish(packet: Publish, *, version: int = V5) -> bytes:
    """PUBLISH, with no properties under MQTT 5."""
    first = PUBLISH << 4 | packet.dup << 3 | packet.qos << 1 | packet.retain
    body = _binary(packet.topic)
    if packet.qos:
        body += packet.packet_id.to_bytes(2, "big")
    if version == V5:
        body += b"\x00"
    return _packet(first, body + packet.payload)


_PUBACK = struct.Struct(">BBH").pack


def encode_puback(packet_id: int, reason_code: int = 0, *, version: int = V5) -> bytes:
    """PUBACK; success is the short form in both versions."""
    if reason_code == 0 or version != V5:
        return _PUBACK(PUBACK << 4, 2, packet_id)
    return _packet(PUBACK << 4, packet_id.to_bytes(2, "big") + bytes([reason_code]))


def encode_pubrec(packet_id: int) -> bytes:
    """PUBREC (QoS 2, step one: the message is received), success: the short form in both
    versions."""
    return _PUBACK(PUBREC << 4, 2, packet_id)


def encode_pubcomp(packet_id: int) -> bytes:
    """PUBCOMP (QoS 2, last step: the packet id is free again), success."""
    return _PUBACK(PUBCOMP << 4, 2, packet_id)


def encode_pubrel(packet_id: int) -> bytes:
    """PUBREL, as a broker sends it (tests)."""
    return _PUBACK(PUBREL << 4 | 0x02, 2, packet_id)


PINGREQ_PACKET = b"\xc0\x00"
PINGRESP_PACKET = b"\xd0\x00"


def encode_disconnect(reason_code: int = 0, *, version: int = V5) -> bytes:
    """DISCONNECT; reason 0 (normal: the session stays, the will is not sent) is two bytes."""
    if reason_code == 0 or version != V5:
        return b"\xe0\x00"
    return _packet(DISCONNECT << 4, bytes([reason_code]))


# ---- encoding: what a broker sends (tests, and the bench's round trips) ----------------------


def encode_connack(
    session_present: bool,
    reason_code: int,
    *,
    version: int = V5,
    properties: dict[int, int] | None = None,
) -> bytes:
    if version == V5:
        tail = bytes([reason_code]) + _properties(properties or {})
    else:
        tail = bytes([_V5_CONNACK_TO_V311[reason_code]])
    return _packet(CONNACK << 4, bytes([session_present]) + tail)


def encode_suback(packet_id: int, reason_codes: tuple[int, ...], *, version: int = V5) -> bytes:
    properties = b"\x00" if version == V5 else b""
    return _packet(SUBACK << 4, packet_id.to_bytes(2, "big") + properties + bytes(reason_codes))


def encode_unsuback(packet_id: int, reason_codes: tuple[int, ...], *, version: int = V5) -> bytes:
    """UNSUBACK; under 3.1.1 the reason codes are not sent (it has none)."""
    tail = b"\x00" + bytes(reason_codes) if version == V5 else b""
    return _packet(UNSUBACK << 4, packet_id.to_bytes(2, "big") + tail)


def encode_server_disconnect(reason_code: int, reason_string: str | None = None) -> bytes:
    """MQTT 5 DISCONNECT from the broker, with a Reason String if given."""
    properties = b"\x00"
    if reason_string is not None:
        block = bytes([REASON_STRING]) + _string(reason_string)
        properties = encode_varint(len(block)) + block
    return _packet(DISCONNECT << 4, bytes([reason_code]) + properties)


# ---- decoding: what a broker sends -----------------------------------------------------------


class StreamDecoder:
    """Turns the bytes received from the broker into packets, whatever their chunking.

    `feed(chunk)` returns every packet completed by `chunk`, in order, and keeps the rest. A
    packet larger than `max_packet_size` (fixed header included) is refused as soon as its
    length is known, before it is buffered. After a `MqttProtocolError` the stream is
    unusable: drop the connection.

    Runs of plain PUBLISH packets are split in C (`mqtt/publish_frames.c`), everything else
    here; `in_c=False` splits every packet here (the reference the C one is tested against).
    """

    def __init__(
        self,
        version: int = V5,
        max_packet_size: int = MAX_REMAINING_LENGTH + 5,
        *,
        in_c: bool = True,
    ) -> None:
        self.version = version
        self.max_packet_size = max_packet_size
        self._split = publish_frames.split if in_c else None
        self._parts: list[bytes] = []
        self._have = 0
        self._need = 0
        self.qos2 = False
        """Set when a QoS 2 PUBLISH was decoded; the caller clears it (one look per chunk
        instead of one per message, for the QoS 2 receiver's bookkeeping)."""

    def feed(self, data: bytes) -> list[Packet]:
        if self._parts:
            self._have += len(data)
            self._parts.append(data)
            if self._have < self._need:
                return []  # still inside one large packet: no re-joining until it is whole
            data = b"".join(self._parts)
            self._parts = []
        packets: list[Packet] = []
        n = len(data)
        i = 0
        v5 = self.version == V5
        limit = self.max_packet_size
        split = self._split
        while n - i >= 2:
            first = data[i]
            if split is not None and first >> 4 == PUBLISH:
                # The plain PUBLISHes from here on, in C; whatever it leaves is handled below.
                stop = split(Publish, data, i, v5, limit, packets)
                if stop != i:
                    i = stop
                    continue
            length = data[i + 1]
            j = i + 2
            if length >= 0x80:
                length, j = self._long_length(data, i + 1, n)
                if j < 0:
                    break  # the length bytes are not all here yet
            end = j + length
            if end - i > limit:
                raise MqttProtocolError(
                    f"a packet of {end - i} bytes is over the limit of {limit}", PACKET_TOO_LARGE
                )
            if end > n:
                self._parts = [data[i:]]
                self._have = n - i
                self._need = end - i
                return packets
            if first >> 4 == PUBLISH:
                qos = (first >> 1) & 3
                k = j + 2
                if k > end:
                    raise MqttProtocolError("PUBLISH too short for its topic length")
                topic_end = k + ((data[j] << 8) | data[j + 1])
                if topic_end == k:
                    raise MqttProtocolError("PUBLISH with an empty topic", TOPIC_ALIAS_INVALID)
                if qos:
                    if qos == 3:
                        raise MqttProtocolError("PUBLISH at QoS 3")
                    if qos == 2:
                        self.qos2 = True
                    k = topic_end + 2
                    if k > end:
                        raise MqttProtocolError("PUBLISH too short for its packet id")
                    packet_id = (data[topic_end] << 8) | data[topic_end + 1]
                    if not packet_id:
                        raise MqttProtocolError("PUBLISH with packet id 0")
                else:
                    k = topic_end
                    packet_id = 0
                    if k > end:
                        raise MqttProtocolError("PUBLISH too short for its topic")
                if v5:
                    if k < end and data[k] == 0:
                        k += 1
                    else:
                        k = self._publish_properties(data, k, end)
                fields = (
                    data[j + 2 : topic_end],
                    data[k:end],
                    qos,
                    packet_id,
                    first & 1 == 1,
                    first & 8 == 8,
                )
                packets.append(_new_publish(Publish, fields))
            else:
                packets.append(self._control(first, data, j, end))
            i = end
        self._parts = [data[i:]] if i < n else []
        self._have = n - i
        self._need = 0
        return packets

    @staticmethod
    def _long_length(data: bytes, pos: int, n: int) -> tuple[int, int]:
        """A remaining length of 2-4 bytes at `pos`: (length, position after it), or (0, -1)
        when its bytes have not all arrived."""
        value = 0
        for shift in (0, 7, 14, 21):
            if pos >= n:
                return 0, -1
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value, pos
        raise MqttProtocolError("a remaining length longer than four bytes")

    @staticmethod
    def _publish_properties(data: bytes, pos: int, end: int) -> int:
        properties, pos = read_properties(data, pos, end)
        if TOPIC_ALIAS in properties:
            raise MqttProtocolError("a topic alias, though none were allowed", TOPIC_ALIAS_INVALID)
        return pos

    def _control(self, first: int, data: bytes, start: int, end: int) -> Packet:
        kind, flags = first >> 4, first & 0x0F
        if kind == PUBREL:
            if flags != 0x02:
                raise MqttProtocolError(f"PUBREL with flags {flags:#x}")
            length = end - start
            if length < 2 or (length > 2 and self.version != V5):
                raise MqttProtocolError("PUBREL of the wrong length")
            if length > 3:
                read_properties(data, start + 3, end)
            reason = data[start + 2] if length > 2 else 0
            return Pubrel((data[start] << 8) | data[start + 1], reason)
        if flags:
            raise MqttProtocolError(f"packet type {kind} with flags {flags:#x}")
        length = end - start
        v5 = self.version == V5
        if kind == PUBACK:
            if length < 2 or (length > 2 and not v5):
                raise MqttProtocolError("PUBACK of the wrong length")
            reason = data[start + 2] if length > 2 else 0
            if length > 3:
                read_properties(data, start + 3, end)
            return Puback((data[start] << 8) | data[start + 1], reason)
        if kind == PINGRESP:
            if length:
                raise MqttProtocolError("PINGRESP with a body")
            return Pingresp()
        if kind == CONNACK:
            if length < 2 or (length != 2 and not v5) or data[start] > 1:
                raise MqttProtocolError("malformed CONNACK")
            code = data[start + 1]
            properties: dict[int, int | str | bytes] = {}
            if v5 and length > 2:  # a bare 2-byte CONNACK (no property length) is tolerated
                properties, stop = read_properties(data, start + 2, end)
                if stop != end:
                    raise MqttProtocolError("bytes after the CONNACK properties")
            elif v5 and 0 < code < 0x80:
                # A 3.1.1 broker's answer to MQTT 5 (return codes 1-5; no MQTT 5 CONNACK
                # reason code is between 1 and 127): in MQTT 5 numbering, like 3.1.1's own.
                if code not in _V311_CONNACK_TO_V5:
                    raise MqttProtocolError(f"CONNACK return code {code}")
                code = _V311_CONNACK_TO_V5[code]
            else:
                if code not in _V311_CONNACK_TO_V5:
                    raise MqttProtocolError(f"CONNACK return code {code}")
                code = _V311_CONNACK_TO_V5[code]
            return Connack(bool(data[start]), code, properties)
        if kind == SUBACK:
            if length < 3:
                raise MqttProtocolError("SUBACK too short")
            pos = start + 2
            if v5:
                _, pos = read_properties(data, pos, end)
            if pos >= end:
                raise MqttProtocolError("SUBACK without reason codes")
            return Suback((data[start] << 8) | data[start + 1], tuple(data[pos:end]))
        if kind == UNSUBACK:
            if length < 2 or (length != 2 and not v5):
                raise MqttProtocolError("UNSUBACK of the wrong length")
            pos = start + 2
            if v5 and pos < end:  # a bare 2-byte UNSUBACK (no property length) is tolerated
                _, pos = read_properties(data, pos, end)
            return Unsuback((data[start] << 8) | data[start + 1], tuple(data[pos:end]))
        if kind == DISCONNECT and v5:
            if not length:
                return Disconnect()
            reason_string = None
            if length > 1:
                properties, _ = read_properties(data, start + 1, end)
                text = properties.get(REASON_STRING)
                reason_string = text if isinstance(text, str) else None
            return Disconnect(data[start], reason_string)
        raise MqttProtocolError(f"a broker may not send packet type {kind}", PROTOCOL_ERROR)
