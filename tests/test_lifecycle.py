"""`textback run` under systemd's eyes: notify sequence, watchdog, SIGTERM drain, SIGHUP reload.

The daemon runs as a real process (or, where a test needs a tiny internal
timeout, in-process) against the AMI simulator and a fake Twilio on
127.0.0.1, with a real AF_UNIX datagram socket as NOTIFY_SOCKET.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.conftest import CAPTURES
from tests.fakeproviders import Hang, TwilioFake
from tests.faulthelpers import Run
from tests.test_sdnotify import NotifySocket, starts
from textback.config import load
from textback.config_web import hash_password
from textback.core.asterisk import AmiCorrelator
from textback.sdnotify import SystemdNotifier
from textback.service import Daemon
from textback.simulator import AmiSimulator, SimulatorOptions

PATIENCE = 30.0
ACCOUNT = "AC" + "0" * 31 + "1"
OUR_NUMBER = "+12125550100"
OLD_TEXT = "Old text: {business} missed you. Reply STOP to opt out."
NEW_TEXT = "New text: {business} will call you back. Reply STOP to opt out."


def capture(name: str) -> bytes:
    return (CAPTURES / f"{name}.ami").read_bytes()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(
    tmp_path: Path,
    *,
    ami_port: int,
    provider_url: str,
    template: str = OLD_TEXT,
    gateway_timeout: float = 5,
    web_port: int | None = None,
    ping_interval: float = 15,
) -> Path:
    (tmp_path / "ami-secret").write_text("textback\n")
    (tmp_path / "twilio-token").write_text("twilio-token\n")
    web = (
        f'[web]\nlisten = "127.0.0.1:{web_port}"\npublic_url = "http://127.0.0.1:{web_port}"\n'
        f'[[web.users]]\nname = "alice"\npassword_hash = "{hash_password("a long passphrase")}"\n'
        if web_port is not None
        else ""
    )
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
reconnect_min = 0.1
reconnect_max = 0.5
ping_interval = {ping_interval}

[correlation]
grace_seconds = 0.2

[trunks.carrier-a]
channels = ["SIP/carrier-a-*", "PJSIP/carrier-a-*"]

[templates]
default = "{template}"

[gateway]
kind = "twilio"
account_sid = "{ACCOUNT}"
auth_token_file = "{tmp_path / "twilio-token"}"
from = "{OUR_NUMBER}"
base_url = "{provider_url}"
timeout = {gateway_timeout}

{web}"""
    )
    return path


