from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

import textback
from textback.core.verdict import CallVerdict, Reason, Verdict
from textback.errors import StoreError
from textback.store import (
    SCHEMA_VERSION,
    AsyncCallLog,
    CallLog,
    Store,
    iso_utc,
    open_reader,
    open_store,
)

# The schema as textback 0.1 shipped it (schema version 1), frozen here so that a
# migration is always tested against the files that exist in the field.
V1_SCHEMA = """
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
);
CREATE INDEX calls_caller_started ON calls (caller_e164, started_at);
CREATE INDEX calls_started ON calls (started_at);
PRAGMA user_version=1;
"""
V1_ROWS = [
    (
        "office", "1764274841.12", "carrier-a", "missed", "abandoned", "+14155550101",
        "+14155550101", "Alice", 0, "+12125550100", "+12125550100",
        "2026-11-27T20:20:41.871Z", None, "2026-11-27T20:20:54.371Z", 12.5, None, "",
        "2026-11-27T20:20:54.871Z",
    ),
    (
        "office", "1764274900.13", None, "answered", "answered", "101", None, "", 1, "700",
        None, "2026-11-27T20:21:40.000Z", "2026-11-27T20:21:44.000Z",
        "2026-11-27T20:22:40.000Z", 4.0, 1, "", "2026-11-27T20:22:41.000Z",
    ),
]  # fmt: skip

STARTED = datetime(2026, 11, 27, 20, 20, 41, 871000, tzinfo=UTC).timestamp()
REPO_ROOT = Path(textback.__file__).resolve().parents[1]


