"""plivo, voipms, webhook, smtp and ami_modem against real servers on 127.0.0.1.

HTTP providers are aiohttp fakes speaking each vendor's shapes, SMTP is aiosmtpd,
the modem is the AMI simulator behind a real AmiSource. Timeouts are tiny.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.amihelpers import PATIENCE, item_of, running, settings
from tests.fakeproviders_b import (
    PLIVO_AUTH_ID,
    Drop,
    Hang,
    PlivoFake,
    Reply,
    SmtpSink,
    VoipMsFake,
    WebhookFake,
)
from textback.errors import ConfigError, PbxError
from textback.gateways.ami_modem import AmiModemGateway, interpret
from textback.gateways.base import (
    FailureKind,
    Gateway,
    GatewayContext,
    GatewayError,
    OutgoingSms,
    SendReceipt,
)
from textback.gateways.plivo import PlivoGateway, delivery_failure
from textback.gateways.smtp import SmtpGateway
from textback.gateways.voipms import VoipMsGateway
from textback.gateways.webhook import WebhookGateway
from textback.pbx.ami_source import AmiLinkDown, AmiResync, AmiSource
from textback.simulator import AmiSimulator, SimulatorOptions

TO = "+14155550100"
BODY = "Sorry we missed your call - Acme Plumbing. Reply STOP to opt out."
TINY = 0.2  # seconds: the timeout a hung server must exceed


def sms(to: str = TO, body: str = BODY, sender: str | None = None) -> OutgoingSms:
    return OutgoingSms(to=to, body=body, reference="textback-42", sender=sender)


def secret(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    return str(path)


def problems_of(
    cls: Any, table: Mapping[str, object], tmp_path: Path, *, require_secrets: bool = True
) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        cls.from_config(table, path="gateway", base=tmp_path, require_secrets=require_secrets)
    problems: list[str] = caught.value.problems
    return problems


@contextlib.asynccontextmanager
async def started(
    gateway: Gateway, context: GatewayContext | None = None
) -> AsyncIterator[Gateway]:
    await gateway.start(context or GatewayContext())
    try:
        yield gateway
    finally:
        await gateway.aclose()


async def failed(gateway: Gateway, message: OutgoingSms | None = None) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await gateway.send(message or sms())
    return caught.value


def dead_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- Plivo -----------------------------------------------------------------------------------


def plivo(tmp_path: Path, fake: PlivoFake, **extra: object) -> PlivoGateway:
    table: dict[str, object] = {
        "auth_id": PLIVO_AUTH_ID,
        "auth_token_file": secret(tmp_path, "plivo", "plivo-token"),
        "from": "+14155550199",
        "base_url": fake.url,
        "timeout": TINY,
        **extra,
    }
    return PlivoGateway.from_config(table, path="gateway", base=tmp_path, require_secrets=True)


class TestPlivo:
    async def test_send_posts_json_with_basic_auth(self, tmp_path: Path) -> None:
        """A send is one JSON POST with digits-only numbers; 202's message_uuid[0] is the id."""
        async with (
            PlivoFake() as fake,
            started(
                plivo(tmp_path, fake, status_callback="https://hooks.example.com/plivo")
            ) as gateway,
        ):
            receipt = await gateway.send(sms())

        (request,) = fake.requests
        assert ("POST", f"/v1/Account/{PLIVO_AUTH_ID}/Message/") == (request.method, request.path)
        assert request.basic_auth() == (PLIVO_AUTH_ID, "plivo-token")
        assert request.json == {
            "src": "14155550199",
            "dst": "14155550100",
            "text": BODY,
            "type": "sms",
            "url": "https://hooks.example.com/plivo",
            "method": "POST",
        }
        assert SendReceipt("00000000-0000-0000-0000-000000000001") == receipt
        assert not gateway.idempotent

    async def test_route_sender_replaces_from(self, tmp_path: Path) -> None:
        """The DID the caller dialled is the sender when the route names one."""
        async with PlivoFake() as fake, started(plivo(tmp_path, fake)) as gateway:
            await gateway.send(sms(sender="+14155550111"))

        payload = fake.requests[0].json
        assert isinstance(payload, dict)
        assert payload["src"] == "14155550111"

    async def test_powerpack_picks_the_sender(self, tmp_path: Path) -> None:
        """With a Powerpack there is no src, even when the route names a sender."""
        uuid = "d8d6b3f4-5a6e-4c2b-9f3e-0123456789ab"
        table = {"auth_id": PLIVO_AUTH_ID, "auth_token_file": secret(tmp_path, "t", "plivo-token")}
        async with PlivoFake() as fake:
            gateway = PlivoGateway.from_config(
                {**table, "powerpack_uuid": uuid, "base_url": fake.url},
                path="gateway",
                base=tmp_path,
                require_secrets=True,
            )
            async with started(gateway):
                await gateway.send(sms(sender="+14155550111"))

        payload = fake.requests[0].json
        assert isinstance(payload, dict)
        assert uuid == payload["powerpack_uuid"]
        assert "src" not in payload

    async def test_wrong_token_is_config(self, tmp_path: Path) -> None:
        """Plivo's 401 for a wrong auth token stops all sends (CONFIG)."""
        async with (
            PlivoFake(token="another-token") as fake,
            started(plivo(tmp_path, fake)) as gateway,
        ):
            error = await failed(gateway)

        assert error.kind == FailureKind.CONFIG
        assert "401" in error.detail

    @pytest.mark.parametrize(
        ("reply", "kind"),
        [
            (PlivoFake.error("Invalid 'dst' parameter"), FailureKind.PERMANENT),
            (PlivoFake.error("too many characters in text"), FailureKind.PERMANENT),
            (PlivoFake.error("This src is not a valid Plivo number"), FailureKind.CONFIG),
            (PlivoFake.error("Insufficient credit", 402), FailureKind.CONFIG),
            (PlivoFake.error("not found", 404), FailureKind.CONFIG),
            (PlivoFake.error("internal error", 500), FailureKind.TRANSIENT),
            (PlivoFake.error("service unavailable", 503), FailureKind.TRANSIENT),
        ],
    )
    async def test_error_classes(self, tmp_path: Path, reply: Reply, kind: FailureKind) -> None:
        """Each refusal maps to its kind; Plivo's error text is the detail."""
        async with PlivoFake() as fake, started(plivo(tmp_path, fake)) as gateway:
            fake.script.append(reply)
            error = await failed(gateway)

        assert kind == error.kind
        assert isinstance(reply.body, dict)
        assert reply.body["error"] in error.detail

    async def test_429_carries_retry_after(self, tmp_path: Path) -> None:
        """A 429 is TRANSIENT and keeps Plivo's Retry-After."""
        async with PlivoFake() as fake, started(plivo(tmp_path, fake)) as gateway:
            fake.script.append(PlivoFake.error("too many requests", 429, Retry_After="7"))
            error = await failed(gateway)

        assert (error.kind, error.retry_after) == (FailureKind.TRANSIENT, 7.0)

    async def test_accepted_without_uuid_is_never_retried(self, tmp_path: Path) -> None:
        """A 202 with no message_uuid may have sent the text: PERMANENT, not TRANSIENT."""
        async with PlivoFake() as fake, started(plivo(tmp_path, fake)) as gateway:
            fake.script.append(Reply(202, {"api_id": "x", "message": "message(s) queued"}))
            error = await failed(gateway)

        assert error.kind == FailureKind.PERMANENT

    @pytest.mark.parametrize("outcome", [Hang(), Drop()])
    async def test_no_reply_is_transient(self, tmp_path: Path, outcome: Hang | Drop) -> None:
        """A hang past the timeout and a dropped connection are both TRANSIENT."""
        async with PlivoFake() as fake, started(plivo(tmp_path, fake)) as gateway:
            fake.script.append(outcome)
            error = await failed(gateway)

        assert error.kind == FailureKind.TRANSIENT
        assert len(fake.requests) == 1

    @pytest.mark.parametrize(
        ("code", "kind"),
        [
            ("200", FailureKind.OPTED_OUT),
            ("50", FailureKind.NOT_SMS_CAPABLE),
            ("070", FailureKind.NOT_SMS_CAPABLE),
            ("900", FailureKind.CONFIG),
            ("30", FailureKind.FILTERED),
            ("80", FailureKind.TRANSIENT),
            ("110", FailureKind.PERMANENT),
            ("12345", FailureKind.PERMANENT),
        ],
    )
    def test_delivery_codes(self, code: str, kind: FailureKind) -> None:
        """A status callback's ErrorCode maps through Plivo's table; unknown codes are PERMANENT."""
        assert kind == delivery_failure(code)

    def test_config_problems(self, tmp_path: Path) -> None:
        """Each bad key gets one line naming gateway.<key>; a pasted token is never echoed."""
        problems = problems_of(
            PlivoGateway,
            {
                "auth_id": "plivo-account",
                "auth_token": "s3cr3t-t0ken",
                "from": "4155550199",
                "status_callback": "ftp://example.com",
                "timeout": "fast",
            },
            tmp_path,
        )

        assert [p.split(":")[0] for p in problems] == [
            "gateway.auth_token",
            "gateway.auth_id",
            "gateway",
            "gateway.from",
            "gateway.status_callback",
            "gateway.timeout",
        ]
        assert not any("s3cr3t-t0ken" in p for p in problems)

    def test_from_and_powerpack_together(self, tmp_path: Path) -> None:
        """from and powerpack_uuid are exclusive: one line says keep one."""
        problems = problems_of(
            PlivoGateway,
            {
                "auth_id": PLIVO_AUTH_ID,
                "auth_token_file": secret(tmp_path, "t", "x"),
                "from": "+14155550199",
                "powerpack_uuid": "d8d6b3f4-5a6e-4c2b-9f3e-0123456789ab",
            },
            tmp_path,
        )

        assert len(problems) == 1
        assert problems[0].startswith("gateway.powerpack_uuid: set together with")


