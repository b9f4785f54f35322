"""``textback demo``: the real daemon against the built-in PBX simulator.

No PBX needed: the simulator is a real AMI server on 127.0.0.1 replaying the
captures bundled in the package, the daemon connects to it with a throwaway
config and SQLite file, and a console "gateway" prints each text it would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
from pathlib import Path
from typing import Final, TextIO

from textback.callview import CallNumbers
from textback.config import Config, load
from textback.core.verdict import CallVerdict, Verdict
from textback.service import Daemon
from textback.simulator import AmiSimulator, SimulatorOptions, bundled_captures
from textback.store import CallLog

BUSINESS: Final = "Acme Plumbing"
LINK: Final = "https://acme.example/book"
# The one template of this version; per-route templates come with delivery.
TEMPLATE: Final = (
    "Hi, this is {business} — sorry we missed your call! How can we help? "
    "Reply here or book at {link}. Reply STOP to opt out."
)
# Generous: the bundled calls take about 8 s at the default speed.
STREAM_TIMEOUT: Final = 120.0
SETTLE_TIMEOUT: Final = 10.0

_CONFIG: Final = """\
[daemon]
database = "{database}"

[business]
name = "{business}"
link = "{link}"

[asterisk]
host = "127.0.0.1"
port = {port}
username = "textback"
secret_file = "{secret_file}"
closed_contexts = ["app-announcement-1"]
ping_interval = 5
reconnect_min = 0.2
reconnect_max = 2

[trunks.carrier-a]
channels = ["SIP/carrier-a-*", "PJSIP/carrier-a-*"]

[trunks.carrier-b]
channels = ["SIP/carrier-b-*", "PJSIP/carrier-b-*"]
country = "US"

[correlation]
grace_seconds = 1
"""


def demo_config(directory: Path, port: int, secret: str) -> Config:
    """Write and load the throwaway config, through the same loader as ``run``."""
    secret_file = directory / "ami-secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    path = directory / "textback.toml"
    path.write_text(
        _CONFIG.format(
            database=directory / "textback.db",
            business=BUSINESS,
            link=LINK,
            port=port,
            secret_file=secret_file,
        )
    )
    return load(path)


class ConsoleGateway:
    """Prints the text it would send. The demo's stand-in for an SMS provider."""

    def __init__(self, config: Config, out: TextIO) -> None:
        self.config = config
        self.out = out
        self.sent = 0

    async def on_verdict(self, verdict: CallVerdict) -> None:
        if verdict.verdict is not Verdict.MISSED:
            return
        number = CallNumbers.of(verdict, self.config.trunks).caller_e164
        if verdict.anonymous or number is None:
            print(f"  (no text: {verdict.reason.value}, no number to text back)", file=self.out)
            return
        body = TEMPLATE.format(business=self.config.business.name, link=self.config.business.link)
        self.sent += 1
        print(f"  SMS to {number}: {body}", file=self.out, flush=True)


async def run_demo(*, speed: float, out: TextIO) -> int:
    captures = bundled_captures()
    secret = secrets.token_urlsafe(16)
    simulator = AmiSimulator(
        [data for _, data in captures], SimulatorOptions(secret=secret, speed=speed)
    )
    await simulator.start()
    print(
        f"textback demo: PBX simulator on 127.0.0.1:{simulator.port} replaying"
        f" {len(captures)} recorded calls at {speed:g}x",
        file=out,
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="textback-demo-") as tmp:
            config = demo_config(Path(tmp), simulator.port, secret)
            gateway = ConsoleGateway(config, out)
            daemon = Daemon(config, on_verdict=gateway.on_verdict)
            running = asyncio.create_task(daemon.run(), name="daemon")
            try:
                await asyncio.wait_for(simulator.streamed.wait(), STREAM_TIMEOUT)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(daemon.idle.wait(), SETTLE_TIMEOUT)
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            _summary(config, out, gateway.sent)
    finally:
        await simulator.aclose()
    return 0


def _summary(config: Config, out: TextIO, sent: int) -> None:
    with CallLog.open(config.daemon.database) as calls:
        rows = list(reversed(calls.recent(limit=1000)))
    print(f"\n{len(rows)} inbound calls judged, {sent} texts sent:\n", file=out)
    header = f"{'caller':<16} {'did':<14} {'trunk':<10} {'verdict':<9} reason"
    print(header, file=out)
    print("-" * len(header), file=out)
    for row in rows:
        caller = str(row["caller_e164"] or ("anonymous" if row["anonymous"] else row["caller_raw"]))
        print(
            f"{caller:<16} {row['did_e164'] or row['did']!s:<14} {row['trunk']!s:<10}"
            f" {row['verdict']!s:<9} {row['reason']}",
            file=out,
        )
    print(f"\nCall log: {config.daemon.database} (temporary, removed now).", file=out)
