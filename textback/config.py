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
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from fnmatch import fnmatchcase
from ipaddress import ip_network
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
from textback.config_ops import (
    LOG_KEYS,
    ROI_KEYS,
    listen_clash,
    log_summary,
    metrics_summary,
    moved_log_hints,
    read_log,
    read_metrics,
    read_roi,
    roi_summary,
)
from textback.config_ops import LogConfig as LogConfig  # re-exported: part of Config
from textback.config_ops import LogLevel as LogLevel  # re-exported
from textback.config_ops import MetricsConfig as MetricsConfig  # re-exported
from textback.config_ops import RoiConfig as RoiConfig  # re-exported
from textback.config_web import (
    NOTIFY_KEYS,
    WEB_KEYS,
    NotifyConfig,
    WebConfig,
    notify_summary,
    read_notify,
    read_web,
    web_summary,
)
from textback.core.asterisk import CorrelatorSettings
from textback.core.freeswitch import FsCorrelatorSettings
from textback.core.hours import Interval, OpeningHours
from textback.core.policy import PolicySettings
from textback.core.templates import TemplateBook
from textback.core.trunks import Trunk, TrunkMap
from textback.errors import ConfigError
from textback.gateways.base import Gateway
from textback.log import (
    LogFormat as LogFormat,  # re-exported: part of Config's interface
)
from textback.tomltable import (
    AMI_SECRET,
    NOT_SET,
    Secret,
    SecretSpec,
    Table,
    did_you_mean,
    quote,
    read_secret,
    show,
    unknown_key,
)

DEFAULT_CONFIG_PATH: Final = Path("/etc/textback/textback.toml")

