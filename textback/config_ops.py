"""The [log], [metrics] and [roi] tables: how textback reports on itself and on what it earns.

Shell layer, split from ``config.py`` like ``config_web.py``; ``config.load`` calls the readers.
Every problem is one line naming its TOML key and the fix. None of these tables is required:
[log] and [roi] fall back to their defaults, and without [metrics] there is no metrics server.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, cast, get_args

from textback.config_web import is_loopback, read_listen
from textback.log import LogFormat
from textback.tomltable import NOT_SET, Table, show

LogLevel = Literal["debug", "info", "warning", "error"]

# --- [log] ----------------------------------------------------------------------------------

LOG_FORMATS: Final[tuple[str, ...]] = get_args(LogFormat)
LOG_LEVELS: Final[tuple[str, ...]] = get_args(LogLevel)
LOG_KEYS: Final = ("format", "level")
_LOG_HINTS: Final = {
    "log_format": 'did you mean "format"?',
    "log_level": 'did you mean "level"?',
    "loglevel": 'did you mean "level"?',
}
# Where [daemon] kept them before [log] existed.
MOVED_FROM_DAEMON: Final = {"log_format": "format", "log_level": "level"}


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    format: LogFormat = "auto"
    level: LogLevel = "info"


def read_log(problems: list[str], data: Mapping[str, object]) -> LogConfig:
    """[log]: the format and level of the lines textback writes to stderr."""
    s = Table(problems, "log", data, LOG_KEYS, _LOG_HINTS)
    d = LogConfig()
    fmt = s.choice(
        "format",
        d.format,
        LOG_FORMATS,
        fix='"auto" picks console on a terminal and logfmt under systemd; "json" is for '
        "shipping the lines to another log system",
    )
    level = s.choice(
        "level", d.level, LOG_LEVELS, fix='use "info" unless you are chasing a problem'
    )
    return LogConfig(format=cast(LogFormat, fmt), level=cast(LogLevel, level))


def moved_log_hints(data: Mapping[str, object]) -> dict[str, str]:
    """Hints for the old log_format / log_level keys ([daemon]'s), saying how to write them now."""
    hints: dict[str, str] = {}
    for old, new in MOVED_FROM_DAEMON.items():
        value = data.get(old, NOT_SET)
        example = show(value) if isinstance(value, str) else show(getattr(LogConfig(), new))
        hints[old] = f"logging has its own table now: write {new} = {example} below a [log] line"
    return hints


def log_summary(log: LogConfig) -> str:
    shape = {
        "auto": "console on a terminal, logfmt with journald priorities otherwise",
        "logfmt": "logfmt with journald priorities",
        "console": "console",
        "json": "one JSON object per line, with a UTC timestamp",
    }[log.format]
    return f"logging: level {log.level}, format {log.format} ({shape})"


# --- [metrics] ------------------------------------------------------------------------------

DEFAULT_METRICS_LISTEN: Final = "127.0.0.1:9464"
METRICS_KEYS: Final = ("listen",)
_METRICS_LISTEN_HINT: Final = f'write host:port in listen, e.g. listen = "{DEFAULT_METRICS_LISTEN}"'
_METRICS_HINTS: Final = {
    "host": _METRICS_LISTEN_HINT,
    "port": _METRICS_LISTEN_HINT,
    "bind": _METRICS_LISTEN_HINT,
    "address": _METRICS_LISTEN_HINT,
    "enabled": "the [metrics] table itself turns the metrics server on — remove it",
    "enable": "the [metrics] table itself turns the metrics server on — remove it",
    "path": "the paths are fixed: /metrics for Prometheus and /healthz for monitoring — remove it",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    host: str = "127.0.0.1"  # no brackets around IPv6
    port: int = 9464

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def read_metrics(
    problems: list[str], notices: list[str], data: Mapping[str, object]
) -> MetricsConfig:
    """[metrics]: where GET /metrics and GET /healthz are served."""
    s = Table(problems, "metrics", data, METRICS_KEYS, _METRICS_HINTS)
    host, port = read_listen(s, DEFAULT_METRICS_LISTEN)
    if "listen" not in s.bad and not is_loopback(host):
        notices.append(
            f"metrics.listen: {show(s.data['listen'])} is reachable from other machines, and "
            "/metrics and /healthz ask for no login — listen on 127.0.0.1, or let only your "
            "Prometheus server's address reach that port in the firewall"
        )
    return MetricsConfig(host=host, port=port)


def listen_clash(metrics: MetricsConfig, web_host: str, web_port: int) -> str | None:
    """The problem when [metrics] would listen where [web] already does, or None."""
    wildcard = ("0.0.0.0", "::", "")
    if metrics.port != web_port:
        return None
    if metrics.host != web_host and metrics.host not in wildcard and web_host not in wildcard:
        return None
    return (
        f"metrics.listen: {metrics.listen} is where [web] listens too — give the metrics "
        f'server a port of its own, e.g. listen = "{DEFAULT_METRICS_LISTEN}"'
    )


def metrics_summary(metrics: MetricsConfig | None) -> str:
    if metrics is None:
        return "metrics: not configured (no [metrics] table): no /metrics or /healthz"
    return f"metrics: Prometheus /metrics and /healthz on http://{metrics.listen}"


# --- [roi] ----------------------------------------------------------------------------------

ROI_KEYS: Final = (
    "average_job_value",
    "close_rate",
    "sms_segment_price",
    "currency",
    "recovered_days",
)
_ROI_HINTS: Final = {
    "job_value": 'did you mean "average_job_value"?',
    "average_job": 'did you mean "average_job_value"?',
    "conversion_rate": 'did you mean "close_rate"?',
    "booking_rate": 'did you mean "close_rate"?',
    "sms_price": 'did you mean "sms_segment_price"?',
    "segment_price": 'did you mean "sms_segment_price"?',
    "price_per_segment": 'did you mean "sms_segment_price"?',
    "days": 'did you mean "recovered_days"?',
    "window_days": 'did you mean "recovered_days"?',
}
_MAX_CURRENCY: Final = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class RoiConfig:
    """What a recovered caller is worth, for ``textback stats`` and the inbox dashboard."""

    average_job_value: float = 0.0  # 0: stats count recovered callers but show no money
    close_rate: float = 0.3  # the share of recovered callers who book a job
    sms_segment_price: float = 0.0079  # what the provider charges per SMS segment
    currency: str = "$"
    recovered_days: int = 7  # a caller counts as recovered if they come back within this

    def money(self, amount: float, *, places: int = 2) -> str:
        """``amount`` with the currency: "$1,234.50", "-$3.00", "CHF 12.00"."""
        sign = "-" if amount < 0 else ""
        # A word ("CHF", "USD") reads better with a space; a symbol ("$", "€") without.
        gap = " " if self.currency[-1:].isalpha() else ""
        return f"{sign}{self.currency}{gap}{abs(amount):,.{places}f}"


def read_roi(
    problems: list[str], notices: list[str], data: Mapping[str, object] | None
) -> RoiConfig:
    """[roi], or its defaults when the table is absent (``data`` None)."""
    s = Table(problems, "roi", data or {}, ROI_KEYS, _ROI_HINTS)
    d = RoiConfig()
    value = s.number(
        "average_job_value",
        d.average_job_value,
        ok=lambda v: v >= 0,
        expected="a number of at least 0",
        fix="what a typical job is worth to you, in your currency, e.g. 250",
    )
    close_rate = _close_rate(s, d.close_rate)
    price = s.number(
        "sms_segment_price",
        d.sms_segment_price,
        ok=lambda v: v >= 0,
        expected="a number of at least 0",
        fix=f"what your SMS provider charges per segment, e.g. {d.sms_segment_price:g}",
    )
    currency = s.string(
        "currency",
        d.currency,
        fix=f'the symbol or code put before amounts, e.g. "$", "€" or "CHF" (up to '
        f"{_MAX_CURRENCY} characters)",
    )
    if "currency" not in s.bad and (len(currency) > _MAX_CURRENCY or not currency.isprintable()):
        s.problem(
            "currency",
            f"expected a symbol or code of up to {_MAX_CURRENCY} characters on one line, got "
            f'{show(currency)} — e.g. "$", "€" or "CHF"',
        )
        currency = d.currency
    days = s.integer(
        "recovered_days",
        d.recovered_days,
        ok=lambda v: 1 <= v <= 60,
        expected="a whole number of days from 1 to 60",
        fix="how long after a missed call a reply or a new call still counts as recovered "
        f"(default {d.recovered_days})",
    )
    if value == 0 and "average_job_value" not in s.bad:
        where, fix = (
            ("roi.average_job_value: is 0", "set average_job_value")
            if data is not None
            else ("roi: there is no [roi] table", "add [roi] with average_job_value")
        )
        notices.append(
            f"{where}, so textback stats counts recovered callers but shows no money — {fix} "
            "to what a typical job is worth (e.g. 250) to see money in textback stats"
        )
    roi = RoiConfig(
        average_job_value=value,
        close_rate=close_rate,
        sms_segment_price=price,
        currency=currency,
        recovered_days=days,
    )
    if price > 1:
        notices.append(
            f"roi.sms_segment_price: {roi.money(price, places=4)} per SMS segment is far more "
            "than providers charge — write the price of one segment in whole units of your "
            f"currency, e.g. {d.sms_segment_price:g} for {d.sms_segment_price * 100:g} cents"
        )
    return roi


def _close_rate(s: Table, default: float) -> float:
    raw = s.data.get("close_rate", NOT_SET)
    percent = (
        isinstance(raw, int | float)
        and not isinstance(raw, bool)
        and math.isfinite(raw)
        and 1 < raw <= 100
    )
    if percent:
        # 30 for 30%: say how to write it rather than only that it is out of range.
        s.problem(
            "close_rate",
            f"expected a fraction from 0 to 1, got {show(raw)} — write "
            f"{cast(float, raw) / 100:g} for {show(raw)}%",
        )
        return default
    return s.number(
        "close_rate",
        default,
        ok=lambda v: 0 <= v <= 1,
        expected="a fraction from 0 to 1",
        fix=f"the share of recovered callers who book a job, e.g. {default:g} for 3 in 10",
    )


def roi_summary(roi: RoiConfig) -> str:
    if roi.average_job_value == 0:
        worth = "no average_job_value: stats count recovered callers without money"
    else:
        worth = (
            f"a recovered caller books a {roi.money(roi.average_job_value)} job "
            f"{roi.close_rate:.0%} of the time"
        )
    return (
        f"roi: {worth}; SMS {roi.money(roi.sms_segment_price, places=4)} per segment; "
        f"recovered means back within {roi.recovered_days} day"
        + ("s" if roi.recovered_days != 1 else "")
    )
