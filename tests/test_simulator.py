"""The fake Asterisk, probed with a bare AMI client over 127.0.0.1."""

from __future__ import annotations

import asyncio

from tests.amihelpers import PATIENCE, RawClient, capture, framed_events, privilege_classes
from textback.simulator import (
    SHUTDOWN_EVENT,
    AmiSimulator,
    SimulatorOptions,
    parse_events_value,
    split_capture,
)

ANONYMOUS = "pjsip-11-anonymous.ami"
ABANDONED = "01-abandoned-ringing.ami"


def _newchannel(uniqueid: str) -> bytes:
    return (
        "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/carrier-a-00000001\r\n"
        f"Uniqueid: {uniqueid}\r\nLinkedid: {uniqueid}\r\n\r\n"
    ).encode()


class TestSplitCapture:
    def test_drops_banner_and_login_reply_and_keeps_bytes(self) -> None:
        """Frames are the capture's exact bytes after the banner and the recorder's Login reply."""
        data = capture(ABANDONED)
        after_login = data[data.index(b"\r\n\r\n") + 4 :]

        frames = split_capture(data)

        assert after_login == b"".join(frame.raw for frame in frames)
        assert frames[0].raw.startswith(b"Event: FullyBooted\r\n")

    def test_raw_bytes_pass_through(self) -> None:
        """Bytes that are not a capture are streamed as they are, tail included."""
        garbage = b"not AMI at all\r\n\r\n\xff\xfe\r\nno end"

        assert garbage == b"".join(frame.raw for frame in split_capture(garbage))

    def test_events_value(self) -> None:
        """Login Events: on means all classes, off none, a list those classes."""
        assert parse_events_value("on") is None
        assert frozenset() == parse_events_value("off")
        assert frozenset({"system", "call"}) == parse_events_value("system, call")


class TestLogin:
    async def test_banner_from_first_capture(self) -> None:
        """The banner line is the first capture's own."""
        async with AmiSimulator([capture(ANONYMOUS)]) as sim:
            client = await RawClient.connect(sim.port)
            reply = await client.login()
            await client.aclose()

        assert client.banner == "Asterisk Call Manager/11.0.0"
        assert dict(reply) == {
            "Response": "Success",
            "ActionID": "l1",
            "Message": "Authentication accepted",
        }

    async def test_wrong_secret_refused_and_closed(self) -> None:
        """A wrong secret gets Authentication failed and the connection closed, as Asterisk does."""
        async with AmiSimulator([capture(ANONYMOUS)]) as sim:
            client = await RawClient.connect(sim.port)
            reply = await client.login(secret="wrong")
            closed = await client.closed_by_peer()
            await client.aclose()

        assert dict(reply) == {
            "Response": "Error",
            "ActionID": "l1",
            "Message": "Authentication failed",
        }
        assert closed
        assert (sim.logins, sim.login_attempts) == (0, 1)

    async def test_actions_before_login_denied(self) -> None:
        """Before Login, other actions get Permission denied and nothing streams."""
        async with AmiSimulator([capture(ANONYMOUS)]) as sim:
            client = await RawClient.connect(sim.port)
            client.send(Action="Ping", ActionID="p1")
            reply = await client.next_message()
            await client.aclose()

        assert dict(reply) == {
            "Response": "Error",
            "ActionID": "p1",
            "Message": "Permission denied",
        }


