"""The disk tier of the queue: message bodies in PostgreSQL, shared by every pod.

Redis keeps what must be fast (the ready stream, the schedule, each message's
record); a body lives here once its message has been deferred, or from the
start when Redis already holds its mark of message bytes. One row per body,
`bytea`, so TOAST stores large bodies out of line and compresses them. Every
statement commits on its own (autocommit): a body stored here is on
PostgreSQL's disk, and on its synchronous replicas if it has any, when
`store` returns.

Rows whose message Redis no longer points at (a crash between the two
writes) are found by `stale` and removed by delivery's sweep.
"""

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool, PoolTimeout

SCHEMA = """
CREATE TABLE IF NOT EXISTS smarthost_spool (
    queue_id text PRIMARY KEY,
    body bytea NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
)
"""
# After a failure the spool counts as down this long, so a dead server costs
# the hot path nothing (no connect attempt per message) until it is tried again.
RETRY_AFTER = 2.0
CONNECT_TIMEOUT = 5
# Longest any one statement may take: a stuck server must not hold a message's 250 forever.
STATEMENT_TIMEOUT_MS = 15_000


class SpoolError(Exception):
    """The disk tier could not do what was asked; the message stays where it was."""


def check_url(url: str) -> str:
    """A `postgresql://` URL or key=value string psycopg can parse (for settings)."""
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"not a PostgreSQL connection string: {exc}") from None
    return url


class Spool:
    def __init__(self, url: str, max_connections: int = 10) -> None:
        self._pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            open=False,
            timeout=CONNECT_TIMEOUT,
            kwargs={
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT,
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            },
        )
        self._down_until = 0.0
        self._schema_ready = False

    async def open(self) -> None:
        """Starts connecting in the background: a spool that is down at start-up is not fatal."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    @property
    def available(self) -> bool:
        """False for a moment after a failure; the next call after that tries again."""
        return time.monotonic() >= self._down_until

    async def store(self, queue_id: str, body: bytes | bytearray) -> None:
        """Committed when it returns. Storing again replaces the row (a move retried after a crash)."""
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO smarthost_spool (queue_id, body) VALUES (%s, %b)"
                " ON CONFLICT (queue_id) DO UPDATE SET body = EXCLUDED.body, stored_at = now()",
                (queue_id, body),
            )

    async def load(self, queue_id: str) -> bytes | None:
        async with self._connection() as conn:
            cursor = conn.cursor(binary=True)
            await cursor.execute("SELECT body FROM smarthost_spool WHERE queue_id = %s", (queue_id,))
            row = await cursor.fetchone()
        return None if row is None else bytes(row[0])

    async def delete(self, queue_ids: Sequence[str]) -> None:
        if queue_ids:
            async with self._connection() as conn:
                await conn.execute("DELETE FROM smarthost_spool WHERE queue_id = ANY(%s)", (list(queue_ids),))

    async def stale(self, older_than_s: float, after: str, limit: int) -> list[str]:
        """Queue ids stored more than `older_than_s` ago, in id order after `after` (a page of a scan)."""
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT queue_id FROM smarthost_spool WHERE queue_id > %s"
                " AND stored_at < now() - make_interval(secs => %s) ORDER BY queue_id LIMIT %s",
                (after, older_than_s, limit),
            )
            return [row[0] for row in await cursor.fetchall()]

    async def usage(self) -> tuple[int, int]:
        """Rows, and bytes the table takes on disk (compressed, TOAST and index included)."""
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT count(*), pg_total_relation_size('smarthost_spool') FROM smarthost_spool"
            )
            row = await cursor.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._pool.connection() as conn:
                if not self._schema_ready:
                    await _create_schema(conn)
                    self._schema_ready = True
                yield conn
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            self._down_until = time.monotonic() + RETRY_AFTER
            raise SpoolError(str(exc) or exc.__class__.__name__) from exc


async def _create_schema(conn: AsyncConnection) -> None:
    # Another process may create it at the same moment (CREATE ... IF NOT EXISTS races in the catalog).
    with suppress(UniqueViolation):
        await conn.execute(SCHEMA)
