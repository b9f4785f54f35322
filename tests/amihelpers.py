"""Helpers shared by the AMI source and simulator tests: captures, clients, waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from textback.pbx.ami_proto import AmiFramer, AmiMessage
from textback.pbx.ami_source import AmiEvent, AmiSettings, AmiSource, SourceItem

CAPTURES = Path(__file__).parent / "captures" / "asterisk"
# Every wait in these tests is bounded by this, so a hang fails fast.
PATIENCE = 10.0

T = TypeVar("T", bound=SourceItem)


def capture(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


def privilege_classes(message: AmiMessage) -> frozenset[str]:
    classes = message.get("Privilege", "").split(",")
    return frozenset(c.strip() for c in classes if c.strip()) - {"all"}


def framed_events(
    captures: Sequence[bytes], classes: frozenset[str] | None = None
) -> list[AmiMessage]:
    """The reference: each capture framed whole, events only, optionally filtered."""
    events: list[AmiMessage] = []
    for data in captures:
        messages, _ = AmiFramer().receive_data(data)
        for message in messages:
            if "Event" not in message:
                continue
            if classes is None or privilege_classes(message) & classes:
                events.append(message)
    return events


def settings(port: int, **overrides: Any) -> AmiSettings:
    """Settings with tiny timeouts, aimed at a simulator with default credentials."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "username": "textback",
        "secret": "textback",
        "events": "on",
        "connect_timeout": 1.0,
        "ping_interval": 5.0,
        "ping_timeout": 1.0,
        "reconnect_min": 0.01,
        "reconnect_max": 0.05,
        "auth_retry": 5.0,
    }
    values.update(overrides)
    return AmiSettings(**values)


@contextlib.asynccontextmanager
async def running(source: AmiSource) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``source`` in a task for the duration of the block, then cancel it."""
    task = asyncio.create_task(source.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def items(source: AmiSource, count: int) -> list[SourceItem]:
    """The next ``count`` items of any kind."""
    async with asyncio.timeout(PATIENCE):
        return [await source.next_item() for _ in range(count)]


async def item_of(source: AmiSource, kind: type[T]) -> tuple[T, list[SourceItem]]:
    """Skip to the next item of ``kind``; also return the items skipped."""
    skipped: list[SourceItem] = []
    async with asyncio.timeout(PATIENCE):
        while True:
            item = await source.next_item()
            if isinstance(item, kind):
                return item, skipped
            skipped.append(item)


async def events(source: AmiSource, count: int) -> list[AmiMessage]:
    """The next ``count`` events' messages, skipping other items."""
    found: list[AmiMessage] = []
    async with asyncio.timeout(PATIENCE):
        while len(found) < count:
            item = await source.next_item()
            if isinstance(item, AmiEvent):
                found.append(item.message)
    return found


class RawClient:
    """A bare AMI client over asyncio streams, for poking at the simulator."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._framer = AmiFramer()
        self._pending: list[AmiMessage] = []
        self.reads = 0  # how many socket reads delivered data

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    @property
    def banner(self) -> str | None:
        return self._framer.banner

    def send(self, **fields: str) -> None:
        text = "".join(f"{key}: {value}\r\n" for key, value in fields.items())
        self._writer.write(text.encode() + b"\r\n")

    async def login(self, secret: str = "textback", events: str = "on") -> AmiMessage:
        self.send(Action="Login", ActionID="l1", Username="textback", Secret=secret, Events=events)
        return await self.next_message()

    async def next_message(self) -> AmiMessage:
        async with asyncio.timeout(PATIENCE):
            while not self._pending:
                data = await self._reader.read(65536)
                if not data:
                    raise EOFError("simulator closed the connection")
                self.reads += 1
                messages, _ = self._framer.receive_data(data)
                self._pending.extend(messages)
        return self._pending.pop(0)

    async def messages_until(self, done: Callable[[AmiMessage], bool]) -> list[AmiMessage]:
        """Messages up to and including the first one for which ``done`` holds."""
        found: list[AmiMessage] = []
        while True:
            message = await self.next_message()
            found.append(message)
            if done(message):
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

    async def __aenter__(self) -> ClosingServer:
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
