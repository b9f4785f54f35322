"""A fake Asterisk: a real AMI server on TCP that replays recorded captures.

Shell (IO). Used by ``textback demo`` and by the tests as the PBX. It behaves
like Asterisk where textback can tell the difference: banner first, Login
checked (a wrong secret gets ``Authentication failed`` and the socket closed),
``Events:`` classes honoured, Ping / CoreShowChannels / Logoff answered.

The captures play once per simulator, like time on a real PBX: the stream
starts at the first successful Login and is broadcast to every logged-in
client. A message that falls due while nobody is logged in is lost, as
events during a real outage are. Each message goes out as the exact bytes of
the capture; only the cut into TCP writes (``chunking``) and the pacing vary.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Literal

from textback.pbx.ami_proto import BANNER_PREFIX, epoch_of_uniqueid

DEFAULT_BANNER: Final = b"Asterisk Call Manager/9.0.0\r\n"
# What Asterisk sends its sessions on `core restart now`.
SHUTDOWN_EVENT: Final = (
    b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Uncleanly\r\nRestart: True\r\n\r\n"
)
_FRAME_END = re.compile(rb"\r?\n\r?\n")
_MAX_PACE_WAIT = 5.0  # seconds of capture time, before dividing by speed
_RANDOM_CHUNK_MAX = 64
_ALL_EVENTS = frozenset({"on", "yes", "true", "all", "1"})
_NO_EVENTS = frozenset({"off", "no", "false", "0", ""})
_SMS_ACTIONS: Final = {"donglesendsms": "dongle", "quectelsendsms": "quectel"}
_DIALLABLE = re.compile(r"\+?[0-9*#]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorOptions:
    """How the fake PBX behaves. The defaults replay as fast as possible."""

    username: str = "textback"
    secret: str = field(default="textback", repr=False)
    speed: float = 0.0  # 0 = as fast as possible; 1.0 = real time; 10 = ten times faster
    chunking: Literal["whole", "byte", "random"] = "whole"  # how bytes are cut into writes
    seed: int = 0  # for random chunking
    # None = every class; else only events whose Privilege classes intersect,
    # as if manager.conf granted only these read classes.
    read_classes: frozenset[str] | None = None
    answer_pings: bool = True  # False plays a half-open, dead peer
    close_after_stream: bool = False  # drop clients once every capture is out
    channels_snapshot: list[str] | None = None  # raw CoreShowChannel event texts
    # GSM modems (chan_dongle / chan_quectel): the drivers loaded (others' SMS
    # actions are unknown commands), the devices that exist, and a refusal
    # (e.g. "Device not connected / initialized / registered") for every send.
    modem_drivers: frozenset[str] = frozenset({"dongle", "quectel"})
    modem_devices: frozenset[str] = frozenset({"dongle0", "quectel0"})
    modem_error: str | None = None


@dataclass(frozen=True, slots=True)
class _Frame:
    raw: bytes
    classes: frozenset[str] | None  # None: no Privilege header, never filtered
    epoch: float | None  # capture time of a Newchannel, for pacing


def _classes(value: str) -> frozenset[str]:
    # Every event's Privilege ends in ",all"; it names no class of its own.
    return frozenset(c.strip().lower() for c in value.split(",") if c.strip()) - {"all"}


def _describe(raw: bytes) -> _Frame:
    headers: dict[str, str] = {}
    # latin-1 never fails: a frame of garbage still gets a description.
    for line in raw.decode("latin-1").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            headers.setdefault(key.strip().lower(), value.strip())
    privilege = headers.get("privilege")
    uniqueid = headers.get("uniqueid")
    epoch = None
    if headers.get("event") == "Newchannel" and uniqueid is not None:
        epoch = epoch_of_uniqueid(uniqueid)
    return _Frame(raw, None if privilege is None else _classes(privilege), epoch)


_SHUTDOWN_FRAME: Final = _describe(SHUTDOWN_EVENT)


def split_capture(capture: bytes) -> list[_Frame]:
    """Cut a capture into messages, dropping its banner and its own Login reply.

    Raw bytes that are not a capture (garbage for tests) pass through as they
    are: the concatenated frames always equal the input minus what was dropped.
    """
    data = capture
    if data.startswith(BANNER_PREFIX):
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else b""
    raws: list[bytes] = []
    start = 0
    for match in _FRAME_END.finditer(data):
        raws.append(data[start : match.end()])
        start = match.end()
    if start < len(data):
        raws.append(data[start:])
    # The recorder's Login response precedes the first event; each live
    # client gets its own instead.
    while raws and raws[0].startswith(b"Response:"):
        raws.pop(0)
    return [_describe(raw) for raw in raws]


def banner_of(captures: Sequence[bytes]) -> bytes:
    """The first capture's banner line, CRLF included, or a default one."""
    if captures and captures[0].startswith(BANNER_PREFIX):
        newline = captures[0].find(b"\n")
        if newline >= 0:
            return captures[0][: newline + 1]
    return DEFAULT_BANNER


