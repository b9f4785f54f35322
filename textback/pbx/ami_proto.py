"""Sans-IO AMI framing: bytes in, messages out. No sockets, no asyncio.

AMI is ``Key: value`` lines ended by CRLF, one blank line between messages,
after a single banner line (``Asterisk Call Manager/9.0.0``). We frame on raw
bytes and decode each whole message, so a multi-byte UTF-8 character split
across TCP reads survives. Repeated ``*ChanVariable`` lines (manager.conf
``channelvars``) are kept, one key per variable: ``ChanVariable[FROM_DID]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

AmiMessage = Mapping[str, str]

BANNER_PREFIX = b"Asterisk Call Manager/"
# Messages end with an empty line (see _find_end); bare LF from proxies and tools is fine.
# A frame larger than this without a blank line is garbage, not AMI.
MAX_FRAME_BYTES = 256 * 1024
# Keys already seen well formed, plain or ``*ChanVariable``: a memo of a pure
# test that lets most lines skip the checks (parsing is most of the daemon's
# CPU). Shared by all framers; bounded so that garbage cannot grow it forever.
_PLAIN_KEYS: set[str] = set()
_CHANVAR_KEYS: set[str] = set()
_KNOWN_KEYS_MAX = 4096


class SkippedFrames(Mapping[str, str]):
    """Stands in for ``count`` frames in a row that the framer's ``skip`` test dropped
    unparsed: an empty message the consumer counts as handled and reads nothing from.

    Test for it with ``type(m) is SkippedFrames``: ``isinstance`` against a Mapping
    subclass goes through the ABC machinery, a cost on every event.
    """

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count

    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"SkippedFrames({self.count})"


@dataclass(frozen=True, slots=True)
class FrameProblem:
    """A frame we could not use (or only partly), and why. Never fatal."""

    reason: str
    excerpt: str


@dataclass(slots=True)
class _Parsed:
    message: dict[str, str] = field(default_factory=dict)
    problems: list[FrameProblem] = field(default_factory=list)


def chanvar_key(prefix_key: str, name: str) -> str:
    """The message key under which a channel variable is kept.

    >>> chanvar_key("ChanVariable", "CALLERID(pres)")
    'ChanVariable[CALLERID(pres)]'
    """
    return f"{prefix_key}[{name}]"


def parse_message(text: str) -> _Parsed:
    """Parse one frame's text (without the blank line) into a message."""
    parsed = _Parsed()
    message = parsed.message
    plain, chanvars = _PLAIN_KEYS, _CHANVAR_KEYS
    for line in text.splitlines():
        # Fast path for known keys: they hold no colon, so their first ": " is
        # the line's first colon and the one space after it.
        key, sep, value = line.partition(": ")
        if sep:
            if key in plain:
                if key not in message:
                    message[key] = value
                continue
            if key in chanvars:
                name, eq, var_value = value.partition("=")
                if eq:
                    message[chanvar_key(key, name)] = var_value
                elif key not in message:
                    message[key] = value
                continue
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or key != key.strip():
            parsed.problems.append(FrameProblem("line without 'Key: value'", line[:80]))
            continue
        if len(plain) + len(chanvars) < _KNOWN_KEYS_MAX:
            (chanvars if key.endswith("ChanVariable") else plain).add(key)
        # AMI puts exactly one space after the colon; values may start with more.
        value = value[1:] if value.startswith(" ") else value
        if key.endswith("ChanVariable"):
            name, eq, var_value = value.partition("=")
            if eq:
                message[chanvar_key(key, name)] = var_value
                continue
        # Duplicates of other keys never occur in real captures; keep the first.
        message.setdefault(key, value)
    return parsed


