"""AmiSource against the real simulator over 127.0.0.1, with tiny timeouts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import MutableMapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.amihelpers import (
    CAPTURES,
    ClosingServer,
    capture,
    events,
    framed_events,
    item_of,
    items,
    running,
    settings,
)
from textback.pbx.ami_source import (
    AmiEvent,
    AmiLinkDown,
    AmiResync,
    AmiSource,
    SourceItem,
)
from textback.pbx.backoff import Backoff
from textback.simulator import SHUTDOWN_EVENT, AmiSimulator, SimulatorOptions

ABANDONED = "01-abandoned-ringing.ami"
ANONYMOUS = "pjsip-11-anonymous.ami"
VOICEMAIL = "02-voicemail.ami"


def _dicts(messages: Any) -> list[dict[str, str]]:
    return [dict(m) for m in messages]


def _head(data: bytes, frames: int) -> bytes:
    """The banner, the Login reply and the first few events of a capture."""
    return b"\r\n\r\n".join(data.split(b"\r\n\r\n")[:frames]) + b"\r\n\r\n"


def _named(logs: Sequence[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


def _kinds(found: list[SourceItem]) -> list[str]:
    return [type(item).__name__ for item in found]


class TestEventStream:
    @pytest.mark.parametrize(
        ("chunking", "name"),
        [("whole", ABANDONED), ("random", ABANDONED), ("byte", ANONYMOUS)],
    )
    async def test_events_equal_direct_framing(self, chunking: Any, name: str) -> None:
        """Events arrive in order, identical to framing the capture file directly."""
        data = capture(name)
        expected = framed_events([data])
        options = SimulatorOptions(chunking=chunking, seed=7)
        async with AmiSimulator([data], options) as sim:
            source = AmiSource(settings(sim.port))
            async with running(source):
                found = await items(source, 1 + len(expected))

        assert isinstance(found[0], AmiResync)
        assert all(isinstance(item, AmiEvent) for item in found[1:])
        assert _dicts(expected) == _dicts(i.message for i in found[1:] if isinstance(i, AmiEvent))

    async def test_utf8_name_split_across_reads(self) -> None:
        """A caller name in UTF-8, delivered one byte per TCP read, arrives intact."""
        data = _head(capture(ABANDONED), 6).replace(b"SMITH JOHN", "José Müller".encode())
        expected = framed_events([data])
        async with AmiSimulator([data], SimulatorOptions(chunking="byte")) as sim:
            source = AmiSource(settings(sim.port))
            async with running(source):
                got = await events(source, len(expected))

        names = {m["CallerIDName"] for m in got if "CallerIDName" in m}
        assert {"José Müller"} == names
        assert _dicts(expected) == _dicts(got)

    @pytest.mark.parametrize("where", ["simulator read_classes", "Login Events"])
    async def test_class_filter_drops_dialplan_cdr_security(self, where: str) -> None:
        """Granting only system,call,agent drops VarSet, Newexten, Cdr and SuccessfulAuth."""
        classes = frozenset({"system", "call", "agent"})
        data = capture(ABANDONED)
        expected = framed_events([data], classes)
        if where == "Login Events":
            options, overrides = SimulatorOptions(), {"events": "system,call,agent"}
        else:
            options, overrides = SimulatorOptions(read_classes=classes), {}
        async with AmiSimulator([data], options) as sim:
            source = AmiSource(settings(sim.port, **overrides))
            async with running(source):
                got = await events(source, len(expected))
                sim.feed(SHUTDOWN_EVENT)  # a system event: the first one after the capture
                (after,) = await events(source, 1)

        assert _dicts(expected) == _dicts(got)
        names = {m["Event"] for m in got}
        assert names.isdisjoint({"VarSet", "Newexten", "Cdr", "SuccessfulAuth"})
        assert after["Event"] == "Shutdown"

    async def test_garbage_and_bad_utf8_warned_later_events_intact(self) -> None:
        """Garbage and a non-UTF-8 frame are logged as warnings; events around them survive."""
        before, after = capture(ANONYMOUS), capture(ABANDONED)
        garbage = b"this is not AMI\r\nnor: this\r\n\r\n"
        latin1 = (
            b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: SIP/carrier-a-000000ff\r\n"
            b"CallerIDName: Jos\xe9 M\xfcller\r\nUniqueid: 1795810999.1\r\n\r\n"
        )
        expected = [*framed_events([before]), *framed_events([latin1]), *framed_events([after])]
        async with AmiSimulator([before, garbage, latin1, after]) as sim:
            source = AmiSource(settings(sim.port))
            with capture_logs() as logs:
                async with running(source):
                    got = await events(source, len(expected))

        assert _dicts(expected) == _dicts(got)
        assert "Jos\ufffd M\ufffdller" in {m.get("CallerIDName") for m in got}
        problems = _named(logs, "ami_frame_problem")
        assert {"warning"} == {p["log_level"] for p in problems}
        reasons = {p["reason"] for p in problems}
        assert {"invalid UTF-8 replaced", "frame with neither Event nor Response"} <= reasons

    async def test_slow_consumer_does_not_block_reader(self) -> None:
        """While nobody consumes, the reader keeps reading and answering pings; nothing is lost."""
        captures = [path.read_bytes() for path in sorted(CAPTURES.glob("*.ami"))]
        expected = framed_events(captures)
        async with AmiSimulator(captures) as sim:
            source = AmiSource(settings(sim.port, ping_interval=0.02, ping_timeout=0.5))
            async with running(source):
                async with asyncio.timeout(10):
                    await sim.streamed.wait()
                    await sim.until(lambda s: s.pings_answered >= 3)
                found = await items(source, 1 + len(expected))
                connected = source.connected

        assert isinstance(found[0], AmiResync)
        assert _dicts(expected) == _dicts(i.message for i in found[1:] if isinstance(i, AmiEvent))
        assert (connected, source.logins) == (True, 1)

    async def test_next_item_cancel_safe(self) -> None:
        """Cancelling a waiting next_item loses nothing."""
        async with AmiSimulator([capture(ANONYMOUS)]) as sim:
            source = AmiSource(settings(sim.port))
            waiting = asyncio.create_task(source.next_item())
            await asyncio.sleep(0)
            waiting.cancel()
            async with running(source):
                first, _ = await items(source, 2)

        assert waiting.cancelled()
        assert isinstance(first, AmiResync)


class TestLogin:
    async def test_refused_secret_one_error_then_waits_auth_retry(self) -> None:
        """A refused secret logs one clear error (no secret), then waits auth_retry, no hot loop."""
        secret = "s3cr3t-do-not-log"
        async with AmiSimulator([capture(ANONYMOUS)]) as sim:
            source = AmiSource(settings(sim.port, secret=secret, auth_retry=0.4))
            loop = asyncio.get_running_loop()
            with capture_logs() as logs:
                async with running(source):
                    await sim.until(lambda s: s.login_attempts >= 1)
                    first = loop.time()
                    await sim.until(lambda s: s.login_attempts >= 3)
                    elapsed = loop.time() - first
                    (down,) = await items(source, 1)

        assert elapsed >= 2 * 0.4 - 0.05
        assert AmiLinkDown("login refused") == down
        assert (source.logins, source.connected) == (0, False)
        errors = [entry for entry in logs if entry["log_level"] == "error"]
        assert len(errors) == 1
        assert errors[0]["event"] == "ami_login_refused"
        assert (errors[0]["host"], errors[0]["user"]) == ("127.0.0.1", "textback")
        assert "secret_file/secret_env" in errors[0]["hint"]
        assert not _named(logs, "ami_disconnected")
        assert secret not in repr(logs)

    def test_settings_repr_hides_secret(self) -> None:
        """The settings' repr never shows the secret."""
        assert "s3cr3t" not in repr(settings(5038, secret="s3cr3t"))

    def test_settings_reject_line_breaks(self) -> None:
        """A secret with a line break (header injection) is refused, without echoing it."""
        with pytest.raises(ValueError, match=r"AmiSettings\.secret contains a line break$"):
            settings(5038, secret="s3cr3t\n")

    async def test_connected_logged_once_with_banner(self) -> None:
        """A login logs ami_connected once, with the PBX banner."""
        async with AmiSimulator([capture(ANONYMOUS)]) as sim:
            source = AmiSource(settings(sim.port))
            with capture_logs() as logs:
                async with running(source):
                    await item_of(source, AmiResync)

        (connected,) = _named(logs, "ami_connected")
        assert connected["log_level"] == "info"
        assert "Asterisk Call Manager/11.0.0" == connected["banner"] == source.banner


