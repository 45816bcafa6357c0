"""``mail-watchdog config``: validate settings and print a commented sample.

``EXAMPLE`` is the one source of the sample configuration: ``config example``
prints it, and ``mail-watchdog.example.toml`` at the repository root is a
copy that a test keeps identical.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from watchdog.cli.db import EXIT_USAGE, ConfigOption, fail
from watchdog.cli.help_format import Command, Group
from watchdog.errors import ConfigError, RulesError

if TYPE_CHECKING:
    from watchdog.config import Settings

app = typer.Typer(
    help="Validate the configuration or print a sample.",
    no_args_is_help=True,
    cls=Group,
)
out = Console(highlight=False, soft_wrap=True)


@app.command("check", cls=Command)
def check_command(config: ConfigOption = None) -> None:
    """Validate the settings and password files, then print a summary.

    Connects to nothing. Exits with status 2 and the error when a setting is
    invalid or a password file is missing or readable by every user.
    """
    # Imported here because the settings (pydantic) and the rule and catalogue
    # loaders (the classifier, dnspython) would slow ``config example`` down.
    from watchdog.config import load_settings  # noqa: PLC0415
    from watchdog.preflight import check_data  # noqa: PLC0415

    try:
        settings = load_settings(config)
        check_data(settings)
    except (ConfigError, RulesError) as exc:
        fail(str(exc), EXIT_USAGE)
    for name, mailbox in settings.mailboxes.items():
        try:
            mailbox.read_password()
        except ConfigError as exc:
            # The password error names the file but not the mailbox it is for.
            fail(f"mailboxes.{name}: {exc}", EXIT_USAGE)
    where = str(config) if config is not None else "defaults and environment"
    out.print(f"[green]configuration is valid[/green] ({escape(where)})")
    _print_summary(settings)


@app.command("example", cls=Command)
def example_command() -> None:
    """Print a sample configuration with every key and a comment for each."""
    typer.echo(EXAMPLE, nl=False)


def _print_summary(settings: Settings) -> None:
    from watchdog.daemon import safe_database_url  # noqa: PLC0415

    out.print(f"database:  {escape(safe_database_url(settings.database.url))}")
    http = settings.http
    if http.enabled:
        base = f"http://{http.host}:{http.port}"
        out.print(f"listener:  {base}/metrics and {base}/healthz")
    else:
        out.print("listener:  disabled (http.enabled = false)")
    workers = settings.limits.workers
    count = f"{workers}" if workers else f"{os.cpu_count() or 1} (one per CPU)"
    out.print(f"workers:   {count}; per message {_limits(settings)}")
    _print_sources(settings)


def _limits(settings: Settings) -> str:
    limits = settings.limits
    return (
        f"{limits.cpu_seconds} s CPU, {limits.memory_mb} MB, "
        f"{limits.wall_seconds:g} s wall clock"
    )


def _print_sources(settings: Settings) -> None:
    from watchdog.config import TlsMode  # noqa: PLC0415

    for name, box in settings.mailboxes.items():
        scheme = "imaps" if box.tls is TlsMode.IMPLICIT else "imap"
        where = (
            f"{scheme}://{box.username}@{box.host}:{box.effective_port}/{box.folder}"
        )
        idle = ", IDLE" if box.idle else ""
        every = f"every {box.poll_interval_seconds:g} s{idle}"
        out.print(f"mailbox:   {escape(name)} ({box.kind}) {escape(where)}, {every}")
    for name, local in settings.local.items():
        where = f"{local.path} ({local.format})"
        every = f"every {local.poll_interval_seconds:g} s"
        out.print(f"local:     {escape(name)} ({local.kind}) {escape(where)}, {every}")
    _print_mta_log(settings)
    if not settings.mailboxes and not settings.local and not settings.mta_log.enabled:
        out.print(escape("sources:   none; add [mailboxes.NAME] or [local.NAME]"))


def _print_mta_log(settings: Settings) -> None:
    """Print the MTA log source and warn when its file cannot be read now.

    A missing or unreadable file is a warning, not an error: the daemon
    waits for a log that does not exist yet, and it may run as another
    user than this command.
    """
    mta_log = settings.mta_log
    if not mta_log.enabled:
        return
    every = f"every {mta_log.poll_interval_seconds:g} s"
    start = f"first start at the {mta_log.start_at.value}"
    out.print(f"mta log:   {escape(str(mta_log.path))}, {every}, {start}")
    path = mta_log.path
    if not path.exists():
        problem = "does not exist yet; the daemon waits for it"
    elif not path.is_file():
        problem = (
            "is not a regular file, so every poll fails: set mta_log.path "
            "to the log file itself"
        )
    elif not os.access(path, os.R_OK):
        problem = "is not readable by this user"
    else:
        return
    out.print(f"[yellow]warning:[/yellow] {escape(str(path))} {problem}")


EXAMPLE = """\
# Mail Watchdog configuration (TOML).
#
# Every key is shown with its default, except where marked "example". Any
# key can also be set from the environment: WATCHDOG_ followed by the dotted
# key in upper case with __ between levels, for example
# WATCHDOG_DATABASE__URL or WATCHDOG_MAILBOXES__BOUNCES__PASSWORD.
# Check a file with: mail-watchdog config check --config FILE

