"""``textback stats``: the owner's report over a real SQLite file, checked by hand.

The database is written through the store's own APIs (the call log, the
outbox's accept/claim/dispatch/sent transitions, the inbox) exactly as the
daemon writes it, then read back through a read-only connection. Every
expected number is worked out by hand in the comments next to it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from textback.config import Config, RoiConfig, load
from textback.config_web import hash_password
from textback.conversations import Conversations
from textback.core.keywords import Intent
from textback.core.verdict import CallVerdict, Reason, Verdict
from textback.errors import StoreError
from textback.inbox_store import Counts, Dashboard
from textback.outbox import OPT_OUT_CONFIRMATION
from textback.stats import (
    CSV_COLUMNS,
    Line,
    Stats,
    compute,
    compute_at,
    last_7_days,
    main,
    render,
    week_start,
)
from textback.store import Store, SyncStore, open_reader, open_store
from textback.web import WebDeps, make_app
from textback.web.pages import dashboard_page
from textback.web.state import Site


def utc(text: str) -> float:
    """``"2027-01-12 15:00:00"`` (UTC) → Unix seconds."""
    return datetime.fromisoformat(text + "+00:00").timestamp()


# Chicago is UTC-6 all January: a Monday 03:00 UTC is still Sunday evening there.
TZ = "America/Chicago"
NOW = utc("2027-01-25 18:00:00")  # Monday Jan 25, 12:00 in Chicago (ISO week 2027-W04)
SINCE = utc("2027-01-11 18:00:00")  # 14 days before: Monday Jan 11, 12:00 (2027-W02)
ROI = RoiConfig(average_job_value=200.0, close_rate=0.5, sms_segment_price=0.0079, recovered_days=7)

MAIN = "+12125550100"  # the office's main number
SALES = "+12125550199"
A, B = "carrier-a", "carrier-b"

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"
DAVE = "+14155550104"
ERIN = "+14155550105"
FRANK = "+14155550106"
GRACE = "+14155550107"
HEIDI = "+14155550108"
IVAN = "+14155550109"
JUDY = "+14155550110"
LEO = "+14155550112"
MALLORY = "+14155550113"
ZED = "+14155550199"

SHORT = "Sorry we missed your call - Acme Plumbing. How can we help? Reply STOP to opt out."
# 185 GSM-7 characters: over 160, so two parts of at most 153.
LONG = (
    SHORT + " We are out on a job right now and will call you back within the hour;"
    " tell us what you need and where."
)
# UCS-2 because of the emoji: 98 units, over 70, so two parts of at most 67.
INBOX_ANSWER = (
    "Sure! We can come today at 3pm 👍 Please leave the side gate open and keep the dog inside."
    " Thanks!"
)
CONFIRMATION = "You're unsubscribed from Acme Plumbing texts. Reply START to resubscribe."  # 1


class Office:
    """Writes what the daemon would: calls, their texts and replies, through the store's APIs."""

    def __init__(self, store: SyncStore) -> None:
        self.store = store
        self.count = 0

    def call(
        self,
        caller: str | None,
        started: str,
        *,
        trunk: str = A,
        did: str = MAIN,
        ring: float = 20.0,
        verdict: Verdict = Verdict.MISSED,
    ) -> CallVerdict:
        self.count += 1
        start = utc(started)
        answered = verdict is Verdict.ANSWERED
        call = CallVerdict(
            call_id=f"1800000000.{self.count}",
            pbx="asterisk",
            trunk=trunk,
            verdict=verdict,
            reason=Reason.ANSWERED
            if answered
            else Reason.UNKNOWN
            if verdict is Verdict.UNKNOWN
            else Reason.ANONYMOUS
            if caller is None
            else Reason.NO_ANSWER,
            caller_raw=caller or "anonymous",
            caller_name="",
            anonymous=caller is None,
            did=did,
            started_at=start,
            ended_at=start + ring + (120 if answered else 0),
            answered_at=start + ring if answered else None,
            ring_seconds=ring,
        )
        assert self.store.calls.record(call, caller_e164=caller, did_e164=did, now=call.ended_at)
        return call

    def queue(
        self,
        call: CallVerdict,
        *,
        send_at: float,
        body: str = SHORT,
        expires_at: float | None = None,
    ) -> int:
        """A pending text for a missed call, due at ``send_at``."""
        row_id = self.store.outbox.accept(
            pbx=call.pbx,
            call_id=call.call_id,
            to_e164=call.caller_raw,
            body=body,
            template="missed",
            gateway="twilio",
            state="pending",
            reason="ok",
            created_at=call.ended_at,
            send_at=send_at,
            expires_at=call.ended_at + 43200 if expires_at is None else expires_at,
            now=call.ended_at,
        )
        assert row_id is not None
        return row_id

    def suppress(self, call: CallVerdict, why: str) -> None:
        row_id = self.store.outbox.accept(
            pbx=call.pbx,
            call_id=call.call_id,
            to_e164=None if call.anonymous else call.caller_raw,
            body=SHORT,
            template="missed",
            gateway="twilio",
            state="suppressed",
            reason=f"suppressed: {why}",
            created_at=call.ended_at,
            send_at=call.ended_at,
            expires_at=call.ended_at + 43200,
            now=call.ended_at,
        )
        assert row_id is not None

    def dispatch(self, row_id: int, at: float) -> None:
        """Claim the row (the only one due) and mark it on the wire at ``at``."""
        assert [row.id for row in self.store.outbox.claim_due(at)] == [row_id]
        assert self.store.outbox.mark_dispatched(row_id, at)

    def send(self, call: CallVerdict, *, wait: float, body: str = SHORT) -> str:
        """Queue, claim and send the text for ``call``, ``wait`` seconds after the call ended."""
        sent_at = call.ended_at + wait
        row_id = self.queue(call, send_at=sent_at, body=body)
        self.dispatch(row_id, sent_at)
        provider_id = f"SM{row_id:04d}"
        assert self.store.outbox.mark_sent(row_id, provider_id, sent_at + 1)
        return provider_id

    def other_text(self, to: str, body: str, at: str, kind: str) -> int:
        """A text that answers no call (an inbox answer, a confirmation), sent at ``at``."""
        sent_at = utc(at)
        self.count += 1
        row_id = self.store.outbox.accept(
            pbx="textback",
            call_id=f"{kind}-{self.count}",
            to_e164=to,
            body=body,
            template=kind,
            gateway="twilio",
            state="pending",
            reason="ok",
            created_at=sent_at,
            send_at=sent_at,
            expires_at=sent_at + 43200,
            now=sent_at,
        )
        assert row_id is not None
        self.dispatch(row_id, sent_at)
        assert self.store.outbox.mark_sent(row_id, f"SM{row_id:04d}", sent_at + 1)
        return row_id

    def receipt(self, provider_id: str, delivered: bool, at: float) -> None:
        found = self.store.inbox.record_receipt(
            provider_id=provider_id,
            delivered=delivered,
            status="delivered" if delivered else "undelivered",
            error_code="" if delivered else "30003",
            kind=None,
            now=at,
        )
        assert found is not None

    def reply(self, sender: str, body: str, at: str, intent: Intent = Intent.MESSAGE) -> None:
        self.count += 1
        stored = self.store.inbox.add_inbound(
            gateway="twilio",
            provider_id=f"SMin{self.count}",
            sender=sender,
            recipient=MAIN,
            body=body,
            intent=intent,
            urgent=False,
            now=utc(at),
        )
        assert stored is not None


