"""FreeSWITCH event socket source: one session at a time, checked, kept alive, resynced.

Shell (IO) around :mod:`textback.pbx.esl_proto`, on plain asyncio streams.
A session: connect, wait for ``auth/request``, ``auth``, subscribe to the
events textback needs (``subscribe_command``), ``api show channels as json``,
then read until the link dies. Reconnects forever.

What the consumer sees through :meth:`EslSource.next_item`:

* After every successful login, ``EslResync`` with the ``show channels``
  rows comes first. Events that arrive between the subscription and the
  ``api/response`` are held and follow it in wire order, so a
  ``CHANNEL_CREATE`` for a channel already in the rows can come after it:
  the consumer must treat that as a no-op. If the reply is not the JSON we
  asked for there is no ``EslResync``; a warning says so.
* ``EslEvent`` for every event, strictly in wire order.
* ``EslLinkDown`` once when the link goes from up (or unknown, at start) to
  down; retries that keep failing stay quiet until the next login.

Liveness: FreeSWITCH sends ``HEARTBEAT`` every 20 s to a subscriber, so no
bytes at all for ``heartbeat_timeout`` means a dead peer (or a cut cable);
we close and reconnect. FreeSWITCH drops a listener that falls 500 events
behind, so the reader never waits on the consumer: the queue is unbounded.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from textback.log import get_logger
from textback.pbx.esl_proto import (
    API_RESPONSE,
    API_SHOW_CHANNELS,
    AUTH_REQUEST,
    COMMAND_REPLY,
    DISCONNECT_NOTICE,
    EVENT_CONTENT_TYPES,
    RUDE_REJECTION,
    EslFrame,
    EslFramer,
    EslMessage,
    auth_command,
    decode_event,
    parse_show_channels,
    subscribe_command,
)
from textback.pbx.link import LinkKeeper, LinkLost, Outcome, describe_error

log = get_logger(__name__)

AUTH_HINT: Final = "check the password in event_socket.conf.xml and password_file/password_env"
ACL_HINT: Final = (
    "allow this host in the apply-inbound-acl list of event_socket.conf.xml "
    "(then reloadxml and reload mod_event_socket)"
)
_READ_SIZE: Final = 65536


@dataclass(frozen=True, slots=True, kw_only=True)
class EslSettings:
    """Where and how to reach mod_event_socket. Times are seconds."""

    host: str
    port: int
    password: str = field(repr=False)
    events_format: Literal["plain", "json"] = "plain"
    connect_timeout: float = 5.0  # TCP connect, and each reply during the handshake
    heartbeat_timeout: float = 60.0  # no bytes this long: dead peer (HEARTBEAT is every 20 s)
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    auth_retry: float = 300.0  # after a refused password or ACL: a fast retry would not help

    def __post_init__(self) -> None:
        # A line break would end the auth command early and inject another.
        if any(c in self.password for c in "\r\n"):
            raise ValueError("EslSettings.password contains a line break")
        if self.events_format not in ("plain", "json"):
            raise ValueError(
                f"EslSettings.events_format must be 'plain' or 'json', not {self.events_format!r}"
            )


@dataclass(frozen=True, slots=True)
class EslEvent:
    """One FreeSWITCH event, in wire order."""

    message: EslMessage


@dataclass(frozen=True, slots=True)
class EslResync:
    """The PBX's channels right after a login (rows of ``show channels as json``)."""

    channels: list[Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class EslLinkDown:
    """The link to the PBX is gone; events until the next EslResync are lost."""

    reason: str


SourceItem = EslEvent | EslResync | EslLinkDown


class _Refusal(enum.Enum):
    PASSWORD = "password refused"
    ACL = "access denied by the event socket ACL"


class _Link:
    """One TCP session: frames in, commands out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._framer = EslFramer()
        self._frames: deque[EslFrame] = deque()

    async def frame(self, patience: float, missing: str) -> EslFrame:
        """The next frame; LinkLost if the peer closes or sends no byte for ``patience``."""
        while not self._frames:
            try:
                async with asyncio.timeout(patience):
                    data = await self._reader.read(_READ_SIZE)
            except TimeoutError:
                raise LinkLost(missing) from None
            except OSError as exc:
                raise LinkLost(f"connection lost: {describe_error(exc)}") from None
            if not data:
                raise LinkLost("connection closed by the PBX")
            frames, problems = self._framer.receive_data(data)
            for problem in problems:
                # The reason only: an excerpt could hold a caller's number.
                log.warning("esl_frame_problem", reason=problem.reason)
            self._frames.extend(frames)
        return self._frames.popleft()

    async def send(self, data: bytes, patience: float) -> None:
        try:
            self._writer.write(data)
            async with asyncio.timeout(patience):
                await self._writer.drain()
        except TimeoutError:
            raise LinkLost(f"the PBX accepts no data for {patience:g} s") from None
        except OSError as exc:
            raise LinkLost(f"connection lost: {describe_error(exc)}") from None

    def abort(self) -> None:
        self._writer.transport.abort()


class EslSource:
    """Events from one FreeSWITCH, forever. Run :meth:`run` in a task; read :meth:`next_item`."""

    def __init__(self, settings: EslSettings, *, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._keeper: LinkKeeper[EslMessage, SourceItem] = LinkKeeper(
            settings,
            prefix="esl",
            rng=rng,
            log=log,
            event=EslEvent,
            link_down=EslLinkDown,
        )

    @property
    def connected(self) -> bool:
        """Logged in and subscribed right now."""
        return self._keeper.connected

    @property
    def logins(self) -> int:
        """Successful logins (auth accepted and events subscribed) so far."""
        return self._keeper.logins

    async def next_item(self) -> SourceItem:
        """The next item, in order. Safe to cancel: nothing is lost."""
        return await self._keeper.next_item()

    def ready_item(self) -> SourceItem | None:
        """The next item if one is already waiting, else None; under load this skips
        a timeout per event."""
        return self._keeper.ready_item()

    async def run(self) -> None:
        """Log in, subscribe, resync and read; reconnect forever. Ends only by cancellation."""
        await self._keeper.run(self._session)

    async def _session(self) -> tuple[Outcome, str]:
        s = self._settings
        try:
            async with asyncio.timeout(s.connect_timeout):
                reader, writer = await asyncio.open_connection(s.host, s.port)
        except (OSError, TimeoutError) as exc:
            return Outcome.FAILED, f"cannot connect to {s.host}:{s.port}: {describe_error(exc)}"
        link = _Link(reader, writer)
        try:
            return await self._converse(link)
        finally:
            link.abort()
            self._keeper.end_session()

    async def _converse(self, link: _Link) -> tuple[Outcome, str]:
        try:
            refusal = await self._log_in(link)
        except LinkLost as lost:
            return Outcome.FAILED, lost.reason
        if refusal is not None:
            self._refused(refusal)
            return Outcome.REFUSED, refusal.value
        self._keeper.went_up(events_format=self._settings.events_format)
        try:
            await self._resync(link)
            await self._read_forever(link)
        except LinkLost as lost:
            return Outcome.WAS_UP, lost.reason
        raise AssertionError("unreachable: the read loop only ends by LinkLost")

    async def _log_in(self, link: _Link) -> _Refusal | None:
        """Authenticate and subscribe. Events after the subscription are held."""
        s = self._settings
        hello = await link.frame(
            s.connect_timeout, f"no auth/request from the PBX within {s.connect_timeout:g} s"
        )
        if hello.content_type == RUDE_REJECTION:
            return _Refusal.ACL
        if hello.content_type != AUTH_REQUEST:
            raise LinkLost(f"not a FreeSWITCH event socket (first frame {hello.content_type!r})")
        await link.send(auth_command(s.password), s.connect_timeout)
        reply = await self._reply(link, "auth")
        if reply.startswith("-ERR"):
            return _Refusal.PASSWORD
        if not reply.startswith("+OK"):
            raise LinkLost(f"unexpected reply to auth: {reply!r}")
        self._keeper.hold()
        await link.send(subscribe_command(s.events_format), s.connect_timeout)
        reply = await self._reply(link, "event")
        if not reply.startswith("+OK"):
            raise LinkLost(f"event subscription refused: {reply!r}")
        return None

    async def _reply(self, link: _Link, command: str) -> str:
        """The Reply-Text of the command/reply to ``command``."""
        frame = await link.frame(
            self._settings.connect_timeout, f"no reply to {command} from the PBX"
        )
        if frame.content_type == DISCONNECT_NOTICE:
            raise LinkLost(f"the PBX hung up after {command}")
        if frame.content_type != COMMAND_REPLY:
            raise LinkLost(f"unexpected {frame.content_type!r} in reply to {command}")
        return frame.reply_text

    async def _resync(self, link: _Link) -> None:
        s = self._settings
        await link.send(API_SHOW_CHANNELS, s.connect_timeout)
        missing = f"no reply to api show channels within {s.connect_timeout:g} s"
        try:
            # One deadline for the reply, however many events come first.
            async with asyncio.timeout(s.connect_timeout):
                while True:
                    frame = await link.frame(s.connect_timeout, missing)
                    if frame.content_type == API_RESPONSE:
                        break
                    self._dispatch(frame)
        except TimeoutError:
            raise LinkLost(missing) from None
        rows = parse_show_channels(frame.body)
        if rows is None:
            first_line = frame.text().partition("\n")[0]
            log.warning(
                "esl_resync_unreadable",
                host=s.host,
                reply=first_line[:80] if first_line.startswith("-ERR") else "not JSON",
            )
        else:
            log.debug("esl_resynced", channels=len(rows))
            self._keeper.put(EslResync(rows))
        self._keeper.release_held()

    async def _read_forever(self, link: _Link) -> None:
        silence = f"no data from the PBX for {self._settings.heartbeat_timeout:g} s (no HEARTBEAT)"
        while True:
            self._dispatch(await link.frame(self._settings.heartbeat_timeout, silence))

    def _dispatch(self, frame: EslFrame) -> None:
        kind = frame.content_type
        if kind in EVENT_CONTENT_TYPES:
            message = decode_event(frame)
            if message is None:
                log.warning("esl_frame_problem", reason="event frame without a readable event")
            else:
                self._keeper.deliver(message)
            return
        if kind == DISCONNECT_NOTICE:
            # FreeSWITCH is shutting down, or dropped us for falling behind.
            log.info("esl_disconnect_notice", notice=frame.text().partition("\n")[0][:80])
            raise LinkLost("the PBX sent a disconnect-notice")
        if kind == RUDE_REJECTION:
            raise LinkLost("the PBX rejected the connection")
        log.debug("esl_unexpected_frame", content_type=kind)

    def _refused(self, refusal: _Refusal) -> None:
        s = self._settings
        if not self._keeper.refused(refusal.value, refusal):
            log.debug("esl_login_refused_again", host=s.host, port=s.port, refusal=refusal.value)
            return
        if refusal is _Refusal.PASSWORD:
            log.error("esl_login_refused", host=s.host, port=s.port, hint=AUTH_HINT)
        else:
            log.error("esl_access_denied", host=s.host, port=s.port, hint=ACL_HINT)
