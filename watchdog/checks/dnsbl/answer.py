"""Interpretation of blocklist answers: a pure function of the zone and records.

Nothing here touches the network. ``interpret`` turns the A records (and TXT
reason) returned for one query into an ``Answer``; ``judge_canary`` decides
from the RFC 5782 test points whether a zone can be trusted this cycle.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from watchdog.checks.dnsbl.catalogue import (
    REPUTATION_SEVERITIES,
    CodeMeaning,
    Severity,
    Zone,
)

_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_BITMASK_PREFIX = "127.0.0."


class State(StrEnum):
    """The outcome of one target in one zone."""

    LISTED = "listed"
    NOT_LISTED = "not_listed"
    # The operator answered an error code (query refused, blocked, through a
    # public resolver, over quota, or of the wrong kind): nothing is known.
    OPERATOR_ERROR = "operator_error"
    # An A record outside 127.0.0.0/8: a resolver rewrote NXDOMAIN, or the
    # list's domain is parked. Nothing is known.
    BOGUS = "bogus"
    # Timeout, SERVFAIL or REFUSED: nothing is known.
    DNS_ERROR = "dns_error"
    # The zone failed its test points this cycle, so its answers are void.
    ZONE_UNHEALTHY = "zone_unhealthy"


KNOWN_STATES = frozenset({State.LISTED, State.NOT_LISTED})


@dataclass(frozen=True)
class Code:
    """One return code and what it means in its zone."""

    address: str
    meaning: str
    severity: Severity


@dataclass(frozen=True)
class Answer:
    """The interpreted answer of one zone for one query name."""

    state: State
    codes: tuple[Code, ...] = ()
    reason: str = ""

    @property
    def is_reputation_listing(self) -> bool:
        """Tell whether a code other than a configuration finding came back."""
        return self.state is State.LISTED and any(
            code.severity in REPUTATION_SEVERITIES for code in self.codes
        )


NOT_LISTED = Answer(State.NOT_LISTED)


def interpret(zone: Zone, addresses: Sequence[str], reason: str = "") -> Answer:
    """Turn the A records of one answer into a state and its codes.

    No record is ``not_listed``. Any record outside 127.0.0.0/8 makes the
    whole answer ``bogus`` and any operator-error code makes it
    ``operator_error``: neither is ever read as a listing. Codes the
    catalogue does not know are kept with severity ``unknown``.
    """
    if not addresses:
        return NOT_LISTED

    parsed = sorted({ipaddress.IPv4Address(text) for text in addresses})
    outside = [str(a) for a in parsed if a not in _LOOPBACK_V4]
    if outside:
        return Answer(State.BOGUS, reason=f"answer outside 127.0.0.0/8: {outside}")

    for address in parsed:
        problem = _operator_error(zone, str(address))
        if problem is not None:
            return Answer(State.OPERATOR_ERROR, reason=f"{address}: {problem}")

    codes: list[Code] = []
    for address in parsed:
        codes.extend(_codes(zone, str(address)))
    return Answer(State.LISTED, codes=tuple(codes), reason=reason)


def _operator_error(zone: Zone, address: str) -> str | None:
    if address in zone.operator_errors:
        return zone.operator_errors[address]
    if zone.operator_error_bits and address.startswith(_BITMASK_PREFIX):
        last = int(address.rsplit(".", 1)[1])
        for bit, meaning in zone.operator_error_bits.items():
            if last & bit:
                return meaning
    return None


def _codes(zone: Zone, address: str) -> list[Code]:
    if address in zone.codes:
        return [_code(address, zone.codes[address])]
    if not zone.bits or not address.startswith(_BITMASK_PREFIX):
        return [Code(address, "unknown return code", Severity.UNKNOWN)]

    last = int(address.rsplit(".", 1)[1])
    codes = []
    for bit in (1 << n for n in range(8)):
        if not last & bit:
            continue
        known = zone.bits.get(bit)
        if known is None:
            codes.append(Code(f"{address} bit {bit}", "unknown bit", Severity.UNKNOWN))
        else:
            codes.append(_code(f"{address} bit {bit}", known))
    if not codes:
        # 127.0.0.0 sets no bit, yet it is an answer, so it must not read as
        # a listing without a code (which would never alert).
        codes.append(Code(address, "no bit set", Severity.UNKNOWN))
    return codes


def _code(address: str, known: CodeMeaning) -> Code:
    return Code(address, known.meaning, known.severity)


@dataclass(frozen=True)
class Health:
    """Whether a zone passed its test points this cycle, and why not."""

    healthy: bool
    reason: str = ""


HEALTHY = Health(healthy=True)


def judge_canary(listed: Answer, unlisted: Answer) -> Health:
    """Judge a zone from its listed and its unlisted test point.

    RFC 5782 section 5: the listed point must be listed and the unlisted one
    must not be. A zone that lists everything, answers nothing, refuses the
    query or cannot be reached fails.
    """
    if listed.state is not State.LISTED:
        return Health(False, f"listed test point came back {_describe(listed)}")
    if unlisted.state is not State.NOT_LISTED:
        return Health(False, f"unlisted test point came back {_describe(unlisted)}")
    return HEALTHY


def _describe(answer: Answer) -> str:
    if answer.codes:
        return f"{answer.state.value} {[code.address for code in answer.codes]}"
    if answer.reason:
        return f"{answer.state.value} ({answer.reason})"
    return answer.state.value
