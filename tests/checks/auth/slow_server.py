"""A hostile HTTPS policy server on 127.0.0.1 that drips its reply.

It reads one request, then sends the reply one byte at a time with a pause
between bytes, so each read by the client finishes well within a per-read
socket timeout while the whole response takes far longer.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.checks.auth.policy_server import write_certificate

POLICY = "version: STSv1\nmode: enforce\nmx: *.good.test\nmax_age: 604800\n"
# No Content-Length, so the body ends when the server closes the connection.
HEADERS = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class _Reply:
    """Bytes sent at once after the request, then bytes sent one at a time."""

    immediate: bytes
    dripped: bytes
    pause: float


def _serve_one(connection: ssl.SSLSocket, reply: _Reply, stop: threading.Event) -> None:
    with connection:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = connection.recv(4096)
            if not chunk:
                return
            request += chunk
        connection.sendall(reply.immediate)
        for index in range(len(reply.dripped)):
            if stop.wait(reply.pause):
                return
            connection.sendall(reply.dripped[index : index + 1])


def _serve_quietly(
    connection: ssl.SSLSocket, reply: _Reply, stop: threading.Event
) -> None:
    # The client hanging up early is what the tests expect, not a failure.
    with contextlib.suppress(OSError):
        _serve_one(connection, reply, stop)


def _accept_loop(
    listener: socket.socket,
    context: ssl.SSLContext,
    reply: _Reply,
    stop: threading.Event,
) -> None:
    while not stop.is_set():
        try:
            raw, _address = listener.accept()
            raw.settimeout(5)
            connection = context.wrap_socket(raw, server_side=True)
        except OSError:
            continue
        worker = threading.Thread(
            target=_serve_quietly, args=(connection, reply, stop), daemon=True
        )
        worker.start()


@contextlib.contextmanager
def run_drip_server(
    directory: Path, *, pause: float, drip_headers: bool = False
) -> Iterator[tuple[int, Path]]:
    """Serve a valid policy one byte every ``pause`` seconds; yield port and CA file.

    With ``drip_headers`` the status line and headers drip too; otherwise
    they arrive at once and only the body drips.
    """
    cert_path, key_path = write_certificate(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    if drip_headers:
        reply = _Reply(b"", (HEADERS + POLICY).encode(), pause)
    else:
        reply = _Reply(HEADERS.encode(), POLICY.encode(), pause)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    thread = threading.Thread(
        target=_accept_loop, args=(listener, context, reply, stop), daemon=True
    )
    thread.start()
    try:
        yield listener.getsockname()[1], cert_path
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
