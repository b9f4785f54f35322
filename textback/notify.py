"""Telling staff about replies (and, if asked, missed calls). Shell (IO).

Each notice goes out on every channel [notify] configures: one plain-text e-mail to all of
``email_to`` (aiosmtplib, one SMTP session per mail), and one JSON POST to ``webhook_url``
signed with HMAC-SHA256 over ``f"{timestamp}.{body}"``. An urgent reply also becomes a text to
each ``on_call`` number, through the ``send_sms`` hook the daemon wires to the outbox.

The notice methods return at once: each delivery runs in a task this object owns, tried up to
``retry_attempts`` times with doubling waits while the failure is passing (SMTP 4xx, no
connection, HTTP 408/425/429/5xx, timeouts), and given up with one log line when it is not.
``aclose`` lets deliveries in the middle of an attempt finish, drops those waiting to retry
(each with a log line), and cancels what is left after ``close_timeout``.

Callers' numbers are logged under the ``number`` / ``to`` keys, which the log masks; reply
texts and the webhook URL (it often carries a token) are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import sqlite3
import time
import uuid
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Final, Literal
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib

from textback.config_web import NotifyConfig
from textback.core.backoff import retry_delay
from textback.errors import TextbackError
from textback.gateways.base import FailureKind
from textback.gateways.http import USER_AGENT, classify_http_status, retry_after
from textback.gateways.smtp import classify as classify_smtp
from textback.log import get_logger

log = get_logger(__name__)

SendSms = Callable[[str, str], Awaitable[None]]
Event = Literal["reply", "urgent", "missed_call"]
Channel = Literal["email", "webhook"]

SIGNATURE_HEADER: Final = "X-Textback-Signature"
TIMESTAMP_HEADER: Final = "X-Textback-Timestamp"
DELIVERY_HEADER: Final = "X-Textback-Delivery"  # one id per notice, the same on every retry
EVENT_HEADER: Final = "X-Textback-Event"
DEFAULT_CLOSE_TIMEOUT: Final = 10.0
_SUBJECT_WORDS: Final = 60  # characters of the reply shown in a subject line
_SMS_BODY: Final = 120  # characters of the reply put in an on-call text


@dataclass(frozen=True, slots=True)
class ReplyNotice:
    """A caller's reply, as staff are told about it."""

    e164: str
    caller_name: str  # from the PBX; "" when unknown
    body: str
    urgent: bool
    inbox_url: str  # the conversation in the inbox; "" without [web]


