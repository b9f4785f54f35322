"""Templates: route and time choose the text, render fills it, lint checks it for check-config."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from textback.core.hours import OpeningHours
from textback.core.templates import (
    Chosen,
    Finding,
    Route,
    TemplateBook,
    TemplateError,
    choose,
    lint,
    render,
)

STOP = "Reply STOP to opt out."
DEFAULT = f"Hi {{caller_name}}, sorry we missed your call to {{business}}. {{link}} {STOP}"
BOOK = TemplateBook(
    business="Acme Plumbing",
    link="https://acme.example/book",
    templates={
        "default": DEFAULT,
        "after_hours": f"{{business}} is closed. {STOP}",
        "holiday": f"{{business}} is closed for the holiday. {STOP}",
        "voicemail": f"{{business}} got your voicemail. {STOP}",
        "busy_text": f"{{business}} was busy. {STOP}",
    },
    routes=(
        Route(name="by trunk", trunks=("carrier-b",), business="Acme North"),
        Route(
            name="spanish",
            dids=("+14155550199",),
            trunks=("carrier-a",),
            business="Acme Fontanería",
            link="https://acme.example/es",
            templates={"default": f"{{business}}: le llamaremos. Responda STOP. {STOP}"},
        ),
    ),
)


def pick(**kwargs: object) -> Chosen:
    call: dict[str, object] = {
        "did": "+14155550100",
        "trunk": "carrier-x",
        "reason": "no_answer",
        "open_now": True,
        "holiday": False,
    }
    call.update(kwargs)
    return choose(BOOK, **call)  # type: ignore[arg-type]


def chosen(text: str) -> Chosen:
    return Chosen(name="default", text=text, business="Acme", link="https://a.example", path="t")


class TestChoose:
    @pytest.mark.parametrize(
        ("call", "expected"),
        [
            ({}, "default"),
            ({"open_now": None}, "default"),
            ({"open_now": False}, "after_hours"),
            ({"reason": "voicemail"}, "voicemail"),
            ({"reason": "voicemail", "open_now": False}, "after_hours"),
            ({"holiday": True}, "holiday"),
            ({"holiday": True, "open_now": False, "reason": "voicemail"}, "holiday"),
            ({"override": "busy_text", "holiday": True}, "busy_text"),
            ({"override": "no_such_template", "open_now": False}, "after_hours"),
        ],
    )
    def test_name_by_override_holiday_hours_and_reason(
        self, call: dict[str, object], expected: str
    ) -> None:
        """Override beats holiday beats closed beats voicemail beats default."""
        assert pick(**call).name == expected

    def test_missing_kinds_fall_back_to_default(self) -> None:
        """A book with only a default uses it for holidays, after hours and voicemail."""
        book = TemplateBook(business="B", link="", templates={"default": "x"})
        got = choose(book, did=None, trunk=None, reason="voicemail", open_now=False, holiday=True)
        assert (got.name, got.text, got.path) == ("default", "x", "templates.default")

    def test_book_template_carries_book_business(self) -> None:
        """Without a matching route the book's business, link and text are used."""
        assert pick() == Chosen(
            name="default",
            text=DEFAULT,
            business="Acme Plumbing",
            link="https://acme.example/book",
            path="templates.default",
        )

    def test_did_match_beats_an_earlier_trunk_match(self) -> None:
        """The DID route wins even when a route listed before it matches the trunk."""
        got = pick(did="+14155550199", trunk="carrier-b")
        assert (got.business, got.path) == (
            "Acme Fontanería",
            "templates.route[1].templates.default",
        )

    def test_trunk_match_when_no_did_matches(self) -> None:
        """The first route naming the trunk is used when no route names the DID."""
        assert pick(trunk="carrier-a").business == "Acme Fontanería"
        assert pick(trunk="carrier-b").business == "Acme North"

    def test_route_falls_back_to_book_templates_and_link(self) -> None:
        """A route lacking an after-hours text or link borrows the book's, keeping its business."""
        got = pick(trunk="carrier-b", open_now=False)
        assert (got.name, got.business, got.link, got.path) == (
            "after_hours",
            "Acme North",
            "https://acme.example/book",
            "templates.after_hours",
        )

    def test_explicit_route_path_names_its_table(self) -> None:
        """A route built with a TOML path reports its texts under that path."""
        route = Route(name="r", dids=("+1",), templates={"default": "y"}, path="routes.r")
        book = TemplateBook(business="B", link="", templates={"default": "x"}, routes=(route,))
        got = choose(book, did="+1", trunk=None, reason="busy", open_now=True, holiday=False)
        assert got.path == "routes.r.default"

    def test_unlisted_call_uses_the_book(self) -> None:
        """A call on no listed DID or trunk, or with neither known, gets the book's texts."""
        assert pick(did=None, trunk=None).business == "Acme Plumbing"
        assert pick(did="+19995550100", trunk="carrier-z").business == "Acme Plumbing"

    def test_default_is_required(self) -> None:
        """A book without a default template cannot be built."""
        with pytest.raises(ValueError, match="default"):
            TemplateBook(business="B", link="", templates={"after_hours": "x"})


