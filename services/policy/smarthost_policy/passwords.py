"""Submission passwords, stored only as salted scrypt hashes (stdlib `hashlib.scrypt`).

A hash reads `scrypt:N:r:p$<salt>$<key>` (salt and key base64), the form
Werkzeug uses, so the cost travels with each hash and can be raised later.

Operators make one with `python -m smarthost_policy.passwords`, which asks for
the password twice on a terminal (or reads one line from stdin) and prints
the line to paste into the policy file as a user's `passwordHash`.
"""

import base64
import binascii
import getpass
import hashlib
import hmac
import secrets
import sys

# 2^15 x 8 x 128 bytes = 32 MiB and about 0.1 s per check: cheap for one
# login, costly for a guesser with a stolen policy file.
N, R, P = 2**15, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
# Bounds on parameters read from a hash, so an odd one cannot stall the service.
MAX_N, MAX_R, MAX_P = 2**20, 32, 16


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=2 * 128 * r * n + 1024 * 1024
    )


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, n, r, p)
    return f"scrypt:{n}:{r}:{p}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def parse_hash(text: str) -> tuple[int, int, int, bytes, bytes]:
    """(N, r, p, salt, key); ValueError naming what is wrong."""
    try:
        method, salt, key = text.split("$")
        name, n, r, p = method.split(":")
        params = int(n), int(r), int(p)
        decoded = base64.b64decode(salt, validate=True), base64.b64decode(key, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("not a password hash like scrypt:32768:8:1$<salt>$<key>") from None
    if name != "scrypt":
        raise ValueError(f"unsupported password hash method {name!r}: only scrypt")
    n_, r_, p_ = params
    if not (1 < n_ <= MAX_N and n_ & (n_ - 1) == 0 and 0 < r_ <= MAX_R and 0 < p_ <= MAX_P):
        raise ValueError(f"scrypt parameters out of range (N a power of 2 up to {MAX_N}, r <= {MAX_R}, p <= {MAX_P})")
    if not decoded[0] or len(decoded[1]) != KEY_BYTES:
        raise ValueError("password hash has an empty salt or a key of the wrong length")
    return n_, r_, p_, decoded[0], decoded[1]


def verify_password(password: str, stored: str) -> bool:
    n, r, p, salt, key = parse_hash(stored)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), key)


def main() -> None:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise SystemExit("passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise SystemExit("empty password")
    print(hash_password(password))


if __name__ == "__main__":
    main()
