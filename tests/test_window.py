"""When a text may go out: the recipient's sending window, and the retry backoff."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textback.core.backoff import RETRY_AFTER_CAP_FACTOR, retry_delay
from textback.core.window import SendingWindow, schedule

NY = "America/New_York"
DAY = 86400.0
NINE_TO_EIGHT = SendingWindow(9 * 60, 20 * 60)
ZONES = (
    NY,
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/London",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # half-hour DST shift
    "Pacific/Chatham",  # UTC+12:45 / +13:45
)


def at(local: str, zone: str = NY, fold: int = 0) -> float:
    """Epoch of a local wall time; fold=1 picks the second of a repeated time."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone), fold=fold).timestamp()


def local(epoch: float | None, zone: str = NY) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, ZoneInfo(zone)).isoformat()


def plan(due: str, window: SendingWindow | None = NINE_TO_EIGHT, *zones: str) -> str | None:
    """Schedule a text due at a New York wall time, with a two-day deadline, as NY wall time."""
    start = at(due)
    got = schedule(due=start, deadline=start + 2 * DAY, zones=zones or (NY,), window=window)
    return local(got)


class TestWindow:
    def test_rejects_empty_or_out_of_day_windows(self) -> None:
        """A window must start before it ends, within one day."""
        for start, end in [(600, 600), (700, 600), (-1, 600), (600, 1441)]:
            with pytest.raises(ValueError, match="start < end"):
                SendingWindow(start, end)

    def test_whole_day_window_always_contains(self) -> None:
        """0-1440 is every moment of the day."""
        assert SendingWindow(0, 1440).contains(at("2024-03-10T23:59:59"), ZoneInfo(NY))


