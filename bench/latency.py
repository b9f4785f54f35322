"""Speed to lead: final caller Hangup written by the fake PBX → request at a fake Twilio.

    python bench/latency.py [--quick] [--calls N]

A burst of missed calls (1,000; quick: 100) arriving evenly over a few seconds
(--spread, default 5), grace delay 0, policy limits raised. Prints p50/p95/p99/max
in ms. Target (issue 7): p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from aiohttp import web
from benchlib import fresh_copy, percentile, templates, write_config

from textback.simulator import AmiSimulator, SimulatorOptions, _Client

ACCOUNT = "AC" + "0" * 31 + "1"
_CALLER_HANGUP = re.compile(rb"^Event: Hangup\r\n.*?Channel: [A-Z]+/carrier-a-", re.S)
_CALLERID = re.compile(rb"\r\nCallerIDNum: (\+\d+)\r\n")


class _TimedClient(_Client):
    """Records when each caller-channel Hangup frame was written, by caller number."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        cut: Callable[[bytes], Iterator[bytes]],
        sent: dict[str, float],
    ) -> None:
        super().__init__(writer, cut)
        self._sent = sent

    async def send(self, data: bytes) -> bool:
        ok = await super().send(data)
        if _CALLER_HANGUP.match(data):
            number = _CALLERID.search(data)
            if number is not None:
                self._sent[number.group(1).decode()] = time.perf_counter()
        return ok


class TimedSimulator(AmiSimulator):
    def __init__(self, captures: list[bytes]) -> None:
        super().__init__(captures, SimulatorOptions())
        self.hangups: dict[str, float] = {}

    def _new_client(
        self, writer: asyncio.StreamWriter, cut: Callable[[bytes], Iterator[bytes]]
    ) -> _Client:
        return _TimedClient(writer, cut, self.hangups)


async def run(calls: int, spread: float, directory: Path) -> list[float]:
    (template,) = templates(["01-abandoned-ringing"])
    # One fresh copy per call, each fed whole at its own moment: the burst arrives
    # spread evenly over `spread` seconds, as a real burst would, not in one write.
    bursts = [b"".join(fresh_copy(template, copy)) for copy in range(calls)]
    expected = calls
    received: dict[str, float] = {}
    all_in = asyncio.Event()

    async def create(request: web.Request) -> web.Response:
        form = await request.post()
        received.setdefault(str(form["To"]), time.perf_counter())
        if len(received) >= expected:
            all_in.set()
        return web.json_response({"sid": f"SM{len(received):032x}", "status": "queued"}, status=201)

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", create)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    (directory / "token").write_text("token\n")
    gateway = (
        f'kind = "twilio"\naccount_sid = "{ACCOUNT}"\nauth_token_file = "{directory / "token"}"\n'
        f'from = "+12125550100"\nbase_url = "http://{host}:{port}"\ntimeout = 5'
    )
    try:
        async with TimedSimulator([]) as pbx:
            path = write_config(directory, ami_port=pbx.port, gateway=gateway)
            # The daemon runs as `textback run`, in its own process as on a real box:
            # the fake PBX and gateway here must not take turns with it on one loop.
            daemon = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "textback",
                "run",
                "-c",
                str(path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                async with asyncio.timeout(30):
                    while pbx.logins == 0:  # noqa: ASYNC110 - a counter, no event to wait on
                        await asyncio.sleep(0.01)
                await asyncio.sleep(0.5)  # its resync after login
                # Cut before the clock starts: this process must keep up with the burst.
                frames = [pbx.frames_of(burst) for burst in bursts]
                start = time.perf_counter()
                for i, burst_frames in enumerate(frames):
                    delay = start + i * spread / calls - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    pbx.feed_frames(burst_frames)
                async with asyncio.timeout(120):
                    await all_in.wait()
            finally:
                if daemon.returncode is None:
                    daemon.terminate()
                await daemon.wait()
            hangups = pbx.hangups
    finally:
        await runner.cleanup()
    return [(received[n] - hangups[n]) * 1000 for n in received if n in hangups]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 calls")
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument(
        "--spread", type=float, default=5.0, help="seconds the burst arrives over (default 5)"
    )
    args = parser.parse_args()
    calls = args.calls or (100 if args.quick else 1000)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ms = asyncio.run(run(calls, args.spread, Path(tmp)))
        wall = time.perf_counter() - started
    print(
        f"{len(ms):,} missed calls texted (the burst arriving over {args.spread:g} s,"
        f" {wall:.1f} s in all)"
    )
    print(
        f"Hangup written → gateway request: p50 {percentile(ms, 50):.1f} ms, "
        f"p95 {percentile(ms, 95):.1f} ms, p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms"
    )


if __name__ == "__main__":
    main()
