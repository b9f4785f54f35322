"""Reading one TOML table: typed getters that turn every bad value into one problem line.

Shell helper shared by ``config.py`` and the gateway adapters, which validate
their own tables. A problem names the key by its full TOML path and says how
to fix it; secret values never appear in one.

A secret is never written in the file: ``<key>_env`` names an environment variable,
``<key>_file`` a file (relative to the config file), and ``<key>_credential`` a systemd
credential, the file ``$CREDENTIALS_DIRECTORY/<name>`` that the unit's ``LoadCredential=``
provides to the service alone. Exactly one of the three; tables list them with ``*spec.keys``.
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
from pathlib import Path, PurePosixPath
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

    key: str = "secret"  # read from <key>_env, <key>_file or <key>_credential
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
    def credential_key(self) -> str:
        return f"{self.key}_credential"

    @property
    def keys(self) -> tuple[str, str, str]:
        """The three keys that may name this secret, for a table's list of allowed keys."""
        return (self.env_key, self.file_key, self.credential_key)

    @property
    def credential_example(self) -> str:
        # The file's own name, so LoadCredential=ami-secret:/etc/textback/ami-secret reads well.
        return PurePosixPath(self.file_example).name

    def named_in(self, data: Mapping[str, object]) -> bool:
        """True when ``data`` names this secret in any of the three ways."""
        return any(key in data for key in self.keys)

    @property
    def howto(self) -> str:
        return (
            f'set {self.env_key} = "{self.env_example}" (an environment variable holding it), '
            f'{self.file_key} = "{self.file_example}" (a file holding it) '
            f'or {self.credential_key} = "{self.credential_example}" (a systemd credential, '
            f"LoadCredential={self.credential_example}:{self.file_example} in the unit)"
        )


AMI_SECRET: Final = SecretSpec()
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONVENTIONAL_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def read_secret(
    s: Table, base: Path, require: bool, spec: SecretSpec = AMI_SECRET
) -> tuple[Secret | None, str]:
    """A secret named by ``<key>_env``, ``<key>_file`` or ``<key>_credential``, and where it
    comes from ("environment variable X", "file /path", "systemd credential NAME").

    Problems name the variable, file or credential, never the value. A value that looks like it
    could itself be the secret (pasted into one of those keys by mistake) is not echoed either.
    With ``require`` False, a secret that cannot be read now is None without a problem.
    """
    named = [key for key in spec.keys if key in s.data]
    if len(named) > 1:
        first, *others = named
        s.problem(
            first,
            f"set together with {' and '.join(others)} — keep only one of the "
            f"{'two' if len(named) == 2 else 'three'}",
        )
        return None, ""
    if not named:
        if require:
            s.problems.append(f"{s.path}: no {spec.what} configured — {spec.howto}")
        return None, ""
    if named[0] == spec.env_key:
        return _from_env(s, require, spec)
    if named[0] == spec.file_key:
        return _from_file(s, base, require, spec)
    return _from_credential(s, require, spec)


def _from_env(s: Table, require: bool, spec: SecretSpec) -> tuple[Secret | None, str]:
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


def _from_file(s: Table, base: Path, require: bool, spec: SecretSpec) -> tuple[Secret | None, str]:
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
    fix = (
        f"create it holding only the {spec.what} from {spec.origin}, "
        "readable by the user textback runs as"
    )
    text, problem = _read_one_line(path, f"file {shown}", fix)
    if text is not None:
        return checked_secret(s, spec.file_key, text), f"file {shown}"
    if require:
        s.problem(spec.file_key, problem)
    return None, f"file {shown}"


# systemd's rule for credential names: a valid file name (no "/", not "." or "..").
_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_.@+-]{1,255}")
# Names in the usual lower-case-words shape are shown in problems; anything else might be the
# secret itself, pasted into <key>_credential by mistake.
_CONVENTIONAL_CREDENTIAL_NAME = re.compile(r"[a-z]+(?:[-_.@][a-z0-9]+)*")


def credential_name_shown(name: str) -> str:
    """``name`` as problems and summaries may show it, or "named there" if it could be a secret."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    if _CONVENTIONAL_CREDENTIAL_NAME.fullmatch(name):
        return name
    if directory and _CREDENTIAL_NAME.fullmatch(name) and (Path(directory) / name).is_file():
        return name
    return "named there"


def _from_credential(s: Table, require: bool, spec: SecretSpec) -> tuple[Secret | None, str]:
    key = spec.credential_key
    name = s.data[key]
    if not isinstance(name, str) or not _CREDENTIAL_NAME.fullmatch(name) or name in (".", ".."):
        s.problem(
            key,
            "expected the NAME of a systemd credential (letters, digits and _ . @ + -), as in "
            f"the unit's LoadCredential=NAME:/path, not the secret itself — e.g. {key} = "
            f'"{spec.credential_example}"',
        )
        return None, ""
    shown = credential_name_shown(name)
    source = f"systemd credential {shown}"
    load = f"LoadCredential={name if shown == name else 'NAME'}:{spec.file_example}"
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        problem = (
            f"CREDENTIALS_DIRECTORY is not set — {key} works only when textback runs under "
            f"systemd with {load} in the unit (check it there: systemctl restart textback, "
            f"then journalctl -u textback), or use {spec.env_key} or {spec.file_key} instead"
        )
    else:
        fix = (
            f"add {load} to the unit (systemctl edit textback), the file holding only the "
            f"{spec.what} from {spec.origin}"
        )
        text, problem = _read_one_line(
            Path(directory) / name, f"systemd credential {shown}", fix, missing="is not loaded"
        )
        if text is not None:
            return checked_secret(s, key, text), source
    if require:
        s.problem(key, problem)
    return None, source


def _read_one_line(
    path: Path, what: str, fix: str, *, missing: str = "does not exist"
) -> tuple[str | None, str]:
    """The text of a secret file without its final line break, or None and the problem."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, f"{what} {missing} — {fix}"
    except IsADirectoryError:
        return None, f"{what}: that is a directory — point it at the file that holds the secret"
    except PermissionError:
        return None, f"{what} cannot be read (permission denied) — {fix}"
    except OSError as exc:
        return None, f"{what} cannot be read ({exc.strerror}) — {fix}"
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None, f"{what} is not UTF-8 text — {fix}"
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        return None, f"{what} is empty — {fix}"
    return text, ""


def checked_secret(s: Table, key: str, value: str) -> Secret | None:
    # A line break would end the AMI "Secret:" header early and inject whatever follows.
    if "\n" in value or "\r" in value:
        s.problem(key, "the secret contains a line break — it must be a single line")
        return None
    return Secret(value)
