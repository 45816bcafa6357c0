"""mail-watchdog run as a subprocess against a private Dovecot on a bad day.

Each test appends mail and damages the server, the network or the database
under the running daemon. It then checks what must hold whatever happened.
Every message is in exactly one of INBOX, Processed and Quarantine, there is
one message row per distinct message, and the log contains no password and
no traceback.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_run import (
    COMMAND,
    SHUTDOWN_LIMIT,
    STARTUP_LIMIT,
    Daemon,
    drop_messages,
    running_daemon,
    sample,
    stored,
    write_config,
)
from tests.servers import postgres
from tests.servers.common import wait_until
from tests.servers.dovecot import PASSWORD, Dovecot, running_dovecot
from tests.servers.faultproxy import Fault, FaultProxy, Mode
from watchdog.store import Store

pytestmark = [pytest.mark.dovecot, pytest.mark.slow]

FOLDERS = ("INBOX", "Processed", "Quarantine")


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot() as instance:
        yield instance


def placed(dovecot: Dovecot, user: str) -> dict[str, int]:
    """Return how many messages each of the three folders contains."""
    return {folder: len(dovecot.uids(user, folder)) for folder in FOLDERS}


def database_url(work: Path) -> str:
    return f"sqlite:///{work / 'watchdog.db'}"


def events_named(daemon: Daemon, name: str) -> list[dict[str, object]]:
    return [event for event in daemon.events() if event["event"] == name]


def drained(dovecot: Dovecot, user: str) -> bool:
    return dovecot.uids(user) == []


def dsn(number: int, *, sender_domain: str, recipient: str) -> bytes:
    """Build a minimal RFC 3464 hard bounce of mail sent from ``sender_domain``."""
    boundary = f"dsn-{number}"
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\n"
        f"To: bounces@{sender_domain}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn-{number}@mx.example.net>\r\n"
        f"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: multipart/report; report-type=delivery-status; "
        f'boundary="{boundary}"\r\n'
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/plain\r\n\r\n"
        f"Your message could not be delivered.\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: failed\r\n"
        f"Status: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: user unknown\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\n"
        f"From: news@{sender_domain}\r\n"
        f"To: {recipient}\r\n"
        f"Subject: News {number}\r\n"
        f"Message-ID: <news-{number}@{sender_domain}>\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def suppressed(url: str, address: str) -> bool:
    store = Store(url)
    try:
        return store.is_suppressed(address)
    finally:
        store.close()


def assert_clean_log(daemon: Daemon) -> None:
    text = daemon.log.read_text()
    assert PASSWORD not in text
    assert "Traceback" not in text


def test_wrong_password_backs_off(dovecot: Dovecot, tmp_path: Path) -> None:
    user, wrong = "faultauth", "Wr0ng-Pa55word-7731"
    dovecot.add_user(user)
    config = write_config(
        tmp_path, user=user, imaps_port=dovecot.imaps_port, ca_file=dovecot.ca_file
    )
    (tmp_path / "imap-password").write_text(wrong + "\n")
    with running_daemon(config, tmp_path) as daemon:
        time.sleep(12)
        status, _ = daemon.get("/healthz")
        code, _ = daemon.terminate()
    failures = events_named(daemon, "poll_failed")
    idle = events_named(daemon, "idle_failed")
    text = daemon.log.read_text()
    assert code == 0
    assert status == 503
    assert 1 <= len(failures) <= 4, "one poll a second must not mean one login"
    assert len(idle) <= 4
    assert wrong not in text
    assert "Traceback" not in text


def test_untrusted_certificate(dovecot: Dovecot, tmp_path: Path) -> None:
    user = "faulttls"
    dovecot.add_user(user)
    other = tmp_path / "other-ca.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(tmp_path / "other-key.pem"),
            "-out",
            str(other),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    config = write_config(
        tmp_path, user=user, imaps_port=dovecot.imaps_port, ca_file=other
    )
    dovecot.append(user, dsn(1, sender_domain="example.org", recipient="a@x.test"))
    with running_daemon(config, tmp_path) as daemon:
        wait_until(
            lambda: len(events_named(daemon, "poll_failed")) >= 1,
            what="poll_failed",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        time.sleep(3)
        status, _ = daemon.get("/healthz")
        code, _ = daemon.terminate()
    [first, *_] = events_named(daemon, "poll_failed")
    assert code == 0
    assert status == 503
    assert "certificate" in str(first["error"]).lower()
    assert placed(dovecot, user) == {"INBOX": 1, "Processed": 0, "Quarantine": 0}
    assert_clean_log(daemon)


def test_forged_bounce_not_suppressed(dovecot: Dovecot, tmp_path: Path) -> None:
    user = "faultforged"
    dovecot.add_user(user)
    config = write_config(
        tmp_path,
        user=user,
        imaps_port=dovecot.imaps_port,
        ca_file=dovecot.ca_file,
        extra='\n[sending]\ndomains = ["example.org"]\n',
    )
    dovecot.append(user, dsn(1, sender_domain="forged.test", recipient="f@x.test"))
    dovecot.append(user, dsn(2, sender_domain="example.org", recipient="o@x.test"))
    with running_daemon(config, tmp_path) as daemon:
        wait_until(
            lambda: drained(dovecot, user),
            what="INBOX drained",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        code, _ = daemon.terminate()
    url = database_url(tmp_path)
    assert code == 0
    assert not suppressed(url, "f@x.test")
    assert suppressed(url, "o@x.test")
    assert_clean_log(daemon)


def drain_config(dovecot: Dovecot, user: str, work: Path, extra: str = "") -> Path:
    return write_config(
        work,
        user=user,
        imaps_port=dovecot.imaps_port,
        ca_file=dovecot.ca_file,
        interval=1.0,
        extra=extra,
    )


def wait_drained(dovecot: Dovecot, user: str, daemon: Daemon) -> None:
    wait_until(
        lambda: drained(dovecot, user),
        what="INBOX drained",
        process=daemon.process,
        log=daemon.log,
        timeout=STARTUP_LIMIT,
    )


def test_same_bounce_twice(dovecot: Dovecot, tmp_path: Path) -> None:
    user = "faulttwice"
    dovecot.add_user(user)
    raw = dsn(1, sender_domain="example.org", recipient="t@x.test")
    dovecot.append(user, raw)
    dovecot.append(user, raw)
    with running_daemon(drain_config(dovecot, user, tmp_path), tmp_path) as daemon:
        wait_drained(dovecot, user, daemon)
        code, _ = daemon.terminate()
    rows, events = stored(database_url(tmp_path))
    assert code == 0
    assert placed(dovecot, user) == {"INBOX": 0, "Processed": 2, "Quarantine": 0}
    assert rows == 1
    assert events == 1
    assert_clean_log(daemon)


def test_processed_folder_deleted(dovecot: Dovecot, tmp_path: Path) -> None:
    user = "faultfolder"
    dovecot.add_user(user)
    dovecot.append(user, dsn(1, sender_domain="example.org", recipient="d1@x.test"))
    with running_daemon(drain_config(dovecot, user, tmp_path), tmp_path) as daemon:
        wait_drained(dovecot, user, daemon)
        with dovecot.client(user) as conn:
            typ, data = conn.delete("Processed")
        assert typ == "OK", data
        dovecot.append(user, dsn(2, sender_domain="example.org", recipient="d2@x.test"))
        wait_drained(dovecot, user, daemon)
        code, _ = daemon.terminate()
    assert code == 0
    assert placed(dovecot, user) == {"INBOX": 0, "Processed": 1, "Quarantine": 0}
    assert stored(database_url(tmp_path))[0] == 2
    assert_clean_log(daemon)


def test_restart_mid_drain(dovecot: Dovecot, tmp_path: Path) -> None:
    user, count = "faultrestart", 300
    dovecot.add_user(user)
    drop_messages(dovecot, user, tmp_path / "copies", count)
    with running_daemon(drain_config(dovecot, user, tmp_path), tmp_path) as daemon:
        wait_until(
            lambda: len(dovecot.uids(user, "Processed")) > 0,
            what="first messages moved",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        dovecot.restart()
        wait_drained(dovecot, user, daemon)
        time.sleep(2)
        status, _ = daemon.get("/healthz")
        code, _ = daemon.terminate()
    counts = placed(dovecot, user)
    assert code == 0
    assert status == 200
    assert counts["Processed"] + counts["Quarantine"] == count
    assert stored(database_url(tmp_path))[0] == count
    assert_clean_log(daemon)


def test_uidvalidity_reset_live(dovecot: Dovecot, tmp_path: Path) -> None:
    user = "faultuidv"
    dovecot.add_user(user)
    config = drain_config(dovecot, user, tmp_path)
    with running_daemon(config, tmp_path) as daemon:
        dovecot.append(user, dsn(1, sender_domain="example.org", recipient="u1@x.test"))
        wait_drained(dovecot, user, daemon)
        daemon.process.send_signal(signal.SIGSTOP)
        try:
            for number in range(2, 5):
                raw = dsn(number, sender_domain="example.org", recipient="u@x.test")
                dovecot.append(user, raw)
            dovecot.reset_uidvalidity(user)
        finally:
            daemon.process.send_signal(signal.SIGCONT)
        wait_drained(dovecot, user, daemon)
        code, _ = daemon.terminate()
    assert code == 0
    assert placed(dovecot, user) == {"INBOX": 0, "Processed": 4, "Quarantine": 0}
    assert stored(database_url(tmp_path))[0] == 4
    assert_clean_log(daemon)


def test_two_daemons_one_file(dovecot: Dovecot, tmp_path: Path) -> None:
    user, count = "faulttwo", 200
    dovecot.add_user(user)
    drop_messages(dovecot, user, tmp_path / "copies", count)
    first = tmp_path / "first"
    second = tmp_path / "second"
    first.mkdir()
    second.mkdir()
    config_a = drain_config(dovecot, user, first)
    config_b = drain_config(dovecot, user, second)
    url = database_url(first)
    config_b.write_text(config_b.read_text().replace(database_url(second), url))
    with (
        running_daemon(config_a, first) as one,
        running_daemon(config_b, second) as two,
    ):
        wait_drained(dovecot, user, one)
        time.sleep(2)
        code_one, _ = one.terminate()
        code_two, _ = two.terminate()
    counts = placed(dovecot, user)
    assert code_one == 0
    assert code_two == 0
    assert counts["Processed"] + counts["Quarantine"] == count
    assert stored(url)[0] == count
    assert_clean_log(one)
    assert_clean_log(two)


def test_sigkill_then_restart(dovecot: Dovecot, tmp_path: Path) -> None:
    user, count = "faultkill", 300
    dovecot.add_user(user)
    drop_messages(dovecot, user, tmp_path / "copies", count)
    config = drain_config(dovecot, user, tmp_path)
    with running_daemon(config, tmp_path) as daemon:
        wait_until(
            lambda: len(dovecot.uids(user, "Processed")) > 0,
            what="first messages moved",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        daemon.process.kill()
        daemon.process.wait()
    with running_daemon(config, tmp_path) as daemon:
        wait_drained(dovecot, user, daemon)
        code, _ = daemon.terminate()
    counts = placed(dovecot, user)
    assert code == 0
    assert counts["Processed"] + counts["Quarantine"] == count
    assert stored(database_url(tmp_path))[0] == count
    assert_clean_log(daemon)


def nested(depth: int) -> bytes:
    """Return a message of ``depth`` multiparts, each inside the previous."""
    head = b"From: a@x.test\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
        for n in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % n for n in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nhi" + closing


def many_parts(count: int) -> bytes:
    head = (
        b"From: a@x.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n'
    )
    part = b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return head + part * count + b"--p--\r\n"


def huge_header(size: int) -> bytes:
    folded = b"\r\n ".join([b"x" * 70] * (size // 73))
    return b"From: a@x.test\r\nX-Big: " + folded + b"\r\nSubject: h\r\n\r\nbody\r\n"


def bad_charset() -> bytes:
    return (
        b"From: =?x-unknown-7?B?AAAA?= <a@x.test>\r\n"
        b"Subject: =?utf-8?Q?=FF=FE?=\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n\xff\xfe\x00\r\n"
    )


def oversize(size: int) -> bytes:
    line = b"y" * 76 + b"\r\n"
    return b"From: a@x.test\r\nSubject: big\r\n\r\n" + line * (size // len(line))


HOSTILE = {
    "nested": nested(2_000),
    "parts": many_parts(50_000),
    "header": huge_header(1_000_000),
    "charset": bad_charset(),
    "oversize": oversize(20_000_000),
}


def test_hostile_mail_settles(dovecot: Dovecot, tmp_path: Path) -> None:
    user = "faulthostile"
    dovecot.add_user(user)
    for raw in HOSTILE.values():
        dovecot.append(user, raw)
    dovecot.append(user, dsn(1, sender_domain="example.org", recipient="h@x.test"))
    config = drain_config(dovecot, user, tmp_path)
    with running_daemon(config, tmp_path) as daemon:
        wait_drained(dovecot, user, daemon)
        status, _ = daemon.get("/healthz")
        code, _ = daemon.terminate()
    counts = placed(dovecot, user)
    url = database_url(tmp_path)
    assert code == 0
    assert status == 200
    assert counts["Processed"] + counts["Quarantine"] == len(HOSTILE) + 1
    assert stored(url)[0] == len(HOSTILE) + 1
    assert suppressed(url, "h@x.test")
    assert_clean_log(daemon)


def test_classifier_killed_then_quarantined(dovecot: Dovecot, tmp_path: Path) -> None:
    user = "faultkiller"
    dovecot.add_user(user)
    dovecot.append(user, many_parts(200_000))
    dovecot.append(user, dsn(1, sender_domain="example.org", recipient="k@x.test"))
    config = drain_config(dovecot, user, tmp_path)
    text = config.read_text().replace(
        "workers = 2",
        "workers = 2\ncpu_seconds = 1\nwall_seconds = 2\nmax_parts = 1000000",
    )
    config.write_text(
        text.replace(
            "poll_interval_seconds = 1.0", "poll_interval_seconds = 1.0\nbatch_size = 1"
        )
    )
    with running_daemon(config, tmp_path) as daemon:
        wait_drained(dovecot, user, daemon)
        _, metrics = daemon.get("/metrics")
        code, _ = daemon.terminate()
    counts = placed(dovecot, user)
    kills = sample(metrics, "mailwatchdog_parse_worker_kills_total")
    assert code == 0
    assert counts == {"INBOX": 0, "Processed": 1, "Quarantine": 1}
    assert sum(kills) == 3
    assert stored(database_url(tmp_path))[0] == 2
    assert_clean_log(daemon)


def use_database(config: Path, url: str) -> None:
    lines = config.read_text().split("\n")
    lines[1] = f'url = "{url}"'
    config.write_text("\n".join(lines))


def counters(metrics: str) -> dict[str, float]:
    """Return every ``_total`` sample of a scrape by its full series name."""
    found: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("#") or "_total" not in line:
            continue
        series, value = line.rsplit(" ", 1)
        found[series] = float(value)
    return found


def decreased(before: dict[str, float], after: dict[str, float]) -> list[str]:
    return [name for name, value in before.items() if after.get(name, 0.0) < value]


@pytest.mark.postgres
def test_postgres_sessions_terminated(dovecot: Dovecot, tmp_path: Path) -> None:
    if not postgres.available():
        pytest.skip(f"no PostgreSQL at {postgres.admin_url()}")
    user, count = "faultpgkill", 300
    dovecot.add_user(user)
    drop_messages(dovecot, user, tmp_path / "copies", count)
    with postgres.fresh_database("mw_faults") as url:
        config = drain_config(dovecot, user, tmp_path)
        use_database(config, url)
        with running_daemon(config, tmp_path) as daemon:
            wait_until(
                lambda: len(dovecot.uids(user, "Processed")) > 0,
                what="first messages moved",
                process=daemon.process,
                log=daemon.log,
                timeout=STARTUP_LIMIT,
            )
            scrapes = [counters(daemon.get("/metrics")[1])]
            for _ in range(5):
                postgres.terminate_sessions(url)
                time.sleep(0.3)
                scrapes.append(counters(daemon.get("/metrics")[1]))
            wait_drained(dovecot, user, daemon)
            time.sleep(2)
            status, _ = daemon.get("/healthz")
            scrapes.append(counters(daemon.get("/metrics")[1]))
            code, _ = daemon.terminate()
        rows, _ = stored(url)
    counts = placed(dovecot, user)
    assert code == 0
    assert status == 200
    assert counts["Processed"] + counts["Quarantine"] == count
    assert rows == count
    for before, after in itertools.pairwise(scrapes):
        assert decreased(before, after) == []
    assert_clean_log(daemon)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """Mount a 4 MB tmpfs for the database; skip when mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full(dovecot: Dovecot, tmp_path: Path, small_disk: Path) -> None:
    user, count = "faultdisk", 300
    dovecot.add_user(user)
    drop_messages(dovecot, user, tmp_path / "copies", count)
    url = f"sqlite:///{small_disk / 'watchdog.db'}"
    config = drain_config(dovecot, user, tmp_path)
    use_database(config, url)
    filler = small_disk / "filler"
    with running_daemon(config, tmp_path) as daemon:
        wait_until(
            lambda: len(dovecot.uids(user, "Processed")) > 0,
            what="first messages moved",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        with filler.open("wb") as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        time.sleep(5)
        full = placed(dovecot, user)
        rows_full, _ = stored(url)
        filler.unlink()
        wait_drained(dovecot, user, daemon)
        time.sleep(2)
        status, _ = daemon.get("/healthz")
        code, _ = daemon.terminate()
    counts = placed(dovecot, user)
    assert full["Processed"] + full["Quarantine"] <= rows_full
    assert code == 0
    assert status == 200
    assert counts["Processed"] + counts["Quarantine"] == count
    assert stored(url)[0] == count
    assert_clean_log(daemon)


def started(daemon: Daemon) -> bool:
    return bool(events_named(daemon, "daemon_started"))


def test_sigint_exits_zero(dovecot: Dovecot, tmp_path: Path) -> None:
    user = "faultsigint"
    dovecot.add_user(user)
    dovecot.append(user, dsn(1, sender_domain="example.org", recipient="i@x.test"))
    with running_daemon(drain_config(dovecot, user, tmp_path), tmp_path) as daemon:
        wait_drained(dovecot, user, daemon)
        began = time.monotonic()
        daemon.process.send_signal(signal.SIGINT)
        code = daemon.process.wait(timeout=30)
        seconds = time.monotonic() - began
    assert code == 0
    assert seconds < SHUTDOWN_LIMIT
    assert events_named(daemon, "daemon_stopped") != []
    assert_clean_log(daemon)


def test_sigterm_while_blackholed(dovecot: Dovecot, tmp_path: Path) -> None:
    user, count = "faultblackhole", 300
    dovecot.add_user(user)
    drop_messages(dovecot, user, tmp_path / "copies", count)
    proxy = FaultProxy(dovecot.imaps_port)
    proxy.start()
    try:
        config = write_config(
            tmp_path,
            user=user,
            imaps_port=proxy.port,
            ca_file=dovecot.ca_file,
            interval=1.0,
        )
        with running_daemon(config, tmp_path) as daemon:
            wait_until(
                lambda: len(dovecot.uids(user, "Processed")) > 0,
                what="first messages moved",
                process=daemon.process,
                log=daemon.log,
                timeout=STARTUP_LIMIT,
            )
            proxy.set_fault(Fault(Mode.BLACKHOLE))
            time.sleep(1)
            code, seconds = daemon.terminate()
    finally:
        proxy.stop()
    counts = placed(dovecot, user)
    assert code == 0
    assert seconds < SHUTDOWN_LIMIT
    assert sum(counts.values()) == count
    assert (
        stored(database_url(tmp_path))[0] >= counts["Processed"] + counts["Quarantine"]
    )
    assert_clean_log(daemon)


def test_sigterm_while_classifier_hangs(dovecot: Dovecot, tmp_path: Path) -> None:
    user = "faulthang"
    dovecot.add_user(user)
    dovecot.append(user, many_parts(200_000))
    config = drain_config(dovecot, user, tmp_path)
    config.write_text(
        config.read_text().replace(
            "workers = 2",
            "workers = 2\ncpu_seconds = 60\nwall_seconds = 60\nmax_parts = 1000000",
        )
    )
    with running_daemon(config, tmp_path) as daemon:
        wait_until(
            lambda: started(daemon),
            what="daemon_started",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        time.sleep(3)
        code, seconds = daemon.terminate()
    assert code == 0
    assert seconds < SHUTDOWN_LIMIT
    assert placed(dovecot, user) == {"INBOX": 1, "Processed": 0, "Quarantine": 0}
    assert_clean_log(daemon)


def expunge_and_flag(dovecot: Dovecot, user: str) -> int:
    """Expunge every fourth message in INBOX and flag the others; return how many."""
    with dovecot.client(user) as conn:
        conn.select("INBOX")
        _, data = conn.uid("SEARCH", "ALL")
        uids = (data[0] or b"").split()
        expunged = uids[::4]
        flagged = [uid for uid in uids if uid not in expunged]
        if expunged:
            conn.uid("STORE", b",".join(expunged).decode(), "+FLAGS", r"(\Deleted)")
            conn.expunge()
        if flagged:
            conn.uid(
                "STORE", b",".join(flagged).decode(), "+FLAGS", r"(\Flagged \Seen)"
            )
    return len(expunged)


def messages_counted(metrics: str) -> float:
    """Sum mailbox_messages_total over outcomes other than duplicate."""
    return sum(
        value
        for series, value in counters(metrics).items()
        if series.startswith("mailwatchdog_mailbox_messages_total")
        and 'outcome="duplicate"' not in series
    )


def settled_count(daemon: Daemon, expected: int) -> float:
    """Return the messages counted once the count reaches ``expected`` and stays.

    The INBOX is empty as soon as the server has moved the last batch, a
    moment before the daemon reads the MOVE reply and counts it. So the
    count is read until it reaches ``expected`` (or 20 s pass), then once
    more 2 s later, when a double count would have pushed it over.
    """
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, metrics = daemon.get("/metrics")
        if messages_counted(metrics) >= expected:
            break
        time.sleep(0.2)
    time.sleep(2)
    _, metrics = daemon.get("/metrics")
    return messages_counted(metrics)


def test_other_client_expunges(dovecot: Dovecot, tmp_path: Path) -> None:
    user, count = "faultexpunge", 300
    dovecot.add_user(user)
    drop_messages(dovecot, user, tmp_path / "copies", count)
    with running_daemon(drain_config(dovecot, user, tmp_path), tmp_path) as daemon:
        wait_until(
            lambda: len(dovecot.uids(user, "Processed")) > 0,
            what="first messages moved",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        expunged = expunge_and_flag(dovecot, user)
        wait_drained(dovecot, user, daemon)
        time.sleep(2)
        status, _ = daemon.get("/healthz")
        _, metrics = daemon.get("/metrics")
        code, _ = daemon.terminate()
    counts = placed(dovecot, user)
    moved = counts["Processed"] + counts["Quarantine"]
    rows, _ = stored(database_url(tmp_path))
    assert code == 0
    assert status == 200
    assert moved == count - expunged
    assert rows >= moved
    assert messages_counted(metrics) == rows
    assert_clean_log(daemon)


def test_restart_counts_once(dovecot: Dovecot, tmp_path: Path) -> None:
    user, count = "faultcount", 300
    dovecot.add_user(user)
    drop_messages(dovecot, user, tmp_path / "copies", count)
    with running_daemon(drain_config(dovecot, user, tmp_path), tmp_path) as daemon:
        wait_until(
            lambda: len(dovecot.uids(user, "Processed")) > 0,
            what="first messages moved",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        dovecot.restart()
        wait_drained(dovecot, user, daemon)
        counted = settled_count(daemon, count)
        code, _ = daemon.terminate()
    assert code == 0
    assert counted == count


@pytest.mark.parametrize("outage", [60.0])
def test_dovecot_down_a_minute(dovecot: Dovecot, tmp_path: Path, outage: float) -> None:
    user = "faultoutage"
    dovecot.add_user(user)
    with running_daemon(drain_config(dovecot, user, tmp_path), tmp_path) as daemon:
        wait_until(
            lambda: started(daemon),
            what="daemon_started",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        time.sleep(2)
        dovecot.stop()
        time.sleep(outage)
        down, _ = daemon.get("/healthz")
        dovecot.start()
        back = time.monotonic()
        dovecot.append(user, dsn(1, sender_domain="example.org", recipient="o@x.test"))
        wait_drained(dovecot, user, daemon)
        recovered = time.monotonic() - back
        code, _ = daemon.terminate()
    failures = events_named(daemon, "poll_failed")
    idle_failures = [
        event
        for event in events_named(daemon, "idle_failed")
        if event["level"] != "debug"
    ]
    attempts = [int(str(event["attempt"])) for event in failures]
    # The scheduler runs the next poll when the logged delay ends, and an
    # IDLE reconnect may bring the mail in sooner.
    first_retry = float(str(failures[-1]["retry_in_seconds"]))
    assert code == 0
    assert down == 503
    assert len(failures) < 20, "each failed poll is one line, with backoff"
    assert attempts == list(range(1, len(failures) + 1))
    assert len(idle_failures) <= 1, "IDLE failures during the outage are debug"
    assert "refused" in str(failures[-1]["error"])
    assert "127.0.0.1:" in str(failures[-1]["error"])
    assert recovered < first_retry + 5, f"mail waited {recovered:.0f} s"
    assert_clean_log(daemon)


def test_reset_after_move_counted(dovecot: Dovecot, tmp_path: Path) -> None:
    """A connection reset right after the server moved a batch still counts it."""
    user, count = "faultmovereset", 5
    dovecot.add_user(user)
    for number in range(count):
        raw = dsn(number, sender_domain="example.org", recipient=f"r{number}@x.test")
        dovecot.append(user, raw)
    proxy = FaultProxy(dovecot.imap_port)
    proxy.start()
    try:
        config = write_config(
            tmp_path,
            user=user,
            imaps_port=proxy.port,
            ca_file=dovecot.ca_file,
            extra='tls = "none"\nidle = false\n',
        )
        proxy.set_fault(Fault(Mode.RST, trigger=b"[COPYUID"))
        with running_daemon(config, tmp_path) as daemon:
            wait_drained(dovecot, user, daemon)
            proxy.set_fault(Fault(Mode.PASS))
            time.sleep(3)
            _, metrics = daemon.get("/metrics")
            code, _ = daemon.terminate()
    finally:
        proxy.stop()
    confirmed = events_named(daemon, "moves_confirmed")
    assert code == 0
    assert placed(dovecot, user) == {"INBOX": 0, "Processed": count, "Quarantine": 0}
    assert stored(database_url(tmp_path))[0] == count
    assert messages_counted(metrics) == count
    assert sum(int(str(event["messages"])) for event in confirmed) == count


def get_within(daemon: Daemon, path: str, seconds: float) -> int | None:
    """Return the status of ``path``, or None when no response came in time."""
    url = f"http://127.0.0.1:{daemon.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=seconds) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, TimeoutError):
        return None


def blackhole_postgres(
    dovecot: Dovecot, work: Path, user: str
) -> tuple[int | None, int, float, Daemon]:
    """Blackhole the daemon's PostgreSQL mid-run; return healthz, exit code, seconds."""
    if not postgres.available():
        pytest.skip(f"no PostgreSQL at {postgres.admin_url()}")
    dovecot.add_user(user)
    proxy = FaultProxy(5432)
    proxy.start()
    try:
        with postgres.fresh_database("mw_faults") as url:
            proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
            config = drain_config(dovecot, user, work)
            use_database(config, proxied)
            with running_daemon(config, work) as daemon:
                first = dsn(1, sender_domain="example.org", recipient="p@x.test")
                dovecot.append(user, first)
                wait_drained(dovecot, user, daemon)
                proxy.set_fault(Fault(Mode.BLACKHOLE))
                second = dsn(2, sender_domain="example.org", recipient="q@x.test")
                dovecot.append(user, second)
                time.sleep(3)
                status = get_within(daemon, "/healthz", 10.0)
                code, seconds = daemon.terminate()
    finally:
        proxy.stop()
    return status, code, seconds, daemon


@pytest.mark.postgres
def test_postgres_blackholed_sigterm(dovecot: Dovecot, tmp_path: Path) -> None:
    """A database call that never returns cannot hold the process past SIGTERM."""
    _, code, seconds, daemon = blackhole_postgres(dovecot, tmp_path, "faultpgterm")
    assert seconds < SHUTDOWN_LIMIT
    assert code == 1
    assert len(events_named(daemon, "shutdown_timed_out")) == 1
    assert dovecot.uids("faultpgterm") != [], "the unrecorded message stays"


@pytest.mark.postgres
def test_postgres_blackholed_healthz(dovecot: Dovecot, tmp_path: Path) -> None:
    """A hung database call stalls the store thread, not the HTTP listener."""
    status, _, seconds, daemon = blackhole_postgres(dovecot, tmp_path, "faultpghealth")
    assert status == 503
    assert seconds < SHUTDOWN_LIMIT
    assert len(events_named(daemon, "health_database_failed")) == 1


def test_source_folder_deleted(dovecot: Dovecot, tmp_path: Path) -> None:
    user = "faultsource"
    dovecot.add_user(user)
    with dovecot.client(user) as conn:
        conn.create("Bounces")
    config = drain_config(dovecot, user, tmp_path, extra='folder = "Bounces"\n')
    first = dsn(1, sender_domain="example.org", recipient="s1@x.test")
    second = dsn(2, sender_domain="example.org", recipient="s2@x.test")
    dovecot.append(user, first, "Bounces")
    with running_daemon(config, tmp_path) as daemon:
        wait_until(
            lambda: dovecot.uids(user, "Bounces") == [],
            what="Bounces drained",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        with dovecot.client(user) as conn:
            conn.delete("Bounces")
        time.sleep(5)
        missing, _ = daemon.get("/healthz")
        with dovecot.client(user) as conn:
            conn.create("Bounces")
        dovecot.append(user, second, "Bounces")
        wait_until(
            lambda: len(dovecot.uids(user, "Processed")) == 2,
            what="second bounce moved",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        code, _ = daemon.terminate()
    failures = events_named(daemon, "poll_failed")
    assert code == 0
    assert missing == 503
    assert 1 <= len(failures) <= 5
    assert "Bounces" in str(failures[0]["error"])
    assert stored(database_url(tmp_path))[0] == 2
    assert_clean_log(daemon)


def test_sigterm_during_startup(dovecot: Dovecot, tmp_path: Path) -> None:
    user = "faultearly"
    dovecot.add_user(user)
    config = drain_config(dovecot, user, tmp_path)
    log = tmp_path / "daemon.log"
    process = subprocess.Popen(
        [COMMAND, "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        cwd=tmp_path,
    )
    wait_until(
        lambda: "Using selector" in log.read_text(),
        what="the event loop",
        process=process,
        log=log,
        timeout=STARTUP_LIMIT,
    )
    # The handlers are installed right after the loop starts; startup
    # (migrations, classifier workers) takes about 2 s more.
    time.sleep(0.3)
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=30)
    assert code == 0
    assert time.monotonic() - began < SHUTDOWN_LIMIT
    assert "Traceback" not in log.read_text()


def test_idle_resumes_after_restart(dovecot: Dovecot, tmp_path: Path) -> None:
    """With an hour's poll interval only an IDLE push brings the bounce in."""
    user = "faultidle"
    dovecot.add_user(user)
    config = write_config(
        tmp_path,
        user=user,
        imaps_port=dovecot.imaps_port,
        ca_file=dovecot.ca_file,
        interval=3600,
    )
    with running_daemon(config, tmp_path) as daemon:
        dovecot.append(user, dsn(1, sender_domain="example.org", recipient="w@x.test"))
        wait_drained(dovecot, user, daemon)
        dovecot.restart()
        time.sleep(5)
        dovecot.append(user, dsn(2, sender_domain="example.org", recipient="v@x.test"))
        wait_until(
            lambda: drained(dovecot, user),
            what="bounce pushed by IDLE after the restart",
            process=daemon.process,
            log=daemon.log,
            timeout=30,
        )
        code, _ = daemon.terminate()
    assert code == 0
    assert len(events_named(daemon, "idle_failed")) <= 2
    assert_clean_log(daemon)
