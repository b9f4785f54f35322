from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import textback
from textback.core.policy import History, PolicySettings
from textback.errors import StoreError
from textback.outbox import OPT_OUT_CONFIRMATION, Outbox, OutboxRow
from textback.store import Store, SyncStore, open_store

REPO_ROOT = Path(textback.__file__).resolve().parents[1]
T0 = 1_800_000_000.0
ALICE = "+14155550101"
BOB = "+14155550102"
MAX_AGE = 12 * 3600.0

TERMINAL = frozenset({"sent", "failed", "suppressed", "cancelled", "expired"})
ALLOWED = {
    "pending": {"sending", "cancelled", "expired"},
    "sending": {"sent", "failed", "pending"},
}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "textback.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[SyncStore]:
    with open_store(db_path) as opened:
        yield opened


@pytest.fixture
def outbox(store: SyncStore) -> Outbox:
    return store.outbox


def accept(
    outbox: Outbox,
    call_id: str = "c1",
    *,
    to: str | None = ALICE,
    pbx: str = "office",
    state: Literal["pending", "suppressed"] = "pending",
    reason: str = "ok",
    ended: float = T0,
    send_at: float | None = None,
    expires_at: float | None = None,
    now: float | None = None,
    gateway: str = "twilio",
) -> int | None:
    return outbox.accept(
        pbx=pbx,
        call_id=call_id,
        to_e164=to,
        body="Hi, this is Acme Plumbing. Reply STOP to opt out.",
        template="default",
        gateway=gateway,
        state=state,
        reason=reason,
        created_at=ended,
        send_at=ended if send_at is None else send_at,
        expires_at=ended + MAX_AGE if expires_at is None else expires_at,
        now=ended + 1 if now is None else now,
    )


def new_row(outbox: Outbox, call_id: str = "c1", **changes: object) -> int:
    row_id = accept(outbox, call_id, **changes)  # type: ignore[arg-type]
    assert row_id is not None
    return row_id


def row(outbox: Outbox, row_id: int) -> OutboxRow:
    found = outbox.get(row_id)
    assert found is not None
    return found


def claim_one(outbox: Outbox, now: float = T0 + 10) -> OutboxRow:
    [claimed] = outbox.claim_due(now, limit=1)
    return claimed


def run_child(script: str, db_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )


class TestAccept:
    def test_pending_row_holds_what_was_given(self, outbox: Outbox) -> None:
        """A queued text comes back field for field, with floats and no attempt yet."""
        row_id = new_row(outbox, send_at=T0 + 30, now=T0 + 2)
        assert row(outbox, row_id) == OutboxRow(
            id=row_id,
            pbx="office",
            call_id="c1",
            to_e164=ALICE,
            body="Hi, this is Acme Plumbing. Reply STOP to opt out.",
            template="default",
            gateway="twilio",
            state="pending",
            reason="ok",
            attempts=0,
            next_attempt_at=T0 + 30,
            dispatched_at=None,
            provider_id=None,
            last_error=None,
            error_kind=None,
            created_at=T0,
            expires_at=T0 + MAX_AGE,
            updated_at=T0 + 2,
        )

    def test_same_call_twice_inserts_nothing(self, outbox: Outbox) -> None:
        """A duplicated verdict for the same call returns None and leaves the first row alone."""
        first = new_row(outbox)
        assert accept(outbox, to=BOB, state="suppressed", reason="suppressed: cooldown") is None
        [only] = outbox.recent()
        assert (only.id, only.to_e164, only.state) == (first, ALICE, "pending")

    def test_same_call_after_restart_inserts_nothing(self, db_path: Path) -> None:
        """The one-row-per-call rule holds across a reopen of the file."""
        with open_store(db_path) as first:
            assert accept(first.outbox) is not None
        with open_store(db_path) as second:
            assert accept(second.outbox) is None
            assert len(second.outbox.recent()) == 1

    def test_call_id_is_unique_per_pbx(self, outbox: Outbox) -> None:
        """Two PBXes may reuse a call id: each call gets its row."""
        assert accept(outbox, pbx="office") is not None
        assert accept(outbox, pbx="warehouse") is not None

    def test_suppressed_row_may_lack_a_number(self, outbox: Outbox) -> None:
        """An anonymous caller's suppression is recorded with no number."""
        row_id = new_row(outbox, to=None, state="suppressed", reason="suppressed: anonymous")
        assert (row(outbox, row_id).to_e164, row(outbox, row_id).state) == (None, "suppressed")

    def test_pending_without_number_refused(self, outbox: Outbox) -> None:
        """A text that could be sent needs a number to send it to."""
        with pytest.raises(ValueError, match="needs a number"):
            accept(outbox, to=None)
        assert outbox.recent() == []

    @pytest.mark.parametrize("state", ["sending", "sent", "cancelled"])
    def test_other_start_states_refused(self, outbox: Outbox, state: str) -> None:
        """A row starts pending or suppressed, nothing else."""
        with pytest.raises(ValueError, match="pending or suppressed"):
            accept(outbox, state=state)  # type: ignore[arg-type]

    @pytest.mark.parametrize("number", ["4155550101", "+0155", "+1 415 555 0101", ""])
    def test_non_e164_refused(self, outbox: Outbox, number: str) -> None:
        """Numbers are stored in E.164 only, so opt-outs and cooldowns match them."""
        with pytest.raises(ValueError, match=r"E\.164"):
            accept(outbox, to=number)

    def test_schema_guards_other_writers(self, store: SyncStore, db_path: Path) -> None:
        """CHECK constraints refuse an unknown state and a sendable row without a number."""
        conn = sqlite3.connect(db_path)
        insert = (
            "INSERT INTO outbox (pbx, call_id, to_e164, body, gateway, state, reason,"
            " next_attempt_at, created_at, expires_at, updated_at)"
            " VALUES ('p', ?, ?, 'b', 'g', ?, 'r', 0, 0, 0, 0)"
        )
        try:
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                conn.execute(insert, ("a", ALICE, "queued"))
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                conn.execute(insert, ("b", None, "pending"))
        finally:
            conn.close()


