"""Helpers shared by the server fixtures: ports, directories, readiness."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

READY_TIMEOUT = 10.0
POLL_INTERVAL = 0.02


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """Return a port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def service_dir(name: str) -> Iterator[Path]:
    """Yield a fresh world-traversable directory under /tmp, removed afterwards.

    Daemons drop privileges to their own users, which cannot traverse
    pytest's 0700 temporary directories, so these live directly in /tmp.
    """
    path = Path(tempfile.mkdtemp(prefix=f"mw-{name}-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    timeout: float = READY_TIMEOUT,
) -> None:
    """Poll ``check`` until it returns true; fail with the log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}{_tail(log)}")
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"{what} not ready after {timeout} s{_tail(log)}")


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a foreground child with SIGTERM, then SIGKILL, and reap it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def pid_alive(pid: int) -> bool:
    """Tell whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def require_binary(name: str) -> str:
    """Return the path of a server binary, or fail with the install hint."""
    candidates = [Path("/usr/sbin") / name, Path("/usr/bin") / name]
    found = shutil.which(name) or next(
        (str(path) for path in candidates if path.exists()), None
    )
    if found is None:
        raise RuntimeError(f"{name} not found: run scripts/install-test-deps.sh")
    return found


def _tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n--- " + str(log) + " ---\n" + "\n".join(text)


def env_without_proxy() -> dict[str, str]:
    """Return the environment minus proxy variables, for loopback clients."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