class AmiFramer:
    """Incremental AMI reader. Feed it any chunking, a byte at a time included.

    ``skip`` sees each raw frame first; frames it flags are not decoded or
    parsed, and each run of them becomes one :class:`SkippedFrames` in the
    output (most events on a busy PBX change nothing the consumer judges by,
    and parsing them was most of the cost).
    """

    def __init__(self, skip: Callable[[bytes | bytearray], bool] | None = None) -> None:
        self._skip = skip
        self._buffer = bytearray()
        self._scanned = 0
        self._at_start = True
        self.banner: str | None = None

    def receive_data(self, data: bytes) -> tuple[list[AmiMessage], list[FrameProblem]]:
        """Buffer ``data`` and return every message it completes, plus problems."""
        self._buffer += data
        messages: list[AmiMessage] = []
        problems: list[FrameProblem] = []
        if self._at_start and not self._take_banner():
            return messages, problems
        buffer, skip = self._buffer, self._skip
        start = 0  # where the next frame begins; consumed bytes are cut once, below
        # Re-scan a few bytes back: a terminator may straddle two reads.
        scan = max(0, self._scanned - 3)
        while True:
            end = _find_end(buffer, scan)
            if end is None:
                break
            frame_end, next_start = end
            raw = buffer[start:frame_end]
            start = scan = next_start
            if skip is not None and skip(raw):
                last = messages[-1] if messages else None
                if type(last) is SkippedFrames:
                    last.count += 1
                else:
                    messages.append(SkippedFrames(1))
            elif raw.strip():
                self._decode_frame(raw, messages, problems)
        del buffer[:start]
        self._scanned = len(buffer)
        if len(buffer) > MAX_FRAME_BYTES:
            problems.append(FrameProblem("frame too large, discarded", _excerpt(buffer)))
            buffer.clear()
            self._scanned = 0
        return messages, problems

    def _take_banner(self) -> bool:
        """Consume the banner line once it is complete. False: need more bytes."""
        n = min(len(self._buffer), len(BANNER_PREFIX))
        if bytes(self._buffer[:n]) != BANNER_PREFIX[:n]:
            # No banner (a capture cut mid-stream): frame from the first byte.
            self._at_start = False
            return True
        end = self._buffer.find(b"\n")
        if n < len(BANNER_PREFIX) or end < 0:
            return False
        self.banner = self._buffer[:end].decode("utf-8", "replace").strip()
        del self._buffer[: end + 1]
        self._at_start = False
        return True

    @staticmethod
    def _decode_frame(
        raw: bytes | bytearray, messages: list[AmiMessage], problems: list[FrameProblem]
    ) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # A carrier sent Latin-1 in a caller name: keep the call, lose the bad bytes.
            text = raw.decode("utf-8", "replace")
            problems.append(FrameProblem("invalid UTF-8 replaced", _excerpt(raw)))
        parsed = parse_message(text)
        problems.extend(parsed.problems)
        if "Event" in parsed.message or "Response" in parsed.message:
            messages.append(parsed.message)
        else:
            problems.append(FrameProblem("frame with neither Event nor Response", _excerpt(raw)))


def _find_end(buffer: bytearray, scan: int) -> tuple[int, int] | None:
    """The leftmost ``\\r?\\n\\r?\\n`` starting at or after ``scan``: (start, end).

    Two ``find`` calls instead of a regex: every terminator holds ``\\n\\n`` or
    ``\\n\\r\\n``, and the leftmost of those is the leftmost terminator.
    """
    crlf = buffer.find(b"\n\r\n", scan)
    # Bounded by the CRLF hit, so the bare-LF search never runs to the end of a big buffer.
    lf = buffer.find(b"\n\n", scan) if crlf < 0 else buffer.find(b"\n\n", scan, crlf + 2)
    if lf >= 0:
        core, after = lf, lf + 2
    elif crlf >= 0:
        core, after = crlf, crlf + 3
    else:
        return None
    if core > scan and buffer[core - 1] == 0x0D:
        return core - 1, after
    return core, after


def _excerpt(raw: bytes | bytearray) -> str:
    return bytes(raw[:80]).decode("utf-8", "replace").replace("\r\n", " | ")


def epoch_of_uniqueid(uniqueid: str) -> float | None:
    """The creation time Asterisk encodes in a Uniqueid (``[system-]epoch.seq``)."""
    tail = uniqueid.rsplit("-", 1)[-1]
    seconds, _, _ = tail.partition(".")
    return float(seconds) if seconds.isdigit() else None
