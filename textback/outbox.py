"""The outbox: one row per missed call, from verdict to text on the wire.

Synchronous SQL over the textback database's one connection (see
:mod:`textback.store`, which opens the file, migrates it and runs this on its
worker thread for the daemon).

A row moves ``pending → sending → sent | failed``, or ends ``suppressed``
(never to be sent), ``cancelled`` or ``expired``::

    pending ──claim──▶ sending ──▶ sent
       ▲                  │ └────▶ failed
       └──────retry───────┘
    pending ──▶ cancelled | expired

Every transition is one ``UPDATE … WHERE state = <expected>``: a worker acting
on a stale view (a row that a restart already settled) changes nothing, and
learns so from the False it gets back.

A crash can leave rows ``sending``. ``dispatched_at`` tells the two cases
apart: unset, the request never left (requeue it); set, the provider may have
it, and only a gateway that drops a duplicate reference may be asked again.

Times are Unix seconds stored as REAL: they are compared in SQL.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final, Literal, Protocol, TypedDict

from textback.core.policy import History, PolicySettings, cap_reached, cap_room
from textback.sqltx import as_store_error, immediate

# The template of the single text that confirms an opt-out (sent after it).
OPT_OUT_CONFIRMATION: Final = "opt_out_confirmation"
STATES: Final = ("pending", "sending", "sent", "failed", "suppressed", "cancelled", "expired")
OPTOUT_SOURCES: Final = ("sms", "manual", "provider")

# Reasons this module writes itself; callers supply the others.
AMBIGUOUS: Final = "ambiguous"
EXPIRED: Final = "max_age"
OPTED_OUT: Final = "opted_out"
NOT_SMS_CAPABLE: Final = "not_sms_capable"

HOUR: Final = 3600.0
DAY: Final = 86400.0

_E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")


def migrate_2_outbox(conn: sqlite3.Connection) -> None:
    """Schema migration 2: the outbox, opt-outs and numbers that cannot take a text."""
    states = ", ".join(f"'{s}'" for s in STATES)
    sources = ", ".join(f"'{s}'" for s in OPTOUT_SOURCES)
    conn.execute(
        f"""
        CREATE TABLE outbox (
            id              INTEGER PRIMARY KEY,
            pbx             TEXT NOT NULL,
            call_id         TEXT NOT NULL,
            to_e164         TEXT,
            body            TEXT NOT NULL,
            template        TEXT,
            gateway         TEXT NOT NULL,
            state           TEXT NOT NULL CHECK (state IN ({states})),
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
            -- Only a row that will never be sent may lack a number.
            CHECK (to_e164 IS NOT NULL OR state = 'suppressed')
        )
        """
    )
    conn.execute("CREATE INDEX outbox_state_due ON outbox (state, next_attempt_at)")
    conn.execute("CREATE INDEX outbox_to_created ON outbox (to_e164, created_at)")
    # The hourly and daily caps count these on every decision.
    conn.execute(
        "CREATE INDEX outbox_dispatched ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL"
    )
    conn.execute(
        f"""
        CREATE TABLE optouts (
            e164       TEXT PRIMARY KEY,
            source     TEXT NOT NULL CHECK (source IN ({sources})),
            created_at REAL NOT NULL
        ) WITHOUT ROWID
        """
    )
    conn.execute(
        """
        CREATE TABLE not_sms_capable (
            e164       TEXT PRIMARY KEY,
            code       TEXT NOT NULL,
            created_at REAL NOT NULL
        ) WITHOUT ROWID
        """
    )


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    pbx: str
    call_id: str
    to_e164: str | None  # None only for suppressed rows (no usable number)
    body: str
    template: str | None
    gateway: str
    state: str  # one of STATES
    reason: str  # "ok", "suppressed: cooldown", "recovered", "opted_out", "ambiguous", ...
    attempts: int  # claims so far
    next_attempt_at: float
    dispatched_at: float | None  # set just before the current attempt's request went out
    provider_id: str | None
    last_error: str | None
    error_kind: str | None  # a FailureKind value
    created_at: float  # the call's end
    expires_at: float
    updated_at: float


_COLUMNS: Final = ", ".join(f.name for f in fields(OutboxRow))


class Connected(Protocol):
    """The open database the outbox works on (``textback.store.Database``)."""

    @property
    def path(self) -> Path: ...

    def live(self) -> sqlite3.Connection:
        """The connection; raises StoreError once the database is closed."""
        ...


class NewText(TypedDict):
    """:meth:`Outbox.accept`'s arguments: the outbox row one missed call asks for."""

    pbx: str
    call_id: str
    to_e164: str | None
    body: str
    template: str | None
    gateway: str
    state: Literal["pending", "suppressed"]
    reason: str
    created_at: float
    send_at: float
    expires_at: float
    now: float


