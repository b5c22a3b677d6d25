"""A directory laid out as the kubelet lays out a ConfigMap volume.

`policy.yaml -> ..data/policy.yaml`, `..data -> ..<timestamp>`: an update
writes a new timestamped directory and swaps `..data` with one rename, so the
file's path never changes while what it resolves to does.
"""

import os
import shutil
from pathlib import Path


class ConfigMapVolume:
    def __init__(self, root: Path, filename: str = "policy.yaml") -> None:
        self.root = root
        self.filename = filename
        self.path = root / filename
        self._versions = 0
        root.mkdir(parents=True, exist_ok=True)

    def publish(self, content: str) -> None:
        self._versions += 1
        version = self.root / f"..2030_01_01_00_00_00.{self._versions:04d}"
        version.mkdir()
        (version / self.filename).write_text(content)
        staged = self.root / "..data_tmp"
        staged.symlink_to(version.name)
        previous = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        os.replace(staged, self.root / "..data")
        if not self.path.is_symlink():
            self.path.symlink_to(f"..data/{self.filename}")
        if previous is not None:
            shutil.rmtree(previous)
