"""How a verdict is shown outside the core: E.164 numbers and the JSON Lines contract.

``replay`` prints :func:`verdict_record` as JSON Lines, the daemon logs it as
its canonical line, the demo tabulates it. The keys of ``verdict_record`` are
a contract (``textback replay`` output): add keys, never rename or drop one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from textback.core.trunks import TrunkMap
from textback.core.verdict import CallVerdict
from textback.numbers import to_e164

DEFAULT_REGION = "US"


@dataclass(frozen=True, slots=True)
class CallNumbers:
    """The numbers of one call in E.164, where they are valid."""

    caller_e164: str | None
    did_e164: str | None

    @classmethod
    def of(cls, verdict: CallVerdict, trunks: TrunkMap) -> CallNumbers:
        trunk = trunks.get(verdict.trunk) if verdict.trunk is not None else None
        region = trunk.country if trunk is not None else DEFAULT_REGION
        caller = None if verdict.anonymous else to_e164(verdict.caller_raw, region)
        return cls(caller_e164=caller, did_e164=to_e164(verdict.did, region))


def iso_utc(epoch: float | None) -> str | None:
    """``2026-11-27T20:20:41.871Z``, or None."""
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def shown_caller(verdict: CallVerdict, numbers: CallNumbers) -> str:
    # A withheld number stays withheld, even when the carrier asserted it to us.
    if verdict.anonymous:
        return "anonymous"
    return numbers.caller_e164 or verdict.caller_raw


def verdict_record(verdict: CallVerdict, trunks: TrunkMap) -> dict[str, object]:
    """One call as the stable JSON object ``textback replay`` prints."""
    numbers = CallNumbers.of(verdict, trunks)
    return {
        "call_id": verdict.call_id,
        "pbx": verdict.pbx,
        "trunk": verdict.trunk,
        "caller": shown_caller(verdict, numbers),
        "caller_name": "" if verdict.anonymous else verdict.caller_name,
        "anonymous": verdict.anonymous,
        "did": numbers.did_e164 or verdict.did,
        "verdict": verdict.verdict.value,
        "reason": verdict.reason.value,
        "voicemail_left": verdict.voicemail_left,
        "started_at": iso_utc(verdict.started_at),
        "answered_at": iso_utc(verdict.answered_at),
        "ended_at": iso_utc(verdict.ended_at),
        "ring_seconds": round(verdict.ring_seconds, 1),
        "note": verdict.note,
    }
