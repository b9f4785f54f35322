"""VoIP.ms REST API (``sendSMS``).

Send: GET ``{base}/api/v1/rest.php?api_username&api_password&method=sendSMS&did&dst&message``.
The reply is HTTP 200 whatever happened: ``{"status": "success", "sms": 23434}``
or ``{"status": "<error word>"}``; :data:`VOIPMS_STATUSES` maps the words.
VoIP.ms texts only North American numbers (``did`` and ``dst`` are 10 digits,
no "+1") and takes at most 160 bytes of UTF-8 per SMS, so a longer text is
refused here, before it costs a request. The API also refuses callers whose IP
address is not on the account's allow-list.

Not idempotent: sendSMS takes no client reference, so a request cut off after
VoIP.ms accepted it cannot be retried without risking a second text.

Replies: VoIP.ms calls the DID's "SMS URL Callback" (DID Numbers, Manage DIDs,
SMS/MMS), a URL template it fills in, with a GET. It signs nothing, so the URL
carries a long random token (``webhook_token_env`` / ``webhook_token_file``,
at least 24 characters) that :meth:`VoipMsGateway.verify` checks; without one
configured every callback is refused. The template to enter::

    https://<public_url>/hooks/voipms/inbound?token=<token>&from={FROM}&to={TO}&message={MESSAGE}&id={ID}&date={TIMESTAMP}

VoIP.ms sends no delivery receipts and does not filter STOP itself
(``provider_confirms_stop`` defaults to false): textback answers STOP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Self

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
    code_table,
    failure,
    read_base_url,
    read_timeout,
    secret_hint,
    vendor_code,
)
from textback.gateways.webhook import (
    check_url_token,
    form_fields,
    media_type,
    one,
    query_fields,
    read_callback_secret,
)
from textback.tomltable import Secret, SecretSpec, Table, read_secret, show

MAX_BYTES: Final = 160  # per sendSMS, counted in UTF-8 bytes (an "é" is 2, an emoji 4)
VOIPMS_STATUSES: Final = code_table(
    config=(
        "invalid_credentials",  # api_username / api_password wrong, or API not enabled
        "missing_credentials",
        "ip_not_enabled",  # this server's IP is not on the API allow-list
        "ip_not_authorized",
        "api_not_enabled",
        "limit_reached",  # the account's daily SMS quota
        "invalid_did",  # did is not ours or not SMS-enabled
        "missing_did",
        "invalid_method",
    ),
    # A verdict on the number VoIP.ms may revise, and the rejection costs nothing,
    # so the number is not remembered as unable to take texts.
    permanent=("invalid_dst", "missing_dst", "sms_toolong", "invalid_message", "missing_message"),
)
API_PASSWORD: Final = SecretSpec(
    key="api_password",
    what="VoIP.ms API password",
    origin="the VoIP.ms portal (Main Menu, SOAP and REST/JSON API: API Password)",
    env_example="VOIPMS_API_PASSWORD",
    file_example="/etc/textback/voipms-api-password",
)
WEBHOOK_TOKEN: Final = SecretSpec(
    key="webhook_token",
    what="callback URL token",
    origin="a random string you also put in the DID's SMS URL Callback (openssl rand -hex 24)",
    env_example="VOIPMS_WEBHOOK_TOKEN",
    file_example="/etc/textback/voipms-webhook-token",
)
# A {NAME} VoIP.ms did not fill in: the template in the portal names a variable it lacks.
_PLACEHOLDER: Final = re.compile(r"\{[A-Za-z_]+\}")
NANP: Final = re.compile(r"(?:\+?1)?([2-9][0-9]{2}[2-9][0-9]{6})")
_HINT: Final = {
    "config": " — check api_username, api_password, the API allow-list (this server's IP) "
    "and the daily SMS limit in the VoIP.ms portal",
}
_KEYS: Final = (
    "api_username",
    API_PASSWORD.env_key,
    API_PASSWORD.file_key,
    API_PASSWORD.credential_key,
    "did",
    "timeout",
    "base_url",
    WEBHOOK_TOKEN.env_key,
    WEBHOOK_TOKEN.file_key,
    WEBHOOK_TOKEN.credential_key,
    "provider_confirms_stop",
)
_HINTS: Final = {
    "api_password": secret_hint(API_PASSWORD),
    "password": secret_hint(API_PASSWORD),
    "username": "did you mean api_username? (the e-mail you log in to the portal with)",
    "from": 'did you mean did? e.g. did = "5145550100"',
    "webhook_token": secret_hint(WEBHOOK_TOKEN),
    "token": secret_hint(WEBHOOK_TOKEN),
}


class VoipMsGateway(HttpAdapterBase):
    """VoIP.ms's sendSMS, from one of the account's SMS-enabled DIDs."""

    name = "voipms"
    idempotent = False

    def __init__(
        self,
        *,
        api_username: str,
        api_password: Secret | None,
        did: str,
        base_url: str = "https://voip.ms",
        timeout: float = DEFAULT_TIMEOUT,
        webhook_token: Secret | None = None,
        provider_confirms_stop: bool = False,
    ) -> None:
        super().__init__(timeout=timeout)
        self.url = f"{base_url.rstrip('/')}/api/v1/rest.php"
        self.api_username = api_username
        self.api_password = api_password
        self.did = did
        self.webhook_token = webhook_token
        self.provider_confirms_stop = provider_confirms_stop

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        problems: list[str] = []
        s = Table(problems, path, table, _KEYS, _HINTS)
        username = s.string(
            "api_username",
            "",
            required=True,
            fix='the e-mail address you log in to the VoIP.ms portal with, e.g. "you@example.com"',
        )
        if username and "api_username" not in s.bad and any(c.isspace() for c in username):
            s.problem(
                "api_username", f"{show(username)} contains whitespace — write just the e-mail"
            )
        password, _ = read_secret(s, base, require_secrets, API_PASSWORD)
        did_fix = (
            'one of your SMS-enabled VoIP.ms numbers, 10 digits, e.g. did = "5145550100" '
            "(DID Numbers, Manage DIDs: enable SMS/MMS on it)"
        )
        did_text = s.string("did", "", required=True, fix=did_fix)
        did = ""
        if did_text and "did" not in s.bad:
            did = national(did_text) or ""
            if not did:
                s.problem("did", f"{show(did_text)} is not a North American number — {did_fix}")
        timeout = read_timeout(s)
        base_url = read_base_url(s, "https://voip.ms")
        token = read_callback_secret(s, base, require_secrets, WEBHOOK_TOKEN, in_url=True)
        confirms = s.boolean(
            "provider_confirms_stop",
            False,
            fix="VoIP.ms sends no STOP confirmation of its own; leave it out",
        )
        if problems:
            raise ConfigError(problems)
        return cls(
            api_username=username,
            api_password=password,
            did=did,
            base_url=base_url,
            timeout=timeout,
            webhook_token=token,
            provider_confirms_stop=confirms,
        )

    def params(self, sms: OutgoingSms, password: str) -> dict[str, str]:
        """The query of the sendSMS request; GatewayError(PERMANENT) when VoIP.ms cannot take
        the text (not a North American number, longer than 160 bytes)."""
        dst = national(sms.to)
        if dst is None:
            raise GatewayError(
                FailureKind.PERMANENT,
                f"{show(sms.to)} is not a North American (+1) number — VoIP.ms texts only those",
            )
        size = len(sms.body.encode())
        if size > MAX_BYTES:
            raise GatewayError(
                FailureKind.PERMANENT,
                f"the text is {size} bytes of UTF-8 and VoIP.ms takes at most {MAX_BYTES} — "
                "shorten the template (accents and curly quotes take 2 bytes, emoji 4)",
                code="sms_toolong",
            )
        # The route's DID when it is one of ours in North America; else the configured one.
        did = (national(sms.sender) if sms.sender else None) or self.did
        return {
            "api_username": self.api_username,
            "api_password": password,
            "method": "sendSMS",
            "did": did,
            "dst": dst,
            "message": sms.body,
        }

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        if self.api_password is None:
            raise GatewayError(FailureKind.CONFIG, "voipms: no API password configured")
        reply = await self.get(self.url, params=self.params(sms, self.api_password.reveal()))
        return receipt(reply)

    async def check(self) -> str:
        """Read the balance (``method=getBalance``, nothing is sent): the API user, password and
        this server's place on the API allow-list."""
        if self.api_password is None:
            raise GatewayError(FailureKind.CONFIG, "voipms: no API password configured")
        params = {
            "api_username": self.api_username,
            "api_password": self.api_password.reveal(),
            "method": "getBalance",
        }
        reply = await self.get(self.url, params=params)
        if reply.status != 200:
            raise failure(reply)
        status = vendor_code(reply.field("status"))
        if status != "success":
            raise refusal(reply, status)
        balance = reply.field("balance", "current_balance")
        shown = f", balance {balance}" if isinstance(balance, str | int | float) else ""
        return f"API user {self.api_username} accepted{shown}"

    # -- replies ---------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """The ``token`` in the callback URL: VoIP.ms signs nothing."""
        check_url_token(request, self.webhook_token, who="voipms", key="webhook_token")

    def parse_inbound(self, request: WebhookRequest) -> InboundSms:
        """The reply in the filled-in SMS URL Callback (a GET; a POSTed form is read too)."""
        fields = query_fields(request.url)
        if request.method.upper() == "POST" and media_type(request) == (
            "application/x-www-form-urlencoded"
        ):
            for name, values in form_fields(request.body).items():
                fields.setdefault(name, []).extend(values)
        return InboundSms(
            provider_id=_param(fields, "id"),
            sender=_number(_param(fields, "from")),
            recipient=_number(_param(fields, "to")),
            # Empty when the message is only a picture ({MEDIA}).
            body=_param(fields, "message", text=True),
        )

    def parse_status(self, request: WebhookRequest) -> DeliveryReceipt | None:
        """Always None: VoIP.ms sends no delivery receipts."""
        return None

    def webhook_reply(self) -> WebhookReply:
        # "ok" is what VoIP.ms's optional callback retry waits for; any 200 ends it otherwise.
        return WebhookReply(body=b"ok")


