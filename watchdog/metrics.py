"""Prometheus metrics, declared in one place with an injectable registry.

Label values come from small fixed sets or from our own configuration
(mailbox names, zones, sending IPs and domains), never from message content.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from watchdog import __version__

_NS = "mailwatchdog"


class Metrics:
    """Every metric the daemon exports, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build = Info(_NS + "_build", "Version of Mail Watchdog.", registry=r)
        self.build.info({"version": __version__})

        self.messages = Counter(
            _NS + "_mailbox_messages",
            "Messages taken from a mailbox, by kind and outcome.",
            ["mailbox", "kind", "outcome"],
            registry=r,
        )
        self.poll_duration = Histogram(
            _NS + "_mailbox_poll_duration_seconds",
            "Duration of one mailbox poll cycle.",
            ["mailbox"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.last_success = Gauge(
            _NS + "_mailbox_last_success_timestamp_seconds",
            "Unix time of the last poll cycle that completed, or of the daemon's "
            "start before the first one.",
            ["mailbox"],
            registry=r,
        )
        self.poll_interval = Gauge(
            _NS + "_mailbox_poll_interval_seconds",
            "Configured poll interval; alerts compare the last success with it.",
            ["mailbox"],
            registry=r,
        )
        self.backlog = Gauge(
            _NS + "_mailbox_backlog_messages",
            "Messages waiting in the source folder at the start of the last poll.",
            ["mailbox"],
            registry=r,
        )
        self.reconnects = Counter(
            _NS + "_imap_reconnects",
            "IMAP connections dropped and re-opened, by cause.",
            ["mailbox", "reason"],
            registry=r,
        )
        self.auth_failures = Counter(
            _NS + "_imap_auth_failures",
            "IMAP logins rejected by the server.",
            ["mailbox"],
            registry=r,
        )
        self.uidvalidity_changes = Counter(
            _NS + "_imap_uidvalidity_changes",
            "Times a mailbox's UIDVALIDITY changed and it was rescanned.",
            ["mailbox"],
            registry=r,
        )
        self.worker_kills = Counter(
            _NS + "_parse_worker_kills",
            "Classifier worker processes killed at a limit.",
            ["reason"],
            registry=r,
        )
        self.db_retries = Counter(
            _NS + "_db_retries",
            "Database transactions retried, by cause.",
            ["reason"],
            registry=r,
        )
        self.bounces = Counter(
            _NS + "_bounces",
            "Bounce verdicts per recipient.",
            ["type", "category", "reason", "provider", "source"],
            registry=r,
        )
        self.complaints = Counter(
            _NS + "_complaints",
            "Complaints (ARF feedback reports) per recipient.",
            ["provider", "feedback_type"],
            registry=r,
        )
        self.suppressions = Gauge(
            _NS + "_suppressions",
            "Addresses on the suppression list, by reason, counted once a minute.",
            ["reason"],
            registry=r,
        )
        self.suppressions_added = Counter(
            _NS + "_suppressions_added",
            "Addresses added to the suppression list.",
            ["reason", "source"],
            registry=r,
        )
        self.suppressions_removed = Counter(
            _NS + "_suppressions_removed",
            "Addresses removed from the suppression list.",
            ["reason", "source"],
            registry=r,
        )

        self.delivery_attempts = Counter(
            _NS + "_delivery_attempts",
            "Delivery attempts in the MTA log, by status (sent, deferred, "
            "bounced, expired) and recipient provider. Every retry of a "
            "deferred recipient counts; an expiry counts once per recipient "
            "still deferred.",
            ["status", "provider"],
            registry=r,
        )
        self.delivery_deferrals = Counter(
            _NS + "_delivery_deferrals",
            "Deferred delivery attempts by provider and reason, the subject of "
            "the enhanced status code (4.7.x is policy, 4.2.x mailbox).",
            ["provider", "reason"],
            registry=r,
        )
        self.mta_log_lines = Counter(
            _NS + "_mta_log_lines",
            "Lines read from the MTA log, by result: delivery, queue (a message "
            "entered or left the queue), "
            "skipped, malformed or too_long.",
            ["result"],
            registry=r,
        )
        self.mta_log_rotations = Counter(
            _NS + "_mta_log_rotations",
            "Times the MTA log was rotated (renamed) or truncated under the reader.",
            ["kind"],
            registry=r,
        )
        self.mta_log_last_line = Gauge(
            _NS + "_mta_log_last_line_timestamp_seconds",
            "Unix time written on the last delivery line read from the MTA log.",
            registry=r,
        )

        self.dnsbl_listed = Gauge(
            _NS + "_dnsbl_listed",
            "1 when a target has a reputation listing in a healthy zone, else 0. "
            "Informational zones and configuration codes (Spamhaus PBL) are 0.",
            ["target", "kind", "zone"],
            registry=r,
        )
        self.dnsbl_target_info = Gauge(
            _NS + "_dnsbl_target_info",
            "1 for each blocklist target, with why it is checked: source is "
            "sending (a sending IP or domain) or link (a domain our mail links to).",
            ["target", "kind", "source"],
            registry=r,
        )
        self.dnsbl_return_code = Gauge(
            _NS + "_dnsbl_return_code_info",
            "1 for each return code a zone answers for a target.",
            ["target", "zone", "code", "severity"],
            registry=r,
        )
        self.dnsbl_zone_healthy = Gauge(
            _NS + "_dnsbl_zone_healthy",
            "1 when a zone passed its RFC 5782 test points in the last cycle.",
            ["zone"],
            registry=r,
        )
        self.dnsbl_check_errors = Counter(
            _NS + "_dnsbl_check_errors",
            "Blocklist checks without a known answer, by zone and cause.",
            ["zone", "reason"],
            registry=r,
        )
        self.dnsbl_last_success = Gauge(
            _NS + "_dnsbl_last_success_timestamp_seconds",
            "Unix time of the last cycle in which a zone answered its test points.",
            ["zone"],
            registry=r,
        )
        self.dns_query_duration = Histogram(
            _NS + "_dns_query_duration_seconds",
            "Duration of one DNS lookup, retries included, by check.",
            ["check"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )

        self.auth_check_status = Gauge(
            _NS + "_auth_check_status",
            "Worst result of an authentication check: 0 ok, 1 warning, "
            "2 fail, 3 could not check (DNS lookup failed).",
            ["domain", "check"],
            registry=r,
        )
        self.auth_spf_dns_lookups = Gauge(
            _NS + "_auth_spf_dns_lookups",
            "DNS lookups an SPF record tree costs a receiver (limit 10).",
            ["domain"],
            registry=r,
        )
        self.auth_spf_void_lookups = Gauge(
            _NS + "_auth_spf_void_lookups",
            "Void lookups (NXDOMAIN or NODATA) in an SPF record tree (limit 2).",
            ["domain"],
            registry=r,
        )
        self.auth_dmarc_policy = Gauge(
            _NS + "_auth_dmarc_policy",
            "Effective DMARC policy: 0 none, 1 quarantine, 2 reject, "
            "-1 no single record applies.",
            ["domain"],
            registry=r,
        )
        self.auth_dkim_key_bits = Gauge(
            _NS + "_auth_dkim_key_bits",
            "Size of a published DKIM public key; 0 when revoked or unreadable.",
            ["domain", "selector"],
            registry=r,
        )
        self.auth_ptr_fcrdns_ok = Gauge(
            _NS + "_auth_ptr_fcrdns_ok",
            "1 when a sending IP's PTR name resolves back to it, else 0.",
            ["ip"],
            registry=r,
        )

    def message(self, mailbox: str, kind: str, outcome: str) -> None:
        """Count one message taken from ``mailbox``."""
        self.messages.labels(mailbox, kind, outcome).inc()

    def poll_done(self, mailbox: str, seconds: float, *, succeeded: bool) -> None:
        """Record the duration of a poll cycle and, on success, its end time."""
        self.poll_duration.labels(mailbox).observe(seconds)
        if succeeded:
            self.last_success.labels(mailbox).set_to_current_time()

    def reconnect(self, mailbox: str, reason: str) -> None:
        """Count a dropped IMAP connection; ``reason`` is timeout, error or lost."""
        self.reconnects.labels(mailbox, reason).inc()
