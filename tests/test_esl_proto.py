"""The sans-IO ESL framer and event decoder: real captures, any chunking, bad bytes."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.amihelpers import capture as ami_capture
from tests.eslhelpers import all_captures, capture, framed_events, is_subscribed
from textback.pbx.esl_proto import (
    API_SHOW_CHANNELS,
    MAX_HEADER_BYTES,
    SUBSCRIBED_CUSTOM,
    SUBSCRIBED_EVENTS,
    EslFrame,
    EslFramer,
    EslMessage,
    FrameProblem,
    PlainEvent,
    auth_command,
    decode_event,
    decode_stream,
    parse_show_channels,
    pbx_banner_is_esl,
    subscribe_command,
)

CAPTURE_PATHS = all_captures()
CAPTURE_DATA = [path.read_bytes() for path in CAPTURE_PATHS]
PLAIN = "01-inbound-ring-caller-cancels.esl"
JSON = "13-inbound-ring-caller-cancels-json.esl"


def frame_in_pieces(data: bytes, cuts: list[int]) -> tuple[list[EslFrame], list[FrameProblem]]:
    framer = EslFramer()
    frames: list[EslFrame] = []
    problems: list[FrameProblem] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        got, bad = framer.receive_data(data[start:cut])
        frames += got
        problems += bad
        start = cut
    return frames, problems


def frame_bytewise(data: bytes) -> list[EslFrame]:
    framer = EslFramer()
    frames: list[EslFrame] = []
    for i in range(len(data)):
        frames += framer.receive_data(data[i : i + 1])[0]
    return frames


def events_of(frames: list[EslFrame]) -> list[EslMessage | None]:
    return [decode_event(f) for f in frames if f.content_type.startswith("text/event-")]


def plain_event(headers: str, inner_body: bytes | None = None) -> bytes:
    body = headers.encode()
    if inner_body is not None:
        body += b"Content-Length: %d\n\n%b" % (len(inner_body), inner_body)
    else:
        body += b"\n"
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n%b" % (len(body), body)


def json_event(fields: dict[str, object]) -> bytes:
    body = json.dumps(fields, ensure_ascii=False).encode()
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n%b" % (len(body), body)


HEARTBEAT = plain_event("Event-Name: HEARTBEAT\nEvent-Info: System%20Ready\n")


class TestFraming:
    def test_capture_frame_kinds(self) -> None:
        """A capture frames as auth/request, two replies, events, +OK bye, disconnect-notice."""
        frames, problems = EslFramer().receive_data(capture(PLAIN))

        assert problems == []
        kinds = [f.content_type for f in frames]
        assert kinds[:3] == ["auth/request", "command/reply", "command/reply"]
        assert frames[1].reply_text == "+OK accepted"
        assert frames[2].reply_text == "+OK event listener enabled plain"
        assert {"text/event-plain"} == set(kinds[3:-2])
        assert frames[-2].reply_text == "+OK bye"
        assert frames[-1].content_type == "text/disconnect-notice"
        assert frames[-1].text().startswith("Disconnected, goodbye.\n")

    @pytest.mark.parametrize("path", CAPTURE_PATHS, ids=lambda p: p.stem)
    def test_byte_at_a_time_equals_whole(self, path: Path) -> None:
        """Every capture fed one byte at a time gives the same frames and events as whole."""
        data = path.read_bytes()
        whole, problems = EslFramer().receive_data(data)

        bytewise = frame_bytewise(data)

        assert problems == []
        assert whole == bytewise
        assert events_of(whole) == events_of(bytewise)
        assert None not in events_of(whole)

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def test_any_chunking_equals_whole(self, data: st.DataObject) -> None:
        """Random chunk boundaries in any capture never change the frames or events."""
        raw = data.draw(st.sampled_from(CAPTURE_DATA))
        cuts = data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=80))
        whole, _ = EslFramer().receive_data(raw)

        pieces, problems = frame_in_pieces(raw, cuts)

        assert problems == []
        assert whole == pieces
        assert events_of(whole) == events_of(pieces)

    def test_content_length_counts_bytes(self) -> None:
        """A body with multi-byte UTF-8, cut inside a character, is framed by bytes."""
        data = json_event({"Event-Name": "CHANNEL_CREATE", "Caller-Caller-ID-Name": "José Müller"})
        data += HEARTBEAT
        cut = data.index("é".encode()) + 1

        frames, problems = frame_in_pieces(data, [cut])

        assert problems == []
        first, second = (decode_event(f) for f in frames)
        assert first is not None
        assert first["Caller-Caller-ID-Name"] == "José Müller"
        assert second is not None
        assert second["Event-Name"] == "HEARTBEAT"

    def test_stray_empty_lines_are_not_frames(self) -> None:
        """Empty lines between frames are skipped without a problem."""
        frames, problems = EslFramer().receive_data(b"\n\n\n" + HEARTBEAT + b"\n\n" + HEARTBEAT)

        assert problems == []
        assert len(frames) == 2


class TestMalformed:
    def test_garbage_block_reported_next_frame_intact(self) -> None:
        """A block that is not ESL is one problem; the frame after it is intact."""
        frames, problems = EslFramer().receive_data(b"this is not ESL\nnor: this\n\n" + HEARTBEAT)

        assert [p.reason for p in problems] == ["bytes that are not an ESL frame, skipped"]
        assert [decode_event(f) for f in frames] == [
            {"Event-Name": "HEARTBEAT", "Event-Info": "System Ready"}
        ]

    @pytest.mark.parametrize("length", ["12abc", "-5", "999999999999"])
    def test_bad_content_length_plain(self, length: str) -> None:
        """A plain event with a bad Content-Length is lost alone; later frames are intact."""
        bad = plain_event("Event-Name: CHANNEL_CREATE\nUnique-ID: x\n")
        bad = bad.replace(bad.split(b"\n")[0], b"Content-Length: " + length.encode())
        data = HEARTBEAT + bad + HEARTBEAT + b"Content-Type: command/reply\nReply-Text: +OK\n\n"

        frames, problems = EslFramer().receive_data(data)

        # The body, read as a block, has no Content-Type: one more problem, then in step.
        assert [p.reason for p in problems] == [
            "bad Content-Length, frame skipped",
            "bytes that are not an ESL frame, skipped",
        ]
        assert [f.content_type for f in frames] == [
            "text/event-plain",
            "text/event-plain",
            "command/reply",
        ]
        assert frames[0] == frames[1]

    def test_bad_content_length_json_resyncs_at_next_frame(self) -> None:
        """A JSON event with a bad length costs only itself: the next frame follows its brace."""
        good = json_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "b"})
        bad = json_event({"Event-Name": "CHANNEL_CREATE", "Unique-ID": "a"})
        bad = bad.replace(bad.split(b"\n")[0], b"Content-Length: x")

        frames, problems = EslFramer().receive_data(bad + good + good)

        assert [p.reason for p in problems] == [
            "bad Content-Length, frame skipped",
            "bytes before a frame, skipped",
        ]
        assert [decode_event(f) for f in frames] == [
            {"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "b"}
        ] * 2

    def test_malformed_header_line_is_dropped_with_its_block(self) -> None:
        """Junk lines before a frame's headers are reported; the frame is kept."""
        frames, problems = EslFramer().receive_data(b"%%% junk %%%\n" + HEARTBEAT)

        assert [p.reason for p in problems] == ["bytes before a frame, skipped"]
        assert [f.content_type for f in frames] == ["text/event-plain"]

    def test_oversized_header_block_discarded(self) -> None:
        """Bytes with no empty line past the size limit are dropped; framing restarts after."""
        framer = EslFramer()
        _, problems = framer.receive_data(b"x" * (MAX_HEADER_BYTES + 1))
        frames, later = framer.receive_data(b"\n\n" + HEARTBEAT)

        assert [p.reason for p in problems] == ["header block too large, discarded"]
        assert later == []
        assert [f.content_type for f in frames] == ["text/event-plain"]

    def test_problem_excerpts_hold_no_bytes_of_the_stream(self) -> None:
        """Problems never quote the stream (it may hold a caller's number)."""
        data = b"Caller: +14155550101\nbad line\n\n" + HEARTBEAT.replace(b"43", b"4x", 1)
        _, problems = EslFramer().receive_data(data)

        assert problems
        assert all(p.excerpt == "" for p in problems)


