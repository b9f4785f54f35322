"""The ``webhook`` gateway: one HTTP request per text, shaped by the TOML, for any other
provider or a CRM.

``fields`` maps request fields to templates with the placeholders ``{to}``
(E.164), ``{body}``, ``{reference}`` (ours, stable across retries of one text)
and ``{sender}``. They go out as JSON (nested tables allowed) or as a form for
POST and PUT, and in the query string for GET. A 2xx reply is a success; with
``id_field`` the provider's message id is read from the JSON reply. 401/403 and
3xx are CONFIG, 408/425/429/5xx TRANSIENT (honouring ``Retry-After``), any other
status PERMANENT.

Idempotent only when ``idempotency_header`` is set: the request then carries
the reference in that header, and the receiver promises to drop a second
request with the same value. Without it, a request cut off after the receiver
acted on it cannot be retried without risking a second text.

Replies and delivery receipts (``/hooks/webhook/inbound`` and ``/status``), the
contract for whatever posts them:

* The body is JSON (``Content-Type: application/json``) or a url-encoded form.
* ``X-Textback-Timestamp: <Unix seconds>`` and ``X-Textback-Signature:
  sha256=<hex>``, the hex HMAC-SHA256 of ``<timestamp>.<raw body>`` keyed with
  the shared secret (``inbound_secret_env`` / ``inbound_secret_file``). A
  timestamp more than 300 s from our clock is refused, so a captured request
  cannot be replayed later; without a configured secret every callback is refused.
* Inbound fields (``inbound_fields``, dotted paths into JSON): ``id`` (the
  message id; a repeat with the same id is stored once), ``from``, ``to``, ``text``.
* Status fields (``status_fields``): ``id`` (the id the send got back, see
  ``id_field``), ``status`` and optionally ``error_code``. A status in
  ``delivered_statuses`` is delivered, one in ``failed_statuses`` failed (its code
  classified by the ``error_codes`` table, else PERMANENT), any other is still on its way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Self
from urllib.parse import parse_qs, urlsplit

import structlog
from yarl import URL

from textback.errors import ConfigError
from textback.gateways.base import (
    NOTHING_TO_CHECK,
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
    failure,
    read_e164,
    read_timeout,
    secret_hint,
)
from textback.tomltable import Secret, SecretSpec, Table, quote, read_secret, show

log = structlog.get_logger(__name__)

PLACEHOLDERS: Final = ("to", "body", "reference", "sender")
DEFAULT_FIELDS: Final[Mapping[str, str]] = {
    "to": "{to}",
    "body": "{body}",
    "reference": "{reference}",
}
METHODS: Final = ("post", "put", "get")
FORMATS: Final = ("json", "form")
BEARER_TOKEN: Final = SecretSpec(
    key="bearer_token",
    what="API token",
    origin="the receiving service's API settings",
    env_example="TEXTBACK_WEBHOOK_TOKEN",
    file_example="/etc/textback/webhook-token",
)
API_KEY: Final = SecretSpec(
    key="api_key",
    what="API key",
    origin="the receiving service's API settings",
    env_example="TEXTBACK_WEBHOOK_API_KEY",
    file_example="/etc/textback/webhook-api-key",
)
PASSWORD: Final = SecretSpec(
    key="password",
    what="HTTP Basic password",
    origin="the receiving service's API settings",
    env_example="TEXTBACK_WEBHOOK_PASSWORD",
    file_example="/etc/textback/webhook-password",
)
INBOUND_SECRET: Final = SecretSpec(
    key="inbound_secret",
    what="shared secret for signed callbacks",
    origin="a random string you give the sender of the callbacks too (openssl rand -hex 32)",
    env_example="TEXTBACK_WEBHOOK_INBOUND_SECRET",
    file_example="/etc/textback/webhook-inbound-secret",
)
SIGNATURE_HEADER: Final = "X-Textback-Signature"
TIMESTAMP_HEADER: Final = "X-Textback-Timestamp"
SIGNATURE_WINDOW: Final = 300.0  # seconds either side of our clock
DEFAULT_INBOUND_FIELDS: Final[Mapping[str, str]] = {
    "id": "id",
    "from": "from",
    "to": "to",
    "text": "text",
}
DEFAULT_STATUS_FIELDS: Final[Mapping[str, str]] = {
    "id": "id",
    "status": "status",
    "error_code": "error_code",
}
DEFAULT_DELIVERED: Final = ("delivered",)
DEFAULT_FAILED: Final = ("undelivered", "failed", "rejected", "expired")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
_PATH_STEP = re.compile(r"[^.]+")
_KEYS: Final = (
    "url",
    "method",
    "format",
    "fields",
    "headers",
    "sender",
    BEARER_TOKEN.env_key,
    BEARER_TOKEN.file_key,
    BEARER_TOKEN.credential_key,
    "api_key_header",
    API_KEY.env_key,
    API_KEY.file_key,
    API_KEY.credential_key,
    "username",
    PASSWORD.env_key,
    PASSWORD.file_key,
    PASSWORD.credential_key,
    "id_field",
    "idempotency_header",
    "timeout",
    INBOUND_SECRET.env_key,
    INBOUND_SECRET.file_key,
    INBOUND_SECRET.credential_key,
    "inbound_fields",
    "status_fields",
    "delivered_statuses",
    "failed_statuses",
    "error_codes",
    "provider_confirms_stop",
)
_HINTS: Final = {
    "bearer_token": secret_hint(BEARER_TOKEN),
    "token": secret_hint(BEARER_TOKEN),
    "api_key": secret_hint(API_KEY),
    "password": secret_hint(PASSWORD),
    "body": 'did you mean fields? e.g. fields = { to = "{to}", text = "{body}" }',
    "template": 'did you mean fields? e.g. fields = { to = "{to}", text = "{body}" }',
    "from": 'did you mean sender? e.g. sender = "+14155550100"',
    "content_type": 'did you mean format? format = "json" or "form"',
    "inbound_secret": secret_hint(INBOUND_SECRET),
    "secret": secret_hint(INBOUND_SECRET),
}
_SECRET_HEADERS: Final = ("authorization", "proxy-authorization", "x-api-key", "api-key")

Template = str | Mapping[str, "Template"]


class WebhookGateway(HttpAdapterBase):
    """Any HTTP endpoint that takes a number and a text."""

    name = "webhook"

    def __init__(
        self,
        *,
        url: str,
        method: str = "POST",
        body_format: str = "json",
        fields: Mapping[str, Template] = DEFAULT_FIELDS,
        headers: Mapping[str, str] | None = None,
        sender: str | None = None,
        bearer_token: Secret | None = None,
        api_key_header: str | None = None,
        api_key: Secret | None = None,
        username: str | None = None,
        password: Secret | None = None,
        id_field: str | None = None,
        idempotency_header: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        inbound_secret: Secret | None = None,
        inbound_fields: Mapping[str, str] = DEFAULT_INBOUND_FIELDS,
        status_fields: Mapping[str, str] = DEFAULT_STATUS_FIELDS,
        delivered_statuses: tuple[str, ...] = DEFAULT_DELIVERED,
        failed_statuses: tuple[str, ...] = DEFAULT_FAILED,
        error_codes: Mapping[str, FailureKind] | None = None,
        provider_confirms_stop: bool = False,
    ) -> None:
        super().__init__(timeout=timeout)
        self.url = url
        self.method = method.upper()
        self.body_format = body_format
        self.fields = fields
        self.headers = dict(headers or {})
        self.sender = sender
        self.bearer_token = bearer_token
        self.api_key_header = api_key_header
        self.api_key = api_key
        self.username = username
        self.password = password
        self.id_field = id_field
        self.idempotency_header = idempotency_header
        # The receiver promises to drop a repeated reference: a retry cannot text twice.
        self.idempotent = idempotency_header is not None
        self._id_missing_logged = False
        self.inbound_secret = inbound_secret
        self.inbound_fields = {**DEFAULT_INBOUND_FIELDS, **inbound_fields}
        self.status_fields = {**DEFAULT_STATUS_FIELDS, **status_fields}
        self.delivered_statuses = frozenset(w.lower() for w in delivered_statuses)
        self.failed_statuses = frozenset(w.lower() for w in failed_statuses)
        self.error_codes = dict(error_codes or {})
        self.provider_confirms_stop = provider_confirms_stop

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        problems: list[str] = []
        s = Table(problems, path, table, _KEYS, _HINTS)
        url = s.url(
            "url",
            "",
            required=True,
            fix='the endpoint that takes the text, e.g. url = "https://crm.example.com/api/sms"',
        )
        if url and (URL(url).user is not None or URL(url).password is not None):
            # The URL is not shown: it holds a credential.
            s.problem(
                "url",
                "has a user name or password in it — credentials never go in the TOML; "
                "use username with password_env / password_file",
            )
        method = s.choice("method", "post", METHODS, fix='"POST" (default), "PUT" or "GET"')
        format_ = s.choice(
            "format", "json", FORMATS, fix='"json" (default) or "form" (a url-encoded form)'
        )
        if method == "get" and "format" in table and "format" not in s.bad:
            s.problem("format", "GET sends the fields in the query string — remove format")
        fields = _fields(s, nested=method != "get" and format_ == "json")
        headers = _headers(s)
        sender = read_e164(
            s, "sender", fix='the number texts come from, for {sender}, e.g. "+14155550100"'
        )
        has_bearer = BEARER_TOKEN.named_in(table)
        bearer, _ = read_secret(s, base, require_secrets and has_bearer, BEARER_TOKEN)
        api_key_header = s.string(
            "api_key_header", "", fix='the header that carries the API key, e.g. "X-Api-Key"'
        )
        if api_key_header and not _TOKEN.fullmatch(api_key_header):
            s.problem("api_key_header", f"{show(api_key_header)} is not a header name")
        api_key, _ = read_secret(s, base, require_secrets and bool(api_key_header), API_KEY)
        username = s.string("username", "", fix="the HTTP Basic user name; leave it out for none")
        if ":" in username or any(c in username for c in "\r\n"):
            s.problem("username", "contains a colon or a line break — HTTP Basic cannot carry it")
        password, _ = read_secret(s, base, require_secrets and bool(username), PASSWORD)
        logins = [
            what
            for what, keys in (
                ("a bearer token", BEARER_TOKEN.keys),
                ("an API key", (*API_KEY.keys, "api_key_header")),
                ("HTTP Basic", (*PASSWORD.keys, "username")),
            )
            if any(key in table for key in keys)
        ]
        if len(logins) > 1:
            s.problems.append(
                f"{path}: {' and '.join(logins)} are both set — keep one way to log in"
            )
        for secret_keys, name_key, what in (
            (API_KEY.keys, "api_key_header", "the header name"),
            (PASSWORD.keys, "username", "the HTTP Basic user name"),
        ):
            if any(key in table for key in secret_keys) and name_key not in table:
                s.problem(name_key, f"missing — set it to {what} that goes with the secret")
        id_field = s.string(
            "id_field",
            "",
            fix='where the message id is in the JSON reply, e.g. id_field = "data.id"',
        )
        if id_field and not all(_PATH_STEP.fullmatch(step) for step in id_field.split(".")):
            s.problem("id_field", f'{show(id_field)} has an empty step — write e.g. "data.id"')
        idempotency_header = s.string(
            "idempotency_header",
            "",
            fix='the header the receiver dedupes on, e.g. idempotency_header = "Idempotency-Key"',
        )
        if idempotency_header and not _TOKEN.fullmatch(idempotency_header):
            s.problem(
                "idempotency_header",
                f'{show(idempotency_header)} is not a header name — e.g. "Idempotency-Key"',
            )
        timeout = read_timeout(s)
        inbound_secret = read_callback_secret(s, base, require_secrets, INBOUND_SECRET)
        inbound_fields = _field_paths(s, "inbound_fields", DEFAULT_INBOUND_FIELDS)
        status_fields = _field_paths(s, "status_fields", DEFAULT_STATUS_FIELDS)
        delivered = s.strings(
            "delivered_statuses", DEFAULT_DELIVERED, example='["delivered", "read"]'
        )
        failed = s.strings("failed_statuses", DEFAULT_FAILED, example='["failed", "undelivered"]')
        both = {w.lower() for w in delivered} & {w.lower() for w in failed}
        if both:
            s.problem(
                "failed_statuses",
                f"{', '.join(sorted(map(show, both)))} also in delivered_statuses — "
                "a status is one or the other",
            )
        error_codes = _error_codes(s)
        confirms = s.boolean(
            "provider_confirms_stop",
            False,
            fix="true when the provider itself answers STOP with a confirmation text",
        )
        if problems:
            raise ConfigError(problems)
        return cls(
            url=url,
            method=method,
            body_format=format_,
            fields=fields,
            headers=headers,
            sender=sender,
            bearer_token=bearer,
            api_key_header=api_key_header or None,
            api_key=api_key,
            username=username or None,
            password=password,
            id_field=id_field or None,
            idempotency_header=idempotency_header or None,
            timeout=timeout,
            inbound_secret=inbound_secret,
            inbound_fields=inbound_fields,
            status_fields=status_fields,
            delivered_statuses=delivered,
            failed_statuses=failed,
            error_codes=error_codes,
            provider_confirms_stop=confirms,
        )

    def values(self, sms: OutgoingSms) -> dict[str, str]:
        return {
            "to": sms.to,
            "body": sms.body,
            "reference": sms.reference,
            "sender": sms.sender or self.sender or "",
        }

    def payload(self, sms: OutgoingSms) -> dict[str, object]:
        """The fields with the placeholders filled in."""
        return _fill(self.fields, self.values(sms))

    def request_headers(self, sms: OutgoingSms) -> dict[str, str]:
        headers = dict(self.headers)
        if self.idempotency_header is not None:
            headers[self.idempotency_header] = sms.reference
        if self.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.bearer_token.reveal()}"
        if self.api_key_header is not None and self.api_key is not None:
            headers[self.api_key_header] = self.api_key.reveal()
        return headers

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        if (self.username is not None and self.password is None) or (
            self.api_key_header is not None and self.api_key is None
        ):
            raise GatewayError(FailureKind.CONFIG, "webhook: a configured secret was not read")
        auth = (self.username, self.password.reveal()) if self.username and self.password else None
        payload = self.payload(sms)
        flat = {key: str(value) for key, value in payload.items()}
        if self.method == "GET":
            reply = await self.request(
                "GET", self.url, params=flat, auth=auth, headers=self.request_headers(sms)
            )
        elif self.body_format == "form":
            reply = await self.request(
                self.method, self.url, data=flat, auth=auth, headers=self.request_headers(sms)
            )
        else:
            reply = await self.request(
                self.method, self.url, json=payload, auth=auth, headers=self.request_headers(sms)
            )
        if not 200 <= reply.status < 300:
            raise failure(reply)
        return SendReceipt(self._provider_id(reply))

    async def check(self) -> str:
        """Nothing: an arbitrary endpoint has no request that is known to send nothing."""
        return f"{NOTHING_TO_CHECK}: `textback send-test` sends one"

    def _provider_id(self, reply: HttpReply) -> str:
        if self.id_field is None:
            return ""
        steps = [int(step) if step.isdigit() else step for step in self.id_field.split(".")]
        found = reply.field(*steps)
        if isinstance(found, str | int) and not isinstance(found, bool) and str(found):
            return str(found)
        # Accepted all the same: the text is on its way, only its id is unknown.
        if not self._id_missing_logged:
            self._id_missing_logged = True
            log.warning(
                "webhook_id_missing",
                id_field=self.id_field,
                status=reply.status,
                hint="check id_field",
            )
        return ""

    # -- replies and receipts -------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """The HMAC of ``<timestamp>.<body>`` with the shared secret, timestamp within 300 s."""
        if self.inbound_secret is None:
            raise BadWebhook(403, "webhook: no inbound_secret configured, callbacks are refused")
        stamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
        given = request.headers.get(SIGNATURE_HEADER, "").strip()
        if not stamp or not given:
            raise BadWebhook(403, f"webhook: no {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
        if not re.fullmatch(r"[0-9]{1,12}", stamp):
            raise BadWebhook(403, f"webhook: {TIMESTAMP_HEADER} is not Unix seconds")
        if abs(request.now - int(stamp)) > SIGNATURE_WINDOW:
            raise BadWebhook(
                403, f"webhook: stale, signed {request.now - int(stamp):+.0f} s from our clock"
            )
        scheme, _, digest = given.partition("=")
        if scheme.strip().lower() != "sha256":
            raise BadWebhook(403, f"webhook: {SIGNATURE_HEADER} is not sha256=<hex>")
        expected = hmac.new(
            self.inbound_secret.reveal().encode(),
            stamp.encode() + b"." + request.body,
            hashlib.sha256,
        ).hexdigest()
        if not hmac.compare_digest(
            expected.encode(), digest.strip().lower().encode(errors="replace")
        ):
            raise BadWebhook(403, "webhook: signature does not match")

    def parse_inbound(self, request: WebhookRequest) -> InboundSms:
        payload = _payload(request)
        paths = self.inbound_fields
        return InboundSms(
            provider_id=_text(payload, paths["id"], "id", identifier=True),
            sender=_text(payload, paths["from"], "from"),
            recipient=_text(payload, paths["to"], "to"),
            body=_text(payload, paths["text"], "text", empty=True),
        )

    def parse_status(self, request: WebhookRequest) -> DeliveryReceipt:
        payload = _payload(request)
        paths = self.status_fields
        status = _text(payload, paths["status"], "status")
        code = _text(payload, paths["error_code"], "error_code", identifier=True, optional=True)
        delivered: bool | None = None  # neither list: still on its way
        if status.lower() in self.delivered_statuses:
            delivered = True
        elif status.lower() in self.failed_statuses:
            delivered = False
        return DeliveryReceipt(
            provider_id=_text(payload, paths["id"], "id", identifier=True),
            delivered=delivered,
            status=status,
            error_code=code,
            kind=self.error_codes.get(code, FailureKind.PERMANENT) if delivered is False else None,
        )

    def webhook_reply(self) -> WebhookReply:
        return WebhookReply()


def _payload(request: WebhookRequest) -> Mapping[str, object]:
    """The callback's fields: a JSON object, or a form with one value per field."""
    if media_type(request) == "application/x-www-form-urlencoded":
        form = form_fields(request.body)
        return {name: one(form, name) for name in form}
    return json_object(request.body)


