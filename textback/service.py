"""The daemon: PBX source → correlator → call log → delivery. The composition root.

The PBX is Asterisk (AMI source, AMI correlator) or FreeSWITCH (event-socket
source, FreeSWITCH correlator); everything after the verdict is the same. One
task owns the correlator and handles source items strictly in order; the
reader runs beside it and never waits for us. A bug while handling one
event is logged and the next event is handled: it must not cost the
connection or the calls in flight.

Lifecycle under systemd (``Type=notify``, see :mod:`textback.sdnotify`):

* READY once the store is open and the web server listens. The PBX may be
  down: STATUS says what we wait for, and a PBX outage never fails the unit.
* WATCHDOG pings only while the event loop turns and every core task (PBX
  source, correlator, delivery) is running and coming round.
* :meth:`Daemon.stop` (SIGTERM, SIGINT) drains in order: no new webhooks, the
  text in flight finishes (or is settled, never left ``sending``), the PBX
  link closes, then the gateway and the database.
* :meth:`Daemon.request_reload` (SIGHUP) re-reads the TOML and swaps in the
  business, policy, templates, sending and hours; the PBX link and the web
  server stay up. A broken file keeps the running configuration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
import tomllib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, Protocol, TextIO

from aiohttp import web

from textback.callview import CallNumbers, verdict_record
from textback.config import AsteriskConfig, Config, FreeswitchConfig, load
from textback.conversations import Conversations
from textback.core.asterisk import AmiCorrelator
from textback.core.freeswitch import FsCorrelator
from textback.core.verdict import CallNotice, CallVerdict, Verdict
from textback.delivery import Delivery, Taken
from textback.errors import ConfigError, StoreError
from textback.gateways.base import AmiAction, GatewayContext
from textback.log import get_logger
from textback.metrics import Health, Metrics, start_metrics_server
from textback.notify import MissedCallNotice, StaffNotifier
from textback.pbx.ami_proto import SkippedFrames
from textback.pbx.ami_source import AmiEvent, AmiLinkDown, AmiResync, AmiSettings, AmiSource
from textback.pbx.esl_source import EslEvent, EslLinkDown, EslResync, EslSettings, EslSource
from textback.sdnotify import SystemdNotifier
from textback.store import Store, SyncStore
from textback.storeoutage import StoreOutage
from textback.web.app import WebDeps, start_web

log = get_logger(__name__)

VerdictHook = Callable[[CallVerdict], Awaitable[None]]
# Past this many seconds idle the loop wakes anyway, so a stalled clock or a
# lost timer can never leave a finished call undecided for long.
MAX_IDLE: Final = 60.0
# How long SIGTERM waits for the text being sent before settling it unsent.
DRAIN_TIMEOUT: Final = 10.0
# A core loop that has not come round for this long is wedged: the watchdog
# pings stop and systemd restarts us. Idle loops come round every MAX_IDLE.
STALE_AFTER: Final = 5 * MAX_IDLE
# How often STATUS is refreshed and the core tasks checked when systemd set no watchdog.
SUPERVISE_EVERY: Final = 5.0
# What a call_judged log line says of the call.
_JUDGED_FIELDS: Final = ("call_id", "trunk", "caller", "did", "verdict", "reason", "ring_seconds")
# Events fed in one run before the pump lets the loop turn (reads, timers, web).
FEED_RUN: Final = 256
# The TOML tables SIGHUP applies; any other change needs a restart.
RELOADABLE: Final = frozenset({"business", "policy", "templates", "sending", "hours"})


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

    def ready_item(self) -> SourceItem | None: ...


class Daemon:
    """Everything ``textback run`` runs, wired from one :class:`Config`."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        on_verdict: VerdictHook | None = None,
        out: TextIO | None = None,
        path: Path | None = None,
        systemd: SystemdNotifier | None = None,
        drain_timeout: float = DRAIN_TIMEOUT,
        stale_after: float = STALE_AFTER,
    ) -> None:
        self.config = config
        self.correlator: Correlator
        self.source: Source
        self.ami_action: AmiAction | None = None
        if config.asterisk is not None:
            correlator = AmiCorrelator(config.correlator_settings())
            ami = AmiSource(ami_settings(config.asterisk), skip=correlator.needless)
            self.correlator, self.source, self.ami_action = correlator, ami, ami.action
            self.pbx_address = f"{config.asterisk.host}:{config.asterisk.port}"
        elif config.freeswitch is not None:
            self.correlator = FsCorrelator(config.freeswitch_settings())
            self.source = EslSource(esl_settings(config.freeswitch))
            self.pbx_address = f"{config.freeswitch.host}:{config.freeswitch.port}"
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
        # An item the pump read ahead while feeding a run of events.
        self._lookahead: SourceItem | None = None
        self.out = out
        self.gateway = config.gateway
        self.store: Store | None = None
        self.delivery: Delivery | None = None
        self.conversations: Conversations | None = None
        self.notifier: StaffNotifier | None = None
        self.web: web.AppRunner | None = None
        self.metrics = Metrics()
        self.metrics_server: web.AppRunner | None = None
        # Lifecycle: what SIGHUP re-reads, who hears about our state, how long we wait.
        self.path = path if path is not None else config.path
        self.systemd = systemd if systemd is not None else SystemdNotifier()
        self.drain_timeout = drain_timeout
        self.stale_after = stale_after
        self._tables = _tables_of(self.path)
        self._stop = asyncio.Event()
        self._reload_wanted = asyncio.Event()
        self._pbx_up = False
        self._pbx_trouble: str | None = None  # why the link is down, once it went down
        self._status = ""
        self._pump_beat = time.monotonic()
        self._outage = StoreOutage("logging calls")

    @property
    def pbx_connected(self) -> bool:
        """Logged in to the PBX now (for STATUS and health checks)."""
        return self._pbx_up

    def stop(self) -> None:
        """Drain and make :meth:`run` return (SIGTERM, SIGINT)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Re-read the config file soon (SIGHUP); requests during a reload make one more."""
        self._reload_wanted.set()

    async def run(self) -> None:
        """Run until :meth:`stop` (then drain in order and return) or cancellation.

        A crash in a core task raises, so ``textback run`` exits non-zero.
        """
        config = self.config
        self.store = store = await Store.open(config.daemon.database)
        self.delivery = delivery = Delivery(
            config, store, self.gateway, clock=self.clock, metrics=self.metrics
        )
        self.conversations = conversations = Conversations(
            config,
            store,
            self.gateway,
            wake=delivery.wake.set,
            clock=self.clock,
            metrics=self.metrics,
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
            if config.metrics is not None:
                health = Health(
                    pbx_connected=lambda: self.pbx_connected,
                    db_writable=store.writable,
                    gateway_error=lambda: delivery.gateway_problem,
                )
                self.metrics_server = await start_metrics_server(
                    self.metrics, health, config.metrics.host, config.metrics.port
                )
            await self._queue_unqueued()
            async with asyncio.TaskGroup() as tasks:
                core = {
                    "pbx source": tasks.create_task(self.source.run(), name="pbx-source"),
                    "correlator": tasks.create_task(self._pump(), name="correlator"),
                    "delivery": tasks.create_task(delivery.run(), name="delivery"),
                }
                helpers = [
                    tasks.create_task(self._supervise(core), name="supervisor"),
                    tasks.create_task(self._reloader(), name="reloader"),
                ]
                # Not waiting for the PBX: an outage there must not fail the unit.
                self._status = self._status_text()
                self.systemd.ready(self._status)
                await self._stop.wait()
                await self._drain(core, helpers)
        finally:
            if self.web is not None:
                await self.web.cleanup()
                self.web = None
            if self.metrics_server is not None:
                await self.metrics_server.cleanup()
                self.metrics_server = None
            if self.notifier is not None:
                await self.notifier.aclose()
            await self.gateway.aclose()
            await store.aclose()
            log.info("textback_stopped")

    async def _queue_unqueued(self) -> None:
        """Queue the texts of missed calls logged just before a crash but never queued.

        A call is logged and then queued in two writes; a kill between them
        must not lose the text. Older than ``max_age_hours``, it would only expire.
        """
        assert self.store is not None
        assert self.delivery is not None
        since = self.clock() - self.config.sending.max_age_hours * 3600.0
        for verdict in await self.store.calls.unqueued_missed(since):
            log.warning(
                "text_queued_after_restart",
                call_id=verdict.call_id,
                pbx=verdict.pbx,
                hint="the call was logged but its text not queued before the last stop",
            )
            await self.delivery.on_verdict(verdict)

    # -- stopping ---------------------------------------------------------------------

    async def _drain(
        self, core: Mapping[str, asyncio.Task[None]], helpers: Sequence[asyncio.Task[None]]
    ) -> None:
        """Stop in order: webhooks, the text in flight, the PBX link (the rest in run())."""
        log.info("textback_stopping")
        self.systemd.stopping("stopping: closing the web server")
        for task in helpers:
            task.cancel()
        if self.web is not None:
            # In-flight requests get the runner's shutdown_timeout to finish.
            await self.web.cleanup()
            self.web = None
        self.systemd.status("stopping: finishing the text being sent")
        assert self.delivery is not None
        sender = core["delivery"]
        self.delivery.stop()
        await asyncio.wait({sender}, timeout=self.drain_timeout)
        if not sender.done():
            log.warning(
                "text_send_interrupted",
                waited_seconds=self.drain_timeout,
                hint="the gateway did not answer in time; the text is settled below",
            )
            sender.cancel()
            await asyncio.wait({sender})
        await self._settle_unsent()
        self.systemd.status("stopping: closing the PBX connection")
        pbx = [core["correlator"], core["pbx source"]]
        for task in pbx:
            task.cancel()
        await asyncio.wait(pbx)

    async def _settle_unsent(self) -> None:
        """Leave no row ``sending``: the next start must not wonder whether it went."""
        assert self.store is not None
        requeued, ambiguous = await self.store.outbox.recover(
            self.clock(), idempotent=self.gateway.idempotent, gateway=self.gateway.name
        )
        for row_id in requeued:
            log.info("text_requeued_on_stop", outbox_id=row_id)
        for row_id in ambiguous:
            log.error(
                "text_maybe_sent",
                outbox_id=row_id,
                gateway=self.gateway.name,
                error="textback stopped while the provider held the request",
                hint="the provider may have sent it; not retried, to never text twice",
            )

    # -- systemd: status and watchdog -------------------------------------------------

    def _status_text(self) -> str:
        parts: list[str] = []
        problem = self.delivery.gateway_problem if self.delivery is not None else None
        if problem is not None:
            parts.append(f"gateway misconfigured: {problem} — fix [gateway] and restart")
        if self._pbx_up:
            calls = self.correlator.calls_in_progress
            parts.append(f"PBX connected, {calls} call{'' if calls == 1 else 's'} in progress")
        elif self._pbx_trouble is None:
            parts.append(f"waiting for the PBX at {self.pbx_address}")
        else:
            parts.append(f"waiting for the PBX at {self.pbx_address} ({self._pbx_trouble})")
        return "; ".join(parts)

    def _update_status(self) -> None:
        text = self._status_text()
        if text != self._status and not self._stop.is_set():
            self._status = text
            self.systemd.status(text)

    def _wedged(self, core: Mapping[str, asyncio.Task[None]]) -> str | None:
        """Why the daemon cannot be trusted to work, or None when every core task is live."""
        for name, task in core.items():
            if task.done():
                return f"{name} task ended"
        assert self.delivery is not None
        now = time.monotonic()
        for name, beat in (("correlator", self._pump_beat), ("delivery", self.delivery.beat)):
            if now - beat > self.stale_after:
                return f"{name} loop stuck for {now - beat:.0f} s"
        return None

    async def _supervise(self, core: Mapping[str, asyncio.Task[None]]) -> None:
        """Refresh STATUS; ping the watchdog while nothing is wedged.

        This task running at all shows the event loop turns.
        """
        assert self.delivery is not None
        interval = self.systemd.watchdog_interval
        withheld: str | None = None
        while True:
            self._update_status()
            # An idle dispatcher sleeps up to a retry hold; a nudge makes it show it is alive.
            if time.monotonic() - self.delivery.beat > self.stale_after / 2:
                self.delivery.wake.set()
            problem = self._wedged(core)
            if problem != withheld:
                if problem is not None:
                    log.error(
                        "watchdog_withheld",
                        problem=problem,
                        hint="systemd restarts textback when this lasts WatchdogSec",
                    )
                else:
                    log.info("watchdog_resumed")
                withheld = problem
            if problem is None and interval is not None:
                self.systemd.watchdog()
            await asyncio.sleep(interval if interval is not None else SUPERVISE_EVERY)

    # -- SIGHUP -------------------------------------------------------------------------

    async def _reloader(self) -> None:
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            self.systemd.reloading()
            try:
                self.reload()
            except Exception:  # a reload bug must not take the running daemon down
                log.exception("config_reload_failed", path=str(self.path))
            self._status = self._status_text()
            self.systemd.ready(self._status)

    def reload(self) -> bool:
        """Apply the config file's reloadable tables; False (old config kept) when it is broken."""
        try:
            new = load(self.path)
        except ConfigError as exc:
            for problem in exc.problems:
                shown = problem if problem.startswith(str(self.path)) else f"{self.path}: {problem}"
                log.error("config_reload_problem", problem=shown)
            log.error(
                "config_reload_failed",
                path=str(self.path),
                hint="kept the running configuration; fix the file and reload again",
            )
            return False
        tables = _tables_of(self.path)
        changed = _changed(self._tables, tables)
        restart = sorted(changed - RELOADABLE)
        if restart:
            log.warning(
                "config_reload_needs_restart",
                tables=",".join(restart),
                hint="these take effect after `systemctl restart textback`; kept them as they were",
            )
        self._apply(new)
        # Remember what runs: unapplied tables keep their old text, so the warning repeats.
        self._tables = {
            **{k: v for k, v in self._tables.items() if k not in RELOADABLE},
            **{k: v for k, v in tables.items() if k in RELOADABLE},
        }
        log.info(
            "config_reloaded", path=str(self.path), applied=",".join(sorted(changed & RELOADABLE))
        )
        return True

    def _apply(self, new: Config) -> None:
        config = dataclasses.replace(
            self.config,
            business=new.business,
            policy=new.policy,
            templates=new.templates,
            sending=new.sending,
            hours=new.hours,
        )
        self.config = config
        if self.delivery is not None:
            self.delivery.config = config
        if self.conversations is not None:
            self.conversations.config = config
        # After-hours verdicts read the hours when a call ends; calls in flight get the new ones.
        correlator = self.correlator
        if isinstance(correlator, AmiCorrelator):
            correlator.settings = dataclasses.replace(correlator.settings, hours=new.hours)
        if isinstance(correlator, FsCorrelator):
            correlator.settings = dataclasses.replace(correlator.settings, hours=new.hours)

    # -- the correlator ---------------------------------------------------------------

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._pump_beat = time.monotonic()
            # Under load an item is already waiting; the correlator settles due
            # timers as it feeds, so only a wait needs the timeout.
            item, self._lookahead = self._lookahead, None
            if item is None:
                item = self.source.ready_item()
            if item is None:
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
                    self._pbx_up = True  # also when the PBX refused the resync snapshot
                    await self._feed(message)
                case AmiResync(channels=channels) | EslResync(channels=channels):
                    log.info("pbx_resynced", channels=len(channels))
                    self._pbx_up, self._pbx_trouble = True, None
                    self.metrics.pbx_connected(True)
                    await self._handle(lambda now: self.correlator.resync(channels, now))
                case AmiLinkDown(reason=reason) | EslLinkDown(reason=reason):
                    self._pbx_up, self._pbx_trouble = False, reason
                    self.metrics.pbx_connected(False)
                    self._update_status()

    async def _feed(self, message: Mapping[str, str]) -> None:
        """Feed ``message`` and the events already waiting behind it, then act on the result.

        Most events complete nothing, so they are fed in a run and the loop's
        bookkeeping (progress, idle, status) is done once per run; the calls a
        run completes are recorded together (one write for a burst). A run ends
        at the first event that gives a notice (an answer, a call back), which
        must see the texts of the calls before it: calls are recorded and
        notices applied in event order.
        """
        correlator = self.correlator
        verdicts: list[CallVerdict] = []
        notices: list[CallNotice] = []
        fed = 0
        while True:
            if type(message) is SkippedFrames:
                fed += message.count
            else:
                fed += 1
                try:
                    verdicts += correlator.feed(message, self.clock())
                except Exception:  # one bad event must not stop the daemon
                    log.exception("event_handling_failed")
                notices = correlator.pop_notices()
                if notices:
                    break
            if fed >= FEED_RUN:
                break
            item = self.source.ready_item()
            if not isinstance(item, AmiEvent | EslEvent):
                self._lookahead = item  # a resync or a link down: the pump's own business
                break
            message = item.message
        await self._act(verdicts, notices)
        self.events_handled += fed
        async with self._progress:
            self._progress.notify_all()

    async def _handle(self, step: Callable[[float], list[CallVerdict]]) -> None:
        try:
            verdicts = step(self.clock())
        except Exception:  # one bad event must not stop the daemon
            log.exception("event_handling_failed")
            verdicts = []
        await self._act(verdicts, self.correlator.pop_notices())

    async def _act(self, verdicts: list[CallVerdict], notices: list[CallNotice]) -> None:
        """Record the verdicts and apply the notices the correlator just gave."""
        if verdicts:
            work = asyncio.ensure_future(self._record_all(verdicts))
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                # A stop must not split logging a call from queueing its text.
                await work
                raise
        assert self.delivery is not None
        for notice in notices:
            try:
                await self.delivery.on_notice(notice)
            except Exception:  # a failed cancel must not stop the judging
                log.exception("notice_handling_failed", kind=notice.kind)
        if self.correlator.calls_in_progress:
            self.idle.clear()
        else:
            self.idle.set()
        self._update_status()

    async def _record_all(self, verdicts: list[CallVerdict]) -> None:
        judged = []
        for verdict in verdicts:
            if verdict.verdict is Verdict.IGNORED:
                log.debug("call_ignored", call_id=verdict.call_id, reason=verdict.reason.value)
            else:
                judged.append(verdict)
        while judged:
            try:
                await self._record(judged)
            except StoreError as exc:
                if self._stop.is_set():
                    for verdict in judged:
                        log.error("call_not_saved", **verdict_record(verdict, self.config.trunks))
                    break
                # Judging waits (events queue up in memory) rather than lose the calls.
                self._pump_beat = time.monotonic()
                await asyncio.sleep(self._outage.failed(exc))
                continue
            except Exception:  # keep judging the calls that come next
                log.exception(
                    "verdict_handling_failed", call_ids=",".join(v.call_id for v in judged)
                )
            else:
                self._outage.ok()
            break

    async def until_handled(self, count: int) -> None:
        """Wait until ``count`` AMI events have been handled (handled well or logged)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.events_handled >= count)

    async def _record(self, verdicts: list[CallVerdict]) -> None:
        """Log the calls and queue their texts (one write); safe to run again."""
        assert self.store is not None
        assert self.delivery is not None
        trunks = self.config.trunks
        delivery = self.delivery
        numbers = [CallNumbers.of(v, trunks) for v in verdicts]
        calls = [(v, n.caller_e164, n.did_e164) for v, n in zip(verdicts, numbers, strict=True)]
        now = self.clock()

        def log_and_queue(store: SyncStore) -> list[Taken]:
            store.calls.record_all(calls, now)
            return delivery.take(store.outbox, verdicts, now)

        # One transaction: a call is never logged without its text queued, and a
        # burst of calls costs one commit.
        taken = await self.store.write(log_and_queue)
        records = [verdict_record(v, trunks) for v in verdicts]
        for verdict, record in zip(verdicts, records, strict=True):
            self.metrics.call_judged(verdict.pbx, verdict.verdict, verdict.reason)
            fields = {k: record[k] for k in _JUDGED_FIELDS}
            if verdict.verdict is Verdict.UNKNOWN:
                log.warning("call_judged", **fields, note=verdict.note)
            else:
                log.info("call_judged", **fields)
        await delivery.settle(taken, now)
        for verdict, number, record in zip(verdicts, numbers, records, strict=True):
            if self.notifier is not None and verdict.verdict is Verdict.MISSED:
                await self._notify_missed(verdict, number, record)
            if self.on_verdict is not None:
                await self.on_verdict(verdict)

    async def _notify_missed(
        self, verdict: CallVerdict, numbers: CallNumbers, record: Mapping[str, object]
    ) -> None:
        assert self.notifier is not None
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


def _tables_of(path: Path) -> dict[str, object]:
    """The file's top-level tables as written, to tell which ones a reload changes."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError):
        return {}  # load() names the problem; every table then counts as changed


def _changed(old: Mapping[str, object], new: Mapping[str, object]) -> set[str]:
    return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}


async def serve(config: Config, path: Path) -> int:
    """``textback run``: run until SIGTERM or SIGINT, drain, return 0; SIGHUP reloads ``path``.

    A crash propagates, so the process exits non-zero and systemd restarts it.
    """
    systemd = SystemdNotifier.from_env()
    daemon = Daemon(config, path=path, systemd=systemd)
    loop = asyncio.get_running_loop()
    handlers = {
        signal.SIGTERM: daemon.stop,
        signal.SIGINT: daemon.stop,
        signal.SIGHUP: daemon.request_reload,
    }
    for signum, handler in handlers.items():
        loop.add_signal_handler(signum, handler)
    try:
        await daemon.run()
    finally:
        for signum in handlers:
            loop.remove_signal_handler(signum)
    return 0
