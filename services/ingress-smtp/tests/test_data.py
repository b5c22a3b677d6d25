import asyncio
import re

import pytest

from smarthost_common.memory_budget import MemoryBudget, Reservation
from smarthost_ingress.data import GROWTH_STEP, MessageAssembler, Outcome

MiB = 1024 * 1024


def reservation(budget: int = 64 * MiB, size: int = GROWTH_STEP) -> Reservation:
    async def reserve() -> Reservation | None:
        return await MemoryBudget(budget).reserve(size, wait=0)

    taken = asyncio.run(reserve())
    assert taken is not None
    return taken


def assemble(data: bytes, **limits: int) -> MessageAssembler:
    """Feed `data` as the protocol reads it: line by line up to CRLF."""
    settings = {"max_size": 10 * MiB, "max_line": 998, "max_header": 100_000, **limits}
    assembler = MessageAssembler(reservation=reservation(), **settings)
    lines = re.findall(rb".*?\r\n", data, flags=re.DOTALL)
    assert b"".join(lines) == data, "test data must end with CRLF"
    for line in lines:
        if assembler.feed(line):
            return assembler
    raise AssertionError("no end of DATA")


def test_dot_stuffing_is_undone_and_only_crlf_dot_crlf_ends() -> None:
    # ".\n." is one line: its first dot is transparency, its LF a bare one.
    assembler = assemble(b"Subject: x\r\n\r\n..leading dot\r\n.\n.\r\n.\r\n")
    assert bytes(assembler.content) == b"Subject: x\r\n\r\n.leading dot\r\n\r\n.\r\n"
    assert assembler.outcome is Outcome.OK


@pytest.mark.parametrize("bare", [b"\n", b"\r", b"\x00"])
def test_bare_cr_lf_and_nul_never_reach_the_content(bare: bytes) -> None:
    assembler = assemble(b"Subject: x\r\n\r\none" + bare + b"two\r\n.\r\n")
    content = bytes(assembler.content)
    assert not re.search(rb"\r(?!\n)|(?<!\r)\n|\x00", content)
    assert assembler.normalized_lines == 1
    assert content.endswith(b"one\r\ntwo\r\n" if bare != b"\x00" else b"onetwo\r\n")


def test_limits_refuse_but_keep_reading_to_the_end() -> None:
    assert assemble(b"x" * 999 + b"\r\n.\r\n").outcome is Outcome.LINE_TOO_LONG
    assert assemble(b"." + b"x" * 998 + b"\r\n.\r\n").outcome is Outcome.OK  # the stuffed dot does not count
    assert assemble(b"a: b\r\n\r\n" + b"x" * 500 + b"\r\n.\r\n", max_size=300).outcome is Outcome.TOO_BIG
    folded = b"Subject: x\r\n" + b" y\r\n" * 10 + b"\r\n.\r\n"
    assembler = assemble(folded, max_header=30)
    assert assembler.outcome is Outcome.HEADER_TOO_LONG
    assert assembler.reply() == "554 5.6.0 Message header too long (limit 30 octets)"
    assert assembler.content == bytearray()


def test_fragment_of_an_over_long_line_is_not_an_end() -> None:
    assembler = MessageAssembler(max_size=MiB, max_line=998, max_header=1000, reservation=reservation())
    assert not assembler.feed(b"x" * 2000)
    assert not assembler.feed(b".\r\n")  # the tail of that line, not a lone dot
    assert assembler.feed(b".\r\n")
    assert assembler.outcome is Outcome.LINE_TOO_LONG


def test_content_beyond_the_memory_budget_is_refused_with_452() -> None:
    taken = reservation(budget=4 * MiB, size=MiB)
    assembler = MessageAssembler(max_size=10 * MiB, max_line=998, max_header=1000, reservation=taken)
    line = b"y" * 900 + b"\r\n"
    for _ in range(4000):
        assembler.feed(line)
    assert assembler.outcome is Outcome.NO_MEMORY
    assert assembler.reply().startswith("452 4.3.1")
    assert taken.size == 0