# Folder of rule files (classification rules, dnsbl.yaml). Unset uses
# WATCHDOG_RULES_DIR, then the rules/ folder of a source checkout.
# rules_dir = "/etc/mail-watchdog/rules"

[database]
# sqlite:///PATH (relative to the working directory) or
# postgresql://USER@HOST/DB. The password of a PostgreSQL URL is better
# given through WATCHDOG_DATABASE__URL than written here.
url = "sqlite:///mail-watchdog.db"
# Seconds an SQLite writer waits for a lock held by another writer.
busy_timeout_seconds = 5.0

[http]
# Serve /metrics and /healthz.
enabled = true
# Address to listen on. Keep it on loopback or a private network: the
# endpoints have no authentication.
host = "127.0.0.1"
# TCP port.
port = 9465

[log]
# json, console, or auto (console on a terminal, JSON otherwise).
format = "auto"
# debug, info, warning or error.
level = "info"

[policy]
# Soft bounces of one address within the window that suppress it.
soft_bounce_threshold = 3
# Days over which soft bounces are counted.
soft_bounce_window_days = 7
# Days a soft-bounce suppression lasts; 0 keeps it until removed.
soft_suppression_days = 30
# Failed classifications of one message before it is quarantined.
max_attempts = 3

[limits]
# Larger messages are quarantined without being fetched or parsed (bytes).
max_message_bytes = 10000000
# Largest single header that is parsed (bytes).
max_header_bytes = 65536
# MIME parts per message; more stops classification.
max_parts = 1000
# MIME nesting depth; deeper stops classification.
max_depth = 32
# RFC 2047 encoded-words in the whole message.
max_encoded_words = 2000
# Bytes of one part's body handed to the detectors; the rest is cut.
max_text_bytes = 131072
# Recipients acted on per message; a message naming more is quarantined.
max_recipients = 10
# CPU seconds one message may use in a classifier worker.
cpu_seconds = 5
# Address space of a classifier worker (MB). A worker of the daemon used
# about 130 MB before its first message (CPython 3.11, x86-64), so values
# near that make every message fail.
memory_mb = 512
# Wall-clock seconds one message may take in a classifier worker.
wall_seconds = 10.0
# Classifier worker processes; unset uses one per CPU.
# workers = 2

[sending]
# Our sender domains (example). A bounce of mail sent from another domain
# is unverified and suppresses nobody; an empty list trusts every bounce.
domains = ["example.com"]
# Our sending IPs, checked against DNS blocklists (example).
ips = ["192.0.2.25"]
# The HELO name of our MTA, checked for forward and reverse DNS (example).
helo = "mail.example.com"
# DKIM selectors to audit under each sending domain (example). Selectors
# in our own mail quoted by bounces are learned and audited as well.
dkim_selectors = ["s1"]
# Envelope sender (Return-Path) domains the DMARC alignment check judges,
# on top of those learned from bounces; empty only learns (example).
return_path_domains = []

[dns]
# HOST or HOST:PORT resolvers; an empty list uses the system resolver.
nameservers = []
# Seconds to wait for one server's reply.
timeout_seconds = 1.0
# Seconds a whole lookup may take across servers and retries.
lifetime_seconds = 3.0

[blocklists]
# Catalogue of DNS blocklist zones; unset uses dnsbl.yaml in the rules
# folder.
# zones_file = "/etc/mail-watchdog/dnsbl.yaml"
# Catalogue zones to check on top of those marked enabled, by name.
enable = []
# Zones not to check, by name.
disable = []
# File holding a Spamhaus Data Query Service key. Zones that need the key
# are rejected while it is unset.
# dqs_key_file = "/run/secrets/spamhaus-dqs"
# Seconds between two checks of every IP and domain.
interval_seconds = 900.0
# Lookups in flight at once, over all zones.
concurrency = 32
# Lookups in flight at once against one zone.
per_zone_concurrency = 4
# Domains our mail links to, checked against domain zones (DBL, SURBL,
# URIBL) like the sending domains (example).
link_domains = []
# Also check the registered domains of http and https links found in our
# own mail quoted by bounces: at most 50 per sending domain, each kept 30
# days after it was last seen.
learn_link_domains = false

