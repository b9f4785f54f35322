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
import contextlib
import importlib.resources
import json
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Literal
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
_MAX_PACE_WAIT = 5.0  # seconds of capture time, before dividing by speed
_RANDOM_CHUNK_MAX = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class EslSimulatorOptions:
    """How the fake PBX behaves. The defaults replay as fast as possible."""

    password: str = field(default="ClueCon", repr=False)  # FreeSWITCH's default
    speed: float = 0.0  # 0 = as fast as possible; 1.0 = real time; 10 = ten times faster
    chunking: Literal["whole", "byte", "random"] = "whole"  # how bytes are cut into writes
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
    timestamp: float | None  # Event-Date-Timestamp in seconds, for pacing


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


class _Client:
    """One TCP session. All writes go through one lock: frames never interleave."""

    def __init__(
        self, writer: asyncio.StreamWriter, cut: Callable[[bytes], Iterator[bytes]]
    ) -> None:
        self._writer = writer
        self._cut = cut
        self._lock = asyncio.Lock()
        self._pause = cut is not _whole
        self.authenticated = False
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

    async def send(self, data: bytes) -> bool:
        """Write ``data``; False if the connection is gone."""
        async with self._lock:
            for chunk in self._cut(data):
                if self._writer.is_closing():
                    return False
                self._writer.write(chunk)
                try:
                    await self._writer.drain()
                except ConnectionError:
                    return False
                if self._pause:
                    # Two loop turns: a peer in this process reads each chunk
                    # on its own (one turn lets two chunks pile up).
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
        return True

    def drop(self) -> None:
        self._writer.transport.abort()


def _whole(data: bytes) -> Iterator[bytes]:
    yield data


def _bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


class EslSimulator:
    """A fake FreeSWITCH event socket replaying ``captures``. See the module docstring."""

    def __init__(
        self, captures: Sequence[bytes], options: EslSimulatorOptions | None = None
    ) -> None:
        self.options = options if options is not None else EslSimulatorOptions()
        self._frames: list[_Frame] = [f for c in captures for f in split_capture(c)]
        self._cursor = 0
        self._clock: float | None = None  # capture time of the last paced frame
        self._random = random.Random(self.options.seed)
        self._server: asyncio.Server | None = None
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._streamer: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None
        self._more = asyncio.Event()
        self._changed = asyncio.Condition()
        self.streamed = asyncio.Event()
        self.connections = 0
        self.logins = 0
        self.login_attempts = 0
        self.subscriptions = 0
        self.resyncs = 0  # `api show channels as json` answered
        self.heartbeats_sent = 0  # beats that reached at least one client

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        if self.options.heartbeats:
            self._beater = asyncio.create_task(self._beat())

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in (self._streamer, self._beater):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # Python 3.11's start_server logs an error for a cancelled handler
        # task, so end the sessions by closing their sockets instead.
        for client in list(self._clients):
            client.drop()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> EslSimulator:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def feed(self, capture: bytes) -> None:
        """Append a capture (or raw bytes) to the stream."""
        self._frames.extend(split_capture(capture))
        self.streamed.clear()
        self._more.set()

    async def restart(self, *, announce: bool = True) -> None:
        """Drop every client now, like a FreeSWITCH restart; keep listening.

        ``announce`` sends each logged-in client a ``text/disconnect-notice``
        first, as FreeSWITCH does on shutdown. The stream goes on from where
        it was: what falls due before a client subscribes again is lost.
        """
        for client in list(self._clients):
            if announce and client.authenticated:
                await client.send(DISCONNECT_NOTICE_FRAME)
            client.drop()

    async def notify_disconnect(self) -> None:
        """Send every logged-in client a disconnect-notice but keep its socket open.

        The client must hang up by itself, as it should whatever the speed
        at which FreeSWITCH then closes.
        """
        for client in list(self._clients):
            if client.authenticated:
                await client.send(DISCONNECT_NOTICE_FRAME)

    async def until(self, predicate: Callable[[EslSimulator], bool]) -> None:
        """Wait until ``predicate(self)`` holds; re-checked on every connection, command or beat."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _cutter(self) -> Callable[[bytes], Iterator[bytes]]:
        if self.options.chunking == "byte":
            return _bytewise

        if self.options.chunking == "random":

            def cut(data: bytes) -> Iterator[bytes]:
                start = 0
                while start < len(data):
                    end = start + self._random.randint(1, _RANDOM_CHUNK_MAX)
                    yield data[start:end]
                    start = end

            return cut
        return _whole

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        client = _Client(writer, self._cutter())
        self._clients.add(client)
        self.connections += 1
        await self._notify()
        try:
            if self.options.reject_acl:
                await client.send(RUDE_REJECTION_FRAME)
                return
            if not await client.send(AUTH_REQUEST_FRAME):
                return
            while True:
                try:
                    raw = await reader.readuntil(b"\n\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                command = raw.decode("utf-8", "replace").strip().split("\n")[0].strip()
                if not await self._answer(client, command):
                    return
        finally:
            self._clients.discard(client)
            client.drop()
            writer.close()
            self._tasks.discard(task)

    async def _answer(self, client: _Client, command: str) -> bool:
        """Answer one command; False closes the session."""
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
        if self._streamer is None:
            self._streamer = asyncio.create_task(self._stream())
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

    async def _stream(self) -> None:
        while True:
            while self._cursor < len(self._frames):
                frame = self._frames[self._cursor]
                await self._pace(frame)
                for client in list(self._clients):
                    if client.wants(frame):
                        await client.send(frame.raw)
                self._cursor += 1
            self.streamed.set()
            if self.options.close_after_stream:
                for client in list(self._clients):
                    client.drop()
            self._more.clear()
            await self._more.wait()

    async def _pace(self, frame: _Frame) -> None:
        if self.options.speed <= 0 or frame.timestamp is None:
            return
        if self._clock is not None and frame.timestamp > self._clock:
            delta = min(frame.timestamp - self._clock, _MAX_PACE_WAIT)
            await asyncio.sleep(delta / self.options.speed)
        if self._clock is None or frame.timestamp > self._clock:
            self._clock = frame.timestamp

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
    root = importlib.resources.files("textback").joinpath("data", "captures")
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        return sorted(
            (entry.name, entry.read_bytes())
            for entry in root.iterdir()
            if entry.name.endswith(".esl") and entry.is_file()
        )
    return []
