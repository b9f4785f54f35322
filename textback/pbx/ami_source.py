"""Asterisk AMI event source: one session at a time, checked, kept alive, resynced.

Shell (IO), and the only module that touches panoramisk. From panoramisk we
take action bookkeeping: ActionIDs, futures, matching responses and event
lists (``AMIProtocol.send`` / ``handle_message``). We do not take its byte
handling (it decodes each TCP read on its own and drops split UTF-8; we frame
with ``AmiFramer``), its Manager (fixed 2 s reconnect, silent login failure,
pings never checked) or its dispatch (handler errors kill the connection,
coroutine handlers become orphan tasks).

What the consumer sees through :meth:`AmiSource.next_item`:

* After every successful Login, ``AmiResync`` with the CoreShowChannels
  snapshot comes first. Events received from the Login response until the
  list completes are held and follow the ``AmiResync`` in wire order, so a
  ``Newchannel`` for a channel already in the snapshot can arrive after it:
  the consumer must treat that as a no-op. If the PBX refuses
  CoreShowChannels (missing write permission) there is no ``AmiResync``;
  a warning says how to fix it.
* ``AmiEvent`` for every other event, strictly in wire order.
* ``AmiLinkDown`` once when the link goes from up (or unknown, at start) to
  down; retries that keep failing stay quiet until the next login.

The queue is unbounded so that the reader never waits on the consumer (a
waiting reader cannot answer pings and would look dead). At AMI rates a
consumer stalled for a minute holds at most a few tens of MB.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from textback.errors import PbxError
from textback.pbx.ami_proto import AmiFramer, AmiMessage, SkippedFrames
from textback.pbx.link import LinkKeeper, LinkLost, Outcome, describe_error

log = structlog.get_logger(__name__)

AUTH_HINT: Final = "check secret in manager.conf [user] and secret_file/secret_env"
RESYNC_HINT: Final = "allow write=system or write=reporting for this user in manager.conf"


class _Every:
    """Contains every action name."""

    def __contains__(self, name: object) -> bool:
        return True


# Actions panoramisk must never queue for re-sending after a reconnect: all of
# them. Its close() would log each queued action whole: Login's secret, an
# SMS's number and text (see AmiSource.action).
_FORGETABLE: Final = _Every()
# The attribute on a panoramisk Message that holds the dict we built it from.
_ORIGINAL: Final = "textback_message"


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiSettings:
    """Where and how to reach the AMI. Times are seconds."""

    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    events: str = "system,call,agent,dialplan"
    connect_timeout: float = 5.0  # TCP connect, and each reply to Login / CoreShowChannels
    ping_interval: float = 15.0
    ping_timeout: float = 5.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    auth_retry: float = 300.0  # after a refused Login: a fast retry would not help

    def __post_init__(self) -> None:
        # A line break would end the Login action early and inject headers
        # (a secret file's trailing newline is the usual culprit).
        for name in ("username", "secret", "events"):
            if any(c in getattr(self, name) for c in "\r\n"):
                raise ValueError(f"AmiSettings.{name} contains a line break")


@dataclass(frozen=True, slots=True)
class AmiEvent:
    """One AMI event, in wire order."""

    message: AmiMessage


@dataclass(frozen=True, slots=True)
class AmiResync:
    """The PBX's channels right after a login (``CoreShowChannel`` events)."""

    channels: list[AmiMessage]


@dataclass(frozen=True, slots=True)
class AmiLinkDown:
    """The link to the PBX is gone; events until the next AmiResync are lost."""

    reason: str


SourceItem = AmiEvent | AmiResync | AmiLinkDown


def _as_dict(message: Any) -> AmiMessage:
    """Our dict behind a panoramisk Message (see _Protocol._route)."""
    original: AmiMessage | None = vars(message).get(_ORIGINAL)
    if original is None:
        # Not built by us; panoramisk adds a "content" key of its own.
        return {str(k): str(v) for k, v in message.items() if str(k) != "content"}
    return original


def _describe_loss(exc: object) -> str:
    if exc is None:
        return "connection closed by the PBX"
    if isinstance(exc, BaseException):
        return f"connection lost: {describe_error(exc)}"
    return "PBX shut down"


class _Link:
    """The factory panoramisk's AMIProtocol expects, minus panoramisk's Manager."""

    forgetable_actions = _FORGETABLE

    def __init__(self, on_events: Callable[[Sequence[AmiMessage]], None]) -> None:
        # panoramisk appends unanswered actions here for re-sending; we never
        # re-send (every action we use is forgetable), so it stays empty.
        self.awaiting_actions: deque[object] = deque()
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._on_events = on_events

    def connection_lost(self, exc: object) -> None:
        self.mark_lost(_describe_loss(exc))

    def dispatch(self, message: Any) -> None:
        self._on_events((_as_dict(message),))

    def mark_lost(self, reason: str) -> None:
        """Record why the session ended; the first reason wins."""
        if not self.lost.done():
            self.lost.set_result(reason)

    def events(self, messages: Sequence[AmiMessage]) -> None:
        self._on_events(messages)


