"""EslSource against the real ESL simulator over 127.0.0.1 with tiny timeouts; the simulator."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import MutableMapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.amihelpers import ClosingServer
from tests.eslhelpers import (
    PASSWORD,
    RawClient,
    all_captures,
    capture,
    events,
    framed_events,
    head,
    item_of,
    items,
    running,
    settings,
)
from textback.esl_simulator import (
    DISCONNECT_NOTICE_FRAME,
    EslSimulator,
    EslSimulatorOptions,
    bundled_esl_captures,
    split_capture,
)
from textback.pbx.esl_proto import EslMessage, decode_event, subscribe_command
from textback.pbx.esl_source import (
    EslEvent,
    EslLinkDown,
    EslResync,
    EslSource,
    SourceItem,
)
from textback.simulator import AmiSimulator

PLAIN = "01-inbound-ring-caller-cancels.esl"
JSON = "13-inbound-ring-caller-cancels-json.esl"
VOICEMAIL = "02-noanswer-voicemail-message-left.esl"
SMALL = "trap-10-extension-unregistered-no-voicemail.esl"


def _dicts(messages: Any) -> list[dict[str, str]]:
    return [dict(m) for m in messages]


def _named(logs: Sequence[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


def _messages(found: Sequence[SourceItem]) -> list[EslMessage]:
    return [item.message for item in found if isinstance(item, EslEvent)]


def _heartbeats_only(found: Sequence[SourceItem]) -> bool:
    return all(m["Event-Name"] == "HEARTBEAT" for m in _messages(found))


class TestEventStream:
    @pytest.mark.parametrize(
        ("chunking", "name", "fmt"),
        [
            ("whole", PLAIN, "plain"),
            ("random", PLAIN, "plain"),
            ("whole", JSON, "json"),
            ("random", JSON, "json"),
        ],
    )
    async def test_events_equal_direct_framing(self, chunking: Any, name: str, fmt: Any) -> None:
        """After the handshake, EslResync then the subscribed events, equal to framing the file."""
        data = capture(name)
        expected = framed_events([data])
        options = EslSimulatorOptions(chunking=chunking, seed=7)
        async with EslSimulator([data], options) as sim:
            source = EslSource(settings(sim.port, events_format=fmt))
            async with running(source):
                found = await items(source, 1 + len(expected))

        assert EslResync([]) == found[0]
        assert all(isinstance(item, EslEvent) for item in found[1:])
        assert _dicts(expected) == _dicts(_messages(found))
        assert (sim.logins, sim.subscriptions, sim.resyncs) == (1, 1, 1)

    async def test_byte_at_a_time(self) -> None:
        """Bytes delivered one per TCP read still make the same events."""
        data = head(capture(PLAIN), 14)
        expected = framed_events([data])
        async with EslSimulator([data], EslSimulatorOptions(chunking="byte")) as sim:
            source = EslSource(settings(sim.port))
            async with running(source):
                found = await items(source, 1 + len(expected))

        assert len(expected) >= 3
        assert _dicts(expected) == _dicts(_messages(found))

    async def test_all_captures_nothing_lost_while_consumer_waits(self) -> None:
        """Every capture streamed while nobody consumes arrives whole and in order."""
        captures = [path.read_bytes() for path in all_captures()]
        expected = framed_events(captures)
        async with EslSimulator(captures) as sim:
            source = EslSource(settings(sim.port))
            async with running(source):
                async with asyncio.timeout(10):
                    await sim.streamed.wait()
                found = await items(source, 1 + len(expected))
                connected = source.connected

        assert isinstance(found[0], EslResync)
        assert _dicts(expected) == _dicts(_messages(found[1:]))
        assert (connected, source.logins) == (True, 1)

    async def test_malformed_frames_warned_events_around_intact(self) -> None:
        """Garbage and a bad Content-Length are warnings, reason only; other events survive."""
        before, after = head(capture(SMALL), 8), head(capture(PLAIN), 10)
        garbage = b"this is not ESL +14155550199\n\n"
        bad_length = b"Content-Length: 12x\nContent-Type: text/event-plain\n\nEvent-Name: X\n\n"
        expected = framed_events([before, after])
        async with EslSimulator([before, garbage, bad_length, after]) as sim:
            source = EslSource(settings(sim.port))
            with capture_logs() as logs:
                async with running(source):
                    got = await events(source, len(expected))

        assert _dicts(expected) == _dicts(got)
        problems = _named(logs, "esl_frame_problem")
        assert {"warning"} == {p["log_level"] for p in problems}
        reasons = {p["reason"] for p in problems}
        assert {
            "bytes that are not an ESL frame, skipped",
            "bad Content-Length, frame skipped",
        } <= reasons
        assert "14155550199" not in repr(logs)
        assert source.logins == 1

    async def test_unreadable_events_warned_odd_values_read_as_written(self) -> None:
        """A line without a name or JSON nested past the stack is a warning; bad escapes
        are read as written (never raised into the consumer); the link stays up."""
        before, after = head(capture(SMALL), 8), head(capture(PLAIN), 10)

        def frame(kind: str, body: bytes) -> bytes:
            return b"Content-Length: %d\nContent-Type: text/event-%b\n\n%b" % (
                len(body),
                kind.encode(),
                body,
            )

        no_name = frame("plain", b"Event-Name: CHANNEL_PROGRESS\nno colon here\n\n")
        deep = b"[" * 5000 + b"]" * 5000
        nested = frame("json", b'{"Event-Name": "CHANNEL_PROGRESS", "a": ' + deep + b"}")
        odd = frame("plain", b"Event-Name: CHANNEL_PROGRESS\nUnique-ID: %zz%E9%\n\n")
        expected = framed_events([before, after])
        async with EslSimulator([before, no_name, nested, odd, after]) as sim:
            source = EslSource(settings(sim.port))
            with capture_logs() as logs:
                async with running(source):
                    got = await events(source, len(expected) + 1)

        odd_event = got[len(framed_events([before]))]
        assert odd_event["Unique-ID"] == "%zz\ufffd%"
        assert _dicts(expected) == _dicts([m for m in got if m is not odd_event])
        problems = _named(logs, "esl_frame_problem")
        assert [p["reason"] for p in problems] == ["event frame without a readable event"] * 2
        assert source.logins == 1

    async def test_next_item_cancel_safe(self) -> None:
        """Cancelling a waiting next_item loses nothing."""
        async with EslSimulator([capture(SMALL)]) as sim:
            source = EslSource(settings(sim.port))
            waiting = asyncio.create_task(source.next_item())
            await asyncio.sleep(0)
            waiting.cancel()
            async with running(source):
                first, _ = await items(source, 2)

        assert waiting.cancelled()
        assert isinstance(first, EslResync)


class TestLogin:
    async def test_connected_logged_once(self) -> None:
        """A login logs esl_connected once, at info, without the password."""
        async with EslSimulator([]) as sim:
            source_port = sim.port
            source = EslSource(settings(source_port))
            with capture_logs() as logs:
                async with running(source):
                    await item_of(source, EslResync)

        (connected,) = _named(logs, "esl_connected")
        assert connected["log_level"] == "info"
        assert (connected["host"], connected["port"]) == ("127.0.0.1", source_port)
        assert PASSWORD not in repr(logs)
        assert (source.logins, source.connected) == (1, False)

    async def test_refused_password_one_error_then_waits_auth_retry(self) -> None:
        """A wrong password logs one clear error (no password), then waits auth_retry."""
        password = "s3cr3t-do-not-log"
        async with EslSimulator([capture(SMALL)]) as sim:
            port = sim.port
            source = EslSource(settings(port, password=password, auth_retry=0.3))
            loop = asyncio.get_running_loop()
            with capture_logs() as logs:
                async with running(source):
                    await sim.until(lambda s: s.login_attempts >= 1)
                    first = loop.time()
                    await sim.until(lambda s: s.login_attempts >= 3)
                    elapsed = loop.time() - first
                    (down,) = await items(source, 1)

        assert elapsed >= 2 * 0.3 - 0.05
        assert EslLinkDown("password refused") == down
        assert (source.logins, sim.logins, source.connected) == (0, 0, False)
        errors = [entry for entry in logs if entry["log_level"] == "error"]
        assert [e["event"] for e in errors] == ["esl_login_refused"]
        assert (errors[0]["host"], errors[0]["port"]) == ("127.0.0.1", port)
        assert "event_socket.conf.xml" in errors[0]["hint"]
        assert "password_file/password_env" in errors[0]["hint"]
        assert not _named(logs, "esl_disconnected")
        assert password not in repr(logs)

    async def test_acl_rejection_one_error_then_waits_auth_retry(self) -> None:
        """text/rude-rejection logs one error naming the ACL fix, then waits auth_retry."""
        async with EslSimulator([], EslSimulatorOptions(reject_acl=True)) as sim:
            source = EslSource(settings(sim.port, auth_retry=0.3))
            loop = asyncio.get_running_loop()
            with capture_logs() as logs:
                async with running(source):
                    await sim.until(lambda s: s.connections >= 1)
                    first = loop.time()
                    await sim.until(lambda s: s.connections >= 3)
                    elapsed = loop.time() - first
                    (down,) = await items(source, 1)

        assert elapsed >= 2 * 0.3 - 0.05
        assert isinstance(down, EslLinkDown)
        assert "ACL" in down.reason
        errors = [entry for entry in logs if entry["log_level"] == "error"]
        assert [e["event"] for e in errors] == ["esl_access_denied"]
        assert "apply-inbound-acl" in errors[0]["hint"]
        assert "event_socket.conf.xml" in errors[0]["hint"]
        assert sim.login_attempts == 0

    async def test_asterisk_port_is_not_an_event_socket(self) -> None:
        """Pointed at an AMI port, no auth/request comes: a failed connection, retried."""
        async with AmiSimulator([]) as ami:
            source = EslSource(settings(ami.port, connect_timeout=0.1))
            async with running(source):
                (down,) = await items(source, 1)

        assert down == EslLinkDown("no auth/request from the PBX within 0.1 s")

    def test_settings_repr_hides_password(self) -> None:
        """The settings' repr never shows the password."""
        assert "s3cr3t" not in repr(settings(8021, password="s3cr3t"))

    def test_settings_reject_line_breaks_and_unknown_format(self) -> None:
        """A password with a line break, or an unknown events format, is refused without echo."""
        with pytest.raises(ValueError, match=r"EslSettings\.password contains a line break$"):
            settings(8021, password="s3cr3t\n")
        with pytest.raises(ValueError, match="events_format"):
            settings(8021, events_format="xml")


