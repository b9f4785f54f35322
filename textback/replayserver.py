"""What the fake PBXes share: a TCP server that replays recorded frames.

Shell (IO). ``AmiSimulator`` and ``EslSimulator`` subclass ``ReplayServer``
and keep only their protocol: how a capture is cut into frames, what a
client is greeted with, how a request is answered, which frames a client
asked for. The rest is here: client bookkeeping, writes cut into chunks, the
one broadcast stream and its pacing, start and shutdown.

The captures play once per server, like time on a real PBX: the stream
starts when the first client subscribes (``_start_stream``) and is
broadcast to every client that wants each frame. A frame that falls due
while nobody wants it is lost, as events during a real outage are.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import importlib.resources
import random
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import ClassVar, Generic, Literal, Protocol, Self, TypeVar

Chunking = Literal["whole", "byte", "random"]
_MAX_PACE_WAIT = 5.0  # seconds of capture time, before dividing by speed
_RANDOM_CHUNK_MAX = 64


class ReplayOptions(Protocol):
    """The options every fake PBX has (its own frozen dataclass adds the rest)."""

    @property
    def speed(self) -> float: ...  # 0 = as fast as possible; 1.0 = real time
    @property
    def chunking(self) -> Chunking: ...
    @property
    def seed(self) -> int: ...  # for random chunking
    @property
    def close_after_stream(self) -> bool: ...


class ReplayFrame(Protocol):
    """One recorded message: its exact bytes and its capture time, if it has one."""

    @property
    def raw(self) -> bytes: ...
    @property
    def stamp(self) -> float | None: ...  # seconds; None: never paced


def _whole(data: bytes) -> Iterator[bytes]:
    yield data


def _bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


class ReplayClient:
    """One TCP session. All writes go through one lock: messages never interleave."""

    def __init__(
        self, writer: asyncio.StreamWriter, cut: Callable[[bytes], Iterator[bytes]]
    ) -> None:
        self._writer = writer
        self._cut = cut
        self._lock = asyncio.Lock()
        self._pause = cut is not _whole
        self.authenticated = False

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


OptionsT = TypeVar("OptionsT", bound=ReplayOptions)
FrameT = TypeVar("FrameT", bound=ReplayFrame)
ClientT = TypeVar("ClientT", bound=ReplayClient)


class ReplayServer(abc.ABC, Generic[OptionsT, FrameT, ClientT]):
    """A server replaying ``captures`` to its clients. See the module docstring."""

    # What ends one request from a client.
    _REQUEST_END: ClassVar[bytes]

    def __init__(self, captures: Sequence[bytes], options: OptionsT) -> None:
        self.options = options
        self._frames: list[FrameT] = [f for c in captures for f in self._split(c)]
        self._cursor = 0
        self._clock: float | None = None  # capture time of the last paced frame
        self._random = random.Random(options.seed)
        self._server: asyncio.Server | None = None
        self._clients: set[ClientT] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._streamer: asyncio.Task[None] | None = None
        self._more = asyncio.Event()
        self._changed = asyncio.Condition()
        self.streamed = asyncio.Event()
        self.logins = 0
        self.login_attempts = 0

    # -- the protocol, for subclasses ------------------------------------

    @abc.abstractmethod
    def _split(self, capture: bytes) -> list[FrameT]:
        """Cut a capture (or raw bytes) into the frames to replay."""

    @abc.abstractmethod
    def _new_client(
        self, writer: asyncio.StreamWriter, cut: Callable[[bytes], Iterator[bytes]]
    ) -> ClientT:
        """A client of the subclass's own kind."""

    @abc.abstractmethod
    async def _greet(self, client: ClientT) -> bool:
        """Open a session; False closes it."""

    @abc.abstractmethod
    async def _answer(self, client: ClientT, raw: bytes) -> bool:
        """Answer one request (its bytes up to ``_REQUEST_END``); False closes the session."""

    @abc.abstractmethod
    def _wants(self, client: ClientT, frame: FrameT) -> bool:
        """Whether the stream sends ``frame`` to ``client``."""

    @abc.abstractmethod
    def _farewell(self, client: ClientT) -> bytes | None:
        """What ``restart(announce=True)`` sends ``client`` before dropping it."""

    def _background(self) -> list[asyncio.Task[None] | None]:
        """Tasks of the server's own, cancelled on ``aclose``."""
        return [self._streamer]

    # -- the shared machinery --------------------------------------------

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
        for task in self._background():
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

    async def __aenter__(self) -> Self:
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
        self.feed_frames(self.frames_of(capture))

    def frames_of(self, capture: bytes) -> list[FrameT]:
        """A capture cut into this server's frames, to feed later with :meth:`feed_frames`
        (cutting is the slow part: a timed feed should not pay for it).
        """
        return self._split(capture)

    def feed_frames(self, frames: Sequence[FrameT]) -> None:
        """Append frames made by :meth:`frames_of` to the stream."""
        self._frames.extend(frames)
        self.streamed.clear()
        self._more.set()

    async def restart(self, *, announce: bool = True) -> None:
        """Drop every client now, like a PBX restart; keep listening.

        ``announce`` first sends each logged-in client what the PBX sends its
        sessions on shutdown. The stream goes on from where it was: what
        falls due before a client subscribes again is lost.
        """
        for client in list(self._clients):
            farewell = self._farewell(client) if announce else None
            if farewell is not None:
                await client.send(farewell)
            client.drop()

    async def until(self, predicate: Callable[[Self], bool]) -> None:
        """Wait until ``predicate(self)`` holds; re-checked whenever a counter changes."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _start_stream(self) -> None:
        if self._streamer is None:
            self._streamer = asyncio.create_task(self._stream())

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
        client = self._new_client(writer, self._cutter())
        self._clients.add(client)
        try:
            if not await self._greet(client):
                return
            while True:
                try:
                    raw = await reader.readuntil(self._REQUEST_END)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                if not await self._answer(client, raw):
                    return
        finally:
            self._clients.discard(client)
            client.drop()
            writer.close()
            self._tasks.discard(task)

    async def _stream(self) -> None:
        while True:
            while self._cursor < len(self._frames):
                frame = self._frames[self._cursor]
                await self._pace(frame)
                for client in list(self._clients):
                    if self._wants(client, frame):
                        await client.send(frame.raw)
                self._cursor += 1
            # Sent frames are never read again: a long soak or demo must not keep them all.
            self._frames.clear()
            self._cursor = 0
            self.streamed.set()
            if self.options.close_after_stream:
                for client in list(self._clients):
                    client.drop()
            self._more.clear()
            await self._more.wait()

    async def _pace(self, frame: FrameT) -> None:
        stamp = frame.stamp
        if self.options.speed <= 0 or stamp is None:
            return
        if self._clock is not None and stamp > self._clock:
            delta = min(stamp - self._clock, _MAX_PACE_WAIT)
            await asyncio.sleep(delta / self.options.speed)
        if self._clock is None or stamp > self._clock:
            self._clock = stamp


def bundled(suffix: str) -> list[tuple[str, bytes]]:
    """The demo captures ending in ``suffix`` shipped in ``textback/data/captures``, by name."""
    root = importlib.resources.files("textback").joinpath("data", "captures")
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        return sorted(
            (entry.name, entry.read_bytes())
            for entry in root.iterdir()
            if entry.name.endswith(suffix) and entry.is_file()
        )
    return []