def _text(
    payload: Mapping[str, object],
    path: str,
    what: str,
    *,
    identifier: bool = False,
    empty: bool = False,
    optional: bool = False,
) -> str:
    """The string at a dotted ``path``; numbers are accepted for ids and codes."""
    node: object = payload
    for step in path.split("."):
        if isinstance(node, Mapping) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            node = None
            break
    if node is None and optional:
        return ""
    if identifier and isinstance(node, int) and not isinstance(node, bool):
        return str(node)
    if isinstance(node, str) and (node or empty or optional):
        return node
    raise BadWebhook(400, f"webhook: no {what} (a string at {path!r})")


def _field_paths(s: Table, name: str, defaults: Mapping[str, str]) -> Mapping[str, str]:
    raw = s.data.get(name)
    if raw is None:
        return defaults
    example = ", ".join(f'{key} = "{value}"' for key, value in defaults.items())
    if not isinstance(raw, dict):
        s.problem(name, f"expected a table, got {show(raw)} — e.g. {name} = {{ {example} }}")
        return defaults
    paths: dict[str, str] = {}
    for key, value in raw.items():
        if key not in defaults:
            s.problem(name, f"{quote(key)}: not a field here — fields: {', '.join(defaults)}")
        elif not isinstance(value, str) or not all(
            _PATH_STEP.fullmatch(step) for step in value.split(".")
        ):
            s.problem(
                name,
                f'{key}: expected a field name or dotted path like "data.id", got {show(value)}',
            )
        else:
            paths[key] = value
    return paths


