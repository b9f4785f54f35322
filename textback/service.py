"""The daemon: PBX source → correlator → call log → delivery. The composition root.

The PBX is Asterisk (AMI source, AMI correlator) or FreeSWITCH (event-socket
source, FreeSWITCH correlator); everything after the verdict is the same. One
task owns the correlator and handles source items strictly in order; the
reader runs beside it and never waits for us. A bug while handling one
event is logged and the next event is handled: it must not cost the
connection or the calls in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final, Protocol, TextIO

from aiohttp import web

from textback.callview import CallNumbers, verdict_record
from textback.config import AsteriskConfig, Config, FreeswitchConfig
from textback.conversations import Conversations
from textback.core.asterisk import AmiCorrelator
from textback.core.freeswitch import FsCorrelator
from textback.core.verdict import CallNotice, CallVerdict, Verdict
from textback.delivery import Delivery
from textback.errors import ConfigError
from textback.gateways.base import AmiAction, GatewayContext
from textback.log import get_logger
from textback.notify import MissedCallNotice, StaffNotifier
from textback.pbx.ami_source import AmiEvent, AmiLinkDown, AmiResync, AmiSettings, AmiSource
from textback.pbx.esl_source import EslEvent, EslLinkDown, EslResync, EslSettings, EslSource
from textback.store import Store
from textback.web.app import WebDeps, start_web

log = get_logger(__name__)

VerdictHook = Callable[[CallVerdict], Awaitable[None]]
# Past this many seconds idle the loop wakes anyway, so a stalled clock or a
# lost timer can never leave a finished call undecided for long.
MAX_IDLE: Final = 60.0


def ami_settings(asterisk: AsteriskConfig) -> AmiSettings:
    if asterisk.secret is None:
        raise ConfigError(["asterisk: no AMI secret — set secret_file or secret_env"])
    return AmiSettings(
        host=asterisk.host,
        port=asterisk.port,
        username=asterisk.username,
        secret=asterisk.secret.reveal(),
        events=asterisk.events,
        connect_timeout=asterisk.connect_timeout,
        ping_interval=asterisk.ping_interval,
        ping_timeout=asterisk.ping_timeout,
        reconnect_min=asterisk.reconnect_min,
        reconnect_max=asterisk.reconnect_max,
        auth_retry=asterisk.auth_retry,
    )


def esl_settings(freeswitch: FreeswitchConfig) -> EslSettings:
    if freeswitch.password is None:
        raise ConfigError(
            ["freeswitch: no event socket password — set password_file or password_env"]
        )
    return EslSettings(
        host=freeswitch.host,
        port=freeswitch.port,
        password=freeswitch.password.reveal(),
        events_format=freeswitch.events_format,
        connect_timeout=freeswitch.connect_timeout,
        heartbeat_timeout=freeswitch.heartbeat_timeout,
        reconnect_min=freeswitch.reconnect_min,
        reconnect_max=freeswitch.reconnect_max,
        auth_retry=freeswitch.auth_retry,
    )


class Correlator(Protocol):
    """What the daemon needs of either PBX's correlator."""

    @property
    def calls_in_progress(self) -> int: ...
    def feed(self, event: Mapping[str, str], now: float) -> list[CallVerdict]: ...
    def resync(self, channels: Sequence[Mapping[str, str]], now: float) -> list[CallVerdict]: ...
    def on_timer(self, now: float) -> list[CallVerdict]: ...
    def next_deadline(self) -> float | None: ...
    def pop_notices(self) -> list[CallNotice]: ...


SourceItem = AmiEvent | AmiResync | AmiLinkDown | EslEvent | EslResync | EslLinkDown


class Source(Protocol):
    async def run(self) -> None: ...
    async def next_item(self) -> SourceItem: ...


