"""Reconnect pacing shared by the PBX sources. Pure apart from the injected RNG."""

from __future__ import annotations

import random


class Backoff:
    """Capped exponential backoff with equal jitter.

    The nominal delay doubles from ``low`` to ``high``; each wait is drawn from
    [delay/2, delay] so that many clients restarted together do not reconnect
    in lockstep.
    """

    def __init__(self, low: float, high: float, rng: random.Random) -> None:
        self._low = low
        self._high = max(low, high)
        self._rng = rng
        self._delay = low

    def next(self) -> float:
        delay = self._delay
        self._delay = min(delay * 2, self._high)
        return self._rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._delay = self._low