def seed(store: SyncStore) -> None:
    """Two weeks of an office's calls, in the order they happened (times UTC).

    C1..C13 are the missed calls of the period [Jan 11 18:00, Jan 25 18:00];
    the weeks named are ISO weeks in Chicago.
    """
    o = Office(store)

    # Zed, before the period: missed, texted, opted out; his reply falls in the period
    # but his call does not, so none of it counts.
    zed = o.call(ZED, "2027-01-10 15:00:00")
    o.send(zed, wait=40)
    store.outbox.add_optout(ZED, "sms", utc("2027-01-10 16:00:00"))
    o.reply(ZED, "Still need a plumber", "2027-01-11 19:00:00")

    # C1 Alice, trunk A, MAIN, W02: texted 60 s after the call ended, delivered; she replies
    # with a question (replied; recovered by reply). Staff answer her from the inbox.
    c1 = o.call(ALICE, "2027-01-12 15:00:00")
    o.receipt(o.send(c1, wait=60), True, utc("2027-01-12 15:01:30"))
    o.reply(ALICE, "Can you come and fix my sink?", "2027-01-12 16:00:00")
    answer = o.other_text(ALICE, INBOX_ANSWER, "2027-01-12 16:10:00", "inbox_reply")
    store.inbox.add_reply(
        to=ALICE, body=INBOX_ANSWER, outbox_id=answer, user="sam", now=utc("2027-01-12 16:10:00")
    )

    # C2 Bob, A, MAIN, W02: a two-part text 120 s after; no receipt, no reply; he calls again
    # the next day and is answered (recovered by call).
    c2 = o.call(BOB, "2027-01-13 20:00:00", ring=30)
    o.send(c2, wait=120, body=LONG)
    o.call(BOB, "2027-01-14 14:00:00", verdict=Verdict.ANSWERED)

    # C3 Carol, B, SALES, W02: not texted (reason switched off); answered 9 days later,
    # after the 7-day window (not recovered).
    c3 = o.call(CAROL, "2027-01-15 10:00:00", trunk=B, did=SALES, ring=10)
    o.suppress(c3, "reason_off")

    # C4 a withheld number, B, SALES, W02: not texted (anonymous), never recoverable.
    c4 = o.call(None, "2027-01-16 17:00:00", trunk=B, did=SALES)
    o.suppress(c4, "anonymous")

    # C5 Dave, A, MAIN: Sunday 21:00 in Chicago, so W02 (in UTC it is Monday, W03). The text
    # waits for the sending window: sent 15:00:00, 11 h 59 min 20 s = 43160 s after the call
    # ended at 03:00:40. Delivered. He answers STOP (replied, but not recovered), opts out
    # on Monday (W03), and gets the one confirmation text.
    c5 = o.call(DAVE, "2027-01-18 03:00:00", ring=40)
    o.receipt(o.send(c5, wait=43160), True, utc("2027-01-18 15:00:05"))
    o.reply(DAVE, "STOP", "2027-01-18 15:30:00", Intent.STOP)
    store.outbox.add_optout(DAVE, "sms", utc("2027-01-18 15:30:00"))
    o.other_text(DAVE, CONFIRMATION, "2027-01-18 15:31:00", OPT_OUT_CONFIRMATION)

    # C6 Alice again, A, SALES, W03: not texted (cooldown); answered half an hour later
    # (recovered by call). Her C1 window closed when this call started.
    c6 = o.call(ALICE, "2027-01-19 14:00:00", did=SALES, ring=15)
    o.suppress(c6, "cooldown")
    o.call(ALICE, "2027-01-19 14:30:00", verdict=Verdict.ANSWERED)

    # Not missed calls: an unknown verdict, and a manual opt-out with no call behind it.
    o.call(LEO, "2027-01-20 10:00:00", verdict=Verdict.UNKNOWN)
    store.outbox.add_optout(MALLORY, "manual", utc("2027-01-20 12:00:00"))

    # C7 Erin, B, MAIN, W03: texted 60 s after, undelivered. C8 Erin the next day, B, MAIN,
    # W03: not texted (cooldown); answered two hours later. The answer recovers C8 only:
    # C7's window closed when C8 started.
    c7 = o.call(ERIN, "2027-01-20 16:00:00", trunk=B, ring=25)
    o.receipt(o.send(c7, wait=60), False, utc("2027-01-20 16:02:00"))

    # C13 Judy, B, MAIN, Wed 23:00 in Chicago (W03): her text could only go after it
    # expires, and expires.
    c13 = o.call(JUDY, "2027-01-21 05:00:00", trunk=B, ring=10)
    o.queue(c13, send_at=utc("2027-01-21 17:30:00"), expires_at=utc("2027-01-21 17:00:00"))

    c8 = o.call(ERIN, "2027-01-21 16:00:00", trunk=B, ring=5)
    o.suppress(c8, "cooldown")
    assert len(store.outbox.expire(utc("2027-01-21 17:00:00"))) == 1
    o.call(ERIN, "2027-01-21 18:00:00", trunk=B, verdict=Verdict.ANSWERED)

    # C9 Frank, B, SALES, W03: the gateway refused the text for good (failed).
    c9 = o.call(FRANK, "2027-01-22 15:00:00", trunk=B, did=SALES, ring=30)
    frank = o.queue(c9, send_at=utc("2027-01-22 15:01:30"))
    o.dispatch(frank, utc("2027-01-22 15:01:30"))
    assert store.outbox.mark_failed(
        frank, kind="rejected", error="invalid destination", now=utc("2027-01-22 15:01:31")
    )

    # C10 Grace, A, MAIN, W03: someone in the office dialled her back before the text went
    # (cancelled: recovered). Whether she answered is not recorded: not recovered.
    c10 = o.call(GRACE, "2027-01-23 15:00:00", ring=10)
    o.queue(c10, send_at=utc("2027-01-23 15:05:10"))
    assert store.outbox.cancel_pending(GRACE, "recovered", utc("2027-01-23 15:03:00"))

    o.call(CAROL, "2027-01-24 10:00:00", verdict=Verdict.ANSWERED)

    # C12 Ivan, B, SALES, Sunday 14:00 in Chicago (W03): no text at all (no outbox row), but
    # he texts us an hour later (recovered by reply, texted or not; not "replied").
    o.call(IVAN, "2027-01-24 20:00:00", trunk=B, did=SALES, ring=10)
    o.reply(IVAN, "Was that you calling? I need a quote", "2027-01-24 21:00:00")

    # C11 Heidi, A, MAIN, Monday 10:00 in Chicago (W04): her text is due after NOW, and her
    # reply comes after NOW too (neither counts yet).
    c11 = o.call(HEIDI, "2027-01-25 16:00:00")
    o.queue(c11, send_at=utc("2027-01-25 19:00:00"))
    o.reply(HEIDI, "Please call me", "2027-01-25 19:30:00")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "textback.db"


