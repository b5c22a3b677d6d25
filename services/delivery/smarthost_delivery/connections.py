"""SMTP connections to MX hosts: opened with EHLO and STARTTLS, kept warm for the next message."""

import logging
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from smarthost_delivery.metrics import CONNECTIONS
from smarthost_delivery.smtp_client import SmtpClient, SmtpError

log = logging.getLogger("smarthost.delivery")

# A warm connection is reused for at most this long after it was opened, as
# Postfix's smtp_connection_reuse_time_limit, so no peer holds one forever.
REUSE_LIMIT = 300.0

TlsMode = Literal["opportunistic", "required"]


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# Opportunistic TLS verifies nothing (as Postfix's `may`); one context serves every connection.
UNVERIFIED = _unverified_context()


class SessionRefused(Exception):
    """The host cannot take mail from us on this connection; try the next address or MX."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


@dataclass
class Connection:
    client: SmtpClient
    # `mx.example.net [192.0.2.1]`: what logs and DSNs call the remote MTA.
    remote: str
    tls: bool
    opened: float
    idle_since: float = 0.0
    # Taken warm from the pool, its RSET still to send with the next transaction's commands (PIPELINING).
    unchecked: bool = False

    def close(self) -> None:
        self.client.close()

    async def quit(self) -> None:
        await self.client.quit()


@dataclass(frozen=True)
class ConnectSettings:
    port: int
    hostname: str
    tls: TlsMode
    connect_timeout: float
    command_timeout: float


async def open_connection(settings: ConnectSettings, address: str, host: str) -> Connection:
    connection = await _open(settings, address, host)
    CONNECTIONS.labels(reused="no", tls=_yes(connection.tls)).inc()
    return connection


async def _open(settings: ConnectSettings, address: str, host: str) -> Connection:
    """Connect, EHLO as our hostname, STARTTLS as the TLS mode asks.

    Opportunistic TLS does not verify certificates (as Postfix's `may`) and,
    when the handshake fails, tries once more in clear on a new connection.
    Raises SessionRefused, SmtpError or OSError.
    """
    remote = f"{host} [{address}]"
    connection = await _connect(settings, address, remote)
    client = connection.client
    if not client.supports("starttls"):
        if settings.tls == "required":
            await connection.quit()
            raise SessionRefused(451, f"4.7.4 TLS is required, but was not offered by {remote}")
        return connection
    try:
        reply = await client.starttls(UNVERIFIED, server_hostname=host)
        if reply.code != 220:
            raise SmtpError(f"STARTTLS answered {reply.code} {reply.text}")
        await _greet(client, settings.hostname)
    except (SmtpError, OSError) as exc:
        client.close()
        if settings.tls == "required":
            raise SessionRefused(451, f"4.7.5 TLS handshake with {remote} failed: {exc}") from exc
        log.info("TLS handshake failed; retrying in clear", extra={"remote": remote, "error": str(exc)})
        return await _connect(settings, address, remote)
    connection.tls = True
    return connection


async def _connect(settings: ConnectSettings, address: str, remote: str) -> Connection:
    client, greeting = await SmtpClient.connect(
        address, settings.port, settings.connect_timeout, settings.command_timeout
    )
    if greeting.code != 220:
        client.close()
        code = 451 if greeting.code < 500 else greeting.code
        raise SessionRefused(code, f"{remote} greeted with {greeting.code} {greeting.text}")
    try:
        await _greet(client, settings.hostname)
    except (SmtpError, OSError):
        client.close()
        raise
    return Connection(client, remote, tls=False, opened=time.monotonic())


async def _greet(client: SmtpClient, hostname: str) -> None:
    """EHLO, or HELO for a server that does not know EHLO."""
    reply = await client.ehlo(hostname)
    if reply.code == 250:
        return
    if reply.code < 500:
        raise SmtpError(f"EHLO answered {reply.code} {reply.text}")
    reply = await client.helo(hostname)
    if reply.code != 250:
        raise SmtpError(f"HELO answered {reply.code} {reply.text}")


class ConnectionPool:
    """Idle connections per MX address; each one is checked with RSET before reuse.

    With PIPELINING the RSET goes in the same write as the next transaction's
    commands (the connection is handed out `unchecked`); otherwise it is a
    round trip of its own here.
    """

    def __init__(self, idle: float) -> None:
        self._idle = idle
        self._free: dict[str, list[Connection]] = defaultdict(list)

    async def take(self, address: str) -> Connection | None:
        free = self._free.get(address)
        while free:
            connection = free.pop()
            if self._fresh(connection, time.monotonic()) and connection.client.is_connected:
                if connection.client.supports("pipelining"):
                    connection.unchecked = True
                    CONNECTIONS.labels(reused="yes", tls=_yes(connection.tls)).inc()
                    return connection
                try:
                    reply = await connection.client.command(b"RSET")
                except (SmtpError, OSError):
                    connection.close()
                    continue
                if reply.code != 250:
                    connection.close()
                    continue
                CONNECTIONS.labels(reused="yes", tls=_yes(connection.tls)).inc()
                return connection
            await connection.quit()
        return None

    async def give_back(self, address: str, connection: Connection) -> None:
        if self._idle > 0 and connection.client.is_connected and self._fresh(connection, time.monotonic()):
            connection.idle_since = time.monotonic()
            self._free[address].append(connection)
        else:
            await connection.quit()

    async def sweep(self) -> None:
        """QUIT connections idle too long; called often by the worker loop."""
        now = time.monotonic()
        for address, free in list(self._free.items()):
            stale = [connection for connection in free if not self._fresh(connection, now)]
            self._free[address] = [connection for connection in free if self._fresh(connection, now)]
            if not self._free[address]:
                del self._free[address]
            for connection in stale:
                await connection.quit()

    async def close_all(self) -> None:
        free, self._free = self._free, defaultdict(list)
        for connections in free.values():
            for connection in connections:
                await connection.quit()

    def _fresh(self, connection: Connection, now: float) -> bool:
        if connection.idle_since and now - connection.idle_since > self._idle:
            return False
        return now - connection.opened < REUSE_LIMIT


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
