"""Sans-IO FreeSWITCH event socket (ESL) framing: bytes in, frames and events out.

An ESL frame is a block of ``Name: value`` lines ended by an empty line
(``\\n\\n``, no ``\\r``). If the block has ``Content-Length: N``, exactly N
*bytes* of body follow. ``Content-Type`` says what the frame is:
``auth/request``, ``command/reply``, ``api/response``, ``text/event-plain``,
``text/event-json``, ``text/disconnect-notice``, ``text/rude-rejection``.

An event frame's body is the event: in ``plain`` format ``Name: value``
lines with URL-encoded values (and, if the event has a body of its own, an
inner ``Content-Length`` and that body); in ``json`` format one JSON object.
:func:`decode_event` turns both into the same flat ``Mapping[str, str]``.

Nothing here raises on bad input. A block that is not a frame is reported as
a :class:`FrameProblem` and skipped; the next block is read as usual.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeVar, overload
from urllib.parse import unquote

# Re-exported: ESL callers need not know the type lives with the AMI framer.
from textback.pbx.ami_proto import FrameProblem as FrameProblem

EslMessage = Mapping[str, str]
_T = TypeVar("_T")

AUTH_REQUEST: Final = "auth/request"
COMMAND_REPLY: Final = "command/reply"
API_RESPONSE: Final = "api/response"
EVENT_PLAIN: Final = "text/event-plain"
EVENT_JSON: Final = "text/event-json"
DISCONNECT_NOTICE: Final = "text/disconnect-notice"
RUDE_REJECTION: Final = "text/rude-rejection"
EVENT_CONTENT_TYPES: Final = frozenset({EVENT_PLAIN, EVENT_JSON})

SUBSCRIBED_EVENTS: Final = (
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_EXECUTE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_DESTROY",
    "HEARTBEAT",
)
SUBSCRIBED_CUSTOM: Final = (
    "vm::maintenance",
    "callcenter::info",
    "sofia::transferor",
    "sofia::transferee",
)
API_SHOW_CHANNELS: Final = b"api show channels as json\n\n"

BANNER: Final = b"Content-Type: auth/request"
_END: Final = b"\n\n"
_ARRAY: Final = "ARRAY::"
_ALL_BUT_COLON_AND_LINE_BREAK: Final = bytes(range(256)).translate(None, b":\n")
# A header block this long without an empty line is garbage, not ESL.
MAX_HEADER_BYTES: Final = 64 * 1024
# `show channels` on a busy PBX is the largest body we ask for; far above it is a bad length.
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
# Outer header names are plain tokens; the lenient value part follows libesl (spaces skipped).
_HEADER_LINE: Final = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.\-]*):[ \t]*(.*)")
# Where a frame can start inside junk that lacks a line break before it (a JSON body
# has none at its end, so the next frame's headers follow its closing brace).
_FRAME_START: Final = re.compile(rb"Content-(?:Length|Type):")


@dataclass(frozen=True, slots=True)
class EslFrame:
    """One ESL frame: its outer headers and its body (bytes, maybe empty)."""

    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        """The ``Content-Type``, or ``""`` if there is none."""
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        """A ``command/reply``'s ``Reply-Text`` (``+OK accepted``), else ``""``."""
        return self.headers.get("Reply-Text", "")

    def text(self) -> str:
        """The body as text; invalid UTF-8 replaced."""
        return self.body.decode("utf-8", "replace")


