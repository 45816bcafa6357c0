"""Zones are chosen from the catalogue, the settings and the DQS key."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.checks.dnsbl.catalogue import Zone, ZoneKind, load_catalogue
from watchdog.checks.dnsbl.selection import read_dqs_key, select_zones
from watchdog.config import Blocklists
from watchdog.errors import ConfigError

SHIPPED = Path(__file__).parents[3] / "rules" / "dnsbl.yaml"


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Zone]:
    return load_catalogue(SHIPPED)


def _names(zones: list[Zone]) -> set[str]:
    return {zone.name for zone in zones}


def test_default_set(catalogue: dict[str, Zone]) -> None:
    names = _names(select_zones(catalogue, Blocklists()))
    assert "zen.spamhaus.org" in names
    assert "b.barracudacentral.org" not in names


def test_enable_adds_zone(catalogue: dict[str, Zone]) -> None:
    chosen = select_zones(catalogue, Blocklists(enable=["b.barracudacentral.org"]))
    assert "b.barracudacentral.org" in _names(chosen)


def test_disable_drops_zone(catalogue: dict[str, Zone]) -> None:
    chosen = select_zones(catalogue, Blocklists(disable=["bl.spamcop.net"]))
    assert "bl.spamcop.net" not in _names(chosen)


def test_unknown_enable_rejected(catalogue: dict[str, Zone]) -> None:
    with pytest.raises(ConfigError) as caught:
        select_zones(catalogue, Blocklists(enable=["dnsbl.sorbs.net"]))
    assert caught.value.key == "blocklists.enable"


def test_needs_key_without_key(catalogue: dict[str, Zone]) -> None:
    with pytest.raises(ConfigError) as caught:
        select_zones(catalogue, Blocklists(enable=["zrd.dq.spamhaus.net"]))
    assert caught.value.key == "blocklists.dqs_key_file"


def _key_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "dqs.key"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_dqs_key_rewrites_zones(catalogue: dict[str, Zone], tmp_path: Path) -> None:
    settings = Blocklists(
        dqs_key_file=_key_file(tmp_path, "abc123\n"), enable=["zrd.dq.spamhaus.net"]
    )
    zones = {zone.name: zone for zone in select_zones(catalogue, settings)}
    assert zones["zen.spamhaus.org"].query_zone == "abc123.zen.dq.spamhaus.net"
    assert zones["dbl.spamhaus.org"].query_zone == "abc123.dbl.dq.spamhaus.net"
    assert zones["zrd.dq.spamhaus.net"].query_zone == "abc123.zrd.dq.spamhaus.net"
    assert zones["bl.spamcop.net"].query_zone == "bl.spamcop.net"


def test_only_keeps_order_and_unknown(catalogue: dict[str, Zone]) -> None:
    zones = select_zones(catalogue, Blocklists(), only=["X.test.", "bl.spamcop.net"])
    assert [zone.name for zone in zones] == ["x.test", "bl.spamcop.net"]
    assert zones[0].kinds == {ZoneKind.IP4, ZoneKind.IP6}


def test_key_file_world_readable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="chmod 600"):
        read_dqs_key(_key_file(tmp_path, "abc123", 0o644))


def test_key_file_not_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not contain a key"):
        read_dqs_key(_key_file(tmp_path, "abc 123; rm"))


def test_key_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_dqs_key(tmp_path / "absent")
