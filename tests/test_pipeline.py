"""Captures over real TCP: simulator → AMI source → daemon → SQLite, verdicts as in the sidecars."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.amihelpers import framed_events
from tests.conftest import all_captures, expected_of
from textback.config import Config
from textback.core.verdict import CallVerdict, Verdict
from textback.service import Daemon
from textback.simulator import AmiSimulator, SimulatorOptions, parse_events_value
from textback.store import open_reader
from textback.tomltable import Secret

PATIENCE = 30.0
SMALL_CAPTURES = [
    "01-abandoned-ringing",
    "pjsip-11-anonymous",
    "pjsip-T09-greeting-hangup-before-dial",
]
RESTRICTED = frozenset({"system", "call", "agent"})


def daemon_config(config: Config, tmp_path: Path, port: int, secret: str = "textback") -> Config:
    """The example config, aimed at the simulator, with a temp DB and no clock-based hours.

    The daemon judges business hours on the wall clock; the captures were
    recorded on another day, so hours are left out here (replay tests cover them).
    """
    assert config.asterisk is not None
    asterisk = dataclasses.replace(
        config.asterisk,
        port=port,
        secret=Secret(secret),
        ping_interval=5.0,
        reconnect_min=0.05,
        reconnect_max=0.2,
    )
    return dataclasses.replace(
        config,
        asterisk=asterisk,
        hours=None,
        daemon=dataclasses.replace(config.daemon, database=tmp_path / "textback.db"),
        correlation=dataclasses.replace(config.correlation, grace_seconds=0.2),
    )


class Collector(list[CallVerdict]):
    """The daemon's verdicts as they come, with a way to wait for the n-th."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Condition()

    async def __call__(self, verdict: CallVerdict) -> None:
        self.append(verdict)
        async with self.changed:
            self.changed.notify_all()

    async def until(self, count: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self) >= count)


@contextlib.asynccontextmanager
async def running_daemon(config: Config, verdicts: Collector) -> AsyncIterator[Daemon]:
    daemon = Daemon(config, on_verdict=verdicts)
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def delivered(captures: Sequence[bytes], config: Config, read: frozenset[str] | None = None) -> int:
    """How many events the daemon gets: those its Login Events: and the AMI user's read allow."""
    assert config.asterisk is not None
    classes = parse_events_value(config.asterisk.events)
    if read is not None:
        classes = read if classes is None else classes & read
    return len(framed_events(captures, classes))


async def judge(
    captures: Sequence[bytes],
    options: SimulatorOptions,
    example_config: Config,
    tmp_path: Path,
) -> list[CallVerdict]:
    """Stream captures to the real daemon; return its verdicts once every event is handled."""
    verdicts = Collector()
    expected_events = delivered(captures, example_config, options.read_classes)
    async with AmiSimulator(captures, options) as simulator:
        config = daemon_config(example_config, tmp_path, simulator.port)
        async with running_daemon(config, verdicts) as daemon, asyncio.timeout(PATIENCE):
            await daemon.until_handled(expected_events)
            await daemon.idle.wait()
    return verdicts


def inbound(verdicts: list[CallVerdict]) -> list[tuple[str, str]]:
    return [(v.verdict.value, v.reason.value) for v in verdicts if v.verdict is not Verdict.IGNORED]


def named(stem: str) -> Path:
    return next(p for p in all_captures() if p.stem == stem)


def bytes_of(capture: Path) -> bytes:
    return capture.read_bytes()


def seed_of(capture: Path) -> int:
    return zlib.crc32(capture.name.encode())


@pytest.mark.parametrize("capture", all_captures(), ids=lambda p: p.stem)
class TestCapturesOverTcp:
    async def test_random_chunking(
        self, capture: Path, example_config: Config, tmp_path: Path
    ) -> None:
        """Every capture, cut into random TCP writes, is judged as its sidecar says and logged."""
        options = SimulatorOptions(chunking="random", seed=seed_of(capture))
        verdicts = await judge([bytes_of(capture)], options, example_config, tmp_path)
        assert inbound(verdicts) == expected_of(capture).calls
        with contextlib.closing(open_reader(tmp_path / "textback.db")) as db:
            rows = db.execute("SELECT verdict, reason FROM calls ORDER BY id").fetchall()
        assert [tuple(row) for row in rows] == expected_of(capture).calls

    async def test_site_without_dialplan_cdr_security_classes(
        self, capture: Path, example_config: Config, tmp_path: Path
    ) -> None:
        """With read = system,call,agent only, every capture keeps its verdict."""
        options = SimulatorOptions(read_classes=RESTRICTED)
        verdicts = await judge([bytes_of(capture)], options, example_config, tmp_path)
        assert inbound(verdicts) == expected_of(capture).calls


@pytest.mark.parametrize("name", SMALL_CAPTURES)
async def test_byte_at_a_time_gives_the_same_verdicts(
    name: str, example_config: Config, tmp_path: Path
) -> None:
    """One byte per TCP write changes nothing."""
    capture = named(name)
    options = SimulatorOptions(chunking="byte")
    verdicts = await judge([bytes_of(capture)], options, example_config, tmp_path)
    assert inbound(verdicts) == expected_of(capture).calls


async def test_garbage_and_bad_utf8_cost_nothing_else(
    example_config: Config, tmp_path: Path
) -> None:
    """Malformed frames and non-UTF-8 bytes are warned about; the calls around them are judged."""
    first = bytes_of(named("01-abandoned-ringing"))
    second = bytes_of(named("03-answered"))
    junk = b"this is not AMI\r\nat all\r\n\r\nEvent: Newexten\r\nAppData: caf\xe9\r\n\r\n"
    verdicts = Collector()
    with capture_logs() as logs:
        async with AmiSimulator([first], SimulatorOptions()) as simulator:
            config = daemon_config(example_config, tmp_path, simulator.port)
            async with running_daemon(config, verdicts) as daemon, asyncio.timeout(PATIENCE):
                await daemon.until_handled(delivered([first], config))
                simulator.feed(junk)
                simulator.feed(second)
                await daemon.until_handled(delivered([first, junk, second], config))
                await daemon.idle.wait()
    assert inbound(verdicts) == [("missed", "abandoned"), ("answered", "answered")]
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) >= 2


async def test_pbx_restart_mid_call_then_later_calls_judged(
    example_config: Config, tmp_path: Path
) -> None:
    """The PBX goes away mid-call: that call is unknown, the link comes back, later calls count."""
    capture = bytes_of(named("pjsip-01-abandoned-ringing"))
    cut = capture.index(b"Event: DialState")  # phones ringing, caller still there
    head = capture[: capture.rindex(b"\r\n\r\n", 0, cut) + 4]
    later = bytes_of(named("pjsip-03-answered"))
    verdicts = Collector()
    async with AmiSimulator([head], SimulatorOptions()) as simulator:
        config = daemon_config(example_config, tmp_path, simulator.port)
        async with running_daemon(config, verdicts) as daemon, asyncio.timeout(PATIENCE):
            await daemon.until_handled(delivered([head], config))
            assert daemon.correlator.calls_in_progress == 1
            await simulator.restart()
            await simulator.until(lambda s: s.logins >= 2)
            await daemon.idle.wait()
            simulator.feed(later)
            await verdicts.until(2)
    assert [(v.verdict, v.note != "") for v in verdicts] == [
        (Verdict.UNKNOWN, True),
        (Verdict.ANSWERED, False),
    ]
