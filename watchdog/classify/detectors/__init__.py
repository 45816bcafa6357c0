"""One detector per format family, each a ``Detector``.

A detector takes a parsed message and the rules and returns a Verdict when
it recognises the format, or None to let the next detector try. The order
in which ``watchdog.classify.classify`` tries them is ``DETECTORS``.
"""

from __future__ import annotations

from collections.abc import Callable

from watchdog.classify.message import ParsedMessage
from watchdog.classify.rules import Rules
from watchdog.classify.verdict import Verdict

Detector = Callable[[ParsedMessage, Rules], Verdict | None]
