"""End to end: a recorded call over TCP → verdict → policy → outbox → a fake Twilio on 127.0.0.1.

Exactly one text per missed call: across a replay of the same stream, a daemon
killed mid-send, and a provider outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from structlog.testing import capture_logs

from tests.conftest import CAPTURES, REPO
from tests.fakeproviders import Hang, TwilioFake
from textback.config import Config, load
from textback.core.verdict import CallNotice, CallVerdict, Reason, Verdict
from textback.delivery import Delivery
from textback.gateways.base import GatewayContext
from textback.service import Daemon
from textback.simulator import AmiSimulator, SimulatorOptions
from textback.store import Store

PATIENCE = 30.0
ACCOUNT = "AC" + "0" * 31 + "1"
OUR_NUMBER = "+12125550100"


def write_config(
    tmp_path: Path, *, ami_port: int, provider_url: str, sending: str = "grace_seconds = 0"
) -> Path:
    (tmp_path / "ami-secret").write_text("textback\n")
    (tmp_path / "twilio-token").write_text("twilio-token\n")
    path = tmp_path / "textback.toml"
    path.write_text(
        f"""
[daemon]
database = "{tmp_path / "textback.db"}"

[log]
format = "logfmt"

[business]
name = "Acme Plumbing"
link = "https://acme.example/book"

[asterisk]
port = {ami_port}
secret_file = "{tmp_path / "ami-secret"}"
closed_contexts = ["app-announcement-1"]
reconnect_min = 0.1
reconnect_max = 0.5

[trunks.carrier-a]
channels = ["SIP/carrier-a-*", "PJSIP/carrier-a-*"]

[sending]
{sending}
retry_base_seconds = 0.1
retry_max_seconds = 0.5

[gateway]
kind = "twilio"
account_sid = "{ACCOUNT}"
auth_token_file = "{tmp_path / "twilio-token"}"
from = "{OUR_NUMBER}"
base_url = "{provider_url}"
timeout = 5
"""
    )
    return path


def capture(name: str) -> bytes:
    return (CAPTURES / f"{name}.ami").read_bytes()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a condition another task or process brings about, or fail after PATIENCE."""
    try:
        async with asyncio.timeout(PATIENCE):
            # The state lives in another process or another server: nothing to await but it.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def outbox_rows(tmp_path: Path) -> list[tuple[str | None, str, str]]:
    """(to, state, reason) of every outbox row, read as another process would."""
    db = tmp_path / "textback.db"
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        try:
            rows = conn.execute("SELECT to_e164, state, reason FROM outbox ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []
    return [tuple(row) for row in rows]


@contextlib.asynccontextmanager
async def daemon_running(config: Config) -> AsyncIterator[Daemon]:
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def successes(fake: TwilioFake) -> list[str]:
    """The To of every request the fake accepted (answered 201), in order."""
    return [r.form["To"] for r in fake.requests if r.path.endswith("Messages.json")]


class TestOneTextPerMissedCall:
    async def test_missed_call_is_texted_once_and_a_replay_sends_nothing(
        self, tmp_path: Path
    ) -> None:
        """The caller gets one correct text; the same stream again (a restart) adds nothing."""
        stream = capture("01-abandoned-ringing")
        async with TwilioFake() as fake:
            for _ in range(2):
                async with AmiSimulator([stream], SimulatorOptions()) as pbx:
                    path = write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url)
                    config = load(path)
                    async with daemon_running(config) as daemon:
                        await pbx.streamed.wait()
                        await until(lambda: bool(outbox_rows(tmp_path)), "the outbox row")
                        await until(lambda: outbox_rows(tmp_path)[0][1] == "sent", "the text to go")
                        await until(lambda: daemon.idle.is_set(), "the call to be judged")
        assert len(fake.requests) == 1
        form = fake.requests[0].form
        assert (form["To"], form["From"]) == ("+14155550101", OUR_NUMBER)
        assert "Acme Plumbing" in form["Body"]
        assert "Reply STOP" in form["Body"]
        assert fake.requests[0].basic_auth() == (ACCOUNT, "twilio-token")
        assert outbox_rows(tmp_path) == [("+14155550101", "sent", "ok")]

    async def test_answered_call_and_anonymous_caller_get_no_text(self, tmp_path: Path) -> None:
        """An answered call sends nothing; an anonymous one is logged as suppressed."""
        streams = [capture("03-answered"), capture("11-anonymous")]
        async with TwilioFake() as fake, AmiSimulator(streams, SimulatorOptions()) as pbx:
            config = load(write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url))
            async with daemon_running(config):
                await pbx.streamed.wait()
                await until(lambda: len(outbox_rows(tmp_path)) == 1, "the suppressed row")
        assert fake.requests == []
        assert outbox_rows(tmp_path) == [(None, "suppressed", "suppressed: anonymous")]

    async def test_provider_down_then_up_sends_each_once_in_order(self, tmp_path: Path) -> None:
        """503s hold every text back; when the provider recovers they go once, oldest first."""
        streams = [capture("01-abandoned-ringing"), capture("04-busy")]
        async with TwilioFake() as fake, AmiSimulator(streams, SimulatorOptions()) as pbx:
            for _ in range(3):
                fake.script.append(fake.error(20500, 503, "Service unavailable"))
            config = load(write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url))
            async with daemon_running(config):
                await until(
                    lambda: [r[1] for r in outbox_rows(tmp_path)] == ["sent", "sent"],
                    "both texts to go",
                )
        tos = successes(fake)
        # Three refused, then each once. The first claim may carry both; after a
        # refusal texts leave one at a time until one goes, so nothing overtakes the oldest.
        assert len(tos) == 5
        assert tos[-2:] == ["+14155550101", "+14155550104"]
        assert tos[2:].count("+14155550104") == 1