class Outbox:
    """The outbox tables on one connection; use it from the connection's thread only."""

    def __init__(self, db: Connected) -> None:
        self._db = db

    # -- intake ---------------------------------------------------------------------

    def accept(
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
        """Queue (``pending``) or record (``suppressed``) the text for one missed call.

        Returns the new row's id, or None when that call already has a row: a
        replayed or duplicated verdict inserts nothing, across restarts.

        Raises:
            ValueError: another state, or a pending row without an E.164 number.
            StoreError: the write failed.
        """
        if state not in ("pending", "suppressed"):
            raise ValueError(f"a new outbox row is pending or suppressed, not {state!r}")
        if state == "pending" and to_e164 is None:
            raise ValueError(f"call {call_id} on {pbx}: a pending text needs a number")
        if to_e164 is not None:
            _check_e164(to_e164)
        with self._errors("write to"):
            cursor = self._conn().execute(
                """
                INSERT INTO outbox (
                    pbx, call_id, to_e164, body, template, gateway, state, reason,
                    next_attempt_at, created_at, expires_at, updated_at
                ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (pbx, call_id) DO NOTHING
                """,
                (
                    pbx,
                    call_id,
                    to_e164,
                    body,
                    template,
                    gateway,
                    state,
                    reason,
                    send_at,
                    created_at,
                    expires_at,
                    now,
                ),
            )
        return cursor.lastrowid if cursor.rowcount == 1 else None

    # -- dispatch -------------------------------------------------------------------

    def claim_due(self, now: float, limit: int = 10) -> list[OutboxRow]:
        """Take up to ``limit`` due texts for sending, in the order the calls ended.

        Call order, not due order: after an outage every held-back text is due
        at once, and they should reach people in the order they called.

        Due: ``pending``, ``next_attempt_at <= now`` and ``expires_at > now``.
        At most one row per number: several texts due to one person go one
        claim after the other, in order, never side by side. Claimed rows
        become ``sending`` with one more attempt and no ``dispatched_at``.
        In the same transaction, pending rows to numbers that opted out or
        cannot take a text are cancelled (reason ``opted_out`` /
        ``not_sms_capable``), so the opt-out table is read at the moment of
        every claim, whoever wrote it.
        """
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        with self._errors("write to"), self._transaction() as conn:
            for table, reason in (("optouts", OPTED_OUT), ("not_sms_capable", NOT_SMS_CAPABLE)):
                # The one text an opt-out itself asks for (its confirmation) still goes.
                conn.execute(
                    f"""
                    UPDATE outbox SET state = 'cancelled', reason = ?, updated_at = ?
                    WHERE state = 'pending' AND to_e164 IN (SELECT e164 FROM {table})
                      AND template IS NOT '{OPT_OUT_CONFIRMATION}'
                    """,
                    (reason, now),
                )
            rows = conn.execute(
                f"""
                UPDATE outbox
                SET state = 'sending', attempts = attempts + 1, dispatched_at = NULL,
                    updated_at = :now
                WHERE state = 'pending' AND id IN (
                    SELECT id FROM outbox AS o
                    WHERE state = 'pending' AND next_attempt_at <= :now AND expires_at > :now
                      AND NOT EXISTS (
                        SELECT 1 FROM outbox AS e
                        WHERE e.to_e164 = o.to_e164 AND e.state = 'pending'
                          AND e.next_attempt_at <= :now AND e.expires_at > :now
                          AND (e.created_at, e.id) < (o.created_at, o.id)
                      )
                    ORDER BY created_at, id
                    LIMIT :limit
                )
                RETURNING {_COLUMNS}
                """,
                {"now": now, "limit": limit},
            ).fetchall()
        # RETURNING gives no order.
        return sorted(map(_row, rows), key=lambda r: (r.created_at, r.id))

    def claim_to_send(
        self, now: float, most: int, caps: PolicySettings
    ) -> tuple[list[OutboxRow], str | None]:
        """The dispatcher's claim: up to ``most`` due texts the global caps still allow,
        claimed (:meth:`claim_due`) and marked dispatched in one transaction, as it
        sends them at once. With a cap reached, nothing and the cap's name.
        """
        with self._errors("write to"), self._transaction():
            volume = self._volume(now)
            cap = cap_reached(volume, caps)
            if cap is not None:
                return [], cap
            rows = self.claim_due(now, min(most, cap_room(volume, caps)))
            marked = self.mark_dispatched_all([row.id for row in rows], now)
        return [replace(row, dispatched_at=now) for row in rows if row.id in marked], None

    def mark_dispatched(self, row_id: int, now: float) -> bool:
        """Note that the request is about to go out; call just before sending.

        Returns False when the row is not ``sending`` (a restart settled it,
        or it was already dispatched): do not send then.
        """
        return row_id in self.mark_dispatched_all([row_id], now)

    def mark_dispatched_all(self, row_ids: Sequence[int], now: float) -> set[int]:
        """:meth:`mark_dispatched` for several rows in one transaction: the ids to send."""
        with self._errors("write to"), self._transaction() as conn:
            marks = [
                conn.execute(
                    "UPDATE outbox SET dispatched_at = :now, updated_at = :now"
                    " WHERE id = :id AND state = 'sending' AND dispatched_at IS NULL",
                    {"now": now, "id": row_id},
                ).rowcount
                for row_id in row_ids
            ]
        return {row_id for row_id, changed in zip(row_ids, marks, strict=True) if changed == 1}

    def mark_sent(self, row_id: int, provider_id: str, now: float) -> bool:
        """``sending → sent`` with the provider's message id; False if not ``sending``."""
        return self._transition(
            row_id,
            "sending",
            "state = 'sent', provider_id = :provider_id,"
            " dispatched_at = coalesce(dispatched_at, :now)",
            {"now": now, "provider_id": provider_id},
        )

    def mark_sent_all(self, sent: Sequence[tuple[int, str]], now: float) -> set[int]:
        """:meth:`mark_sent` for ``(row id, provider id)`` pairs, one transaction: ids marked."""
        with self._errors("write to"), self._transaction():
            return {
                row_id for row_id, provider_id in sent if self.mark_sent(row_id, provider_id, now)
            }

    def mark_retry(
        self, row_id: int, *, next_attempt_at: float, error: str, kind: str, now: float
    ) -> bool:
        """``sending → pending``, due again at ``next_attempt_at``; False if not ``sending``."""
        return self._transition(
            row_id,
            "sending",
            "state = 'pending', next_attempt_at = :next, last_error = :error, error_kind = :kind",
            {"now": now, "next": next_attempt_at, "error": error, "kind": kind},
        )

    def mark_failed(self, row_id: int, *, kind: str, error: str, now: float) -> bool:
        """``sending → failed`` for good, reason ``kind``; False if not ``sending``."""
        return self._transition(
            row_id,
            "sending",
            "state = 'failed', reason = :kind, last_error = :error, error_kind = :kind",
            {"now": now, "error": error, "kind": kind},
        )

    def cancel_pending(self, to_e164: str, reason: str, now: float) -> list[int]:
        """Cancel every pending text to ``to_e164`` (e.g. ``recovered``); their ids."""
        with self._errors("write to"):
            rows = (
                self._conn()
                .execute(
                    """
                    UPDATE outbox SET state = 'cancelled', reason = ?, updated_at = ?
                    WHERE state = 'pending' AND to_e164 = ?
                    RETURNING id
                    """,
                    (reason, now, to_e164),
                )
                .fetchall()
            )
        return sorted(row[0] for row in rows)

    def expire(self, now: float) -> list[int]:
        """Pending texts at or past ``expires_at`` become ``expired`` (reason ``max_age``)."""
        with self._errors("write to"):
            rows = (
                self._conn()
                .execute(
                    """
                    UPDATE outbox SET state = 'expired', reason = ?, updated_at = ?
                    WHERE state = 'pending' AND expires_at <= ?
                    RETURNING id
                    """,
                    (EXPIRED, now, now),
                )
                .fetchall()
            )
        return sorted(row[0] for row in rows)

    def recover(
        self, now: float, *, idempotent: bool, gateway: str | None = None
    ) -> tuple[list[int], list[int]]:
        """Settle rows a crash left ``sending``; call once at startup, before any claim.

        Never dispatched: back to ``pending`` (nothing went out). Dispatched:
        back to ``pending`` when ``idempotent`` (the provider drops the repeated
        reference), else ``failed`` with reason ``ambiguous`` — the request may
        have reached the provider, and a missing text is better than a second
        one. With ``gateway`` given, a dispatched row written for another
        gateway counts as not idempotent: a different provider never saw its
        reference.

        Returns ``(requeued, ambiguous)`` row ids.
        """
        if not idempotent:
            safe_again = "dispatched_at IS NULL"
        elif gateway is None:
            safe_again = "1"
        else:
            safe_again = "dispatched_at IS NULL OR gateway = :gateway"
        with self._errors("write to"), self._transaction() as conn:
            requeued = conn.execute(
                f"""
                UPDATE outbox SET state = 'pending', dispatched_at = NULL, updated_at = :now
                WHERE state = 'sending' AND ({safe_again})
                RETURNING id
                """,
                {"now": now, "gateway": gateway},
            ).fetchall()
            ambiguous = conn.execute(
                """
                UPDATE outbox
                SET state = 'failed', reason = :reason, updated_at = :now,
                    last_error = 'textback stopped while this text was being sent; '
                        || 'not sent again, since the gateway cannot drop a duplicate'
                WHERE state = 'sending'
                RETURNING id
                """,
                {"now": now, "reason": AMBIGUOUS},
            ).fetchall()
        return sorted(r[0] for r in requeued), sorted(r[0] for r in ambiguous)

    def next_due(self) -> float | None:
        """When :meth:`claim_due` or :meth:`expire` next has work (None: nothing pending)."""
        with self._errors("read"):
            (due,) = (
                self._conn()
                .execute(
                    "SELECT min(min(next_attempt_at, expires_at)) FROM outbox"
                    " WHERE state = 'pending'"
                )
                .fetchone()
            )
        return None if due is None else float(due)

    # -- what the policy needs ------------------------------------------------------

    def history(self, to_e164: str, now: float, *, volume: bool = True) -> History:
        """What the policy needs about ``to_e164``, and the volume of the last hour and day.

        The volume counts requests that went on the wire (``dispatched_at``),
        whatever came of them: a failed send may still cost money. Without
        ``volume`` it is left 0: counting grows with the day's texts, and only
        the caps (checked at each claim) need it, not the decision per call.
        """
        with self._errors("read"):
            opted_out, not_capable, last_text_at = (
                self._conn()
                .execute(
                    """
                    SELECT
                        EXISTS (SELECT 1 FROM optouts WHERE e164 = :to),
                        EXISTS (SELECT 1 FROM not_sms_capable WHERE e164 = :to),
                        (SELECT max(created_at) FROM outbox
                         WHERE to_e164 = :to AND state IN ('pending', 'sending', 'sent'))
                    """,
                    {"to": to_e164},
                )
                .fetchone()
            )
        counts = self._volume(now) if volume else History()
        return replace(
            counts,
            opted_out=bool(opted_out),
            not_sms_capable=bool(not_capable),
            last_text_at=None if last_text_at is None else float(last_text_at),
        )

    def _volume(self, now: float) -> History:
        """Only the volume of :meth:`history`: texts on the wire in the last hour and day."""
        with self._errors("read"):
            hour, day = (
                self._conn()
                .execute(
                    """
                    SELECT count(*) FILTER (WHERE dispatched_at > :hour), count(*)
                    FROM outbox WHERE dispatched_at > :day
                    """,
                    {"hour": now - HOUR, "day": now - DAY},
                )
                .fetchone()
            )
        return History(sent_last_hour=int(hour), sent_last_day=int(day))

    def add_optout(self, e164: str, source: str, now: float) -> bool:
        """Never text ``e164`` again; True when it was not opted out before.

        Its pending texts are cancelled (reason ``opted_out``) in the same
        transaction; a text already being sent is not stopped.
        """
        _check_e164(e164)
        if source not in OPTOUT_SOURCES:
            raise ValueError(
                f"opt-out source is one of {', '.join(OPTOUT_SOURCES)}, not {source!r}"
            )
        with self._errors("write to"), self._transaction() as conn:
            added = conn.execute(
                "INSERT INTO optouts (e164, source, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (e164) DO NOTHING",
                (e164, source, now),
            ).rowcount
            self._cancel_for(conn, e164, OPTED_OUT, now)
        return added == 1

    def remove_optout(self, e164: str) -> bool:
        """Allow texts to ``e164`` again; True when it was opted out."""
        with self._errors("write to"):
            removed = self._conn().execute("DELETE FROM optouts WHERE e164 = ?", (e164,)).rowcount
        return removed == 1

    def is_opted_out(self, e164: str) -> bool:
        with self._errors("read"):
            found = self._conn().execute("SELECT 1 FROM optouts WHERE e164 = ?", (e164,)).fetchone()
        return found is not None

    def list_optouts(self) -> list[tuple[str, str, float]]:
        """Every opt-out as ``(e164, source, created_at)``, oldest first."""
        with self._errors("read"):
            rows = (
                self._conn()
                .execute("SELECT e164, source, created_at FROM optouts ORDER BY created_at, e164")
                .fetchall()
            )
        return [(str(e), str(s), float(t)) for e, s, t in rows]

    def mark_not_sms_capable(self, e164: str, code: str, now: float) -> bool:
        """Remember that ``e164`` cannot take a text (the first code given is kept).

        True when it was not known before. Its pending texts are cancelled
        (reason ``not_sms_capable``).
        """
        _check_e164(e164)
        with self._errors("write to"), self._transaction() as conn:
            added = conn.execute(
                "INSERT INTO not_sms_capable (e164, code, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (e164) DO NOTHING",
                (e164, code, now),
            ).rowcount
            self._cancel_for(conn, e164, NOT_SMS_CAPABLE, now)
        return added == 1

    # -- reading --------------------------------------------------------------------

    def recent(self, limit: int = 50) -> list[OutboxRow]:
        """The newest ``limit`` rows by call end, newest first."""
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        with self._errors("read"):
            rows = (
                self._conn()
                .execute(
                    f"SELECT {_COLUMNS} FROM outbox ORDER BY created_at DESC, id DESC LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        return [_row(r) for r in rows]

    def get(self, row_id: int) -> OutboxRow | None:
        with self._errors("read"):
            row = (
                self._conn()
                .execute(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (row_id,))
                .fetchone()
            )
        return None if row is None else _row(row)

    # -- plumbing -------------------------------------------------------------------

    def _transition(
        self,
        row_id: int,
        expected: str,
        assignments: str,
        params: dict[str, object],
        *,
        extra: str = "1",
    ) -> bool:
        with self._errors("write to"):
            changed = (
                self._conn()
                .execute(
                    f"UPDATE outbox SET {assignments}, updated_at = :now"
                    f" WHERE id = :id AND state = :expected AND ({extra})",
                    {**params, "id": row_id, "expected": expected},
                )
                .rowcount
            )
        return changed == 1

    @staticmethod
    def _cancel_for(conn: sqlite3.Connection, e164: str, reason: str, now: float) -> None:
        conn.execute(
            "UPDATE outbox SET state = 'cancelled', reason = ?, updated_at = ?"
            " WHERE state = 'pending' AND to_e164 = ?",
            (reason, now, e164),
        )

    def _conn(self) -> sqlite3.Connection:
        return self._db.live()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate(self._conn())

    def _errors(self, doing: str) -> AbstractContextManager[None]:
        return as_store_error(doing, "the outbox", self._db.path)


def _row(values: tuple[Any, ...]) -> OutboxRow:
    row = OutboxRow(*values)
    # RETURNING can hand back a REAL column read from an index as an int (SQLite 3.40).
    return replace(
        row,
        next_attempt_at=float(row.next_attempt_at),
        dispatched_at=None if row.dispatched_at is None else float(row.dispatched_at),
        created_at=float(row.created_at),
        expires_at=float(row.expires_at),
        updated_at=float(row.updated_at),
    )


def _check_e164(number: str) -> None:
    if not _E164.fullmatch(number):
        raise ValueError(f"{number!r} is not an E.164 number (like +14155550101)")
