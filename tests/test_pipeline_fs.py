"""FreeSWITCH captures over real TCP: ESL simulator → event-socket source → daemon → SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.conftest import expected_of, fs_captures
from textback.config import Config, FreeswitchConfig
from textback.core.verdict import CallVerdict, Verdict
from textback.esl_simulator import EslSimulator, EslSimulatorOptions
from textback.pbx.esl_proto import SUBSCRIBED_CUSTOM, SUBSCRIBED_EVENTS, EslFramer, decode_event
from textback.service import Daemon
from textback.store import open_reader
from textback.tomltable import Secret

PATIENCE = 30.0
PASSWORD = "lab-esl-password"


def fs_config(config: Config, tmp_path: Path, port: int) -> Config:
    """The shipped example as a FreeSWITCH site would run it, aimed at the simulator."""
    freeswitch = FreeswitchConfig(
        port=port,
        password=Secret(PASSWORD),
        heartbeat_timeout=30.0,
        reconnect_min=0.05,
        reconnect_max=0.2,
    )
    return dataclasses.replace(
        config,
        asterisk=None,
        freeswitch=freeswitch,
        hours=None,  # judged on the wall clock by the daemon; the captures are from another day
        daemon=dataclasses.replace(config.daemon, database=tmp_path / "textback.db"),
    )


def delivered(captures: Sequence[bytes]) -> int:
    """How many events the daemon's subscription brings in for these captures."""
    count = 0
    for data in captures:
        frames, _ = EslFramer().receive_data(data)
        for event in filter(None, map(decode_event, frames)):
            name = event.get("Event-Name")
            if name in SUBSCRIBED_EVENTS or (
                name == "CUSTOM" and event.get("Event-Subclass") in SUBSCRIBED_CUSTOM
            ):
                count += 1
    return count


@contextlib.asynccontextmanager
async def daemon_for(config: Config, verdicts: list[CallVerdict]) -> AsyncIterator[Daemon]:
    async def collect(verdict: CallVerdict) -> None:
        verdicts.append(verdict)

    daemon = Daemon(config, on_verdict=collect)
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


@pytest.mark.parametrize("capture", fs_captures(), ids=lambda p: p.stem)
async def test_capture_over_tcp_gives_the_sidecar_verdict(
    capture: Path, example_config: Config, tmp_path: Path
) -> None:
    """Every ESL capture, in random TCP writes, is judged as its sidecar says and logged."""
    data = read_bytes(capture)
    options = EslSimulatorOptions(
        password=PASSWORD, chunking="random", seed=zlib.crc32(capture.name.encode())
    )
    verdicts: list[CallVerdict] = []
    async with EslSimulator([data], options) as pbx:
        config = fs_config(example_config, tmp_path, pbx.port)
        async with daemon_for(config, verdicts) as daemon, asyncio.timeout(PATIENCE):
            await daemon.until_handled(delivered([data]))
            await daemon.idle.wait()
    judged = [
        (v.verdict.value, v.reason.value) for v in verdicts if v.verdict is not Verdict.IGNORED
    ]
    assert judged == expected_of(capture).calls
    with contextlib.closing(open_reader(tmp_path / "textback.db")) as db:
        rows = db.execute("SELECT pbx, verdict, reason FROM calls ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("freeswitch", *call) for call in judged]


async def test_byte_at_a_time_gives_the_same_verdict(
    example_config: Config, tmp_path: Path
) -> None:
    """One byte per TCP write changes nothing."""
    capture = next(p for p in fs_captures() if p.stem.startswith("trap-10"))
    data = read_bytes(capture)
    verdicts: list[CallVerdict] = []
    options = EslSimulatorOptions(password=PASSWORD, chunking="byte")
    async with EslSimulator([data], options) as pbx:
        config = fs_config(example_config, tmp_path, pbx.port)
        async with daemon_for(config, verdicts) as daemon, asyncio.timeout(PATIENCE):
            await daemon.until_handled(delivered([data]))
            await daemon.idle.wait()
    assert [(v.verdict.value, v.reason.value) for v in verdicts] == [("missed", "unavailable")]
