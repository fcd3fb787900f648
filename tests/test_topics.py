"""Topic parsing: the three contract forms, and every hostile shape rejected with its reason."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.topics import Kind, Topic, TopicError, parse_topic
from models import Reason, is_identifier


@pytest.mark.parametrize(
    ("topic", "root", "expected"),
    [
        ("lighting/north/lum-1/telemetry", "lighting", Topic("north", "lum-1", Kind.TELEMETRY)),
        ("lighting/z.1/gw:7/batch", "lighting", Topic("z.1", "gw:7", Kind.BATCH)),
        ("city/lighting/N_2/A-b/status", "city/lighting", Topic("N_2", "A-b", Kind.STATUS)),
    ],
)
def test_valid_topics(topic: str, root: str, expected: Topic) -> None:
    assert parse_topic(topic, root) == expected


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("lighting/north/lum-1", Reason.TOPIC_MALFORMED),
        ("lighting/north/lum-1/telemetry/extra", Reason.TOPIC_MALFORMED),
        ("lighting/north//telemetry", Reason.TOPIC_INVALID_DEVICE_ID),
        ("lighting//lum-1/telemetry", Reason.TOPIC_INVALID_ZONE),
        ("lighting/north/lum 1/telemetry", Reason.TOPIC_INVALID_DEVICE_ID),
        ("lighting/north/lum,1/telemetry", Reason.TOPIC_INVALID_DEVICE_ID),
        ("lighting/north/lum=1/telemetry", Reason.TOPIC_INVALID_DEVICE_ID),
        ("lighting/nörth/lum-1/telemetry", Reason.TOPIC_INVALID_ZONE),
        ("lighting/_north/lum-1/telemetry", Reason.TOPIC_INVALID_ZONE),
        ("lighting/north/" + "x" * 65 + "/telemetry", Reason.TOPIC_INVALID_DEVICE_ID),
        ("lighting/north/lum-1/Telemetry", Reason.TOPIC_UNKNOWN_KIND),
        ("lighting/north/lum-1/command", Reason.TOPIC_UNKNOWN_KIND),
        ("lighting" + "/a" * 300, Reason.TOPIC_MALFORMED),
        ("lightingX/north/lum-1/telemetry", Reason.TOPIC_MALFORMED),
        ("lighting/north/lum-1\n/telemetry", Reason.TOPIC_INVALID_DEVICE_ID),
    ],
)
def test_hostile_topics_are_rejected_with_their_reason(topic: str, reason: Reason) -> None:
    with pytest.raises(TopicError) as caught:
        parse_topic(topic, "lighting")
    assert caught.value.reason is reason
    assert len(caught.value.detail) < 400


@given(st.text(max_size=300))
def test_any_topic_parses_or_raises_topic_error(topic: str) -> None:
    try:
        parsed = parse_topic(topic, "lighting")
    except TopicError as error:
        reason: Reason | None = error.reason
    else:
        reason = None
        assert is_identifier(parsed.zone)
        assert is_identifier(parsed.source_id)
        assert topic == f"lighting/{parsed.zone}/{parsed.source_id}/{parsed.kind.value}"
    assert reason is None or reason in Reason


@pytest.mark.parametrize(
    ("topic", "says_why"),
    [
        ("lighting/z/1/lum/7/telemetry", True),  # z.1/lum.7 through RabbitMQ
        ("lighting/north/lum/7/batch", True),
        ("lighting/north/lum-1/telemetry/extra", False),  # not a form a dot mapping makes
        ("lighting/north/lum-1", False),
    ],
)
def test_extra_levels_ending_in_a_kind_name_the_dot_mapping_brokers(
    topic: str, says_why: bool
) -> None:
    with pytest.raises(TopicError) as rejected:
        parse_topic(topic, "lighting")
    assert rejected.value.reason is Reason.TOPIC_MALFORMED
    assert ("RabbitMQ" in rejected.value.detail) is says_why
