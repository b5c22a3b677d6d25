"""`smarthostctl dkim keygen|check`: make a customer domain's DKIM key, and see that DNS publishes it.

Exit status: 0 done (or the published record matches), 1 the record is
missing or does not match the key, 2 the command cannot be run as asked.
"""

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.resolver
import idna
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from redis.asyncio import Redis

from smarthost_common.dkim import MIN_RSA_BITS, SELECTOR, DkimKeyError, key_from_bytes, load_key, record_mismatch
from smarthost_common.dns import make_resolver
from smarthost_delivery.ctl.output import common_flags, print_json
from smarthost_delivery.ctl.settings import CtlSettings

MAX_RSA_BITS = 4096

Command = Callable[[argparse.Namespace, CtlSettings], Awaitable[int]]


class UsageError(Exception):
    """The command cannot be run as asked; the message names the argument."""


def register(areas: Any) -> None:
    dkim = areas.add_parser("dkim", help="DKIM keys of customer domains").add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    keygen = dkim.add_parser("keygen", parents=[common_flags()], help="write a private key, print its DNS record")
    keygen.add_argument("domain", metavar="DOMAIN", help="the From: domain the key signs for")
    keygen.add_argument("selector", metavar="SELECTOR", help="one DNS label, e.g. s2026")
    keygen.add_argument("--type", choices=("rsa", "ed25519"), default="rsa", help="key type (default rsa)")
    keygen.add_argument("--bits", type=int, default=2048, help="RSA key size (default 2048)")
    keygen.add_argument("--out", type=Path, help="the key file, never overwritten (default DOMAIN.SELECTOR.pem)")
    keygen.set_defaults(handler=_usage_errors(keygen_key))
    check = dkim.add_parser("check", parents=[common_flags()], help="compare the published DNS record with a key")
    check.add_argument("domain", metavar="DOMAIN")
    check.add_argument("selector", metavar="SELECTOR")
    check.add_argument("--key", type=Path, required=True, help="the private key file")
    check.set_defaults(handler=_usage_errors(check_key))


def _usage_errors(command: Command) -> Callable[[Redis, argparse.Namespace, CtlSettings], Awaitable[int]]:
    """A handler as `smarthostctl` calls it (these commands need no Redis); a usage error exits 2."""

    async def run(redis: Redis, args: argparse.Namespace, settings: CtlSettings) -> int:
        try:
            return await command(args, settings)
        except UsageError as exc:
            print(f"smarthostctl dkim: {exc}", file=sys.stderr)
            return 2

    return run


async def keygen_key(args: argparse.Namespace, settings: CtlSettings) -> int:
    domain, selector = _names(args)
    if args.type == "rsa" and not MIN_RSA_BITS <= args.bits <= MAX_RSA_BITS:
        raise UsageError(f"--bits: between {MIN_RSA_BITS} and {MAX_RSA_BITS}")
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
        if args.type == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = key_from_bytes(domain, selector, pem)
    out: Path = args.out or Path(f"{domain}.{selector}.pem")
    try:
        # Created owner-only and never over an existing file: that may be a key in use.
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UsageError(f"--out: {out}: {exc.strerror}") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    if args.json:
        print_json({"key_file": str(out), "type": key.kind, "name": key.record_name, "strings": key.record_strings})
        return 0
    size = f", {args.bits} bits" if key.kind == "rsa" else ""
    print(f"wrote {out} ({key.kind}{size}); publish this TXT record:")
    strings = " ".join(f'"{part}"' for part in key.record_strings)
    print(f"{key.record_name}. IN TXT {strings}")
    return 0


async def check_key(args: argparse.Namespace, settings: CtlSettings) -> int:
    domain, selector = _names(args)
    try:
        key = load_key(domain, selector, args.key)
    except DkimKeyError as exc:
        raise UsageError(f"--key: {exc}") from None
    resolver = make_resolver(settings.dns_servers, settings.dns_timeout)
    problem, records = await _records(resolver, key.record_name)
    if records:
        # A selector may publish more than one record; one that matches is enough.
        mismatches = [record_mismatch(key, record) for record in records]
        problem = "" if None in mismatches else "; ".join(m for m in mismatches if m)
    if args.json:
        print_json({"name": key.record_name, "match": not problem, "problem": problem})
    elif problem:
        print(f"{key.record_name}: mismatch: {problem}")
    else:
        print(f"{key.record_name}: match ({key.kind})")
    return 1 if problem else 0


async def _records(resolver: dns.asyncresolver.Resolver, name: str) -> tuple[str, list[bytes]]:
    """The TXT records at `name`, each one's strings joined; or why there are none."""
    try:
        answer = await resolver.resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return "no TXT record published", []
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        return f"the lookup failed ({exc})", []
    return "", [b"".join(rdata.strings) for rdata in answer]


def _names(args: argparse.Namespace) -> tuple[str, str]:
    """The domain in A-labels and the selector."""
    try:
        domain = idna.encode(args.domain, uts46=True, std3_rules=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise UsageError(f"DOMAIN: {args.domain!r} is not a domain name ({exc})") from None
    if "." not in domain:
        raise UsageError(f"DOMAIN: {args.domain!r} is not a fully qualified domain name")
    if not SELECTOR.match(args.selector):
        raise UsageError(f"SELECTOR: {args.selector!r} is not one DNS label")
    return domain, args.selector.lower()
