"""Replies and delivery receipts for plivo, voipms, webhook and console, over real HTTP.

Each request is built and signed here, independently of the adapters, and sent to
a receiver on 127.0.0.1 that does what the web server does: it rebuilds the
public URL (a reverse proxy's ``https://textback.example.com`` + path + query),
then calls ``verify`` and ``parse_inbound`` / ``parse_status``. Signed, forged,
stale and malformed requests are all tried.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web

from tests.fakeproviders_b import PLIVO_AUTH_ID
from textback.errors import ConfigError
from textback.gateways.base import (
    BadWebhook,
    DeliveryReceipt,
    FailureKind,
    InboundSms,
    WebhookCapable,
    WebhookRequest,
)
from textback.gateways.console import ConsoleGateway
from textback.gateways.plivo import PlivoGateway, signature_v3, signed_base
from textback.gateways.voipms import VoipMsGateway
from textback.gateways.webhook import WebhookGateway

PUBLIC = "https://textback.example.com"
NOW = 1_790_000_000.0
FORM = "application/x-www-form-urlencoded"
PLIVO_TOKEN = "Yz3kT1PlivoTestToken0000000000000000"
VOIPMS_TOKEN = "b4c1e0f2a7d94b0e8c3f5a6d7e8f9a0b"
CONSOLE_TOKEN = "console-demo-token-0123456789abcdef"
HOOK_SECRET = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
CALLER = "+14155550123"
OUR = "+14155550100"


# -- the receiver: what the web server does with a callback ---------------------------------


@dataclass
class Receiver:
    gateways: Mapping[str, WebhookCapable]
    base: str = ""
    now: float = NOW
    parsed: list[InboundSms | DeliveryReceipt | None] = field(default_factory=list)
    refused: list[BadWebhook] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        gateway = self.gateways[request.match_info["gateway"]]
        hook = WebhookRequest(
            method=request.method,
            url=PUBLIC + request.raw_path,
            headers=request.headers,
            body=await request.read(),
            now=self.now,
        )
        try:
            gateway.verify(hook)
            if request.match_info["what"] == "inbound":
                parsed: InboundSms | DeliveryReceipt | None = gateway.parse_inbound(hook)
            else:
                parsed = gateway.parse_status(hook)
        except BadWebhook as exc:
            self.refused.append(exc)
            return web.Response(status=exc.status)
        self.parsed.append(parsed)
        reply = gateway.webhook_reply()
        return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)

    async def send(
        self,
        method: str,
        path_qs: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base + path_qs, data=body, headers=headers) as reply,
        ):
            return reply.status, await reply.read()

    @property
    def last(self) -> InboundSms | DeliveryReceipt | None:
        assert not self.refused, self.refused
        assert len(self.parsed) == 1, self.parsed
        return self.parsed[0]

    @property
    def reason(self) -> str:
        assert not self.parsed, self.parsed
        assert len(self.refused) == 1, self.refused
        return self.refused[0].reason


@pytest.fixture
def gateways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, WebhookCapable]:
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", PLIVO_TOKEN)
    monkeypatch.setenv("VOIPMS_API_PASSWORD", "api-password")
    monkeypatch.setenv("VOIPMS_WEBHOOK_TOKEN", VOIPMS_TOKEN)
    monkeypatch.setenv("CONSOLE_TOKEN", CONSOLE_TOKEN)
    (tmp_path / "hook-secret").write_text(HOOK_SECRET + "\n")
    return {
        "plivo": build(
            PlivoGateway,
            {"auth_id": PLIVO_AUTH_ID, "auth_token_env": "PLIVO_AUTH_TOKEN", "from": OUR},
            tmp_path,
        ),
        "voipms": build(
            VoipMsGateway,
            {
                "api_username": "office@example.com",
                "api_password_env": "VOIPMS_API_PASSWORD",
                "did": "4155550100",
                "webhook_token_env": "VOIPMS_WEBHOOK_TOKEN",
            },
            tmp_path,
        ),
        "webhook": build(
            WebhookGateway,
            {
                "url": "https://crm.example.com/api/sms",
                "inbound_secret_file": "hook-secret",
                "error_codes": {"not_sms_capable": ["30006", 4720], "opted_out": ["21610"]},
            },
            tmp_path,
        ),
        "console": build(ConsoleGateway, {"webhook_token_env": "CONSOLE_TOKEN"}, tmp_path),
    }


@pytest.fixture
async def receiver(gateways: dict[str, WebhookCapable]) -> AsyncIterator[Receiver]:
    receiver = Receiver(gateways)
    app = web.Application()
    app.router.add_route("*", "/hooks/{gateway}/{what}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.base = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


def build(cls: Any, table: Mapping[str, object], base: Path) -> Any:
    return cls.from_config(table, path="gateway", base=base, require_secrets=True)


def problems_of(cls: Any, table: Mapping[str, object], base: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build(cls, table, base)
    problems: list[str] = caught.value.problems
    return problems


# -- Plivo ------------------------------------------------------------------------------------


def plivo_signature(token: str, url: str, fields: Mapping[str, str], nonce: str) -> str:
    """Plivo's V3 signature for a form POST (or a GET when ``fields`` is empty), written
    from the published algorithm independently of the adapter."""
    parts = urlsplit(url)
    no_query = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    body = "".join(k + v for k, v in sorted(fields.items()))
    if body:
        signed = f"{no_query}?{query}{'.' if query else ''}{body}"
    else:
        signed = no_query + (f"?{query}" if query else "")
    mac = hmac.new(token.encode(), f"{signed}.{nonce}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def plivo_headers(signature: str, nonce: str = "30516297", **extra: str) -> dict[str, str]:
    return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce, **extra}


INBOUND = {
    "From": "14155550123",
    "To": "14155550100",
    "Text": "Stop. Thank you – José",
    "Type": "sms",
    "MessageUUID": "3a2b7c64-0d3e-11f0-9e5a-0242ac110002",
}

# Published V3 reference vectors (the plivo-python SDK's construct_post_url / get_signature_v3
# for these inputs). The first two are the ones openHAB's Plivo binding tests against.
OPENHAB = {"From": "+14156667777", "To": "+14158889999", "CallUUID": "abcd-1234"}
VECTORS: list[tuple[str, str, str, str, Mapping[str, object], str, str]] = [
    (
        "my_auth_token",
        "12345",
        "POST",
        "https://example.com/answer",
        OPENHAB,
        "https://example.com/answer?CallUUIDabcd-1234From+14156667777To+14158889999",
        "QUFNUHBhaE5m20p3UFtVHCb66PSliiukfx8M6MyiJwk=",
    ),
    (
        "my_auth_token",
        "12345",
        "POST",
        "https://example.com/answer?token=xyz",
        OPENHAB,
        "https://example.com/answer?token=xyz.CallUUIDabcd-1234From+14156667777To+14158889999",
        "IryQ8ucGk4J35wJRxh5K0iVvDCSZpHflFICcZxwx7Cc=",
    ),
    (
        PLIVO_TOKEN,
        "30516297",
        "POST",
        f"{PUBLIC}/hooks/plivo/inbound",
        INBOUND,
        f"{PUBLIC}/hooks/plivo/inbound?From14155550123"
        "MessageUUID3a2b7c64-0d3e-11f0-9e5a-0242ac110002TextStop. Thank you – José"
        "To14155550100Typesms",
        "k0xp+aH4IF+Q6YrTW0ehlIptpd0z0H34gV7UlX+BpPE=",
    ),
    (
        PLIVO_TOKEN,
        "30516297",
        "POST",
        f"{PUBLIC}/hooks/plivo/status?site=main&a=",
        {"MessageUUID": "8d2f1e0a-0d3e-11f0-9e5a-0242ac110002", "Status": "undelivered"}
        | {"ErrorCode": "50"},
        f"{PUBLIC}/hooks/plivo/status?a=&site=main.ErrorCode50"
        "MessageUUID8d2f1e0a-0d3e-11f0-9e5a-0242ac110002Statusundelivered",
        "idRJgxNKmgLstRcSkE/XfCiYSTk/0TA8WJ/wVjo2Olw=",
    ),
    (
        PLIVO_TOKEN,
        "30516297",
        "GET",
        f"{PUBLIC}/hooks/plivo/inbound?To=14155550100&From=14155550123&Text=hi+there"
        "&MessageUUID=m-1",
        {},
        f"{PUBLIC}/hooks/plivo/inbound?From=14155550123&MessageUUID=m-1&Text=hi there"
        "&To=14155550100",
        "7wSDwgsVE2mOz4vzqaMUwbLXQbpaWE5BIXpAQZKJmDo=",
    ),
    (
        PLIVO_TOKEN,
        "30516297",
        "POST",
        f"{PUBLIC}/hooks/plivo/status",
        {"MessageUUID": "m-2", "Status": "delivered", "Units": 1, "Extra": {"b": "2", "a": [3, 1]}},
        f"{PUBLIC}/hooks/plivo/status?Extraa1a3b2MessageUUIDm-2StatusdeliveredUnits1",
        "65NTGCRoqssEXtDa07+NkLraAEcxgxpqgCjkjlpJnVA=",
    ),
    # No query and no body: no "?" at all.
    (
        PLIVO_TOKEN,
        "30516297",
        "POST",
        f"{PUBLIC}/hooks/plivo/status",
        {},
        f"{PUBLIC}/hooks/plivo/status",
        "GPkOEUWvWJh8SEkrlp8UbIYZ9RxNh7qg73m/RFyBam4=",
    ),
    (
        PLIVO_TOKEN,
        "30516297",
        "GET",
        f"{PUBLIC}/hooks/plivo/status?",
        {},
        f"{PUBLIC}/hooks/plivo/status",
        "GPkOEUWvWJh8SEkrlp8UbIYZ9RxNh7qg73m/RFyBam4=",
    ),
]


class TestPlivoSignature:
    @pytest.mark.parametrize(("token", "nonce", "method", "url", "params", "base", "sig"), VECTORS)
    def test_reference_vectors(
        self,
        token: str,
        nonce: str,
        method: str,
        url: str,
        params: Mapping[str, object],
        base: str,
        sig: str,
    ) -> None:
        """The signed string and signature match Plivo's reference for each vector."""
        assert signed_base(method, url, params) == base
        assert signature_v3(token, base, nonce).decode() == sig

    @pytest.mark.parametrize(
        ("token", "nonce", "method", "url", "params", "base", "sig"),
        [v for v in VECTORS if all(isinstance(x, str) for x in v[4].values())],
    )
    def test_the_tests_signer_matches_the_vectors_too(
        self,
        token: str,
        nonce: str,
        method: str,
        url: str,
        params: Mapping[str, str],
        base: str,
        sig: str,
    ) -> None:
        """The signer these tests use agrees with the reference, so it proves something."""
        assert plivo_signature(token, url, params, nonce) == sig


