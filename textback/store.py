"""The textback database: one SQLite file holding the call log, the outbox and the inbox.

IO shell over stdlib sqlite3. One connection, one writer: the daemon reaches it
through :class:`Store`, whose single worker thread serialises every statement
of the call log (``store.calls``), the outbox (``store.outbox``, see
:mod:`textback.outbox`) and the inbox (``store.inbox``, see
:mod:`textback.inbox_store`). Other processes work beside the running daemon: the
CLI through :func:`open_store` (opt-outs, the outbox listing), an admin's
sqlite3 shell or :func:`open_reader` for reading. WAL and a busy timeout make
that safe.

Call-log times are ISO-8601 UTC text with milliseconds, so the file reads
well without textback; verdicts carry Unix seconds and conversion happens only
here. Outbox times stay Unix seconds, because SQL compares them.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self, TypeVar, cast

from textback.core.keywords import Intent
from textback.core.policy import History, PolicySettings
from textback.core.verdict import CallVerdict, Reason, Verdict
from textback.errors import StoreError
from textback.inbox_store import ConversationSummary, Dashboard, Inbox, Thread, migrate_3_inbox
from textback.outbox import Outbox, OutboxRow, migrate_2_outbox
from textback.sqltx import as_store_error, immediate

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
_MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (
    _migrate_1_calls,
    migrate_2_outbox,
    migrate_3_inbox,
)

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


class Database:
    """One open, migrated textback file: the connection, usable from one thread only."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._closed = False
        self._path = path

    @property
    def path(self) -> Path:
        return self._path

    @classmethod
    def open(cls, path: Path) -> Database:
        """Open (creating if needed) and migrate the database at ``path``.

        Raises:
            StoreError: the directory is missing, the file cannot be opened, is
                not a SQLite database, or was written by a newer textback.
        """
        if not path.parent.is_dir():
            raise StoreError(
                f"cannot open the database {path}: directory {path.parent} does not exist; "
                f"create it (mkdir -p {path.parent}) or, under systemd, set "
                f"StateDirectory=textback in the unit"
            )
        try:
            _create_private(path)
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        try:
            _configure(conn, path)
            _migrate(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    @property
    def closed(self) -> bool:
        return self._closed

    def live(self) -> sqlite3.Connection:
        """The connection; StoreError once closed."""
        if self._closed:
            raise StoreError(f"the database {self._path} is closed")
        return self._conn

    def close(self) -> None:
        """Close the connection. Idempotent."""
        if not self._closed:
            self._closed = True
            self._conn.close()


# A verdict to log, with its caller's and DID's E.164 (None when not valid).
LoggedCall = tuple[CallVerdict, str | None, str | None]


class CallLog:
    """The calls table on one connection; use it from the connection's thread only.

    Closing it closes its database (shared with the outbox under a store).
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    def open(cls, path: Path) -> CallLog:
        """Open the database at ``path`` for the call log alone (see :meth:`Database.open`)."""
        return cls(Database.open(path))

    @property
    def path(self) -> Path:
        return self._db.path

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
        conn = self._db.live()
        try:
            cursor = conn.execute(_INSERT, row)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to the call log in {self.path}: {exc}") from exc
        return cursor.rowcount == 1

    def record_all(self, calls: Sequence[LoggedCall], now: float) -> list[bool]:
        """:meth:`record` for several verdicts ``(verdict, caller_e164, did_e164)`` in one
        transaction (one commit for a burst of calls); all are stored or none.
        """
        with as_store_error("write to", "the call log", self.path), immediate(self._db.live()):
            return [
                self.record(verdict, caller_e164=caller, did_e164=did, now=now)
                for verdict, caller, did in calls
            ]

    def recent(self, limit: int = 50) -> list[dict[str, object]]:
        """The newest ``limit`` calls, newest first, with 0/1 columns as booleans."""
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        return self._rows("SELECT * FROM calls ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))

    def unqueued_missed(self, since: float) -> list[CallVerdict]:
        """Missed calls that ended at or after ``since`` but have no outbox row, oldest first.

        The daemon logs a call and then queues its text in two steps; a crash
        between them leaves exactly these. Every missed call gets an outbox row
        (a suppressed one when policy says no), so an absent row means the
        decision was never made.
        """
        rows = self._rows(
            """
            SELECT * FROM calls AS c
            WHERE c.verdict = 'missed' AND c.ended_at >= ?
              AND NOT EXISTS (
                  SELECT 1 FROM outbox AS o WHERE o.pbx = c.pbx AND o.call_id = c.call_id
              )
            ORDER BY c.ended_at, c.id
            """,
            (iso_utc(since),),
        )
        return [_verdict_of(row) for row in rows]

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[dict[str, object]]:
        """The calls rows ``sql`` selects, as :func:`_row_dict` makes them."""
        conn = self._db.live()
        try:
            cursor = conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the call log in {self.path}: {exc}") from exc
        return [_row_dict(names, row) for row in rows]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _unix(iso: object) -> float:
    return datetime.fromisoformat(str(iso)).timestamp()


def _verdict_of(row: dict[str, object]) -> CallVerdict:
    """Rebuild the verdict a calls row was written from (the inverse of :meth:`CallLog.record`)."""
    answered = row["answered_at"]
    voicemail = row["voicemail_left"]
    return CallVerdict(
        call_id=str(row["call_id"]),
        pbx=str(row["pbx"]),
        trunk=None if row["trunk"] is None else str(row["trunk"]),
        verdict=Verdict(str(row["verdict"])),
        reason=Reason(str(row["reason"])),
        caller_raw=str(row["caller_raw"]),
        caller_name=str(row["caller_name"]),
        anonymous=bool(row["anonymous"]),
        did=str(row["did"]),
        started_at=_unix(row["started_at"]),
        ended_at=_unix(row["ended_at"]),
        answered_at=None if answered is None else _unix(answered),
        ring_seconds=cast(float, row["ring_seconds"]),
        voicemail_left=None if voicemail is None else bool(voicemail),
        note=str(row["note"] or ""),
    )


def _row_dict(names: list[str], row: tuple[object, ...]) -> dict[str, object]:
    out: dict[str, object] = dict(zip(names, row, strict=True))
    out["anonymous"] = bool(out["anonymous"])
    if out["voicemail_left"] is not None:
        out["voicemail_left"] = bool(out["voicemail_left"])
    return out


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    try:
        # The first statement that reads the header: a non-database fails here.
        (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        # FULL: a commit is on disk before the call returns. The outbox marks a
        # text dispatched just before sending it; after a power cut that mark
        # must still be there, or the text could go out twice.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {path}: {exc}") from exc
    if str(mode).lower() != "wal":
        # Readers beside the running daemon depend on WAL (network filesystems refuse it).
        raise StoreError(
            f"the database {path} cannot use WAL journaling (got {mode!r}); "
            f"put it on a local filesystem"
        )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    try:
        # IMMEDIATE takes the write lock first, so two starting processes cannot both migrate.
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the database {path} has schema version {version}, but this textback "
                    f"only knows up to {SCHEMA_VERSION}: it was written by a newer textback; "
                    f"upgrade textback or use another file"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[number - 1](conn)
            # PRAGMA takes no parameters; number is an int from our own table.
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION:d}")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot migrate the database {path}: {exc}") from exc


class SyncStore:
    """The database with its call log, outbox and inbox, for one thread (CLI, demo, tests)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.calls = CallLog(db)
        self.outbox = Outbox(db)
        self.inbox = Inbox(db)

    @classmethod
    def open(cls, path: Path) -> SyncStore:
        """Open (creating if needed) and migrate; see :meth:`Database.open`."""
        return cls(Database.open(path))

    @property
    def path(self) -> Path:
        return self._db.path

    def write(self, job: Callable[[SyncStore], _T]) -> _T:
        """Run ``job`` in one write transaction: every write it makes, or none, one commit."""
        with as_store_error("write to", "the database", self.path), immediate(self._db.live()):
            return job(self)

    def writable(self) -> bool:
        """Take the write lock and let it go: True when a write could start now."""
        conn = self._db.live()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True

    def close(self) -> None:
        """Idempotent."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_store(path: Path) -> SyncStore:
    """The database for a process beside the daemon that also writes (opt-outs).

    Its writes wait up to the busy timeout for the daemon's, never fail at once.
    """
    return SyncStore.open(path)


class _Worker:
    """The one thread that owns the connection: every job runs there, in submission order.

    A cancelled ``await`` does not stop a job already handed over; every job
    is either idempotent or a guarded state transition, so that is harmless.
    """

    def __init__(self, store: SyncStore, executor: ThreadPoolExecutor) -> None:
        self.store = store
        self._executor = executor
        self._closed = False

    @classmethod
    async def start(cls, path: Path) -> _Worker:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="textback-store")
        try:
            store = await asyncio.get_running_loop().run_in_executor(executor, SyncStore.open, path)
        except BaseException:
            executor.shutdown(wait=True)
            raise
        return cls(store, executor)

    async def run(self, job: Callable[[], _T]) -> _T:
        if self._closed:
            raise StoreError(f"the database {self.store.path} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def aclose(self) -> None:
        """Close the connection on its own thread, then stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.store.close)
        finally:
            # The queue is empty now, so this only joins an idle thread.
            self._executor.shutdown(wait=True)


