"""Staff notices: e-mail to a real aiosmtpd, signed webhooks to a real aiohttp receiver, retries.

The receivers run on 127.0.0.1 in the test's loop. Retry waits come from retry_base_seconds set
tiny; tests wait on the notifier's own ``wait_idle`` or on what the receivers got.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.fakeproviders import FakeProvider, Hang, Recorded, Reply
from tests.fakeproviders_b import SmtpSink
from textback.config_web import NotifyConfig
from textback.log import configure
from textback.notify import MissedCallNotice, ReplyNotice, StaffNotifier
from textback.tomltable import Secret

CALLER = "+14155550101"
MASKED = "+1415***0101"
HOOK_SECRET = "shared-hook-secret-0123456789abcdef"
NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC, 17:13 in New York
BODY = "Can you come today? The basement is flooding and the water heater is making a noise"
INBOX = f"https://textback.example.com/c/{CALLER}"
TOKEN = "T0KEN-in-the-path"


def reply(*, urgent: bool = False, body: str = BODY) -> ReplyNotice:
    return ReplyNotice(CALLER, "Jane Doe", body, urgent, INBOX)


class MailSink(SmtpSink):
    """SmtpSink that refuses DATA with the queued replies first, and counts every DATA."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals: deque[str] = deque()
        self.data_attempts = 0

    async def handle_DATA(  # aiosmtpd calls it by this name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.data_attempts += 1
        if self.refusals:
            return self.refusals.popleft()
        return await super().handle_DATA(server, session, envelope)


class HookFake(FakeProvider):
    """A webhook receiver: answers the script (Reply, Hang), else 204, after ``release`` if set.

    Every request also goes on ``arrived`` as it comes in, before it is answered.
    """

    def __init__(self) -> None:
        super().__init__()
        self.arrived: asyncio.Queue[Recorded] = asyncio.Queue()
        self.release: asyncio.Event | None = None  # when not None, answers wait for it
        self.app.router.add_post(f"/hook/{TOKEN}", self.hook)

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook/{TOKEN}"

    async def hook(self, request: web.Request) -> web.StreamResponse:
        self.arrived.put_nowait(await self.record(request))
        if self.release is not None:
            await self.release.wait()
        outcome = self.script.popleft() if self.script else Reply(204)
        if isinstance(outcome, Hang):
            await self._stopping.wait()  # set when the fake stops
            return web.Response(status=503)
        assert isinstance(outcome, Reply)
        return outcome.response()


def settings(
    *, sink: SmtpSink | None = None, hook: HookFake | None = None, **extra: Any
) -> NotifyConfig:
    mail: dict[str, Any] = {}
    if sink is not None:
        mail = {
            "email_to": ("office@acme.example", "bob@acme.example"),
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "smtp_tls": "none",
            "from_address": "textback <textback@acme.example>",
        }
    if hook is not None:
        mail |= {"webhook_url": hook.hook_url, "webhook_secret": Secret(HOOK_SECRET)}
    return NotifyConfig(**(mail | {"retry_base_seconds": 0.01, "timeout": 5.0} | extra))


@asynccontextmanager
async def notifier(config: NotifyConfig, **kwargs: Any) -> AsyncIterator[StaffNotifier]:
    staff = StaffNotifier(config, clock=lambda: NOW, **kwargs)
    await staff.start()
    try:
        yield staff
    finally:
        await staff.aclose()


def log_stream() -> io.StringIO:
    stream = io.StringIO()
    configure("logfmt", "debug", stream=stream)
    return stream


def ours(stream: io.StringIO) -> list[str]:
    """Lines textback logged (the test servers log through the same handler)."""
    return [line for line in stream.getvalue().splitlines() if "logger=textback" in line]


def events(stream: io.StringIO, name: str) -> list[str]:
    return [line for line in ours(stream) if f"event={name} " in line + " "]


def expected_signature(request: Recorded) -> str:
    stamp = request.headers["X-Textback-Timestamp"]
    mac = hmac.new(HOOK_SECRET.encode(), f"{stamp}.".encode() + request.body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def mails(sink: SmtpSink) -> list[EmailMessage]:
    """The accepted mails, parsed with headers decoded (=?utf-8?q?...?= and folding undone)."""
    parsed = []
    for envelope in sink.envelopes:
        assert envelope.original_content is not None
        mail = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        parsed.append(mail)
    return parsed


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def subject(mail: EmailMessage) -> str:
    # A long subject is folded right after "Subject:"; unfolding leaves a space in front.
    return str(mail["Subject"]).strip()


class TestEmail:
    async def test_reply_mail(self) -> None:
        """A reply is one plain-text mail to every email_to, subject "Reply from …: first words"."""
        async with MailSink() as sink, notifier(settings(sink=sink)) as staff:
            await staff.reply_received(reply())
            await staff.wait_idle()

        [envelope] = sink.envelopes
        [mail] = mails(sink)
        assert envelope.mail_from == "textback@acme.example"
        assert envelope.rcpt_tos == ["office@acme.example", "bob@acme.example"]
        assert subject(mail) == (
            "Reply from +14155550101 (Jane Doe): Can you come today? The basement is flooding "
            "and the water…"
        )
        assert mail["To"] == "office@acme.example, bob@acme.example"
        assert mail["Auto-Submitted"] == "auto-generated"
        assert mail["Importance"] is None
        assert mail.get_content_type() == "text/plain"
        text = text_of(mail)
        assert text.startswith("+14155550101 (Jane Doe) replied to your missed-call text:\n")
        assert BODY in text
        assert f"Open the conversation and reply: {INBOX}" in text

    async def test_short_reply_subject_whole(self) -> None:
        """A short reply is the whole subject; an unknown caller name is left out."""
        notice = ReplyNotice(CALLER, "", "Yes please\ncall me", False, "")
        async with MailSink() as sink, notifier(settings(sink=sink)) as staff:
            await staff.reply_received(notice)
            await staff.wait_idle()

        [mail] = mails(sink)
        assert subject(mail) == "Reply from +14155550101: Yes please call me"
        assert "Open the conversation" not in text_of(mail)

    async def test_login(self) -> None:
        """smtp_username and smtp_password log in to the server."""
        async with SmtpSink(users={"tb": "mail-pw"}) as sink:
            config = settings(sink=sink, smtp_username="tb", smtp_password=Secret("mail-pw"))
            async with notifier(config) as staff:
                await staff.reply_received(reply())
                await staff.wait_idle()

        assert sink.logins == ["tb"]
        assert len(sink.envelopes) == 1

    async def test_4xx_is_retried(self) -> None:
        """A 4xx reply to DATA is passing: the mail is sent again and arrives once."""
        stream = log_stream()
        async with MailSink() as sink, notifier(settings(sink=sink)) as staff:
            sink.refusals.extend(["451 4.3.0 Try again later", "421 4.7.0 Busy"])
            await staff.reply_received(reply())
            await staff.wait_idle()

        assert sink.data_attempts == 3
        assert len(sink.envelopes) == 1
        assert len(events(stream, "staff_notice_retry")) == 2
        [done] = events(stream, "staff_notified")
        assert "channel=email" in done
        assert "attempts=3" in done

    async def test_5xx_is_not_retried(self) -> None:
        """A 5xx reply is permanent: one attempt, one error line."""
        stream = log_stream()
        async with MailSink() as sink, notifier(settings(sink=sink)) as staff:
            sink.refusals.extend(["554 5.7.1 Rejected"] * 3)
            await staff.reply_received(reply())
            await staff.wait_idle()

        assert sink.data_attempts == 1
        assert sink.envelopes == []
        [failed] = events(stream, "staff_notice_failed")
        assert "554" in failed
        assert events(stream, "staff_notice_retry") == []

    async def test_server_down_gives_up(self) -> None:
        """No server at all is passing: tried retry_attempts times, then one error line."""
        stream = log_stream()
        async with MailSink() as sink:
            closed_port = sink.port  # closed when the block ends
        config = settings(sink=sink, retry_attempts=3)
        assert config.smtp_port == closed_port
        async with notifier(config) as staff:
            await staff.reply_received(reply())
            await staff.wait_idle()

        assert len(events(stream, "staff_notice_retry")) == 2
        [failed] = events(stream, "staff_notice_failed")
        assert "attempts=3" in failed
        assert "gave_up" in failed


class TestWebhook:
    async def test_signed_reply(self) -> None:
        """A reply is a JSON POST whose X-Textback-Signature is HMAC-SHA256 of timestamp.body."""
        async with HookFake() as hook, notifier(settings(hook=hook)) as staff:
            await staff.reply_received(reply())
            await staff.wait_idle()

        [request] = hook.requests
        assert request.headers["Content-Type"].startswith("application/json")
        assert request.headers["X-Textback-Event"] == "reply"
        assert request.headers["X-Textback-Timestamp"] == "1700000000"
        assert request.headers["X-Textback-Signature"] == expected_signature(request)
        document = request.json
        assert isinstance(document, dict)
        assert document == {
            "event": "reply",
            "id": request.headers["X-Textback-Delivery"],
            "text": "Reply from +14155550101 (Jane Doe): Can you come today? The basement is "
            "flooding and the water…",
            "at": "2023-11-14T22:13:20Z",
            "number": CALLER,
            "caller_name": "Jane Doe",
            "body": BODY,
            "urgent": False,
            "inbox_url": INBOX,
        }

    async def test_forged_signature_differs(self) -> None:
        """The signature covers the body: the same header does not fit another body."""
        async with HookFake() as hook, notifier(settings(hook=hook)) as staff:
            await staff.reply_received(reply())
            await staff.reply_received(reply(body="Another reply"))
            await staff.wait_idle()

        first, second = hook.requests
        assert first.headers["X-Textback-Signature"] != second.headers["X-Textback-Signature"]
        assert first.headers["X-Textback-Delivery"] != second.headers["X-Textback-Delivery"]
        swapped = Recorded(
            first.method, first.path, first.query, first.headers, second.body, first.peer_port
        )
        assert expected_signature(swapped) != first.headers["X-Textback-Signature"]

    async def test_unsigned_without_secret(self) -> None:
        """Without webhook_secret the POST carries no signature header."""
        async with HookFake() as hook:
            config = settings(hook=hook, webhook_secret=None)
            async with notifier(config) as staff:
                await staff.reply_received(reply())
                await staff.wait_idle()

        [request] = hook.requests
        assert "X-Textback-Signature" not in request.headers
        assert request.headers["X-Textback-Timestamp"] == "1700000000"

    @pytest.mark.parametrize("status", [500, 503, 429, 408])
    async def test_passing_failures_are_retried(self, status: int) -> None:
        """After a 5xx, 429 or 408 the same notice is posted again, freshly signed, same id."""
        stream = log_stream()
        async with HookFake() as hook, notifier(settings(hook=hook)) as staff:
            hook.script.extend([Reply(status), Reply(status, headers={"Retry-After": "0"})])
            await staff.reply_received(reply())
            await staff.wait_idle()

        assert len(hook.requests) == 3
        assert len({r.headers["X-Textback-Delivery"] for r in hook.requests}) == 1
        assert len({r.body for r in hook.requests}) == 1
        for request in hook.requests:
            assert request.headers["X-Textback-Signature"] == expected_signature(request)
        [done] = events(stream, "staff_notified")
        assert "attempts=3" in done

    async def test_gives_up_after_retry_attempts(self) -> None:
        """A receiver that keeps failing gets exactly retry_attempts posts and one error line."""
        stream = log_stream()
        async with HookFake() as hook, notifier(settings(hook=hook, retry_attempts=4)) as staff:
            hook.script.extend([Reply(500)] * 10)
            await staff.reply_received(reply())
            await staff.wait_idle()

        assert len(hook.requests) == 4
        [failed] = events(stream, "staff_notice_failed")
        assert "HTTP 500" in failed
        assert "attempts=4" in failed

    @pytest.mark.parametrize("status", [400, 401, 404, 301])
    async def test_permanent_failures_are_not_retried(self, status: int) -> None:
        """A 4xx (or a redirect) is permanent: one post, one error line."""
        stream = log_stream()
        async with HookFake() as hook, notifier(settings(hook=hook)) as staff:
            hook.script.extend([Reply(status, headers={"Location": "/elsewhere"})] * 3)
            await staff.reply_received(reply())
            await staff.wait_idle()

        assert len(hook.requests) == 1
        [failed] = events(stream, "staff_notice_failed")
        assert f"HTTP {status}" in failed
        assert events(stream, "staff_notice_retry") == []

    async def test_logs_mask_the_number_and_hide_body_and_token(self) -> None:
        """Log lines carry the masked number, never the reply or the webhook URL's path."""
        stream = log_stream()
        async with (
            MailSink() as sink,
            HookFake() as hook,
            notifier(settings(sink=sink, hook=hook)) as staff,
        ):
            hook.script.append(Reply(500))
            await staff.reply_received(reply())
            await staff.wait_idle()

        output = "\n".join(ours(stream))
        assert len(events(stream, "staff_notified")) == 2
        assert MASKED in output
        assert CALLER not in output
        assert "basement" not in output
        assert TOKEN not in output


class TestUrgent:
    async def test_everyone_at_once(self) -> None:
        """URGENT: mail and webhook marked urgent, and a text to each on-call number."""
        texts: list[tuple[str, str]] = []

        async def send_sms(number: str, text: str) -> None:
            texts.append((number, text))

        async with MailSink() as sink, HookFake() as hook:
            config = settings(sink=sink, hook=hook, on_call=("+15555550123", "+15555550124"))
            async with notifier(config, send_sms=send_sms) as staff:
                await staff.urgent(reply(urgent=True, body="URGENT no heat, baby at home"))
                assert [number for number, _ in texts] == ["+15555550123", "+15555550124"]
                await staff.wait_idle()

        expected = f"URGENT reply from {CALLER} (Jane Doe): URGENT no heat, baby at home {INBOX}"
        assert texts == [("+15555550123", expected), ("+15555550124", expected)]
        [mail] = mails(sink)
        assert subject(mail) == "URGENT reply from +14155550101 (Jane Doe): URGENT no heat, " + (
            "baby at home"
        )
        assert mail["Importance"] == "high"
        assert "The on-call numbers have been texted." in text_of(mail)
        [request] = hook.requests
        assert request.headers["X-Textback-Event"] == "urgent"
        document = request.json
        assert isinstance(document, dict)
        assert (document["event"], document["urgent"]) == ("urgent", True)

    async def test_one_failing_number_does_not_stop_the_others(self) -> None:
        """A number whose text cannot be queued is logged; the next one is still texted."""
        stream = log_stream()
        texted: list[str] = []

        async def send_sms(number: str, text: str) -> None:
            if number == "+15555550123":
                raise ValueError(f"{number} opted out")
            texted.append(number)

        config = NotifyConfig(on_call=("+15555550123", "+15555550124"))
        async with notifier(config, send_sms=send_sms) as staff:
            await staff.urgent(reply(urgent=True))

        assert texted == ["+15555550124"]
        [failed] = events(stream, "on_call_text_failed")
        assert "to=+1555***0123" in failed
        assert "error=ValueError" in failed
        assert "+15555550123" not in "\n".join(ours(stream))

    async def test_long_reply_is_shortened_in_the_text(self) -> None:
        """The on-call text carries the start of a long reply, not all of it."""
        texts: list[str] = []

        async def send_sms(number: str, text: str) -> None:
            texts.append(text)

        async with notifier(NotifyConfig(on_call=("+15555550123",)), send_sms=send_sms) as staff:
            await staff.urgent(reply(urgent=True, body="URGENT " + "water " * 60))

        [text] = texts
        assert text.startswith(f"URGENT reply from {CALLER} (Jane Doe): URGENT water water")
        assert "…" in text
        assert len(text) < 250


class TestMissedCall:
    async def test_off_by_default(self) -> None:
        """Without on_missed_call a missed call sends nothing."""
        async with HookFake() as hook, notifier(settings(hook=hook)) as staff:
            await staff.missed_call(missed())
            await staff.reply_received(reply())  # a marker: only this one arrives
            await staff.wait_idle()

        assert [r.headers["X-Textback-Event"] for r in hook.requests] == ["reply"]

    async def test_on(self) -> None:
        """With on_missed_call, a missed call is a mail and a missed_call webhook."""
        async with MailSink() as sink, HookFake() as hook:
            config = settings(sink=sink, hook=hook, on_missed_call=True)
            async with notifier(config, timezone="America/New_York") as staff:
                await staff.missed_call(missed())
                await staff.wait_idle()

        [mail] = mails(sink)
        assert subject(mail) == "Missed call from +14155550101 (Jane Doe) (no answer)"
        assert text_of(mail).startswith(
            "Missed call from +14155550101 (Jane Doe) at 2023-11-14 17:13 (America/New_York) "
            "to +15555550100: no answer.\n"
        )
        [request] = hook.requests
        assert request.headers["X-Textback-Signature"] == expected_signature(request)
        assert request.json == {
            "event": "missed_call",
            "id": request.headers["X-Textback-Delivery"],
            "text": "Missed call from +14155550101 (Jane Doe) (no answer)",
            "at": "2023-11-14T22:13:20Z",
            "number": CALLER,
            "caller_name": "Jane Doe",
            "did": "+15555550100",
            "reason": "no_answer",
            "inbox_url": INBOX,
        }


def missed() -> MissedCallNotice:
    return MissedCallNotice(
        e164=CALLER,
        caller_name="Jane Doe",
        did="+15555550100",
        reason="no_answer",
        at=NOW,
        inbox_url=INBOX,
    )


class TestLifecycle:
    async def test_close_drops_a_pending_retry(self) -> None:
        """aclose does not sit out a retry wait: the notice is dropped with a log line."""
        stream = log_stream()
        async with HookFake() as hook:
            staff = StaffNotifier(settings(hook=hook, retry_base_seconds=60.0))
            await staff.start()
            hook.script.append(Reply(500))
            await staff.reply_received(reply())
            await asyncio.wait_for(hook.arrived.get(), 5)

            # Well under the 30 s or more the retry would wait.
            await asyncio.wait_for(staff.aclose(), 5)
            await staff.wait_idle()

        assert len(hook.requests) == 1
        [dropped] = events(stream, "staff_notice_dropped")
        assert "reason=" in dropped

    async def test_close_waits_for_an_attempt_in_flight(self) -> None:
        """aclose lets a post already sent get its answer before closing."""
        stream = log_stream()
        async with HookFake() as hook:
            hook.release = asyncio.Event()
            staff = StaffNotifier(settings(hook=hook))
            await staff.start()
            await staff.reply_received(reply())
            await asyncio.wait_for(hook.arrived.get(), 5)

            closing = asyncio.create_task(staff.aclose())
            # Still waiting on the held answer a while later: not cancelled, not done.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.shield(closing), 0.1)
            hook.release.set()
            await asyncio.wait_for(closing, 5)

        assert len(events(stream, "staff_notified")) == 1

    async def test_close_cancels_after_close_timeout(self) -> None:
        """A post that never gets an answer is cancelled once close_timeout has passed."""
        stream = log_stream()
        async with HookFake() as hook:
            hook.script.append(Hang())
            staff = StaffNotifier(settings(hook=hook), close_timeout=0.05)
            await staff.start()
            await staff.reply_received(reply())
            await asyncio.wait_for(hook.arrived.get(), 5)

            await asyncio.wait_for(staff.aclose(), 5)
            await staff.wait_idle()

        [cancelled] = events(stream, "staff_notices_cancelled")
        assert "count=1" in cancelled

    async def test_after_close_notices_are_dropped(self) -> None:
        """A notice after aclose is logged as dropped, not sent."""
        stream = log_stream()
        async with HookFake() as hook:
            staff = StaffNotifier(settings(hook=hook))
            await staff.start()
            await staff.aclose()
            await staff.reply_received(reply())
            await staff.wait_idle()

        assert hook.requests == []
        assert len(events(stream, "staff_notice_dropped")) == 1

    async def test_start_is_required(self) -> None:
        """A notice before start() is a programming error, raised at once."""
        staff = StaffNotifier(NotifyConfig(webhook_url="https://crm.example.com/h"))

        with pytest.raises(RuntimeError, match=r"start\(\)"):
            await staff.reply_received(reply())

    async def test_on_call_without_hook_is_logged(self) -> None:
        """on_call numbers with no send_sms wired are an error line at start."""
        stream = log_stream()
        async with notifier(NotifyConfig(on_call=("+15555550123",))) as staff:
            await staff.urgent(reply(urgent=True))

        assert len(events(stream, "on_call_not_wired")) == 1