def make_verdict(**changes: object) -> CallVerdict:
    base = CallVerdict(
        call_id="1764274841.12",
        pbx="office",
        trunk="carrier-a",
        verdict=Verdict.MISSED,
        reason=Reason.ABANDONED,
        caller_raw="+14155550101",
        caller_name="Alice",
        anonymous=False,
        did="+12125550100",
        started_at=STARTED,
        ended_at=STARTED + 12.5,
        ring_seconds=12.5,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def record(log: CallLog, verdict: CallVerdict, now: float = STARTED + 13) -> bool:
    return log.record(verdict, caller_e164="+14155550101", did_e164="+12125550100", now=now)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "textback.sqlite3"


@pytest.fixture
def call_log(db_path: Path) -> Iterator[CallLog]:
    log = CallLog.open(db_path)
    yield log
    log.close()


def count_rows(path: Path) -> int:
    conn = open_reader(path)
    try:
        (count,) = conn.execute("SELECT count(*) FROM calls").fetchone()
        return int(count)
    finally:
        conn.close()


def make_v1_file(path: Path) -> list[tuple[object, ...]]:
    """A call log written by textback 0.1, with its rows as SELECT * returns them."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(V1_SCHEMA)
        conn.executemany(f"INSERT INTO calls VALUES (NULL{', ?' * 18})", V1_ROWS)
        return conn.execute("SELECT * FROM calls ORDER BY id").fetchall()
    finally:
        conn.close()


def raw_query(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("textback-store")]


class TestOpen:
    def test_creates_and_migrates_a_new_file(self, call_log: CallLog, db_path: Path) -> None:
        """A new file gets the latest schema version, WAL journaling and every table."""
        conn = sqlite3.connect(db_path)
        try:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
        assert {
            "calls",
            "calls_caller_started",
            "calls_started",
            "outbox",
            "outbox_state_due",
            "outbox_to_created",
            "optouts",
            "not_sms_capable",
        } <= tables

    def test_new_file_is_private(self, call_log: CallLog, db_path: Path) -> None:
        """The file holds callers' numbers, so group and others get no access."""
        assert db_path.stat().st_mode & 0o077 == 0

    def test_reopen_keeps_rows_and_version(self, db_path: Path) -> None:
        """Opening an already-migrated file migrates nothing and loses nothing."""
        with CallLog.open(db_path) as log:
            assert record(log, make_verdict())
        with CallLog.open(db_path) as log:
            assert len(log.recent()) == 1
            conn = open_reader(db_path)
            try:
                assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            finally:
                conn.close()

    def test_missing_directory_names_path_and_fix(self, tmp_path: Path) -> None:
        """A missing parent directory is not created; the error names it and StateDirectory=."""
        path = tmp_path / "nope" / "textback.sqlite3"
        with pytest.raises(StoreError) as info:
            CallLog.open(path)
        assert str(path.parent) in str(info.value)
        assert "StateDirectory=" in str(info.value)
        assert not path.parent.exists()

    def test_not_a_database_is_store_error(self, db_path: Path) -> None:
        """A file that is not SQLite gives a StoreError naming the file."""
        db_path.write_bytes(b"this is not a database\n" * 200)
        with pytest.raises(StoreError, match="not a database") as info:
            CallLog.open(db_path)
        assert str(db_path) in str(info.value)

    def test_directory_in_place_of_file_is_store_error(self, db_path: Path) -> None:
        """A path that cannot be opened as a file gives a StoreError naming it."""
        db_path.mkdir()
        with pytest.raises(StoreError) as info:
            CallLog.open(db_path)
        assert str(db_path) in str(info.value)

    def test_newer_schema_is_refused(self, db_path: Path) -> None:
        """A file written by a newer textback is left alone rather than misread."""
        CallLog.open(db_path).close()
        conn = sqlite3.connect(db_path)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        conn.close()
        with pytest.raises(StoreError, match="newer textback"):
            CallLog.open(db_path)
        raw = sqlite3.connect(db_path)
        try:
            assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        finally:
            raw.close()


class TestMigration:
    def test_v1_file_keeps_its_calls_and_gains_the_outbox(self, db_path: Path) -> None:
        """A 0.1 call log migrates to version 2 with every call row unchanged."""
        before = make_v1_file(db_path)
        with open_store(db_path) as store:
            assert not store.calls.record(
                make_verdict(), caller_e164="+14155550101", did_e164=None, now=STARTED
            )
            assert [r["call_id"] for r in store.calls.recent()] == [
                "1764274900.13",
                "1764274841.12",
            ]
            assert store.outbox.recent() == []
            assert store.outbox.add_optout("+14155550101", "manual", STARTED)
        assert raw_query(db_path, "SELECT * FROM calls ORDER BY id") == before
        assert raw_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert raw_query(db_path, "SELECT e164 FROM optouts") == [("+14155550101",)]

    def test_failed_migration_changes_nothing(self, db_path: Path) -> None:
        """A migration that fails half-way is rolled back: still version 1, rows intact."""
        before = make_v1_file(db_path)
        raw = sqlite3.connect(db_path)
        raw.execute("CREATE TABLE optouts (whatever)")  # an admin's table in our way
        raw.commit()
        raw.close()
        with pytest.raises(StoreError, match="cannot migrate") as info:
            open_store(db_path)
        assert str(db_path) in str(info.value)
        assert raw_query(db_path, "PRAGMA user_version") == [(1,)]
        assert raw_query(db_path, "SELECT * FROM calls ORDER BY id") == before
        tables = {r[0] for r in raw_query(db_path, "SELECT name FROM sqlite_master")}
        assert "outbox" not in tables

    def test_two_openers_migrate_once(self, db_path: Path) -> None:
        """Two processes starting on a v1 file at once both open it; the migration runs once."""
        before = make_v1_file(db_path)
        script = (
            "import sys\n"
            "from pathlib import Path\n"
            "from textback.store import open_store\n"
            "open_store(Path(sys.argv[1])).close()\n"
        )
        children = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(db_path)],
                cwd=REPO_ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        for child in children:
            _, err = child.communicate(timeout=30)
            assert child.returncode == 0, err
        assert raw_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert raw_query(db_path, "SELECT * FROM calls ORDER BY id") == before

    def test_reader_reads_v1_and_v2(self, db_path: Path) -> None:
        """open_reader accepts every schema version this textback knows."""
        make_v1_file(db_path)
        for _ in range(2):
            conn = open_reader(db_path)
            try:
                assert conn.execute("SELECT count(*) FROM calls").fetchone()[0] == 2
            finally:
                conn.close()
            open_store(db_path).close()


