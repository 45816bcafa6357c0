"""Targets are classified and turned into query names."""

from __future__ import annotations

import pytest

from watchdog.checks.dnsbl.catalogue import Zone, ZoneKind
from watchdog.checks.dnsbl.targets import (
    TEST_POINTS,
    Target,
    parse_target,
    query_name,
    targets_from_settings,
)
from watchdog.config import Sending, Settings
from watchdog.errors import ConfigError

ZONE = Zone(name="bl.test", kinds=frozenset({ZoneKind.IP4}))
V6_REVERSED = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"

NAMES = [
    ("192.0.2.10", "10.2.0.192.bl.test"),
    ("2001:db8:1::5", f"{V6_REVERSED}.bl.test"),
    ("Example.COM.", "example.com.bl.test"),
    ("bücher.example", "xn--bcher-kva.example.bl.test"),
]


@pytest.mark.parametrize(("text", "name"), NAMES)
def test_query_name(text: str, name: str) -> None:
    assert query_name(parse_target(text), ZONE) == name


def test_ipv6_has_32_nibbles() -> None:
    name = query_name(parse_target("2001:db8:1::5"), ZONE)
    assert len(name.removesuffix(".bl.test").split(".")) == 32


def test_dqs_zone_used_in_name() -> None:
    keyed = Zone(name="zen.test", kinds=frozenset({ZoneKind.IP4}), dqs="zen")
    name = query_name(parse_target("192.0.2.10"), keyed.with_dqs_key("abc123"))
    assert name == "10.2.0.192.abc123.zen.dq.spamhaus.net"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("192.0.2.1", ZoneKind.IP4),
        ("2001:db8::1", ZoneKind.IP6),
        ("example.com", ZoneKind.DOMAIN),
    ],
)
def test_parse_target_kind(text: str, kind: ZoneKind) -> None:
    assert parse_target(text).kind is kind


def test_parse_target_rejects_garbage() -> None:
    with pytest.raises(ConfigError, match="invalid target"):
        parse_target("not a name!")


def test_ipv6_test_points() -> None:
    listed, unlisted = TEST_POINTS[ZoneKind.IP6]
    assert query_name(listed, ZONE).startswith("2.0.0.0.0.0.f.7.f.f.f.f.0")
    assert query_name(unlisted, ZONE).startswith("1.0.0.0.0.0.f.7.f.f.f.f.0")


def test_targets_from_settings() -> None:
    settings = Settings(
        sending=Sending(ips=["192.0.2.1", "192.0.2.1"], domains=["example.com"])
    )
    assert targets_from_settings(settings) == [
        Target("192.0.2.1", ZoneKind.IP4),
        Target("example.com", ZoneKind.DOMAIN),
    ]
