"""The configuration file: TOML in, typed frozen dataclasses out.

Shell layer: reads the config file, secret files and the environment, and nothing else. Every
problem becomes one line naming its TOML key and the fix; all of them are collected before one
``ConfigError`` is raised, so an admin fixes the file in one pass instead of one error per restart.
Secret values never appear in a problem line, a repr or a str.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from fnmatch import fnmatchcase
from itertools import pairwise
from pathlib import Path
from typing import Final, Literal, cast

import phonenumbers

from textback.config_delivery import (
    SendingConfig as SendingConfig,  # re-exported: part of Config's interface
)
from textback.config_delivery import (
    check_not_above,
    gateway_settings,
    gateway_summary,
    policy_summary,
    read_gateway,
    read_policy,
    read_sending,
    read_templates,
    sending_summary,
    template_names,
    templates_summary,
    timezone_problem,
)
from textback.core.asterisk import CorrelatorSettings
from textback.core.hours import Interval, OpeningHours
from textback.core.policy import PolicySettings
from textback.core.templates import TemplateBook
from textback.core.trunks import Trunk, TrunkMap
from textback.errors import ConfigError
from textback.gateways.base import Gateway
from textback.tomltable import (
    AMI_SECRET,
    NOT_SET,
    Secret,
    Table,
    did_you_mean,
    quote,
    read_secret,
    show,
    unknown_key,
)

DEFAULT_CONFIG_PATH: Final = Path("/etc/textback/textback.toml")

LogFormat = Literal["auto", "logfmt", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
ExternalAnswer = Literal["answered", "missed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    database: Path = Path("/var/lib/textback/textback.db")
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessConfig:
    name: str  # required, non-empty; goes into the text
    link: str = ""  # booking link; empty or http(s)://...


@dataclass(frozen=True, slots=True, kw_only=True)
class AsteriskConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "textback"
    # None only when loaded with require_secrets=False and the secret could not be read.
    secret: Secret | None = None
    # For humans ("environment variable X", "file /path"); never the value.
    secret_source: str = ""
    events: str = "system,call,agent,dialplan"  # AMI Login Events: "on" or a list of classes
    connect_timeout: float = 5.0
    ping_interval: float = 15.0
    ping_timeout: float = 5.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    auth_retry: float = 300.0  # wait after the PBX refused our secret
    # fnmatch globs of dialplan contexts: reaching one means voicemail / the closed destination.
    voicemail_contexts: tuple[str, ...] = ("sub-vm", "macro-vm", "vm-*")
    closed_contexts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CorrelationConfig:
    grace_seconds: float = 2.0  # wait after the caller hangs up for late events
    max_call_age_seconds: float = 14400.0  # a call with no end after this is judged unknown
    # A call forwarded out a trunk and answered there counts as this.
    external_answer: ExternalAnswer = "answered"


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    path: Path
    daemon: DaemonConfig
    business: BusinessConfig
    asterisk: AsteriskConfig | None  # None when there is no [asterisk] table
    trunks: TrunkMap
    correlation: CorrelationConfig
    hours: OpeningHours | None  # None when there is no [hours] table
    policy: PolicySettings
    templates: TemplateBook
    sending: SendingConfig
    gateway: Gateway  # built, not started; the console gateway when there is no [gateway]
    # [gateway] settings safe to print ("from = ...", "auth_token from environment variable X").
    gateway_settings: tuple[str, ...] = ()
    # Advice that does not stop the daemon (template lengths, settings that may surprise), one
    # line each, for check-config to print.
    notices: tuple[str, ...] = ()

    def correlator_settings(self) -> CorrelatorSettings:
        """What the call correlator needs from this file (AMI defaults when no [asterisk])."""
        asterisk = self.asterisk if self.asterisk is not None else AsteriskConfig()
        return CorrelatorSettings(
            trunks=self.trunks,
            grace_seconds=self.correlation.grace_seconds,
            max_call_age_seconds=self.correlation.max_call_age_seconds,
            voicemail_contexts=asterisk.voicemail_contexts,
            closed_contexts=asterisk.closed_contexts,
            external_answer_is_answer=self.correlation.external_answer == "answered",
            hours=self.hours,
        )


# --- [daemon] -------------------------------------------------------------------------------


def _daemon(problems: list[str], data: Mapping[str, object], base: Path) -> DaemonConfig:
    s = Table(problems, "daemon", data, ("database", "log_format", "log_level"))
    default_db = DaemonConfig().database
    text = s.string(
        "database",
        str(default_db),
        fix=f'set it to the SQLite file textback keeps its state in, e.g. "{default_db}"',
    )
    database = _database_path(s, text, base) if "database" not in s.bad else default_db
    log_format = s.choice(
        "log_format",
        "auto",
        ("auto", "logfmt", "console"),
        fix='"auto" picks console on a terminal and logfmt under systemd',
    )
    log_level = s.choice(
        "log_level",
        "info",
        ("debug", "info", "warning", "error"),
        fix='use "info" unless you are chasing a problem',
    )
    return DaemonConfig(
        database=database,
        log_format=cast(LogFormat, log_format),
        log_level=cast(LogLevel, log_level),
    )


def _database_path(s: Table, text: str, base: Path) -> Path:
    example = '"/var/lib/textback/textback.db"'
    if "\0" in text or text != text.strip():
        s.problem(
            "database", f"{show(text)} is not a usable path — write a file path like {example}"
        )
    elif text.startswith("~"):
        # The daemon runs as a system user whose home is not the admin's.
        s.problem("database", f"{show(text)} uses ~ — write the full path, e.g. {example}")
    elif text.endswith(("/", "/.", "/..")) or text in (".", ".."):
        s.problem("database", f"{show(text)} names a directory — name a file in it, e.g. {example}")
    else:
        # Relative paths follow the config file, not whatever directory the daemon starts in.
        path = base / text
        if path.is_dir():
            s.problem(
                "database", f"{show(text)} is a directory — name a file in it, e.g. {example}"
            )
        elif path.parent.exists() and not path.parent.is_dir():
            s.problem(
                "database",
                f"{show(text)}: {path.parent} is a file, not a directory — "
                f"put the database in a directory, e.g. {example}",
            )
        return path
    return DaemonConfig().database


# --- [business] -----------------------------------------------------------------------------


def _business(problems: list[str], data: Mapping[str, object] | None) -> BusinessConfig:
    s = Table(problems, "business", data or {}, ("name", "link"))
    where = "add a [business] table with " if data is None else "set "
    name = s.string(
        "name",
        "",
        required=True,
        fix=f'{where}name = "Your Business" — the name callers know; it goes into the text',
    )
    link = ""
    raw = s.data.get("link", "")
    fix = 'use a full URL like "https://example.com/book", or "" for no link'
    if not isinstance(raw, str):
        s.problem("link", f"expected a string, got {show(raw)} — {fix}")
    elif raw and not re.fullmatch(r"https?://\S+", raw):
        s.problem("link", f"{show(raw)} must start with http:// or https:// — {fix}")
    else:
        link = raw
    return BusinessConfig(name=name.strip(), link=link)


# --- [asterisk] -----------------------------------------------------------------------------

# The TOML keys are the dataclass fields, except that the secret arrives by reference.
_ASTERISK_KEYS: Final = (
    *(f.name for f in fields(AsteriskConfig) if f.name not in ("secret", "secret_source")),
    "secret_file",
    "secret_env",
)
_INLINE_SECRET_KEYS: Final = ("secret", "password", "pass")
# The classes manager.conf's read= and the Login action's Events: understand.
_AMI_EVENT_CLASSES: Final = (
    "system",
    "call",
    "log",
    "verbose",
    "command",
    "agent",
    "user",
    "config",
    "dtmf",
    "reporting",
    "cdr",
    "dialplan",
    "originate",
    "agi",
    "cc",
    "aoc",
    "test",
    "security",
    "message",
    "all",
)


def _asterisk(
    problems: list[str], data: Mapping[str, object], base: Path, require_secrets: bool
) -> AsteriskConfig:
    known = (*_ASTERISK_KEYS, *_INLINE_SECRET_KEYS)
    s = Table(problems, "asterisk", data, known)
    for key in _INLINE_SECRET_KEYS:
        if key in data:
            # The value is deliberately not shown: it is the secret.
            s.problem(key, f"secrets may not be written in this file — {AMI_SECRET.howto}")
    d = AsteriskConfig()
    host = s.string("host", d.host, fix="set it to the PBX's address, usually 127.0.0.1")
    if any(c.isspace() for c in host):
        s.problem("host", f"{show(host)} contains whitespace — write just the address")
    port = s.integer(
        "port",
        d.port,
        ok=lambda v: 1 <= v <= 65535,
        expected="an integer from 1 to 65535",
        fix="set it to the AMI port from manager.conf (usually 5038)",
    )
    username = s.string(
        "username", d.username, fix="set it to the [user] section name in manager.conf"
    )
    if any(c.isspace() for c in username):
        s.problem(
            "username",
            f"{show(username)} contains whitespace — use the [user] section name in manager.conf",
        )
    secret, source = read_secret(s, base, require_secrets)
    events = _events(s, d.events)

    def seconds(name: str, default: float, why: str) -> float:
        return s.number(
            name,
            default,
            ok=lambda v: v > 0,
            expected="a number of seconds greater than 0",
            fix=f"{why} (default {default:g})",
        )

    connect_timeout = seconds("connect_timeout", d.connect_timeout, "how long to wait to connect")
    ping_interval = seconds("ping_interval", d.ping_interval, "how often to check the link")
    ping_timeout = seconds("ping_timeout", d.ping_timeout, "how long to wait for a Ping reply")
    reconnect_min = seconds("reconnect_min", d.reconnect_min, "first wait before reconnecting")
    reconnect_max = seconds("reconnect_max", d.reconnect_max, "longest wait between reconnects")
    auth_retry = seconds("auth_retry", d.auth_retry, "wait after the PBX refuses the secret")
    check_not_above(s, "reconnect_min", reconnect_min, "reconnect_max", reconnect_max)
    voicemail = s.strings(
        "voicemail_contexts",
        d.voicemail_contexts,
        example='["sub-vm", "macro-vm", "vm-*"]',
        check=_context_glob_problem,
    )
    closed = s.strings(
        "closed_contexts",
        d.closed_contexts,
        example='["app-announcement-1"]',
        check=_context_glob_problem,
    )
    return AsteriskConfig(
        host=host,
        port=port,
        username=username,
        secret=secret,
        secret_source=source,
        events=events,
        connect_timeout=connect_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        reconnect_min=reconnect_min,
        reconnect_max=reconnect_max,
        auth_retry=auth_retry,
        voicemail_contexts=voicemail,
        closed_contexts=closed,
    )


def _events(s: Table, default: str) -> str:
    value = s.string(
        "events", default, fix=f'use "{default}" or "on" (the AMI Login Events: value)'
    )
    if value.strip().lower() in ("on", "yes", "true"):
        return "on"
    if value.strip().lower() in ("off", "no", "false"):
        s.problem(
            "events",
            f'{show(value)} turns off the events textback watches calls with — use "{default}"',
        )
        return default
    classes = [part.strip().lower() for part in value.split(",")]
    for part in classes:
        if part not in _AMI_EVENT_CLASSES:
            hint = did_you_mean(part, _AMI_EVENT_CLASSES) or f'use "{default}"'
            s.problem("events", f"{show(part)} is not an AMI event class — {hint}")
            return default
    if "call" not in classes and "all" not in classes:
        s.problem(
            "events",
            f'{show(value)} leaves out "call", without which textback sees no calls — '
            f'use "{default}"',
        )
        return default
    return ",".join(classes)


def _context_glob_problem(pattern: str) -> str | None:
    if any(c.isspace() for c in pattern):
        return f"{show(pattern)} contains whitespace — dialplan context names never do"
    if "/" in pattern:
        return (
            f"{show(pattern)} looks like a channel, not a dialplan context — "
            'list context names here (e.g. "from-pstn") and channel patterns under channels'
        )
    return None


# --- [trunks.<name>] ------------------------------------------------------------------------

_TRUNK_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# Canonical spelling of channel technologies; channel names and fnmatchcase are case-sensitive.
_TECHS: Final = {
    t.lower(): t
    for t in ("SIP", "PJSIP", "IAX2", "DAHDI", "Local", "MGCP", "Skinny", "UNISTIM", "OOH323")
}
_PHONE_CHANNEL: Final = "101-00000001"  # what desk phone 101's channel is called, after TECH/


def _trunks(problems: list[str], data: object) -> TrunkMap:
    howto = (
        "add a [trunks.<name>] table per carrier, e.g. [trunks.carrier-a] with channels = "
        '["PJSIP/carrier-a-*"]'
    )
    if data is NOT_SET or data == {}:
        problems.append(f"trunks: no trunk configured — {howto}")
        return TrunkMap(trunks=())
    if not isinstance(data, dict):
        problems.append(f"trunks: expected [trunks.<name>] tables, got {show(data)} — {howto}")
        return TrunkMap(trunks=())
    trunks: list[Trunk] = []
    for name, table in data.items():
        path = f"trunks.{quote(name)}"
        if not _TRUNK_NAME.fullmatch(name):
            problems.append(
                f"{path}: trunk names may use only letters, digits, _ . and - — "
                "rename the table, e.g. [trunks.carrier-a]"
            )
        if not isinstance(table, dict):
            problems.append(
                f"{path}: expected a table, got {show(table)} — write it as [{path}] with "
                f'channels = ["PJSIP/{name}-*"] on the next line'
            )
            continue
        s = Table(problems, path, table, ("channels", "contexts", "country"))
        channels = s.strings(
            "channels", (), example='["PJSIP/carrier-a-*"]', check=_channel_glob_problem
        )
        contexts = s.strings("contexts", (), example='["from-pstn"]', check=_context_glob_problem)
        country = _country(s)
        if not channels and not contexts and not {"channels", "contexts"} & s.bad:
            problems.append(
                f'{path}: no channels or contexts — add channels = ["PJSIP/{name}-*"] '
                '(your trunk endpoint\'s channel names) or contexts = ["from-pstn"] '
                "(the context its calls arrive in)"
            )
        trunks.append(Trunk(name=name, channels=channels, contexts=contexts, country=country))
    return TrunkMap(trunks=tuple(trunks))


def _channel_glob_problem(pattern: str) -> str | None:
    shown = show(pattern)
    if any(c.isspace() for c in pattern):
        return f"{shown} contains whitespace — channel names never do"
    tech, slash, rest = pattern.partition("/")
    if not slash:
        return (
            f"{shown} is not a channel pattern — write it as TECH/endpoint-*, "
            'e.g. "PJSIP/carrier-a-*" or "SIP/carrier-a-*"'
        )
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", tech):
        return (
            f"{shown}: {show(tech)} is not a channel technology — start with the driver name "
            "as Asterisk prints it: PJSIP/, SIP/, IAX2/ or DAHDI/"
        )
    canonical = _TECHS.get(tech.lower(), tech)
    if canonical != tech:
        return (
            f"{shown}: Asterisk spells it {canonical} and patterns are case-sensitive — "
            f'write "{canonical}/{rest}"'
        )
    if tech == "Local":
        return (
            f"{shown}: Local channels are the PBX's own internal legs (ring groups, queues, "
            'follow-me), not a carrier — match the trunk\'s channel, e.g. "PJSIP/carrier-a-*"'
        )
    # Strip wildcards, character classes and separators: what is left must name the trunk.
    if not re.sub(r"\[[^\]]*\]|[*?\-]", "", rest):
        return (
            f"{shown} would match every {tech} channel, so it would treat every phone as a "
            f'trunk — name the trunk\'s endpoint, e.g. "{tech}/carrier-a-*"'
        )
    if fnmatchcase(f"{tech}/{_PHONE_CHANNEL}", pattern):
        return (
            f"{shown} also matches desk phone channels such as {tech}/{_PHONE_CHANNEL}, so it "
            f"would treat phones as a trunk — name the trunk's endpoint, e.g. "
            f'"{tech}/carrier-a-*"'
        )
    if not re.search(r"[*?\[]", rest):
        return (
            f"{shown} has no wildcard, but Asterisk appends a counter to every channel name "
            f'({tech}/{rest}-0000001a) — end it with -*: "{tech}/{rest}-*"'
        )
    return None


def _country(s: Table) -> str:
    value = s.data.get("country", NOT_SET)
    if value is NOT_SET:
        return "US"
    if isinstance(value, str) and value.upper() in phonenumbers.SUPPORTED_REGIONS:
        return value.upper()
    hint = 'did you mean "GB"?' if isinstance(value, str) and value.upper() == "UK" else None
    s.problem(
        "country",
        f'expected a two-letter country code such as "US", "CA" or "GB", got {show(value)} — '
        + (hint or "use the country whose national number format this carrier sends"),
    )
    return "US"


# --- [correlation] --------------------------------------------------------------------------


def _correlation(problems: list[str], data: Mapping[str, object]) -> CorrelationConfig:
    s = Table(
        problems, "correlation", data, ("grace_seconds", "max_call_age_seconds", "external_answer")
    )
    d = CorrelationConfig()
    grace = s.number(
        "grace_seconds",
        d.grace_seconds,
        ok=lambda v: 0 <= v <= 60,
        expected="a number of seconds from 0 to 60",
        fix=f"how long to wait for late events after a hangup (default {d.grace_seconds:g})",
    )
    max_age = s.number(
        "max_call_age_seconds",
        d.max_call_age_seconds,
        ok=lambda v: v >= 60,
        expected="a number of seconds of at least 60",
        fix=f"longer than your longest real call (default {d.max_call_age_seconds:g}, 4 hours)",
    )
    external = s.choice(
        "external_answer",
        d.external_answer,
        ("answered", "missed"),
        fix='"answered" if a call answered on a forwarded mobile counts as answered',
    )
    return CorrelationConfig(
        grace_seconds=grace,
        max_call_age_seconds=max_age,
        external_answer=cast(ExternalAnswer, external),
    )


# --- [hours] --------------------------------------------------------------------------------

_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_HINTS: Final = {
    name: f'did you mean "{name[:3]}"?' for name in (*_FULL_DAYS, "tues", "thur", "thurs")
}
_INTERVAL = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


def _hours(problems: list[str], data: Mapping[str, object]) -> OpeningHours:
    s = Table(problems, "hours", data, ("timezone", *_DAYS, "holidays"), _DAY_HINTS)
    timezone = s.string(
        "timezone",
        "",
        required=True,
        fix='set it to your IANA time zone, e.g. "America/New_York" '
        "(or delete [hours] to skip the opening-hours check)",
    )
    problem = timezone_problem(timezone) if timezone else None
    if problem is not None:
        s.problem("timezone", problem)
    weekly = tuple(_day(s, day, _DAYS[(i + 1) % 7]) for i, day in enumerate(_DAYS))
    if not any(weekly) and not any(day in s.bad for day in _DAYS):
        # Every day closed is what an [hours] table with no days means; nobody wants that.
        s.problems.append(
            'hours: no opening hours on any day — add days like mon = ["08:00-18:00"], '
            "or delete the [hours] table"
        )
    return OpeningHours(timezone=timezone, weekly=weekly, holidays=_holidays(s))


def _day(s: Table, day: str, next_day: str) -> tuple[Interval, ...]:
    specs = s.strings(
        day, (), example='["08:00-12:00", "13:00-18:00"]', check=lambda x: _interval(x, next_day)[1]
    )
    intervals = sorted(_interval(spec, next_day)[0] for spec in specs)
    for (a_start, a_end), (b_start, b_end) in pairwise(intervals):
        if b_start < a_end:
            first, second = _hhmm(a_start, a_end), _hhmm(b_start, b_end)
            merged = _hhmm(a_start, max(a_end, b_end))
            s.problem(day, f'"{first}" and "{second}" overlap — merge them into "{merged}"')
    return tuple(intervals)


def _interval(spec: str, next_day: str) -> tuple[Interval, str | None]:
    """Parse "HH:MM-HH:MM" into minutes after midnight; the second item is the problem, if any."""
    match = _INTERVAL.fullmatch(spec)
    if match is None:
        return (0, 0), (
            f'expected "HH:MM-HH:MM", got {show(spec)} — '
            'write it like "08:00-18:00" (24-hour clock)'
        )
    sh, sm, eh, em = (int(g) for g in match.groups())
    if sh > 23 or sm > 59 or eh > 24 or em > 59 or (eh == 24 and em != 0):
        return (0, 0), (
            f"{show(spec)} is not a time range — use times from 00:00 to 23:59 "
            "(24:00 is allowed as the end)"
        )
    start, end = sh * 60 + sm, eh * 60 + em
    if start == end:
        return (0, 0), f"{show(spec)} is empty — the end must be after the start"
    if start > end:
        return (0, 0), (
            f"{show(spec)} runs past midnight — split it at midnight: "
            f'"{_hhmm(start, 1440)}" on this day and "{_hhmm(0, end)}" in {next_day}'
        )
    return (start, end), None


def _hhmm(start: int, end: int) -> str:
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def _holidays(s: Table) -> frozenset[date]:
    value = s.data.get("holidays", NOT_SET)
    example = 'holidays = ["2026-12-25", "2027-01-01"]'
    if value is NOT_SET:
        return frozenset()
    if not isinstance(value, list):
        s.problem("holidays", f"expected an array of dates, got {show(value)} — e.g. {example}")
        return frozenset()
    days: set[date] = set()
    for index, item in enumerate(value):
        # TOML has a date type: an unquoted 2026-12-25 arrives as a date already.
        if isinstance(item, date) and not isinstance(item, datetime):
            days.add(item)
            continue
        if isinstance(item, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", item):
            try:
                days.add(date.fromisoformat(item))
                continue
            except ValueError:
                pass
        s.problem(
            "holidays",
            f'expected a date as "YYYY-MM-DD", got {show(item)} — e.g. {example}',
            index,
        )
    return frozenset(days)


# --- the file -------------------------------------------------------------------------------

_TABLES: Final = (
    "daemon",
    "business",
    "asterisk",
    "trunks",
    "correlation",
    "hours",
    "policy",
    "templates",
    "sending",
    "gateway",
)
# Where a key belongs when someone writes it above every [table] header.
_KEY_HOMES: Final = {
    **dict.fromkeys(("database", "log_format", "log_level"), "daemon"),
    **dict.fromkeys(("name", "link"), "business"),
    **dict.fromkeys((*_ASTERISK_KEYS, *_INLINE_SECRET_KEYS), "asterisk"),
    **dict.fromkeys(("channels", "contexts", "country"), "trunks.<name>"),
    **dict.fromkeys(("grace_seconds", "max_call_age_seconds", "external_answer"), "correlation"),
    **dict.fromkeys(("timezone", *_DAYS, "holidays"), "hours"),
    **dict.fromkeys(
        (
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
        ),
        "policy",
    ),
    **dict.fromkeys(("default", "after_hours", "holiday", "voicemail", "route"), "templates"),
    **dict.fromkeys(
        ("window", "max_age_hours", "max_attempts", "retry_base_seconds", "retry_max_seconds"),
        "sending",
    ),
    "kind": "gateway",
}


def _read_toml(path: Path) -> dict[str, object]:
    fix = "create it from textback.example.toml, or pass the right file with -c"
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        problem = f"{path}: no such file — {fix}"
    except IsADirectoryError:
        problem = f"{path}: is a directory — {fix}"
    except PermissionError:
        problem = f"{path}: permission denied — make it readable by the user textback runs as"
    except OSError as exc:
        problem = f"{path}: cannot be read ({exc.strerror}) — {fix}"
    except UnicodeDecodeError:
        problem = f"{path}: not UTF-8 text — save it as UTF-8"
    except tomllib.TOMLDecodeError as exc:
        # Only the position is reported, never the line: it may hold a secret.
        message = str(exc)
        at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if at is not None:
            where, reason = f"line {at[1]}, column {at[2]}", message[: at.start()]
        else:
            where, reason = "end of file", message.removesuffix(" (at end of document)")
        problem = (
            f"{path}: {where}: invalid TOML ({reason}) — fix the syntax there "
            '(strings need "double quotes", arrays [brackets], tables a [header] line)'
        )
    raise ConfigError([problem])


def load(path: str | Path, *, require_secrets: bool = True) -> Config:
    """Read and validate the config file.

    Args:
        path: the TOML file.
        require_secrets: when False, a secret that cannot be resolved (unset environment
            variable, missing file) is left as None instead of being a problem; used by
            commands that never log in to the PBX or send a text.

    Raises:
        ConfigError: with one line per problem found anywhere in the file.
    """
    config_path = Path(path)
    document = _read_toml(config_path)
    problems: list[str] = []
    for key, value in document.items():
        if key in _TABLES:
            continue
        home = _KEY_HOMES.get(key)
        if home is not None and not isinstance(value, dict):
            problems.append(
                f"{quote(key)}: unknown top-level key — it belongs in the [{home}] table; "
                f"move it below the [{home}] line"
            )
        else:
            problems.append(unknown_key(quote(key), key, _TABLES, {}))

    def table(name: str) -> dict[str, object] | None:
        value = document.get(name)
        if value is None or isinstance(value, dict):
            return value
        problems.append(
            f"{name}: expected a [{name}] table, got {show(value)} — "
            f"write a [{name}] line followed by its keys"
        )
        return {}

    def optional_table(name: str) -> dict[str, object] | None:
        # A table of the wrong type is reported once by table(); reading it as absent keeps
        # its keys from adding "missing" lines on top.
        value = table(name)
        return value if isinstance(document.get(name), dict) else None

    base = config_path.absolute().parent
    daemon = _daemon(problems, table("daemon") or {}, base)
    business = _business(problems, table("business"))
    asterisk_table = table("asterisk")
    asterisk = (
        None
        if asterisk_table is None
        else _asterisk(problems, asterisk_table, base, require_secrets)
    )
    trunks = _trunks(problems, document.get("trunks", NOT_SET))
    correlation = _correlation(problems, table("correlation") or {})
    hours_table = table("hours")
    hours = None if hours_table is None else _hours(problems, hours_table)
    notices: list[str] = []
    templates_table = optional_table("templates")
    policy = read_policy(problems, notices, table("policy") or {}, template_names(templates_table))
    templates = read_templates(
        problems,
        notices,
        templates_table,
        business=business.name,
        link=business.link,
        trunks=[trunk.name for trunk in trunks.trunks],
        reasons=policy.reasons,
    )
    sending = read_sending(
        problems, notices, table("sending") or {}, hours.timezone if hours is not None else None
    )
    gateway_table = optional_table("gateway")
    gateway = read_gateway(problems, gateway_table, base, require_secrets)
    if problems or gateway is None:
        raise ConfigError(problems)
    return Config(
        path=config_path,
        daemon=daemon,
        business=business,
        asterisk=asterisk,
        trunks=trunks,
        correlation=correlation,
        hours=hours,
        policy=policy,
        templates=templates,
        sending=sending,
        gateway=gateway,
        gateway_settings=gateway_settings(gateway_table),
        notices=tuple(notices),
    )


# --- summary --------------------------------------------------------------------------------


def summary(config: Config) -> list[str]:
    """Short lines describing what was loaded, for `check-config`. Never includes secrets."""
    business = config.business
    link = f"booking link {business.link}" if business.link else "no booking link"
    daemon = config.daemon
    lines = [
        f"config: {config.path}",
        f"business: {business.name} ({link})",
        f"database: {daemon.database}",
        f"logging: level {daemon.log_level}, format {daemon.log_format}",
    ]
    ami = config.asterisk
    if ami is None:
        lines.append("asterisk: not configured (no [asterisk] table)")
    else:
        if not ami.secret_source:
            secret = "no secret configured"
        else:
            missing = "" if ami.secret is not None else " (not available now)"
            secret = f"secret from {ami.secret_source}{missing}"
        lines.append(
            f"asterisk: AMI {ami.host}:{ami.port} as user {ami.username}, {secret}, "
            f"events {ami.events}"
        )
        lines.append(
            f"asterisk: voicemail contexts {_list(ami.voicemail_contexts)}; "
            f"closed contexts {_list(ami.closed_contexts)}"
        )
    for trunk in config.trunks.trunks:
        parts = []
        if trunk.channels:
            parts.append(f"channels {_list(trunk.channels)}")
        if trunk.contexts:
            parts.append(f"contexts {_list(trunk.contexts)}")
        lines.append(f"trunk {trunk.name}: {'; '.join(parts)}; country {trunk.country}")
    c = config.correlation
    lines.append(
        f"correlation: grace {c.grace_seconds:g}s, calls open longer than "
        f"{c.max_call_age_seconds:g}s judged unknown, answered off-PBX counts as "
        f"{c.external_answer}"
    )
    lines.append(_hours_summary(config.hours))
    lines.append(policy_summary(config.policy))
    lines.extend(templates_summary(config.templates))
    lines.append(sending_summary(config.sending))
    lines.append(gateway_summary(config.gateway, config.gateway_settings))
    return lines


def _list(items: tuple[str, ...]) -> str:
    return ", ".join(items) if items else "(none)"


def _hours_summary(hours: OpeningHours | None) -> str:
    if hours is None:
        return "hours: not configured (no [hours] table)"
    groups: list[tuple[int, int]] = []  # runs of consecutive days with the same hours
    for i in range(7):
        if groups and hours.weekly[groups[-1][0]] == hours.weekly[i]:
            groups[-1] = (groups[-1][0], i)
        else:
            groups.append((i, i))
    parts = []
    for first, last in groups:
        days = _DAYS[first] if first == last else f"{_DAYS[first]}-{_DAYS[last]}"
        intervals = hours.weekly[first]
        parts.append(f"{days} {', '.join(_hhmm(*iv) for iv in intervals) or 'closed'}")
    holidays = ", ".join(d.isoformat() for d in sorted(hours.holidays)) or "none"
    return f"hours: {hours.timezone}; {'; '.join(parts)}; holidays {holidays}"