class TestResync:
    async def test_rows_delivered_as_resync(self) -> None:
        """show channels rows arrive as EslResync, values as strings, before any event."""
        rows = [
            {"uuid": "e5609a52", "direction": "inbound", "cid_num": "+14155550101"},
            {"uuid": "e610ac43", "direction": "outbound", "created_epoch": 1795811325},
        ]
        channels = json.dumps({"row_count": 2, "rows": rows})
        options = EslSimulatorOptions(channels_json=channels)
        async with EslSimulator([capture(SMALL)], options) as sim:
            source = EslSource(settings(sim.port))
            async with running(source):
                resync, second = await items(source, 2)

        assert (
            EslResync(
                [
                    {"uuid": "e5609a52", "direction": "inbound", "cid_num": "+14155550101"},
                    {"uuid": "e610ac43", "direction": "outbound", "created_epoch": "1795811325"},
                ]
            )
            == resync
        )
        assert isinstance(second, EslEvent)

    async def test_events_before_reply_held_until_after_resync(self) -> None:
        """Events that arrive before the show channels reply follow the EslResync, in order."""
        data = capture(PLAIN)
        expected = framed_events([data])
        options = EslSimulatorOptions(resync_delay=0.2)
        async with EslSimulator([data], options) as sim:
            source = EslSource(settings(sim.port))
            async with running(source):
                await sim.streamed.wait()
                found = await items(source, 1 + len(expected))

        assert sim.resyncs == 1  # the reply came after the whole stream
        assert isinstance(found[0], EslResync)
        assert _dicts(expected) == _dicts(_messages(found[1:]))

    async def test_unreadable_reply_warns_and_events_flow(self) -> None:
        """A show channels reply that is not the JSON asked for is a warning; no EslResync."""
        data = head(capture(SMALL), 6)
        expected = framed_events([data])
        options = EslSimulatorOptions(channels_json="-ERR no reply\n")
        async with EslSimulator([data], options) as sim:
            source = EslSource(settings(sim.port))
            with capture_logs() as logs:
                async with running(source):
                    found = await items(source, len(expected))

        assert _dicts(expected) == _dicts(_messages(found))
        (warning,) = _named(logs, "esl_resync_unreadable")
        assert warning["reply"] == "-ERR no reply"

    async def test_disconnect_notice_makes_us_reconnect(self) -> None:
        """A disconnect-notice on an open socket: we hang up, log it, log in again and resync."""
        async with EslSimulator([capture(SMALL)]) as sim:
            source = EslSource(settings(sim.port))
            with capture_logs() as logs:
                async with running(source):
                    await item_of(source, EslResync)
                    await sim.streamed.wait()
                    await sim.notify_disconnect()
                    down, _ = await item_of(source, EslLinkDown)
                    await item_of(source, EslResync)

        assert down.reason == "the PBX sent a disconnect-notice"
        (notice,) = _named(logs, "esl_disconnect_notice")
        assert notice["notice"] == "Disconnected, goodbye."
        assert (source.logins, sim.logins, sim.resyncs) == (2, 2, 2)
        assert len(_named(logs, "esl_disconnected")) == 1

    @pytest.mark.parametrize("announce", [True, False])
    async def test_restart_then_later_events(self, announce: bool) -> None:
        """A PBX restart gives one EslLinkDown, a reconnect, a new EslResync, then later events."""
        first, later = capture(SMALL), capture(PLAIN)
        async with EslSimulator([first]) as sim:
            source = EslSource(settings(sim.port))
            with capture_logs() as logs:
                async with running(source):
                    await items(source, 1 + len(framed_events([first])))
                    await sim.restart(announce=announce)
                    _, between = await item_of(source, EslResync)
                    sim.feed(later)
                    got = await events(source, len(framed_events([later])))

        downs = [item for item in between if isinstance(item, EslLinkDown)]
        assert len(downs) == 1
        assert ("disconnect-notice" in downs[0].reason) is announce
        assert _dicts(framed_events([later])) == _dicts(got)
        assert (source.logins, sim.logins) == (2, 2)
        assert len(_named(logs, "esl_disconnected")) == 1
        assert len(_named(logs, "esl_connected")) == 2

    async def test_restart_mid_stream_loses_only_the_outage(self) -> None:
        """Restarting mid-stream: events before, then a gap, then the rest in order."""
        data = capture(VOICEMAIL)
        expected = _dicts(framed_events([data]))
        async with EslSimulator([data], EslSimulatorOptions(speed=50.0)) as sim:
            source = EslSource(settings(sim.port))
            async with running(source):
                await item_of(source, EslResync)
                before = await events(source, 5)
                await sim.restart()
                _, between = await item_of(source, EslResync)
                await sim.streamed.wait()
                await sim.notify_disconnect()
                _, after = await item_of(source, EslLinkDown)

        got = _dicts(before) + _dicts(_messages(between)) + _dicts(_messages(after))
        positions = [expected.index(m) for m in got]
        assert positions == sorted(set(positions))  # in order, no duplicates
        assert positions[:5] == [0, 1, 2, 3, 4]
        tail = _dicts(_messages(after))
        assert tail
        assert tail == expected[len(expected) - len(tail) :]
        assert sim.logins == 2


