"""Plivo Message API.

Send: JSON POST ``{base}/v1/Account/{auth_id}/Message/`` with Basic
``auth_id:auth_token``; 202 carries ``message_uuid[0]``. Numbers go as digits
with the country code and no "+" (Plivo strips it anyway). A send fails with
``{"api_id": ..., "error": "<text>"}`` and an HTTP status, and no numeric code:
401 (credentials) is CONFIG, 429 and 5xx TRANSIENT, 400 PERMANENT unless the
text blames our sender or account. Numeric codes come only later, with the
delivery report (``ErrorCode``); :func:`delivery_failure` maps those.

Not idempotent: the Message API takes no idempotency key, so a request cut off
after Plivo accepted it cannot be retried without risking a second text.

Replies and delivery reports: Plivo calls the number's application (message URL:
``From``, ``To``, ``Text``, ``MessageUUID``) and ``status_callback``
(``MessageUUID``, ``Status``, ``ErrorCode``) with a form POST (a GET or a JSON
body is read too). Each carries ``X-Plivo-Signature-V3``, checked by
:func:`signature_v3` as plivo-python's ``validate_v3_signature`` does it:
base64 HMAC-SHA256, keyed with the auth token, of ``<base>.<nonce>`` (nonce from
``X-Plivo-Signature-V3-Nonce``), where ``<base>`` (:func:`signed_base`) is the
URL without its query, then for a GET ``?`` and the query's ``k=v`` pairs sorted
and joined by ``&`` (nothing when there is no query); for a POST with a body,
``?``, those pairs, ``.`` when there were any, and every body field as
``key + value`` in sorted order. The header may list several signatures, one
per active auth token: any one matching is enough. V3 has no timestamp, so a
replayed callback passes; it is harmless because its MessageUUID is stored once.
Plivo blocks a number that texts STOP and confirms it itself, so
``provider_confirms_stop`` defaults to true.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Self
from urllib.parse import parse_qs, urlparse, urlunparse

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
    read_timeout,
    secret_hint,
)
from textback.gateways.webhook import form_fields, json_object, media_type, one, query_fields
from textback.tomltable import Secret, SecretSpec, Table, read_secret, show

# ErrorCode of a failed or undelivered message in Plivo's status callbacks.
PLIVO_DELIVERY_CODES: Final = code_table(
    opted_out=(200,),  # the recipient sent STOP to this sender
    not_sms_capable=(50, 70),  # invalid destination / permanently unavailable (landline)
    permanent=(10, 90, 110),  # invalid message, no route, message too long
    config=(40, 201, 900),  # invalid source, toll-free to Canada blocked, no credit
    filtered=(30, 100),  # spam filter, prohibited by the carrier
    transient=(20, 80, 300, 420, 950),  # network, temporarily unavailable, dispatch, expired
)
SIGNATURE_HEADER: Final = "X-Plivo-Signature-V3"
NONCE_HEADER: Final = "X-Plivo-Signature-V3-Nonce"
DELIVERED: Final = frozenset({"delivered"})
FAILED: Final = frozenset({"undelivered", "failed", "rejected"})
AUTH_ID: Final = re.compile(r"(?:MA|SA)[A-Z0-9]{18}")
POWERPACK: Final = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
AUTH_TOKEN: Final = SecretSpec(
    key="auth_token",
    what="Plivo auth token",
    origin="the Plivo console (Overview page, Account: Auth Token)",
    env_example="PLIVO_AUTH_TOKEN",
    file_example="/etc/textback/plivo-auth-token",
)
# A 400's error text that blames our side of the send, not the recipient.
_OUR_SIDE: Final = re.compile(
    r"\bsrc\b|powerpack|caller ?id|source|sender|credit|balance|not (?:enabled|allowed|permitted)"
    r"|suspended|disabled|10dlc|campaign|unverified",
    re.IGNORECASE,
)
_KEYS: Final = (
    "auth_id",
    AUTH_TOKEN.env_key,
    AUTH_TOKEN.file_key,
    AUTH_TOKEN.credential_key,
    "from",
    "powerpack_uuid",
    "status_callback",
    "timeout",
    "base_url",
    "provider_confirms_stop",
)
_HINTS: Final = {
    "auth_token": secret_hint(AUTH_TOKEN),
    "src": 'did you mean "from"? e.g. from = "+14155550100"',
    "sender": 'did you mean "from"?',
    "url": "did you mean status_callback?",
}


class PlivoGateway(HttpAdapterBase):
    """Plivo's Send Message API."""

    name = "plivo"
    idempotent = False

    def __init__(
        self,
        *,
        auth_id: str,
        auth_token: Secret | None,
        sender: str | None = None,
        powerpack_uuid: str | None = None,
        status_callback: str | None = None,
        base_url: str = "https://api.plivo.com",
        timeout: float = DEFAULT_TIMEOUT,
        provider_confirms_stop: bool = True,
    ) -> None:
        super().__init__(timeout=timeout)
        self.account_url = f"{base_url.rstrip('/')}/v1/Account/{auth_id}/"
        self.url = f"{self.account_url}Message/"
        self.provider_confirms_stop = provider_confirms_stop
        self.auth_id = auth_id
        self.auth_token = auth_token
        self.sender = sender
        self.powerpack_uuid = powerpack_uuid
        self.status_callback = status_callback

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        problems: list[str] = []
        s = Table(problems, path, table, _KEYS, _HINTS)
        id_fix = 'the Auth ID from the Plivo console\'s overview page, e.g. auth_id = "MAXXXX…"'
        auth_id = s.string("auth_id", "", required=True, fix=id_fix)
        if auth_id and "auth_id" not in s.bad and not AUTH_ID.fullmatch(auth_id):
            s.problem(
                "auth_id",
                f"{show(auth_id)} is not an Auth ID (MA or SA and 18 letters or digits) — "
                "copy it from the Plivo console",
            )
        auth_token, _ = read_secret(s, base, require_secrets, AUTH_TOKEN)
        sender = read_e164(s, "from", fix='your Plivo number in E.164, e.g. from = "+14155550100"')
        powerpack = s.string(
            "powerpack_uuid", "", fix="the UUID of the Powerpack (Messaging, Powerpacks)"
        )
        if powerpack and "powerpack_uuid" not in s.bad and not POWERPACK.fullmatch(powerpack):
            s.problem(
                "powerpack_uuid",
                f"{show(powerpack)} is not a Powerpack UUID — copy it from the Plivo console "
                "(Messaging, Powerpacks)",
            )
        check_sender(
            s,
            "powerpack_uuid",
            neither='set from = "+14155550100" (your Plivo number) or powerpack_uuid = "…"',
            both='set together with "from" — keep one: the Powerpack picks the sender itself',
        )
        status_callback = (
            s.url(
                "status_callback",
                "",
                fix="the https:// URL where Plivo should post delivery reports, or remove it",
            )
            or None
        )
        timeout = read_timeout(s)
        base_url = read_base_url(s, "https://api.plivo.com")
        confirms = s.boolean(
            "provider_confirms_stop",
            True,
            fix="false only if you turned off Plivo's own STOP handling, so textback confirms",
        )
        if problems:
            raise ConfigError(problems)
        return cls(
            auth_id=auth_id,
            auth_token=auth_token,
            sender=sender,
            powerpack_uuid=powerpack or None,
            status_callback=status_callback,
            base_url=base_url,
            timeout=timeout,
            provider_confirms_stop=confirms,
        )

    def body(self, sms: OutgoingSms) -> dict[str, str]:
        """The JSON body of the send. A Powerpack picks its own sender: ``sms.sender``
        is used only without one."""
        body = {"dst": sms.to.removeprefix("+"), "text": sms.body, "type": "sms"}
        if self.powerpack_uuid is not None:
            body["powerpack_uuid"] = self.powerpack_uuid
        else:
            body["src"] = (sms.sender or self.sender or "").removeprefix("+")
        if self.status_callback is not None:
            body["url"] = self.status_callback
            body["method"] = "POST"
        return body

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        if self.auth_token is None:
            raise GatewayError(FailureKind.CONFIG, "plivo: no auth token configured")
        reply = await self.post(
            self.url, json=self.body(sms), auth=(self.auth_id, self.auth_token.reveal())
        )
        if 200 <= reply.status < 300:
            uuid = reply.field("message_uuid", 0)
            if isinstance(uuid, str) and uuid:
                return SendReceipt(uuid)
            raise accepted_unreadable(reply, "a message_uuid")
        raise send_failure(reply)

    async def check(self) -> str:
        """Fetch the account (``GET /v1/Account/{auth_id}/``, nothing is sent): the auth works."""
        if self.auth_token is None:
            raise GatewayError(FailureKind.CONFIG, "plivo: no auth token configured")
        reply = await self.get(self.account_url, auth=(self.auth_id, self.auth_token.reveal()))
        if not 200 <= reply.status < 300:
            raise send_failure(reply)
        name, cash = reply.field("name"), reply.field("cash_credits")
        named = f" ({name})" if isinstance(name, str) and name else ""
        balance = f", cash credits {cash}" if isinstance(cash, str) and cash else ""
        return f"account {self.auth_id}{named} accepted{balance}"

    # -- replies and delivery reports ------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """``X-Plivo-Signature-V3``: one of its signatures is ours for this URL, body and nonce."""
        if self.auth_token is None:
            raise BadWebhook(403, "plivo: no auth token configured to check signatures")
        header = request.headers.get(SIGNATURE_HEADER, "")
        nonce = request.headers.get(NONCE_HEADER, "")
        if not header.strip() or not nonce:
            raise BadWebhook(403, f"plivo: no {SIGNATURE_HEADER} or {NONCE_HEADER} header")
        params = {} if request.method.upper() == "GET" else _fields(request)
        expected = signature_v3(
            self.auth_token.reveal(), signed_base(request.method, request.url, params), nonce
        )
        if not any(
            hmac.compare_digest(expected, given.strip().encode(errors="replace"))
            for given in header.split(",")
        ):
            raise BadWebhook(403, "plivo: signature does not match")

    def parse_inbound(self, request: WebhookRequest) -> InboundSms | None:
        """The reply; None for a delivery report sent to the message URL by mistake."""
        fields = _fields(request)
        text = _value(fields, "Text")
        if text is None and _value(fields, "Status") is not None:
            return None
        if text is None:
            raise BadWebhook(400, "plivo: no Text in the message callback")
        return InboundSms(
            provider_id=_required(fields, "MessageUUID"),
            sender=_e164(_required(fields, "From")),
            recipient=_e164(_required(fields, "To")),
            body=text,
        )

    def parse_status(self, request: WebhookRequest) -> DeliveryReceipt:
        fields = _fields(request)
        status = _required(fields, "Status")
        code = (_value(fields, "ErrorCode") or "").strip()
        word = status.lower()
        delivered = True if word in DELIVERED else False if word in FAILED else None
        return DeliveryReceipt(
            provider_id=_required(fields, "MessageUUID"),
            delivered=delivered,
            status=status,
            error_code=code,
            kind=delivery_failure(code) if delivered is False else None,
        )

    def webhook_reply(self) -> WebhookReply:
        # An empty Plivo XML answer: take the message, send nothing back.
        return WebhookReply(content_type="application/xml", body=b"<Response></Response>")


