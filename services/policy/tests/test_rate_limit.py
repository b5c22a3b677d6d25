import pytest
from smarthost.policy.v1 import policy_pb2 as pb

from smarthost_policy.policy_file import RateLimit
from smarthost_policy.rate_limit import rate_key, retry_after_seconds, window_ms


def test_rate_key_is_the_auth_user_else_the_client_ip() -> None:
    assert rate_key(pb.Session(client_ip="203.0.113.7")) == "smarthost:rate:ip:203.0.113.7"
    assert rate_key(pb.Session(client_ip="203.0.113.7", auth_user="acme")) == "smarthost:rate:user:acme"


def test_one_host_has_one_window_however_its_address_is_written() -> None:
    assert rate_key(pb.Session(client_ip="::ffff:203.0.113.7")) == rate_key(pb.Session(client_ip="203.0.113.7"))
    assert rate_key(pb.Session(client_ip="2001:DB8::0:1")) == rate_key(pb.Session(client_ip="2001:db8::1"))


@pytest.mark.parametrize(
    ("per", "ms"), [("6h", 21_600_000), ("3s", 3000), ("90s", 90_000), ("0.0004s", 1), ("1.5s", 1500)]
)
def test_window_in_milliseconds(per: str, ms: int) -> None:
    assert window_ms(RateLimit.model_validate({"messages": 1, "per": per})) == ms


@pytest.mark.parametrize(("ms", "seconds"), [(1, 1), (999, 1), (1000, 1), (1001, 2), (21_600_000, 21600)])
def test_retry_after_rounds_up(ms: int, seconds: int) -> None:
    assert retry_after_seconds(ms) == seconds
