"""What textback did and what it earned: the owner's report (``textback stats``).

Read-only over the textback database (a connection from
:func:`textback.store.open_reader`, beside the running daemon). Nothing here
writes, and every number comes from one read transaction, so the report is a
consistent snapshot even while the daemon works.

The report follows the missed calls that *started* in the period ``[since,
now]``: of those, how many were texted, suppressed (by policy reason),
delivered, replied to (any text from them after ours, a STOP too), and
recovered. Costs and opt-outs are not per call and count by their own time:
opt-outs created in the period, and the texts that went out in it: those for
the period's missed calls, plus the inbox's answers and the opt-out and help
confirmations, which cost the same.

**Recovered**: a missed call (texted or not) is recovered when, within
``[roi] recovered_days`` after it started, the caller

* replied with a message (not a STOP, START or HELP keyword), or
* called again and that call was answered (``calls.verdict = 'answered'``).

The third way, our office dialling them back and them answering, is not in the
database: ``calls`` holds inbound calls only, and the PBX reports a dial-out
(which cancels a still-pending text, reason ``recovered``) but not whether
anyone answered it. Such a caller counts only if they also replied or called
again. A recovering event counts for the caller's latest missed call before
it, so someone who tried three times and was then answered is one recovery,
not three. Each missed call is recovered at most once.

Value = recovered × ``close_rate`` × ``average_job_value``; cost = SMS
segments sent (:func:`textback.core.sms.measure` on the stored text) ×
``sms_segment_price``; return (ROI) = value − cost.

Broken down per trunk, per number called (DID) and per ISO week (Monday to
Sunday) in the business's time zone. Weeks add up to the total; trunks and
numbers cover the missed-call texts only (an inbox answer belongs to no line),
and an opt-out counts for the line of the caller's latest missed call before
it, if that call is in the period.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import statistics
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from textback.core.keywords import Intent
from textback.core.sms import measure
from textback.errors import StoreError
from textback.store import iso_utc, open_reader

if TYPE_CHECKING:
    from textback.config import Config, RoiConfig

Format = Literal["table", "json", "csv"]
FORMATS: Final[tuple[Format, ...]] = ("table", "json", "csv")

DAY: Final = 86400.0
# The first schema with the messages table and delivery receipts.
_NEEDS_SCHEMA: Final = 3
_SUPPRESSED_PREFIX: Final = "suppressed: "
NO_TRUNK: Final = "(no trunk)"
NO_DID: Final = "(unknown)"

# sysexits.h, as the CLI uses them.
_EX_NOINPUT: Final = 66

_NOT_RECORDED: Final = (
    "Calls back from the office are not recorded: a caller reached that way counts\n"
    "as recovered only if they also replied or called again."
)


@dataclass(frozen=True, slots=True)
class Line:
    """The numbers for one slice of the report: everything, a trunk, a DID or a week."""

    key: str  # "total", the trunk's name, the DID, or the ISO week ("2026-W48")
    missed: int  # missed calls that started in the period
    texted: int  # of those, texted (outbox state sent)
    suppressed: int  # of those, not texted by policy
    delivered: int  # of the texts, confirmed delivered by a receipt
    replied: int  # numbers that texted us after our text
    opted_out: int  # opt-outs in the period
    recovered: int  # missed calls recovered (see the module docstring)
    segments: int  # SMS segments sent
    median_seconds_to_text: float | None  # call end → text handed to the gateway
    value: float  # recovered × close_rate × average_job_value
    cost: float  # segments × sms_segment_price

    @property
    def reply_rate(self) -> float | None:
        """Replied / texted; None with nothing texted."""
        return self.replied / self.texted if self.texted else None

    @property
    def roi(self) -> float:
        return self.value - self.cost


@dataclass(frozen=True, slots=True)
class Stats:
    """The whole report for the period ``[since, until]``."""

    since: float  # Unix seconds
    until: float
    tz: str  # the IANA zone weeks are counted in
    roi: RoiConfig
    total: Line
    suppressed_by_reason: Mapping[str, int]  # policy reason ("cooldown") → missed calls
    # Missed calls neither texted nor suppressed: "failed", "expired", "waiting" (not sent
    # yet), "cancelled: <reason>", "no text" (no outbox row: no gateway at the time).
    not_texted: Mapping[str, int]
    recovered_by_reply: int  # recovered calls whose first sign was a reply
    recovered_by_call: int  # ... an answered call from them
    other_texts: int  # texts sent that answer no missed call (inbox, confirmations)
    other_segments: int
    by_trunk: tuple[Line, ...]
    by_did: tuple[Line, ...]
    by_week: tuple[Line, ...]  # oldest first, every week the period touches

    @property
    def days(self) -> float:
        return (self.until - self.since) / DAY


# -- computing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Missed:
    started_at: float
    ended_at: float
    trunk: str
    did: str
    caller: str | None
    week: str
    state: str | None  # its outbox row's, None without one
    reason: str | None
    body: str | None
    dispatched_at: float | None
    delivered: bool


@dataclass(slots=True)
class _Tally:
    missed: int = 0
    texted: int = 0
    suppressed: int = 0
    delivered: int = 0
    repliers: set[str] = field(default_factory=set)
    opted_out: int = 0
    recovered: int = 0
    segments: int = 0
    waits: list[float] = field(default_factory=list)

    def line(self, key: str, roi: RoiConfig) -> Line:
        return Line(
            key=key,
            missed=self.missed,
            texted=self.texted,
            suppressed=self.suppressed,
            delivered=self.delivered,
            replied=len(self.repliers),
            opted_out=self.opted_out,
            recovered=self.recovered,
            segments=self.segments,
            median_seconds_to_text=round(statistics.median(self.waits), 3) if self.waits else None,
            value=self.recovered * roi.close_rate * roi.average_job_value,
            cost=self.segments * roi.sms_segment_price,
        )


def compute(
    conn: sqlite3.Connection, *, now: float, since: float, roi: RoiConfig, tz: str
) -> Stats:
    """The report for the missed calls that started in ``[since, now]``.

    Raises:
        ValueError: ``tz`` is not a known IANA time zone, or ``since`` is after ``now``.
        StoreError: the database cannot be read, or predates the inbox (schema 3).
    """
    zone = _zone(tz)
    if since > now:
        raise ValueError(f"the period starts ({iso_utc(since)}) after it ends ({iso_utc(now)})")
    try:
        with _snapshot(conn):
            _check_schema(conn)
            calls = _missed_calls(conn, since, now, zone)
            replies = _replies(conn, since, now)
            answered = _answered_calls(conn, since, now)
            optouts = _optouts(conn, since, now)
            others = _other_texts(conn, since, now)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the database for the report: {exc}") from exc

    report = _Report(_weeks(since, now, zone))
    recoveries = _recoveries(calls, replies, answered, now, roi.recovered_days * DAY)
    for index, call in enumerate(calls):
        report.add_call(call, recoveries.get(index), replies.get(call.caller or "", ()))
    for number, at in optouts:
        report.add_optout(_week(at, zone), _latest_missed(calls, number, at))
    for body, at in others:
        report.add_other_text(_week(at, zone), measure(body).segments)
    return report.stats(since=since, until=now, tz=tz, roi=roi)


class _Report:
    """The tallies of every line of the report, filled call by call."""

    def __init__(self, weeks: Iterable[str]) -> None:
        self.total = _Tally()
        self.trunks: dict[str, _Tally] = {}
        self.dids: dict[str, _Tally] = {}
        self.weeks = {key: _Tally() for key in weeks}
        self.suppressed: dict[str, int] = {}
        self.not_texted: dict[str, int] = {}
        self.recovered_by = {"reply": 0, "call": 0}
        self.other_texts = self.other_segments = 0

    def add_call(
        self,
        call: _Missed,
        recovered_by: Literal["reply", "call"] | None,
        replies: Iterable[tuple[float, str]],
    ) -> None:
        outcome = _outcome(call)
        texted = outcome == "texted"
        if recovered_by is not None:
            self.recovered_by[recovered_by] += 1
        if outcome == "suppressed":
            why = (call.reason or "").removeprefix(_SUPPRESSED_PREFIX)
            self.suppressed[why] = self.suppressed.get(why, 0) + 1
        elif not texted:
            self.not_texted[outcome] = self.not_texted.get(outcome, 0) + 1
        repliers = _replied_after(call, replies)
        segments = measure(call.body).segments if texted and call.body is not None else 0
        for tally in self._slices(call):
            tally.missed += 1
            tally.suppressed += outcome == "suppressed"
            tally.texted += texted
            tally.delivered += texted and call.delivered
            tally.recovered += recovered_by is not None
            tally.segments += segments
            tally.repliers.update(repliers)
            if texted and call.dispatched_at is not None:
                tally.waits.append(call.dispatched_at - call.ended_at)

    def add_optout(self, week: str, latest_missed: _Missed | None) -> None:
        self.total.opted_out += 1
        self._week(week).opted_out += 1
        if latest_missed is not None:
            self.trunks[latest_missed.trunk].opted_out += 1
            self.dids[latest_missed.did].opted_out += 1

    def add_other_text(self, week: str, segments: int) -> None:
        self.other_texts += 1
        self.other_segments += segments
        self.total.segments += segments
        self._week(week).segments += segments

    def stats(self, *, since: float, until: float, tz: str, roi: RoiConfig) -> Stats:
        return Stats(
            since=since,
            until=until,
            tz=tz,
            roi=roi,
            total=self.total.line("total", roi),
            suppressed_by_reason=_busiest_first(self.suppressed),
            not_texted=_busiest_first(self.not_texted),
            recovered_by_reply=self.recovered_by["reply"],
            recovered_by_call=self.recovered_by["call"],
            other_texts=self.other_texts,
            other_segments=self.other_segments,
            by_trunk=_lines(self.trunks, roi),
            by_did=_lines(self.dids, roi),
            by_week=tuple(self.weeks[key].line(key, roi) for key in sorted(self.weeks)),
        )

    def _slices(self, call: _Missed) -> tuple[_Tally, ...]:
        return (
            self.total,
            self.trunks.setdefault(call.trunk, _Tally()),
            self.dids.setdefault(call.did, _Tally()),
            self._week(call.week),
        )

    def _week(self, key: str) -> _Tally:
        # Every week of the period is there already; this only guards a millisecond's rounding.
        return self.weeks.setdefault(key, _Tally())


def _busiest_first(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{tz!r} is not a known time zone (like America/New_York)") from exc


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every query sees the same database, whatever the daemon writes."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")


def _check_schema(conn: sqlite3.Connection) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version < _NEEDS_SCHEMA:
        raise StoreError(
            f"the database has schema version {version}: the report needs {_NEEDS_SCHEMA} "
            f"or later; start the daemon once (textback run) to upgrade it"
        )


def _unix(iso: str) -> float:
    return round(datetime.fromisoformat(iso).timestamp(), 3)


def _week(at: float, zone: ZoneInfo) -> str:
    year, week, _ = datetime.fromtimestamp(at, zone).date().isocalendar()
    return f"{year}-W{week:02d}"


def _weeks(since: float, until: float, zone: ZoneInfo) -> list[str]:
    """Every ISO week the period touches, oldest first."""
    first = datetime.fromtimestamp(since, zone).date()
    last = datetime.fromtimestamp(until, zone).date()
    monday = first - timedelta(days=first.weekday())
    keys: list[str] = []
    while monday <= last:
        year, week, _ = monday.isocalendar()
        keys.append(f"{year}-W{week:02d}")
        monday += timedelta(days=7)
    return keys


def week_start(key: str) -> date:
    """The Monday of an ISO week key ("2026-W48" → 2026-11-23)."""
    year, week = key.split("-W")
    return date.fromisocalendar(int(year), int(week), 1)


def _missed_calls(
    conn: sqlite3.Connection, since: float, now: float, zone: ZoneInfo
) -> list[_Missed]:
    rows = conn.execute(
        """
        SELECT c.started_at, c.ended_at, c.trunk, coalesce(c.did_e164, nullif(c.did, '')),
               c.caller_e164, o.state, o.reason, o.body, o.dispatched_at,
               o.delivery_status = 'delivered'
        FROM calls AS c LEFT JOIN outbox AS o ON o.pbx = c.pbx AND o.call_id = c.call_id
        WHERE c.verdict = 'missed' AND c.started_at BETWEEN ? AND ?
        ORDER BY c.started_at, c.id
        """,
        (iso_utc(since), iso_utc(now)),
    ).fetchall()
    calls: list[_Missed] = []
    for started, ended, trunk, did, caller, state, reason, body, dispatched, delivered in rows:
        started_at = _unix(started)
        calls.append(
            _Missed(
                started_at=started_at,
                ended_at=_unix(ended),
                trunk=trunk or NO_TRUNK,
                did=did or NO_DID,
                caller=caller,
                week=_week(started_at, zone),
                state=state,
                reason=reason,
                body=body,
                dispatched_at=None if dispatched is None else float(dispatched),
                delivered=bool(delivered),
            )
        )
    return calls


# Cohort callers: the numbers behind the period's missed calls.
_CALLERS: Final = """
    SELECT caller_e164 FROM calls
    WHERE verdict = 'missed' AND caller_e164 IS NOT NULL AND started_at BETWEEN :a AND :b