@dataclass(frozen=True, slots=True, kw_only=True)
class MissedCallNotice:
    """A missed call, for ``on_missed_call``."""

    e164: str
    caller_name: str  # "" when unknown
    did: str  # the number they called
    reason: str  # Reason value: "no_answer", "voicemail", ...
    at: float  # when the call started, epoch seconds
    inbox_url: str = ""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Textback-Signature value: ``sha256=`` and hex HMAC-SHA256 of ``timestamp.body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _Failed(Exception):
    """One attempt failed; ``passing`` says whether another may succeed."""

    def __init__(self, detail: str, *, passing: bool, wait: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.passing = passing
        self.wait = wait


@dataclass(frozen=True, slots=True)
class _Notice:
    """What every channel needs to say about one event."""

    event: Event
    number: str
    subject: str  # also the webhook's one-line "text"
    text: str  # the e-mail body
    fields: dict[str, object]  # the webhook's JSON, besides event, id and text


class StaffNotifier:
    """Forwards replies, urgent replies and missed calls to staff, with retries."""

    def __init__(
        self,
        config: NotifyConfig,
        *,
        send_sms: SendSms | None = None,
        clock: Callable[[], float] = time.time,
        timezone: str = "UTC",
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        """``timezone`` shows call times in e-mails; ``send_sms(number, text)`` queues a text."""
        self.config = config
        self.send_sms = send_sms
        self.clock = clock
        self.zone = zoneinfo.ZoneInfo(timezone)
        self.close_timeout = close_timeout
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self._started = False
        _, self._envelope_from = parseaddr(config.from_address)
        parts = urlsplit(config.webhook_url)
        # For logs: the path and query of a webhook URL are often its credential.
        self._webhook_host = f"{parts.scheme}://{parts.hostname}" if config.webhook_url else ""

    async def start(self) -> None:
        """Open the HTTP session the webhook is posted through."""
        if self.config.on_call and self.send_sms is None:
            log.error("on_call_not_wired", detail="urgent replies cannot be texted to on_call")
        if self.config.webhook_url:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                headers={"User-Agent": USER_AGENT},
            )
        self._started = True

    async def aclose(self) -> None:
        """Finish attempts in flight (up to ``close_timeout``), drop pending retries, close."""
        self._closing.set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.close_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning("staff_notices_cancelled", count=len(pending))
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def wait_idle(self) -> None:
        """Wait until every delivery started so far is done: sent, failed or given up."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # -- notices -------------------------------------------------------------------------------

    async def reply_received(self, notice: ReplyNotice) -> None:
        """A reply: e-mail and webhook, in the background."""
        self._send(self._reply(notice, "reply"))

    async def urgent(self, notice: ReplyNotice) -> None:
        """An urgent reply: e-mail and webhook marked urgent, and a text to each on-call number.

        The texts are queued before this returns; a number whose text cannot be queued is
        logged and the others still get theirs.
        """
        self._send(self._reply(notice, "urgent"))
        if self.send_sms is None:
            return
        text = _on_call_text(notice)
        for number in self.config.on_call:
            try:
                await self.send_sms(number, text)
            except (ValueError, TextbackError, sqlite3.Error, OSError) as exc:
                # Only the type: messages may hold the number unmasked. And one number that
                # cannot be texted (opted out, say) must not keep the others from hearing.
                log.error("on_call_text_failed", to=number, error=type(exc).__name__)
            else:
                log.info("on_call_texted", to=number, number=notice.e164)

    async def missed_call(self, notice: MissedCallNotice) -> None:
        """A missed call: e-mail and webhook when ``on_missed_call`` is set, else nothing."""
        if self.config.on_missed_call:
            self._send(self._missed(notice))

    # -- content -------------------------------------------------------------------------------

    def _reply(self, notice: ReplyNotice, event: Event) -> _Notice:
        urgent = event == "urgent"
        who = _who(notice.e164, notice.caller_name)
        body = " ".join(notice.body.split())
        subject = f"{'URGENT reply' if urgent else 'Reply'} from {who}: {_first_words(body)}"
        lines = [
            f"{'URGENT: ' if urgent else ''}{who} replied to your missed-call text:",
            "",
            notice.body.strip(),
            "",
        ]
        if urgent and self.config.on_call:
            lines.append("The on-call numbers have been texted.")
        if notice.inbox_url:
            lines.append(f"Open the conversation and reply: {notice.inbox_url}")
        return _Notice(
            event=event,
            number=notice.e164,
            subject=subject,
            text="\n".join(lines) + "\n",
            fields={
                "at": _iso(self.clock()),
                "number": notice.e164,
                "caller_name": notice.caller_name,
                "body": notice.body,
                "urgent": urgent or notice.urgent,
                "inbox_url": notice.inbox_url,
            },
        )

    def _missed(self, notice: MissedCallNotice) -> _Notice:
        who = _who(notice.e164, notice.caller_name)
        when = datetime.fromtimestamp(notice.at, self.zone)
        reason = notice.reason.replace("_", " ")
        lines = [
            f"Missed call from {who} at {when:%Y-%m-%d %H:%M} ({self.zone.key})"
            + (f" to {notice.did}" if notice.did else "")
            + f": {reason}.",
        ]
        if notice.inbox_url:
            lines.append(f"Conversation: {notice.inbox_url}")
        return _Notice(
            event="missed_call",
            number=notice.e164,
            subject=f"Missed call from {who} ({reason})",
            text="\n".join(lines) + "\n",
            fields={
                "at": _iso(notice.at),
                "number": notice.e164,
                "caller_name": notice.caller_name,
                "did": notice.did,
                "reason": notice.reason,
                "inbox_url": notice.inbox_url,
            },
        )

    def _mail(self, notice: _Notice) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.config.from_address
        mail["To"] = ", ".join(self.config.email_to)
        mail["Subject"] = notice.subject
        mail["Date"] = formatdate(usegmt=True)
        # A domain of our own: make_msgid would otherwise look up this host's FQDN (blocking DNS).
        domain = self._envelope_from.rpartition("@")[2] or "textback.invalid"
        mail["Message-ID"] = make_msgid(idstring="textback", domain=domain)
        # RFC 3834: tells vacation responders and ticket systems not to answer it.
        mail["Auto-Submitted"] = "auto-generated"
        if notice.event == "urgent":
            mail["Importance"] = "high"
            mail["X-Priority"] = "1"
        mail.set_content(notice.text)
        return mail

    def _payload(self, notice: _Notice, delivery: str) -> bytes:
        document = {"event": notice.event, "id": delivery, "text": notice.subject, **notice.fields}
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    # -- delivery ------------------------------------------------------------------------------

    def _send(self, notice: _Notice) -> None:
        if not self._started:
            raise RuntimeError("StaffNotifier.start() has not been called")
        if self._closing.is_set():
            log.warning(
                "staff_notice_dropped",
                kind=notice.event,
                number=notice.number,
                reason="shutting down",
            )
            return
        if self.config.email_to:
            mail = self._mail(notice)
            self._spawn(notice, "email", lambda: self._send_mail(mail))
        if self.config.webhook_url:
            delivery = uuid.uuid4().hex
            body = self._payload(notice, delivery)
            self._spawn(notice, "webhook", lambda: self._post(body, notice.event, delivery))

    def _spawn(
        self, notice: _Notice, channel: Channel, attempt: Callable[[], Awaitable[None]]
    ) -> None:
        task = asyncio.create_task(self._deliver(notice, channel, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # A bug, not a delivery problem: say so loudly rather than lose it.
            log.error("staff_notice_crashed", exc_info=exc)

    async def _deliver(
        self, notice: _Notice, channel: Channel, attempt: Callable[[], Awaitable[None]]
    ) -> None:
        c = self.config
        where = {"channel": channel, "kind": notice.event, "number": notice.number}
        for n in range(1, c.retry_attempts + 1):
            try:
                await attempt()
            except _Failed as failed:
                if not failed.passing:
                    log.error("staff_notice_failed", **where, attempts=n, error=failed.detail)
                    return
                if n == c.retry_attempts:
                    log.error(
                        "staff_notice_failed",
                        **where,
                        attempts=n,
                        error=failed.detail,
                        gave_up=True,
                    )
                    return
                delay = retry_delay(
                    n,
                    base=c.retry_base_seconds,
                    cap=c.retry_base_seconds * 2 ** (c.retry_attempts - 1),
                    jitter=random.random(),
                    retry_after=failed.wait,
                )
                log.warning(
                    "staff_notice_retry",
                    **where,
                    attempt=n,
                    wait=round(delay, 3),
                    error=failed.detail,
                )
                if await self._closed_within(delay):
                    log.warning("staff_notice_dropped", **where, reason="shutting down")
                    return
            else:
                log.info("staff_notified", **where, attempts=n)
                return

    async def _closed_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        return self._closing.is_set()

    async def _send_mail(self, mail: EmailMessage) -> None:
        c = self.config
        client = aiosmtplib.SMTP(
            hostname=c.smtp_host,
            port=c.smtp_port,
            username=c.smtp_username or None,
            password=c.smtp_password.reveal() if c.smtp_password is not None else None,
            use_tls=c.smtp_tls == "implicit",
            start_tls=c.smtp_tls == "starttls",
            timeout=c.timeout,
        )
        try:
            try:
                async with asyncio.timeout(c.timeout):
                    await client.connect()
                    refused, _ = await client.send_message(
                        mail, sender=self._envelope_from, recipients=list(c.email_to)
                    )
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                error = classify_smtp(exc, c.smtp_host, c.smtp_port, c.timeout)
                passing = error.kind is FailureKind.TRANSIENT
                raise _Failed(error.detail, passing=passing) from exc
            if refused:
                # The others have it; sending again would give them a second copy.
                log.warning("staff_mail_partly_refused", refused=len(refused))
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                async with asyncio.timeout(c.timeout):
                    await client.quit()
        finally:
            client.close()

    async def _post(self, body: bytes, event: Event, delivery: str) -> None:
        assert self._session is not None
        stamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            EVENT_HEADER: event,
            DELIVERY_HEADER: delivery,
            TIMESTAMP_HEADER: stamp,
        }
        if self.config.webhook_secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.config.webhook_secret.reveal(), stamp, body)
        try:
            async with self._session.post(
                self.config.webhook_url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status, wait = response.status, retry_after(response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Not str(exc): aiohttp puts the URL, and so its token, into some messages.
            raise _Failed(
                f"no answer from {self._webhook_host}: {type(exc).__name__}", passing=True
            ) from exc
        kind = classify_http_status(status)
        if kind is None:
            return
        passing = kind is FailureKind.TRANSIENT
        if 300 <= status < 400:
            detail = (
                f"{self._webhook_host} redirects (HTTP {status}) — "
                "set webhook_url to the address it redirects to"
            )
        else:
            detail = f"{self._webhook_host} answered HTTP {status}"
        raise _Failed(detail, passing=passing, wait=wait if passing else None)


def _who(e164: str, name: str) -> str:
    name = " ".join(name.split())
    return f"{e164} ({name})" if name else e164


def _first_words(text: str) -> str:
    if len(text) <= _SUBJECT_WORDS:
        return text
    cut = text[:_SUBJECT_WORDS].rsplit(" ", 1)[0] or text[:_SUBJECT_WORDS]
    return cut.rstrip(" ,.;:") + "…"


def _on_call_text(notice: ReplyNotice) -> str:
    body = " ".join(notice.body.split())
    if len(body) > _SMS_BODY:
        body = body[: _SMS_BODY - 1] + "…"
    who = _who(notice.e164, notice.caller_name)
    return f"URGENT reply from {who}: {body}" + (f" {notice.inbox_url}" if notice.inbox_url else "")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "MissedCallNotice",
    "ReplyNotice",
    "SendSms",
    "StaffNotifier",
    "signature",
]
