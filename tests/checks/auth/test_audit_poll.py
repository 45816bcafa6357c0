"""The daemon's scheduled audit keeps MTA-STS policies in the store's database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dns.asyncresolver
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from tests.checks.auth.policy_server import Reply, run_policy_server
from tests.servers.dns import Unbound
from watchdog.checks.auth import audit
from watchdog.checks.auth.learned import Learned, LearnedKind
from watchdog.checks.auth.mta_sts_policy import HttpsPolicyFetcher
from watchdog.config import Audit, Dns, Sending, Settings
from watchdog.jobs.checks import audit_poll
from watchdog.metrics import Metrics
from watchdog.store import Store
from watchdog.store.learned import record_learned
from watchdog.store.mta_sts_history import MtaStsHistory

pytestmark = pytest.mark.dns

POLICY = "version: STSv1\nmode: enforce\nmx: *.good.test\nmax_age: 604800\n"


async def test_poll_reports_drift(
    unbound: Unbound, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second poll logs a policy changed under the same id and stores it."""
    settings = Settings(
        sending=Sending(domains=["good.test"]),
        dns=Dns(nameservers=[unbound.nameserver]),
        audit=Audit(allow_private_mx=True),
    )
    store = Store(f"sqlite:///{tmp_path / 'watchdog.db'}")
    store.upgrade()
    replies = {"mta-sts.good.test": Reply(POLICY)}
    poll = audit_poll(settings, Metrics(CollectorRegistry()), store)
    try:
        with run_policy_server(replies, tmp_path) as (port, ca_file):

            def local_fetcher(
                *, resolver: dns.asyncresolver.Resolver
            ) -> HttpsPolicyFetcher:
                return HttpsPolicyFetcher(
                    resolver=resolver,
                    base_url=f"https://127.0.0.1:{port}",
                    ca_file=ca_file,
                )

            monkeypatch.setattr(audit, "HttpsPolicyFetcher", local_fetcher)
            await poll()
            replies["mta-sts.good.test"] = Reply(POLICY.replace("enforce", "testing"))
            with capture_logs() as logs:
                await poll()
        stored = await MtaStsHistory.of(store).load("good.test")
    finally:
        store.close()

    drift = [
        entry
        for entry in logs
        if entry.get("event") == "audit_finding"
        and entry.get("reason") == "mta_sts_changed_same_id"
    ]
    assert len(drift) == 1
    assert "mode enforce -> testing" in drift[0]["detail"]
    assert stored is not None
    assert stored.mode == "testing"
    assert stored.policy_id == "20260101T0000"
    assert stored.stale_until is not None


async def test_store_outage_keeps_learned_series(
    unbound: Unbound, tmp_path: Path
) -> None:
    """A poll that cannot read the learned selectors keeps their series."""
    settings = Settings(
        sending=Sending(domains=["good.test"], ips=[]),
        dns=Dns(nameservers=[unbound.nameserver]),
        audit=Audit(allow_private_mx=True),
    )
    path = tmp_path / "watchdog.db"
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    record_learned(store, {Learned(LearnedKind.DKIM_SELECTOR, "good.test", "ed")})
    metrics = Metrics(CollectorRegistry())
    poll = audit_poll(settings, metrics, store)
    labels = {"domain": "good.test", "selector": "ed"}
    try:
        await poll()
        first = metrics.registry.get_sample_value(
            "mailwatchdog_auth_dkim_key_bits", labels
        )
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE learned_identifier")
        await poll()
    finally:
        store.close()

    second = metrics.registry.get_sample_value(
        "mailwatchdog_auth_dkim_key_bits", labels
    )
    assert first is not None
    assert second == first