"""


def _replies(
    conn: sqlite3.Connection, since: float, now: float
) -> dict[str, list[tuple[float, str]]]:
    """Each period caller's texts to us in the period, as ``(at, intent)``, oldest first."""
    rows = conn.execute(
        f"""
        SELECT e164, created_at, intent FROM messages
        WHERE direction = 'in' AND created_at BETWEEN :since AND :now
          AND e164 IN ({_CALLERS})
        ORDER BY created_at, id
        """,
        {"since": since, "now": now, "a": iso_utc(since), "b": iso_utc(now)},
    ).fetchall()
    found: dict[str, list[tuple[float, str]]] = {}
    for number, at, intent in rows:
        found.setdefault(number, []).append((float(at), str(intent)))
    return found


def _answered_calls(conn: sqlite3.Connection, since: float, now: float) -> dict[str, list[float]]:
    """When each period caller's answered calls in the period started, oldest first."""
    rows = conn.execute(
        f"""
        SELECT caller_e164, started_at FROM calls
        WHERE verdict = 'answered' AND started_at BETWEEN :a AND :b
          AND caller_e164 IN ({_CALLERS})
        ORDER BY started_at, id
        """,
        {"a": iso_utc(since), "b": iso_utc(now)},
    ).fetchall()
    found: dict[str, list[float]] = {}
    for number, started in rows:
        found.setdefault(number, []).append(_unix(started))
    return found


