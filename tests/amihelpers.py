"""Helpers shared by the AMI source and simulator tests: captures, clients, waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.sourcehelpers import (
    PATIENCE,
    ClosingServer,
    StreamClient,
    event_messages,
    item_of,
    items,
    running,
)
from textback.pbx.ami_proto import AmiFramer, AmiMessage
from textback.pbx.ami_source import AmiEvent, AmiSettings, AmiSource

# Re-exported: the AMI tests import these from here.
__all__ = ["PATIENCE", "ClosingServer", "item_of", "items", "running"]

CAPTURES = Path(__file__).parent / "captures" / "asterisk"


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


async def events(source: AmiSource, count: int) -> list[AmiMessage]:
    """The next ``count`` events' messages, skipping other items."""
    return await event_messages(source, AmiEvent, count)


class RawClient(StreamClient[AmiMessage]):
    """A bare AMI client over asyncio streams, for poking at the simulator."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._ami_framer = AmiFramer()
        super().__init__(reader, writer, self._ami_framer)

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    @property
    def banner(self) -> str | None:
        return self._ami_framer.banner

    def send(self, **fields: str) -> None:
        text = "".join(f"{key}: {value}\r\n" for key, value in fields.items())
        self._writer.write(text.encode() + b"\r\n")

    async def login(self, secret: str = "textback", events: str = "on") -> AmiMessage:
        self.send(Action="Login", ActionID="l1", Username="textback", Secret=secret, Events=events)
        return await self.next_message()

    async def next_message(self) -> AmiMessage:
        return await self._next()

    async def messages_until(self, done: Callable[[AmiMessage], bool]) -> list[AmiMessage]:
        """Messages up to and including the first one for which ``done`` holds."""
        return await self._until(done)
