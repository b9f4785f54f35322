"""What the correlators emit: one verdict per call. Pure data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    MISSED = "missed"
    ANSWERED = "answered"
    UNKNOWN = "unknown"
    IGNORED = "ignored"


class Reason(StrEnum):
    ABANDONED = "abandoned"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    IVR = "ivr"
    QUEUE_ABANDONED = "queue_abandoned"
    AFTER_HOURS = "after_hours"
    ANONYMOUS = "anonymous"
    UNAVAILABLE = "unavailable"
    CONGESTION = "congestion"
    ANSWERED = "answered"
    UNKNOWN = "unknown"
    INTERNAL = "internal"
    OUTBOUND = "outbound"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallVerdict:
    """The judgement on one call, emitted once, when the call is over.

    Times are in the clock the caller of the correlator passes in as ``now``
    (the daemon uses Unix time).
    """

    call_id: str
    pbx: str
    trunk: str | None
    verdict: Verdict
    reason: Reason
    caller_raw: str
    caller_name: str
    anonymous: bool
    did: str
    started_at: float
    ended_at: float
    answered_at: float | None = None
    ring_seconds: float = 0.0
    voicemail_left: bool | None = None
    # For `unknown` verdicts: what we could not see. Empty otherwise.
    note: str = ""
