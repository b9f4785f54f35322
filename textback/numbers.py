"""Caller-ID helpers: E.164 normalisation, withheld detection, masking for logs.

Pure. No IO. Nothing here raises on bad input: caller IDs come from carriers and
PBXes, and a strange one must become "no number", never a crash.
"""

from __future__ import annotations

import functools
from typing import Final

import phonenumbers
import phonenumbers.timezone
from phonenumbers import PhoneNumberType

from textback.core.callerid import WITHHELD_WORDS, is_withheld_id
from textback.core.policy import NumberFacts

_URI_SCHEMES: Final = ("sips:", "sip:", "tel:")

# International call prefixes worth trying when the region's own parse fails:
# "00" (most of the world) and "011" (NANP).
_IDD_PREFIXES: Final = ("011", "00")


def _user_part(raw: str) -> str:
    """The number-ish part of a caller ID: the user of a SIP/tel URI, or the text itself."""
    text = raw.strip()
    # 'Alice <sip:+1415...@host>' as some PBXes pass the whole From header.
    if "<" in text and text.endswith(">"):
        inner = text[text.rfind("<") + 1 : -1].strip()
        if inner.lower().startswith(_URI_SCHEMES):
            text = inner
    lowered = text.lower()
    for scheme in _URI_SCHEMES:
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            text = text.split("@", 1)[0]
            # URI parameters (";user=phone", ";phone-context=...") are not digits.
            return text.split(";", 1)[0].strip()
    return text


def is_withheld(raw: str) -> bool:
    """True when the caller ID carries no usable number (anonymous, unknown, all zeros...)."""
    return is_withheld_id(_user_part(raw))


@functools.lru_cache(maxsize=4096)  # a call looks its numbers up several times
def _valid_e164(text: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=4096)  # a call asks for its numbers several times
def to_e164(raw: str, region: str) -> str | None:
    """The caller's number in E.164, or None when it is withheld, malformed or not valid.

    ``region`` is the ISO 3166 country ("US", "GB") whose national format a
    number without "+" is read in.
    """
    if not isinstance(raw, str) or is_withheld(raw):
        return None
    text = _user_part(raw)
    # Letters in a caller ID are a name or garbage, never a vanity number to dial:
    # phonenumbers would happily turn "CALL-NOW-1" into digits.
    if any(c.isalpha() for c in text):
        return None
    region_code = region.strip().upper() or None
    found = _valid_e164(text, region_code)
    if found is not None or text.startswith("+"):
        return found
    digits = "".join(c for c in text if c.isdigit())
    # Only after the region's own reading failed: a national number may begin
    # with these prefixes too (0113 is Leeds).
    for prefix in _IDD_PREFIXES:
        if digits.startswith(prefix):
            return _valid_e164("+" + digits[len(prefix) :], None)
    # Many trunks send international numbers as bare E.164 digits without "+".
    return _valid_e164("+" + digits, None)


def mask(number: str) -> str:
    """A caller ID fit for logs: "+14155550101" → "+1415***0101", "101" → "*01"."""
    if number.lower() in WITHHELD_WORDS:
        return number  # "anonymous" says nothing about anyone
    plus = "+" if number.startswith("+") else ""
    body = number[len(plus) :]
    if len(body) >= 8 and body.isdigit():
        # Always hide at least three digits; the fixed "***" also hides how many.
        lead = min(4, len(body) - 7)
        return f"{plus}{body[:lead]}***{body[-4:]}"
    visible = min(2, max(len(body) - 1, 0))
    return plus + "*" * (len(body) - visible) + body[len(body) - visible :]


# PhoneNumberType value -> its name ("MOBILE", "TOLL_FREE", ...), as the policy names them.
_TYPE_NAMES: Final = {v: n for n, v in vars(PhoneNumberType).items() if n.isupper()}


@functools.lru_cache(maxsize=4096)  # phonenumbers is slow, and callers call again
def _parsed(e164: str) -> phonenumbers.PhoneNumber | None:
    """``e164`` parsed once for the lookups below; None when it does not parse."""
    try:
        return phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None


@functools.lru_cache(maxsize=4096)
def number_facts(e164: str | None) -> NumberFacts:
    """Region and line type of a number, for the texting policy."""
    parsed = None if e164 is None else _parsed(e164)
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        return NumberFacts(e164=None, region=None, kind="INVALID")
    kind = _TYPE_NAMES.get(phonenumbers.number_type(parsed), "UNKNOWN")
    return NumberFacts(e164=e164, region=phonenumbers.region_code_for_number(parsed), kind=kind)


@functools.lru_cache(maxsize=4096)
def time_zones(e164: str) -> tuple[str, ...]:
    """The recipient's possible time zones; empty when the number does not tell."""
    parsed = _parsed(e164)
    if parsed is None:
        return ()
    zones = phonenumbers.timezone.time_zones_for_number(parsed)
    return tuple(z for z in zones if z != "Etc/Unknown")


@functools.lru_cache(maxsize=4096)
def national(e164: str) -> str:
    """How the number is written at home ("(212) 555-0100"), for templates."""
    parsed = _parsed(e164)
    if parsed is None:
        return e164
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