def _optouts(conn: sqlite3.Connection, since: float, now: float) -> list[tuple[str, float]]:
    rows = conn.execute(
        "SELECT e164, created_at FROM optouts WHERE created_at BETWEEN ? AND ?"
        " ORDER BY created_at, e164",
        (since, now),
    ).fetchall()
    return [(str(number), float(at)) for number, at in rows]


def _other_texts(conn: sqlite3.Connection, since: float, now: float) -> list[tuple[str, float]]:
    """Texts sent in the period that answer no call (inbox answers, confirmations)."""
    rows = conn.execute(
        """
        SELECT body, dispatched_at FROM outbox AS o
        WHERE state = 'sent' AND dispatched_at BETWEEN ? AND ?
          AND NOT EXISTS (SELECT 1 FROM calls AS c WHERE c.pbx = o.pbx AND c.call_id = o.call_id)
        ORDER BY dispatched_at, id
        """,
        (since, now),
    ).fetchall()
    return [(str(body), float(at)) for body, at in rows]


def _outcome(call: _Missed) -> str:
    if call.state is None:
        return "no text"
    if call.state == "sent":
        return "texted"
    if call.state in ("pending", "sending"):
        return "waiting"
    if call.state == "cancelled":
        return f"cancelled: {call.reason}"
    return call.state  # suppressed, failed, expired


