"""The sans-IO AMI framer: any chunking, odd bytes and repeated keys."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import CAPTURES
from textback.core.asterisk import AmiCorrelator, CorrelatorSettings, is_noise
from textback.core.trunks import TrunkMap
from textback.pbx.ami_proto import (
    MAX_FRAME_BYTES,
    AmiFramer,
    AmiMessage,
    FrameProblem,
    SkippedFrames,
    epoch_of_uniqueid,
)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
PJSIP_CAPTURE = (CAPTURES / "pjsip-11-anonymous.ami").read_bytes()


def frame_in_pieces(data: bytes, cuts: list[int]) -> tuple[list[AmiMessage], list[FrameProblem]]:
    framer = AmiFramer()
    messages: list[AmiMessage] = []
    problems: list[FrameProblem] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        got, bad = framer.receive_data(data[start:cut])
        messages += got
        problems += bad
        start = cut
    return messages, problems


class TestFraming:
    def test_banner_is_read_and_not_a_message(self) -> None:
        """The banner line is kept aside; messages start after it."""
        framer = AmiFramer()
        messages, problems = framer.receive_data(
            BANNER + b"Event: FullyBooted\r\nUptime: 4\r\n\r\n"
        )
        assert framer.banner == "Asterisk Call Manager/11.0.0"
        assert messages == [{"Event": "FullyBooted", "Uptime": "4"}]
        assert problems == []

    def test_byte_at_a_time_equals_whole(self) -> None:
        """Feeding a real capture one byte at a time gives the same messages."""
        whole, _ = AmiFramer().receive_data(PJSIP_CAPTURE)
        pieces, problems = frame_in_pieces(PJSIP_CAPTURE, list(range(1, len(PJSIP_CAPTURE))))
        assert whole == pieces
        assert problems == []
        assert len(whole) > 20

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.integers(min_value=1, max_value=len(PJSIP_CAPTURE) - 1), max_size=60))
    def test_any_chunking_equals_whole(self, cuts: list[int]) -> None:
        """Random chunk boundaries never change what is framed."""
        whole, _ = AmiFramer().receive_data(PJSIP_CAPTURE)
        assert whole == frame_in_pieces(PJSIP_CAPTURE, cuts)[0]

    def test_split_utf8_name_survives(self) -> None:
        """A multi-byte character cut between two reads is decoded whole."""
        data = BANNER + "Event: Newchannel\r\nCallerIDName: José Müller\r\n\r\n".encode()
        cut = data.index("é".encode()) + 1
        messages, problems = frame_in_pieces(data, [cut])
        assert messages[0]["CallerIDName"] == "José Müller"
        assert problems == []

    def test_repeated_chanvariables_are_all_kept(self) -> None:
        """channelvars lines (same key, several times) are kept one key per variable."""
        data = (
            b"Event: DialBegin\r\nChanVariable: CALLERID(pres)=prohib_not_screened\r\n"
            b"ChanVariable: FROM_DID=\r\nDestChanVariable: FROM_DID=+12125550100\r\n\r\n"
        )
        (message,), _ = AmiFramer().receive_data(data)
        assert message["ChanVariable[CALLERID(pres)]"] == "prohib_not_screened"
        assert message["ChanVariable[FROM_DID]"] == ""
        assert message["DestChanVariable[FROM_DID]"] == "+12125550100"

    def test_values_keep_inner_spaces_and_empty_values(self) -> None:
        """`Key: ` is an empty value; leading spaces beyond the first are data."""
        (message,), _ = AmiFramer().receive_data(
            b"Event: VarSet\r\nValue:   x=1\r\nExten: \r\n\r\n"
        )
        assert (message["Value"], message["Exten"]) == ("  x=1", "")

    def test_bare_lf_framing_is_accepted(self) -> None:
        """Tools that rewrite CRLF to LF still frame."""
        messages, _ = AmiFramer().receive_data(b"Event: A\nX: 1\n\nEvent: B\n\n")
        assert [m["Event"] for m in messages] == ["A", "B"]

    def test_mixed_terminators_frame_alike_in_any_chunking(self) -> None:
        """CRLF, bare LF and half-and-half blank lines each end a frame, even split mid-way."""
        data = b"Event: A\r\n\nEvent: B\n\r\nEvent: C\r\n\r\nEvent: D\n\nEvent: E\r\n\r\n"
        whole, _ = AmiFramer().receive_data(data)
        pieces, _ = frame_in_pieces(data, list(range(1, len(data))))
        assert [m["Event"] for m in whole] == ["A", "B", "C", "D", "E"]
        assert pieces == whole

    def test_known_keys_keep_the_first_value_and_strict_checks(self) -> None:
        """Keys seen before still keep their first value and still reject padded variants."""
        framer = AmiFramer()
        framer.receive_data(b"Event: A\r\nChannel: x\r\nChanVariable: V=1\r\n\r\n")
        data = (
            b"Event: B\r\nChannel: first\r\nChannel: second\r\n Channel: padded\r\n"
            b"ChanVariable: V=2\r\nChanVariable: novalue\r\nChanVariable: also\r\n\r\n"
        )
        (message,), problems = framer.receive_data(data)
        assert dict(message) == {
            "Event": "B",
            "Channel": "first",
            "ChanVariable[V]": "2",
            "ChanVariable": "novalue",
        }
        assert [p.excerpt for p in problems] == [" Channel: padded"]

    def test_invalid_utf8_is_replaced_and_reported_event_kept(self) -> None:
        """Latin-1 in a caller name: the event survives with U+FFFD, and a problem is reported."""
        data = b"Event: Newchannel\r\nCallerIDName: Jos\xe9\r\nUniqueid: 1.1\r\n\r\n"
        messages, problems = AmiFramer().receive_data(data)
        assert messages[0]["CallerIDName"] == "Jos\ufffd"
        assert [p.reason for p in problems] == ["invalid UTF-8 replaced"]

    def test_malformed_frame_is_skipped_and_the_next_one_kept(self) -> None:
        """A frame with no Event/Response is dropped with a problem; framing goes on."""
        data = b"garbage without colon\r\nmore\r\n\r\nEvent: Hangup\r\nUniqueid: 1.2\r\n\r\n"
        messages, problems = AmiFramer().receive_data(data)
        assert messages == [{"Event": "Hangup", "Uniqueid": "1.2"}]
        reasons = {p.reason for p in problems}
        assert {"line without 'Key: value'", "frame with neither Event nor Response"} == reasons

    def test_endless_frame_is_discarded(self) -> None:
        """Bytes that never form a frame are dropped once too large; later frames work."""
        framer = AmiFramer()
        _, problems = framer.receive_data(b"X: " + b"y" * (MAX_FRAME_BYTES + 1))
        assert [p.reason for p in problems] == ["frame too large, discarded"]
        messages, _ = framer.receive_data(b"\r\n\r\nEvent: Ok\r\n\r\n")
        assert [m["Event"] for m in messages] == ["Ok"]


def test_uniqueid_epoch() -> None:
    """Uniqueids carry the channel's creation second, with or without a system name."""
    assert epoch_of_uniqueid("1795810850.2") == 1795810850.0
    assert epoch_of_uniqueid("pbx1-1795810850.2") == 1795810850.0
    assert None is epoch_of_uniqueid("")


