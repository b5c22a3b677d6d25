"""Every value in values.yaml carries a comment, on itself or on its block."""

import re

from support.chart import CHART

KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][A-Za-z0-9]*):")


def test_every_value_is_documented() -> None:
    undocumented = []
    # (indent, documented) of the blocks enclosing the current line.
    blocks: list[tuple[int, bool]] = []
    previous = ""
    for number, line in enumerate((CHART / "values.yaml").read_text().splitlines(), start=1):
        match = KEY.match(line)
        if match:
            indent = len(match["indent"])
            while blocks and blocks[-1][0] >= indent:
                blocks.pop()
            documented = previous.lstrip().startswith("#") or any(doc for _, doc in blocks)
            is_block = line.rstrip().endswith(":")
            if not documented and not is_block:
                undocumented.append(f"{number}: {line.strip()}")
            blocks.append((indent, documented))
        if line.strip():
            previous = line
    assert not undocumented
