"""The call log: one SQLite row per inbound trunk call and its verdict.

IO shell over stdlib sqlite3. One connection, one writer: the daemon reaches it
through :class:`AsyncCallLog`, whose single worker thread serialises every
statement. Other processes (the CLI, an admin with the sqlite3 shell) read
through :func:`open_reader` while the daemon runs; WAL makes that safe.

Times are ISO-8601 UTC text with milliseconds, so the file reads well without
textback. Verdicts carry Unix seconds; conversion happens only here.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar

from textback.core.verdict import CallVerdict, Verdict
from textback.errors import StoreError

_T = TypeVar("_T")

BUSY_TIMEOUT_MS: Final = 5000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _migrate_1_calls(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE calls (
            id             INTEGER PRIMARY KEY,
            pbx            TEXT NOT NULL,
            call_id        TEXT NOT NULL,
            trunk          TEXT,
            verdict        TEXT NOT NULL CHECK (verdict IN ('missed', 'answered', 'unknown')),
            reason         TEXT NOT NULL,
            caller_raw     TEXT NOT NULL,
            caller_e164    TEXT,
            caller_name    TEXT NOT NULL,
            anonymous      INTEGER NOT NULL,
            did            TEXT NOT NULL,
            did_e164       TEXT,
            started_at     TEXT NOT NULL,
            answered_at    TEXT,
            ended_at       TEXT NOT NULL,
            ring_seconds   REAL NOT NULL,
            voicemail_left INTEGER,
            note           TEXT NOT NULL,
            recorded_at    TEXT NOT NULL,
            UNIQUE (pbx, call_id)
        )
        """
    )
    conn.execute("CREATE INDEX calls_caller_started ON calls (caller_e164, started_at)")
    conn.execute("CREATE INDEX calls_started ON calls (started_at)")


# Migration N is _MIGRATIONS[N - 1]; PRAGMA user_version records the last one applied.
# Append only: never edit a migration that has shipped.
_MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (_migrate_1_calls,)

SCHEMA_VERSION: Final = len(_MIGRATIONS)

_INSERT: Final = """
    INSERT INTO calls (
        pbx, call_id, trunk, verdict, reason, caller_raw, caller_e164, caller_name,
        anonymous, did, did_e164, started_at, answered_at, ended_at, ring_seconds,
        voicemail_left, note, recorded_at
    ) VALUES (
        :pbx, :call_id, :trunk, :verdict, :reason, :caller_raw, :caller_e164, :caller_name,
        :anonymous, :did, :did_e164, :started_at, :answered_at, :ended_at, :ring_seconds,
        :voicemail_left, :note, :recorded_at
    )
    ON CONFLICT (pbx, call_id) DO NOTHING
"""


def iso_utc(unix_seconds: float) -> str:
    """``1796...41.871`` → ``"2026-11-27T20:20:41.871Z"`` (rounded to the millisecond)."""
    # Integer milliseconds through timedelta: float maths would turn .871 into .870.
    moment = _EPOCH + timedelta(milliseconds=round(unix_seconds * 1000))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _opt_iso(unix_seconds: float | None) -> str | None:
    return None if unix_seconds is None else iso_utc(unix_seconds)


