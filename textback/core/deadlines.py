"""What the call correlators share: when a call is due, and the first cut of its verdict. Pure.

Each correlator keeps its own calls (keyed by a call key) and its own PBX
rules; :class:`CallTimers` tells it which calls are due, and :func:`decide`
turns a call into a :class:`CallVerdict` once the correlator has said why it
was missed and how the caller and voicemail look.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from enum import Enum
from typing import Generic, Protocol, TypeVar

from textback.core.trunks import Trunk
from textback.core.verdict import CallVerdict, Reason, Verdict

NO_END_SEEN = "no end of call seen within max_call_age_seconds"
_TIMER_SLACK = 16


class CallKind(Enum):
    INBOUND = "inbound"
    INTERNAL = "internal"
    OUTBOUND = "outbound"


class TimedCall(Protocol):
    key: str
    deadline: float
    ended_at: float | None
    blind: str


class DecidableCall(TimedCall, Protocol):
    kind: CallKind
    trunk: Trunk | None
    caller_raw: str
    caller_name: str
    did: str
    started_at: float
    answered_at: float | None
    pbx_answered_at: float | None
    answered_outside: str


C = TypeVar("C", bound=TimedCall)


class CallTimers(Generic[C]):
    """A heap of (deadline, call key) over the live ``calls``, invalidated lazily.

    Re-arming a call only pushes: an entry counts while its call is live and
    still has that deadline. Stale entries are skipped when they surface and
    the heap is rebuilt when they pile up (a call's max age, once it ended).
    """

    def __init__(self, calls: dict[str, C]) -> None:
        self._calls = calls
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, call: C, deadline: float) -> None:
        call.deadline = deadline
        heapq.heappush(self._heap, (deadline, call.key))

    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, key = self._heap[0]
            call = self._calls.get(key)
            if call is not None and call.deadline == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def pop_due(self, now: float) -> list[C]:
        """Take the calls due by ``now`` out of ``calls``, oldest deadline first.

        A call due before any end was seen has hit its max age: it ends now, blind.
        """
        due = []
        while self._heap and self._heap[0][0] <= now:
            deadline, key = heapq.heappop(self._heap)
            call = self._calls.get(key)
            if call is None or call.deadline != deadline:
                continue
            if call.ended_at is None:
                call.blind = NO_END_SEEN
                call.ended_at = now
            del self._calls[key]
            due.append(call)
        if len(self._heap) > 2 * len(self._calls) + _TIMER_SLACK:
            self._heap = [(c.deadline, c.key) for c in self._calls.values()]
            heapq.heapify(self._heap)
        return due

    def clear(self) -> None:
        self._heap.clear()


def judge(call: DecidableCall, missed_reason: Callable[[], Reason]) -> tuple[Verdict, Reason]:
    """Internal and outbound calls are ignored, answered is answered, blind is unknown."""
    if call.kind is CallKind.INTERNAL:
        return Verdict.IGNORED, Reason.INTERNAL
    if call.kind is CallKind.OUTBOUND:
        return Verdict.IGNORED, Reason.OUTBOUND
    if call.answered_at is not None:
        return Verdict.ANSWERED, Reason.ANSWERED
    if call.blind:
        return Verdict.UNKNOWN, Reason.UNKNOWN
    return Verdict.MISSED, missed_reason()


def decide(
    call: DecidableCall,
    *,
    pbx: str,
    missed_reason: Callable[[], Reason],
    anonymous: bool,
    voicemail_left: bool | None,
    outside_note: str,
) -> CallVerdict:
    """The verdict on a call that has ended; ``outside_note`` explains an answer elsewhere."""
    verdict, reason = judge(call, missed_reason)
    ended_at = call.ended_at if call.ended_at is not None else call.started_at
    until = call.answered_at or call.pbx_answered_at or ended_at
    note = call.blind if verdict is Verdict.UNKNOWN else ""
    if not note and call.answered_outside and verdict is Verdict.MISSED:
        note = outside_note
    return CallVerdict(
        call_id=call.key,
        pbx=pbx,
        trunk=call.trunk.name if call.trunk is not None else None,
        verdict=verdict,
        reason=reason,
        caller_raw=call.caller_raw,
        caller_name=call.caller_name,
        anonymous=anonymous,
        did=call.did,
        started_at=call.started_at,
        ended_at=ended_at,
        answered_at=call.answered_at,
        ring_seconds=max(0.0, until - call.started_at),
        voicemail_left=voicemail_left,
        note=note,
    )
