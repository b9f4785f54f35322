"""Reading one TOML table: typed getters that turn every bad value into one problem line.

Shell helper shared by ``config.py`` and the gateway adapters, which validate
their own tables. A problem names the key by its full TOML path and says how
to fix it; secret values never appear in one.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Final


@dataclass(frozen=True, slots=True)
class Secret:
    """A credential. Its value comes out only through ``reveal()``."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


NOT_SET: Final = object()
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def quote(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def show(value: object) -> str:
    """A TOML-ish rendering of a value for "got ..." (never used for secrets)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 200 else text[:196] + '..."'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1)
    return f'did you mean "{close[0]}"?' if close else None


def unknown_key(where: str, key: str, known: Sequence[str], hints: Mapping[str, str]) -> str:
    hint = hints.get(key.lower()) or did_you_mean(key, known)
    if hint is None:
        hint = "keys allowed here: " + ", ".join(known) if known else "remove it"
    return f"{where}: unknown key — {hint}"


class Table:
    """One TOML table being read: typed getters that record problems under the table's path."""

    def __init__(
        self,
        problems: list[str],
        path: str,
        data: Mapping[str, object],
        known: Sequence[str],
        hints: Mapping[str, str] | None = None,
    ) -> None:
        self.problems = problems
        self.path = path
        self.data = data
        self.bad: set[str] = set()
        for key in data:
            if key not in known:
                problems.append(unknown_key(self.key(key), key, known, hints or {}))

    def key(self, name: str) -> str:
        return f"{self.path}.{quote(name)}"

    def problem(self, name: str, text: str, index: int | None = None) -> None:
        self.bad.add(name)
        where = self.key(name) if index is None else f"{self.key(name)}[{index}]"
        self.problems.append(f"{where}: {text}")

    def string(self, name: str, default: str, *, fix: str, required: bool = False) -> str:
        value = self.data.get(name, NOT_SET)
        if value is NOT_SET:
            if required:
                self.problem(name, f"missing — {fix}")
            return default
        if isinstance(value, str) and value.strip():
            return value
        self.problem(name, f"expected a non-empty string, got {show(value)} — {fix}")
        return default

    def integer(
        self, name: str, default: int, *, ok: Callable[[int], bool], expected: str, fix: str
    ) -> int:
        value = self.data.get(name, NOT_SET)
        if value is NOT_SET:
            return default
        if isinstance(value, int) and not isinstance(value, bool) and ok(value):
            return value
        self.problem(name, f"expected {expected}, got {show(value)} — {fix}")
        return default

    def number(
        self, name: str, default: float, *, ok: Callable[[float], bool], expected: str, fix: str
    ) -> float:
        value = self.data.get(name, NOT_SET)
        if value is NOT_SET:
            return default
        # bool is an int subclass: `timeout = true` must not read as 1 second.
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value) if abs(value) < 1e300 else math.inf
            if math.isfinite(number) and ok(number):
                return number
        self.problem(name, f"expected {expected}, got {show(value)} — {fix}")
        return default

    def boolean(self, name: str, default: bool, *, fix: str) -> bool:
        value = self.data.get(name, NOT_SET)
        if value is NOT_SET:
            return default
        if isinstance(value, bool):
            return value
        self.problem(name, f"expected true or false, got {show(value)} — {fix}")
        return default

    def url(self, name: str, default: str, *, fix: str, required: bool = False) -> str:
        """An http(s) URL with a host."""
        value = self.string(name, default, fix=fix, required=required)
        if name in self.bad or value == default:
            return value
        scheme, sep, rest = value.partition("://")
        if scheme not in ("http", "https") or not sep or not rest.split("/")[0]:
            self.problem(name, f"{show(value)} is not an http:// or https:// URL — {fix}")
            return default
        return value

    def choice(self, name: str, default: str, choices: Sequence[str], *, fix: str) -> str:
        value = self.data.get(name, NOT_SET)
        if value is NOT_SET:
            return default
        if isinstance(value, str) and value.lower() in choices:
            return value.lower()
        hint = did_you_mean(value.lower(), choices) if isinstance(value, str) else None
        allowed = ", ".join(f'"{c}"' for c in choices)
        self.problem(name, f"expected one of {allowed}, got {show(value)} — {hint or fix}")
        return default

    def strings(
        self,
        name: str,
        default: tuple[str, ...],
        *,
        example: str,
        check: Callable[[str], str | None] | None = None,
    ) -> tuple[str, ...]:
        """An array of strings; items that fail ``check`` are reported by index and dropped."""
        value = self.data.get(name, NOT_SET)
        if value is NOT_SET:
            return default
        if isinstance(value, str):
            self.problem(
                name,
                f"expected an array, got the single string {show(value)} — "
                f"wrap it in brackets: {name} = [{show(value)}]",
            )
            return default
        if not isinstance(value, list):
            self.problem(
                name, f"expected an array of strings, got {show(value)} — e.g. {name} = {example}"
            )
            return default
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.problem(
                    name,
                    f"expected a non-empty string, got {show(item)} — e.g. {name} = {example}",
                    index,
                )
                continue
            error = check(item) if check is not None else None
            if error is not None:
                self.problem(name, error, index)
                continue
            items.append(item)
        return tuple(items)


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretSpec:
    """How one secret is named in a table and explained in problems."""

    key: str = "secret"  # read from <key>_file or <key>_env
    what: str = "AMI secret"
    origin: str = "manager.conf"  # where the admin finds the value
    env_example: str = "TEXTBACK_AMI_SECRET"
    file_example: str = "/etc/textback/ami-secret"

    @property
    def file_key(self) -> str:
        return f"{self.key}_file"

    @property
    def env_key(self) -> str:
        return f"{self.key}_env"

    @property
    def howto(self) -> str:
        return (
            f'set {self.env_key} = "{self.env_example}" (an environment variable holding it) '
            f'or {self.file_key} = "{self.file_example}" (a file holding it)'
        )


