"""The console gateway: prints each text instead of sending it (the demo and dry runs use it).

It also takes replies and receipts, so the demo and tests can play a texter's
answer without a provider: ``POST /hooks/console/inbound?token=<token>`` with
JSON ``{"id", "from", "to", "text"}``, and ``/hooks/console/status?token=<token>``
with ``{"id", "status"}`` (optionally ``"error_code"`` and ``"kind"``, a
:class:`FailureKind` value, to play a failure). Nothing signs these, so the
URL must carry the token from ``webhook_token_env`` / ``webhook_token_file``;
without one configured every callback is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Self, TextIO

from textback.errors import ConfigError
from textback.gateways.base import (
    NOTHING_TO_CHECK,
    BadWebhook,
    DeliveryReceipt,
    FailureKind,
    GatewayContext,
    InboundSms,
    OutgoingSms,
    SendReceipt,
    WebhookReply,
    WebhookRequest,
)
from textback.gateways.http import secret_hint
from textback.gateways.webhook import check_url_token, json_object, read_callback_secret
from textback.tomltable import Secret, SecretSpec, Table

WEBHOOK_TOKEN: Final = SecretSpec(
    key="webhook_token",
    what="callback URL token",
    origin="a random string you also put in the callback URL (openssl rand -hex 24)",
    env_example="TEXTBACK_CONSOLE_WEBHOOK_TOKEN",
    file_example="/etc/textback/console-webhook-token",
)
DELIVERED: Final = frozenset({"delivered"})
FAILED: Final = frozenset({"failed", "undelivered"})
_KEYS: Final = (*WEBHOOK_TOKEN.keys, "provider_confirms_stop")
# Sender settings mean nothing to a gateway that only prints.
_HINTS: Final = {
    "from": "remove it",
    "sender": "remove it",
    "webhook_token": secret_hint(WEBHOOK_TOKEN),
    "token": secret_hint(WEBHOOK_TOKEN),
}


class ConsoleGateway:
    """Writes ``SMS to <to>: <body>`` to the context's ``out`` (stdout by default)."""

    name = "console"
    # Nothing leaves the machine, so printing twice after a crash costs nothing.
    idempotent = True
    max_in_flight = 8

    def __init__(
        self, *, webhook_token: Secret | None = None, provider_confirms_stop: bool = False
    ) -> None:
        self._out: TextIO | None = None
        self._sent = 0
        self.webhook_token = webhook_token
        self.provider_confirms_stop = provider_confirms_stop

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        problems: list[str] = []
        s = Table(problems, path, table, _KEYS, _HINTS)
        token = read_callback_secret(s, base, require_secrets, WEBHOOK_TOKEN, in_url=True)
        confirms = s.boolean(
            "provider_confirms_stop",
            False,
            fix="true to play a provider that answers STOP itself (no confirmation from us)",
        )
        if problems:
            raise ConfigError(problems)
        return cls(webhook_token=token, provider_confirms_stop=confirms)

    async def start(self, context: GatewayContext) -> None:
        self._out = context.out

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        out = self._out or sys.stdout
        print(f"SMS to {sms.to}: {sms.body}", file=out, flush=True)
        self._sent += 1
        return SendReceipt(f"console-{self._sent}")

    async def check(self) -> str:
        """Nothing: printing needs no account."""
        return f"{NOTHING_TO_CHECK}: texts are printed, not sent"

    async def aclose(self) -> None:
        self._out = None

    # -- replies and receipts -------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        check_url_token(request, self.webhook_token, who="console", key="webhook_token")

    def parse_inbound(self, request: WebhookRequest) -> InboundSms:
        data = json_object(request.body)
        return InboundSms(
            provider_id=_field(data, "id"),
            sender=_field(data, "from"),
            recipient=_field(data, "to"),
            body=_field(data, "text", empty=True),
        )

    def parse_status(self, request: WebhookRequest) -> DeliveryReceipt:
        data = json_object(request.body)
        status = _field(data, "status")
        code = _field(data, "error_code", empty=True) if "error_code" in data else ""
        word = status.lower()
        delivered = True if word in DELIVERED else False if word in FAILED else None
        kind: FailureKind | None = None
        if delivered is False:
            kind = FailureKind.PERMANENT
            if "kind" in data:
                try:
                    kind = FailureKind(_field(data, "kind"))
                except ValueError as exc:
                    raise BadWebhook(400, "console: kind is not a failure kind") from exc
        return DeliveryReceipt(
            provider_id=_field(data, "id"),
            delivered=delivered,
            status=status,
            error_code=code,
            kind=kind,
        )

    def webhook_reply(self) -> WebhookReply:
        return WebhookReply()


def _field(data: Mapping[str, object], name: str, *, empty: bool = False) -> str:
    value = data.get(name)
    if isinstance(value, str) and (value or empty):
        return value
    raise BadWebhook(400, f"console: no {name} (a string)")