@pytest.fixture
def seeded(db_path: Path) -> Path:
    with open_store(db_path) as store:
        seed(store)
    return db_path


@pytest.fixture
def stats(seeded: Path) -> Iterator[Stats]:
    conn = open_reader(seeded)
    try:
        yield compute(conn, now=NOW, since=SINCE, roi=ROI, tz=TZ)
    finally:
        conn.close()


PRICE = 0.0079


def money(amount: float) -> object:
    return pytest.approx(amount, abs=1e-9)


class TestTotals:
    def test_the_funnel(self, stats: Stats) -> None:
        """Missed, texted, suppressed, delivered, replied and opted out, as counted by hand."""
        t = stats.total
        assert t.missed == 13  # C1..C13; Zed's call is before the period, Leo's is unknown
        assert t.texted == 4  # C1, C2, C5, C7
        assert t.suppressed == 4  # C3, C4, C6, C8
        assert t.delivered == 2  # C1, C5 (C7 undelivered, C2 no receipt)
        assert t.replied == 2  # Alice and Dave (STOP is a reply); Ivan was not texted
        assert t.reply_rate == 0.5  # 2 / 4
        assert t.opted_out == 2  # Dave and Mallory; Zed's is before the period

    def test_why_not_texted(self, stats: Stats) -> None:
        """Suppressions by policy reason, busiest first; the rest by what became of them."""
        assert stats.suppressed_by_reason == {"cooldown": 2, "anonymous": 1, "reason_off": 1}
        # 13 missed = 4 texted + 4 suppressed + these 5.
        assert stats.not_texted == {
            "cancelled: recovered": 1,  # C10 Grace
            "expired": 1,  # C13 Judy
            "failed": 1,  # C9 Frank
            "no text": 1,  # C12 Ivan
            "waiting": 1,  # C11 Heidi, due after NOW
        }

    def test_median_time_to_text(self, stats: Stats) -> None:
        """The median of call end to the text going out, over the texts sent."""
        # C1 60 s, C2 120 s, C5 43160 s, C7 60 s: sorted 60, 60, 120, 43160 → (60 + 120) / 2.
        assert stats.total.median_seconds_to_text == 90.0

    def test_recovered(self, stats: Stats) -> None:
        """Replies and later answered calls within 7 days; each missed call once."""
        # C1 (Alice replied), C2 (Bob answered next day), C6 (Alice answered), C8 (Erin
        # answered), C12 (Ivan texted). Not C3 (answered after 9 days), C5 (STOP), C7 (C8
        # came between), C10 (the call back is not recorded), C11 (reply after NOW).
        assert stats.total.recovered == 5
        assert (stats.recovered_by_reply, stats.recovered_by_call) == (2, 3)

    def test_money(self, stats: Stats) -> None:
        """Value is recovered × close rate × job value; cost every segment sent × price."""
        t = stats.total
        # Missed-call texts C1 1 + C2 2 + C5 1 + C7 1 = 5 segments; other texts: the inbox
        # answer 2 + the opt-out confirmation 1 = 3. 5 + 3 = 8.
        assert (stats.other_texts, stats.other_segments) == (2, 3)
        assert t.segments == 8
        assert t.value == 500.0  # 5 × 0.5 × 200
        assert t.cost == money(8 * PRICE)  # 0.0632
        assert t.roi == money(500 - 8 * PRICE)  # 499.9368


