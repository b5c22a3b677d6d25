"""The README documents every setting a service reads."""

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from smarthost_common.settings import PREFIX
from smarthost_delivery.config import DeliverySettings
from smarthost_ingress.config import IngressSettings
from smarthost_policy.config import PolicySettings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("settings", [IngressSettings, PolicySettings, DeliverySettings])
def test_every_setting_is_documented(settings: type[BaseSettings]) -> None:
    missing = [PREFIX + name.upper() for name in settings.model_fields if f"`{PREFIX}{name.upper()}`" not in README]
    assert not missing