class TestPlivoHooks:
    async def test_signed_form_reply(self, receiver: Receiver) -> None:
        """A signed form POST is a reply with E.164 numbers; Plivo gets an empty XML answer."""
        url = "/hooks/plivo/inbound"
        signature = plivo_signature(PLIVO_TOKEN, PUBLIC + url, INBOUND, "30516297")
        status, body = await receiver.send(
            "POST",
            url,
            urlencode(INBOUND).encode(),
            plivo_headers(signature, **{"Content-Type": FORM}),
        )
        assert (status, body) == (200, b"<Response></Response>")
        assert receiver.last == InboundSms(
            provider_id=INBOUND["MessageUUID"],
            sender=CALLER,
            recipient=OUR,
            body="Stop. Thank you – José",
        )

    async def test_signed_json_reply(self, receiver: Receiver) -> None:
        """A signed JSON body is read like the form."""
        url = "/hooks/plivo/inbound"
        signature = plivo_signature(PLIVO_TOKEN, PUBLIC + url, INBOUND, "n-json")
        headers = plivo_headers(signature, "n-json", **{"Content-Type": "application/json"})
        status, _ = await receiver.send("POST", url, json.dumps(INBOUND).encode(), headers)
        assert status == 200
        reply = receiver.last
        assert isinstance(reply, InboundSms)
        assert reply.sender == CALLER

    async def test_signed_get_reply(self, receiver: Receiver) -> None:
        """A message URL set to GET: the fields and the signature are in the query."""
        url = "/hooks/plivo/inbound?" + urlencode(INBOUND)
        signature = plivo_signature(PLIVO_TOKEN, PUBLIC + url, {}, "30516297")
        status, _ = await receiver.send("GET", url, headers=plivo_headers(signature))
        assert status == 200
        reply = receiver.last
        assert isinstance(reply, InboundSms)
        assert reply.body == "Stop. Thank you – José"

    async def test_any_of_several_signatures(self, receiver: Receiver) -> None:
        """With two auth tokens active Plivo sends two signatures: one matching is enough."""
        url = "/hooks/plivo/inbound"
        ours = plivo_signature(PLIVO_TOKEN, PUBLIC + url, INBOUND, "30516297")
        other = plivo_signature(
            "the-other-auth-token-000000000000", PUBLIC + url, INBOUND, "30516297"
        )
        headers = plivo_headers(f"{other}, {ours}", **{"Content-Type": FORM})
        status, _ = await receiver.send("POST", url, urlencode(INBOUND).encode(), headers)
        assert status == 200

    @pytest.mark.parametrize(
        ("status_word", "code", "delivered", "kind"),
        [
            ("delivered", "000", True, None),
            ("queued", "", None, None),
            ("sent", "", None, None),
            ("undelivered", "50", False, FailureKind.NOT_SMS_CAPABLE),
            ("failed", "200", False, FailureKind.OPTED_OUT),
            ("undelivered", "20", False, FailureKind.TRANSIENT),
            ("rejected", "", False, FailureKind.PERMANENT),
        ],
    )
    async def test_delivery_report(
        self,
        receiver: Receiver,
        status_word: str,
        code: str,
        delivered: bool | None,
        kind: FailureKind | None,
    ) -> None:
        """Status and ErrorCode become a receipt, the code classified as a send failure would be."""
        url = "/hooks/plivo/status?site=main"
        fields = {"MessageUUID": "m-77", "Status": status_word, "ErrorCode": code, "Units": "1"}
        signature = plivo_signature(PLIVO_TOKEN, PUBLIC + url, fields, "4242")
        headers = plivo_headers(signature, "4242", **{"Content-Type": FORM})
        status, _ = await receiver.send("POST", url, urlencode(fields).encode(), headers)
        assert status == 200
        assert receiver.last == DeliveryReceipt(
            provider_id="m-77", delivered=delivered, status=status_word, error_code=code, kind=kind
        )

    @pytest.mark.parametrize(
        "forgery",
        [
            "wrong token",
            "text changed",
            "other host",
            "http instead of https",
            "other nonce",
            "no nonce",
            "no signature",
        ],
    )
    async def test_forged(self, receiver: Receiver, forgery: str) -> None:
        """Anything but Plivo's own signature for this URL, body and nonce is a 403."""
        url = "/hooks/plivo/inbound"
        token, signed_url, fields, nonce = PLIVO_TOKEN, PUBLIC + url, dict(INBOUND), "30516297"
        if forgery == "wrong token":
            token = "not-the-auth-token-0000000000000"
        elif forgery == "other host":
            signed_url = "https://attacker.example.net" + url
        elif forgery == "http instead of https":
            signed_url = signed_url.replace("https://", "http://")
        signature = plivo_signature(token, signed_url, fields, nonce)
        if forgery == "text changed":
            fields["Text"] = "START"
        if forgery == "other nonce":
            nonce = "30516298"
        headers = plivo_headers(signature, nonce, **{"Content-Type": FORM})
        if forgery == "no nonce":
            del headers["X-Plivo-Signature-V3-Nonce"]
        if forgery == "no signature":
            del headers["X-Plivo-Signature-V3"]
        status, _ = await receiver.send("POST", url, urlencode(fields).encode(), headers)
        assert status == 403
        assert receiver.reason.startswith("plivo:")

    async def test_no_auth_token_refuses_everything(
        self, receiver: Receiver, tmp_path: Path
    ) -> None:
        """Checked without secrets (check-config), the adapter trusts no callback."""
        unchecked = PlivoGateway.from_config(
            {"auth_id": PLIVO_AUTH_ID, "from": OUR},
            path="gateway",
            base=tmp_path,
            require_secrets=False,
        )
        receiver.gateways = {"plivo": unchecked}
        url = "/hooks/plivo/inbound"
        signature = plivo_signature(PLIVO_TOKEN, PUBLIC + url, INBOUND, "30516297")
        headers = plivo_headers(signature, **{"Content-Type": FORM})
        status, _ = await receiver.send("POST", url, urlencode(INBOUND).encode(), headers)
        assert status == 403

    @pytest.mark.parametrize(
        ("fields", "content_type", "what"),
        [
            ({k: v for k, v in INBOUND.items() if k != "MessageUUID"}, FORM, "MessageUUID"),
            ({k: v for k, v in INBOUND.items() if k != "Text"}, FORM, "Text"),
            (INBOUND, "text/plain", "neither a form nor JSON"),
        ],
    )
    async def test_malformed(
        self, receiver: Receiver, fields: Mapping[str, str], content_type: str, what: str
    ) -> None:
        """A signed callback without a field it needs, or of another type, is a 400."""
        url = "/hooks/plivo/inbound"
        signature = plivo_signature(PLIVO_TOKEN, PUBLIC + url, fields, "30516297")
        headers = plivo_headers(signature, **{"Content-Type": content_type})
        status, _ = await receiver.send("POST", url, urlencode(fields).encode(), headers)
        assert status == 400
        assert what in receiver.reason

    async def test_report_at_the_message_url_is_no_reply(self, receiver: Receiver) -> None:
        """A delivery report posted to the inbound URL carries no reply: nothing is parsed."""
        url = "/hooks/plivo/inbound"
        fields = {"MessageUUID": "m-1", "Status": "delivered"}
        signature = plivo_signature(PLIVO_TOKEN, PUBLIC + url, fields, "1")
        headers = plivo_headers(signature, "1", **{"Content-Type": FORM})
        status, _ = await receiver.send("POST", url, urlencode(fields).encode(), headers)
        assert (status, receiver.last) == (200, None)

    def test_provider_confirms_stop(self, tmp_path: Path) -> None:
        """Plivo confirms STOP itself by default; the key turns that off; a non-bool is refused."""
        table: dict[str, object] = {"auth_id": PLIVO_AUTH_ID, "from": OUR}
        kwargs: dict[str, Any] = {"path": "gateway", "base": tmp_path, "require_secrets": False}
        assert PlivoGateway.from_config(table, **kwargs).provider_confirms_stop is True
        off = PlivoGateway.from_config(table | {"provider_confirms_stop": False}, **kwargs)
        assert off.provider_confirms_stop is False
        with pytest.raises(ConfigError) as caught:
            PlivoGateway.from_config(table | {"provider_confirms_stop": "no"}, **kwargs)
        assert caught.value.problems[0].startswith(
            'gateway.provider_confirms_stop: expected true or false, got "no"'
        )


