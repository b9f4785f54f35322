"""What the benches share: a realistic AMI stream built from the captures, configs, RSS.

Each copy of a capture becomes a fresh call: its Uniqueids/Linkedids, channel
counters and caller numbers are rewritten, and many copies are interleaved
frame by frame, as concurrent calls are on a busy PBX.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import re
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from textback.config import load
from textback.core.asterisk import AmiCorrelator
from textback.core.verdict import CallVerdict, Verdict
from textback.pbx.ami_proto import AmiFramer
from textback.replayserver import ReplayServer
from textback.service import Daemon
from textback.simulator import AmiSimulator, SimulatorOptions, parse_events_value, split_capture

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "tests" / "captures" / "asterisk"
FS_CAPTURES = REPO / "tests" / "captures" / "freeswitch"
# Captures whose calls all end: the stream must settle to idle.
_SKIP_EVENTS = (b"Event: FullyBooted", b"Event: Shutdown", b"Event: SuccessfulAuth")
_UNIQUEID = re.compile(rb"\b(1\d{9})\.(\d+)\b")
_COUNTER = re.compile(rb"-([0-9a-f]{8})(?=[;,\s])")
_CALLER = re.compile(rb"\+1415555(\d{4})")


def _frames_of(capture: bytes) -> list[bytes]:
    return [
        f.raw
        for f in split_capture(capture)
        # Frames with an ActionID answered the recorder's own actions: not part of the stream.
        if f.raw.startswith(b"Event:")
        and not f.raw.startswith(_SKIP_EVENTS)
        and b"\nActionID:" not in f.raw
    ]


def templates(names: Sequence[str] | None = None) -> list[list[bytes]]:
    """The event frames of each capture (or of the named ones), in capture order."""
    paths = sorted(CAPTURES.glob("*.ami"))
    if names is not None:
        paths = [p for p in paths if p.stem in names]
    return [_frames_of(p.read_bytes()) for p in paths]


def fresh_copy(frames: list[bytes], copy: int) -> list[bytes]:
    """``frames`` as call number ``copy``: new ids, channel counters and caller numbers."""
    ids: dict[bytes, bytes] = {}
    counters: dict[bytes, bytes] = {}

    def uniqueid(m: re.Match[bytes]) -> bytes:
        key = m.group(0)
        if key not in ids:
            ids[key] = b"%s.%d" % (m.group(1), copy * 1000 + len(ids))
        return ids[key]

    def counter(m: re.Match[bytes]) -> bytes:
        key = m.group(1)
        if key not in counters:
            counters[key] = b"%08x" % ((copy * 64 + len(counters)) & 0xFFFFFFFF)
        return b"-" + counters[key]

    def caller(m: re.Match[bytes]) -> bytes:
        # One caller per copy (and per number within it): +1 415 2xx xxxx is a valid US number.
        return b"+14152%06d" % ((copy * 10 + int(m.group(1)) % 10) % 1_000_000)

    out = []
    for raw in frames:
        raw = _UNIQUEID.sub(uniqueid, raw)
        raw = _COUNTER.sub(counter, raw)
        out.append(_CALLER.sub(caller, raw))
    return out


@dataclass(frozen=True, slots=True)
class Stream:
    """An AMI byte stream and what a correct daemon makes of it."""

    data: bytes
    frames: int  # event frames the daemon receives
    calls: int  # copies of captures (a capture may hold more than one call)
    verdicts: int  # verdicts the correlator gives (inbound calls judged)


def interleave(copies: Iterator[list[bytes]], concurrency: int) -> Iterator[bytes]:
    """Frames of ``concurrency`` calls at a time, a frame each in turn; one ends, one starts."""
    active: list[Iterator[bytes]] = []
    source = iter(copies)
    exhausted = False
    while True:
        while not exhausted and len(active) < concurrency:
            nxt = next(source, None)
            if nxt is None:
                exhausted = True
            else:
                active.append(iter(nxt))
        if not active:
            return
        still: list[Iterator[bytes]] = []
        for call in active:
            frame = next(call, None)
            if frame is not None:
                yield frame
                still.append(call)
        active = still


def build_stream(
    min_events: int,
    concurrency: int = 50,
    names: Sequence[str] | None = None,
    events: str | None = None,
) -> Stream:
    """At least ``min_events`` event frames (those a Login with ``events`` gets), interleaved."""
    bases = templates(names)
    wanted = parse_events_value(events)
    if wanted is not None:
        bases = [[f for f in frames if _classes(f) & wanted] for frames in bases]
    per_round = sum(len(b) for b in bases)
    rounds = -(-min_events // per_round)
    copies = [fresh_copy(b, n) for n, b in enumerate(itertools.chain(*[bases] * rounds))]
    frames = list(interleave(iter(copies), concurrency))
    data = b"".join(frames)
    return Stream(data=data, frames=len(frames), calls=len(copies), verdicts=verdicts_of(data))


def _classes(frame: bytes) -> frozenset[str]:
    start = frame.find(b"Privilege:")
    if start < 0:
        return frozenset({"all"})
    line = frame[start + 10 : frame.find(b"\n", start)].decode().strip().lower()
    return frozenset(c for c in line.split(",") if c and c != "all")


def verdicts_of(data: bytes) -> int:
    """How many inbound verdicts the pure correlator gives for ``data`` (the daemon must match)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = load(write_config(Path(tmp), ami_port=1))
    correlator = AmiCorrelator(config.correlator_settings())
    messages, _ = AmiFramer().receive_data(data)
    count = 0
    for n, message in enumerate(messages):
        count += sum(1 for v in correlator.feed(message, float(n)) if v.verdict.value != "ignored")
    count += sum(1 for v in correlator.flush(1e12) if v.verdict.value != "ignored")
    return count