class TestLiveness:
    async def test_silence_past_heartbeat_timeout_reconnects(self) -> None:
        """No bytes at all for heartbeat_timeout: the link is dropped and we log in again."""
        options = EslSimulatorOptions(heartbeats=False)
        async with EslSimulator([head(capture(SMALL), 5)], options) as sim:
            source = EslSource(settings(sim.port, heartbeat_timeout=0.2))
            loop = asyncio.get_running_loop()
            async with running(source):
                await sim.streamed.wait()
                quiet = loop.time()
                down, _ = await item_of(source, EslLinkDown)
                elapsed = loop.time() - quiet
                await item_of(source, EslResync)

        assert 0.2 - 0.05 <= elapsed < 0.2 + 0.5
        assert down.reason == "no data from the PBX for 0.2 s (no HEARTBEAT)"
        assert sim.logins == 2

    async def test_heartbeats_keep_the_link(self) -> None:
        """A peer that sends HEARTBEAT more often than heartbeat_timeout keeps the session."""
        options = EslSimulatorOptions(heartbeat_interval=0.02)
        async with EslSimulator([], options) as sim:
            source = EslSource(settings(sim.port, heartbeat_timeout=0.15))
            async with running(source):
                (resync,) = await items(source, 1)
                await sim.until(lambda s: s.heartbeats_sent >= 20)
                beats = await events(source, 10)
                connected = source.connected

        assert isinstance(resync, EslResync)
        assert {"HEARTBEAT"} == {m["Event-Name"] for m in beats}
        assert (source.logins, sim.logins, connected) == (1, 1, True)

    async def test_reconnect_forever_with_capped_backoff(self) -> None:
        """Failed connections retry forever, waits doubling to a cap; one link-down, one warning."""
        async with ClosingServer() as server:
            source = EslSource(
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
        assert down == EslLinkDown("connection closed by the PBX")
        assert len(_named(logs, "esl_disconnected")) == 1
        assert len(_named(logs, "esl_retry_failed")) >= 5
        assert {"debug"} == {e["log_level"] for e in _named(logs, "esl_retry_failed")}

    async def test_connection_refused_reported_once(self) -> None:
        """With nothing listening, one EslLinkDown names the address; retries go on quietly."""
        async with ClosingServer() as server:
            port = server.port
        source = EslSource(settings(port, reconnect_min=0.01, reconnect_max=0.02))
        with capture_logs() as logs:
            async with running(source):
                (down,) = await items(source, 1)
                async with ClosingServer(port) as again:
                    await again.until_accepted(2)

        assert isinstance(down, EslLinkDown)
        assert f"cannot connect to 127.0.0.1:{port}" in down.reason
        assert len(_named(logs, "esl_disconnected")) == 1


class TestSimulator:
    def test_split_capture_drops_session_frames_keeps_bytes(self) -> None:
        """Replayed frames are the capture's exact event bytes, without its own session frames."""
        data = capture(PLAIN)
        start = data.index(b"Content-Length:")
        end = data.index(b"Content-Type: command/reply\nReply-Text: +OK bye")

        frames = split_capture(data)

        assert data[start:end] == b"".join(frame.raw for frame in frames)
        assert all(frame.name is not None for frame in frames)

    def test_raw_bytes_pass_through(self) -> None:
        """Bytes that are not a capture are streamed as they are, tail included."""
        garbage = b"not ESL at all\n\n\xff\xfe\nno end"

        assert garbage == b"".join(frame.raw for frame in split_capture(garbage))

    async def test_handshake_and_commands(self) -> None:
        """auth/request, auth, event, api, an unknown command and exit, answered as FreeSWITCH."""
        async with EslSimulator([]) as sim:
            client = await RawClient.connect(sim.port)
            hello = await client.next_frame()
            early = await client.command("api status")
            accepted = await client.command(f"auth {PASSWORD}")
            enabled = await client.command(subscribe_command("json").decode().strip())
            channels = await client.command("api show channels as json")
            unknown = await client.command("sendevent nonsense")
            client.send("exit")
            bye = await client.frames_until(lambda f: f.content_type == "text/disconnect-notice")
            closed = await client.closed_by_peer()
            await client.aclose()

        assert dict(hello.headers) == {"Content-Type": "auth/request"}
        assert early.reply_text == "-ERR command not found"
        assert accepted.reply_text == "+OK accepted"
        assert enabled.reply_text == "+OK event listener enabled json"
        assert channels.content_type == "api/response"
        assert channels.body == b'{"row_count":0}'
        assert unknown.reply_text == "-ERR command not found"
        assert [f.reply_text for f in bye] == ["+OK bye", ""]
        assert closed

    async def test_wrong_password_closes(self) -> None:
        """A wrong password gets -ERR invalid, a disconnect-notice and a closed socket."""
        async with EslSimulator([]) as sim:
            client = await RawClient.connect(sim.port)
            await client.next_frame()
            refused = await client.command("auth wrong")
            notice = await client.next_frame()
            closed = await client.closed_by_peer()
            await client.aclose()

        assert refused.reply_text == "-ERR invalid"
        assert notice.content_type == "text/disconnect-notice"
        assert notice.body == DISCONNECT_NOTICE_FRAME.split(b"\n\n", 1)[1]
        assert closed
        assert (sim.login_attempts, sim.logins) == (1, 0)

    async def test_subscription_filters_names_and_subclasses(self) -> None:
        """Only subscribed Event-Names reach a client; CUSTOM events by subclass."""
        data = capture(VOICEMAIL)
        async with EslSimulator([data], EslSimulatorOptions(close_after_stream=True)) as sim:
            client = await RawClient.connect(sim.port)
            await client.next_frame()
            await client.command(f"auth {PASSWORD}")
            await client.command("event plain CHANNEL_ANSWER CUSTOM vm::maintenance")
            frames = await client.frames_to_end()
            await client.aclose()

        got = [decode_event(f) for f in frames]
        assert all(m is not None for m in got)
        kinds = {(m["Event-Name"], m.get("Event-Subclass")) for m in got if m is not None}
        assert {("CHANNEL_ANSWER", None), ("CUSTOM", "vm::maintenance")} == kinds
        reference = framed_events([data], subscribed=False)
        assert len(got) == len(
            [
                m
                for m in reference
                if m["Event-Name"] == "CHANNEL_ANSWER"
                or m.get("Event-Subclass") == "vm::maintenance"
            ]
        )

    async def test_heartbeat_in_client_format(self) -> None:
        """The simulator's own HEARTBEAT comes in the format the client subscribed with."""
        options = EslSimulatorOptions(heartbeat_interval=0.01)
        async with EslSimulator([], options) as sim:
            plain, json_client = (
                await RawClient.connect(sim.port),
                await RawClient.connect(sim.port),
            )
            for client, fmt in ((plain, "plain"), (json_client, "json")):
                await client.next_frame()
                await client.command(f"auth {PASSWORD}")
                await client.command(f"event {fmt} HEARTBEAT")
            beats = [await plain.next_frame(), await json_client.next_frame()]
            await plain.aclose()
            await json_client.aclose()

        assert [b.content_type for b in beats] == ["text/event-plain", "text/event-json"]
        decoded = [decode_event(b) for b in beats]
        assert all(m is not None and m["Event-Info"] == "System Ready" for m in decoded)

    def test_bundled_captures_are_esl(self) -> None:
        """Only the bundled .esl captures are returned (never the .ami ones), each an ESL stream."""
        assert all(
            data.startswith(b"Content-Type: auth/request") for _, data in bundled_esl_captures()
        )