# -- VoIP.ms ----------------------------------------------------------------------------------


def voipms_url(token: str | None = VOIPMS_TOKEN, **fields: str) -> str:
    """The SMS URL Callback as VoIP.ms fills in the template."""
    values = {"from": "4155550123", "to": "4155550100", "message": "Is 3pm ok? A&B + 50%"}
    values |= {"id": "23456789", "date": "2026-05-04 09:15:02"} | fields
    query = ({"token": token} if token is not None else {}) | values
    return "/hooks/voipms/inbound?" + urlencode(query)


class TestVoipMsHooks:
    async def test_filled_in_callback(self, receiver: Receiver) -> None:
        """The GET VoIP.ms makes is a reply with E.164 numbers, answered "ok"."""
        status, body = await receiver.send("GET", voipms_url())
        assert (status, body) == (200, b"ok")
        assert receiver.last == InboundSms(
            provider_id="23456789", sender=CALLER, recipient=OUR, body="Is 3pm ok? A&B + 50%"
        )

    async def test_posted_form(self, receiver: Receiver) -> None:
        """A POSTed form with the token in the URL is read as well."""
        body = urlencode({"from": "4155550123", "to": "4155550100", "message": "yes", "id": "9"})
        url = "/hooks/voipms/inbound?" + urlencode({"token": VOIPMS_TOKEN})
        status, _ = await receiver.send("POST", url, body.encode(), {"Content-Type": FORM})
        assert status == 200
        assert receiver.last == InboundSms(
            provider_id="9", sender=CALLER, recipient=OUR, body="yes"
        )

    async def test_picture_only(self, receiver: Receiver) -> None:
        """An MMS with no text is a reply with an empty body."""
        status, _ = await receiver.send("GET", voipms_url(message=""))
        reply = receiver.last
        assert status == 200
        assert isinstance(reply, InboundSms)
        assert reply.body == ""

    async def test_short_code_sender_kept(self, receiver: Receiver) -> None:
        """A sender that is not a North American number is kept as given."""
        await receiver.send("GET", voipms_url(**{"from": "72345"}))
        reply = receiver.last
        assert isinstance(reply, InboundSms)
        assert reply.sender == "72345"

    @pytest.mark.parametrize(
        "url",
        [
            voipms_url(token=None),
            voipms_url(token="b4c1e0f2a7d94b0e8c3f5a6d7e8f9a0c"),
            voipms_url(token=VOIPMS_TOKEN[:-1]),
            voipms_url(token=""),
            voipms_url() + "&token=" + VOIPMS_TOKEN,
        ],
        ids=["none", "wrong", "truncated", "empty", "twice"],
    )
    async def test_wrong_token(self, receiver: Receiver, url: str) -> None:
        """Without exactly the configured token the callback is a 403 that names no token."""
        status, _ = await receiver.send("GET", url)
        assert status == 403
        assert VOIPMS_TOKEN not in receiver.reason
        assert VOIPMS_TOKEN[:8] not in receiver.reason

    async def test_no_token_configured(self, receiver: Receiver, tmp_path: Path) -> None:
        """Without webhook_token every callback is refused, whatever token it carries."""
        bare = build(
            VoipMsGateway,
            {"api_username": "office@example.com", "api_password_env": "VOIPMS_API_PASSWORD"}
            | {"did": "4155550100"},
            tmp_path,
        )
        receiver.gateways = {"voipms": bare}
        status, _ = await receiver.send("GET", voipms_url())
        assert status == 403
        assert "no webhook_token configured" in receiver.reason

    @pytest.mark.parametrize(
        ("fields", "what"),
        [
            ({"id": ""}, "no id"),
            ({"from": "{FROM}"}, "from is an unfilled placeholder"),
            ({"to": ""}, "no to"),
        ],
    )
    async def test_malformed(self, receiver: Receiver, fields: dict[str, str], what: str) -> None:
        """A callback missing a template variable, or with one left unfilled, is a 400."""
        status, _ = await receiver.send("GET", voipms_url(**fields))
        assert status == 400
        assert what in receiver.reason

    async def test_message_is_never_a_placeholder(self, receiver: Receiver) -> None:
        """A texter who writes "{MESSAGE}" is a reply like any other."""
        status, _ = await receiver.send("GET", voipms_url(message="{MESSAGE}"))
        reply = receiver.last
        assert status == 200
        assert isinstance(reply, InboundSms)
        assert reply.body == "{MESSAGE}"

    async def test_no_delivery_receipts(self, receiver: Receiver) -> None:
        """VoIP.ms sends no receipts: a verified status callback parses to nothing."""
        url = "/hooks/voipms/status?" + urlencode({"token": VOIPMS_TOKEN, "id": "1"})
        status, _ = await receiver.send("GET", url)
        assert (status, receiver.last) == (200, None)

    def test_token_config(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A short or URL-unsafe token is refused naming the key, never showing the token."""
        table = {
            "api_username": "office@example.com",
            "api_password_env": "VOIPMS_API_PASSWORD",
            "did": "4155550100",
            "webhook_token_env": "VOIPMS_WEBHOOK_TOKEN",
        }
        monkeypatch.setenv("VOIPMS_API_PASSWORD", "pw")
        monkeypatch.setenv("VOIPMS_WEBHOOK_TOKEN", "short-token-1234")
        (problem,) = problems_of(VoipMsGateway, table, tmp_path)
        assert problem.startswith("gateway.webhook_token_env: the callback URL token is shorter")
        assert "short-token-1234" not in problem
        monkeypatch.setenv("VOIPMS_WEBHOOK_TOKEN", "a&b=c" * 6)
        (problem,) = problems_of(VoipMsGateway, table, tmp_path)
        assert "goes in a URL" in problem
        assert "a&b=c" not in problem
        assert "did you mean" not in problem

    def test_token_pasted_in(self, tmp_path: Path) -> None:
        """webhook_token = "..." is refused with the env/file keys as the fix."""
        table = {
            "api_username": "office@example.com",
            "did": "4155550100",
            "webhook_token": VOIPMS_TOKEN,
        }
        problems = problems_of(VoipMsGateway, table, tmp_path)
        assert any(
            p.startswith("gateway.webhook_token: unknown key — the callback URL token itself")
            for p in problems
        )
        assert not any(VOIPMS_TOKEN in p for p in problems)

    def test_provider_confirms_stop_default(self, gateways: dict[str, WebhookCapable]) -> None:
        """VoIP.ms filters no STOP: textback confirms it by default."""
        assert gateways["voipms"].provider_confirms_stop is False


# -- the generic webhook ----------------------------------------------------------------------


def hook_headers(
    body: bytes,
    *,
    secret: str = HOOK_SECRET,
    at: float = NOW,
    content_type: str = "application/json",
) -> dict[str, str]:
    stamp = str(int(at))
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Textback-Timestamp": stamp,
        "X-Textback-Signature": f"sha256={digest}",
        "Content-Type": content_type,
    }


HOOK_REPLY = {"id": "crm-981", "from": CALLER, "to": OUR, "text": "Can you come Tuesday?"}


class TestWebhookHooks:
    async def test_signed_json_reply(self, receiver: Receiver) -> None:
        """A JSON reply signed with the shared secret is taken; the answer is an empty 200."""
        body = json.dumps(HOOK_REPLY).encode()
        status, answer = await receiver.send(
            "POST", "/hooks/webhook/inbound", body, hook_headers(body)
        )
        assert (status, answer) == (200, b"")
        assert receiver.last == InboundSms(
            provider_id="crm-981", sender=CALLER, recipient=OUR, body="Can you come Tuesday?"
        )

    async def test_signed_form_reply(self, receiver: Receiver) -> None:
        """A url-encoded form is read with the same field names."""
        body = urlencode(HOOK_REPLY).encode()
        headers = hook_headers(body, content_type=FORM)
        status, _ = await receiver.send("POST", "/hooks/webhook/inbound", body, headers)
        reply = receiver.last
        assert status == 200
        assert isinstance(reply, InboundSms)
        assert reply.provider_id == "crm-981"

    async def test_configured_fields(self, receiver: Receiver, tmp_path: Path) -> None:
        """inbound_fields point at dotted paths in the JSON; numeric ids are read as text."""
        receiver.gateways = {
            "webhook": build(
                WebhookGateway,
                {
                    "url": "https://crm.example.com/api/sms",
                    "inbound_secret_file": "hook-secret",
                    "inbound_fields": {
                        "id": "data.id",
                        "from": "data.payload.from",
                        "to": "data.payload.to.0",
                        "text": "data.payload.body",
                    },
                },
                tmp_path,
            )
        }
        payload = {"data": {"id": 4417, "payload": {"from": CALLER, "to": [OUR], "body": "ok"}}}
        body = json.dumps(payload).encode()
        status, _ = await receiver.send("POST", "/hooks/webhook/inbound", body, hook_headers(body))
        assert status == 200
        assert receiver.last == InboundSms(
            provider_id="4417", sender=CALLER, recipient=OUR, body="ok"
        )

    @pytest.mark.parametrize(
        ("payload", "expected"),
        [
            (
                {"id": "m1", "status": "delivered"},
                DeliveryReceipt(provider_id="m1", delivered=True, status="delivered"),
            ),
            (
                {"id": "m1", "status": "sent"},
                DeliveryReceipt(provider_id="m1", delivered=None, status="sent"),
            ),
            (
                {"id": "m1", "status": "FAILED", "error_code": 4720},
                DeliveryReceipt(
                    provider_id="m1",
                    delivered=False,
                    status="FAILED",
                    error_code="4720",
                    kind=FailureKind.NOT_SMS_CAPABLE,
                ),
            ),
            (
                {"id": 7, "status": "undelivered", "error_code": "21610"},
                DeliveryReceipt(
                    provider_id="7",
                    delivered=False,
                    status="undelivered",
                    error_code="21610",
                    kind=FailureKind.OPTED_OUT,
                ),
            ),
            (
                {"id": "m1", "status": "failed", "error_code": "777"},
                DeliveryReceipt(
                    provider_id="m1",
                    delivered=False,
                    status="failed",
                    error_code="777",
                    kind=FailureKind.PERMANENT,
                ),
            ),
        ],
    )
    async def test_status(
        self, receiver: Receiver, payload: Mapping[str, object], expected: DeliveryReceipt
    ) -> None:
        """Statuses map through delivered/failed lists; codes through the error_codes table."""
        body = json.dumps(payload).encode()
        status, _ = await receiver.send("POST", "/hooks/webhook/status", body, hook_headers(body))
        assert (status, receiver.last) == (200, expected)

    @pytest.mark.parametrize(
        ("case", "at"),
        [("signed 301 s ago", NOW - 301), ("signed 301 s ahead", NOW + 301)],
    )
    async def test_stale(self, receiver: Receiver, case: str, at: float) -> None:
        """A correctly signed request outside the 300 s window is a 403 (a replay)."""
        body = json.dumps(HOOK_REPLY).encode()
        headers = hook_headers(body, at=at)
        status, _ = await receiver.send("POST", "/hooks/webhook/inbound", body, headers)
        assert status == 403
        assert "stale" in receiver.reason

    async def test_window_edge(self, receiver: Receiver) -> None:
        """Signed exactly 300 s ago is still inside the window."""
        body = json.dumps(HOOK_REPLY).encode()
        headers = hook_headers(body, at=NOW - 300)
        status, _ = await receiver.send("POST", "/hooks/webhook/inbound", body, headers)
        assert status == 200

    @pytest.mark.parametrize(
        "forgery",
        [
            "wrong secret",
            "body changed",
            "timestamp changed",
            "sha1 scheme",
            "bare hex",
            "no signature",
            "no timestamp",
            "timestamp not a number",
        ],
    )
    async def test_forged(self, receiver: Receiver, forgery: str) -> None:
        """Anything but the shared secret's HMAC over this timestamp and body is a 403."""
        body = json.dumps(HOOK_REPLY).encode()
        secret = "0" * 32 if forgery == "wrong secret" else HOOK_SECRET
        headers = hook_headers(body, secret=secret)
        if forgery == "body changed":
            body = body.replace(b"Tuesday", b"Wednesday")
        elif forgery == "timestamp changed":
            headers["X-Textback-Timestamp"] = str(int(NOW) - 1)
        elif forgery == "sha1 scheme":
            headers["X-Textback-Signature"] = headers["X-Textback-Signature"].replace(
                "sha256", "sha1"
            )
        elif forgery == "bare hex":
            headers["X-Textback-Signature"] = headers["X-Textback-Signature"].removeprefix(
                "sha256="
            )
        elif forgery == "no signature":
            del headers["X-Textback-Signature"]
        elif forgery == "no timestamp":
            del headers["X-Textback-Timestamp"]
        elif forgery == "timestamp not a number":
            headers["X-Textback-Timestamp"] = "1.79e9"
        status, _ = await receiver.send("POST", "/hooks/webhook/inbound", body, headers)
        assert status == 403
        assert "Tuesday" not in receiver.reason
        assert HOOK_SECRET not in receiver.reason

    async def test_no_secret_refuses_everything(self, receiver: Receiver, tmp_path: Path) -> None:
        """Without inbound_secret every callback is a 403."""
        receiver.gateways = {
            "webhook": build(WebhookGateway, {"url": "https://crm.example.com/api/sms"}, tmp_path)
        }
        body = json.dumps(HOOK_REPLY).encode()
        status, _ = await receiver.send("POST", "/hooks/webhook/inbound", body, hook_headers(body))
        assert status == 403

    @pytest.mark.parametrize(
        ("body", "what"),
        [
            (b"Can you come Tuesday?", "not JSON"),
            (b'["crm-981"]', "not a JSON object"),
            (json.dumps({k: v for k, v in HOOK_REPLY.items() if k != "from"}).encode(), "no from"),
            (json.dumps(HOOK_REPLY | {"text": 5}).encode(), "no text"),
            (json.dumps(HOOK_REPLY | {"id": True}).encode(), "no id"),
        ],
    )
    async def test_malformed(self, receiver: Receiver, body: bytes, what: str) -> None:
        """A signed body that is not the agreed shape is a 400 whose reason quotes none of it."""
        status, _ = await receiver.send("POST", "/hooks/webhook/inbound", body, hook_headers(body))
        assert status == 400
        assert what in receiver.reason
        assert "Tuesday" not in receiver.reason

    def test_config_problems(self, tmp_path: Path) -> None:
        """Bad callback keys are each named with a fix; the secret is never shown."""
        (tmp_path / "weak").write_text("hunter2\n")
        problems = problems_of(
            WebhookGateway,
            {
                "url": "https://crm.example.com/api/sms",
                "inbound_secret_file": "weak",
                "inbound_fields": {"body": "text"},
                "status_fields": "status",
                "delivered_statuses": ["delivered", "sent"],
                "failed_statuses": ["Sent"],
                "error_codes": {"landline": ["30006"], "opted_out": "21610"},
                "provider_confirms_stop": 1,
            },
            tmp_path,
        )
        assert problems == [
            "gateway.inbound_secret_file: the shared secret for signed callbacks is shorter than "
            "24 characters — e.g. the output of openssl rand -hex 24",
            "gateway.inbound_fields: body: not a field here — fields: id, from, to, text",
            'gateway.status_fields: expected a table, got "status" — e.g. status_fields = '
            '{ id = "id", status = "status", error_code = "error_code" }',
            'gateway.failed_statuses: "sent" also in delivered_statuses — a status is one or '
            "the other",
            "gateway.error_codes: landline: not a kind — kinds: transient, opted_out, "
            "not_sms_capable, config, filtered, permanent",
            "gateway.error_codes: opted_out: expected an array of codes — error_codes = "
            '{ not_sms_capable = ["30006"], opted_out = ["21610"] }',
            "gateway.provider_confirms_stop: expected true or false, got 1 — true when the "
            "provider itself answers STOP with a confirmation text",
        ]


# -- the console ------------------------------------------------------------------------------


def console_url(what: str, token: str = CONSOLE_TOKEN) -> str:
    return f"/hooks/console/{what}?" + urlencode({"token": token})


class TestConsoleHooks:
    async def test_reply(self, receiver: Receiver) -> None:
        """A JSON reply with the token in the URL is taken as is."""
        body = json.dumps({"id": "demo-1", "from": CALLER, "to": OUR, "text": "STOP"}).encode()
        status, _ = await receiver.send(
            "POST", console_url("inbound"), body, {"Content-Type": "application/json"}
        )
        assert status == 200
        assert receiver.last == InboundSms(
            provider_id="demo-1", sender=CALLER, recipient=OUR, body="STOP"
        )

    @pytest.mark.parametrize(
        ("payload", "expected"),
        [
            (
                {"id": "console-1", "status": "delivered"},
                DeliveryReceipt(provider_id="console-1", delivered=True, status="delivered"),
            ),
            (
                {"id": "console-1", "status": "failed"},
                DeliveryReceipt(
                    provider_id="console-1",
                    delivered=False,
                    status="failed",
                    kind=FailureKind.PERMANENT,
                ),
            ),
            (
                {"id": "console-2", "status": "undelivered", "error_code": "30006"}
                | {"kind": "not_sms_capable"},
                DeliveryReceipt(
                    provider_id="console-2",
                    delivered=False,
                    status="undelivered",
                    error_code="30006",
                    kind=FailureKind.NOT_SMS_CAPABLE,
                ),
            ),
        ],
    )
    async def test_status(
        self, receiver: Receiver, payload: Mapping[str, object], expected: DeliveryReceipt
    ) -> None:
        """A played receipt, failures optionally of a given kind."""
        status, _ = await receiver.send("POST", console_url("status"), json.dumps(payload).encode())
        assert (status, receiver.last) == (200, expected)

    async def test_wrong_token(self, receiver: Receiver) -> None:
        """Another token is a 403."""
        body = json.dumps({"id": "x", "from": CALLER, "to": OUR, "text": "hi"}).encode()
        status, _ = await receiver.send("POST", console_url("inbound", "x" * 32), body)
        assert status == 403

    async def test_unconfigured_console_refuses(self, receiver: Receiver, tmp_path: Path) -> None:
        """The demo's console without a token takes no callbacks at all, even from loopback."""
        receiver.gateways = {"console": build(ConsoleGateway, {}, tmp_path)}
        body = json.dumps({"id": "x", "from": CALLER, "to": OUR, "text": "hi"}).encode()
        status, _ = await receiver.send("POST", console_url("inbound"), body)
        assert status == 403

    @pytest.mark.parametrize(
        ("what", "body", "reason"),
        [
            ("inbound", b"{", "not JSON"),
            ("inbound", b'{"id": "x", "from": "+1", "to": "+2"}', "no text"),
            ("status", b'{"id": "x"}', "no status"),
            ("status", b'{"id": "x", "status": "failed", "kind": "broken"}', "not a failure kind"),
        ],
    )
    async def test_malformed(self, receiver: Receiver, what: str, body: bytes, reason: str) -> None:
        """A body not of the documented shape is a 400."""
        status, _ = await receiver.send("POST", console_url(what), body)
        assert status == 400
        assert reason in receiver.reason

    def test_keys(self, tmp_path: Path) -> None:
        """Sender keys are still refused with "remove it"; the token key is offered for a typo."""
        problems = problems_of(ConsoleGateway, {"from": OUR, "webhook_tokn_env": "X"}, tmp_path)
        assert problems == [
            "gateway.from: unknown key — remove it",
            'gateway.webhook_tokn_env: unknown key — did you mean "webhook_token_env"?',
        ]
