"""Speed and memory of framing + correlation. Prints figures; asserts nothing.

    python bench/correlate.py [--rounds N] [--calls N]

Targets (a busy office PBX peaks at a few hundred AMI events per second and a
few dozen concurrent calls):
  * framing + correlation  >= 20,000 events/s on one core
  * memory per call in progress  <= 10 KiB
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

from textback.core.asterisk import AmiCorrelator, CorrelatorSettings
from textback.core.trunks import Trunk, TrunkMap
from textback.pbx.ami_proto import AmiFramer
from textback.replay import correlate

CAPTURES = Path(__file__).resolve().parent.parent / "tests" / "captures" / "asterisk"
SETTINGS = CorrelatorSettings(
    trunks=TrunkMap((Trunk(name="carrier-a", channels=("SIP/carrier-a-*", "PJSIP/carrier-a-*")),))
)


def throughput(rounds: int) -> None:
    blobs = [p.read_bytes() for p in sorted(CAPTURES.glob("*.ami"))]
    size = sum(len(b) for b in blobs)
    events = 0
    start = time.perf_counter()
    for _ in range(rounds):
        for blob in blobs:
            messages, _ = AmiFramer().receive_data(blob)
            events += correlate(messages, AmiCorrelator(SETTINGS))[1]
    elapsed = time.perf_counter() - start
    print(
        f"framing + correlation: {events / elapsed:,.0f} events/s "
        f"({size * rounds / elapsed / 1e6:.1f} MB/s, {events:,} events in {elapsed:.2f} s)"
    )


def memory(calls: int) -> None:
    correlator = AmiCorrelator(SETTINGS)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for n in range(calls):
        uniqueid = f"1795810000.{n}"
        correlator.feed(
            {
                "Event": "Newchannel",
                "Channel": f"PJSIP/carrier-a-{n:08x}",
                "ChannelState": "4",
                "Uniqueid": uniqueid,
                "Linkedid": uniqueid,
                "Context": "from-trunk",
                "Exten": "+12125550100",
                "CallerIDNum": f"+1415555{n % 10000:04d}",
                "CallerIDName": "WIRELESS CALLER",
            },
            0.0,
        )
        phone = f"1795810000.{n}.1"
        correlator.feed(
            {
                "Event": "Newchannel",
                "Channel": f"PJSIP/101-{n:08x}",
                "ChannelState": "0",
                "Uniqueid": phone,
                "Linkedid": uniqueid,
                "Context": "from-internal",
            },
            0.0,
        )
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(
        f"memory: {grown / calls / 1024:.1f} KiB per ringing call "
        f"({calls:,} calls, two channels each, {grown / 1e6:.1f} MB)"
    )
    finished = correlator.flush(1.0)
    print(f"after they end: {correlator.calls_in_progress} calls held ({len(finished):,} judged)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=10_000)
    args = parser.parse_args()
    throughput(args.rounds)
    memory(args.calls)


if __name__ == "__main__":
    main()
