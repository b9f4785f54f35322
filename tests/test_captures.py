"""Every real capture, replayed through framing + correlation, gives its sidecar's verdict."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.conftest import (
    CAPTURES,
    FS_CAPTURES,
    REPO,
    Expected,
    all_captures,
    expected_of,
    fs_captures,
)
from textback.callview import verdict_record
from textback.config import Config
from textback.core.asterisk import AmiCorrelator, AmiMessage, is_noise
from textback.core.freeswitch import FsCorrelator
from textback.core.verdict import CallVerdict, Verdict
from textback.pbx.ami_proto import AmiFramer, SkippedFrames
from textback.pbx.esl_proto import SUBSCRIBED_CUSTOM, SUBSCRIBED_EVENTS, EslFramer, decode_event
from textback.replay import ReplayResult, correlate, replay_bytes

# Where the team's shared ground truth lives beside a checkout, when it does.
SHARED = REPO.parent / "shared" / "captures"
# Event classes a site that grants only `read = system,call,agent` does not get.
RESTRICTED_CLASSES = {"dialplan", "cdr", "security"}


def replay(capture: Path, config: Config) -> ReplayResult:
    return replay_bytes(
        capture.read_bytes(), config.correlator_settings(), config.freeswitch_settings()
    )


def judged(verdicts: Iterable[CallVerdict]) -> list[tuple[str, str]]:
    return [(v.verdict.value, v.reason.value) for v in verdicts if v.verdict is not Verdict.IGNORED]


def check(expected: Expected, verdicts: list[CallVerdict]) -> None:
    assert expected.calls == judged(verdicts)
    if expected.ignored is not None:
        assert [expected.ignored] == [v.reason.value for v in verdicts]


def restricted(messages: Iterable[AmiMessage]) -> list[AmiMessage]:
    return [m for m in messages if m.get("Privilege", "").split(",")[0] not in RESTRICTED_CLASSES]


@pytest.mark.parametrize("capture", all_captures(), ids=lambda p: p.stem)
class TestCaptureVerdicts:
    def test_full_stream(self, capture: Path, example_config: Config) -> None:
        """The whole capture, as recorded with read = all, gives the sidecar's verdicts."""
        result = replay(capture, example_config)
        assert result.problems == []
        check(expected_of(capture), result.verdicts)

    def test_without_dialplan_cdr_security_events(
        self, capture: Path, example_config: Config
    ) -> None:
        """A site granting only system,call,agent still gets the same verdicts."""
        messages, _ = AmiFramer().receive_data(capture.read_bytes())
        correlator = AmiCorrelator(example_config.correlator_settings())
        verdicts, _ = correlate(restricted(messages), correlator)
        check(expected_of(capture), verdicts)

    def test_caller_is_reported_as_in_sidecar(self, capture: Path, example_config: Config) -> None:
        """The first inbound call's caller prints as the sidecar names it (E.164 or anonymous)."""
        expected = expected_of(capture)
        result = replay(capture, example_config)
        records = [
            verdict_record(v, example_config.trunks)
            for v in result.verdicts
            if v.verdict is not Verdict.IGNORED
        ]
        if not expected.calls:
            assert records == []
            return
        # Burst sidecars give a range ("+14155550150..+14155550179"): its first number.
        assert expected.caller.split("..")[0] == records[0]["caller"]


def test_captures_are_present() -> None:
    """The repo carries the Asterisk ground truth (chan_sip, chan_pjsip and trap sets)."""
    stems = {p.stem for p in all_captures()}
    assert {
        "01-abandoned-ringing",
        "pjsip-01-abandoned-ringing",
        "pjsip-T01-ringgroup-local-answered",
    } <= stems
    for capture in all_captures():
        assert capture.with_suffix(".json").exists()


