"""The DATA section, assembled line by line into the bytes that get queued.

Only `CRLF.CRLF` ends DATA (the protocol reads lines up to CRLF). Inside a
line, a bare CR or LF is what smuggling rides on: a next hop that ends lines
at LF alone would read a second message where we saw one. Such bytes are
never queued as they came: each bare CR or LF becomes CRLF (Postfix's
`smtpd_forbid_bare_newline = normalize`), and NUL, which some servers drop
before looking for the dot, is removed. The queued bytes then contain CR
and LF only as CRLF pairs, and delivery's dot-stuffing covers every line.

Lines are taken in blocks, as many as the reader holds: a block without a
bare CR, LF or NUL, a line too long or a limit reached (nearly every
block of nearly every message) is unstuffed and appended with bytes
methods at once; any other block, and the header, go line by line, so a
refusal is the one the first offending line gets.

Memory is accounted as the content grows against a `Reservation` of the
process-wide DATA budget; a transfer that cannot grow keeps reading to the
end of DATA (so the session stays in step) and is refused with 452 4.3.1.
"""

from enum import Enum

from smarthost_common.line_ends import crlf_only
from smarthost_common.memory_budget import Reservation
from smarthost_ingress.replies import NO_MEMORY

END_OF_DATA = b"\r\n.\r\n"
# Memory is claimed from the budget in steps of this size, not per line.
GROWTH_STEP = 1024 * 1024
# Memory per byte of content: the content, and room for the copy the
# PostgreSQL driver makes while writing it to the disk tier. The memory
# tier's write to Redis copies nothing (uvloop sends the buffer as it is):
# measured, peak RSS grows by about the content held.
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
        self._window = (max_line + 3) // 2
        self._max_header = max_header
        self._reservation = reservation
        self._continuing = False
        self._in_header = True
        self._header_length = 0

    def reply(self) -> str:
        """The refusal for a failed outcome."""
        assert self.outcome is not Outcome.OK
        return str(self.outcome.value).format(line=self._max_line, header=self._max_header)

    def take(self, buffer: bytes | bytearray) -> int:
        """How much of the reader's buffer to read as one block; 0 when it holds no complete line.

        Through the end of DATA when it is there (what follows is the next command), else every complete line.
        """
        if not self._continuing and buffer.startswith(b".\r\n"):
            return 3
        end = buffer.find(END_OF_DATA)
        if end >= 0:
            return end + len(END_OF_DATA)
        return buffer.rfind(b"\r\n") + 2 if b"\r\n" in buffer else 0

    def feed_block(self, block: bytes) -> bool:
        """Take a block of CRLF-terminated lines (see `take`); returns True at the end of DATA."""
        ended = block.endswith(END_OF_DATA) or (block == b".\r\n" and not self._continuing)
        lines = block[:-3] if ended else block
        if self.outcome is not Outcome.OK:
            # Nothing of a refused message is kept; the block ends at a line end.
            self._continuing = False
            return ended
        start = 0
        # The header's fields are measured one by one, as is the rest of a line begun in pieces.
        while start < len(lines) and (self._in_header or self._continuing):
            end = lines.index(b"\r\n", start) + 2
            self.feed(lines[start:end])
            start = end
        rest = lines[start:] if start else lines
        if rest and not self._append_clean(rest):
            start = 0
            while start < len(rest):
                end = rest.index(b"\r\n", start) + 2
                self.feed(rest[start:end])
                start = end
        return ended

    def _append_clean(self, lines: bytes) -> bool:
        """Append whole body lines at once, if none needs normalizing or fails a limit; False: nothing done."""
        if self.outcome is not Outcome.OK or b"\x00" in lines or not crlf_only(lines):
            return False
        unstuffed = lines.replace(b"\r\n.", b"\r\n")
        if unstuffed.startswith(b"."):
            unstuffed = unstuffed[1:]
        if self._may_hold_long_line(unstuffed) and max(map(len, unstuffed.split(b"\r\n"))) > self._max_line:
            return False
        size = len(self.content) + len(unstuffed)
        if size > self._max_size:
            return False
        needed = COPIES * size
        if needed > self._reservation.size and not self._reservation.grow(
            max(GROWTH_STEP, needed - self._reservation.size)
        ):
            return False
        self.content += unstuffed
        return True

    def _may_hold_long_line(self, lines: bytes) -> bool:
        """False when every line is surely within the limit, by a LF in each window of `_window` bytes.

        A run of 2w - 1 bytes without LF covers a whole window, so with a LF in each one every line
        (its CR aside) is at most 2w - 3 <= max_line bytes: a few memchr calls instead of one bytes
        object per line. Only a block this cannot clear is split and measured line by line.
        """
        window = self._window
        find = lines.find
        return any(find(b"\n", start, start + window) < 0 for start in range(0, len(lines) - window + 1, window))

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