def _replied_after(call: _Missed, replies: Iterable[tuple[float, str]]) -> set[str]:
    """The caller, when they texted us after our text for this call went out."""
    if call.state != "sent" or call.dispatched_at is None or call.caller is None:
        return set()
    sent = call.dispatched_at
    return {call.caller} if any(at >= sent for at, _ in replies) else set()


def _recoveries(
    calls: Sequence[_Missed],
    replies: Mapping[str, Sequence[tuple[float, str]]],
    answered: Mapping[str, Sequence[float]],
    now: float,
    window: float,
) -> dict[int, Literal["reply", "call"]]:
    """Which missed calls (by index) were recovered, and by what came first.

    An event recovers the caller's latest missed call before it: one call's
    window closes when the same caller's next missed call starts.
    """
    ends: dict[int, float] = {}  # index → when its window closes
    latest: dict[str, int] = {}
    for index, call in enumerate(calls):
        if call.caller is None:
            continue
        if call.caller in latest:
            earlier = latest[call.caller]
            ends[earlier] = min(ends[earlier], call.started_at)
        latest[call.caller] = index
        ends[index] = min(call.started_at + window, now)
    found: dict[int, Literal["reply", "call"]] = {}
    for index, end in ends.items():
        call = calls[index]
        assert call.caller is not None
        reply = _first_between(
            (at for at, intent in replies.get(call.caller, ()) if intent == Intent.MESSAGE),
            call.started_at,
            end,
        )
        again = _first_between(answered.get(call.caller, ()), call.started_at, end)
        if again is not None and (reply is None or again < reply):
            found[index] = "call"
        elif reply is not None:
            found[index] = "reply"
    return found