class TestResync:
    async def test_snapshot_first_then_held_events(self) -> None:
        """The CoreShowChannels snapshot comes as AmiResync before any event of the session."""
        snapshot = [
            "Event: CoreShowChannel\r\nChannel: PJSIP/carrier-a-00000007\r\n"
            "Uniqueid: 1795810850.2\r\nLinkedid: 1795810850.2\r\nDuration: 00:00:12\r\n",
            "Event: CoreShowChannel\r\nChannel: PJSIP/101-00000008\r\n"
            "Uniqueid: 1795810850.3\r\nLinkedid: 1795810850.2\r\nDuration: 00:00:10\r\n",
        ]
        options = SimulatorOptions(channels_snapshot=snapshot)
        async with AmiSimulator([capture(ANONYMOUS)], options) as sim:
            source = AmiSource(settings(sim.port))
            async with running(source):
                resync, second = await items(source, 2)

        assert isinstance(resync, AmiResync)
        assert [c["Channel"] for c in resync.channels] == [
            "PJSIP/carrier-a-00000007",
            "PJSIP/101-00000008",
        ]
        assert {"CoreShowChannel"} == {c["Event"] for c in resync.channels}
        assert resync.channels[0]["Duration"] == "00:00:12"
        assert isinstance(second, AmiEvent)
        assert second.message["Event"] == "FullyBooted"

    @pytest.mark.parametrize("announce", [True, False])
    async def test_restart_mid_stream(self, announce: bool) -> None:
        """A PBX restart gives one AmiLinkDown, a reconnect, a new AmiResync, then later events."""
        first, later = capture(ANONYMOUS), capture(VOICEMAIL)
        async with AmiSimulator([first]) as sim:
            source = AmiSource(settings(sim.port))
            with capture_logs() as logs:
                async with running(source):
                    await items(source, 1 + len(framed_events([first])))
                    await sim.restart(announce=announce)
                    _, between = await item_of(source, AmiResync)
                    sim.feed(later)
                    got = await events(source, len(framed_events([later])))

        downs = [item for item in between if isinstance(item, AmiLinkDown)]
        assert len(downs) == 1
        assert ("shut down" in downs[0].reason) is announce
        assert _dicts(framed_events([later])) == _dicts(got)
        assert (source.logins, sim.logins) == (2, 2)
        assert len(_named(logs, "ami_disconnected")) == 1
        assert len(_named(logs, "ami_connected")) == 2

    async def test_shutdown_event_makes_us_reconnect(self) -> None:
        """Event: Shutdown is passed on, then we drop the session ourselves and log in again."""
        async with AmiSimulator([capture(ANONYMOUS), SHUTDOWN_EVENT]) as sim:
            source = AmiSource(settings(sim.port))
            async with running(source):
                _, found = await item_of(source, AmiLinkDown)
                await item_of(source, AmiResync)

        last = found[-1]
        assert isinstance(last, AmiEvent)
        assert last.message["Event"] == "Shutdown"
        assert sim.logins == 2


