"""Reload the policy file when its content changes.

A Kubernetes ConfigMap volume updates by swapping a `..data` symlink, so the
file's own inode and mtime may never change, and inotify on it sees nothing.
The file is therefore re-read by path every interval and compared by content
hash. A file that does not parse is refused with one log line naming the
error, and the last good policy stays in force.
"""

import asyncio
import hashlib
import logging
from pathlib import Path

from prometheus_client import Counter

from smarthost_policy.policy_file import parse_policy
from smarthost_policy.policy_store import PolicyStore

log = logging.getLogger("smarthost.policy")

RELOADS = Counter("smarthost_policy_reloads_total", "Policy file changes seen, by result", ["result"])


class PolicyFileWatcher:
    def __init__(self, path: Path, interval: float, store: PolicyStore, loaded: bytes) -> None:
        self._path = path
        self._interval = interval
        self._store = store
        self._digest = hashlib.sha256(loaded).digest()
        self._read_error = ""

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def check(self) -> None:
        try:
            content = await asyncio.to_thread(self._path.read_bytes)
        except OSError as exc:
            # Logged once, not every interval while the file stays unreadable.
            if str(exc) != self._read_error:
                self._read_error = str(exc)
                log.error("policy file unreadable, the last good policy stays in force", extra={"error": str(exc)})
            return
        self._read_error = ""
        digest = hashlib.sha256(content).digest()
        if digest == self._digest:
            return
        self._digest = digest
        try:
            policy = await asyncio.to_thread(parse_policy, content, str(self._path))
        except ValueError as exc:
            RELOADS.labels(result="refused").inc()
            log.error("policy file refused, the last good policy stays in force", extra={"error": str(exc)})
            return
        self._store.use_file(policy)
        RELOADS.labels(result="loaded").inc()
        log.info("policy file reloaded", extra={"path": str(self._path), "customers": len(policy.customers)})
