"""End-to-end FreeSWITCH throughput: fake event socket over TCP → daemon → SQLite → console.

    python bench/freeswitch.py [--quick] [--calls N] [--concurrency N]

Copies of the FreeSWITCH captures become fresh calls (new channel UUIDs and
caller numbers, Content-Length recomputed) and are interleaved frame by frame,
as concurrent calls are on a busy PBX. Only the events the daemon subscribes
to are kept, so every byte sent is an event the daemon handles. The fake
server runs in a process of its own, pinned to another core when there is
one, as in throughput.py. Prints events/s and calls/s from the subscription
to the last verdict recorded, the
verdicts seen against those the pure correlator gives, and, as references,
the bare rates of the event-socket framer, decoder and pure correlator over
the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    FS_CAPTURES,
    interleave,
    logged_in,
    pbx_process,
    run_daemon_through,
    write_config,
)

from textback.config import load
from textback.core.freeswitch import FsCorrelator
from textback.core.verdict import Verdict
from textback.esl_simulator import EslSimulator, EslSimulatorOptions, split_capture
from textback.log import configure
from textback.pbx.esl_proto import (
    SUBSCRIBED_CUSTOM,
    SUBSCRIBED_EVENTS,
    EslFramer,
    decode_event,
    decode_stream,
)

_UUID = re.compile(rb"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_CORE_UUID = re.compile(rb'Core-UUID"?:\s*"?([0-9a-f-]{36})')
# The lab's callers are +1 415 555 01xx and 04xx; outbound calls went to +1 415 555 0150.
_CALLER = re.compile(rb"14155550\d{3}")
_LENGTH = re.compile(rb"^Content-Length: \d+$", re.MULTILINE)
_PASSWORD = "textback"  # what the bench config's password file holds


def _subscribed(name: str | None, subclass: str | None) -> bool:
    if name == "CUSTOM":
        return subclass in SUBSCRIBED_CUSTOM
    return name in SUBSCRIBED_EVENTS


def templates() -> list[list[bytes]]:
    """The frames of each capture the daemon subscribes to, in capture order."""
    return [
        [f.raw for f in split_capture(p.read_bytes()) if _subscribed(f.name, f.subclass)]
        for p in sorted(FS_CAPTURES.glob("*.esl"))
    ]


def fresh_copy(frames: list[bytes], copy: int) -> list[bytes]:
    """``frames`` as copy number ``copy``: new channel UUIDs and caller numbers."""
    core = {m.group(1) for raw in frames for m in _CORE_UUID.finditer(raw)}
    uuids: dict[bytes, bytes] = {}
    callers: dict[bytes, bytes] = {}

    def uuid(m: re.Match[bytes]) -> bytes:
        key = m.group(0)
        if key in core:
            return key
        if key not in uuids:
            uuids[key] = b"%08x-%04x-4000-8000-b0000000%04x" % (
                copy & 0xFFFFFFFF,
                len(uuids) & 0xFFFF,
                len(uuids) >> 16 & 0xFFFF,
            )
        return uuids[key]

    def caller(m: re.Match[bytes]) -> bytes:
        # One number per lab number and copy: +1 415 2xx xxxx is a valid US number.
        key = m.group(0)
        if key not in callers:
            callers[key] = b"14152%06d" % ((copy * 64 + len(callers)) % 1_000_000)
        return callers[key]

    out = []
    for raw in frames:
        head, sep, body = raw.partition(b"\n\n")
        body = _CALLER.sub(caller, _UUID.sub(uuid, body))
        head = _LENGTH.sub(b"Content-Length: %d" % len(body), head)
        out.append(head + sep + body)
    return out


@dataclass(frozen=True, slots=True)
class Stream:
    """An event-socket byte stream and what a correct daemon makes of it."""

    data: bytes
    frames: int
    calls: int  # copies of captures
    verdicts: int  # inbound verdicts the pure correlator gives
    sidecars: int  # inbound calls the captures' sidecars describe


def sidecar_calls(capture: Path) -> int:
    """Inbound calls (judged, not ignored) the capture's JSON sidecar describes."""
    sidecar = json.loads(capture.with_suffix(".json").read_text())
    return 0 if sidecar["expected"] == "ignore" else int(sidecar.get("calls", 1))