class TestRender:
    def test_fills_every_placeholder(self) -> None:
        """Business and link come from the choice, the rest from the values."""
        text = "{business} {link} {caller_name} {did} {phone}"
        values = {"caller_name": "Ann", "did": "+14155550199", "phone": "(415) 555-0199"}
        expected = "Acme https://a.example Ann +14155550199 (415) 555-0199"
        assert render(chosen(text), values) == expected

    def test_choice_business_beats_values(self) -> None:
        """A stray business value cannot replace the route's business."""
        assert render(chosen("{business}"), {"business": "Other"}) == "Acme"

    def test_escaped_braces_and_literal_values(self) -> None:
        """{{ and }} are literal braces; braces inside a value are never expanded."""
        got = render(chosen("{{caller_name}} {caller_name}"), {"caller_name": "{business}"})
        assert got == "{caller_name} {business}"

    def test_value_whitespace_is_collapsed(self) -> None:
        """A caller name with runs of spaces or a newline becomes single-spaced."""
        assert render(chosen("Hi {caller_name}."), {"caller_name": " SMITH \n JOHN "}) == (
            "Hi SMITH JOHN."
        )

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Hi {caller_name}, thanks", "Hi, thanks"),
            ("Hi {caller_name} , thanks", "Hi, thanks"),
            ("Sorry {caller_name}.", "Sorry."),
            ("Hi {caller_name}!", "Hi!"),
            ("Thanks {caller_name}", "Thanks"),
            ("Hi {caller_name} from {business}", "Hi from Acme"),
            ("{caller_name}, sorry", "sorry"),
            ("Hi!\n{caller_name} we missed you", "Hi!\nwe missed you"),
            ("Hi {caller_name} {did}, x", "Hi, x"),
            ("Hi,{caller_name} {did} x", "Hi, x"),
            ("Hi  there {caller_name}", "Hi  there"),
        ],
    )
    def test_empty_value_leaves_no_gap(self, text: str, expected: str) -> None:
        """An empty caller name never leaves "Hi ," or a doubled space behind."""
        assert render(chosen(text), {"caller_name": "", "did": ""}) == expected

    @pytest.mark.parametrize(
        ("text", "match"),
        [
            ("{name}", "unknown placeholder {name}"),
            ("{business", "unclosed"),
            ("}", "lone"),
            ("{0}", "not a placeholder"),
        ],
    )
    def test_bad_templates_raise(self, text: str, match: str) -> None:
        """A template check-config would reject cannot be rendered by accident."""
        with pytest.raises(TemplateError, match=match):
            render(chosen(text), {})

    @given(st.text(alphabet=st.characters(blacklist_characters="{}")))
    def test_text_without_placeholders_is_unchanged(self, text: str) -> None:
        """Tidying only touches seams left by empty values, never the author's own text."""
        assert render(chosen(text), {"caller_name": ""}) == text

    @given(
        st.from_regex(r"[A-Za-z]+( [A-Za-z]+)*", fullmatch=True),
        st.sampled_from(["", ",", ".", "!", "?"]),
        st.from_regex(r"[A-Za-z]+( [A-Za-z]+)*", fullmatch=True),
    )
    def test_empty_name_reads_as_if_never_written(self, head: str, mark: str, tail: str) -> None:
        """Dropping an empty name gives the sentence the author would have written without it."""
        got = render(chosen(f"{head} {{caller_name}}{mark} {tail}"), {"caller_name": ""})
        assert got == f"{head}{mark} {tail}"