AMI_SECRET: Final = SecretSpec()
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONVENTIONAL_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def read_secret(
    s: Table, base: Path, require: bool, spec: SecretSpec = AMI_SECRET
) -> tuple[Secret | None, str]:
    """A secret named by ``<key>_file`` or ``<key>_env``, and a description of where it comes from.

    Problems name the variable or file, never the value. A value that looks like it could itself
    be the secret (pasted into ``<key>_env`` or ``<key>_file`` by mistake) is not echoed either.
    """
    has_file, has_env = spec.file_key in s.data, spec.env_key in s.data
    if has_file and has_env:
        s.problem(spec.env_key, f"set together with {spec.file_key} — keep only one of the two")
        return None, ""
    if not has_file and not has_env:
        if require:
            s.problems.append(f"{s.path}: no {spec.what} configured — {spec.howto}")
        return None, ""
    if has_env:
        name = s.data[spec.env_key]
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            s.problem(
                spec.env_key,
                "expected the NAME of an environment variable (letters, digits and _), "
                f'not the secret itself — e.g. {spec.env_key} = "{spec.env_example}"',
            )
            return None, ""
        shown = name if _CONVENTIONAL_ENV_NAME.fullmatch(name) else "named there"
        source = f"environment variable {shown}"
        value = os.environ.get(name, "")
        if not value:
            if require:
                s.problem(
                    spec.env_key,
                    f"environment variable {shown} is not set or empty — set it in the service's "
                    "environment (systemd: Environment= or EnvironmentFile=) to the "
                    f"{spec.what} from {spec.origin}",
                )
            return None, source
        return checked_secret(s, spec.env_key, value), source

    raw = s.data[spec.file_key]
    if not isinstance(raw, str) or not raw.strip():
        s.problem(
            spec.file_key,
            f"expected a file path, got {'a string' if isinstance(raw, str) else show(raw)} — "
            f'set it to the file holding the secret, e.g. "{spec.file_example}"',
        )
        return None, ""
    path = base / raw
    # A bare word that names no file may be the secret itself, pasted here by mistake.
    shown = str(path) if "/" in raw or path.exists() else "named there"
    source = f"file {shown}"
    fix = (
        f"create it holding only the {spec.what} from {spec.origin}, "
        "readable by the user textback runs as"
    )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problem = f"file {shown} does not exist — {fix}"
    except IsADirectoryError:
        problem = f"{shown} is a directory — point it at the file that holds the secret"
    except PermissionError:
        problem = f"file {shown} cannot be read (permission denied) — {fix}"
    except OSError as exc:
        problem = f"file {shown} cannot be read ({exc.strerror}) — {fix}"
    else:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            problem = f"file {shown} is not UTF-8 text — {fix}"
        else:
            text = text.removesuffix("\n").removesuffix("\r")
            if text:
                return checked_secret(s, spec.file_key, text), source
            problem = f"file {shown} is empty — {fix}"
    if require:
        s.problem(spec.file_key, problem)
    return None, source


def checked_secret(s: Table, key: str, value: str) -> Secret | None:
    # A line break would end the AMI "Secret:" header early and inject whatever follows.
    if "\n" in value or "\r" in value:
        s.problem(key, "the secret contains a line break — it must be a single line")
        return None
    return Secret(value)
