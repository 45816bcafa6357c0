"""Settings: one TOML file, overridable from the environment.

The file is named by ``--config`` or ``WATCHDOG_CONFIG``. Every key can be
overridden by an environment variable: ``WATCHDOG_`` followed by the dotted
key in upper case with ``__`` between levels, for example
``WATCHDOG_DATABASE__URL`` or ``WATCHDOG_MAILBOXES__BOUNCES__PASSWORD``.
Secrets come from files (``password_file``) or the environment and are never
required in the file itself.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self

import idna
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from watchdog.config_errors import config_error
from watchdog.errors import ConfigError

ENV_PREFIX = "WATCHDOG_"
DEFAULT_DATABASE_URL = "sqlite:///mail-watchdog.db"


class MailboxKind(StrEnum):
    """The kind of mail a mailbox receives."""

    BOUNCES = "bounces"
    FEEDBACK = "feedback"


class TlsMode(StrEnum):
    """The protection of the IMAP connection."""

    IMPLICIT = "implicit"
    NONE = "none"


class Unrecognised(StrEnum):
    """The handling of mail that is no bounce, complaint or auto-reply."""

    MOVE = "move"
    LEAVE = "leave"


class LocalFormat(StrEnum):
    """Layout of a local mail source."""

    AUTO = "auto"
    MAILDIR = "maildir"
    MBOX = "mbox"
    EML = "eml"


class StartAt(StrEnum):
    """Starting point of the MTA log reader when it has no stored position."""

    END = "end"
    START = "start"


MTA_LOG_AGENTS = ("smtp", "lmtp", "local", "virtual", "pipe", "error", "retry")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Section):
    """Bounds applied to each message before and during classification."""

    max_message_bytes: int = Field(10_000_000, gt=0)
    max_header_bytes: int = Field(65_536, gt=0)
    max_parts: int = Field(1_000, gt=0)
    max_depth: int = Field(32, gt=0)
    max_encoded_words: int = Field(
        2_000, gt=0, description="RFC 2047 encoded-words in the whole message"
    )
    max_text_bytes: int = Field(
        131_072,
        gt=0,
        description="bytes of one part's body handed to detectors; the rest is cut",
    )
    max_recipients: int = Field(
        10, gt=0, description="recipients acted on per message; more quarantines it"
    )
    cpu_seconds: int = Field(5, gt=0)
    memory_mb: int = Field(512, ge=256)
    wall_seconds: float = Field(10.0, gt=0)
    workers: int | None = Field(
        None, gt=0, description="classifier worker processes; unset uses the CPU count"
    )


class Policy(_Section):
    """When an address goes on the suppression list."""

    soft_bounce_threshold: int = Field(3, gt=0)
    soft_bounce_window_days: int = Field(7, gt=0)
    soft_suppression_days: int = Field(
        30, ge=0, description="days a soft-bounce suppression lasts; 0 keeps it"
    )
    max_attempts: int = Field(
        3, gt=0, description="failed classifications before a message is quarantined"
    )


class Database(_Section):
    """The database that stores events and the suppression list."""

    url: str = DEFAULT_DATABASE_URL
    busy_timeout_seconds: float = Field(5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if "://" not in value and scheme not in {"sqlite", "postgresql"}:
            msg = (
                "expected a URL, not a file path: use "
                f"sqlite:///{value} for an SQLite database at that path"
            )
            raise ValueError(msg)
        if scheme == "sqlite" and not value.startswith("sqlite:///"):
            msg = (
                "an SQLite URL has three slashes before a relative path and four "
                "before an absolute one: sqlite:///watchdog.db or "
                "sqlite:////var/lib/mail-watchdog/watchdog.db"
            )
            raise ValueError(msg)
        if scheme not in {"sqlite", "postgresql", "postgresql+psycopg"}:
            msg = (
                f"unsupported database URL scheme {scheme!r}: use "
                "sqlite:///PATH or postgresql://USER@HOST/DB"
            )
            raise ValueError(msg)
        return value


class Http(_Section):
    """The ``/metrics`` and ``/healthz`` listener."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9465, ge=0, le=65535)


