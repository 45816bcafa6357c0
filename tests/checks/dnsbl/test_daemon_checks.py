"""The daemon runs the blocklist cycle on schedule and exports its results."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

from tests.checks.dnsbl.conftest import DnsServers
from tests.servers.common import free_port
from watchdog.config import Settings
from watchdog.daemon import run_daemon

OTHER_ZONES = [
    "refuse.test",
    "bogus.test",
    "all.test",
    "empty.test",
    "dead.test",
    "flip.test",
    "info.test",
    "v6.test",
    "dbl.test",
    "bits.test",
]
LISTED = re.compile(
    r"mailwatchdog_dnsbl_listed\{kind=\"\w+\","
    r"target=\"192\.0\.2\.10\",zone=\"zen\.test\"\} 1\.0"
)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError:
        return 0, ""  # not listening yet


def _daemon_settings(
    settings: Settings, tmp_path: Path, port: int, **sections: object
) -> Settings:
    """Return ``settings`` with a fresh SQLite file, ``port`` and ``sections``."""
    database = settings.database.model_copy(
        update={"url": f"sqlite:///{tmp_path / 'w.db'}"}
    )
    http = settings.http.model_copy(update={"port": port})
    return settings.model_copy(update={"database": database, "http": http, **sections})


async def test_daemon_exports_listing(
    dns_servers: DnsServers, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    daemon_settings = _daemon_settings(
        settings,
        tmp_path,
        port,
        sending=settings.sending.model_copy(update={"ips": ["192.0.2.10"]}),
        blocklists=settings.blocklists.model_copy(update={"disable": OTHER_ZONES}),
    )
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(daemon_settings, stop))
    try:
        metrics = ""
        async with asyncio.timeout(60):
            while not LISTED.search(metrics):
                await asyncio.sleep(0.5)
                _, metrics = await asyncio.to_thread(_get, port, "/metrics")
        status, body = await asyncio.to_thread(_get, port, "/healthz")
    finally:
        stop.set()
        await asyncio.wait_for(daemon, 30)

    assert 'mailwatchdog_dnsbl_zone_healthy{zone="zen.test"} 1.0' in metrics
    assert "check-blocklists" not in json.loads(body)["sources"]
    assert status == 200


async def test_daemon_checks_link_domains_alone(
    dns_servers: DnsServers, settings: Settings, tmp_path: Path
) -> None:
    """Link domains are checked even when [sending] names nothing."""
    port = free_port()
    daemon_settings = _daemon_settings(
        settings,
        tmp_path,
        port,
        blocklists=settings.blocklists.model_copy(
            update={
                "link_domains": ["spam.example"],
                "disable": [*OTHER_ZONES[:8], "zen.test", "bits.test"],
            }
        ),
    )
    listed = re.compile(
        r"mailwatchdog_dnsbl_listed\{kind=\"domain\","
        r"target=\"spam\.example\",zone=\"dbl\.test\"\} 1\.0"
    )
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(daemon_settings, stop))
    try:
        metrics = ""
        async with asyncio.timeout(60):
            while not listed.search(metrics):
                await asyncio.sleep(0.5)
                _, metrics = await asyncio.to_thread(_get, port, "/metrics")
    finally:
        stop.set()
        await asyncio.wait_for(daemon, 30)

    assert 'mailwatchdog_dnsbl_zone_healthy{zone="dbl.test"} 1.0' in metrics
