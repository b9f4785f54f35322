"""Operations end to end: metrics and health follow a replayed call; `textback stats` counts it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CAPTURES
from tests.fakeproviders import TwilioFake
from textback.cli import main
from textback.config import load
from textback.service import Daemon
from textback.simulator import AmiSimulator, SimulatorOptions

PATIENCE = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(tmp_path: Path, ami_port: int, provider_url: str, metrics_port: int) -> Path:
    (tmp_path / "ami-secret").write_text("textback\n")
    (tmp_path / "token").write_text("twilio-token\n")
    path = tmp_path / "textback.toml"
    path.write_text(
        f"""
[daemon]
database = "{tmp_path / "textback.db"}"
[business]
name = "Acme Plumbing"
[asterisk]
port = {ami_port}
secret_file = "{tmp_path / "ami-secret"}"
[trunks.carrier-a]
channels = ["SIP/carrier-a-*", "PJSIP/carrier-a-*"]
[gateway]
kind = "twilio"
account_sid = "AC{"0" * 31}1"
auth_token_file = "{tmp_path / "token"}"
from = "+12125550100"
base_url = "{provider_url}"
[metrics]
listen = "127.0.0.1:{metrics_port}"
[roi]
average_job_value = 250
close_rate = 0.5
"""
    )
    return path


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(PATIENCE):
            while not condition():  # noqa: ASYNC110 - the state is in another server
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def test_metrics_health_and_stats_follow_a_replayed_missed_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missed call moves the call and text counters, health says PBX up, stats counts it."""
    port = free_port()
    capture = (CAPTURES / "01-abandoned-ringing.ami").read_bytes()
    async with TwilioFake() as fake, AmiSimulator([], SimulatorOptions()) as pbx:
        path = write_config(tmp_path, pbx.port, fake.url, port)
        daemon = Daemon(load(path))
        task = asyncio.create_task(daemon.run())
        try:
            await until(lambda: daemon.metrics_server is not None, "the metrics server")
            await until(lambda: daemon.pbx_connected, "the PBX link")
            status, before = await get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            assert sample(before, "textback_pbx_connected") == 1.0
            assert sample(before, "textback_calls_total", verdict="missed") == 0.0
            pbx.feed(capture)
            await until(lambda: len(fake.requests) == 1, "the text")
            await until(
                lambda: (
                    daemon.store is not None
                    and daemon.delivery is not None
                    and daemon.delivery.gateway_problem is None
                ),
                "the delivery",
            )
            after = ""

            async def sent_counted() -> bool:
                nonlocal after
                _, after = await get(f"http://127.0.0.1:{port}/metrics")
                return sample(after, "textback_texts_total", state="sent") == 1.0

            async with asyncio.timeout(PATIENCE):
                while not await sent_counted():  # noqa: ASYNC110 - polled over HTTP
                    await asyncio.sleep(0.02)
            health_status, health = await get(f"http://127.0.0.1:{port}/healthz")
        finally:
            daemon.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert sample(after, "textback_calls_total", verdict="missed", reason="abandoned") == 1.0
    assert sample(after, "textback_texts_total", state="sent") == 1.0
    assert sample(after, "textback_send_latency_seconds_count") == 1.0
    assert (health_status, json.loads(health)) == (
        200,
        {"pbx": "connected", "database": "ok", "gateway": "ok"},
    )
    capsys.readouterr()  # the daemon's own log lines
    assert main(["stats", "-c", str(path), "--format", "json", "--since", "7d"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["total"]["missed"], report["total"]["texted"]) == (1, 1)