# --- VoIP.ms ---------------------------------------------------------------------------------


def voipms(tmp_path: Path, fake: VoipMsFake, **extra: object) -> VoipMsGateway:
    table: dict[str, object] = {
        "api_username": "owner@example.com",
        "api_password_file": secret(tmp_path, "voipms", "voipms-api-password"),
        "did": "+1 514 555 0100",
        "base_url": fake.url,
        "timeout": TINY,
        **extra,
    }
    return VoipMsGateway.from_config(table, path="gateway", base=tmp_path, require_secrets=True)


class TestVoipMs:
    async def test_send_is_a_get_with_ten_digit_numbers(self, tmp_path: Path) -> None:
        """sendSMS goes as a GET query with 10-digit did and dst; the sms id is the receipt."""
        async with VoipMsFake() as fake, started(voipms(tmp_path, fake)) as gateway:
            receipt = await gateway.send(sms())

        (request,) = fake.requests
        assert (request.method, request.path) == ("GET", "/api/v1/rest.php")
        assert dict(request.query) == {
            "api_username": "owner@example.com",
            "api_password": "voipms-api-password",
            "method": "sendSMS",
            "did": "5145550100",
            "dst": "4155550100",
            "message": BODY,
        }
        assert SendReceipt("23001") == receipt

    async def test_route_did_is_the_sender(self, tmp_path: Path) -> None:
        """The DID the caller dialled sends the text when the route names it."""
        async with (
            VoipMsFake(dids=("5145550100", "5145550111")) as fake,
            started(voipms(tmp_path, fake)) as gateway,
        ):
            await gateway.send(sms(sender="+15145550111"))

        assert fake.requests[0].query["did"] == "5145550111"

    @pytest.mark.parametrize(
        ("word", "kind"),
        [
            ("ip_not_enabled", FailureKind.CONFIG),
            ("limit_reached", FailureKind.CONFIG),
            ("invalid_did", FailureKind.CONFIG),
            ("invalid_dst", FailureKind.PERMANENT),
            ("sms_toolong", FailureKind.PERMANENT),
            ("something_new", FailureKind.PERMANENT),
        ],
    )
    async def test_status_words(self, tmp_path: Path, word: str, kind: FailureKind) -> None:
        """Each status word in the HTTP 200 reply maps to its kind and becomes the code."""
        async with VoipMsFake() as fake, started(voipms(tmp_path, fake)) as gateway:
            fake.script.append(VoipMsFake.status(word))
            error = await failed(gateway)

        assert (kind, word) == (error.kind, error.code)

    async def test_wrong_password_is_config(self, tmp_path: Path) -> None:
        """invalid_credentials from the real check stops all sends and says what to check."""
        async with (
            VoipMsFake(password="another") as fake,
            started(voipms(tmp_path, fake)) as gateway,
        ):
            error = await failed(gateway)

        assert (error.kind, error.code) == (FailureKind.CONFIG, "invalid_credentials")
        assert "allow-list" in error.detail
        assert "voipms-api-password" not in error.detail

    async def test_long_text_refused_before_sending(self, tmp_path: Path) -> None:
        """A text over 160 UTF-8 bytes fails PERMANENT without a request; the detail says why."""
        text = "é" * 81  # 81 characters, 162 bytes
        async with VoipMsFake() as fake, started(voipms(tmp_path, fake)) as gateway:
            error = await failed(gateway, sms(body=text))

        assert fake.requests == []
        assert error.kind == FailureKind.PERMANENT
        assert "162 bytes" in error.detail

    async def test_160_bytes_go_through(self, tmp_path: Path) -> None:
        """Exactly 160 bytes is allowed."""
        async with VoipMsFake() as fake, started(voipms(tmp_path, fake)) as gateway:
            await gateway.send(sms(body="a" * 158 + "é"))

        assert len(fake.requests) == 1

    async def test_non_nanp_refused_before_sending(self, tmp_path: Path) -> None:
        """VoIP.ms texts only +1 numbers: a UK number fails PERMANENT without a request."""
        async with VoipMsFake() as fake, started(voipms(tmp_path, fake)) as gateway:
            error = await failed(gateway, sms(to="+447700900123"))

        assert fake.requests == []
        assert error.kind == FailureKind.PERMANENT

    @pytest.mark.parametrize(
        ("outcome", "retry_after"),
        [(Reply(503, b"busy", {"Retry-After": "30"}), 30.0), (Hang(), None), (Drop(), None)],
    )
    async def test_no_answer_is_transient(
        self, tmp_path: Path, outcome: Reply | Hang | Drop, retry_after: float | None
    ) -> None:
        """5xx (with Retry-After), a hang past the timeout and a dropped connection: TRANSIENT."""
        async with VoipMsFake() as fake, started(voipms(tmp_path, fake)) as gateway:
            fake.script.append(outcome)
            error = await failed(gateway)

        assert (FailureKind.TRANSIENT, retry_after) == (error.kind, error.retry_after)

    async def test_unreadable_200_is_never_retried(self, tmp_path: Path) -> None:
        """A 200 without a status (an HTML page) may have sent: PERMANENT."""
        async with VoipMsFake() as fake, started(voipms(tmp_path, fake)) as gateway:
            fake.script.append(Reply(200, b"<html>maintenance</html>"))
            error = await failed(gateway)

        assert error.kind == FailureKind.PERMANENT

    def test_config_problems(self, tmp_path: Path) -> None:
        """A non-NANP did, a pasted password and a missing username: one line each."""
        problems = problems_of(
            VoipMsGateway, {"api_password": "hunter2", "did": "+447700900123"}, tmp_path
        )

        assert [p.split(":")[0] for p in problems] == [
            "gateway.api_password",
            "gateway.api_username",
            "gateway",
            "gateway.did",
        ]
        assert not any("hunter2" in p for p in problems)


