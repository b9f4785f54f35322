"""From a missed-call verdict to a text on the caller's phone: intake and dispatcher.

Shell (IO). The decisions are pure and live in the core (``policy``,
``templates``, ``window``, ``backoff``); this module asks them, writes the
outbox, and drives the gateway.

* **Intake** (``on_verdict``): every missed call gets exactly one outbox row,
  ``pending`` (due after the grace delay, moved into the recipient's sending
  window) or ``suppressed`` with the policy's reason. A second verdict for the
  same call inserts nothing. An answered call, or an answer/dial-out seen
  mid-call (``on_notice``), cancels the caller's pending text: ``recovered``.
* **Dispatcher** (``run``): oldest first, up to the gateway's
  ``max_in_flight`` texts at once, never two to one number. A transient
  failure holds every text back until its retry time, then texts leave one
  at a time until one goes, so an outage ends with the texts going out in
  order. Opt-outs, unreachable numbers and spam
  filtering end the row; a configuration error (bad credentials, unregistered
  sender) stops sending until the daemon restarts, keeping the rows.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from textback.callview import CallNumbers
from textback.config import Config
from textback.core.backoff import retry_delay
from textback.core.policy import History, decide
from textback.core.templates import choose, render
from textback.core.verdict import CallNotice, CallVerdict, Reason, Verdict
from textback.core.window import schedule
from textback.errors import StoreError
from textback.gateways.base import (
    FailureKind,
    Gateway,
    GatewayError,
    OutgoingSms,
    SendReceipt,
    max_in_flight,
)
from textback.log import get_logger
from textback.metrics import ADAPTER_BUG, Metrics, TextState
from textback.numbers import mask, national, number_facts, time_zones, to_e164
from textback.outbox import NewText, Outbox, OutboxRow
from textback.store import Store
from textback.storeoutage import StoreOutage

log = get_logger(__name__)

# How long to sleep when nothing is due and nothing wakes us.
IDLE_WAIT: Final = 60.0
# How often to look again while a cap is reached.
CAP_RECHECK: Final = 60.0
# How often the outbox depth is counted while texts keep going out.
GAUGE_EVERY: Final = 1.0
# How often stale texts are ended (claim_due never hands one out in between).
EXPIRE_EVERY: Final = 5.0


# Why a text is cancelled when the caller reached us after all.
RECOVERED: Final = "recovered"


@dataclass(frozen=True, slots=True)
class Taken:
    """What intake wrote for one verdict, in the database thread (see ``Delivery.take``)."""

    verdict: CallVerdict
    text: NewText | None = None  # a missed call: the row it asked for
    template: str = ""  # that row's template, as its TOML path
    row_id: int | None = None  # None: the call already had a row
    to: str | None = None  # an answered call: the caller, whose pending texts ...
    cancelled: list[int] = field(default_factory=list)  # ... these were cancelled
    error: Exception | None = None  # a bug met while planning the call's text


@dataclass(frozen=True, slots=True)
class Queued:
    """What intake did with one missed call (for logs and tests)."""

    row_id: int | None  # None: the call already had a row
    state: str
    reason: str


class Delivery:
    def __init__(
        self,
        config: Config,
        store: Store,
        gateway: Gateway,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.gateway = gateway
        self.clock = clock
        self.rng = rng or random.Random()
        self.metrics = metrics
        self.wake = asyncio.Event()
        self._outage = StoreOutage("sending texts")
        self._hold_until = 0.0  # no claims before this: a transient outage is global
        # Since a transient failure, one text at a time until one goes: texts held
        # back by an outage leave in call order, none overtaking another.
        self._flowing = True
        self._expire_at = 0.0  # when to next look for stale texts
        self._gauged_at = 0.0  # monotonic time of the last depth count
        self._paused: str | None = None  # why sending stopped (config error), until restart
        self._cap_logged: str | None = None
        self._stopping = False  # stop(): leave run() after the send in flight
        self.beat = time.monotonic()  # when run()'s loop last came round, for the watchdog

    @property
    def gateway_problem(self) -> str | None:
        """Why sending stopped (a gateway configuration error) until restart, or None."""
        return self._paused

    # -- intake ---------------------------------------------------------------------

    async def on_verdict(self, verdict: CallVerdict) -> Queued | None:
        return (await self.on_verdicts([verdict]))[0]

    async def on_verdicts(self, verdicts: Sequence[CallVerdict]) -> list[Queued | None]:
        """Intake for verdicts in call order, in one transaction; what became of each
        missed call's text (None for the others)."""
        now = self.clock()
        taken = await self.store.write(lambda store: self.take(store.outbox, verdicts, now))
        return await self.settle(taken, now)

    def take(self, outbox: Outbox, verdicts: Sequence[CallVerdict], now: float) -> list[Taken]:
        """Intake's writes, for the database thread inside the caller's transaction.

        In call order: each missed call's row (its history read after the rows
        before it, so a caller twice in a burst meets the cooldown), each
        answered call's cancels. Pair with :meth:`settle` back on the loop.
        """
        taken: list[Taken] = []
        for verdict in verdicts:
            try:
                taken.append(self._take_one(outbox, verdict, now))
            except StoreError:
                raise  # the whole transaction is retried
            except Exception as exc:  # noqa: BLE001  # settle() logs it, with its traceback
                taken.append(Taken(verdict, error=exc))  # one call's bug must not cost others
        return taken

    def _take_one(self, outbox: Outbox, verdict: CallVerdict, now: float) -> Taken:
        if verdict.verdict is Verdict.MISSED:
            numbers = CallNumbers.of(verdict, self.config.trunks)
            e164 = numbers.caller_e164
            # The caps are the dispatcher's, checked at each claim: no volume here.
            history = outbox.history(e164, now, volume=False) if e164 is not None else History()
            text, template = self._plan(verdict, numbers, history, now)
            return Taken(verdict, text=text, template=template, row_id=outbox.accept(**text))
        if verdict.verdict is Verdict.ANSWERED:
            e164 = to_e164(verdict.caller_raw, self._region(verdict.trunk))
            if e164 is not None:
                cancelled = outbox.cancel_pending(e164, RECOVERED, now)
                return Taken(verdict, to=e164, cancelled=cancelled)
        return Taken(verdict)

    async def settle(self, taken: Sequence[Taken], now: float) -> list[Queued | None]:
        """Log, count and wake the dispatcher for what :meth:`take` wrote."""
        results: list[Queued | None] = []
        for one in taken:
            verdict = one.verdict
            if one.error is not None:
                log.error(
                    "text_not_queued",
                    call_id=verdict.call_id,
                    exc_info=one.error,
                    hint="a bug: the call is logged, its text is not; please report it",
                )
                results.append(None)
            elif one.text is not None:
                results.append(self._queued(verdict, one.text, one.template, one.row_id, now))
            else:
                self._cancelled(one.to, one.cancelled, "answered call")
                results.append(None)
        if any(one.cancelled for one in taken):
            await self._gauge_depth()
        return results

    async def on_notice(self, notice: CallNotice) -> None:
        what = "answered call" if notice.kind == "answered" else "call back from our phone"
        e164 = to_e164(notice.number, self._region(notice.trunk))
        if e164 is None:
            return
        cancelled = await self.store.outbox.cancel_pending(e164, RECOVERED, self.clock())
        self._cancelled(e164, cancelled, what)
        if cancelled:
            await self._gauge_depth()

    def _cancelled(self, e164: str | None, row_ids: Sequence[int], by: str) -> None:
        for row_id in row_ids:
            log.info("text_cancelled", outbox_id=row_id, to=e164, reason=RECOVERED, by=by)
        self._count("cancelled", len(row_ids))

    def _plan(
        self, verdict: CallVerdict, numbers: CallNumbers, history: History, now: float
    ) -> tuple[NewText, str]:
        """The outbox row for one missed call (the policy's decision, the text, when),
        and the TOML path of its template, for the log.
        """
        cfg = self.config
        facts = number_facts(numbers.caller_e164)
        decision = decide(verdict, facts, history, cfg.policy)
        ended = verdict.ended_at
        hours = cfg.hours
        open_now = hours.is_open(ended) if hours is not None else None
        if verdict.reason is Reason.AFTER_HOURS:
            open_now = False  # a closed-branch context says so, whatever the clock says
        chosen = choose(
            cfg.templates,
            did=numbers.did_e164,
            trunk=verdict.trunk,
            reason=verdict.reason.value,
            open_now=open_now,
            holiday=hours.is_holiday(ended) if hours is not None else False,
            override=decision.template,
        )
        did = numbers.did_e164 or verdict.did
        body = render(
            chosen,
            {
                "business": chosen.business,
                "link": chosen.link,
                "caller_name": verdict.caller_name,
                "did": did,
                "phone": national(did) if numbers.did_e164 else did,
            },
        )
        sending = cfg.sending
        expires_at = ended + sending.max_age_hours * 3600.0
        state: Literal["pending", "suppressed"] = "suppressed"
        reason, send_at = decision.reason, now
        if decision.send and numbers.caller_e164 is not None:
            zones = time_zones(numbers.caller_e164) or (sending.timezone,)
            due = schedule(
                due=ended + sending.grace_seconds,
                deadline=expires_at,
                zones=zones,
                window=sending.window,
            )
            if due is None:
                reason = "suppressed: too_late"  # the window opens after max_age
            else:
                state, send_at = "pending", due
        text = NewText(
            pbx=verdict.pbx,
            call_id=verdict.call_id,
            to_e164=numbers.caller_e164,
            body=body,
            template=chosen.name,
            gateway=self.gateway.name,
            state=state,
            reason=reason,
            created_at=ended,
            send_at=send_at,
            expires_at=expires_at,
            now=now,
        )
        return text, chosen.path

    def _queued(
        self, verdict: CallVerdict, text: NewText, template: str, row_id: int | None, now: float
    ) -> Queued:
        """Log and count what became of one missed call's text."""
        state, reason = text["state"], text["reason"]
        to = mask(text["to_e164"] or verdict.caller_raw)
        if row_id is None:
            log.info("text_already_queued", call_id=verdict.call_id, to=to)
        elif state == "pending":
            log.info(
                "text_queued",
                outbox_id=row_id,
                call_id=verdict.call_id,
                to=to,
                template=template,
                send_in=round(max(0.0, text["send_at"] - now), 1),
            )
            self._count("queued")
            if self.metrics is not None:
                self.metrics.outbox_depth_grew()  # no count query per call; run() recounts
            self.wake.set()
        else:
            self._count("suppressed")
            log.info(
                "text_suppressed", outbox_id=row_id, call_id=verdict.call_id, to=to, reason=reason
            )
        return Queued(row_id=row_id, state=state, reason=reason)

    def _region(self, trunk: str | None) -> str:
        found = self.config.trunks.get(trunk) if trunk is not None else None
        return found.country if found is not None else "US"

    # -- dispatcher -----------------------------------------------------------------

    async def recover(self) -> None:
        """Settle rows a crash left mid-send; call once before :meth:`run`."""
        requeued, ambiguous = await self.store.outbox.recover(
            self.clock(), idempotent=self.gateway.idempotent, gateway=self.gateway.name
        )
        for row_id in requeued:
            log.info("text_requeued_after_restart", outbox_id=row_id)
        for row_id in ambiguous:
            log.error(
                "text_maybe_sent_before_crash",
                outbox_id=row_id,
                gateway=self.gateway.name,
                hint="the request may have reached the provider; not resent, to never text twice",
            )
        self._count("failed", len(ambiguous))

    def stop(self) -> None:
        """Make :meth:`run` return once the send in flight (if any) is settled."""
        self._stopping = True
        self.wake.set()

    async def run(self) -> None:
        """Send due texts until :meth:`stop`."""
        await self.recover()
        while not self._stopping:
            self.beat = time.monotonic()
            # Cleared before the work, so a text queued while we work wakes the wait below.
            self.wake.clear()
            try:
                delay = await self._step()
                # Counted when the dispatcher rests, and once a second while it is busy.
                if delay is not None or time.monotonic() - self._gauged_at >= GAUGE_EVERY:
                    self._gauged_at = time.monotonic()
                    await self._gauge_depth()
            except StoreError as exc:
                # A row mid-send stays `sending`: never re-claimed, settled at stop or start.
                delay = self._outage.failed(exc)
            else:
                self._outage.ok()
            if delay is None or self._stopping:
                continue
            try:
                async with asyncio.timeout(delay):
                    await self.wake.wait()
            except TimeoutError:
                pass

    async def _step(self) -> float | None:
        """Do one unit of work; return how long to wait before the next (None: go on)."""
        outbox = self.store.outbox
        now = self.clock()
        if now >= self._expire_at:
            self._expire_at = now + EXPIRE_EVERY
            for row_id in await outbox.expire(now):
                log.warning("text_expired", outbox_id=row_id, reason="older than max_age")
                self._count("expired")
        if self._paused is not None:
            return IDLE_WAIT
        if now < self._hold_until:
            return self._hold_until - now
        width = max_in_flight(self.gateway) if self._flowing else 1
        # One transaction: the caps read, the claim (opt-outs checked) and the dispatch mark.
        rows, cap = await outbox.claim_to_send(now, width, self.config.policy)
        if cap is not None:
            if self._cap_logged != cap:
                log.error(
                    "sms_cap_reached",
                    cap=cap,
                    hint="texts wait in the outbox; raise the cap in"
                    " [policy] if this volume is real, or look for SMS pumping",
                )
                self._cap_logged = cap
            return CAP_RECHECK
        self._cap_logged = None
        if not rows:
            due = await outbox.next_due()
            return IDLE_WAIT if due is None else max(0.0, min(IDLE_WAIT, due - now))
        sent: list[tuple[OutboxRow, SendReceipt]] = []
        try:
            outcomes = await asyncio.gather(
                *(self._send(row, sent) for row in rows), return_exceptions=True
            )
        finally:
            # Also when stopped mid-batch: what went out is recorded as sent.
            if sent:
                await asyncio.shield(self._record_sent(sent))
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return None

    async def _send(self, row: OutboxRow, sent: list[tuple[OutboxRow, SendReceipt]]) -> None:
        """Send one claimed, dispatched row; a success joins ``sent``, a failure is settled."""
        assert row.to_e164 is not None  # claim_due only hands out rows with a number
        sms = OutgoingSms(to=row.to_e164, body=row.body, reference=f"textback-{row.id}")
        try:
            receipt = await self.gateway.send(sms)
        except GatewayError as exc:
            await self._failed(row, exc)
            return
        except Exception as exc:  # an adapter bug must not stop the other texts
            log.exception("gateway_crashed", outbox_id=row.id, gateway=self.gateway.name)
            await self.store.outbox.mark_failed(
                row.id,
                kind=FailureKind.PERMANENT.value,
                error=f"adapter error: {exc!r}",
                now=self.clock(),
            )
            if self.metrics is not None:
                self.metrics.gateway_error(ADAPTER_BUG)
            self._count("failed")
            return
        self._flowing = True
        sent.append((row, receipt))

    async def _record_sent(self, sent: list[tuple[OutboxRow, SendReceipt]]) -> None:
        now = self.clock()
        await self.store.outbox.mark_sent_all(
            [(r.id, receipt.provider_id) for r, receipt in sent], now
        )
        for row, receipt in sent:
            self._count("sent")
            if self.metrics is not None:
                # created_at is the call's hangup.
                self.metrics.send_latency(now - row.created_at)
            log.info(
                "text_sent",
                outbox_id=row.id,
                to=mask(row.to_e164 or ""),
                gateway=self.gateway.name,
                provider_id=receipt.provider_id,
                attempts=row.attempts,
            )

    async def _failed(self, row: OutboxRow, exc: GatewayError) -> None:
        outbox = self.store.outbox
        now = self.clock()
        assert row.to_e164 is not None
        fields = {"outbox_id": row.id, "gateway": self.gateway.name, "code": exc.code}
        if self.metrics is not None:
            self.metrics.gateway_error(exc.kind.value)
        if exc.kind is FailureKind.TRANSIENT and exc.maybe_sent and not self.gateway.idempotent:
            # It may have gone out: a retry could text twice, which we never do.
            await outbox.mark_failed(row.id, kind="ambiguous", error=exc.detail, now=now)
            self._count("failed")
            log.error(
                "text_maybe_sent",
                **fields,
                error=exc.detail,
                hint="the provider may have sent it; not retried, to never text twice",
            )
            return
        if exc.kind is FailureKind.TRANSIENT:
            sending = self.config.sending
            delay = retry_delay(
                row.attempts,
                base=sending.retry_base_seconds,
                cap=sending.retry_max_seconds,
                jitter=self.rng.random(),
                retry_after=exc.retry_after,
            )
            if row.attempts >= sending.max_attempts:
                await outbox.mark_failed(row.id, kind=exc.kind.value, error=exc.detail, now=now)
                self._count("failed")
                log.error("text_gave_up", **fields, attempts=row.attempts, error=exc.detail)
                return
            # A retry due after the text's max age never happens: expire() ends the row then.
            self._hold_until = max(self._hold_until, now + delay)
            self._flowing = False
            await outbox.mark_retry(
                row.id, next_attempt_at=now + delay, error=exc.detail, kind=exc.kind.value, now=now
            )
            self._count("retried")
            log.warning("text_retry", **fields, retry_in=round(delay, 1), error=exc.detail)
            return
        if exc.kind is FailureKind.CONFIG:
            # The row is fine; our account or sender is not. Keep it for when that is fixed.
            await outbox.mark_retry(
                row.id, next_attempt_at=now, error=exc.detail, kind=exc.kind.value, now=now
            )
            self._paused = exc.detail
            log.error(
                "gateway_misconfigured",
                **fields,
                error=exc.detail,
                hint="sending stopped; fix [gateway] (credentials, sender, region) and restart",
            )
            return
        if exc.kind is FailureKind.OPTED_OUT:
            newly = await outbox.add_optout(row.to_e164, "provider", now)
            if newly and self.metrics is not None:
                self.metrics.opt_out()
        elif exc.kind is FailureKind.NOT_SMS_CAPABLE:
            await outbox.mark_not_sms_capable(row.to_e164, exc.code, now)
        await outbox.mark_failed(row.id, kind=exc.kind.value, error=exc.detail, now=now)
        self._count("failed")
        log.warning("text_failed", **fields, kind=exc.kind.value, error=exc.detail)

    # -- metrics --------------------------------------------------------------------

    def _count(self, state: TextState, n: int = 1) -> None:
        if self.metrics is not None:
            for _ in range(n):
                self.metrics.text_state(state)

    async def _gauge_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.set_outbox_depth(await self.store.outbox.pending_count())