class AsyncCallLog:
    """The daemon's call log, on the store's worker thread.

    Closing it closes the store it belongs to.
    """

    def __init__(self, worker: _Worker) -> None:
        self._worker = worker
        self._log = worker.store.calls

    @classmethod
    async def open(cls, path: Path) -> AsyncCallLog:
        """Open a :class:`Store` and use only its call log."""
        return (await Store.open(path)).calls

    @property
    def path(self) -> Path:
        return self._log.path

    async def record(
        self, verdict: CallVerdict, *, caller_e164: str | None, did_e164: str | None, now: float
    ) -> bool:
        """See :meth:`CallLog.record`."""
        return await self._worker.run(
            functools.partial(
                self._log.record, verdict, caller_e164=caller_e164, did_e164=did_e164, now=now
            )
        )

    async def recent(self, limit: int = 50) -> list[dict[str, object]]:
        """See :meth:`CallLog.recent`."""
        return await self._worker.run(functools.partial(self._log.recent, limit))

    async def unqueued_missed(self, since: float) -> list[CallVerdict]:
        """See :meth:`CallLog.unqueued_missed`."""
        return await self._worker.run(functools.partial(self._log.unqueued_missed, since))

    async def aclose(self) -> None:
        await self._worker.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncOutbox:
    """The daemon's outbox, on the store's worker thread: each method as :class:`Outbox`'s."""

    def __init__(self, worker: _Worker) -> None:
        self._worker = worker
        self._outbox = worker.store.outbox

    async def accept(
        self,
        *,
        pbx: str,
        call_id: str,
        to_e164: str | None,
        body: str,
        template: str | None,
        gateway: str,
        state: Literal["pending", "suppressed"],
        reason: str,
        created_at: float,
        send_at: float,
        expires_at: float,
        now: float,
    ) -> int | None:
        return await self._worker.run(
            functools.partial(
                self._outbox.accept,
                pbx=pbx,
                call_id=call_id,
                to_e164=to_e164,
                body=body,
                template=template,
                gateway=gateway,
                state=state,
                reason=reason,
                created_at=created_at,
                send_at=send_at,
                expires_at=expires_at,
                now=now,
            )
        )

    async def claim_due(self, now: float, limit: int = 10) -> list[OutboxRow]:
        return await self._worker.run(functools.partial(self._outbox.claim_due, now, limit))

    async def claim_to_send(
        self, now: float, most: int, caps: PolicySettings
    ) -> tuple[list[OutboxRow], str | None]:
        return await self._worker.run(
            functools.partial(self._outbox.claim_to_send, now, most, caps)
        )

    async def mark_dispatched(self, row_id: int, now: float) -> bool:
        return await self._worker.run(functools.partial(self._outbox.mark_dispatched, row_id, now))

    async def mark_sent(self, row_id: int, provider_id: str, now: float) -> bool:
        return await self._worker.run(
            functools.partial(self._outbox.mark_sent, row_id, provider_id, now)
        )

    async def mark_sent_all(self, sent: Sequence[tuple[int, str]], now: float) -> set[int]:
        return await self._worker.run(functools.partial(self._outbox.mark_sent_all, sent, now))

    async def mark_retry(
        self, row_id: int, *, next_attempt_at: float, error: str, kind: str, now: float
    ) -> bool:
        return await self._worker.run(
            functools.partial(
                self._outbox.mark_retry,
                row_id,
                next_attempt_at=next_attempt_at,
                error=error,
                kind=kind,
                now=now,
            )
        )

    async def mark_failed(self, row_id: int, *, kind: str, error: str, now: float) -> bool:
        return await self._worker.run(
            functools.partial(self._outbox.mark_failed, row_id, kind=kind, error=error, now=now)
        )

    async def cancel_pending(self, to_e164: str, reason: str, now: float) -> list[int]:
        return await self._worker.run(
            functools.partial(self._outbox.cancel_pending, to_e164, reason, now)
        )

    async def expire(self, now: float) -> list[int]:
        return await self._worker.run(functools.partial(self._outbox.expire, now))

    async def recover(
        self, now: float, *, idempotent: bool, gateway: str | None = None
    ) -> tuple[list[int], list[int]]:
        return await self._worker.run(
            functools.partial(self._outbox.recover, now, idempotent=idempotent, gateway=gateway)
        )

    async def next_due(self) -> float | None:
        return await self._worker.run(self._outbox.next_due)

    async def pending_count(self) -> int:
        """Texts waiting to be sent (the outbox depth metric); the state index answers it."""
        db = self._worker.store._db

        def count() -> int:
            with as_store_error("read", "the outbox", db.path):
                sql = "SELECT count(*) FROM outbox WHERE state = 'pending'"
                return int(db.live().execute(sql).fetchone()[0])

        return await self._worker.run(count)

    async def history(self, to_e164: str, now: float) -> History:
        return await self._worker.run(functools.partial(self._outbox.history, to_e164, now))

    async def add_optout(self, e164: str, source: str, now: float) -> bool:
        return await self._worker.run(functools.partial(self._outbox.add_optout, e164, source, now))

    async def remove_optout(self, e164: str) -> bool:
        return await self._worker.run(functools.partial(self._outbox.remove_optout, e164))

    async def is_opted_out(self, e164: str) -> bool:
        return await self._worker.run(functools.partial(self._outbox.is_opted_out, e164))

    async def list_optouts(self) -> list[tuple[str, str, float]]:
        return await self._worker.run(self._outbox.list_optouts)

    async def mark_not_sms_capable(self, e164: str, code: str, now: float) -> bool:
        return await self._worker.run(
            functools.partial(self._outbox.mark_not_sms_capable, e164, code, now)
        )

    async def recent(self, limit: int = 50) -> list[OutboxRow]:
        return await self._worker.run(functools.partial(self._outbox.recent, limit))

    async def get(self, row_id: int) -> OutboxRow | None:
        return await self._worker.run(functools.partial(self._outbox.get, row_id))


