"""Text templates: which one a call gets, how it renders, and what check-config says about it. Pure.

A template is plain text with named placeholders (``{business}``, ``{caller_name}``
...) and ``{{`` / ``}}`` for literal braces; nothing else of ``str.format`` is
allowed, so a template can never reach attributes or format specs. Templates
live in a :class:`TemplateBook`; routes pick a business, link and templates of
their own by the number called (DID) or the trunk the call came in on.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from textback.core.sms import GSM7_PART, GSM7_SINGLE, UCS2_PART, UCS2_SINGLE, Encoding, measure
from textback.core.sms import non_gsm_chars as _non_gsm_chars

# phone: the DID called, as the shell formats it for display (national format).
PLACEHOLDERS: Final = frozenset({"business", "link", "caller_name", "did", "phone"})
KINDS: Final = ("default", "after_hours", "holiday", "voicemail")

# Longest values the shell plausibly fills in, for the length check.
PLAUSIBLE_CALLER_NAME: Final = "X" * 20
PLAUSIBLE_NUMBER: Final = "+" + "9" * 14

# Friendlier GSM-7 spellings of characters that commonly sneak in from word processors.
_GSM_SPELLING: Final = {
    "‘": "'",
    "’": "'",
    "‚": "'",
    "“": '"',
    "”": '"',
    "„": '"',
    "–": "-",
    "—": "-",
    "…": "...",
    "\u00a0": "a plain space",
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STOP = re.compile(r"\bSTOP\b")
# What an empty placeholder at the start of a line leaves behind: "{caller_name}, thanks".
_LEADING_GAP = re.compile(r"^ *[,;:.!?]? *")
_CLOSING = frozenset(",.!?;:\n")


class TemplateError(ValueError):
    """A template that cannot be rendered: bad braces or an unknown placeholder."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """A ``[[templates.route]]`` entry: calls to these DIDs or on these trunks get its texts.

    ``business``, ``link`` and each template left out fall back to the book's.
    ``path`` is the TOML table holding this route's texts, for messages; empty
    means ``<book path>.route[<index>].templates``.
    """

    name: str
    dids: tuple[str, ...] = ()  # E.164
    trunks: tuple[str, ...] = ()  # trunk names as in [trunks.<name>]
    business: str | None = None
    link: str | None = None
    templates: Mapping[str, str] = field(default_factory=dict)
    path: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateBook:
    """Every template, the business they speak for, and the routes that override them.

    ``templates`` maps a name to its text: ``default`` is required; the others
    of :data:`KINDS` are picked by time and reason, any other name only when a
    per-reason switch names it. ``path`` is the TOML table of the texts.
    """

    business: str
    link: str
    templates: Mapping[str, str]
    routes: tuple[Route, ...] = ()
    path: str = "templates"

    def __post_init__(self) -> None:
        if "default" not in self.templates:
            raise ValueError("a TemplateBook needs a 'default' template")


@dataclass(frozen=True, slots=True, kw_only=True)
class Chosen:
    """The template picked for one call, with the business and link it renders with."""

    name: str
    text: str
    business: str
    link: str
    path: str  # TOML path of the text, for logs


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of check-config output about a template."""

    level: Literal["error", "warning", "info"]
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class _Field:
    name: str


_Part = str | _Field


def _route_index(book: TemplateBook, *, did: str | None, trunk: str | None) -> int | None:
    if did is not None:
        for index, route in enumerate(book.routes):
            if did in route.dids:
                return index
    if trunk is not None:
        for index, route in enumerate(book.routes):
            if trunk in route.trunks:
                return index
    return None


