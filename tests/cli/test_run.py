"""mail-watchdog run as a subprocess against a private Dovecot over IMAPS."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import postgres
from tests.servers.common import free_port, stop, wait_until
from tests.servers.dovecot import PASSWORD, Dovecot, running_dovecot
from watchdog.store import Store

pytestmark = [pytest.mark.dovecot, pytest.mark.slow]

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "emails"
COMMAND = str(Path(sys.executable).with_name("mail-watchdog"))
BOUNCES = sorted((CORPUS / "lhost-postfix").glob("*.eml"))[:3]
ARCHIVED = sorted((CORPUS / "lhost-exim").glob("*.eml"))[:2]
SHUTDOWN_LIMIT = 10.0
# Generous, because other test runs may load the machine.
STARTUP_LIMIT = 60.0


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot() as instance:
        yield instance


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def events(self) -> list[dict[str, object]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def terminate(self) -> tuple[int, float]:
        """Send SIGTERM; return the exit code and the seconds it took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        return code, time.monotonic() - started


def daemon_sections(work: Path) -> str:
    """Return the database, HTTP and log sections of a test daemon's config.

    The database lives in ``work``, the HTTP port is free, and the log is
    JSON at debug level so that tests can read its events.
    """
    return f"""\
[database]
url = "sqlite:///{work / "watchdog.db"}"

[http]
port = {free_port()}

[log]
format = "json"
level = "debug"
"""


def write_config(
    work: Path,
    *,
    user: str,
    imaps_port: int,
    ca_file: Path,
    interval: float = 1.0,
    extra: str = "",
) -> Path:
    secret = work / "imap-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    config = work / "watchdog.toml"
    config.write_text(
        daemon_sections(work)
        + f"""
[limits]
workers = 2

[mailboxes.bounces]
host = "127.0.0.1"
port = {imaps_port}
ca_file = "{ca_file}"
username = "{user}"
password_file = "{secret}"
poll_interval_seconds = {interval}
{extra}"""
    )
    return config