class TestClaim:
    def test_claims_due_rows_in_call_order_within_limit(self, outbox: Outbox) -> None:
        """Only due rows are claimed, in the order the calls ended, at most ``limit``."""
        # Insertion and due order differ from call order, so neither can stand in for it.
        second = new_row(outbox, "second", to="+14155550102", ended=T0 - 20, send_at=T0 + 5)
        third = new_row(outbox, "third", to="+14155550103", ended=T0 - 10, send_at=T0 + 1)
        first = new_row(outbox, "first", to="+14155550101", ended=T0 - 30, send_at=T0 + 10)
        new_row(outbox, "future", to="+14155550104", ended=T0 - 40, send_at=T0 + 999)
        claimed = outbox.claim_due(T0 + 20, limit=2)
        assert [r.id for r in claimed] == [first, second]
        assert [r.id for r in outbox.claim_due(T0 + 20)] == [third]

    def test_one_row_per_number_per_claim(self, outbox: Outbox) -> None:
        """Two texts due to one person never go side by side: the older first, then the next."""
        older = new_row(outbox, "older", ended=T0 - 30)
        other = new_row(outbox, "other", to="+14155550199", ended=T0 - 20)
        newer = new_row(outbox, "newer", ended=T0 - 10)
        assert [r.id for r in outbox.claim_due(T0 + 20, limit=10)] == [older, other]
        assert [r.id for r in outbox.claim_due(T0 + 20, limit=10)] == [newer]

    def test_claim_to_send_claims_marks_and_keeps_within_the_caps(self, outbox: Outbox) -> None:
        """The dispatcher's claim: no more than the caps allow, each row marked dispatched."""
        caps = PolicySettings(max_per_hour=3, max_per_day=100)
        ids = [new_row(outbox, f"c{n}", to=f"+1415555010{n}", ended=T0 + n) for n in range(5)]
        rows, cap = outbox.claim_to_send(T0 + 10, 8, caps)
        assert (cap, [r.id for r in rows]) == (None, ids[:3])
        assert all(row(outbox, i).dispatched_at == T0 + 10 for i in ids[:3])
        assert all(r.dispatched_at == T0 + 10 for r in rows)
        assert outbox.claim_to_send(T0 + 11, 8, caps) == ([], "max_per_hour")
        assert row(outbox, ids[3]).state == "pending"

    def test_history_without_volume_skips_the_counts(self, outbox: Outbox) -> None:
        """The decision per call needs the number's own facts; the counts are the caps'."""
        new_row(outbox, "c1")
        outbox.claim_to_send(T0 + 10, 1, PolicySettings())
        full = outbox.history(ALICE, T0 + 20)
        lean = outbox.history(ALICE, T0 + 20, volume=False)
        assert (full.sent_last_hour, full.sent_last_day) == (1, 1)
        assert (lean.sent_last_hour, lean.sent_last_day) == (0, 0)
        assert lean.last_text_at == full.last_text_at == T0

    def test_dispatch_marks_many_in_one_go(self, outbox: Outbox) -> None:
        """Only rows still sending and not yet dispatched are marked (and so may be sent)."""
        a = new_row(outbox, "a", to="+14155550101")
        b = new_row(outbox, "b", to="+14155550102")
        c = new_row(outbox, "c", to="+14155550103")
        outbox.claim_due(T0 + 10, limit=3)
        assert outbox.mark_dispatched(a, T0 + 11)
        assert outbox.mark_failed(c, kind="permanent", error="x", now=T0 + 11)
        assert outbox.mark_dispatched_all([a, b, c], T0 + 12) == {b}
        assert row(outbox, b).dispatched_at == T0 + 12
        assert row(outbox, a).dispatched_at == T0 + 11

    def test_claim_marks_sending_and_counts_the_attempt(self, outbox: Outbox) -> None:
        """A claimed row is sending, one attempt more, and stays claimed in the file."""
        row_id = new_row(outbox)
        claimed = claim_one(outbox, T0 + 10)
        assert (claimed.id, claimed.state, claimed.attempts, claimed.updated_at) == (
            row_id,
            "sending",
            1,
            T0 + 10,
        )
        assert row(outbox, row_id) == claimed
        assert outbox.claim_due(T0 + 20) == []

    def test_expired_rows_are_never_claimed(self, outbox: Outbox) -> None:
        """A row at or past expires_at is not sent even before expire() runs."""
        new_row(outbox, expires_at=T0 + 60)
        assert outbox.claim_due(T0 + 60) == []
        assert outbox.claim_due(T0 + 59.9) != []

    def test_suppressed_rows_are_never_claimed(self, outbox: Outbox) -> None:
        """A suppressed row, even with a number and a past send time, is not sent."""
        new_row(outbox, state="suppressed", reason="suppressed: cooldown")
        assert outbox.claim_due(T0 + 10) == []

    def test_opt_out_written_behind_the_claimers_back(self, outbox: Outbox, db_path: Path) -> None:
        """An opt-out inserted by another writer with plain SQL still stops the text."""
        alice = new_row(outbox, "a", to=ALICE)
        raw = sqlite3.connect(db_path)
        try:
            raw.execute("INSERT INTO optouts VALUES (?, 'manual', ?)", (ALICE, T0))
            raw.commit()
        finally:
            raw.close()
        assert outbox.claim_due(T0 + 10) == []
        assert (row(outbox, alice).state, row(outbox, alice).reason) == ("cancelled", "opted_out")

    def test_not_sms_capable_number_is_cancelled_not_claimed(
        self, outbox: Outbox, db_path: Path
    ) -> None:
        """A number known to be unable to take texts is never paid for again."""
        alice = new_row(outbox, "a", to=ALICE)
        raw = sqlite3.connect(db_path)
        try:
            raw.execute("INSERT INTO not_sms_capable VALUES (?, '21614', ?)", (ALICE, T0))
            raw.commit()
        finally:
            raw.close()
        assert outbox.claim_due(T0 + 10) == []
        assert row(outbox, alice).reason == "not_sms_capable"

    def test_limit_zero_and_negative(self, outbox: Outbox) -> None:
        """limit=0 claims nothing; a negative limit is a ValueError."""
        new_row(outbox)
        assert outbox.claim_due(T0 + 10, limit=0) == []
        with pytest.raises(ValueError, match="limit"):
            outbox.claim_due(T0 + 10, limit=-1)
        assert row(outbox, 1).state == "pending"


