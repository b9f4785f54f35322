"""Helpers shared by the ESL framer, source and simulator tests: captures, clients, waits."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from textback.pbx.esl_proto import (
    SUBSCRIBED_CUSTOM,
    SUBSCRIBED_EVENTS,
    EslFrame,
    EslFramer,
    EslMessage,
    decode_stream,
)
from textback.pbx.esl_source import EslEvent, EslSettings, EslSource, SourceItem

CAPTURES = Path(__file__).parent / "captures" / "freeswitch"
PASSWORD = "ClueCon"
# Every wait in these tests is bounded by this, so a hang fails fast.
PATIENCE = 10.0

T = TypeVar("T", bound=SourceItem)


def capture(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


def all_captures() -> list[Path]:
    return sorted(CAPTURES.glob("*.esl"))


def is_subscribed(message: EslMessage) -> bool:
    """Whether textback's subscription covers this event."""
    if message.get("Event-Name") == "CUSTOM":
        return message.get("Event-Subclass") in SUBSCRIBED_CUSTOM
    return message.get("Event-Name") in SUBSCRIBED_EVENTS


def framed_events(captures: Sequence[bytes], *, subscribed: bool = True) -> list[EslMessage]:
    """The reference: each capture framed whole, events only, by default those we subscribe to."""
    found: list[EslMessage] = []
    for data in captures:
        messages, _ = decode_stream(data)
        found += [m for m in messages if not subscribed or is_subscribed(m)]
    return found


def head(data: bytes, frames: int) -> bytes:
    """The first ``frames`` frames of a capture, exact bytes."""
    pos = 0
    for _ in range(frames):
        end = data.index(b"\n\n", pos) + 2
        length = re.search(rb"^Content-Length: (\d+)$", data[pos:end], re.MULTILINE)
        pos = end + (int(length.group(1)) if length else 0)
    return data[:pos]


def settings(port: int, **overrides: Any) -> EslSettings:
    """Settings with tiny timeouts, aimed at a simulator with the default password."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "password": PASSWORD,
        "connect_timeout": 1.0,
        "heartbeat_timeout": 5.0,
        "reconnect_min": 0.01,
        "reconnect_max": 0.05,
        "auth_retry": 5.0,
    }
    values.update(overrides)
    return EslSettings(**values)


@contextlib.asynccontextmanager
async def running(source: EslSource) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``source`` in a task for the duration of the block, then cancel it."""
    task = asyncio.create_task(source.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def items(source: EslSource, count: int) -> list[SourceItem]:
    """The next ``count`` items of any kind."""
    async with asyncio.timeout(PATIENCE):
        return [await source.next_item() for _ in range(count)]


async def item_of(source: EslSource, kind: type[T]) -> tuple[T, list[SourceItem]]:
    """Skip to the next item of ``kind``; also return the items skipped."""
    skipped: list[SourceItem] = []
    async with asyncio.timeout(PATIENCE):
        while True:
            item = await source.next_item()
            if isinstance(item, kind):
                return item, skipped
            skipped.append(item)


async def events(source: EslSource, count: int) -> list[EslMessage]:
    """The next ``count`` events' messages, skipping other items."""
    found: list[EslMessage] = []
    async with asyncio.timeout(PATIENCE):
        while len(found) < count:
            item = await source.next_item()
            if isinstance(item, EslEvent):
                found.append(item.message)
    return found


class RawClient:
    """A bare ESL client over asyncio streams, for poking at the simulator."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._framer = EslFramer()
        self._pending: list[EslFrame] = []

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, command: str) -> None:
        self._writer.write(command.encode() + b"\n\n")

    async def command(self, command: str) -> EslFrame:
        self.send(command)
        return await self.next_frame()

    async def next_frame(self) -> EslFrame:
        async with asyncio.timeout(PATIENCE):
            while not self._pending:
                data = await self._reader.read(65536)
                if not data:
                    raise EOFError("simulator closed the connection")
                frames, _ = self._framer.receive_data(data)
                self._pending.extend(frames)
        return self._pending.pop(0)

    async def frames_until(self, done: Callable[[EslFrame], bool]) -> list[EslFrame]:
        """Frames up to and including the first one for which ``done`` holds."""
        found: list[EslFrame] = []
        while True:
            frame = await self.next_frame()
            found.append(frame)
            if done(frame):
                return found

    async def frames_to_end(self) -> list[EslFrame]:
        """Every frame until the simulator closes the connection."""
        found = list(self._pending)
        self._pending.clear()
        async with asyncio.timeout(PATIENCE):
            while data := await self._reader.read(65536):
                found += self._framer.receive_data(data)[0]
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
