"""Policy: who gets a text for a missed call, and the global volume caps."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from textback.core.policy import (
    Decision,
    History,
    NumberFacts,
    PolicySettings,
    cap_reached,
    decide,
)
from textback.core.verdict import CallVerdict, Reason, Verdict

ENDED = 1_700_000_000.0
MOBILE = NumberFacts(e164="+14155550101", region="US", kind="MOBILE")
DEFAULTS = PolicySettings()


def missed(**overrides: object) -> CallVerdict:
    fields: dict[str, object] = {
        "call_id": "1700000000.1",
        "pbx": "pbx1",
        "trunk": "carrier-a",
        "verdict": Verdict.MISSED,
        "reason": Reason.NO_ANSWER,
        "caller_raw": "4155550101",
        "caller_name": "",
        "anonymous": False,
        "did": "+14155550199",
        "started_at": ENDED - 30,
        "ended_at": ENDED,
        "ring_seconds": 25.0,
    }
    fields.update(overrides)
    return CallVerdict(**fields)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Case:
    """One way to break one rule: changes to the verdict, number, history and settings."""

    reason: str
    verdict: dict[str, object] = dataclasses.field(default_factory=dict)
    number: dict[str, object] = dataclasses.field(default_factory=dict)
    history: dict[str, object] = dataclasses.field(default_factory=dict)
    settings: dict[str, object] = dataclasses.field(default_factory=dict)


# In the order decide() checks them. Each case breaks only its own rule, so
# applying several at once shows which rule wins.
CASES = (
    Case("anonymous", verdict={"anonymous": True}),
    Case("invalid_number", number={"e164": None, "region": None, "kind": "INVALID"}),
    Case("internal", settings={"internal": ("+1415555*",)}),
    Case("denied", settings={"deny": ("+14155550101",)}),
    Case("not_allowed", settings={"allow": ("+1212*",)}),
    Case("region", number={"region": "JM"}),
    Case("number_type", number={"kind": "TOLL_FREE"}),
    Case("reason_off", settings={"reasons": {"no_answer": "no"}}),
    Case("short_ring", settings={"min_ring_seconds": 30.0}),
    Case("opted_out", history={"opted_out": True}),
    Case("not_sms_capable", history={"not_sms_capable": True}),
    Case("cooldown", history={"last_text_at": ENDED - 60}),
)


def judge(*cases: Case) -> Decision:
    verdict: dict[str, object] = {}
    number: dict[str, object] = {}
    history: dict[str, object] = {}
    settings: dict[str, object] = {}
    for case in cases:
        verdict |= case.verdict
        number |= case.number
        history |= case.history
        settings |= case.settings
    return decide(
        missed(**verdict),
        dataclasses.replace(MOBILE, **number),  # type: ignore[arg-type]
        History(**history),  # type: ignore[arg-type]
        PolicySettings(**settings),  # type: ignore[arg-type]
    )


class TestDecide:
    def test_ordinary_missed_call_is_texted(self) -> None:
        """A valid US mobile caller with no history gets a text with the default template."""
        assert Decision(send=True, reason="ok", template=None) == judge()

    @pytest.mark.parametrize("case", CASES, ids=[c.reason for c in CASES])
    def test_each_rule_refuses_on_its_own(self, case: Case) -> None:
        """Breaking one rule suppresses the text with that rule's reason."""
        assert Decision(send=False, reason=f"suppressed: {case.reason}") == judge(case)

    @pytest.mark.parametrize("first", range(len(CASES)), ids=[c.reason for c in CASES])
    def test_first_failing_rule_wins(self, first: int) -> None:
        """With this rule and every later one broken, the reason names this rule."""
        assert f"suppressed: {CASES[first].reason}" == judge(*CASES[first:]).reason

    def test_only_missed_calls_are_judged(self) -> None:
        """Asking about an answered call is a programming error, not a suppression."""
        with pytest.raises(ValueError, match="missed calls only"):
            decide(missed(verdict=Verdict.ANSWERED), MOBILE, History(), DEFAULTS)

    @pytest.mark.parametrize(
        ("region", "kind", "expected"),
        [
            ("CA", "FIXED_LINE_OR_MOBILE", "ok"),
            ("US", "FIXED_LINE", "ok"),
            ("DO", "MOBILE", "suppressed: region"),
            (None, "MOBILE", "suppressed: region"),
            ("US", "PREMIUM_RATE", "suppressed: number_type"),
            ("US", "SHARED_COST", "suppressed: number_type"),
            ("US", "UAN", "suppressed: number_type"),
            ("US", "VOICEMAIL", "suppressed: number_type"),
            ("US", "PAGER", "suppressed: number_type"),
            ("US", "UNKNOWN", "suppressed: number_type"),
        ],
    )
    def test_default_regions_and_types(self, region: str | None, kind: str, expected: str) -> None:
        """By default only US and CA numbers of textable types are texted, not all of +1."""
        number = NumberFacts(e164="+18095550101", region=region, kind=kind)
        assert expected == decide(missed(), number, History(), DEFAULTS).reason

    @pytest.mark.parametrize(
        ("globs", "matches"),
        [
            (("+1415555*",), True),
            (("+1415555010?",), True),
            (("+14155550101",), True),
            (("+1212*", "+14155550101"), True),
            (("+1415555",), False),
            (("14155550101",), False),
            (("+1212*",), False),
        ],
    )
    def test_globs_match_the_whole_e164_string(self, globs: tuple[str, ...], matches: bool) -> None:
        """Deny and allow lists are shell globs over the full E.164 number."""
        denied = decide(missed(), MOBILE, History(), PolicySettings(deny=globs))
        allowed = decide(missed(), MOBILE, History(), PolicySettings(allow=globs))
        assert (not matches, matches) == (denied.send, allowed.send)

    @pytest.mark.parametrize(
        ("reasons", "expected"),
        [
            ({}, Decision(send=True, reason="ok")),
            ({"no_answer": "yes"}, Decision(send=True, reason="ok")),
            ({"voicemail": "no"}, Decision(send=True, reason="ok")),
            ({"no_answer": "no"}, Decision(send=False, reason="suppressed: reason_off")),
            ({"no_answer": "busy_text"}, Decision(send=True, reason="ok", template="busy_text")),
        ],
    )
    def test_per_reason_switch(self, reasons: dict[str, str], expected: Decision) -> None:
        """A reason's switch turns texting off, leaves it on, or names the template to use."""
        settings = PolicySettings(reasons=reasons)
        assert expected == decide(missed(), MOBILE, History(), settings)

    @pytest.mark.parametrize(
        ("ring", "minimum", "send"),
        [(0.0, 0.0, True), (2.9, 3.0, False), (3.0, 3.0, True), (10.0, 3.0, True)],
    )
    def test_min_ring(self, ring: float, minimum: float, send: bool) -> None:
        """Calls that rang for less than min_ring_seconds are robocall blips, not texted."""
        settings = PolicySettings(min_ring_seconds=minimum)
        assert send == decide(missed(ring_seconds=ring), MOBILE, History(), settings).send

    @pytest.mark.parametrize(
        ("last_text_at", "cooldown", "send"),
        [
            (None, 86400.0, True),
            (ENDED - 86400, 86400.0, True),
            (ENDED - 86399, 86400.0, False),
            (ENDED - 1, 86400.0, False),
            (ENDED + 5, 86400.0, False),
            (ENDED - 1, 0.0, True),
            (ENDED + 5, 0.0, True),
        ],
    )
    def test_cooldown_counts_from_the_last_text(
        self, last_text_at: float | None, cooldown: float, send: bool
    ) -> None:
        """A caller texted less than cooldown_seconds before the call ended is not texted again."""
        history = History(last_text_at=last_text_at)
        settings = PolicySettings(cooldown_seconds=cooldown)
        assert send == decide(missed(), MOBILE, history, settings).send

    @given(
        anonymous=st.booleans(),
        e164=st.sampled_from([None, "+14155550101", "+18765550101"]),
        region=st.sampled_from([None, "US", "CA", "JM"]),
        kind=st.sampled_from(["MOBILE", "TOLL_FREE", "UNKNOWN"]),
        reason=st.sampled_from(list(Reason)),
        switch=st.sampled_from(["yes", "no", "custom"]),
        ring=st.floats(0, 60),
        opted_out=st.booleans(),
        last=st.one_of(st.none(), st.floats(ENDED - 200_000, ENDED + 100)),
    )
    def test_send_exactly_when_ok(
        self,
        anonymous: bool,
        e164: str | None,
        region: str | None,
        kind: str,
        reason: Reason,
        switch: str,
        ring: float,
        opted_out: bool,
        last: float | None,
    ) -> None:
        """Every decision is either "ok" and sends, or a known suppression that does not."""
        known = {f"suppressed: {c.reason}" for c in CASES}
        decision = decide(
            missed(anonymous=anonymous, reason=reason, ring_seconds=ring),
            NumberFacts(e164=e164, region=region, kind=kind),
            History(opted_out=opted_out, last_text_at=last),
            PolicySettings(reasons={str(reason): switch}, min_ring_seconds=5.0),
        )
        assert decision.send == (decision.reason == "ok")
        assert decision.send or decision.reason in known
        assert (decision.template is not None) == (decision.send and switch == "custom")


class TestCapReached:
    @pytest.mark.parametrize(
        ("hour", "day", "expected"),
        [
            (0, 0, None),
            (29, 199, None),
            (30, 30, "max_per_hour"),
            (31, 250, "max_per_hour"),
            (5, 200, "max_per_day"),
        ],
    )
    def test_default_caps(self, hour: int, day: int, expected: str | None) -> None:
        """Sending stops at 30 an hour or 200 a day; the hourly cap is named first."""
        history = History(sent_last_hour=hour, sent_last_day=day)
        assert expected == cap_reached(history, DEFAULTS)

    def test_zero_cap_sends_nothing(self) -> None:
        """A cap of 0 means no texts at all, never "unlimited"."""
        assert cap_reached(History(), PolicySettings(max_per_day=0)) == "max_per_day"
