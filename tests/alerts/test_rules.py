"""The Prometheus rule file passes promtool's checks and its unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.servers.common import require_binary

HERE = Path(__file__).parent
RULES = HERE.parent.parent / "rules" / "alerts.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=HERE,
    )


def test_rules_file_valid() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_unit_tests_pass() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
