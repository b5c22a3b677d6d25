"""The replies the policy gives, one constructor per kind of verdict."""

from smarthost.policy.v1.policy_pb2 import Action, Verdict


def accept() -> Verdict:
    return Verdict(action=Action.ACTION_ACCEPT, code=250, enhanced_code="2.0.0", text="Ok")


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