class AsyncInbox:
    """The daemon's inbox, on the store's worker thread: each method as :class:`Inbox`'s."""

    def __init__(self, worker: _Worker) -> None:
        self._worker = worker
        self._inbox = worker.store.inbox

    async def add_inbound(
        self,
        *,
        gateway: str,
        provider_id: str,
        sender: str,
        recipient: str,
        body: str,
        intent: Intent | str,
        urgent: bool,
        now: float,
    ) -> int | None:
        return await self._worker.run(
            functools.partial(
                self._inbox.add_inbound,
                gateway=gateway,
                provider_id=provider_id,
                sender=sender,
                recipient=recipient,
                body=body,
                intent=intent,
                urgent=urgent,
                now=now,
            )
        )

    async def add_reply(self, *, to: str, body: str, outbox_id: int, user: str, now: float) -> int:
        return await self._worker.run(
            functools.partial(
                self._inbox.add_reply, to=to, body=body, outbox_id=outbox_id, user=user, now=now
            )
        )

    async def record_receipt(
        self,
        *,
        provider_id: str,
        delivered: bool | None,
        status: str,
        error_code: str,
        kind: str | None,
        now: float,
    ) -> int | None:
        return await self._worker.run(
            functools.partial(
                self._inbox.record_receipt,
                provider_id=provider_id,
                delivered=delivered,
                status=status,
                error_code=error_code,
                kind=kind,
                now=now,
            )
        )

    async def mark_handled(self, e164: str, user: str, now: float) -> bool:
        return await self._worker.run(functools.partial(self._inbox.mark_handled, e164, user, now))

    async def mark_seen(self, e164: str, now: float) -> None:
        await self._worker.run(functools.partial(self._inbox.mark_seen, e164, now))

    async def conversations(self, *, limit: int = 50) -> list[ConversationSummary]:
        return await self._worker.run(functools.partial(self._inbox.conversations, limit=limit))

    async def thread(self, e164: str) -> Thread | None:
        return await self._worker.run(functools.partial(self._inbox.thread, e164))

    async def dashboard(self, now: float, tz: str) -> Dashboard:
        return await self._worker.run(functools.partial(self._inbox.dashboard, now, tz))


