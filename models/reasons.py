"""Machine-readable reasons for rejecting a message: the `reason` of a dead-letter record.

Each is stable (cities alert on them) and specific: the dead letter tells a city which controllers
are misconfigured and how.
"""

from enum import StrEnum


class Reason(StrEnum):
    """Why a message, or one element of a batch, was rejected."""

    TOPIC_MALFORMED = "topic_malformed"
    TOPIC_INVALID_ZONE = "topic_invalid_zone"
    TOPIC_INVALID_DEVICE_ID = "topic_invalid_device_id"
    TOPIC_UNKNOWN_KIND = "topic_unknown_kind"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    PAYLOAD_NOT_UTF8 = "payload_not_utf8"
    PAYLOAD_NOT_JSON = "payload_not_json"
    PAYLOAD_NOT_OBJECT = "payload_not_object"
    BATCH_NOT_ARRAY = "batch_not_array"
    BATCH_EMPTY = "batch_empty"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    NOT_FINITE = "not_finite"
    INVALID_VALUE = "invalid_value"
    NAIVE_TIMESTAMP = "naive_timestamp"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    DEVICE_ID_MISMATCH = "device_id_mismatch"
    INVALID_DEVICE_ID = "invalid_device_id"
    STATUS_EMPTY = "status_empty"
    RATE_LIMITED = "rate_limited"
    INFLUX_REJECTED = "influx_rejected"
    # Sources beyond the contract (ingest/adapters): what did not map, and why.
    UNMAPPED_FIELD = "unmapped_field"
    UNKNOWN_DEVICE = "unknown_device"
    UNIT_MISMATCH = "unit_mismatch"
    INVALID_ZONE = "invalid_zone"
    SENML_INVALID = "senml_invalid"