def _error_codes(s: Table) -> dict[str, FailureKind]:
    raw = s.data.get("error_codes")
    if raw is None:
        return {}
    kinds = [kind.value for kind in FailureKind]
    example = 'error_codes = { not_sms_capable = ["30006"], opted_out = ["21610"] }'
    if not isinstance(raw, dict):
        s.problem("error_codes", f"expected a table of kind = [codes], got {show(raw)} — {example}")
        return {}
    codes: dict[str, FailureKind] = {}
    for kind, listed in raw.items():
        if kind not in kinds:
            s.problem(
                "error_codes",
                f"{quote(kind)}: not a kind — kinds: {', '.join(kinds)}",
            )
            continue
        if not isinstance(listed, list) or not all(
            isinstance(c, str | int) and not isinstance(c, bool) and str(c).strip() for c in listed
        ):
            s.problem("error_codes", f"{kind}: expected an array of codes — {example}")
            continue
        for code in listed:
            text = str(code).strip()
            if text in codes:
                s.problem("error_codes", f"code {show(text)} is listed twice")
            codes[text] = FailureKind(kind)
    return codes


# -- callback helpers shared by the adapters (plivo, voipms, console, webhook) --------------

MIN_SECRET_CHARS: Final = 24
_URL_SAFE: Final = re.compile(r"[A-Za-z0-9._~-]+")


