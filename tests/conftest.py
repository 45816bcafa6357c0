"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import postgres

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The folder of real bounce samples and their manifest."""
    return CORPUS


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for an empty database: an SQLite file, then PostgreSQL.

    The PostgreSQL case creates a fresh database on the server named in
    tests/servers/postgres.py and drops it afterwards; it is skipped when
    that server refuses connections.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'watchdog.db'}"
        return
    if not postgres.available():
        pytest.skip(f"PostgreSQL at {postgres.admin_url()!r} is not reachable")
    with postgres.fresh_database() as url:
        yield url