class TestRecord:
    def test_row_holds_the_verdict(self, call_log: CallLog) -> None:
        """Every verdict field lands in its column; times become ISO-8601 UTC with ms."""
        verdict = make_verdict(
            answered_at=None, voicemail_left=None, note="no DialEnd seen", verdict=Verdict.UNKNOWN
        )
        assert call_log.record(
            verdict, caller_e164="+14155550101", did_e164="+12125550100", now=STARTED + 13
        )
        [row] = call_log.recent()
        assert {k: v for k, v in row.items() if k != "id"} == {
            "pbx": "office",
            "call_id": "1764274841.12",
            "trunk": "carrier-a",
            "verdict": "unknown",
            "reason": "abandoned",
            "caller_raw": "+14155550101",
            "caller_e164": "+14155550101",
            "caller_name": "Alice",
            "anonymous": False,
            "did": "+12125550100",
            "did_e164": "+12125550100",
            "started_at": "2026-11-27T20:20:41.871Z",
            "answered_at": None,
            "ended_at": "2026-11-27T20:20:54.371Z",
            "ring_seconds": 12.5,
            "voicemail_left": None,
            "note": "no DialEnd seen",
            "recorded_at": "2026-11-27T20:20:54.871Z",
        }

    def test_booleans_and_answer_time(self, call_log: CallLog) -> None:
        """anonymous/voicemail_left come back as booleans, answered_at as ISO text."""
        verdict = make_verdict(
            verdict=Verdict.ANSWERED,
            reason=Reason.ANSWERED,
            anonymous=True,
            answered_at=STARTED + 4,
            voicemail_left=False,
        )
        assert call_log.record(verdict, caller_e164=None, did_e164=None, now=STARTED + 60)
        [row] = call_log.recent()
        assert (
            row["anonymous"],
            row["voicemail_left"],
            row["answered_at"],
            row["caller_e164"],
        ) == (True, False, "2026-11-27T20:20:45.871Z", None)

    def test_same_call_twice_is_one_row(self, call_log: CallLog, db_path: Path) -> None:
        """A replayed verdict (same pbx and call_id) writes nothing and reports False."""
        assert record(call_log, make_verdict())
        assert not record(call_log, make_verdict(reason=Reason.BUSY), now=STARTED + 99)
        assert count_rows(db_path) == 1
        assert call_log.recent()[0]["reason"] == "abandoned"

    def test_same_call_id_on_another_pbx_is_another_call(
        self, call_log: CallLog, db_path: Path
    ) -> None:
        """Uniqueness is per PBX: two PBXes may reuse a call id."""
        assert record(call_log, make_verdict(pbx="office"))
        assert record(call_log, make_verdict(pbx="warehouse"))
        assert count_rows(db_path) == 2

    def test_ignored_verdict_refused(self, call_log: CallLog, db_path: Path) -> None:
        """Internal and outbound calls are not logged."""
        with pytest.raises(ValueError, match="ignored"):
            record(call_log, make_verdict(verdict=Verdict.IGNORED, reason=Reason.INTERNAL))
        assert count_rows(db_path) == 0

    def test_a_burst_is_logged_in_one_go(self, call_log: CallLog, db_path: Path) -> None:
        """record_all stores each new call and reports a replayed one, like record."""
        assert record(call_log, make_verdict(call_id="c1"))
        calls = [
            (make_verdict(call_id="c1"), "+14155550101", None),
            (make_verdict(call_id="c2"), "+14155550102", "+12125550100"),
        ]
        assert call_log.record_all(calls, now=STARTED + 20) == [False, True]
        assert count_rows(db_path) == 2
        assert call_log.recent()[0]["caller_e164"] == "+14155550102"

    def test_a_burst_is_all_or_nothing(self, call_log: CallLog, db_path: Path) -> None:
        """One refused verdict leaves none of the burst behind (it is retried whole)."""
        ignored = make_verdict(call_id="c2", verdict=Verdict.IGNORED, reason=Reason.INTERNAL)
        calls = [(make_verdict(call_id="c1"), None, None), (ignored, None, None)]
        with pytest.raises(ValueError, match="ignored"):
            call_log.record_all(calls, now=STARTED + 20)
        assert count_rows(db_path) == 0

    def test_schema_rejects_ignored_too(self, call_log: CallLog, db_path: Path) -> None:
        """The CHECK constraint guards the verdict column against other writers."""
        conn = sqlite3.connect(db_path)
        try:
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                conn.execute(
                    "INSERT INTO calls (pbx, call_id, verdict, reason, caller_raw, caller_name,"
                    " anonymous, did, started_at, ended_at, ring_seconds, note, recorded_at)"
                    " VALUES ('p', 'c', 'ignored', 'internal', '101', '', 0, '102', 't', 't',"
                    " 0, '', 't')"
                )
        finally:
            conn.close()

    def test_closed_log_refuses_writes(self, db_path: Path) -> None:
        """Using a closed log is a StoreError, and close() may be called twice."""
        log = CallLog.open(db_path)
        log.close()
        log.close()
        with pytest.raises(StoreError, match="closed"):
            record(log, make_verdict())