def read_callback_secret(
    s: Table, base: Path, require_secrets: bool, spec: SecretSpec, *, in_url: bool = False
) -> Secret | None:
    """An optional secret that authenticates callbacks: at least 24 characters, and only
    characters that need no escaping when it travels in a URL (``in_url``).

    Absent, it is None and the adapter refuses every callback. Problems never show it.
    """
    secret, _ = read_secret(s, base, require_secrets and spec.named_in(s.data), spec)
    if secret is None:
        return None
    key = next(key for key in spec.keys if key in s.data)
    value = secret.reveal()
    how = "e.g. the output of openssl rand -hex 24"
    if len(value) < MIN_SECRET_CHARS:
        s.problem(key, f"the {spec.what} is shorter than {MIN_SECRET_CHARS} characters — {how}")
        return None
    if in_url and not _URL_SAFE.fullmatch(value):
        s.problem(
            key,
            f"the {spec.what} goes in a URL: use only letters, digits and - _ . ~ — {how}",
        )
        return None
    return secret


def media_type(request: WebhookRequest) -> str:
    """The Content-Type without its parameters, lower case ("" when absent)."""
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def query_fields(url: str) -> dict[str, list[str]]:
    """The decoded query of ``url``, every value of every name (blank ones kept)."""
    try:
        return parse_qs(urlsplit(url).query, keep_blank_values=True, errors="strict")
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadWebhook(400, "query string is not UTF-8") from exc


