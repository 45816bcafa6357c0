"""Run mailbox polls in a child process, for the SIGKILL and SIGTERM tests.

Usage: ``python -m tests.jobs.mailbox_child MAILBOX_JSON DATABASE_URL``, where
MAILBOX_JSON is the ``mailboxes.bounces`` table of the settings as JSON.
Polls until the folder is drained, printing one JSON line per summary.
``WATCHDOG_TEST_FAULT`` picks the step at which the process dies. SIGTERM
sets the worker's stop event, as the daemon does.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from tests.jobs.mailbox_support import drain, make_rig
from watchdog.config import Settings


async def main(mailbox_json: str, url: str) -> int:
    settings = Settings(mailboxes={"bounces": json.loads(mailbox_json)})
    rig = make_rig(settings, url)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, rig.stop.set)
    for summary in await drain(rig):
        print(json.dumps({"state": summary.state.value, "outcomes": summary.outcomes}))
        sys.stdout.flush()
    await rig.worker.close()
    rig.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
