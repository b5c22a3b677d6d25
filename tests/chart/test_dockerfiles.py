"""Each service's image: multi-stage, non-root, the console script as entrypoint.

hadolint checks Dockerfile practice; the rules specific to this project are
checked by reading the instructions.
"""

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support.chart import REPO

SERVICES = ["ingress-smtp", "policy", "delivery"]
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent))


def _instructions(service: str) -> list[tuple[str, str]]:
    text = (REPO / "services" / service / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _final_stage(service: str) -> list[tuple[str, str]]:
    instructions = _instructions(service)
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is installed by requirements-dev.txt")
def test_hadolint_passes() -> None:
    paths = [str(REPO / "services" / service / "Dockerfile") for service in SERVICES]
    result = subprocess.run([str(HADOLINT), *paths], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_multi_stage_with_slim_base(service: str) -> None:
    instructions = _instructions(service)
    stages = [argument for keyword, argument in instructions if keyword == "FROM"]
    assert len(stages) >= 2
    base = next(
        argument for keyword, argument in instructions if keyword == "ARG" and argument.startswith("PYTHON_IMAGE=")
    )
    assert base.split("=", 1)[1].startswith("python:") and "-slim" in base


def _stage(service: str, name: str) -> list[tuple[str, str]]:
    instructions = _instructions(service)
    start = next(
        i
        for i, (keyword, argument) in enumerate(instructions)
        if keyword == "FROM" and argument.endswith(f" AS {name}")
    )
    end = next((i for i in range(start + 1, len(instructions)) if instructions[i][0] == "FROM"), len(instructions))
    return instructions[start:end]


@pytest.mark.parametrize("service", SERVICES)
def test_dependencies_layer_sees_no_code(service: str) -> None:
    """The dependencies' layer is built from metadata only, so a code change leaves it cached."""
    sources = [
        path for keyword, argument in _stage(service, "deps") if keyword == "COPY" for path in argument.split()[:-1]
    ]
    assert sources
    assert all(path.endswith(("pyproject.toml", "constraints.txt", "image-dependencies.py")) for path in sources), (
        sources
    )


@pytest.mark.parametrize("service", SERVICES)
def test_final_stage_copies_built_files_code_last(service: str) -> None:
    final = _final_stage(service)
    runs = " ".join(argument for keyword, argument in final if keyword == "RUN")
    for tool in ("pip", "apt-get", "gcc", "build-essential", "grpc_tools"):
        assert tool not in runs
    copies = [argument for keyword, argument in final if keyword in ("COPY", "ADD")]
    assert all(copy.startswith("--from=") for copy in copies)
    # The service's own code is the last layer: a code change rebuilds nothing else.
    assert copies[-1].startswith("--from=build ")
    last_layer = max(i for i, (keyword, _) in enumerate(final) if keyword in ("RUN", "COPY", "ADD"))
    assert final[last_layer] == ("COPY", copies[-1])


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_numeric_non_root_user(service: str) -> None:
    users = [argument for keyword, argument in _final_stage(service) if keyword == "USER"]
    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


@pytest.mark.parametrize("service", SERVICES)
def test_entrypoint_is_the_console_script(service: str) -> None:
    project = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())["project"]
    scripts = project["scripts"]
    (entrypoint,) = [argument for keyword, argument in _final_stage(service) if keyword == "ENTRYPOINT"]
    command = json.loads(entrypoint)
    assert len(command) == 1 and command[0] in scripts and command[0] != "smarthostctl"
    # The image installs exactly this service's code and the shared library.
    run = " ".join(argument for keyword, argument in _stage(service, "build") if keyword == "RUN").split()
    assert [path for path in run if path.startswith(("./libs/", "./services/"))] == [
        "./libs/common",
        f"./services/{service}",
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_build_generates_protos_like_make(service: str) -> None:
    build = " ".join(argument for keyword, argument in _instructions(service) if keyword == "RUN")
    assert "grpc_tools.protoc -I proto" in build
    assert "--python_out=libs/common --grpc_python_out=libs/common" in build
    assert "--constraint constraints.txt" in build
