import pytest

from smarthost_common.durations import format_duration, parse_duration, parse_schedule


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("6h", 21600), ("5d", 432000), ("0", 0)])
def test_durations_as_operators_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5w", "-5m", "m", "5 minutes"])
def test_bad_durations_are_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_schedule_keeps_order_and_refuses_zero() -> None:
    assert parse_schedule("5m, 10m,1h") == [300, 600, 3600]
    with pytest.raises(ValueError):
        parse_schedule("5m,0")


def test_format_picks_the_largest_whole_unit() -> None:
    assert [format_duration(s) for s in (90, 600, 7200, 86400, 1.5)] == ["90s", "10m", "2h", "1d", "1.5s"]