def _first_between(times: Iterable[float], after: float, until: float) -> float | None:
    """The first of ``times`` (oldest first) in ``(after, until]``."""
    return next((at for at in times if after < at <= until), None)


def _latest_missed(calls: Sequence[_Missed], number: str, at: float) -> _Missed | None:
    return next(
        (c for c in reversed(calls) if c.caller == number and c.started_at <= at),
        None,
    )


def _lines(tallies: Mapping[str, _Tally], roi: RoiConfig) -> tuple[Line, ...]:
    """Busiest first: the line the owner cares about most is on top."""
    ordered = sorted(tallies.items(), key=lambda kv: (-kv[1].missed, kv[0]))
    return tuple(tally.line(key, roi) for key, tally in ordered)


# -- the dashboard ----------------------------------------------------------------------


def last_7_days(now: float, tz: str) -> float:
    """Local midnight six days before today's: the dashboard's "last 7 days"."""
    zone = _zone(tz)
    today = datetime.fromtimestamp(now, zone).date()
    return datetime.combine(today - timedelta(days=6), wall_time(), tzinfo=zone).timestamp()


def compute_at(path: Path, *, now: float, since: float, roi: RoiConfig, tz: str) -> Stats:
    """:func:`compute` on a read-only connection of its own to the database at ``path``."""
    conn = open_reader(path)
    try:
        return compute(conn, now=now, since=since, roi=roi, tz=tz)
    finally:
        conn.close()


async def dashboard_roi(path: Path, *, now: float, roi: RoiConfig, tz: str) -> Stats:
    """The report for the dashboard's last 7 local calendar days, off the event loop.

    A reader connection of its own, so the daemon's single writer thread is not held up.
    """
    return await asyncio.to_thread(
        compute_at, path, now=now, since=last_7_days(now, tz), roi=roi, tz=tz
    )


# -- rendering ------------------------------------------------------------------------


def render(stats: Stats, fmt: Format) -> str:
    """The report as an owner-readable ``table``, as ``json`` or as ``csv``."""
    if fmt == "table":
        return _table(stats)
    if fmt == "json":
        return json.dumps(as_dict(stats), indent=2) + "\n"
    if fmt == "csv":
        return _csv(stats)
    raise ValueError(f"format is one of {', '.join(FORMATS)}, not {fmt!r}")


def _money(amount: float, places: int = 6) -> float:
    return round(amount, places)