class TestDecodePlain:
    def test_values_url_decoded_plus_kept(self) -> None:
        """Plain values are URL-decoded with unquote: %2B is +, a literal + stays +."""
        (frame,), _ = EslFramer().receive_data(
            plain_event(
                "Event-Name: CHANNEL_CREATE\nCaller-Caller-ID-Number: %2B14155550101\n"
                "Caller-Caller-ID-Name: A+B%20C\nEvent-Date-Local: 2026-11-27%2020%3A28%3A45\n"
            )
        )

        assert decode_event(frame) == {
            "Event-Name": "CHANNEL_CREATE",
            "Caller-Caller-ID-Number": "+14155550101",
            "Caller-Caller-ID-Name": "A+B C",
            "Event-Date-Local": "2026-11-27 20:28:45",
        }

    def test_inner_body(self) -> None:
        """An event's own Content-Length and body become _body, UTF-8 decoded."""
        inner = "Hallo Zürich\nline 2\n".encode()
        (frame,), _ = EslFramer().receive_data(
            plain_event("Event-Name: CUSTOM\nEvent-Subclass: vm%3A%3Amaintenance\n", inner)
        )

        assert decode_event(frame) == {
            "Event-Name": "CUSTOM",
            "Event-Subclass": "vm::maintenance",
            "_body": "Hallo Zürich\nline 2\n",
        }

    def test_array_header_reads_like_json_list(self) -> None:
        """A plain ARRAY:: header reads as a|b, as the JSON list does."""
        (frame,), _ = EslFramer().receive_data(
            plain_event(
                "Event-Name: CHANNEL_EXECUTE\nvariable_DP_MATCH: ARRAY%3A%3A%2B1212%7C%3A1212\n"
            )
        )

        event = decode_event(frame)
        assert event is not None
        assert event["variable_DP_MATCH"] == "+1212|1212"

    @pytest.mark.parametrize(
        "body",
        [
            b"Event-Name: X\nno colon here\n\n",
            b"Unique-ID: x\n\n",
            b"Event-Name: X\nContent-Length: 50\n\nshort",
            b"Event-Name: X\nContent-Length: many\n\nbody",
            b"",
        ],
    )
    def test_unreadable_plain_is_none(self, body: bytes) -> None:
        """A plain body with a bad line, no Event-Name or a short inner body decodes to None."""
        frame = EslFrame({"Content-Type": "text/event-plain"}, body)

        assert decode_event(frame) is None


