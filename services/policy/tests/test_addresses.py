import pytest

from smarthost_policy.addresses import BadAddress, domain_of


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("bob@example.test", "example.test"),
        ("bob@EXAMPLE.Test", "example.test"),
        # U-labels are checked in their A-label form (IDNA 2008, UTS 46 mapping).
        ("bob@bücher.test", "xn--bcher-kva.test"),
        ("bob@BÜCHER.test", "xn--bcher-kva.test"),
        ("bob@xn--bcher-kva.test", "xn--bcher-kva.test"),
        ("bob@faß.de", "xn--fa-hia.de"),
        # The domain is what follows the last @, whatever the local part holds.
        ('"bob@elsewhere.test"@example.test', "example.test"),
        ("bob%elsewhere.test@example.test", "example.test"),
        ("bob@a-b.c-d.test", "a-b.c-d.test"),
    ],
)
def test_domain_of(address: str, domain: str) -> None:
    assert domain_of(address) == domain


@pytest.mark.parametrize(
    "address",
    [
        "bob",
        "@example.test",
        "bob@",
        "bob@[10.0.0.5]",
        "bob@[IPv6:2001:db8::1]",
        "bob@10.0.0.5",
        "bob@localhost",
        "bob@exa_mple.test",
        "bob@-example.test",
        "bob@example-.test",
        "bob@example..test",
        "bob@example.test.",
        "bob@exa mple.test",
        "bob@xn--zz.test",
        "bob@☃.test",
        "bob@" + "a" * 64 + ".test",
        "bob@" + ".".join(["a" * 60] * 5),
    ],
)
def test_bad_addresses(address: str) -> None:
    with pytest.raises(BadAddress):
        domain_of(address)
