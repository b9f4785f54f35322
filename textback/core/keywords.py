"""What a texted reply asks for: opt out, opt back in, help, or a conversation.

Pure. The law's side (FCC 2024 TCPA consent order, CTIA) is that an opt-out
by *any reasonable wording* must be honoured, and that some gateways (GSM
modems, VoIP.ms) filter no keyword at all, so textback cannot leave this to the
provider. The other side is a plumber's customer: "Can you stop by tomorrow?"
is a conversation, not an opt-out.

Every text is first reduced to words: Unicode compatibility forms folded
(full-width letters), accents dropped (ARRÊT is ARRET), case folded,
apostrophes closed up (don't is dont), and everything else that is not a
letter or digit turned into a space. Then, in order:

1. A plain-language request anywhere ("stop texting me", "remove me",
   "unsubscribe", "opt out") is STOP.
2. The whole message is an opt-out keyword, with its words run together
   ("S.T.O.P", "Opt-Out") — STOP; START/UNSTOP/YES/SUBSCRIBE — START;
   HELP/INFO — HELP.
3. An opt-out keyword among only filler ("stop please", "Stop. Thank you",
   "STOP 12345", "please stop") is STOP; a strong keyword (STOP, UNSUBSCRIBE,
   OPTOUT, REVOKE, ARRET) at the start followed by at most three words is STOP,
   unless the next word makes it ordinary English ("stop by", "stop the leak").
   Weak keywords (CANCEL, END, QUIT, REMOVE) need filler only: "Cancel my
   appointment" is a conversation.
4. Everything else is a MESSAGE: "help! my basement is flooding" is for staff,
   and "yes please come at 3" is not an opt-in.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Final


class Intent(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"
    MESSAGE = "message"


# Matched against the whole message with its words run together, so spacing and
# punctuation inside them ("STOP ALL", "OPT-OUT", "s.t.o.p") do not matter.
STOP_KEYWORDS: Final = (
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
)
START_KEYWORDS: Final = ("START", "UNSTOP", "YES", "SUBSCRIBE")
HELP_KEYWORDS: Final = ("HELP", "INFO")

# Requests in plain words: any of these anywhere in a reply opts the sender out.
OPT_OUT_PHRASES: Final = (
    "stop texting",
    "stop txting",
    "stop messaging",
    "stop sending me",
    "stop sending texts",
    "stop sending messages",
    "stop contacting me",
    "stop bothering me",
    "quit texting",
    "quit messaging",
    "don't text",
    "do not text",
    "don't message me",
    "do not message me",
    "don't contact me",
    "do not contact me",
    "never text me",
    "remove me",
    "remove my number",
    "take me off",
    "take my number off",
    "unsubscribe",
    "opt me out",
    "opt out",
    "optout",
    "no more text",
    "no more texts",
    "any more texts",
    "no more messages",
    "no more texting",
    "leave me alone",
)

# Opt-out keywords that ordinary English rarely starts a sentence with.
_STRONG: Final = frozenset({"stop", "stopall", "unsubscribe", "optout", "revoke", "arret"})

# Words that may surround an opt-out keyword without changing what it asks.
_FILLER: Final = frozenset(
    {
        "please", "pls", "plz", "plse", "thank", "thanks", "thankyou", "thx", "ty", "you", "u",
        "now", "me", "all", "ok", "okay", "sorry", "just", "asap", "immediately", "no",
        "not", "interested", "wrong", "number", "this", "these", "those", "the", "messages",
        "message", "msgs", "texts", "text", "txt", "txts", "sms", "spam", "them", "already",
        "again", "right", "away", "goodbye", "bye", "sir", "maam", "hi", "hello", "and",
        "texting", "messaging", "sending", "contacting", "calling", "forever", "permanently",
    }
)  # fmt: skip

# After a strong keyword, these make the sentence ordinary English, not an opt-out.
_ORDINARY_NEXT: Final = frozenset(
    {
        "by", "in", "over", "at", "on", "to", "for", "from", "with", "when", "if", "before",
        "after", "until", "and", "or", "but", "the", "a", "an", "my", "our", "your", "his",
        "her", "their", "that", "its", "leaking", "running", "dripping", "working", "making",
    }
)  # fmt: skip

# How many words a strong keyword at the start may carry ("STOP wrong person").
_SHORT_TAIL: Final = 3

_APOSTROPHES: Final = re.compile(r"['’ʼ`´]")


def _words(text: str) -> list[str]:
    """Normalise ``text`` to lower-case ASCII-folded words (see the module docstring)."""
    folded = unicodedata.normalize("NFKD", text).casefold()
    # casefold can bring back composed letters ("İ"); decompose again before dropping marks.
    folded = unicodedata.normalize("NFKD", folded)
    bare = "".join(c for c in folded if not unicodedata.combining(c))
    bare = _APOSTROPHES.sub("", bare)
    return "".join(c if c.isalnum() else " " for c in bare).split()


def _compact(words: Iterable[str]) -> str:
    return "".join(words)


def _phrase_words(phrases: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(_words(p)) for p in phrases)


_STOP_WORDS: Final = frozenset(_compact(_words(k)) for k in STOP_KEYWORDS)
_START_WORDS: Final = frozenset(_compact(_words(k)) for k in START_KEYWORDS)
_HELP_WORDS: Final = frozenset(_compact(_words(k)) for k in HELP_KEYWORDS)
_PHRASES: Final = _phrase_words(OPT_OUT_PHRASES)
# Two-word spellings of one-word keywords, for the keyword at the start of a reply.
_TWO_WORD_STOPS: Final = {("stop", "all"): "stopall", ("opt", "out"): "optout"}


def _contains(words: Sequence[str], phrase: Sequence[str]) -> bool:
    n = len(phrase)
    return any(tuple(words[i : i + n]) == tuple(phrase) for i in range(len(words) - n + 1))


def _leading_stop(words: Sequence[str]) -> tuple[str, list[str]] | None:
    """The opt-out keyword a reply starts with and the words after it, if it starts with one."""
    if len(words) >= 2 and (joined := _TWO_WORD_STOPS.get((words[0], words[1]))):
        return joined, list(words[2:])
    if words and words[0] in _STOP_WORDS:
        return words[0], list(words[1:])
    return None


def _is_filler(word: str) -> bool:
    return word in _FILLER or word in _STOP_WORDS or word.isdigit()


def _keyword_among_filler(words: Sequence[str]) -> bool:
    """One opt-out keyword with nothing but filler around it: "please stop", "STOP 123"."""
    return any(w in _STOP_WORDS for w in words) and all(_is_filler(w) for w in words)


def classify(text: str) -> Intent:
    """What the reply ``text`` asks for. Never raises, whatever the text."""
    words = _words(text)
    if not words:
        return Intent.MESSAGE
    if any(_contains(words, phrase) for phrase in _PHRASES):
        return Intent.STOP
    whole = _compact(words)
    if whole in _STOP_WORDS:
        return Intent.STOP
    if whole in _START_WORDS:
        return Intent.START
    if whole in _HELP_WORDS:
        return Intent.HELP
    if _keyword_among_filler(words):
        return Intent.STOP
    leading = _leading_stop(words)
    if leading is not None:
        keyword, tail = leading
        if all(_is_filler(w) for w in tail):
            return Intent.STOP
        if keyword in _STRONG and len(tail) <= _SHORT_TAIL and tail[0] not in _ORDINARY_NEXT:
            return Intent.STOP
    return Intent.MESSAGE


def is_urgent(text: str, keywords: Sequence[str]) -> bool:
    """True when ``text`` holds one of ``keywords`` as whole words, ignoring case and accents.

    A keyword may be several words ("burst pipe"); one that has no letters or
    digits matches nothing.
    """
    words = _words(text)
    return any(phrase and _contains(words, phrase) for phrase in _phrase_words(keywords))
