"""A TCP proxy on 127.0.0.1 that injects network faults, for IMAP tests.

The proxy runs its own event loop in a thread, so synchronous fixtures and
asyncio tests can both drive it. Faults apply to the server-to-client
direction: a stall there is what a dead server, a NAT that dropped the flow
or a server dripping bytes looks like to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import threading
from dataclasses import dataclass


class Mode(enum.StrEnum):
    """What the proxy does once its trigger has been seen."""

    PASS = "pass"
    LATENCY = "latency"  # delay every chunk by ``latency`` seconds
    CUT = "cut"  # close both sides with FIN
    RST = "rst"  # reset the client connection
    BLACKHOLE = "blackhole"  # keep both sides open, forward nothing more
    HALF_CLOSE = "half_close"  # send FIN to the client, keep reading from it


@dataclass(frozen=True)
class Fault:
    """A fault that starts after ``after_bytes`` more bytes, or at ``trigger``.

    With a ``trigger``, the chunk that contains it is forwarded up to the end
    of the trigger and the fault starts there.
    """

    mode: Mode = Mode.PASS
    after_bytes: int = 0
    trigger: bytes | None = None
    latency: float = 0.0


class FaultProxy:
    """Forward 127.0.0.1:``port`` to ``target_port`` until a fault is set."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections = 0
        self._fault = Fault()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        """Start listening on a free port."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(5)

    def stop(self) -> None:
        """Close every connection and the listener, then end the thread."""
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def set_fault(self, fault: Fault) -> None:
        """Apply ``fault`` to current and later connections."""
        self._fault = fault

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def _handle(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            client_writer.close()
            return
        self._writers.update({client_writer, server_writer})
        upstream = asyncio.create_task(_pump(client_reader, server_writer))
        downstream = asyncio.create_task(
            self._downstream(server_reader, client_writer, server_writer)
        )
        # Either side closing ends the pair, blackholed or not.
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        for task in (upstream, downstream):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        for writer in (client_writer, server_writer):
            writer.close()
            self._writers.discard(writer)

    async def _downstream(
        self,
        reader: asyncio.StreamReader,
        client: asyncio.StreamWriter,
        server: asyncio.StreamWriter,
    ) -> None:
        fault = self._fault
        budget = fault.after_bytes
        while data := await reader.read(65536):
            if self._fault is not fault:
                fault, budget = self._fault, self._fault.after_bytes
            if fault.mode is Mode.PASS:
                client.write(data)
                await client.drain()
                continue
            if fault.mode is Mode.LATENCY:
                await asyncio.sleep(fault.latency)
                client.write(data)
                await client.drain()
                continue
            head, fired = _split(data, fault, budget)
            budget -= len(head)
            client.write(head)
            await client.drain()
            if fired:
                await _fire(fault.mode, client, server)
                return


def _split(data: bytes, fault: Fault, budget: int) -> tuple[bytes, bool]:
    """Return the part to forward before the fault, and whether it fires now."""
    if fault.trigger is not None:
        index = data.find(fault.trigger)
        if index < 0:
            return data, False
        return data[: index + len(fault.trigger)], True
    if len(data) < budget:
        return data, False
    return data[:budget], True


async def _fire(
    mode: Mode, client: asyncio.StreamWriter, server: asyncio.StreamWriter
) -> None:
    if mode is Mode.CUT:
        client.close()
        server.close()
    elif mode is Mode.RST:
        sock = client.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.transport.abort()
        server.close()
    elif mode is Mode.HALF_CLOSE:
        client.write_eof()
        await asyncio.Event().wait()
    else:  # BLACKHOLE
        await asyncio.Event().wait()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
