"""The processing step shared by every source: one message in, one outcome out.

A source (IMAP, Maildir, mbox) hands over the raw bytes and where they came
from. The pipeline classifies them in the worker pool and records the
verdict, its events and the suppression changes in one transaction. The
source moves the message only after the record has committed, so a crash
leaves the message either recorded or still in its folder.

Processing is two steps. ``classify`` waits for the worker pool and touches
the database only to read, so many messages can be classified at once
outside any transaction. ``record`` writes one classified message and never
awaits, so a batch of them fits in one short ``Store.batch()``. ``process``
runs both for one message, with the store calls on the store's thread.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import structlog

from watchdog.classify.verdict import Kind, Verdict
from watchdog.outcomes import count_verdict
from watchdog.policy import arrival_time
from watchdog.providers import default_provider_map

if TYPE_CHECKING:
    from watchdog.checks.auth.learned import Learned
    from watchdog.config import Settings
    from watchdog.metrics import Metrics
    from watchdog.store import Store

log = structlog.get_logger("watchdog.pipeline")

HEADER_DATE_BYTES = 65_536
"""Bytes of a message searched for its Date header."""
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_DATE_FIELD = re.compile(rb"(?im)^Date:[ \t]*(.*(?:\r?\n[ \t].*)*)")
_FOLD = re.compile(rb"\r?\n[ \t]+")

# Kinds of message whose quoted original may teach us our own identifiers,
# and those sent to the original's envelope sender (RFC 3464).
_LEARN_FROM = (Kind.BOUNCE, Kind.COMPLAINT, Kind.AUTO_REPLY, Kind.DELIVERY_REPORT)
_TO_ENVELOPE_SENDER = (Kind.BOUNCE, Kind.DELIVERY_REPORT)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """The origin of a message.

    ``source`` is the configured mailbox or local source name; ``uid`` and
    ``uidvalidity`` are set for IMAP, ``path`` for files on disk.
    ``received_at`` is when the source received the message, if known: the
    IMAP INTERNALDATE or the file's modification time.
    """

    source: str
    folder: str
    uidvalidity: int | None = None
    uid: int | None = None
    path: str | None = None
    received_at: datetime | None = None


class Outcome(StrEnum):
    """The fate of a message, which decides the folder it moves to.

    ``processed``, ``duplicate`` and ``unverified`` go to the processed
    folder. ``unrecognised`` goes there too, unless the mailbox is shared
    with people. ``quarantined`` goes to the quarantine folder. ``failed``
    stays where it is and is retried until its attempts run out.
    """

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    UNVERIFIED = "unverified"
    UNRECOGNISED = "unrecognised"
    QUARANTINED = "quarantined"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of processing one message."""

    outcome: Outcome
    kind: Kind
    sha256: str
    verdict: Verdict | None = None
    events_added: int = 0
    suppressed: tuple[str, ...] = ()
    error: str | None = None
    earlier: Outcome | None = None
    """For a duplicate, the outcome stored for the first copy, if known."""


def header_date(raw: bytes) -> datetime | None:
    """Return the top-level Date header of ``raw`` as an aware datetime, or None.

    Reads at most the first HEADER_DATE_BYTES bytes. A date without a zone
    (``-0000``) is taken as UTC.
    """
    head = raw[:HEADER_DATE_BYTES]
    end = _HEADER_END.search(head)
    if end is not None:
        head = head[: end.start()]
    match = _DATE_FIELD.search(head)
    if match is None:
        return None
    text = _FOLD.sub(b" ", match.group(1)).decode("ascii", "replace").strip()
    try:
        value = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def sha256_hex(raw: bytes) -> str:
    """Return the duplicate key of a message: the SHA-256 of its raw bytes."""
    return hashlib.sha256(raw).hexdigest()


class ClassifyFailed(Exception):
    """Classification of one message failed in the worker.

    ``reason`` is ``cpu``, ``memory``, ``deadline`` or ``error``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Pending:
    """One message hashed and looked up, waiting for ``Processor.classify_pending``.

    ``earlier`` is the final outcome stored for the same bytes, or None when
    the message is new or only failed before and so must be classified.
    """

    ref: MessageRef
    raw: bytes
    sha256: str
    earlier: Outcome | None = None


@dataclass(frozen=True, slots=True)
class Classified:
    """One message after ``Processor.classify``, ready for ``Processor.record``.

    Exactly one of ``verdict``, ``failure`` and ``earlier`` is set:
    ``earlier`` is the final outcome stored for the same bytes, so the
    message is a duplicate and is not classified at all. ``learned`` is what
    the quoted original shows about our domains (see
    ``watchdog.checks.auth.learned``).
    """

    ref: MessageRef
    sha256: str
    size: int
    verdict: Verdict | None = None
    failure: ClassifyFailed | None = None
    earlier: Outcome | None = None
    learned: frozenset[Learned] = frozenset()
    dated: datetime | None = None
    """The message's own Date header, if it parses."""


