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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Self

from textback.errors import ConfigError
from textback.gateways.base import FailureKind, GatewayError, OutgoingSms, SendReceipt
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
    "from",
    "powerpack_uuid",
    "status_callback",
    "timeout",
    "base_url",
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
    ) -> None:
        super().__init__(timeout=timeout)
        self.url = f"{base_url.rstrip('/')}/v1/Account/{auth_id}/Message/"
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
