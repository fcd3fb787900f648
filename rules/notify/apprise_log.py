"""Why an Apprise send failed, from what Apprise logged of it.

Apprise answers a send with success or failure; the reason — for its HTTP services the status,
as "… error=400." — is in the warnings it logs of the send, which Apprise 2 returns with the
result (`AppriseResult.logs()`). A service that refused the message for good (every status a
4xx other than 408, 425 and 429: a bad token, a malformed request, a gone endpoint) is not
retried; anything else — no status seen, a 5xx, a connection error, an Apprise 1.x that returns
a bare bool — stays worth retrying.
"""

import re

_STATUS = re.compile(r"\berror=(\d{3})\b")
_TRANSIENT_4XX = frozenset((408, 425, 429))
_KEPT = 10
"""Warnings kept of one send (Apprise logs one or two)."""


def warnings_of(result: object) -> list[str]:
    """The warnings and errors Apprise logged of the send that returned `result`."""
    logs = getattr(result, "logs", None)
    if not callable(logs):
        return []
    out: list[str] = []
    for entry in logs():
        if getattr(entry, "level", "") in ("WARNING", "ERROR", "CRITICAL"):
            out.append(str(getattr(entry, "message", "")))
            if len(out) == _KEPT:
                break
    return out


def refused_for_good(warnings: list[str]) -> bool:
    """True when every HTTP status Apprise reported is a 4xx that retrying cannot change."""
    codes = [int(m.group(1)) for line in warnings for m in _STATUS.finditer(line)]
    return bool(codes) and all(400 <= c < 500 and c not in _TRANSIENT_4XX for c in codes)