ExternalAnswer = Literal["answered", "missed"]
EventsFormat = Literal["plain", "json"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    database: Path = Path("/var/lib/textback/textback.db")


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
class FreeswitchConfig:
    host: str = "127.0.0.1"
    port: int = 8021
    # None only when loaded with require_secrets=False and the password could not be read.
    password: Secret | None = None
    # For humans ("environment variable X", "file /path"); never the value.
    password_source: str = ""
    events_format: EventsFormat = "plain"  # what `event <format> ...` asks FreeSWITCH for
    connect_timeout: float = 5.0
    # No HEARTBEAT (FreeSWITCH sends one every 20 s) for this long means a dead link.
    heartbeat_timeout: float = 60.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    auth_retry: float = 300.0  # wait after FreeSWITCH refused our password


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
    freeswitch: FreeswitchConfig | None  # None when there is no [freeswitch] table
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
    web: WebConfig | None = None  # None when there is no [web] table: no inbox, no webhooks
    notify: NotifyConfig | None = None  # None when there is no [notify] table
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig | None = None  # None when there is no [metrics] table: no server
    roi: RoiConfig = field(default_factory=RoiConfig)  # the defaults without a [roi] table

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

    def freeswitch_settings(self) -> FsCorrelatorSettings:
        """What the FreeSWITCH call correlator needs from this file."""
        return FsCorrelatorSettings(
            trunks=self.trunks,
            max_call_age_seconds=self.correlation.max_call_age_seconds,
            external_answer_is_answer=self.correlation.external_answer == "answered",
            hours=self.hours,
        )


# --- [daemon] -------------------------------------------------------------------------------


def _daemon(problems: list[str], data: Mapping[str, object], base: Path) -> DaemonConfig:
    s = Table(problems, "daemon", data, ("database",), moved_log_hints(data))
    default_db = DaemonConfig().database
    text = s.string(
        "database",
        str(default_db),
        fix=f'set it to the SQLite file textback keeps its state in, e.g. "{default_db}"',
    )
    database = _database_path(s, text, base) if "database" not in s.bad else default_db
    return DaemonConfig(database=database)


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
    *AMI_SECRET.keys,
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
    s = _pbx_table(problems, "asterisk", data, _ASTERISK_KEYS, {}, "secrets", AMI_SECRET)
    d = AsteriskConfig()
    host = _host(s, d.host, "set it to the PBX's address, usually 127.0.0.1")
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
    connect_timeout = _seconds(
        s, "connect_timeout", d.connect_timeout, "how long to wait to connect"
    )
    ping_interval = _seconds(s, "ping_interval", d.ping_interval, "how often to check the link")
    ping_timeout = _seconds(s, "ping_timeout", d.ping_timeout, "how long to wait for a Ping reply")
    reconnect_min, reconnect_max = _reconnect(s, d.reconnect_min, d.reconnect_max)
    auth_retry = _seconds(s, "auth_retry", d.auth_retry, "wait after the PBX refuses the secret")
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


def _pbx_table(
    problems: list[str],
    name: str,
    data: Mapping[str, object],
    known: tuple[str, ...],
    hints: Mapping[str, str],
    what: str,
    spec: SecretSpec,
) -> Table:
    """A PBX table whose credential written inline is refused, and not listed as a known key."""
    inline = [key for key in _INLINE_SECRET_KEYS if key in data]
    s = Table(problems, name, {k: v for k, v in data.items() if k not in inline}, known, hints)
    for key in inline:
        # The value is deliberately not shown: it is the credential.
        s.problem(key, f"{what} may not be written in this file — {spec.howto}")
    return s


def _host(s: Table, default: str, fix: str) -> str:
    host = s.string("host", default, fix=fix)
    if any(c.isspace() for c in host):
        s.problem("host", f"{show(host)} contains whitespace — write just the address")
    return host


def _seconds(s: Table, name: str, default: float, why: str) -> float:
    return s.number(
        name,
        default,
        ok=lambda v: v > 0,
        expected="a number of seconds greater than 0",
        fix=f"{why} (default {default:g})",
    )


def _reconnect(s: Table, default_min: float, default_max: float) -> tuple[float, float]:
    low = _seconds(s, "reconnect_min", default_min, "first wait before reconnecting")
    high = _seconds(s, "reconnect_max", default_max, "longest wait between reconnects")
    check_not_above(s, "reconnect_min", low, "reconnect_max", high)
    return low, high


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


# --- [freeswitch] ---------------------------------------------------------------------------

ESL_PASSWORD: Final = SecretSpec(
    key="password",
    what="event socket password",
    origin="event_socket.conf.xml",
    env_example="TEXTBACK_ESL_PASSWORD",
    file_example="/etc/textback/esl-password",
)
# The TOML keys are the dataclass fields, except that the password arrives by reference.
_FREESWITCH_KEYS: Final = (
    *(f.name for f in fields(FreeswitchConfig) if f.name not in ("password", "password_source")),
    *ESL_PASSWORD.keys,
)
# Keys carried over from [asterisk] by habit.
_FREESWITCH_HINTS: Final = {
    "secret_env": 'did you mean "password_env"? (the event socket calls it a password)',
    "secret_file": 'did you mean "password_file"? (the event socket calls it a password)',
    "secret_credential": 'did you mean "password_credential"? (the event socket calls it a '
    "password)",
    "username": "the event socket has no user name, only a password: remove it",
    "events": "textback subscribes to the events it needs itself: remove it "
    '(events_format picks "plain" or "json")',
}
# FreeSWITCH sends HEARTBEAT this often (switch.conf.xml event-heartbeat-interval, default 20).
_HEARTBEAT_INTERVAL: Final = 20.0
# Shipped in every FreeSWITCH and FusionPBX config, and so known to anyone who can reach 8021.
_DEFAULT_ESL_PASSWORD: Final = "ClueCon"


def _freeswitch(
    problems: list[str],
    notices: list[str],
    data: Mapping[str, object],
    base: Path,
    require_secrets: bool,
) -> FreeswitchConfig:
    s = _pbx_table(
        problems, "freeswitch", data, _FREESWITCH_KEYS, _FREESWITCH_HINTS, "passwords", ESL_PASSWORD
    )
    d = FreeswitchConfig()
    host = _host(s, d.host, "set it to the event socket's listen-ip, usually 127.0.0.1")
    port = s.integer(
        "port",
        d.port,
        ok=lambda v: 1 <= v <= 65535,
        expected="an integer from 1 to 65535",
        fix="set it to listen-port in event_socket.conf.xml (usually 8021)",
    )
    password, source = read_secret(s, base, require_secrets, ESL_PASSWORD)
    if password is not None and password.reveal() == _DEFAULT_ESL_PASSWORD:
        notices.append(
            "freeswitch: the event socket password is FreeSWITCH's published default, so "
            "anything that reaches the event socket can control the PBX — set a long random "
            "password in event_socket.conf.xml (FusionPBX: also in /etc/fusionpbx/config.conf) "
            f"and in {source}"
        )
    events_format = s.choice(
        "events_format",
        d.events_format,
        ("plain", "json"),
        fix='"plain" unless you are comparing with captures taken as json',
    )
    connect_timeout = _seconds(
        s, "connect_timeout", d.connect_timeout, "how long to wait to connect and log in"
    )
    heartbeat_timeout = s.number(
        "heartbeat_timeout",
        d.heartbeat_timeout,
        ok=lambda v: v > _HEARTBEAT_INTERVAL,
        expected=f"a number of seconds greater than {_HEARTBEAT_INTERVAL:g}",
        fix=f"FreeSWITCH sends a HEARTBEAT every {_HEARTBEAT_INTERVAL:g} seconds, so a shorter "
        f"wait would drop a healthy link (default {d.heartbeat_timeout:g})",
    )
    reconnect_min, reconnect_max = _reconnect(s, d.reconnect_min, d.reconnect_max)
    auth_retry = _seconds(
        s, "auth_retry", d.auth_retry, "wait after FreeSWITCH refuses the password"
    )
    return FreeswitchConfig(
        host=host,
        port=port,
        password=password,
        password_source=source,
        events_format=cast(EventsFormat, events_format),
        connect_timeout=connect_timeout,
        heartbeat_timeout=heartbeat_timeout,
        reconnect_min=reconnect_min,
        reconnect_max=reconnect_max,
        auth_retry=auth_retry,
    )


# --- [trunks.<name>] ------------------------------------------------------------------------

_TRUNK_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# Canonical spelling of channel technologies; channel names and fnmatchcase are case-sensitive.
_TECHS: Final = {
    t.lower(): t
    for t in ("SIP", "PJSIP", "IAX2", "DAHDI", "Local", "MGCP", "Skinny", "UNISTIM", "OOH323")
}
_PHONE_CHANNEL: Final = "101-00000001"  # what desk phone 101's channel is called, after TECH/
# Keys that say which calls are this trunk's; "country" only says how to read them.
_TRUNK_MATCH_KEYS: Final = ("channels", "contexts", "gateways", "acls", "networks", "profiles")
_TRUNK_KEYS: Final = ("channels", "contexts", "country", "gateways", "acls", "networks", "profiles")


def _trunks(problems: list[str], notices: list[str], data: object) -> TrunkMap:
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
        trunks.append(_trunk(problems, notices, path, name, table))
    return TrunkMap(trunks=tuple(trunks))


def _trunk(
    problems: list[str], notices: list[str], path: str, name: str, table: Mapping[str, object]
) -> Trunk:
    s = Table(problems, path, table, _TRUNK_KEYS)
    channels = s.strings(
        "channels", (), example='["PJSIP/carrier-a-*"]', check=_channel_glob_problem
    )
    contexts = s.strings("contexts", (), example='["from-pstn"]', check=_context_glob_problem)
    country = _country(s)
    gateways = s.strings(
        "gateways", (), example='["carrier-a"]', check=lambda v: _fs_name_problem("gateway", v)
    )
    acls = s.strings("acls", (), example='["carrier-b"]', check=_acl_problem)
    networks = _networks(s)
    profiles = s.strings("profiles", (), example='["external"]', check=_profile_problem)
    if not (channels or contexts or gateways or acls or networks or profiles) and not (
        set(_TRUNK_MATCH_KEYS) & s.bad
    ):
        problems.append(
            f"{path}: no channels, contexts, gateways, acls, networks or profiles — "
            f'on Asterisk add channels = ["PJSIP/{name}-*"] (your trunk endpoint\'s channel '
            'names) or contexts = ["from-pstn"] (the context its calls arrive in); on '
            f'FreeSWITCH add gateways = ["{name}"] (its sofia gateway) or acls = ["{name}"] '
            "(the ACL list that admits its addresses)"
        )
    if profiles and not (gateways or acls or networks):
        notices.append(
            f"{s.key('profiles')}: every inbound call on that profile counts as a "
            f"{name} call; prefer gateways/acls/networks, which name the carrier itself"
        )
    return Trunk(
        name=name,
        channels=channels,
        contexts=contexts,
        country=country,
        gateways=gateways,
        acls=acls,
        networks=networks,
        profiles=profiles,
    )


def _fs_name_problem(what: str, value: str) -> str | None:
    """Gateway, ACL and profile names are matched exactly against one channel variable."""
    shown = show(value)
    if any(c.isspace() for c in value):
        return f"{shown} contains whitespace — FreeSWITCH {what} names never do"
    if re.search(r"[*?\[]", value):
        return f"{shown}: {what} names are matched exactly, without wildcards — list each by name"
    if "/" in value:
        last = value.rstrip("/").rsplit("/", 1)[-1] or "carrier-a"
        return f'{shown} is a path or dial string — write just the {what} name, e.g. "{last}"'
    if what == "gateway" and "::" in value:
        # `sofia status gateway` prints gateways as <profile>::<gateway>.
        return (
            f"{shown} is profile::name as sofia status prints it — write just the {what} name, "
            f'"{value.rsplit("::", 1)[1] or "carrier-a"}"'
        )
    return None


def _acl_problem(value: str) -> str | None:
    if _looks_like_address(value):
        return (
            f"{show(value)} is an address, not an ACL list name — "
            f'move it to networks = ["{value}"], or name the list in acl.conf.xml that holds it'
        )
    problem = _fs_name_problem("ACL list", value)
    if problem is None and value.lower().endswith(".auto"):
        # loopback.auto, rfc1918.auto, localnet.auto, ...: FreeSWITCH builds them from whole
        # address ranges, desk phones and this host included.
        return (
            f"{show(value)} is one of FreeSWITCH's built-in lists of whole address ranges, "
            "which may hold your desk phones too — name the acl.conf.xml list that holds only "
            "this carrier's addresses"
        )
    return problem


def _profile_problem(value: str) -> str | None:
    problem = _fs_name_problem("sofia profile", value)
    if problem is None and value == "internal":
        return (
            '"internal" is where desk phones register in the stock FreeSWITCH and FusionPBX '
            "configs, so every internal call would count as a trunk call — name the carrier "
            "with gateways, acls or networks instead"
        )
    return problem


def _looks_like_address(value: str) -> bool:
    try:
        ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _networks(s: Table) -> tuple[str, ...]:
    """CIDRs in canonical form; a bare address is one host (/32 or /128)."""
    items = s.strings("networks", (), example='["203.0.113.0/24"]', check=_network_problem)
    return tuple(str(ip_network(item, strict=False)) for item in items)


def _network_problem(text: str) -> str | None:
    shown = show(text)
    try:
        network = ip_network(text, strict=False)
    except ValueError:
        return (
            f"{shown} is not an IP address or network — write the carrier's addresses as "
            '"203.0.113.0/24" or "203.0.113.7" (one address)'
        )
    if network.prefixlen == 0:
        return (
            f"{shown} matches every address, desk phones included — "
            "list only the carrier's addresses"
        )
    try:
        ip_network(text)
    except ValueError:
        address = text.split("/")[0]
        return (
            f"{shown} has bits set after the /{network.prefixlen} — "
            f'write "{network}" for the network or "{address}" for one address'
        )
    return None


def _unseen_trunks(
    trunks: TrunkMap, *, asterisk: AsteriskConfig | None, freeswitch: FreeswitchConfig | None
) -> list[str]:
    """Trunks described only in the other PBX's terms: the configured PBX would never match them.

    With neither PBX table (replay, check-config of a shared file) every trunk is fine.
    """
    problems = []
    for trunk in trunks.trunks:
        path = f"trunks.{quote(trunk.name)}"
        freeswitch_keys = trunk.gateways or trunk.acls or trunk.networks or trunk.profiles
        if (
            asterisk is not None
            and freeswitch is None
            and freeswitch_keys
            and not (trunk.channels or trunk.contexts)
        ):
            problems.append(
                f"{path}: gateways, acls, networks and profiles are FreeSWITCH's, and this file "
                "talks to Asterisk ([asterisk]), so no call would match — add channels = "
                f'["PJSIP/{trunk.name}-*"] or contexts = ["from-pstn"]'
            )
        if (
            freeswitch is not None
            and asterisk is None
            and trunk.channels
            and not (freeswitch_keys or trunk.contexts)
        ):
            problems.append(
                f"{path}: channels are Asterisk's, and this file talks to FreeSWITCH "
                f'([freeswitch]), so no call would match — add gateways = ["{trunk.name}"] (its '
                f'sofia gateway), acls = ["{trunk.name}"] (the ACL list that admits it) or '
                'networks = ["203.0.113.0/24"] (its addresses)'
            )
    return problems


def _channel_glob_problem(pattern: str) -> str | None:
    shown = show(pattern)
    if any(c.isspace() for c in pattern):
        return f"{shown} contains whitespace — channel names never do"
    tech, slash, rest = pattern.partition("/")
    if tech.lower() == "sofia":
        return (
            f"{shown} is a FreeSWITCH channel name, but channels are Asterisk's — name a "
            'FreeSWITCH trunk by its sofia gateway (gateways = ["carrier-a"]), ACL list (acls), '
            "addresses (networks) or profile (profiles)"
        )
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
    "log",
    "business",
    "asterisk",
    "freeswitch",
    "trunks",
    "correlation",
    "hours",
    "policy",
    "templates",
    "sending",
    "gateway",
    "web",
    "notify",
    "metrics",
    "roi",
)
# Where a key belongs when someone writes it above every [table] header, as a header.
_KEY_HOMES: Final = {
    # First, so that keys they share with the tables below (retry_base_seconds) point there;
    # timeout is left out: every HTTP gateway has one too.
    **dict.fromkeys(WEB_KEYS, "[web]"),
    **dict.fromkeys((key for key in NOTIFY_KEYS if key != "timeout"), "[notify]"),
    "database": "[daemon]",
    **dict.fromkeys(LOG_KEYS, "[log]"),
    **dict.fromkeys(ROI_KEYS, "[roi]"),
    **dict.fromkeys(("name", "link"), "[business]"),
    **dict.fromkeys(_FREESWITCH_KEYS, "[freeswitch]"),
    **dict.fromkeys(_ASTERISK_KEYS, "[asterisk]"),
    # Both PBX tables have these: host, port, the timeouts and the reconnect waits.
    **dict.fromkeys(
        (*(set(_ASTERISK_KEYS) & set(_FREESWITCH_KEYS)), *_INLINE_SECRET_KEYS),
        "[asterisk] or [freeswitch]",
    ),
    **dict.fromkeys(_TRUNK_KEYS, "[trunks.<name>]"),
    **dict.fromkeys(("grace_seconds", "max_call_age_seconds", "external_answer"), "[correlation]"),
    **dict.fromkeys(("timezone", *_DAYS, "holidays"), "[hours]"),
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
        "[policy]",
    ),
    **dict.fromkeys(("default", "after_hours", "holiday", "voicemail", "route"), "[templates]"),
    **dict.fromkeys(
        ("window", "max_age_hours", "max_attempts", "retry_base_seconds", "retry_max_seconds"),
        "[sending]",
    ),
    "kind": "[gateway]",
    "listen": "[web] or [metrics]",
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
                f"{quote(key)}: unknown top-level key — it belongs in the {home} table; "
                f"move it below the {home} line"
            )
        else:
            # log_format and log_level, from before [log], say how they are written now.
            problems.append(unknown_key(quote(key), key, _TABLES, moved_log_hints(document)))

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
    log = read_log(problems, table("log") or {})
    business = _business(problems, table("business"))
    notices: list[str] = []
    asterisk_table = table("asterisk")
    asterisk = (
        None
        if asterisk_table is None
        else _asterisk(problems, asterisk_table, base, require_secrets)
    )
    freeswitch_table = table("freeswitch")
    freeswitch = (
        None
        if freeswitch_table is None
        else _freeswitch(problems, notices, freeswitch_table, base, require_secrets)
    )
    if asterisk_table is not None and freeswitch_table is not None:
        problems.append(
            "freeswitch: set together with [asterisk], but textback talks to one PBX per "
            "daemon — keep [asterisk] or [freeswitch] and delete the other table"
        )
    trunks = _trunks(problems, notices, document.get("trunks", NOT_SET))
    problems.extend(_unseen_trunks(trunks, asterisk=asterisk, freeswitch=freeswitch))
    correlation = _correlation(problems, table("correlation") or {})
    hours_table = table("hours")
    hours = None if hours_table is None else _hours(problems, hours_table)
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
    if freeswitch is not None and gateway is not None and gateway.name == "ami_modem":
        problems.append(
            'gateway.kind: "ami_modem" sends through Asterisk\'s manager interface, and this '
            "file talks to FreeSWITCH — pick an SMS provider (see the [gateway] examples)"
        )
    web_table = optional_table("web")
    web = (
        None if web_table is None else read_web(problems, notices, web_table, base, require_secrets)
    )
    notify_table = optional_table("notify")
    notify = (
        None
        if notify_table is None
        else read_notify(
            problems, notices, notify_table, base, require_secrets, web=web_table is not None
        )
    )
    metrics_table = optional_table("metrics")
    metrics = None if metrics_table is None else read_metrics(problems, notices, metrics_table)
    if metrics is not None and web is not None:
        clash = listen_clash(metrics, web.host, web.port)
        if clash is not None:
            problems.append(clash)
    roi = read_roi(problems, notices, optional_table("roi"))
    if problems or gateway is None:
        raise ConfigError(problems)
    return Config(
        path=config_path,
        daemon=daemon,
        business=business,
        asterisk=asterisk,
        freeswitch=freeswitch,
        trunks=trunks,
        correlation=correlation,
        hours=hours,
        policy=policy,
        templates=templates,
        sending=sending,
        gateway=gateway,
        gateway_settings=gateway_settings(gateway_table),
        notices=tuple(notices),
        web=web,
        notify=notify,
        log=log,
        metrics=metrics,
        roi=roi,
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
        log_summary(config.log),
        *web_summary(config.web),
        *notify_summary(config.notify),
        metrics_summary(config.metrics),
        roi_summary(config.roi),
    ]
    ami, fs = config.asterisk, config.freeswitch
    if ami is None and fs is None:
        lines.append("asterisk: not configured (no [asterisk] table)")
        lines.append("freeswitch: not configured (no [freeswitch] table)")
    if ami is not None:
        lines.extend(_asterisk_summary(ami))
    if fs is not None:
        lines.append(_freeswitch_summary(fs))
    for trunk in config.trunks.trunks:
        parts = [
            f"{key} {_list(values)}"
            for key, values in (
                ("channels", trunk.channels),
                ("contexts", trunk.contexts),
                ("gateways", trunk.gateways),
                ("acls", trunk.acls),
                ("networks", trunk.networks),
                ("profiles", trunk.profiles),
            )
            if values
        ]
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


def _asterisk_summary(ami: AsteriskConfig) -> list[str]:
    if not ami.secret_source:
        secret = "no secret configured"
    else:
        missing = "" if ami.secret is not None else " (not available now)"
        secret = f"secret from {ami.secret_source}{missing}"
    return [
        f"asterisk: AMI {ami.host}:{ami.port} as user {ami.username}, {secret}, "
        f"events {ami.events}",
        f"asterisk: voicemail contexts {_list(ami.voicemail_contexts)}; "
        f"closed contexts {_list(ami.closed_contexts)}",
    ]


def _freeswitch_summary(fs: FreeswitchConfig) -> str:
    if not fs.password_source:
        password = "no password configured"
    else:
        missing = "" if fs.password is not None else " (not available now)"
        password = f"password from {fs.password_source}{missing}"
    return (
        f"freeswitch: event socket {fs.host}:{fs.port}, {password}, events {fs.events_format}, "
        f"link judged dead after {fs.heartbeat_timeout:g}s without a HEARTBEAT"
    )


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