def eager_plain(body: bytes) -> dict[str, str] | None:
    """The reference: every value of a plain body decoded at once, as textback first did."""
    head, _, rest = body.partition(b"\n\n")
    message: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\n"):
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name:
            return None
        value = unquote(value.removeprefix(" "), errors="replace")
        if value.startswith("ARRAY::"):
            value = "|".join(value[len("ARRAY::") :].split("|:"))
        message[name] = value
    length = message.pop("Content-Length", None)
    if length is not None:
        if not length.isdigit() or len(rest) < int(length):
            return None
        message["_body"] = rest[: int(length)].decode("utf-8", "replace")
    return message if message.get("Event-Name") else None


def assert_reads_like(event: EslMessage | None, reference: dict[str, str] | None) -> None:
    """``event`` answers every Mapping question as the eagerly decoded ``reference`` does."""
    if reference is None:
        assert event is None
        return
    assert isinstance(event, PlainEvent)
    assert list(event) == list(reference)
    assert len(event) == len(reference)
    for name, value in reference.items():
        assert name in event
        assert event.get(name) == value
        assert event[name] == value
        assert event.get(name) == value  # a second read, from the decoded cache
    assert dict(event.items()) == reference
    assert event == reference
    assert reference == event
    assert "No-Such-Header" not in event
    assert event.get("No-Such-Header") is None
    assert event.get("No-Such-Header", "x") == "x"
    with pytest.raises(KeyError):
        event["No-Such-Header"]


