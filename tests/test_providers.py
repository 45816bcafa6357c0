"""Provider groups come from rules/providers.yaml and stay a small fixed set."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.errors import RulesError
from watchdog.providers import ProviderMap, default_provider_map, load_provider_map


@pytest.mark.parametrize(
    ("address", "provider"),
    [
        ("a@gmail.com", "gmail"),
        ("a@GoogleMail.com", "gmail"),
        ("a@hotmail.fr", "outlook"),
        ("a@hotmail.co.uk", "outlook"),
        ("a@outlook.com", "outlook"),
        ("a@yahoo.co.jp", "yahoo"),
        ("a@aol.com", "yahoo"),
        ("a@me.com", "icloud"),
        ("a@example.com", "other"),
        ("a@mail.yahoo.example", "other"),
        ("gmail.com", "gmail"),
    ],
)
def test_shipped_groups(address: str, provider: str) -> None:
    assert default_provider_map().provider(address) == provider


def test_subdomain_not_matched() -> None:
    providers = ProviderMap({"gmail": ["gmail.com"]})
    assert providers.provider("a@corp.gmail.com") == "other"


def test_malformed_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text("gmail: gmail.com\n")
    with pytest.raises(RulesError, match="list of domains"):
        load_provider_map(path)