class TestTransitions:
    def test_dispatched_then_sent(self, outbox: Outbox) -> None:
        """The happy path keeps the dispatch time and stores the provider's id."""
        row_id = new_row(outbox)
        claim_one(outbox)
        assert outbox.mark_dispatched(row_id, T0 + 11)
        assert outbox.mark_sent(row_id, "SM123", T0 + 12)
        sent = row(outbox, row_id)
        assert (sent.state, sent.provider_id, sent.dispatched_at, sent.updated_at, sent.reason) == (
            "sent",
            "SM123",
            T0 + 11,
            T0 + 12,
            "ok",
        )

    def test_sent_without_dispatch_mark_still_counts(self, outbox: Outbox) -> None:
        """A sent row always has a dispatch time, so the caps count it."""
        row_id = new_row(outbox)
        claim_one(outbox)
        assert outbox.mark_sent(row_id, "", T0 + 12)
        assert row(outbox, row_id).dispatched_at == T0 + 12

    def test_dispatch_is_marked_once(self, outbox: Outbox) -> None:
        """A second dispatch mark for the same attempt is refused: do not send twice."""
        row_id = new_row(outbox)
        claim_one(outbox)
        assert outbox.mark_dispatched(row_id, T0 + 11)
        assert not outbox.mark_dispatched(row_id, T0 + 15)
        assert row(outbox, row_id).dispatched_at == T0 + 11

    def test_retry_returns_to_pending_and_next_claim_clears_dispatch(self, outbox: Outbox) -> None:
        """A transient failure requeues with its error; the next claim is a fresh attempt."""
        row_id = new_row(outbox)
        claim_one(outbox)
        outbox.mark_dispatched(row_id, T0 + 11)
        assert outbox.mark_retry(
            row_id, next_attempt_at=T0 + 100, error="HTTP 503", kind="transient", now=T0 + 12
        )
        retried = row(outbox, row_id)
        assert (
            retried.state,
            retried.next_attempt_at,
            retried.last_error,
            retried.error_kind,
        ) == ("pending", T0 + 100, "HTTP 503", "transient")
        assert outbox.claim_due(T0 + 99) == []
        again = claim_one(outbox, T0 + 100)
        assert (again.attempts, again.dispatched_at) == (2, None)

    def test_failed_records_kind_as_reason(self, outbox: Outbox) -> None:
        """A permanent failure ends the row with the failure kind as its reason."""
        row_id = new_row(outbox)
        claim_one(outbox)
        assert outbox.mark_failed(row_id, kind="filtered", error="30007 spam", now=T0 + 12)
        failed = row(outbox, row_id)
        assert (failed.state, failed.reason, failed.error_kind, failed.last_error) == (
            "failed",
            "filtered",
            "filtered",
            "30007 spam",
        )

    @pytest.mark.parametrize("end", ["sent", "failed", "cancelled", "expired", "suppressed"])
    def test_ended_rows_cannot_be_resurrected(self, outbox: Outbox, end: str) -> None:
        """A stale worker's marks on an ended row change nothing and return False."""
        row_id = _row_ending_in(outbox, end)
        before = row(outbox, row_id)
        assert not outbox.mark_dispatched(row_id, T0 + 50)
        assert not outbox.mark_sent(row_id, "SM-stale", T0 + 50)
        assert not outbox.mark_retry(
            row_id, next_attempt_at=T0 + 50, error="stale", kind="transient", now=T0 + 50
        )
        assert not outbox.mark_failed(row_id, kind="permanent", error="stale", now=T0 + 50)
        assert outbox.cancel_pending(ALICE, "recovered", T0 + 50) == []
        assert outbox.expire(T0 + 10 * MAX_AGE) == []
        assert outbox.claim_due(T0 + 50) == []
        assert row(outbox, row_id) == before

    def test_marks_on_a_pending_row_change_nothing(self, outbox: Outbox) -> None:
        """Only a claimed row can be dispatched, sent, retried or failed."""
        row_id = new_row(outbox)
        before = row(outbox, row_id)
        assert not outbox.mark_dispatched(row_id, T0 + 50)
        assert not outbox.mark_sent(row_id, "SM", T0 + 50)
        assert not outbox.mark_failed(row_id, kind="permanent", error="x", now=T0 + 50)
        assert row(outbox, row_id) == before

    def test_unknown_row_id(self, outbox: Outbox) -> None:
        """Marks on a row that does not exist return False; get() returns None."""
        assert not outbox.mark_sent(42, "SM", T0)
        assert outbox.get(42) is None

    def test_cancel_pending_only_touches_that_numbers_pending_rows(self, outbox: Outbox) -> None:
        """Recovery cancels the caller's queued texts, not one on the wire, not others'."""
        on_wire = new_row(outbox, "a1", to=ALICE)
        claim_one(outbox)
        queued = [new_row(outbox, "a2", to=ALICE), new_row(outbox, "a3", to=ALICE)]
        bobs = new_row(outbox, "b1", to=BOB)
        assert outbox.cancel_pending(ALICE, "recovered", T0 + 20) == queued
        assert [(row(outbox, i).state, row(outbox, i).reason) for i in queued] == [
            ("cancelled", "recovered")
        ] * 2
        assert row(outbox, on_wire).state == "sending"
        assert row(outbox, bobs).state == "pending"
        assert outbox.cancel_pending(ALICE, "recovered", T0 + 21) == []

    def test_expire_ends_only_stale_pending_rows(self, outbox: Outbox) -> None:
        """Pending rows at expires_at become expired (max_age); younger and claimed rows stay."""
        old = new_row(outbox, "old", expires_at=T0 + 100, send_at=T0 + 500)
        young = new_row(outbox, "young", expires_at=T0 + 200, send_at=T0 + 500)
        claimed = new_row(outbox, "claimed", expires_at=T0 + 50)
        claim_one(outbox, T0 + 10)
        assert outbox.expire(T0 + 100) == [old]
        assert (row(outbox, old).state, row(outbox, old).reason) == ("expired", "max_age")
        assert row(outbox, young).state == "pending"
        assert row(outbox, claimed).state == "sending"