class TestStream:
    async def test_exact_bytes_after_login(self) -> None:
        """After our Login reply come the capture's bytes, unchanged."""
        data = capture(ABANDONED)
        expected = data[data.index(b"\r\n\r\n") + 4 :]
        async with AmiSimulator([data]) as sim:
            reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
            writer.write(b"Action: Login\r\nUsername: textback\r\nSecret: textback\r\n\r\n")
            async with asyncio.timeout(PATIENCE):
                banner = await reader.readuntil(b"\r\n")
                reply = await reader.readuntil(b"\r\n\r\n")
                streamed = await reader.readexactly(len(expected))
            writer.close()

        assert banner == b"Asterisk Call Manager/9.0.0\r\n"
        assert reply == b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
        assert expected == streamed

    async def test_byte_chunking_splits_every_byte(self) -> None:
        """Byte chunking makes a reading peer see (almost) one byte per read."""
        data = b"".join(_newchannel(f"1795810850.{i}") for i in range(10))
        async with AmiSimulator([data], SimulatorOptions(chunking="byte")) as sim:
            client = await RawClient.connect(sim.port)
            await client.login()
            reads_before = client.reads
            messages = [await client.next_message() for _ in range(10)]
            await client.aclose()

        assert len(messages) == 10
        assert client.reads - reads_before > 0.9 * len(data)

    async def test_login_events_filter(self) -> None:
        """Login Events: system,call keeps only events of those classes."""
        data = capture(ABANDONED)
        expected = framed_events([data], frozenset({"system", "call"}))
        async with AmiSimulator([data]) as sim:
            client = await RawClient.connect(sim.port)
            await client.login(events="system,call")
            got = [await client.next_message() for _ in expected]
            await client.aclose()

        assert [dict(m) for m in expected] == [dict(m) for m in got]
        assert {"dialplan", "security", "cdr"}.isdisjoint(
            c for m in got for c in privilege_classes(m)
        )

    async def test_read_classes_filter(self) -> None:
        """read_classes drops events outside the granted classes even with Events: on."""
        data = capture(ABANDONED)
        expected = framed_events([data], frozenset({"call"}))
        options = SimulatorOptions(read_classes=frozenset({"call"}))
        async with AmiSimulator([data], options) as sim:
            client = await RawClient.connect(sim.port)
            await client.login()
            got = [await client.next_message() for _ in expected]
            await client.aclose()

        assert [dict(m) for m in expected] == [dict(m) for m in got]

    async def test_stream_plays_once_across_reconnects(self) -> None:
        """A second session does not replay the captures; fed bytes go to it."""
        async with AmiSimulator([capture(ANONYMOUS)]) as sim:
            first = await RawClient.connect(sim.port)
            await first.login()
            await sim.streamed.wait()
            await first.aclose()
            second = await RawClient.connect(sim.port)
            await second.login()
            second.send(Action="Ping", ActionID="p2")
            pong = await second.next_message()
            sim.feed(_newchannel("1795810999.7"))
            fed = await second.next_message()
            await second.aclose()

        assert (pong["Response"], pong["ActionID"], pong["Ping"]) == ("Success", "p2", "Pong")
        assert fed["Uniqueid"] == "1795810999.7"

    async def test_restart_announces_shutdown_and_keeps_listening(self) -> None:
        """restart() sends Event: Shutdown, drops the session, and accepts new logins."""
        async with AmiSimulator([]) as sim:
            client = await RawClient.connect(sim.port)
            await client.login()
            await sim.restart()
            shutdown = await client.next_message()
            closed = await client.closed_by_peer()
            await client.aclose()
            again = await RawClient.connect(sim.port)
            reply = await again.login()
            await again.aclose()

        assert (shutdown["Event"], shutdown["Shutdown"]) == ("Shutdown", "Uncleanly")
        assert closed
        assert reply["Response"] == "Success"
        assert sim.logins == 2

    async def test_close_after_stream(self) -> None:
        """close_after_stream drops the client once every capture is out."""
        data = capture(ANONYMOUS)
        async with AmiSimulator([data], SimulatorOptions(close_after_stream=True)) as sim:
            client = await RawClient.connect(sim.port)
            await client.login()
            expected = framed_events([data])
            got = [await client.next_message() for _ in expected]
            closed = await client.closed_by_peer()
            await client.aclose()

        assert [dict(m) for m in expected] == [dict(m) for m in got]
        assert closed

    async def test_pacing_follows_uniqueid_epochs_with_a_cap(self) -> None:
        """speed paces Newchannels by their Uniqueid epochs; one wait is capped at 5 s / speed."""
        data = b"".join(_newchannel(u) for u in ("1795810000.1", "1795810001.2", "1795811000.3"))
        async with AmiSimulator([data], SimulatorOptions(speed=20.0)) as sim:
            client = await RawClient.connect(sim.port)
            await client.login()
            loop = asyncio.get_running_loop()
            times = []
            for _ in range(3):
                await client.next_message()
                times.append(loop.time())
            await client.aclose()

        one_second, capped = times[1] - times[0], times[2] - times[1]
        assert 0.045 <= one_second < 0.25
        assert 0.24 <= capped < 1.0


