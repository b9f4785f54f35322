"""Replies and delivery receipts for Twilio, SignalWire, Telnyx and Vonage: verify, then parse.

Each callback is built the way its provider builds it — signatures computed here by
small reference implementations written from the providers' documentation (and
checked against published vectors) — and most travel one real HTTP hop over
127.0.0.1 so the adapter sees headers and body bytes exactly as aiohttp hands them on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from textback.errors import ConfigError
from textback.gateways.base import (
    BadWebhook,
    DeliveryReceipt,
    FailureKind,
    InboundSms,
    WebhookCapable,
    WebhookReply,
    WebhookRequest,
)
from textback.gateways.telnyx import TelnyxGateway
from textback.gateways.twilio import SignalWireGateway, TwilioGateway
from textback.gateways.vonage import VonageGateway, vonage_signature
from textback.web.hooks import webhook_capable

TESTS: Final = Path(__file__).parent
VECTORS: Final = json.loads((TESTS / "contracts" / "twilio-signature-vectors.json").read_text())
PUBLIC: Final = "https://hooks.example.com"
NOW: Final = 1_760_000_000.0
CALLER: Final = "+14155550111"
OUR_NUMBER: Final = "+14155550100"
SECRET_ENV: Final = "TEXTBACK_TEST_HOOK_SECRET"
SIGNING_ENV: Final = "TEXTBACK_TEST_HOOK_SIGNING"
TOKEN: Final = "twilio-auth-token"
SIGNING: Final = "signing-key-value"
PROJECT: Final = "12345678-90ab-cdef-1234-567890abcdef"
SID: Final = "SM" + "1f" * 16
REPLY_TEXT: Final = "Stop texting me, thanks & bye — café 100% + more"


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, TOKEN)
    monkeypatch.setenv(SIGNING_ENV, SIGNING)


class Loopback:
    """One real HTTP hop: what a provider's request looks like once aiohttp received it."""

    def __init__(self) -> None:
        self.received: list[WebhookRequest] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    async def _record(self, request: web.Request) -> web.Response:
        self.received.append(
            WebhookRequest(
                method=request.method,
                url=PUBLIC + request.path_qs,
                headers=request.headers,
                body=await request.read(),
                now=NOW,
            )
        )
        return web.Response()

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._record)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def send(
        self, method: str, path_qs: str, *, body: bytes = b"", headers: Mapping[str, str]
    ) -> WebhookRequest:
        assert self._session is not None
        # Sent byte for byte as given: the provider signed this exact URL.
        url = URL(f"http://127.0.0.1:{self.port}{path_qs}", encoded=True)
        async with self._session.request(method, url, data=body, headers=dict(headers)) as reply:
            assert reply.status == 200
        return self.received.pop()


@pytest.fixture
async def hop() -> AsyncIterator[Loopback]:
    async with Loopback() as loopback:
        yield loopback


def direct(
    url: str, body: bytes, headers: Mapping[str, str], *, method: str = "POST", now: float = NOW
) -> WebhookRequest:
    """A request handed straight to the adapter (headers case-insensitive, as aiohttp's are)."""
    return WebhookRequest(
        method=method,
        url=url,
        headers=CIMultiDictProxy(CIMultiDict(headers)),
        body=body,
        now=now,
    )


def rejected(check: object, request: WebhookRequest) -> BadWebhook:
    assert callable(check)
    with pytest.raises(BadWebhook) as caught:
        check(request)
    return caught.value


FORM: Final = {"Content-Type": "application/x-www-form-urlencoded"}


# --- Twilio and SignalWire ---------------------------------------------------------------------


def twilio_reference(key: str, url: str, pairs: Sequence[tuple[str, str]]) -> str:
    """Twilio's documented scheme: URL, then name+value of each pair sorted, HMAC-SHA1, base64."""
    text = url + "".join(name + value for name, value in sorted(set(pairs)))
    return base64.b64encode(hmac.new(key.encode(), text.encode(), hashlib.sha1).digest()).decode()


def twilio(**extra: object) -> TwilioGateway:
    table: dict[str, object] = {
        "account_sid": "AC" + "0" * 32,
        "auth_token_env": SECRET_ENV,
        "from": OUR_NUMBER,
    }
    table.update(extra)
    table = {key: value for key, value in table.items() if value is not None}
    return TwilioGateway.from_config(table, path="gateway", base=TESTS, require_secrets=True)


def signalwire(**extra: object) -> SignalWireGateway:
    table: dict[str, object] = {
        "project_id": PROJECT,
        "api_token_env": SECRET_ENV,
        "from": OUR_NUMBER,
        "space": "example",
    }
    table.update(extra)
    return SignalWireGateway.from_config(table, path="gateway", base=TESTS, require_secrets=True)