def choose(
    book: TemplateBook,
    *,
    did: str | None,
    trunk: str | None,
    reason: str,
    open_now: bool | None,
    holiday: bool,
    override: str | None = None,
) -> Chosen:
    """The template for one call, by route, then override, holiday, closed, voicemail, default.

    ``open_now`` is None when no opening hours are configured, which counts as
    open. A name is looked up in the route's templates first, then the book's;
    a wanted template that is defined in neither is skipped.
    """
    business, link = book.business, book.link
    shelves: list[tuple[Mapping[str, str], str]] = [(book.templates, book.path)]
    index = _route_index(book, did=did, trunk=trunk)
    if index is not None:
        route = book.routes[index]
        business = business if route.business is None else route.business
        link = link if route.link is None else route.link
        shelves.insert(0, (route.templates, _route_path(book, index)))
    wanted = (
        override,
        "holiday" if holiday else None,
        "after_hours" if open_now is False else None,
        "voicemail" if reason == "voicemail" else None,
        "default",
    )
    for name in wanted:
        for templates, where in shelves:
            if name is not None and name in templates:
                text = templates[name]
                return Chosen(
                    name=name, text=text, business=business, link=link, path=f"{where}.{name}"
                )
    raise AssertionError("unreachable: TemplateBook guarantees a default template")


def render(chosen: Chosen, values: Mapping[str, str]) -> str:
    """The text to send: placeholders filled, tidied where an empty value left a gap.

    ``business`` and ``link`` come from ``chosen``; the other placeholders from
    ``values`` (a missing one is empty). Whitespace inside a value is collapsed
    to single spaces. An empty value takes the space before it along, so
    ``"Hi {caller_name}, ..."`` becomes ``"Hi, ..."`` rather than ``"Hi , ..."``.

    Raises:
        TemplateError: the text has bad braces or an unknown placeholder
            (check-config reports both before the daemon starts).
    """
    parts = _parse(chosen.text)
    unknown = _unknown(parts)
    if unknown:
        raise TemplateError(f"unknown placeholder {{{unknown[0]}}} in {chosen.path}")
    filled = {name: " ".join(values.get(name, "").split()) for name in PLACEHOLDERS}
    filled["business"] = " ".join(chosen.business.split())
    filled["link"] = chosen.link.strip()
    out = ""
    gap = False  # an empty value was just left out
    for part in parts:
        if isinstance(part, _Field):
            value = filled[part.name]
            out += value
            gap = not value
        elif gap and not part.strip(" "):
            # Only spaces between two values: the next literal decides how the seam looks.
            if out and not out.endswith((" ", "\n")):
                out += " "
        elif gap:
            out, literal = _close_gap(out, part)
            out += literal
            gap = False
        else:
            out += part
    return out.rstrip(" ") if gap else out


def lint(path: str, text: str, *, business: str, link: str = "") -> list[Finding]:
    """check-config findings for one template text, as rendered for ``business`` and ``link``."""
    if not text.strip():
        message = "is empty — write the text callers get, naming the business"
        return [Finding("error", path, message)]
    try:
        parts = _parse(text)
    except TemplateError as exc:
        return [Finding("error", path, str(exc))]
    unknown = _unknown(parts)
    findings = [Finding("error", path, _unknown_message(name)) for name in unknown]
    names = {p.name for p in parts if isinstance(p, _Field)}
    literal = "".join(p for p in parts if isinstance(p, str))
    if "business" not in names and (not business or business.lower() not in literal.lower()):
        named = f' (or the name "{business}")' if business else ""
        findings.append(
            Finding(
                "error",
                path,
                f"does not name the business — add {{business}}{named} so the caller knows who"
                " is texting",
            )
        )
    if not _STOP.search(literal):
        findings.append(
            Finding(
                "error",
                path,
                'has no opt-out instruction — add "Reply STOP to opt out." (STOP in capitals)',
            )
        )
    if not unknown:
        findings.extend(_length_findings(path, text, business=business, link=link))
    return findings


def _route_path(book: TemplateBook, index: int) -> str:
    return book.routes[index].path or f"{book.path}.route[{index}].templates"