class _Protocol(AMIProtocol):  # type: ignore[misc]  # panoramisk has no type hints
    """panoramisk's protocol with our framing and routing of incoming bytes."""

    def __init__(self, link: _Link, skip: Callable[[bytes | bytearray], bool] | None) -> None:
        super().__init__()
        self._link = link
        self._framer = AmiFramer(skip)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.factory = self._link
        self.encoding = "utf-8"

    @property
    def banner(self) -> str | None:
        return self._framer.banner

    def data_received(self, data: bytes) -> None:
        messages, problems = self._framer.receive_data(data)
        for problem in problems:
            log.warning("ami_frame_problem", reason=problem.reason, excerpt=problem.excerpt)
        # A read's events go to the consumer together, in wire order.
        events: list[AmiMessage] = []
        shutdown = None
        for message in messages:
            shutdown = self._route(message, events)
            if shutdown is not None:
                break
        if events:
            self._link.events(events)
        if shutdown is not None:
            # Asterisk is going away; do not wait for TCP to notice.
            self.abort(shutdown)

    def _route(self, message: AmiMessage, events: list[AmiMessage]) -> str | None:
        """Send a reply to panoramisk or add an event to ``events``; why the PBX is
        going away when the event says it is, else None.
        """
        if type(message) is SkippedFrames:
            events.append(message)
            return None
        action_id = message.get("ActionID")
        if action_id is not None:
            # Replies (and list items) to our actions go to panoramisk; late
            # ones, for actions we gave up on, are dropped. Asterisk puts an
            # ActionID only on what answers the session's own actions.
            if action_id in self.responses:
                reply = Message(dict(message))
                setattr(reply, _ORIGINAL, message)
                self.handle_message(reply)
            else:
                log.debug("ami_late_reply_dropped", action_id=action_id)
            return None
        name = message.get("Event")
        if name is None:
            log.debug("ami_unsolicited_response_dropped", response=message.get("Response"))
            return None
        events.append(message)
        if name == "Shutdown":
            return f"PBX shut down (Shutdown: {message.get('Shutdown', '?')})"
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        # panoramisk only tells its factory if it did not close the socket itself.
        super().connection_lost(exc)
        self._link.connection_lost(exc)

    def send_action(self, fields: Mapping[str, str]) -> asyncio.Future[Any]:
        # as_list=None: let panoramisk tell single replies from event lists
        # (its default, False, would end CoreShowChannels at the first reply).
        reply: asyncio.Future[Any] = self.send(dict(fields), as_list=None)
        return reply

    def abort(self, reason: str) -> None:
        self._link.mark_lost(reason)
        self.transport.abort()


