"""The gateway interface: what every SMS adapter, built in or third-party, implements.

An adapter is a class named by ``[gateway] kind`` (a built-in name, an entry
point in the ``textback.gateways`` group, or ``"package.module:Class"``). It is
built from its TOML table with no IO (``from_config``: validation only, so
``check-config`` can run it), started once the daemon runs (``start``: open the
HTTP session, find the AMI link), asked to ``send`` texts (one at a time
unless it sets ``max_in_flight``), and closed (``aclose``). Adapters may add
``check`` (:class:`Checkable`), a no-send credentials check for
``textback install-check``.

``send`` returns a :class:`SendReceipt` or raises :class:`GatewayError` with a
:class:`FailureKind`; adapters translate their vendor's errors at this edge,
so nothing above them knows a vendor's codes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final, Protocol, Self, TextIO

from textback.errors import TextbackError

# An AMI action for adapters that speak through the PBX (GSM modems):
# fields in, the response's fields out. Raises PbxError when the link is down.
AmiAction = Callable[[Mapping[str, str]], Awaitable[Mapping[str, str]]]


class FailureKind(StrEnum):
    """What a failed send means for the outbox."""

    TRANSIENT = "transient"  # try again later: timeouts, 408/429/5xx, throttling
    OPTED_OUT = "opted_out"  # the provider says this number said STOP: record the opt-out
    NOT_SMS_CAPABLE = "not_sms_capable"  # landline, unreachable for good: never pay for it again
    CONFIG = "config"  # our account/sender/region is wrong: stop sending until fixed
    FILTERED = "filtered"  # carrier or provider spam filter: do not resend the same text
    PERMANENT = "permanent"  # anything else that will fail the same way again


class GatewayError(TextbackError):
    """A send that did not go through, classified."""

    def __init__(
        self,
        kind: FailureKind,
        detail: str,
        *,
        code: str = "",
        retry_after: float | None = None,
        maybe_sent: bool = False,
    ) -> None:
        self.kind = kind
        self.detail = detail
        self.code = code
        self.retry_after = retry_after  # seconds, from Retry-After and the like
        # True when the request may have reached the provider (a timeout or a
        # dropped connection after sending): retrying could text twice.
        self.maybe_sent = maybe_sent
        super().__init__(f"{kind.value}: {detail}" + (f" (code {code})" if code else ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingSms:
    to: str  # E.164
    body: str
    # Ours, stable across retries of the same text ("textback-<outbox id>"): sent as the
    # provider's idempotency key or client reference where it has one.
    reference: str
    # The number to send from when the route names one (the DID that was called);
    # None: the adapter's configured sender.
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class SendReceipt:
    provider_id: str  # the provider's message id ("" when it gives none)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayContext:
    """What the running daemon hands an adapter at start."""

    ami_action: AmiAction | None = None  # None when there is no AMI link (no [asterisk])
    out: TextIO | None = None  # where the console adapter prints (stdout when None)
    extra: Mapping[str, object] = field(default_factory=dict)


class Gateway(Protocol):
    """One configured SMS gateway."""

    # The kind name as written in the TOML ("twilio").
    name: str
    # True when the provider drops a second request with the same reference, so a
    # send cut off by a crash may be retried without risking a second text.
    idempotent: bool
    # Optional: ``max_in_flight``, see :func:`max_in_flight`.

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        """Validate the adapter's TOML table (``path`` is its TOML path, e.g. "gateway").

        No IO beyond reading secret files. Raises ``textback.errors.ConfigError``
        with one line per problem, each naming the key (use ``textback.tomltable.Table``).
        ``base`` is the config file's directory, for relative paths.
        """
        ...

    async def start(self, context: GatewayContext) -> None:
        """Open sessions and connections; called once before the first send."""
        ...

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        """Send one text. Raises :class:`GatewayError`; never anything else on purpose."""
        ...

    async def aclose(self) -> None: ...


def max_in_flight(gateway: Gateway) -> int:
    """Texts the dispatcher may have on the wire at once through ``gateway`` (never two
    to one number): the adapter's ``max_in_flight`` attribute, or 1 when it has none,
    as adapters written before it may not be safe to call side by side.
    """
    value = getattr(gateway, "max_in_flight", 1)
    return value if isinstance(value, int) and value >= 1 else 1


# How a check() that cannot test anything without sending begins its answer.
NOTHING_TO_CHECK: Final = "nothing to check without sending"


class Checkable(Protocol):
    """What a gateway adds so that ``textback install-check`` can test it without sending."""

    async def check(self) -> str:
        """Prove the configured credentials work, sending nothing; called after ``start``.

        Returns a short description for the report ("account AC… active"), or a
        sentence beginning with :data:`NOTHING_TO_CHECK` saying why. Raises :class:`GatewayError`
        with the kinds ``send`` would raise for the same fault (a refused key is
        CONFIG, an unreachable provider TRANSIENT).
        """
        ...


# -- replies and delivery receipts (webhooks) ---------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookRequest:
    """One provider callback as received, before anything trusts it.

    ``url`` is the public URL the provider called (``[web] public_url`` + path +
    query), which is what signatures are computed over, not the address the
    reverse proxy forwarded to us.
    """

    method: str
    url: str
    headers: Mapping[str, str]  # case-insensitive (a CIMultiDictProxy from aiohttp)
    body: bytes
    now: float  # Unix time of receipt, for timestamp windows


class BadWebhook(TextbackError):
    """A callback that is forged, stale or malformed. ``status`` is 403 or 400."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason  # for the security log; never echoed to the caller
        super().__init__(f"{status}: {reason}")


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundSms:
    provider_id: str  # the provider's message id: a retried delivery carries the same one
    sender: str  # the texter's number, E.164 where the provider gives it
    recipient: str  # our number it was sent to
    body: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryReceipt:
    provider_id: str  # the id our send got back (SendReceipt.provider_id)
    delivered: bool | None  # True delivered, False failed/undelivered, None still on its way
    status: str  # the provider's own word ("delivered", "undelivered", "failed", "sent"...)
    error_code: str = ""
    kind: FailureKind | None = None  # how the error code classifies, when it failed


@dataclass(frozen=True, slots=True)
class WebhookReply:
    """What to answer the provider (Twilio wants empty TwiML, most want 200 and nothing)."""

    status: int = 200
    content_type: str = "text/plain"
    body: bytes = b""


class WebhookCapable(Protocol):
    """What a gateway adds to take replies and receipts at /hooks/<kind>/inbound|status."""

    # The provider itself answers STOP with a confirmation: we then send none.
    provider_confirms_stop: bool

    def verify(self, request: WebhookRequest) -> None:
        """Raise :class:`BadWebhook` (403) unless the request is provably from the provider.

        Pure: signature (HMAC, Ed25519, JWT) or secret URL token, timestamp windows.
        """
        ...

    def parse_inbound(self, request: WebhookRequest) -> InboundSms | None:
        """The reply in a verified inbound callback; None when it carries none.

        Raises :class:`BadWebhook` (400) when the payload is malformed.
        """
        ...

    def parse_status(self, request: WebhookRequest) -> DeliveryReceipt | None:
        """The delivery receipt in a verified status callback; BadWebhook(400) if malformed."""
        ...

    def webhook_reply(self) -> WebhookReply:
        """The answer the provider expects to a callback it delivered."""
        ...