class TestActions:
    async def test_ping_answered(self) -> None:
        """Ping gets Success, Ping: Pong and a float Timestamp, with the ActionID."""
        async with AmiSimulator([]) as sim:
            client = await RawClient.connect(sim.port)
            await client.login()
            client.send(Action="Ping", ActionID="p1")
            pong = await client.next_message()
            await client.aclose()

        assert (pong["Response"], pong["ActionID"], pong["Ping"]) == ("Success", "p1", "Pong")
        assert float(pong["Timestamp"]) > 0

    async def test_dead_peer_ignores_ping(self) -> None:
        """With answer_pings off, a Ping gets nothing: the next reply is for the next action."""
        async with AmiSimulator([], SimulatorOptions(answer_pings=False)) as sim:
            client = await RawClient.connect(sim.port)
            await client.login()
            client.send(Action="Ping", ActionID="p1")
            client.send(Action="Nonsense", ActionID="n1")
            reply = await client.next_message()
            await client.aclose()

        assert dict(reply) == {
            "Response": "Error",
            "ActionID": "n1",
            "Message": "Invalid/unknown command",
        }

    async def test_core_show_channels(self) -> None:
        """CoreShowChannels answers with the snapshot as an event list carrying the ActionID."""
        snapshot = [
            "Event: CoreShowChannel\nChannel: PJSIP/carrier-a-00000001\nUniqueid: 1795810850.2\n",
            "Event: CoreShowChannel\r\nChannel: PJSIP/101-00000002\r\n\r\n",
        ]
        options = SimulatorOptions(channels_snapshot=snapshot)
        async with AmiSimulator([], options) as sim:
            client = await RawClient.connect(sim.port)
            await client.login()
            client.send(Action="CoreShowChannels", ActionID="c1")
            got = await client.messages_until(lambda m: m.get("EventList") == "Complete")
            await client.aclose()

        assert [dict(m) for m in got] == [
            {
                "Response": "Success",
                "ActionID": "c1",
                "EventList": "start",
                "Message": "Channels will follow",
            },
            {
                "Event": "CoreShowChannel",
                "ActionID": "c1",
                "Channel": "PJSIP/carrier-a-00000001",
                "Uniqueid": "1795810850.2",
            },
            {"Event": "CoreShowChannel", "ActionID": "c1", "Channel": "PJSIP/101-00000002"},
            {
                "Event": "CoreShowChannelsComplete",
                "ActionID": "c1",
                "EventList": "Complete",
                "ListItems": "2",
            },
        ]

    async def test_logoff(self) -> None:
        """Logoff gets Goodbye and the connection closed."""
        async with AmiSimulator([]) as sim:
            client = await RawClient.connect(sim.port)
            await client.login()
            client.send(Action="Logoff", ActionID="o1")
            reply = await client.next_message()
            closed = await client.closed_by_peer()
            await client.aclose()

        assert (reply["Response"], reply["ActionID"]) == ("Goodbye", "o1")
        assert closed

    async def test_shutdown_event_bytes(self) -> None:
        """The Shutdown event sent on restart is a well-formed system event."""
        (frame,) = split_capture(SHUTDOWN_EVENT)

        assert frozenset({"system"}) == frame.classes