def form_fields(body: bytes) -> dict[str, list[str]]:
    """A url-encoded form body, every value of every name (blank ones kept)."""
    try:
        return parse_qs(body.decode(), keep_blank_values=True, errors="strict")
    except ValueError as exc:
        raise BadWebhook(400, "form body is not UTF-8") from exc


def json_object(body: bytes) -> dict[str, object]:
    """A body that must be one JSON object."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadWebhook(400, "body is not JSON") from exc
    if not isinstance(data, dict):
        raise BadWebhook(400, "body is not a JSON object")
    return data


def one(fields: Mapping[str, list[str]], name: str) -> str | None:
    """The value of a field given at most once; BadWebhook(400) when repeated."""
    values = fields.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadWebhook(400, f"{name} given {len(values)} times")
    return values[0]


def check_url_token(request: WebhookRequest, token: Secret | None, *, who: str, key: str) -> None:
    """BadWebhook(403) unless the URL's ``token`` query parameter is ``token``."""
    if token is None:
        raise BadWebhook(403, f"{who}: no {key} configured, callbacks are refused")
    given = query_fields(request.url).get("token", [])
    if len(given) != 1:
        raise BadWebhook(403, f"{who}: the callback URL has {len(given)} token parameters, not 1")
    if not hmac.compare_digest(given[0].encode(), token.reveal().encode()):
        raise BadWebhook(403, f"{who}: wrong token in the callback URL")


