"""Replay recorded PBX streams through the same framing and correlation as the daemon.

A capture is the bytes one AMI connection received, banner included. Captures
carry no receive times, so the clock is rebuilt from the stream: the
``Timestamp`` header when the PBX sends one (manager.conf
``timestampevents = yes``), else the creation second Asterisk writes into every
Uniqueid. Business hours are judged on that clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textback.core.asterisk import AmiCorrelator, AmiMessage, CorrelatorSettings
from textback.core.verdict import CallVerdict
from textback.pbx.ami_proto import BANNER_PREFIX, AmiFramer, FrameProblem, epoch_of_uniqueid

ESL_PREFIX = b"Content-Type: auth/request"


class UnsupportedCapture(ValueError):
    """The bytes are not a stream this version can replay."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    verdicts: list[CallVerdict]
    problems: list[FrameProblem]
    events: int


def pbx_kind(data: bytes) -> str:
    """``asterisk`` or ``freeswitch``, told from the stream's first bytes."""
    head = data.lstrip()[:64]
    if head.startswith(BANNER_PREFIX):
        return "asterisk"
    if head.startswith(ESL_PREFIX):
        return "freeswitch"
    raise UnsupportedCapture(
        "not a PBX capture: expected it to start with 'Asterisk Call Manager/' (AMI)"
        " or 'Content-Type: auth/request' (FreeSWITCH ESL)"
    )


def event_time(event: AmiMessage, last: float) -> float:
    """The stream clock after ``event``: never goes backwards."""
    stamp = event.get("Timestamp", "")
    try:
        moment: float | None = float(stamp) if stamp else None
    except ValueError:
        moment = None
    if moment is None:
        moment = epoch_of_uniqueid(event.get("Uniqueid", ""))
    return max(last, moment) if moment is not None else last


def correlate(
    events: Iterable[AmiMessage], correlator: AmiCorrelator
) -> tuple[list[CallVerdict], int]:
    """Feed events in order; decide what is left when the stream ends."""
    verdicts: list[CallVerdict] = []
    now = 0.0
    count = 0
    for event in events:
        if "Event" not in event:
            continue  # our own Login's response
        count += 1
        now = event_time(event, now)
        verdicts.extend(correlator.on_timer(now))
        verdicts.extend(correlator.feed(event, now))
    verdicts.extend(correlator.flush(now))
    return verdicts, count


def replay_bytes(data: bytes, settings: CorrelatorSettings) -> ReplayResult:
    """Judge every call in one capture, with a fresh correlator."""
    kind = pbx_kind(data)
    if kind != "asterisk":
        raise UnsupportedCapture("FreeSWITCH ESL captures cannot be replayed by this version yet")
    messages, problems = AmiFramer().receive_data(data)
    verdicts, count = correlate(messages, AmiCorrelator(settings))
    return ReplayResult(verdicts=verdicts, problems=problems, events=count)
