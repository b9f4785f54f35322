"""Every real capture, replayed through framing + correlation, gives its sidecar's verdict."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.conftest import CAPTURES, REPO, Expected, all_captures, expected_of
from textback.callview import verdict_record
from textback.config import Config
from textback.core.asterisk import AmiCorrelator, AmiMessage
from textback.core.verdict import CallVerdict, Verdict
from textback.pbx.ami_proto import AmiFramer
from textback.replay import correlate, replay_bytes

# Where the team's shared ground truth lives beside a checkout, when it does.
SHARED = REPO.parent / "shared" / "captures" / "asterisk"
# Event classes a site that grants only `read = system,call,agent` does not get.
RESTRICTED_CLASSES = {"dialplan", "cdr", "security"}


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
        result = replay_bytes(capture.read_bytes(), example_config.correlator_settings())
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
        result = replay_bytes(capture.read_bytes(), example_config.correlator_settings())
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


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared captures beside this checkout")
def test_repo_copy_matches_shared_ground_truth() -> None:
    """Every file of the shared Asterisk captures is in the repo, byte for byte."""
    missing = []
    for source in sorted(SHARED.iterdir()):
        if not source.is_file():
            continue
        copy = CAPTURES / source.name
        if not copy.exists() or _digest(copy) != _digest(source):
            missing.append(source.name)
    assert missing == [], "copy these from the shared captures, unedited: " + ", ".join(missing)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