class TestSkip:
    """A framer with a ``skip`` test hands flagged frames over unparsed, a run as one count."""

    VARSET = (
        b"Event: VarSet\r\nPrivilege: dialplan,all\r\nUniqueid: 1.1\r\n"
        b"Variable: X\r\nValue: 1\r\n\r\n"
    )
    VMSTATUS = VARSET.replace(b"Variable: X", b"Variable: VMSTATUS")

    def test_flagged_frames_keep_their_place(self) -> None:
        seen: list[bytes] = []

        def skip(raw: bytes | bytearray) -> bool:
            seen.append(bytes(raw))
            return bool(is_noise(raw))

        hangup = b"Event: Hangup\r\nUniqueid: 1.1\r\nCause: 16\r\n\r\n"
        data = self.VARSET * 3 + hangup + self.VMSTATUS + self.VARSET
        messages, problems = AmiFramer(skip).receive_data(data)
        assert problems == []
        assert len(messages) == 4
        assert isinstance(messages[0], SkippedFrames)
        assert messages[0].count == 3
        assert dict(messages[0]) == {}
        assert messages[1]["Event"] == "Hangup"
        assert messages[2]["Variable"] == "VMSTATUS"
        assert isinstance(messages[3], SkippedFrames)
        assert messages[3].count == 1
        assert len(seen) == 6
        assert seen[0].startswith(b"Event: VarSet")

    def test_split_reads_still_skip(self) -> None:
        framer = AmiFramer(is_noise)
        data = self.VARSET * 2
        out = [m for i in range(len(data)) for m in framer.receive_data(data[i : i + 1])[0]]
        assert [m.count for m in out if isinstance(m, SkippedFrames)] == [1, 1]
        assert len(out) == 2