def _create_private(path: Path) -> None:
    """Create the file 0600 so the numbers in it are not world-readable.

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class CallLog:
    """Synchronous call log owning one sqlite3 connection; use it from one thread only."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._closed = False
        self.path = path

    @classmethod
    def open(cls, path: Path) -> CallLog:
        """Open (creating if needed) and migrate the call log at ``path``.

        Raises:
            StoreError: the directory is missing, the file cannot be opened, is
                not a SQLite database, or was written by a newer textback.
        """
        if not path.parent.is_dir():
            raise StoreError(
                f"cannot open the call log {path}: directory {path.parent} does not exist; "
                f"create it (mkdir -p {path.parent}) or, under systemd, set "
                f"StateDirectory=textback in the unit"
            )
        try:
            _create_private(path)
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the call log {path}: {exc}") from exc
        try:
            _configure(conn, path)
            _migrate(conn, path)
        except BaseException:
            conn.close()
            raise
        conn.row_factory = sqlite3.Row
        return cls(conn, path)

    def record(
        self, verdict: CallVerdict, *, caller_e164: str | None, did_e164: str | None, now: float
    ) -> bool:
        """Store one verdict; True when it was new, False for a replay of a stored call.

        Raises:
            ValueError: the verdict is IGNORED (internal and outbound calls are not logged).
            StoreError: the write failed.
        """
        if verdict.verdict is Verdict.IGNORED:
            raise ValueError(
                f"call {verdict.call_id} on {verdict.pbx} is {verdict.reason.value}: "
                f"ignored calls are not logged"
            )
        row = {
            "pbx": verdict.pbx,
            "call_id": verdict.call_id,
            "trunk": verdict.trunk,
            "verdict": verdict.verdict.value,
            "reason": verdict.reason.value,
            "caller_raw": verdict.caller_raw,
            "caller_e164": caller_e164,
            "caller_name": verdict.caller_name,
            "anonymous": int(verdict.anonymous),
            "did": verdict.did,
            "did_e164": did_e164,
            "started_at": iso_utc(verdict.started_at),
            "answered_at": _opt_iso(verdict.answered_at),
            "ended_at": iso_utc(verdict.ended_at),
            "ring_seconds": verdict.ring_seconds,
            "voicemail_left": None
            if verdict.voicemail_left is None
            else int(verdict.voicemail_left),
            "note": verdict.note,
            "recorded_at": iso_utc(now),
        }
        try:
            cursor = self._live().execute(_INSERT, row)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to the call log {self.path}: {exc}") from exc
        return cursor.rowcount == 1

    def recent(self, limit: int = 50) -> list[dict[str, object]]:
        """The newest ``limit`` calls, newest first, with 0/1 columns as booleans."""
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        try:
            rows = (
                self._live()
                .execute("SELECT * FROM calls ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the call log {self.path}: {exc}") from exc
        return [_row_dict(row) for row in rows]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _live(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the call log {self.path} is closed")
        return self._conn


def _row_dict(row: sqlite3.Row) -> dict[str, object]:
    out: dict[str, object] = dict(zip(row.keys(), tuple(row), strict=True))
    out["anonymous"] = bool(out["anonymous"])
    if out["voicemail_left"] is not None:
        out["voicemail_left"] = bool(out["voicemail_left"])
    return out


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    try:
        # The first statement that reads the header: a non-database fails here.
        (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the call log {path}: {exc}") from exc
    if str(mode).lower() != "wal":
        # Readers beside the running daemon depend on WAL (network filesystems refuse it).
        raise StoreError(
            f"the call log {path} cannot use WAL journaling (got {mode!r}); "
            f"put it on a local filesystem"
        )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    try:
        # IMMEDIATE takes the write lock first, so two starting daemons cannot both migrate.
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the call log {path} has schema version {version}, but this textback "
                    f"only knows up to {SCHEMA_VERSION}: it was written by a newer textback; "
                    f"upgrade textback or use another file"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[number - 1](conn)
            # PRAGMA takes no parameters; number is an int from our own table.
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION:d}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot migrate the call log {path}: {exc}") from exc


class AsyncCallLog:
    """The daemon's call log: every call runs on one worker thread, in submission order.

    A cancelled ``await`` does not stop a statement already handed to the
    worker; that is harmless because ``record`` is idempotent per call.
    """

    def __init__(self, log: CallLog, executor: ThreadPoolExecutor) -> None:
        self._log = log
        self._executor = executor
        self._closed = False

    @classmethod
    async def open(cls, path: Path) -> AsyncCallLog:
        """Open and migrate the call log on a fresh worker thread (see :meth:`CallLog.open`)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="textback-store")
        try:
            log = await asyncio.get_running_loop().run_in_executor(executor, CallLog.open, path)
        except BaseException:
            executor.shutdown(wait=True)
            raise
        return cls(log, executor)

    @property
    def path(self) -> Path:
        return self._log.path

    async def record(
        self, verdict: CallVerdict, *, caller_e164: str | None, did_e164: str | None, now: float
    ) -> bool:
        """See :meth:`CallLog.record`."""
        return await self._run(
            functools.partial(
                self._log.record, verdict, caller_e164=caller_e164, did_e164=did_e164, now=now
            )
        )

    async def recent(self, limit: int = 50) -> list[dict[str, object]]:
        """See :meth:`CallLog.recent`."""
        return await self._run(functools.partial(self._log.recent, limit))

    async def aclose(self) -> None:
        """Close the connection on its own thread, then stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._log.close)
        finally:
            # The queue is empty now, so this only joins an idle thread.
            self._executor.shutdown(wait=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self, job: Callable[[], _T]) -> _T:
        if self._closed:
            raise StoreError(f"the call log {self._log.path} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)


def open_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection (rows as sqlite3.Row) for a process beside the daemon.

    Raises:
        StoreError: the file is missing, not a database, or not a call log this
            textback can read.
    """
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the call log {path} for reading: {exc}") from exc
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot read the call log {path}: {exc}") from exc
    if not 1 <= version <= SCHEMA_VERSION:
        conn.close()
        raise StoreError(
            f"{path} is not a call log this textback can read (schema version {version}, "
            f"known: 1 to {SCHEMA_VERSION})"
        )
    conn.row_factory = sqlite3.Row
    return conn