def run_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "textback", "run", "-c", str(config)]


async def start(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *run_command(config),
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    await process.wait()


async def wait_log(process: asyncio.subprocess.Process, needle: str) -> None:
    assert process.stderr is not None
    async with asyncio.timeout(PATIENCE):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, f"textback run exited before logging {needle}"
            if needle in line:
                return


class TestCrashes:
    async def test_killed_while_the_request_is_in_flight_never_texts_twice(
        self, tmp_path: Path
    ) -> None:
        """SIGKILL while Twilio holds the request, then restart: exactly one request, ever."""
        async with TwilioFake() as fake:
            fake.script.append(Hang())
            async with AmiSimulator([capture("01-abandoned-ringing")], SimulatorOptions()) as pbx:
                path = write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url)
                first = await start(path)
                try:
                    await until(lambda: len(fake.requests) == 1, "the request to reach Twilio")
                finally:
                    await kill(first)
                second = await start(path)
                try:
                    await wait_log(second, "text_maybe_sent_before_crash")
                    rows = outbox_rows(tmp_path)
                finally:
                    second.send_signal(signal.SIGTERM)
                    await second.wait()
        assert len(fake.requests) == 1
        assert rows == [("+14155550101", "failed", "ambiguous")]

    async def test_killed_before_sending_sends_exactly_once_after_restart(
        self, tmp_path: Path
    ) -> None:
        """SIGKILL while the text waits out its grace delay: the restarted daemon sends it once."""
        stream = [capture("01-abandoned-ringing")]
        async with TwilioFake() as fake, AmiSimulator(stream, SimulatorOptions()) as pbx:
            path = write_config(
                tmp_path, ami_port=pbx.port, provider_url=fake.url, sending="grace_seconds = 2"
            )
            first = await start(path)
            try:
                await wait_log(first, "text_queued")
            finally:
                await kill(first)
            assert fake.requests == []
            second = await start(path)
            try:
                await until(lambda: len(fake.requests) == 1, "the text after restart")
                await until(lambda: outbox_rows(tmp_path)[0][1] == "sent", "the sent mark")
            finally:
                second.send_signal(signal.SIGTERM)
                await second.wait()
        assert [r.form["To"] for r in fake.requests] == ["+14155550101"]
        assert outbox_rows(tmp_path) == [("+14155550101", "sent", "ok")]


