"""A luminaire's reading: the payload of `telemetry`, and each element of a gateway's `batch`."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from models.identifiers import Identifier
from models.timestamps import Timestamp

INT64_MAX = 2**63 - 1

NonNegativeFloat = Annotated[float, Field(ge=0)]


class Reading(BaseModel):
    """One reading, validated strictly: a number sent as a string or a boolean sent as 0/1 is
    a wrong type rather than something to coerce, so the dead letter tells the city which
    controllers are misconfigured. Unknown fields are kept aside (`model_extra`) to be counted."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow", frozen=True)

    device_id: Identifier | None = Field(
        default=None, description="The luminaire; in `telemetry` it must equal the topic's."
    )
    ts: Timestamp | None = Field(
        default=None, description="When it was measured; absent means the receive time."
    )
    seq: int | None = Field(
        default=None, ge=0, le=INT64_MAX, description="The device's message counter."
    )
    lamp_on: bool = Field(description="Whether the lamp is lit.")
    power_w: float = Field(ge=0, le=5000, description="Active power now, W.")
    energy_wh: NonNegativeFloat = Field(
        description="Cumulative energy since commissioning, Wh; may fall back to 0 on a reset."
    )
    voltage_v: float | None = Field(default=None, ge=0, le=600, description="Supply voltage, V.")
    current_a: float | None = Field(default=None, ge=0, le=50, description="Supply current, A.")
    power_factor: float | None = Field(default=None, ge=0, le=1, description="Power factor.")
    dim_pct: int | None = Field(default=None, ge=0, le=100, description="Dim level, % of full.")
    driver_temp_c: float | None = Field(
        default=None, ge=-60, le=200, description="Driver temperature, °C."
    )
    lux: NonNegativeFloat | None = Field(default=None, description="Photocell reading, lx.")


class BatchReading(Reading):
    """An element of a gateway's `batch`: the same reading, but naming its own device."""

    device_id: Identifier = Field(description="The luminaire this element belongs to.")


FIELD_TYPES: dict[str, type] = {
    "seq": int,
    "lamp_on": bool,
    "power_w": float,
    "energy_wh": float,
    "voltage_v": float,
    "current_a": float,
    "power_factor": float,
    "dim_pct": int,
    "driver_temp_c": float,
    "lux": float,
}
"""The InfluxDB field type of every reading field: fixed, so no batch meets a type conflict."""
