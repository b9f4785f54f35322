"""How long a text is on the air: encoding, units and segments. Pure.

GSM-7 (3GPP TS 23.038 default alphabet) fits 160 septets in a single SMS and
153 per part of a concatenated one (the user-data header takes the rest). The
extension-table characters cost two septets (an escape plus the character).
One character outside both tables switches the whole text to UCS-2: 70 UTF-16
code units single, 67 per part, and characters outside the BMP (most emoji)
take two units.

An escape pair or a surrogate pair is never split across two parts, as real
encoders do, so a part may hold one unit less than its maximum.

An empty text counts as 0 units in 1 segment: sending it still costs one SMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# ESC (0x1B) is left out on purpose: it is the escape prefix, not a character
# a text can carry.
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE: Final = 160
GSM7_PART: Final = 153
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True, slots=True)
class SmsLength:
    """A text's encoding, its size in that encoding's units, and the SMS parts it needs."""

    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def is_gsm7(char: str) -> bool:
    """Whether one character can be sent in GSM-7 (basic or extension table)."""
    return char in GSM7_BASIC or char in GSM7_EXTENSION


def non_gsm_chars(text: str) -> list[str]:
    """The distinct characters of ``text`` that force UCS-2, in order of first appearance."""
    return list(dict.fromkeys(c for c in text if not is_gsm7(c)))


def measure(text: str) -> SmsLength:
    """Encoding, units and segment count of ``text`` as a carrier would send it."""
    if all(is_gsm7(c) for c in text):
        sizes = [2 if c in GSM7_EXTENSION else 1 for c in text]
        return SmsLength(Encoding.GSM7, sum(sizes), _segments(sizes, GSM7_SINGLE, GSM7_PART))
    sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SmsLength(Encoding.UCS2, sum(sizes), _segments(sizes, UCS2_SINGLE, UCS2_PART))


def _segments(sizes: list[int], single: int, part: int) -> int:
    """Parts needed for characters of the given unit sizes, never splitting one character."""
    if sum(sizes) <= single:
        return 1
    parts, used = 1, 0
    for size in sizes:
        if used + size > part:
            parts, used = parts + 1, 0
        used += size
    return parts