def inbound_pairs(body: str = REPLY_TEXT) -> list[tuple[str, str]]:
    return [
        ("ToCountry", "US"),
        ("SmsMessageSid", SID),
        ("NumMedia", "0"),
        ("SmsSid", SID),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", OUR_NUMBER),
        ("NumSegments", "1"),
        ("MessageSid", SID),
        ("AccountSid", "AC" + "0" * 32),
        ("From", CALLER),
        ("ApiVersion", "2010-04-01"),
    ]


async def twilio_post(
    hop: Loopback,
    path: str,
    pairs: Sequence[tuple[str, str]],
    *,
    key: str = TOKEN,
    signed_url: str | None = None,
    header: str = "X-Twilio-Signature",
) -> WebhookRequest:
    signature = twilio_reference(key, signed_url or PUBLIC + path, pairs)
    return await hop.send(
        "POST", path, body=urlencode(pairs).encode(), headers={**FORM, header: signature}
    )


def vector_request(case: Mapping[str, object]) -> WebhookRequest:
    url = case["url"]
    assert isinstance(url, str)
    if "body" in case:
        body = str(case["body"]).encode()
        content_type = "application/json"
    else:
        params = case["params"]
        assert isinstance(params, list)
        body = urlencode([tuple(pair) for pair in params]).encode()
        content_type = FORM["Content-Type"]
    return direct(
        url, body, {"Content-Type": content_type, "X-Twilio-Signature": str(case["signature"])}
    )


