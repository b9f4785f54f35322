from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from textback.core.callerid import WITHHELD_WORDS, is_restricted_presentation
from textback.numbers import is_withheld, mask, national, number_facts, time_zones, to_e164


class TestToE164:
    @pytest.mark.parametrize(
        ("raw", "region", "expected"),
        [
            ("+14155550101", "US", "+14155550101"),
            ("4155550101", "US", "+14155550101"),
            ("14155550101", "US", "+14155550101"),
            ("+1 415 555 0101", "US", "+14155550101"),
            ("(415) 555-0101", "US", "+14155550101"),
            ("  4155550101  ", "US", "+14155550101"),
            ("4155550101", "us", "+14155550101"),
            ("sip:+14155550101@192.0.2.10;user=phone", "US", "+14155550101"),
            ("sips:4155550101@pbx.example.com", "US", "+14155550101"),
            ('"Alice" <sip:+14155550101@192.0.2.10>', "US", "+14155550101"),
            ("tel:+1-415-555-0101", "US", "+14155550101"),
            ("tel:+1-415-555-0101;phone-context=example.com", "US", "+14155550101"),
            ("011442079460958", "US", "+442079460958"),
            ("0044 20 7946 0958", "US", "+442079460958"),
            ("0044 20 7946 0958", "GB", "+442079460958"),
            ("020 7946 0958", "GB", "+442079460958"),
            ("+447911123456", "US", "+447911123456"),
            # A UK national number that starts like the NANP prefix stays national.
            ("0113 496 0000", "GB", "+441134960000"),
            # A trunk that sends bare international digits outside the caller's region.
            ("14155550101", "DE", "+14155550101"),
        ],
    )
    def test_valid_numbers_normalise(self, raw: str, region: str, expected: str) -> None:
        """Caller IDs in the shapes PBXes deliver them become E.164."""
        assert expected == to_e164(raw, region)

    @pytest.mark.parametrize(
        ("raw", "region"),
        [
            ("", "US"),
            ("<unknown>", "US"),
            ("anonymous", "US"),
            ("Anonymous", "US"),
            ("sip:anonymous@anonymous.invalid", "US"),
            ("restricted", "US"),
            ("0000000000", "US"),
            ("101", "US"),
            ("12345", "US"),
            ("+999123", "US"),
            ("+1415555", "US"),
            ("CALL-NOW-1", "US"),
            ("1-800-FLOWERS", "US"),
            ("FM101", "US"),
            ("4155550101", "XX"),
            ("4155550101", ""),
            ("sip:@host", "US"),
            ("<", "US"),
        ],
    )
    def test_withheld_and_invalid_give_none(self, raw: str, region: str) -> None:
        """Withheld, short, invalid or alphabetic caller IDs never produce a number to text."""
        assert None is to_e164(raw, region)

    @given(raw=st.text(max_size=40), region=st.sampled_from(["US", "GB", "DE", "", "ZZ"]))
    def test_never_raises(self, raw: str, region: str) -> None:
        """Any text gives an E.164 string or None, never an exception."""
        result = to_e164(raw, region)
        assert result is None or (result.startswith("+") and result[1:].isdigit())


class TestIsWithheld:
    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "   ",
            "<unknown>",
            "anonymous",
            "ANONYMOUS",
            " Anonymous ",
            "unknown",
            "restricted",
            "private",
            "Private",
            "unavailable",
            "withheld",
            "blocked",
            "asterisk",
            "s",
            "0",
            "0000",
            "+000000",
            "sip:anonymous@anonymous.invalid",
            "sip:anonymous@192.0.2.1",
            "Bob",
        ],
    )
    def test_withheld_forms(self, raw: str) -> None:
        """Words and digit-less or all-zero values mean no number was presented."""
        assert is_withheld(raw)

    @pytest.mark.parametrize(
        "raw", ["+14155550101", "4155550101", "101", "sip:+14155550101@host", "FM101", "00441"]
    )
    def test_numbers_are_not_withheld(self, raw: str) -> None:
        """Anything with a non-zero digit counts as presented (validity is to_e164's job)."""
        assert not is_withheld(raw)


