"""The shared inbox: the conversation list, one caller's thread, replies, the dashboard.

Every handler here runs behind :func:`textback.web.auth.require_session`:
the session and, for POSTs, the CSRF token are already checked. Replies go
through :meth:`Conversations.reply`, which queues them in the outbox with the
same opt-out checks as every other text; nothing is sent from a request.
"""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web

from textback.stats import dashboard_roi
from textback.web import pages
from textback.web.auth import SESSION, redirect
from textback.web.state import DEPS, SITE

# What a thread's address may hold; anything else is not a conversation of ours.
E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")
LIST_LIMIT: Final = 100


def _number(request: web.Request) -> str:
    e164 = request.match_info["e164"]
    if not E164.fullmatch(e164):
        raise web.HTTPNotFound()
    return e164


async def conversation_list(request: web.Request) -> web.Response:
    deps, site, session = request.app[DEPS], request.app[SITE], request[SESSION]
    conversations = await deps.store.inbox.conversations(limit=LIST_LIMIT)
    return pages.html(
        pages.inbox_page(
            site, conversations, user=session.user, csrf=session.csrf, now=deps.clock()
        )
    )


async def thread(request: web.Request) -> web.Response:
    notice = "Reply queued: it goes out in a moment." if "queued" in request.query else ""
    return await _thread(request, notice=notice)


async def _thread(
    request: web.Request, *, error: str = "", draft: str = "", notice: str = "", status: int = 200
) -> web.Response:
    deps, site, session = request.app[DEPS], request.app[SITE], request[SESSION]
    e164 = _number(request)
    found = await deps.store.inbox.thread(e164)
    if found is None:
        raise web.HTTPNotFound()
    # Someone has now read its replies: they stop counting as unread in the list.
    await deps.store.inbox.mark_seen(e164, deps.clock())
    page = pages.thread_page(
        site,
        found,
        user=session.user,
        csrf=session.csrf,
        now=deps.clock(),
        error=error,
        draft=draft,
        notice=notice,
    )
    return pages.html(page, status=status)


async def reply(request: web.Request) -> web.Response:
    deps, site, session = request.app[DEPS], request.app[SITE], request[SESSION]
    e164 = _number(request)
    # The inbox answers people who called or texted us, never a number typed into a URL.
    if await deps.store.inbox.thread(e164) is None:
        raise web.HTTPNotFound()
    body = str((await request.post()).get("body", ""))
    if not body.strip():
        return await _thread(request, error="Write a reply first.", status=400)
    if len(body) > pages.MAX_REPLY:
        return await _thread(
            request,
            error=f"That reply is longer than {pages.MAX_REPLY} characters; shorten it.",
            draft=body,
            status=400,
        )
    try:
        await deps.conversations.reply(e164, body, session.user)
    except ValueError as exc:
        reason = str(exc).rstrip(".")
        return await _thread(request, error=f"Not sent: {reason}.", draft=body, status=400)
    return redirect(site.link(pages.thread_path(e164)) + "?queued")


async def handled(request: web.Request) -> web.Response:
    deps, site, session = request.app[DEPS], request.app[SITE], request[SESSION]
    await deps.conversations.mark_handled(_number(request), session.user)
    return redirect(site.link("/"))


async def dashboard(request: web.Request) -> web.Response:
    deps, site, session = request.app[DEPS], request.app[SITE], request[SESSION]
    now = deps.clock()
    counts = await deps.store.inbox.dashboard(now, site.tz.key)
    # The same 7 local days as the counts, on a reader connection of its own.
    earned = await dashboard_roi(deps.store.path, now=now, roi=deps.config.roi, tz=site.tz.key)
    page = pages.dashboard_page(site, counts, user=session.user, csrf=session.csrf, earned=earned)
    return pages.html(page)