class TestLint:
    def test_good_template_gets_only_its_length(self) -> None:
        """A template naming the business with a STOP line gets one info line."""
        got = lint("templates.default", DEFAULT, business="Acme", link="https://a.example")
        assert [f.level for f in got] == ["info"]
        assert got[0].message.startswith("1 SMS segment (GSM-7, ")

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (f"{{business}} {{name}} {STOP}", "unknown placeholder {name} — allowed: {business}"),
            (f"{{busines}} {STOP}", "did you mean {business}?"),
            (f"{{business}} {{ caller_name }} {STOP}", "write {caller_name}"),
            (f"{{business}} {{caller_name {STOP}", 'unclosed "{" at character 12'),
            (f"{{business}} }} {STOP}", 'write "}}" for a literal brace'),
            (f"Sorry we missed you. {STOP}", "does not name the business — add {business}"),
            ("{business}: sorry we missed you.", "has no opt-out instruction"),
            ("{business}: reply stop to opt out", "STOP in capitals"),
            ("  ", "is empty"),
        ],
    )
    def test_errors_name_the_fix(self, text: str, message: str) -> None:
        """Each error is one line under the template's path saying what to change."""
        errors = [f for f in lint("t.x", text, business="Acme") if f.level == "error"]
        assert any(message in f.message for f in errors), errors
        assert all(f.path == "t.x" and "\n" not in f.message for f in errors)

    def test_literal_business_name_counts(self) -> None:
        """Writing the business name out, in any case, satisfies the naming rule."""
        got = lint("t", f"ACME plumbing here. {STOP}", business="Acme Plumbing")
        assert [f.level for f in got] == ["info"]

    def test_length_assumes_longest_values(self) -> None:
        """A text that fits with a short caller name still warns when a 20-letter one would not."""
        room = 160 - len("X" * 20 + " ") - len(f" Acme {STOP}")
        exact = "{caller_name} " + "x" * room + f" {{business}} {STOP}"
        over = "{caller_name} " + "x" * (room + 1) + f" {{business}} {STOP}"
        assert len(render(chosen(over), {"caller_name": "Al"})) < 160
        assert [f.level for f in lint("t", exact, business="Acme")] == ["info"]
        assert lint("t", over, business="Acme")[1] == Finding(
            "warning", "t", "2 SMS segments, each billed as one text — shorten it to 160 characters"
        )

    def test_ucs2_warning_names_the_characters_and_the_fix(self) -> None:
        """Curly quotes and emoji that push a text past one segment are named, with replacements."""
        text = "We’re sorry we missed your call 😀 " * 2 + f"{{business}} {STOP}"
        got = lint("t", text, business="Acme")
        assert got[0] == Finding(
            "info",
            "t",
            "2 SMS segments (UCS-2 because of ’ 😀, 97 UTF-16 units, 67 per segment)"
            " with caller name 20 and numbers 15 characters long",
        )
        assert got[1] == Finding(
            "warning",
            "t",
            "2 SMS segments, each billed as one text — shorten it; ’ 😀 force UCS-2"
            " (70 characters per text instead of 160): replace ’ with ' and remove 😀",
        )

    def test_single_segment_ucs2_is_only_info(self) -> None:
        """A short text in UCS-2 is reported, not warned about."""
        got = lint("t", f"{{business}}’s line. {STOP}", business="Acme")
        assert [f.level for f in got] == ["info"]
        assert "UCS-2 because of ’" in got[0].message


class TestHoliday:
    HOURS = OpeningHours(
        timezone="America/New_York",
        weekly=(((540, 1020),),) * 7,
        holidays=frozenset({date(2024, 12, 25)}),
    )

    @pytest.mark.parametrize(
        ("local", "expected"),
        [
            ("2024-12-24T23:59", False),
            ("2024-12-25T00:00", True),
            ("2024-12-25T12:00", True),
            ("2024-12-26T00:00", False),
            ("2024-12-26T12:00", False),
        ],
    )
    def test_holiday_by_local_date(self, local: str, expected: bool) -> None:
        """A holiday runs from local midnight to midnight in the business's zone, and closes it."""
        epoch = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo("America/New_York"))
        assert self.HOURS.is_holiday(epoch.timestamp()) is expected
        assert self.HOURS.is_open(epoch.timestamp()) is (not expected and epoch.hour == 12)
