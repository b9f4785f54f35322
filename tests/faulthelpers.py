"""What the fault suite shares: a config writer, a `textback run` process, DB reads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CAPTURES, REPO

PATIENCE = 20.0
ACCOUNT = "AC" + "0" * 31 + "1"
OUR_NUMBER = "+12125550100"


def capture(name: str) -> bytes:
    return (CAPTURES / f"{name}.ami").read_bytes()


def write_config(
    tmp_path: Path,
    *,
    ami_port: int,
    provider_url: str,
    sending: str = "grace_seconds = 0",
    gateway_timeout: float = 5,
    database: Path | None = None,
) -> Path:
    (tmp_path / "ami-secret").write_text("textback\n")
    (tmp_path / "twilio-token").write_text("twilio-token\n")
    path = tmp_path / "textback.toml"
    path.write_text(
        f"""
[daemon]
database = "{database or tmp_path / "textback.db"}"

[log]
format = "logfmt"

[business]
name = "Acme Plumbing"

[asterisk]
port = {ami_port}
secret_file = "{tmp_path / "ami-secret"}"
reconnect_min = 0.05
reconnect_max = 0.2

[correlation]
grace_seconds = 0.1

[trunks.carrier-a]
channels = ["SIP/carrier-a-*", "PJSIP/carrier-a-*"]

[sending]
{sending}
retry_base_seconds = 0.05
retry_max_seconds = 0.2

[gateway]
kind = "twilio"
account_sid = "{ACCOUNT}"
auth_token_file = "{tmp_path / "twilio-token"}"
from = "{OUR_NUMBER}"
base_url = "{provider_url}"
timeout = {gateway_timeout}
"""
    )
    return path


async def until(condition: Callable[[], bool], what: str, patience: float = PATIENCE) -> None:
    """Wait for a condition another process or server brings about, or fail."""
    try:
        async with asyncio.timeout(patience):
            # The state lives in another process or server: nothing to await but it.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql``, read as another process would; [] before the schema exists."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        try:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
        except sqlite3.OperationalError:  # not migrated yet
            return []


def outbox(db: Path) -> list[tuple[str | None, str, str]]:
    """(to, state, reason) of every outbox row, oldest first."""
    return [
        (None if to is None else str(to), str(state), str(reason))
        for to, state, reason in rows(db, "SELECT to_e164, state, reason FROM outbox ORDER BY id")
    ]


def calls(db: Path) -> list[tuple[str | None, str]]:
    """(caller, verdict) of every judged call, oldest first."""
    return [
        (None if caller is None else str(caller), str(verdict))
        for caller, verdict in rows(db, "SELECT caller_e164, verdict FROM calls ORDER BY id")
    ]


class Run:
    """A `textback run` process; its stderr is read all along, so the pipe never fills.

    ``patience`` bounds every wait on it.
    """

    def __init__(self, process: asyncio.subprocess.Process, patience: float = PATIENCE) -> None:
        self.process = process
        self.patience = patience
        self.lines: list[str] = []
        self._more = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, config: Path, patience: float = PATIENCE) -> Run:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "textback",
            "run",
            "-c",
            str(config),
            cwd=REPO,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return cls(process, patience)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode(errors="replace"))
            async with self._more:
                self._more.notify_all()
        async with self._more:
            self._more.notify_all()

    async def first_line(self, needle: str) -> str:
        """The first line containing ``needle``, once it is written."""

        def found() -> str | None:
            return next((line for line in self.lines if needle in line), None)

        try:
            async with asyncio.timeout(self.patience), self._more:
                await self._more.wait_for(lambda: found() is not None or self._reader.done())
        except TimeoutError:
            raise AssertionError(f"no {needle} logged: {self.lines}") from None
        line = found()
        assert line is not None, f"textback run exited before logging {needle}: {self.lines}"
        return line

    async def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def logged(self, needle: str) -> bool:
        return any(needle in line for line in self.lines)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        async with asyncio.timeout(self.patience):
            await self.process.wait()
            await self._reader

    async def stop(self) -> int:
        """SIGTERM, and the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(self.patience):
            code = await self.process.wait()
            await self._reader
        return code

    async def exited(self) -> int:
        """The exit code, once the process ends by itself."""
        async with asyncio.timeout(self.patience):
            code = await self.process.wait()
            await self._reader
        return code
