"""MTA-STS: the TXT record, the policy fetched over HTTPS and the MX match."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.asyncresolver
import pytest

from tests.checks.auth.policy_server import Reply, run_policy_server
from watchdog.checks.auth.findings import Finding, Status
from watchdog.checks.auth.lookup import Lookup
from watchdog.checks.auth.mta_sts import check_mta_sts
from watchdog.checks.auth.mta_sts_drift import PolicyHistory, UnavailableHistory
from watchdog.checks.auth.mta_sts_policy import (
    HttpsPolicyFetcher,
    PolicySyntaxError,
    mx_matches,
    parse_policy,
)
from watchdog.store import Store
from watchdog.store.mta_sts_history import MtaStsHistory

pytestmark = pytest.mark.dns

GOOD_POLICY = "version: STSv1\nmode: enforce\nmx: *.good.test\nmax_age: 604800\n"
CRLF_POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mx1.crlf.test\r\nmax_age: 86400\r\n"
)
REPLIES = {
    "mta-sts.good.test": Reply(GOOD_POLICY),
    "mta-sts.crlf.test": Reply(CRLF_POLICY),
    "mta-sts.moved.test": Reply("", status=301, location="https://elsewhere.test/"),
    "mta-sts.mismatch.test": Reply(GOOD_POLICY.replace("*.good.test", "mx.other.test")),
    "mta-sts.html.test": Reply(GOOD_POLICY, content_type="text/html"),
    "mta-sts.testmode.test": Reply(
        GOOD_POLICY.replace("enforce", "testing").replace(
            "*.good.test", "mx.other.test"
        )
    ),
}


@pytest.fixture(scope="module")
def fetcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsPolicyFetcher]:
    """A fetcher pointed at the local policy server, trusting its certificate."""
    directory: Path = tmp_path_factory.mktemp("mta-sts")
    with run_policy_server(REPLIES, directory) as (port, ca_file):
        yield HttpsPolicyFetcher(base_url=f"https://127.0.0.1:{port}", ca_file=ca_file)


async def _check(
    resolver: dns.asyncresolver.Resolver,
    fetcher: HttpsPolicyFetcher,
    domain: str,
    mx_hosts: list[str],
) -> dict[str, Status]:
    findings: list[Finding] = await check_mta_sts(
        Lookup(resolver), fetcher, domain, mx_hosts
    )
    return {finding.reason: finding.status for finding in findings}


async def test_good_policy(
    resolver: dns.asyncresolver.Resolver, fetcher: HttpsPolicyFetcher
) -> None:
    """A valid record and policy that cover the MX host are ok."""
    found = await _check(resolver, fetcher, "good.test", ["mail.good.test"])
    assert found == {"mta_sts_ok": Status.OK}


async def test_crlf_policy(
    resolver: dns.asyncresolver.Resolver, fetcher: HttpsPolicyFetcher
) -> None:
    """CRLF line endings parse like LF; a max_age of a day is accepted."""
    found = await _check(resolver, fetcher, "crlf.test", ["mx1.crlf.test"])
    assert found == {"mta_sts_ok": Status.OK}


@pytest.mark.parametrize(
    ("domain", "reason", "status"),
    [
        ("moved.test", "mta_sts_http_status", Status.ERROR),
        ("mismatch.test", "mta_sts_mx_mismatch", Status.ERROR),
        ("html.test", "mta_sts_content_type", Status.ERROR),
        ("testmode.test", "mta_sts_mx_mismatch", Status.WARNING),
        ("badid.test", "mta_sts_invalid_record", Status.ERROR),
        ("twosts.test", "mta_sts_multiple", Status.ERROR),
        ("nothere.test", "mta_sts_missing", Status.OK),
    ],
)
async def test_policy_defects(
    resolver: dns.asyncresolver.Resolver,
    fetcher: HttpsPolicyFetcher,
    domain: str,
    reason: str,
    status: Status,
) -> None:
    """Each defect gives its reason at its level; redirects are not followed."""
    found = await _check(resolver, fetcher, domain, ["mail.good.test"])
    assert reason in found
    assert found[reason] is status


async def test_untrusted_certificate(
    resolver: dns.asyncresolver.Resolver, tmp_path: Path
) -> None:
    """Without the test CA the certificate fails verification."""
    with run_policy_server(REPLIES, tmp_path) as (port, _ca_file):
        untrusting = HttpsPolicyFetcher(base_url=f"https://127.0.0.1:{port}")
        found = await _check(resolver, untrusting, "good.test", ["mail.good.test"])
    assert found == {"mta_sts_fetch_failed": Status.ERROR}


@pytest.mark.parametrize(
    "body",
    [
        "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
        "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 99999999\n",
        "version: STSv1\nmode: enforce\nmax_age: 86400\n",
        "version: STSv1\nmode: enforce\nmx: a.*.test\nmax_age: 86400\n",
        "version STSv1\n",
    ],
)
def test_policy_rejected(body: str) -> None:
    """Bad version, mode, max_age, missing mx and misplaced '*' raise."""
    with pytest.raises(PolicySyntaxError):
        parse_policy(body)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("mx1.good.test", True),
        ("MX1.Good.Test.", True),
        ("a.mx1.good.test", False),
        ("good.test", False),
        ("mx.other.test", True),
    ],
)
def test_mx_patterns(host: str, expected: bool) -> None:
    """'*.' covers exactly one leftmost label."""
    assert mx_matches(host, ["*.good.test", "mx.other.test"]) is expected


async def _check_with_history(
    resolver: dns.asyncresolver.Resolver,
    fetcher: HttpsPolicyFetcher,
    history: PolicyHistory | UnavailableHistory,
) -> dict[str, Finding]:
    findings = await check_mta_sts(
        Lookup(resolver), fetcher, "good.test", ["mail.good.test"], history
    )
    return {finding.reason: finding for finding in findings}


async def test_policy_drift_same_id(
    resolver: dns.asyncresolver.Resolver, tmp_path: Path
) -> None:
    """A policy served anew under the same TXT id is an error on the next audit."""
    store = Store(f"sqlite:///{tmp_path / 'watchdog.db'}")
    store.upgrade()
    history = MtaStsHistory.of(store)
    replies = {"mta-sts.good.test": Reply(GOOD_POLICY)}
    try:
        with run_policy_server(replies, tmp_path) as (port, ca_file):
            fetcher = HttpsPolicyFetcher(
                base_url=f"https://127.0.0.1:{port}", ca_file=ca_file
            )
            first = await _check_with_history(resolver, fetcher, history)
            again = await _check_with_history(resolver, fetcher, history)
            changed = GOOD_POLICY.replace("enforce", "testing")
            replies["mta-sts.good.test"] = Reply(changed.replace("604800", "86400"))
            drifted = await _check_with_history(resolver, fetcher, history)
    finally:
        store.close()

    assert set(first) == {"mta_sts_ok", "mta_sts_policy_stored"}
    assert set(again) == {"mta_sts_ok"}
    assert "mta_sts_changed_same_id" in drifted
    error = drifted["mta_sts_changed_same_id"]
    assert error.status is Status.ERROR
    assert "mode enforce -> testing" in error.detail
    assert "max_age 604800 -> 86400 s" in error.detail
    assert "id=20260101T0000" in error.detail


async def test_policy_drift_without_database(
    resolver: dns.asyncresolver.Resolver, fetcher: HttpsPolicyFetcher
) -> None:
    """Without a database the check adds an ok note and still checks the policy."""
    history = UnavailableHistory("database file 'mail-watchdog.db' not found")
    found = await _check_with_history(resolver, fetcher, history)
    assert set(found) == {"mta_sts_ok", "mta_sts_drift_not_checked"}
    assert found["mta_sts_drift_not_checked"].status is Status.OK