class TestRecent:
    def test_newest_first_with_limit(self, call_log: CallLog) -> None:
        """recent() orders by start time, newest first, and honours the limit."""
        for n in range(5):
            record(
                call_log, make_verdict(call_id=f"c{n}", started_at=STARTED + 100 * ((n * 3) % 5))
            )
        assert [r["call_id"] for r in call_log.recent()] == ["c3", "c1", "c4", "c2", "c0"]
        assert [r["call_id"] for r in call_log.recent(limit=2)] == ["c3", "c1"]
        assert call_log.recent(limit=0) == []

    def test_negative_limit_refused(self, call_log: CallLog) -> None:
        """A negative limit (which SQLite reads as 'no limit') is a ValueError."""
        with pytest.raises(ValueError, match="limit"):
            call_log.recent(limit=-1)


class TestReader:
    def test_reader_thread_sees_committed_rows(self, call_log: CallLog, db_path: Path) -> None:
        """A reader on another thread sees what the open writer has committed."""
        record(call_log, make_verdict(call_id="a"))

        def read_ids() -> list[str]:
            conn = open_reader(db_path)
            try:
                return [r["call_id"] for r in conn.execute("SELECT call_id FROM calls")]
            finally:
                conn.close()

        with ThreadPoolExecutor(max_workers=1) as pool:
            assert pool.submit(read_ids).result(timeout=10) == ["a"]
            record(call_log, make_verdict(call_id="b"))
            assert sorted(pool.submit(read_ids).result(timeout=10)) == ["a", "b"]

    def test_reader_process_sees_committed_rows(self, call_log: CallLog, db_path: Path) -> None:
        """Another process can read the log while the daemon's connection is open."""
        record(call_log, make_verdict(call_id="a"))
        script = (
            "import json, sys\n"
            "from pathlib import Path\n"
            "from textback.store import open_reader\n"
            "conn = open_reader(Path(sys.argv[1]))\n"
            "rows = conn.execute('SELECT call_id, caller_e164 FROM calls').fetchall()\n"
            "print(json.dumps([dict(r) for r in rows]))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, str(db_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            cwd=REPO_ROOT,
        )
        assert json.loads(done.stdout) == [{"call_id": "a", "caller_e164": "+14155550101"}]

    def test_open_read_snapshot_does_not_block_writer(
        self, call_log: CallLog, db_path: Path
    ) -> None:
        """With WAL, a reader mid-transaction neither blocks the writer nor sees a torn state."""
        record(call_log, make_verdict(call_id="a"))
        reader = open_reader(db_path)
        try:
            reader.execute("BEGIN")
            assert reader.execute("SELECT count(*) FROM calls").fetchone()[0] == 1
            assert record(call_log, make_verdict(call_id="b"))
            assert reader.execute("SELECT count(*) FROM calls").fetchone()[0] == 1
            reader.execute("COMMIT")
            assert reader.execute("SELECT count(*) FROM calls").fetchone()[0] == 2
        finally:
            reader.close()

    def test_reader_cannot_write(self, call_log: CallLog, db_path: Path) -> None:
        """The reader connection is read-only."""
        reader = open_reader(db_path)
        try:
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reader.execute("DELETE FROM calls")
        finally:
            reader.close()

    def test_reader_on_missing_file(self, db_path: Path) -> None:
        """Reading a log that does not exist is a StoreError, and creates no file."""
        with pytest.raises(StoreError, match="for reading"):
            open_reader(db_path)
        assert not db_path.exists()

    def test_reader_refuses_foreign_database(self, db_path: Path) -> None:
        """A SQLite file without our schema version is not read as a call log."""
        sqlite3.connect(db_path).close()
        conn = sqlite3.connect(db_path)
        conn.execute("CREATE TABLE other (x)")
        conn.close()
        with pytest.raises(StoreError, match="schema version 0"):
            open_reader(db_path)


