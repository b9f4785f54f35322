"""What the PBX sources share: reconnecting, the link's state and the hand-off to the consumer.

Each source (AMI, ESL) speaks its own protocol for one session;
:class:`LinkKeeper` runs sessions forever, paces reconnects, holds events
until the resync is queued, and reports a lost link once per outage.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from textback.pbx.backoff import Backoff

MessageT = TypeVar("MessageT")  # one event from the PBX
ItemT = TypeVar("ItemT")  # what the consumer reads


class LinkLost(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Outcome(enum.Enum):
    FAILED = "failed"  # never logged in: back off further
    REFUSED = "refused"  # credentials or access refused: wait auth_retry
    WAS_UP = "was_up"  # logged in, then lost: back off from the start


class _State(enum.Enum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


class LinkSettings(Protocol):
    """The part of a source's settings that reconnecting needs. Times are seconds."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def reconnect_min(self) -> float: ...
    @property
    def reconnect_max(self) -> float: ...
    @property
    def auth_retry(self) -> float: ...


def describe_error(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class LinkKeeper(Generic[MessageT, ItemT]):
    """Sessions forever, and the queue the consumer reads.

    ``prefix`` starts the shared log events (``ami_connected``...); ``event``
    and ``link_down`` build the consumer's items.
    """

    def __init__(
        self,
        settings: LinkSettings,
        *,
        prefix: str,
        rng: random.Random | None,
        log: Any,  # a structlog logger: the source's own, so records keep its name
        event: Callable[[MessageT], ItemT],
        link_down: Callable[[str], ItemT],
    ) -> None:
        self._prefix = prefix
        self._host = settings.host
        self._port = settings.port
        self._auth_retry = settings.auth_retry
        self._log = log
        self._event = event
        self._link_down = link_down
        self._backoff = Backoff(
            settings.reconnect_min,
            settings.reconnect_max,
            rng if rng is not None else random.Random(),
        )
        # The consumer's queue: a deque and a flag, not asyncio.Queue, whose
        # bookkeeping per item cost more than the items at AMI rates. One consumer.
        self._items: deque[ItemT] = deque()
        self._arrived = asyncio.Event()
        self._held: list[MessageT] | None = None
        self._state = _State.UNKNOWN
        self._refusal_logged: object = None
        self.connected = False
        self.logins = 0

    async def next_item(self) -> ItemT:
        while not self._items:
            self._arrived.clear()
            await self._arrived.wait()
        return self._items.popleft()

    def ready_item(self) -> ItemT | None:
        """The next item if one is waiting, else None (never waits)."""
        return self._items.popleft() if self._items else None

    async def run(self, session: Callable[[], Awaitable[tuple[Outcome, str]]]) -> NoReturn:
        """Run ``session`` forever; one that ends other than refused puts the link down."""
        while True:
            outcome, reason = await session()
            if outcome is Outcome.REFUSED:
                delay = self._auth_retry
            else:
                self._went_down(reason)
                if outcome is Outcome.WAS_UP:
                    self._backoff.reset()
                delay = self._backoff.next()
            self._log.debug(f"{self._prefix}_reconnect_scheduled", delay=round(delay, 3))
            await asyncio.sleep(delay)

    def put(self, item: ItemT) -> None:
        self._items.append(item)
        self._arrived.set()

    def hold(self) -> None:
        """Hold events from now on, until :meth:`release_held`."""
        self._held = []

    def drop_held(self) -> None:
        self._held = None

    def deliver(self, message: MessageT) -> None:
        self.deliver_all((message,))

    def deliver_all(self, messages: Sequence[MessageT]) -> None:
        """Queue events in wire order (or hold them, see :meth:`hold`)."""
        if self._held is not None:
            self._held.extend(messages)
        else:
            self._items.extend(map(self._event, messages))
            self._arrived.set()

    def release_held(self) -> None:
        held, self._held = self._held or [], None
        self.deliver_all(held)

    def end_session(self) -> None:
        self.connected = False
        self.release_held()

    def went_up(self, **fields: object) -> None:
        self.connected = True
        self.logins += 1
        self._state = _State.UP
        self._refusal_logged = None
        self._backoff.reset()
        self._log.info(f"{self._prefix}_connected", host=self._host, port=self._port, **fields)

    def _went_down(self, reason: str) -> None:
        self.connected = False
        if self._state is _State.DOWN:
            self._log.debug(f"{self._prefix}_retry_failed", reason=reason)
            return
        self._state = _State.DOWN
        self._log.warning(
            f"{self._prefix}_disconnected", host=self._host, port=self._port, reason=reason
        )
        self.put(self._link_down(reason))

    def refused(self, reason: str, refusal: object) -> bool:
        """The link is down for ``reason``; True the first time in a row for ``refusal``."""
        if self._state is not _State.DOWN:
            self._state = _State.DOWN
            self.put(self._link_down(reason))
        if self._refusal_logged == refusal:
            return False
        self._refusal_logged = refusal
        return True
