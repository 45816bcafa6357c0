"""Answers are interpreted without a socket: states, codes, canaries."""

from __future__ import annotations

import pytest

from watchdog.checks.dnsbl.answer import (
    NOT_LISTED,
    Answer,
    State,
    interpret,
    judge_canary,
)
from watchdog.checks.dnsbl.catalogue import CodeMeaning, Severity, Zone, ZoneKind

ZEN = Zone(
    name="zen.test",
    kinds=frozenset({ZoneKind.IP4}),
    codes={
        "127.0.0.2": CodeMeaning("SBL", Severity.CRITICAL),
        "127.0.0.4": CodeMeaning("XBL", Severity.CRITICAL),
        "127.0.0.10": CodeMeaning("PBL", Severity.CONFIGURATION),
    },
    operator_errors={"127.255.255.254": "public resolver"},
)
SURBL = Zone(
    name="multi.test",
    kinds=frozenset({ZoneKind.DOMAIN}),
    bits={
        16: CodeMeaning("malware", Severity.CRITICAL),
        64: CodeMeaning("abuse", Severity.CRITICAL),
    },
    operator_error_bits={1: "query blocked"},
)

CASES = [
    # (zone, addresses, state, code addresses)
    (ZEN, [], State.NOT_LISTED, []),
    (ZEN, ["127.0.0.2"], State.LISTED, ["127.0.0.2"]),
    (ZEN, ["127.0.0.4", "127.0.0.2", "127.0.0.10"], State.LISTED,
     ["127.0.0.2", "127.0.0.4", "127.0.0.10"]),
    (ZEN, ["127.0.0.77"], State.LISTED, ["127.0.0.77"]),
    (ZEN, ["127.255.255.254"], State.OPERATOR_ERROR, []),
    (ZEN, ["127.0.0.2", "127.255.255.254"], State.OPERATOR_ERROR, []),
    (ZEN, ["192.0.2.1"], State.BOGUS, []),
    (ZEN, ["127.0.0.2", "10.0.0.1"], State.BOGUS, []),
    (SURBL, ["127.0.0.80"], State.LISTED, ["127.0.0.80 bit 16", "127.0.0.80 bit 64"]),
    (SURBL, ["127.0.0.81"], State.OPERATOR_ERROR, []),
    (SURBL, ["127.0.0.1"], State.OPERATOR_ERROR, []),
    (SURBL, ["127.0.0.2"], State.LISTED, ["127.0.0.2 bit 2"]),
]  # fmt: skip


@pytest.mark.parametrize(("zone", "addresses", "state", "codes"), CASES)
def test_interpret(
    zone: Zone, addresses: list[str], state: State, codes: list[str]
) -> None:
    answer = interpret(zone, addresses)
    assert answer.state is state
    assert [code.address for code in answer.codes] == codes


def test_unknown_code_severity() -> None:
    (code,) = interpret(ZEN, ["127.0.0.77"]).codes
    assert code.severity is Severity.UNKNOWN


def test_unknown_bit_severity() -> None:
    (code,) = interpret(SURBL, ["127.0.0.2"]).codes
    assert code.severity is Severity.UNKNOWN


def test_reason_kept_when_listed() -> None:
    assert interpret(ZEN, ["127.0.0.2"], "Listed: see URL").reason == "Listed: see URL"


def test_pbl_alone_not_reputation() -> None:
    assert not interpret(ZEN, ["127.0.0.10"]).is_reputation_listing


def test_pbl_with_sbl_is_reputation() -> None:
    assert interpret(ZEN, ["127.0.0.10", "127.0.0.2"]).is_reputation_listing


def test_operator_error_not_reputation() -> None:
    assert not interpret(ZEN, ["127.255.255.254"]).is_reputation_listing


LISTED = Answer(State.LISTED)

CANARIES = [
    # (listed test point, unlisted test point, healthy)
    (LISTED, NOT_LISTED, True),
    (LISTED, LISTED, False),
    (NOT_LISTED, NOT_LISTED, False),
    (Answer(State.DNS_ERROR, reason="timeout"), NOT_LISTED, False),
    (Answer(State.OPERATOR_ERROR), NOT_LISTED, False),
    (Answer(State.BOGUS), Answer(State.BOGUS), False),
    (LISTED, Answer(State.DNS_ERROR, reason="servfail"), False),
]


@pytest.mark.parametrize(("listed", "unlisted", "healthy"), CANARIES)
def test_judge_canary(listed: Answer, unlisted: Answer, healthy: bool) -> None:
    assert judge_canary(listed, unlisted).healthy is healthy


def test_canary_reason_names_point() -> None:
    health = judge_canary(LISTED, LISTED)
    assert health.reason.startswith("unlisted test point came back listed")