class TestIsNoise:
    def test_varset_of_a_variable_we_never_read(self) -> None:
        assert is_noise(b"Event: VarSet\r\nUniqueid: 1.1\r\nVariable: DIALSTATUS\r\nValue: BUSY")

    def test_varsets_we_read_are_kept(self) -> None:
        for name in (b"VMSTATUS", b"FROM_DID", b"_FROM_DID", b"__FROM_DID"):
            assert not is_noise(b"Event: VarSet\r\nUniqueid: 1.1\r\nVariable: " + name + b"\r\n")

    def test_bare_lf_frames(self) -> None:
        assert is_noise(b"Event: Cdr\nUniqueID: 1.1\nDisposition: ANSWERED")
        assert not is_noise(b"Event: VarSet\nVariable: VMSTATUS\nValue: SUCCESS")

    def test_events_that_can_matter_are_kept(self) -> None:
        for name in (
            b"Newchannel",
            b"Hangup",
            b"Newexten",
            b"BridgeEnter",
            b"Shutdown",
            b"VarSetX",
        ):
            assert not is_noise(b"Event: " + name + b"\r\nUniqueid: 1.1\r\n")

    def test_unsure_frames_are_kept(self) -> None:
        assert not is_noise(b"Response: Success\r\nActionID: 1\r\n")
        assert not is_noise(b"Privilege: call,all\r\nEvent: Cdr\r\n")  # not a plain event head
        assert not is_noise(b"Event: VarSet\r\nUniqueid: 1.1\r\n")  # no Variable line
        assert not is_noise(b"Event: Cdr")  # no end of line: unsure what the name is
        assert not is_noise(b"Event: Cdr\r\nActionID: 7\r\n")  # answers one of our actions


class TestNeedless:
    """The daemon's filter: noise, and dialplan steps that cannot matter to the settings."""

    @staticmethod
    def step(app: bytes, context: bytes, extra: bytes = b"") -> bytes:
        return (
            b"Event: Newexten\r\nPrivilege: dialplan,all\r\nUniqueid: 1.1\r\nContext: "
            + context
            + b"\r\nApplication: "
            + app
            + b"\r\n"
            + extra
        )

    def test_steps_that_cannot_matter_are_skipped(self) -> None:
        needless = AmiCorrelator(CorrelatorSettings(trunks=TrunkMap(()))).needless
        assert needless(self.step(b"Answer", b"from-trunk"))
        assert needless(b"Event: VarSet\r\nVariable: DIALSTATUS\r\nValue: BUSY\r\n")

    def test_voicemail_and_named_contexts_are_kept(self) -> None:
        settings = CorrelatorSettings(trunks=TrunkMap(()), closed_contexts=("app-closed*",))
        needless = AmiCorrelator(settings).needless
        assert not needless(self.step(b"VoiceMail", b"from-trunk"))
        assert not needless(self.step(b"Playback", b"sub-vm"))  # a default voicemail context
        assert not needless(self.step(b"Playback", b"app-closed-1"))
        assert not needless(self.step(b"Answer", b"from-trunk", b"ActionID: 9\r\n"))
        assert not needless(b"Event: Newexten\r\nUniqueid: 1.1\r\nContext: x\r\n")  # no app
        assert not needless(b"Event: Hangup\r\nUniqueid: 1.1\r\n")
