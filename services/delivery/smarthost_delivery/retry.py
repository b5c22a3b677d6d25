"""When to try a deferred message again."""


def next_wait(schedule: list[float], attempts: int) -> float:
    """The wait after attempt number `attempts` (1-based); the last wait repeats."""
    return schedule[min(attempts, len(schedule)) - 1]