class TestTwilioSignature:
    @pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
    def test_published_vectors(
        self, monkeypatch: pytest.MonkeyPatch, case: dict[str, object]
    ) -> None:
        """Every published vector verifies when valid and is refused with 403 when not."""
        monkeypatch.setenv(SECRET_ENV, VECTORS["auth_token"])
        gateway = twilio()
        request = vector_request(case)
        if case["valid"]:
            gateway.verify(request)
        else:
            assert rejected(gateway.verify, request).status == 403

    def test_vectors_cover_valid_and_invalid(self) -> None:
        """The contract file holds both kinds of case, so the test above can fail both ways."""
        assert {case["valid"] for case in VECTORS["cases"]} == {True, False}

    async def test_reply_verifies_and_parses(self, hop: Loopback) -> None:
        """A signed inbound form POST verifies and parses into the texter's reply."""
        gateway = twilio()
        request = await twilio_post(hop, "/hooks/twilio/inbound", inbound_pairs())
        gateway.verify(request)
        assert gateway.parse_inbound(request) == InboundSms(
            provider_id=SID, sender=CALLER, recipient=OUR_NUMBER, body=REPLY_TEXT
        )

    @pytest.mark.parametrize(
        ("received", "signed"),
        [
            ("https://hooks.example.com/hooks/twilio/inbound",
             "https://hooks.example.com:443/hooks/twilio/inbound"),
            ("https://hooks.example.com:443/hooks/twilio/inbound",
             "https://hooks.example.com/hooks/twilio/inbound"),
            ("http://hooks.example.com/hooks/twilio/inbound",
             "http://hooks.example.com:80/hooks/twilio/inbound"),
            ("http://hooks.example.com:80/hooks/twilio/inbound",
             "http://hooks.example.com/hooks/twilio/inbound"),
        ],
    )  # fmt: skip
    def test_both_port_forms(self, received: str, signed: str) -> None:
        """A signature over the URL with the default port verifies without it, and the reverse."""
        pairs = inbound_pairs()
        request = direct(
            received,
            urlencode(pairs).encode(),
            {**FORM, "X-Twilio-Signature": twilio_reference(TOKEN, signed, pairs)},
        )
        twilio().verify(request)

    def test_another_port_is_not_the_default(self) -> None:
        """A signature over :8443 does not verify a request for the port-less URL."""
        pairs = inbound_pairs()
        request = direct(
            PUBLIC + "/hooks/twilio/inbound",
            urlencode(pairs).encode(),
            {**FORM, "X-Twilio-Signature": twilio_reference(TOKEN, PUBLIC + ":8443/x", pairs)},
        )
        assert rejected(twilio().verify, request).status == 403

    async def test_get_callback_signs_the_query(self, hop: Loopback) -> None:
        """A GET callback is signed over the URL with its query, and parsed from it."""
        path = "/hooks/twilio/inbound?" + urlencode(inbound_pairs())
        signature = twilio_reference(TOKEN, PUBLIC + path, [])
        request = await hop.send("GET", path, headers={"X-Twilio-Signature": signature})
        gateway = twilio()
        gateway.verify(request)
        parsed = gateway.parse_inbound(request)
        assert parsed is not None
        assert parsed.body == REPLY_TEXT

    async def test_forgeries_are_refused(self, hop: Loopback) -> None:
        """Wrong key, a changed parameter, another URL or no header: 403 every time."""
        gateway = twilio()
        path = "/hooks/twilio/inbound"
        pairs = inbound_pairs()
        wrong_key = await twilio_post(hop, path, pairs, key="not-the-token")
        other_url = await twilio_post(hop, path, pairs, signed_url=PUBLIC + "/elsewhere")
        signature = twilio_reference(TOKEN, PUBLIC + path, pairs)
        tampered = await hop.send(
            "POST",
            path,
            body=urlencode(inbound_pairs("START")).encode(),
            headers={**FORM, "X-Twilio-Signature": signature},
        )
        unsigned = await hop.send("POST", path, body=urlencode(pairs).encode(), headers=FORM)
        for request in (wrong_key, other_url, tampered, unsigned):
            assert rejected(gateway.verify, request).status == 403
        assert rejected(gateway.verify, unsigned).reason == "no X-Twilio-Signature header"

    def test_no_token_refuses_everything(self) -> None:
        """Built without its token (check-config), the adapter refuses every callback."""
        gateway = TwilioGateway.from_config(
            {"account_sid": "AC" + "0" * 32, "from": OUR_NUMBER},
            path="gateway",
            base=TESTS,
            require_secrets=False,
        )
        pairs = inbound_pairs()
        path = PUBLIC + "/hooks/twilio/inbound"
        request = direct(
            path,
            urlencode(pairs).encode(),
            {"X-Twilio-Signature": twilio_reference("", path, pairs)},
        )
        assert rejected(gateway.verify, request).status == 403

    def test_json_body_signed_with_its_hash(self) -> None:
        """A JSON body verifies through bodySHA256, which must match the body."""
        body = json.dumps({"MessageSid": SID, "MessageStatus": "delivered"}).encode()
        url = f"{PUBLIC}/hooks/twilio/status?bodySHA256={hashlib.sha256(body).hexdigest()}"
        headers = {"X-Twilio-Signature": twilio_reference(TOKEN, url, [])}
        gateway = twilio()
        request = direct(url, body, headers)
        gateway.verify(request)
        assert gateway.parse_status(request) == DeliveryReceipt(
            provider_id=SID, delivered=True, status="delivered"
        )
        swapped = direct(url, body.replace(b"delivered", b"failed"), headers)
        assert rejected(gateway.verify, swapped).reason == "body does not match bodySHA256"

    def test_malformed_bodies_are_400(self) -> None:
        """A signed but broken callback is a 400 whose reason names no number and no text."""
        gateway = twilio()
        url = PUBLIC + "/hooks/twilio/inbound"
        no_from = [pair for pair in inbound_pairs() if pair[0] != "From"]
        request = direct(
            url,
            urlencode(no_from).encode(),
            {"X-Twilio-Signature": twilio_reference(TOKEN, url, no_from)},
        )
        gateway.verify(request)
        problem = rejected(gateway.parse_inbound, request)
        assert (problem.status, problem.reason) == (400, "no From")
        no_sid = [(k, v) for k, v in inbound_pairs() if k not in ("MessageSid", "SmsSid")]
        assert (
            rejected(gateway.parse_inbound, direct(url, urlencode(no_sid).encode(), {})).status
            == 400
        )
        not_utf8 = direct(url, b"Body=%FF%FE&From=x", {"X-Twilio-Signature": "x"})
        assert rejected(gateway.verify, not_utf8).status == 400
        for problem in (
            rejected(gateway.parse_inbound, request),
            rejected(gateway.verify, not_utf8),
        ):
            assert CALLER not in problem.reason
            assert "Stop" not in problem.reason

    def test_reply_is_empty_twiml(self) -> None:
        """Twilio is answered with an empty TwiML document, so it sends nothing back itself."""
        assert twilio().webhook_reply() == WebhookReply(
            200, "text/xml", b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
        )


def status_pairs(status: str, code: str = "") -> list[tuple[str, str]]:
    pairs = [
        ("SmsSid", SID),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", CALLER),
        ("MessageSid", SID),
        ("AccountSid", "AC" + "0" * 32),
        ("From", OUR_NUMBER),
        ("ApiVersion", "2010-04-01"),
    ]
    return [*pairs, ("ErrorCode", code)] if code else pairs