class TestLiveness:
    async def test_dead_peer_detected_by_ping(self) -> None:
        """A peer that stops answering Ping is dropped within ping_interval + ping_timeout."""
        options = SimulatorOptions(answer_pings=False)
        async with AmiSimulator([], options) as sim:
            source = AmiSource(settings(sim.port, ping_interval=0.1, ping_timeout=0.1))
            loop = asyncio.get_running_loop()
            async with running(source):
                await item_of(source, AmiResync)
                up = loop.time()
                down, _ = await item_of(source, AmiLinkDown)
                elapsed = loop.time() - up
                await item_of(source, AmiResync)

        assert 0.2 - 0.02 <= elapsed < 0.2 + 0.5
        assert down.reason == "no reply to Ping within 0.1 s"
        assert sim.logins == 2

    async def test_live_peer_stays_connected(self) -> None:
        """A peer that answers pings keeps the session: no AmiLinkDown, one login."""
        async with AmiSimulator([]) as sim:
            source = AmiSource(settings(sim.port, ping_interval=0.01, ping_timeout=0.5))
            async with running(source):
                (resync,) = await items(source, 1)
                await sim.until(lambda s: s.pings_answered >= 5)
                connected = source.connected

        assert isinstance(resync, AmiResync)
        assert (source.logins, sim.logins, connected) == (1, 1, True)

    async def test_reconnect_forever_with_capped_backoff(self) -> None:
        """Failed connections retry forever, waits doubling to a cap; one link-down, one warning."""
        async with ClosingServer() as server:
            source = AmiSource(
                settings(server.port, reconnect_min=0.02, reconnect_max=0.08),
                rng=random.Random(3),
            )
            with capture_logs() as logs:
                async with running(source) as task:
                    await server.until_accepted(7)
                    (down,) = await items(source, 1)
                    assert not task.done()

        gaps = [b - a for a, b in zip(server.accepted, server.accepted[1:], strict=False)]
        nominal = [0.02, 0.04, 0.08, 0.08, 0.08, 0.08]
        assert all(gap >= d / 2 - 0.005 for gap, d in zip(gaps, nominal, strict=True))
        assert all(gap < 0.08 + 0.15 for gap in gaps)
        assert isinstance(down, AmiLinkDown)
        assert len(_named(logs, "ami_disconnected")) == 1
        assert len(_named(logs, "ami_retry_failed")) >= 5
        assert {"debug"} == {e["log_level"] for e in _named(logs, "ami_retry_failed")}

    async def test_connection_refused_reported_once(self) -> None:
        """With nothing listening, one AmiLinkDown names the address; retries go on quietly."""
        async with ClosingServer() as server:
            port = server.port
        source = AmiSource(settings(port, reconnect_min=0.01, reconnect_max=0.02))
        with capture_logs() as logs:
            async with running(source):
                (down,) = await items(source, 1)
                async with ClosingServer(port) as again:
                    await again.until_accepted(2)

        assert isinstance(down, AmiLinkDown)
        assert f"cannot connect to 127.0.0.1:{port}" in down.reason
        assert len(_named(logs, "ami_disconnected")) == 1


class TestBackoff:
    def test_doubles_to_cap_with_jitter(self) -> None:
        """Each wait lies in [d/2, d] for d doubling from low to high."""
        backoff = Backoff(1.0, 8.0, random.Random(1))

        waits = [backoff.next() for _ in range(6)]

        for wait, nominal in zip(waits, [1, 2, 4, 8, 8, 8], strict=True):
            assert nominal / 2 <= wait <= nominal

    def test_reset_starts_over(self) -> None:
        """reset() brings the next wait back to at most low."""
        backoff = Backoff(1.0, 8.0, random.Random(1))
        for _ in range(5):
            backoff.next()

        backoff.reset()

        assert backoff.next() <= 1.0