# --- webhook ---------------------------------------------------------------------------------


def webhook(tmp_path: Path, fake: WebhookFake, **extra: object) -> WebhookGateway:
    table: dict[str, object] = {"url": fake.hook_url, "timeout": TINY, **extra}
    return WebhookGateway.from_config(table, path="gateway", base=tmp_path, require_secrets=True)


class TestWebhook:
    async def test_default_json_post(self, tmp_path: Path) -> None:
        """Without fields the JSON body is to, body and reference; not idempotent."""
        async with WebhookFake() as fake, started(webhook(tmp_path, fake)) as gateway:
            receipt = await gateway.send(sms())

        (request,) = fake.requests
        assert request.method == "POST"
        assert request.json == {"to": TO, "body": BODY, "reference": "textback-42"}
        assert request.headers["Content-Type"].startswith("application/json")
        assert SendReceipt("") == receipt
        assert not gateway.idempotent

    async def test_template_headers_token_and_idempotency(self, tmp_path: Path) -> None:
        """Nested templates, static headers, the bearer token and the idempotency header all
        go out; id_field reads the id; the gateway is then idempotent."""
        async with WebhookFake() as fake:
            gateway = webhook(
                tmp_path,
                fake,
                fields={
                    "channel": "sms",
                    "message": {"to": "{to}", "text": "{body} ({{ref}} {reference})"},
                    "from": "{sender}",
                },
                headers={"X-Site": "main"},
                sender="+14155550199",
                bearer_token_file=secret(tmp_path, "token", "crm-token"),
                id_field="data.id",
                idempotency_header="Idempotency-Key",
            )
            async with started(gateway):
                receipt = await gateway.send(sms())

        (request,) = fake.requests
        assert request.json == {
            "channel": "sms",
            "message": {"to": TO, "text": BODY + " ({ref} textback-42)"},
            "from": "+14155550199",
        }
        assert request.headers["X-Site"] == "main"
        assert request.headers["Authorization"] == "Bearer crm-token"
        assert request.headers["Idempotency-Key"] == "textback-42"
        assert SendReceipt("wh-1") == receipt
        assert gateway.idempotent

    async def test_form_put_with_basic_auth(self, tmp_path: Path) -> None:
        """format = "form" with PUT sends a urlencoded body with HTTP Basic."""
        async with (
            WebhookFake() as fake,
            started(
                webhook(
                    tmp_path,
                    fake,
                    method="PUT",
                    format="form",
                    fields={"phone": "{to}", "msg": "{body}"},
                    username="textback",
                    password_file=secret(tmp_path, "pw", "basic-pw"),
                )
            ) as gateway,
        ):
            await gateway.send(sms())

        (request,) = fake.requests
        assert request.method == "PUT"
        assert request.form == {"phone": TO, "msg": BODY}
        assert request.basic_auth() == ("textback", "basic-pw")

    async def test_get_sends_query_with_api_key(self, tmp_path: Path) -> None:
        """GET puts the fields in the query string; the API key goes in its header."""
        async with (
            WebhookFake() as fake,
            started(
                webhook(
                    tmp_path,
                    fake,
                    method="get",
                    fields={"number": "{to}", "text": "{body}"},
                    api_key_header="X-Api-Key",
                    api_key_file=secret(tmp_path, "key", "k-123"),
                )
            ) as gateway,
        ):
            await gateway.send(sms())

        (request,) = fake.requests
        assert (request.method, request.body) == ("GET", b"")
        assert dict(request.query) == {"number": TO, "text": BODY}
        assert request.headers["X-Api-Key"] == "k-123"

    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            (301, FailureKind.CONFIG),
            (401, FailureKind.CONFIG),
            (403, FailureKind.CONFIG),
            (400, FailureKind.PERMANENT),
            (404, FailureKind.PERMANENT),
            (422, FailureKind.PERMANENT),
            (408, FailureKind.TRANSIENT),
            (500, FailureKind.TRANSIENT),
            (502, FailureKind.TRANSIENT),
        ],
    )
    async def test_status_classes(self, tmp_path: Path, status: int, kind: FailureKind) -> None:
        """The HTTP status alone decides the kind; the body starts the detail."""
        async with WebhookFake() as fake, started(webhook(tmp_path, fake)) as gateway:
            fake.script.append(Reply(status, {"message": "nope"}))
            error = await failed(gateway)

        assert kind == error.kind
        assert f"HTTP {status}" in error.detail
        assert "nope" in error.detail

    async def test_429_retry_after_date(self, tmp_path: Path) -> None:
        """429 is TRANSIENT with the Retry-After delay."""
        async with WebhookFake() as fake, started(webhook(tmp_path, fake)) as gateway:
            fake.script.append(Reply(429, b"slow down", {"Retry-After": "120"}))
            error = await failed(gateway)

        assert (error.kind, error.retry_after) == (FailureKind.TRANSIENT, 120.0)

    @pytest.mark.parametrize("outcome", [Hang(), Drop()])
    async def test_no_reply_is_transient(self, tmp_path: Path, outcome: Hang | Drop) -> None:
        """A hang past the timeout and a dropped connection are TRANSIENT."""
        async with WebhookFake() as fake, started(webhook(tmp_path, fake)) as gateway:
            fake.script.append(outcome)
            error = await failed(gateway)

        assert error.kind == FailureKind.TRANSIENT

    async def test_refused_connection_is_transient(self, tmp_path: Path) -> None:
        """Nothing listening is TRANSIENT."""
        table = {"url": f"http://127.0.0.1:{dead_port()}/hook", "timeout": TINY}
        gateway = WebhookGateway.from_config(
            table, path="gateway", base=tmp_path, require_secrets=True
        )
        async with started(gateway):
            error = await failed(gateway)

        assert error.kind == FailureKind.TRANSIENT
        assert "cannot connect" in error.detail

    async def test_missing_id_logged_once(self, tmp_path: Path) -> None:
        """A 2xx without the id_field is still a success; the mismatch is warned once."""
        async with (
            WebhookFake() as fake,
            started(webhook(tmp_path, fake, id_field="message.sid")) as gateway,
        ):
            with capture_logs() as logs:
                first = await gateway.send(sms())
                second = await gateway.send(sms())

        assert (SendReceipt(""), SendReceipt("")) == (first, second)
        assert [entry["event"] for entry in logs] == ["webhook_id_missing"]

    def test_config_problems(self, tmp_path: Path) -> None:
        """Bad templates, a credential header and a pasted token: one line each, no secret."""
        problems = problems_of(
            WebhookGateway,
            {
                "url": "crm.example.com/sms",
                "method": "PATCH",
                "fields": {"to": "{phone}", "text": "{body", "n": 3},
                "headers": {"Authorization": "Bearer abc123", "X Bad": "v"},
                "token": "abc123",
            },
            tmp_path,
        )

        assert [p.split(":")[0] for p in problems] == [
            "gateway.token",
            "gateway.url",
            "gateway.method",
            "gateway.fields",
            "gateway.fields",
            "gateway.fields",
            "gateway.headers",
            "gateway.headers",
        ]
        assert not any("abc123" in p for p in problems)
        assert "{phone}" in problems[3]

    def test_credentials_in_url_refused(self, tmp_path: Path) -> None:
        """A password written into the URL is refused without echoing it."""
        problems = problems_of(
            WebhookGateway, {"url": "https://crm:pa55word@crm.example.com/sms"}, tmp_path
        )

        assert len(problems) == 1
        assert problems[0].startswith("gateway.url: has a user name or password")
        assert "pa55word" not in problems[0]

    def test_form_takes_no_nested_fields(self, tmp_path: Path) -> None:
        """Nested tables are JSON only."""
        problems = problems_of(
            WebhookGateway,
            {"url": "https://x.example", "format": "form", "fields": {"a": {"b": "{to}"}}},
            tmp_path,
        )

        assert problems == ["gateway.fields: a: expected a string template, got a table"]

    def test_secret_without_its_name(self, tmp_path: Path) -> None:
        """A password without username, or an API key without its header, is named."""
        problems = problems_of(
            WebhookGateway,
            {
                "url": "https://x.example",
                "password_env": "WEBHOOK_PW",
                "api_key_env": "WEBHOOK_KEY",
            },
            tmp_path,
            require_secrets=False,
        )

        assert [p.split(":")[0] for p in problems] == [
            "gateway",
            "gateway.api_key_header",
            "gateway.username",
        ]