class Daemon:
    """Everything ``textback run`` runs, wired from one :class:`Config`."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        on_verdict: VerdictHook | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.config = config
        self.correlator: Correlator
        self.source: Source
        self.ami_action: AmiAction | None = None
        if config.asterisk is not None:
            ami = AmiSource(ami_settings(config.asterisk))
            self.correlator, self.source, self.ami_action = (
                AmiCorrelator(config.correlator_settings()),
                ami,
                ami.action,
            )
        elif config.freeswitch is not None:
            self.correlator = FsCorrelator(config.freeswitch_settings())
            self.source = EslSource(esl_settings(config.freeswitch))
        else:
            raise ConfigError(
                ["no PBX configured — add an [asterisk] or a [freeswitch] table (see the example)"]
            )
        self.clock = clock
        self.on_verdict = on_verdict
        # Set whenever no call is in progress: the demo waits on it.
        self.idle = asyncio.Event()
        self.idle.set()
        # AMI events handled so far, and a condition to wait on it.
        self.events_handled = 0
        self._progress = asyncio.Condition()
        self.out = out
        self.gateway = config.gateway
        self.store: Store | None = None
        self.delivery: Delivery | None = None
        self.conversations: Conversations | None = None
        self.notifier: StaffNotifier | None = None
        self.web: web.AppRunner | None = None

    async def run(self) -> None:
        """Run until cancelled."""
        config = self.config
        self.store = store = await Store.open(config.daemon.database)
        self.delivery = delivery = Delivery(config, store, self.gateway, clock=self.clock)
        self.conversations = conversations = Conversations(
            config,
            store,
            self.gateway,
            wake=delivery.wake.set,
            clock=self.clock,
        )
        if config.notify is not None:
            zone = config.sending.timezone

            async def on_call_text(number: str, text: str) -> None:
                await conversations.enqueue(number, text, kind="urgent_alert")

            self.notifier = StaffNotifier(
                config.notify, send_sms=on_call_text, clock=self.clock, timezone=zone
            )
            conversations.notifier = self.notifier
        log.info(
            "textback_started",
            database=str(config.daemon.database),
            trunks=",".join(t.name for t in config.trunks.trunks),
            gateway=self.gateway.name,
        )
        try:
            await self.gateway.start(GatewayContext(ami_action=self.ami_action, out=self.out))
            if self.notifier is not None:
                await self.notifier.start()
            if config.web is not None:
                deps = WebDeps(
                    config=config,
                    store=store,
                    conversations=conversations,
                    gateways={self.gateway.name: self.gateway},
                    clock=self.clock,
                )
                self.web = await start_web(deps)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.source.run(), name="pbx-source")
                tasks.create_task(self._pump(), name="correlator")
                tasks.create_task(delivery.run(), name="delivery")
        finally:
            if self.web is not None:
                await self.web.cleanup()
            if self.notifier is not None:
                await self.notifier.aclose()
            await self.gateway.aclose()
            await store.aclose()
            log.info("textback_stopped")

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deadline = self.correlator.next_deadline()
            wait = MAX_IDLE if deadline is None else max(0.0, deadline - self.clock())
            try:
                async with asyncio.timeout_at(loop.time() + min(wait, MAX_IDLE)):
                    item = await self.source.next_item()
            except TimeoutError:
                await self._handle(lambda now: self.correlator.on_timer(now))
                continue
            match item:
                case AmiEvent(message=message) | EslEvent(message=message):
                    await self._handle(lambda now: self.correlator.feed(message, now))
                    self.events_handled += 1
                    async with self._progress:
                        self._progress.notify_all()
                case AmiResync(channels=channels) | EslResync(channels=channels):
                    log.info("pbx_resynced", channels=len(channels))
                    await self._handle(lambda now: self.correlator.resync(channels, now))
                case AmiLinkDown() | EslLinkDown():
                    pass

    async def _handle(self, step: Callable[[float], list[CallVerdict]]) -> None:
        try:
            verdicts = step(self.clock())
        except Exception:  # one bad event must not stop the daemon
            log.exception("event_handling_failed")
            verdicts = []
        for verdict in verdicts:
            try:
                await self._record(verdict)
            except Exception:  # keep judging the other calls
                log.exception("verdict_handling_failed", call_id=verdict.call_id)
        assert self.delivery is not None
        for notice in self.correlator.pop_notices():
            try:
                await self.delivery.on_notice(notice)
            except Exception:  # a failed cancel must not stop the judging
                log.exception("notice_handling_failed", kind=notice.kind)
        if self.correlator.calls_in_progress:
            self.idle.clear()
        else:
            self.idle.set()

    async def until_handled(self, count: int) -> None:
        """Wait until ``count`` AMI events have been handled (handled well or logged)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.events_handled >= count)

    async def _record(self, verdict: CallVerdict) -> None:
        if verdict.verdict is Verdict.IGNORED:
            log.debug("call_ignored", call_id=verdict.call_id, reason=verdict.reason.value)
            return
        numbers = CallNumbers.of(verdict, self.config.trunks)
        assert self.store is not None
        assert self.delivery is not None
        await self.store.calls.record(
            verdict, caller_e164=numbers.caller_e164, did_e164=numbers.did_e164, now=self.clock()
        )
        record = verdict_record(verdict, self.config.trunks)
        fields = {
            k: record[k]
            for k in ("call_id", "trunk", "caller", "did", "verdict", "reason", "ring_seconds")
        }
        if verdict.verdict is Verdict.UNKNOWN:
            log.warning("call_judged", **fields, note=verdict.note)
        else:
            log.info("call_judged", **fields)
        await self.delivery.on_verdict(verdict)
        if self.notifier is not None and verdict.verdict is Verdict.MISSED:
            inbox = (
                self.config.web.url(f"/c/{numbers.caller_e164}")
                if (self.config.web is not None and numbers.caller_e164)
                else ""
            )
            await self.notifier.missed_call(
                MissedCallNotice(
                    e164=numbers.caller_e164 or str(record["caller"]),
                    caller_name=verdict.caller_name,
                    did=numbers.did_e164 or verdict.did,
                    reason=verdict.reason.value,
                    at=verdict.started_at,
                    inbox_url=inbox,
                )
            )
        if self.on_verdict is not None:
            await self.on_verdict(verdict)


async def serve(config: Config) -> int:
    """``textback run``: run the daemon until SIGTERM or SIGINT; a crash propagates."""
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = asyncio.create_task(daemon.run(), name="daemon")
    stopping = asyncio.create_task(stop.wait(), name="stop-signal")
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not running.done():
        running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    return 0
