"""A customer's DKIM keys are read with the policy file, and handed to the ingress with an accepted message."""

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from smarthost.policy.v1 import policy_pb2 as pb

from smarthost_policy.auth import Users
from smarthost_policy.customers import CustomerIndex
from smarthost_policy.passwords import hash_password
from smarthost_policy.policy_file import load_policy
from smarthost_policy.service import PolicyService

ED25519_PEM = ed25519.Ed25519PrivateKey.generate().private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)


def policy_with(tmp_path: Path, key_file: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "customers:\n  - name: acme\n    networks: [203.0.113.0/24]\n    dkim:\n"
        "      - {domain: other.test, selector: s1, keyFile: ed.pem}\n"
        f"      - {{domain: Acme.Test, selector: ed2026, keyFile: {key_file}}}\n"
    )
    return path


def test_key_files_are_read_beside_the_policy_file(tmp_path: Path) -> None:
    (tmp_path / "ed.pem").write_bytes(ED25519_PEM)
    policy = load_policy(policy_with(tmp_path, str(tmp_path / "ed.pem")))
    match = CustomerIndex(policy).lookup("203.0.113.7")
    assert match is not None
    key = pb.DkimKey(domain="acme.test", selector="ed2026", private_key=ED25519_PEM)
    assert match.dkim["acme.test"] == (key,)
    assert set(match.dkim) == {"acme.test", "other.test"}


@pytest.mark.parametrize(
    ("content", "error"),
    [(None, "No such file or directory"), (b"not a key", "neither a PEM private key nor a base64 Ed25519 seed")],
)
def test_a_bad_key_file_names_its_setting(tmp_path: Path, content: bytes | None, error: str) -> None:
    (tmp_path / "ed.pem").write_bytes(ED25519_PEM)
    if content is not None:
        (tmp_path / "bad.pem").write_bytes(content)
    with pytest.raises(ValueError, match=f"customers.0.dkim.1.keyFile: {tmp_path / 'bad.pem'}: .*{error}"):
        load_policy(policy_with(tmp_path, "bad.pem"))


def test_check_message_hands_over_the_from_domains_keys_on_accept_only(tmp_path: Path) -> None:
    (tmp_path / "ed.pem").write_bytes(ED25519_PEM)
    index = CustomerIndex(load_policy(policy_with(tmp_path, "ed.pem")))

    class Counting:
        async def count(self, *args: Any) -> Any:
            return type("Decision", (), {"accepted": True, "held": ""})()

        def record(self, *args: Any) -> None:
            pass

    counting = cast(Any, Counting())
    service = PolicyService(lambda: index, cast(Any, None), cast(Any, None), counting, counting, cast(Any, None))

    def check(from_domain: str, size: int = 10) -> pb.CheckMessageResponse:
        session = pb.Session(client_ip="203.0.113.7", queue_id="q1")
        request = pb.CheckMessageRequest(session=session, size=size, from_domain=from_domain)
        return asyncio.run(service.CheckMessage(request, cast(Any, None)))

    assert [key.selector for key in check("acme.test").dkim] == ["ed2026"]
    assert not check("elsewhere.test").dkim
    assert not check("").dkim
    refused = check("acme.test", size=10**9)
    assert refused.verdict.action == pb.ACTION_REJECT
    assert not refused.dkim


def test_a_submission_users_customer_signs_as_well(tmp_path: Path) -> None:
    (tmp_path / "ed.pem").write_bytes(ED25519_PEM)
    path = tmp_path / "policy.yaml"
    path.write_text(
        "customers:\n  - name: roaming\n    users:\n"
        f"      - {{name: laptop@roaming, passwordHash: '{hash_password('secret')}'}}\n"
        "    dkim:\n      - {domain: roaming.test, selector: ed2026, keyFile: ed.pem}\n"
    )
    match = Users(load_policy(path)).lookup("laptop@roaming")
    assert match is not None
    assert [key.selector for key in match.dkim["roaming.test"]] == ["ed2026"]
