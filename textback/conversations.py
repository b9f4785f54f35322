"""What happens when a caller texts back, or a provider reports on a text. Shell (IO).

The webhook handlers call in here after the provider's signature checked out.
Nothing here sends a text itself: answers (a STOP confirmation, the HELP text,
an inbox reply, an on-call alert) are outbox rows, sent by the dispatcher with
the same opt-out checks as every other text.

* STOP (any reasonable wording, see ``core/keywords.py``): the number is opted
  out at once and its pending texts are cancelled; at most one confirmation,
  none when the provider sends its own.
* START: opted back in. HELP: who we are and how to opt out.
* Anything else is a conversation message: stored once per provider message
  id, shown in the inbox, forwarded to staff; URGENT ones escalate.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Final

from textback.config import Config
from textback.core.keywords import Intent, classify, is_urgent
from textback.gateways.base import DeliveryReceipt, FailureKind, Gateway, InboundSms
from textback.log import get_logger
from textback.metrics import Metrics
from textback.notify import ReplyNotice, StaffNotifier
from textback.numbers import national, to_e164
from textback.outbox import OPT_OUT_CONFIRMATION
from textback.store import Store

log = get_logger(__name__)

DEFAULT_URGENT: Final = ("URGENT",)


class Conversations:
    def __init__(
        self,
        config: Config,
        store: Store,
        gateway: Gateway,
        *,
        notifier: StaffNotifier | None = None,
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.gateway = gateway
        self.notifier = notifier
        self.wake = wake
        self.clock = clock
        self.metrics = metrics
        notify = config.notify
        self.urgent_keywords = notify.urgent_keywords if notify is not None else DEFAULT_URGENT
        self.inbox_url = config.web.public_url if config.web is not None else ""

    # -- callbacks from the webhook server -----------------------------------------------

    async def on_inbound(self, gateway: str, sms: InboundSms) -> str:
        now = self.clock()
        sender = to_e164(sms.sender, self._region()) or sms.sender
        intent = classify(sms.body)
        urgent = intent is Intent.MESSAGE and is_urgent(sms.body, self.urgent_keywords)
        stored = await self.store.inbox.add_inbound(
            gateway=gateway,
            provider_id=sms.provider_id,
            sender=sender,
            recipient=sms.recipient,
            body=sms.body,
            intent=intent.value,
            urgent=urgent,
            now=now,
        )
        if stored is None:
            log.info("reply_duplicate", gateway=gateway, number=sender)
            return "duplicate"
        log.info("reply_received", gateway=gateway, number=sender, intent=intent.value)
        if intent is Intent.STOP:
            newly = await self.store.outbox.add_optout(sender, "sms", now)
            log.info("opted_out", number=sender, by="reply")
            if newly and self.metrics is not None:
                self.metrics.opt_out()
            # One confirmation at most, and none when the provider sends its own.
            if newly and not self._provider_confirms_stop():
                await self.enqueue(
                    sender,
                    f"You're opted out of texts from {self.config.business.name}."
                    " No more messages will be sent. Reply START to undo.",
                    kind=OPT_OUT_CONFIRMATION,
                )
            return "opted_out"
        if intent is Intent.START:
            await self.store.outbox.remove_optout(sender)
            log.info("opted_in", number=sender)
            return "opted_in"
        if intent is Intent.HELP:
            phone = national(sms.recipient) if sms.recipient.startswith("+") else sms.recipient
            await self.enqueue(
                sender,
                f"{self.config.business.name}: call us at {phone}"
                + (f" or see {self.config.business.link}" if self.config.business.link else "")
                + ". Reply STOP to opt out.",
                kind="help",
            )
            return "help"
        await self._tell_staff(sender, sms.body, urgent)
        return "urgent" if urgent else "message"

    async def on_receipt(self, gateway: str, receipt: DeliveryReceipt) -> None:
        now = self.clock()
        row_id = await self.store.inbox.record_receipt(
            provider_id=receipt.provider_id,
            delivered=receipt.delivered,
            status=receipt.status,
            error_code=receipt.error_code,
            kind=receipt.kind.value if receipt.kind is not None else None,
            now=now,
        )
        if row_id is None:
            log.info("receipt_unmatched", gateway=gateway, status=receipt.status)
            return
        row = await self.store.outbox.get(row_id)
        log.info("text_receipt", outbox_id=row_id, status=receipt.status, code=receipt.error_code)
        if row is None or row.to_e164 is None or receipt.delivered is not False:
            return
        if receipt.kind is FailureKind.NOT_SMS_CAPABLE:
            await self.store.outbox.mark_not_sms_capable(row.to_e164, receipt.error_code, now)
        elif receipt.kind is FailureKind.OPTED_OUT:
            await self.store.outbox.add_optout(row.to_e164, "provider", now)

    # -- the inbox ---------------------------------------------------------------------------

    async def reply(self, to: str, body: str, user: str) -> int:
        """Send ``body`` to the number ``to`` from the inbox; ValueError when we may not."""
        number = to_e164(to, self._region())
        text = body.strip()
        if number is None:
            raise ValueError(f"{to} is not a valid phone number")
        if not text:
            raise ValueError("the reply is empty")
        if await self.store.outbox.is_opted_out(number):
            raise ValueError(f"{number} opted out: textback will not text it")
        row_id = await self.enqueue(number, text, kind="inbox_reply")
        await self.store.inbox.add_reply(
            to=number, body=text, outbox_id=row_id, user=user, now=self.clock()
        )
        log.info("inbox_reply_queued", outbox_id=row_id, number=number, user=user)
        return row_id

    async def mark_handled(self, e164: str, user: str) -> None:
        await self.store.inbox.mark_handled(e164, user, self.clock())

    async def enqueue(self, to: str, body: str, *, kind: str) -> int:
        """One text outside the missed-call flow, through the outbox (opt-outs still apply)."""
        now = self.clock()
        row_id = await self.store.outbox.accept(
            pbx="textback",
            call_id=f"{kind}-{uuid.uuid4().hex}",
            to_e164=to,
            body=body,
            template=kind,
            gateway=self.gateway.name,
            state="pending",
            reason="ok",
            created_at=now,
            send_at=now,
            expires_at=now + self.config.sending.max_age_seconds,
            now=now,
        )
        assert row_id is not None  # the key is fresh
        self.wake()
        return row_id

    # -- staff --------------------------------------------------------------------------------

    async def _tell_staff(self, sender: str, body: str, urgent: bool) -> None:
        if self.notifier is None:
            return
        thread = await self.store.inbox.thread(sender)
        name = thread.caller_name if thread is not None else ""
        link = f"{self.inbox_url}/c/{sender}" if self.inbox_url else ""
        notice = ReplyNotice(
            e164=sender, caller_name=name, body=body, urgent=urgent, inbox_url=link
        )
        try:
            if urgent:
                await self.notifier.urgent(notice)
            else:
                await self.notifier.reply_received(notice)
        except Exception:  # staff mail failing must not lose the reply, which is stored
            log.exception("staff_notice_failed", number=sender)

    def _provider_confirms_stop(self) -> bool:
        return bool(getattr(self.gateway, "provider_confirms_stop", False))

    def _region(self) -> str:
        trunks = self.config.trunks.trunks
        return trunks[0].country if trunks else "US"
