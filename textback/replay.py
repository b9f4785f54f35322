"""Replay recorded PBX streams through the same framing and correlation as the daemon.

A capture is the bytes one PBX connection received: an AMI stream (banner
first) or a FreeSWITCH event-socket stream (``auth/request`` first); the kind
is told from the first bytes. Captures carry no receive times, so the clock is
rebuilt from the stream: FreeSWITCH's ``Event-Date-Timestamp``, Asterisk's
``Timestamp`` header when sent (manager.conf ``timestampevents = yes``), else
the creation second Asterisk writes into every Uniqueid. Business hours are
judged on that clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from textback.core.asterisk import AmiCorrelator, CorrelatorSettings
from textback.core.freeswitch import FsCorrelator, FsCorrelatorSettings
from textback.core.verdict import CallVerdict
from textback.pbx.ami_proto import BANNER_PREFIX, AmiFramer, FrameProblem, epoch_of_uniqueid
from textback.pbx.esl_proto import EslFramer, decode_event

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


class Correlator(Protocol):
    def feed(self, event: Mapping[str, str], now: float) -> list[CallVerdict]: ...
    def on_timer(self, now: float) -> list[CallVerdict]: ...
    def flush(self, now: float) -> list[CallVerdict]: ...


def event_time(event: Mapping[str, str], last: float) -> float:
    """The stream clock after ``event``: never goes backwards."""
    micros = event.get("Event-Date-Timestamp", "")
    if micros.isdigit():
        return max(last, int(micros) / 1e6)
    stamp = event.get("Timestamp", "")
    try:
        moment: float | None = float(stamp) if stamp else None
    except ValueError:
        moment = None
    if moment is None:
        moment = epoch_of_uniqueid(event.get("Uniqueid", ""))
    return max(last, moment) if moment is not None else last


def correlate(
    events: Iterable[Mapping[str, str]], correlator: Correlator
) -> tuple[list[CallVerdict], int]:
    """Feed events in order; decide what is left when the stream ends."""
    verdicts: list[CallVerdict] = []
    now = 0.0
    count = 0
    for event in events:
        if "Event" not in event and "Event-Name" not in event:
            continue  # our own Login's response
        count += 1
        now = event_time(event, now)
        verdicts.extend(correlator.on_timer(now))
        verdicts.extend(correlator.feed(event, now))
    verdicts.extend(correlator.flush(now))
    return verdicts, count


def replay_bytes(
    data: bytes, asterisk: CorrelatorSettings, freeswitch: FsCorrelatorSettings
) -> ReplayResult:
    """Judge every call in one capture, with a fresh correlator of the capture's kind."""
    if pbx_kind(data) == "asterisk":
        messages, problems = AmiFramer().receive_data(data)
        verdicts, count = correlate(messages, AmiCorrelator(asterisk))
        return ReplayResult(verdicts=verdicts, problems=problems, events=count)
    frames, problems = EslFramer().receive_data(data)
    events = [e for e in map(decode_event, frames) if e is not None]
    verdicts, count = correlate(events, FsCorrelator(freeswitch))
    return ReplayResult(verdicts=verdicts, problems=problems, events=count)
