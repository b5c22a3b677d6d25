"""MAIL FROM and RCPT TO arguments parsed strictly by RFC 5321 4.1.2.

aiosmtpd hands addresses to the stdlib header parser, which rewrites them
(`<"u@dest">` loses its quotes, `<@a:u@b>` its route, bare CR vanishes), so
the domain the policy checked could differ from the one delivered to. Here the
path is taken as written: one `@` outside quotes, its domain checked by the
policy is exactly the one queued.

The relay-abuse rules of DESIGN.md "Addresses and bytes": source routes are
stripped, `%` and `!` are ordinary local-part characters, and address
literals and quoted local parts containing `@` are refused.
"""

import re
from dataclasses import dataclass

# Non-ASCII characters (RFC 6531, SMTPUTF8), without the lone surrogates that
# stand for bytes which were not UTF-8.
_UTF8 = "\u0080-\ud7ff\ue000-\U0010ffff"
# RFC 5322 atext.
_ATOM = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_UTF8}]+"
_DOT_STRING = rf"{_ATOM}(?:\.{_ATOM})*"
# qtextSMTP and quoted-pairSMTP: printable ASCII, backslash escapes one character.
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8}]|\\[\x20-\x7e])*"'
_LABEL = rf"[A-Za-z0-9{_UTF8}](?:[A-Za-z0-9\-{_UTF8}]*[A-Za-z0-9{_UTF8}])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_LITERAL = r"\[[^\[\]\\]*\]"
_ROUTE = rf"@{_DOMAIN}(?:,@{_DOMAIN})*:"

_PATH = re.compile(rf"<(?P<route>{_ROUTE})?(?P<local>{_DOT_STRING}|{_QUOTED})@(?P<domain>{_DOMAIN}|{_LITERAL})>")
_PARAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*(?:=[\x21-\x3c\x3e-\x7e]+)?")

# RFC 5321 4.5.3.1: path 256 octets, domain 255, each label 63.
MAX_PATH = 256
MAX_DOMAIN = 255
MAX_LABEL = 63


class AddressError(ValueError):
    """The argument cannot be accepted; `reply` is the SMTP reply to give."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class Path:
    """A parsed MAIL FROM or RCPT TO argument.

    `address` is the mailbox as it will be checked and queued ("" for the
    null reverse path), `domain` what follows its `@`.
    """

    address: str
    domain: str
    params: dict[str, str | None]

    @property
    def ascii(self) -> bool:
        return self.address.isascii()


def parse_path(text: str, *, keyword: str, null_allowed: bool) -> Path:
    """Parse `FROM:<path> params` or `TO:<path> params` (`keyword` is `FROM` or `TO`)."""
    head, colon, rest = text.partition(":")
    if not colon or head.strip().upper() != keyword:
        raise AddressError(f"501 5.5.4 Syntax: {_verb(keyword)} {keyword}:<address>")
    # Postfix and most servers accept a space after the colon; so do we.
    rest = rest.lstrip(" ")
    if not rest.startswith("<"):
        raise AddressError(f"501 5.5.4 Syntax: {_verb(keyword)} {keyword}:<address> (angle brackets required)")
    end = _path_end(rest)
    if end < 0:
        raise AddressError("553 5.1.3 Malformed address: unbalanced angle brackets or quotes")
    raw, params = rest[: end + 1], _params(rest[end + 1 :])
    if raw == "<>":
        if not null_allowed:
            raise AddressError("553 5.1.3 The null address is not a valid recipient")
        return Path("", "", params)
    if len(raw) - 2 > MAX_PATH:
        raise AddressError(f"553 5.1.3 Address longer than {MAX_PATH} characters")
    match = _PATH.fullmatch(raw)
    if match is None:
        raise AddressError("553 5.1.3 Malformed address: expected <local-part@domain>")
    local, domain = match.group("local"), match.group("domain")
    if domain.startswith("["):
        raise AddressError("553 5.1.3 Address literals are not accepted: use a domain name")
    if local.startswith('"') and "@" in local:
        raise AddressError("553 5.1.3 Quoted local parts containing @ are not accepted")
    if len(domain) > MAX_DOMAIN or any(len(label) > MAX_LABEL for label in domain.split(".")):
        raise AddressError("553 5.1.3 Domain name too long")
    # The source route (`@a,@b:`) is dropped: RFC 5321 C says to ignore it.
    return Path(f"{local}@{domain}", domain, params)


def _verb(keyword: str) -> str:
    return "MAIL" if keyword == "FROM" else "RCPT"


def _path_end(text: str) -> int:
    """Index of the `>` closing the path at `text[0]`, honouring quotes; -1 if none."""
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    return -1


def _params(text: str) -> dict[str, str | None]:
    """ESMTP parameters after the path: ` KEY[=value]` each, separated by spaces."""
    if text and not text.startswith(" "):
        raise AddressError("501 5.5.4 Syntax: parameters must follow the address after a space")
    params: dict[str, str | None] = {}
    for item in text.split():
        if not _PARAM.fullmatch(item):
            raise AddressError("501 5.5.4 Malformed parameter")
        key, eq, value = item.partition("=")
        params[key.upper()] = value if eq else None
    return params
