"""A fake FreeSWITCH: a real event socket (ESL) server on TCP that replays captures.

Shell (IO). Used by ``textback demo --pbx freeswitch`` and by the tests as
the PBX. It behaves like mod_event_socket where textback can tell the
difference: ``auth/request`` first, the password checked (a wrong one gets
``-ERR invalid``, a ``text/disconnect-notice`` and the socket closed), an ACL
refusal (``text/rude-rejection``) on request, ``event plain|json`` names
honoured (``CUSTOM`` by subclass), ``api show channels as json``, ``exit``,
and a ``HEARTBEAT`` every ``heartbeat_interval`` seconds.

The captures play once per simulator, like time on a real PBX: the stream
starts at the first successful subscription and is broadcast to every
subscribed client. An event that falls due while nobody is subscribed is
lost, as events during a real outage are. Each event goes out as the exact
bytes of the capture, in the capture's own format (``plain`` or ``json``),
whatever format the client asked for; only the cut into TCP writes
(``chunking``) and the pacing vary. Each capture's own session frames
(``auth/request``, ``command/reply``, ``api/response``, the closing
``text/disconnect-notice``) are not replayed: each live client gets its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, unquote

from textback.pbx.esl_proto import (
    API_RESPONSE,
    AUTH_REQUEST,
    COMMAND_REPLY,
    DISCONNECT_NOTICE,
    EVENT_JSON,
    EVENT_PLAIN,
    RUDE_REJECTION,
)
from textback.replayserver import Chunking, ReplayClient, ReplayServer, bundled

# What mod_event_socket sends a listener it is about to close (bytes of a real capture).
DISCONNECT_NOTICE_FRAME: Final = (
    b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
    b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
)
RUDE_REJECTION_FRAME: Final = (
    b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
)
AUTH_REQUEST_FRAME: Final = b"Content-Type: auth/request\n\n"
SIMULATOR_CORE_UUID: Final = "00000000-7e87-4bac-8000-5100a1a70e5f"
_SESSION_TYPES: Final = frozenset(
    {AUTH_REQUEST, COMMAND_REPLY, API_RESPONSE, DISCONNECT_NOTICE, RUDE_REJECTION}
)
_FORMATS: Final = frozenset({"plain", "json", "xml"})
_WANTED = rb"(Event-Name|Event-Subclass|Event-Date-Timestamp)"
_PLAIN: Final = re.compile(rb"^" + _WANTED + rb": ([^\n]*)$", re.MULTILINE)
_JSON: Final = re.compile(rb'"' + _WANTED + rb'":\s*"([^"\\]*)"')


@dataclass(frozen=True, slots=True, kw_only=True)
class EslSimulatorOptions:
    """How the fake PBX behaves. The defaults replay as fast as possible."""

    password: str = field(default="ClueCon", repr=False)  # FreeSWITCH's default
    speed: float = 0.0  # 0 = as fast as possible; 1.0 = real time; 10 = ten times faster
    chunking: Chunking = "whole"  # how bytes are cut into writes
    seed: int = 0  # for random chunking
    # False: no HEARTBEAT of our own, so the link goes quiet once the captures
    # are out, like a half-open connection to a dead FreeSWITCH. Commands are
    # still answered, so a client that reconnects can log in again.
    heartbeats: bool = True
    heartbeat_interval: float = 20.0  # switch.conf.xml event-heartbeat-interval
    close_after_stream: bool = False  # drop clients once every capture is out
    channels_json: str = '{"row_count":0}'  # body of `api show channels as json`
    resync_delay: float = 0.0  # seconds before that reply; the stream goes on meanwhile
    reject_acl: bool = False  # answer every connection with text/rude-rejection


@dataclass(frozen=True, slots=True)
class _Frame:
    raw: bytes
    name: str | None  # Event-Name; None: not an event (garbage for tests), never filtered
    subclass: str | None  # Event-Subclass of a CUSTOM event
    stamp: float | None  # Event-Date-Timestamp in seconds, for pacing


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    # latin-1 never fails: a block of garbage still gets a description.
    for line in block.decode("latin-1").split("\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip(), value.strip())
    return headers


def _describe(raw: bytes, headers: dict[str, str], body: bytes) -> _Frame:
    # A regex look at the few headers we need: decoding every event in full
    # would make a long replay slow to start.
    kind = headers.get("Content-Type")
    if kind not in (EVENT_PLAIN, EVENT_JSON):
        return _Frame(raw, None, None, None)
    fields: dict[str, str] = {}
    for key, value in (_PLAIN if kind == EVENT_PLAIN else _JSON).findall(body):
        # The first match: an event's own body comes after its headers.
        text = value.decode("utf-8", "replace")
        fields.setdefault(key.decode(), unquote(text) if kind == EVENT_PLAIN else text)
    name = fields.get("Event-Name")
    if not name:
        return _Frame(raw, None, None, None)
    stamp = fields.get("Event-Date-Timestamp", "")
    return _Frame(
        raw,
        name,
        fields.get("Event-Subclass"),
        int(stamp) / 1e6 if stamp.isdigit() else None,
    )


def split_capture(capture: bytes) -> list[_Frame]:
    """Cut a capture into frames, dropping its own session frames (see the module docstring).

    Raw bytes that are not a capture (garbage for tests) pass through as they
    are: the concatenated frames always equal the input minus what was dropped.
    """
    frames: list[_Frame] = []
    start = 0
    while start < len(capture):
        end = capture.find(b"\n\n", start)
        if end < 0:
            frames.append(_Frame(capture[start:], None, None, None))
            break
        headers = _headers(capture[start:end])
        length = headers.get("Content-Length", "")
        body_start = end + 2
        stop = body_start + int(length) if length.isdigit() else body_start
        raw = capture[start:stop]
        start = stop
        if headers.get("Content-Type") in _SESSION_TYPES:
            continue
        frames.append(_describe(raw, headers, capture[body_start:stop]))
    return frames


def _reply(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def _api_response(body: str) -> bytes:
    data = body.encode()
    return b"Content-Type: api/response\nContent-Length: %d\n\n%b" % (len(data), data)


def heartbeat_frame(fmt: str, sequence: int) -> bytes:
    """A HEARTBEAT event frame in ``fmt`` (``json``, else plain), stamped now."""
    event = {
        "Event-Name": "HEARTBEAT",
        "Core-UUID": SIMULATOR_CORE_UUID,
        "FreeSWITCH-Hostname": "textback-simulator",
        "Event-Date-Timestamp": str(int(time.time() * 1e6)),
        "Event-Calling-File": "switch_core.c",
        "Event-Sequence": str(sequence),
        "Event-Info": "System Ready",
    }
    if fmt == "json":
        body = json.dumps(event, separators=(",", ":")).encode()
        kind = "text/event-json"
    else:
        body = ("".join(f"{k}: {quote(v, safe='')}\n" for k, v in event.items()) + "\n").encode()
        kind = "text/event-plain"
    return b"Content-Length: %d\nContent-Type: %b\n\n%b" % (len(body), kind.encode(), body)


class _Client(ReplayClient):
    """One event-socket session; what it subscribed to adds up over ``event`` commands."""

    def __init__(
        self, writer: asyncio.StreamWriter, cut: Callable[[bytes], Iterator[bytes]]
    ) -> None:
        super().__init__(writer, cut)
        self.format: str | None = None  # set by the first `event` command
        self.names: set[str] = set()
        self.subclasses: set[str] = set()

    def wants(self, frame: _Frame) -> bool:
        if self.format is None:
            return False
        if frame.name is None or "ALL" in self.names:
            return True
        if frame.name == "CUSTOM":
            return frame.subclass in self.subclasses
        return frame.name in self.names

    def subscribe(self, fmt: str, words: list[str]) -> None:
        # Subscriptions add up, as in mod_event_socket; after CUSTOM come subclasses.
        self.format = fmt
        custom = False
        for word in words:
            if word.upper() == "CUSTOM":
                custom = True
            elif custom:
                self.subclasses.add(word)
            else:
                self.names.add(word.upper())


class EslSimulator(ReplayServer[EslSimulatorOptions, _Frame, _Client]):
    """A fake FreeSWITCH event socket replaying ``captures``. See the module docstring."""

    _REQUEST_END = b"\n\n"

    def __init__(
        self, captures: Sequence[bytes], options: EslSimulatorOptions | None = None
    ) -> None:
        super().__init__(captures, options if options is not None else EslSimulatorOptions())
        self._beater: asyncio.Task[None] | None = None
        self.connections = 0
        self.subscriptions = 0
        self.resyncs = 0  # `api show channels as json` answered
        self.heartbeats_sent = 0  # beats that reached at least one client

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        await super().start(host, port)
        if self.options.heartbeats:
            self._beater = asyncio.create_task(self._beat())

    def _background(self) -> list[asyncio.Task[None] | None]:
        return [*super()._background(), self._beater]

    def _split(self, capture: bytes) -> list[_Frame]:
        return split_capture(capture)

    def _new_client(
        self, writer: asyncio.StreamWriter, cut: Callable[[bytes], Iterator[bytes]]
    ) -> _Client:
        return _Client(writer, cut)

    def _wants(self, client: _Client, frame: _Frame) -> bool:
        return client.wants(frame)

    def _farewell(self, client: _Client) -> bytes | None:
        # What FreeSWITCH sends each logged-in listener on shutdown.
        return DISCONNECT_NOTICE_FRAME if client.authenticated else None

    async def notify_disconnect(self) -> None:
        """Send every logged-in client a disconnect-notice but keep its socket open.

        The client must hang up by itself, as it should whatever the speed
        at which FreeSWITCH then closes.
        """
        for client in list(self._clients):
            if client.authenticated:
                await client.send(DISCONNECT_NOTICE_FRAME)

    async def _greet(self, client: _Client) -> bool:
        self.connections += 1
        await self._notify()
        if self.options.reject_acl:
            await client.send(RUDE_REJECTION_FRAME)
            return False
        return await client.send(AUTH_REQUEST_FRAME)

    async def _answer(self, client: _Client, raw: bytes) -> bool:
        """Answer one command; False closes the session."""
        command = raw.decode("utf-8", "replace").strip().split("\n")[0].strip()
        verb, _, rest = command.partition(" ")
        verb = verb.lower()
        if verb == "auth":
            return await self._auth(client, rest)
        if verb == "exit":
            await client.send(_reply("+OK bye") + DISCONNECT_NOTICE_FRAME)
            return False
        if not client.authenticated:
            return await client.send(_reply("-ERR command not found"))
        if verb == "event":
            return await self._subscribe(client, rest.split())
        if verb == "api":
            return await client.send(await self._api(rest))
        return await client.send(_reply("-ERR command not found"))

    async def _auth(self, client: _Client, password: str) -> bool:
        self.login_attempts += 1
        if password != self.options.password:
            await client.send(_reply("-ERR invalid") + DISCONNECT_NOTICE_FRAME)
            await self._notify()
            return False
        client.authenticated = True
        self.logins += 1
        await self._notify()
        return await client.send(_reply("+OK accepted"))

    async def _subscribe(self, client: _Client, words: list[str]) -> bool:
        if not words or words[0].lower() not in _FORMATS:
            return await client.send(_reply("-ERR invalid format"))
        if len(words) < 2:
            return await client.send(_reply("-ERR no keywords supplied"))
        fmt = words[0].lower()
        if not await client.send(_reply(f"+OK event listener enabled {fmt}")):
            return False
        client.subscribe(fmt, words[1:])
        self.subscriptions += 1
        self._start_stream()
        await self._notify()
        return True

    async def _api(self, command: str) -> bytes:
        if " ".join(command.lower().split()) == "show channels as json":
            if self.options.resync_delay > 0:
                await asyncio.sleep(self.options.resync_delay)
            self.resyncs += 1
            await self._notify()
            return _api_response(self.options.channels_json)
        name = command.split(" ")[0]
        return _api_response(f"-ERR {name} Command not found!\n")

    async def _beat(self) -> None:
        beat = _Frame(b"", "HEARTBEAT", None, None)
        sequence = 0
        while True:
            await asyncio.sleep(self.options.heartbeat_interval)
            sequence += 1
            reached = False
            for client in list(self._clients):
                if client.format is not None and client.wants(beat):
                    reached |= await client.send(heartbeat_frame(client.format, sequence))
            if reached:
                self.heartbeats_sent += 1
                await self._notify()


def bundled_esl_captures() -> list[tuple[str, bytes]]:
    """The demo ESL captures shipped in ``textback/data/captures``, sorted by name."""
    return bundled(".esl")
