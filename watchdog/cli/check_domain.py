"""``mail-watchdog check domain``: audit SPF, DKIM, DMARC, MX, MTA-STS, TLS-RPT,
BIMI and PTR the way receivers judge them."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Column, Table

from watchdog.cli.console import (
    NameserverOption,
    OutputFormat,
    OutputFormatOption,
    literal_text,
    output_console,
)
from watchdog.cli.db import ConfigOption
from watchdog.errors import ConfigError

if TYPE_CHECKING:
    from watchdog.checks.auth import Finding
    from watchdog.checks.auth.learned import Learned
    from watchdog.config import Settings

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_LOOKUP_FAILED = 3

# Table styles by Status value. The audit modules (dnspython, SQLAlchemy) and
# the settings (pydantic) are imported only when the command runs, so that
# --help stays fast.
_STATUS_STYLES = {
    "ok": "green",
    "warning": "yellow",
    "error": "bold red",
    "lookup_failed": "magenta",
}


def check_domain_command(  # noqa: PLR0917 - Typer maps each parameter to an option
    domains: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="DOMAIN",
            help="Sending domains to audit; default sending.domains from the "
            "configuration.",
            show_default=False,
        ),
    ] = None,
    selector: Annotated[
        list[str] | None,
        typer.Option(
            "--selector",
            metavar="SELECTOR",
            help="DKIM selector to check, added to sending.dkim_selectors "
            "(repeatable). DNS cannot list selectors.",
        ),
    ] = None,
    ip: Annotated[
        list[str] | None,
        typer.Option(
            "--ip",
            metavar="IP",
            help="Sending IP for check_host and PTR, replacing sending.ips "
            "(repeatable).",
        ),
    ] = None,
    helo: Annotated[
        str | None,
        typer.Option(
            "--helo",
            metavar="NAME",
            help="HELO name the PTR names should match; default sending.helo.",
        ),
    ] = None,
    nameserver: NameserverOption = None,
    output_format: OutputFormatOption = OutputFormat.TABLE,
    config: ConfigOption = None,
) -> None:
    """Audit the DNS authentication of domains and print one row per finding.

    Exit status: 0 only ok and warning findings, 1 at least one error
    finding, 2 a usage or configuration error, 3 no error finding but some
    lookups failed.
    """
    ips = [_checked_ip(text) for text in ip or []]
    names = [_checked_name(text, "DOMAIN") for text in domains or []]
    selectors = [_checked_name(text, "--selector") for text in selector or []]
    for entry in nameserver or []:
        _check_nameserver(entry)
    from watchdog.config import load_settings  # noqa: PLC0415

    try:
        settings = load_settings(config)
        names = names or _configured_domains(settings, config)
        findings = asyncio.run(
            _audit(
                settings,
                names,
                selectors=selectors,
                ips=ips or None,
                helo=helo,
                nameservers=nameserver or [],
            )
        )
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from exc

    if output_format is OutputFormat.JSON:
        for finding in findings:
            sys.stdout.write(json.dumps(finding.as_dict()) + "\n")
    else:
        output_console().print(_table(findings))
    raise typer.Exit(exit_status(findings))


def _configured_domains(settings: Settings, config: Path | None) -> list[str]:
    if settings.sending.domains:
        return settings.sending.domains
    if config is None:
        where = "in a configuration file and pass it with --config"
    else:
        where = f"in {config}"
    msg = (
        "no domain to audit: pass one or more domains, as in "
        f"'mail-watchdog check domain example.com', or set sending.domains {where}"
    )
    raise ConfigError(msg, key="sending.domains")


def _checked_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        msg = f"{text!r} is not an IPv4 or IPv6 address"
        raise typer.BadParameter(msg, param_hint="--ip") from None


def _checked_name(text: str, param_hint: str) -> str:
    from watchdog.checks.auth.lookup import host_name  # noqa: PLC0415

    try:
        return host_name(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=param_hint) from None


def _check_nameserver(text: str) -> None:
    # dnspython sends queries only to IP addresses. A host name here would
    # turn every query into a timeout and the audit into lookup_failed.
    from watchdog.checks.auth.lookup import is_ip_literal  # noqa: PLC0415
    from watchdog.checks.resolver import parse_nameserver  # noqa: PLC0415

    try:
        host, _port = parse_nameserver(text)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--nameserver") from None
    if not is_ip_literal(host):
        msg = f"{text!r} does not start with an IP address: use IP or IP:PORT"
        raise typer.BadParameter(msg, param_hint="--nameserver")


async def _audit(
    settings: Settings,
    domains: list[str],
    *,
    selectors: list[str],
    ips: list[str] | None,
    helo: str | None,
    nameservers: list[str],
) -> list[Finding]:
    from watchdog.checks.auth import run_audit  # noqa: PLC0415
    from watchdog.checks.auth.mta_sts_policy import HttpsPolicyFetcher  # noqa: PLC0415
    from watchdog.checks.resolver import make_resolver  # noqa: PLC0415
    from watchdog.store.mta_sts_history import open_policy_history  # noqa: PLC0415

    resolver = make_resolver(settings.dns, nameservers)
    # The MTA-STS drift check needs the policy an earlier audit stored, so
    # it uses the daemon's database when that exists and is skipped if not.
    with open_policy_history(settings.database) as policy_history:
        return await run_audit(
            settings,
            domains,
            selectors,
            resolver,
            ips=ips,
            helo=helo,
            learned=_learned(settings),
            fetcher=HttpsPolicyFetcher(resolver=resolver),
            policy_history=policy_history,
        )


def _learned(settings: Settings) -> set[Learned]:
    """Read what the daemon learned from bounces, if its database exists.

    A database that cannot be read only narrows the audit to the configured
    selectors and Return-Path domains, so it gives a warning, not an error.
    """
    from watchdog.errors import StoreError  # noqa: PLC0415
    from watchdog.store.learned import read_learned  # noqa: PLC0415

    try:
        return read_learned(
            settings.database.url,
            busy_timeout=settings.database.busy_timeout_seconds,
        )
    except StoreError as exc:
        typer.echo(
            f"warning: selectors and identifiers learned from bounces were not "
            f"read: {exc}",
            err=True,
        )
        return set()


def exit_status(findings: Sequence[Finding]) -> int:
    """Return the exit status for ``findings`` (see ``check_domain_command``)."""
    statuses = {finding.status.value for finding in findings}
    if "error" in statuses:
        return EXIT_ERROR
    if "lookup_failed" in statuses:
        return EXIT_LOOKUP_FAILED
    return EXIT_OK


def _table(findings: Sequence[Finding]) -> Table:
    # Names such as lookup_failed are never split across lines.
    table = Table(
        Column("domain", overflow="fold"),
        Column("check", no_wrap=True),
        Column("status", no_wrap=True),
        Column("subject", overflow="fold"),
        "detail",
    )
    for finding in findings:
        style = _STATUS_STYLES[finding.status.value]
        status = f"[{style}]{finding.status.value}[/]"
        table.add_row(
            literal_text(finding.domain),
            finding.check.value,
            status,
            literal_text(finding.subject),
            literal_text(finding.detail),
        )
    return table
