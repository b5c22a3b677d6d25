"""aiosmtpd's SMTP made fit for a relay on the internet.

Kept from aiosmtpd: the transport handling, STARTTLS (which discards commands
pipelined before the handshake, CVE-2024-34083), the PROXY header parser and
the simple commands (NOOP, RSET, QUIT, HELP). Replaced, and why:

- the per-connection setup: aiosmtpd's inspects the class and the
  handler on every connection; the same state is set from names found once;
- the command loop: a command ends only at CRLF (a bare CR or LF is refused),
  over-long lines, unknown commands and other errors are counted and end the
  session at `SMARTHOST_MAX_ERRORS`, connections are limited in total and per
  client IP, PROXY headers are believed only from trusted peers;
- MAIL and RCPT: strict RFC 5321 paths (`addresses.py`), not the stdlib
  header parser that rewrites them;
- DATA: memory bounded across sessions, bare CR/LF normalized (`data.py`);
- AUTH: PLAIN and LOGIN on the submission listener after STARTTLS, checked by
  the policy, failures throttled per client IP (`auth.py`);
- pipelining: a client that sends before the reply it must wait for is
  refused and disconnected (`pipelining.py`);
- replies: each built whole and written once; replies to pipelined commands
  are held while the next command is already buffered, then written together
  (Postfix's rule: a client that reads a reply in pieces, or one reply as
  another's, falls out of step);
- every reply printable ASCII with an enhanced status code (`replies.py`).
"""

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, AnyStr

from aiosmtpd.proxy_protocol import get_proxy
from aiosmtpd.smtp import (
    ALLOWED_BEFORE_STARTTLS,
    MISSING,
    SMTP,
    Envelope,
    Session,
    TLSSetupException,
    login_always_fail,
)
from smarthost.policy.v1 import policy_pb2 as pb

from smarthost_common.memory_budget import MemoryBudget, Reservation
from smarthost_ingress import metrics
from smarthost_ingress.addresses import AddressError, Path, parse_path
from smarthost_ingress.auth import AuthThrottle
from smarthost_ingress.config import IngressSettings
from smarthost_ingress.data import COPIES, GROWTH_STEP, MessageAssembler, Outcome
from smarthost_ingress.limits import ConnectionLimits
from smarthost_ingress.pipelining import END_OF_GROUP, buffered, command_buffered, refusal, unread_in_kernel
from smarthost_ingress.proxy import HeaderSniffer, ProxyTrust, proxied_client
from smarthost_ingress.replies import (
    NO_MEMORY,
    SHUTTING_DOWN,
    TIMEOUT,
    TOO_MANY_AUTH_FAILURES,
    TOO_MANY_CONNECTIONS,
    TOO_MANY_ERRORS,
    normalized,
    printable,
)
from smarthost_ingress.sessions import Sessions
from smarthost_ingress.tls import TlsFiles

log = logging.getLogger("smarthost.ingress")

MECHANISMS = ("LOGIN", "PLAIN")
INVALID_CREDENTIALS = "535 5.7.8 Authentication credentials invalid"


class RelaySession(Session):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        # The client as the policy sees it: the peer, or what a trusted PROXY header names.
        self.client_ip = ""
        # Set by a successful SMTP AUTH.
        self.auth_user = ""
        # The policy's answer for this client (at HELO/EHLO, or AUTH), and the
        # queue id of the transaction in progress (assigned at MAIL).
        self.connection: pb.CheckConnectionResponse | None = None
        self.queue_id = ""
        # Set by the handler for a DISCONNECT verdict: the session ends once its reply is written.
        self.disconnect = False


class RelayEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        # The message as it will be queued (data.py), filled at the end of DATA.
        self.message = bytearray()


@dataclass
class Shared:
    """What every connection of the process shares."""

    settings: IngressSettings
    sessions: Sessions
    connections: ConnectionLimits
    memory: MemoryBudget
    auth_throttle: AuthThrottle
    proxy: ProxyTrust
    tls: TlsFiles | None


