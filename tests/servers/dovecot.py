"""A private Dovecot on 127.0.0.1 with IMAP and IMAPS, for the IMAP tests.

The instance lives in its own /tmp directory with a passwd-file of users
whose mail uid is nobody's (Dovecot refuses uid 0), Maildir storage and a
self-signed EC certificate for 127.0.0.1. Nothing is read from /etc.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.common import (
    free_port,
    require_binary,
    service_dir,
    stop,
    wait_until,
)

MAIL_UID = 65534  # nobody
PASSWORD = "secret"

_CONFIG = """\
instance_name = dovecot-test-{imap}
base_dir = {dir}/run
state_dir = {dir}/state
protocols = imap
listen = 127.0.0.1
log_path = {dir}/dovecot.log
ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_fsync = never
mailbox_idle_check_interval = 1 secs
mail_location = maildir:~/Maildir
first_valid_uid = 1
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {dir}/users/%n
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {dir}/users/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


@dataclass
class Dovecot:
    """A running private Dovecot; ``restart`` and ``stop`` keep the mail."""

    root: Path
    imap_port: int
    imaps_port: int
    process: subprocess.Popen[bytes] | None = None
    users: set[str] = field(default_factory=set)

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate, to pass as ``ca_file``."""
        return self.root / "cert.pem"

    @property
    def config(self) -> Path:
        """The configuration file, for ``doveadm -c``."""
        return self.root / "dovecot.conf"

    def start(self) -> None:
        """Start Dovecot in the foreground and wait for its IMAP greeting."""
        self.process = subprocess.Popen(
            [require_binary("dovecot"), "-c", str(self.config), "-F"],
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "stderr.log").open("wb"),
        )
        wait_until(
            self._greets,
            what="dovecot",
            process=self.process,
            log=self.root / "dovecot.log",
        )

    def stop(self) -> None:
        """Stop Dovecot, its IMAP sessions included, and wait until it has exited.

        Dovecot 2.3.19's master exits on SIGTERM while logged-in imap
        processes go on serving their clients, so those are killed first:
        a client then sees what a crashed or rebooted server looks like.
        """
        if self.process is not None:
            for pid in _children(self.process.pid, command="imap"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            stop(self.process)
            self.process = None

    def restart(self) -> None:
        """Stop and start again on the same ports with the same mail."""
        self.stop()
        self.start()

    def add_user(self, name: str) -> str:
        """Create a user with an empty Maildir; return its password."""
        home = self.root / "mail" / name
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
        for path in [home, *home.rglob("*")]:
            os.chown(path, MAIL_UID, MAIL_UID)
        # One passwd-file per user: with one shared file, Dovecot 2.3.19 did
        # not find about half of the users appended less than a second apart.
        entry = self.root / "users" / name
        entry.write_text(f"{name}:{{PLAIN}}{PASSWORD}:{MAIL_UID}:{MAIL_UID}::{home}\n")
        entry.chmod(0o644)
        self.users.add(name)
        return PASSWORD

    @contextlib.contextmanager
    def client(self, user: str) -> Iterator[imaplib.IMAP4]:
        """Yield a logged-in imaplib client, for test setup and checks only."""
        conn = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        try:
            conn.login(user, PASSWORD)
            yield conn
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                conn.logout()

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> int:
        """Append one message without flags; return its UID."""
        with self.client(user) as conn:
            typ, data = conn.append(_quoted(folder), "", None, raw)
        assert typ == "OK", data
        text = (data[0] or b"").decode()
        return int(text.split("APPENDUID", 1)[1].split()[1].rstrip("]"))

    def uids(self, user: str, folder: str = "INBOX") -> list[int]:
        """Return the UIDs in ``folder``, or [] when it does not exist."""
        with self.client(user) as conn:
            typ, _ = conn.select(_quoted(folder), readonly=True)
            if typ != "OK":
                return []
            typ, data = conn.uid("SEARCH", "ALL")
        return [int(uid) for uid in (data[0] or b"").split()]

    def bodies(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """Return the raw bytes of every message in ``folder``."""
        found: list[bytes] = []
        with self.client(user) as conn:
            typ, _ = conn.select(_quoted(folder), readonly=True)
            if typ != "OK":
                return found
            typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple):
                found.append(item[1])
        return found

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, str]:
        """Return the FLAGS text of every message in ``folder`` by UID."""
        with self.client(user) as conn:
            conn.select(_quoted(folder), readonly=True)
            _, data = conn.uid("FETCH", "1:*", "(UID FLAGS)")
        result: dict[int, str] = {}
        for item in data:
            if isinstance(item, bytes) and b"UID" in item:
                text = item.decode()
                uid = int(text.split("UID ", 1)[1].split()[0].rstrip(")"))
                result[uid] = text.split("FLAGS (", 1)[1].split(")", 1)[0]
        return result

    def reset_uidvalidity(self, user: str) -> None:
        """Make Dovecot assign a new UIDVALIDITY to the user's INBOX.

        Deleting ``dovecot-uidlist`` and the index while Dovecot is stopped
        is what a lost index does in production: the messages stay, every
        UID is renumbered and UIDVALIDITY changes.
        """
        self.stop()
        maildir = self.root / "mail" / user / "Maildir"
        for path in maildir.glob("dovecot*"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        self.start()

    def _greets(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.imap_port), timeout=1) as sock:
            return sock.recv(200).startswith(b"* OK")


def client_context(dovecot: Dovecot) -> ssl.SSLContext:
    """Return a TLS context that trusts the instance's certificate."""
    return ssl.create_default_context(cafile=str(dovecot.ca_file))


@contextlib.contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    """Start a private Dovecot and stop it and remove its files afterwards."""
    with service_dir("dovecot") as root:
        instance = Dovecot(root=root, imap_port=free_port(), imaps_port=free_port())
        _write_files(instance)
        instance.start()
        try:
            yield instance
        finally:
            instance.stop()


def _write_files(instance: Dovecot) -> None:
    root = instance.root
    (root / "mail").mkdir()
    (root / "users").mkdir(mode=0o755)
    text = _CONFIG.format(dir=root, imap=instance.imap_port, imaps=instance.imaps_port)
    instance.config.write_text(text)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (root / "cert.pem").chmod(0o644)


def _children(parent: int, *, command: str) -> list[int]:
    """Return the PIDs of direct children of ``parent`` running ``command``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            name, _, rest = stat.read_text().partition(" (")[2].rpartition(")")
            if name == command and int(rest.split()[1]) == parent:
                found.append(int(stat.parent.name))
    return found


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
