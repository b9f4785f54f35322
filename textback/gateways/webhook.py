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
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Self

import structlog
from yarl import URL

from textback.errors import ConfigError
from textback.gateways.base import (
    FailureKind,
    GatewayError,
    OutgoingSms,
    SendReceipt,
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
from textback.tomltable import Secret, SecretSpec, Table, read_secret, show

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
    "api_key_header",
    API_KEY.env_key,
    API_KEY.file_key,
    "username",
    PASSWORD.env_key,
    PASSWORD.file_key,
    "id_field",
    "idempotency_header",
    "timeout",
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
        has_bearer = BEARER_TOKEN.env_key in table or BEARER_TOKEN.file_key in table
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
                ("a bearer token", (BEARER_TOKEN.env_key, BEARER_TOKEN.file_key)),
                ("an API key", (API_KEY.env_key, API_KEY.file_key, "api_key_header")),
                ("HTTP Basic", (PASSWORD.env_key, PASSWORD.file_key, "username")),
            )
            if any(key in table for key in keys)
        ]
        if len(logins) > 1:
            s.problems.append(
                f"{path}: {' and '.join(logins)} are both set — keep one way to log in"
            )
        for secret_keys, name_key, what in (
            ((API_KEY.env_key, API_KEY.file_key), "api_key_header", "the header name"),
            ((PASSWORD.env_key, PASSWORD.file_key), "username", "the HTTP Basic user name"),
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