class Classifier(Protocol):
    """Anything that classifies raw bytes off the event loop."""

    async def __call__(self, raw: bytes) -> Verdict: ...


class Processor:
    """Classify and record messages for one configuration.

    ``process``, ``classify`` and ``record`` never raise for anything wrong
    with the message itself. They raise StoreError when the database fails,
    and then nothing was recorded and the message must stay where it is.
    """

    def __init__(
        self,
        store: Store,
        classifier: Classifier,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._classifier = classifier
        self._settings = settings
        self._metrics = metrics
        self._providers = default_provider_map(settings.rules_dir)
        self._our_domains = {d.lower().rstrip(".") for d in settings.sending.domains}

    async def process(self, ref: MessageRef, raw: bytes) -> Result:
        """Classify ``raw`` and record the verdict; return where it goes next.

        The store reads and writes run on the store's thread.
        """
        classified = await self.classify(ref, raw)
        return await self._store.call(self.record, classified)

    async def classify(self, ref: MessageRef, raw: bytes) -> Classified:
        """Classify one message; see ``prepare`` and ``classify_pending``."""
        (pending,) = await self._store.call(self.prepare, [(ref, raw)])
        return await self.classify_pending(pending)

    async def quarantine_file(self, ref: MessageRef, size: int, digest: str) -> Result:
        """Run ``quarantine_oversize`` on the store's thread."""
        return await self._store.call(self.quarantine_oversize, ref, size, digest)

    def prepare(self, items: Sequence[tuple[MessageRef, bytes]]) -> list[Pending]:
        """Hash each message and look up earlier copies, in one read of the store."""
        digests = [sha256_hex(raw) for _, raw in items]
        stored = self._store.recorded_outcomes(digests)
        pending: list[Pending] = []
        for (ref, raw), digest in zip(items, digests, strict=True):
            earlier = stored.get(digest)
            if earlier is Outcome.FAILED:
                earlier = None  # classified again until its attempts run out
            pending.append(Pending(ref, raw, digest, earlier))
        return pending

    async def classify_pending(self, pending: Pending) -> Classified:
        """Classify in the worker pool, unless an earlier copy is final.

        Writes nothing, so it may run outside a transaction and alongside
        other messages.
        """
        ref, digest, size = pending.ref, pending.sha256, len(pending.raw)
        if pending.earlier is not None:
            return Classified(ref, digest, size, earlier=pending.earlier)
        try:
            verdict = await self._classifier(pending.raw)
        except ClassifyFailed as exc:
            return Classified(ref, digest, size, failure=exc)
        learned = await self._learn(pending, verdict)
        dated = header_date(pending.raw)
        return Classified(
            ref, digest, size, verdict=verdict, learned=learned, dated=dated
        )

    async def _learn(self, pending: Pending, verdict: Verdict) -> frozenset[Learned]:
        """Extract our identifiers from the quoted original, off the event loop.

        Only a verdict without ``limit`` gets here, so the message passed
        the ``Limits`` pre-scan that bounds the cost of parsing it again.
        """
        if not self._our_domains or verdict.limit is not None:
            return frozenset()
        if verdict.kind not in _LEARN_FROM:
            return frozenset()
        # Imported here to keep the DNS and crypto modules out of the
        # classifier workers, which import this module.
        from watchdog.checks.auth.learned import learn_from_message  # noqa: PLC0415

        try:
            learned = await asyncio.to_thread(
                learn_from_message,
                pending.raw,
                self._our_domains,
                delivered_to_envelope_sender=verdict.kind in _TO_ENVELOPE_SENDER,
                links=self._settings.blocklists.learn_link_domains,
            )
        except Exception as exc:
            # Learning is a side job, so no input may stop the recording.
            log.warning("learn_failed", sha256=pending.sha256, error=repr(exc))
            return frozenset()
        return frozenset(learned)

    def record(self, item: Classified) -> Result:
        """Record one classified message; return where it goes next.

        Runs in the enclosing ``Store.batch()``, if any, and never awaits.
        """
        if item.earlier is not None:
            return Result(
                Outcome.DUPLICATE, Kind.UNKNOWN, item.sha256, earlier=item.earlier
            )
        if item.failure is not None:
            return self._record_failure(item, item.failure)
        assert item.verdict is not None
        return self._record_verdict(item, item.verdict)

    def _record_verdict(self, item: Classified, verdict: Verdict) -> Result:
        outcome, verified = self._decide(verdict)
        arrived = arrival_time(item.dated, item.ref.received_at, datetime.now(UTC))
        recorded = self._store.record(
            item.ref,
            sha256=item.sha256,
            size=item.size,
            verdict=verdict,
            outcome=outcome,
            verified=verified,
            policy=self._settings.policy,
            arrived_at=arrived,
        )
        if not recorded.inserted:
            # Another copy of these bytes was recorded since ``classify``
            # looked, for instance earlier in the same batch.
            earlier = self._store.recorded_outcome(item.sha256)
            return Result(
                Outcome.DUPLICATE, verdict.kind, item.sha256, verdict, earlier=earlier
            )
        if item.learned and outcome is not Outcome.QUARANTINED:
            self._record_learned(item.learned)
        if self._metrics is not None and verified:
            count_verdict(self._metrics, self._providers, verdict, recorded.suppressed)
        return Result(
            outcome,
            verdict.kind,
            item.sha256,
            verdict=verdict,
            events_added=recorded.events_added,
            suppressed=recorded.suppressed,
            error=self._quarantine_reason(verdict, outcome),
        )

    def _quarantine_reason(self, verdict: Verdict, outcome: Outcome) -> str | None:
        """Return why ``_decide`` quarantined a message, so the source logs it."""
        if outcome is not Outcome.QUARANTINED:
            return None
        if verdict.kind is Kind.UNKNOWN and verdict.limit is not None:
            return verdict.limit
        return "max_recipients"

    def _record_learned(self, learned: frozenset[Learned]) -> None:
        # Imported here because watchdog.store imports this module.
        from watchdog.store.learned import record_learned  # noqa: PLC0415

        record_learned(self._store, learned)

    def quarantine_oversize(self, ref: MessageRef, size: int, digest: str) -> Result:
        """Record a message too large to fetch; it goes to quarantine unparsed."""
        self._store.record_rejected(
            ref, sha256=digest, size=size, error="max_message_bytes"
        )
        return Result(
            Outcome.QUARANTINED, Kind.UNKNOWN, digest, error="max_message_bytes"
        )

    def _record_failure(self, item: Classified, exc: ClassifyFailed) -> Result:
        ref, digest, size = item.ref, item.sha256, item.size
        attempts = self._store.record_failure(
            ref, sha256=digest, size=size, error=exc.reason
        )
        if attempts >= self._settings.policy.max_attempts:
            self._store.record_rejected(ref, sha256=digest, size=size, error=exc.reason)
            return Result(Outcome.QUARANTINED, Kind.UNKNOWN, digest, error=exc.reason)
        return Result(Outcome.FAILED, Kind.UNKNOWN, digest, error=exc.reason)

    def _decide(self, verdict: Verdict) -> tuple[Outcome, bool]:
        if verdict.kind is Kind.UNKNOWN and verdict.limit is not None:
            return Outcome.QUARANTINED, False
        if len(verdict.recipients) > self._settings.limits.max_recipients:
            return Outcome.QUARANTINED, False
        if verdict.kind in (Kind.NOT_BOUNCE, Kind.UNKNOWN):
            return Outcome.UNRECOGNISED, False
        if not self._is_ours(verdict):
            return Outcome.UNVERIFIED, False
        return Outcome.PROCESSED, True

    def _is_ours(self, verdict: Verdict) -> bool:
        """Tell whether the bounced or reported message was sent by us.

        With no sender domains configured every report is trusted. Otherwise
        the embedded original's sender must be in one of our domains, so a
        forged report about mail we never sent suppresses nobody.
        """
        if not self._our_domains:
            return True
        sender = verdict.original_sender or ""
        domain = sender.rpartition("@")[2].lower().rstrip(".>")
        return any(domain == d or domain.endswith("." + d) for d in self._our_domains)
