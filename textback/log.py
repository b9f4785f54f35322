"""structlog setup for journald: one logfmt line per event, priority prefix, no timestamp.

Named ``log.py`` rather than ``logging.py`` so the stdlib module is not shadowed.

Formats:

- ``logfmt``: ``<6>event=call_judged key=value ...``. The ``<N>`` prefix is sd-daemon(3)'s:
  journald strips it and sets PRIORITY=, so ``journalctl -p warning`` works. No timestamp:
  journald adds its own.
- ``json``: one JSON object per line (``ts``, ``level``, ``event``, ``logger``, then the
  fields), for shipping to another log system. ``ts`` is ISO 8601 UTC, since nothing else adds
  one there. No ``<N>`` prefix: shippers want pure JSON lines, so under journald these lines all
  get the default priority and ``journalctl -p`` cannot filter them — use logfmt there.
- ``console``: coloured, human lines with a local timestamp, for a terminal.
- ``auto``: console on a terminal, logfmt otherwise.

Phone numbers are personal data and secrets must never reach the journal, so
every line passes through :func:`mask_personal_data` whichever renderer is used.
Libraries that log through the stdlib (panoramisk) are routed through the same
processors, so their lines get the same shape and journald priority.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import Final, Literal, TextIO, cast, get_args

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from textback.numbers import mask

LogFormat = Literal["auto", "logfmt", "console", "json"]
_FORMATS: Final[tuple[str, ...]] = get_args(LogFormat)

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# sd-daemon(3) prefixes: journald strips them and sets PRIORITY= from them.
_PRIORITIES: Final = {
    "critical": "<2>",
    "error": "<3>",
    "warning": "<4>",
    "info": "<6>",
    "debug": "<7>",
}

# Keys that carry a caller's number. DIDs are deliberately absent: they are the
# business's own published numbers and admins need them to read the logs.
PERSONAL_KEYS: Final = frozenset(
    {"caller", "caller_raw", "caller_e164", "number", "to", "from_number"}
)

_SECRET_MARKERS: Final = ("secret", "password", "passwd", "token", "api_key", "apikey")


def mask_personal_data(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Processor: mask callers' numbers and blank out anything that looks like a secret."""
    for key, value in event_dict.items():
        lowered = key.lower()
        if any(marker in lowered for marker in _SECRET_MARKERS):
            event_dict[key] = "***"
        elif key in PERSONAL_KEYS and isinstance(value, str):
            event_dict[key] = mask(value)
    return event_dict


class _JournalLogfmt:
    """Renders ``<6>event=... key=value``: the level goes into the prefix, not the line."""

    def __init__(self) -> None:
        self._logfmt = structlog.processors.LogfmtRenderer(
            key_order=["event", "logger"], drop_missing=True
        )

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        level = str(event_dict.pop("level", method_name))
        return _PRIORITIES.get(level, "<6>") + self._logfmt(logger, method_name, event_dict)


class _JsonLines:
    """Renders one JSON object per line: ts, level, event and logger first, then the fields."""

    _FIRST: Final = ("ts", "level", "event", "logger")

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> str:
        ordered = {key: event_dict.pop(key) for key in self._FIRST if key in event_dict}
        ordered.update(event_dict)
        # default=str: a field holding a Path or a datetime must not cost the whole line.
        return json.dumps(ordered, ensure_ascii=False, separators=(",", ":"), default=str)


class _NamedPrintLogger(structlog.PrintLogger):
    """A PrintLogger that remembers the name passed to get_logger(name)."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedPrintLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: object) -> _NamedPrintLogger:
        name = args[0] if args and isinstance(args[0], str) else None
        return _NamedPrintLogger(self._file, name)


def _add_logger_name(logger: WrappedLogger, _: str, event_dict: EventDict) -> EventDict:
    name = getattr(logger, "name", None)
    if isinstance(name, str) and name:
        event_dict.setdefault("logger", name)
    return event_dict


class _StdlibBridge(logging.StreamHandler):  # type: ignore[type-arg]
    """Root handler that formats stdlib records with our processors; one per process."""


def _level_number(level: str) -> int:
    try:
        return _LEVELS[level.strip().lower()]
    except KeyError:
        choices = ", ".join(sorted(_LEVELS))
        raise ValueError(f"unknown log level {level!r}; use one of: {choices}") from None


def _renderer(fmt: str, stream: TextIO) -> str:
    """The format ``fmt`` means on ``stream``: "auto" resolved to "console" or "logfmt"."""
    if fmt not in _FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use one of: {', '.join(_FORMATS)}")
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return "console" if isatty is not None and isatty() else "logfmt"
    return fmt


def configure(fmt: LogFormat = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog (and the stdlib root logger) to write to ``stream``, stderr by default.

    Safe to call more than once: each call replaces the previous setup.

    Raises:
        ValueError: ``fmt`` or ``level`` is not one we know.
    """
    out = sys.stderr if stream is None else stream
    threshold = _level_number(level)
    renderer = _renderer(fmt, out)

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        mask_personal_data,
    ]
    tail: Sequence[Processor]
    if renderer == "console":
        tail = [
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            # ConsoleRenderer formats exc_info itself, and warns if it was already rendered.
            structlog.dev.ConsoleRenderer(colors=_renderer("auto", out) == "console"),
        ]
    elif renderer == "json":
        tail = [
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            _JsonLines(),
        ]
    else:
        tail = [structlog.processors.format_exc_info, _JournalLogfmt()]

    structlog.configure(
        processors=[_add_logger_name, *shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=_NamedPrintLoggerFactory(out),
        # Not cached, so loggers created at import time follow a later configure().
        cache_logger_on_first_use=False,
    )
    _install_stdlib_bridge(out, threshold, shared, tail)


def _install_stdlib_bridge(
    out: TextIO, threshold: int, shared: list[Processor], tail: Sequence[Processor]
) -> None:
    handler = _StdlibBridge(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    _remove_stdlib_bridge(root)
    root.addHandler(handler)
    root.setLevel(threshold)


def _remove_stdlib_bridge(root: logging.Logger) -> None:
    for old in [h for h in root.handlers if isinstance(h, _StdlibBridge)]:
        root.removeHandler(old)
        old.close()


def reset() -> None:
    """Undo :func:`configure`: structlog defaults, our stdlib handler removed."""
    structlog.reset_defaults()
    root = logging.getLogger()
    _remove_stdlib_bridge(root)
    root.setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """A logger that follows the current configuration; ``name`` becomes the ``logger`` key."""
    if name is None:
        return cast(FilteringBoundLogger, structlog.get_logger())
    return cast(FilteringBoundLogger, structlog.get_logger(name))
