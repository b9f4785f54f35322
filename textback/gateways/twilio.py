"""Twilio, and SignalWire's Twilio-compatible (LaML) API: one code path, two front doors.

Send: form POST ``{base}/2010-04-01/Accounts/{account}/Messages.json`` with Basic
auth; 201 carries the message ``sid``. Errors are JSON ``{"code": 21610,
"message": ..., "status": 400}``; ``TWILIO_CODES`` maps the codes that matter.

Not idempotent: Twilio's Message create takes no idempotency key, so a request
cut off after Twilio accepted it cannot be retried without risking a second text.

Webhooks: replies and status callbacks are form POSTs (or GETs, when the number is
set to call back with GET) signed in ``X-Twilio-Signature`` (SignalWire:
``X-SignalWire-Signature``) = base64(HMAC-SHA1(key, URL + every parameter's name
and value, sorted)). The key is the account's auth token (SignalWire: the
project's Signing Key). A JSON body is signed through a ``bodySHA256`` query
parameter instead; Messaging callbacks are forms, so a JSON body is read only as a
flat object.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final, Self
from urllib.parse import parse_qsl, urlsplit

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
    secret_hint,
    vendor_code,
)
from textback.tomltable import Secret, SecretSpec, Table, read_secret

# Codes Twilio returns when creating a Message, and the 30xxx codes of failed
# deliveries (status callbacks use the same table).
TWILIO_CODES: Final = code_table(
    opted_out=(21610,),  # the recipient replied STOP
    # Facts about the line: landline, not mobile, unreachable, unknown handset, blocked.
    not_sms_capable=(21612, 21614, 21635, 30004, 30005, 30006),
    # Account, sender, region or registration: every later send would fail the same way.
    config=(
        20003,  # authentication failed
        20005,  # account not active
        20404,  # account not found (wrong account_sid)
        21408,  # region not enabled in Geo Permissions
        21601,  # From is not an SMS-capable number
        21606,  # From is not a valid sender for this destination / not yours
        21608,  # trial account: the recipient is not a verified number
        21609,  # invalid StatusCallback URL
        21659,  # From is not a Twilio number
        21660,  # From belongs to another account
        30002,  # account suspended
        30032,  # toll-free number not verified
        30034,  # sender not registered for US A2P 10DLC
        30035,  # 10DLC campaign not active
    ),
    filtered=(30007,),  # carrier filtering
    transient=(
        20429,  # too many requests
        21611,  # sender's queue is full
        30001,  # queue overflow
        30003,  # handset off or out of coverage
        30008,  # unknown delivery error
        30022,  # 10DLC throughput exceeded
    ),
    # 21211 "invalid To": a verdict on the number's format that Twilio's numbering data may
    # revise, and the rejection costs nothing, so the number is not blacklisted for it.
    permanent=(21211, 21617),  # 21617: body too long
)

ACCOUNT_SID: Final = re.compile(r"AC[0-9a-fA-F]{32}")
SERVICE_SID: Final = re.compile(r"MG[0-9a-fA-F]{32}")
API_KEY_SID: Final = re.compile(r"SK[0-9a-fA-F]{32}")
PROJECT_ID: Final = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
SPACE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_VALIDITY: Final = 36000  # Twilio's ceiling for ValidityPeriod, in seconds

AUTH_TOKEN: Final = SecretSpec(
    key="auth_token",
    what="Twilio auth token",
    origin="the Twilio console (Account Info, Auth Token)",
    env_example="TWILIO_AUTH_TOKEN",
    file_example="/etc/textback/twilio-auth-token",
)
API_KEY_SECRET: Final = SecretSpec(
    key="api_key_secret",
    what="Twilio API key secret",
    origin="the Twilio console (API keys & tokens), shown once when the key is created",
    env_example="TWILIO_API_KEY_SECRET",
    file_example="/etc/textback/twilio-api-key-secret",
)
SIGNALWIRE_TOKEN: Final = SecretSpec(
    key="api_token",
    what="SignalWire API token",
    origin="the SignalWire space's API page (a token with the Messaging scope)",
    env_example="SIGNALWIRE_API_TOKEN",
    file_example="/etc/textback/signalwire-api-token",
)
# Twilio signs webhooks with the auth token even when sends use an API key.
WEBHOOK_AUTH_TOKEN: Final = SecretSpec(
    key="webhook_auth_token",
    what="Twilio auth token (to check webhook signatures)",
    origin="the Twilio console (Account Info, Auth Token)",
    env_example="TWILIO_AUTH_TOKEN",
    file_example="/etc/textback/twilio-auth-token",
)
SIGNALWIRE_SIGNING_KEY: Final = SecretSpec(
    key="signing_key",
    what="SignalWire Signing Key",
    origin="the SignalWire space's API page (Signing Key)",
    env_example="SIGNALWIRE_SIGNING_KEY",
    file_example="/etc/textback/signalwire-signing-key",
)

_HINTS: Final = {
    "auth_token": secret_hint(AUTH_TOKEN),
    "api_key_secret": secret_hint(API_KEY_SECRET),
    "api_token": secret_hint(SIGNALWIRE_TOKEN),
    "webhook_auth_token": secret_hint(WEBHOOK_AUTH_TOKEN),
    "signing_key": secret_hint(SIGNALWIRE_SIGNING_KEY),
    "from_": 'did you mean "from"?',
    "sender": 'did you mean "from"?',
    "from_number": 'did you mean "from"?',
}


class TwilioCompatibleGateway(HttpAdapterBase):
    """The send path and the webhooks both Twilio and SignalWire use."""

    name = "twilio"
    idempotent = False
    # Where the signature is, in order of preference.
    SIGNATURE_HEADERS: tuple[str, ...] = ("X-Twilio-Signature",)
    # What the signing key is called, for the reason of a refused callback.
    SIGNING_KEY_NAME = "auth token"

    def __init__(
        self,
        *,
        api_base: str,
        account: str,
        user: str,
        secret: Secret | None,
        sender: str | None,
        service_sid: str | None = None,
        status_callback: str | None = None,
        validity_period: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        signing_key: Secret | None = None,
        provider_confirms_stop: bool = True,
    ) -> None:
        super().__init__(timeout=timeout)
        self.signing_key = signing_key
        self.provider_confirms_stop = provider_confirms_stop
        self.account = account
        self.account_url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account}"
        self.url = f"{self.account_url}/Messages.json"
        self.user = user
        self.secret = secret
        self.sender = sender
        self.service_sid = service_sid
        self.status_callback = status_callback
        self.validity_period = validity_period

    def fields(self, sms: OutgoingSms) -> dict[str, str]:
        """The form fields of the Message create request."""
        fields = {"To": sms.to, "Body": sms.body}
        if self.service_sid is not None:
            fields["MessagingServiceSid"] = self.service_sid
            # With a Messaging Service, From picks that sender out of the service's pool.
            if sms.sender:
                fields["From"] = sms.sender
        elif sms.sender or self.sender:
            fields["From"] = sms.sender or self.sender or ""
        if self.status_callback is not None:
            fields["StatusCallback"] = self.status_callback
        if self.validity_period is not None:
            fields["ValidityPeriod"] = str(self.validity_period)
        return fields

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        if self.secret is None:
            raise GatewayError(FailureKind.CONFIG, f"{self.name}: no credentials configured")
        reply = await self.post(
            self.url, data=self.fields(sms), auth=(self.user, self.secret.reveal())
        )
        if 200 <= reply.status < 300:
            sid = reply.field("sid")
            if isinstance(sid, str) and sid:
                return SendReceipt(sid)
            raise accepted_unreadable(reply, "a message sid")
        raise refusal(reply)

    async def check(self) -> str:
        """Fetch the account (a GET: nothing is sent): the credentials work, the account is active.

        A Twilio API key may not read the Account resource, so with one the first
        page of the message list is fetched instead, which proves the key alone.
        """
        if self.secret is None:
            raise GatewayError(FailureKind.CONFIG, f"{self.name}: no credentials configured")
        auth = (self.user, self.secret.reveal())
        if self.user != self.account:
            reply = await self.get(self.url, params={"PageSize": "1"}, auth=auth)
            if not 200 <= reply.status < 300:
                raise refusal(reply)
            return f"API key {self.user} accepted for account {self.account}"
        reply = await self.get(f"{self.account_url}.json", auth=auth)
        if not 200 <= reply.status < 300:
            raise refusal(reply)
        status, name, kind = (reply.field(key) for key in ("status", "friendly_name", "type"))
        named = f" ({name})" if isinstance(name, str) and name else ""
        if isinstance(status, str) and status.lower() != "active":
            raise GatewayError(
                FailureKind.CONFIG,
                f"account {self.account}{named} is {status} — reactivate it in the console",
            )
        trial = ", a trial: it texts verified numbers only" if kind == "Trial" else ""
        return f"account {self.account}{named} {status or 'answers'}{trial}"

    # -- webhooks ------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        if self.signing_key is None:
            raise BadWebhook(403, f"no {self.SIGNING_KEY_NAME} configured to check signatures")
        signature = first_header(request.headers, self.SIGNATURE_HEADERS)
        if not signature:
            raise BadWebhook(403, f"no {self.SIGNATURE_HEADERS[0]} header")
        params = _signed_params(request)
        key = self.signing_key.reveal()
        given = signature.encode()
        # Every form is computed, so the time taken says nothing about which one matched.
        matches = [
            hmac.compare_digest(twilio_signature(key, url, params).encode(), given)
            for url in port_forms(request.url)
        ]
        if not any(matches):
            raise BadWebhook(403, "signature does not match")

    def parse_inbound(self, request: WebhookRequest) -> InboundSms | None:
        fields = _fields(request)
        if "Body" not in fields and "MessageStatus" in fields:
            return None  # a status callback sent to the inbound URL: no reply in it
        sid = _sid(fields)
        _require(fields, ("From", "To", "Body"))
        return InboundSms(
            provider_id=sid, sender=fields["From"], recipient=fields["To"], body=fields["Body"]
        )

    def parse_status(self, request: WebhookRequest) -> DeliveryReceipt | None:
        fields = _fields(request)
        if "MessageStatus" not in fields and "Body" in fields:
            return None  # a reply sent to the status URL: no receipt in it
        sid = _sid(fields)
        status = fields.get("MessageStatus", "").strip().lower()
        if not status:
            raise BadWebhook(400, "no MessageStatus")
        code = fields.get("ErrorCode", "").strip()
        delivered = True if status in DELIVERED else False if status in UNDELIVERED else None
        return DeliveryReceipt(
            provider_id=sid,
            delivered=delivered,
            status=status,
            error_code=code,
            kind=TWILIO_CODES.get(code, FailureKind.PERMANENT) if delivered is False else None,
        )

    def webhook_reply(self) -> WebhookReply:
        # Empty TwiML: Twilio sends nothing back. Any other body would be read as TwiML.
        return WebhookReply(200, "text/xml", EMPTY_TWIML)


def refusal(reply: HttpReply) -> GatewayError:
    """The GatewayError for an error reply (``{"code": 21610, "message": ...}``)."""
    message = reply.field("message")
    return failure(
        reply,
        code=vendor_code(reply.field("code")),
        codes=TWILIO_CODES,
        detail=message if isinstance(message, str) and message else "",
    )


EMPTY_TWIML: Final = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
DELIVERED: Final = frozenset({"delivered", "read"})
UNDELIVERED: Final = frozenset({"undelivered", "failed", "canceled"})
DEFAULT_PORTS: Final = {"https": "443", "http": "80"}


def twilio_signature(key: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """base64(HMAC-SHA1(key, url + name+value of every parameter)), as Twilio signs.

    Parameters sorted by name, a name's values sorted, a repeated pair counted once
    (as Twilio's own validator does).
    """
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    text = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(key.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def port_forms(url: str) -> tuple[str, ...]:
    """``url`` as given, without its port, and with the scheme's default port when it has none.

    Twilio signs either the URL it was given or that URL with the default port
    spelled out, and proxies add or drop ``:443``: any of these may be the one signed.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise BadWebhook(400, "unreadable request URL") from exc
    start = url.find("//") + 2
    if start < 2 or url[start : start + len(parts.netloc)] != parts.netloc:
        return (url,)
    head, tail = url[:start], url[start + len(parts.netloc) :]
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host, port = hostport, ""
    if hostport.rfind(":") > hostport.rfind("]"):  # a colon inside [...] is IPv6, not a port
        host, _, port = hostport.rpartition(":")
    bare = f"{head}{userinfo}{at}{host}{tail}"
    if port:
        return (url, bare)
    default = DEFAULT_PORTS.get(parts.scheme.lower())
    return (url, f"{head}{userinfo}{at}{host}:{default}{tail}") if default else (url,)


def first_header(headers: Mapping[str, str], names: Sequence[str]) -> str:
    """The first of ``names`` present in ``headers`` (any case), or ""."""
    lowered = {key.lower(): value for key, value in headers.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value:
            return value.strip()
    return ""


def _query(url: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(urlsplit(url).query, keep_blank_values=True, errors="strict")
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadWebhook(400, "unreadable query string") from exc


def _body_hash(request: WebhookRequest) -> str | None:
    """The ``bodySHA256`` of the URL, when the body is JSON signed that way."""
    for name, value in _query(request.url):
        if name == "bodySHA256":
            return value
    return None


def _form(body: bytes) -> list[tuple[str, str]]:
    """The pairs of an ``application/x-www-form-urlencoded`` UTF-8 body; BadWebhook(400) if not."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadWebhook(400, "body is not a UTF-8 form") from exc


def _signed_params(request: WebhookRequest) -> list[tuple[str, str]]:
    """The parameters the signature covers besides the URL."""
    expected = _body_hash(request)
    if expected is not None:
        actual = hashlib.sha256(request.body).hexdigest()
        if not hmac.compare_digest(actual.encode(), expected.encode()):
            raise BadWebhook(403, "body does not match bodySHA256")
        return []
    if request.method.upper() == "GET":
        return []  # a GET callback's parameters are in the URL, signed with it
    return _form(request.body)


def _fields(request: WebhookRequest) -> dict[str, str]:
    """The callback's parameters by name (the first value of a repeated one)."""
    if _body_hash(request) is not None:
        pairs = _json_pairs(request.body)
    elif request.method.upper() == "GET":
        pairs = _query(request.url)
    else:
        pairs = _form(request.body)
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def _json_pairs(body: bytes) -> list[tuple[str, str]]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise BadWebhook(400, "body is not JSON") from exc
    if not isinstance(document, dict):
        raise BadWebhook(400, "JSON body is not an object")
    return [(name, value) for name, value in document.items() if isinstance(value, str)]


def _sid(fields: Mapping[str, str]) -> str:
    sid = (fields.get("MessageSid") or fields.get("SmsSid", "")).strip()
    if not sid:
        raise BadWebhook(400, "no MessageSid")
    return sid


def _require(fields: Mapping[str, str], names: Sequence[str]) -> None:
    """BadWebhook(400) naming the first missing field (names only: values are phone numbers)."""
    for name in names:
        if name not in fields or (name != "Body" and not fields[name].strip()):
            raise BadWebhook(400, f"no {name}")


def _common(s: Table) -> tuple[str | None, int | None, float]:
    status_callback = (
        s.url(
            "status_callback",
            "",
            fix="the https:// URL where the provider should post delivery reports, or remove it",
        )
        or None
    )
    if status_callback and "_" in (urlsplit(status_callback).hostname or ""):
        # Twilio refuses such a URL on every send (21609).
        s.problem("status_callback", "Twilio does not accept an underscore in the host name")
        status_callback = None
    validity = s.integer(
        "validity_period",
        0,
        ok=lambda v: 1 <= v <= MAX_VALIDITY,
        expected=f"whole seconds from 1 to {MAX_VALIDITY}",
        fix="how long the text may wait in the provider's queue before it is dropped, "
        "e.g. validity_period = 3600",
    )
    return status_callback, validity or None, read_timeout(s)


CONFIRMS_STOP_FIX: Final = (
    "true when the provider answers STOP with its own confirmation text (textback then "
    "sends none), false to have textback send one"
)


def read_confirms_stop(s: Table, default: bool) -> bool:
    return s.boolean("provider_confirms_stop", default, fix=CONFIRMS_STOP_FIX)


def optional_secret(s: Table, base: Path, require: bool, spec: SecretSpec) -> Secret | None:
    """A secret that may be left out; once named, it must be readable like any other."""
    secret, _ = read_secret(s, base, require and spec.named_in(s.data), spec)
    return secret


class TwilioGateway(TwilioCompatibleGateway):
    """Twilio Programmable Messaging."""

    name = "twilio"
    KEYS: Final = (
        "account_sid",
        "auth_token_file",
        "auth_token_env",
        "auth_token_credential",
        "api_key_sid",
        "api_key_secret_file",
        "api_key_secret_env",
        "api_key_secret_credential",
        "from",
        "messaging_service_sid",
        "status_callback",
        "validity_period",
        "timeout",
        "base_url",
        "webhook_auth_token_file",
        "webhook_auth_token_env",
        "webhook_auth_token_credential",
        "provider_confirms_stop",
    )

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        problems: list[str] = []
        s = Table(problems, path, table, cls.KEYS, _HINTS)
        account = (
            read_matching(
                s,
                "account_sid",
                ACCOUNT_SID,
                required=True,
                shape='an Account SID ("AC" and 32 hex digits)',
                fix='the Account SID from the Twilio console, e.g. account_sid = "AC0123…"',
                wrong_fix="copy it from the Twilio console's Account Info",
            )
            or ""
        )
        key_sid = read_matching(
            s,
            "api_key_sid",
            API_KEY_SID,
            shape='an API key SID ("SK" and 32 hex digits)',
            fix="copy it from the Twilio console (API keys & tokens), "
            "or remove it to use the auth token",
        )
        if "api_key_sid" in table:
            for stray in AUTH_TOKEN.keys:
                if stray in table:
                    s.problem(
                        stray,
                        "set together with api_key_sid — an API key authenticates with "
                        "api_key_secret_env, api_key_secret_file or "
                        "api_key_secret_credential; remove the auth token",
                    )
            secret, _ = read_secret(s, base, require_secrets, API_KEY_SECRET)
            signing_key = optional_secret(s, base, require_secrets, WEBHOOK_AUTH_TOKEN)
        else:
            for stray in API_KEY_SECRET.keys:
                if stray in table:
                    s.problem(stray, "an API key secret needs api_key_sid too — add it")
            for stray in WEBHOOK_AUTH_TOKEN.keys:
                if stray in table:
                    s.problem(
                        stray,
                        "needed only with api_key_sid — without it the auth token already "
                        "checks webhook signatures; remove it",
                    )
            secret, _ = read_secret(s, base, require_secrets, AUTH_TOKEN)
            signing_key = secret
        sender = read_e164(
            s,
            "from",
            fix='your Twilio number in E.164, e.g. from = "+14155550100" (short codes and '
            "alphanumeric senders go through a Messaging Service: messaging_service_sid)",
        )
        service = read_matching(
            s,
            "messaging_service_sid",
            SERVICE_SID,
            shape='a Messaging Service SID ("MG" and 32 hex digits)',
            fix="copy it from the Twilio console (Messaging, Services)",
        )
        check_sender(
            s,
            "messaging_service_sid",
            neither='set from = "+14155550100" (your Twilio number) or '
            'messaging_service_sid = "MG…"',
            both='set together with "from" — keep one: the service picks the sender itself',
        )
        status_callback, validity, timeout = _common(s)
        api_base = read_base_url(s, "https://api.twilio.com")
        # Twilio answers STOP on long codes and toll-free numbers itself (Advanced Opt-Out).
        confirms_stop = read_confirms_stop(s, True)
        if problems:
            raise ConfigError(problems)
        return cls(
            api_base=api_base,
            account=account,
            user=key_sid or account,
            secret=secret,
            sender=sender,
            service_sid=service,
            status_callback=status_callback,
            validity_period=validity,
            timeout=timeout,
            signing_key=signing_key,
            provider_confirms_stop=confirms_stop,
        )


class SignalWireGateway(TwilioCompatibleGateway):
    """SignalWire's LaML (Twilio-compatible) REST API; the account is the project ID."""

    name = "signalwire"
    # SignalWire signs in its own header and keeps Twilio's for compatibility.
    SIGNATURE_HEADERS = ("X-SignalWire-Signature", "X-Twilio-Signature")
    SIGNING_KEY_NAME = "Signing Key or API token"
    KEYS: Final = (
        "space",
        "project_id",
        "api_token_file",
        "api_token_env",
        "api_token_credential",
        "from",
        "status_callback",
        "validity_period",
        "timeout",
        "base_url",
        "signing_key_file",
        "signing_key_env",
        "signing_key_credential",
        "provider_confirms_stop",
    )

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        problems: list[str] = []
        s = Table(problems, path, table, cls.KEYS, _HINTS)
        project = (
            read_matching(
                s,
                "project_id",
                PROJECT_ID,
                required=True,
                shape='a Project ID (a UUID like "12345678-90ab-cdef-1234-567890abcdef")',
                fix="the Project ID from your SignalWire space's API page",
                wrong_fix="copy it from the API page of your space",
            )
            or ""
        )
        secret, _ = read_secret(s, base, require_secrets, SIGNALWIRE_TOKEN)
        signing_key = optional_secret(s, base, require_secrets, SIGNALWIRE_SIGNING_KEY)
        sender = read_e164(
            s,
            "from",
            required=True,
            fix='a number of your SignalWire space in E.164, e.g. from = "+14155550100"',
        )
        status_callback, validity, timeout = _common(s)
        space_fix = 'the name of your space: for "example.signalwire.com" write space = "example"'
        space = s.string("space", "", fix=space_fix).lower().removesuffix(".signalwire.com")
        if space and "space" not in s.bad and not SPACE.fullmatch(space):
            s.problem("space", f'"{space}" is not a space name — {space_fix}')
        api_base = s.url(
            "base_url",
            "",
            fix="leave it out and set space; set it only for a proxy or a test "
            '(the part before "/2010-04-01")',
        )
        if "space" in table and "base_url" in table:
            s.problem("base_url", "set together with space — keep only space")
        elif "space" not in table and "base_url" not in table:
            s.problem("space", f"missing — {space_fix}")
        # SignalWire documents no STOP confirmation of its own: textback sends one.
        confirms_stop = read_confirms_stop(s, False)
        if problems:
            raise ConfigError(problems)
        return cls(
            api_base=api_base or f"https://{space}.signalwire.com/api/laml",
            account=project,
            user=project,
            secret=secret,
            sender=sender,
            status_callback=status_callback,
            validity_period=validity,
            timeout=timeout,
            # Without a Signing Key, callbacks are checked with the API token.
            signing_key=signing_key or secret,
            provider_confirms_stop=confirms_stop,
        )
