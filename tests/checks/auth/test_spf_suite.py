"""The RFC 7208 conformance suite (openspf.org, release 2014.04) run through pyspf.

``data/rfc7208-tests.yml.gz`` is the copy Debian's python3-spf ships; its
licence is in ``data/rfc7208-tests.LICENSE``. Each scenario brings its own
zone data, answered here by a table instead of a DNS server, because the
suite needs faults (per-type timeouts, over-long labels) and record sets
that no zone file can express. The lookup contract matches
``spf_eval.resolver_lookup``: CNAMEs are followed and rows are keyed by the
queried name, as dnspython's resolver returns them.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
import spf
import yaml

from watchdog.checks.auth.spf_eval import SpfRow, evaluate

SUITE = Path(__file__).parent / "data" / "rfc7208-tests.yml.gz"
MAX_CNAME_DEPTH = 10
MAX_LABEL = 63

Zone = dict[str, list[tuple[str, Any]]]


def _records(entries: list[Any]) -> list[tuple[str, Any]]:
    """Turn a name's list of ``{TYPE: value}`` maps into (type, value) pairs.

    An SPF value doubles as TXT unless the name has TXT data of its own. A
    value of NONE publishes nothing. A bare TIMEOUT entry fails every type
    not listed before it.
    """
    records: list[tuple[str, Any]] = []
    for entry in entries:
        if entry == "TIMEOUT":
            records.append(("TIMEOUT", None))
            continue
        for rdtype, value in entry.items():
            records.append((rdtype, value))
    has_txt = any(rdtype == "TXT" for rdtype, _ in records)
    if not has_txt:
        records += [("TXT", value) for rdtype, value in records if rdtype == "SPF"]
    return [(t, v) for t, v in records if v != "NONE" and v != ["NONE"]]


def _row_value(rdtype: str, value: Any) -> Any:
    if rdtype in ("TXT", "SPF"):
        strings = [value] if isinstance(value, str) else value
        return tuple(text.encode() for text in strings)
    if rdtype == "MX":
        return (value[0], value[1])
    return value


def make_lookup(zone: Zone) -> Any:
    """Return a pyspf lookup function answering from ``zone``."""

    def lookup(name: str, qtype: str, depth: int = 0) -> list[SpfRow]:
        labels = [label for label in name.split(".") if label]
        if any(len(label) > MAX_LABEL for label in labels):
            raise spf.TempError(f"DNS label too long in {name}")
        rows: list[SpfRow] = []
        for rdtype, value in zone.get(".".join(labels).lower(), []):
            if rdtype == "TIMEOUT" and not rows:
                raise spf.TempError(f"DNS timeout for {name}")
            if value == "TIMEOUT" and rdtype == qtype:
                raise spf.TempError(f"DNS {qtype} timeout for {name}")
            if rdtype == qtype and value != "TIMEOUT":
                rows.append(((name, qtype), _row_value(rdtype, value)))
            elif rdtype == "CNAME" and qtype != "CNAME" and depth < MAX_CNAME_DEPTH:
                rows += [((name, qtype), v) for _, v in lookup(value, qtype, depth + 1)]
        return rows

    return lookup


def _cases() -> list[Any]:
    cases = []
    with gzip.open(SUITE, "rt", encoding="utf-8") as stream:
        for scenario in yaml.safe_load_all(stream):
            zone = {
                name.lower(): _records(entries)
                for name, entries in scenario["zonedata"].items()
            }
            for test_id, test in scenario["tests"].items():
                cases.append(pytest.param(zone, test, id=test_id))
    return cases


CASES = _cases()


@pytest.mark.parametrize(("zone", "test"), CASES)
def test_rfc7208_case(zone: Zone, test: dict[str, Any]) -> None:
    """pyspf returns one of the results the suite accepts."""
    expected = test["result"]
    accepted = [expected] if isinstance(expected, str) else list(expected)
    result = evaluate(
        make_lookup(zone),
        ip=test["host"],
        sender=test["mailfrom"],
        helo=test["helo"],
    )
    assert result.result in accepted
