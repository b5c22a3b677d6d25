"""SMTP AUTH on the submission listener: which customer a login belongs to.

The ingress asks `Authenticate` with the credentials; once they are accepted
it names the user in `Session.auth_user` of every later call, and the rules
apply to that user's customer instead of the client IP's network.
"""

import asyncio
import logging
from functools import cache

from smarthost.policy.v1 import policy_pb2 as pb

from smarthost_policy import verdicts
from smarthost_policy.customers import Match
from smarthost_policy.passwords import hash_password, verify_password
from smarthost_policy.policy_file import PolicyFile

log = logging.getLogger("smarthost.policy")


@cache
def _unknown_user_hash() -> str:
    """Checked for unknown users too, so timing does not tell which names exist."""
    return hash_password("")


class Users:
    def __init__(self, policy: PolicyFile) -> None:
        self._users = {
            user.name: (user.password_hash, Match.of(customer, policy.defaults))
            for customer in policy.customers
            for user in customer.users
        }

    def lookup(self, name: str) -> Match | None:
        entry = self._users.get(name)
        return entry[1] if entry else None

    async def verify(self, name: str, password: str) -> Match | None:
        entry = self._users.get(name)
        stored = entry[0] if entry else _unknown_user_hash()
        # scrypt takes a tenth of a second of CPU: keep the event loop free.
        valid = await asyncio.to_thread(verify_password, password, stored)
        return entry[1] if valid and entry else None


async def authenticate(users: Users, request: pb.AuthenticateRequest) -> pb.AuthenticateResponse:
    match = await users.verify(request.username, request.password)
    client_ip = request.session.client_ip
    if match is None:
        log.info("authentication failed", extra={"client_ip": client_ip, "user": request.username})
        return pb.AuthenticateResponse(verdict=verdicts.reject(535, "5.7.8", "Authentication credentials invalid"))
    log.info("authenticated", extra={"client_ip": client_ip, "user": request.username, "customer": match.customer})
    return pb.AuthenticateResponse(
        verdict=verdicts.accept(), customer=match.customer, max_message_size=match.limits.max_message_size
    )
