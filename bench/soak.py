"""Soak: the daemon in-process under a steady stream of fresh calls, for minutes.

    python bench/soak.py [--quick] [--minutes M] [--rate CALLS_PER_SECOND]

A fake Asterisk over TCP is fed fresh copies of missed and answered call
captures at a steady rate (default 5 calls/s) for M minutes (default 10;
--quick: about 10 s). Every 30 s (--quick: every 2 s) a row shows the calls
fed, the verdicts in the call log, RSS, open file descriptors, asyncio tasks
and the database size (with its write-ahead log). A leak shows as a column
that keeps growing while the others stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from benchlib import fresh_copy, open_fds, rss_mb, templates, verdicts_of, write_config

from textback.config import load
from textback.core.verdict import CallVerdict, Verdict
from textback.log import configure
from textback.service import Daemon
from textback.simulator import AmiSimulator, SimulatorOptions

# One call each: missed (abandoned, voicemail, busy) and answered.
TEMPLATES = ("01-abandoned-ringing", "02-voicemail", "03-answered", "04-busy")
TICK = 0.1  # seconds between feeds


def db_mb(database: Path) -> float:
    wal = database.with_name(database.name + "-wal")
    return sum(p.stat().st_size for p in (database, wal) if p.exists()) / 1e6


def db_calls(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM calls").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0


async def soak(directory: Path, seconds: float, rate: float, every: float) -> None:
    bases = templates(TEMPLATES)
    if len(bases) != len(TEMPLATES):
        raise SystemExit(f"missing captures: want {', '.join(TEMPLATES)}")
    # What the pure correlator makes of one copy of each: what each fed call must give.
    expected_of = [verdicts_of(b"".join(fresh_copy(b, 0))) for b in bases]
    judged = 0

    async def on_verdict(verdict: CallVerdict) -> None:
        nonlocal judged
        if verdict.verdict is not Verdict.IGNORED:
            judged += 1

    header = (
        f"{'elapsed s':>9} {'calls fed':>9} {'expected':>8} {'in log':>7} {'judged':>7} "
        f"{'RSS MB':>7} {'fds':>5} {'tasks':>5} {'DB MB':>7}"
    )
    rows: list[tuple[float, int, int]] = []  # RSS, fds, tasks

    async with AmiSimulator([], SimulatorOptions()) as pbx:
        config = load(write_config(directory, ami_port=pbx.port))
        database = directory / "textback.db"
        with open(os.devnull, "w") as devnull:  # noqa: ASYNC230  # opening /dev/null
            daemon = Daemon(config, on_verdict=on_verdict, out=devnull)
            task = asyncio.create_task(daemon.run())
            try:
                await pbx.until(lambda s: s.logins >= 1)
                print(f"feeding {rate:g} calls/s for {seconds:g} s; a row every {every:g} s")
                print(header)
                fed = expected = 0
                cycle = itertools.cycle(range(len(bases)))
                start = time.monotonic()
                next_row = start + every

                def row() -> None:
                    elapsed = time.monotonic() - start
                    rss, fds, tasks = rss_mb(), open_fds(), len(asyncio.all_tasks())
                    rows.append((rss, fds, tasks))
                    print(
                        f"{elapsed:>9.0f} {fed:>9,} {expected:>8,} {db_calls(database):>7,} "
                        f"{judged:>7,} {rss:>7.1f} {fds:>5} {tasks:>5} {db_mb(database):>7.2f}",
                        flush=True,
                    )

                while (now := time.monotonic()) < start + seconds:
                    due = int((now - start) * rate) + 1
                    batch = []
                    while fed < due:
                        which = next(cycle)
                        batch.extend(fresh_copy(bases[which], fed))
                        expected += expected_of[which]
                        fed += 1
                    if batch:
                        pbx.feed(b"".join(batch))
                    if now >= next_row:
                        row()
                        next_row += every
                    await asyncio.sleep(TICK)
                # Let the last calls through, then a final row.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(10):
                        await pbx.streamed.wait()
                        # The call log signals nothing: poll it.
                        while judged < expected or db_calls(database) < expected:  # noqa: ASYNC110
                            await asyncio.sleep(0.1)
                        await daemon.idle.wait()
                row()
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    (rss0, fds0, tasks0), (rss1, fds1, tasks1) = rows[0], rows[-1]
    print(
        f"summary: RSS {rss0:.1f} → {rss1:.1f} MB ({rss1 - rss0:+.1f} MB) first row → last row; "
        f"fds {fds0} → {fds1}; tasks {tasks0} → {tasks1}; "
        f"{judged:,} of {expected:,} verdicts for {fed:,} calls fed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 10 s, a row every 2 s")
    parser.add_argument("--minutes", type=float, default=None, help="how long (default 10)")
    parser.add_argument("--rate", type=float, default=5.0, help="calls fed per second")
    args = parser.parse_args()
    if args.rate <= 0:
        parser.error("--rate must be above 0")
    seconds = args.minutes * 60 if args.minutes is not None else (10.0 if args.quick else 600.0)
    every = 2.0 if args.quick else 30.0
    configure("logfmt", "error")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(soak(Path(tmp), seconds, args.rate, every))


if __name__ == "__main__":
    main()
