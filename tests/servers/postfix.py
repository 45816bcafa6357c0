"""A private Postfix on 127.0.0.1 that relays everything to an SMTP sink.

The instance has its own configuration, queue and data directories under
/tmp and writes its log through ``postlogd`` to ``maillog_file`` in that
directory, the format the MTA log reader must parse. Its relayhost is the
aiosmtpd sink in ``tests.servers.smtp_sink``, which accepts, rejects (550)
or defers (452, 450) each recipient by its local part. DNS is off, so
recipients at gmail.com or outlook.com reach the sink too. Queue times are
seconds, not days: a deferred message expires after ``LIFETIME_SECONDS``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from tests.servers.common import (
    env_without_proxy,
    free_port,
    pid_alive,
    require_binary,
    service_dir,
    stop,
    wait_until,
)

LIFETIME_SECONDS = 6
REPOSITORY = Path(__file__).parent.parent.parent


@dataclass
class Postfix:
    """A running private Postfix and the sink it relays to."""

    root: Path
    smtpd_port: int
    sink_port: int
    sink: subprocess.Popen[bytes] | None = None

    @property
    def etc(self) -> Path:
        """The configuration directory, for ``-c``."""
        return self.root / "etc"

    @property
    def log(self) -> Path:
        """The ``maillog_file`` Postfix writes."""
        return self.root / "postfix.log"

    def start(self) -> None:
        """Start the sink, then Postfix, and wait until both accept connections."""
        self.sink = subprocess.Popen(
            [sys.executable, "-m", "tests.servers.smtp_sink", str(self.sink_port)],
            stdout=subprocess.PIPE,
            stderr=(self.root / "sink.log").open("wb"),
            cwd=REPOSITORY,
            env=env_without_proxy(),
        )
        assert self.sink.stdout is not None
        if self.sink.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"SMTP sink did not start: see {self.root}/sink.log")
        self._postfix("start")
        wait_until(self._greets, what="postfix", log=self.log)

    def stop(self) -> None:
        """Abort Postfix, wait until its master is gone, and stop the sink."""
        pid_file = self.root / "spool" / "pid" / "master.pid"
        pid = None
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().split()[0])
        with contextlib.suppress(subprocess.CalledProcessError):
            self._postfix("abort")
        if pid is not None:
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        if self.sink is not None:
            stop(self.sink)
            self.sink = None

    def send(self, sender: str, recipients: Sequence[str], subject: str) -> None:
        """Submit one message over SMTP to ``recipients``."""
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message.set_content("test body\n")
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=10) as client:
            client.send_message(message, from_addr=sender, to_addrs=list(recipients))

    def queued(self) -> int:
        """Return how many messages are in the queue."""
        output = self._run("postqueue", "-c", str(self.etc), "-j")
        return len(output.splitlines())

    def expire_deferred(self) -> None:
        """Expire every deferred message now and flush the queue."""
        self._run("postsuper", "-c", str(self.etc), "-e", "ALL", "deferred")
        self._run("postqueue", "-c", str(self.etc), "-f")

    def expire_message(self, queue_id: str) -> None:
        """Expire one queued message now and flush the queue."""
        self._run("postsuper", "-c", str(self.etc), "-e", queue_id)
        self._run("postqueue", "-c", str(self.etc), "-f")

    def hold(self) -> None:
        """Put every queued message on hold, which stops its retries."""
        self._run("postsuper", "-c", str(self.etc), "-h", "ALL")

    def release(self) -> None:
        """Release every held message and flush the queue."""
        self._run("postsuper", "-c", str(self.etc), "-H", "ALL")
        self._run("postqueue", "-c", str(self.etc), "-f")

    def log_text(self) -> str:
        """Return the log written so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _postfix(self, command: str) -> None:
        self._run("postfix", "-c", str(self.etc), command)

    def _run(self, program: str, *args: str) -> str:
        result = subprocess.run(
            [require_binary(program), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode,
                result.args,
                result.stdout,
                result.stderr + self.log_text()[-3000:],
            )
        return result.stdout

    def _greets(self) -> bool:
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=1) as client:
            code, _ = client.noop()
            return code == 250


@contextlib.contextmanager
def running_postfix() -> Iterator[Postfix]:
    """Start a private Postfix and its sink; stop both and remove the files."""
    with service_dir("postfix") as root:
        instance = Postfix(root=root, smtpd_port=free_port(), sink_port=free_port())
        _configure(instance)
        instance.start()
        try:
            yield instance
        finally:
            instance.stop()


def _configure(instance: Postfix) -> None:
    root = instance.root
    etc = instance.etc
    etc.mkdir()
    shutil.copy("/etc/postfix/master.cf", etc / "master.cf")
    (etc / "main.cf").write_text("")
    for sub in ("spool", "data"):
        (root / sub).mkdir()
    shutil.chown(root / "data", "postfix")

    settings = {
        "compatibility_level": "3.6",
        "queue_directory": f"{root}/spool",
        "data_directory": f"{root}/data",
        "maillog_file": str(instance.log),
        "maillog_file_prefixes": f"/var, /dev/stdout, {root}",
        "myhostname": "mta.test",
        "mydestination": "",
        "local_recipient_maps": "",
        "alias_maps": "",
        "alias_database": "",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject",
        "relayhost": f"[127.0.0.1]:{instance.sink_port}",
        "smtp_dns_support_level": "disabled",
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "maximal_queue_lifetime": f"{LIFETIME_SECONDS}s",
        "bounce_queue_lifetime": f"{LIFETIME_SECONDS}s",
        "delay_warning_time": "0",
    }
    postconf = require_binary("postconf")
    pairs = [f"{key} = {value}" for key, value in settings.items()]
    subprocess.run([postconf, "-c", str(etc), "-e", *pairs], check=True)

    smtpd = f"127.0.0.1:{instance.smtpd_port}/inet"
    service = f"{smtpd} = 127.0.0.1:{instance.smtpd_port} inet n - n - - smtpd"
    subprocess.run([postconf, "-c", str(etc), "-M#", "smtp/inet"], check=True)
    subprocess.run([postconf, "-c", str(etc), "-Me", service], check=True)
    subprocess.run([postconf, "-c", str(etc), "-F", "*/*/chroot = n"], check=True)

    # Postfix sleeps 300 ms on each read of a configuration file changed in
    # the last two seconds, which made the first start take 2.4 s.
    stale = time.time() - 60
    for name in ("main.cf", "master.cf"):
        path = etc / name
        os.utime(path, (stale, stale))
