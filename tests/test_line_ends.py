"""The CRLF-only check against its definition, on every short string of the bytes that matter."""

import re
from itertools import product

from smarthost_common.line_ends import crlf_only

BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def test_crlf_only_exactly_when_no_cr_or_lf_is_bare() -> None:
    for length in range(8):
        for parts in product([b"a", b".", b"\r", b"\n"], repeat=length):
            data = b"".join(parts)
            assert crlf_only(data) == (BARE.search(data) is None), data
            assert crlf_only(bytearray(data)) == crlf_only(data)