def line(
    key: str,
    *,
    missed: int,
    texted: int = 0,
    suppressed: int = 0,
    delivered: int = 0,
    replied: int = 0,
    opted_out: int = 0,
    recovered: int = 0,
    segments: int = 0,
    median: float | None = None,
) -> Line:
    """The line expected, with value and cost from the counts at ROI's prices."""
    return Line(
        key=key,
        missed=missed,
        texted=texted,
        suppressed=suppressed,
        delivered=delivered,
        replied=replied,
        opted_out=opted_out,
        recovered=recovered,
        segments=segments,
        median_seconds_to_text=median,
        value=recovered * 0.5 * 200.0,
        cost=segments * PRICE,
    )


class TestBreakdowns:
    def test_per_trunk(self, stats: Stats) -> None:
        """Each trunk's missed calls and what became of them, busiest first."""
        assert stats.by_trunk == (
            # C3 C4 C7 C8 C9 C12 C13; texted C7; suppressed C3 C4 C8; recovered C8 C12.
            line(B, missed=7, texted=1, suppressed=3, recovered=2, segments=1, median=60.0),
            # C1 C2 C5 C6 C10 C11; texted C1 C2 C5 (1 + 2 + 1 segments, waits 60 120 43160);
            # suppressed C6; delivered C1 C5; replied Alice Dave; Dave's opt-out (his latest
            # missed call, C5, came in on A); recovered C1 C2 C6.
            line(
                A,
                missed=6,
                texted=3,
                suppressed=1,
                delivered=2,
                replied=2,
                opted_out=1,
                recovered=3,
                segments=4,
                median=120.0,
            ),
        )

    def test_per_did(self, stats: Stats) -> None:
        """Each number called, busiest first."""
        assert stats.by_did == (
            # C1 C2 C5 C7 C8 C10 C11 C13; texted C1 C2 C5 C7 (waits 60 120 43160 60 → 90);
            # suppressed C8; recovered C1 C2 C8; Dave's opt-out.
            line(
                MAIN,
                missed=8,
                texted=4,
                suppressed=1,
                delivered=2,
                replied=2,
                opted_out=1,
                recovered=3,
                segments=5,
                median=90.0,
            ),
            # C3 C4 C6 C9 C12; suppressed C3 C4 C6; recovered C6 C12.
            line(SALES, missed=5, suppressed=3, recovered=2),
        )

    def test_per_week_in_the_business_time_zone(self, stats: Stats) -> None:
        """ISO weeks in Chicago, every week the period touches; they add up to the total."""
        assert [line.key for line in stats.by_week] == ["2027-W02", "2027-W03", "2027-W04"]
        assert stats.by_week == (
            # Jan 11-17: C1 C2 C3 C4 and C5 (Sunday night in Chicago); segments C1 1 + C2 2 +
            # C5 1 + the inbox answer 2 = 6; waits 60 120 43160; Dave's opt-out is Monday.
            line(
                "2027-W02",
                missed=5,
                texted=3,
                suppressed=2,
                delivered=2,
                replied=2,
                recovered=2,
                segments=6,
                median=120.0,
            ),
            # Jan 18-24: C6 C7 C8 C9 C10 C12 C13; segments C7 1 + the confirmation 1 = 2;
            # opt-outs Dave and Mallory; recovered C6 C8 C12.
            line(
                "2027-W03",
                missed=7,
                texted=1,
                suppressed=2,
                opted_out=2,
                recovered=3,
                segments=2,
                median=60.0,
            ),
            line("2027-W04", missed=1),  # C11
        )
        for field in ("missed", "texted", "opted_out", "recovered", "segments"):
            assert sum(getattr(w, field) for w in stats.by_week) == getattr(stats.total, field)
        assert week_start("2027-W03").isoformat() == "2027-01-18"

    def test_same_data_in_utc_moves_the_sunday_call(self, seeded: Path) -> None:
        """Counted in UTC, Dave's Sunday-evening call falls in the next week."""
        conn = open_reader(seeded)
        try:
            weeks = compute(conn, now=NOW, since=SINCE, roi=ROI, tz="UTC").by_week
        finally:
            conn.close()
        # In UTC C5 (Jan 18 03:00) is Monday: W02 loses it (5 → 4), W03 gains it (7 → 8).
        assert [(w.key, w.missed) for w in weeks] == [
            ("2027-W02", 4),
            ("2027-W03", 8),
            ("2027-W04", 1),
        ]


