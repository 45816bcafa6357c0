"""Link domains: configured and learned targets, checked in domain zones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from tests.checks.dnsbl.conftest import DnsServers
from watchdog.checks.auth.learned import Learned, LearnedKind
from watchdog.checks.dnsbl.catalogue import ZoneKind
from watchdog.checks.dnsbl.targets import (
    MAX_LEARNED_LINK_TARGETS,
    Target,
    TargetSource,
    targets_from_settings,
)
from watchdog.config import Blocklists, Sending, Settings
from watchdog.jobs.checks import blocklist_poll
from watchdog.metrics import Metrics
from watchdog.store import Store
from watchdog.store.learned import record_learned

ONLY_DBL = [
    "zen.test",
    "refuse.test",
    "bogus.test",
    "all.test",
    "empty.test",
    "dead.test",
    "flip.test",
    "info.test",
    "v6.test",
    "bits.test",
]


def _sources(targets: list[Target]) -> dict[str, TargetSource]:
    return {target.value: target.source for target in targets}


def test_configured_links_are_targets() -> None:
    """blocklists.link_domains join the sending targets with source link."""
    settings = Settings(
        sending=Sending(ips=["192.0.2.1"], domains=["good.example"]),
        blocklists=Blocklists(link_domains=["Links.Example.NET", "good.example"]),
    )
    sources = _sources(targets_from_settings(settings))
    assert sources == {
        "192.0.2.1": TargetSource.SENDING,
        "good.example": TargetSource.SENDING,
        "links.example.net": TargetSource.LINK,
    }


def test_learned_links_need_setting() -> None:
    """Learned link domains count only with learn_link_domains."""
    off = Settings(sending=Sending(domains=["good.example"]))
    on = Settings(
        sending=Sending(domains=["good.example"]),
        blocklists=Blocklists(learn_link_domains=True),
    )
    learned = ["shop.example", "not a domain", "192.0.2.9"]
    assert _sources(targets_from_settings(off, learned)) == {
        "good.example": TargetSource.SENDING
    }
    assert _sources(targets_from_settings(on, learned)) == {
        "good.example": TargetSource.SENDING,
        "shop.example": TargetSource.LINK,
    }


def test_learned_links_capped() -> None:
    """At most MAX_LEARNED_LINK_TARGETS learned domains are checked."""
    settings = Settings(blocklists=Blocklists(learn_link_domains=True))
    learned = [f"d{n}.example" for n in range(MAX_LEARNED_LINK_TARGETS + 50)]
    targets = targets_from_settings(settings, learned)
    assert len(targets) == MAX_LEARNED_LINK_TARGETS
    assert all(target.kind is ZoneKind.DOMAIN for target in targets)


async def test_poll_checks_learned_links(
    dns_servers: DnsServers, settings: Settings, tmp_path: Path
) -> None:
    """The daemon's poll checks learned and configured link domains in a
    domain zone and exports why each target was checked."""
    del dns_servers
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.upgrade()
    record_learned(
        store, {Learned(LearnedKind.LINK_DOMAIN, "good.example", "spam.example")}
    )
    poll_settings = settings.model_copy(
        update={
            "sending": Sending(domains=["good.example"]),
            "blocklists": settings.blocklists.model_copy(
                update={
                    "disable": ONLY_DBL,
                    "link_domains": ["phish.example"],
                    "learn_link_domains": True,
                }
            ),
        }
    )
    metrics = Metrics(CollectorRegistry())
    try:
        await blocklist_poll(poll_settings, store, metrics)()
    finally:
        store.close()

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    for target, listed in (
        ("spam.example", 1),
        ("phish.example", 1),
        ("good.example", 0),
    ):
        value = sample(
            "mailwatchdog_dnsbl_listed", target=target, kind="domain", zone="dbl.test"
        )
        assert value == listed, target
    info = "mailwatchdog_dnsbl_target_info"
    assert sample(info, target="spam.example", kind="domain", source="link") == 1
    assert sample(info, target="phish.example", kind="domain", source="link") == 1
    assert sample(info, target="good.example", kind="domain", source="sending") == 1


async def test_store_outage_keeps_learned_links(
    dns_servers: DnsServers, settings: Settings, tmp_path: Path
) -> None:
    """A poll that cannot read the learned links still checks the last ones.

    Dropping them would remove their series, so a listing alert would
    resolve during a database outage and fire again after it.
    """
    del dns_servers
    path = tmp_path / "w.db"
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    record_learned(
        store, {Learned(LearnedKind.LINK_DOMAIN, "good.example", "spam.example")}
    )
    poll_settings = settings.model_copy(
        update={
            "sending": Sending(domains=["good.example"]),
            "blocklists": settings.blocklists.model_copy(
                update={"disable": ONLY_DBL, "learn_link_domains": True}
            ),
        }
    )
    metrics = Metrics(CollectorRegistry())
    poll = blocklist_poll(poll_settings, store, metrics)
    listed = {"target": "spam.example", "kind": "domain", "zone": "dbl.test"}
    try:
        await poll()
        first = metrics.registry.get_sample_value("mailwatchdog_dnsbl_listed", listed)
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE learned_identifier")
        with capture_logs() as logs:
            await poll()
    finally:
        store.close()

    second = metrics.registry.get_sample_value("mailwatchdog_dnsbl_listed", listed)
    assert first == 1
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "learned_load_failed"
    ]
    assert second == 1