class TestLazyPlain:
    @pytest.mark.parametrize("path", CAPTURE_PATHS, ids=lambda p: p.stem)
    def test_every_capture_event_reads_like_the_eager_decode(self, path: Path) -> None:
        """Each plain event of each capture is the eager decode: keys, order, values, len, ==."""
        frames, _ = EslFramer().receive_data(path.read_bytes())
        plain = [f for f in frames if f.content_type == "text/event-plain"]

        for frame in plain:
            assert_reads_like(decode_event(frame), eager_plain(frame.body))

    def test_reads_in_any_order_give_the_same_values(self) -> None:
        """Values read one by one, in any order, before or after iterating, are the same."""
        frames, _ = EslFramer().receive_data(capture(PLAIN))
        frame = next(f for f in frames if f.content_type == "text/event-plain")
        reference = eager_plain(frame.body)
        assert reference is not None

        for order in (list(reference), list(reversed(reference))):
            event = decode_event(frame)
            assert event is not None
            assert [event[name] for name in order] == [reference[name] for name in order]
            assert dict(event) == reference

    @pytest.mark.parametrize(
        ("raw", "read"),
        [
            ("100%", "100%"),  # a lone % at the end
            ("50%zz%2", "50%zz%2"),  # not hex: kept as written
            ("Jos%E9", "Jos\ufffd"),  # invalid UTF-8 once unquoted: replaced
            ("%C3%A9%C3", "\u00e9\ufffd"),  # a character cut short
            ("%00nul", "\x00nul"),
            ("ARRAY%3A%3A%ZZ%7C%3A%E9", "%ZZ|\ufffd"),
        ],
    )
    def test_malformed_escapes_read_as_eagerly_and_never_raise(self, raw: str, read: str) -> None:
        """A bad escape in a value read late gives what the eager decode gave, not an error."""
        (frame,), _ = EslFramer().receive_data(
            plain_event(f"Event-Name: CHANNEL_CREATE\nCaller-Caller-ID-Name: {raw}\n")
        )
        event = decode_event(frame)

        assert event is not None
        assert event["Caller-Caller-ID-Name"] == read
        assert_reads_like(event, eager_plain(frame.body))

    def test_invalid_utf8_in_names_and_raw_values_replaced(self) -> None:
        """Invalid UTF-8 on the wire is replaced in names and values alike."""
        body = b"Event-Name: CHANNEL_CREATE\nCaller-Caller-ID-Name: Jos\xe9\nX-\xff: 1\n\n"
        event = decode_event(EslFrame({"Content-Type": "text/event-plain"}, body))

        assert event is not None
        assert event["Caller-Caller-ID-Name"] == "Jos\ufffd"
        assert event["X-\ufffd"] == "1"
        assert_reads_like(event, eager_plain(body))

    def test_body_and_its_length(self) -> None:
        """The inner body is _body; the inner Content-Length is not a header of the event."""
        inner = b"Hallo\n"
        (frame,), _ = EslFramer().receive_data(plain_event("Event-Name: CUSTOM\n", inner))
        event = decode_event(frame)

        assert event is not None
        assert "Content-Length" not in event
        assert event.get("Content-Length") is None
        assert event["_body"] == "Hallo\n"
        assert_reads_like(event, eager_plain(frame.body))

    def test_a_name_is_a_whole_name(self) -> None:
        """A name is found only as a whole line name: not as part of another, nor in a value."""
        (frame,), _ = EslFramer().receive_data(
            plain_event(
                "Event-Name: CHANNEL_CREATE\nUnique-ID: u1\n"
                "variable_note: Unique: no%0AUnique-ID: u2\nOther: x\n"
            )
        )
        event = decode_event(frame)

        assert event is not None
        assert event["Unique-ID"] == "u1"
        assert event["variable_note"] == "Unique: no\nUnique-ID: u2"
        for name in ("Unique", "ID", "-ID", "Event", "Name", "Other: x", "Other:", "\nOther", ""):
            assert name not in event
            assert event.get(name) is None
        assert 3 not in event  # type: ignore[comparison-overlap]  # what a Mapping allows
        assert event["Other"] == "x"

    def test_first_and_last_lines_without_a_final_line_break(self) -> None:
        """The first line and a last line with no line break after it are read like the rest."""
        body = b"\nEvent-Name: HEARTBEAT\nLast:%20one"
        event = decode_event(EslFrame({"Content-Type": "text/event-plain"}, body))

        assert event is not None
        assert (event["Event-Name"], event["Last"]) == ("HEARTBEAT", " one")
        assert_reads_like(event, eager_plain(body))

    @pytest.mark.parametrize(
        "body",
        [
            b"\n\n",
            b"Event-Name: X\n\n",
            b"\nEvent-Name: X\n\n",
            b"Event-Name: X\nbad\n\n",
            b"bad\nEvent-Name: X\n\n",
            b"\nbad\nEvent-Name: X\n\n",
            b"Event-Name: X\n:x\n\n",
            b":x\nEvent-Name: X\n\n",
            b"Event-Name: X\n\nA: b\n\n",
            b"Event-Name: X\n\nno colon\n\n",
            b"Event-Name: X\n\n\n",
            b"Event-Name: X\nContent-Length: 0\n\n",
            b"Event-Name: X\nContent-Length: 2\n\n",
            b"Event-Name: X\nContent-Length: 4\n\nab\n\n",
            b"Event-Name: X\nContent-Length: 2\n\n:\n",
        ],
    )
    def test_where_the_lines_end_reads_like_the_eager_decode(self, body: bytes) -> None:
        """With or without a body of its own, a bad line anywhere: as the eager decode."""
        frame = EslFrame({"Content-Type": "text/event-plain"}, body)

        assert_reads_like(decode_event(frame), eager_plain(body))

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.sampled_from(
                [
                    "Event-Name: CHANNEL_CREATE",
                    "Event-Name: ",
                    "Event-Name:%41",
                    "Unique-ID: a%2",
                    "Unique-ID: %zz",
                    "Caller-Caller-ID-Name: %E9%",
                    "variable_DP_MATCH: ARRAY%3A%3Aa%7C%3Ab",
                    "Content-Length: 3",
                    "Content-Length: %33",
                    "Content-Length: x",
                    "_body: header",
                    "no colon",
                    ": no name",
                    "",
                    "Dup: 1",
                    "Dup: 2",
                ]
            ),
            max_size=12,
        ),
        st.sampled_from([b"\n\n", b"\n", b""]),
        st.binary(max_size=8),
    )
    def test_any_mix_of_lines_reads_like_the_eager_decode(
        self, lines: list[str], end: bytes, rest: bytes
    ) -> None:
        """Good, bad, empty, duplicate and length lines: None or the same mapping, never a raise."""
        body = "\n".join(lines).encode() + end + rest
        frame = EslFrame({"Content-Type": "text/event-plain"}, body)

        assert_reads_like(decode_event(frame), eager_plain(body))

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_garbage_reads_like_the_eager_decode(self, body: bytes) -> None:
        """Arbitrary bytes as a plain body: None or the eager mapping, and no read raises."""
        frame = EslFrame({"Content-Type": "text/event-plain"}, b"Event-Name: X\n" + body)

        assert_reads_like(decode_event(frame), eager_plain(frame.body))


