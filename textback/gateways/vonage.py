"""Vonage (Nexmo) SMS API — the "legacy" ``/sms/json`` endpoint that still carries most SMS.

Send: form POST ``{base}/sms/json`` with ``api_key`` and ``api_secret`` in the
body. The reply is HTTP 200 even for failures: each part of the text gets an
entry in ``messages`` whose ``status`` is ``"0"`` when accepted; ``VONAGE_STATUS``
maps the other statuses.

Not idempotent: ``client-ref`` (set to our reference) is echoed in delivery
reports but Vonage does not drop a second request carrying the same one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Self

from textback.core.sms import non_gsm_chars
from textback.errors import ConfigError
from textback.gateways.base import FailureKind, GatewayError, OutgoingSms, SendReceipt
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

API_SECRET: Final = SecretSpec(
    key="api_secret",
    what="Vonage API secret",
    origin="the Vonage API dashboard (API settings)",
    env_example="VONAGE_API_SECRET",
    file_example="/etc/textback/vonage-api-secret",
)
ALPHA_SENDER: Final = re.compile(r"[A-Za-z0-9 ]{1,11}")
_HINTS: Final = {
    "api_secret": secret_hint(API_SECRET),
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
        "from",
        "status_callback",
        "timeout",
        "base_url",
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
    ) -> None:
        super().__init__(timeout=timeout)
        self.url = f"{base_url.rstrip('/')}/sms/json"
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
        if problems:
            raise ConfigError(problems)
        return cls(
            api_key=api_key,
            api_secret=secret,
            sender=sender,
            status_callback=status_callback or None,
            base_url=base_url,
            timeout=timeout,
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


def _part(reply: HttpReply, index: int) -> tuple[str, str]:
    """The status and error text of one part of the reply."""
    status = vendor_code(reply.field("messages", index, "status"))
    text = reply.field("messages", index, "error-text")
    return status, text if isinstance(text, str) and text else f"status {status or '(none)'}"
