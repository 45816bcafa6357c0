"""The shipped catalogue loads, and schema errors name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.checks.dnsbl.catalogue import Severity, ZoneKind, load_catalogue
from watchdog.errors import RulesError

SHIPPED = Path(__file__).parents[3] / "rules" / "dnsbl.yaml"

ENABLED = {
    "zen.spamhaus.org",
    "dbl.spamhaus.org",
    "bl.spamcop.net",
    "dnsbl-1.uceprotect.net",
    "dnsbl-2.uceprotect.net",
    "dnsbl-3.uceprotect.net",
    "psbl.surriel.com",
    "bl.mailspike.net",
    "z.mailspike.net",
    "rep.mailspike.net",
    "bl.spameatingmonkey.net",
    "bl.ipv6.spameatingmonkey.net",
    "multi.surbl.org",
    "multi.uribl.com",
    "list.dnswl.org",
}
DISABLED = {
    "b.barracudacentral.org",
    "bl.score.senderscore.com",
    "authbl.dq.spamhaus.net",
    "zrd.dq.spamhaus.net",
}
INFORMATIONAL = {
    "dnsbl-2.uceprotect.net",
    "dnsbl-3.uceprotect.net",
    "rep.mailspike.net",
    "list.dnswl.org",
}
FORBIDDEN_PARTS = (
    "sorbs",
    "ahbl",
    "njabl",
    "spamcannibal",
    "emailbasura",
    "cyberlogic",
    "drand",
    "anonmails",
    "manitu",
    "abuseat",
)


def test_shipped_enabled_zones() -> None:
    catalogue = load_catalogue(SHIPPED)
    assert {name for name, zone in catalogue.items() if zone.enabled} == ENABLED


def test_shipped_disabled_zones() -> None:
    catalogue = load_catalogue(SHIPPED)
    assert {name for name, zone in catalogue.items() if not zone.enabled} == DISABLED


def test_shipped_informational_zones() -> None:
    catalogue = load_catalogue(SHIPPED)
    found = {name for name, zone in catalogue.items() if zone.informational}
    assert found == INFORMATIONAL


@pytest.mark.parametrize("part", FORBIDDEN_PARTS)
def test_shipped_has_no_dead_zone(part: str) -> None:
    assert not [name for name in load_catalogue(SHIPPED) if part in name]


@pytest.mark.parametrize("prefix", ["sbl.", "xbl.", "pbl.", "sbl-xbl."])
def test_shipped_has_no_zen_component(prefix: str) -> None:
    assert not [name for name in load_catalogue(SHIPPED) if name.startswith(prefix)]


def test_shipped_kinds() -> None:
    catalogue = load_catalogue(SHIPPED)
    assert catalogue["zen.spamhaus.org"].kinds == {ZoneKind.IP4, ZoneKind.IP6}
    assert catalogue["dbl.spamhaus.org"].kinds == {ZoneKind.DOMAIN}
    assert catalogue["bl.ipv6.spameatingmonkey.net"].kinds == {ZoneKind.IP6}


def test_shipped_pbl_is_configuration() -> None:
    codes = load_catalogue(SHIPPED)["zen.spamhaus.org"].codes
    assert codes["127.0.0.10"].severity is Severity.CONFIGURATION
    assert codes["127.0.0.11"].severity is Severity.CONFIGURATION


@pytest.mark.parametrize(
    ("zone", "code"),
    [
        ("zen.spamhaus.org", "127.255.255.252"),
        ("zen.spamhaus.org", "127.255.255.254"),
        ("zen.spamhaus.org", "127.255.255.255"),
        ("dbl.spamhaus.org", "127.0.1.255"),
        ("multi.uribl.com", "127.0.0.1"),
        ("list.dnswl.org", "127.0.0.255"),
    ],
)
def test_shipped_operator_errors(zone: str, code: str) -> None:
    assert code in load_catalogue(SHIPPED)[zone].operator_errors


def test_shipped_surbl_bit_one() -> None:
    assert 1 in load_catalogue(SHIPPED)["multi.surbl.org"].operator_error_bits


def test_shipped_dqs_names() -> None:
    catalogue = load_catalogue(SHIPPED)
    assert catalogue["zen.spamhaus.org"].dqs == "zen"
    assert catalogue["dbl.spamhaus.org"].dqs == "dbl"
    assert catalogue["zrd.dq.spamhaus.net"].needs_key


VALID = """\
zones:
  - zone: a.test
    kind: ip4
    lists: anything
    codes:
      127.0.0.2: {meaning: listed, severity: critical}
"""

BROKEN = [
    # (description, replaced text, replacement, line, field)
    ("missing field", "    lists: anything\n", "", 2, "lists"),
    (
        "unknown field",
        "    lists: anything\n",
        "    lists: x\n    colour: red\n",
        5,
        "colour",
    ),
    ("bad kind", "kind: ip4", "kind: ip5", 3, "kind"),
    ("bad severity", "severity: critical", "severity: dire", 5, "codes"),
    ("code outside loopback", "127.0.0.2:", "10.0.0.2:", 5, "codes"),
    ("not a bit", "codes:\n      127.0.0.2", "bits:\n      3", 5, "bits"),
    (
        "flag not boolean",
        "    lists: anything\n",
        "    lists: x\n    enabled: maybe\n",
        5,
        "enabled",
    ),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zones.yaml"
    path.write_text(text)
    return path


def test_valid_catalogue_loads(tmp_path: Path) -> None:
    zone = load_catalogue(_write(tmp_path, VALID))["a.test"]
    assert zone.codes["127.0.0.2"].severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_schema_error_location(
    tmp_path: Path, old: str, new: str, line: int, field: str
) -> None:
    assert old in VALID
    path = _write(tmp_path, VALID.replace(old, new))
    with pytest.raises(RulesError) as caught:
        load_catalogue(path)
    assert caught.value.path == str(path)
    assert caught.value.line == line
    assert caught.value.field == field
    assert f"{path}:{line}:" in str(caught.value)


def test_duplicate_zone_rejected(tmp_path: Path) -> None:
    body = VALID.removeprefix("zones:\n")
    with pytest.raises(RulesError, match="listed twice"):
        load_catalogue(_write(tmp_path, "zones:\n" + body + body))


def test_invalid_yaml_rejected(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        load_catalogue(_write(tmp_path, "zones: [\n"))
    assert caught.value.line is not None


def test_missing_zones_list_rejected(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        load_catalogue(_write(tmp_path, "zone: a.test\n"))
    assert caught.value.field == "zones"


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_catalogue(tmp_path / "absent.yaml")