def _row_ending_in(outbox: Outbox, end: str) -> int:
    if end == "suppressed":
        return new_row(outbox, state="suppressed", reason="suppressed: cooldown")
    row_id = new_row(outbox, expires_at=T0 + 100)
    if end == "cancelled":
        assert outbox.cancel_pending(ALICE, "recovered", T0 + 5) == [row_id]
    elif end == "expired":
        assert outbox.expire(T0 + 100) == [row_id]
    else:
        claim_one(outbox)
        if end == "sent":
            assert outbox.mark_sent(row_id, "SM1", T0 + 11)
        else:
            assert outbox.mark_failed(row_id, kind="permanent", error="no", now=T0 + 11)
    return row_id


class TestRecover:
    def test_claimed_never_dispatched_is_requeued(self, db_path: Path) -> None:
        """Claim, then the process stops before sending: the restart sends it again."""
        with open_store(db_path) as first:
            row_id = new_row(first.outbox)
            claim_one(first.outbox)
        with open_store(db_path) as second:
            assert second.outbox.recover(T0 + 30, idempotent=False) == ([row_id], [])
            again = claim_one(second.outbox, T0 + 31)
            assert (again.id, again.attempts) == (row_id, 2)

    @pytest.mark.parametrize(
        ("idempotent", "gateway", "expected_state"),
        [
            (False, None, "failed"),
            (True, None, "pending"),
            (True, "twilio", "pending"),
            (True, "telnyx", "failed"),  # another provider never saw our reference
            (False, "twilio", "failed"),
        ],
    )
    def test_dispatched_is_ambiguous_unless_idempotent(
        self, db_path: Path, idempotent: bool, gateway: str | None, expected_state: str
    ) -> None:
        """A request that may have reached the provider is only resent where it drops duplicates."""
        with open_store(db_path) as first:
            row_id = new_row(first.outbox, gateway="twilio")
            claim_one(first.outbox)
            assert first.outbox.mark_dispatched(row_id, T0 + 11)
        with open_store(db_path) as second:
            requeued, ambiguous = second.outbox.recover(
                T0 + 30, idempotent=idempotent, gateway=gateway
            )
            settled = row(second.outbox, row_id)
        if expected_state == "pending":
            assert (requeued, ambiguous) == ([row_id], [])
            assert (settled.state, settled.dispatched_at) == ("pending", None)
        else:
            assert (requeued, ambiguous) == ([], [row_id])
            assert (settled.state, settled.reason) == ("failed", "ambiguous")
            assert settled.last_error is not None
            assert "not sent again" in settled.last_error

    def test_recover_leaves_other_rows_alone(self, outbox: Outbox) -> None:
        """Only sending rows are settled; pending, sent and suppressed rows keep their state."""
        pending = new_row(outbox, "p", send_at=T0 + 500)
        sent = _row_ending_in(outbox, "sent")
        suppressed = new_row(outbox, "s", state="suppressed", reason="suppressed: cooldown")
        before = [row(outbox, i) for i in (pending, sent, suppressed)]
        assert outbox.recover(T0 + 30, idempotent=False) == ([], [])
        assert [row(outbox, i) for i in (pending, sent, suppressed)] == before

    @pytest.mark.parametrize(("dispatch", "expected"), [(False, "requeued"), (True, "ambiguous")])
    def test_sigkill_mid_send(self, db_path: Path, dispatch: bool, expected: str) -> None:
        """A process SIGKILLed after the claim (and the dispatch mark) is settled on restart."""
        script = f"""
            import os, signal, sys
            from pathlib import Path
            from textback.store import open_store
            store = open_store(Path(sys.argv[1]))
            row_id = store.outbox.accept(
                pbx="office", call_id="c1", to_e164="{ALICE}", body="hi", template=None,
                gateway="twilio", state="pending", reason="ok", created_at={T0},
                send_at={T0}, expires_at={T0 + MAX_AGE}, now={T0},
            )
            [row] = store.outbox.claim_due({T0 + 10})
            if {dispatch}:
                assert store.outbox.mark_dispatched(row.id, {T0 + 11})
            os.kill(os.getpid(), signal.SIGKILL)
        """
        done = run_child(script, db_path)
        assert done.returncode == -9, done.stderr
        with open_store(db_path) as restarted:
            [left] = restarted.outbox.recent()
            assert left.state == "sending"
            requeued, ambiguous = restarted.outbox.recover(T0 + 60, idempotent=False)
            assert {"requeued": requeued, "ambiguous": ambiguous}[expected] == [left.id]
            assert requeued + ambiguous == [left.id]

    def test_stale_worker_cannot_undo_recovery(self, db_path: Path) -> None:
        """After a restart settled a row, the old process's late marks change nothing."""
        with open_store(db_path) as stale, open_store(db_path) as fresh:
            row_id = new_row(stale.outbox)
            claim_one(stale.outbox)
            stale.outbox.mark_dispatched(row_id, T0 + 11)
            assert fresh.outbox.recover(T0 + 30, idempotent=False) == ([], [row_id])
            assert not stale.outbox.mark_sent(row_id, "SM-late", T0 + 31)
            assert not stale.outbox.mark_retry(
                row_id, next_attempt_at=T0 + 40, error="x", kind="transient", now=T0 + 31
            )
            assert (row(fresh.outbox, row_id).state, row(fresh.outbox, row_id).provider_id) == (
                "failed",
                None,
            )