@pytest.mark.parametrize(("pbx", "copy"), [("asterisk", CAPTURES), ("freeswitch", FS_CAPTURES)])
def test_repo_copy_matches_shared_ground_truth(pbx: str, copy: Path) -> None:
    """Every file of the shared captures is in the repo, byte for byte."""
    source_dir = SHARED / pbx
    if not source_dir.is_dir():
        pytest.skip("no shared captures beside this checkout")
    missing = []
    for source in sorted(source_dir.iterdir()):
        if not source.is_file():
            continue
        mine = copy / source.name
        if not mine.exists() or _digest(mine) != _digest(source):
            missing.append(source.name)
    assert missing == [], "copy these from the shared captures, unedited: " + ", ".join(missing)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("capture", fs_captures(), ids=lambda p: p.stem)
class TestFreeswitchCaptureVerdicts:
    def test_full_stream(self, capture: Path, example_config: Config) -> None:
        """The whole ESL capture (event ... ALL) gives the sidecar's verdicts."""
        result = replay(capture, example_config)
        assert result.problems == []
        check(expected_of(capture), result.verdicts)

    def test_only_the_events_textback_subscribes_to(
        self, capture: Path, example_config: Config
    ) -> None:
        """What textback's own subscription delivers is enough for the same verdicts."""
        frames, _ = EslFramer().receive_data(capture.read_bytes())
        events = [
            e
            for e in map(decode_event, frames)
            if e is not None
            and (
                e.get("Event-Name") in SUBSCRIBED_EVENTS
                or e.get("Event-Subclass") in SUBSCRIBED_CUSTOM
            )
        ]
        verdicts, _ = correlate(events, FsCorrelator(example_config.freeswitch_settings()))
        check(expected_of(capture), verdicts)

    def test_caller_is_reported_as_in_sidecar(self, capture: Path, example_config: Config) -> None:
        """The first inbound call's caller prints as the sidecar names it (E.164 or anonymous)."""
        expected = expected_of(capture)
        records = [
            verdict_record(v, example_config.trunks)
            for v in replay(capture, example_config).verdicts
            if v.verdict is not Verdict.IGNORED
        ]
        if not expected.calls:
            assert records == []
            return
        assert records[0]["caller"] == expected.caller.split("..")[0]


def _needless(config: Config) -> Callable[[bytes | bytearray], bool]:
    return AmiCorrelator(config.correlator_settings()).needless


def _is_noise(config: Config) -> Callable[[bytes | bytearray], bool]:
    return is_noise


# The frame filters: the pure one, and the daemon's (which knows the configured contexts).
FILTERS = {"is_noise": _is_noise, "needless": _needless}


@pytest.mark.parametrize("name", sorted(FILTERS))
class TestNoiseFilter:
    """Frames the filters drop unparsed never change a verdict, its reason or its times."""

    @pytest.mark.parametrize("capture", all_captures(), ids=lambda p: p.stem)
    def test_same_verdicts_with_and_without(
        self, name: str, capture: Path, example_config: Config
    ) -> None:
        data = capture.read_bytes()
        settings = example_config.correlator_settings()
        everything, _ = AmiFramer().receive_data(data)
        filtered, _ = AmiFramer(FILTERS[name](example_config)).receive_data(data)
        # Skipped frames still take their place, a run of them as one count.
        assert sum(m.count if isinstance(m, SkippedFrames) else 1 for m in filtered) == len(
            everything
        )
        kept = [m for m in filtered if not isinstance(m, SkippedFrames)]
        full, _ = correlate(everything, AmiCorrelator(settings))
        lean, _ = correlate(kept, AmiCorrelator(settings))
        assert [verdict_record(v, example_config.trunks) for v in lean] == [
            verdict_record(v, example_config.trunks) for v in full
        ]

    def test_most_frames_are_skipped(self, name: str, example_config: Config) -> None:
        """The filter earns its place: on the captures, VarSet alone is a third of the frames."""
        total = skipped = 0
        for capture in all_captures():
            skip = FILTERS[name](example_config)
            messages, _ = AmiFramer(skip).receive_data(capture.read_bytes())
            runs = [m.count for m in messages if isinstance(m, SkippedFrames)]
            total += len(messages) - len(runs) + sum(runs)
            skipped += sum(runs)
        assert skipped > total / 3
