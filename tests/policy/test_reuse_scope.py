"""The ingress's reuse scope never joins two addresses the policy would judge apart."""

import random

from hypothesis import given
from hypothesis import strategies as st

from smarthost_ingress.policy_reuse import scope_domain
from smarthost_policy.addresses import BadAddress, domain_of

LOCALS = st.sampled_from(["alice", "b.o.b", '"john doe"', "u%d", "jöhn"])
DOMAINS = st.text(alphabet="abcXYZ-.0ü_", min_size=0, max_size=12)


def policy_domain(address: str) -> str:
    try:
        return domain_of(address)
    except BadAddress:
        return "refused"


@given(LOCALS, LOCALS, DOMAINS, st.randoms())
def test_addresses_in_one_scope_get_the_same_domain_verdict(
    local: str, other: str, domain: str, rng: random.Random
) -> None:
    # The same domain with its ASCII letters' case flipped at random.
    flipped = "".join(c.swapcase() if c.isascii() and rng.random() < 0.5 else c for c in domain)
    first, second = f"{local}@{domain}", f"{other}@{flipped}"
    if scope_domain(first) is not None and scope_domain(first) == scope_domain(second):
        assert policy_domain(first) == policy_domain(second)