# --- SMTP ------------------------------------------------------------------------------------


def smtp(tmp_path: Path, sink: SmtpSink, **extra: object) -> SmtpGateway:
    table: dict[str, object] = {
        "host": "127.0.0.1",
        "port": sink.port,
        "tls": "none",
        "from_address": "Acme Plumbing <textback@acme.example>",
        "to_template": "{national}@sms.example.com",
        "timeout": 2,
        **extra,
    }
    return SmtpGateway.from_config(table, path="gateway", base=tmp_path, require_secrets=True)


class TestSmtp:
    async def test_mail_to_the_number(self, tmp_path: Path) -> None:
        """One mail to the templated address; its Message-ID carries the reference and is the id."""
        async with SmtpSink() as sink, started(smtp(tmp_path, sink, subject="Acme")) as gateway:
            receipt = await gateway.send(sms())

        (envelope,) = sink.envelopes
        (mail,) = sink.messages
        assert envelope.rcpt_tos == ["4155550100@sms.example.com"]
        assert envelope.mail_from == "textback@acme.example"
        assert mail["Subject"] == "Acme"
        assert mail.get_payload(decode=True).decode().strip() == BODY  # type: ignore[union-attr]
        assert receipt.provider_id == mail["Message-ID"]
        assert "textback-42" in receipt.provider_id
        assert receipt.provider_id.endswith("@acme.example>")
        assert not gateway.idempotent

    @pytest.mark.parametrize(
        ("template", "address"),
        [
            ("{e164}@gw.example", "+14155550100@gw.example"),
            ("{digits}@gw.example", "14155550100@gw.example"),
        ],
    )
    async def test_placeholders(self, tmp_path: Path, template: str, address: str) -> None:
        """{e164} keeps the +, {digits} drops it."""
        async with (
            SmtpSink() as sink,
            started(smtp(tmp_path, sink, to_template=template)) as gateway,
        ):
            await gateway.send(sms())

        assert [address] == sink.envelopes[0].rcpt_tos

    async def test_login(self, tmp_path: Path) -> None:
        """With username the adapter logs in with the password from its file."""
        async with (
            SmtpSink(users={"textback": "mail-pw"}) as sink,
            started(
                smtp(
                    tmp_path,
                    sink,
                    username="textback",
                    password_file=secret(tmp_path, "pw", "mail-pw"),
                )
            ) as gateway,
        ):
            await gateway.send(sms())

        assert sink.logins == ["textback"]
        assert len(sink.envelopes) == 1

    async def test_refused_login_is_config(self, tmp_path: Path) -> None:
        """A 535 for the password stops all sends (CONFIG) and names what to check."""
        async with (
            SmtpSink(users={"textback": "mail-pw"}) as sink,
            started(
                smtp(tmp_path, sink, username="textback", password_file=secret(tmp_path, "pw", "x"))
            ) as gateway,
        ):
            error = await failed(gateway)

        assert (error.kind, error.code) == (FailureKind.CONFIG, "535")
        assert "password" in error.detail
        assert sink.envelopes == []

    @pytest.mark.parametrize(
        ("where", "reply", "kind"),
        [
            ("rcpt", "450 4.2.1 Mailbox busy", FailureKind.TRANSIENT),
            ("rcpt", "550 5.1.1 No such user", FailureKind.PERMANENT),
            ("rcpt", "554 5.7.1 Relay access denied", FailureKind.CONFIG),
            ("data", "451 4.3.0 Try again later", FailureKind.TRANSIENT),
            ("data", "554 5.6.0 Message rejected", FailureKind.PERMANENT),
        ],
    )
    async def test_refusals(
        self, tmp_path: Path, where: str, reply: str, kind: FailureKind
    ) -> None:
        """4xx is TRANSIENT, 5xx PERMANENT, a relay refusal CONFIG; the code is kept."""
        async with SmtpSink() as sink, started(smtp(tmp_path, sink)) as gateway:
            if where == "rcpt":
                sink.rcpt_reply = reply
            else:
                sink.data_reply = reply
            error = await failed(gateway)

        assert (kind, reply[:3]) == (error.kind, error.code)
        assert reply[4:] in error.detail

    async def test_nothing_listening_is_transient(self, tmp_path: Path) -> None:
        """A refused connection is TRANSIENT."""
        gateway = SmtpGateway.from_config(
            {
                "host": "127.0.0.1",
                "port": dead_port(),
                "tls": "none",
                "from_address": "textback@acme.example",
                "to_template": "{e164}@sms.example.com",
                "timeout": TINY,
            },
            path="gateway",
            base=tmp_path,
            require_secrets=True,
        )
        async with started(gateway):
            error = await failed(gateway)

        assert error.kind == FailureKind.TRANSIENT

    async def test_starttls_not_offered_is_config(self, tmp_path: Path) -> None:
        """The default tls = "starttls" against a server without STARTTLS is CONFIG, never plain."""
        async with SmtpSink() as sink:
            gateway = smtp(tmp_path, sink)
            gateway.tls = "starttls"
            async with started(gateway):
                error = await failed(gateway)

        assert error.kind == FailureKind.CONFIG
        assert "STARTTLS" in error.detail
        assert sink.envelopes == []

    @pytest.mark.parametrize("tls", ["starttls", "implicit"])
    async def test_untrusted_certificate_is_config(self, tmp_path: Path, tls: Any) -> None:
        """A certificate no CA vouches for is CONFIG, for STARTTLS and TLS from the start alike."""
        async with SmtpSink(tls=tls, cert_dir=tmp_path) as sink:
            gateway = smtp(tmp_path, sink)
            gateway.tls = tls
            async with started(gateway):
                error = await failed(gateway)

        assert error.kind == FailureKind.CONFIG
        assert "certificate" in error.detail
        assert sink.envelopes == []

    def test_config_problems(self, tmp_path: Path) -> None:
        """Missing host, a pasted password, bad templates: one line each, no secret."""
        problems = problems_of(
            SmtpGateway,
            {
                "password": "hunter2",
                "tls": "ssl",
                "from_address": "textback",
                "to_template": "{number}@sms.example.com",
                "username": "textback",
            },
            tmp_path,
        )

        assert [p.split(":")[0] for p in problems] == [
            "gateway.password",
            "gateway.host",
            "gateway.tls",
            "gateway",
            "gateway.from_address",
            "gateway.to_template",
        ]
        assert not any("hunter2" in p for p in problems)

    def test_template_must_make_an_address(self, tmp_path: Path) -> None:
        """A template without the number or without a domain is refused."""
        for template in ("sms@example.com", "{e164}"):
            problems = problems_of(
                SmtpGateway,
                {
                    "host": "smtp.example.com",
                    "from_address": "a@b.example",
                    "to_template": template,
                },
                tmp_path,
            )
            assert len(problems) == 1
            assert problems[0].startswith("gateway.to_template: ")


