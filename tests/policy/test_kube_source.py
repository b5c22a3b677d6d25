"""RelayCustomer objects as customers: listed, watched, re-listed on 410, reconnected after errors.

The policy service runs as in a cluster, configured by a kubeconfig that
points at a local server speaking the API server's list and watch protocol.
"""

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from support.fake_apiserver import FakeApiServer
from support.policy_grpc import PolicyProbe
from support.processes import Process, ProcessGroup
from support.relay import Relay
from support.waiting import wait_until

NAMESPACE = "mail"


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    server = FakeApiServer("smarthost.io", "v1alpha1", "relaycustomers", "RelayCustomer")
    yield server
    server.stop()


@pytest.fixture
def probe(policy_relay: Relay, apiserver: FakeApiServer, tmp_path: Path) -> Iterator[PolicyProbe]:
    apiserver.put(NAMESPACE, "acme", {"name": "acme", "networks": ["192.0.2.0/24"]})
    apiserver.put("elsewhere", "intruder", {"name": "intruder", "networks": ["0.0.0.0/0"]})
    kubeconfig = tmp_path / "kubeconfig"
    apiserver.write_kubeconfig(kubeconfig, NAMESPACE)
    policy = policy_relay.start_policy(
        SMARTHOST_POLICY_SOURCE="kubernetes", SMARTHOST_POLICY_NAMESPACE=NAMESPACE, KUBECONFIG=str(kubeconfig)
    )
    probe = PolicyProbe(policy.address)
    yield probe
    probe.close()


def policy_process(processes: ProcessGroup) -> Process:
    return next(p for p in processes.processes if p.name.startswith("policy"))


def contains(text: str, processes: ProcessGroup) -> bool:
    return text in policy_process(processes).log()


def test_customers_follow_the_relaycustomer_objects(
    apiserver: FakeApiServer, probe: PolicyProbe, processes: ProcessGroup
) -> None:
    # Listed before serving; the file's customer (loopback) stays; other namespaces are not ours.
    assert probe.verdict("192.0.2.1") == "250 2.0.0 acme 20971520"
    assert probe.verdict("127.0.0.1") == "250 2.0.0 loopback 20971520"
    assert probe.verdict("198.51.100.1") == "554 5.7.1"

    apiserver.put(NAMESPACE, "beta", {"name": "beta", "networks": ["2001:db8:2::/48"], "maxMessageSize": 5000})
    wait_until(lambda: probe.verdict("2001:db8:2::1") == "250 2.0.0 beta 5000", what="ADDED applied")
    apiserver.put(NAMESPACE, "acme", {"name": "acme", "networks": ["192.0.2.0/24"], "maxMessageSize": 1000})
    wait_until(lambda: probe.verdict("192.0.2.1") == "250 2.0.0 acme 1000", what="MODIFIED applied")
    apiserver.delete(NAMESPACE, "beta")
    wait_until(lambda: probe.verdict("2001:db8:2::1") == "554 5.7.1", what="DELETED applied")

    # An invalid spec is refused by name; the object's last good version stays.
    apiserver.put(NAMESPACE, "acme", {"name": "acme", "networks": ["not a network"]})
    wait_until(lambda: "mail/acme" in policy_process(processes).log(), what="the refusal logged")
    assert probe.verdict("192.0.2.1") == "250 2.0.0 acme 1000"


def test_relists_after_410_gone_and_reconnects_after_errors(
    apiserver: FakeApiServer, probe: PolicyProbe, processes: ProcessGroup
) -> None:
    assert apiserver.lists == 1
    wait_until(lambda: apiserver.watches == 1, what="the first watch")

    # A dropped connection: the watch resumes from the last version, no new list.
    apiserver.drop_watches()
    wait_until(lambda: apiserver.watches == 2, what="the watch resumed")
    apiserver.put(NAMESPACE, "beta", {"name": "beta", "networks": ["198.51.100.0/24"]})
    wait_until(lambda: probe.verdict("198.51.100.1") == "250 2.0.0 beta 20971520", what="event after reconnect")
    assert apiserver.lists == 1

    # History compacted while the watch was away: 410 Gone, then a fresh list
    # that finds what changed meanwhile.
    apiserver.put(NAMESPACE, "gamma", {"name": "gamma", "networks": ["203.0.113.0/24"]})
    apiserver.delete(NAMESPACE, "beta")
    apiserver.compact()
    wait_until(lambda: apiserver.lists == 2, what="a re-list after 410")
    wait_until(lambda: probe.verdict("203.0.113.1") == "250 2.0.0 gamma 20971520", what="gamma listed")
    assert probe.verdict("198.51.100.1") == "554 5.7.1"
    assert "listing again" in policy_process(processes).log()


def test_dkim_keys_come_from_the_secret_a_relaycustomer_names(
    apiserver: FakeApiServer, probe: PolicyProbe, processes: ProcessGroup
) -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    apiserver.put_secret(NAMESPACE, "acme-dkim", {"ed2026.pem": pem, "junk.pem": b"not a key"})
    key = {"domain": "acme.test", "selector": "ed2026", "secretName": "acme-dkim", "secretKey": "ed2026.pem"}
    apiserver.put(NAMESPACE, "acme", {"name": "acme", "networks": ["192.0.2.0/24"], "dkim": [key]})
    wait_until(lambda: probe.dkim_keys("192.0.2.1", "acme.test") == [("acme.test", "ed2026", pem)], what="keys read")
    assert probe.dkim_keys("192.0.2.1", "other.test") == []

    # A key the Secret lacks, or one that is no key: refused by name, the last good version stays.
    for secret_key in ("missing.pem", "junk.pem"):
        broken = {**key, "secretKey": secret_key}
        apiserver.put(NAMESPACE, "acme", {"name": "acme", "networks": ["192.0.2.0/24"], "dkim": [broken]})
        refusal = f"dkim.0: Secret acme-dkim, key {secret_key}"
        wait_until(partial(contains, refusal, processes), what="the refusal logged")
    assert probe.dkim_keys("192.0.2.1", "acme.test") == [("acme.test", "ed2026", pem)]
