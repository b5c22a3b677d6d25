"""A private network and mount namespace for a benchmark: its own loopback, its own resolv.conf.

Postfix resolves names only through glibc, which reads /etc/resolv.conf and
asks port 53. Inside `unshare --net --mount` the benchmark brings up its own
`lo`, runs dnsmasq on 127.0.0.1:53 and bind-mounts a resolv.conf naming it
over /etc/resolv.conf: the host's resolver, network and mounts are never
touched, and everything the benchmark starts dies with its PID namespace.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Set for the re-executed process: the namespaces it was started from.
_OUTSIDE = "BENCH_OUTSIDE_NAMESPACES"


def enter() -> None:
    """Re-execute this script inside new network and mount namespaces (needs root); returns once inside."""
    if _OUTSIDE in os.environ:
        _require_inside()
        return
    if os.geteuid() != 0:
        sys.exit("this benchmark needs root: it creates network and mount namespaces")
    unshare = shutil.which("unshare") or sys.exit("unshare (util-linux) is missing")
    env = {**os.environ, _OUTSIDE: _namespaces()}
    # Private propagation: no mount made inside shows up on the host. A PID namespace
    # whose first process is this script: when it ends, for whatever reason, the
    # kernel ends every process it started (Postfix's master daemonizes itself).
    namespaces = ["--net", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc"]
    argv = [unshare, *namespaces, sys.executable, *sys.argv]
    os.execve(unshare, argv, env)


def bring_up_loopback() -> None:
    _require_inside()
    subprocess.run([_tool("ip"), "link", "set", "lo", "up"], check=True)


def use_resolver(workdir: Path, nameserver: str = "127.0.0.1") -> None:
    """Bind-mount a resolv.conf naming `nameserver` over /etc/resolv.conf, for this namespace only."""
    _require_inside()
    resolv = workdir / "resolv.conf"
    # One try, short timeout: a missing answer must fail fast, not stall a phase.
    resolv.write_text(f"nameserver {nameserver}\noptions timeout:2 attempts:1\n")
    subprocess.run([_tool("mount"), "--bind", str(resolv), "/etc/resolv.conf"], check=True)


def mount_tmpfs(directory: Path, size: str) -> None:
    """A memory file system at `directory` (seen only in this namespace); `unmount` before removing it."""
    _require_inside()
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run([_tool("mount"), "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory)], check=True)


def unmount(directory: Path) -> None:
    subprocess.run([_tool("umount"), str(directory)], check=False)


def _namespaces() -> str:
    return " ".join(os.readlink(f"/proc/self/ns/{kind}") for kind in ("mnt", "net"))


def _require_inside() -> None:
    """Mount only where mounts are private: in other namespaces than the ones `enter` started from."""
    outside = os.environ.get(_OUTSIDE, "").split()
    if not outside or any(mine in outside for mine in _namespaces().split()):
        raise RuntimeError("refusing to change mounts or links outside the benchmark's private namespaces")


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise FileNotFoundError(f"{name} is missing (make bench-packages installs it)")
    return found
