import subprocess
import sys

import pytest

from smarthost_common.dns import parse_servers
from smarthost_common.net import split_hostport
from smarthost_common.queue import new_queue_id


def test_listen_addresses() -> None:
    assert split_hostport("0.0.0.0:2525") == ("0.0.0.0", 2525)
    assert split_hostport("[::1]:25") == ("::1", 25)
    with pytest.raises(ValueError):
        split_hostport("localhost")


def test_dns_servers_with_and_without_ports() -> None:
    assert parse_servers("127.0.0.1:5353, 10.0.0.1,[::1]:53") == [
        ("127.0.0.1", 5353),
        ("10.0.0.1", 53),
        ("::1", 53),
    ]


def test_queue_ids_are_unique_and_sort_by_time() -> None:
    ids = [new_queue_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(queue_id) == 16 and queue_id.isalnum() for queue_id in ids)
    assert ids[0][:9] <= ids[-1][:9]


@pytest.mark.parametrize(
    ("script", "variable", "value"),
    [
        ("smarthost-delivery", "SMARTHOST_RETRY_SCHEDULE", "5m,soon"),
        ("smarthost-delivery", "SMARTHOST_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/33"),
        ("smarthost-ingress", "SMARTHOST_SMTP_LISTEN", "2525"),
        ("smarthost-policy", "SMARTHOST_DNS_SERVERS", "127.0.0.1:x"),
    ],
)
def test_bad_setting_stops_the_service_naming_the_variable(script: str, variable: str, value: str) -> None:
    bin_dir = sys.executable.rpartition("/")[0]
    result = subprocess.run([f"{bin_dir}/{script}"], env={variable: value}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert variable in result.stderr
