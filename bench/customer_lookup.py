"""Client IP to customer: lookup cost with 10,000 customer networks against 10.

Figures are ratios against a baseline measured in the same run, so they mean
the same on a laptop and on a loaded CI machine. A linear scan over the same
10,000 networks is measured too, to show what the index saves.
"""

import random
import timeit
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from smarthost_policy.customers import CustomerIndex
from smarthost_policy.networks import Network, parse_client_ip
from smarthost_policy.policy_file import Customer, PolicyFile

LOOKUPS = 20_000


def networks(count: int, rng: random.Random) -> list[Network]:
    """Half IPv4, half IPv6, with prefix lengths spread as a provider's are."""
    result: list[Network] = []
    for n in range(count):
        if n % 2:
            prefix = rng.randint(16, 32)
            result.append(IPv4Network((rng.getrandbits(32), prefix), strict=False))
        else:
            prefix = rng.randint(32, 64)
            result.append(IPv6Network((rng.getrandbits(128), prefix), strict=False))
    return result


def policy(nets: list[Network]) -> PolicyFile:
    customers = [Customer(name=f"c{n}", networks=[net]) for n, net in enumerate(nets)]
    return PolicyFile(customers=customers)


def probes(nets: list[Network], rng: random.Random) -> list[str]:
    """Addresses inside the networks (hits) and random ones (mostly misses), mixed."""
    hits = [str(net.network_address + rng.randrange(net.num_addresses)) for net in rng.choices(nets, k=LOOKUPS // 2)]
    misses = [str(IPv4Address(rng.getrandbits(32))) for _ in range(LOOKUPS // 4)]
    misses += [str(IPv6Address(rng.getrandbits(128))) for _ in range(LOOKUPS // 4)]
    mixed = hits + misses
    rng.shuffle(mixed)
    return mixed


def per_lookup(lookup: object, addresses: list[str], repeat: int = 5) -> float:
    def run() -> None:
        for address in addresses:
            lookup(address)  # type: ignore[operator]

    return min(timeit.repeat(run, number=1, repeat=repeat)) / len(addresses)


def main() -> None:
    rng = random.Random(7)
    small, large = networks(10, rng), networks(10_000, rng)
    small_index, large_index = CustomerIndex(policy(small)), CustomerIndex(policy(large))
    addresses = probes(large, rng)

    def linear(client_ip: str) -> Network | None:
        address = parse_client_ip(client_ip)
        return next((net for net in large if address and address.version == net.version and address in net), None)

    base = per_lookup(small_index.lookup, addresses)
    indexed = per_lookup(large_index.lookup, addresses)
    scanned = per_lookup(linear, addresses[:200], repeat=2)
    print(f"customer lookup, {LOOKUPS} addresses (half hits), best of 5")
    print(f"  10 networks:              {base * 1e6:8.2f} us/lookup   (baseline 1.00)")
    print(f"  10,000 networks, index:   {indexed * 1e6:8.2f} us/lookup   ratio {indexed / base:8.2f}")
    print(f"  10,000 networks, scan:    {scanned * 1e6:8.2f} us/lookup   ratio {scanned / base:8.2f}")


if __name__ == "__main__":
    main()
