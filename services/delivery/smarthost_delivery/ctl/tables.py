"""Human output: aligned tables, times and ages as operators read them."""

import time
from datetime import UTC, datetime

from smarthost_common.durations import format_duration


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def age(ms: int) -> str:
    """How long ago `ms` (Unix milliseconds) was, in whole seconds or larger units; `-` when unknown."""
    return approx(time.time() - ms / 1000) if ms else "-"


def until(ms: int) -> str:
    """`in 5m`, or `due` for a time already passed."""
    left = ms / 1000 - time.time()
    return f"in {approx(left)}" if left >= 1 else "due"


def approx(seconds: float) -> str:
    """Rounded down to the largest whole unit: 42s, 5m, 3h, 2d."""
    seconds = max(0, int(seconds))
    for size in (86400, 3600, 60):
        if seconds >= size:
            return format_duration(seconds - seconds % size)
    return f"{seconds}s"


def timestamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "-"


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