def build_stream(min_calls: int, concurrency: int) -> Stream:
    bases = templates()
    per_round = sum(sidecar_calls(p) for p in sorted(FS_CAPTURES.glob("*.esl")))
    rounds = -(-min_calls // len(bases))
    copies = [fresh_copy(b, n) for n, b in enumerate(itertools.chain(*[bases] * rounds))]
    frames = list(interleave(iter(copies), concurrency))
    data = b"".join(frames)
    return Stream(
        data=data,
        frames=len(frames),
        calls=len(copies),
        verdicts=verdicts_of(data),
        sidecars=per_round * rounds,
    )


def new_correlator() -> FsCorrelator:
    """A fresh pure correlator with the bench config's trunks."""
    with tempfile.TemporaryDirectory() as tmp:
        config = load(write_config(Path(tmp), esl_port=1))
    return FsCorrelator(config.freeswitch_settings())


def verdicts_of(data: bytes) -> int:
    """How many inbound verdicts the pure correlator gives for ``data``."""
    correlator = new_correlator()
    events, problems = decode_stream(data)
    if problems:
        raise SystemExit(f"the rewritten stream does not parse: {problems[0]}")
    count = 0
    for n, event in enumerate(events):
        count += sum(
            1 for v in correlator.feed(event, float(n)) if v.verdict is not Verdict.IGNORED
        )
    count += sum(1 for v in correlator.flush(1e12) if v.verdict is not Verdict.IGNORED)
    return count


def framer_rate(data: bytes, chunk: int = 65536) -> tuple[float, float]:
    """Events/s of EslFramer alone, and of EslFramer plus event decoding, in TCP-sized chunks."""
    rates = []
    for decode in (False, True):
        framer = EslFramer()
        count = 0
        start = time.perf_counter()
        for offset in range(0, len(data), chunk):
            frames = framer.receive_data(data[offset : offset + chunk])[0]
            if decode:
                count += sum(1 for f in frames if decode_event(f) is not None)
            else:
                count += len(frames)
        rates.append(count / (time.perf_counter() - start))
    return rates[0], rates[1]


def pipeline_rate(data: bytes, chunk: int = 65536) -> float:
    """Events/s of EslFramer, decoding and the pure correlator: the daemon's own
    work per event, short of the event queue, the pump and the store."""
    framer = EslFramer()
    correlator = new_correlator()
    count = 0
    start = time.perf_counter()
    for offset in range(0, len(data), chunk):
        for frame in framer.receive_data(data[offset : offset + chunk])[0]:
            event = decode_event(frame)
            if event is not None:
                correlator.feed(event, float(count))
                count += 1
    return count / (time.perf_counter() - start)


def fs_pbx() -> EslSimulator:
    return EslSimulator([], EslSimulatorOptions(password=_PASSWORD))


def fs_subscribed(pbx: EslSimulator) -> bool:
    return pbx.subscriptions >= 1


def end_to_end(stream: Stream, directory: Path) -> tuple[float, float, int, int]:
    """Seconds from the subscription to the last verdict recorded, CPU seconds of this
    process (the daemon, its database thread included) in that time, verdicts, events.
    """
    with pbx_process(stream.data, fs_pbx, fs_subscribed) as (port, pipe):
        config = write_config(directory, esl_port=port)
        cpu = time.process_time()
        elapsed, judged, handled = asyncio.run(
            run_daemon_through(config, lambda: logged_in(pipe), stream.frames, stream.verdicts)
        )
        return elapsed, time.process_time() - cpu, judged, handled


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 capture copies (seconds)")
    parser.add_argument("--calls", type=int, default=None, help="capture copies to replay")
    parser.add_argument("--concurrency", type=int, default=50, help="calls in flight at once")
    args = parser.parse_args()
    calls = args.calls or (200 if args.quick else 2_000)
    configure("logfmt", "error")
    stream = build_stream(calls, args.concurrency)
    print(
        f"stream: {stream.frames:,} events, {len(stream.data) / 1e6:.1f} MB, "
        f"{stream.calls:,} capture copies, {stream.verdicts:,} inbound calls judged "
        f"(sidecars: {stream.sidecars:,}), {args.concurrency} copies in flight"
    )
    framed, decoded = framer_rate(stream.data)
    print(f"reference  EslFramer:               {framed:>10,.0f} events/s")
    print(f"reference  EslFramer + decode:      {decoded:>10,.0f} events/s")
    print(f"reference  ... + pure correlator:   {pipeline_rate(stream.data):>10,.0f} events/s")
    with tempfile.TemporaryDirectory() as tmp:
        elapsed, cpu, judged, handled = end_to_end(stream, Path(tmp))
    print(
        f"end to end (TCP → daemon → SQLite): {handled / elapsed:>10,.0f} events/s, "
        f"{judged / elapsed:,.0f} calls/s ({handled:,} of {stream.frames:,} events, "
        f"{judged:,} of {stream.verdicts:,} verdicts in {elapsed:.2f} s; daemon CPU {cpu:.2f} s)"
    )


if __name__ == "__main__":
    main()