class TestEdges:
    def test_empty_database(self, db_path: Path) -> None:
        """A fresh database: zeros everywhere, no rates or medians, every week still listed."""
        open_store(db_path).close()
        conn = open_reader(db_path)
        try:
            stats = compute(conn, now=NOW, since=SINCE, roi=ROI, tz=TZ)
        finally:
            conn.close()
        assert stats.total == line("total", missed=0)
        assert stats.total.reply_rate is None
        assert (stats.by_trunk, stats.by_did) == ((), ())
        assert [w.key for w in stats.by_week] == ["2027-W02", "2027-W03", "2027-W04"]
        assert stats.suppressed_by_reason == stats.not_texted == {}
        data = json.loads(render(stats, "json"))
        assert (data["total"]["missed"], data["total"]["reply_rate"]) == (0, None)
        rows = list(csv.reader(io.StringIO(render(stats, "csv"))))
        assert tuple(rows[0]) == CSV_COLUMNS
        assert [row[:3] for row in rows[1:]] == [
            ["total", "total", "0"],
            ["week", "2027-W02", "0"],
            ["week", "2027-W03", "0"],
            ["week", "2027-W04", "0"],
        ]
        table = render(stats, "table").splitlines()
        assert "Missed calls                   0" in table
        assert "Median time to text            -" in table

    def test_recovery_window_is_configurable(self, seeded: Path) -> None:
        """With 10 days to come back, Carol's answered call 9 days later recovers C3."""
        conn = open_reader(seeded)
        try:
            wide = RoiConfig(average_job_value=200.0, close_rate=0.5, recovered_days=10)
            stats = compute(conn, now=NOW, since=SINCE, roi=wide, tz=TZ)
        finally:
            conn.close()
        assert stats.total.recovered == 6  # C1 C2 C6 C8 C12, and now C3
        assert stats.recovered_by_call == 4

    def test_a_shorter_period_starts_later(self, seeded: Path) -> None:
        """Only missed calls started in the period count, and only its weeks are listed."""
        conn = open_reader(seeded)
        try:
            # Thursday Jan 21 06:00 UTC onwards: C8 C9 C10 C12 C11 (C13 started at 05:00).
            stats = compute(conn, now=NOW, since=utc("2027-01-21 06:00:00"), roi=ROI, tz=TZ)
        finally:
            conn.close()
        assert stats.total.missed == 5
        assert stats.total.recovered == 2  # C8 (Erin answered), C12 (Ivan texted)
        assert stats.total.opted_out == 0  # Dave's and Mallory's came earlier
        assert [w.key for w in stats.by_week] == ["2027-W03", "2027-W04"]

    def test_unknown_time_zone(self, seeded: Path) -> None:
        """A zone that does not exist is named in the error."""
        conn = open_reader(seeded)
        try:
            with pytest.raises(ValueError, match="Mars/Olympus"):
                compute(conn, now=NOW, since=SINCE, roi=ROI, tz="Mars/Olympus")
        finally:
            conn.close()

    def test_database_before_the_inbox(self, db_path: Path) -> None:
        """A file from before schema 3 says to start the daemon once to upgrade it."""
        raw = sqlite3.connect(db_path)
        raw.execute("PRAGMA user_version=2")
        raw.close()
        conn = open_reader(db_path)
        try:
            with pytest.raises(StoreError, match=r"schema version 2.*textback run"):
                compute(conn, now=NOW, since=SINCE, roi=ROI, tz=TZ)
        finally:
            conn.close()