class TestIsRestrictedPresentation:
    @pytest.mark.parametrize(
        ("pres", "expected"),
        [
            ("prohib_not_screened", True),
            ("prohib_passed_screen", True),
            ("prohib_failed_screen", True),
            ("prohib", True),
            ("unavailable", True),
            (" PROHIB_NOT_SCREENED ", True),
            ("allowed_not_screened", False),
            ("allowed_passed_screen", False),
            ("allowed_failed_screen", False),
            ("allowed", False),
            ("", False),
            ("0", False),
            ("3", False),
            ("32", True),
            ("35", True),
            ("0x20", True),
            ("67", True),
            ("0x43", True),
            ("32 (Presentation Prohibited, Not Screened)", True),
            ("0 (Presentation Allowed, Not Screened)", False),
            ("Presentation Prohibited, Not Screened", True),
            ("Number Unavailable", True),
            ("Presentation Allowed, Not Screened", False),
        ],
    )
    def test_presentation_table(self, pres: str, expected: bool) -> None:
        """Named, numeric (0x20/0x40 bits) and described presentations are classified."""
        assert expected is is_restricted_presentation(pres)


class TestMask:
    @pytest.mark.parametrize(
        ("number", "expected"),
        [
            ("+14155550101", "+1415***0101"),
            ("+447911123456", "+4479***3456"),
            ("4155550101", "415***0101"),
            ("+3212345678", "+321***5678"),
            ("12345678", "1***5678"),
            ("1234567", "*****67"),
            ("101", "*01"),
            ("12", "*2"),
            ("1", "*"),
            ("", ""),
            ("+123", "+*23"),
            ("anonymous", "anonymous"),
            ("Private", "Private"),
            ("Jane", "**ne"),
        ],
    )
    def test_mask_table(self, number: str, expected: str) -> None:
        """Numbers keep a recognisable head and tail; short or odd strings only their end."""
        assert expected == mask(number)

    @given(st.text(max_size=30))
    def test_never_reveals_more_than_eight_characters(self, number: str) -> None:
        """At most 4 leading and 4 trailing characters survive, and something is always hidden.

        The exception: the handful of words that mean "no number" ("anonymous").
        """
        assume(number.lower() not in WITHHELD_WORDS)
        masked = mask(number)
        visible = [c for c in masked if c not in "*+"]
        assert len(visible) <= 8
        if number.lstrip("+"):
            assert "*" in masked


class TestNumberFacts:
    @pytest.mark.parametrize(
        ("number", "region", "kind"),
        [
            ("+14155550101", "US", "FIXED_LINE_OR_MOBILE"),
            ("+18005550100", "US", "TOLL_FREE"),
            ("+19005550100", "US", "PREMIUM_RATE"),
            ("+18765550100", "JM", "MOBILE"),  # +1 but Jamaica: billed as international
        ],
    )
    def test_region_and_type(self, number: str, region: str, kind: str) -> None:
        """Region comes from the number itself, not from +1; the type is phonenumbers' name."""
        facts = number_facts(number)
        assert (facts.e164, facts.region, facts.kind) == (number, region, kind)

    def test_invalid_and_missing(self) -> None:
        """No number, or one phonenumbers rejects, is INVALID with no region."""
        assert number_facts(None).kind == "INVALID"
        assert number_facts("+1555").kind == "INVALID"

    def test_time_zones_and_national_form(self) -> None:
        """A New York number is in New York's zone and reads (212) 555-0100 at home."""
        assert time_zones("+12125550100") == ("America/New_York",)
        assert time_zones("garbage") == ()
        assert national("+12125550100") == "(212) 555-0100"