# --- AMI modem -------------------------------------------------------------------------------


def modem(**table: object) -> AmiModemGateway:
    return AmiModemGateway.from_config(
        {"device": "dongle0", **table}, path="gateway", base=Path("."), require_secrets=True
    )


@contextlib.asynccontextmanager
async def pbx(
    options: SimulatorOptions | None = None,
) -> AsyncIterator[tuple[AmiSimulator, AmiSource]]:
    """A simulator and a logged-in AmiSource."""
    async with AmiSimulator([], options) as sim:
        source = AmiSource(settings(sim.port))
        async with running(source):
            await item_of(source, AmiResync)
            yield sim, source


class TestAmiModem:
    async def test_send_over_the_ami_link(self) -> None:
        """One DongleSendSMS carries the number and the text on one line; its ID is the id."""
        gateway = modem(validity=60, report=True)
        async with (
            pbx() as (sim, source),
            started(gateway, GatewayContext(ami_action=source.action)),
        ):
            receipt = await gateway.send(sms(body="Sorry we missed you.\r\nReply STOP to opt out."))

        (action,) = sim.sent_sms
        assert {key: value for key, value in action.items() if key != "actionid"} == {
            "action": "DongleSendSMS",
            "device": "dongle0",
            "number": TO,
            "message": "Sorry we missed you. Reply STOP to opt out.",
            "validity": "60",
            "report": "yes",
        }
        assert SendReceipt("0x55d0c0de0001") == receipt
        assert not gateway.idempotent

    async def test_quectel_driver(self) -> None:
        """driver = "quectel" sends QuectelSendSMS to its device."""
        gateway = modem(driver="quectel", device="quectel0")
        async with (
            pbx() as (sim, source),
            started(gateway, GatewayContext(ami_action=source.action)),
        ):
            await gateway.send(sms())

        assert (
            sim.sent_sms[0]["action"],
            sim.sent_sms[0]["device"],
        ) == ("QuectelSendSMS", "quectel0")

    @pytest.mark.parametrize(
        ("options", "device", "kind"),
        [
            (SimulatorOptions(), "dongle9", FailureKind.CONFIG),
            (SimulatorOptions(modem_drivers=frozenset()), "dongle0", FailureKind.CONFIG),
            (
                SimulatorOptions(modem_error="Device not connected / initialized / registered"),
                "dongle0",
                FailureKind.TRANSIENT,
            ),
            (
                SimulatorOptions(modem_error="Error adding SMS commands to queue"),
                "dongle0",
                FailureKind.PERMANENT,
            ),
        ],
    )
    async def test_refusals(
        self, options: SimulatorOptions, device: str, kind: FailureKind
    ) -> None:
        """Unknown device and unloaded driver are CONFIG, an unregistered modem TRANSIENT."""
        gateway = modem(device=device)
        async with (
            pbx(options) as (sim, source),
            started(gateway, GatewayContext(ami_action=source.action)),
        ):
            error = await failed(gateway)

        assert kind == error.kind
        # chan_dongle answers what it knows; without the driver Asterisk answers for it.
        assert int(bool(options.modem_drivers)) == len(sim.sent_sms)

    async def test_link_down_is_transient(self) -> None:
        """With the AMI link gone the send fails TRANSIENT and nothing reaches the PBX."""
        gateway = modem()
        async with (
            pbx() as (sim, source),
            started(gateway, GatewayContext(ami_action=source.action)),
        ):
            await sim.restart(announce=False)
            await item_of(source, AmiLinkDown)
            error = await failed(gateway)

        assert error.kind == FailureKind.TRANSIENT
        assert sim.sent_sms == []

    async def test_never_connected_is_transient(self) -> None:
        """An AmiSource that never logged in gives TRANSIENT, not a crash."""
        source = AmiSource(settings(dead_port()))
        gateway = modem()
        async with started(gateway, GatewayContext(ami_action=source.action)):
            error = await failed(gateway)

        assert error.kind == FailureKind.TRANSIENT
        assert "not connected" in error.detail

    async def test_bad_number_never_reaches_the_pbx(self) -> None:
        """A number that is not E.164 fails PERMANENT before any action."""
        gateway = modem()
        async with (
            pbx() as (sim, source),
            started(gateway, GatewayContext(ami_action=source.action)),
        ):
            error = await failed(gateway, sms(to="4155550100"))

        assert error.kind == FailureKind.PERMANENT
        assert sim.sent_sms == []

    async def test_start_without_ami_link(self) -> None:
        """Without [asterisk] there is no AMI link: start says so as a config error."""
        with pytest.raises(ConfigError) as caught:
            await modem().start(GatewayContext())

        assert "[asterisk]" in caught.value.problems[0]

    @pytest.mark.parametrize(
        ("reply", "kind"),
        [
            ({"Response": "Error", "Message": "Permission denied"}, FailureKind.CONFIG),
            ({"Response": "Error", "Message": "[dongle0] Device disabled"}, FailureKind.CONFIG),
            (
                {"Response": "Error", "Message": "[dongle0] Invalid destination number"},
                FailureKind.PERMANENT,
            ),
            ({"Response": "Goodbye"}, FailureKind.PERMANENT),
        ],
    )
    def test_reply_meanings(self, reply: dict[str, str], kind: FailureKind) -> None:
        """Replies chan_dongle and Asterisk give map to their kinds."""
        with pytest.raises(GatewayError) as caught:
            interpret(reply, "dongle0")

        assert kind == caught.value.kind

    def test_config_problems(self) -> None:
        """A missing device, an unknown driver and an out-of-range validity: one line each."""
        with pytest.raises(ConfigError) as caught:
            AmiModemGateway.from_config(
                {"driver": "chan_dongle", "validity": 0, "report": "yes", "Device": "x"},
                path="gateway",
                base=Path("."),
                require_secrets=True,
            )

        assert [p.split(":")[0] for p in caught.value.problems] == [
            "gateway.Device",
            "gateway.driver",
            "gateway.device",
            "gateway.validity",
            "gateway.report",
        ]