class EslFramer:
    """Incremental ESL reader. Feed it any chunking, a byte at a time included."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already searched for an empty line
        self._headers: dict[str, str] | None = None  # a header block awaiting its body
        self._need = 0  # body length the pending headers announced

    def receive_data(self, data: bytes) -> tuple[list[EslFrame], list[FrameProblem]]:
        """Buffer ``data``; return every frame it completes, plus problems."""
        self._buffer += data
        frames: list[EslFrame] = []
        problems: list[FrameProblem] = []
        while True:
            if self._headers is not None:
                if len(self._buffer) < self._need:
                    return frames, problems
                body = bytes(self._buffer[: self._need])
                del self._buffer[: self._need]
                frames.append(EslFrame(self._headers, body))
                self._headers = None
                continue
            # Re-scan one byte back: the empty line may straddle two reads.
            end = self._buffer.find(_END, max(0, self._scanned - 1))
            if end < 0:
                self._scanned = len(self._buffer)
                if len(self._buffer) > MAX_HEADER_BYTES:
                    problems.append(FrameProblem("header block too large, discarded", ""))
                    self._buffer.clear()
                    self._scanned = 0
                return frames, problems
            block = bytes(self._buffer[:end])
            del self._buffer[: end + len(_END)]
            self._scanned = 0
            self._take_block(block, frames, problems)

    def _take_block(
        self, block: bytes, frames: list[EslFrame], problems: list[FrameProblem]
    ) -> None:
        junk, headers = _split_block(block)
        if "Content-Type" not in headers:
            if block.strip():
                problems.append(FrameProblem("bytes that are not an ESL frame, skipped", ""))
            return
        if junk:
            problems.append(FrameProblem("bytes before a frame, skipped", ""))
        length = headers.get("Content-Length")
        if length is None:
            frames.append(EslFrame(headers, b""))
            return
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            # The body's end is unknown: read on as if it were header blocks.
            # A plain event's body ends in an empty line, so only it is lost.
            problems.append(FrameProblem("bad Content-Length, frame skipped", ""))
            return
        self._headers = headers
        self._need = int(length)


def _split_block(block: bytes) -> tuple[bool, dict[str, str]]:
    """(junk seen, headers): the headers are the block's trailing well-formed lines."""
    lines = block.split(b"\n")
    parsed: list[tuple[str, str]] = []  # the trailing headers, last first; each line parsed once
    start = len(lines)
    while start > 0:
        line = lines[start - 1]
        if line:
            header = _header(line)
            if header is None:
                break
            parsed.append(header)
        start -= 1
    junk = lines[:start]
    if junk:
        # A JSON body has no line break at its end: the next frame's first
        # header can follow its closing brace on the same line.
        last = junk[-1]
        for match in _FRAME_START.finditer(last):
            header = _header(last[match.start() :])
            if header is not None:
                parsed.append(header)
                junk[-1] = last[: match.start()]
                break
    headers: dict[str, str] = {}
    for name, value in reversed(parsed):
        headers.setdefault(name, value)
    return any(line.strip() for line in junk), headers


def _header(line: bytes) -> tuple[str, str] | None:
    match = _HEADER_LINE.fullmatch(line.decode("utf-8", "replace"))
    return None if match is None else (match.group(1), match.group(2))


def decode_event(frame: EslFrame) -> EslMessage | None:
    """The event in an event frame, as ``Name -> value`` strings; None if there is none.

    ``text/event-plain``: values URL-decoded (``%2B1415…`` → ``+1415…``) on
    first read (:class:`PlainEvent`), the event's own body, if any, under
    ``_body``. ``text/event-json``: string values as they are, lists joined
    with ``|``, other values as JSON text, the body already under ``_body``.
    Returns None for other content types and for a body that holds no
    ``Event-Name``; never raises.
    """
    message: EslMessage | None
    if frame.content_type == EVENT_PLAIN:
        message = _decode_plain(frame.body)
    elif frame.content_type == EVENT_JSON:
        message = _decode_json(frame.body)
    else:
        return None
    if message is None or not message.get("Event-Name"):
        return None
    return message


class PlainEvent(Mapping[str, str]):
    """A ``text/event-plain`` event whose values are found and URL-decoded when first read.

    An event has ~140 headers and the correlator reads about a dozen, so
    splitting and unquoting them all was most of the cost of an event. The
    lines are checked up front (:func:`_decode_plain`: a body that is not an
    event stays None); a name is looked up in the text when first asked for.
    Decoding a value cannot fail: a malformed escape stays as written and
    invalid UTF-8 is replaced, as an eager decode would do, so a read raises
    nothing but the KeyError of a missing name.
    """

    __slots__ = ("_text", "_values")

    def __init__(self, text: str, body: str | None) -> None:
        """``text``: the header lines, each after a line break; ``body``: the event's own."""
        self._text = text
        # The names asked for so far: decoded value, or None for a name not there.
        # The inner Content-Length measures the body; it is not a header of the event.
        self._values: dict[str, str | None] = {"Content-Length": None}
        if body is not None:
            self._values["_body"] = body

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    # Not the Mapping mixins: those go through a KeyError for every absent name,
    # and the correlator asks for many names an event does not have.
    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str | _T) -> str | _T: ...
    def get(self, key: str, /, default: str | _T | None = None) -> str | _T | None:
        values = self._values
        if key not in values:
            raw = _line_value(self._text, key)
            values[key] = None if raw is None else _plain_value(raw)
        value = values[key]
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        # Names in order of first appearance, as a dict filled line by line keeps them.
        names = dict.fromkeys(line.partition(":")[0] for line in self._text.split("\n") if line)
        names.pop("Content-Length", None)
        if self._values.get("_body") is not None:
            names.setdefault("_body")
        return iter(names)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"PlainEvent({dict(self)!r})"


def _line_value(text: str, name: str) -> str | None:
    """The value as written on the last line ``name:…`` of ``text``, which starts with ``\\n``."""
    if not name or ":" in name or "\n" in name:
        return None  # no line has that name
    # The last line wins, as in a dict filled line by line.
    at = text.rfind(f"\n{name}:")
    if at < 0:
        return None
    start = at + len(name) + 2
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def _decode_plain(body: bytes) -> PlainEvent | None:
    split = _split_plain(body)
    if split is None:
        return None
    head, rest = split
    # A line break first, so that every line, the first included, follows one.
    text = "\n" + head.decode("utf-8", "replace")
    length = _line_value(text, "Content-Length")
    inner: str | None = None
    if length is not None:
        length = _plain_value(length)
        if not length.isdigit() or len(rest) < int(length):
            return None
        inner = rest[: int(length)].decode("utf-8", "replace")
    return PlainEvent(text, inner)


