"""Location of the ``rules/`` data directory."""

from __future__ import annotations

import os
from pathlib import Path

_SOURCE_TREE_RULES = Path(__file__).resolve().parent.parent / "rules"


def rules_dir(configured: Path | None = None) -> Path:
    """Return the rules directory.

    The setting ``rules_dir`` wins, then the ``WATCHDOG_RULES_DIR`` variable,
    then the ``rules/`` folder beside the package in a source checkout.
    """
    if configured is not None:
        return configured
    if os.environ.get("WATCHDOG_RULES_DIR"):
        return Path(os.environ["WATCHDOG_RULES_DIR"])
    return _SOURCE_TREE_RULES