def outbox_states(tmp_path: Path) -> list[tuple[str, str]]:
    """(state, reason) of every outbox row, read as another process would."""
    db = tmp_path / "textback.db"
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        try:
            rows = conn.execute("SELECT state, reason FROM outbox ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []
    return [(str(state), str(reason)) for state, reason in rows]


async def until(condition: Callable[[], bool], what: str, run: Run | None = None) -> None:
    """Wait for a condition another process or server brings about, or fail after PATIENCE.

    With ``run``, fail as soon as that process has exited.
    """
    try:
        async with asyncio.timeout(PATIENCE):
            # The state lives in another process or server: nothing to await but it.
            while not condition():
                if run is not None and run.process.returncode is not None:
                    raise AssertionError(f"textback run exited before {what}: {run.lines}")
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@contextlib.asynccontextmanager
async def running(config: Path) -> AsyncIterator[Run]:
    run = await Run.start(config, PATIENCE)
    try:
        yield run
    finally:
        if run.process.returncode is None:
            run.process.kill()
            await run.process.wait()
        await run._reader


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NotifySocket:
    """A NOTIFY_SOCKET every `textback run` started by the test inherits."""
    sock = NotifySocket.at(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", sock.address)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    return sock


def is_ping(message: str) -> bool:
    return message == "WATCHDOG=1"


class TestNotifySequence:
    async def test_ready_status_watchdog_then_stopping(
        self, tmp_path: Path, notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """READY (waiting for the PBX), PBX status, WATCHDOG pings, then STOPPING and exit 0."""
        monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
        with notify_socket:
            async with (
                TwilioFake() as fake,
                AmiSimulator([], SimulatorOptions()) as pbx,
            ):
                port = pbx.port
                path = write_config(tmp_path, ami_port=port, provider_url=fake.url)
                async with running(path) as run:
                    ready = await notify_socket.next(starts("READY=1"), "READY")
                    connected = await notify_socket.next(
                        starts("STATUS=PBX connected"), "the PBX status"
                    )
                    await notify_socket.next(is_ping, "a watchdog ping")
                    await notify_socket.next(is_ping, "a second watchdog ping")
                    code = await run.stop()
                    await notify_socket.next(starts("STOPPING=1"), "STOPPING")
        assert ready == f"READY=1\nSTATUS=waiting for the PBX at 127.0.0.1:{port}"
        assert connected == "STATUS=PBX connected, 0 calls in progress"
        assert code == 0
        kinds = [m.split("=", 1)[0] for m in notify_socket.received]
        assert kinds.index("READY") < kinds.index("WATCHDOG") < kinds.index("STOPPING")
        # Nothing pings after STOPPING: the watchdog ends with the drain.
        assert "WATCHDOG" not in kinds[kinds.index("STOPPING") :]

    async def test_status_follows_the_pbx_link(
        self, tmp_path: Path, notify_socket: NotifySocket
    ) -> None:
        """A dropped AMI link turns STATUS to waiting (with the reason); the next login back."""
        with notify_socket:
            async with TwilioFake() as fake, AmiSimulator([], SimulatorOptions()) as pbx:
                port = pbx.port
                path = write_config(tmp_path, ami_port=port, provider_url=fake.url)
                async with running(path) as run:
                    await notify_socket.next(starts("STATUS=PBX connected"), "PBX connected")
                    await pbx.restart()
                    down = await notify_socket.next(
                        starts("STATUS=waiting for the PBX"), "the link-down status"
                    )
                    await notify_socket.next(starts("STATUS=PBX connected"), "PBX connected again")
                    assert await run.stop() == 0
        assert down.startswith(f"STATUS=waiting for the PBX at 127.0.0.1:{port} (")


class TestWatchdog:
    async def test_pings_stop_while_a_core_loop_does_not_come_round(
        self, tmp_path: Path, notify_socket: NotifySocket
    ) -> None:
        """A correlator silent past stale_after withholds the pings; its next turn resumes them."""
        with notify_socket:
            async with TwilioFake() as fake, AmiSimulator([], SimulatorOptions()) as pbx:
                config = load(write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url))
                systemd = SystemdNotifier(notify_socket.address, watchdog_interval=0.02)
                # Idle, the correlator comes round only every MAX_IDLE: 0.5 s makes it "stuck".
                daemon = Daemon(config, systemd=systemd, stale_after=0.5)
                with capture_logs() as logs:
                    task = asyncio.create_task(daemon.run())
                    try:
                        await notify_socket.next(is_ping, "a first ping")
                        await until(
                            lambda: any(e["event"] == "watchdog_withheld" for e in logs),
                            "the pings to be withheld",
                        )
                        withheld = next(e for e in logs if e["event"] == "watchdog_withheld")
                        notify_socket.pending()  # the pings sent before
                        await notify_socket.quiet_for(0.3, is_ping)
                        pbx.feed(capture("01-abandoned-ringing"))
                        await notify_socket.next(is_ping, "the pings to resume")
                    finally:
                        daemon.stop()
                        await task
        assert withheld["problem"].startswith("correlator loop stuck")
        assert "watchdog_resumed" in [e["event"] for e in logs]


class TestSigterm:
    async def test_drain_stops_webhooks_then_finishes_the_send_in_flight(
        self, tmp_path: Path, notify_socket: NotifySocket
    ) -> None:
        """SIGTERM mid-send: the web port closes first, the send settles, no row stays 'sending'."""
        web_port = free_port()
        with notify_socket:
            async with (
                TwilioFake() as fake,
                AmiSimulator([capture("01-abandoned-ringing")], SimulatorOptions()) as pbx,
            ):
                fake.script.append(Hang())
                path = write_config(
                    tmp_path,
                    ami_port=pbx.port,
                    provider_url=fake.url,
                    gateway_timeout=3,
                    web_port=web_port,
                )
                async with running(path) as run:
                    await until(lambda: len(fake.requests) == 1, "the request to reach Twilio", run)
                    assert outbox_states(tmp_path) == [("sending", "ok")]
                    await run.signal(signal.SIGTERM)
                    await notify_socket.next(
                        starts("STATUS=stopping: finishing the text"), "the in-flight status"
                    )
                    # Webhooks are off while the provider still holds the request.
                    with pytest.raises(ConnectionRefusedError):
                        await asyncio.open_connection("127.0.0.1", web_port)
                    assert run.process.returncode is None
                    code = await run.stop()
        assert code == 0
        assert outbox_states(tmp_path) == [("failed", "ambiguous")]
        assert len(fake.requests) == 1
        order = [
            next(i for i, line in enumerate(run.lines) if f"event={event}" in line)
            for event in ("textback_stopping", "text_maybe_sent", "textback_stopped")
        ]
        assert order == sorted(order)

    async def test_a_send_that_outlasts_the_drain_is_settled_not_left_sending(
        self, tmp_path: Path, notify_socket: NotifySocket
    ) -> None:
        """Past the drain timeout the send is abandoned, its row marked ambiguous, never sending."""
        with notify_socket:
            async with (
                TwilioFake() as fake,
                AmiSimulator([capture("01-abandoned-ringing")], SimulatorOptions()) as pbx,
            ):
                fake.script.append(Hang())
                path = write_config(
                    tmp_path, ami_port=pbx.port, provider_url=fake.url, gateway_timeout=60
                )
                systemd = SystemdNotifier(notify_socket.address)
                daemon = Daemon(load(path), systemd=systemd, drain_timeout=0.2)
                with capture_logs() as logs:
                    task = asyncio.create_task(daemon.run())
                    try:
                        await until(lambda: len(fake.requests) == 1, "the request to reach Twilio")
                    finally:
                        daemon.stop()
                        await task
                await notify_socket.next(starts("STOPPING=1"), "STOPPING")
        events = [e["event"] for e in logs]
        assert events.index("text_send_interrupted") < events.index("text_maybe_sent")
        assert outbox_states(tmp_path) == [("failed", "ambiguous")]
        assert len(fake.requests) == 1


class TestSighup:
    async def test_reload_applies_a_new_template_without_dropping_the_pbx(
        self, tmp_path: Path, notify_socket: NotifySocket
    ) -> None:
        """SIGHUP: the next missed call gets the new text; the AMI session is the same one."""
        with notify_socket:
            async with (
                TwilioFake() as fake,
                AmiSimulator([capture("01-abandoned-ringing")], SimulatorOptions()) as pbx,
            ):
                path = write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url)
                async with running(path) as run:
                    await until(lambda: len(fake.requests) == 1, "the first text", run)
                    write_config(
                        tmp_path,
                        ami_port=pbx.port,
                        provider_url=fake.url,
                        template=NEW_TEXT,
                        ping_interval=20,
                    )
                    await run.signal(signal.SIGHUP)
                    await notify_socket.next(starts("RELOADING=1"), "RELOADING")
                    await notify_socket.next(starts("READY=1"), "READY after the reload")
                    pbx.feed(capture("04-busy"))
                    await until(lambda: len(fake.requests) == 2, "the second text", run)
                    warning = await run.first_line("event=config_reload_needs_restart")
                    logins = pbx.logins
                    code = await run.stop()
        first, second = (r.form["Body"] for r in fake.requests)
        assert first.startswith("Old text: Acme Plumbing")
        assert second.startswith("New text: Acme Plumbing will call you back")
        assert logins == 1
        assert warning.startswith("<4>")
        assert "tables=asterisk" in warning
        assert code == 0

    async def test_a_broken_file_keeps_the_running_config(
        self, tmp_path: Path, notify_socket: NotifySocket
    ) -> None:
        """SIGHUP with invalid TOML: each problem logged, still READY, the old text still used."""
        with notify_socket:
            async with (
                TwilioFake() as fake,
                AmiSimulator([capture("01-abandoned-ringing")], SimulatorOptions()) as pbx,
            ):
                path = write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url)
                async with running(path) as run:
                    await until(lambda: len(fake.requests) == 1, "the first text", run)
                    path.write_text(path.read_text().replace('name = "Acme', "name = Acme", 1))
                    await run.signal(signal.SIGHUP)
                    await notify_socket.next(starts("RELOADING=1"), "RELOADING")
                    await notify_socket.next(starts("READY=1"), "READY after the failed reload")
                    problem = await run.first_line("event=config_reload_problem")
                    await run.first_line("event=config_reload_failed")
                    pbx.feed(capture("04-busy"))
                    await until(lambda: len(fake.requests) == 2, "the second text", run)
                    logins = pbx.logins
                    code = await run.stop()
        assert problem.startswith("<3>")
        assert "invalid TOML" in problem
        assert all(r.form["Body"].startswith("Old text: Acme Plumbing") for r in fake.requests)
        assert logins == 1
        assert code == 0

    async def test_reload_reaches_every_reader_and_keeps_the_rest(
        self, tmp_path: Path, notify_socket: NotifySocket
    ) -> None:
        """Business and hours reach delivery, conversations, correlator; gateway and PBX stay."""
        with notify_socket:
            async with TwilioFake() as fake, AmiSimulator([], SimulatorOptions()) as pbx:
                path = write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url)
                daemon = Daemon(load(path), systemd=SystemdNotifier(notify_socket.address))
                gateway, asterisk = daemon.gateway, daemon.config.asterisk
                task = asyncio.create_task(daemon.run())
                try:
                    await notify_socket.next(starts("READY=1"), "READY")
                    path.write_text(
                        write_config(
                            tmp_path, ami_port=pbx.port, provider_url=fake.url, ping_interval=3
                        )
                        .read_text()
                        .replace('name = "Acme Plumbing"', 'name = "Acme Drains"')
                        + '[hours]\ntimezone = "America/New_York"\nmon = ["08:00-18:00"]\n'
                    )
                    daemon.request_reload()
                    await notify_socket.next(starts("READY=1"), "READY after the reload")
                    delivery, conversations = daemon.delivery, daemon.conversations
                    assert delivery is not None
                    assert conversations is not None
                    assert isinstance(daemon.correlator, AmiCorrelator)
                    hours = daemon.correlator.settings.hours
                finally:
                    daemon.stop()
                    await task
        assert hours is not None
        assert hours.timezone == "America/New_York"
        for config in (daemon.config, delivery.config, conversations.config):
            assert config.business.name == "Acme Drains"
            assert config.hours == hours
            assert config.asterisk == asterisk  # ping_interval = 3 waits for a restart
        assert daemon.gateway is gateway