class TestDecodeJson:
    def test_values_become_strings(self) -> None:
        """JSON lists join with |, numbers, booleans and null become text, _body is kept."""
        (frame,), _ = EslFramer().receive_data(
            json_event(
                {
                    "Event-Name": "CUSTOM",
                    "variable_DP_MATCH": ["+1212", "1212"],
                    "Count": 3,
                    "Flag": True,
                    "Nothing": None,
                    "_body": "text",
                }
            )
        )

        assert decode_event(frame) == {
            "Event-Name": "CUSTOM",
            "variable_DP_MATCH": "+1212|1212",
            "Count": "3",
            "Flag": "true",
            "Nothing": "",
            "_body": "text",
        }

    def test_nested_values_become_strings(self) -> None:
        """Lists in lists join flat; an object inside a value is its JSON text."""
        body = b'{"Event-Name": "X", "a": [["b", ["c"]], 1, null], "o": {"k": [2]}}'

        event = decode_event(EslFrame({"Content-Type": "text/event-json"}, body))

        assert event == {"Event-Name": "X", "a": "b|c|1|", "o": '{"k": [2]}'}

    def test_nesting_near_the_stack_limit_never_raises(self) -> None:
        """A value nested about as deep as the stack allows reads as text or as unreadable."""
        body = b'{"Event-Name": "X", "a": ' + b"[" * 900 + b"]" * 900 + b"}"

        event = decode_event(EslFrame({"Content-Type": "text/event-json"}, body))

        assert event is None or event["a"] == ""

    @pytest.mark.parametrize("depth", [5000, 200_000])
    def test_deep_nesting_is_none_not_a_crash(self, depth: int) -> None:
        """Nesting deeper than Python's stack is unreadable, for an event and for channels."""
        value = b"[" * depth + b"]" * depth
        body = b'{"Event-Name": "X", "a": ' + value + b"}"
        frame = b"Content-Length: %d\nContent-Type: text/event-json\n\n%b" % (len(body), body)

        assert decode_event(EslFrame({"Content-Type": "text/event-json"}, body)) is None
        events, problems = decode_stream(frame + HEARTBEAT)
        assert [e["Event-Name"] for e in events] == ["HEARTBEAT"]
        assert [p.reason for p in problems] == ["event frame without a readable event"]
        rows = b'{"row_count": 1, "rows": [{"uuid": ' + value + b"}]}"
        assert parse_show_channels(rows) is None

    @pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"Unique-ID": "x"}', b"\xff\xfe"])
    def test_unreadable_json_is_none(self, body: bytes) -> None:
        """Bad JSON, a non-object or an object without Event-Name decodes to None."""
        assert decode_event(EslFrame({"Content-Type": "text/event-json"}, body)) is None

    def test_invalid_utf8_replaced(self) -> None:
        """Invalid UTF-8 in a JSON body is replaced, not fatal."""
        body = b'{"Event-Name": "CHANNEL_CREATE", "Caller-Caller-ID-Name": "Jos\xe9"}'

        event = decode_event(EslFrame({"Content-Type": "text/event-json"}, body))

        assert event is not None
        assert event["Caller-Caller-ID-Name"] == "Jos\ufffd"

    @pytest.mark.parametrize(
        "kind", ["command/reply", "api/response", "text/disconnect-notice", ""]
    )
    def test_non_event_frames_are_none(self, kind: str) -> None:
        """Frames that are not events decode to None."""
        assert decode_event(EslFrame({"Content-Type": kind}, b'{"Event-Name": "X"}')) is None