class TestTwilioStatus:
    @pytest.mark.parametrize(
        ("status", "code", "delivered", "kind"),
        [
            ("delivered", "", True, None),
            ("undelivered", "30006", False, FailureKind.NOT_SMS_CAPABLE),
            ("undelivered", "30003", False, FailureKind.TRANSIENT),
            ("failed", "30007", False, FailureKind.FILTERED),
            ("failed", "21610", False, FailureKind.OPTED_OUT),
            ("failed", "39999", False, FailureKind.PERMANENT),
            ("queued", "", None, None),
            ("sending", "", None, None),
            ("sent", "", None, None),
            ("accepted", "", None, None),
        ],
    )
    async def test_receipts(
        self,
        hop: Loopback,
        status: str,
        code: str,
        delivered: bool | None,
        kind: FailureKind | None,
    ) -> None:
        """MessageStatus and ErrorCode make a receipt: delivered, failed with a kind, or pending."""
        gateway = twilio()
        request = await twilio_post(hop, "/hooks/twilio/status", status_pairs(status, code))
        gateway.verify(request)
        assert gateway.parse_status(request) == DeliveryReceipt(
            provider_id=SID, delivered=delivered, status=status, error_code=code, kind=kind
        )

    async def test_crossed_urls_carry_nothing(self, hop: Loopback) -> None:
        """A receipt at the inbound URL is no reply, and a reply at the status URL no receipt."""
        gateway = twilio()
        receipt = await twilio_post(hop, "/hooks/twilio/inbound", status_pairs("sent"))
        reply = await twilio_post(hop, "/hooks/twilio/status", inbound_pairs())
        assert gateway.parse_inbound(receipt) is None
        assert gateway.parse_status(reply) is None

    def test_status_without_status_is_400(self) -> None:
        """A status callback with no MessageStatus is malformed."""
        pairs = [(k, v) for k, v in status_pairs("sent") if not k.endswith("Status")]
        request = direct(PUBLIC + "/hooks/twilio/status", urlencode(pairs).encode(), FORM)
        assert rejected(twilio().parse_status, request).status == 400


