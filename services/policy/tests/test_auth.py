import asyncio
import subprocess
import sys

import pytest
from smarthost.policy.v1 import policy_pb2 as pb

from smarthost_policy.auth import Users, authenticate
from smarthost_policy.passwords import hash_password, parse_hash, verify_password
from smarthost_policy.policy_file import PolicyFile

# A cheap cost keeps the tests fast; the hash carries its own parameters.
HASH = hash_password("correct horse", n=2**10)


def policy(**customer: object) -> PolicyFile:
    return PolicyFile.model_validate({"customers": [{"name": "acme", **customer}]})


def test_hash_is_salted_and_verifies() -> None:
    assert hash_password("correct horse", n=2**10) != HASH
    assert verify_password("correct horse", HASH)
    assert not verify_password("correct horse ", HASH)
    assert HASH.startswith("scrypt:1024:8:1$")


@pytest.mark.parametrize(
    "text",
    ["", "plain", "md5:1:1:1$c2FsdA==$a2V5", "scrypt:1000:8:1$c2FsdA==$" + "A" * 44, "scrypt:1024:8:1$$x"],
)
def test_malformed_hashes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hash(text)


def test_customer_needs_networks_or_users() -> None:
    assert policy(users=[{"name": "web1", "passwordHash": HASH}]).customers[0].networks == []
    with pytest.raises(ValueError, match="needs networks, users or both"):
        policy()
    with pytest.raises(ValueError, match="passwordHash"):
        policy(users=[{"name": "web1", "passwordHash": "secret"}])


def test_user_names_are_unique() -> None:
    user = {"name": "web1", "passwordHash": HASH}
    with pytest.raises(ValueError, match="unique across customers: web1"):
        PolicyFile.model_validate({"customers": [{"name": "a", "users": [user]}, {"name": "b", "users": [user]}]})


def test_authenticate_names_the_customer_and_its_limit() -> None:
    users = Users(policy(users=[{"name": "web1", "passwordHash": HASH}], maxMessageSize=1000))

    def ask(username: str, password: str) -> pb.AuthenticateResponse:
        request = pb.AuthenticateRequest(
            session=pb.Session(client_ip="192.0.2.1"), username=username, password=password
        )
        return asyncio.run(authenticate(users, request))

    good = ask("web1", "correct horse")
    assert (good.verdict.action, good.customer, good.max_message_size) == (pb.ACTION_ACCEPT, "acme", 1000)
    for username, password in [("web1", "wrong"), ("nobody", "correct horse"), ("", "")]:
        bad = ask(username, password)
        assert (bad.verdict.action, bad.verdict.code, bad.verdict.enhanced_code) == (pb.ACTION_REJECT, 535, "5.7.8")
        assert not bad.customer
    assert users.lookup("web1") and not users.lookup("nobody")


def test_operators_make_hashes_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "smarthost_policy.passwords"],
        input="s3cret\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert verify_password("s3cret", result.stdout.strip())