class TestNextDue:
    def test_nothing_pending(self, outbox: Outbox) -> None:
        """With no pending row there is nothing to wake for."""
        assert outbox.next_due() is None
        _row_ending_in(outbox, "sent")
        assert outbox.next_due() is None

    def test_earliest_send_or_expiry(self, outbox: Outbox) -> None:
        """The earliest pending next attempt, or expiry when that comes first."""
        new_row(outbox, "a", send_at=T0 + 300)
        new_row(outbox, "b", send_at=T0 + 200)
        assert outbox.next_due() == T0 + 200
        new_row(outbox, "c", send_at=T0 + 900, expires_at=T0 + 150)
        assert outbox.next_due() == T0 + 150


class TestHistory:
    def test_unknown_number(self, outbox: Outbox) -> None:
        """A number never seen has an empty history."""
        assert outbox.history(ALICE, T0) == History()

    def test_last_text_counts_pending_sending_and_sent_only(self, outbox: Outbox) -> None:
        """Cooldown starts from the newest text to this number that went or will go out."""
        _row_ending_in(outbox, "sent")  # the call ended at T0
        new_row(outbox, "sending", ended=T0 + 100)
        claim_one(outbox, T0 + 200)
        assert outbox.history(ALICE, T0 + 300).last_text_at == T0 + 100
        new_row(outbox, "pending", ended=T0 + 150, send_at=T0 + 1000)
        assert outbox.history(ALICE, T0 + 300).last_text_at == T0 + 150
        new_row(outbox, "suppressed", ended=T0 + 400, state="suppressed", reason="suppressed: x")
        new_row(outbox, "bob", to=BOB, ended=T0 + 900)
        failed = new_row(outbox, "failed", ended=T0 + 500)
        claim_one(outbox, T0 + 501)
        outbox.mark_failed(failed, kind="filtered", error="spam", now=T0 + 502)
        assert outbox.history(ALICE, T0 + 600).last_text_at == T0 + 150
        outbox.cancel_pending(ALICE, "recovered", T0 + 600)
        assert outbox.history(ALICE, T0 + 600).last_text_at == T0 + 100

    def test_volume_counts_dispatches_of_every_number(self, outbox: Outbox) -> None:
        """Caps count requests on the wire in the last hour and day, whoever they went to."""
        for n, (to, dispatched) in enumerate(
            [(ALICE, T0), (BOB, T0 + 50_000), (BOB, T0 + 84_000), (ALICE, T0 + 85_000)]
        ):
            row_id = new_row(outbox, f"c{n}", to=to, ended=dispatched - 5)
            claim_one(outbox, dispatched)
            outbox.mark_dispatched(row_id, dispatched)
            if n % 2:
                outbox.mark_failed(row_id, kind="permanent", error="x", now=dispatched + 1)
        new_row(outbox, "queued", send_at=T0 + 90_000)  # not dispatched: not counted
        # The first dispatch is exactly a day old: out of the window.
        history = outbox.history("", T0 + 86_400)
        assert (history.sent_last_hour, history.sent_last_day) == (2, 3)

    def test_flags(self, outbox: Outbox) -> None:
        """Opt-out and not-SMS-capable flags are per number."""
        outbox.add_optout(ALICE, "sms", T0)
        outbox.mark_not_sms_capable(BOB, "30006", T0)
        assert (outbox.history(ALICE, T0).opted_out, outbox.history(ALICE, T0).not_sms_capable) == (
            True,
            False,
        )
        assert (outbox.history(BOB, T0).opted_out, outbox.history(BOB, T0).not_sms_capable) == (
            False,
            True,
        )


