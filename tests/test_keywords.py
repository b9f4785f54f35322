from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from textback.core.keywords import (
    HELP_KEYWORDS,
    OPT_OUT_PHRASES,
    START_KEYWORDS,
    STOP_KEYWORDS,
    Intent,
    classify,
    is_urgent,
)

STOPS = [
    "STOP",
    "STOPALL",
    "STOP ALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
    "OPT-OUT",
    "REMOVE",
    "ARRET",
    "ARRÊT",
    "arrêt",
    "Arret.",
    "stop",
    "Stop!",
    "  stop  \n",
    "S.T.O.P.",
    "ＳＴＯＰ",  # full-width, as some phone keyboards send it
    "STOP 12345",
    "Stop. Thank you",
    "stop please",
    "Please stop",
    "STOP STOP STOP",
    "Stop it",
    "stop now!!",
    "STOP wrong person",
    "stop the texts",
    "cancel please",
    "END 4471",
    "Quit. Thanks",
    "remove",
    "Unsubscribe me",
    "stop texting me",
    "Please stop texting me.",
    "STOP MESSAGING",
    "stop messaging me please, I already booked someone",
    "don't text me",
    "Don’t text me again",  # a phone's curly apostrophe
    "dont text me",
    "Do not text this number",
    "remove me",
    "Remove me from your list",
    "take me off",
    "Please take me off your list",
    "unsubscribe me",
    "no more texts",
    "No more texts please",
    "leave me alone",
    "Just leave me alone!",
    "how do I opt out?",
    "opt me out",
]

STARTS = ["START", "start", "Unstop", "YES", "yes!", "Yes.", "SUBSCRIBE", "  start  "]
HELPS = ["HELP", "help", "Help?", "INFO", "info.", " Info "]

MESSAGES = [
    "Can you stop by tomorrow?",
    "the pipe won't stop leaking",
    "yes please come at 3",
    "help! my basement is flooding",
    "help me",
    "Stop by any time after 2",
    "Stop the leak please, it's flooding",
    "Cancel my appointment for Tuesday",
    "End of the day works",
    "Quit worrying, we fixed it ourselves",
    "Remove the old water heater too",
    "Thanks for calling back",
    "Information about prices?",
    "How much to unclog a drain?",
    "",
    "   ",
    "!!!",
    "👍",
    "STOPPED by the shop earlier",
    "non-stop leak since Monday",
]


@pytest.mark.parametrize("text", STOPS)
def test_opt_out_wordings_are_stop(text: str) -> None:
    """Every opt-out keyword and plain-language request classifies as STOP."""
    assert classify(text) == Intent.STOP


@pytest.mark.parametrize("text", STARTS)
def test_opt_in_keywords_are_start(text: str) -> None:
    """START, UNSTOP, YES and SUBSCRIBE on their own opt back in."""
    assert classify(text) == Intent.START


@pytest.mark.parametrize("text", HELPS)
def test_help_keywords_are_help(text: str) -> None:
    """A bare HELP or INFO asks for the help text."""
    assert classify(text) == Intent.HELP


@pytest.mark.parametrize("text", MESSAGES)
def test_conversation_is_message(text: str) -> None:
    """Ordinary replies that merely contain a keyword word stay conversation messages."""
    assert classify(text) == Intent.MESSAGE


def test_intent_values() -> None:
    """The intents' values are the strings stored in the database."""
    assert [i.value for i in Intent] == ["stop", "start", "help", "message"]


_PUNCTUATION = st.sampled_from([".", "!", "?", ",", ";", ":", "-", "(", ")", '"', "'", "…", "*"])
_SPACE = st.sampled_from([" ", "\t", "\n", "\r\n", "\u00a0", "\u3000"])
_AROUND = st.lists(st.one_of(_PUNCTUATION, _SPACE), max_size=4).map("".join)


@st.composite
def _random_case(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if up else c.lower() for c, up in zip(word, flips, strict=True))


_KEYWORDS = (
    [(k, Intent.STOP) for k in STOP_KEYWORDS]
    + [(k, Intent.START) for k in START_KEYWORDS]
    + [(k, Intent.HELP) for k in HELP_KEYWORDS]
)


@given(
    st.sampled_from(_KEYWORDS).flatmap(
        lambda pair: st.tuples(_random_case(pair[0]), st.just(pair[1]))
    ),
    _AROUND,
    _AROUND,
)
def test_keywords_ignore_case_space_and_punctuation(
    keyword: tuple[str, Intent], before: str, after: str
) -> None:
    """A keyword means the same whatever its case and the whitespace or punctuation around it."""
    word, intent = keyword
    assert classify(before + word + after) == intent


# Separators that keep a phrase apart from its neighbours (an apostrophe would join words).
_SEPARATOR = st.lists(
    st.one_of(_SPACE, _PUNCTUATION.filter(lambda p: p != "'")), min_size=1, max_size=3
).map("".join)


@given(
    st.text(),
    _SEPARATOR,
    st.sampled_from(OPT_OUT_PHRASES).flatmap(_random_case),
    _SEPARATOR,
    st.text(),
)
def test_any_text_with_an_opt_out_phrase_is_stop(
    before: str, sep1: str, phrase: str, sep2: str, after: str
) -> None:
    """Whatever surrounds it, a plain-language opt-out request makes the reply STOP."""
    assert classify(before + sep1 + phrase + sep2 + after) == Intent.STOP


@given(st.text(alphabet=st.characters(exclude_categories=())))
def test_classify_never_raises(text: str) -> None:
    """Any Unicode at all, lone surrogates included, gets an intent and no exception."""
    assert classify(text) in set(Intent)


@given(st.text(alphabet=st.characters(exclude_categories=())), st.lists(st.text()))
def test_is_urgent_never_raises(text: str, keywords: list[str]) -> None:
    """Any text and keyword list give a boolean and no exception."""
    assert is_urgent(text, keywords) in (True, False)


class TestUrgent:
    @pytest.mark.parametrize(
        ("text", "keywords"),
        [
            ("URGENT: water everywhere", ["urgent"]),
            ("this is urgent!!", ["URGENT"]),
            ("Urgent", ["urgent", "emergency"]),
            ("it's an EMERGENCY", ["urgent", "emergency"]),
            ("we have a burst  pipe!", ["burst pipe"]),
            ("DRINGEND bitte", ["dringend"]),
            ("très urgent", ["tres urgent"]),
        ],
    )
    def test_whole_word_match_is_urgent(self, text: str, keywords: list[str]) -> None:
        """A keyword found as whole words, in any case or accent, makes the reply urgent."""
        assert is_urgent(text, keywords)

    @pytest.mark.parametrize(
        ("text", "keywords"),
        [
            ("not urgently needed", ["urgent"]),
            ("call me about the pipe", ["urgent"]),
            ("burst of rain, pipe fine", ["burst pipe"]),
            ("urgent", []),
            ("urgent", ["", "!!"]),
        ],
    )
    def test_other_text_is_not_urgent(self, text: str, keywords: list[str]) -> None:
        """Part of a word, other words, or no keywords configured: not urgent."""
        assert not is_urgent(text, keywords)