class TestPlainAndJsonAgree:
    @pytest.mark.parametrize(
        ("plain", "json_name"),
        [
            (PLAIN, JSON),
            (
                "02-noanswer-voicemail-message-left.esl",
                "15-noanswer-voicemail-message-left-json.esl",
            ),
        ],
    )
    def test_same_scenario_same_values(self, plain: str, json_name: str) -> None:
        """The same call recorded in plain and in JSON decodes to the same events and values."""
        stable = [
            "Event-Name",
            "Event-Subclass",
            "Call-Direction",
            "Answer-State",
            "Channel-Name",
            "Hangup-Cause",
            "Caller-Caller-ID-Number",
            "Caller-Caller-ID-Name",
            "Caller-Destination-Number",
            "Caller-Context",
            "variable_DP_MATCH",
            "variable_sip_to_user",
            "variable_originate_disposition",
            "VM-Action",
        ]

        def calls(name: str) -> list[EslMessage]:
            return [m for m in framed_events([capture(name)]) if m["Event-Name"] != "HEARTBEAT"]

        from_plain, from_json = calls(plain), calls(json_name)

        assert len(from_plain) == len(from_json) > 5
        for a, b in zip(from_plain, from_json, strict=True):
            assert set(a) == set(b)
            assert {k: a.get(k) for k in stable} == {k: b.get(k) for k in stable}
        callers = {
            m["Caller-Caller-ID-Number"] for m in from_plain if "Caller-Caller-ID-Number" in m
        }
        assert len(callers) == 1
        assert callers.pop().startswith("+1415555")

    def test_voicemail_left_is_seen_in_both(self) -> None:
        """vm::maintenance leave-message reaches us from plain and from JSON captures."""
        for name in (
            "02-noanswer-voicemail-message-left.esl",
            "15-noanswer-voicemail-message-left-json.esl",
        ):
            actions = [
                m.get("VM-Action")
                for m in framed_events([capture(name)])
                if m.get("Event-Subclass") == "vm::maintenance"
            ]
            assert "leave-message" in actions


