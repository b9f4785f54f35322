"""``textback demo``: the real daemon against the built-in PBX simulator.

No PBX needed: the simulator is a real AMI server on 127.0.0.1 replaying the
captures bundled in the package, the daemon connects to it with a throwaway
config and SQLite file, and a console "gateway" prints each text it would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import tempfile
from pathlib import Path
from typing import Final, TextIO

from textback.config import Config, load
from textback.esl_simulator import EslSimulator, EslSimulatorOptions, bundled_esl_captures
from textback.service import Daemon
from textback.simulator import AmiSimulator, SimulatorOptions, bundled_captures
from textback.store import open_store

BUSINESS: Final = "Acme Plumbing"
LINK: Final = "https://acme.example/book"
# Seconds a text waits before it goes: a callback answered meanwhile cancels it.
GRACE: Final = 1.5
DEFAULT_TEXT: Final = (
    "Hi, this is {business}, sorry we missed your call! How can we help? "
    "Reply here or book at {link}. Reply STOP to opt out."
)
AFTER_HOURS_TEXT: Final = (
    "Hi, this is {business}. We're closed right now; we'll call you back first thing. "
    "Book any time at {link}. Reply STOP to opt out."
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

{pbx_table}

[trunks.carrier-a]
channels = ["SIP/carrier-a-*", "PJSIP/carrier-a-*"]
gateways = ["carrier-a"]

[trunks.carrier-b]
channels = ["SIP/carrier-b-*", "PJSIP/carrier-b-*"]
acls = ["carrier-b"]
country = "US"

[correlation]
grace_seconds = 1

[templates]
default = {default}
after_hours = {after_hours}

[sending]
grace_seconds = {grace}

[gateway]
kind = "console"
"""


_PBX_TABLES: Final = {
    "asterisk": """\
[asterisk]
host = "127.0.0.1"
port = {port}
username = "textback"
secret_file = "{secret_file}"
closed_contexts = ["app-announcement-1"]
ping_interval = 5
reconnect_min = 0.2
reconnect_max = 2""",
    "freeswitch": """\
[freeswitch]
host = "127.0.0.1"
port = {port}
password_file = "{secret_file}"
reconnect_min = 0.2
reconnect_max = 2""",
}


def demo_config(directory: Path, port: int, secret: str, pbx: str = "asterisk") -> Config:
    """Write and load the throwaway config, through the same loader as ``run``."""
    secret_file = directory / "ami-secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    path = directory / "textback.toml"
    pbx_table = _PBX_TABLES[pbx].format(port=port, secret_file=secret_file)
    path.write_text(
        _CONFIG.format(
            pbx_table=pbx_table,
            database=directory / "textback.db",
            business=BUSINESS,
            link=LINK,
            grace=GRACE,
            default=json.dumps(DEFAULT_TEXT),
            after_hours=json.dumps(AFTER_HOURS_TEXT),
        )
    )
    return load(path)


async def run_demo(*, speed: float, out: TextIO, pbx: str = "asterisk") -> int:
    secret = secrets.token_urlsafe(16)
    simulator: AmiSimulator | EslSimulator
    if pbx == "freeswitch":
        captures = bundled_esl_captures()
        simulator = EslSimulator(
            [data for _, data in captures], EslSimulatorOptions(password=secret, speed=speed)
        )
        what = "FreeSWITCH event-socket"
    else:
        captures = bundled_captures()
        simulator = AmiSimulator(
            [data for _, data in captures], SimulatorOptions(secret=secret, speed=speed)
        )
        what = "Asterisk AMI"
    await simulator.start()
    print(
        f"textback demo: {what} simulator on 127.0.0.1:{simulator.port} replaying"
        f" {len(captures)} recorded calls at {speed:g}x",
        file=out,
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="textback-demo-") as tmp:
            config = demo_config(Path(tmp), simulator.port, secret, pbx)
            daemon = Daemon(config, out=out)
            running = asyncio.create_task(daemon.run(), name="daemon")
            try:
                await asyncio.wait_for(simulator.streamed.wait(), STREAM_TIMEOUT)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(daemon.idle.wait(), SETTLE_TIMEOUT)
                # Let the last grace delay run out and its text go (or be cancelled).
                await asyncio.sleep(GRACE + 0.5)
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            _summary(config, out)
    finally:
        await simulator.aclose()
    return 0


def _summary(config: Config, out: TextIO) -> None:
    with open_store(config.daemon.database) as store:
        calls = list(reversed(store.calls.recent(limit=1000)))
        texts = {row.call_id: row for row in store.outbox.recent(limit=1000)}
    sent = sum(1 for row in texts.values() if row.state == "sent")
    print(f"\n{len(calls)} inbound calls judged, {sent} texts sent:\n", file=out)
    header = f"{'caller':<16} {'verdict':<9} {'reason':<16} text"
    print(header, file=out)
    print("-" * 72, file=out)
    for call in calls:
        withheld = "anonymous" if call["anonymous"] else call["caller_raw"]
        caller = str(call["caller_e164"] or withheld)
        row = texts.get(str(call["call_id"]))
        if row is None:
            text = "-"
        elif row.reason in ("", "ok"):
            text = row.state
        else:
            text = f"{row.state} ({row.reason.removeprefix('suppressed: ')})"
        print(f"{caller:<16} {call['verdict']!s:<9} {call['reason']!s:<16} {text}", file=out)
    print(f"\nCall log and outbox: {config.daemon.database} (temporary, removed now).", file=out)