# --- AmiSource.action ------------------------------------------------------------------------


class SilentPbx:
    """Logs clients in, then reads their actions and never answers; drops on command."""

    def __init__(self) -> None:
        self.actions: list[bytes] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> SilentPbx:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.drop()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def drop(self) -> None:
        for writer in self._writers:
            writer.transport.abort()

    async def until_actions(self, count: int) -> None:
        async with asyncio.timeout(PATIENCE), self._changed:
            await self._changed.wait_for(lambda: len(self.actions) >= count)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action_id = next(
                    line.split(b":", 1)[1].strip()
                    for line in raw.split(b"\r\n")
                    if line.lower().startswith(b"actionid:")
                )
                if b"Action: Login" in raw:
                    writer.write(b"Response: Success\r\nActionID: " + action_id + b"\r\n\r\n")
                elif b"Action: CoreShowChannels" in raw:
                    writer.write(
                        b"Response: Success\r\nActionID: " + action_id + b"\r\nEventList: start\r\n"
                        b"\r\nEvent: CoreShowChannelsComplete\r\nActionID: " + action_id + b"\r\n"
                        b"EventList: Complete\r\nListItems: 0\r\n\r\n"
                    )
                else:
                    self.actions.append(raw)
                    async with self._changed:
                        self._changed.notify_all()


