"""Checks of the data files a configuration names, run before anything starts."""

from __future__ import annotations

from watchdog.checks.dnsbl.catalogue import load_catalogue
from watchdog.checks.dnsbl.selection import catalogue_path, read_dqs_key, select_zones
from watchdog.classify.rules import load_rules
from watchdog.config import Settings
from watchdog.errors import ConfigError
from watchdog.providers import load_provider_map
from watchdog.rules_path import rules_dir


def check_data(settings: Settings) -> None:
    """Load everything the daemon reads at start: rules, zones, local sources.

    The classifier turns a broken rules file into ``unknown`` verdicts
    rather than raising, so a bad file must be caught here. Raises
    RulesError for an invalid rules file and ConfigError for a zone, key
    file or local source path the settings name but that is unusable.
    """
    directory = rules_dir(settings.rules_dir)
    load_rules(directory / "classify")
    load_provider_map(directory / "providers.yaml")
    select_zones(load_catalogue(catalogue_path(settings)), settings.blocklists)
    read_dqs_key(settings.blocklists.dqs_key_file)
    for name, local in settings.local.items():
        if not local.path.exists():
            msg = (
                f"local.{name}.path: {str(local.path)!r} does not exist: "
                "create it or correct the path"
            )
            raise ConfigError(msg, key=f"local.{name}.path")
