from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smarthost_policy.networks import Address, Network, NetworkTable, canonical_network, parse_client_ip

TABLE = NetworkTable(
    [
        (ip_network("10.0.0.0/8"), "wide"),
        (ip_network("10.1.0.0/16"), "narrow"),
        (ip_network("10.1.2.3/32"), "host"),
        (ip_network("2001:db8::/32"), "v6-wide"),
        (ip_network("2001:db8:1::/48"), "v6-narrow"),
        (ip_network("::ffff:192.0.2.0/120"), "mapped"),
        (ip_network("10.1.0.0/16"), "duplicate"),
    ]
)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.9.9.9", "wide"),
        ("10.1.9.9", "narrow"),
        ("10.1.2.3", "host"),
        ("10.1.2.4", "narrow"),
        ("11.0.0.0", None),
        ("9.255.255.255", None),
        ("2001:db8:2::1", "v6-wide"),
        ("2001:db8:1:ffff::1", "v6-narrow"),
        ("2001:db9::1", None),
        # An IPv4 client seen on a dual-stack socket is matched as IPv4.
        ("::ffff:10.1.2.3", "host"),
        # A network written as IPv4-mapped IPv6 covers the IPv4 addresses.
        ("192.0.2.77", "mapped"),
        ("::ffff:192.0.2.77", "mapped"),
        # IPv4 networks never match IPv6 addresses that share their bits.
        ("::a01:203", None),
    ],
)
def test_most_specific_network_wins(address: str, expected: str | None) -> None:
    parsed = parse_client_ip(address)
    assert parsed is not None
    assert TABLE.lookup(parsed) == expected


def test_the_first_of_two_equal_networks_is_kept() -> None:
    assert TABLE.lookup(IPv4Address("10.1.200.1")) == "narrow"
    assert len(TABLE) == 6


@pytest.mark.parametrize("text", ["", "not an address", "10.0.0.256", "10.0.0.1/32", "[::1]"])
def test_unparseable_client_ip(text: str) -> None:
    assert parse_client_ip(text) is None


def test_mapped_networks_become_ipv4() -> None:
    assert canonical_network(IPv6Network("::ffff:10.0.0.0/104")) == IPv4Network("10.0.0.0/8")
    assert canonical_network(IPv6Network("2001:db8::/32")) == IPv6Network("2001:db8::/32")
    # Wider than ::ffff:0:0/96 is not only IPv4-mapped space: left alone.
    assert canonical_network(IPv6Network("::/0")) == IPv6Network("::/0")


def _network(version: int, bits: int, prefix: int) -> Network:
    return ip_network((bits, prefix), strict=False) if version == 4 else IPv6Network((bits, prefix), strict=False)


networks_v4 = st.builds(lambda b, p: _network(4, b, p), st.integers(0, 2**32 - 1), st.integers(0, 32))
networks_v6 = st.builds(lambda b, p: _network(6, b, p), st.integers(0, 2**128 - 1), st.integers(0, 128))
addresses = st.one_of(
    st.builds(IPv4Address, st.integers(0, 2**32 - 1)), st.builds(IPv6Address, st.integers(0, 2**128 - 1))
)


@given(st.lists(st.one_of(networks_v4, networks_v6), max_size=30), st.lists(addresses, max_size=20))
def test_same_answer_as_a_scan_for_the_longest_prefix(networks: list[Network], probes: list[Address]) -> None:
    table = NetworkTable((network, network) for network in networks)
    for address in probes:
        containing = [n for n in networks if n.version == address.version and address in n]
        expected = max(containing, key=lambda n: n.prefixlen, default=None)
        found = table.lookup(address)
        assert (found.prefixlen if found else None) == (expected.prefixlen if expected else None)
        assert found is None or address in found


def test_parse_keeps_plain_addresses() -> None:
    assert parse_client_ip("2001:db8::1") == ip_address("2001:db8::1")
    assert parse_client_ip("127.0.0.1") == IPv4Address("127.0.0.1")
