"""Durations as operators write them: `90s`, `10m`, `6h`, `5d`."""

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in `text`; a bare `0` is allowed and means zero."""
    if text.strip() == "0":
        return 0.0
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 10m, 6h or 5d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_schedule(text: str) -> list[float]:
    """A comma separated list of durations, e.g. `5m,10m,1h`; none may be zero."""
    waits = [parse_duration(part) for part in text.split(",") if part.strip()]
    if not waits or any(wait <= 0 for wait in waits):
        raise ValueError(f"{text!r} is not a list of positive durations like 5m,10m,1h")
    return waits


def format_duration(seconds: float) -> str:
    """The largest whole unit that expresses `seconds`, for logs and CLI output."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
