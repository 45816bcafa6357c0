"""Exceptions raised by Mail Watchdog.

Every error the package raises on purpose derives from ``WatchdogError``.
Errors of lower libraries (aioimaplib, dnspython, SQLAlchemy) are wrapped at
the module that calls them and chained with ``raise ... from exc``::

    WatchdogError
    ├── ConfigError            invalid or missing setting; names the key
    ├── RulesError             a file under rules/ fails its schema
    ├── SourceError            a mailbox or local source failed
    │   ├── ImapError          protocol error, NO/BAD reply, lost connection
    │   │   ├── ImapTimeout    a deadline expired; the connection is dropped
    │   │   └── ImapAuthError  the server rejected the credentials
    │   └── MailboxMissing     the source folder does not exist
    ├── StoreError             the database failed; the transaction rolled back
    │   └── StoreBusy          locked, disconnected or full; safe to retry
    └── DnsError               a lookup failed; the answer is unknown
"""

from __future__ import annotations


class WatchdogError(Exception):
    """Base class of every error Mail Watchdog raises on purpose."""


class ConfigError(WatchdogError):
    """A setting is invalid or missing.

    ``key`` is the dotted setting name, for example ``mailboxes.bounces.port``.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class RulesError(WatchdogError):
    """A rules file is invalid: ``path``, ``line`` and ``field`` locate it."""

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.field = field


class SourceError(WatchdogError):
    """A mailbox or local source failed; ``mailbox`` names it."""

    def __init__(self, message: str, *, mailbox: str | None = None) -> None:
        super().__init__(message)
        self.mailbox = mailbox


class ImapError(SourceError):
    """An IMAP command failed or the connection was lost."""


class ImapTimeout(ImapError):
    """An IMAP deadline expired; the connection must not be reused."""


class ImapAuthError(ImapError):
    """The IMAP server rejected the credentials."""


class MailboxMissing(SourceError):
    """The source folder does not exist on the server or on disk."""


class StoreError(WatchdogError):
    """A database operation failed and its transaction was rolled back."""


class StoreBusy(StoreError):
    """The database is locked, disconnected or full; retry the transaction.

    ``reason`` is one of ``locked``, ``disconnected`` or ``disk_full``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DnsError(WatchdogError):
    """A DNS lookup failed: timeout, SERVFAIL or REFUSED.

    The answer is unknown. Callers keep the last good state and never read
    this as "absent", "listed" or "clean".
    """

    def __init__(self, message: str, *, name: str, reason: str) -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason
