"""Who gets a text: pure decisions over plain facts. No IO, no clock (``now`` is passed in).

Interface stub: the data types are fixed here; ``decide`` and ``cap_reached``
are filled in with the rules of the delivery issue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
