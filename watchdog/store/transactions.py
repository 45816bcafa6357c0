"""The connection behind ``Store.batch``, and the store's clock."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError


class Batch:
    """The connection of one ``Store.batch``, opened at its first write."""

    def __init__(self) -> None:
        self.conn: Connection | None = None

    def open(self, engine: Engine) -> Connection:
        """Return the batch's connection, connecting and beginning on first use."""
        if self.conn is None:
            self.conn = engine.connect()
            self.conn.begin()
        return self.conn

    def commit(self) -> None:
        """Commit the batch, if it wrote anything."""
        if self.conn is not None:
            self.conn.commit()

    def rollback(self) -> None:
        """Roll the batch back, keeping the error that caused it."""
        # SQLite has already rolled back after "disk is full", so ROLLBACK
        # fails with "no transaction is active"; the first error matters.
        if self.conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self.conn.rollback()

    def close(self) -> None:
        """Return the connection to the pool."""
        if self.conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self.conn.close()
            self.conn = None


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)
