"""Vonage (Nexmo) SMS API — the "legacy" ``/sms/json`` endpoint that still carries most SMS.

Send: form POST ``{base}/sms/json`` with ``api_key`` and ``api_secret`` in the
body. The reply is HTTP 200 even for failures: each part of the text gets an
entry in ``messages`` whose ``status`` is ``"0"`` when accepted; ``VONAGE_STATUS``
maps the other statuses.

Not idempotent: ``client-ref`` (set to our reference) is echoed in delivery
reports but Vonage does not drop a second request carrying the same one.

Webhooks: inbound messages and delivery receipts arrive as GET query parameters
or a POST form (or flat JSON object). They are trusted only when signed: Vonage
support turns on signed webhooks, which add ``sig``, ``timestamp`` and ``nonce``;
``sig`` is the hex digest, keyed by the signature secret, of ``&name=value`` for
every other parameter sorted by name (``&`` and ``=`` in values read as ``_``):
plain MD5 of that text followed by the secret ("md5hash", Vonage's default), or
its HMAC-MD5/SHA-1/SHA-256/SHA-512. Without a signature secret configured every
callback is refused. A long reply arrives in parts (``concat-*``), each with its
own ``messageId``: each part is one InboundSms.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Self
from urllib.parse import parse_qsl, urlsplit

from textback.core.sms import non_gsm_chars
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
    E164,
    HttpAdapterBase,
    HttpReply,
    accepted_unreadable,
    code_table,
    failure,
    read_base_url,
    read_timeout,
    secret_hint,
    vendor_code,
)
from textback.tomltable import Secret, SecretSpec, Table, read_secret

VONAGE_STATUS: Final = code_table(
    transient=(
        1,  # throttled
        5,  # internal error
        10,  # too many existing binds
    ),
    not_sms_capable=(
        6,  # unroutable: no network for the number's prefix
        7,  # number barred
        33,  # number de-activated
    ),
    config=(
        4,  # invalid credentials
        8,  # account barred
        9,  # quota exceeded: out of credit
        11,  # REST/HTTP not enabled for this account
        14,  # invalid signature
        15,  # invalid sender address
        23,  # invalid callback URL
        29,  # trial account: destination not on the test-number list
    ),
    permanent=(
        2,  # missing parameters
        3,  # invalid parameters
        12,  # message too long
    ),
)

# ``err-code`` of a delivery receipt (a different table from the send statuses above).
VONAGE_DLR_CODES: Final = code_table(
    transient=(
        2,  # absent subscriber, temporary
        7,  # handset busy
        8,  # network error
    ),
    not_sms_capable=(
        3,  # absent subscriber, permanent
        4,  # call barred by user
        9,  # illegal number
        11,  # unroutable
        12,  # destination unreachable
        14,  # number blocked by carrier
    ),
    filtered=(6,),  # anti-spam rejection
)

API_SECRET: Final = SecretSpec(
    key="api_secret",
    what="Vonage API secret",
    origin="the Vonage API dashboard (API settings)",
    env_example="VONAGE_API_SECRET",
    file_example="/etc/textback/vonage-api-secret",
)
SIGNATURE_SECRET: Final = SecretSpec(
    key="signature_secret",
    what="Vonage signature secret",
    origin="the Vonage API dashboard (API settings, Signature secret)",
    env_example="VONAGE_SIGNATURE_SECRET",
    file_example="/etc/textback/vonage-signature-secret",
)
# "md5hash" is a plain hash of params + secret; the others are HMACs keyed by the secret.
SIGNATURE_METHODS: Final = ("md5hash", "md5", "sha1", "sha256", "sha512")
MAX_SKEW: Final = 300  # seconds a signed callback's timestamp may be off our clock
DELIVERED: Final = frozenset({"delivered"})
UNDELIVERED: Final = frozenset({"expired", "failed", "rejected"})
CONFIRMS_STOP_FIX: Final = (
    "true when the provider answers STOP with its own confirmation text (textback then "
    "sends none), false to have textback send one"
)
ALPHA_SENDER: Final = re.compile(r"[A-Za-z0-9 ]{1,11}")
_HINTS: Final = {
    "api_secret": secret_hint(API_SECRET),
    "signature_secret": secret_hint(SIGNATURE_SECRET),
    "sender": 'did you mean "from"?',
    "from_": 'did you mean "from"?',
    "callback": 'did you mean "status_callback"?',
}


def needs_unicode(text: str) -> bool:
    """True when ``text`` has a character outside GSM-7, so it must go as UCS-2."""
    return bool(non_gsm_chars(text))


class VonageGateway(HttpAdapterBase):
    """Vonage ``POST /sms/json``."""

    name = "vonage"
    idempotent = False
    KEYS: Final = (
        "api_key",
        "api_secret_file",
        "api_secret_env",
        "api_secret_credential",
        "from",
        "status_callback",
        "timeout",
        "base_url",
        "signature_secret_file",
        "signature_secret_env",
        "signature_secret_credential",
        "signature_method",
        "provider_confirms_stop",
    )

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: Secret | None,
        sender: str,
        status_callback: str | None = None,
        base_url: str = "https://rest.nexmo.com",
        timeout: float = DEFAULT_TIMEOUT,
        signature_secret: Secret | None = None,
        signature_method: str = "md5hash",
        provider_confirms_stop: bool = False,
    ) -> None:
        super().__init__(timeout=timeout)
        self.signature_secret = signature_secret
        self.signature_method = signature_method
        self.provider_confirms_stop = provider_confirms_stop
        self.url = f"{base_url.rstrip('/')}/sms/json"
        self.balance_url = f"{base_url.rstrip('/')}/account/get-balance"
        self.api_key = api_key
        self.api_secret = api_secret
        self.sender = sender
        self.status_callback = status_callback

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        problems: list[str] = []
        s = Table(problems, path, table, cls.KEYS, _HINTS)
        api_key = s.string(
            "api_key",
            "",
            required=True,
            fix='the API key from the Vonage API dashboard, e.g. api_key = "a1b2c3d4"',
        )
        if api_key and "api_key" not in s.bad and not api_key.isalnum():
            s.problem("api_key", "expected letters and digits only — copy it from the dashboard")
        secret, _ = read_secret(s, base, require_secrets, API_SECRET)
        sender_fix = (
            'your Vonage number in E.164, e.g. from = "+14155550100", or an alphanumeric '
            "sender ID of up to 11 letters and digits where the country allows one"
        )
        sender = s.string("from", "", required=True, fix=sender_fix)
        if sender and "from" not in s.bad:
            if sender.startswith("+") or sender.isdigit():
                if not E164.fullmatch("+" + sender.removeprefix("+")):
                    s.problem("from", f'"{sender}" is not an E.164 number — {sender_fix}')
            elif not ALPHA_SENDER.fullmatch(sender):
                s.problem("from", f'"{sender}" is not a valid sender — {sender_fix}')
        status_callback = s.url(
            "status_callback",
            "",
            fix="the https:// URL where Vonage should post delivery receipts, or remove it",
        )
        timeout = read_timeout(s)
        base_url = read_base_url(s, "https://rest.nexmo.com")
        signed = SIGNATURE_SECRET.named_in(table)
        signature_secret, _ = read_secret(s, base, require_secrets and signed, SIGNATURE_SECRET)
        method = s.choice(
            "signature_method",
            "md5hash",
            SIGNATURE_METHODS,
            fix="the signature method chosen in the Vonage API settings",
        )
        if "signature_method" in table and not signed:
            s.problem(
                "signature_method",
                f"set without a signature secret — add {SIGNATURE_SECRET.howto}, or remove it",
            )
        # Vonage's SMS API passes STOP on to us without answering it.
        confirms_stop = s.boolean("provider_confirms_stop", False, fix=CONFIRMS_STOP_FIX)
        if problems:
            raise ConfigError(problems)
        return cls(
            api_key=api_key,
            api_secret=secret,
            sender=sender,
            status_callback=status_callback or None,
            base_url=base_url,
            timeout=timeout,
            signature_secret=signature_secret,
            signature_method=method,
            provider_confirms_stop=confirms_stop,
        )

    def fields(self, sms: OutgoingSms, api_secret: str) -> dict[str, str]:
        """The form fields of the send request; numbers go without "+"."""
        fields = {
            "api_key": self.api_key,
            "api_secret": api_secret,
            "from": (sms.sender or self.sender).removeprefix("+"),
            "to": sms.to.removeprefix("+"),
            "text": sms.body,
            "type": "unicode" if needs_unicode(sms.body) else "text",
            "client-ref": sms.reference,
        }
        if self.status_callback is not None:
            fields["callback"] = self.status_callback
        return fields

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        if self.api_secret is None:
            raise GatewayError(FailureKind.CONFIG, "vonage: no API secret configured")
        reply = await self.post(self.url, data=self.fields(sms, self.api_secret.reveal()))
        if not 200 <= reply.status < 300:
            raise failure(reply)
        parts = reply.field("messages")
        if not isinstance(parts, list) or not parts:
            raise accepted_unreadable(reply, "messages")
        results = [_part(reply, i) for i in range(len(parts))]
        failed = [(status, text) for status, text in results if status != "0"]
        if not failed:
            message_id = reply.field("messages", 0, "message-id")
            return SendReceipt(message_id if isinstance(message_id, str) else "")
        status, text = failed[0]
        if len(failed) < len(parts):
            # Some parts are on their way: a resend would repeat them.
            raise GatewayError(
                FailureKind.PERMANENT,
                f"only {len(parts) - len(failed)} of {len(parts)} parts accepted: {text}",
                code=status,
                maybe_sent=True,
            )
        raise failure(reply, code=status, codes=VONAGE_STATUS, detail=text)

    async def check(self) -> str:
        """Read the balance (``GET /account/get-balance``, nothing sent): key and secret work."""
        if self.api_secret is None:
            raise GatewayError(FailureKind.CONFIG, "vonage: no API secret configured")
        reply = await self.get(
            self.balance_url,
            params={"api_key": self.api_key, "api_secret": self.api_secret.reveal()},
        )
        if not 200 <= reply.status < 300:
            label = reply.field("error-code-label")
            raise failure(reply, detail=label if isinstance(label, str) else "")
        value = reply.field("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"API key {self.api_key} accepted, balance {value:.2f}"
        return f"API key {self.api_key} accepted"

    # -- webhooks ------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        if self.signature_secret is None:
            raise BadWebhook(403, "no signature secret configured")
        params = callback_params(request)
        signature = params.get("sig", "").strip().lower()
        if not signature:
            raise BadWebhook(403, "no sig parameter")
        timestamp = params.get("timestamp", "").strip()
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise BadWebhook(403, "no timestamp parameter in whole seconds")
        if abs(request.now - int(timestamp)) > MAX_SKEW:
            raise BadWebhook(403, f"timestamp more than {MAX_SKEW} s from our clock")
        expected = vonage_signature(
            self.signature_secret.reveal(), self.signature_method, params
        ).encode()
        if not hmac.compare_digest(expected, signature.encode()):
            raise BadWebhook(403, "signature does not match")

    def parse_inbound(self, request: WebhookRequest) -> InboundSms | None:
        params = callback_params(request)
        if "text" not in params and "status" in params:
            return None  # a delivery receipt sent to the inbound URL
        if params.get("type") == "binary":
            return None  # a data message (ringtone, WAP push): no text in it
        _require(params, ("messageId", "msisdn", "to", "text"))
        return InboundSms(
            provider_id=params["messageId"],
            sender=_plus(params["msisdn"]),
            recipient=_plus(params["to"]),
            body=params["text"],
        )

    def parse_status(self, request: WebhookRequest) -> DeliveryReceipt | None:
        params = callback_params(request)
        if "status" not in params and "text" in params:
            return None  # an inbound message sent to the status URL
        _require(params, ("messageId", "status"))
        status = params["status"].strip().lower()
        code = params.get("err-code", "").strip()
        delivered = True if status in DELIVERED else False if status in UNDELIVERED else None
        return DeliveryReceipt(
            provider_id=params["messageId"],
            delivered=delivered,
            status=status,
            error_code="" if code == "0" else code,
            kind=VONAGE_DLR_CODES.get(code, FailureKind.PERMANENT) if delivered is False else None,
        )

    def webhook_reply(self) -> WebhookReply:
        return WebhookReply()  # any 2xx; anything else and Vonage resends for a day


def vonage_signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """The hex ``sig`` Vonage computes over ``params`` (``sig`` itself left out)."""
    text = "".join(
        f"&{name}={params[name].replace('&', '_').replace('=', '_')}"
        for name in sorted(params)
        if name != "sig"
    ).encode()
    if method == "md5hash":
        return hashlib.md5(text + secret.encode(), usedforsecurity=False).hexdigest()
    return hmac.new(secret.encode(), text, method).hexdigest()


def callback_params(request: WebhookRequest) -> dict[str, str]:
    """A callback's parameters: the query of a GET, the form or JSON object of a POST.

    A repeated name is refused: the signature and the parse must read the same value.
    """
    body = request.body.strip()
    try:
        if request.method.upper() == "GET" or not body:
            pairs = parse_qsl(urlsplit(request.url).query, keep_blank_values=True, errors="strict")
        elif body.startswith(b"{"):
            pairs = _json_pairs(body)
        else:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadWebhook(400, "parameters are not UTF-8 form or JSON") from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise BadWebhook(400, f"parameter {name} given twice")
        params[name] = value
    return params


def _json_pairs(body: bytes) -> list[tuple[str, str]]:
    document = json.loads(body)
    if not isinstance(document, dict):
        raise BadWebhook(400, "JSON body is not an object")
    pairs: list[tuple[str, str]] = []
    for name, value in document.items():
        if isinstance(value, str):
            pairs.append((name, value))
        elif isinstance(value, bool | int | float) or value is None:
            pairs.append((name, json.dumps(value)))  # as it appears on the wire
        else:
            raise BadWebhook(400, f"parameter {name} is not a plain value")
    return pairs


def _require(params: Mapping[str, str], names: tuple[str, ...]) -> None:
    """BadWebhook(400) naming the first missing parameter (never its value)."""
    for name in names:
        if name not in params or (name != "text" and not params[name].strip()):
            raise BadWebhook(400, f"no {name}")


def _plus(number: str) -> str:
    """Vonage writes numbers without "+": E.164 again when it is all digits."""
    number = number.strip()
    return "+" + number if number.isdigit() else number


def _part(reply: HttpReply, index: int) -> tuple[str, str]:
    """The status and error text of one part of the reply."""
    status = vendor_code(reply.field("messages", index, "status"))
    text = reply.field("messages", index, "error-text")
    return status, text if isinstance(text, str) and text else f"status {status or '(none)'}"
