"""Memory under 1M calls through the AMI correlator, with 1% of calls never ending.

    python bench/memory.py [--quick] [--calls N]   (default 100k; --calls 1000000 takes ~25 min)

Fake clock: each frame advances it 10 ms, so calls that lose their Hangup
must expire by the correlator's max age. RSS is sampled every 100k calls
(quick: every 1k). Target (issue 7): RSS growth < 20 MB after warm-up.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchlib import fresh_copy, rss_mb, templates, write_config

from textback.config import load
from textback.core.asterisk import AmiCorrelator
from textback.pbx.ami_proto import AmiFramer


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k calls")
    parser.add_argument("--calls", type=int, default=None)
    args = parser.parse_args()
    calls = args.calls or (2_000 if args.quick else 100_000)
    every = max(1, calls // 10)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load(write_config(Path(tmp), ami_port=1)).correlator_settings()
    correlator = AmiCorrelator(settings)
    # Parsed once: memory of the correlator, not of building a 1M-call stream.
    base = templates(["01-abandoned-ringing"])[0]
    framer = AmiFramer()
    now = 1_795_810_842.0
    verdicts = 0
    samples: list[tuple[int, float, int]] = []
    start = time.perf_counter()
    for call in range(calls):
        frames = fresh_copy(base, call)
        if call % 100 == 42:  # 1%: the caller's Hangup is lost
            frames = [f for f in frames if not f.startswith(b"Event: Hangup")]
        messages, _ = framer.receive_data(b"".join(frames))
        for message in messages:
            now += 0.01
            verdicts += len(correlator.feed(message, now))
        if call % 100 == 99:
            verdicts += len(correlator.on_timer(now))
        if (call + 1) % every == 0:
            samples.append((call + 1, rss_mb(), correlator.calls_in_progress))
    elapsed = time.perf_counter() - start
    print(
        f"{calls:,} calls in {elapsed:.1f} s ({calls / elapsed:,.0f} calls/s), "
        f"{verdicts:,} verdicts"
    )
    print(f"{'calls':>10} {'RSS MB':>8} {'in flight':>10}")
    for n, rss, held in samples:
        print(f"{n:>10,} {rss:>8.1f} {held:>10,}")
    warm = samples[0][1]
    print(f"RSS growth after warm-up (first sample → last): {samples[-1][1] - warm:+.1f} MB")
    # An hour of quiet: every call that never ended must go.
    verdicts += len(correlator.on_timer(now + 86_400))
    print(f"after a day of quiet: {correlator.calls_in_progress} calls held, {verdicts:,} verdicts")


if __name__ == "__main__":
    main()
