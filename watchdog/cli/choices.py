"""Choices of command-line options whose values come from heavy modules.

Typer reads an option's enum when it builds the command line, even for
``--help``. The enums below repeat the values of ``MailboxKind``
(watchdog.config, which imports pydantic), ``SuppressionReason``
(watchdog.policy, which imports the classifier) and ``FileFormat``
(watchdog.store.transfer, which imports SQLAlchemy), so that those modules
are imported only when a command runs. tests/cli/test_startup.py keeps the
values identical.
"""

from __future__ import annotations

from enum import StrEnum


class KindChoice(StrEnum):
    """Value of ``scan --kind``: a ``MailboxKind``."""

    BOUNCES = "bounces"
    FEEDBACK = "feedback"


class ReasonChoice(StrEnum):
    """Value of a ``suppress --reason`` option: a ``SuppressionReason``."""

    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    IMPORT = "import"


class TransferFormat(StrEnum):
    """Value of ``suppress import|export --format``: a ``FileFormat``.

    ``json`` is another name for ``jsonl``, because ``check`` and
    ``classify`` call their JSON Lines output ``json``.
    """

    CSV = "csv"
    JSONL = "jsonl"
    JSON = "json"

    @property
    def file_format(self) -> str:
        """The ``FileFormat`` value this choice names."""
        return "jsonl" if self is TransferFormat.JSON else self.value
