"""The result of checking one target in one zone."""

from __future__ import annotations

from typing import Any, NamedTuple

from watchdog.checks.dnsbl.answer import Answer, Code, State
from watchdog.checks.dnsbl.catalogue import Zone
from watchdog.checks.dnsbl.targets import Target, TargetSource


class ZoneResult(NamedTuple):
    """One target in one zone: the state, the codes and the reason.

    ``source`` is why the target was checked (a ``TargetSource`` value).
    A named tuple rather than a frozen dataclass, because a cycle builds one
    per target and zone, and a tuple costs a quarter of the CPU to build.
    """

    target: str
    kind: str
    zone: str
    state: State
    codes: tuple[Code, ...] = ()
    reason: str = ""
    informational: bool = False
    delist_url: str | None = None
    source: str = TargetSource.SENDING.value

    @classmethod
    def of(cls, target: Target, zone: Zone, answer: Answer) -> ZoneResult:
        """Build the result of ``target`` in ``zone`` from an interpreted answer."""
        # Positional, in field order: keywords double the cost of each result.
        # ``kind`` and ``source`` are StrEnum members, so they are str values.
        return cls(
            target.value,
            target.kind,
            zone.name,
            answer.state,
            answer.codes,
            answer.reason,
            zone.informational,
            zone.delist_url,
            target.source,
        )

    @property
    def alerts(self) -> bool:
        """Tell whether this is a reputation listing that should alert.

        Informational zones and configuration-only codes (Spamhaus PBL)
        never alert, and neither does any state other than ``listed``.
        """
        # The state is tested first so that the common not-listed result
        # builds no Answer.
        return (
            self.state is State.LISTED
            and not self.informational
            and Answer(self.state, self.codes).is_reputation_listing
        )

    def to_json(self) -> dict[str, Any]:
        """Return the result as a JSON-ready mapping."""
        return {
            "target": self.target,
            "kind": self.kind,
            "zone": self.zone,
            "state": self.state.value,
            "codes": [
                {"code": c.address, "meaning": c.meaning, "severity": c.severity.value}
                for c in self.codes
            ],
            "reason": self.reason,
            "informational": self.informational,
            "delist_url": self.delist_url,
            "source": self.source,
        }
