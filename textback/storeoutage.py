"""A database that stops taking writes (disk full, read-only remount, a stuck lock).

The daemon keeps what it holds, says so once, and tries again with a capped
backoff instead of exiting: a restart would not free the disk, and systemd
would only loop.
"""

from __future__ import annotations

import time
from typing import Final

from textback.errors import StoreError
from textback.log import get_logger

log = get_logger(__name__)

FIRST_RETRY: Final = 0.5
LAST_RETRY: Final = 30.0


class StoreOutage:
    """One loop's view of a write outage: log its start and end once, pace the retries."""

    def __init__(self, doing: str) -> None:
        self._doing = doing
        self._since: float | None = None
        self._tries = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: StoreError) -> float:
        """Note a failed write; return how long to wait before the next try."""
        if self._since is None:
            self._since = time.monotonic()
            log.error(
                "database_write_failed",
                doing=self._doing,
                error=str(exc),
                hint="is the disk full or read-only? textback keeps what it holds and retries",
            )
        self._tries += 1
        return min(LAST_RETRY, FIRST_RETRY * float(2 ** min(self._tries - 1, 6)))

    def ok(self) -> None:
        """Note a write that worked; logs the end of an outage."""
        if self._since is None:
            return
        log.warning(
            "database_write_recovered",
            doing=self._doing,
            after_seconds=round(time.monotonic() - self._since, 1),
        )
        self._since, self._tries = None, 0