def parse_events_value(value: str | None) -> frozenset[str] | None:
    """Login ``Events:`` as a class set; None means every class."""
    if value is None or value.strip().lower() in _ALL_EVENTS:
        return None
    if value.strip().lower() in _NO_EVENTS:
        return frozenset()
    return _classes(value)


def _parse_action(raw: bytes) -> dict[str, str]:
    action: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            action.setdefault(key.strip().lower(), value.strip())
    return action


def _reply(kind: str, action_id: str | None, *lines: str) -> bytes:
    head = [f"Response: {kind}"]
    if action_id is not None:
        head.append(f"ActionID: {action_id}")
    return ("\r\n".join([*head, *lines]) + "\r\n\r\n").encode()


def _list_item(text: str, action_id: str | None) -> bytes:
    lines = [
        line
        for line in text.replace("\r\n", "\n").split("\n")
        if line.strip() and not line.lower().startswith("actionid:")
    ]
    if action_id is not None:
        lines.insert(1, f"ActionID: {action_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Client:
    """One TCP session. All writes go through one lock: messages never interleave."""

    def __init__(
        self, writer: asyncio.StreamWriter, cut: Callable[[bytes], Iterator[bytes]]
    ) -> None:
        self._writer = writer
        self._cut = cut
        self._lock = asyncio.Lock()
        self._pause = cut is not _whole
        self.authenticated = False
        self.events: frozenset[str] | None = frozenset()

    def wants(self, frame: _Frame, read_classes: frozenset[str] | None) -> bool:
        if frame.classes is None:
            return True
        if read_classes is not None and not frame.classes & read_classes:
            return False
        return self.events is None or bool(frame.classes & self.events)

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


class AmiSimulator:
    """A fake Asterisk AMI server replaying ``captures``. See the module docstring."""

    def __init__(self, captures: Sequence[bytes], options: SimulatorOptions | None = None) -> None:
        self.options = options if options is not None else SimulatorOptions()
        self._banner = banner_of(captures)
        self._frames: list[_Frame] = [f for c in captures for f in split_capture(c)]
        self._cursor = 0
        self._clock: float | None = None  # capture time of the last paced message
        self._random = random.Random(self.options.seed)
        self._server: asyncio.Server | None = None
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._streamer: asyncio.Task[None] | None = None
        self._more = asyncio.Event()
        self._changed = asyncio.Condition()
        self.streamed = asyncio.Event()
        self.logins = 0
        self.login_attempts = 0
        self.pings_answered = 0
        # Every DongleSendSMS / QuectelSendSMS received, as parsed: lower-case keys.
        self.sent_sms: list[dict[str, str]] = []
        self._sms_ids = 0

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._streamer is not None:
            self._streamer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._streamer
        # Python 3.11's start_server logs an error for a cancelled handler
        # task, so end the sessions by closing their sockets instead.
        for client in list(self._clients):
            client.drop()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> AmiSimulator:
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
        """Drop every client now, like ``core restart now``; keep listening.

        ``announce`` sends ``Event: Shutdown`` first, as Asterisk does.
        """
        for client in list(self._clients):
            if (
                announce
                and client.authenticated
                and client.wants(_SHUTDOWN_FRAME, self.options.read_classes)
            ):
                await client.send(SHUTDOWN_EVENT)
            client.drop()

    async def until(self, predicate: Callable[[AmiSimulator], bool]) -> None:
        """Wait until ``predicate(self)`` holds; re-checked on every login or ping."""
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
        try:
            if not await client.send(self._banner):
                return
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                if not await self._answer(client, _parse_action(raw)):
                    return
        finally:
            self._clients.discard(client)
            client.drop()
            writer.close()
            self._tasks.discard(task)

    async def _answer(self, client: _Client, action: dict[str, str]) -> bool:
        """Answer one action; False closes the session."""
        name = action.get("action", "").lower()
        action_id = action.get("actionid")
        if name == "login":
            return await self._login(client, action)
        if name == "logoff":
            await client.send(_reply("Goodbye", action_id, "Message: Thanks for all the fish."))
            return False
        if not client.authenticated:
            return await client.send(_reply("Error", action_id, "Message: Permission denied"))
        if name == "ping":
            if not self.options.answer_pings:
                return True
            self.pings_answered += 1
            await self._notify()
            pong = _reply("Success", action_id, "Ping: Pong", f"Timestamp: {time.time():.6f}")
            return await client.send(pong)
        if name == "coreshowchannels":
            return await client.send(self._channels_reply(action_id))
        if _SMS_ACTIONS.get(name) in self.options.modem_drivers:
            return await client.send(await self._send_sms(action))
        return await client.send(_reply("Error", action_id, "Message: Invalid/unknown command"))

    async def _login(self, client: _Client, action: dict[str, str]) -> bool:
        self.login_attempts += 1
        action_id = action.get("actionid")
        accepted = (
            action.get("username") == self.options.username
            and action.get("secret") == self.options.secret
        )
        if not accepted:
            await client.send(_reply("Error", action_id, "Message: Authentication failed"))
            await self._notify()
            return False
        if not await client.send(_reply("Success", action_id, "Message: Authentication accepted")):
            return False
        client.events = parse_events_value(action.get("events"))
        client.authenticated = True
        self.logins += 1
        if self._streamer is None:
            self._streamer = asyncio.create_task(self._stream())
        await self._notify()
        return True

    async def _send_sms(self, action: dict[str, str]) -> bytes:
        """Answer an SMS action the way chan_dongle's manager.c does."""
        self.sent_sms.append(action)
        await self._notify()
        action_id = action.get("actionid")
        device = action.get("device", "")
        for field_name in ("device", "number", "message"):
            if not action.get(field_name):
                return _reply("Error", action_id, f"Message: {field_name.title()} not specified")
        reason: str | None
        if not _DIALLABLE.fullmatch(action["number"]):
            reason = "Invalid destination number"
        elif device not in self.options.modem_devices:
            reason = "Device not found"
        else:
            reason = self.options.modem_error
        if reason is not None:
            return _reply("Error", action_id, f"Message: [{device}] {reason}", "ID: (nil)")
        self._sms_ids += 1
        return _reply(
            "Success",
            action_id,
            f"Message: [{device}] SMS queued for send",
            f"ID: 0x{0x55D0C0DE0000 + self._sms_ids:x}",
        )

    def _channels_reply(self, action_id: str | None) -> bytes:
        snapshot = self.options.channels_snapshot or []
        parts = [_reply("Success", action_id, "EventList: start", "Message: Channels will follow")]
        parts.extend(_list_item(text, action_id) for text in snapshot)
        done = ["Event: CoreShowChannelsComplete"]
        if action_id is not None:
            done.append(f"ActionID: {action_id}")
        done += ["EventList: Complete", f"ListItems: {len(snapshot)}"]
        parts.append(("\r\n".join(done) + "\r\n\r\n").encode())
        return b"".join(parts)

    async def _stream(self) -> None:
        while True:
            while self._cursor < len(self._frames):
                frame = self._frames[self._cursor]
                await self._pace(frame)
                for client in list(self._clients):
                    if client.authenticated and client.wants(frame, self.options.read_classes):
                        await client.send(frame.raw)
                self._cursor += 1
            self.streamed.set()
            if self.options.close_after_stream:
                for client in list(self._clients):
                    client.drop()
            self._more.clear()
            await self._more.wait()

    async def _pace(self, frame: _Frame) -> None:
        if self.options.speed <= 0 or frame.epoch is None:
            return
        if self._clock is not None and frame.epoch > self._clock:
            delta = min(frame.epoch - self._clock, _MAX_PACE_WAIT)
            await asyncio.sleep(delta / self.options.speed)
        if self._clock is None or frame.epoch > self._clock:
            self._clock = frame.epoch


def bundled_captures() -> list[tuple[str, bytes]]:
    """The demo captures shipped in ``textback/data/captures``, sorted by name."""
    root = importlib.resources.files("textback").joinpath("data", "captures")
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        return sorted(
            (entry.name, entry.read_bytes())
            for entry in root.iterdir()
            if entry.name.endswith(".ami") and entry.is_file()
        )
    return []
