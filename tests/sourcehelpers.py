"""Helpers shared by the AMI and ESL source tests: running a source, waiting for its items,
raw stream clients and a server that refuses every connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Protocol, Self, TypeVar

# Every wait in these tests is bounded by this, so a hang fails fast.
PATIENCE = 10.0

Item = TypeVar("Item")
Item_co = TypeVar("Item_co", covariant=True)
Kind = TypeVar("Kind")
Message = TypeVar("Message")
Message_co = TypeVar("Message_co", covariant=True)
Frame = TypeVar("Frame")


class Source(Protocol[Item_co]):
    """What AmiSource and EslSource have in common for these helpers."""

    async def run(self) -> None: ...

    async def next_item(self) -> Item_co: ...


class Event(Protocol[Message_co]):
    @property
    def message(self) -> Message_co: ...


class Framer(Protocol[Frame]):
    def receive_data(self, data: bytes) -> tuple[list[Frame], Any]: ...


@contextlib.asynccontextmanager
async def running(source: Source[object]) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``source`` in a task for the duration of the block, then cancel it."""
    task = asyncio.create_task(source.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def items(source: Source[Item], count: int) -> list[Item]:
    """The next ``count`` items of any kind."""
    async with asyncio.timeout(PATIENCE):
        return [await source.next_item() for _ in range(count)]


async def item_of(source: Source[Item], kind: type[Kind]) -> tuple[Kind, list[Item]]:
    """Skip to the next item of ``kind``; also return the items skipped."""
    skipped: list[Item] = []
    async with asyncio.timeout(PATIENCE):
        while True:
            item = await source.next_item()
            if isinstance(item, kind):
                return item, skipped
            skipped.append(item)


async def event_messages(
    source: Source[object], kind: type[Event[Message]], count: int
) -> list[Message]:
    """The messages of the next ``count`` items of ``kind``, skipping other items."""
    found: list[Message] = []
    async with asyncio.timeout(PATIENCE):
        while len(found) < count:
            item = await source.next_item()
            if isinstance(item, kind):
                found.append(item.message)
    return found


class StreamClient(Generic[Frame]):
    """A bare client over asyncio streams that frames what it reads, for poking at a simulator."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, framer: Framer[Frame]
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._framer = framer
        self._pending: list[Frame] = []
        self.reads = 0  # how many socket reads delivered data

    async def _next(self) -> Frame:
        async with asyncio.timeout(PATIENCE):
            while not self._pending:
                data = await self._reader.read(65536)
                if not data:
                    raise EOFError("simulator closed the connection")
                self.reads += 1
                frames, _ = self._framer.receive_data(data)
                self._pending.extend(frames)
        return self._pending.pop(0)

    async def _until(self, done: Callable[[Frame], bool]) -> list[Frame]:
        found: list[Frame] = []
        while True:
            frame = await self._next()
            found.append(frame)
            if done(frame):
                return found

    async def closed_by_peer(self) -> bool:
        """Read to the end; True once the simulator has closed the connection."""
        async with asyncio.timeout(PATIENCE):
            while await self._reader.read(65536):
                pass
        return True

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


class ClosingServer:
    """Accepts TCP connections and closes them at once, noting when each came."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self.accepted: list[float] = []
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def until_accepted(self, count: int) -> None:
        async with asyncio.timeout(PATIENCE), self._changed:
            await self._changed.wait_for(lambda: len(self.accepted) >= count)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(asyncio.get_running_loop().time())
        writer.close()
        async with self._changed:
            self._changed.notify_all()
