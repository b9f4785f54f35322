"""The sd_notify protocol against a real AF_UNIX datagram socket standing in for systemd's."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest
from structlog.testing import capture_logs

from textback.sdnotify import SystemdNotifier

PATIENCE = 30.0


class NotifySocket:
    """systemd's end of NOTIFY_SOCKET: a bound datagram socket that collects what arrives."""

    def __init__(self, address: str) -> None:
        self.address = address  # as NOTIFY_SOCKET spells it: a path or @abstract
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setblocking(False)
        self.received: list[str] = []

    @classmethod
    def at(cls, directory: Path) -> NotifySocket:
        # Short: a unix socket path holds at most 107 bytes.
        return cls(str(directory / "notify"))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.sock.close()

    async def next(self, wanted: Callable[[str], bool], what: str) -> str:
        """Receive until a message satisfies ``wanted``; every message is kept in ``received``."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(PATIENCE):
                while True:
                    message = (await loop.sock_recv(self.sock, 65536)).decode()
                    self.received.append(message)
                    if wanted(message):
                        return message
        except TimeoutError:
            raise AssertionError(f"no {what} on NOTIFY_SOCKET; got {self.received}") from None

    async def quiet_for(self, seconds: float, unwanted: Callable[[str], bool]) -> None:
        """Fail if a message satisfying ``unwanted`` arrives within ``seconds``."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(seconds):
                while True:
                    message = (await loop.sock_recv(self.sock, 65536)).decode()
                    self.received.append(message)
                    assert not unwanted(message), f"unexpected {message!r}"
        except TimeoutError:
            return

    def pending(self) -> list[str]:
        """Whatever has arrived and was not read yet."""
        out: list[str] = []
        while True:
            try:
                out.append(self.sock.recv(65536).decode())
            except BlockingIOError:
                self.received.extend(out)
                return out


def starts(prefix: str) -> Callable[[str], bool]:
    return lambda message: message.startswith(prefix)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    with NotifySocket.at(tmp_path) as sock:
        yield sock


class TestMessages:
    async def test_each_call_sends_one_datagram_in_order(
        self, notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """READY with STATUS, STATUS, WATCHDOG, RELOADING and STOPPING arrive as sent."""
        monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
        notifier = SystemdNotifier.from_env()
        notifier.ready("waiting for the PBX at 127.0.0.1:5038")
        notifier.status("PBX connected, 2 calls in progress")
        notifier.watchdog()
        notifier.reloading()
        notifier.stopping("draining")
        notifier.stopping()
        got = [await notify_socket.next(lambda _: True, f"message {i}") for i in range(6)]
        assert got[:3] == [
            "READY=1\nSTATUS=waiting for the PBX at 127.0.0.1:5038",
            "STATUS=PBX connected, 2 calls in progress",
            "WATCHDOG=1",
        ]
        reloading, usec = got[3].split("\n")
        assert reloading == "RELOADING=1"
        assert usec.startswith("MONOTONIC_USEC=")
        assert 0 < int(usec.removeprefix("MONOTONIC_USEC=")) <= time.monotonic_ns() // 1000
        assert got[4:] == ["STOPPING=1\nSTATUS=draining", "STOPPING=1"]

    async def test_abstract_namespace(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """NOTIFY_SOCKET=@name reaches the socket bound to the abstract name."""
        with NotifySocket(f"@textback-test-{uuid.uuid4().hex}") as sock:
            monkeypatch.setenv("NOTIFY_SOCKET", sock.address)
            SystemdNotifier.from_env().ready("up")
            assert await sock.next(lambda _: True, "READY") == "READY=1\nSTATUS=up"

    async def test_a_newline_in_a_status_cannot_start_an_assignment(
        self, notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A multi-line status is folded into one STATUS= line."""
        monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
        SystemdNotifier.from_env().status("gateway misconfigured:\nREADY=1")
        message = await notify_socket.next(lambda _: True, "STATUS")
        assert message == "STATUS=gateway misconfigured: READY=1"


class TestEnvironment:
    def test_without_notify_socket_it_does_nothing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No NOTIFY_SOCKET (a terminal, a test): disabled, no watchdog, calls are no-ops."""
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        monkeypatch.setenv("WATCHDOG_USEC", "30000000")
        notifier = SystemdNotifier.from_env()
        assert (notifier.enabled, notifier.watchdog_interval) == (False, None)
        with capture_logs() as logs:
            notifier.ready("x")
            notifier.watchdog()
            notifier.stopping()
        assert logs == []

    @pytest.mark.parametrize(
        ("usec", "pid", "interval"),
        [
            ("30000000", None, 15.0),
            ("200000", "self", 0.1),
            ("30000000", "1", None),  # meant for another process
            ("0", None, None),
            ("soon", None, None),
            (None, None, None),
        ],
    )
    def test_watchdog_interval_is_half_of_watchdog_usec(
        self,
        notify_socket: NotifySocket,
        monkeypatch: pytest.MonkeyPatch,
        usec: str | None,
        pid: str | None,
        interval: float | None,
    ) -> None:
        """The ping interval is WATCHDOG_USEC/2 in seconds, when WATCHDOG_PID is ours or unset."""
        monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
        for name, value in (
            ("WATCHDOG_USEC", usec),
            ("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid),
        ):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        assert SystemdNotifier.from_env().watchdog_interval == interval

    def test_unsupported_address_is_a_warning_not_a_crash(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A NOTIFY_SOCKET that is no unix socket (vsock:...) disables notifications, once said."""
        monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
        with capture_logs() as logs:
            notifier = SystemdNotifier.from_env()
            notifier.ready("x")
        assert not notifier.enabled
        assert [entry["event"] for entry in logs] == ["sd_notify_unsupported"]


class TestSendErrors:
    async def test_a_missing_socket_never_raises_and_is_logged_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Sends to a vanished socket fail quietly: one warning, then one line when it is back."""
        path = tmp_path / "notify"
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        notifier = SystemdNotifier.from_env()
        with capture_logs() as logs:
            notifier.ready("x")
            notifier.watchdog()
            notifier.watchdog()
            with NotifySocket(str(path)) as sock:
                notifier.watchdog()
                assert await sock.next(lambda _: True, "WATCHDOG") == "WATCHDOG=1"
        assert [(e["event"], e["log_level"]) for e in logs] == [
            ("sd_notify_failed", "warning"),
            ("sd_notify_recovered", "info"),
        ]
        assert logs[0]["notify_socket"] == str(path)