class TestSchedule:
    @pytest.mark.parametrize(
        ("due", "expected"),
        [
            ("2024-06-05T12:00", "2024-06-05T12:00:00-04:00"),
            ("2024-06-05T09:00", "2024-06-05T09:00:00-04:00"),
            ("2024-06-05T06:30", "2024-06-05T09:00:00-04:00"),
            ("2024-06-05T19:59:59", "2024-06-05T19:59:59-04:00"),
            ("2024-06-05T20:00", "2024-06-06T09:00:00-04:00"),
            ("2024-06-05T23:30", "2024-06-06T09:00:00-04:00"),
        ],
    )
    def test_defers_to_the_next_window_start(self, due: str, expected: str) -> None:
        """Inside the window a text goes now; outside it waits for the next local start."""
        assert plan(due) == expected

    def test_no_window_means_now(self) -> None:
        """Without a window the text goes when due."""
        assert plan("2024-06-05T03:00", None) == "2024-06-05T03:00:00-04:00"

    def test_no_zones_means_now(self) -> None:
        """With no zone to honour the window is vacuous."""
        due = at("2024-06-05T03:00")
        assert schedule(due=due, deadline=due + DAY, zones=(), window=NINE_TO_EIGHT) == due

    @pytest.mark.parametrize("window", [None, NINE_TO_EIGHT])
    def test_due_at_or_after_deadline_expires(self, window: SendingWindow | None) -> None:
        """A text already past its deadline is never scheduled."""
        due = at("2024-06-05T12:00")
        assert schedule(due=due, deadline=due, zones=(NY,), window=window) is None

    def test_deadline_before_the_window_opens_expires(self) -> None:
        """A text whose deadline falls before the window opens is dropped, not sent late."""
        due, opens = at("2024-06-05T22:00"), at("2024-06-06T09:00")
        assert schedule(due=due, deadline=opens, zones=(NY,), window=NINE_TO_EIGHT) is None
        got = schedule(due=due, deadline=opens + 1, zones=(NY,), window=NINE_TO_EIGHT)
        assert got == opens

    def test_spring_forward_night(self) -> None:
        """After the clocks go forward the window still opens at 09:00 local, 23 hours later."""
        due = at("2024-03-09T20:00")
        got = schedule(due=due, deadline=due + DAY, zones=(NY,), window=NINE_TO_EIGHT)
        assert (local(got), got) == ("2024-03-10T09:00:00-04:00", due + 12 * 3600)

    def test_fall_back_night(self) -> None:
        """After the clocks go back the window opens at 09:00 local, 14 hours later."""
        due = at("2024-11-02T20:00")
        got = schedule(due=due, deadline=due + DAY, zones=(NY,), window=NINE_TO_EIGHT)
        assert (local(got), got) == ("2024-11-03T09:00:00-05:00", due + 14 * 3600)

    def test_start_lost_in_the_spring_gap(self) -> None:
        """A window starting at 02:30, which does not exist that night, opens at 03:00 EDT."""
        assert plan("2024-03-10T01:00", SendingWindow(150, 240)) == "2024-03-10T03:00:00-04:00"

    def test_window_entirely_in_the_gap_waits_a_day(self) -> None:
        """A window that falls wholly in the skipped hour opens only on the next day."""
        assert plan("2024-03-10T01:00", SendingWindow(150, 170)) == "2024-03-11T02:30:00-04:00"

    def test_repeated_hour_reopens_the_window(self) -> None:
        """When clocks go back into the window, the repeated hour counts as inside it."""
        due = at("2024-11-03T01:45")  # first pass, EDT: outside 00:00-01:30
        got = schedule(due=due, deadline=due + DAY, zones=(NY,), window=SendingWindow(0, 90))
        assert got == at("2024-11-03T01:00", fold=1)

    @pytest.mark.parametrize(
        ("zones", "expected"),
        [
            ((NY, "America/Los_Angeles"), "2024-06-06T12:00:00-04:00"),
            (("America/Los_Angeles", NY), "2024-06-06T12:00:00-04:00"),
            ((NY, NY), "2024-06-06T09:00:00-04:00"),
            ((NY, "America/Chicago"), "2024-06-06T10:00:00-04:00"),
            ((NY, "Europe/London"), "2024-06-06T09:00:00-04:00"),
        ],
    )
    def test_every_zone_must_be_inside(self, zones: tuple[str, ...], expected: str) -> None:
        """A number whose zone is uncertain is texted only when every candidate zone is awake."""
        assert plan("2024-06-05T21:00", NINE_TO_EIGHT, *zones) == expected

    def test_zones_that_never_overlap_expire(self) -> None:
        """No common hour in New York and Tokyo for a one-hour window: the text expires."""
        assert plan("2024-06-05T21:00", SendingWindow(600, 660), NY, "Asia/Tokyo") is None

    @settings(max_examples=150, deadline=None)
    @given(
        due=st.floats(at("2024-01-01T00:00"), at("2025-12-31T00:00")),
        span=st.floats(60, 3 * DAY),
        start=st.integers(0, 1439),
        length=st.integers(1, 1440),
        zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3),
    )
    def test_earliest_moment_inside_in_every_zone(
        self, due: float, span: float, start: int, length: int, zones: list[str]
    ) -> None:
        """The result is >= due, < deadline, inside everywhere, and no minute before it is."""
        window = SendingWindow(start, min(1440, start + length))
        tzs = [ZoneInfo(z) for z in zones]

        def inside(epoch: float) -> bool:
            for tz in tzs:
                t = datetime.fromtimestamp(epoch, tz)
                seconds = t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6
                if not window.start * 60 <= seconds < window.end * 60:
                    return False
            return True

        # Window edges and clock changes fall on whole minutes, so checking due and
        # every whole minute after it finds the first moment inside.
        minutes = (math.ceil(due / 60) * 60 + 60 * k for k in range(int(span // 60) + 2))
        expected = next(
            (t for t in (due, *minutes) if t < due + span and inside(t)),
            None,
        )
        assert schedule(due=due, deadline=due + span, zones=zones, window=window) == expected

    def test_dst_days_in_many_zones(self) -> None:
        """Around every 2024 clock change in the test zones, results stay inside and minimal."""
        for zone in ZONES:
            tz = ZoneInfo(zone)
            hour = at("2024-01-01T00:00", "UTC")
            offsets = []
            while hour < at("2025-01-01T00:00", "UTC"):
                offsets.append((hour, datetime.fromtimestamp(hour, UTC).astimezone(tz).utcoffset()))
                hour += 3600
            changes = [b for (_, x), (b, y) in itertools.pairwise(offsets) if x != y]
            for change in changes:
                for before in (-26, -12, -3, -1, 0, 1, 5):
                    due = change + before * 3600
                    got = schedule(
                        due=due, deadline=due + 3 * DAY, zones=(zone,), window=NINE_TO_EIGHT
                    )
                    assert got is not None
                    assert got >= due
                    assert NINE_TO_EIGHT.contains(got, tz)


class TestRetryDelay:
    @pytest.mark.parametrize(
        ("attempt", "jitter", "retry_after", "expected"),
        [
            (1, 0.0, None, 1.0),
            (1, 0.5, None, 1.5),
            (2, 0.5, None, 3.0),
            (3, 0.5, None, 6.0),
            (5, 0.0, None, 16.0),
            (6, 0.0, None, 30.0),
            (10, 0.5, None, 45.0),
            (10_000, 0.0, None, 30.0),
            (1, 0.5, 100.0, 100.0),
            (1, 0.5, 1.0, 1.5),
            (1, 0.5, -5.0, 1.5),
            (1, 0.5, 10_000.0, 60.0 * RETRY_AFTER_CAP_FACTOR),
        ],
    )
    def test_table(
        self, attempt: int, jitter: float, retry_after: float | None, expected: float
    ) -> None:
        """Doubling from base to cap, jittered to half; a longer Retry-After wins, up to 10x cap."""
        got = retry_delay(attempt, base=2.0, cap=60.0, jitter=jitter, retry_after=retry_after)
        assert got == expected

    @given(attempt=st.integers(1, 200), jitter=st.floats(0, 1, exclude_max=True))
    def test_jitter_keeps_delay_in_upper_half(self, attempt: int, jitter: float) -> None:
        """Jitter spreads each delay over [d/2, d) and never below the previous attempt's floor."""
        nominal = min(300.0, 1.5 * 2.0 ** (attempt - 1))
        got = retry_delay(attempt, base=1.5, cap=300.0, jitter=jitter, retry_after=None)
        assert nominal / 2 <= got < nominal
        before = retry_delay(
            max(1, attempt - 1), base=1.5, cap=300.0, jitter=jitter, retry_after=None
        )
        assert before <= got

    @pytest.mark.parametrize(
        ("attempt", "base", "cap", "jitter"),
        [(0, 1.0, 10.0, 0.0), (1, -1.0, 10.0, 0.0), (1, 1.0, -1.0, 0.0), (1, 1.0, 10.0, 1.0)],
    )
    def test_rejects_nonsense(self, attempt: int, base: float, cap: float, jitter: float) -> None:
        """Attempts count from 1, base and cap are not negative, jitter is in [0, 1)."""
        with pytest.raises(ValueError, match=r"must|counts from"):
            retry_delay(attempt, base=base, cap=cap, jitter=jitter, retry_after=None)
