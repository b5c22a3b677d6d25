"""The DATA fast path (whole blocks of lines at once) against the line-by-line path it stands in for.

Both must queue the same bytes and refuse the same messages: the block path
only decides faster that a block is clean. Line lengths cluster around the
limit, where the block path's window check is exact or falls back.
"""

from itertools import pairwise

from hypothesis import example, given, settings
from hypothesis import strategies as st

from smarthost_common.memory_budget import MemoryBudget, Reservation
from smarthost_ingress.data import MessageAssembler

MAX_LINE = 100

# Lines as the client sends them: a lone "." or a CRLF inside would end DATA or the line early.
LINE = st.one_of(
    st.text(alphabet="ab.", max_size=3 * MAX_LINE),
    st.builds(lambda n: "x" * n, st.integers(MAX_LINE - 3, MAX_LINE + 3)),
    st.text(alphabet="a.\r\n\x00", max_size=8),
).filter(lambda line: line != "." and "\r\n" not in line)


def assembler() -> MessageAssembler:
    reservation = Reservation(MemoryBudget(1 << 30), 0)
    return MessageAssembler(max_size=1 << 20, max_line=MAX_LINE, max_header=4 * MAX_LINE, reservation=reservation)


@settings(max_examples=400, deadline=None)
# A CR and a LF in order but apart: neither is a line end.
@example(header=[], body=["a\r.\nb"], cuts=[])
@given(
    header=st.lists(LINE.filter(lambda line: line != ""), max_size=3),
    body=st.lists(LINE, max_size=40),
    cuts=st.lists(st.integers(0, 45), max_size=6),
)
def test_blocks_queue_and_refuse_as_lines_do(header: list[str], body: list[str], cuts: list[int]) -> None:
    lines = [f"{line}\r\n".encode() for line in [*header, "", *body]] + [b".\r\n"]

    by_line = assembler()
    for line in lines:
        if by_line.feed(line):
            break

    by_block = assembler()
    # The reader hands over whole lines, cut anywhere between them, the end of DATA in the last block.
    edges = sorted({cut for cut in cuts if 0 < cut < len(lines) - 1} | {0, len(lines) - 1})
    blocks = [b"".join(lines[start:end]) for start, end in pairwise(edges)]
    blocks[-1] += b".\r\n"
    assert [by_block.feed_block(block) for block in blocks] == [False] * (len(blocks) - 1) + [True]

    assert by_block.outcome == by_line.outcome
    assert bytes(by_block.content) == bytes(by_line.content)