@functools.lru_cache(maxsize=256)  # every call renders one of a handful of templates
def _parse(text: str) -> tuple[_Part, ...]:
    """Split a template into literal text and placeholders, or say where its braces are wrong."""
    parts: list[_Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char not in "{}":
            literal.append(char)
            i += 1
        elif text.startswith(char * 2, i):
            literal.append(char)
            i += 2
        elif char == "}":
            raise TemplateError(
                f'lone "}}" at character {i + 1} — close a placeholder like {{business}},'
                ' or write "}}" for a literal brace'
            )
        else:
            end = text.find("}", i + 1)
            inner = text[i + 1 : end]
            if end == -1 or "{" in inner:
                raise TemplateError(
                    f'unclosed "{{" at character {i + 1} — close the placeholder with "}}",'
                    ' or write "{{" for a literal brace'
                )
            if not _NAME.fullmatch(inner):
                raise TemplateError(_bad_field_message(inner, i + 1))
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_Field(inner))
            i = end + 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _bad_field_message(inner: str, position: int) -> str:
    guess = inner.strip().lower()
    if guess in PLACEHOLDERS:
        fix = f"write {{{guess}}}"
    else:
        fix = "placeholders are bare names: " + _allowed()
    return f"{{{inner}}} at character {position} is not a placeholder — {fix}"


def _unknown(parts: tuple[_Part, ...]) -> list[str]:
    names = (p.name for p in parts if isinstance(p, _Field) and p.name not in PLACEHOLDERS)
    return list(dict.fromkeys(names))


def _unknown_message(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(PLACEHOLDERS), n=1)
    hint = f"did you mean {{{close[0]}}}? " if close else ""
    return f"unknown placeholder {{{name}}} — {hint}allowed: {_allowed()}"


def _allowed() -> str:
    return ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS))


def _close_gap(before: str, after: str) -> tuple[str, str]:
    """Tidy the seam where an empty value was left out between ``before`` and ``after``."""
    if not before or before.endswith("\n"):
        return before, _LEADING_GAP.sub("", after, count=1)
    if before.endswith(" "):
        rest = after.lstrip(" ")
        if not rest or rest[0] in _CLOSING:
            return before.rstrip(" "), rest
        return before, rest
    return before, after


def _length_findings(path: str, text: str, *, business: str, link: str) -> list[Finding]:
    longest = Chosen(name="", text=text, business=business, link=link, path=path)
    values = {"caller_name": PLAUSIBLE_CALLER_NAME, "did": PLAUSIBLE_NUMBER}
    values["phone"] = PLAUSIBLE_NUMBER
    rendered = render(longest, values)
    size = measure(rendered)
    plural = "s" if size.segments > 1 else ""
    assumed = "with caller name 20 and numbers 15 characters long"
    if size.encoding is Encoding.GSM7:
        limit = GSM7_SINGLE if size.segments == 1 else GSM7_PART
        detail = f"GSM-7, {size.units} characters, {limit} per segment"
    else:
        limit = UCS2_SINGLE if size.segments == 1 else UCS2_PART
        chars = " ".join(_non_gsm_chars(rendered))
        detail = f"UCS-2 because of {chars}, {size.units} UTF-16 units, {limit} per segment"
    findings = [Finding("info", path, f"{size.segments} SMS segment{plural} ({detail}) {assumed}")]
    if size.segments > 1:
        findings.append(Finding("warning", path, _too_long_message(rendered, size.segments)))
    return findings


def _too_long_message(rendered: str, segments: int) -> str:
    message = f"{segments} SMS segments, each billed as one text — shorten it"
    forcing = _non_gsm_chars(rendered)
    if not forcing:
        return f"{message} to {GSM7_SINGLE} characters"
    swaps = [f"{c} with {_GSM_SPELLING[c]}" for c in forcing if c in _GSM_SPELLING]
    others = [c for c in forcing if c not in _GSM_SPELLING]
    fixes = (["replace " + ", ".join(swaps)] if swaps else []) + (
        ["remove " + " ".join(others)] if others else []
    )
    return (
        f"{message}; {' '.join(forcing)} force UCS-2 ({UCS2_SINGLE} characters per text instead"
        f" of {GSM7_SINGLE}): {' and '.join(fixes)}"
    )
