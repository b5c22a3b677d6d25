"""What a recipient's last reply means, for DSNs and metrics; the rules are data (bounce_rules.toml)."""

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

_REPLY = re.compile(r"^([245])(\d\d)(?:[ -]+(\1\.\d{1,3}\.\d{1,3})\b)?")


@dataclass(frozen=True)
class Rule:
    category: str
    pattern: re.Pattern[str]
    explanation: str


@dataclass(frozen=True)
class Classification:
    # RFC 3463 enhanced status code for the DSN's Status field.
    status: str
    category: str
    explanation: str


@cache
def rules() -> tuple[Rule, ...]:
    data = tomllib.loads(files("smarthost_delivery").joinpath("bounce_rules.toml").read_text())
    return tuple(
        Rule(rule["category"], re.compile(rule["pattern"], re.IGNORECASE), rule["explanation"]) for rule in data["rule"]
    )


def status_of(reply: str) -> str:
    """The enhanced status code the reply carries, else the generic one of its class."""
    match = _REPLY.match(reply)
    if not match:
        return "4.0.0"
    return match.group(3) or f"{match.group(1)}.0.0"


def classify(reply: str) -> Classification:
    """`reply` is `<code> <text>` as stored in a recipient's last_error."""
    rule = next(rule for rule in rules() if rule.pattern.search(reply))
    return Classification(status_of(reply), rule.category, rule.explanation)
