"""The shared inbox's data: replies, our answers, delivery receipts, and what the page shows.

Synchronous SQL over the textback database's one connection (see
:mod:`textback.store`, which opens the file, migrates it and runs this on its
worker thread for the daemon, as ``store.inbox``).

A conversation is everything under one caller's number: their calls (the
``calls`` table), the texts we sent them (``outbox``), their replies and our
answers (``messages``), and the staff's marks (``threads``). Nothing is
copied between those tables: the views below join them when asked, so a call,
a text and a reply can never disagree about what happened.

Times are Unix seconds (REAL), except in ``calls``, which keeps ISO-8601 UTC
text; conversion happens here, and everything handed out is Unix seconds.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from textback.core.keywords import Intent
from textback.outbox import Connected
from textback.sqltx import as_store_error, immediate

ThreadKind = Literal["call", "text", "reply", "our_reply", "note"]

# What a receipt says, weakest first: a receipt never replaces a stronger one, so
# a late "sent" cannot undo "delivered" (providers do not keep callbacks in order).
DELIVERY_STATES: Final = ("sent", "undelivered", "delivered")
_RANK: Final = {state: rank for rank, state in enumerate(DELIVERY_STATES, start=1)}

# Outbox states in which a text was, or is being, really sent.
_TEXTED: Final = "('pending', 'sending', 'sent', 'failed')"

# Call, then our text, then their reply, when they share a timestamp.
_KIND_ORDER: Final[dict[ThreadKind, int]] = {
    "call": 0,
    "text": 1,
    "reply": 2,
    "our_reply": 3,
    "note": 4,
}

_CALL_TEXT: Final = {"missed": "Missed call", "answered": "Answered call"}


def migrate_3_inbox(conn: sqlite3.Connection) -> None:
    """Schema migration 3: replies and our answers, staff marks, delivery receipts."""
    intents = ", ".join(f"'{i.value}'" for i in Intent)
    delivery = ", ".join(f"'{s}'" for s in DELIVERY_STATES)
    conn.execute(
        f"""
        CREATE TABLE messages (
            id          INTEGER PRIMARY KEY,
            direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            gateway     TEXT NOT NULL,
            -- Inbound only; a provider retrying a callback repeats it. NULL when it gave none.
            provider_id TEXT,
            e164        TEXT NOT NULL,  -- the caller's number, whichever way the text went
            did         TEXT,           -- our number they texted (inbound only)
            body        TEXT NOT NULL,
            intent      TEXT CHECK (intent IN ({intents})),
            urgent      INTEGER NOT NULL DEFAULT 0,
            user        TEXT,           -- who answered (outbound only)
            outbox_id   INTEGER REFERENCES outbox (id),
            created_at  REAL NOT NULL,
            UNIQUE (gateway, provider_id),
            CHECK ((direction = 'in') = (intent IS NOT NULL)),
            CHECK (direction = 'in' OR (outbox_id IS NOT NULL AND user IS NOT NULL))
        )
        """
    )
    conn.execute("CREATE INDEX messages_e164_created ON messages (e164, created_at)")
    conn.execute("CREATE INDEX messages_created ON messages (created_at)")
    conn.execute("CREATE INDEX messages_outbox ON messages (outbox_id) WHERE outbox_id IS NOT NULL")
    conn.execute(
        """
        CREATE TABLE threads (
            e164         TEXT PRIMARY KEY,
            handled_at   REAL,
            handled_by   TEXT,
            last_seen_at REAL
        ) WITHOUT ROWID
        """
    )
    conn.execute(
        f"ALTER TABLE outbox ADD COLUMN delivery_status TEXT"
        f" CHECK (delivery_status IN ({delivery}))"
    )
    conn.execute("ALTER TABLE outbox ADD COLUMN delivered_at REAL")
    conn.execute("ALTER TABLE outbox ADD COLUMN delivery_error TEXT")
    # Every receipt looks its row up by the provider's id.
    conn.execute(
        "CREATE INDEX outbox_provider ON outbox (provider_id) WHERE provider_id IS NOT NULL"
    )


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """One line of the inbox: a caller and where things stand with them."""

    e164: str
    caller_name: str  # the newest name the PBX gave; "" when none
    last_call_at: float | None  # start of their newest call (missed or answered)
    last_reason: str | None  # that call's reason ("abandoned", "voicemail", "answered"...)
    did: str | None  # our number they called (or, with no call, texted)
    last_text_state: str | None  # our newest text: an outbox state, or delivered/undelivered
    last_activity_at: float
    unread_replies: int  # replies since staff last looked, answered or marked it handled
    urgent: bool  # an urgent reply since it was last marked handled
    handled: bool  # marked handled, and nothing came from them since


@dataclass(frozen=True, slots=True)
class ThreadItem:
    """One event in a conversation.

    ``state`` is the call's verdict (call), the text's state (text, our_reply:
    an outbox state, or delivered/undelivered once a receipt says so), the
    reply's intent (reply), or the opt-out's source (note).
    """

    at: float
    kind: ThreadKind
    text: str
    state: str | None
    reason: str | None  # call reason, outbox reason or delivery error, not-capable code
    did: str | None  # our number (calls and replies)
    urgent: bool
    user: str | None = None  # who answered (our_reply) or marked it handled (note)


@dataclass(frozen=True, slots=True)
class Thread:
    e164: str
    caller_name: str
    items: list[ThreadItem]  # oldest first
    handled: bool = False
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class Counts:
    missed: int  # missed calls
    texted: int  # texts for missed calls that went out (not inbox answers, HELP or STOP replies)
    replied: int  # numbers that texted us
    opted_out: int  # numbers that opted out (and have not opted back in)


@dataclass(frozen=True, slots=True)
class Dashboard:
    today: Counts  # since local midnight
    week: Counts  # the last 7 local calendar days, today included


class Inbox:
    """The inbox tables on one connection; use it from the connection's thread only."""

    def __init__(self, db: Connected) -> None:
        self._db = db

    # -- writing --------------------------------------------------------------------

    def add_inbound(
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
        """Store one reply; its id, or None when this gateway's message id is already stored.

        ``sender`` should be E.164 (the conversation is keyed by it). An empty
        ``provider_id`` cannot be deduplicated and is stored as a new message.

        Raises:
            ValueError: no sender, or an intent that is not an :class:`Intent` value.
            StoreError: the write failed.
        """
        if not sender:
            raise ValueError("an inbound message needs the sender's number")
        value = Intent(intent).value
        with self._errors("write to"):
            cursor = self._conn().execute(
                """
                INSERT INTO messages
                    (direction, gateway, provider_id, e164, did, body, intent, urgent, created_at)
                VALUES ('in', ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (gateway, provider_id) DO NOTHING
                """,
                (
                    gateway,
                    provider_id or None,
                    sender,
                    recipient or None,
                    body,
                    value,
                    int(urgent),
                    now,
                ),
            )
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def add_reply(self, *, to: str, body: str, outbox_id: int, user: str, now: float) -> int:
        """Record staff's answer ``body`` to ``to``, queued as outbox row ``outbox_id``; its id.

        Raises:
            ValueError: no user, or the outbox row is missing or to another number.
            StoreError: the write failed.
        """
        if not user:
            raise ValueError("an inbox answer needs the user who wrote it")
        with self._errors("write to"), self._transaction() as conn:
            row = conn.execute(
                "SELECT gateway, to_e164 FROM outbox WHERE id = ?", (outbox_id,)
            ).fetchone()
            if row is None:
                raise ValueError(f"outbox row {outbox_id} does not exist")
            gateway, to_e164 = row
            if to_e164 != to:
                raise ValueError(f"outbox row {outbox_id} is a text to {to_e164}, not to {to}")
            cursor = conn.execute(
                """
                INSERT INTO messages
                    (direction, gateway, e164, body, user, outbox_id, created_at)
                VALUES ('out', ?, ?, ?, ?, ?, ?)
                """,
                (gateway, to, body, user, outbox_id, now),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def record_receipt(
        self,
        *,
        provider_id: str,
        delivered: bool | None,
        status: str,
        error_code: str,
        kind: str | None,
        now: float,
    ) -> int | None:
        """Note a delivery receipt on the outbox row our send got ``provider_id`` for.

        Returns that row's id, or None when no row has that id (not our text,
        or a receipt faster than our own bookkeeping). Idempotent; a receipt
        weaker than the one recorded (``sent`` after ``delivered``, or
        ``undelivered`` after ``delivered``) changes nothing.
        """
        if not provider_id:
            return None
        new = "sent" if delivered is None else "delivered" if delivered else "undelivered"
        error = None if new != "undelivered" else _delivery_error(status, error_code, kind)
        with self._errors("write to"), self._transaction() as conn:
            row = conn.execute(
                "SELECT id, delivery_status FROM outbox WHERE provider_id = ?"
                " ORDER BY id DESC LIMIT 1",
                (provider_id,),
            ).fetchone()
            if row is None:
                return None
            row_id, current = row
            if _RANK[new] >= _RANK.get(current, 0):
                conn.execute(
                    """
                    UPDATE outbox SET
                        delivery_status = :new,
                        delivered_at = CASE WHEN :new = 'delivered'
                                       THEN coalesce(delivered_at, :now) END,
                        delivery_error = :error,
                        updated_at = :now
                    WHERE id = :id
                    """,
                    {"new": new, "now": now, "error": error, "id": row_id},
                )
        return int(row_id)

    def mark_handled(self, e164: str, user: str, now: float) -> bool:
        """Mark the conversation with ``e164`` handled by ``user``; False if there is none.

        A later call or reply from them reopens it.
        """
        if not user:
            raise ValueError("marking a conversation handled needs the user")
        with self._errors("write to"), self._transaction() as conn:
            if not _exists(conn, e164):
                return False
            conn.execute(
                """
                INSERT INTO threads (e164, handled_at, handled_by) VALUES (?, ?, ?)
                ON CONFLICT (e164) DO UPDATE
                SET handled_at = excluded.handled_at, handled_by = excluded.handled_by
                """,
                (e164, now, user),
            )
        return True

    def mark_seen(self, e164: str, now: float) -> None:
        """Staff looked at the conversation: its replies so far are no longer unread."""
        with self._errors("write to"):
            self._conn().execute(
                """
                INSERT INTO threads (e164, last_seen_at) VALUES (?, ?)
                ON CONFLICT (e164) DO UPDATE
                SET last_seen_at = max(coalesce(last_seen_at, 0), excluded.last_seen_at)
                """,
                (e164, now),
            )

    # -- reading --------------------------------------------------------------------

    def conversations(self, *, limit: int = 50) -> list[ConversationSummary]:
        """The ``limit`` conversations with the newest activity, newest first.

        A number has a conversation once we texted it for a missed call (a
        text pending, sent or failed) or it has a message either way.
        """
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        with self._errors("read"):
            conn = self._conn()
            newest = conn.execute(
                f"""
                WITH people (e164) AS (
                    SELECT to_e164 FROM outbox
                    WHERE to_e164 IS NOT NULL AND state IN {_TEXTED}
                    UNION
                    SELECT e164 FROM messages
                )
                SELECT e164, max(
                    coalesce((SELECT {_unix_sql("max(started_at)")} FROM calls
                              WHERE caller_e164 = people.e164), 0),
                    coalesce((SELECT max(coalesce(dispatched_at, created_at)) FROM outbox
                              WHERE to_e164 = people.e164), 0),
                    coalesce((SELECT max(created_at) FROM messages
                              WHERE messages.e164 = people.e164), 0)
                ) AS last_at
                FROM people
                ORDER BY last_at DESC, e164
                LIMIT ?
                """,
                (limit,),
            ).fetchall()
            return [_summary(conn, e164, round(float(last_at), 3)) for e164, last_at in newest]

    def thread(self, e164: str) -> Thread | None:
        """Everything about ``e164`` in time order; None when nothing is stored for it."""
        with self._errors("read"):
            conn = self._conn()
            items = [
                *_call_items(conn, e164),
                *_text_items(conn, e164),
                *_message_items(conn, e164),
                *_note_items(conn, e164),
            ]
            if not items:
                return None
            state = _state(conn, e164)
            opted_out = conn.execute("SELECT 1 FROM optouts WHERE e164 = ?", (e164,)).fetchone()
        items.sort(key=lambda item: (item.at, _KIND_ORDER[item.kind]))
        return Thread(
            e164=e164,
            caller_name=state.caller_name,
            items=items,
            handled=state.handled,
            opted_out=opted_out is not None,
        )

    def dashboard(self, now: float, tz: str) -> Dashboard:
        """Counts for today and the last 7 days, as days run in the time zone ``tz``.

        Raises:
            ValueError: ``tz`` is not a known IANA time zone.
        """
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{tz!r} is not a known time zone (like America/New_York)") from exc
        today = datetime.fromtimestamp(now, zone).date()
        midnight = datetime.combine(today, wall_time(), tzinfo=zone)
        week_start = datetime.combine(today - timedelta(days=6), wall_time(), tzinfo=zone)
        with self._errors("read"):
            conn = self._conn()
            return Dashboard(
                today=_counts(conn, midnight.timestamp(), now),
                week=_counts(conn, week_start.timestamp(), now),
            )

    # -- plumbing -------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        return self._db.live()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate(self._conn())

    def _errors(self, doing: str) -> AbstractContextManager[None]:
        return as_store_error(doing, "the inbox", self._db.path)


# -- helpers (all on the connection's thread) ---------------------------------------------


def _unix_sql(iso_expr: str) -> str:
    """SQL turning a ``calls`` ISO-8601 time into Unix seconds."""
    # julianday() is a double in days: good to some 10 µs, so round to the stored ms.
    return f"round((julianday({iso_expr}) - 2440587.5) * 86400.0, 3)"


def _unix(iso: str) -> float:
    return round(datetime.fromisoformat(iso).timestamp(), 3)


def _iso(unix_seconds: float) -> str:
    """Unix seconds as ``calls`` stores them, for range comparisons on its indexed text."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=round(unix_seconds * 1000))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _delivery_error(status: str, error_code: str, kind: str | None) -> str:
    detail = status or "undelivered"
    if error_code:
        detail += f", code {error_code}"
    if kind:
        detail += f" ({kind})"
    return detail


def _shown_state(state: str, delivery_status: str | None) -> str:
    """The outbox state, or what the receipt said once the provider took the text."""
    if state == "sent" and delivery_status in ("delivered", "undelivered"):
        return delivery_status
    return state


def _exists(conn: sqlite3.Connection, e164: str) -> bool:
    (found,) = conn.execute(
        """
        SELECT EXISTS (SELECT 1 FROM calls WHERE caller_e164 = :n)
            OR EXISTS (SELECT 1 FROM outbox WHERE to_e164 = :n)
            OR EXISTS (SELECT 1 FROM messages WHERE e164 = :n)
        """,
        {"n": e164},
    ).fetchone()
    return bool(found)


@dataclass(frozen=True, slots=True)
class _State:
    caller_name: str
    unread: int
    urgent: bool
    handled: bool


def _state(conn: sqlite3.Connection, e164: str) -> _State:
    """Name, unread replies, urgency and handled flag for one number."""
    name_row = conn.execute(
        "SELECT caller_name FROM calls WHERE caller_e164 = ? AND caller_name != ''"
        " ORDER BY started_at DESC, id DESC LIMIT 1",
        (e164,),
    ).fetchone()
    handled_at, last_seen_at = conn.execute(
        "SELECT handled_at, last_seen_at FROM threads WHERE e164 = ?", (e164,)
    ).fetchone() or (None, None)
    (last_answer,) = conn.execute(
        "SELECT max(created_at) FROM messages WHERE e164 = ? AND direction = 'out'", (e164,)
    ).fetchone()
    # Marking it handled or answering it means staff read everything before.
    read_up_to = max(
        (t for t in (handled_at, last_seen_at, last_answer) if t is not None), default=None
    )
    unread, urgent, last_reply = conn.execute(
        """
        SELECT count(*) FILTER (WHERE :read IS NULL OR created_at > :read),
               count(*) FILTER (WHERE urgent AND (:handled IS NULL OR created_at > :handled)),
               max(created_at)
        FROM messages WHERE e164 = :n AND direction = 'in'
        """,
        {"n": e164, "read": read_up_to, "handled": handled_at},
    ).fetchone()
    (last_call,) = conn.execute(
        "SELECT max(started_at) FROM calls WHERE caller_e164 = ?", (e164,)
    ).fetchone()
    last_from_them = max(
        (t for t in (last_reply, None if last_call is None else _unix(last_call)) if t is not None),
        default=None,
    )
    handled = handled_at is not None and (last_from_them is None or handled_at >= last_from_them)
    return _State(
        caller_name="" if name_row is None else str(name_row[0]),
        unread=int(unread),
        urgent=bool(urgent),
        handled=handled,
    )


def _summary(conn: sqlite3.Connection, e164: str, last_at: float) -> ConversationSummary:
    call = conn.execute(
        "SELECT started_at, reason, coalesce(did_e164, did) FROM calls WHERE caller_e164 = ?"
        " ORDER BY started_at DESC, id DESC LIMIT 1",
        (e164,),
    ).fetchone()
    text = conn.execute(
        f"""
        SELECT state, delivery_status FROM outbox WHERE to_e164 = ?
        ORDER BY state IN {_TEXTED} DESC, created_at DESC, id DESC LIMIT 1
        """,
        (e164,),
    ).fetchone()
    did: str | None = None if call is None else call[2]
    if did is None:
        texted = conn.execute(
            "SELECT did FROM messages WHERE e164 = ? AND direction = 'in' AND did IS NOT NULL"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            (e164,),
        ).fetchone()
        did = None if texted is None else texted[0]
    state = _state(conn, e164)
    return ConversationSummary(
        e164=e164,
        caller_name=state.caller_name,
        last_call_at=None if call is None else _unix(call[0]),
        last_reason=None if call is None else call[1],
        did=did,
        last_text_state=None if text is None else _shown_state(text[0], text[1]),
        last_activity_at=last_at,
        unread_replies=state.unread,
        urgent=state.urgent,
        handled=state.handled,
    )


def _call_items(conn: sqlite3.Connection, e164: str) -> list[ThreadItem]:
    rows = conn.execute(
        "SELECT started_at, verdict, reason, coalesce(did_e164, did) FROM calls"
        " WHERE caller_e164 = ? ORDER BY started_at, id",
        (e164,),
    ).fetchall()
    return [
        ThreadItem(
            at=_unix(started),
            kind="call",
            text=_CALL_TEXT.get(verdict, "Call (outcome unknown)"),
            state=verdict,
            reason=reason,
            did=did,
            urgent=False,
        )
        for started, verdict, reason, did in rows
    ]


def _text_items(conn: sqlite3.Connection, e164: str) -> list[ThreadItem]:
    """Our texts for missed calls; the inbox's own answers come with the messages."""
    rows = conn.execute(
        """
        SELECT coalesce(dispatched_at, created_at), body, state, reason,
               delivery_status, delivery_error
        FROM outbox
        WHERE to_e164 = ?
          AND id NOT IN (SELECT outbox_id FROM messages WHERE outbox_id IS NOT NULL)
        ORDER BY created_at, id
        """,
        (e164,),
    ).fetchall()
    return [
        ThreadItem(
            at=float(at),
            kind="text",
            text=body,
            state=_shown_state(state, delivery),
            reason=error or reason,
            did=None,
            urgent=False,
        )
        for at, body, state, reason, delivery, error in rows
    ]


def _message_items(conn: sqlite3.Connection, e164: str) -> list[ThreadItem]:
    rows = conn.execute(
        """
        SELECT m.created_at, m.direction, m.body, m.intent, m.did, m.urgent, m.user,
               o.state, o.reason, o.delivery_status, o.delivery_error
        FROM messages AS m LEFT JOIN outbox AS o ON o.id = m.outbox_id
        WHERE m.e164 = ?
        ORDER BY m.created_at, m.id
        """,
        (e164,),
    ).fetchall()
    items: list[ThreadItem] = []
    for at, direction, body, intent, did, urgent, user, state, reason, delivery, error in rows:
        if direction == "in":
            items.append(
                ThreadItem(
                    at=float(at),
                    kind="reply",
                    text=body,
                    state=intent,
                    reason=None,
                    did=did,
                    urgent=bool(urgent),
                )
            )
        else:
            items.append(
                ThreadItem(
                    at=float(at),
                    kind="our_reply",
                    text=body,
                    state=None if state is None else _shown_state(state, delivery),
                    reason=error or reason,
                    did=None,
                    urgent=False,
                    user=user,
                )
            )
    return items


def _note_items(conn: sqlite3.Connection, e164: str) -> list[ThreadItem]:
    """Opt-out, cannot-text and handled marks: notes only beside something else."""
    notes: list[ThreadItem] = []
    for source, at in conn.execute(
        "SELECT source, created_at FROM optouts WHERE e164 = ?", (e164,)
    ).fetchall():
        notes.append(_note(at, "Opted out", state=source))
    for code, at in conn.execute(
        "SELECT code, created_at FROM not_sms_capable WHERE e164 = ?", (e164,)
    ).fetchall():
        notes.append(_note(at, "Cannot receive texts", reason=code))
    for user, at in conn.execute(
        "SELECT handled_by, handled_at FROM threads WHERE e164 = ? AND handled_at IS NOT NULL",
        (e164,),
    ).fetchall():
        notes.append(_note(at, "Marked handled", user=user))
    # An opt-out typed in by hand, with no call or text, is not a conversation.
    return notes if notes and _exists(conn, e164) else []


def _note(
    at: float,
    text: str,
    *,
    state: str | None = None,
    reason: str | None = None,
    user: str | None = None,
) -> ThreadItem:
    return ThreadItem(
        at=float(at),
        kind="note",
        text=text,
        state=state,
        reason=reason,
        did=None,
        urgent=False,
        user=user,
    )


def _counts(conn: sqlite3.Connection, start: float, end: float) -> Counts:
    """The dashboard's numbers for ``start <= t <= end``."""
    (missed,) = conn.execute(
        "SELECT count(*) FROM calls WHERE verdict = 'missed' AND started_at BETWEEN ? AND ?",
        (_iso(start), _iso(end)),
    ).fetchone()
    (texted,) = conn.execute(
        """
        SELECT count(*) FROM outbox
        WHERE state = 'sent' AND dispatched_at BETWEEN ? AND ?
          AND EXISTS (SELECT 1 FROM calls
                      WHERE calls.pbx = outbox.pbx AND calls.call_id = outbox.call_id)
        """,
        (start, end),
    ).fetchone()
    (replied,) = conn.execute(
        "SELECT count(DISTINCT e164) FROM messages"
        " WHERE direction = 'in' AND created_at BETWEEN ? AND ?",
        (start, end),
    ).fetchone()
    (opted_out,) = conn.execute(
        "SELECT count(*) FROM optouts WHERE created_at BETWEEN ? AND ?", (start, end)
    ).fetchone()
    return Counts(
        missed=int(missed), texted=int(texted), replied=int(replied), opted_out=int(opted_out)
    )
