"""Sans-IO AMI framing: bytes in, messages out. No sockets, no asyncio.

AMI is ``Key: value`` lines ended by CRLF, one blank line between messages,
after a single banner line (``Asterisk Call Manager/9.0.0``). We frame on raw
bytes and decode each whole message, so a multi-byte UTF-8 character split
across TCP reads survives. Repeated ``*ChanVariable`` lines (manager.conf
``channelvars``) are kept, one key per variable: ``ChanVariable[FROM_DID]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

AmiMessage = Mapping[str, str]

BANNER_PREFIX = b"Asterisk Call Manager/"
# Messages end with an empty line; tolerate bare LF from proxies and tools.
_END = re.compile(rb"\r?\n\r?\n")
# A frame larger than this without a blank line is garbage, not AMI.
MAX_FRAME_BYTES = 256 * 1024


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
    for line in text.splitlines():
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or key != key.strip():
            parsed.problems.append(FrameProblem("line without 'Key: value'", line[:80]))
            continue
        # AMI puts exactly one space after the colon; values may start with more.
        value = value[1:] if value.startswith(" ") else value
        if key.endswith("ChanVariable"):
            name, eq, var_value = value.partition("=")
            if eq:
                parsed.message[chanvar_key(key, name)] = var_value
                continue
        # Duplicates of other keys never occur in real captures; keep the first.
        parsed.message.setdefault(key, value)
    return parsed


class AmiFramer:
    """Incremental AMI reader. Feed it any chunking, a byte at a time included."""

    def __init__(self) -> None:
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
        while True:
            # Re-scan a few bytes back: a terminator may straddle two reads.
            match = _END.search(self._buffer, max(0, self._scanned - 3))
            if match is None:
                self._scanned = len(self._buffer)
                if len(self._buffer) > MAX_FRAME_BYTES:
                    problems.append(
                        FrameProblem("frame too large, discarded", _excerpt(self._buffer))
                    )
                    self._buffer.clear()
                    self._scanned = 0
                return messages, problems
            raw = bytes(self._buffer[: match.start()])
            del self._buffer[: match.end()]
            self._scanned = 0
            if not raw.strip():
                continue
            self._decode_frame(raw, messages, problems)

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
    def _decode_frame(raw: bytes, messages: list[AmiMessage], problems: list[FrameProblem]) -> None:
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


def _excerpt(raw: bytes | bytearray) -> str:
    return bytes(raw[:80]).decode("utf-8", "replace").replace("\r\n", " | ")


def epoch_of_uniqueid(uniqueid: str) -> float | None:
    """The creation time Asterisk encodes in a Uniqueid (``[system-]epoch.seq``)."""
    tail = uniqueid.rsplit("-", 1)[-1]
    seconds, _, _ = tail.partition(".")
    return float(seconds) if seconds.isdigit() else None
