"""Fixtures for the source tests: one private Dovecot per test run."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from tests.servers.dovecot import Dovecot, running_dovecot

_USER_NUMBERS = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """A private Dovecot shared by the tests; each test makes its own user."""
    with running_dovecot() as instance:
        yield instance


@pytest.fixture
def imap_user(dovecot: Dovecot) -> str:
    """A fresh IMAP user with an empty INBOX."""
    name = f"src{next(_USER_NUMBERS)}"
    dovecot.add_user(name)
    return name


@pytest.fixture
def make_user(dovecot: Dovecot) -> Callable[[], str]:
    """Create further fresh users on demand."""

    def create() -> str:
        name = f"src{next(_USER_NUMBERS)}"
        dovecot.add_user(name)
        return name

    return create
