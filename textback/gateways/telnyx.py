"""Telnyx Messaging API v2.

Send: JSON POST ``{base}/v2/messages`` with ``Authorization: Bearer <API key>``;
200 carries ``data.id``. Errors are ``{"errors": [{"code": "40300", "title": ...,
"detail": ...}]}``; ``TELNYX_CODES`` maps the codes that matter.

Not idempotent: the send endpoint takes no idempotency key, so a request cut off
after Telnyx accepted it cannot be retried without risking a second text.
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
        "from",
        "messaging_profile_id",
        "webhook_url",
        "timeout",
        "base_url",
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
    ) -> None:
        super().__init__(timeout=timeout)
        self.url = f"{base_url.rstrip('/')}/v2/messages"
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
        if problems:
            raise ConfigError(problems)
        return cls(
            api_key=api_key,
            sender=sender,
            profile_id=profile,
            webhook_url=webhook or None,
            base_url=base_url,
            timeout=timeout,
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
        code, detail = first_error(reply)
        raise failure(reply, code=code, codes=TELNYX_CODES, detail=detail, wait=rate_reset(reply))


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
