"""Provider callbacks: /hooks/<kind>/inbound (replies) and /hooks/<kind>/status (receipts).

Nothing in a callback is trusted until the adapter's ``verify`` passed. A
forged, stale or malformed callback gets the adapter's status (403 or 400)
and an empty body, leaves nothing in the database, and costs one security
log line that names the gateway, the reason and the remote address and
nothing the request carried. A verified callback is handed to
:class:`~textback.conversations.Conversations`, which stores it and queues
any answer in the outbox: the provider gets its reply within milliseconds
and no SMS is ever sent from here.
"""

from __future__ import annotations

from typing import Literal, TypeGuard

from aiohttp import web

from textback.gateways.base import (
    BadWebhook,
    DeliveryReceipt,
    Gateway,
    InboundSms,
    WebhookCapable,
    WebhookRequest,
)
from textback.log import get_logger
from textback.web.state import DEPS, SITE

log = get_logger(__name__)

Hook = Literal["inbound", "status"]


def webhook_capable(gateway: Gateway) -> TypeGuard[WebhookCapable]:
    """Whether the adapter takes callbacks (WebhookCapable is not runtime-checkable)."""
    return hasattr(gateway, "provider_confirms_stop") and all(
        callable(getattr(gateway, name, None))
        for name in ("verify", "parse_inbound", "parse_status", "webhook_reply")
    )


async def inbound(request: web.Request) -> web.Response:
    return await _callback(request, "inbound")


async def status(request: web.Request) -> web.Response:
    return await _callback(request, "status")


async def _callback(request: web.Request, hook: Hook) -> web.Response:
    deps, site = request.app[DEPS], request.app[SITE]
    kind = request.match_info["gateway"]
    gateway = deps.gateways.get(kind)
    if gateway is None or not webhook_capable(gateway):
        raise web.HTTPNotFound()
    # The body limit (client_max_size) applies here: a larger body is a 413 before any parsing.
    callback = WebhookRequest(
        method=request.method,
        # The request target as sent (path and query), not a re-encoded one: it is what was signed.
        url=site.public_url(request.raw_path),
        headers=request.headers,
        body=await request.read(),
        now=deps.clock(),
    )
    try:
        gateway.verify(callback)
        parsed = (
            gateway.parse_inbound(callback) if hook == "inbound" else gateway.parse_status(callback)
        )
    except BadWebhook as exc:
        log.warning(
            "webhook_rejected",
            gateway=kind,
            hook=hook,
            status=exc.status,
            reason=exc.reason,
            remote=request.remote,
        )
        return web.Response(status=exc.status)
    if isinstance(parsed, InboundSms):
        await deps.conversations.on_inbound(kind, parsed)
    elif isinstance(parsed, DeliveryReceipt):
        await deps.conversations.on_receipt(kind, parsed)
    reply = gateway.webhook_reply()
    # The adapter's content type may carry a charset, which aiohttp's content_type= refuses.
    return web.Response(
        status=reply.status, body=reply.body, headers={"Content-Type": reply.content_type}
    )
