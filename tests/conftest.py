"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The folder of real bounce samples and their manifest."""
    return CORPUS
