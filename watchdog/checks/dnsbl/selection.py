"""Choose the zones to query from the catalogue and the settings."""

from __future__ import annotations

import stat
from pathlib import Path

from watchdog.checks.dnsbl.catalogue import (
    DNS_NAME_RULE,
    Zone,
    adhoc_zone,
    is_dns_name,
)
from watchdog.config import Blocklists, Settings
from watchdog.errors import ConfigError
from watchdog.rules_path import rules_dir

CATALOGUE_FILE = "dnsbl.yaml"


def catalogue_path(settings: Settings) -> Path:
    """Return ``blocklists.zones_file``, or ``dnsbl.yaml`` in the rules folder."""
    configured = settings.blocklists.zones_file
    if configured is not None:
        return configured
    return rules_dir(settings.rules_dir) / CATALOGUE_FILE


def select_zones(
    catalogue: dict[str, Zone],
    blocklists: Blocklists,
    *,
    only: list[str] | None = None,
) -> list[Zone]:
    """Return the zones to query, with the DQS key applied where one is set.

    The default set is every zone marked ``enabled``, plus
    ``blocklists.enable``, minus ``blocklists.disable``. ``only`` (the
    ``--zone`` option) replaces that set, and a name absent from the
    catalogue becomes an IP zone whose codes are all unknown. Raises
    ConfigError for an unknown name in ``enable`` or ``disable``, for a name
    in ``only`` that is not a DNS name, and for a zone that needs a DQS key
    when ``blocklists.dqs_key_file`` is unset.
    """
    for key, names in (("enable", blocklists.enable), ("disable", blocklists.disable)):
        for name in names:
            if name.lower() not in catalogue:
                msg = (
                    f"unknown blocklist zone {name!r} in blocklists.{key}: "
                    f"use a zone from the catalogue, such as {next(iter(catalogue))!r}"
                )
                raise ConfigError(msg, key=f"blocklists.{key}")

    if only:
        requested = [name.lower().rstrip(".") for name in only]
        for name in requested:
            if not is_dns_name(name):
                msg = f"invalid --zone {name!r}: {DNS_NAME_RULE}"
                raise ConfigError(msg, key="--zone")
        zones = [catalogue.get(name) or adhoc_zone(name) for name in requested]
    else:
        added = {name.lower() for name in blocklists.enable}
        dropped = {name.lower() for name in blocklists.disable}
        zones = [
            zone
            for zone in catalogue.values()
            if (zone.enabled or zone.name in added) and zone.name not in dropped
        ]
    dqs_key = read_dqs_key(blocklists.dqs_key_file)
    return [_apply_key(zone, dqs_key) for zone in zones]


def _apply_key(zone: Zone, key: str | None) -> Zone:
    if key is not None:
        return zone.with_dqs_key(key)
    if zone.needs_key:
        msg = (
            f"blocklist zone {zone.name!r} is queryable only with a Spamhaus DQS "
            "key: set blocklists.dqs_key_file, or add the zone to blocklists.disable"
        )
        raise ConfigError(msg, key="blocklists.dqs_key_file")
    return zone


def read_dqs_key(path: Path | None) -> str | None:
    """Read the Spamhaus DQS key from ``path``, or return None when it is unset.

    Raises ConfigError when the file is unreadable, empty, not a DNS label
    or readable by every user.
    """
    if path is None:
        return None
    try:
        mode = path.stat().st_mode
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        msg = f"cannot read DQS key file {str(path)!r}: {exc.strerror}"
        raise ConfigError(msg, key="blocklists.dqs_key_file") from exc
    if mode & stat.S_IROTH:
        msg = f"DQS key file {str(path)!r} is readable by every user: run chmod 600"
        raise ConfigError(msg, key="blocklists.dqs_key_file")
    if not key or not (key.isascii() and key.isalnum()) or len(key) > 63:
        msg = (
            f"DQS key file {str(path)!r} does not contain a key: expected one "
            "line of letters and digits"
        )
        raise ConfigError(msg, key="blocklists.dqs_key_file")
    return key
