"""The IMAP session wrapper against a private Dovecot."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from tests.servers.common import free_port
from tests.servers.dovecot import PASSWORD, Dovecot
from watchdog.errors import ImapAuthError, ImapError, MailboxMissing
from watchdog.sources.imap import Endpoint, ImapSession, MoveMethod, tls_context

pytestmark = pytest.mark.dovecot

MESSAGE = b"From: a@example.com\r\nSubject: %d\r\n\r\nbody %d\r\n"


def endpoint(dovecot: Dovecot, user: str, *, tls: bool = True) -> Endpoint:
    if tls:
        return Endpoint(
            host="127.0.0.1",
            port=dovecot.imaps_port,
            username=user,
            ssl_context=tls_context(str(dovecot.ca_file)),
            timeout=5.0,
        )
    return Endpoint("127.0.0.1", dovecot.imap_port, user, None, 5.0)


async def opened(dovecot: Dovecot, user: str, *, tls: bool = True) -> ImapSession:
    session = ImapSession(endpoint(dovecot, user, tls=tls), mailbox="test")
    await session.open(PASSWORD)
    return session


def fill(dovecot: Dovecot, user: str, count: int) -> list[int]:
    return [dovecot.append(user, MESSAGE % (n, n)) for n in range(count)]


async def test_open_tls_capabilities(dovecot: Dovecot, imap_user: str) -> None:
    """After login over IMAPS the capabilities include MOVE and UIDPLUS."""
    session = await opened(dovecot, imap_user)
    assert "MOVE" in session.capabilities
    assert "UIDPLUS" in session.capabilities
    assert session.healthy
    await session.logout()
    assert not session.healthy


async def test_wrong_password(dovecot: Dovecot, imap_user: str) -> None:
    """A rejected login raises ImapAuthError without the password."""
    session = ImapSession(endpoint(dovecot, imap_user), mailbox="test")
    with pytest.raises(ImapAuthError) as caught:
        await session.open("wrong-password")
    assert "wrong-password" not in str(caught.value)
    assert imap_user in str(caught.value)
    assert not session.healthy


async def test_untrusted_certificate(dovecot: Dovecot, imap_user: str) -> None:
    """A certificate outside the CA file fails the connect."""
    bad = Endpoint(
        "127.0.0.1", dovecot.imaps_port, imap_user, ssl.create_default_context(), 5.0
    )
    session = ImapSession(bad, mailbox="test")
    with pytest.raises(ImapError, match="connect"):
        await session.open(PASSWORD)


async def test_connection_refused(imap_user: str) -> None:
    """A closed port raises ImapError at once."""
    closed = Endpoint("127.0.0.1", free_port(), imap_user, None, 5.0)
    session = ImapSession(closed, mailbox="test")
    with pytest.raises(ImapError, match="connect"):
        await session.open(PASSWORD)


async def test_ensure_folder_twice(dovecot: Dovecot, imap_user: str) -> None:
    """Creating an existing folder is not an error; names are encoded."""
    session = await opened(dovecot, imap_user)
    await session.ensure_folder("Quarantäne Zwei")
    await session.ensure_folder("Quarantäne Zwei")
    await session.logout()
    with dovecot.client(imap_user) as conn:
        _, listing = conn.list()
    names = b" ".join(item for item in listing if isinstance(item, bytes))
    assert b'"Quarant&AOQ-ne Zwei"' in names


async def test_select_missing(dovecot: Dovecot, imap_user: str) -> None:
    """Selecting a folder that does not exist raises MailboxMissing."""
    session = await opened(dovecot, imap_user)
    with pytest.raises(MailboxMissing, match="Nowhere"):
        await session.select("Nowhere")
    assert not session.healthy
    session.drop()


async def test_select_search_fetch(dovecot: Dovecot, imap_user: str) -> None:
    """SELECT, UID SEARCH and both FETCH forms return what was appended."""
    uids = fill(dovecot, imap_user, 3)
    session = await opened(dovecot, imap_user, tls=False)
    selected = await session.select("INBOX")
    assert selected.exists == 3
    assert selected.uidvalidity > 0
    assert await session.search_uids() == uids

    sizes = await session.fetch_sizes(uids)
    bodies = await session.fetch_bodies(uids)
    assert sorted(sizes) == uids
    assert bodies[uids[1]] == MESSAGE % (1, 1)
    assert sizes[uids[1]] == len(MESSAGE % (1, 1))
    await session.logout()


async def test_fetch_keeps_unseen(dovecot: Dovecot, imap_user: str) -> None:
    """Fetching bodies with BODY.PEEK[] leaves \\Seen unset."""
    uids = fill(dovecot, imap_user, 2)
    session = await opened(dovecot, imap_user)
    await session.select("INBOX")
    await session.fetch_bodies(uids)
    await session.logout()
    assert all("Seen" not in flags for flags in dovecot.flags(imap_user).values())


async def test_fetch_unknown_uid(dovecot: Dovecot, imap_user: str) -> None:
    """UIDs that do not exist are simply absent from the result."""
    uids = fill(dovecot, imap_user, 1)
    session = await opened(dovecot, imap_user)
    await session.select("INBOX")
    assert await session.fetch_bodies([uids[0], 999]) == {uids[0]: MESSAGE % (0, 0)}
    await session.logout()


async def test_move_with_move(dovecot: Dovecot, imap_user: str) -> None:
    """UID MOVE takes exactly the given UIDs to the target."""
    uids = fill(dovecot, imap_user, 4)
    session = await opened(dovecot, imap_user)
    await session.ensure_folder("Processed")
    await session.select("INBOX")
    assert await session.move(uids[:2], "Processed") is MoveMethod.MOVE
    await session.logout()
    assert dovecot.uids(imap_user) == uids[2:]
    assert len(dovecot.uids(imap_user, "Processed")) == 2


async def test_move_trycreate(dovecot: Dovecot, imap_user: str) -> None:
    """A missing target folder is created and the move retried."""
    uids = fill(dovecot, imap_user, 1)
    session = await opened(dovecot, imap_user)
    await session.select("INBOX")
    await session.move(uids, "Later Created")
    await session.logout()
    assert dovecot.uids(imap_user) == []
    assert len(dovecot.uids(imap_user, "Later Created")) == 1


async def test_move_uidplus_fallback(dovecot: Dovecot, imap_user: str) -> None:
    """Without MOVE, COPY and UID EXPUNGE spare other \\Deleted mail."""
    uids = fill(dovecot, imap_user, 3)
    with dovecot.client(imap_user) as conn:
        conn.select("INBOX")
        conn.uid("STORE", str(uids[2]), "+FLAGS", r"(\Deleted)")

    session = await opened(dovecot, imap_user)
    session.capabilities = session.capabilities - {"MOVE"}
    await session.ensure_folder("Processed")
    await session.select("INBOX")
    assert await session.move(uids[:2], "Processed") is MoveMethod.COPY_EXPUNGE
    await session.logout()

    assert dovecot.uids(imap_user) == [uids[2]]
    assert len(dovecot.uids(imap_user, "Processed")) == 2


async def test_move_flag_only(dovecot: Dovecot, imap_user: str) -> None:
    """Without MOVE and UIDPLUS the messages are flagged and stay."""
    uids = fill(dovecot, imap_user, 2)
    session = await opened(dovecot, imap_user)
    session.capabilities = session.capabilities - {"MOVE", "UIDPLUS"}
    await session.select("INBOX")
    assert await session.move(uids[:1], "Processed") is MoveMethod.FLAGGED
    await session.logout()
    flags = dovecot.flags(imap_user)
    assert dovecot.uids(imap_user) == uids
    assert "Flagged" in flags[uids[0]]
    assert "Flagged" not in flags[uids[1]]


async def test_idle_wakes(dovecot: Dovecot, imap_user: str) -> None:
    """IDLE returns True soon after another client appends."""
    session = await opened(dovecot, imap_user)
    await session.select("INBOX")
    waiter = asyncio.create_task(session.idle_wait(30.0))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(fill, dovecot, imap_user, 1)
    assert await asyncio.wait_for(waiter, 10) is True
    assert session.healthy
    assert len(await session.search_uids()) == 1
    await session.logout()


async def test_idle_renews(dovecot: Dovecot, imap_user: str) -> None:
    """IDLE ends with False after the renew interval and can start again."""
    session = await opened(dovecot, imap_user)
    await session.select("INBOX")
    assert await session.idle_wait(0.5) is False
    assert await session.idle_wait(0.5) is False
    assert session.healthy
    assert await session.search_uids() == []
    await session.logout()


async def test_lost_callback(dovecot: Dovecot, imap_user: str) -> None:
    """A server restart makes the session unhealthy and calls on_lost."""
    lost = asyncio.Event()
    session = ImapSession(
        endpoint(dovecot, imap_user, tls=False), mailbox="test", on_lost=lost.set
    )
    await session.open(PASSWORD)
    await session.select("INBOX")
    await asyncio.to_thread(dovecot.restart)
    await asyncio.wait_for(lost.wait(), 10)
    assert not session.healthy
    with pytest.raises(ImapError, match="closed"):
        await session.search_uids()
