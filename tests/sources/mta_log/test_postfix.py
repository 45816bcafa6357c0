"""End to end: a real Postfix writes its log, ``mail-watchdog run`` counts it.

Postfix relays to the SMTP sink, which accepts, rejects (550 5.1.1) or
defers (452 4.2.2, 450 4.7.28) each recipient. The daemon reads Postfix's
``maillog_file`` and is stopped and started again while Postfix goes on
retrying, so the second run must pick up at the stored offset and count
the expiry of a message whose deferrals the first run saw.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.test_run import Daemon, running_daemon
from tests.servers.postfix import LIFETIME_SECONDS, Postfix, running_postfix
from tests.sources.mta_log.samples import daemon_config

pytestmark = pytest.mark.slow

WAIT_SECONDS = LIFETIME_SECONDS + 15


@pytest.fixture(scope="module")
def postfix() -> Iterator[Postfix]:
    with running_postfix() as instance:
        yield instance


def _attempts(daemon: Daemon) -> dict[tuple[str, str], float]:
    _, body = daemon.get("/metrics")
    found: dict[tuple[str, str], float] = {}
    pattern = re.compile(
        r'^mailwatchdog_delivery_attempts_total\{provider="([^"]+)",'
        r'status="([^"]+)"\} (\S+)$',
        re.MULTILINE,
    )
    for provider, status, value in pattern.findall(body):
        found[status, provider] = float(value)
    return found


def _wait(
    check: Callable[[], bool],
    what: str,
    postfix: Postfix,
    daemon: Daemon | None = None,
) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    detail = postfix.log_text()[-4000:]
    if daemon is not None:
        detail += f"\n--- counted: {_attempts(daemon)}\n"
        detail += daemon.log.read_text()[-4000:]
    raise AssertionError(f"timed out waiting for {what}\n{detail}")


def _lines(postfix: Postfix, *words: str) -> int:
    return sum(
        all(word in line for word in words) for line in postfix.log_text().splitlines()
    )


def _queue_id(postfix: Postfix, recipient: str) -> str:
    match = re.search(
        rf"\]: ([0-9A-F]+): to=<{re.escape(recipient)}>", postfix.log_text()
    )
    assert match is not None, recipient
    return match[1]


def _logged(postfix: Postfix, sender: str) -> dict[tuple[str, str], float]:
    """Count this test's attempts in Postfix's log, before any expiry."""
    counts = {
        ("sent", "gmail"): _lines(postfix, "@gmail.com>", "status=sent"),
        ("sent", "other"): _lines(postfix, "@example.org>", "status=sent")
        + _lines(postfix, f"to=<{sender}>", "status=sent"),
        ("bounced", "gmail"): _lines(postfix, "@gmail.com>", "status=bounced"),
        ("deferred", "outlook"): _lines(postfix, "@outlook.com>", "deferred"),
        ("deferred", "yahoo"): _lines(postfix, "@yahoo.com>", "deferred"),
        ("deferred", "icloud"): _lines(postfix, "@icloud.com>", "deferred"),
    }
    return {key: float(value) for key, value in counts.items() if value}


def _merge(*scrapes: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    total: dict[tuple[str, str], float] = {}
    for scrape in scrapes:
        for key, value in scrape.items():
            if value:
                total[key] = total.get(key, 0) + value
    return total


def test_daemon_counts_postfix_log(postfix: Postfix, tmp_path: Path) -> None:
    """Sent, bounced, deferred and expired attempts are counted exactly once."""
    config = daemon_config(tmp_path, postfix.log)
    sender = "app-e2e@bounce.test"
    with running_daemon(config, tmp_path) as daemon:
        _wait(lambda: "mta_log_opened" in daemon.log.read_text(), "start", postfix)
        first_batch = ["ok1@gmail.com", "unknown1@gmail.com", "full1@outlook.com"]
        first_batch.append("throttled1@yahoo.com")
        postfix.send(sender, first_batch, "forced expiry")
        postfix.send(sender, ["ok2@gmail.com", "ok3@example.org"], "delivered")
        postfix.send(sender, ["full2@icloud.com"], "natural expiry")
        _wait(
            lambda: (
                _attempts(daemon).get(("bounced", "gmail")) == 1
                and _attempts(daemon).get(("sent", "gmail")) == 2
                and _attempts(daemon).get(("deferred", "yahoo"), 0) >= 1
            ),
            "the first outcomes",
            postfix,
            daemon,
        )
        # Held mail is not retried, so the log does not change while the
        # daemon catches up and is stopped.
        postfix.hold()
        time.sleep(0.3)
        _wait(
            lambda: _attempts(daemon) == _logged(postfix, sender),
            "the daemon to read the whole log",
            postfix,
            daemon,
        )
        first = _attempts(daemon)
        code, _ = daemon.terminate()
        assert code == 0

    # Postfix retries while the daemon is down; then one message is
    # expired by hand and the other by its queue lifetime.
    postfix.release()
    time.sleep(1.5)
    postfix.expire_message(_queue_id(postfix, "full1@outlook.com"))
    _wait(lambda: postfix.queued() == 0, "an empty queue", postfix)

    # The queue is empty, so the log no longer changes.
    expected = {
        ("sent", "gmail"): 2,
        ("sent", "other"): 4,
        ("bounced", "gmail"): 1,
        ("deferred", "outlook"): _lines(postfix, "to=<full1@outlook.com>", "deferred"),
        ("deferred", "yahoo"): _lines(postfix, "to=<throttled1@yahoo.com>", "deferred"),
        ("deferred", "icloud"): _lines(postfix, "to=<full2@icloud.com>", "deferred"),
        ("expired", "outlook"): 1,
        ("expired", "yahoo"): 1,
        ("expired", "icloud"): 1,
    }
    with running_daemon(config, tmp_path) as daemon:
        _wait(
            lambda: _merge(first, _attempts(daemon)) == expected,
            "the rest of the log",
            postfix,
            daemon,
        )
        time.sleep(0.5)
        second = _attempts(daemon)

    # ok3@example.org and three notifications to the sender: one bounce and
    # two expiries.
    assert _lines(postfix, f"to=<{sender}>", "status=sent") == 3
    assert _lines(postfix, "status=force-expired") == 1
    assert _lines(postfix, "status=expired") == 1
    assert ("expired", "unknown") not in second
    assert _merge(first, second) == expected
