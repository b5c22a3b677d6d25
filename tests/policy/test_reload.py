"""The policy file is reloaded when a ConfigMap update swaps it, and a broken one is refused."""

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.configmap_volume import ConfigMapVolume
from support.policy_grpc import PolicyProbe
from support.processes import ProcessGroup
from support.relay import BIN, Relay
from support.waiting import wait_until

ALPHA = "customers:\n  - name: alpha\n    networks: [192.0.2.0/24]\n    maxMessageSize: {size}\n"
BETA = "  - name: beta\n    networks: ['2001:db8:2::/48']\n"


@pytest.fixture
def volume(tmp_path: Path) -> ConfigMapVolume:
    return ConfigMapVolume(tmp_path / "policy-volume")


@pytest.fixture
def probe(policy_relay: Relay, volume: ConfigMapVolume) -> Iterator[PolicyProbe]:
    volume.publish(ALPHA.format(size=1000))
    policy = policy_relay.start_policy(SMARTHOST_POLICY_FILE=str(volume.path), SMARTHOST_POLICY_RELOAD_INTERVAL="0.2s")
    probe = PolicyProbe(policy.address)
    yield probe
    probe.close()


def test_configmap_update_is_applied_and_broken_files_are_refused(
    policy_relay: Relay, volume: ConfigMapVolume, probe: PolicyProbe, processes: ProcessGroup
) -> None:
    policy_log = next(p for p in processes.processes if p.name.startswith("policy"))
    assert probe.verdict("192.0.2.1") == "250 2.0.0 alpha 1000"
    assert probe.verdict("2001:db8:2::1") == "554 5.7.1"

    # Requests keep being answered, by one policy or the other, while it changes.
    answers: list[str] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            answers.append(probe.verdict("192.0.2.1"))

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        volume.publish(ALPHA.format(size=2000) + BETA)
        wait_until(lambda: probe.verdict("2001:db8:2::1") == "250 2.0.0 beta 20971520", what="beta added")
        assert probe.verdict("192.0.2.1") == "250 2.0.0 alpha 2000"

        volume.publish(ALPHA.format(size=3000).replace("maxMessageSize", "maxMessageSise"))
        wait_until(lambda: "maxMessageSise" in policy_log.log(), what="the refusal logged")
        volume.publish("customers: [\n")
        wait_until(lambda: policy_log.log().count("policy file refused") == 2, what="the second refusal logged")
        assert probe.verdict("2001:db8:2::1") == "250 2.0.0 beta 20971520"
        assert probe.verdict("192.0.2.1") == "250 2.0.0 alpha 2000"

        volume.publish(ALPHA.format(size=3000))
        wait_until(lambda: probe.verdict("2001:db8:2::1") == "554 5.7.1", what="beta removed")
        assert probe.verdict("192.0.2.1") == "250 2.0.0 alpha 3000"
    finally:
        stop.set()
        asker.join(15)
    assert len(answers) > 10
    assert set(answers) <= {f"250 2.0.0 alpha {size}" for size in (1000, 2000, 3000)}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SMARTHOST_POLICY_SOURCE": "ldap"}, "SMARTHOST_POLICY_SOURCE"),
        ({"SMARTHOST_POLICY_RELOAD_INTERVAL": "often"}, "SMARTHOST_POLICY_RELOAD_INTERVAL"),
        ({"SMARTHOST_DNS_TIMEOUT": "0s"}, "SMARTHOST_DNS_TIMEOUT"),
        ({"SMARTHOST_POLICY_REUSE_TIME": "often"}, "SMARTHOST_POLICY_REUSE_TIME"),
        ({"SMARTHOST_POLICY_REUSE_TIME": "1h"}, "SMARTHOST_POLICY_REUSE_TIME"),
        ({"SMARTHOST_POLICY_SOURCE": "kubernetes"}, "SMARTHOST_POLICY_NAMESPACE"),
        ({"SMARTHOST_POLICY_FILE": "broken"}, "SMARTHOST_POLICY_FILE"),
    ],
)
def test_misconfiguration_stops_the_service_naming_the_setting(
    policy_relay: Relay, processes: ProcessGroup, tmp_path: Path, env: dict[str, str], named: str
) -> None:
    if env.get("SMARTHOST_POLICY_FILE") == "broken":
        broken = tmp_path / "broken.yaml"
        broken.write_text("customers:\n  - name: x\n    networks: [300.0.0.0/8]\n")
        env = {"SMARTHOST_POLICY_FILE": str(broken)}
    process = processes.start("policy-misconfigured", [str(BIN / "smarthost-policy")], {**policy_relay.env, **env})
    assert process.wait(30) != 0
    assert f"configuration error: {named}" in process.log()
