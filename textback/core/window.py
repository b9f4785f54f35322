"""The sending window: when a text may reach the recipient, in their local time. Pure.

Times are Unix epochs; zones are IANA names read through zoneinfo, so daylight
saving changes are handled by the tz database, not by adding fixed offsets.

The set of instants inside a window in one zone is a union of half-open
intervals, and each interval begins either where the local clock shows the
window start or where a clock change jumps the local time into the window. The
earliest instant inside the window in every zone is therefore ``due`` itself or
one of those beginnings, so :func:`schedule` checks exactly those candidates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

# How far ahead to look for a moment inside the window in every zone. Any
# window fits in the next day in one zone; three days cover zones whose
# windows overlap only briefly, and a later text is useless anyway.
SEARCH_DAYS: Final = 3
# Clock changes are found by sampling the UTC offset this often; real zones
# never change twice within it.
_SAMPLE_SECONDS: Final = 3 * 3600
_DAY_SECONDS: Final = 86400


@dataclass(frozen=True, slots=True)
class SendingWindow:
    """Local times texts may arrive: minutes after midnight, ``start`` included, ``end`` not."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= 24 * 60:
            raise ValueError(f"need 0 <= start < end <= 1440 minutes, got {self.start}-{self.end}")

    def contains(self, epoch: float, zone: ZoneInfo) -> bool:
        """Whether the local time at ``epoch`` in ``zone`` is inside the window."""
        local = datetime.fromtimestamp(epoch, zone)
        seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        return self.start * 60 <= seconds < self.end * 60


def schedule(
    *, due: float, deadline: float, zones: Sequence[str], window: SendingWindow | None
) -> float | None:
    """The earliest instant >= ``due`` inside ``window`` in every zone; None if >= ``deadline``.

    With no window (or no zones) the answer is ``due`` itself. None also means
    no common moment was found within :data:`SEARCH_DAYS` days: the text expires.
    """
    if due >= deadline:
        return None
    if window is None or not zones:
        return due
    tzs = [ZoneInfo(name) for name in dict.fromkeys(zones)]
    horizon = min(deadline, due + SEARCH_DAYS * _DAY_SECONDS)
    candidates = {due}
    for tz in tzs:
        candidates.update(c for c in _entries(window, tz, due, horizon) if due < c < horizon)
    for candidate in sorted(candidates):
        if candidate >= deadline:
            break
        if all(window.contains(candidate, tz) for tz in tzs):
            return candidate
    return None


def _entries(window: SendingWindow, tz: ZoneInfo, since: float, until: float) -> Iterator[float]:
    """Instants around [since, until] where the window may open in ``tz``: starts, clock changes."""
    first = datetime.fromtimestamp(since, tz).date()
    last = datetime.fromtimestamp(until, tz).date()
    start = time(window.start // 60, window.start % 60)
    day = first
    while day <= last:
        wall = datetime.combine(day, start, tzinfo=tz)
        # Two readings of the wall time differ only around a clock change; the
        # earlier is the first occurrence of a repeated time, and a time lost
        # in a gap is covered by the change instant itself.
        yield min(wall.timestamp(), wall.replace(fold=1).timestamp())
        day += timedelta(days=1)
    yield from _changes(tz, since, until)


def _changes(tz: ZoneInfo, since: float, until: float) -> Iterator[float]:
    """Instants in (since, until] where ``tz`` changes its UTC offset, to the second."""
    before, offset = since, _offset(tz, since)
    while before < until:
        after = min(before + _SAMPLE_SECONDS, until)
        changed = _offset(tz, after)
        if changed != offset:
            low, high = int(before), int(after) + 1  # offset(low) == offset, offset(high) changed
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if _offset(tz, middle) == offset else (low, middle)
            yield float(high)
        before, offset = after, changed


def _offset(tz: ZoneInfo, epoch: float) -> timedelta | None:
    return datetime.fromtimestamp(epoch, UTC).astimezone(tz).utcoffset()