@contextlib.contextmanager
def running_daemon(config: Path, work: Path) -> Iterator[Daemon]:
    port = int(config.read_text().split("port = ", 1)[1].split()[0])
    log = work / "daemon.log"
    process = subprocess.Popen(
        [COMMAND, "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        cwd=work,
    )
    daemon = Daemon(process, port, log)
    try:
        wait_until(
            lambda: daemon.get("/healthz")[0] in (200, 503),
            what="mail-watchdog run",
            process=process,
            log=log,
            timeout=STARTUP_LIMIT,
        )
        yield daemon
    finally:
        stop(process)


@pytest.fixture(scope="module")
def finished_run(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory):
    """Run the daemon, append bounces, scrape it, then stop it with SIGTERM."""
    work = tmp_path_factory.mktemp("run")
    user = "runbounces"
    dovecot.add_user(user)

    archive = work / "archive"
    archive.mkdir()
    for sample in ARCHIVED:
        (archive / sample.name).write_bytes(sample.read_bytes())

    # A poll interval of an hour: after the first poll at start, only an
    # IDLE push can bring the appended bounces in within the wait below.
    config = write_config(
        work,
        user=user,
        imaps_port=dovecot.imaps_port,
        ca_file=dovecot.ca_file,
        interval=3600,
        extra=f'\n[local.archive]\npath = "{archive}"\npoll_interval_seconds = 1.0\n',
    )

    with running_daemon(config, work) as daemon:
        wait_until(
            lambda: first_polls_done(daemon),
            what="first polls",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )

        for sample in BOUNCES:
            dovecot.append(user, sample.read_bytes())
        wait_until(
            lambda: len(dovecot.uids(user, "Processed")) == len(BOUNCES),
            what="bounces moved to Processed",
            process=daemon.process,
            log=daemon.log,
            timeout=15,
        )

        metrics = daemon.get("/metrics")
        health = daemon.get("/healthz")
        code, seconds = daemon.terminate()

    return {
        "dovecot": dovecot,
        "user": user,
        "metrics": metrics,
        "health": health,
        "code": code,
        "seconds": seconds,
        "events": daemon.events(),
        "log": daemon.log.read_text(),
    }


def first_polls_done(daemon: Daemon) -> bool:
    """Tell whether /healthz shows a successful poll of every source."""
    _, body = daemon.get("/healthz")
    sources = json.loads(body)["sources"]
    return all(source["state"] == "ok" for source in sources.values())


def sample(metrics: str, name: str) -> list[float]:
    return [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(name)
    ]


def test_run_moves_bounces(finished_run) -> None:
    dovecot, user = finished_run["dovecot"], finished_run["user"]
    assert dovecot.uids(user) == []
    assert len(dovecot.uids(user, "Processed")) == len(BOUNCES)


def test_run_idle_push_wakes_poll(finished_run) -> None:
    """The interval is an hour, so only the IDLE wake-up explains the moves."""
    assert len(finished_run["dovecot"].uids(finished_run["user"], "Processed")) == 3


def test_run_local_source_counted(finished_run) -> None:
    _, body = finished_run["metrics"]
    counted = sample(
        body, 'mailwatchdog_mailbox_messages_total{kind="bounce",mailbox="archive"'
    )
    assert sum(counted) == len(ARCHIVED)


def test_run_metrics_count_messages(finished_run) -> None:
    status, body = finished_run["metrics"]
    assert status == 200
    counted = sample(
        body, 'mailwatchdog_mailbox_messages_total{kind="bounce",mailbox="bounces"'
    )
    assert sum(counted) == len(BOUNCES)


def test_run_metrics_last_success(finished_run) -> None:
    _, body = finished_run["metrics"]
    [last] = sample(
        body, 'mailwatchdog_mailbox_last_success_timestamp_seconds{mailbox="bounces"}'
    )
    assert time.time() - last < 30


def test_run_metrics_without_created(finished_run) -> None:
    _, body = finished_run["metrics"]
    assert "_created" not in body


def test_run_healthz_ok(finished_run) -> None:
    status, body = finished_run["health"]
    data = json.loads(body)
    assert status == 200
    assert data["status"] == "ok"
    assert data["database"] == "ok"
    assert data["sources"]["bounces"]["state"] == "ok"
    assert data["sources"]["bounces"]["last_success_age_seconds"] < 3
    assert data["sources"]["archive"]["state"] == "ok"


def test_run_sigterm_exits_zero(finished_run) -> None:
    assert finished_run["code"] == 0
    assert finished_run["seconds"] < SHUTDOWN_LIMIT


def test_run_logs_start_and_stop(finished_run) -> None:
    names = [event["event"] for event in finished_run["events"]]
    assert "daemon_started" in names
    assert names[-1] == "daemon_stopped"
    assert names.index("daemon_started") < names.index("daemon_stopped")


def test_run_logs_no_password(finished_run) -> None:
    assert PASSWORD not in finished_run["log"]


def test_run_healthz_degraded_when_imap_down(dovecot: Dovecot, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, user="nobody-here", imaps_port=free_port(), ca_file=dovecot.ca_file
    )
    with running_daemon(config, tmp_path) as daemon:
        wait_until(
            lambda: daemon.get("/healthz")[0] == 503,
            what="/healthz turning 503",
            process=daemon.process,
            log=daemon.log,
            timeout=15,
        )
        status, body = daemon.get("/healthz")
        code, _ = daemon.terminate()
    data = json.loads(body)
    assert status == 503
    assert data["status"] == "degraded"
    assert data["sources"]["bounces"]["state"] == "stale"
    assert code == 0


def test_run_invalid_config_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[http]\nport = -1\n")
    result = subprocess.run(
        [COMMAND, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "http.port" in result.stderr


def test_run_unconfigured_warns(tmp_path: Path) -> None:
    """``run`` with nothing to poll or check logs what to configure."""
    log = tmp_path / "daemon.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WATCHDOG_")
    }
    env |= {"WATCHDOG_HTTP__PORT": str(free_port()), "WATCHDOG_LOG__FORMAT": "json"}
    process = subprocess.Popen(
        [COMMAND, "run", "--database", f"sqlite:///{tmp_path / 'w.db'}"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        cwd=tmp_path,
        env=env,
    )
    daemon = Daemon(process, 0, log)
    try:
        wait_until(
            lambda: "daemon_started" in log.read_text(),
            what="the daemon to start",
            process=process,
            log=log,
            timeout=STARTUP_LIMIT,
        )
        code, _ = daemon.terminate()
    finally:
        stop(process)
    warnings = [e for e in daemon.events() if e["event"] == "nothing_configured"]

    assert code == 0
    assert len(warnings) == 1
    assert "[mailboxes.NAME]" in str(warnings[0]["hint"])


def drop_messages(dovecot: Dovecot, user: str, copies: Path, count: int) -> None:
    """Write ``count`` distinct bounces into the user's Maildir and into ``copies``."""
    maildir = dovecot.root / "mail" / user / "Maildir"
    copies.mkdir()
    samples = sorted((CORPUS / "lhost-postfix").glob("*.eml"))
    for number in range(count):
        raw = (
            f"X-Drain-Sequence: {number}\r\n".encode()
            + samples[number % len(samples)].read_bytes()
        )
        (copies / f"{number:04d}.eml").write_bytes(raw)
        temporary = maildir / "tmp" / f"drain{number}"
        temporary.write_bytes(raw)
        temporary.chmod(0o644)
        temporary.rename(maildir / "new" / f"drain{number}")


def stored(url: str) -> tuple[int, int]:
    """Return the numbers of message rows and recipient events in a database."""
    store = Store(url)
    try:
        stats = store.stats()
    finally:
        store.close()
    return sum(stats.messages.values()), sum(stats.events.values())


def test_run_sigterm_mid_drain_loses_nothing(dovecot: Dovecot, tmp_path: Path) -> None:
    # NOTE: SIGTERM goes out once the first batch of 100 is in Processed, so
    # it usually lands mid-drain (200 of 300 still in INBOX in one run). On a
    # machine fast enough to drain all 300 first, only the restart is tested.
    user, count = "rundrain", 300
    dovecot.add_user(user)
    drop_messages(dovecot, user, tmp_path / "copies", count)
    config = write_config(
        tmp_path,
        user=user,
        imaps_port=dovecot.imaps_port,
        ca_file=dovecot.ca_file,
        interval=3600,
    )
    url = f"sqlite:///{tmp_path / 'watchdog.db'}"

    with running_daemon(config, tmp_path) as daemon:
        wait_until(
            lambda: len(dovecot.uids(user, "Processed")) > 0,
            what="first messages moved",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        code, seconds = daemon.terminate()
    left = len(dovecot.uids(user))
    moved = len(dovecot.uids(user, "Processed")) + len(dovecot.uids(user, "Quarantine"))
    rows, _ = stored(url)
    assert code == 0
    assert seconds < SHUTDOWN_LIMIT
    assert left + moved == count, "a message was lost or copied"
    assert rows >= moved, "a message left INBOX before its row was committed"

    with running_daemon(config, tmp_path) as daemon:
        wait_until(
            lambda: dovecot.uids(user) == [],
            what="the rest drained",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        code, _ = daemon.terminate()
    rows, events = stored(url)
    assert code == 0
    assert rows == count

    scanned_url = f"sqlite:///{tmp_path / 'scanned.db'}"
    subprocess.run(
        [COMMAND, "scan", str(tmp_path / "copies"), "--database", scanned_url],
        capture_output=True,
        timeout=300,
        check=True,
    )
    assert events == stored(scanned_url)[1], (
        "events differ from a scan of the same mail"
    )


@pytest.mark.postgres
def test_run_healthz_database_failure(dovecot: Dovecot, tmp_path: Path) -> None:
    if not postgres.available():
        pytest.skip(f"no PostgreSQL at {postgres.admin_url()}")
    user = "rundbdown"
    dovecot.add_user(user)
    with postgres.fresh_database("mw_run") as url:
        config = write_config(
            tmp_path, user=user, imaps_port=dovecot.imaps_port, ca_file=dovecot.ca_file
        )
        text = config.read_text()
        config.write_text(text.replace(text.split("\n")[1], f'url = "{url}"'))
        with running_daemon(config, tmp_path) as daemon:
            wait_until(
                lambda: first_polls_done(daemon),
                what="first poll",
                process=daemon.process,
                log=daemon.log,
                timeout=STARTUP_LIMIT,
            )
            before, _ = daemon.get("/healthz")
            postgres.drop_database(url.rpartition("/")[2])
            status, body = daemon.get("/healthz")
            code, _ = daemon.terminate()
    assert before == 200
    assert status == 503
    assert json.loads(body)["database"] == "failed"
    assert code == 0


def test_run_duplicate_source_name_fails(dovecot: Dovecot, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        user="dupname",
        imaps_port=dovecot.imaps_port,
        ca_file=dovecot.ca_file,
        extra=f'\n[local.bounces]\npath = "{tmp_path}"\n',
    )
    result = subprocess.run(
        [COMMAND, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    events = [
        json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")
    ]
    failed = [e for e in events if e["event"] == "daemon_failed"]
    assert result.returncode == 2
    assert "[local.bounces]" in failed[0]["error"]


def test_run_sigterm_with_hung_server_within_budget(tmp_path: Path) -> None:
    """A server that accepts and never speaks holds a poll until the budget ends."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen()
        port = blackhole.getsockname()[1]
        config = write_config(
            tmp_path, user="hung", imaps_port=port, ca_file=tmp_path / "unused.pem"
        )
        text = config.read_text()
        text = text.replace(f'ca_file = "{tmp_path / "unused.pem"}"', 'tls = "none"')
        config.write_text(text)
        with running_daemon(config, tmp_path) as daemon:
            time.sleep(1)
            code, seconds = daemon.terminate()
    events = [event["event"] for event in daemon.events()]
    assert code == 0
    assert seconds < SHUTDOWN_LIMIT
    assert "polls_cancelled" in events
    assert events[-1] == "daemon_stopped"
