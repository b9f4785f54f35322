from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from textback.core.keywords import Intent
from textback.core.verdict import CallVerdict, Reason, Verdict
from textback.inbox_store import ConversationSummary, Counts, Dashboard, ThreadItem
from textback.store import SCHEMA_VERSION, Store, SyncStore, open_store

T0 = 1_800_000_000.0  # 2027-01-15, a Friday
ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"
DAVE = "+14155550104"
OUR_DID = "+12125550100"
BODY = "Sorry we missed your call - Acme Plumbing. How can we help? Reply STOP to opt out."

# The schema as textback shipped it with the outbox (schema version 2), frozen here so
# that migration 3 is always tested against the files that exist in the field.
V2_SCHEMA = """
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
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    pbx             TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    to_e164         TEXT,
    body            TEXT NOT NULL,
    template        TEXT,
    gateway         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed',
                                                   'suppressed', 'cancelled', 'expired')),
    reason          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at REAL NOT NULL,
    dispatched_at   REAL,
    provider_id     TEXT,
    last_error      TEXT,
    error_kind      TEXT,
    created_at      REAL NOT NULL,
    expires_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    UNIQUE (pbx, call_id),
    CHECK (to_e164 IS NOT NULL OR state = 'suppressed')
);
CREATE INDEX outbox_state_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_to_created ON outbox (to_e164, created_at);
CREATE INDEX outbox_dispatched ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL;
CREATE TABLE optouts (
    e164       TEXT PRIMARY KEY,
    source     TEXT NOT NULL CHECK (source IN ('sms', 'manual', 'provider')),
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE not_sms_capable (
    e164       TEXT PRIMARY KEY,
    code       TEXT NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
PRAGMA user_version=2;
"""
V2_CALL = (
    "office", "1799999990.1", "carrier-a", "missed", "abandoned", "+14155550101",
    "+14155550101", "Alice", 0, "+12125550100", "+12125550100",
    "2027-01-15T07:59:50.000Z", None, "2027-01-15T08:00:00.000Z", 10.0, None, "",
    "2027-01-15T08:00:00.500Z",
)  # fmt: skip
V2_OUTBOX = (
    "office", "1799999990.1", "+14155550101", BODY, "default", "twilio", "sent", "ok", 1,
    T0, T0 + 1, "SM0001", None, None, T0, T0 + 43200, T0 + 2,
)  # fmt: skip


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "textback.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[SyncStore]:
    with open_store(db_path) as opened:
        yield opened