def write_config(
    directory: Path,
    *,
    ami_port: int | None = None,
    esl_port: int | None = None,
    gateway: str = 'kind = "console"',
    grace: float = 0.0,
) -> Path:
    """A bench config: temp SQLite, grace 0, limits far above any bench, one trunk."""
    (directory / "pbx-secret").write_text("textback\n")
    if esl_port is not None:
        pbx = f"""
[freeswitch]
port = {esl_port}
password_file = "{directory / "pbx-secret"}"
reconnect_min = 0.1
reconnect_max = 0.5

[trunks.carrier-a]
gateways = ["carrier-a"]
"""
    else:
        pbx = f"""
[asterisk]
port = {ami_port}
secret_file = "{directory / "pbx-secret"}"
events = "system,call,agent,dialplan"
reconnect_min = 0.1
reconnect_max = 0.5

[trunks.carrier-a]
channels = ["SIP/carrier-a-*", "PJSIP/carrier-a-*"]
"""
    path = directory / "textback.toml"
    path.write_text(
        f"""
[daemon]
database = "{directory / "textback.db"}"

[business]
name = "Acme Plumbing"
link = "https://acme.example/book"
{pbx}
[correlation]
grace_seconds = {grace}

[policy]
max_per_hour = 1000000
max_per_day = 1000000

[sending]
grace_seconds = 0
retry_base_seconds = 0.1
retry_max_seconds = 0.5

[gateway]
{gateway}
"""
    )
    return path


def rss_mb() -> float:
    """Resident set size now, in MB (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run_daemon_through(
    config: Path, connected: Callable[[], Awaitable[None]], frames: int, verdicts: int
) -> tuple[float, int, int]:
    """Run the daemon on ``config`` against a fake PBX already fed its stream.

    Returns seconds from ``connected`` to the last verdict, verdicts, events handled.
    """
    judged = 0
    last = 0.0
    done = asyncio.Event()

    async def on_verdict(verdict: CallVerdict) -> None:
        nonlocal judged, last
        if verdict.verdict is not Verdict.IGNORED:
            judged += 1
            last = time.perf_counter()
            if judged >= verdicts:
                done.set()

    with open(os.devnull, "w") as devnull:  # noqa: ASYNC230  # opening /dev/null
        daemon = Daemon(load(config), on_verdict=on_verdict, out=devnull)
        task = asyncio.create_task(daemon.run())
        try:
            await connected()
            start = time.perf_counter()
            # The source may filter a few frames: settle on "every verdict in" or
            # "nothing more handled for a second".
            seen = -1
            while not done.is_set() and daemon.events_handled != seen:
                seen = daemon.events_handled
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 1.0)
            await daemon.until_handled(min(frames, daemon.events_handled))
            await daemon.idle.wait()
            return (last or time.perf_counter()) - start, judged, daemon.events_handled
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _serve_pbx(
    make: Callable[[], ReplayServer[Any, Any, Any]],
    ready: Callable[[Any], bool],
    data: bytes,
    conn: Connection,
    cpu: int | None,
) -> None:
    """The child process: a fake PBX fed ``data``; sends its port, then "login" once ready."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def serve() -> None:
        async with make() as pbx:
            pbx.feed(data)
            conn.send(pbx.port)
            await pbx.until(ready)
            conn.send("login")
            await asyncio.Event().wait()  # until the bench terminates us

    asyncio.run(serve())


def ami_pbx() -> AmiSimulator:
    return AmiSimulator([], SimulatorOptions())


def ami_logged_in(pbx: AmiSimulator) -> bool:
    return pbx.logins >= 1


@contextlib.contextmanager
def pbx_process(
    data: bytes,
    make: Callable[[], ReplayServer[Any, Any, Any]] = ami_pbx,
    ready: Callable[[Any], bool] = ami_logged_in,
) -> Iterator[tuple[int, Connection]]:
    """A fake PBX (``make``) replaying ``data`` in a process of its own: its port, and a
    pipe that says "login" once ``ready(pbx)`` holds (the daemon has logged in).

    With two or more CPUs the PBX and this process (the daemon) each get one,
    so the daemon's figures are what one core does.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pair = cpus[:2] if len(cpus) >= 2 else []
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(
        target=_serve_pbx,
        args=(make, ready, data, theirs, pair[1] if pair else None),
        daemon=True,
    )
    child.start()
    before = os.sched_getaffinity(0) if pair else None
    try:
        if pair:
            os.sched_setaffinity(0, {pair[0]})
        started = time.monotonic()
        while not ours.poll(0.1):
            if not child.is_alive() or time.monotonic() - started > 300:
                raise RuntimeError("the fake PBX did not start (its error is above)")
        yield ours.recv(), ours
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
        child.terminate()
        child.join()


async def logged_in(conn: Connection) -> None:
    """Wait until the fake PBX of :func:`pbx_process` reports the daemon's login."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(conn.fileno(), ready.set)
    try:
        await ready.wait()
    finally:
        loop.remove_reader(conn.fileno())
    conn.recv()
