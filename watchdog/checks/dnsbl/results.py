"""The result of checking one target in one zone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from watchdog.checks.dnsbl.answer import Answer, Code, State
from watchdog.checks.dnsbl.catalogue import Zone
from watchdog.checks.dnsbl.targets import Target, TargetSource


@dataclass(frozen=True)
class ZoneResult:
    """One target in one zone: the state, the codes and the reason.

    ``source`` is why the target was checked (a ``TargetSource`` value).
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
        return cls(
            target=target.value,
            # Both are StrEnum members, so they are str values already.
            kind=target.kind,
            zone=zone.name,
            state=answer.state,
            codes=answer.codes,
            reason=answer.reason,
            informational=zone.informational,
            delist_url=zone.delist_url,
            source=target.source,
        )

    @property
    def alerts(self) -> bool:
        """Tell whether this is a reputation listing that should alert.

        Informational zones and configuration-only codes (Spamhaus PBL)
        never alert, and neither does any state other than ``listed``.
        """
        return (
            Answer(self.state, self.codes).is_reputation_listing
            and not self.informational
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