def raw_query(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def call(
    store: SyncStore,
    call_id: str,
    caller: str,
    started: float,
    *,
    verdict: Verdict = Verdict.MISSED,
    reason: Reason = Reason.ABANDONED,
    name: str = "",
) -> None:
    """Log one inbound call of 10 seconds from ``caller`` to our DID."""
    verdict_ = CallVerdict(
        call_id=call_id,
        pbx="office",
        trunk="carrier-a",
        verdict=verdict,
        reason=reason,
        caller_raw=caller,
        caller_name=name,
        anonymous=False,
        did=OUR_DID,
        started_at=started,
        ended_at=started + 10,
        ring_seconds=10.0,
    )
    assert store.calls.record(verdict_, caller_e164=caller, did_e164=OUR_DID, now=started + 10)


def queue(store: SyncStore, call_id: str, to: str, at: float, *, body: str = BODY) -> int:
    """A pending text for call ``call_id``, due only far in the future."""
    row = store.outbox.accept(
        pbx="office",
        call_id=call_id,
        to_e164=to,
        body=body,
        template="default",
        gateway="twilio",
        state="pending",
        reason="ok",
        created_at=at,
        send_at=at + 10**6,
        expires_at=at + 2 * 10**6,
        now=at,
    )
    assert row is not None
    return row


def send(
    store: SyncStore, call_id: str, to: str, at: float, provider_id: str, *, body: str = BODY
) -> int:
    """A text for call ``call_id`` that went out at ``at`` with ``provider_id``."""
    row = store.outbox.accept(
        pbx="office",
        call_id=call_id,
        to_e164=to,
        body=body,
        template="default",
        gateway="twilio",
        state="pending",
        reason="ok",
        created_at=at,
        send_at=at,
        expires_at=at + 43200,
        now=at,
    )
    assert row is not None
    assert [r.id for r in store.outbox.claim_due(at)] == [row]
    assert store.outbox.mark_dispatched(row, at)
    assert store.outbox.mark_sent(row, provider_id, at)
    return row


def reply(
    store: SyncStore,
    sender: str,
    at: float,
    body: str = "Can you come today?",
    *,
    provider_id: str | None = None,
    intent: Intent = Intent.MESSAGE,
    urgent: bool = False,
) -> int:
    row = store.inbox.add_inbound(
        gateway="twilio",
        provider_id=provider_id or f"SMin-{sender}-{at}",
        sender=sender,
        recipient=OUR_DID,
        body=body,
        intent=intent,
        urgent=urgent,
        now=at,
    )
    assert row is not None
    return row


def answer(store: SyncStore, to: str, at: float, body: str, *, user: str = "alice") -> int:
    """Staff's answer from the inbox, sent through the outbox as its own row."""
    outbox_id = send(store, f"inbox-{to}-{at}", to, at, f"SMout-{at}", body=body)
    return store.inbox.add_reply(to=to, body=body, outbox_id=outbox_id, user=user, now=at)


def summary_of(store: SyncStore, e164: str) -> ConversationSummary:
    [found] = [s for s in store.inbox.conversations() if s.e164 == e164]
    return found


class TestMigration:
    def make_v2_file(self, path: Path) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(V2_SCHEMA)
            conn.execute(f"INSERT INTO calls VALUES (NULL{', ?' * 18})", V2_CALL)
            conn.execute(f"INSERT INTO outbox VALUES (NULL{', ?' * 17})", V2_OUTBOX)
            conn.execute("INSERT INTO optouts VALUES (?, 'manual', ?)", (BOB, T0))
        finally:
            conn.close()

    def test_v2_file_keeps_its_rows_and_gains_the_inbox(self, db_path: Path) -> None:
        """A v2 file migrates to 3: calls, outbox and opt-outs unchanged, delivery columns NULL."""
        self.make_v2_file(db_path)
        calls = raw_query(db_path, "SELECT * FROM calls")
        outbox = raw_query(db_path, "SELECT * FROM outbox")
        optouts = raw_query(db_path, "SELECT * FROM optouts")
        open_store(db_path).close()
        assert raw_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert SCHEMA_VERSION == 3
        assert raw_query(db_path, "SELECT * FROM calls") == calls
        migrated = raw_query(db_path, "SELECT * FROM outbox")
        assert [row[:-3] for row in migrated] == outbox
        assert [row[-3:] for row in migrated] == [(None, None, None)]
        assert raw_query(db_path, "SELECT * FROM optouts") == optouts
        tables = {r[0] for r in raw_query(db_path, "SELECT name FROM sqlite_master")}
        assert {"messages", "threads", "messages_e164_created", "outbox_provider"} <= tables

    def test_v2_rows_work_with_the_inbox(self, db_path: Path) -> None:
        """A text sent before the upgrade takes its receipt and shows in the inbox."""
        self.make_v2_file(db_path)
        with open_store(db_path) as store:
            row = store.inbox.record_receipt(
                provider_id="SM0001",
                delivered=True,
                status="delivered",
                error_code="",
                kind=None,
                now=T0 + 5,
            )
            assert row == 1
            [summary] = store.inbox.conversations()
        assert (
            summary.e164,
            summary.caller_name,
            summary.last_text_state,
        ) == (ALICE, "Alice", "delivered")


class TestInbound:
    def test_duplicate_provider_id_is_stored_once(self, store: SyncStore, db_path: Path) -> None:
        """A provider retrying a callback adds nothing; the first id comes back None after."""
        first = reply(store, ALICE, T0, provider_id="SM1")
        again = store.inbox.add_inbound(
            gateway="twilio",
            provider_id="SM1",
            sender=ALICE,
            recipient=OUR_DID,
            body="Can you come today?",
            intent=Intent.MESSAGE,
            urgent=False,
            now=T0 + 30,
        )
        assert first > 0
        assert again is None
        assert raw_query(db_path, "SELECT count(*) FROM messages") == [(1,)]

    def test_duplicate_after_restart_is_stored_once(self, db_path: Path) -> None:
        """Deduplication holds across a restart of the daemon."""
        with open_store(db_path) as store:
            reply(store, ALICE, T0, provider_id="SM1")
        with open_store(db_path) as store:
            assert (
                store.inbox.add_inbound(
                    gateway="twilio",
                    provider_id="SM1",
                    sender=ALICE,
                    recipient=OUR_DID,
                    body="x",
                    intent=Intent.MESSAGE,
                    urgent=False,
                    now=T0 + 60,
                )
                is None
            )

    def test_same_id_from_another_gateway_is_another_message(self, store: SyncStore) -> None:
        """Message ids are only unique per provider."""
        reply(store, ALICE, T0, provider_id="42")
        other = store.inbox.add_inbound(
            gateway="voipms",
            provider_id="42",
            sender=BOB,
            recipient=OUR_DID,
            body="hi",
            intent=Intent.MESSAGE,
            urgent=False,
            now=T0 + 1,
        )
        assert other is not None

    def test_missing_provider_id_is_never_a_duplicate(self, store: SyncStore) -> None:
        """A gateway that gives no message id cannot be deduplicated, so nothing is dropped."""
        ids = [
            store.inbox.add_inbound(
                gateway="modem",
                provider_id="",
                sender=ALICE,
                recipient=OUR_DID,
                body="hi",
                intent=Intent.MESSAGE,
                urgent=False,
                now=T0 + n,
            )
            for n in range(2)
        ]
        assert None not in ids
        assert len(set(ids)) == 2

    def test_intent_and_urgency_are_stored(self, store: SyncStore, db_path: Path) -> None:
        """The classified intent and urgency are kept with the message."""
        reply(store, ALICE, T0, "STOP", intent=Intent.STOP)
        reply(store, BOB, T0, "URGENT flood", urgent=True)
        assert raw_query(
            db_path, "SELECT e164, did, body, intent, urgent FROM messages ORDER BY id"
        ) == [
            (ALICE, OUR_DID, "STOP", "stop", 0),
            (BOB, OUR_DID, "URGENT flood", "message", 1),
        ]

    def test_bad_input_is_refused(self, store: SyncStore) -> None:
        """No sender, or an intent that is not one, is a ValueError and stores nothing."""
        with pytest.raises(ValueError, match="sender"):
            store.inbox.add_inbound(
                gateway="twilio",
                provider_id="SM1",
                sender="",
                recipient=OUR_DID,
                body="hi",
                intent=Intent.MESSAGE,
                urgent=False,
                now=T0,
            )
        with pytest.raises(ValueError, match="maybe"):
            store.inbox.add_inbound(
                gateway="twilio",
                provider_id="SM1",
                sender=ALICE,
                recipient=OUR_DID,
                body="hi",
                intent="maybe",
                urgent=False,
                now=T0,
            )
        assert store.inbox.conversations() == []


class TestReply:
    def test_answer_is_linked_to_its_outbox_row(self, store: SyncStore, db_path: Path) -> None:
        """Staff's answer is stored with who wrote it and the outbox row that sends it."""
        outbox_id = queue(store, "inbox-1", ALICE, T0, body="We can come at 3.")
        row = store.inbox.add_reply(
            to=ALICE, body="We can come at 3.", outbox_id=outbox_id, user="alice", now=T0
        )
        assert raw_query(
            db_path,
            f"SELECT direction, gateway, e164, user, outbox_id FROM messages WHERE id={row}",
        ) == [("out", "twilio", ALICE, "alice", outbox_id)]

    def test_answer_needs_a_matching_outbox_row(self, store: SyncStore) -> None:
        """An answer to a missing outbox row, or one to another number, is refused."""
        outbox_id = queue(store, "inbox-1", ALICE, T0)
        with pytest.raises(ValueError, match="does not exist"):
            store.inbox.add_reply(to=ALICE, body="x", outbox_id=999, user="alice", now=T0)
        with pytest.raises(ValueError, match="not to"):
            store.inbox.add_reply(to=BOB, body="x", outbox_id=outbox_id, user="alice", now=T0)
        with pytest.raises(ValueError, match="user"):
            store.inbox.add_reply(to=ALICE, body="x", outbox_id=outbox_id, user="", now=T0)


class TestReceipts:
    def delivery(self, db_path: Path, row: int) -> tuple[object, ...]:
        [found] = raw_query(
            db_path,
            f"SELECT state, delivery_status, delivered_at, delivery_error FROM outbox"
            f" WHERE id = {row}",
        )
        return found

    def receipt(
        self,
        store: SyncStore,
        delivered: bool | None,
        now: float,
        *,
        provider_id: str = "SM1",
        status: str = "",
        code: str = "",
        kind: str | None = None,
    ) -> int | None:
        return store.inbox.record_receipt(
            provider_id=provider_id,
            delivered=delivered,
            status=status or {True: "delivered", False: "undelivered", None: "sent"}[delivered],
            error_code=code,
            kind=kind,
            now=now,
        )

    def test_unknown_provider_id_changes_nothing(self, store: SyncStore, db_path: Path) -> None:
        """A receipt for a text we have no record of (or with no id) returns None."""
        row = send(store, "c1", ALICE, T0, "SM1")
        assert self.receipt(store, True, T0 + 5, provider_id="SM-other") is None
        assert self.receipt(store, True, T0 + 5, provider_id="") is None
        assert self.delivery(db_path, row) == ("sent", None, None, None)

    def test_delivered(self, store: SyncStore, db_path: Path) -> None:
        """A delivered receipt sets the status and time; the outbox state stays sent."""
        row = send(store, "c1", ALICE, T0, "SM1")
        assert self.receipt(store, True, T0 + 5) == row
        assert self.delivery(db_path, row) == ("sent", "delivered", T0 + 5, None)

    def test_receipts_are_idempotent_and_never_go_back(
        self, store: SyncStore, db_path: Path
    ) -> None:
        """Repeated or late receipts (sent, undelivered after delivered) keep it delivered."""
        row = send(store, "c1", ALICE, T0, "SM1")
        assert self.receipt(store, None, T0 + 1) == row
        assert self.delivery(db_path, row) == ("sent", "sent", None, None)
        assert self.receipt(store, True, T0 + 5) == row
        assert self.receipt(store, True, T0 + 9) == row
        assert self.receipt(store, None, T0 + 10) == row
        assert self.receipt(store, False, T0 + 11, code="30003") == row
        assert self.delivery(db_path, row) == ("sent", "delivered", T0 + 5, None)

    def test_undelivered_keeps_the_error(self, store: SyncStore, db_path: Path) -> None:
        """An undelivered receipt records the provider's word, code and classification."""
        row = send(store, "c1", ALICE, T0, "SM1")
        assert self.receipt(store, None, T0 + 1) == row
        assert self.receipt(store, False, T0 + 5, code="30006", kind="not_sms_capable") == row
        assert self.delivery(db_path, row) == (
            "sent",
            "undelivered",
            None,
            "undelivered, code 30006 (not_sms_capable)",
        )
        assert self.receipt(store, None, T0 + 6) == row
        assert self.delivery(db_path, row)[1] == "undelivered"

    def test_delivered_after_undelivered_wins(self, store: SyncStore, db_path: Path) -> None:
        """A carrier's late success overrides its earlier failure report."""
        row = send(store, "c1", ALICE, T0, "SM1")
        self.receipt(store, False, T0 + 5, code="30005")
        self.receipt(store, True, T0 + 7)
        assert self.delivery(db_path, row) == ("sent", "delivered", T0 + 7, None)


class TestConversations:
    def test_who_has_a_conversation(self, store: SyncStore) -> None:
        """A missed call we texted, or any message, makes one; a call alone or a held text not."""
        call(store, "c1", ALICE, T0)
        send(store, "c1", ALICE, T0 + 10, "SM1")
        call(store, "c2", BOB, T0)  # missed, but never texted (suppressed)
        store.outbox.accept(
            pbx="office",
            call_id="c2",
            to_e164=BOB,
            body=BODY,
            template="default",
            gateway="twilio",
            state="suppressed",
            reason="suppressed: region",
            created_at=T0,
            send_at=T0,
            expires_at=T0,
            now=T0,
        )
        call(store, "c3", CAROL, T0, verdict=Verdict.ANSWERED, reason=Reason.ANSWERED)
        reply(store, DAVE, T0 + 50, "who is this?")  # texted us out of the blue
        call(store, "c4", "+14155550105", T0)
        queue(store, "c4", "+14155550105", T0 + 10)
        assert {s.e164 for s in store.inbox.conversations()} == {
            ALICE,
            DAVE,
            "+14155550105",
        }

    def test_newest_activity_first(self, store: SyncStore) -> None:
        """Conversations come newest activity first, whichever table the activity is in."""
        call(store, "c1", ALICE, T0)
        send(store, "c1", ALICE, T0 + 10, "SM1")
        call(store, "c2", BOB, T0 + 100)
        send(store, "c2", BOB, T0 + 110, "SM2")
        call(store, "c3", CAROL, T0 + 200)
        send(store, "c3", CAROL, T0 + 210, "SM3")
        assert [s.e164 for s in store.inbox.conversations()] == [CAROL, BOB, ALICE]
        reply(store, ALICE, T0 + 300)  # a reply brings Alice to the top
        assert [s.e164 for s in store.inbox.conversations()] == [ALICE, CAROL, BOB]
        call(store, "c4", BOB, T0 + 400, verdict=Verdict.ANSWERED, reason=Reason.ANSWERED)
        assert [s.e164 for s in store.inbox.conversations()] == [BOB, ALICE, CAROL]
        assert [s.e164 for s in store.inbox.conversations(limit=2)] == [BOB, ALICE]
        assert [s.last_activity_at for s in store.inbox.conversations()] == [
            T0 + 400,
            T0 + 300,
            T0 + 210,
        ]

    def test_summary_fields(self, store: SyncStore) -> None:
        """A summary gives the caller's name, newest call, our DID and our text's delivery."""
        call(store, "c1", ALICE, T0, name="Alice Smith")
        send(store, "c1", ALICE, T0 + 10, "SM1")
        store.inbox.record_receipt(
            provider_id="SM1",
            delivered=True,
            status="delivered",
            error_code="",
            kind=None,
            now=T0 + 15,
        )
        call(store, "c2", ALICE, T0 + 600, reason=Reason.VOICEMAIL)  # unnamed this time
        reply(store, ALICE, T0 + 700)
        assert summary_of(store, ALICE) == ConversationSummary(
            e164=ALICE,
            caller_name="Alice Smith",
            last_call_at=T0 + 600,
            last_reason="voicemail",
            did=OUR_DID,
            last_text_state="delivered",
            last_activity_at=T0 + 700,
            unread_replies=1,
            urgent=False,
            handled=False,
        )

    def test_texter_without_a_call(self, store: SyncStore) -> None:
        """Someone who only texted has no call and shows the number they texted."""
        reply(store, DAVE, T0)
        summary = summary_of(store, DAVE)
        assert (
            summary.last_call_at,
            summary.last_reason,
            summary.did,
            summary.last_text_state,
            summary.caller_name,
        ) == (None, None, OUR_DID, None, "")

    def test_unread_until_seen_or_answered(self, store: SyncStore) -> None:
        """Replies are unread until staff open the thread or answer; newer ones count again."""
        call(store, "c1", ALICE, T0)
        send(store, "c1", ALICE, T0 + 10, "SM1")
        reply(store, ALICE, T0 + 100)
        reply(store, ALICE, T0 + 110, "hello?")
        assert summary_of(store, ALICE).unread_replies == 2
        store.inbox.mark_seen(ALICE, T0 + 120)
        assert summary_of(store, ALICE).unread_replies == 0
        store.inbox.mark_seen(ALICE, T0 + 50)  # a stale view does not make them unread
        assert summary_of(store, ALICE).unread_replies == 0
        reply(store, ALICE, T0 + 200)
        assert summary_of(store, ALICE).unread_replies == 1
        answer(store, ALICE, T0 + 300, "On our way")
        assert summary_of(store, ALICE).unread_replies == 0

    def test_urgent_until_handled(self, store: SyncStore) -> None:
        """An urgent reply keeps the conversation urgent, even once seen, until marked handled."""
        call(store, "c1", ALICE, T0)
        send(store, "c1", ALICE, T0 + 10, "SM1")
        reply(store, ALICE, T0 + 100, "URGENT water everywhere", urgent=True)
        store.inbox.mark_seen(ALICE, T0 + 110)
        assert summary_of(store, ALICE).urgent
        assert store.inbox.mark_handled(ALICE, "bob", T0 + 120)
        assert not summary_of(store, ALICE).urgent

    def test_handled_until_they_come_back(self, store: SyncStore) -> None:
        """Marked handled stays so until they call or text again."""
        call(store, "c1", ALICE, T0)
        send(store, "c1", ALICE, T0 + 10, "SM1")
        reply(store, ALICE, T0 + 100)
        assert not summary_of(store, ALICE).handled
        assert store.inbox.mark_handled(ALICE, "bob", T0 + 200)
        handled = summary_of(store, ALICE)
        assert (handled.handled, handled.unread_replies) == (True, 0)
        reply(store, ALICE, T0 + 300)
        assert not summary_of(store, ALICE).handled
        assert store.inbox.mark_handled(ALICE, "bob", T0 + 400)
        call(store, "c2", ALICE, T0 + 500)
        assert not summary_of(store, ALICE).handled

    def test_mark_handled_needs_a_conversation(self, store: SyncStore, db_path: Path) -> None:
        """Marking an unknown number handled returns False and stores nothing."""
        assert not store.inbox.mark_handled(ALICE, "bob", T0)
        assert raw_query(db_path, "SELECT count(*) FROM threads") == [(0,)]
        with pytest.raises(ValueError, match="user"):
            store.inbox.mark_handled(ALICE, "", T0)

    def test_negative_limit_is_refused(self, store: SyncStore) -> None:
        """A negative limit is a caller's bug, not an empty page."""
        with pytest.raises(ValueError, match="limit"):
            store.inbox.conversations(limit=-1)


class TestThread:
    def test_unknown_number_has_no_thread(self, store: SyncStore) -> None:
        """Nothing stored, or only a hand-typed opt-out, is no thread."""
        assert store.inbox.thread(ALICE) is None
        store.outbox.add_optout(ALICE, "manual", T0)
        assert store.inbox.thread(ALICE) is None

    def test_everything_in_time_order(self, store: SyncStore) -> None:
        """Calls, our texts with delivery, replies, our answers and notes merge by time."""
        call(store, "c1", ALICE, T0, name="Alice Smith")
        send(store, "c1", ALICE, T0 + 10, "SM1")
        store.inbox.record_receipt(
            provider_id="SM1",
            delivered=True,
            status="delivered",
            error_code="",
            kind=None,
            now=T0 + 12,
        )
        reply(store, ALICE, T0 + 100, "URGENT: pipe burst", urgent=True)
        answer(store, ALICE, T0 + 200, "On our way", user="bob")
        store.inbox.record_receipt(
            provider_id=f"SMout-{T0 + 200}",
            delivered=False,
            status="undelivered",
            error_code="30005",
            kind="transient",
            now=T0 + 205,
        )
        call(store, "c2", ALICE, T0 + 250, verdict=Verdict.ANSWERED, reason=Reason.ANSWERED)
        assert store.inbox.mark_handled(ALICE, "bob", T0 + 300)
        reply(store, ALICE, T0 + 400, "STOP", intent=Intent.STOP)
        store.outbox.add_optout(ALICE, "sms", T0 + 400)
        thread = store.inbox.thread(ALICE)
        assert thread is not None
        assert (thread.e164, thread.caller_name, thread.handled, thread.opted_out) == (
            ALICE,
            "Alice Smith",
            False,
            True,
        )
        assert thread.items == [
            ThreadItem(T0, "call", "Missed call", "missed", "abandoned", OUR_DID, False),
            ThreadItem(T0 + 10, "text", BODY, "delivered", "ok", None, False),
            ThreadItem(T0 + 100, "reply", "URGENT: pipe burst", "message", None, OUR_DID, True),
            ThreadItem(
                T0 + 200,
                "our_reply",
                "On our way",
                "undelivered",
                "undelivered, code 30005 (transient)",
                None,
                False,
                user="bob",
            ),
            ThreadItem(T0 + 250, "call", "Answered call", "answered", "answered", OUR_DID, False),
            ThreadItem(T0 + 300, "note", "Marked handled", None, None, None, False, user="bob"),
            ThreadItem(T0 + 400, "reply", "STOP", "stop", None, OUR_DID, False),
            ThreadItem(T0 + 400, "note", "Opted out", "sms", None, None, False),
        ]

    def test_held_texts_show_why(self, store: SyncStore) -> None:
        """A text not sent shows its state and reason; one that cannot be delivered, a note."""
        call(store, "c1", ALICE, T0)
        send(store, "c1", ALICE, T0 + 10, "SM1")
        call(store, "c2", ALICE, T0 + 600)
        store.outbox.accept(
            pbx="office",
            call_id="c2",
            to_e164=ALICE,
            body=BODY,
            template="default",
            gateway="twilio",
            state="suppressed",
            reason="suppressed: cooldown",
            created_at=T0 + 610,
            send_at=T0 + 610,
            expires_at=T0 + 610,
            now=T0 + 610,
        )
        store.outbox.mark_not_sms_capable(ALICE, "30006", T0 + 700)
        thread = store.inbox.thread(ALICE)
        assert thread is not None
        assert [(i.kind, i.state, i.reason) for i in thread.items] == [
            ("call", "missed", "abandoned"),
            ("text", "sent", "ok"),
            ("call", "missed", "abandoned"),
            ("text", "suppressed", "suppressed: cooldown"),
            ("note", None, "30006"),
        ]
        # The summary names the text that went out, not the one held back.
        assert summary_of(store, ALICE).last_text_state == "sent"


class TestDashboard:
    ZONE = ZoneInfo("America/New_York")

    def at(self, year: int, month: int, day: int, hour: int, minute: int) -> float:
        """Unix time of a wall-clock moment in New York."""
        return datetime(year, month, day, hour, minute, tzinfo=self.ZONE).timestamp()

    def test_counts_follow_local_days(self, store: SyncStore) -> None:
        """Today starts at local midnight, the week 6 local days before; UTC dates do not matter."""
        # Tuesday 2026-11-03, 10:00 EST. Daylight saving time ended on Sunday 1 November, so
        # the week starts at midnight EDT (04:00 UTC) and today at midnight EST (05:00 UTC).
        now = self.at(2026, 11, 3, 10, 0)
        yesterday_late = self.at(2026, 11, 2, 23, 30)  # 04:30 UTC on the 3rd
        today_early = self.at(2026, 11, 3, 0, 30)
        week_first = self.at(2026, 10, 28, 0, 30)  # 04:30 UTC on the 28th
        week_before = self.at(2026, 10, 27, 23, 30)  # 03:30 UTC on the 28th: outside
        call(store, "c1", ALICE, yesterday_late)
        call(store, "c2", BOB, today_early)
        call(store, "c3", CAROL, week_first)
        call(store, "c4", DAVE, week_before)
        call(store, "c5", DAVE, today_early + 60, verdict=Verdict.ANSWERED, reason=Reason.ANSWERED)
        send(store, "c1", ALICE, yesterday_late + 20, "SM1")
        send(store, "c2", BOB, today_early + 20, "SM2")
        row = store.outbox.accept(
            pbx="office",
            call_id="c3",
            to_e164=CAROL,
            body=BODY,
            template="default",
            gateway="twilio",
            state="pending",
            reason="ok",
            created_at=today_early + 30,
            send_at=today_early + 30,
            expires_at=now + 3600,
            now=today_early + 30,
        )
        assert row is not None
        store.outbox.claim_due(today_early + 30)
        store.outbox.mark_failed(row, kind="permanent", error="nope", now=today_early + 31)
        # Neither an inbox answer nor a HELP or STOP reply is a text for a missed call.
        answer(store, BOB, today_early + 600, "See you at 3")
        send(store, "help-1", BOB, today_early + 700, "SMhelp", body="Acme: call 212-555-0100")
        reply(store, BOB, today_early + 300)
        reply(store, BOB, today_early + 400, "and the sink too")
        reply(store, ALICE, yesterday_late + 60)
        reply(store, CAROL, week_before)  # before the week
        store.outbox.add_optout(ALICE, "sms", yesterday_late + 70)
        store.outbox.add_optout(CAROL, "manual", today_early + 100)
        store.outbox.add_optout(DAVE, "sms", week_before)
        assert store.inbox.dashboard(now, "America/New_York") == Dashboard(
            today=Counts(missed=1, texted=1, replied=1, opted_out=1),
            week=Counts(missed=3, texted=2, replied=2, opted_out=2),
        )

    def test_the_same_moment_in_another_zone(self, store: SyncStore) -> None:
        """The time zone decides which day a call belongs to."""
        late = self.at(2026, 11, 2, 23, 30)  # 04:30 UTC on the 3rd
        call(store, "c1", ALICE, late)
        now = self.at(2026, 11, 3, 10, 0)
        assert store.inbox.dashboard(now, "America/New_York").today.missed == 0
        assert store.inbox.dashboard(now, "UTC").today.missed == 1

    def test_unknown_zone_is_refused(self, store: SyncStore) -> None:
        """A time zone name that does not exist is a ValueError naming it."""
        with pytest.raises(ValueError, match="Mars/Olympus"):
            store.inbox.dashboard(T0, "Mars/Olympus")


class TestAsync:
    async def test_inbox_runs_on_the_store_thread(self, db_path: Path) -> None:
        """The daemon's facade stores, dedupes and reads through the one worker thread."""
        async with await Store.open(db_path) as store:
            added = await store.inbox.add_inbound(
                gateway="twilio",
                provider_id="SM1",
                sender=ALICE,
                recipient=OUR_DID,
                body="Can you come today?",
                intent=Intent.MESSAGE,
                urgent=False,
                now=T0,
            )
            again = await store.inbox.add_inbound(
                gateway="twilio",
                provider_id="SM1",
                sender=ALICE,
                recipient=OUR_DID,
                body="Can you come today?",
                intent=Intent.MESSAGE,
                urgent=False,
                now=T0 + 1,
            )
            outbox_id = await store.outbox.accept(
                pbx="inbox",
                call_id="reply-1",
                to_e164=ALICE,
                body="Yes, at 3",
                template=None,
                gateway="twilio",
                state="pending",
                reason="ok",
                created_at=T0 + 5,
                send_at=T0 + 5,
                expires_at=T0 + 3600,
                now=T0 + 5,
            )
            assert outbox_id is not None
            answered = await store.inbox.add_reply(
                to=ALICE, body="Yes, at 3", outbox_id=outbox_id, user="alice", now=T0 + 5
            )
            [claimed] = await store.outbox.claim_due(T0 + 6)
            assert await store.outbox.mark_sent(claimed.id, "SMout", T0 + 6)
            receipt = await store.inbox.record_receipt(
                provider_id="SMout",
                delivered=True,
                status="delivered",
                error_code="",
                kind=None,
                now=T0 + 7,
            )
            await store.inbox.mark_seen(ALICE, T0 + 8)
            handled = await store.inbox.mark_handled(ALICE, "alice", T0 + 9)
            conversations = await store.inbox.conversations()
            thread = await store.inbox.thread(ALICE)
            dashboard = await store.inbox.dashboard(T0 + 10, "Europe/Paris")
        assert added is not None
        assert again is None
        assert answered > 0
        assert receipt == outbox_id
        assert handled
        assert [(c.e164, c.handled, c.unread_replies) for c in conversations] == [(ALICE, True, 0)]
        assert thread is not None
        assert [(i.kind, i.state) for i in thread.items] == [
            ("reply", "message"),
            ("our_reply", "delivered"),
            ("note", None),
        ]
        assert dashboard.today == Counts(missed=0, texted=0, replied=1, opted_out=0)
        assert not [t for t in threading.enumerate() if t.name.startswith("textback-store")]
