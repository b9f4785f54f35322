"""SMS length: GSM-7 and UCS-2 units and segments, as carriers bill them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from textback.core.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Encoding,
    SmsLength,
    is_gsm7,
    measure,
    non_gsm_chars,
)

EMOJI = "😀"  # outside the BMP: two UTF-16 units
texts = st.text(alphabet=st.sampled_from("aZ0 .,\n€{}[]^~|\\éÑ’“”çŁ" + EMOJI + "👍"), max_size=400)


class TestAlphabet:
    def test_basic_table_is_the_3gpp_default_alphabet_without_escape(self) -> None:
        """The basic table holds the 127 printable GSM 03.38 characters; ESC is not one of them."""
        assert len(GSM7_BASIC) == 127
        assert "\x1b" not in GSM7_BASIC
        assert set("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà") <= GSM7_BASIC

    def test_extension_table(self) -> None:
        """The extension table holds exactly the ten escaped characters."""
        assert frozenset("\f^{}\\[~]|€") == GSM7_EXTENSION

    @pytest.mark.parametrize("char", ["’", "“", "”", "ç", "–", "…", "\u00a0", "\x1b", "Ł", EMOJI])
    def test_common_intruders_are_not_gsm(self, char: str) -> None:
        """Curly quotes, dashes, lower-case c-cedilla, emoji and ESC are outside GSM-7."""
        assert not is_gsm7(char)


class TestMeasure:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", SmsLength(Encoding.GSM7, 0, 1)),
            ("a" * 160, SmsLength(Encoding.GSM7, 160, 1)),
            ("a" * 161, SmsLength(Encoding.GSM7, 161, 2)),
            ("a" * 306, SmsLength(Encoding.GSM7, 306, 2)),
            ("a" * 307, SmsLength(Encoding.GSM7, 307, 3)),
            ("€" * 80, SmsLength(Encoding.GSM7, 160, 1)),
            ("€" * 81, SmsLength(Encoding.GSM7, 162, 2)),
            ("a" * 159 + "^", SmsLength(Encoding.GSM7, 161, 2)),
            ("’" * 70, SmsLength(Encoding.UCS2, 70, 1)),
            ("’" * 71, SmsLength(Encoding.UCS2, 71, 2)),
            ("’" * 134, SmsLength(Encoding.UCS2, 134, 2)),
            ("’" * 135, SmsLength(Encoding.UCS2, 135, 3)),
            (EMOJI * 35, SmsLength(Encoding.UCS2, 70, 1)),
            (EMOJI * 36, SmsLength(Encoding.UCS2, 72, 2)),
            ("a" * 69 + "’", SmsLength(Encoding.UCS2, 70, 1)),
            ("a" * 150 + "’", SmsLength(Encoding.UCS2, 151, 3)),
        ],
    )
    def test_table(self, text: str, expected: SmsLength) -> None:
        """Units and segments at the single-message and per-part boundaries of both encodings."""
        assert expected == measure(text)

    def test_escape_pair_is_not_split_across_parts(self) -> None:
        """An extension character that would straddle two parts starts the next part."""
        text = "a" * 152 + "{" + "a" * 152  # 306 septets, but the brace cannot take 153+154
        assert SmsLength(Encoding.GSM7, 306, 3) == measure(text)

    def test_surrogate_pair_is_not_split_across_parts(self) -> None:
        """An emoji that would straddle two UCS-2 parts starts the next part."""
        text = "a" * 66 + EMOJI + "a" * 66  # 134 units, but the emoji cannot take units 67+68
        assert SmsLength(Encoding.UCS2, 134, 3) == measure(text)

    def test_one_curly_quote_switches_the_whole_text(self) -> None:
        """A single non-GSM character makes every character count in UCS-2."""
        plain = "We’re sorry we missed your call. Reply STOP to opt out."
        assert measure(plain).encoding == Encoding.UCS2
        assert measure(plain.replace("’", "'")).encoding == Encoding.GSM7


class TestNonGsmChars:
    def test_distinct_in_order_of_appearance(self) -> None:
        """Each character forcing UCS-2 is listed once, where it first appears."""
        assert non_gsm_chars("Hi “Bob” it’s é€ 😀 “") == ["“", "”", "’", EMOJI]

    def test_gsm_text_has_none(self) -> None:
        """A GSM-7 text, extension characters included, forces nothing."""
        assert non_gsm_chars("Acme {plumbing} [24/7] ~ €5 ^ | \\") == []


class TestProperties:
    @given(texts, texts)
    def test_segments_never_shrink_as_text_grows(self, head: str, tail: str) -> None:
        """Appending characters never lowers the segment count, even across an encoding switch."""
        assert measure(head).segments <= measure(head + tail).segments

    @given(texts)
    def test_units_match_the_encoding(self, text: str) -> None:
        """GSM-7 units are septets (extensions count 2); UCS-2 units are UTF-16 code units."""
        size = measure(text)
        if size.encoding is Encoding.GSM7:
            assert sum(2 if c in GSM7_EXTENSION else 1 for c in text) == size.units
            assert non_gsm_chars(text) == []
        else:
            assert len(text.encode("utf-16-le")) // 2 == size.units
            assert non_gsm_chars(text)

    @given(texts)
    def test_segments_are_within_one_unit_per_part_of_the_naive_count(self, text: str) -> None:
        """A multipart text needs ceil(units/part) parts, or more only by never splitting a pair."""
        size = measure(text)
        single, part = (160, 153) if size.encoding is Encoding.GSM7 else (70, 67)
        if size.units <= single:
            assert size.segments == 1
        else:
            assert math.ceil(size.units / part) <= size.segments
            assert size.segments <= math.ceil(size.units / (part - 1))