class TestOptouts:
    def test_add_list_remove(self, outbox: Outbox) -> None:
        """Adding twice keeps the first; removal reports whether there was one."""
        assert outbox.add_optout(BOB, "manual", T0 + 5)
        assert outbox.add_optout(ALICE, "sms", T0)
        assert not outbox.add_optout(ALICE, "provider", T0 + 9)
        assert outbox.list_optouts() == [(ALICE, "sms", T0), (BOB, "manual", T0 + 5)]
        assert outbox.is_opted_out(ALICE)
        assert outbox.remove_optout(ALICE)
        assert not outbox.remove_optout(ALICE)
        assert not outbox.is_opted_out(ALICE)
        assert outbox.list_optouts() == [(BOB, "manual", T0 + 5)]

    def test_bad_source_and_number_refused(self, outbox: Outbox) -> None:
        """Only known sources and E.164 numbers are stored."""
        with pytest.raises(ValueError, match="source"):
            outbox.add_optout(ALICE, "email", T0)
        with pytest.raises(ValueError, match=r"E\.164"):
            outbox.add_optout("415-555-0101", "manual", T0)
        assert outbox.list_optouts() == []

    def test_optout_cancels_queued_texts_at_once(self, outbox: Outbox) -> None:
        """An opt-out ends the number's pending texts, not the one on the wire nor others'."""
        on_wire = new_row(outbox, "a1")
        claim_one(outbox)
        queued = new_row(outbox, "a2", send_at=T0 + 60)
        bobs = new_row(outbox, "b1", to=BOB, send_at=T0 + 60)
        outbox.add_optout(ALICE, "sms", T0 + 20)
        assert [row(outbox, i).state for i in (on_wire, queued, bobs)] == [
            "sending",
            "cancelled",
            "pending",
        ]
        assert row(outbox, queued).reason == "opted_out"

    def test_not_sms_capable_keeps_first_code(self, outbox: Outbox, db_path: Path) -> None:
        """The first failure code is remembered; pending texts to the number are cancelled."""
        queued = new_row(outbox, send_at=T0 + 60)
        assert outbox.mark_not_sms_capable(ALICE, "21614", T0)
        assert not outbox.mark_not_sms_capable(ALICE, "30006", T0 + 1)
        assert (row(outbox, queued).state, row(outbox, queued).reason) == (
            "cancelled",
            "not_sms_capable",
        )
        raw = sqlite3.connect(db_path)
        try:
            assert raw.execute("SELECT e164, code FROM not_sms_capable").fetchall() == [
                (ALICE, "21614")
            ]
        finally:
            raw.close()

    async def test_cli_process_opts_out_beside_the_daemon(self, db_path: Path) -> None:
        """An opt-out written by another process while the daemon runs stops the queued text."""
        async with await Store.open(db_path) as daemon:
            row_id = await daemon.outbox.accept(
                pbx="office",
                call_id="c1",
                to_e164=ALICE,
                body="hi",
                template=None,
                gateway="twilio",
                state="pending",
                reason="ok",
                created_at=T0,
                send_at=T0 + 30,
                expires_at=T0 + MAX_AGE,
                now=T0,
            )
            script = f"""
                import sys
                from pathlib import Path
                from textback.store import open_store
                with open_store(Path(sys.argv[1])) as store:
                    print(store.outbox.add_optout("{ALICE}", "manual", {T0 + 10}))
            """
            done = await asyncio.to_thread(run_child, script, db_path)
            assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr
            assert await daemon.outbox.claim_due(T0 + 30) == []
            cancelled = await daemon.outbox.get(row_id or 0)
            assert cancelled is not None
            assert (cancelled.state, cancelled.reason) == ("cancelled", "opted_out")
            assert await daemon.outbox.list_optouts() == [(ALICE, "manual", T0 + 10)]