def send_failure(reply: HttpReply) -> GatewayError:
    """The GatewayError for a refused send (Plivo gives text, not codes, at this point)."""
    error = reply.field("error")
    detail = error if isinstance(error, str) and error else ""
    if reply.status == 404:
        # Wrong auth_id in the path, or base_url pointing elsewhere.
        said = detail or reply.text() or "not found"
        return failure(
            reply, detail=f"{said} — check auth_id and base_url", default=FailureKind.CONFIG
        )
    if reply.status == 402 or (reply.status == 400 and _OUR_SIDE.search(detail)):
        return failure(reply, detail=detail, default=FailureKind.CONFIG)
    return failure(reply, detail=detail)


def delivery_failure(code: str) -> FailureKind:
    """What a delivery report's ``ErrorCode`` means; unknown codes are PERMANENT."""
    return PLIVO_DELIVERY_CODES.get(code.strip().lstrip("0") or "0", FailureKind.PERMANENT)


# -- V3 signatures ---------------------------------------------------------------------------


def signature_v3(auth_token: str, base: str, nonce: str) -> bytes:
    """base64(HMAC-SHA256(auth_token, ``<base>.<nonce>``)), as Plivo signs its callbacks."""
    digest = hmac.new(auth_token.encode(), f"{base}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest)


def signed_base(method: str, url: str, params: Mapping[str, object]) -> str:
    """What Plivo signs for a callback to ``url`` with body fields ``params``.

    Follows plivo-python's ``construct_get_url`` / ``construct_post_url`` step by
    step, including its quirks: ``?`` and ``.`` appear only as they do there, URL
    path parameters (``;x``) and the fragment are dropped, and query values are
    compared decoded ("+" as a space). Two assumptions where the SDK is no guide:
    non-ASCII query values are decoded as UTF-8 (the SDK fails on them; keep
    callback URLs ASCII), and a JSON body is signed like the SDK's dict of its
    parsed fields (Plivo's message callbacks are form posts in practice).
    """
    parsed = urlparse(url)
    base = urlunparse((parsed.scheme, parsed.netloc, parsed.path, "", "", ""))
    query = "&".join(
        "&".join(f"{key}={value}" for value in sorted(values))
        for key, values in sorted(parse_qs(parsed.query, keep_blank_values=True).items())
    )
    if method.upper() == "GET" or not params:
        return base + (f"?{query}" if query else "")
    return f"{base}?{query}{'.' if query else ''}{_params_string(params)}"


def _params_string(params: Mapping[str, object]) -> str:
    """Body fields as sorted ``key + value``; a list gives one pair per sorted value and a
    JSON object nests. JSON scalars are spelled as plivo-python spells them (True, None)."""
    parts: list[str] = []
    for key in sorted(params):
        value = params[key]
        if isinstance(value, list):
            parts.append("".join(f"{key}{item}" for item in sorted(map(_scalar, value))))
        elif isinstance(value, dict):
            parts.append(f"{key}{_params_string(value)}")
        else:
            parts.append(f"{key}{_scalar(value)}")
    return "".join(parts)


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return str(value)
    # plivo-python cannot sign these either (it fails sorting them).
    raise BadWebhook(400, "plivo: a JSON list holds lists or objects")


# -- callback fields -------------------------------------------------------------------------


def _fields(request: WebhookRequest) -> Mapping[str, object]:
    """The callback's fields: the query for a GET, else the form or JSON body."""
    if request.method.upper() == "GET":
        return query_fields(request.url)
    kind = media_type(request)
    if kind == "application/json":
        return json_object(request.body)
    if kind in ("application/x-www-form-urlencoded", ""):
        return form_fields(request.body)
    raise BadWebhook(400, "plivo: the body is neither a form nor JSON")


def _value(fields: Mapping[str, object], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return one({name: value}, name)  # a form or query field, maybe repeated
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise BadWebhook(400, f"plivo: {name} is not a string")


def _required(fields: Mapping[str, object], name: str) -> str:
    value = _value(fields, name)
    if not value:
        raise BadWebhook(400, f"plivo: no {name} in the callback")
    return value


def _e164(number: str) -> str:
    """Plivo writes numbers as digits with the country code and no "+"; short codes stay."""
    number = number.strip()
    return f"+{number}" if re.fullmatch(r"[0-9]{8,15}", number) else number