class TestSignalWire:
    async def test_signing_key_in_signalwire_header(self, hop: Loopback) -> None:
        """SignalWire signs with the Signing Key in X-SignalWire-Signature."""
        gateway = signalwire(signing_key_env=SIGNING_ENV)
        request = await twilio_post(
            hop, "/hooks/signalwire/inbound", inbound_pairs(), key=SIGNING,
            header="X-SignalWire-Signature",
        )  # fmt: skip
        gateway.verify(request)
        assert gateway.parse_inbound(request) == InboundSms(
            provider_id=SID, sender=CALLER, recipient=OUR_NUMBER, body=REPLY_TEXT
        )

    async def test_twilio_header_is_accepted(self, hop: Loopback) -> None:
        """The Twilio-compatible header verifies too."""
        gateway = signalwire(signing_key_env=SIGNING_ENV)
        request = await twilio_post(hop, "/hooks/signalwire/inbound", inbound_pairs(), key=SIGNING)
        gateway.verify(request)

    async def test_api_token_is_not_the_signing_key(self, hop: Loopback) -> None:
        """With a Signing Key configured, a signature made with the API token is refused."""
        gateway = signalwire(signing_key_env=SIGNING_ENV)
        request = await twilio_post(
            hop, "/hooks/signalwire/inbound", inbound_pairs(), key=TOKEN,
            header="X-SignalWire-Signature",
        )  # fmt: skip
        assert rejected(gateway.verify, request).status == 403

    async def test_without_signing_key_the_api_token_signs(self, hop: Loopback) -> None:
        """No signing_key: callbacks are checked with the API token."""
        request = await twilio_post(
            hop, "/hooks/signalwire/status", status_pairs("delivered"), key=TOKEN,
            header="X-SignalWire-Signature",
        )  # fmt: skip
        signalwire().verify(request)

    def test_signing_key_env_must_be_set(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A signing_key_env naming an unset variable is a config problem on that key."""
        monkeypatch.delenv(SIGNING_ENV)
        with pytest.raises(ConfigError) as caught:
            signalwire(signing_key_env=SIGNING_ENV)
        (line,) = caught.value.problems
        assert line.startswith("gateway.signing_key_env: environment variable")


class TestTwilioConfig:
    def test_api_key_users_name_the_auth_token_for_webhooks(self) -> None:
        """With an API key, webhook_auth_token is what checks signatures."""
        base: dict[str, object] = {
            "api_key_sid": "SK" + "0" * 32,
            "api_key_secret_env": SIGNING_ENV,
            "auth_token_env": None,
        }
        gateway = twilio(**base, webhook_auth_token_env=SECRET_ENV)
        pairs = inbound_pairs()
        url = PUBLIC + "/hooks/twilio/inbound"
        request = direct(
            url,
            urlencode(pairs).encode(),
            {"X-Twilio-Signature": twilio_reference(TOKEN, url, pairs)},
        )
        gateway.verify(request)
        without = twilio(**base)
        assert rejected(without.verify, request).reason == (
            "no auth token configured to check signatures"
        )

    def test_webhook_auth_token_only_with_api_key(self) -> None:
        """webhook_auth_token beside auth_token is refused: the auth token already signs."""
        with pytest.raises(ConfigError) as caught:
            twilio(webhook_auth_token_env=SIGNING_ENV)
        (line,) = caught.value.problems
        assert line.startswith("gateway.webhook_auth_token_env: needed only with api_key_sid")

    def test_provider_confirms_stop(self) -> None:
        """Twilio confirms STOP itself unless told otherwise; SignalWire does not."""
        assert twilio().provider_confirms_stop is True
        assert twilio(provider_confirms_stop=False).provider_confirms_stop is False
        assert signalwire().provider_confirms_stop is False
        assert signalwire(provider_confirms_stop=True).provider_confirms_stop is True
        with pytest.raises(ConfigError) as caught:
            twilio(provider_confirms_stop="yes")
        assert caught.value.problems[0].startswith(
            'gateway.provider_confirms_stop: expected true or false, got "yes"'
        )


# --- Telnyx ------------------------------------------------------------------------------------

TELNYX_ID: Final = "b0c7e8cb-6227-4c74-9f32-c7f80c30934b"


class TelnyxSigner:
    """Telnyx's side: an Ed25519 key pair, signing ``f"{timestamp}|{body}"``."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_b64 = base64.b64encode(raw).decode()

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        signature = self.key.sign(f"{timestamp}|".encode() + body)
        return {
            "Content-Type": "application/json",
            "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
            "telnyx-timestamp": str(timestamp),
        }


@pytest.fixture
def signer() -> TelnyxSigner:
    return TelnyxSigner()


def telnyx(signer: TelnyxSigner | None, **extra: object) -> TelnyxGateway:
    table: dict[str, object] = {"api_key_env": SECRET_ENV, "from": OUR_NUMBER}
    if signer is not None:
        table["public_key"] = signer.public_b64
    table.update(extra)
    return TelnyxGateway.from_config(table, path="gateway", base=TESTS, require_secrets=True)


def telnyx_event(event_type: str, payload: Mapping[str, object]) -> bytes:
    return json.dumps(
        {
            "data": {
                "event_type": event_type,
                "id": "4ee8c3a6-4995-4309-a3c6-38e3db9ea4be",
                "occurred_at": "2025-10-09T12:00:00.000+00:00",
                "payload": payload,
                "record_type": "event",
            },
            "meta": {"attempt": 1, "delivered_to": PUBLIC + "/hooks/telnyx/inbound"},
        }
    ).encode()


def received_payload(**changes: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "direction": "inbound",
        "encoding": "GSM-7",
        "from": {"carrier": "T-Mobile USA", "line_type": "Wireless", "phone_number": CALLER},
        "id": TELNYX_ID,
        "media": [],
        "parts": 1,
        "record_type": "message",
        "text": REPLY_TEXT,
        "to": [{"carrier": "Telnyx", "line_type": "Wireless", "phone_number": OUR_NUMBER}],
        "type": "SMS",
    }
    payload.update(changes)
    return payload


def finalized_payload(status: str, code: str | None = None) -> dict[str, object]:
    errors = [{"code": code, "title": "Delivery failed", "detail": "..."}] if code else []
    return {
        "id": TELNYX_ID,
        "direction": "outbound",
        "from": {"phone_number": OUR_NUMBER},
        "to": [{"phone_number": CALLER, "status": status, "carrier": "T-Mobile USA"}],
        "text": "Sorry we missed your call.",
        "errors": errors,
        "type": "SMS",
    }


class TestTelnyx:
    async def test_reply_verifies_and_parses(self, hop: Loopback, signer: TelnyxSigner) -> None:
        """A signed message.received event is the texter's reply; it is no receipt."""
        gateway = telnyx(signer)
        body = telnyx_event("message.received", received_payload())
        request = await hop.send(
            "POST", "/hooks/telnyx/inbound", body=body, headers=signer.headers(body, int(NOW))
        )
        gateway.verify(request)
        assert gateway.parse_inbound(request) == InboundSms(
            provider_id=TELNYX_ID, sender=CALLER, recipient=OUR_NUMBER, body=REPLY_TEXT
        )
        assert gateway.parse_status(request) is None
        assert gateway.webhook_reply() == WebhookReply()

    @pytest.mark.parametrize(
        ("event", "status", "code", "delivered", "kind"),
        [
            ("message.finalized", "delivered", None, True, None),
            ("message.finalized", "delivery_failed", "40001", False, FailureKind.NOT_SMS_CAPABLE),
            ("message.finalized", "sending_failed", "40300", False, FailureKind.OPTED_OUT),
            ("message.finalized", "delivery_failed", "40002", False, FailureKind.FILTERED),
            ("message.finalized", "delivery_failed", "99999", False, FailureKind.PERMANENT),
            ("message.finalized", "delivery_unconfirmed", None, None, None),
            ("message.sent", "sent", None, None, None),
        ],
    )
    async def test_receipts(
        self,
        hop: Loopback,
        signer: TelnyxSigner,
        event: str,
        status: str,
        code: str | None,
        delivered: bool | None,
        kind: FailureKind | None,
    ) -> None:
        """to[0].status and errors[0].code become a receipt; a status event is no reply."""
        gateway = telnyx(signer)
        body = telnyx_event(event, finalized_payload(status, code))
        request = await hop.send(
            "POST", "/hooks/telnyx/status", body=body, headers=signer.headers(body, int(NOW) - 5)
        )
        gateway.verify(request)
        assert gateway.parse_status(request) == DeliveryReceipt(
            provider_id=TELNYX_ID,
            delivered=delivered,
            status=status,
            error_code=code or "",
            kind=kind,
        )
        assert gateway.parse_inbound(request) is None

    def test_timestamp_window(self, signer: TelnyxSigner) -> None:
        """Five minutes either way verifies; a second more is stale and refused."""
        gateway = telnyx(signer)
        body = telnyx_event("message.received", received_payload())
        url = PUBLIC + "/hooks/telnyx/inbound"
        for skew in (-300, 300):
            gateway.verify(direct(url, body, signer.headers(body, int(NOW) + skew)))
        for skew in (-301, 301):
            stale = direct(url, body, signer.headers(body, int(NOW) + skew))
            assert rejected(gateway.verify, stale).status == 403

    def test_forgeries_are_refused(self, signer: TelnyxSigner) -> None:
        """Another key, a changed body or timestamp, a missing or garbled header: 403."""
        gateway = telnyx(signer)
        url = PUBLIC + "/hooks/telnyx/inbound"
        body = telnyx_event("message.received", received_payload())
        good = signer.headers(body, int(NOW))
        forged = TelnyxSigner().headers(body, int(NOW))
        changed = telnyx_event("message.received", received_payload(text="START"))
        retimed = {**good, "telnyx-timestamp": str(int(NOW) - 1)}
        garbled = {**good, "telnyx-signature-ed25519": "not base64!"}
        cases = [
            direct(url, body, forged),
            direct(url, changed, good),
            direct(url, body, retimed),
            direct(url, body, garbled),
            direct(url, body, {"telnyx-timestamp": str(int(NOW))}),
            direct(url, body, {k: v for k, v in good.items() if k != "telnyx-timestamp"}),
            direct(url, body, {**good, "telnyx-timestamp": "1e9"}),
        ]
        for request in cases:
            assert rejected(gateway.verify, request).status == 403
        assert rejected(telnyx(None).verify, direct(url, body, good)).status == 403

    def test_malformed_events_are_400(self, signer: TelnyxSigner) -> None:
        """Not JSON, no data, or a reply without a sender: 400, naming no number."""
        gateway = telnyx(signer)
        url = PUBLIC + "/hooks/telnyx/inbound"
        no_sender = received_payload()
        del no_sender["from"]
        bodies = [
            b"not json",
            b'{"meta": {}}',
            json.dumps({"data": {"event_type": "message.received", "payload": []}}).encode(),
            telnyx_event("message.received", no_sender),
            telnyx_event("message.received", received_payload(to=[])),
        ]
        reasons = []
        for body in bodies:
            request = direct(url, body, signer.headers(body, int(NOW)))
            gateway.verify(request)  # signed correctly: only the content is wrong
            problem = rejected(gateway.parse_inbound, request)
            assert problem.status == 400
            reasons.append(problem.reason)
        assert reasons[3:] == ["no payload.from.phone_number", "no payload.to[0].phone_number"]
        body = telnyx_event(
            "message.finalized", {"id": TELNYX_ID, "to": [{"phone_number": CALLER}]}
        )
        problem = rejected(gateway.parse_status, direct(url, body, {}))
        assert (problem.status, problem.reason) == (400, "no payload.to[0].status")
        assert all(CALLER not in reason for reason in reasons)

    def test_public_key_config(self, signer: TelnyxSigner) -> None:
        """public_key must be base64 of 32 bytes; provider_confirms_stop defaults to true."""
        assert telnyx(signer).provider_confirms_stop is True
        assert telnyx(signer, provider_confirms_stop=False).provider_confirms_stop is False
        for value, problem in [
            (base64.b64encode(b"x" * 16).decode(), "decodes to 16 bytes, not 32"),
            ("not base64 at all!", "not base64"),
        ]:
            with pytest.raises(ConfigError) as caught:
                telnyx(None, public_key=value)
            (line,) = caught.value.problems
            assert line.startswith(f"gateway.public_key: {problem} — the public key from")


# --- Vonage ------------------------------------------------------------------------------------

VONAGE_ID: Final = "0A0000000123ABCD1"


def vonage_reference(secret: str, method: str, params: Mapping[str, str]) -> str:
    """Vonage's documented scheme: ``&name=value`` sorted ("&" and "=" in values as "_")."""
    text = "".join(
        "&" + name + "=" + value.replace("&", "_").replace("=", "_")
        for name, value in sorted(params.items())
        if name != "sig"
    )
    if method == "md5hash":
        return hashlib.md5((text + secret).encode()).hexdigest()
    return hmac.new(secret.encode(), text.encode(), getattr(hashlib, method)).hexdigest()


def vonage(method: str | None = "md5hash", **extra: object) -> VonageGateway:
    table: dict[str, object] = {
        "api_key": "a1b2c3d4",
        "api_secret_env": SECRET_ENV,
        "from": OUR_NUMBER,
    }
    if method is not None:
        table["signature_secret_env"] = SIGNING_ENV
        table["signature_method"] = method
    table.update(extra)
    return VonageGateway.from_config(table, path="gateway", base=TESTS, require_secrets=True)


def signed(
    params: Mapping[str, str], *, method: str = "md5hash", secret: str = SIGNING, at: float = NOW
) -> dict[str, str]:
    stamped = {**params, "timestamp": str(int(at)), "nonce": "6d1f3a5e-0c4b-4b8e-9f0a-2a3b4c5d6e7f"}
    return {**stamped, "sig": vonage_reference(secret, method, stamped)}


def inbound_params(text: str = REPLY_TEXT) -> dict[str, str]:
    return {
        "msisdn": CALLER.removeprefix("+"),
        "to": OUR_NUMBER.removeprefix("+"),
        "messageId": VONAGE_ID,
        "text": text,
        "type": "unicode",
        "keyword": text.split()[0].upper(),
        "api-key": "a1b2c3d4",
        "message-timestamp": "2025-10-09 12:00:00",
    }


def dlr_params(status: str, code: str = "0") -> dict[str, str]:
    return {
        "msisdn": CALLER.removeprefix("+"),
        "to": OUR_NUMBER.removeprefix("+"),
        "network-code": "310260",
        "messageId": VONAGE_ID,
        "price": "0.00750000",
        "status": status,
        "scts": "2510091200",
        "err-code": code,
        "api-key": "a1b2c3d4",
        "client-ref": "textback-7",
        "message-timestamp": "2025-10-09 12:00:05",
    }


class TestVonage:
    def test_md5hash_matches_the_published_vector(self) -> None:
        """The adapter's md5hash signature equals the one in Vonage's own SDK tests."""
        params = {"a": "1", "b": "2", "timestamp": "1461605396"}
        assert vonage_signature("secret", "md5hash", params) == "6af838ef94998832dbfc29020b564830"
        assert vonage_reference("secret", "md5hash", params) == "6af838ef94998832dbfc29020b564830"

    async def test_signed_get_reply(self, hop: Loopback) -> None:
        """A signed GET inbound message verifies and parses, numbers back in E.164."""
        gateway = vonage()
        query = urlencode(signed(inbound_params()))
        request = await hop.send("GET", f"/hooks/vonage/inbound?{query}", headers={})
        gateway.verify(request)
        assert gateway.parse_inbound(request) == InboundSms(
            provider_id=VONAGE_ID, sender=CALLER, recipient=OUR_NUMBER, body=REPLY_TEXT
        )
        assert gateway.webhook_reply() == WebhookReply()

    @pytest.mark.parametrize("method", ["md5hash", "md5", "sha1", "sha256", "sha512"])
    async def test_signed_post_form_each_method(self, hop: Loopback, method: str) -> None:
        """A POST form signed with each of Vonage's methods verifies with that method set."""
        gateway = vonage(method)
        body = urlencode(signed(inbound_params(), method=method)).encode()
        request = await hop.send("POST", "/hooks/vonage/inbound", body=body, headers=FORM)
        gateway.verify(request)
        parsed = gateway.parse_inbound(request)
        assert parsed is not None
        assert parsed.body == REPLY_TEXT

    async def test_signed_post_json(self, hop: Loopback) -> None:
        """A POST-JSON callback is signed over its fields like a form."""
        gateway = vonage("sha256")
        body = json.dumps(signed(dlr_params("delivered"), method="sha256")).encode()
        request = await hop.send(
            "POST", "/hooks/vonage/status", body=body, headers={"Content-Type": "application/json"}
        )
        gateway.verify(request)
        assert gateway.parse_status(request) == DeliveryReceipt(
            provider_id=VONAGE_ID, delivered=True, status="delivered"
        )

    @pytest.mark.parametrize(
        ("status", "code", "delivered", "kind"),
        [
            ("delivered", "0", True, None),
            ("failed", "3", False, FailureKind.NOT_SMS_CAPABLE),
            ("rejected", "6", False, FailureKind.FILTERED),
            ("failed", "7", False, FailureKind.TRANSIENT),
            ("expired", "0", False, FailureKind.PERMANENT),
            ("accepted", "0", None, None),
            ("buffered", "0", None, None),
            ("unknown", "1", None, None),
        ],
    )
    async def test_receipts(
        self,
        hop: Loopback,
        status: str,
        code: str,
        delivered: bool | None,
        kind: FailureKind | None,
    ) -> None:
        """status and err-code become a receipt; err-code 0 means no error."""
        gateway = vonage()
        query = urlencode(signed(dlr_params(status, code)))
        request = await hop.send("GET", f"/hooks/vonage/status?{query}", headers={})
        gateway.verify(request)
        assert gateway.parse_status(request) == DeliveryReceipt(
            provider_id=VONAGE_ID,
            delivered=delivered,
            status=status,
            error_code="" if code == "0" else code,
            kind=kind,
        )
        assert gateway.parse_inbound(request) is None

    def test_forgeries_are_refused(self) -> None:
        """Wrong secret or method, a changed text, no sig, a stale or missing timestamp: 403."""
        gateway = vonage()
        url = PUBLIC + "/hooks/vonage/inbound?"
        good = signed(inbound_params())
        no_sig = {k: v for k, v in good.items() if k != "sig"}
        no_time = {k: v for k, v in good.items() if k != "timestamp"}
        no_time["sig"] = vonage_reference(SIGNING, "md5hash", no_time)
        forged = [
            signed(inbound_params(), secret="guessed"),
            signed(inbound_params(), method="sha256"),
            {**good, "text": "START"},
            no_sig,
            signed(inbound_params(), at=NOW - 301),
            signed(inbound_params(), at=NOW + 301),
            no_time,
        ]
        for params in forged:
            request = direct(url + urlencode(params), b"", {}, method="GET")
            assert rejected(gateway.verify, request).status == 403
        within = direct(
            url + urlencode(signed(inbound_params(), at=NOW - 300)), b"", {}, method="GET"
        )
        gateway.verify(within)

    def test_no_secret_refuses_everything(self) -> None:
        """Without a signature secret every callback is refused with 403."""
        gateway = vonage(None)
        request = direct(
            PUBLIC + "/h?" + urlencode(signed(inbound_params())), b"", {}, method="GET"
        )
        problem = rejected(gateway.verify, request)
        assert (problem.status, problem.reason) == (403, "no signature secret configured")

    def test_malformed_callbacks_are_400(self) -> None:
        """A missing field or a repeated parameter is a 400 that names no number."""
        gateway = vonage()
        url = PUBLIC + "/hooks/vonage/inbound?"
        no_sender = {k: v for k, v in inbound_params().items() if k != "msisdn"}
        request = direct(url + urlencode(signed(no_sender)), b"", {}, method="GET")
        gateway.verify(request)
        problem = rejected(gateway.parse_inbound, request)
        assert (problem.status, problem.reason) == (400, "no msisdn")
        twice = url + urlencode(signed(inbound_params())) + "&text=START"
        assert rejected(gateway.verify, direct(twice, b"", {}, method="GET")).status == 400
        no_id = {k: v for k, v in dlr_params("delivered").items() if k != "messageId"}
        status = direct(PUBLIC + "/s?" + urlencode(no_id), b"", {}, method="GET")
        assert rejected(gateway.parse_status, status).reason == "no messageId"
        not_utf8 = direct(PUBLIC + "/s", b"text=%FF", FORM)
        assert rejected(gateway.parse_inbound, not_utf8).status == 400
        assert CALLER.removeprefix("+") not in problem.reason

    def test_config(self) -> None:
        """signature_method needs a secret and must be a known method; STOP is ours to confirm."""
        assert vonage().provider_confirms_stop is False
        assert vonage(provider_confirms_stop=True).provider_confirms_stop is True
        with pytest.raises(ConfigError) as caught:
            vonage(None, signature_method="sha256")
        (line,) = caught.value.problems
        assert line.startswith("gateway.signature_method: set without a signature secret")
        with pytest.raises(ConfigError) as caught:
            vonage("sha384")
        (line,) = caught.value.problems
        assert line.startswith('gateway.signature_method: expected one of "md5hash"')


def test_every_adapter_takes_callbacks() -> None:
    """The web app's check finds all four adapters webhook-capable (mypy checks the types)."""
    tw, sw, tx, vg = twilio(), signalwire(), telnyx(TelnyxSigner()), vonage()
    typed: tuple[WebhookCapable, ...] = (tw, sw, tx, vg)
    assert len(typed) == 4
    assert webhook_capable(tw)
    assert webhook_capable(sw)
    assert webhook_capable(tx)
    assert webhook_capable(vg)
