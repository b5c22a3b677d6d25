"""DATA's payload against the plain definition: CRLF line endings, a dot doubled at every line start, the end mark."""

import re

from hypothesis import example, given
from hypothesis import strategies as st

from smarthost_delivery.smtp_client import data_payload


def reference(message: bytes) -> bytes:
    lines = re.split(rb"\r\n|\r|\n", message)
    if len(lines) > 1 and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


# A CR and a LF in order but apart: neither is a line end.
@example(b"\r.\n")
@given(st.lists(st.sampled_from([b".", b"a", b"\r", b"\n", b"\r\n", b"\r\n.", b".."]), max_size=30).map(b"".join))
def test_payload_is_normalized_and_stuffed(message: bytes) -> None:
    assert data_payload(message) == reference(message)