class Log(_Section):
    """Log format and level."""

    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Mailbox(_Section):
    """One IMAP mailbox polled for bounces or feedback reports."""

    host: str
    port: int | None = Field(None, ge=1, le=65535)
    tls: TlsMode = TlsMode.IMPLICIT
    ca_file: Path | None = None
    username: str
    password: SecretStr | None = None
    password_file: Path | None = None
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    kind: MailboxKind = MailboxKind.BOUNCES
    poll_interval_seconds: float = Field(60.0, gt=0)
    idle: bool = True
    idle_renew_seconds: float = Field(
        300.0, gt=0, le=1740, description="IDLE is re-issued this often"
    )
    batch_size: int = Field(100, gt=0, le=200)
    max_message_bytes: int | None = Field(None, gt=0)
    unrecognised: Unrecognised = Unrecognised.MOVE
    timeout_seconds: float = Field(30.0, gt=0)
    cycle_timeout_seconds: float = Field(600.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.tls is TlsMode.NONE and not _is_loopback(self.host):
            msg = (
                f"tls = 'none' is allowed only to a loopback host, not {self.host!r}: "
                "use tls = 'implicit' (port 993)"
            )
            raise ValueError(msg)
        if self.password is None and self.password_file is None:
            msg = (
                "no password: set password_file, or the environment variable "
                "WATCHDOG_MAILBOXES__<name>__PASSWORD"
            )
            raise ValueError(msg)
        if self.password is not None and self.password_file is not None:
            msg = "both password and password_file are set: keep one of them"
            raise ValueError(msg)
        return self

    @property
    def effective_port(self) -> int:
        """The configured port, or the protocol default for the TLS mode."""
        if self.port is not None:
            return self.port
        return 993 if self.tls is TlsMode.IMPLICIT else 143

    def read_password(self) -> str:
        """Return the password, reading ``password_file`` when set.

        Raises ConfigError when the file is missing, unreadable or readable by
        every user on the machine.
        """
        if self.password is not None:
            return self.password.get_secret_value()
        assert self.password_file is not None
        return _read_secret_file(self.password_file)


class LocalSource(_Section):
    """A Maildir, mbox file or folder of .eml files polled from disk."""

    path: Path
    format: LocalFormat = LocalFormat.AUTO
    kind: MailboxKind = MailboxKind.BOUNCES
    poll_interval_seconds: float = Field(60.0, gt=0)


class Sending(_Section):
    """Our sending domains, IPs and HELO name.

    The audits check them, and bounces of mail from other domains are
    treated as forged.
    """

    domains: list[str] = Field(
        default_factory=list,
        description="our sender domains; a bounce of mail from another domain "
        "is unverified and suppresses nobody. Empty trusts every bounce.",
    )
    ips: list[str] = Field(default_factory=list)
    helo: str | None = None
    dkim_selectors: list[str] = Field(default_factory=list)
    return_path_domains: list[str] = Field(
        default_factory=list,
        description="envelope sender (Return-Path) domains the alignment audit "
        "checks as well as those learned from bounces; empty only learns",
    )

    @field_validator("ips")
    @classmethod
    def _valid_ips(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                msg = f"{value!r} is not an IPv4 or IPv6 address"
                raise ValueError(msg) from None
        return values

    @field_validator("domains", "return_path_domains")
    @classmethod
    def _valid_domains(cls, values: list[str]) -> list[str]:
        return [_domain_name(value) for value in values]

    @field_validator("helo")
    @classmethod
    def _valid_helo(cls, value: str | None) -> str | None:
        return None if value is None else _domain_name(value)


class Dns(_Section):
    """The resolver used by blocklist and authentication checks."""

    nameservers: list[str] = Field(
        default_factory=list,
        description="HOST or HOST:PORT entries; empty uses the system resolver",
    )
    timeout_seconds: float = Field(1.0, gt=0)
    lifetime_seconds: float = Field(3.0, gt=0)

    @field_validator("nameservers")
    @classmethod
    def _valid_nameservers(cls, values: list[str]) -> list[str]:
        from watchdog.checks.resolver import parse_nameserver  # noqa: PLC0415

        for value in values:
            try:
                parse_nameserver(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return values


class Blocklists(_Section):
    """DNS blocklist checks of the sending IPs and domains."""

    zones_file: Path | None = None
    enable: list[str] = Field(default_factory=list)
    disable: list[str] = Field(default_factory=list)
    dqs_key_file: Path | None = None
    interval_seconds: float = Field(900.0, gt=0)
    concurrency: int = Field(32, gt=0)
    per_zone_concurrency: int = Field(4, gt=0)
    link_domains: list[str] = Field(
        default_factory=list,
        description="domains our mail links to, checked against domain zones",
    )
    learn_link_domains: bool = Field(
        False,
        description="also check the registered domains of http and https links "
        "in our own mail quoted by bounces",
    )

    @field_validator("link_domains")
    @classmethod
    def _valid_link_domains(cls, values: list[str]) -> list[str]:
        return [_domain_name(value) for value in values]


class Audit(_Section):
    """Domain authentication audits (SPF, DKIM, DMARC, MX, PTR ...)."""

    interval_seconds: float = Field(3600.0, gt=0)
    allow_private_mx: bool = Field(
        False,
        description="accept MX hosts on loopback, private or documentation "
        "addresses; for lab and test setups only",
    )


class MtaLog(_Section):
    """Postfix's mail log, read for delivery attempts by status and provider."""

    enabled: bool = False
    path: Path = Path("/var/log/mail.log")
    poll_interval_seconds: float = Field(10.0, gt=0)
    start_at: StartAt = Field(
        StartAt.END,
        description="where the first read starts without a stored position: "
        "end skips the backlog, start counts the whole file",
    )
    syslog_names: list[str] = Field(
        default_factory=lambda: ["postfix", "postfix/*", "postfix-*"],
        min_length=1,
        description="shell patterns for Postfix's syslog_name, the part of a "
        "line's tag before the program (postfix, postfix/relay, postfix-out)",
    )
    agents: list[str] = Field(
        default_factory=lambda: list(MTA_LOG_AGENTS),
        min_length=1,
        description="delivery agents whose lines count",
    )
    ignore_relays: list[str] = Field(
        default_factory=list,
        description="shell patterns for relay= values not counted, such as a "
        "content filter that Postfix hands every message to first",
    )
    state_key: str | None = Field(
        None,
        min_length=1,
        description="name of the stored position; unset uses the path",
    )
    max_line_bytes: int = Field(65_536, ge=1024, le=16_777_216)
    max_pending_recipients: int = Field(
        100_000,
        gt=0,
        description="deferred recipients remembered for counting their expiry",
    )

    @field_validator("agents")
    @classmethod
    def _known_agents(cls, values: list[str]) -> list[str]:
        for value in values:
            if value not in MTA_LOG_AGENTS:
                known = ", ".join(MTA_LOG_AGENTS)
                msg = f"unknown delivery agent {value!r}: use some of {known}"
                raise ValueError(msg)
        return values

    @property
    def key(self) -> str:
        """The name the reader's position is stored under."""
        return self.state_key or str(self.path)


class Settings(BaseSettings):
    """Every setting of Mail Watchdog."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database: Database = Database()
    http: Http = Http()
    log: Log = Log()
    policy: Policy = Policy()
    limits: Limits = Limits()
    sending: Sending = Sending()
    dns: Dns = Dns()
    blocklists: Blocklists = Blocklists()
    audit: Audit = Audit()
    mta_log: MtaLog = MtaLog()
    mailboxes: dict[str, Mailbox] = {}
    local: dict[str, LocalSource] = {}
    rules_dir: Path | None = None

    @field_validator("rules_dir")
    @classmethod
    def _rules_dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not (value / "classify").is_dir():
            msg = (
                f"{str(value)!r} is not a rules directory (it has no classify/ "
                "folder): copy the repository's rules/ folder there or unset it"
            )
            raise ValueError(msg)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, which is passed as init data.
        return env_settings, init_settings


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (or ``WATCHDOG_CONFIG``) and the environment.

    ``overrides`` are dotted keys from the command line such as
    ``database.url``; they win over both. Raises ConfigError naming the key,
    the rejected value and the fix.
    """
    if path is None and os.environ.get("WATCHDOG_CONFIG"):
        path = Path(os.environ["WATCHDOG_CONFIG"])

    data: dict[str, Any] = _read_toml(path) if path is not None else {}
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise config_error(exc, path, Settings) from None

    if not overrides:
        return settings
    merged = settings.model_dump()
    for dotted, value in overrides.items():
        _set_dotted(merged, dotted, value)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise config_error(exc, path, Settings, overrides) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError:
        msg = (
            f"configuration file {str(path)!r} not found: "
            "check --config or WATCHDOG_CONFIG"
        )
        raise ConfigError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"configuration file {str(path)!r} is not valid TOML: {exc}"
        raise ConfigError(msg) from None
    except OSError as exc:
        msg = (
            f"configuration file {str(path)!r} could not be read: {exc.strerror}: "
            "check --config or WATCHDOG_CONFIG"
        )
        raise ConfigError(msg) from None


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _domain_name(value: str) -> str:
    """Return ``value`` as a lower-case A-label domain, or raise ValueError."""
    name = value.strip().rstrip(".").lower()
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        msg = f"{value!r} is not a valid domain name"
        raise ValueError(msg) from None
    labels = ascii_name.split(".")
    if (
        len(ascii_name) > 253
        or len(labels) < 2
        or not all(
            0 < len(label) <= 63 and label.replace("-", "").isalnum()
            for label in labels
        )
    ):
        msg = f"{value!r} is not a valid domain name such as example.com"
        raise ValueError(msg)
    return ascii_name


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_secret_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read password file {str(path)!r}: {exc.strerror}"
        raise ConfigError(msg, key="password_file") from None
    if mode & stat.S_IROTH:
        msg = (
            f"password file {str(path)!r} is readable by every user: "
            f"run chmod 600 {path}"
        )
        raise ConfigError(msg, key="password_file")
    password = text.rstrip("\r\n")
    if not password:
        msg = f"password file {str(path)!r} is empty: write the password into it"
        raise ConfigError(msg, key="password_file")
    return password
