"""The ``left_message`` table: UIDs of IMAP mail left in its folder."""

from __future__ import annotations

from tests.store.conftest import bounce
from tests.store.test_record import digest, message_row, record
from watchdog.pipeline import MessageRef, Outcome
from watchdog.store import Store


def test_remember_returns_new(store: Store) -> None:
    """Only UIDs not stored before are returned."""
    assert store.remember_left("bounces", "INBOX", 7, [1, 2]) == {1, 2}
    assert store.remember_left("bounces", "INBOX", 7, [2, 3]) == {3}


def test_still_present_forgets_gone(store: Store) -> None:
    """UIDs of another UIDVALIDITY and UIDs gone from the folder are dropped."""
    store.remember_left("bounces", "INBOX", 6, [1])
    store.remember_left("bounces", "INBOX", 7, [1, 2, 3])

    assert store.left_uids("bounces", "INBOX", 7, {1, 3, 9}) == {1, 3}
    assert store.left_uids("bounces", "INBOX", 7, {1, 2, 3}) == {1, 3}
    assert store.left_uids("bounces", "INBOX", 6, {1}) == set()


def test_gone_row_not_confirmed(store: Store) -> None:
    """The row of left mail deleted by someone is not listed as unmoved."""
    deleted, present = digest(), digest()
    for uid, sha in ((1, deleted), (2, present)):
        ref = MessageRef("bounces", "INBOX", uidvalidity=7, uid=uid)
        record(store, bounce(), sha256=sha, ref=ref, outcome=Outcome.UNRECOGNISED)
    store.remember_left("bounces", "INBOX", 7, [1, 2])

    store.left_uids("bounces", "INBOX", 7, {2})
    unmoved = store.unmoved("bounces", "INBOX", 7, [Outcome.UNRECOGNISED])
    waiting = store.unmoved_without_uid("bounces", "INBOX", 7, [Outcome.UNRECOGNISED])

    assert [row.sha256 for row in unmoved] == [present]
    assert waiting == {}
    assert message_row(store, deleted)["uid"] is None
    assert message_row(store, deleted)["uidvalidity"] is None
    assert message_row(store, present)["uid"] == 2
