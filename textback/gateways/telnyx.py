"""Telnyx Messaging API v2.

Send: JSON POST ``{base}/v2/messages`` with ``Authorization: Bearer <API key>``;
200 carries ``data.id``. Errors are ``{"errors": [{"code": "40300", "title": ...,
"detail": ...}]}``; ``TELNYX_CODES`` maps the codes that matter.

Not idempotent: the send endpoint takes no idempotency key, so a request cut off
after Telnyx accepted it cannot be retried without risking a second text.

Webhooks: JSON ``{"data": {"event_type": ..., "payload": {...}}}`` —
``message.received`` for a reply, ``message.sent`` / ``message.finalized`` for a
send's progress — signed with Ed25519 over ``f"{telnyx-timestamp}|{raw body}"``
(``telnyx-signature-ed25519``, base64) and checked against the account's public key
(``public_key``); a timestamp more than five minutes off is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from textback.errors import ConfigError
from textback.gateways.base import (
    BadWebhook,
    DeliveryReceipt,
    FailureKind,
    GatewayError,
    InboundSms,
    OutgoingSms,
    SendReceipt,
    WebhookReply,
    WebhookRequest,
)
from textback.gateways.http import (
    DEFAULT_TIMEOUT,
    HttpAdapterBase,
    HttpReply,
    accepted_unreadable,
    check_sender,
    code_table,
    failure,
    read_base_url,
    read_e164,
    read_matching,
    read_timeout,
    retry_after,
    secret_hint,
    vendor_code,
)
from textback.tomltable import Secret, SecretSpec, Table, read_secret

TELNYX_CODES: Final = code_table(
    opted_out=(40300,),  # the recipient replied STOP (block rule on the messaging profile)
    not_sms_capable=(40001,),  # not routable: landline or not SMS-capable
    permanent=(
        40009,  # invalid message body
        40012,  # invalid destination number
        40310,  # invalid "to" address
        10016,  # "to" is not E.164
    ),
    config=(
        10009,  # authentication failed
        40003,  # our sending number is blocked as spam
        40010,  # number not registered for 10DLC
        40305,  # invalid "from" address / not ours
        40333,  # spend limit reached
        # Suspected SMS pumping: Telnyx asks to stop; carrying on risks the account.
        40020,
    ),
    filtered=(40002, 40015, 40017),  # spam / content filtering
    transient=(
        10011,  # rate limited (HTTP 429)
        40004,
        40005,
        40006,
        40008,
        40011,
        40014,
        40016,
        40018,
        40318,  # message queue full
    ),
)

API_KEY: Final = SecretSpec(
    key="api_key",
    what="Telnyx API key",
    origin="the Telnyx portal (Account Settings, Keys & Credentials, API Keys)",
    env_example="TELNYX_API_KEY",
    file_example="/etc/textback/telnyx-api-key",
)
PROFILE_ID: Final = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# How far a callback's timestamp may be from our clock, either way, in seconds.
MAX_SKEW: Final = 300
SIGNATURE_HEADER: Final = "telnyx-signature-ed25519"
TIMESTAMP_HEADER: Final = "telnyx-timestamp"
DELIVERED: Final = frozenset({"delivered"})
UNDELIVERED: Final = frozenset({"delivery_failed", "sending_failed"})
PUBLIC_KEY_FIX: Final = (
    "the public key from the Telnyx portal (Keys & Credentials, Public Key), "
    'base64, e.g. public_key = "3kF…="'
)
CONFIRMS_STOP_FIX: Final = (
    "true when the provider answers STOP with its own confirmation text (textback then "
    "sends none), false to have textback send one"
)
_HINTS: Final = {
    "api_key": secret_hint(API_KEY),
    "sender": 'did you mean "from"?',
    "from_": 'did you mean "from"?',
    "status_callback": 'did you mean "webhook_url"?',
}


class TelnyxGateway(HttpAdapterBase):
    """Telnyx ``POST /v2/messages``."""

    name = "telnyx"
    idempotent = False
    KEYS: Final = (
        "api_key_file",
        "api_key_env",
        "api_key_credential",
        "from",
        "messaging_profile_id",
        "webhook_url",
        "timeout",
        "base_url",
        "public_key",
        "provider_confirms_stop",
    )

    def __init__(
        self,
        *,
        api_key: Secret | None,
        sender: str | None,
        profile_id: str | None = None,
        webhook_url: str | None = None,
        base_url: str = "https://api.telnyx.com",
        timeout: float = DEFAULT_TIMEOUT,
        public_key: Ed25519PublicKey | None = None,
        provider_confirms_stop: bool = True,
    ) -> None:
        super().__init__(timeout=timeout)
        self.public_key = public_key
        self.provider_confirms_stop = provider_confirms_stop
        self.url = f"{base_url.rstrip('/')}/v2/messages"
        self.balance_url = f"{base_url.rstrip('/')}/v2/balance"
        self.api_key = api_key
        self.sender = sender
        self.profile_id = profile_id
        self.webhook_url = webhook_url

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        problems: list[str] = []
        s = Table(problems, path, table, cls.KEYS, _HINTS)
        api_key, _ = read_secret(s, base, require_secrets, API_KEY)
        sender = read_e164(s, "from", fix='your Telnyx number in E.164, e.g. from = "+14155550100"')
        profile = read_matching(
            s,
            "messaging_profile_id",
            PROFILE_ID,
            shape="a profile ID (a UUID)",
            fix="the ID of a Messaging Profile from the Telnyx portal (Messaging), or remove it",
        )
        check_sender(
            s,
            "messaging_profile_id",
            neither='set from = "+14155550100" (your Telnyx number) or '
            "messaging_profile_id (to send from the profile's number pool)",
        )
        webhook = s.url(
            "webhook_url",
            "",
            fix="the https:// URL where Telnyx should post delivery reports, or remove it",
        )
        timeout = read_timeout(s)
        base_url = read_base_url(s, "https://api.telnyx.com")
        public_key = read_public_key(s)
        # By default Telnyx answers STOP itself ("You have successfully been unsubscribed…").
        confirms_stop = s.boolean("provider_confirms_stop", True, fix=CONFIRMS_STOP_FIX)
        if problems:
            raise ConfigError(problems)
        return cls(
            api_key=api_key,
            sender=sender,
            profile_id=profile,
            webhook_url=webhook or None,
            base_url=base_url,
            timeout=timeout,
            public_key=public_key,
            provider_confirms_stop=confirms_stop,
        )

    def payload(self, sms: OutgoingSms) -> dict[str, str]:
        """The JSON body of the send request."""
        body = {"to": sms.to, "text": sms.body}
        sender = sms.sender or self.sender
        if sender:
            body["from"] = sender
        if self.profile_id is not None:
            body["messaging_profile_id"] = self.profile_id
        if self.webhook_url is not None:
            body["webhook_url"] = self.webhook_url
        return body

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        if self.api_key is None:
            raise GatewayError(FailureKind.CONFIG, "telnyx: no API key configured")
        reply = await self.post(
            self.url,
            json=self.payload(sms),
            headers={"Authorization": f"Bearer {self.api_key.reveal()}"},
        )
        if 200 <= reply.status < 300:
            message_id = reply.field("data", "id")
            if isinstance(message_id, str) and message_id:
                return SendReceipt(message_id)
            raise accepted_unreadable(reply, "data.id")
        raise refusal(reply)

    async def check(self) -> str:
        """Read the account balance (``GET /v2/balance``, nothing is sent): the API key works."""
        if self.api_key is None:
            raise GatewayError(FailureKind.CONFIG, "telnyx: no API key configured")
        reply = await self.get(
            self.balance_url, headers={"Authorization": f"Bearer {self.api_key.reveal()}"}
        )
        if not 200 <= reply.status < 300:
            raise refusal(reply)
        balance, currency = reply.field("data", "balance"), reply.field("data", "currency")
        if isinstance(balance, str | int | float) and not isinstance(balance, bool):
            return f"API key accepted, balance {balance} {currency or ''}".rstrip()
        return "API key accepted"

    # -- webhooks ------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        if self.public_key is None:
            raise BadWebhook(403, "no public_key configured to check signatures")
        headers = {key.lower(): value for key, value in request.headers.items()}
        signature = headers.get(SIGNATURE_HEADER, "").strip()
        timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
        if not signature or not timestamp:
            raise BadWebhook(403, f"no {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise BadWebhook(403, f"{TIMESTAMP_HEADER} is not whole seconds")
        if abs(request.now - int(timestamp)) > MAX_SKEW:
            raise BadWebhook(403, f"{TIMESTAMP_HEADER} more than {MAX_SKEW} s from our clock")
        try:
            raw = base64.b64decode(signature, validate=True)
            self.public_key.verify(raw, timestamp.encode("ascii") + b"|" + request.body)
        except (binascii.Error, InvalidSignature) as exc:
            raise BadWebhook(403, "signature does not match") from exc

    def parse_inbound(self, request: WebhookRequest) -> InboundSms | None:
        event_type, payload = _event(request.body)
        if event_type != "message.received":
            return None
        text = _dig(payload, "text")
        if text is not None and not isinstance(text, str):
            raise BadWebhook(400, "payload.text is not a string")
        return InboundSms(
            provider_id=_string(payload, "id"),
            sender=_string(payload, "from", "phone_number"),
            recipient=_string(payload, "to", 0, "phone_number"),
            body=text or "",  # null for a picture with no words
        )

    def parse_status(self, request: WebhookRequest) -> DeliveryReceipt | None:
        event_type, payload = _event(request.body)
        if event_type not in ("message.sent", "message.finalized"):
            return None
        status = _string(payload, "to", 0, "status").lower()
        code = vendor_code(_dig(payload, "errors", 0, "code"))
        delivered = True if status in DELIVERED else False if status in UNDELIVERED else None
        return DeliveryReceipt(
            provider_id=_string(payload, "id"),
            delivered=delivered,
            status=status,
            error_code=code,
            kind=TELNYX_CODES.get(code, FailureKind.PERMANENT) if delivered is False else None,
        )

    def webhook_reply(self) -> WebhookReply:
        return WebhookReply()


def read_public_key(s: Table) -> Ed25519PublicKey | None:
    """The ``public_key`` key: base64 of a 32-byte Ed25519 key; None when absent or bad."""
    value = s.string("public_key", "", fix=PUBLIC_KEY_FIX).strip()
    if not value or "public_key" in s.bad:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        s.problem("public_key", f"not base64 — {PUBLIC_KEY_FIX}")
        return None
    if len(raw) != 32:
        s.problem("public_key", f"decodes to {len(raw)} bytes, not 32 — {PUBLIC_KEY_FIX}")
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        s.problem("public_key", f"not an Ed25519 public key — {PUBLIC_KEY_FIX}")
        return None


def _event(body: bytes) -> tuple[str, object]:
    """The event type and payload of a Telnyx callback; BadWebhook(400) when it has none."""
    try:
        document = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise BadWebhook(400, "body is not JSON") from exc
    event_type = _dig(document, "data", "event_type")
    payload = _dig(document, "data", "payload")
    if not isinstance(event_type, str) or not isinstance(payload, dict):
        raise BadWebhook(400, "no data.event_type or data.payload")
    return event_type, payload


def _dig(node: object, *path: str | int) -> object:
    for step in path:
        if isinstance(step, str) and isinstance(node, dict):
            node = node.get(step)
        elif isinstance(step, int) and isinstance(node, list) and 0 <= step < len(node):
            node = node[step]
        else:
            return None
    return node


def _string(payload: object, *path: str | int) -> str:
    """A non-empty string in the payload; BadWebhook(400) naming its path when absent."""
    value = _dig(payload, *path)
    if not isinstance(value, str) or not value.strip():
        where = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)
        raise BadWebhook(400, f"no payload{where}")
    return value


def refusal(reply: HttpReply) -> GatewayError:
    """The GatewayError for an error reply (an ``errors`` array)."""
    code, detail = first_error(reply)
    return failure(reply, code=code, codes=TELNYX_CODES, detail=detail, wait=rate_reset(reply))


def first_error(reply: HttpReply) -> tuple[str, str]:
    """The code and "title: detail" of the first entry of a Telnyx ``errors`` array."""
    code = vendor_code(reply.field("errors", 0, "code"))
    parts = [reply.field("errors", 0, key) for key in ("title", "detail")]
    text = ": ".join(p for p in parts if isinstance(p, str) and p)
    return code, text


def rate_reset(reply: HttpReply) -> float | None:
    """Seconds until the rate window resets (``x-ratelimit-reset``) when Retry-After is absent."""
    if reply.retry_after is not None:
        return None
    return retry_after({"Retry-After": reply.headers.get("x-ratelimit-reset", "")}) or None