class TestIsoUtc:
    @pytest.mark.parametrize(
        ("seconds", "expected"),
        [
            (0.0, "1970-01-01T00:00:00.000Z"),
            (STARTED, "2026-11-27T20:20:41.871Z"),
            (STARTED + 0.0004, "2026-11-27T20:20:41.871Z"),
            (STARTED + 0.0006, "2026-11-27T20:20:41.872Z"),
        ],
    )
    def test_iso_format(self, seconds: float, expected: str) -> None:
        """Unix seconds render as UTC with exactly three fractional digits and a Z."""
        assert expected == iso_utc(seconds)


class TestAsyncCallLog:
    async def test_round_trip(self, db_path: Path) -> None:
        """record() then recent() through the worker thread returns the row."""
        log = await AsyncCallLog.open(db_path)
        try:
            assert await log.record(
                make_verdict(), caller_e164="+14155550101", did_e164=None, now=STARTED + 13
            )
            assert not await log.record(
                make_verdict(), caller_e164="+14155550101", did_e164=None, now=STARTED + 14
            )
            [row] = await log.recent()
            assert (row["call_id"], row["caller_e164"]) == ("1764274841.12", "+14155550101")
        finally:
            await log.aclose()
        assert store_threads() == []

    async def test_concurrent_records_are_serialised(self, db_path: Path) -> None:
        """Many concurrent awaits all run on the connection's own thread and all land."""
        async with await AsyncCallLog.open(db_path) as log:
            results = await asyncio.gather(
                *(
                    log.record(
                        make_verdict(call_id=f"c{n}"), caller_e164=None, did_e164=None, now=STARTED
                    )
                    for n in range(20)
                )
            )
            assert results == [True] * 20
            assert len(await log.recent(limit=100)) == 20

    async def test_ignored_refused(self, db_path: Path) -> None:
        """The ValueError for IGNORED verdicts crosses the thread boundary unchanged."""
        async with await AsyncCallLog.open(db_path) as log:
            with pytest.raises(ValueError, match="ignored"):
                await log.record(
                    make_verdict(verdict=Verdict.IGNORED, reason=Reason.OUTBOUND),
                    caller_e164=None,
                    did_e164=None,
                    now=STARTED,
                )

    async def test_closed_log_refuses_and_aclose_is_idempotent(self, db_path: Path) -> None:
        """After aclose() (twice is fine) every call is a StoreError."""
        log = await AsyncCallLog.open(db_path)
        await log.aclose()
        await log.aclose()
        with pytest.raises(StoreError, match="closed"):
            await log.recent()

    async def test_alias_shares_the_store_thread(self, db_path: Path) -> None:
        """AsyncCallLog.open is a Store's call log: closing it closes the store."""
        log = await AsyncCallLog.open(db_path)
        assert len(store_threads()) == 1
        await log.aclose()
        assert store_threads() == []

    async def test_store_calls_and_outbox_on_one_connection(self, db_path: Path) -> None:
        """A call and its text written through one Store land in the same file."""
        async with await Store.open(db_path) as store:
            assert await store.calls.record(
                make_verdict(), caller_e164="+14155550101", did_e164=None, now=STARTED + 13
            )
            assert await store.outbox.add_optout("+14155550101", "sms", STARTED + 14)
        with open_store(db_path) as again:
            assert len(again.calls.recent()) == 1
            assert again.outbox.is_opted_out("+14155550101")

    async def test_open_failure_leaves_no_thread(self, tmp_path: Path) -> None:
        """A failed open raises StoreError and does not leak its worker thread."""
        with pytest.raises(StoreError, match="StateDirectory="):
            await AsyncCallLog.open(tmp_path / "missing" / "textback.sqlite3")
        assert store_threads() == []
