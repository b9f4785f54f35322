"""What the correlators emit: one verdict per call. Pure data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


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


@dataclass(frozen=True, slots=True, kw_only=True)
class CallNotice:
    """Something seen mid-call that can make a pending text pointless.

    ``answered``: an inbound call from ``number`` was just answered by a person.
    ``dialed_out``: a phone of ours just dialled ``number`` out through a trunk.
    Numbers are raw, as the PBX has them; the shell normalises them.
    """

    kind: Literal["answered", "dialed_out"]
    number: str
    trunk: str | None
    at: float
