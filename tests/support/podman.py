"""The services' images run by podman, as a node would run them.

Every podman call goes through runc and tests/images/containers.conf (cgroupfs,
no default ulimits), which work on a plain host without systemd.
"""

import json
import os
import re
import subprocess
from pathlib import Path

from support.chart import CHART
from support.processes import Process, ProcessGroup

CONTAINERS_CONF = Path(__file__).resolve().parents[1] / "images" / "containers.conf"
PODMAN = ["podman", "--runtime", "runc"]
_CONF = {"CONTAINERS_CONF": str(CONTAINERS_CONF)}
ENV = {**os.environ, **_CONF}


def podman(*args: str, timeout: float = 120) -> str:
    result = subprocess.run([*PODMAN, *args], env=ENV, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def image(service: str) -> str:
    """The image `make images` built for a service, tagged with the chart's appVersion."""
    version = re.search(r'^appVersion: *"?([^"\n]+)"?$', (CHART / "Chart.yaml").read_text(), re.MULTILINE)
    assert version, "Chart.yaml has no appVersion"
    return f"localhost/smarthost-{service}:{version.group(1)}"


def follow_logs(group: ProcessGroup, name: str) -> Process:
    """The container's output, kept in the group's log even once the container is removed."""
    return group.start(f"logs-{name}", [*PODMAN, "logs", "--follow", name], _CONF)


def run(group: ProcessGroup, name: str, service: str, env: dict[str, str], volumes: tuple[str, ...] = ()) -> Process:
    """A service on the host's network, non-root, read-only but for /tmp, as the chart's pods run.

    Returns the process following its output.
    """
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        *(f"--env={key}={value}" for key, value in env.items()),
        *(f"--volume={volume}" for volume in volumes),
        image(service),
    )
    return follow_logs(group, name)


def stop(name: str, timeout: int) -> int:
    """SIGTERM (the images' stop signal), SIGKILL only after `timeout` seconds; the exit code."""
    podman("stop", "--time", str(timeout), name, timeout=timeout + 30)
    return int(podman("inspect", "--format", "{{.State.ExitCode}}", name).strip())


def remove(*names: str) -> None:
    """Removes containers whatever their state; those already gone are fine."""
    subprocess.run([*PODMAN, "rm", "--force", "--ignore", *names], env=ENV, capture_output=True, check=False)


def watch_exits(group: ProcessGroup) -> Process:
    """`podman events` for containers that exit, one JSON line each, from now on."""
    return group.start("podman-events", [*PODMAN, "events", "--filter", "event=died", "--format", "json"], _CONF)


def exit_codes(events: Process) -> dict[str, int]:
    """Container name to exit code, from what `watch_exits` recorded."""
    codes = {}
    for line in events.log().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            # podman leaves a zero exit code out of the event.
            codes[event["Name"]] = int(event.get("ContainerExitCode", 0))
    return codes