def receipt(reply: HttpReply) -> SendReceipt:
    """The receipt for a sendSMS reply, or the GatewayError it means."""
    if reply.status != 200:
        raise failure(reply)
    status = vendor_code(reply.field("status"))
    if status == "success":
        return SendReceipt(vendor_code(reply.field("sms")))
    raise refusal(reply, status)


def refusal(reply: HttpReply, status: str) -> GatewayError:
    """The GatewayError for an HTTP 200 whose ``status`` is not "success"."""
    if not status:
        # A 200 we cannot read may still have sent the text: never retry it.
        return failure(reply, detail=f"no status in the reply: {reply.text() or '(empty body)'}")
    kind = VOIPMS_STATUSES.get(status, FailureKind.PERMANENT)
    return failure(reply, code=status, default=kind, detail=status + _HINT.get(kind.value, ""))


def _param(fields: Mapping[str, list[str]], name: str, *, text: bool = False) -> str:
    """One filled-in template variable; ``text``: what the texter wrote (may be empty)."""
    value = one(fields, name)
    if value is None or (not value and not text):
        raise BadWebhook(
            400, f"voipms: no {name} in the callback URL — check the SMS URL Callback template"
        )
    # Not for the text: a texter may well write "{MESSAGE}".
    if not text and _PLACEHOLDER.fullmatch(value.strip()):
        raise BadWebhook(
            400, f"voipms: {name} is an unfilled placeholder — check the SMS URL Callback template"
        )
    return value


def _number(value: str) -> str:
    """E.164 for a North American number (VoIP.ms gives 10 digits); short codes as given."""
    digits = national(value)
    return f"+1{digits}" if digits else value.strip()


def national(number: str) -> str | None:
    """The 10 digits of a North American number ("+15145550100", "5145550100"), else None."""
    match = NANP.fullmatch(re.sub(r"[\s().-]", "", number))
    return match.group(1) if match else None