class TestRecent:
    def test_newest_call_first_with_limit(self, outbox: Outbox) -> None:
        """recent() orders by the call's end, newest first, and honours the limit."""
        for n in range(5):
            new_row(outbox, f"c{n}", ended=T0 + 100 * ((n * 3) % 5))
        assert [r.call_id for r in outbox.recent()] == ["c3", "c1", "c4", "c2", "c0"]
        assert [r.call_id for r in outbox.recent(limit=2)] == ["c3", "c1"]
        with pytest.raises(ValueError, match="limit"):
            outbox.recent(limit=-1)


class TestClosed:
    def test_closed_store_refuses(self, db_path: Path) -> None:
        """After close, the outbox raises StoreError naming the file."""
        store = open_store(db_path)
        store.close()
        store.close()
        with pytest.raises(StoreError, match="closed"):
            store.outbox.recent()
        with pytest.raises(StoreError, match="closed"):
            accept(store.outbox)


class TestAsyncStore:
    async def test_calls_and_outbox_share_one_thread(self, db_path: Path) -> None:
        """Both facades run on the store's single worker thread."""
        async with await Store.open(db_path) as store:
            await store.outbox.accept(
                pbx="office",
                call_id="c1",
                to_e164=ALICE,
                body="hi",
                template=None,
                gateway="twilio",
                state="pending",
                reason="ok",
                created_at=T0,
                send_at=T0,
                expires_at=T0 + MAX_AGE,
                now=T0,
            )
            await store.calls.recent()
            workers = [t for t in threading.enumerate() if t.name.startswith("textback-store")]
            assert len(workers) == 1
            assert store.path == db_path
        assert [t for t in threading.enumerate() if t.name.startswith("textback-store")] == []

    async def test_concurrent_claims_never_share_a_row(self, db_path: Path) -> None:
        """Twenty concurrent claimers of ten rows get each row exactly once."""
        async with await Store.open(db_path) as store:
            for n in range(10):
                await store.outbox.accept(
                    pbx="office",
                    call_id=f"c{n}",
                    to_e164=ALICE,
                    body="hi",
                    template=None,
                    gateway="twilio",
                    state="pending",
                    reason="ok",
                    created_at=T0 + n,
                    send_at=T0 + n,
                    expires_at=T0 + MAX_AGE,
                    now=T0,
                )
            batches = await asyncio.gather(
                *(store.outbox.claim_due(T0 + 60, limit=1) for _ in range(20))
            )
            ids = [r.id for batch in batches for r in batch]
            assert sorted(ids) == list(range(1, 11))

    async def test_every_outbox_method_crosses_the_thread(self, db_path: Path) -> None:
        """The async outbox gives the same answers as the sync one, end to end."""
        async with await Store.open(db_path) as store:
            box = store.outbox
            row_id = await box.accept(
                pbx="office",
                call_id="c1",
                to_e164=ALICE,
                body="hi",
                template=None,
                gateway="twilio",
                state="pending",
                reason="ok",
                created_at=T0,
                send_at=T0 + 5,
                expires_at=T0 + MAX_AGE,
                now=T0,
            )
            assert row_id == 1
            assert await box.next_due() == T0 + 5
            [claimed] = await box.claim_due(T0 + 5)
            assert await box.mark_dispatched(1, T0 + 6)
            assert await box.mark_retry(
                1, next_attempt_at=T0 + 7, error="503", kind="transient", now=T0 + 6
            )
            await box.claim_due(T0 + 7)
            assert await box.recover(T0 + 8, idempotent=True) == ([1], [])
            await box.claim_due(T0 + 9)
            assert await box.mark_failed(1, kind="permanent", error="x", now=T0 + 9) is True
            assert await box.mark_sent(1, "SM", T0 + 9) is False
            assert await box.cancel_pending(ALICE, "recovered", T0 + 9) == []
            assert await box.expire(T0 + 9) == []
            assert await box.add_optout(BOB, "sms", T0)
            assert await box.is_opted_out(BOB)
            assert await box.remove_optout(BOB)
            assert await box.list_optouts() == []
            assert await box.mark_not_sms_capable(BOB, "21614", T0)
            assert (await box.history(BOB, T0 + 10)).not_sms_capable
            got = await box.get(1)
            assert got == replace(
                claimed,
                state="failed",
                attempts=3,
                reason="permanent",
                last_error="x",
                error_kind="permanent",
                next_attempt_at=T0 + 7,
                updated_at=T0 + 9,
            )
            assert await box.recent() == [got]

    async def test_closed_store_refuses(self, db_path: Path) -> None:
        """After aclose(), twice being fine, every outbox call is a StoreError."""
        store = await Store.open(db_path)
        await store.aclose()
        await store.aclose()
        with pytest.raises(StoreError, match="closed"):
            await store.outbox.next_due()
        with pytest.raises(StoreError, match="closed"):
            await store.calls.recent()


