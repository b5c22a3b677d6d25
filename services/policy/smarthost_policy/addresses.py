"""Envelope addresses as the policy checks them.

The ingress hands over the path without angle brackets; the domain is what
follows its last `@`, checked as a hostname and turned into its A-label form
(IDNA 2008 with UTS 46 mapping), which is the form DNS is asked about and
the form delivery uses.
"""

import re

import idna

LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_DOMAIN_LENGTH = 253


class BadAddress(ValueError):
    """The address or its domain cannot be relayed to; the message says why."""


def domain_of(address: str) -> str:
    """The A-label domain of `local@domain`, lower case."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise BadAddress(f"{address!r} is not local-part@domain")
    return ascii_domain(domain)


def ascii_domain(domain: str) -> str:
    """`domain` as an A-label hostname with at least two labels; raises BadAddress."""
    if domain.startswith("["):
        raise BadAddress("address literals are not relayed")
    if not domain or domain.endswith(".") or ".." in domain:
        raise BadAddress(f"{domain!r} is not a domain name")
    try:
        encoded = idna.encode(domain, uts46=True, std3_rules=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise BadAddress(f"{domain!r} is not a valid domain name: {exc}") from None
    labels = encoded.split(".")
    if len(encoded) > MAX_DOMAIN_LENGTH or not all(LDH_LABEL.match(label) for label in labels):
        raise BadAddress(f"{domain!r} is not a valid host name")
    # A single label would be completed by a resolver's search list, and an
    # all-numeric top label is an IP address written without brackets.
    if len(labels) < 2 or labels[-1].isdigit():
        raise BadAddress(f"{domain!r} is not a fully qualified domain name")
    return encoded
