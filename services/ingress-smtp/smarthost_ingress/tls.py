"""The STARTTLS certificate, re-read when cert-manager renews it.

A Secret mounted as a volume is updated by swapping a symlink, so the files'
identity (inode, size, mtime) is checked on each new connection, at most once
a second. A renewal caught half-written fails to load: the previous context
keeps serving and the next check tries again.
"""

import logging
import os
import ssl
import time
from pathlib import Path

log = logging.getLogger("smarthost.ingress")

CHECK_INTERVAL = 1.0


def _identity(path: Path) -> tuple[int, int, int]:
    stat = os.stat(path)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def load_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class TlsFiles:
    def __init__(self, cert: Path, key: Path) -> None:
        self._cert = cert
        self._key = key
        self._identity = (_identity(cert), _identity(key))
        self._checked = time.monotonic()
        try:
            self._context = load_context(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise SystemExit(f"configuration error: SMARTHOST_TLS_CERT/SMARTHOST_TLS_KEY: {exc}") from None

    def context(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self._checked >= CHECK_INTERVAL:
            self._checked = now
            self._reload_if_changed()
        return self._context

    def _reload_if_changed(self) -> None:
        try:
            identity = (_identity(self._cert), _identity(self._key))
            if identity == self._identity:
                return
            context = load_context(self._cert, self._key)
        except (OSError, ssl.SSLError) as exc:
            log.warning("TLS certificate not reloaded, keeping the previous one", extra={"error": str(exc)})
            return
        self._identity = identity
        self._context = context
        log.info("TLS certificate reloaded", extra={"cert": str(self._cert)})
