"""Mailbox provider groups (gmail, outlook, yahoo, icloud, other) by domain."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from watchdog.errors import RulesError
from watchdog.rules_path import rules_dir

OTHER = "other"


class ProviderMap:
    """Map recipient domains to a small fixed set of provider groups."""

    def __init__(self, groups: dict[str, list[str]]) -> None:
        self._exact: dict[str, str] = {}
        self._any_suffix: dict[str, str] = {}
        for group, patterns in groups.items():
            for pattern in patterns:
                name = pattern.lower().rstrip(".")
                if name.endswith(".*"):
                    self._any_suffix[name[:-2]] = group
                else:
                    self._exact[name] = group

    def provider(self, address: str) -> str:
        """Return the provider group of an address or bare domain."""
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if domain in self._exact:
            return self._exact[domain]
        stem, _, _ = domain.rpartition(".")
        # "hotmail.*" matches hotmail.fr, and with a second-level suffix
        # such as hotmail.co.uk the stem is checked without its last label.
        while stem:
            if stem in self._any_suffix:
                return self._any_suffix[stem]
            stem = stem.rpartition(".")[0] if "." in stem else ""
        return OTHER


def load_provider_map(path: Path) -> ProviderMap:
    """Read a provider groups file; raise RulesError when it is malformed."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        msg = f"cannot read provider groups {str(path)!r}: {exc}"
        raise RulesError(msg, path=str(path)) from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str)
        and isinstance(v, list)
        and all(isinstance(d, str) for d in v)
        for k, v in data.items()
    ):
        msg = f"{str(path)!r} must map each group name to a list of domains"
        raise RulesError(msg, path=str(path))
    return ProviderMap(data)


@functools.cache
def default_provider_map(directory: Path | None = None) -> ProviderMap:
    """Return the provider map from ``providers.yaml`` in the rules directory."""
    return load_provider_map(rules_dir(directory) / "providers.yaml")