class TestFormats:
    def test_json(self, stats: Stats) -> None:
        """JSON parses and carries the same numbers, money rounded to 6 places."""
        data = json.loads(render(stats, "json"))
        assert data["since"] == "2027-01-11T18:00:00.000Z"
        assert data["tz"] == TZ
        assert data["total"]["missed"] == 13
        assert data["total"]["cost"] == 0.0632  # 8 × 0.0079
        assert data["total"]["roi"] == 499.9368  # 500 - 0.0632
        assert data["suppressed_by_reason"] == {"cooldown": 2, "anonymous": 1, "reason_off": 1}
        assert data["recovered_by"] == {"reply": 2, "call": 3}
        assert data["other_texts"] == {"texts": 2, "segments": 3, "cost": 0.0237}  # 3 × 0.0079
        assert [t["key"] for t in data["by_trunk"]] == [B, A]
        assert [d["key"] for d in data["by_did"]] == [MAIN, SALES]
        assert [(w["key"], w["starts"]) for w in data["by_week"]] == [
            ("2027-W02", "2027-01-11"),
            ("2027-W03", "2027-01-18"),
            ("2027-W04", "2027-01-25"),
        ]
        assert data["settings"]["recovered_days"] == 7

    def test_csv(self, stats: Stats) -> None:
        """CSV has a header, a row per line of the report, and one per suppression reason."""
        rows = list(csv.reader(io.StringIO(render(stats, "csv"))))
        assert tuple(rows[0]) == CSV_COLUMNS
        records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
        assert [(r["scope"], r["key"]) for r in records] == [
            ("total", "total"),
            ("trunk", B),
            ("trunk", A),
            ("did", MAIN),
            ("did", SALES),
            ("week", "2027-W02"),
            ("week", "2027-W03"),
            ("week", "2027-W04"),
            ("suppressed", "cooldown"),
            ("suppressed", "anonymous"),
            ("suppressed", "reason_off"),
        ]
        total = records[0]
        assert (total["missed"], total["texted"], total["recovered"]) == ("13", "4", "5")
        assert (total["reply_rate"], total["median_seconds_to_text"]) == ("0.5", "90.0")
        assert records[4]["reply_rate"] == ""  # SALES texted nobody: no rate
        assert records[8]["suppressed"] == "2"

    def test_table(self, stats: Stats) -> None:
        """The table is one screen an owner can read: the funnel, the money, the breakdowns."""
        text = render(stats, "table")
        lines = text.splitlines()
        assert lines[0] == "textback: Jan 11, 2027 to Jan 25, 2027 (14 days, America/Chicago)"
        for expected in (
            "Missed calls                  13",
            "  texted back                  4   31% of missed calls",  # 4 / 13
            "  not texted                   4   cooldown 2, anonymous 1, reason off 1",
            "  other                        5   reached first 1, expired 1, failed 1,"
            " not queued 1, due later 1",
            "  replied                      2   50% of texts",
            "Median time to text       1m 30s",  # 90 s
            "Value                    $500.00   5 × 50% close rate × $200.00 a job",
            "SMS cost                   $0.06   8 SMS segments × $0.0079"
            " (3 for inbox answers and confirmations)",
            "Return                   $499.94   value − SMS cost",
            "  week of Jan 11       5       3        2          2     $200.00     $0.05",
        ):
            assert expected in lines, expected
        assert "Calls back from the office are not recorded" in text
        assert len(lines) <= 40
        assert max(map(len, lines)) <= 100

    def test_table_without_a_job_value(self, seeded: Path) -> None:
        """Without average_job_value the table says where to set it instead of showing $0."""
        conn = open_reader(seeded)
        try:
            stats = compute(conn, now=NOW, since=SINCE, roi=RoiConfig(), tz=TZ)
        finally:
            conn.close()
        text = render(stats, "table")
        assert "set [roi] average_job_value in the TOML to see it" in text
        assert stats.total.value == 0.0

    def test_unknown_format(self, stats: Stats) -> None:
        """Only table, json and csv."""
        with pytest.raises(ValueError, match="table, json, csv"):
            render(stats, "xml")  # type: ignore[arg-type]


