"""Dashboards and alert rules name only metrics the daemon exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from watchdog.metrics import Metrics

ROOT = Path(__file__).parent.parent
# Recording rules (level:metric:operations) are skipped by the lookarounds.
NAME = re.compile(r"(?<![:\w])mailwatchdog_[a-z0-9_]+(?![:\w])")


def _exported() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
            "info": ["_info"],
        }.get(family.type, [""])
        names.update(family.name + suffix for suffix in suffixes)
    return names


def _expressions_in_rules() -> list[str]:
    rules = yaml.safe_load((ROOT / "rules" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _expressions_in_dashboard() -> list[str]:
    dashboard = json.loads((ROOT / "grafana" / "mail-watchdog.json").read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_alert_rules_use_exported_names() -> None:
    used = {name for expr in _expressions_in_rules() for name in NAME.findall(expr)}
    assert used - _exported() == set()


def test_dashboard_uses_exported_names() -> None:
    used = {name for expr in _expressions_in_dashboard() for name in NAME.findall(expr)}
    assert used - _exported() == set()