# -- the state machine under random operations -------------------------------------

_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "accept",
                "suppress",
                "claim",
                "dispatch",
                "sent",
                "retry",
                "failed",
                "cancel",
                "expire",
                "recover",
                "recover_idem",
                "optout",
            ]
        ),
        st.integers(min_value=0, max_value=3),  # which call / row / number
        st.floats(min_value=0, max_value=200, allow_nan=False),  # time step
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS)
def test_random_operations_only_follow_the_state_graph(
    ops: list[tuple[str, int, float]],
) -> None:
    """Whatever the order of operations, rows move only along the allowed edges."""
    numbers = [ALICE, BOB, "+14155550103", "+14155550104"]
    with (
        tempfile.TemporaryDirectory() as directory,
        open_store(Path(directory) / "t.sqlite3") as store,
    ):
        box = store.outbox
        now = T0
        seen: dict[int, str] = {}
        for op, n, step in ops:
            now += step
            match op:
                case "accept":
                    accept(box, f"c{n}", to=numbers[n], ended=now - 1, expires_at=now + 300)
                case "suppress":
                    accept(box, f"c{n}", to=None, state="suppressed", reason="suppressed: x")
                case "claim":
                    box.claim_due(now, limit=n)
                case "dispatch":
                    box.mark_dispatched(n + 1, now)
                case "sent":
                    box.mark_sent(n + 1, "SM", now)
                case "retry":
                    box.mark_retry(n + 1, next_attempt_at=now + 5, error="e", kind="t", now=now)
                case "failed":
                    box.mark_failed(n + 1, kind="permanent", error="e", now=now)
                case "cancel":
                    box.cancel_pending(numbers[n], "recovered", now)
                case "expire":
                    box.expire(now)
                case "recover":
                    box.recover(now, idempotent=False)
                case "recover_idem":
                    box.recover(now, idempotent=True)
                case "optout":
                    box.add_optout(numbers[n], "sms", now)
            rows = box.recent(limit=100)
            assert len({(r.pbx, r.call_id) for r in rows}) == len(rows)
            for r in rows:
                before = seen.get(r.id)
                if before is None:
                    assert r.state in {"pending", "suppressed"}
                elif before is not None and before != r.state:
                    assert before not in TERMINAL, f"row {r.id} left {before} for {r.state}"
                    assert r.state in ALLOWED[before], f"row {r.id}: {before} → {r.state}"
                if r.state == "sending" or r.dispatched_at is not None:
                    assert r.attempts >= 1
                seen[r.id] = r.state


class TestOptOutConfirmation:
    def test_the_confirmation_of_an_opt_out_still_goes_out(self, outbox: Outbox) -> None:
        """After STOP, the one confirmation text is claimed; any other pending text is not."""
        assert outbox.add_optout(ALICE, "sms", T0)
        confirmation = outbox.accept(
            pbx="textback",
            call_id="opt_out_confirmation-1",
            to_e164=ALICE,
            body="You're out.",
            template=OPT_OUT_CONFIRMATION,
            gateway="twilio",
            state="pending",
            reason="ok",
            created_at=T0,
            send_at=T0,
            expires_at=T0 + MAX_AGE,
            now=T0,
        )
        other = new_row(outbox, "c2", ended=T0)
        claimed = outbox.claim_due(T0 + 10)
        assert [r.id for r in claimed] == [confirmation]
        assert row(outbox, other).state == "cancelled"
