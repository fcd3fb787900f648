"""A luminaire's status: birth message, faults, firmware, and the Last Will `{"online": false}`."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.timestamps import Timestamp

FaultCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Firmware = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,64}$")]


class Status(BaseModel):
    """Every field is optional (a Last Will carries only `online`), but a status must say
    something: the decoder rejects one with no `online`, `faults` or `firmware`."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow", frozen=True)

    ts: Timestamp | None = Field(default=None, description="When the status applies.")
    online: bool | None = Field(default=None, description="False in the device's Last Will.")
    faults: list[FaultCode] | None = Field(
        default=None, max_length=64, description="Active fault codes, short snake_case."
    )
    firmware: Firmware | None = Field(default=None, description="Firmware version.")

    def is_empty(self) -> bool:
        """True when the status carries nothing that could be written as a point."""
        return self.online is None and self.faults is None and self.firmware is None
