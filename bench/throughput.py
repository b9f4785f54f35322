"""End-to-end AMI throughput: fake Asterisk over TCP → daemon → SQLite → console gateway.

    python bench/throughput.py [--quick] [--events N] [--concurrency N]

The fake Asterisk runs in a process of its own, pinned to another core when
there is one, so the daemon's figures are what one core does. Prints events/s
and calls/s from the login to the last verdict recorded, and, as references,
the bare panoramisk parse rate and our AmiFramer's rate over the same bytes.
Target (issue 7): >= 40,000 events/s end to end on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from benchlib import Stream, build_stream, logged_in, pbx_process, run_daemon_through, write_config
from panoramisk.message import Message

from textback.log import configure
from textback.pbx.ami_proto import AmiFramer


def panoramisk_rate(data: bytes) -> float:
    """Events/s of panoramisk's own parsing (decode, split on blank lines, Message.from_line)."""
    start = time.perf_counter()
    text = data.decode("ascii", "ignore")
    count = sum(1 for line in text.split("\r\n\r\n") if Message.from_line(line.strip()))
    return count / (time.perf_counter() - start)


def framer_rate(data: bytes, chunk: int = 65536) -> float:
    """Events/s of AmiFramer fed in TCP-sized chunks."""
    framer = AmiFramer()
    count = 0
    start = time.perf_counter()
    for offset in range(0, len(data), chunk):
        count += len(framer.receive_data(data[offset : offset + chunk])[0])
    return count / (time.perf_counter() - start)


def end_to_end(stream: Stream, directory: Path) -> tuple[float, float, int, int]:
    """Seconds from login to the last verdict recorded, CPU seconds of this process
    (the daemon, its database thread included) in that time, verdicts, events handled.
    """
    with pbx_process(stream.data) as (port, pipe):
        config = write_config(directory, ami_port=port)
        cpu = time.process_time()
        elapsed, judged, handled = asyncio.run(
            run_daemon_through(config, lambda: logged_in(pipe), stream.frames, stream.verdicts)
        )
        return elapsed, time.process_time() - cpu, judged, handled


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 20k events (seconds)")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=50, help="calls in flight at once")
    args = parser.parse_args()
    events = args.events or (20_000 if args.quick else 500_000)
    configure("logfmt", "error")
    stream = build_stream(events, args.concurrency)
    print(
        f"stream: {stream.frames:,} events, {len(stream.data) / 1e6:.1f} MB, "
        f"{stream.calls:,} capture copies, {stream.verdicts:,} inbound calls judged, "
        f"{args.concurrency} copies in flight"
    )
    print(f"reference  panoramisk parse:   {panoramisk_rate(stream.data):>10,.0f} events/s")
    print(f"reference  AmiFramer:          {framer_rate(stream.data):>10,.0f} events/s")
    with tempfile.TemporaryDirectory() as tmp:
        elapsed, cpu, judged, handled = end_to_end(stream, Path(tmp))
    print(
        f"end to end (TCP → daemon → SQLite): {handled / elapsed:>10,.0f} events/s, "
        f"{judged / elapsed:,.0f} calls/s ({handled:,} events, {judged:,} of "
        f"{stream.verdicts:,} verdicts in {elapsed:.2f} s; daemon CPU {cpu:.2f} s)"
    )


if __name__ == "__main__":
    main()
