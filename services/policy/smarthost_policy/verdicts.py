"""The replies the policy gives, one constructor per kind of verdict."""

from smarthost.policy.v1.policy_pb2 import Action, Verdict

from smarthost_policy.routability import Route

# Built once: every response's constructor copies the verdict it is given,
# so the shared one is never changed.
_ACCEPT = Verdict(action=Action.ACTION_ACCEPT, code=250, enhanced_code="2.0.0", text="Ok")


def accept() -> Verdict:
    return _ACCEPT


def reject(code: int, enhanced_code: str, text: str) -> Verdict:
    return Verdict(action=Action.ACTION_REJECT, code=code, enhanced_code=enhanced_code, text=text)


def tempfail(code: int, enhanced_code: str, text: str) -> Verdict:
    return Verdict(action=Action.ACTION_TEMPFAIL, code=code, enhanced_code=enhanced_code, text=text)


def relay_denied(client_ip: str) -> Verdict:
    return reject(554, "5.7.1", f"Relay access denied: {client_ip} is not a customer network")


def too_big(limit: int) -> Verdict:
    return reject(552, "5.3.4", f"Message size exceeds fixed limit of {limit} bytes")


def internal_error() -> Verdict:
    return tempfail(451, "4.3.0", "Temporary policy failure, try again later")


def too_many_recipients(limit: int) -> Verdict:
    return tempfail(452, "4.5.3", f"Too many recipients (limit {limit})")


def rate_limited(count: int, per: str, retry_after: int) -> Verdict:
    return tempfail(450, "4.7.1", f"Rate limit exceeded: {count} messages per {per}, try again in {retry_after}s")


def bad_sender(reason: str) -> Verdict:
    return reject(553, "5.1.7", f"Bad sender address syntax: {reason}")


def bad_recipient(reason: str) -> Verdict:
    return reject(553, "5.1.3", f"Bad destination mailbox address syntax: {reason}")


_UNROUTABLE = {
    Route.NO_DOMAIN: "domain {} not found",
    Route.NO_MX: "domain {} has no MX record",
    Route.MX_UNRESOLVABLE: "no MX host of domain {} resolves",
}


def sender_route(route: Route, domain: str) -> Verdict:
    """The reply for a MAIL FROM domain that is not ROUTABLE."""
    if route is Route.NULL_MX:
        return reject(550, "5.7.27", f"Sender address rejected: domain {domain} does not accept mail (null MX)")
    if route is Route.TEMPFAIL:
        return tempfail(451, "4.4.3", f"Sender domain {domain} cannot be checked now (DNS failure), try again later")
    return reject(550, "5.1.8", "Sender address rejected: " + _UNROUTABLE[route].format(domain))


def recipient_route(route: Route, domain: str) -> Verdict:
    """The reply for a RCPT TO domain that is not ROUTABLE."""
    if route is Route.NULL_MX:
        return reject(556, "5.1.10", f"Recipient address rejected: domain {domain} does not accept mail (null MX)")
    if route is Route.TEMPFAIL:
        return tempfail(451, "4.4.3", f"Recipient domain {domain} cannot be checked now (DNS failure), try again later")
    return reject(550, "5.1.2", "Recipient address rejected: " + _UNROUTABLE[route].format(domain))
