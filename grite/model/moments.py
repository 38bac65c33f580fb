"""Points in time as people write them: `2026-12-01`, `2026-12-01T10:00`, `2026-12-01 10:00Z`,
`1h`, `30m`, `2d`, `1w` (that long before now), or Unix milliseconds; and ISO 8601 for output.

A date or time without a zone is UTC: the daemon and the client must read it the same way,
and neither knows the other's zone when the text is parsed here.

Pure: no I/O; the clock comes in as an argument.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = ["iso", "parse_moment"]

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_moment(text: str, now_ms: int) -> int | None:
    """Unix milliseconds for `text`, or None when it is not a time this module reads."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    duration = _DURATION.fullmatch(text.lower())
    if duration is not None:
        return now_ms - int(duration.group(1)) * _UNIT_MS[duration.group(2)]
    candidate = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def iso(ts_ms: int) -> str:
    """`2026-12-01T10:00:00Z`: an instant in UTC, to the second."""
    try:
        moment = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        return f"{ts_ms} ms"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
