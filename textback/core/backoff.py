"""How long to wait before the next send attempt. Pure: the shell draws the jitter."""

from __future__ import annotations

import math
from typing import Final

# A server's Retry-After is honoured up to this many times the backoff cap: a
# provider asking for longer is misconfigured or wants us gone for hours, and
# the text's max_age expires it long before then anyway.
RETRY_AFTER_CAP_FACTOR: Final = 10.0


def retry_delay(
    attempt: int, *, base: float, cap: float, jitter: float, retry_after: float | None
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first send).

    The delay doubles from ``base`` per attempt up to ``cap``, and ``jitter``
    (uniform in [0, 1), drawn by the shell) spreads it over [delay/2, delay)
    so retries of many texts do not arrive together. A server's Retry-After
    wins when it asks for longer, up to ``RETRY_AFTER_CAP_FACTOR * cap``.

    Raises:
        ValueError: ``attempt`` < 1, a negative ``base`` or ``cap``, or ``jitter`` outside [0, 1).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if base < 0 or cap < 0:
        raise ValueError(f"base and cap must not be negative, got {base} and {cap}")
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    # The exponent is bounded so a runaway attempt count cannot overflow a float.
    delay = min(cap, base * 2.0 ** min(attempt - 1, 64))
    # Rounding could land a jitter just under 1 on the delay itself; stay below it.
    delay = min(delay * (0.5 + jitter / 2), math.nextafter(delay, 0.0)) if delay else 0.0
    if retry_after is not None and retry_after > delay:
        return min(retry_after, cap * RETRY_AFTER_CAP_FACTOR)
    return delay
