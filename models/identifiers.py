"""Zone, device and gateway identifiers: the only strings that become InfluxDB tags.

They are bounded and plain (no spaces, commas, quotes or equals signs), so a hostile device can
neither inject tags into line protocol nor blow up the number of series.
"""

import re
from typing import Annotated

from pydantic import StringConstraints

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def is_identifier(value: str) -> bool:
    """True when `value` is a valid zone, device or gateway id (the full string, no newline)."""
    return _ID_RE.fullmatch(value) is not None