class RelaySMTP(SMTP):
    def __init__(self, shared: Shared, handler: Any, *, submission: bool) -> None:
        # Not aiosmtpd's __init__: it inspects this class and the handler
        # (inspect.getmembers, signatures) on every connection, a tenth of the
        # ingress's CPU at one message per connection. The same state, from
        # names looked up once per class.
        settings = shared.settings
        loop = asyncio.get_running_loop()
        # The reader's limit is the most one line can hold in memory.
        self.line_length_limit = max(settings.max_command_length, settings.max_line_length + 1) + 2
        reader = asyncio.StreamReader(loop=loop, limit=self.line_length_limit)
        asyncio.StreamReaderProtocol.__init__(self, reader, client_connected_cb=self._cb_client_connected, loop=loop)
        self.loop = loop
        self.__ident__ = "ESMTP smarthost"
        self.event_handler = handler
        self.data_size_limit = settings.max_message_size
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        self.hostname = settings.hostname
        self.tls_context = shared.tls.context() if shared.tls else None
        self.require_starttls = submission and self.tls_context is not None
        self._timeout_duration = settings.command_timeout
        self._timeout_handle = None
        # One timer per session: a reset only moves the deadline, the timer checks it when it fires.
        self._deadline = 0.0
        self._timer_at = 0.0
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._proxy_timeout = None
        self._auth_required = submission
        self._auth_require_tls = True
        # aiosmtpd's AUTH mechanisms check credentials synchronously; smtp_AUTH below asks the policy.
        self._auth_methods = {}
        self._authenticator = None
        self._auth_callback = login_always_fail
        # Shared by every connection: the handler's bound hooks, and the commands as plain functions.
        self._handle_hooks = _hooks(handler)
        self._ehlo_hook_ver = "new" if "EHLO" in self._handle_hooks else None
        self._smtp_methods = _commands(type(self))
        self._enforce_call_limit = False
        self._shared = shared
        self._settings = settings
        self._submission = submission
        self._listener = "submission" if submission else "relay"
        self._errors = 0
        self._awaiting_command = True
        self._counted = False
        # Whether the session's task has taken its first step.
        self._started = False
        self._admitted_ip: str | None = None
        self._data_timer_reset = 0.0
        # The command being answered, for the reply counter.
        self._stage = "connect"
        # Replies not written yet: held while the client's next command is buffered.
        self._held: list[bytes] = []
        # The client's socket, to see input the event loop has not read yet.
        self._fd = -1

    # --- connection lifecycle -------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS calls this again
        super().connection_made(transport)
        if first:
            self._shared.sessions.add(self)
            self._counted = self._shared.connections.open()
            sock = transport.get_extra_info("socket")
            self._fd = sock.fileno() if sock is not None else -1

    def eof_received(self) -> bool | None:
        if not self._started:
            # uvloop can report a client's EOF before the session's first step, and
            # aiosmtpd's EOF cancels the session: one that never ran would never close
            # its connection. Taken after that step, as asyncio's loop orders them.
            self.loop.call_soon(self.eof_received)
            return True
        return super().eof_received()

    def connection_lost(self, error: Exception | None) -> None:
        self._shared.sessions.discard(self)
        if self._counted:
            self._shared.connections.close()
            self._counted = False
        if self._admitted_ip is not None:
            self._shared.connections.leave(self._admitted_ip)
            self._admitted_ip = None
        super().connection_lost(error)

    def _create_session(self) -> RelaySession:
        session = RelaySession(self.loop)
        # STARTTLS starts a new session (RFC 3207 4.2), from the same client.
        if isinstance(self.session, RelaySession):
            session.client_ip = self.session.client_ip
        return session

    def _create_envelope(self) -> RelayEnvelope:
        return RelayEnvelope()

    def _set_post_data_state(self) -> None:
        self.envelope = self._create_envelope()

    def _set_rset_state(self) -> None:
        self._set_post_data_state()

    # Methods, not properties: aiosmtpd's __init__ reads every attribute to find auth_* methods.
    def _relay_session(self) -> RelaySession:
        assert isinstance(self.session, RelaySession)
        return self.session

    def _relay_envelope(self) -> RelayEnvelope:
        assert isinstance(self.envelope, RelayEnvelope)
        return self.envelope

    def _in_transaction(self) -> bool:
        return self.envelope is not None and self.envelope.mail_from is not None

    def _reset_timeout(self, duration: float | None = None) -> None:
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        if self._timeout_handle is None or self._deadline < self._timer_at:
            self._arm(self._deadline)

    def _arm(self, when: float) -> None:
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        self._timer_at = when
        self._timeout_handle = self.loop.call_at(when, self._timer_fired)

    def _timer_fired(self) -> None:
        if self.loop.time() < self._deadline:
            self._arm(self._deadline)
        else:
            self._timeout_cb()

    def _call_handler_hook(self, command: str, *args: Any) -> Coroutine[Any, Any, Any]:
        """The hook's own coroutine, to be awaited by the caller: aiosmtpd's wraps it in one more."""
        hook = self._handle_hooks.get(command)
        if hook is None:
            return _missing()
        return hook(self, self.session, self.envelope, *args)  # type: ignore[no-any-return]

    def _timeout_cb(self) -> None:
        log.info("session timed out", extra={"client_ip": self._relay_session().client_ip})
        self._say_and_close(TIMEOUT)

    def close_if_idle(self) -> None:
        if self._awaiting_command and not self._in_transaction():
            self._say_and_close(SHUTTING_DOWN)

    def abort(self) -> None:
        self._say_and_close(SHUTTING_DOWN)

    def _say_and_close(self, line: str | None = None) -> None:
        """Write the held replies and a last one, if any, and close; the transport flushes them first."""
        if self.transport is not None and not self.transport.is_closing():
            if line is not None:
                metrics.count_reply("session", line)
                self._held.append(line.encode("ascii") + b"\r\n")
            self._writer.write(b"".join(self._held))
            self._held.clear()
            self.transport.close()

    # --- replies --------------------------------------------------------

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            line = normalized(status)
            if line.startswith("5"):
                self._errors += 1
            metrics.count_reply(self._stage, line)
            await self._send(line.encode("ascii") + b"\r\n")
        else:
            await self._send(status + b"\r\n")

    async def _push_lines(self, lines: list[str]) -> None:
        """Greeting, HELO and EHLO replies: printable, no enhanced code (RFC 2034), built whole."""
        metrics.count_reply(self._stage, lines[-1])
        await self._send("".join(printable(line) + "\r\n" for line in lines).encode("ascii"))

    async def _send(self, reply: bytes) -> None:
        """Hold the reply while the client's next command is buffered, else write it with those held, at once."""
        held = self._held
        held.append(reply)
        if command_buffered(self._reader):
            return
        transport = self._writer.transport
        transport.write(held[0] if len(held) == 1 else b"".join(held))
        held.clear()
        # drain() has work only when the reply could not all be sent at once, or the connection is going.
        if transport.get_write_buffer_size() or transport.is_closing():
            await self._writer.drain()

    def _synchronized(self, after: str) -> bool:
        """Whether the client waited for the reply to `after`; if not, it is refused and the session closed.

        Input already read into the buffer counts, and in clear text what the
        kernel holds too (under TLS that may be a close_notify sent with QUIT).
        A client exempt by `SMARTHOST_FORBID_UNAUTH_PIPELINING=false` passes.
        """
        unread = buffered(self._reader)
        waiting = len(unread) or (0 if self._tls_protocol is not None else unread_in_kernel(self._fd))
        if not waiting:
            return True
        if self._relay_session().authenticated and not self._settings.forbid_unauth_pipelining:
            return True
        log.warning(
            "improper command pipelining: session closed",
            extra={
                "client_ip": self._relay_session().client_ip,
                "after": after,
                "bytes": waiting,
                "input": printable(bytes(unread[:100]).decode("latin-1")),
            },
        )
        metrics.PIPELINING_REFUSALS.labels(after=after.lower()).inc()
        self._say_and_close(refusal(after))
        return False

    # --- the command loop -----------------------------------------------

    async def _handle_client(self) -> None:
        self._started = True
        try:
            await self._serve()
        except asyncio.CancelledError:
            # The client went away (EOF) or the session was closed: the
            # half-closed transport must be closed for connection_lost to run.
            self._close()
            raise
        except ConnectionError as error:
            # A reply could not be written: the client is gone.
            log.info("session ended", extra={"client_ip": self._relay_session().client_ip, "error": repr(error)})
            self._close()

    async def _serve(self) -> None:
        session = self._relay_session()
        peer = session.peer
        peer_ip = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if not self._counted:
            log.warning("connection refused: too many connections", extra={"peer": peer_ip})
            metrics.CONNECTIONS.labels(listener=self._listener, outcome="too_many").inc()
            self._say_and_close(TOO_MANY_CONNECTIONS)
            return
        proxied = self._shared.proxy.trusted(peer_ip)
        client_ip = await self._client_ip(peer_ip) if proxied else peer_ip
        if client_ip is None:
            metrics.CONNECTIONS.labels(listener=self._listener, outcome="proxy_refused").inc()
            self._close()
            return
        session.client_ip = client_ip
        if not self._shared.connections.admit(client_ip):
            log.warning("connection refused: too many from this client", extra={"client_ip": client_ip})
            metrics.CONNECTIONS.labels(listener=self._listener, outcome="too_many_per_ip").inc()
            self._say_and_close(TOO_MANY_CONNECTIONS)
            return
        self._admitted_ip = client_ip
        if self._shared.sessions.draining:
            self._say_and_close(SHUTTING_DOWN)
            return
        metrics.labelled(metrics.CONNECTIONS, self._listener, "accepted").inc()
        if not self._synchronized("connect"):
            return
        await self._push_lines([f"220 {self.hostname} {self.__ident__}"])
        # A client that is not a trusted load balancer must not send a PROXY header.
        sniffer = None if proxied else HeaderSniffer()
        while self.transport is not None and not self.transport.is_closing():
            if self._shared.sessions.draining and not self._in_transaction():
                self._say_and_close(SHUTTING_DOWN)
                return
            if self._errors >= self._settings.max_errors:
                log.warning("session closed: too many errors", extra={"client_ip": client_ip})
                self._say_and_close(TOO_MANY_ERRORS)
                return
            self._awaiting_command = True
            line = await self._read_command()
            self._awaiting_command = False
            if sniffer and line is not None and sniffer.proxy_header(line):
                log.warning("PROXY header from an untrusted peer: connection dropped", extra={"peer": peer_ip})
                self._close()
                return
            try:
                await self._command(line)
            except TLSSetupException as error:
                log.info("TLS handshake failed", extra={"client_ip": client_ip, "error": repr(error.__cause__)})
                self._close()
                # The TLS layer never connected us, so it will not report the loss: do it here.
                self.connection_lost(error)
                return
            except ConnectionError:
                raise
            except Exception:
                log.exception("SMTP session error", extra={"client_ip": client_ip})
                if self.transport is None:
                    return
                await self.push("451 4.3.0 Internal error, try again later")
            if self._relay_session().disconnect:
                self._say_and_close()
                return

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def _client_ip(self, peer_ip: str) -> str | None:
        """The client a trusted load balancer's PROXY header names; None without a valid one."""
        try:
            async with asyncio.timeout(self._settings.proxy_timeout):
                data = await get_proxy(self._reader)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            log.warning("no PROXY header from a trusted peer: connection dropped", extra={"peer": peer_ip})
            return None
        client = proxied_client(data, peer_ip)
        if client is None:
            log.warning("invalid PROXY header: connection dropped", extra={"peer": peer_ip, "error": data.error})
        return client

    async def _read_command(self) -> bytes | None:
        """One line up to LF, or None for a line over the reader's limit (discarded)."""
        try:
            return await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as error:
            await self._reader.read(error.consumed)
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return None
            except asyncio.LimitOverrunError as error:
                await self._reader.read(error.consumed)

    async def _command(self, line: bytes | None) -> None:
        self._stage = "other"
        if line is None or len(line) > self._settings.max_command_length + 2:
            await self.push("500 5.5.2 Line too long")
            return
        # A command ends at CRLF; any other CR or LF could split it differently elsewhere.
        if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
            await self.push("500 5.5.2 Bare CR or LF in command refused")
            return
        verb, _, rest = line[:-2].partition(b" ")
        if not verb.isalpha():
            await self.push("500 5.5.2 Syntax error, command unrecognized")
            return
        command = verb.decode("ascii").upper()
        if command in self._smtp_methods:
            self._stage = command.lower()
        if command in END_OF_GROUP and not self._synchronized(command):
            return
        arg = rest.strip().decode("utf-8", errors="surrogateescape") or None
        if not self._tls_handshake_okay and command != "QUIT":
            await self.push("554 5.7.0 Command refused due to lack of security")
            return
        if self.require_starttls and not self._tls_protocol and command not in ALLOWED_BEFORE_STARTTLS:
            await self.push("530 5.7.0 Must issue a STARTTLS command first")
            return
        method = self._smtp_methods.get(command)
        if method is None:
            await self.push("500 5.5.2 Syntax error, command unrecognized")
            return
        self._reset_timeout()
        await method(self, arg)

    # --- commands -------------------------------------------------------

    async def smtp_HELO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push("501 5.5.4 Syntax: HELO hostname")
            return
        self._set_rset_state()
        self._relay_session().extended_smtp = False
        status = await self._call_handler_hook("HELO", hostname)
        await self._push_lines([f"250 {self.hostname}" if status is MISSING else status])

    async def smtp_EHLO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push("501 5.5.4 Syntax: EHLO hostname")
            return
        self._set_rset_state()
        self._relay_session().extended_smtp = True
        keywords = [
            self.hostname,
            "PIPELINING",
            f"SIZE {self.data_size_limit}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
        ]
        if self.tls_context and not self._tls_protocol:
            keywords.append("STARTTLS")
        if self._submission and self._tls_protocol:
            keywords.append("AUTH " + " ".join(MECHANISMS))
        lines = [f"250-{keyword}" for keyword in keywords[:-1]] + [f"250 {keywords[-1]}"]
        status = await self._call_handler_hook("EHLO", hostname, lines)
        if status is MISSING:
            self._relay_session().host_name = hostname
            status = lines
        await self._push_lines(status)

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol is not None:
            await self.push("503 5.5.1 TLS already active")
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_VRFY(self, arg: str | None) -> None:
        if await self.check_auth_needed("VRFY"):
            return
        if not arg:
            await self.push("501 5.5.4 Syntax: VRFY <address>")
            return
        await self.push("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery")

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("MAIL"):
            return
        envelope = self._relay_envelope()
        if envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        try:
            path = parse_path(arg or "", keyword="FROM", null_allowed=True)
            smtputf8, options = self._mail_options(path)
        except AddressError as error:
            await self.push(error.reply)
            return
        envelope.smtp_utf8 = smtputf8
        status = await self._call_handler_hook("MAIL", path.address, options)
        if status is MISSING:
            envelope.mail_from = path.address
            envelope.mail_options.extend(options)
            status = "250 2.1.0 Ok"
        await self.push(status)

    def _mail_options(self, path: Path) -> tuple[bool, list[str]]:
        """The MAIL parameters we advertise, checked; raises AddressError with the reply."""
        params = dict(path.params)
        if params and not self._relay_session().extended_smtp:
            raise AddressError("501 5.5.4 Syntax: MAIL FROM parameters need EHLO")
        if "SIZE" in params:
            size = params.pop("SIZE")
            if size is None or not size.isdigit():
                raise AddressError("501 5.5.4 Syntax: SIZE=<number>")
            if self.data_size_limit and int(size) > self.data_size_limit:
                raise AddressError("552 5.3.4 Message size exceeds fixed maximum message size")
        if "BODY" in params:
            body = params.pop("BODY")
            if body is None or body.upper() not in ("7BIT", "8BITMIME"):
                raise AddressError("501 5.5.4 BODY can only be 7BIT or 8BITMIME")
        smtputf8 = "SMTPUTF8" in params
        if smtputf8 and params.pop("SMTPUTF8") is not None:
            raise AddressError("501 5.5.4 SMTPUTF8 takes no value")
        if self._submission:
            # RFC 4954 5: a client may name the submitter; it changes nothing here.
            params.pop("AUTH", None)
        if params:
            raise AddressError("555 5.5.4 MAIL FROM parameters not recognized or not implemented")
        if not path.ascii and not smtputf8:
            raise AddressError("553 5.6.7 Non-ASCII address requires SMTPUTF8")
        options = [key if value is None else f"{key}={value}" for key, value in path.params.items()]
        return smtputf8, options

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("RCPT"):
            return
        envelope = self._relay_envelope()
        if envelope.mail_from is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        try:
            path = parse_path(arg or "", keyword="TO", null_allowed=False)
        except AddressError as error:
            await self.push(error.reply)
            return
        if path.params:
            await self.push("555 5.5.4 RCPT TO parameters not recognized or not implemented")
            return
        if not path.ascii and not envelope.smtp_utf8:
            await self.push("553 5.6.7 Non-ASCII address requires SMTPUTF8")
            return
        if len(envelope.rcpt_tos) >= self._settings.max_recipients:
            await self.push("452 4.5.3 Too many recipients")
            return
        status = await self._call_handler_hook("RCPT", path.address, [])
        if status is MISSING:
            envelope.rcpt_tos.append(path.address)
            status = "250 2.1.5 Ok"
        await self.push(status)

    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        envelope = self._relay_envelope()
        if not envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        reservation = await self._shared.memory.reserve(
            COPIES * _declared_size(envelope.mail_options) or GROWTH_STEP, self._settings.data_memory_wait
        )
        if reservation is None:
            log.warning("DATA refused: memory budget spent", extra={"client_ip": self._relay_session().client_ip})
            metrics.MESSAGES.labels(outcome="no_memory").inc()
            await self.push(NO_MEMORY)
            return
        try:
            status = await self._receive(envelope, reservation)
        finally:
            reservation.release()
        self._set_post_data_state()
        await self.push(status)

    async def _receive(self, envelope: RelayEnvelope, reservation: Reservation) -> str:
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._reset_timeout(self._settings.data_timeout)
        assembler = MessageAssembler(
            max_size=self.data_size_limit or self._settings.max_message_size,
            max_line=self._settings.max_line_length,
            max_header=self._settings.max_header_size,
            reservation=reservation,
        )
        while True:
            size = assembler.take(buffered(self._reader))
            if size:
                # Already buffered: read() returns it without waiting.
                ended = assembler.feed_block(await self._reader.read(size))
                self._data_arrived()
            else:
                ended = assembler.feed(await self._read_data_line())
            if ended:
                break
        self._reset_timeout()
        client_ip = self._relay_session().client_ip
        if assembler.outcome is not Outcome.OK:
            log.warning("message refused", extra={"client_ip": client_ip, "reason": assembler.outcome.name.lower()})
            metrics.MESSAGES.labels(outcome=assembler.outcome.name.lower()).inc()
            return assembler.reply()
        if assembler.normalized_lines:
            log.info(
                "bare CR, LF or NUL normalized", extra={"client_ip": client_ip, "lines": assembler.normalized_lines}
            )
            metrics.NORMALIZED_LINES.inc(assembler.normalized_lines)
        envelope.message = assembler.content
        status = await self._call_handler_hook("DATA")
        status = "250 2.0.0 Ok" if status is MISSING else str(status)
        metrics.labelled(metrics.MESSAGES, "queued" if status.startswith("250") else "refused").inc()
        return status

    async def _read_data_line(self) -> bytes:
        try:
            chunk = await self._reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as error:
            chunk = await self._reader.read(error.consumed)
        self._data_arrived()
        return chunk

    def _data_arrived(self) -> None:
        # The DATA timeout is between data, not for the whole transfer.
        now = self.loop.time()
        if now - self._data_timer_reset >= 1.0:
            self._data_timer_reset = now
            self._reset_timeout(self._settings.data_timeout)

    async def smtp_AUTH(self, arg: str | None) -> None:
        session = self._relay_session()
        if not self._submission:
            await self.push("502 5.5.1 AUTH is offered on the submission port only")
            return
        if await self.check_helo_needed("EHLO"):
            return
        if not session.extended_smtp:
            await self.push("503 5.5.1 Send EHLO first")
            return
        if self._tls_protocol is None:
            await self.push("538 5.7.11 Encryption required for requested authentication mechanism")
            return
        if session.authenticated:
            await self.push("503 5.5.1 Already authenticated")
            return
        if self._in_transaction():
            await self.push("503 5.5.1 AUTH not permitted during a mail transaction")
            return
        throttle = self._shared.auth_throttle
        if throttle.blocked(session.client_ip):
            log.warning("AUTH refused: too many failures", extra={"client_ip": session.client_ip})
            metrics.AUTHENTICATIONS.labels(result="blocked").inc()
            self._say_and_close(TOO_MANY_AUTH_FAILURES)
            return
        args = (arg or "").split()
        if not 1 <= len(args) <= 2:
            await self.push("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
            return
        mechanism = args[0].upper()
        if mechanism not in MECHANISMS:
            await self.push("504 5.5.4 Unrecognized authentication type")
            return
        initial = args[1] if len(args) == 2 else None
        credentials = await (self._plain(initial) if mechanism == "PLAIN" else self._login(initial))
        if credentials is None:
            return
        try:
            username, password = (part.decode("utf-8") for part in credentials)
        except UnicodeDecodeError:
            status = INVALID_CREDENTIALS
        else:
            status = await self.event_handler.authenticate(self, session, username, password)
        if session.authenticated:
            metrics.AUTHENTICATIONS.labels(result="success").inc()
        elif status.startswith("535"):
            # Wrong credentials, not a policy outage: slow the guesser down.
            delay = throttle.failed(session.client_ip)
            metrics.AUTHENTICATIONS.labels(result="failure").inc()
            log.warning("authentication failed", extra={"client_ip": session.client_ip, "delay": delay})
            await asyncio.sleep(delay)
        await self.push(status)

    async def _plain(self, initial: str | None) -> tuple[bytes, bytes] | None:
        """RFC 4616: authzid NUL authcid NUL password."""
        blob = await self._auth_response(initial, "")
        if blob is None:
            return None
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Cannot split authentication value")
            return None
        authzid, login, password = parts
        if authzid and authzid != login:
            await self.push("535 5.7.8 Authorization identity other than the login is not supported")
            return None
        return login, password

    async def _login(self, initial: str | None) -> tuple[bytes, bytes] | None:
        login = await self._auth_response(initial, "Username:")
        if login is None:
            return None
        password = await self._auth_response(None, "Password:")
        return None if password is None else (login, password)

    async def _auth_response(self, initial: str | None, challenge: str) -> bytes | None:
        """The initial response if given, else the answer to a 334 challenge; None once refused."""
        if initial is None:
            response = await self.challenge_auth(challenge)
            # The client must wait for each challenge too.
            if not self._synchronized("AUTH"):
                return None
            return response if isinstance(response, bytes) else None
        if initial == "=":
            return b""
        try:
            return base64.b64decode(initial, validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Cannot decode base64")
            return None


_COMMANDS: dict[type, dict[str, Callable[..., Awaitable[None]]]] = {}


def _commands(cls: type) -> dict[str, Callable[..., Awaitable[None]]]:
    """A class's SMTP commands by name, as functions taking the protocol (aiosmtpd's HELP reads them too)."""
    commands = _COMMANDS.get(cls)
    if commands is None:
        commands = _COMMANDS[cls] = {n[5:]: getattr(cls, n) for n in dir(cls) if n.startswith("smtp_")}
    return commands


@lru_cache(maxsize=1)
def _hooks(handler: Any) -> dict[str, Callable[..., Any]]:
    """The handler's `handle_*` hooks by command, bound once: a process's connections share one handler."""
    return {n[7:]: getattr(handler, n) for n in dir(handler) if n.startswith("handle_")}


async def _missing() -> object:
    return MISSING


def _declared_size(options: list[str]) -> int:
    for option in options:
        key, _, value = option.partition("=")
        if key == "SIZE" and value.isdigit():
            return int(value)
    return 0