def _fields(s: Table, *, nested: bool) -> Mapping[str, Template]:
    raw = s.data.get("fields")
    if raw is None:
        return DEFAULT_FIELDS
    if not isinstance(raw, dict) or not raw:
        s.problem(
            "fields",
            f"expected a table of field = template, got {show(raw)} — e.g. "
            'fields = { to = "{to}", text = "{body}" }',
        )
        return DEFAULT_FIELDS
    return _checked(s, raw, "", nested=nested)


def _checked(
    s: Table, raw: Mapping[str, object], prefix: str, *, nested: bool
) -> Mapping[str, Template]:
    checked: dict[str, Template] = {}
    allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    for key, value in raw.items():
        where = f"{prefix}{key}"
        if isinstance(value, dict) and nested:
            checked[key] = _checked(s, value, f"{where}.", nested=nested)
            continue
        if not isinstance(value, str):
            shape = "a string template" + (" or a table" if nested else "")
            s.problem("fields", f"{where}: expected {shape}, got {show(value)}")
            continue
        problem = _template_problem(value)
        if problem is not None:
            s.problem("fields", f"{where}: {problem} — placeholders: {allowed}")
            continue
        checked[key] = value
    return checked


def _template_problem(template: str) -> str | None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return (
            f"{show(template)} has an unmatched {{ or }} (write {{{{ and }}}} for literal braces)"
        )
    for _, name, spec, conversion in parsed:
        if name is not None and (name not in PLACEHOLDERS or spec or conversion):
            return f"unknown placeholder {{{name}}}"
    return None


def _fill(fields: Mapping[str, Template], values: Mapping[str, str]) -> dict[str, object]:
    return {
        key: template.format_map(values) if isinstance(template, str) else _fill(template, values)
        for key, template in fields.items()
    }


def _headers(s: Table) -> dict[str, str]:
    raw = s.data.get("headers")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        s.problem(
            "headers",
            f"expected a table of header = value, got {show(raw)} — "
            'e.g. headers = { "X-Site" = "main" }',
        )
        return {}
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if not _TOKEN.fullmatch(name):
            s.problem("headers", f"{show(name)} is not a header name")
        elif name.lower() in _SECRET_HEADERS:
            # The value is not shown: it is a credential.
            s.problem(
                "headers",
                f"{name}: credentials never go in the TOML — use bearer_token_env / "
                "bearer_token_file, api_key_header with api_key_env / api_key_file, "
                "or username with password_env / password_file",
            )
        elif not isinstance(value, str) or any(c in value for c in "\r\n"):
            s.problem("headers", f"{name}: expected a one-line string, got {show(value)}")
        else:
            headers[name] = value
    return headers
