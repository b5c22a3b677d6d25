"""The DATA section, assembled line by line into the bytes that get queued.

Only `CRLF.CRLF` ends DATA (the protocol reads lines up to CRLF). Inside a
line, a bare CR or LF is what smuggling rides on: a next hop that ends lines
at LF alone would read a second message where we saw one. Such bytes are
never queued as they came: each bare CR or LF becomes CRLF (Postfix's
`smtpd_forbid_bare_newline = normalize`), and NUL, which some servers drop
before looking for the dot, is removed. The queued bytes then contain CR
and LF only as CRLF pairs, and delivery's dot-stuffing covers every line.

Memory is accounted as the content grows against a `Reservation` of the
process-wide DATA budget; a transfer that cannot grow keeps reading to the
end of DATA (so the session stays in step) and is refused with 452 4.3.1.
"""

from enum import Enum

from smarthost_common.memory_budget import Reservation
from smarthost_ingress.replies import NO_MEMORY

# Memory is claimed from the budget in steps of this size, not per line.
GROWTH_STEP = 1024 * 1024
# Memory per byte of content: the content, and the copy the Redis client
# makes of it while writing it to the queue (measured: peak RSS grows by
# about twice the content held).
COPIES = 2


class Outcome(Enum):
    OK = None
    TOO_BIG = "552 5.3.4 Message size exceeds fixed limit"
    LINE_TOO_LONG = "554 5.6.0 Message line too long (limit {line} octets)"
    HEADER_TOO_LONG = "554 5.6.0 Message header too long (limit {header} octets)"
    NO_MEMORY = NO_MEMORY


class MessageAssembler:
    def __init__(self, *, max_size: int, max_line: int, max_header: int, reservation: Reservation) -> None:
        self.content = bytearray()
        self.outcome = Outcome.OK
        # Lines that carried a bare CR, bare LF or NUL, for the log.
        self.normalized_lines = 0
        self._max_size = max_size
        self._max_line = max_line
        self._max_header = max_header
        self._reservation = reservation
        self._continuing = False
        self._in_header = True
        self._header_length = 0

    def reply(self) -> str:
        """The refusal for a failed outcome."""
        assert self.outcome is not Outcome.OK
        return str(self.outcome.value).format(line=self._max_line, header=self._max_header)

    def feed(self, chunk: bytes) -> bool:
        """Take one CRLF-terminated line, or a fragment of an over-long one.

        Returns True at the end of DATA. After a failure, lines are only
        consumed, not kept.
        """
        starts_line = not self._continuing
        complete = chunk.endswith(b"\r\n")
        self._continuing = not complete
        if starts_line and chunk == b".\r\n":
            return True
        if not complete:
            # Only a line longer than the reader's limit arrives in pieces.
            self._fail(Outcome.LINE_TOO_LONG)
            return False
        if self.outcome is not Outcome.OK:
            return False
        line = chunk[1:-2] if starts_line and chunk.startswith(b".") else chunk[:-2]
        if len(line) > self._max_line:
            self._fail(Outcome.LINE_TOO_LONG)
            return False
        if b"\r" in line or b"\n" in line or b"\x00" in line:
            self.normalized_lines += 1
            line = line.replace(b"\x00", b"").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        self._track_header(line)
        if self.outcome is not Outcome.OK:
            return False
        self.content += line
        self.content += b"\r\n"
        needed = COPIES * len(self.content)
        if len(self.content) > self._max_size:
            self._fail(Outcome.TOO_BIG)
        elif needed > self._reservation.size and not self._reservation.grow(
            max(GROWTH_STEP, needed - self._reservation.size)
        ):
            self._fail(Outcome.NO_MEMORY)
        return False

    def _track_header(self, line: bytes) -> None:
        if not self._in_header:
            return
        if not line:
            self._in_header = False
        elif line[:1] in (b" ", b"\t"):
            self._header_length += len(line) + 2
        else:
            self._header_length = len(line) + 2
        if self._header_length > self._max_header:
            self._fail(Outcome.HEADER_TOO_LONG)

    def _fail(self, outcome: Outcome) -> None:
        if self.outcome is Outcome.OK:
            self.outcome = outcome
        # Nothing of a refused message is kept: free it for the others now.
        self.content = bytearray()
        self._reservation.shrink_to(0)