class TestRecovery:
    async def test_callback_answered_within_grace_cancels_the_text(self, tmp_path: Path) -> None:
        """Caller hangs up, calls again and is answered before the grace ends: no text."""
        stream = [capture("pjsip-T12-abandon-then-callback-answered")]
        async with TwilioFake() as fake, AmiSimulator(stream, SimulatorOptions()) as pbx:
            path = write_config(
                tmp_path, ami_port=pbx.port, provider_url=fake.url, sending="grace_seconds = 30"
            )
            async with daemon_running(load(path)) as daemon:
                await pbx.streamed.wait()
                await until(lambda: outbox_rows(tmp_path)[-1:] != [], "the outbox row")
                await until(lambda: daemon.idle.is_set(), "both calls judged")
                await until(lambda: outbox_rows(tmp_path)[0][1] == "cancelled", "the cancel")
        assert outbox_rows(tmp_path) == [("+14155550312", "cancelled", "recovered")]
        assert fake.requests == []

    async def test_our_phone_calling_the_number_back_cancels_the_text(self, tmp_path: Path) -> None:
        """A phone of ours dialling the caller during the grace delay cancels the pending text."""
        async with TwilioFake() as fake:
            config = load(
                write_config(
                    tmp_path, ami_port=5038, provider_url=fake.url, sending="grace_seconds = 60"
                )
            )
            async with await Store.open(config.daemon.database) as store:
                delivery = Delivery(config, store, config.gateway, clock=lambda: 2000.0)
                missed = CallVerdict(
                    call_id="1795810842.0",
                    pbx="asterisk",
                    trunk="carrier-a",
                    verdict=Verdict.MISSED,
                    reason=Reason.ABANDONED,
                    caller_raw="+14155550101",
                    caller_name="",
                    anonymous=False,
                    did="+12125550100",
                    started_at=1990.0,
                    ended_at=1995.0,
                )
                queued = await delivery.on_verdict(missed)
                assert queued is not None
                assert queued.state == "pending"
                await delivery.on_notice(
                    CallNotice(
                        kind="dialed_out", number="14155550101", trunk="carrier-a", at=2001.0
                    )
                )
        assert outbox_rows(tmp_path) == [("+14155550101", "cancelled", "recovered")]


async def test_provider_down_past_max_age_expires_the_text(tmp_path: Path) -> None:
    """A text still undelivered when it gets too old is dropped, not sent late."""
    async with TwilioFake() as fake, AmiSimulator([capture("01-abandoned-ringing")]) as pbx:
        for _ in range(200):
            fake.script.append(fake.error(20500, 503, "Service unavailable"))
        sending = "grace_seconds = 0\nmax_age_hours = 0.0005\nmax_attempts = 100"
        path = write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url, sending=sending)
        async with daemon_running(load(path)):
            await until(lambda: outbox_rows(tmp_path)[-1:] != [], "the outbox row")
            await until(lambda: outbox_rows(tmp_path)[0][1] == "expired", "the text to expire")
    assert outbox_rows(tmp_path) == [("+14155550101", "expired", "max_age")]
    assert len(fake.requests) >= 2  # it was tried, and never got through


def missed_call(call_id: str, caller: str, ended_at: float) -> CallVerdict:
    return CallVerdict(
        call_id=call_id,
        pbx="asterisk",
        trunk="carrier-a",
        verdict=Verdict.MISSED,
        reason=Reason.ABANDONED,
        caller_raw=caller,
        caller_name="",
        anonymous=False,
        did="+12125550100",
        started_at=ended_at - 10,
        ended_at=ended_at,
    )