# -- the command and the dashboard, from a real TOML file ----------------------------------------

USER, PASSWORD = "sam", "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
EARNED_ROW = re.compile(
    r'<th scope="row">([^<]+)</th><td class="n">([^<]+)</td><td class="meta">([^<]*)</td>'
)


def write_config(tmp_path: Path, db_path: Path, *, roi: str) -> Config:
    path = tmp_path / "textback.toml"
    path.write_text(
        f"""
[daemon]
database = "{db_path}"

[business]
name = "Acme Plumbing"

[asterisk]
secret_file = "{tmp_path / "ami-secret"}"

[trunks.carrier-a]
channels = ["PJSIP/carrier-a-*"]

[sending]
timezone = "{TZ}"

[gateway]
kind = "console"

[web]
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080"

[[web.users]]
name = "{USER}"
password_hash = "{hash_password(PASSWORD)}"

{roi}
"""
    )
    return load(path, require_secrets=False)


ROI_TABLE = "[roi]\naverage_job_value = 200\nclose_rate = 0.5\n"


class TestCommand:
    def test_main_writes_the_report(self, tmp_path: Path, seeded: Path) -> None:
        """``main`` reads [daemon] database, [sending] timezone and [roi] from the config."""
        config = write_config(tmp_path, seeded, roi=ROI_TABLE)
        out = io.StringIO()
        assert main(config, since_days=14, fmt="json", out=out, now=NOW) == 0
        data = json.loads(out.getvalue())
        assert data["since"] == "2027-01-11T18:00:00.000Z"  # NOW - 14 days
        assert data["tz"] == TZ
        assert (data["total"]["recovered"], data["total"]["value"]) == (5, 500.0)

    def test_main_without_a_database(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No database yet: exit 66 and say what creates it; nothing on the report's stream."""
        config = write_config(tmp_path, tmp_path / "missing.db", roi="")
        out = io.StringIO()
        assert main(config, since_days=30, fmt="table", out=out, now=NOW) == 66
        assert out.getvalue() == ""
        assert "no database at" in capsys.readouterr().err


@pytest.fixture
async def inbox(
    tmp_path: Path, seeded: Path
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The inbox app over the seeded database on 127.0.0.1, signed in, its clock at NOW."""
    config = write_config(tmp_path, seeded, roi=ROI_TABLE)
    store = await Store.open(seeded)
    conversations = Conversations(config, store, config.gateway, clock=lambda: NOW)
    deps = WebDeps(
        config=config,
        store=store,
        conversations=conversations,
        gateways={"console": config.gateway},
        clock=lambda: NOW,
    )
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(make_app(deps)), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )
    await client.start_server()
    try:
        form = await (await client.get("/login")).text()
        found = CSRF.search(form)
        assert found is not None, form
        login = {"csrf": found.group(1), "next": "/", "name": USER, "password": PASSWORD}
        assert (await client.post("/login", data=login, allow_redirects=False)).status == 303
        yield client
    finally:
        await client.close()
        await store.aclose()


class TestDashboard:
    async def test_dashboard_shows_the_last_7_days_earnings(
        self, inbox: TestClient[web.Request, web.Application]
    ) -> None:
        """The dashboard's 7 local days: recovered callers, value, SMS cost and return."""
        response = await inbox.get("/dashboard")
        page = await response.text()
        assert response.status == 200, page
        # Today is Monday Jan 25 in Chicago, so the 7 days start Tuesday Jan 19 00:00 there
        # (06:00 UTC): C6 C7 C13 C8 C9 C10 C12 C11. Recovered: C6, C8 (answered), C12 (texted).
        # Sent in those days: C7's text, 1 segment. 3 × 0.5 × 200 = 300; 300 - 0.0079.
        assert [(label, amount) for label, amount, _ in EARNED_ROW.findall(page)] == [
            ("Recovered callers", "3"),
            ("Value", "$300.00"),
            ("SMS cost", "$0.01"),
            ("Return", "$299.99"),
        ]
        assert "3 recovered × 50% who book × $200.00 a job" in page
        assert "1 segment × $0.0079" in page

    def test_dashboard_without_a_job_value(self, tmp_path: Path, seeded: Path) -> None:
        """Without [roi] average_job_value the dashboard says where to set it, not $0."""
        config = write_config(tmp_path, seeded, roi="")
        earned = compute_at(seeded, now=NOW, since=last_7_days(NOW, TZ), roi=config.roi, tz=TZ)
        counts = Counts(missed=0, texted=0, replied=0, opted_out=0)
        page = dashboard_page(
            Site.of(config),
            Dashboard(today=counts, week=counts),
            user=USER,
            csrf="x",
            earned=earned,
        )
        rows = {label: (amount, note) for label, amount, note in EARNED_ROW.findall(page)}
        assert rows["Value"][0] == "not set"
        assert "average_job_value" in rows["Value"][1]
        assert rows["Return"][0] == "-"
        assert rows["Recovered callers"][0] == "3"
