"""The README documents every setting a service reads, and the docs stand on their own."""

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from smarthost_common.settings import PREFIX
from smarthost_delivery.config import DeliverySettings
from smarthost_ingress.config import IngressSettings
from smarthost_policy.config import PolicySettings

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#]*)(#[^)]*)?\)")


@pytest.mark.parametrize("settings", [IngressSettings, PolicySettings, DeliverySettings])
def test_every_setting_is_documented(settings: type[BaseSettings]) -> None:
    missing = [PREFIX + name.upper() for name in settings.model_fields if f"`{PREFIX}{name.upper()}`" not in README]
    assert not missing


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_docs_send_readers_only_into_the_repository(doc: Path) -> None:
    text = doc.read_text()
    assert "DESIGN.md" not in text and "../shared" not in text
    # An anchor alone points into the same file; the README links to no other site.
    for target, _anchor in LINK.findall(text):
        if target and (doc.name == "README.md" or not target.startswith(("http://", "https://"))):
            assert (doc.parent / target).exists(), f"{doc.name} links to {target!r}"
