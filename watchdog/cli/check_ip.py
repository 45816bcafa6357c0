"""``mail-watchdog check ip``: look IPs and domains up in the blocklists."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from watchdog.cli.console import (
    NameserverOption,
    OutputFormat,
    OutputFormatOption,
    literal_text,
    output_console,
)
from watchdog.cli.db import ConfigOption
from watchdog.errors import ConfigError, RulesError

if TYPE_CHECKING:
    from watchdog.checks.dnsbl.results import ZoneResult
    from watchdog.checks.dnsbl.targets import Target
    from watchdog.config import Settings

EXIT_CLEAN = 0
EXIT_LISTED = 1
EXIT_CONFIG = 2
EXIT_ERRORS = 3

# Table styles by State value. The blocklist modules (dnspython, SQLAlchemy)
# and the settings (pydantic) are imported only when the command runs, so
# that --help stays fast.
_STATE_STYLES = {
    "listed": "bold red",
    "not_listed": "green",
    "operator_error": "yellow",
    "bogus": "yellow",
    "dns_error": "yellow",
    "zone_unhealthy": "magenta",
}


def check_ip_command(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="IP",
            help="IPv4 or IPv6 addresses to check; default sending.ips from the "
            "configuration. Domain names are checked in domain zones.",
            show_default=False,
        ),
    ] = None,
    zone: Annotated[
        list[str] | None,
        typer.Option(
            "--zone",
            metavar="ZONE",
            help="Query only this zone (repeatable). A zone absent from the "
            "catalogue is checked at its RFC 5782 test points first.",
        ),
    ] = None,
    nameserver: NameserverOption = None,
    output_format: OutputFormatOption = OutputFormat.TABLE,
    config: ConfigOption = None,
) -> None:
    """Check IPs against the blocklist zones and print one row per zone.

    Exit status: 0 clean, 1 a reputation listing in a healthy zone, 2 a
    usage or configuration error (also when no selected zone lists any
    target's kind), 3 no listing but some checks failed.
    Informational zones and configuration codes (Spamhaus PBL) are shown
    but do not set status 1.
    """
    from watchdog import log as logging_setup  # noqa: PLC0415
    from watchdog.checks.dnsbl.targets import parse_target  # noqa: PLC0415
    from watchdog.config import load_settings  # noqa: PLC0415

    logging_setup.configure(level="warning")
    try:
        settings = load_settings(config)
        texts = _target_texts(targets, settings, config)
        # dict.fromkeys keeps the order and drops repeats, such as an IPv4
        # address given once plainly and once IPv4-mapped.
        parsed = list(dict.fromkeys(parse_target(text) for text in texts))
        nameservers = [_checked_nameserver(text) for text in nameserver or []]
        results = asyncio.run(_check(settings, parsed, zone or [], nameservers))
    except (ConfigError, RulesError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    if not results:
        typer.echo(f"error: {_no_zone_message(parsed)}", err=True)
        raise typer.Exit(EXIT_CONFIG)

    if output_format is OutputFormat.JSON:
        for result in results:
            sys.stdout.write(json.dumps(result.to_json()) + "\n")
    else:
        console = output_console()
        console.print(_table(results))
        for listing_zone, url in _delisting_pages(results).items():
            # The page comes from an editable catalogue, so it is printed as
            # literal text, without markup, emoji codes or control characters.
            # It stays on one line however long, so it can be copied whole.
            line = literal_text(f"delisting for {listing_zone}: {url}")
            console.print(line, soft_wrap=True)
        _print_failure_hint(results)
    raise typer.Exit(exit_status(results))


_KIND_NAMES = {"ip4": "IPv4 addresses", "ip6": "IPv6 addresses", "domain": "domains"}


def _no_zone_message(targets: Sequence[Target]) -> str:
    kinds = " or ".join(dict.fromkeys(_KIND_NAMES[t.kind.value] for t in targets))
    return (
        f"no selected blocklist zone lists {kinds}: pass --zone with a zone "
        "that does, or add one to blocklists.enable"
    )


def _print_failure_hint(results: Sequence[ZoneResult]) -> None:
    """Print on stderr what to check when some lookups failed."""
    failed = [result for result in results if result.state.value == "dns_error"]
    if not failed:
        return
    zones = ", ".join(dict.fromkeys(result.zone for result in failed))
    output_console(stderr=True).print(
        literal_text(
            f"{len(failed)} of {len(results)} lookups failed ({zones}): check "
            "that the resolver in dns.nameservers or --nameserver answers for "
            "these zones"
        )
    )


def _target_texts(
    targets: list[str] | None, settings: Settings, config: Path | None
) -> list[str]:
    """Return the IPs given on the command line, or else ``sending.ips``.

    Raises ConfigError, which says what to pass, when both are empty.
    """
    if targets:
        return targets
    if settings.sending.ips:
        return settings.sending.ips
    if config is None:
        where = "in a configuration file and pass it with --config"
    else:
        where = f"in {config}"
    msg = (
        "no IP to check: pass one or more IP addresses, as in "
        f"'mail-watchdog check ip 192.0.2.25', or set sending.ips {where}"
    )
    raise ConfigError(msg, key="sending.ips")


async def _check(
    settings: Settings, targets: list[Target], zones: list[str], nameservers: list[str]
) -> list[ZoneResult]:
    from watchdog.checks.dnsbl.catalogue import load_catalogue  # noqa: PLC0415
    from watchdog.checks.dnsbl.cycle import BlocklistMonitor  # noqa: PLC0415
    from watchdog.checks.dnsbl.selection import (  # noqa: PLC0415
        catalogue_path,
        select_zones,
    )
    from watchdog.checks.resolver import make_resolver  # noqa: PLC0415

    catalogue = load_catalogue(catalogue_path(settings))
    chosen = select_zones(catalogue, settings.blocklists, only=zones)
    resolver = make_resolver(settings.dns, nameservers)
    monitor = BlocklistMonitor(settings, zones=chosen, resolver=resolver)
    return await monitor.run(targets)


def _checked_nameserver(text: str) -> str:
    """Return ``text`` if it is ``IP`` or ``IP:PORT``; raise ConfigError if not.

    dnspython 2.9 accepts any string as a nameserver address and fails only
    when it queries, so a typo would come back as a DNS timeout.
    """
    from watchdog.checks.resolver import parse_nameserver  # noqa: PLC0415

    host, _ = parse_nameserver(text)
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        msg = (
            f"invalid --nameserver {text!r}: use an IP address, IP:PORT or [IPV6]:PORT"
        )
        raise ConfigError(msg, key="dns.nameservers") from exc
    if text.startswith("[") and "]" not in text:
        msg = (
            f"invalid --nameserver {text!r}: the ']' after the IPv6 address is missing"
        )
        raise ConfigError(msg, key="dns.nameservers")
    return text


def exit_status(results: Sequence[ZoneResult]) -> int:
    """Return the exit status for ``results`` (see ``check_ip_command``)."""
    from watchdog.checks.dnsbl.answer import KNOWN_STATES  # noqa: PLC0415

    if any(result.alerts for result in results):
        return EXIT_LISTED
    if any(result.state not in KNOWN_STATES for result in results):
        return EXIT_ERRORS
    return EXIT_CLEAN


def _delisting_pages(results: Sequence[ZoneResult]) -> dict[str, str]:
    """Return the delisting page of each zone that lists a target, in order."""
    from watchdog.checks.dnsbl.answer import State  # noqa: PLC0415

    return {
        result.zone: result.delist_url
        for result in results
        if result.state is State.LISTED and result.delist_url
    }


def _table(results: Sequence[ZoneResult]) -> Table:
    table = Table("target", "zone", "state", "codes", "reason")
    for result in results:
        codes = ", ".join(
            f"{code.address} {code.meaning} ({code.severity.value})"
            for code in result.codes
        )
        state = Text(result.state.value, style=_STATE_STYLES[result.state.value])
        zone = result.zone + (" (informational)" if result.informational else "")
        table.add_row(
            literal_text(result.target),
            literal_text(zone),
            state,
            literal_text(codes),
            literal_text(result.reason),
        )
    return table
