"""Transactions and error wording shared by the SQLite tables' classes (outbox, inbox)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from textback.errors import StoreError


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction that takes the write lock up front.

    IMMEDIATE, so a CLI writing beside the daemon waits (busy_timeout) instead of
    failing mid-transaction. Inside another transaction it joins that one: a
    caller can make several writes one commit (all or nothing).
    """
    joining = conn.in_transaction
    if joining:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        # SQLite may already have rolled back (disk full, I/O error).
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def as_store_error(doing: str, what: str, path: Path) -> Iterator[None]:
    """sqlite3 errors become StoreError naming the table's purpose and the file."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"cannot {doing} {what} in {path}: {exc}") from exc
