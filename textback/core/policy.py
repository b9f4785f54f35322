"""Who gets a text: pure decisions over plain facts. No IO, no clock (times are passed in).

The shell gathers the facts (phonenumbers for :class:`NumberFacts`, the store
for :class:`History`); ``decide`` judges one missed call and ``cap_reached``
guards the global volume before each send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from textback.core.verdict import CallVerdict, Verdict

REFUSED_TYPES_DEFAULT = frozenset(
    {"PREMIUM_RATE", "SHARED_COST", "TOLL_FREE", "UAN", "VOICEMAIL", "PAGER", "UNKNOWN"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberFacts:
    """What phonenumbers says about the caller's number (computed by the shell)."""

    e164: str | None  # None: not a valid number
    region: str | None  # "US", "CA", "JM", ...
    kind: str  # phonenumbers.PhoneNumberType name: "MOBILE", "FIXED_LINE_OR_MOBILE", ...; "INVALID"


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """What the outbox and opt-out tables say about this number, and overall volume."""

    opted_out: bool = False
    not_sms_capable: bool = False
    last_text_at: float | None = None  # newest pending/sending/sent text to this number
    sent_last_hour: int = 0  # texts sent or on the wire, all numbers
    sent_last_day: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySettings:
    allowed_regions: frozenset[str] = frozenset({"US", "CA"})
    refused_types: frozenset[str] = REFUSED_TYPES_DEFAULT
    cooldown_seconds: float = 24 * 3600.0
    max_per_hour: int = 30
    max_per_day: int = 200
    allow: tuple[str, ...] = ()  # E.164 globs; when set, only these are texted
    deny: tuple[str, ...] = ()  # E.164 globs never texted
    internal: tuple[str, ...] = ()  # staff mobiles, our own DIDs (E.164 globs): never texted
    min_ring_seconds: float = 0.0
    # Missed-call reason -> "yes" | "no" | the name of a template to use instead.
    reasons: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    send: bool
    # "ok" or "suppressed: <why>" (anonymous, invalid_number, internal, denied, not_allowed,
    # region, number_type, reason_off, short_ring, opted_out, not_sms_capable, cooldown).
    reason: str
    template: str | None = None  # a template named by a per-reason switch


def decide(
    verdict: CallVerdict, number: NumberFacts, history: History, settings: PolicySettings
) -> Decision:
    """Whether a missed call gets a text: the first rule that says no, in a fixed order.

    Cheap, certain facts about the caller come first, then the site's own
    switches, then what the outbox remembers; the reason names the first rule
    that refused. A per-reason switch naming a template travels in
    ``Decision.template``.

    Raises:
        ValueError: the verdict is not MISSED (only missed calls are judged here).
    """
    if verdict.verdict is not Verdict.MISSED:
        raise ValueError(f"decide() judges missed calls only, got {verdict.verdict}")
    switch = settings.reasons.get(str(verdict.reason), "yes")
    refusal = _refusal(verdict, number, history, settings, switch)
    if refusal is not None:
        return Decision(send=False, reason=f"suppressed: {refusal}")
    return Decision(send=True, reason="ok", template=None if switch == "yes" else switch)


def cap_reached(history: History, settings: PolicySettings) -> str | None:
    """The global cap that stops sending now ("max_per_hour", "max_per_day"), or None.

    A cap of 0 sends nothing: the caps guard against SMS-pumping fraud, so a
    limit is never read as "unlimited".
    """
    if history.sent_last_hour >= settings.max_per_hour:
        return "max_per_hour"
    if history.sent_last_day >= settings.max_per_day:
        return "max_per_day"
    return None


def cap_room(history: History, settings: PolicySettings) -> int:
    """How many more texts the global caps allow right now (0 when one is reached)."""
    return max(
        0,
        min(
            settings.max_per_hour - history.sent_last_hour,
            settings.max_per_day - history.sent_last_day,
        ),
    )


def _refusal(
    verdict: CallVerdict,
    number: NumberFacts,
    history: History,
    settings: PolicySettings,
    switch: str,
) -> str | None:
    e164 = number.e164
    if verdict.anonymous:
        return "anonymous"
    # Extensions ("101") are matched against the caller ID as the PBX had it.
    if _matches(verdict.caller_raw, settings.internal):
        return "internal"
    if e164 is None:
        return "invalid_number"
    if _matches(e164, settings.internal):
        return "internal"
    if _matches(e164, settings.deny):
        return "denied"
    if settings.allow and not _matches(e164, settings.allow):
        return "not_allowed"
    if number.region not in settings.allowed_regions:
        return "region"
    if number.kind in settings.refused_types:
        return "number_type"
    if switch == "no":
        return "reason_off"
    if verdict.ring_seconds < settings.min_ring_seconds:
        return "short_ring"
    if history.opted_out:
        return "opted_out"
    if history.not_sms_capable:
        return "not_sms_capable"
    if _cooling_down(verdict.ended_at, history.last_text_at, settings.cooldown_seconds):
        return "cooldown"
    return None


def _matches(e164: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatchcase(e164, glob) for glob in globs)


def _cooling_down(ended_at: float, last_text_at: float | None, cooldown: float) -> bool:
    # A text stamped after this call ended (a later call handled first, a
    # replay) is inside the cooldown too; a cooldown of 0 turns the rule off.
    return last_text_at is not None and cooldown > 0 and ended_at - last_text_at < cooldown