def _split_plain(body: bytes) -> tuple[bytes, bytes] | None:
    """(header lines, what follows the first empty line); None if a line has no name.

    Checked on the bytes, with no split into ~140 lines: ``:`` and ``\\n``
    are the same bytes in UTF-8 and after a decode that replaces bad bytes.
    The header lines may keep an empty line at either end.
    """
    # Each line reduced to its colons: a line without one, empty or not,
    # leaves two line breaks side by side (or one at either end).
    colons = body.translate(None, _ALL_BUT_COLON_AND_LINE_BREAK)
    if body.endswith(_END) and colons.find(_END) == len(colons) - 2:
        # The usual event, with no body of its own: its one empty line is its
        # last, known without the slow search for the first "\n\n".
        head, rest = body, b""
        if colons.startswith(b"\n") and not body.startswith(b"\n"):
            return None  # a first line without a colon
    else:
        head, _, rest = body.partition(_END)
        # `head` ends before the first empty line, so only its ends can be empty lines.
        head = head.strip(b"\n")
        colons = head.translate(None, _ALL_BUT_COLON_AND_LINE_BREAK)
        if b"\n\n" in colons or colons.startswith(b"\n") or colons.endswith(b"\n"):
            return None
    if head.startswith(b":") or head.rfind(b"\n:") >= 0:
        return None  # a line without a name
    return head, rest


def _plain_value(value: str) -> str:
    # FreeSWITCH writes `Name: value`; `+` is a literal plus (switch_url_encode).
    value = value.removeprefix(" ")
    if "%" in value:
        value = unquote(value, errors="replace")
    if value.startswith(_ARRAY):
        # A multi-valued header (variable_DP_MATCH) is `ARRAY::a|:b` in
        # plain and a list in JSON; both read as `a|b`.
        value = "|".join(value[len(_ARRAY) :].split("|:"))
    return value


def _decode_json(body: bytes) -> dict[str, str] | None:
    try:
        parsed = json.loads(body.decode("utf-8", "replace"))
        if not isinstance(parsed, dict):
            return None
        # Nearly every value is a string already: convert the few others in
        # place rather than copy all ~140 into a new dict.
        for key, value in parsed.items():
            if not isinstance(value, str):
                parsed[key] = _json_text(value)
    except (ValueError, RecursionError):  # deep nesting: garbage, never FreeSWITCH
        return None
    return parsed


def _json_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "|".join(_json_text(item) for item in value)
    if value is None:
        return ""
    return json.dumps(value)


def parse_show_channels(body: bytes) -> list[EslMessage] | None:
    """The rows of an ``api show channels as json`` reply; None if it is not that JSON.

    FreeSWITCH leaves ``rows`` out when ``row_count`` is 0. Values become
    strings the way event values do; rows that are not objects are skipped.
    """
    try:
        parsed = json.loads(body.decode("utf-8", "replace"))
        if not isinstance(parsed, dict) or "row_count" not in parsed:
            return None
        rows = parsed.get("rows", [])
        if not isinstance(rows, list):
            return None
        return [
            {str(key): _json_text(value) for key, value in row.items()}
            for row in rows
            if isinstance(row, dict)
        ]
    except (ValueError, RecursionError):  # deep nesting: garbage, never FreeSWITCH
        return None


def decode_stream(data: bytes) -> tuple[list[EslMessage], list[FrameProblem]]:
    """Every event in a recorded stream, in order; non-event frames are skipped."""
    frames, problems = EslFramer().receive_data(data)
    events: list[EslMessage] = []
    for frame in frames:
        if frame.content_type not in EVENT_CONTENT_TYPES:
            continue
        event = decode_event(frame)
        if event is None:
            problems.append(FrameProblem("event frame without a readable event", ""))
        else:
            events.append(event)
    return events, problems


def subscribe_command(fmt: Literal["plain", "json"]) -> bytes:
    """The ``event`` command for the events textback needs, in format ``fmt``."""
    names = " ".join((*SUBSCRIBED_EVENTS, "CUSTOM", *SUBSCRIBED_CUSTOM))
    return f"event {fmt} {names}\n\n".encode()


def auth_command(password: str) -> bytes:
    """``auth <password>``. Raises ValueError for a line break (it would inject a command)."""
    if any(c in password for c in "\r\n"):
        raise ValueError("the ESL password contains a line break")
    return f"auth {password}\n\n".encode()


def pbx_banner_is_esl(data: bytes) -> bool:
    """True if a stream starts like a FreeSWITCH event socket (``Content-Type: auth/request``)."""
    return data.startswith(BANNER)