def _line_dict(line: Line) -> dict[str, object]:
    return {
        "key": line.key,
        "missed": line.missed,
        "texted": line.texted,
        "suppressed": line.suppressed,
        "delivered": line.delivered,
        "replied": line.replied,
        "reply_rate": None if line.reply_rate is None else round(line.reply_rate, 4),
        "opted_out": line.opted_out,
        "recovered": line.recovered,
        "segments": line.segments,
        "median_seconds_to_text": line.median_seconds_to_text,
        "value": _money(line.value),
        "cost": _money(line.cost),
        "roi": _money(line.roi),
    }


def as_dict(stats: Stats) -> dict[str, object]:
    """Everything in the report, JSON-ready; money in the configured currency's units."""
    roi = stats.roi
    return {
        "since": iso_utc(stats.since),
        "until": iso_utc(stats.until),
        "tz": stats.tz,
        "settings": {
            "average_job_value": roi.average_job_value,
            "close_rate": roi.close_rate,
            "sms_segment_price": roi.sms_segment_price,
            "currency": roi.currency,
            "recovered_days": roi.recovered_days,
        },
        "total": _line_dict(stats.total),
        "suppressed_by_reason": dict(stats.suppressed_by_reason),
        "not_texted": dict(stats.not_texted),
        "recovered_by": {"reply": stats.recovered_by_reply, "call": stats.recovered_by_call},
        "other_texts": {
            "texts": stats.other_texts,
            "segments": stats.other_segments,
            "cost": _money(stats.other_segments * roi.sms_segment_price),
        },
        "by_trunk": [_line_dict(line) for line in stats.by_trunk],
        "by_did": [_line_dict(line) for line in stats.by_did],
        "by_week": [
            {**_line_dict(line), "starts": week_start(line.key).isoformat()}
            for line in stats.by_week
        ],
    }


CSV_COLUMNS: Final = (
    "scope",
    "key",
    "missed",
    "texted",
    "suppressed",
    "delivered",
    "replied",
    "reply_rate",
    "opted_out",
    "recovered",
    "segments",
    "median_seconds_to_text",
    "value",
    "cost",
    "roi",
)


def _csv(stats: Stats) -> str:
    """One row per line of the report (scope total, trunk, did, week) and per suppression reason.

    A ``suppressed`` row gives the reason as its key and the count in the suppressed column.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    scopes: tuple[tuple[str, Sequence[Line]], ...] = (
        ("total", (stats.total,)),
        ("trunk", stats.by_trunk),
        ("did", stats.by_did),
        ("week", stats.by_week),
    )
    for scope, lines in scopes:
        for line in lines:
            row = {k: "" if v is None else v for k, v in _line_dict(line).items()}
            writer.writerow({"scope": scope, **row})
    for reason, count in stats.suppressed_by_reason.items():
        writer.writerow({"scope": "suppressed", "key": reason, "suppressed": count})
    return buffer.getvalue()


def duration(seconds: float | None) -> str:
    """A wait as people say it: ``45s``, ``2m 05s``, ``3h 10m``, ``2d 4h``."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "-"


# The not-texted outcomes in an owner's words; the policy's reasons read well as they are.
_OUTCOME_WORDS: Final = {
    "waiting": "due later",
    "no text": "not queued",
    "cancelled: recovered": "reached first",
    "cancelled: opted_out": "opted out",
    "cancelled: not_sms_capable": "cannot take texts",
}


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(
        f"{_OUTCOME_WORDS.get(what, what.replace('_', ' '))} {n}" for what, n in counts.items()
    )


def _row(label: str, value: object, note: str = "") -> str:
    return f"{label:<20}{value!s:>12}   {note}".rstrip()


def _day(moment: datetime) -> str:
    return f"{moment:%b} {moment.day}, {moment.year}"


