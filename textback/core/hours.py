"""Business hours: is the business open at a given instant? Pure (zoneinfo reads tzdata)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

# (start, end) in minutes after local midnight; end may be 1440.
Interval = tuple[int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpeningHours:
    """Weekly opening hours in one time zone, with closed holidays.

    ``weekly[0]`` is Monday. A day with no intervals is closed all day; several
    intervals make a split shift.
    """

    timezone: str
    weekly: tuple[tuple[Interval, ...], ...]
    holidays: frozenset[date] = frozenset()

    def is_open(self, epoch: float) -> bool:
        """Whether the business is open at ``epoch``: not a holiday, inside a weekday interval."""
        local = datetime.fromtimestamp(epoch, ZoneInfo(self.timezone))
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.weekly[local.weekday()])

    def is_holiday(self, epoch: float) -> bool:
        """Whether ``epoch`` falls on one of the holidays, by the business's local date."""
        return datetime.fromtimestamp(epoch, ZoneInfo(self.timezone)).date() in self.holidays