class TestStream:
    def test_decode_stream_events_only(self) -> None:
        """decode_stream yields every event of a capture and none of its session frames."""
        events, problems = decode_stream(capture(PLAIN))

        assert problems == []
        assert len(events) == 44
        assert all("Event-Name" in e for e in events)

    def test_decode_stream_reports_unreadable_event(self) -> None:
        """An event frame without a readable event is a problem; the others still come."""
        bad = b"Content-Length: 6\nContent-Type: text/event-json\n\n{nope}"

        events, problems = decode_stream(HEARTBEAT + bad + HEARTBEAT)

        assert len(events) == 2
        assert [p.reason for p in problems] == ["event frame without a readable event"]

    def test_subscription_filter_keeps_what_we_need(self) -> None:
        """Every capture still holds the hangups and creates after our subscription filter."""
        for data in CAPTURE_DATA:
            names = {m["Event-Name"] for m in framed_events([data])}
            assert {"CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE"} <= names
            assert "CHANNEL_STATE" not in names
            assert all(is_subscribed(m) for m in framed_events([data]))


class TestCommands:
    @pytest.mark.parametrize("fmt", ["plain", "json"])
    def test_subscribe_command(self, fmt: str) -> None:
        """The event command names our events, then CUSTOM and our subclasses, then ends."""
        command = subscribe_command(fmt)  # type: ignore[arg-type]

        words = command.decode().split()
        assert command.endswith(b"\n\n")
        assert command.count(b"\n") == 2
        assert words[:2] == ["event", fmt]
        assert words[2:] == [*SUBSCRIBED_EVENTS, "CUSTOM", *SUBSCRIBED_CUSTOM]

    def test_auth_command(self) -> None:
        """auth sends the password once, ended by an empty line; a line break is refused."""
        assert auth_command("s3cret") == b"auth s3cret\n\n"
        with pytest.raises(ValueError, match="line break") as caught:
            auth_command("s3cret\nevent plain ALL")
        assert "s3cret" not in str(caught.value)

    def test_show_channels_command(self) -> None:
        """The resync asks for show channels as JSON."""
        assert API_SHOW_CHANNELS == b"api show channels as json\n\n"

    def test_banner_tells_esl_from_ami(self) -> None:
        """Every ESL capture starts with auth/request; an AMI capture does not."""
        assert all(pbx_banner_is_esl(data) for data in CAPTURE_DATA)
        assert not pbx_banner_is_esl(ami_capture("01-abandoned-ringing.ami"))
        assert not pbx_banner_is_esl(b"")


class TestShowChannels:
    def test_rows_as_strings(self) -> None:
        """Rows come back as string mappings; non-object rows are skipped."""
        body = json.dumps(
            {
                "row_count": 2,
                "rows": [
                    {"uuid": "a", "direction": "inbound", "created_epoch": 1795811325},
                    "junk",
                    {"uuid": "b", "call_uuid": None},
                ],
            }
        ).encode()

        assert parse_show_channels(body) == [
            {"uuid": "a", "direction": "inbound", "created_epoch": "1795811325"},
            {"uuid": "b", "call_uuid": ""},
        ]

    def test_no_rows(self) -> None:
        """row_count 0 without rows is an empty list."""
        assert parse_show_channels(b'{"row_count":0}') == []

    @pytest.mark.parametrize(
        "body",
        [b"-ERR show Command not found!\n", b"[]", b'{"rows": []}', b'{"row_count":1,"rows":{}}'],
    )
    def test_unreadable_is_none(self, body: bytes) -> None:
        """An error text or JSON of another shape is None, not an empty list."""
        assert parse_show_channels(body) is None