async def test_quiet_hours_defer_the_text_to_the_recipients_morning(tmp_path: Path) -> None:
    """A call at 03:00 in New York is texted at 09:00 New York time, not at once."""
    night = datetime(2026, 11, 27, 3, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()
    sending = 'grace_seconds = 0\nwindow = "09:00-20:00"\nmax_age_hours = 12'
    config = load(
        write_config(tmp_path, ami_port=5038, provider_url="http://127.0.0.1:9", sending=sending)
    )
    async with await Store.open(config.daemon.database) as store:
        delivery = Delivery(config, store, config.gateway, clock=lambda: night)
        await delivery.on_verdict(missed_call("c1", "+12125550123", night))
        (row,) = await store.outbox.recent(1)
    morning = datetime(2026, 11, 27, 9, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()
    assert (row.state, row.next_attempt_at) == ("pending", morning)


async def test_hourly_cap_holds_texts_back_and_logs_once(tmp_path: Path) -> None:
    """Past max_per_hour nothing more is sent; the rows wait and one error says why."""
    async with TwilioFake() as fake:
        path = write_config(tmp_path, ami_port=5038, provider_url=fake.url)
        with path.open("a") as toml:
            toml.write("\n[policy]\nmax_per_hour = 1\n")
        config = load(path)
        now = 1_800_000_000.0
        with capture_logs() as logs:
            async with await Store.open(config.daemon.database) as store:
                delivery = Delivery(config, store, config.gateway, clock=lambda: now)
                await config.gateway.start(GatewayContext())
                try:
                    await delivery.on_verdict(missed_call("c1", "+14155550123", now))
                    await delivery.on_verdict(missed_call("c2", "+14155550124", now))
                    for _ in range(3):
                        await delivery._step()
                finally:
                    await config.gateway.aclose()
                states = [row.state for row in reversed(await store.outbox.recent(5))]
    assert states == ["sent", "pending"]
    assert [r.form["To"] for r in fake.requests] == ["+14155550123"]
    assert [e["cap"] for e in logs if e["event"] == "sms_cap_reached"] == ["max_per_hour"]


async def queue_texts(store: Store, texts: list[tuple[str, str]], now: float) -> None:
    """Pending rows, one per (number, body), in this call order, all due at ``now``."""
    for n, (to, body) in enumerate(texts):
        await store.outbox.accept(
            pbx="asterisk",
            call_id=f"c{n}",
            to_e164=to,
            body=body,
            template="default",
            gateway="twilio",
            state="pending",
            reason="ok",
            created_at=now - 100 + n,
            send_at=now,
            expires_at=now + 3600,
            now=now,
        )


@contextlib.asynccontextmanager
async def dispatching(
    tmp_path: Path, fake: TwilioFake, texts: list[tuple[str, str]]
) -> AsyncIterator[None]:
    """``texts`` queued, then a dispatcher running, sending through ``fake`` (no PBX involved)."""
    config = load(write_config(tmp_path, ami_port=5038, provider_url=fake.url))
    async with await Store.open(config.daemon.database) as store:
        await queue_texts(store, texts, time.time())
        delivery = Delivery(config, store, config.gateway)
        await config.gateway.start(GatewayContext())
        task = asyncio.create_task(delivery.run())
        try:
            yield
        finally:
            delivery.stop()
            await asyncio.wait_for(task, PATIENCE)
            await config.gateway.aclose()


class TestSideBySide:
    async def test_a_burst_goes_out_side_by_side_but_never_two_to_one_number(
        self, tmp_path: Path
    ) -> None:
        """Up to max_in_flight requests at once; a second text to a person waits for the first."""
        texts = [(f"+1415555{n:04d}", f"text {n}") for n in range(10)]
        texts[6] = ("+14155550000", "second text to the first caller")
        async with TwilioFake() as fake:
            fake.gate = asyncio.Event()
            async with dispatching(tmp_path, fake, texts):
                await until(lambda: fake.in_flight == 8, "eight requests in flight")
                await asyncio.sleep(0.2)  # time for a ninth to (wrongly) leave
                held = [r.form["To"] for r in fake.requests]
                fake.gate.set()
                await until(lambda: len(successes(fake)) == 10, "every text sent")
        assert len(held) == 8
        assert len(set(held)) == 8  # never two to one number side by side
        assert "second text to the first caller" not in [r.form["Body"] for r in fake.requests[:8]]
        assert max(fake.arrivals_in_flight) == 8
        to_first = [r.form["Body"] for r in fake.requests if r.form["To"] == "+14155550000"]
        assert to_first == ["text 0", "second text to the first caller"]

    async def test_after_a_failure_one_at_a_time_until_one_goes(self, tmp_path: Path) -> None:
        """Texts held back by an outage leave oldest first, alone, before the rest follow."""
        texts = [("+14155550101", "a"), ("+14155550102", "b"), ("+14155550103", "c")]
        async with TwilioFake() as fake:
            for _ in texts:
                fake.script.append(fake.error(20500, 503, "Service unavailable"))
            async with dispatching(tmp_path, fake, texts):
                await until(
                    lambda: [r[1] for r in outbox_rows(tmp_path)] == ["sent"] * 3,
                    "every text sent",
                )
        bodies = [r.form["Body"] for r in fake.requests]
        assert sorted(bodies[:3]) == ["a", "b", "c"]  # the first claim: all three, all refused
        assert bodies[3] == "a"  # then the oldest, on its own
        assert fake.arrivals_in_flight[3] == 1
        assert sorted(bodies[4:]) == ["b", "c"]


class TestBurstIntake:
    """Verdicts handed over together are queued together, with the same outcome as one by one."""

    @staticmethod
    def answered_call(call_id: str, caller: str, ended_at: float) -> CallVerdict:
        return dataclasses.replace(
            missed_call(call_id, caller, ended_at), verdict=Verdict.ANSWERED, reason=Reason.ANSWERED
        )

    async def intake(self, tmp_path: Path, verdicts: list[CallVerdict]) -> list[str | None]:
        config = load(write_config(tmp_path, ami_port=5038, provider_url="http://127.0.0.1:9"))
        async with await Store.open(config.daemon.database) as store:
            delivery = Delivery(config, store, config.gateway, clock=lambda: 2000.0)
            results = await delivery.on_verdicts(verdicts)
        return [None if q is None else q.reason for q in results]

    async def test_a_caller_twice_in_one_burst_is_texted_once(self, tmp_path: Path) -> None:
        """The second call of a caller sees the first one's text: the cooldown holds."""
        burst = [
            missed_call("c1", "+14155550101", 1990.0),
            missed_call("c2", "+14155550102", 1991.0),
            missed_call("c3", "+14155550101", 1992.0),
        ]
        assert await self.intake(tmp_path, burst) == ["ok", "ok", "suppressed: cooldown"]
        assert [row[1] for row in outbox_rows(tmp_path)] == ["pending", "pending", "suppressed"]

    async def test_answers_cancel_in_call_order(self, tmp_path: Path) -> None:
        """An answer before a caller's missed call cancels nothing; one after it cancels it."""
        burst = [
            self.answered_call("c0", "+14155550101", 1989.0),
            missed_call("c1", "+14155550101", 1990.0),
            missed_call("c2", "+14155550102", 1991.0),
            self.answered_call("c3", "+14155550102", 1992.0),
        ]
        assert await self.intake(tmp_path, burst) == [None, "ok", "ok", None]
        assert outbox_rows(tmp_path) == [
            ("+14155550101", "pending", "ok"),
            ("+14155550102", "cancelled", "recovered"),
        ]
