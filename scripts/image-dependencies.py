"""Prints the third-party requirements of the given project folders, one a line.

The images install these in a layer of their own, before any of the project's
code is copied in, so a code change leaves that layer cached. Requirements
naming one of the given projects (smarthost-common) are left out: those are
installed from source in the last layer.
"""

import re
import sys
import tomllib
from pathlib import Path

# The distribution name that starts a PEP 508 requirement; the image's bare
# Python has no `packaging` to parse the rest.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _name(requirement: str) -> str:
    match = NAME.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def main(folders: list[str]) -> None:
    projects = [tomllib.loads((Path(folder) / "pyproject.toml").read_text())["project"] for folder in folders]
    ours = {_name(project["name"]) for project in projects}
    for project in projects:
        for requirement in project.get("dependencies", []):
            if _name(requirement) not in ours:
                print(requirement)


if __name__ == "__main__":
    main(sys.argv[1:])
