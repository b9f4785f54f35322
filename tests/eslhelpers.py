"""Helpers shared by the ESL framer, source and simulator tests: captures, clients, waits."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.sourcehelpers import PATIENCE, StreamClient, event_messages, item_of, items, running
from textback.pbx.esl_proto import (
    SUBSCRIBED_CUSTOM,
    SUBSCRIBED_EVENTS,
    EslFrame,
    EslFramer,
    EslMessage,
    decode_stream,
)
from textback.pbx.esl_source import EslEvent, EslSettings, EslSource

# Re-exported: the ESL tests import these from here.
__all__ = ["PATIENCE", "item_of", "items", "running"]

CAPTURES = Path(__file__).parent / "captures" / "freeswitch"
PASSWORD = "ClueCon"


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


async def events(source: EslSource, count: int) -> list[EslMessage]:
    """The next ``count`` events' messages, skipping other items."""
    return await event_messages(source, EslEvent, count)


class RawClient(StreamClient[EslFrame]):
    """A bare ESL client over asyncio streams, for poking at the simulator."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer, EslFramer())

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
        return await self._next()

    async def frames_until(self, done: Callable[[EslFrame], bool]) -> list[EslFrame]:
        """Frames up to and including the first one for which ``done`` holds."""
        return await self._until(done)

    async def frames_to_end(self) -> list[EslFrame]:
        """Every frame until the simulator closes the connection."""
        found = list(self._pending)
        self._pending.clear()
        async with asyncio.timeout(PATIENCE):
            while data := await self._reader.read(65536):
                found += self._framer.receive_data(data)[0]
        return found
