"""Fault injection: kills, PBX and gateway failures, a bad disk, clock jumps, garbage input.

Real processes and servers on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from tests.fakeproviders import Hang, TwilioFake
from tests.faulthelpers import Run, calls, capture, outbox, until, write_config
from textback.config import Config, load
from textback.core.asterisk import AmiCorrelator, CorrelatorSettings
from textback.core.trunks import Trunk, TrunkMap
from textback.core.verdict import CallVerdict, Reason, Verdict
from textback.delivery import Delivery
from textback.gateways.base import GatewayContext
from textback.pbx.ami_proto import MAX_FRAME_BYTES, AmiFramer, AmiMessage
from textback.pbx.esl_proto import EslFramer, decode_event, decode_stream
from textback.service import Daemon
from textback.simulator import AmiSimulator, SimulatorOptions
from textback.store import CallLog, Store

pytestmark = pytest.mark.timeout(60)

BURST_CALLERS = {f"+141555501{n}" for n in range(50, 80)}
KILLS = 5
TRUNKS = TrunkMap((Trunk(name="carrier-a", channels=("SIP/carrier-a-*",)),))


def texts(fake: TwilioFake) -> list[str]:
    return [r.form["To"] for r in fake.requests if r.path.endswith("Messages.json")]


class TestSigkill:
    async def test_kills_during_a_burst_never_text_twice(self, tmp_path: Path) -> None:
        """SIGKILL at seeded random points of a 30-call burst: each caller gets at most one text."""
        rng = random.Random(7)
        db = tmp_path / "textback.db"
        options = SimulatorOptions(speed=1.5)
        async with TwilioFake() as fake, AmiSimulator([capture("17-burst-30")], options) as pbx:
            path = write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url)

            def progress() -> int:
                return len(fake.requests) + len(calls(db))

            for _ in range(KILLS):
                logins = pbx.logins
                run = await Run.start(path)
                try:
                    await until(lambda n=logins: pbx.logins > n, "a login")  # type: ignore[misc]
                    target = progress() + rng.randint(1, 6)
                    await until(
                        lambda t=target: progress() >= t or pbx.streamed.is_set(),  # type: ignore[misc]
                        "progress",
                    )
                finally:
                    await run.kill()
            logins = pbx.logins
            last = await Run.start(path)
            try:
                # Logged in means started: what the kills left half done is settled.
                await until(lambda: pbx.logins > logins, "the last run to log in")
                await until(pbx.streamed.is_set, "the burst to end")
                await until(
                    lambda: all(state not in ("pending", "sending") for _, state, _ in outbox(db)),
                    "every text to settle",
                )
            finally:
                await last.stop()
        sent = Counter(texts(fake))
        rows = outbox(db)
        judged = calls(db)
        by_state = Counter(state for _, state, _ in rows)
        unknown = {caller for caller, verdict in judged if verdict == "unknown"}
        missed = {caller for caller, verdict in judged if verdict == "missed"}
        unqueued = missed - {to for to, _, _ in rows}
        lost = BURST_CALLERS - {caller for caller, _ in judged}
        ambiguous = {to for to, state, reason in rows if (state, reason) == ("failed", "ambiguous")}
        print(
            f"\nkills={KILLS} requests={sum(sent.values())} outbox={dict(by_state)} "
            f"missed={len(missed)} unknown={len(unknown)} never_judged={len(lost)} "
            f"ambiguous={len(ambiguous)} judged_but_never_queued={len(unqueued)}"
        )
        assert set(sent) <= BURST_CALLERS
        assert [n for n, count in sent.items() if count > 1] == []
        assert set(by_state) <= {"sent", "failed"}
        for to, state, reason in rows:
            assert to is not None
            assert to in missed
            # Ambiguous: killed after marking it sending; the request may not have left.
            assert sent[to] == 1 or (reason == "ambiguous" and sent[to] == 0), (to, state, reason)
            assert state == "sent" or reason == "ambiguous", (to, state, reason)
        # A kill between logging a call and queueing its text is healed at the next start.
        assert unqueued == set()
        assert not (unknown | lost) & set(sent)
        assert missed, "no call was ever texted: the kills came too early to test anything"


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


class TestKilledBetweenLogAndQueue:
    async def test_a_logged_missed_call_without_a_text_is_queued_at_the_next_start(
        self, tmp_path: Path
    ) -> None:
        """The call log has a missed call and the outbox nothing: the next start texts it once."""
        db = tmp_path / "textback.db"
        async with TwilioFake() as fake:
            config = load(write_config(tmp_path, ami_port=9, provider_url=fake.url))
            now = time.time()
            stale = now - 3 * 86_400.0  # past max_age_hours: it would only expire
            with CallLog.open(db) as log:
                for call_id, caller, ended in [
                    ("1.1", "+14155550161", now - 5),
                    ("1.2", "+14155550162", stale),
                ]:
                    v = verdict(call_id, caller, ended)
                    log.record(v, caller_e164=caller, did_e164=v.did, now=ended)
            async with daemon_running(config):
                await until(lambda: outbox(db) == [("+14155550161", "sent", "ok")], "the text")
            async with daemon_running(config) as daemon:
                await until(daemon.idle.is_set, "the second start to settle")
        assert texts(fake) == ["+14155550161"]


class TestPbxRestart:
    async def test_calls_after_a_pbx_restart_are_judged_and_texted_once(
        self, tmp_path: Path
    ) -> None:
        """The PBX drops us mid-stream; calls after the reconnect still get one text each."""
        db = tmp_path / "textback.db"
        async with TwilioFake() as fake, AmiSimulator([capture("01-abandoned-ringing")]) as pbx:
            config = load(write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url))
            async with daemon_running(config) as daemon:
                await until(lambda: outbox(db) == [("+14155550101", "sent", "ok")], "first text")
                await pbx.restart()
                await until(lambda: pbx.logins >= 2, "the reconnect")
                pbx.feed(capture("04-busy"))
                await until(lambda: len(outbox(db)) == 2 and daemon.idle.is_set(), "second row")
                await until(lambda: outbox(db)[1][1] == "sent", "second text")
        assert texts(fake) == ["+14155550101", "+14155550104"]


class TestGatewayFaults:
    async def test_500s_then_429_then_recovery_sends_each_once_in_order(
        self, tmp_path: Path
    ) -> None:
        """Server errors, then a rate limit with Retry-After: every text goes once, oldest first."""
        db = tmp_path / "textback.db"
        streams = [capture("01-abandoned-ringing"), capture("04-busy")]
        async with TwilioFake() as fake, AmiSimulator(streams) as pbx:
            for _ in range(3):
                fake.script.append(fake.error(20500, 500, "Internal error"))
            fake.script.append(fake.error(20429, 429, "Too many requests", Retry_After="1"))
            config = load(write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url))
            async with daemon_running(config):
                await until(lambda: [r[1] for r in outbox(db)] == ["sent", "sent"], "both texts")
        tos = texts(fake)
        # The first claim may carry both texts; after a refusal they leave one at a
        # time until one goes, so the oldest is retried alone and nothing overtakes it.
        assert tos[-2:] == ["+14155550101", "+14155550104"]
        assert tos[2:].count("+14155550104") == 1
        answered = [r for r in fake.requests if r.path.endswith("Messages.json")]
        assert len(answered) == 6

    async def test_a_hanging_gateway_fails_the_text_as_ambiguous_and_the_daemon_goes_on(
        self, tmp_path: Path
    ) -> None:
        """Past the gateway timeout the text is failed 'ambiguous', not retried; later texts go."""
        db = tmp_path / "textback.db"
        async with TwilioFake() as fake, AmiSimulator([capture("01-abandoned-ringing")]) as pbx:
            fake.script.append(Hang())
            path = write_config(
                tmp_path, ami_port=pbx.port, provider_url=fake.url, gateway_timeout=0.3
            )
            async with daemon_running(load(path)):
                await until(
                    lambda: outbox(db)[-1:] == [("+14155550101", "failed", "ambiguous")],
                    "the ambiguous mark",
                )
                pbx.feed(capture("04-busy"))
                await until(lambda: outbox(db)[-1:] == [("+14155550104", "sent", "ok")], "next")
        assert texts(fake) == ["+14155550101", "+14155550104"]


class TestBadDisk:
    @pytest.mark.parametrize(
        ("where", "code", "needle"),
        [("not sqlite", 73, "database_unusable"), ("under a file", 78, "daemon.database")],
    )
    async def test_an_unopenable_database_exits_once_with_one_clear_line(
        self, tmp_path: Path, where: str, code: int, needle: str
    ) -> None:
        """An unusable database: one line saying so, and a no-restart exit code (73 or 78)."""
        if where == "not sqlite":
            database = tmp_path / "textback.db"
            database.write_bytes(b"this is not a database, it is a text file\n" * 100)
        else:
            (tmp_path / "plain-file").write_text("")
            database = tmp_path / "plain-file" / "textback.db"
        path = write_config(
            tmp_path, ami_port=9, provider_url="http://127.0.0.1:9", database=database
        )
        run = await Run.start(path)
        assert await run.exited() == code, run.lines
        errors = [line for line in run.lines if needle in line]
        assert len(errors) == 1, run.lines
        assert "Traceback" not in "".join(run.lines)

    async def test_a_database_that_stops_taking_writes_holds_the_call_and_texts_it_after(
        self, tmp_path: Path
    ) -> None:
        """Writes refused mid-run (another writer holds the lock past the busy timeout): one
        error line, no exit, and once writes work again the held call is logged and texted."""
        db = tmp_path / "textback.db"
        async with TwilioFake() as fake, AmiSimulator([]) as pbx:
            config = load(write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url))
            with capture_logs() as logs:
                # daemon_running re-raises if the daemon ended on its own.
                async with daemon_running(config):
                    await until(lambda: pbx.logins >= 1, "the login")
                    blocker = sqlite3.connect(db, isolation_level=None)
                    try:
                        blocker.execute("BEGIN EXCLUSIVE")
                        pbx.feed(capture("01-abandoned-ringing"))

                        def failed() -> list[str]:
                            return [
                                str(e["doing"])
                                for e in logs
                                if e["event"] == "database_write_failed"
                            ]

                        await until(lambda: "logging calls" in failed(), "the write failure")
                        assert outbox(db) == []
                    finally:
                        blocker.execute("ROLLBACK")
                        blocker.close()
                    await until(lambda: outbox(db) == [("+14155550101", "sent", "ok")], "the text")
        assert texts(fake) == ["+14155550101"]
        assert failed().count("logging calls") == 1
        assert "database_write_recovered" in [e["event"] for e in logs]


def verdict(call_id: str, caller: str, ended_at: float) -> CallVerdict:
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


class TestClockJump:
    async def test_jumps_forward_and_back_expire_old_texts_and_send_nothing_twice(
        self, tmp_path: Path
    ) -> None:
        """+2 h expires a pending text past max_age; -1 h holds the next, then sends it once."""
        t0 = 1_800_000_000.0
        now = [t0]
        db = tmp_path / "textback.db"
        async with TwilioFake() as fake:
            sending = "grace_seconds = 5\nmax_age_hours = 1"
            config = load(
                write_config(tmp_path, ami_port=9, provider_url=fake.url, sending=sending)
            )
            async with await Store.open(config.daemon.database) as store:
                delivery = Delivery(config, store, config.gateway, clock=lambda: now[0])
                await config.gateway.start(GatewayContext())
                try:
                    await delivery.on_verdict(verdict("c1", "+14155550123", t0))
                    now[0] = t0 + 2 * 3600
                    await delivery._step()
                    assert outbox(db) == [("+14155550123", "expired", "max_age")]
                    await delivery.on_verdict(verdict("c2", "+14155550124", now[0]))
                    now[0] = t0 + 3600  # back an hour: c2's grace now ends an hour away
                    for _ in range(3):
                        await delivery._step()
                    assert texts(fake) == []
                    now[0] = t0 + 2 * 3600 + 6
                    for _ in range(3):
                        await delivery._step()
                finally:
                    await config.gateway.aclose()
        assert texts(fake) == ["+14155550124"]
        assert outbox(db)[1] == ("+14155550124", "sent", "ok")

    def test_a_correlator_clock_jump_ends_open_calls_as_unknown(self) -> None:
        """A call still ringing when the clock leaps past max call age is judged unknown, once."""
        correlator = AmiCorrelator(CorrelatorSettings(trunks=TRUNKS, max_call_age_seconds=3600))
        events = [
            e for e in parse_capture(capture("01-abandoned-ringing")) if e.get("Event") != "Hangup"
        ]
        now = 1_800_000_000.0
        verdicts = [v for e in events for v in correlator.feed(e, now)]
        assert verdicts == []
        assert correlator.calls_in_progress == 1
        later = correlator.on_timer(now + 2 * 3600)
        back = correlator.on_timer(now + 3600)
        assert [v.verdict for v in later] == [Verdict.UNKNOWN]
        assert back == []
        assert correlator.calls_in_progress == 0


def parse_capture(data: bytes) -> list[AmiMessage]:
    messages, problems = AmiFramer().receive_data(data)
    assert problems == []
    return messages


class TestGarbageOnTheAmiSocket:
    async def test_garbage_and_floods_warn_stay_bounded_and_calls_still_get_judged(
        self, tmp_path: Path
    ) -> None:
        """A 1 MB frame, an endless line, noise, 50k unknown events: the next call is texted."""
        db = tmp_path / "textback.db"
        flood = b"".join(
            b"Event: Frobnicate\r\nPrivilege: call,all\r\nN: %d\r\n\r\n" % i for i in range(50_000)
        )
        junk = [
            b"Event: Huge\r\nX: " + b"x" * 1_000_000 + b"\r\n\r\n",
            bytes(random.Random(3).randrange(256) for _ in range(200_000)) + b"\r\n\r\n",
            flood,
            b"Event: Endless\r\nX: " + b"y" * (MAX_FRAME_BYTES + 10) + b"\r\n\r\n",
        ]
        async with TwilioFake() as fake, AmiSimulator([capture("01-abandoned-ringing")]) as pbx:
            config = load(write_config(tmp_path, ami_port=pbx.port, provider_url=fake.url))
            with capture_logs() as logs:
                async with daemon_running(config) as daemon:
                    await until(
                        lambda: outbox(db)[-1:] == [("+14155550101", "sent", "ok")], "first"
                    )
                    for chunk in junk:
                        pbx.feed(chunk)
                    pbx.feed(capture("04-busy"))
                    await until(
                        lambda: outbox(db)[-1:] == [("+14155550104", "sent", "ok")],
                        "the call after the garbage",
                    )
                    assert daemon.correlator.calls_in_progress == 0
        assert texts(fake) == ["+14155550101", "+14155550104"]
        assert any(e["log_level"] == "warning" for e in logs)


FUZZ = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
HEADER_NAMES = st.sampled_from(
    [
        "Event",
        "Channel",
        "Uniqueid",
        "Linkedid",
        "ChannelState",
        "Context",
        "CallerIDNum",
        "ConnectedLineNum",
        "Exten",
        "BridgeUniqueid",
        "DestChannel",
        "DialStatus",
        "Cause",
        "X",
    ]
)
EVENT_NAMES = st.sampled_from(
    [
        "Newchannel",
        "Newstate",
        "Hangup",
        "DialBegin",
        "DialEnd",
        "BridgeEnter",
        "BridgeLeave",
        "NewConnectedLine",
        "VarSet",
        "Newexten",
        "Rename",
        "LocalBridge",
        "Unknown",
    ]
)
EVENTS = st.lists(
    st.builds(
        lambda name, rest: {"Event": name, **rest},
        EVENT_NAMES,
        st.dictionaries(HEADER_NAMES, st.text(max_size=30), max_size=8),
    ),
    max_size=40,
)


class TestFuzz:
    @FUZZ
    @given(st.lists(st.binary(max_size=300), max_size=20))
    def test_the_ami_framer_never_raises_on_any_bytes(self, chunks: list[bytes]) -> None:
        """Random bytes in random chunks come out as messages or problems, never an exception."""
        framer = AmiFramer()
        for chunk in chunks:
            framer.receive_data(chunk)

    @FUZZ
    @given(EVENTS)
    def test_the_ami_correlator_never_raises_on_any_events(
        self, events: list[dict[str, str]]
    ) -> None:
        """Random event dicts are placed or counted as ignored, never raised."""
        correlator = AmiCorrelator(CorrelatorSettings(trunks=TRUNKS))
        now = 1_800_000_000.0
        for i, event in enumerate(events):
            correlator.feed(event, now + i)
        correlator.on_timer(now + 10 * 3600)
        assert correlator.calls_in_progress == 0

    @FUZZ
    @given(st.lists(st.binary(max_size=300), max_size=20))
    def test_the_esl_framer_and_decoder_never_raise_on_any_bytes(self, chunks: list[bytes]) -> None:
        """Random bytes through the ESL framer and event decoder: frames or problems only."""
        framer = EslFramer()
        for chunk in chunks:
            frames, _ = framer.receive_data(chunk)
            for frame in frames:
                decode_event(frame)
        decode_stream(b"".join(chunks))

    @FUZZ
    @given(
        st.lists(
            st.sampled_from(
                [
                    b"Content-Type: text/event-plain\n",
                    b"Content-Length: 12\n",
                    b"Content-Length: -3\n",
                    b"Content-Length: x\n",
                    b"\n",
                    b"Event-Name: CHANNEL_HANGUP\n",
                    b"%zz\n",
                    b'{"a":\n',
                ]
            ),
            max_size=30,
        )
    )
    def test_the_esl_decoder_survives_plausible_broken_frames(self, lines: list[bytes]) -> None:
        """ESL-shaped lines in any order, with bad lengths: frames or problems only."""
        decode_stream(b"".join(lines))
