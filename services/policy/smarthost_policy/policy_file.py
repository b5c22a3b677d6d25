"""The policy file (YAML): customers, their networks and their limits.

The same schema is the `RelayCustomer` custom resource's spec, so field names
are camelCase as Kubernetes writes them. Unknown keys are refused: a typo in a
limit must not silently fall back to a default.
"""

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from smarthost_common.reputation import DEFAULT_MAX_BOUNCE_RATE, DEFAULT_MIN_MESSAGES, DEFAULT_WINDOW_S, settings_text
from smarthost_common.settings import Duration
from smarthost_policy.addresses import LDH_LABEL, BadAddress, ascii_domain
from smarthost_policy.passwords import parse_hash

# Validation context of a RelayCustomer's spec: its DKIM keys come from Secrets, never from files.
FROM_RESOURCE = {"resource": True}


class _Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class RateLimit(_Schema):
    messages: PositiveInt
    per: Duration = Field(gt=0)


class Reputation(_Schema):
    """The breaker: a customer is held once more than `max_bounce_rate` of at least `min_messages` bounced."""

    window: Duration = Field(default=DEFAULT_WINDOW_S, gt=0)
    min_messages: PositiveInt = DEFAULT_MIN_MESSAGES
    max_bounce_rate: float = Field(default=DEFAULT_MAX_BOUNCE_RATE, gt=0, le=1)

    @property
    def text(self) -> str:
        """As the breaker's scripts read it (smarthost_common.reputation)."""
        return settings_text(self.window, self.min_messages, self.max_bounce_rate)


class ReputationOverride(_Schema):
    """A customer's `reputation`: what it names replaces the defaults' value."""

    window: Duration | None = Field(default=None, gt=0)
    min_messages: PositiveInt | None = None
    max_bounce_rate: float | None = Field(default=None, gt=0, le=1)

    def over(self, defaults: Reputation) -> Reputation:
        return defaults.model_copy(update=self.model_dump(exclude_none=True))


class Limits(_Schema):
    max_message_size: PositiveInt = 20 * 1024 * 1024
    rate_limit: RateLimit = RateLimit(messages=160, per=6 * 3600)
    require_mx: bool = True
    max_recipients: PositiveInt = 100
    reputation: Reputation = Reputation()


class User(_Schema):
    """A submission login; the password only as made by `python -m smarthost_policy.passwords`."""

    name: str = Field(min_length=1)
    password_hash: str

    @field_validator("password_hash")
    @classmethod
    def _is_a_hash(cls, value: str) -> str:
        parse_hash(value)
        return value


class DkimKey(_Schema):
    """A domain the customer signs for: `keyFile` in a policy file, `secretName`/`secretKey` in a RelayCustomer."""

    domain: str
    selector: str
    key_file: Path | None = None
    secret_name: str | None = Field(default=None, min_length=1)
    secret_key: str | None = Field(default=None, min_length=1)
    # The key's bytes, once read from its file or Secret and checked (`use_private_key`); never in the schema.
    _private_key: bytes = PrivateAttr(default=b"")

    @property
    def private_key(self) -> bytes:
        return self._private_key

    def use_private_key(self, data: bytes) -> None:
        """Check `data` is a key DKIM can sign with, and keep it; raises ValueError saying why not."""
        # Imported here: dkimpy and its crypto bindings cost every policy process start-up time,
        # which only a policy with DKIM keys needs to pay.
        from smarthost_common.dkim import key_from_bytes

        key_from_bytes(self.domain, self.selector, data)
        self._private_key = data

    @field_validator("domain")
    @classmethod
    def _is_a_domain(cls, value: str) -> str:
        try:
            return ascii_domain(value)
        except BadAddress as exc:
            raise ValueError(str(exc)) from None

    @field_validator("selector")
    @classmethod
    def _is_a_label(cls, value: str) -> str:
        if not LDH_LABEL.match(value.lower()):
            raise ValueError(f"{value!r} is not a DNS label (letters, digits, inner hyphens, at most 63)")
        return value.lower()

    @model_validator(mode="after")
    def _one_key_source(self, info: ValidationInfo) -> "DkimKey":
        from_secret = self.secret_name is not None or self.secret_key is not None
        if info.context == FROM_RESOURCE:
            if self.key_file is not None or self.secret_name is None or self.secret_key is None:
                raise ValueError(f"DKIM key of {self.domain}: a RelayCustomer names secretName and secretKey")
        elif self.key_file is None or from_secret:
            raise ValueError(f"DKIM key of {self.domain}: a policy file names keyFile (secrets are for RelayCustomers)")
        return self


class Customer(_Schema):
    name: str = Field(min_length=1)
    # Held back by the provider: new mail refused with a 451, queued mail parked, until this is lifted.
    suspended: bool = False
    reputation: ReputationOverride | None = None
    # Hosts with fixed addresses relay from these; others log in as one of `users`.
    networks: list[IPv4Network | IPv6Network] = []
    users: list[User] = []
    max_message_size: PositiveInt | None = None
    rate_limit: RateLimit | None = None
    require_mx: bool | None = None
    max_recipients: PositiveInt | None = None
    # The From: domains whose mail is signed, with their keys.
    dkim: list[DkimKey] = []

    @model_validator(mode="after")
    def _networks_or_users(self) -> "Customer":
        if not self.networks and not self.users:
            raise ValueError(f"customer {self.name!r} needs networks, users or both")
        return self

    @model_validator(mode="after")
    def _one_dkim_key_per_selector(self) -> "Customer":
        # A domain may have several keys (RSA and Ed25519 side by side), each under its own selector.
        names = [f"{key.selector}._domainkey.{key.domain}" for key in self.dkim]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"customer {self.name!r}: one DKIM key per selector and domain: {', '.join(duplicates)}")
        return self

    def limits(self, defaults: Limits) -> Limits:
        """The defaults with this customer's overrides applied."""
        overrides = {field: getattr(self, field) for field in Limits.model_fields if getattr(self, field) is not None}
        if self.reputation is not None:
            overrides["reputation"] = self.reputation.over(defaults.reputation)
        return defaults.model_copy(update=overrides)


class PolicyFile(_Schema):
    defaults: Limits = Limits()
    customers: list[Customer] = []

    @model_validator(mode="after")
    def _user_names_unique(self) -> "PolicyFile":
        names = [user.name for customer in self.customers for user in customer.users]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"user names must be unique across customers: {', '.join(duplicates)}")
        return self


def load_policy(path: Path) -> PolicyFile:
    """Parse and validate `path`; raises ValueError naming what is wrong."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return parse_policy(content, str(path))


def parse_policy(content: bytes, source: str) -> PolicyFile:
    """Parse and validate a policy file's bytes; raises ValueError naming `source` and what is wrong."""
    try:
        data = yaml.safe_load(content) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    try:
        policy = PolicyFile.model_validate(data)
        _read_key_files(policy, Path(source).parent)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    return policy


def _read_key_files(policy: PolicyFile, folder: Path) -> None:
    """Read and check every DKIM key file now, so a bad one stops start-up (or a reload) naming its setting."""
    for i, customer in enumerate(policy.customers):
        for j, key in enumerate(customer.dkim):
            assert key.key_file is not None  # the schema requires it in a policy file
            # A relative keyFile is found beside the policy file.
            path = folder / key.key_file
            try:
                key.use_private_key(path.read_bytes())
            except OSError as exc:
                raise ValueError(f"customers.{i}.dkim.{j}.keyFile: {path}: {exc.strerror or exc}") from None
            except ValueError as exc:
                raise ValueError(f"customers.{i}.dkim.{j}.keyFile: {path}: {exc}") from None
