"""Location of the ``rules/`` data directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

RULES_DIR_VARIABLE = "WATCHDOG_RULES_DIR"

_SOURCE_TREE_RULES = Path(__file__).resolve().parent.parent / "rules"
# The copy of the rules a wheel installs (data-files in pyproject.toml).
_INSTALLED_RULES = Path(sys.prefix) / "share" / "mail-watchdog" / "rules"


def rules_dir(configured: Path | None = None) -> Path:
    """Return the rules directory.

    The setting ``rules_dir`` wins, then the ``WATCHDOG_RULES_DIR`` variable,
    then the ``rules/`` folder beside the package in a source checkout, then
    the copy a wheel installs under ``<prefix>/share/mail-watchdog/rules``.
    """
    if configured is not None:
        return configured
    if os.environ.get(RULES_DIR_VARIABLE):
        return Path(os.environ[RULES_DIR_VARIABLE])
    if _SOURCE_TREE_RULES.is_dir():
        return _SOURCE_TREE_RULES
    return _INSTALLED_RULES


def export_rules_dir(configured: Path | None) -> None:
    """Set ``WATCHDOG_RULES_DIR`` to the ``rules_dir`` setting, if it is set.

    Call it before anything loads the classify rules, which are read once
    and cached per process, so that code which reads no settings finds
    the configured directory too.
    """
    if configured is not None:
        os.environ[RULES_DIR_VARIABLE] = str(configured)
