"""An SMTP sink that accepts or rejects each recipient by its local part.

Run as ``python -m tests.servers.smtp_sink PORT``; it prints ``ready`` once
it listens on 127.0.0.1:PORT and runs until SIGTERM. Postfix's own
``smtp-sink`` rejects whole commands, not single recipients, hence this
aiosmtpd program. Recipients whose local part starts with:

- ``unknown`` get ``550 5.1.1`` (Postfix logs ``status=bounced``);
- ``full`` get ``452 4.2.2`` (``status=deferred`` until the queue lifetime
  ends, then the message expires);
- ``throttled`` get ``450 4.7.28``, the shape of Gmail's rate limiting;

every other recipient is accepted, and the message is dropped.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

REPLIES = {
    "unknown": "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
    "full": "452 4.2.2 <{rcpt}>: Mailbox full, try again later",
    "throttled": "450 4.7.28 Our system has detected an unusual rate of mail",
}


class Handler:
    """Accept or reject each RCPT TO as described in the module docstring."""

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        del server, session, rcpt_options
        local = address.partition("@")[0].lower()
        for prefix, reply in REPLIES.items():
            if local.startswith(prefix):
                return reply.format(rcpt=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        del server, session, envelope
        return "250 2.0.0 Ok: queued as SINK"


async def _serve(port: int) -> None:
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        server_hostname="sink.test",
        enable_SMTPUTF8=True,
    )
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    controller.stop()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