class Store:
    """The daemon's database: call log, outbox and inbox on one connection and one thread."""

    def __init__(self, worker: _Worker) -> None:
        self._worker = worker
        self.calls = AsyncCallLog(worker)
        self.outbox = AsyncOutbox(worker)
        self.inbox = AsyncInbox(worker)

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open and migrate on a fresh worker thread (see :meth:`Database.open`).

        A failed open leaves no thread behind.
        """
        return cls(await _Worker.start(path))

    @property
    def path(self) -> Path:
        return self._worker.store.path

    async def write(self, job: Callable[[SyncStore], _T]) -> _T:
        """Run ``job`` on the database thread in one write transaction (see
        :meth:`SyncStore.write`): a burst of calls is logged and queued in one commit.
        """
        return await self._worker.run(functools.partial(self._worker.store.write, job))

    async def writable(self) -> bool:
        """Whether a write transaction can start now (for /healthz); never raises."""

        try:
            return await self._worker.run(self._worker.store.writable)
        except (sqlite3.Error, StoreError):
            return False

    async def aclose(self) -> None:
        """Close the connection, then stop the thread. Idempotent."""
        await self._worker.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def open_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection (rows as sqlite3.Row) for a process beside the daemon.

    Raises:
        StoreError: the file is missing, not a database, or not a textback
            database this textback can read.
    """
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {path} for reading: {exc}") from exc
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot read the database {path}: {exc}") from exc
    if not 1 <= version <= SCHEMA_VERSION:
        conn.close()
        raise StoreError(
            f"{path} is not a textback database this textback can read (schema version "
            f"{version}, known: 1 to {SCHEMA_VERSION})"
        )
    conn.row_factory = sqlite3.Row
    return conn
