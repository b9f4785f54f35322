"""The delivery tables of the config file: [policy], [templates], [sending] and [gateway].

Shell layer, split from ``config.py`` to keep each module readable; ``config.load`` calls the
readers here. Like the rest of the config, every problem becomes one line naming its TOML key
and the fix. Advice that does not stop the daemon (a template two segments long, a sending
window that drops evening calls) goes into ``notices`` instead.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import phonenumbers

from textback.core.policy import PolicySettings
from textback.core.sms import measure
from textback.core.templates import (
    KINDS,
    PLAUSIBLE_CALLER_NAME,
    PLAUSIBLE_NUMBER,
    Chosen,
    Route,
    TemplateBook,
    lint,
    render,
)
from textback.core.verdict import Reason
from textback.core.window import SendingWindow
from textback.errors import ConfigError
from textback.gateways.base import Gateway
from textback.gateways.registry import load_gateway
from textback.tomltable import NOT_SET, Table, credential_name_shown, did_you_mean, quote, show


@dataclass(frozen=True, slots=True, kw_only=True)
class SendingConfig:
    grace_seconds: float = 0.0  # wait before sending, so a quick call-back can cancel the text
    window: SendingWindow | None = None  # recipient-local hours texts may go out; None: any time
    max_age_hours: float = 12.0  # a text not sent this long after the call is dropped
    max_attempts: int = 5
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    timezone: str = "UTC"  # the business zone, for numbers whose own zone is unknown

    @property
    def max_age_seconds(self) -> float:
        return self.max_age_hours * 3600.0


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not a usable IANA zone, or None."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        hint = did_you_mean(name, sorted(zoneinfo.available_timezones()))
        return f"{show(name)} is not a known time zone — " + (
            hint or 'use an IANA name such as "America/New_York" or "Europe/London"'
        )
    return None


def check_not_above(s: Table, low: str, low_value: float, high: str, high_value: float) -> None:
    """Record a problem under ``low`` when it is set above ``high`` (a minimum above its maximum).

    Skipped when either key is already bad: its value is then the default, not the user's.
    Floats are shown with ``:g`` (``2`` rather than ``2.0``), whole numbers as they are.
    """
    if not {low, high} & s.bad and low_value > high_value:
        shown, limit = (
            f"{v:g}" if isinstance(v, float) else str(v) for v in (low_value, high_value)
        )
        s.problem(low, f"{shown} is more than {high} ({limit}) — make {low} the smaller of the two")


# --- [policy] -------------------------------------------------------------------------------

_POLICY_KEYS: Final = (
    "allowed_regions",
    "refused_types",
    "cooldown_hours",
    "max_per_hour",
    "max_per_day",
    "allow",
    "deny",
    "internal",
    "min_ring_seconds",
    "reasons",
)
_NUMBER_TYPES: Final = tuple(
    name for name, value in vars(phonenumbers.PhoneNumberType).items() if isinstance(value, int)
)
# Number types whose texts are how SMS-pumping fraud gets paid.
_FRAUD_TYPES: Final = ("PREMIUM_RATE", "SHARED_COST")
# The reasons a missed call can have; the others (answered, internal, ...) are never texted.
MISSED_REASONS: Final = tuple(
    r.value
    for r in (
        Reason.ABANDONED,
        Reason.NO_ANSWER,
        Reason.BUSY,
        Reason.VOICEMAIL,
        Reason.IVR,
        Reason.QUEUE_ABANDONED,
        Reason.AFTER_HOURS,
        Reason.UNAVAILABLE,
        Reason.CONGESTION,
    )
)
_NEVER_TEXTED: Final = {
    Reason.ANSWERED.value: "answered calls are never texted — remove it",
    Reason.UNKNOWN.value: "calls textback could not judge are never texted — remove it",
    Reason.INTERNAL.value: "calls between phones of yours are never texted — remove it",
    Reason.OUTBOUND.value: "calls you placed are never texted — remove it",
}
_E164_GLOB = re.compile(r"\+[0-9*?]+")
_EXTENSION = re.compile(r"[0-9]{1,6}")


def read_policy(
    problems: list[str], notices: list[str], data: Mapping[str, object], templates: Collection[str]
) -> PolicySettings:
    """[policy]; ``templates`` are the template names [templates] defines."""
    s = Table(problems, "policy", data, _POLICY_KEYS)
    d = PolicySettings()
    regions = s.strings(
        "allowed_regions",
        tuple(sorted(d.allowed_regions)),
        example='["US", "CA"]',
        check=_region_problem,
    )
    if "allowed_regions" in data and not regions and "allowed_regions" not in s.bad:
        s.problem(
            "allowed_regions",
            "is empty, so no caller could ever be texted — "
            'list the countries your callers are in, e.g. ["US"]',
        )
    types = s.strings(
        "refused_types",
        tuple(sorted(d.refused_types)),
        example='["PREMIUM_RATE", "SHARED_COST", "TOLL_FREE"]',
        check=_type_problem,
    )
    refused = frozenset(t.upper() for t in types)
    kept = [t for t in _FRAUD_TYPES if t not in refused]
    if kept and "refused_types" not in s.bad:
        notices.append(
            f"{s.key('refused_types')}: leaves out {', '.join(kept)} — texts to such numbers are "
            "how SMS-pumping fraud is paid; keep them refused unless you know you need them"
        )
    cooldown = s.number(
        "cooldown_hours",
        d.cooldown_seconds / 3600,
        ok=lambda v: v >= 0,
        expected="a number of hours of 0 or more",
        fix="at most one text per caller in this many hours (default 24; 0 turns it off)",
    )
    per_hour = s.integer(
        "max_per_hour",
        d.max_per_hour,
        ok=lambda v: v > 0,
        expected="a whole number greater than 0",
        fix=f"texts per hour across all callers before sending stops (default {d.max_per_hour})",
    )
    per_day = s.integer(
        "max_per_day",
        d.max_per_day,
        ok=lambda v: v > 0,
        expected="a whole number greater than 0",
        fix=f"texts per day across all callers before sending stops (default {d.max_per_day})",
    )
    check_not_above(s, "max_per_hour", per_hour, "max_per_day", per_day)
    allow = s.strings("allow", d.allow, example='["+1555*"]', check=_e164_problem)
    deny = s.strings("deny", d.deny, example='["+1900*"]', check=_e164_problem)
    internal = s.strings(
        "internal", d.internal, example='["+15551234567", "101"]', check=_internal_problem
    )
    min_ring = s.number(
        "min_ring_seconds",
        d.min_ring_seconds,
        ok=lambda v: 0 <= v <= 300,
        expected="a number of seconds from 0 to 300",
        fix="calls that rang for less than this are not texted (default 0)",
    )
    return PolicySettings(
        allowed_regions=frozenset(r.upper() for r in regions),
        refused_types=refused,
        cooldown_seconds=cooldown * 3600,
        max_per_hour=per_hour,
        max_per_day=per_day,
        allow=allow,
        deny=deny,
        internal=internal,
        min_ring_seconds=min_ring,
        reasons=_reasons(s, templates),
    )


def _region_problem(region: str) -> str | None:
    if region.upper() in phonenumbers.SUPPORTED_REGIONS:
        return None
    hint = 'did you mean "GB"?' if region.upper() == "UK" else None
    return (
        f'expected a two-letter region code such as "US", "CA" or "GB", got {show(region)} — '
        + (hint or "list the countries your callers are in")
    )


def _type_problem(kind: str) -> str | None:
    if kind.upper() in _NUMBER_TYPES:
        return None
    hint = did_you_mean(kind.upper(), _NUMBER_TYPES)
    return f"{show(kind)} is not a phone number type — " + (
        hint or "use one of " + ", ".join(_NUMBER_TYPES)
    )


def _e164_problem(pattern: str) -> str | None:
    if _E164_GLOB.fullmatch(pattern):
        if sum(c.isdigit() for c in pattern) > 15:
            return f"{show(pattern)} has more than 15 digits — E.164 numbers never do"
        return None
    compact = re.sub(r"[\s().\-/]", "", pattern)
    if compact != pattern and _E164_GLOB.fullmatch(compact):
        return f'{show(pattern)} contains spaces or punctuation — write "{compact}"'
    if re.fullmatch(r"[0-9*?]+", compact):
        return (
            f"{show(pattern)} has no country code — write it in E.164 form: +, the country "
            'code, then the number, e.g. "+15551234567"'
        )
    return (
        f"{show(pattern)} is not an E.164 number or pattern — write +, then digits, with * for "
        'any digits and ? for one, e.g. "+15551234567" or "+1555*"'
    )


def _internal_problem(pattern: str) -> str | None:
    if _EXTENSION.fullmatch(pattern):
        return None  # an extension number, compared as the PBX shows it
    return _e164_problem(pattern)


def _reasons(policy: Table, templates: Collection[str]) -> dict[str, str]:
    data = policy.data.get("reasons", NOT_SET)
    if data is NOT_SET:
        return {}
    if not isinstance(data, dict):
        policy.problem(
            "reasons",
            f"expected a [policy.reasons] table, got {show(data)} — write a [policy.reasons] "
            'line followed by lines like voicemail = "no"',
        )
        return {}
    s = Table(
        policy.problems, policy.key("reasons"), data, (*MISSED_REASONS, "anonymous"), _NEVER_TEXTED
    )
    choices = ", ".join(['"yes"', '"no"', *(f'"{name}"' for name in sorted(templates))])
    reasons: dict[str, str] = {}
    for reason, value in data.items():
        if reason not in MISSED_REASONS and reason != "anonymous":
            continue  # reported by Table as an unknown key
        if isinstance(value, bool):
            value = "yes" if value else "no"
        if not isinstance(value, str) or not value.strip():
            s.problem(
                reason,
                f'expected "yes", "no" or a template name, got {show(value)} — '
                f"use one of {choices}",
            )
        elif reason == "anonymous":
            if value.lower() != "no":
                s.problem(
                    reason,
                    "callers who withhold their number have none to text, so this cannot be "
                    "switched on — remove the line",
                )
        elif value.lower() in ("yes", "no"):
            reasons[reason] = value.lower()
        elif value in templates:
            reasons[reason] = value
        else:
            hint = did_you_mean(value, sorted(templates))
            s.problem(
                reason,
                f"no template named {show(value)} in [templates] — "
                + (hint or f'define templates.{quote(value)} = "...", or use one of {choices}'),
            )
    return reasons


# --- [templates] ----------------------------------------------------------------------------

# What callers get when there is no [templates] table. A plain hyphen, not a dash: one character
# outside GSM-7 makes the whole text UCS-2, with 70 characters per segment instead of 160.
BUILTIN_DEFAULT: Final = (
    "Hi, this is {business} - sorry we missed your call! How can we help? Reply here. "
    "Reply STOP to opt out."
)
# With a booking link: a line break after it, so no phone takes a full stop for part of the URL.
BUILTIN_DEFAULT_WITH_LINK: Final = (
    "Hi, this is {business} - sorry we missed your call! How can we help? Reply here or book "
    "at {link}\nReply STOP to opt out."
)
_BUILTIN_PATH: Final = "templates.default (built in; add a [templates] table to change it)"
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_-]+")
_SWITCH_WORDS: Final = ("yes", "no")
_ROUTE_KEYS: Final = ("name", "dids", "trunks", "business", "link", "templates")
_DID = re.compile(r"\+[1-9][0-9]{6,14}")
_LINK = re.compile(r"https?://\S+")
_EXAMPLE_TEXT: Final = (
    '"Hi, this is {business} - sorry we missed your call! Reply STOP to opt out."'
)


def template_names(data: Mapping[str, object] | None) -> frozenset[str]:
    """The template names a [templates] table defines (``default`` when there is none)."""
    if data is None:
        return frozenset({"default"})
    return frozenset(k for k, v in data.items() if k != "route" and isinstance(v, str))


def read_templates(
    problems: list[str],
    notices: list[str],
    data: Mapping[str, object] | None,
    *,
    business: str,
    link: str,
    trunks: Collection[str],
    reasons: Mapping[str, str],
) -> TemplateBook:
    """[templates] and its [[templates.route]] tables, every text linted.

    Lint errors become problems; warnings and segment counts become notices.
    ``reasons`` are [policy.reasons], to spot custom templates nothing uses.
    """
    if data is None:
        builtin = BUILTIN_DEFAULT_WITH_LINK if link else BUILTIN_DEFAULT
        _lint(problems, notices, _BUILTIN_PATH, builtin, business, link)
        return TemplateBook(business=business, link=link, templates={"default": builtin})
    texts: dict[str, str] = {}
    broken: set[str] = set()
    used = set(reasons.values())
    for name, value in data.items():
        if name == "route":
            continue
        path = f"templates.{quote(name)}"
        text = _text(problems, path, name, value)
        if text is None:
            broken.add(name)
            continue
        if name in _SWITCH_WORDS or not _TEMPLATE_NAME.fullmatch(name):
            problems.append(
                f"{path}: template names may use only letters, digits, _ and - and may not be "
                '"yes" or "no" — rename it, e.g. voicemail_short'
            )
            continue
        if name not in KINDS and name not in used:
            hint = did_you_mean(name, KINDS)
            if hint is not None:
                problems.append(
                    f"{path}: not a template kind and no [policy.reasons] uses it — {hint}"
                )
                continue
            notices.append(
                f"{path}: no call gets this text, as no [policy.reasons] entry names it — "
                f'e.g. voicemail = "{name}" under [policy.reasons]'
            )
        texts[name] = text
        _lint(problems, notices, path, text, business, link)
    if "default" not in texts and "default" not in broken:
        problems.append(
            f"templates.default: missing — add default = {_EXAMPLE_TEXT}, the text most callers get"
        )
    routes = _routes(
        problems,
        notices,
        data.get("route", NOT_SET),
        defined=template_names(data) | set(KINDS),
        business=business,
        link=link,
        trunks=trunks,
    )
    texts.setdefault("default", BUILTIN_DEFAULT)  # only reached with problems already recorded
    return TemplateBook(business=business, link=link, templates=texts, routes=routes)


def _text(problems: list[str], path: str, name: str, value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        # Leading and trailing blank lines of a """multi-line""" string are layout, not text.
        return value.strip()
    if isinstance(value, str):
        problems.append(f"{path}: is empty — write the text callers get, e.g. {_EXAMPLE_TEXT}")
    elif isinstance(value, dict):
        problems.append(
            f"{path}: expected the text as a string, got a table — write it as "
            f"{quote(name)} = {_EXAMPLE_TEXT} under [templates]"
        )
    else:
        problems.append(
            f"{path}: expected the text as a string, got {show(value)} — "
            f"e.g. {quote(name)} = {_EXAMPLE_TEXT}"
        )
    return None


def _lint(
    problems: list[str], notices: list[str], path: str, text: str, business: str, link: str
) -> None:
    for finding in lint(path, text, business=business, link=link):
        line = f"{finding.path}: {finding.message}"
        (problems if finding.level == "error" else notices).append(line)


def _routes(
    problems: list[str],
    notices: list[str],
    value: object,
    *,
    defined: Collection[str],
    business: str,
    link: str,
    trunks: Collection[str],
) -> tuple[Route, ...]:
    if value is NOT_SET:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.append(
            f"templates.route: expected [[templates.route]] tables, got {show(value)} — "
            "start each route with a [[templates.route]] line (double brackets)"
        )
        return ()
    routes: list[Route] = []
    claimed: dict[str, str] = {}  # a DID or "trunk <name>" -> the route that has it
    for index, item in enumerate(value):
        s = Table(problems, f"templates.route[{index}]", item, _ROUTE_KEYS)
        name = s.string(
            "name", f"route {index + 1}", required=True, fix='name it for the logs, e.g. "sales"'
        )
        if any(route.name == name for route in routes):
            s.problem("name", f"{show(name)} is used by an earlier route — give each a new name")
        dids = s.strings("dids", (), example='["+15551234567"]', check=_did_problem)
        names = s.strings(
            "trunks",
            (),
            example=f'["{next(iter(trunks), "carrier-a")}"]',
            check=lambda t: _trunk_problem(t, trunks),
        )
        for key, claims in (("dids", dids), ("trunks", names)):
            for claim in claims:
                label = claim if key == "dids" else f"trunk {claim}"
                if label in claimed:
                    s.problem(
                        key,
                        f"{show(claim)} is already in route {show(claimed[label])}, which wins — "
                        "list it in one route only",
                    )
                claimed.setdefault(label, name)
        if not dids and not names and not {"dids", "trunks"} & s.bad:
            problems.append(
                f'{s.path}: matches no call — add dids = ["+15551234567"] (the numbers callers '
                f'dial) and/or trunks = ["{next(iter(trunks), "carrier-a")}"]'
            )
        route_business = (
            s.string("business", "", fix="the name these callers know you by")
            if "business" in item
            else None
        )
        route_link = _route_link(s)
        routes.append(
            Route(
                name=name,
                dids=dids,
                trunks=names,
                business=route_business,
                link=route_link,
                templates=_route_texts(
                    problems,
                    notices,
                    s,
                    defined,
                    business if route_business is None else route_business,
                    link if route_link is None else route_link,
                ),
                path=s.key("templates"),
            )
        )
    return tuple(routes)


def _did_problem(did: str) -> str | None:
    if _DID.fullmatch(did):
        return None
    if _E164_GLOB.fullmatch(did):
        return f"{show(did)} is not a whole E.164 number — list each number in full, no wildcards"
    return _e164_problem(did)


def _trunk_problem(name: str, trunks: Collection[str]) -> str | None:
    if name in trunks:
        return None
    hint = did_you_mean(name, sorted(trunks))
    configured = ", ".join(f'"{t}"' for t in trunks) or "none"
    return f"{show(name)} is not a [trunks.<name>] table — " + (
        hint or f"use one of the configured trunks: {configured}"
    )


def _route_link(s: Table) -> str | None:
    value = s.data.get("link", NOT_SET)
    if value is NOT_SET:
        return None
    if isinstance(value, str) and (not value or _LINK.fullmatch(value)):
        return value
    s.problem(
        "link",
        f'expected a full URL like "https://example.com/book", or "" for no link, got '
        f"{show(value)} — write the link these callers get",
    )
    return None


def _route_texts(
    problems: list[str],
    notices: list[str],
    route: Table,
    defined: Collection[str],
    business: str,
    link: str,
) -> dict[str, str]:
    value = route.data.get("templates", NOT_SET)
    if value is NOT_SET:
        return {}
    if not isinstance(value, dict):
        route.problem(
            "templates",
            f"expected a table, got {show(value)} — "
            f"e.g. templates = {{ default = {_EXAMPLE_TEXT} }}",
        )
        return {}
    texts: dict[str, str] = {}
    for name, raw in value.items():
        path = f"{route.key('templates')}.{quote(name)}"
        if name not in defined:
            choices = ", ".join(sorted(defined))
            problems.append(
                f"{path}: a route's texts replace the ones of the same name in [templates] — "
                f"use one of {choices}, or define templates.{quote(name)} first"
            )
            continue
        text = _text(problems, path, name, raw)
        if text is not None:
            texts[name] = text
            _lint(problems, notices, path, text, business, link)
    return texts


def segments(text: str, business: str, link: str) -> int:
    """SMS segments of a template filled with the longest plausible values."""
    chosen = Chosen(name="", text=text, business=business, link=link, path="")
    values = {"caller_name": PLAUSIBLE_CALLER_NAME, "did": PLAUSIBLE_NUMBER}
    values["phone"] = PLAUSIBLE_NUMBER
    return measure(render(chosen, values)).segments


# --- [sending] ------------------------------------------------------------------------------

_SENDING_KEYS: Final = (
    "grace_seconds",
    "window",
    "max_age_hours",
    "max_attempts",
    "retry_base_seconds",
    "retry_max_seconds",
    "timezone",
)
_WINDOW = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


def read_sending(
    problems: list[str],
    notices: list[str],
    data: Mapping[str, object],
    business_timezone: str | None,
) -> SendingConfig:
    """[sending]; ``business_timezone`` is [hours].timezone, when there is one."""
    s = Table(problems, "sending", data, _SENDING_KEYS)
    d = SendingConfig()
    grace = s.number(
        "grace_seconds",
        d.grace_seconds,
        ok=lambda v: 0 <= v <= 3600,
        expected="a number of seconds from 0 to 3600",
        fix="how long to hold a text so a call-back can cancel it (default 0; 30-60 is common)",
    )
    window = _window(s)
    max_age = s.number(
        "max_age_hours",
        d.max_age_hours,
        ok=lambda v: v > 0,
        expected="a number of hours greater than 0",
        fix=f"texts not sent this long after the call are dropped (default {d.max_age_hours:g})",
    )
    attempts = s.integer(
        "max_attempts",
        d.max_attempts,
        ok=lambda v: 1 <= v <= 100,
        expected="a whole number from 1 to 100",
        fix=f"how often to try a text before giving up (default {d.max_attempts})",
    )
    base = s.number(
        "retry_base_seconds",
        d.retry_base_seconds,
        ok=lambda v: v > 0,
        expected="a number of seconds greater than 0",
        fix=f"the first wait before a retry (default {d.retry_base_seconds:g})",
    )
    longest = s.number(
        "retry_max_seconds",
        d.retry_max_seconds,
        ok=lambda v: v > 0,
        expected="a number of seconds greater than 0",
        fix=f"the longest wait between retries (default {d.retry_max_seconds:g})",
    )
    check_not_above(s, "retry_base_seconds", base, "retry_max_seconds", longest)
    fallback = business_timezone or d.timezone
    timezone = s.string(
        "timezone",
        fallback,
        fix='set it to your IANA time zone, e.g. "America/New_York"',
    )
    if "timezone" in data and "timezone" not in s.bad:
        problem = timezone_problem(timezone)
        if problem is not None:
            s.problem("timezone", problem)
            timezone = fallback
    if window is not None and "max_age_hours" not in s.bad:
        quiet = 1440 - (window.end - window.start)
        if quiet > max_age * 60:
            notices.append(
                f"{s.key('max_age_hours')}: {max_age:g} h is shorter than the "
                f"{quiet / 60:g} h outside the sending window, so a call just after "
                f"{_hhmm(window.end)} is dropped instead of texted at {_hhmm(window.start)} — "
                f"raise max_age_hours to {quiet / 60:g} or more to text those callers next morning"
            )
    return SendingConfig(
        grace_seconds=grace,
        window=window,
        max_age_hours=max_age,
        max_attempts=attempts,
        retry_base_seconds=base,
        retry_max_seconds=longest,
        timezone=timezone,
    )


def _window(s: Table) -> SendingWindow | None:
    value = s.data.get("window", NOT_SET)
    if value is NOT_SET:
        return None
    fix = 'write the hours texts may go out, in the caller\'s local time, e.g. "09:00-20:00"'
    match = _WINDOW.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        s.problem("window", f'expected "HH:MM-HH:MM", got {show(value)} — {fix}')
        return None
    sh, sm, eh, em = (int(g) for g in match.groups())
    if sh > 23 or sm > 59 or eh > 24 or em > 59 or (eh == 24 and em != 0):
        s.problem(
            "window",
            f"{show(value)} is not a time range — use times from 00:00 to 23:59 "
            "(24:00 is allowed as the end)",
        )
        return None
    start, end = sh * 60 + sm, eh * 60 + em
    if start >= end:
        s.problem(
            "window",
            f"{show(value)}: the start must be before the end (the window cannot run past "
            'midnight) — e.g. "09:00-20:00"',
        )
        return None
    return SendingWindow(start=start, end=end)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# --- [gateway] ------------------------------------------------------------------------------


def read_gateway(
    problems: list[str], data: Mapping[str, object] | None, base: Path, require_secrets: bool
) -> Gateway | None:
    """[gateway], or the console gateway when there is none; None when it has problems."""
    table = {"kind": "console"} if data is None else data
    try:
        return load_gateway(table, path="gateway", base=base, require_secrets=require_secrets)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


# Key words that mark a setting as a credential: its value is never printed.
_SECRET_WORDS: Final = (
    "secret",
    "token",
    "pass",
    "pwd",
    "key",
    "credential",
    "private",
    "jwt",
    "authorization",
)
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_USERINFO = re.compile(r"//[^/@\s]*@")


def gateway_settings(data: Mapping[str, object] | None) -> tuple[str, ...]:
    """The [gateway] settings check-config may print, as short phrases; never a credential.

    Built-in adapters refuse inline secrets, but a third-party adapter may not, and a URL may
    carry a password: anything that could be one is named without its value.
    """
    phrases: list[str] = []
    for key, value in (data or {}).items():
        lowered = key.lower()
        if key == "kind":
            continue
        if lowered.endswith("_env") and isinstance(value, str):
            shown = f" {value}" if _ENV_NAME.fullmatch(value) else ""
            phrases.append(f"{key[:-4]} from environment variable{shown}")
        elif lowered.endswith("_file") and isinstance(value, str):
            shown = f" {value}" if "/" in value else ""
            phrases.append(f"{key[:-5]} from file{shown}")
        elif lowered.endswith("_credential") and isinstance(value, str):
            name = credential_name_shown(value)
            shown = f" {name}" if name == value else ""
            phrases.append(f"{key[: -len('_credential')]} from systemd credential{shown}")
        elif any(word in lowered for word in _SECRET_WORDS):
            phrases.append(f"{key} (set, not shown)")
        elif isinstance(value, dict):
            phrases.append(f"{key} with {', '.join(value) or 'nothing'}")
        elif isinstance(value, list):
            phrases.append(f"{key} = [{', '.join(_plain(v) for v in value)}]")
        else:
            phrases.append(f"{key} = {_plain(value)}")
    return tuple(phrases)


def _plain(value: object) -> str:
    if isinstance(value, str):
        text = show(_USERINFO.sub("//***@", value))
        return text if len(text) <= 60 else text[:56] + '..."'
    return show(value)


# --- summary --------------------------------------------------------------------------------


def policy_summary(policy: PolicySettings) -> str:
    cooldown = policy.cooldown_seconds / 3600
    reasons = ", ".join(f"{k} {v}" for k, v in policy.reasons.items()) or "all yes"
    return (
        f"policy: texts callers in {_list(sorted(policy.allowed_regions))}; refuses "
        f"{_list(sorted(policy.refused_types))}; "
        + (f"one text per caller per {cooldown:g} h; " if cooldown else "no cooldown; ")
        + f"at most {policy.max_per_hour}/hour and {policy.max_per_day}/day; "
        f"allow {_list(policy.allow, 'anyone')}; deny {_list(policy.deny)}; "
        f"internal {_list(policy.internal)}; min ring {policy.min_ring_seconds:g} s; "
        f"reasons: {reasons}"
    )


def templates_summary(book: TemplateBook) -> list[str]:
    def shelf(texts: Mapping[str, str], business: str, link: str) -> str:
        parts = []
        for name, text in texts.items():
            count = segments(text, business, link)
            parts.append(f"{name} ({count} segment{'s' if count > 1 else ''})")
        return ", ".join(parts) or "(none of its own)"

    lines = [f"templates: {shelf(book.templates, book.business, book.link)}"]
    for route in book.routes:
        business = book.business if route.business is None else route.business
        link = book.link if route.link is None else route.link
        matches = [f"dids {_list(route.dids)}"] if route.dids else []
        matches += [f"trunks {_list(route.trunks)}"] if route.trunks else []
        lines.append(
            f"template route {route.name}: {'; '.join(matches)}; business {business}"
            f"{f' ({link})' if link else ''}; texts {shelf(route.templates, business, link)}"
        )
    return lines


def sending_summary(sending: SendingConfig) -> str:
    window = sending.window
    hours = (
        f"between {_hhmm(window.start)} and {_hhmm(window.end)} caller's local time"
        if window is not None
        else "at any hour"
    )
    return (
        f"sending: after {sending.grace_seconds:g} s grace, {hours} (zone {sending.timezone} "
        f"when the number's is unknown); dropped after {sending.max_age_hours:g} h; "
        f"{sending.max_attempts} attempts, retries {sending.retry_base_seconds:g}-"
        f"{sending.retry_max_seconds:g} s apart"
    )


def gateway_summary(gateway: Gateway, settings: tuple[str, ...]) -> str:
    dedup = (
        "crash mid-send: safe to retry"
        if gateway.idempotent
        else "crash mid-send: not retried (a repeat could reach the caller twice)"
    )
    return f"gateway: {gateway.name}" + "".join(f"; {p}" for p in settings) + f"; {dedup}"


def _list(items: Collection[str], empty: str = "(none)") -> str:
    return ", ".join(items) if items else empty