[audit]
# Seconds between two audits of SPF, DKIM, DMARC, MX and PTR records.
interval_seconds = 3600.0
# Accept MX hosts on loopback, private or documentation addresses; for lab
# and test setups only.
allow_private_mx = false

[mta_log]
# Read Postfix's log for mailwatchdog_delivery_attempts_total (sent,
# deferred, bounced, expired by recipient provider), which the delivery and
# complaint ratio alerts need.
enabled = false
# The log Postfix writes to: the syslog file (Debian /var/log/mail.log,
# Red Hat /var/log/maillog) or Postfix's own maillog_file. The daemon's
# user must be able to read it (group adm on Debian).
path = "/var/log/mail.log"
# Seconds between two reads of new lines.
poll_interval_seconds = 10.0
# Starting point when no position is stored yet: "end" counts only
# lines written from now on, "start" counts the whole file first. Later
# starts resume at the stored position either way.
start_at = "end"
# Postfix syslog names to count, * matching any text: "postfix", the
# master.cf services that set syslog_name=postfix/$service_name
# ("postfix/relay" in Debian's master.cf) and the instances of postmulti
# ("postfix-out").
syslog_names = ["postfix", "postfix/*", "postfix-*"]
# Delivery agents whose lines count; drop "local", "virtual" and "lmtp"
# to count outbound mail only.
agents = ["smtp", "lmtp", "local", "virtual", "pipe", "error", "retry"]
# relay= values not counted, * matching any text, such as a content
# filter that receives every message before its real delivery (example:
# "127.0.0.1[127.0.0.1]:10024").
ignore_relays = []
# Name of the stored position; unset uses the path. Set it when two
# daemons share one database and read logs at the same path.
# state_key = "mx1"
# Longer lines are dropped and counted as too_long (bytes).
max_line_bytes = 65536
# Deferred recipients remembered so that an expiry counts under their
# providers; past this the oldest are forgotten and count as "unknown".
max_pending_recipients = 100000

# One table per IMAP mailbox; the name ("bounces" here) labels metrics and
# logs. The whole table is an example.
[mailboxes.bounces]
# IMAP server.
host = "imap.example.com"
# Port; unset uses 993 for implicit TLS and 143 for tls = "none".
# port = 993
# "implicit" (TLS from the first byte) or "none" (loopback hosts only).
tls = "implicit"
# CA bundle to verify the server with; unset uses the system store.
# ca_file = "/etc/ssl/certs/internal-ca.pem"
username = "bounces@example.com"
# The password, better given as WATCHDOG_MAILBOXES__BOUNCES__PASSWORD.
# password = "..."
# File holding the password; it must not be readable by every user
# (chmod 600).
password_file = "/run/secrets/bounces-imap"
# Folder polled for new mail.
folder = "INBOX"
# Folder that handled mail is moved to.
processed_folder = "Processed"
# Folder for unparsable, oversized and forged mail. Mail Watchdog never
# empties it.
quarantine_folder = "Quarantine"
# "bounces" for delivery status notifications, "feedback" for ARF
# complaint reports.
kind = "bounces"
# Seconds between two polls; IDLE pushes poll sooner.
poll_interval_seconds = 60.0
# Wait for new mail with IMAP IDLE between polls.
idle = true
# Seconds after which IDLE is re-issued (at most 1740, RFC 2177's 29 min).
idle_renew_seconds = 300.0
# UIDs fetched per FETCH command (at most 200).
batch_size = 100
# Per-mailbox override of limits.max_message_bytes; unset uses that.
# max_message_bytes = 10000000
# "move" takes mail that is no bounce or report to processed_folder;
# "leave" keeps it in place, for a mailbox that people also read.
unrecognised = "move"
# Seconds one IMAP command may take.
timeout_seconds = 30.0
# Seconds one whole poll cycle may take before the connection is dropped.
cycle_timeout_seconds = 600.0

# One table per local Maildir, mbox file or folder of .eml files, polled
# the same way. Files are read, never moved or changed. The whole table is
# an example.
[local.archive]
# Path of the Maildir, mbox file or folder.
path = "/var/mail/bounce-archive"
# "auto", "maildir", "mbox" or "eml".
format = "auto"
# "bounces" or "feedback".
kind = "bounces"
# Seconds between two reads of the path.
poll_interval_seconds = 60.0
"""