def _table(stats: Stats) -> str:
    """One screen for the owner: the funnel, what it earned, then the breakdowns."""
    roi, t = stats.roi, stats.total
    zone = ZoneInfo(stats.tz)
    first = datetime.fromtimestamp(stats.since, zone)
    last = datetime.fromtimestamp(stats.until, zone)
    days = round(stats.days)
    out = [
        f"textback: {_day(first)} to {_day(last)} ({days} day{'' if days == 1 else 's'},"
        f" {stats.tz})",
        "",
        _row("Missed calls", t.missed),
        _row("  texted back", t.texted, f"{_percent(t.texted, t.missed)} of missed calls"),
    ]
    if t.suppressed:
        out.append(_row("  not texted", t.suppressed, _counts(stats.suppressed_by_reason)))
    if stats.not_texted:
        out.append(_row("  other", sum(stats.not_texted.values()), _counts(stats.not_texted)))
    out += [
        _row("  delivered", t.delivered, f"{_percent(t.delivered, t.texted)} of texts"),
        _row("  replied", t.replied, f"{_percent(t.replied, t.texted)} of texts"),
        _row("Opted out", t.opted_out),
        _row("Median time to text", duration(t.median_seconds_to_text)),
        "",
        _row(
            "Recovered",
            t.recovered,
            f"{stats.recovered_by_reply} replied, {stats.recovered_by_call} called again and"
            f" were answered, within {roi.recovered_days} days",
        ),
    ]
    if roi.average_job_value > 0:
        worth = (
            f"{t.recovered} × {roi.close_rate:.0%} close rate"
            f" × {roi.money(roi.average_job_value)} a job"
        )
        out.append(_row("Value", roi.money(t.value), worth))
    else:
        out.append(_row("Value", "-", "set [roi] average_job_value in the TOML to see it"))
    segments = f"{t.segments} SMS segments × {roi.money(roi.sms_segment_price, places=4)}"
    if stats.other_texts:
        segments += f" ({stats.other_segments} for inbox answers and confirmations)"
    out += [
        _row("SMS cost", roi.money(t.cost), segments),
        _row("Return", roi.money(t.roi), "value − SMS cost"),
        "",
        *_breakdown("Per trunk", stats.by_trunk, roi),
        *_breakdown("Per number called", stats.by_did, roi),
        *_breakdown(
            "Per week",
            stats.by_week,
            roi,
            label=lambda key: f"week of {week_start(key):%b} {week_start(key).day}",
        ),
        _NOT_RECORDED,
    ]
    return "\n".join(out) + "\n"


def _breakdown(
    title: str,
    lines: Sequence[Line],
    roi: RoiConfig,
    *,
    label: Callable[[str], str] = str,
) -> list[str]:
    if not lines:
        return []
    names = [label(line.key) for line in lines]
    width = max(len(title), *(len(n) + 2 for n in names))
    out = [
        f"{title:<{width}} {'missed':>7} {'texted':>7} {'replied':>8} {'recovered':>10}"
        f" {'value':>11} {'cost':>9}"
    ]
    for name, line in zip(names, lines, strict=True):
        out.append(
            f"  {name:<{width - 2}} {line.missed:>7} {line.texted:>7} {line.replied:>8}"
            f" {line.recovered:>10} {roi.money(line.value):>11}"
            f" {roi.money(line.cost):>9}"
        )
    out.append("")
    return out


# -- the command ------------------------------------------------------------------------


def _format(fmt: str) -> Format:
    for known in FORMATS:
        if fmt == known:
            return known
    raise ValueError(f"format is one of {', '.join(FORMATS)}, not {fmt!r}")


def main(config: Config, *, since_days: int, fmt: str, out: TextIO, now: float) -> int:
    """``textback stats``: the report for the last ``since_days`` days, written to ``out``.

    Problems go to stderr; returns 0, or 66 when the database cannot be read.
    """
    chosen = _format(fmt)
    if since_days < 1:
        raise ValueError(f"the period is 1 day or more, not {since_days}")
    path = config.daemon.database
    if not path.exists():
        print(
            f"no database at {path} yet: textback creates it when the daemon first runs"
            f" (set by [daemon] database)",
            file=sys.stderr,
        )
        return _EX_NOINPUT
    try:
        stats = compute_at(
            path,
            now=now,
            since=now - since_days * DAY,
            roi=config.roi,
            tz=config.sending.timezone,
        )
    except StoreError as exc:
        print(str(exc), file=sys.stderr)
        return _EX_NOINPUT
    out.write(render(stats, chosen))
    return 0


__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "Format",
    "Line",
    "Stats",
    "as_dict",
    "compute",
    "compute_at",
    "dashboard_roi",
    "last_7_days",
    "main",
    "render",
    "week_start",
]
