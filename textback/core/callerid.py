"""Caller IDs that carry no number to call back. Pure."""

from __future__ import annotations

import re
from typing import Final

# What PBXes and carriers put in the caller-ID field when there is no number.
WITHHELD_WORDS: Final = frozenset(
    {
        "",
        "<unknown>",
        "anonymous",
        "unknown",
        "restricted",
        "private",
        "unavailable",
        "withheld",
        "blocked",
        "asterisk",
        "s",
    }
)


def is_withheld_id(text: str) -> bool:
    """True when a caller-ID user part is a no-number word, has no digits, or only zeros."""
    lowered = text.strip().lower()
    if lowered in WITHHELD_WORDS:
        return True
    digits = [c for c in lowered if c.isdigit()]
    return not digits or all(c == "0" for c in digits)


# Asterisk callerid.h: bits 0x60 of a presentation value are the restriction;
# 0x20 is "restricted", 0x40 "unavailable", 0x60 is reserved (treated as hidden).
_AST_PRES_RESTRICTION: Final = 0x60

_RESTRICTED_PRES_NAMES: Final = frozenset(
    {
        "prohib_not_screened",
        "prohib_passed_screen",
        "prohib_failed_screen",
        "prohib",
        "unavailable",
    }
)

# "0x20", "32" or NewCallerid's "32 (Presentation Prohibited, Not Screened)".
_LEADING_NUMBER: Final = re.compile(r"^(0x[0-9a-f]+|\d+)\b")


def is_restricted_presentation(pres: str) -> bool:
    """True when an Asterisk CALLERID(pres) value says the number must not be shown."""
    text = pres.strip().lower()
    if not text:
        return False
    if text in _RESTRICTED_PRES_NAMES or text.startswith("prohib"):
        return True
    match = _LEADING_NUMBER.match(text)
    if match is not None:
        return bool(int(match.group(1), 0) & _AST_PRES_RESTRICTION)
    # Descriptions as ast_describe_caller_presentation() writes them.
    return "prohibited" in text or "restricted" in text or "unavailable" in text