class AmiSource:
    """Events from one Asterisk, forever. Run :meth:`run` in a task; read :meth:`next_item`."""

    def __init__(
        self,
        settings: AmiSettings,
        *,
        rng: random.Random | None = None,
        skip: Callable[[bytes | bytearray], bool] | None = None,
    ) -> None:
        """``skip``: frames the consumer never needs, delivered unparsed as ``SkippedFrames``."""
        self._settings = settings
        self._skip = skip
        self._keeper: LinkKeeper[AmiMessage, SourceItem] = LinkKeeper(
            settings,
            prefix="ami",
            rng=rng,
            log=log,
            event=AmiEvent,
            link_down=AmiLinkDown,
        )
        self._banner: str | None = None
        self._live: tuple[_Protocol, _Link] | None = None  # the logged-in session
        self._action_ids = itertools.count(1)

    @property
    def connected(self) -> bool:
        """Logged in right now."""
        return self._keeper.connected

    @property
    def logins(self) -> int:
        """Successful logins so far."""
        return self._keeper.logins

    @property
    def banner(self) -> str | None:
        """The banner of the last session that logged in (``Asterisk Call Manager/9.0.0``)."""
        return self._banner

    # A timeout parameter (not only asyncio.timeout around the call) so that the
    # default is the configured connect_timeout and the error names the action.
    async def action(
        self,
        fields: Mapping[str, str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AmiMessage:
        """Send one action on the logged-in session and return its (first) reply.

        For actions answered by a single ``Response`` (``DongleSendSMS``), not
        event lists. ``timeout`` defaults to ``connect_timeout``. Raises
        ``PbxError`` when not logged in, when the link drops first, or when no
        reply comes in time; the link itself is left alone (a slow action is
        not a dead PBX). The action is never re-sent: one cut off may or may
        not have run. Field values are never logged. Raises ``ValueError`` for
        a line break in a field, which would inject AMI headers.
        """
        for key, value in fields.items():
            if any(c in key or c in value for c in "\r\n"):
                raise ValueError(f"AMI action field {key!r} contains a line break")
        live = self._live
        if live is None:
            raise PbxError("not connected to the PBX")
        protocol, link = live
        if link.lost.done():
            raise PbxError(f"not connected to the PBX ({link.lost.result()})")
        name = fields.get("Action", "?")
        action_id = f"textback-{next(self._action_ids)}"
        patience = self._settings.connect_timeout if timeout is None else timeout
        # as_list=False: the first reply completes the action.
        reply: asyncio.Future[Any] = protocol.send({**fields, "ActionID": action_id}, as_list=False)
        try:
            await asyncio.wait(
                {reply, link.lost}, timeout=patience, return_when=asyncio.FIRST_COMPLETED
            )
            if reply.done() and not reply.cancelled():
                return _as_dict(reply.result())
            if link.lost.done():
                raise PbxError(f"link to the PBX lost before the reply to {name}")
            raise PbxError(f"no reply to {name} within {patience:g} s")
        finally:
            # Given up (or cancelled by the caller): a late reply is then dropped.
            protocol.responses.pop(action_id, None)
            reply.cancel()

    async def next_item(self) -> SourceItem:
        """The next item, in order. Safe to cancel: nothing is lost."""
        return await self._keeper.next_item()

    def ready_item(self) -> SourceItem | None:
        """The next item if one is already waiting, else None; under load this skips
        a timeout per event."""
        return self._keeper.ready_item()

    async def run(self) -> None:
        """Connect, log in, resync and read; reconnect forever. Ends only by cancellation."""
        await self._keeper.run(self._session)

    async def _session(self) -> tuple[Outcome, str]:
        s = self._settings
        link = _Link(self._keeper.deliver_all)
        self._keeper.hold()
        try:
            async with asyncio.timeout(s.connect_timeout):
                _, protocol = await asyncio.get_running_loop().create_connection(
                    lambda: _Protocol(link, self._skip), s.host, s.port
                )
        except (OSError, TimeoutError) as exc:
            self._keeper.drop_held()
            return Outcome.FAILED, f"cannot connect to {s.host}:{s.port}: {describe_error(exc)}"
        assert isinstance(protocol, _Protocol)
        try:
            return await self._converse(protocol, link)
        finally:
            self._live = None
            protocol.abort("session ended")
            self._keeper.end_session()

    async def _converse(self, protocol: _Protocol, link: _Link) -> tuple[Outcome, str]:
        s = self._settings
        login = {"Action": "Login", "Username": s.username, "Secret": s.secret, "Events": s.events}
        try:
            reply = await self._request(protocol, link, login, s.connect_timeout, "Login")
        except LinkLost as lost:
            return Outcome.FAILED, lost.reason
        first = _replies(reply)[0]
        if first.get("Response") != "Success":
            self._refused(first)
            return Outcome.REFUSED, "login refused"
        self._live = (protocol, link)
        self._banner = protocol.banner
        self._keeper.went_up(user=s.username, banner=self._banner)
        try:
            await self._resync(protocol, link)
            await self._keep_alive(protocol, link)
        except LinkLost as lost:
            return Outcome.WAS_UP, lost.reason
        raise AssertionError("unreachable: the keep-alive loop only ends by LinkLost")

    async def _resync(self, protocol: _Protocol, link: _Link) -> None:
        s = self._settings
        action = {"Action": "CoreShowChannels"}
        replies = _replies(
            await self._request(protocol, link, action, s.connect_timeout, "CoreShowChannels")
        )
        if replies[0].get("Response") == "Success":
            channels = [m for m in replies if m.get("Event") == "CoreShowChannel"]
            log.debug("ami_resynced", channels=len(channels))
            self._keeper.put(AmiResync(channels))
        else:
            log.warning(
                "ami_resync_refused",
                host=s.host,
                user=s.username,
                message=replies[0].get("Message", ""),
                hint=RESYNC_HINT,
            )
        self._keeper.release_held()

    async def _keep_alive(self, protocol: _Protocol, link: _Link) -> None:
        s = self._settings
        while True:
            await asyncio.wait({link.lost}, timeout=s.ping_interval)
            if link.lost.done():
                raise LinkLost(link.lost.result())
            await self._request(protocol, link, {"Action": "Ping"}, s.ping_timeout, "Ping")

    async def _request(
        self,
        protocol: _Protocol,
        link: _Link,
        fields: Mapping[str, str],
        patience: float,
        what: str,
    ) -> object:
        """Send an action and wait for its reply; raise LinkLost if none comes."""
        if link.lost.done():
            raise LinkLost(link.lost.result())
        reply = protocol.send_action(fields)
        await asyncio.wait(
            {reply, link.lost}, timeout=patience, return_when=asyncio.FIRST_COMPLETED
        )
        if reply.done():
            result: object = reply.result()
            return result
        reply.cancel()
        if link.lost.done():
            raise LinkLost(link.lost.result())
        reason = f"no reply to {what} within {patience:g} s"
        protocol.abort(reason)
        raise LinkLost(reason)

    def _refused(self, reply: AmiMessage) -> None:
        s = self._settings
        first = self._keeper.refused("login refused", "login")
        fields = {"host": s.host, "user": s.username, "message": reply.get("Message", "")}
        if not first:
            log.debug("ami_login_refused_again", **fields)
            return
        log.error("ami_login_refused", **fields, hint=AUTH_HINT)


def _replies(result: object) -> list[AmiMessage]:
    """panoramisk's answer to an action (one Message, or a list) as our dicts."""
    if isinstance(result, list):
        return [_as_dict(m) for m in result]
    return [_as_dict(result)]