class TestAmiSourceAction:
    async def test_reply_comes_back(self) -> None:
        """An action on the live session returns its reply's fields."""
        async with pbx() as (_, source):
            reply = await source.action(
                {"Action": "DongleSendSMS", "Device": "dongle0", "Number": TO, "Message": "hi"}
            )

        assert (reply["Response"], reply["Message"]) == ("Success", "[dongle0] SMS queued for send")

    async def test_not_connected(self) -> None:
        """Before any login the action raises PbxError."""
        with pytest.raises(PbxError):
            await AmiSource(settings(dead_port())).action({"Action": "Ping"})

    async def test_line_break_refused(self) -> None:
        """A line break in a field would inject AMI headers: ValueError, nothing sent."""
        async with pbx() as (sim, source):
            with pytest.raises(ValueError, match="Message"):
                await source.action(
                    {
                        "Action": "DongleSendSMS",
                        "Device": "dongle0",
                        "Number": TO,
                        "Message": "a\nb",
                    }
                )

        assert sim.sent_sms == []

    async def test_timeout_leaves_the_link_up(self) -> None:
        """No reply in time raises PbxError naming the action; the session stays logged in."""
        async with SilentPbx() as server:
            source = AmiSource(settings(server.port))
            async with running(source):
                await item_of(source, AmiResync)
                with pytest.raises(PbxError, match="no reply to DongleSendSMS"):
                    await source.action({"Action": "DongleSendSMS"}, timeout=TINY)
                assert source.connected

    async def test_link_lost_mid_action_logs_no_fields(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A link lost while waiting raises PbxError, and no log line carries the action's text."""
        caplog.set_level(logging.DEBUG)
        async with SilentPbx() as server:
            source = AmiSource(settings(server.port))
            async with running(source):
                await item_of(source, AmiResync)
                pending = asyncio.create_task(
                    source.action(
                        {"Action": "DongleSendSMS", "Number": TO, "Message": "private words"},
                        timeout=PATIENCE,
                    )
                )
                await server.until_actions(1)
                server.drop()
                with pytest.raises(PbxError, match="lost"):
                    await pending

        assert not [r for r in caplog.records if "private words" in r.getMessage()]
