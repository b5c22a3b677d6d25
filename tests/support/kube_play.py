"""The chart's pods played by `podman kube play`, and stopped as the kubelet stops them."""

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from support.podman import ENV, PODMAN, podman


def _names(manifest: Path, kind: str) -> list[str]:
    return [doc["metadata"]["name"] for doc in yaml.safe_load_all(manifest.read_text()) if doc["kind"] == kind]


def _containers() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(podman("ps", "--all", "--pod", "--format", "json"))
    return found


def play(manifest: Path) -> None:
    podman("kube", "play", "--quiet", str(manifest), timeout=300)


def containers_of(deployment: str) -> list[str]:
    """The containers of the pods played for a Deployment (`<name>-pod-<n>`), infra containers left out."""
    return [
        container["Names"][0]
        for container in _containers()
        if container["PodName"].startswith(f"{deployment}-pod-") and not container["IsInfra"]
    ]


def down(manifest: Path, grace: int) -> None:
    """Stops the played pods as the kubelet would, then removes them.

    podman before 5.1 has `kube down` SIGKILL every container at once (podman
    issue 22397), so the pods are first stopped with SIGTERM and `grace`
    seconds before a SIGKILL, as `podman pod stop` does.
    """
    prefixes = tuple(f"{name}-pod-" for name in _names(manifest, "Deployment"))
    pods = {container["PodName"] for container in _containers() if container["PodName"].startswith(prefixes)}
    podman("pod", "stop", "--time", str(grace), *pods, timeout=grace + 60)
    podman("kube", "down", str(manifest), timeout=300)


def remove(manifest: Path) -> None:
    """Takes down what is left of `manifest`, and the volumes podman made of its ConfigMaps.

    `kube down` leaves those volumes behind, and a later play would reuse their stale content.
    """
    subprocess.run([*PODMAN, "kube", "down", str(manifest)], env=ENV, capture_output=True, check=False)
    configmaps = _names(manifest, "ConfigMap")
    subprocess.run([*PODMAN, "volume", "rm", "--force", *configmaps], env=ENV, capture_output=True, check=False)
