"""The DNS zone the policy tests need: one domain per routability outcome."""

from support.dns_server import a, mx, null_mx

SENDER = "alice@sender.test"
RECIPIENT = "bob@example.test"


def policy_zone(servfail_port: int, silent_port: int) -> list[str]:
    return [
        # dnsmasq gives its own records TTL 0 unless told: give them one to cache.
        "local-ttl=300",
        mx("sender.test", "mx.sender.test"),
        a("mx.sender.test", "127.0.0.4"),
        mx("example.test", "mx.example.test"),
        a("mx.example.test", "127.0.0.2"),
        # bücher.test, in the A-label form DNS knows it by.
        mx("xn--bcher-kva.test", "mx.example.test"),
        null_mx("nullmx.test"),
        # An address but no MX: routable only when requireMx is false.
        a("nomx.test", "127.0.0.5"),
        # An MX whose target has no address.
        mx("badmx.test", "mx.badmx.test"),
        # An MX whose target's lookup never gets an answer.
        mx("slowmx.test", "host.slow.test"),
        f"server=/servfail.test/127.0.0.1#{servfail_port}",
        f"server=/slow.test/127.0.0.1#{silent_port}",
    ]
