"""The daemon's web server: provider callbacks and the staff inbox in one aiohttp app.

Shell (IO). :func:`make_app` builds the app from :class:`WebDeps`;
:func:`start_web` serves it on ``[web] listen`` as one component of the
daemon (``AppRunner`` + ``TCPSite``), and the daemon stops it with
``runner.cleanup()``. The app owns nothing it is given: the store, the
gateways and the conversations are opened and closed by the daemon.

Routes:

* ``GET|POST /hooks/{gateway}/inbound`` and ``/hooks/{gateway}/status``: provider callbacks
* ``GET|POST /login``, ``POST /logout``
* ``GET /``: conversations, newest first; ``GET /c/{e164}``: one thread
* ``POST /c/{e164}/reply``, ``POST /c/{e164}/handled``
* ``GET /dashboard``: today and the last 7 days
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from textback.log import get_logger
from textback.web import auth, hooks, inbox, pages
from textback.web.state import DEPS, SITE, Site, WebDeps

__all__ = ["MAX_BODY", "WebDeps", "make_app", "start_web"]

log = get_logger(__name__)

# Replies and receipts are a few hundred bytes; MMS media come as links, not bodies.
MAX_BODY: Final = 64 * 1024


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    # Thread addresses hold callers' numbers: never leak them to another site.
    headers["Referrer-Policy"] = "no-referrer"
    headers["Content-Security-Policy"] = pages.CONTENT_SECURITY_POLICY
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    # Pages hold personal data: no shared or browser cache keeps them.
    headers.setdefault("Cache-Control", "no-store")
    if request.app[SITE].secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"


def make_app(deps: WebDeps) -> web.Application:
    """The web app for these dependencies (sessions and login counts live in it).

    Raises ValueError when the config has no [web] table.
    """
    app = web.Application(client_max_size=MAX_BODY, middlewares=[auth.require_session])
    app[DEPS] = deps
    app[SITE] = site = Site.of(deps.config)
    app[auth.SESSIONS] = auth.Sessions(site.web.session_seconds)
    app[auth.LOGIN_LIMITER] = auth.LoginLimiter(site.web.login_rate)
    app.on_response_prepare.append(_security_headers)
    for method in ("GET", "POST"):
        # GET too: VoIP.ms and Vonage call back with query strings.
        app.router.add_route(method, "/hooks/{gateway}/inbound", hooks.inbound)
        app.router.add_route(method, "/hooks/{gateway}/status", hooks.status)
    app.router.add_get("/login", auth.login_form)
    app.router.add_post("/login", auth.login_submit)
    app.router.add_post("/logout", auth.logout)
    app.router.add_get("/", inbox.conversation_list)
    app.router.add_get("/c/{e164}", inbox.thread)
    app.router.add_post("/c/{e164}/reply", inbox.reply)
    app.router.add_post("/c/{e164}/handled", inbox.handled)
    app.router.add_get("/dashboard", inbox.dashboard)
    return app


async def start_web(deps: WebDeps) -> web.AppRunner:
    """Serve the app on ``[web] listen``; the caller stops it with ``await runner.cleanup()``.

    Raises ValueError when the config has no [web] table, OSError when the address is taken.
    """
    app = make_app(deps)
    web_config = app[SITE].web
    # No access log: thread addresses hold callers' numbers, which stay out of the journal.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, web_config.host, web_config.port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    listening = ", ".join(f"{a[0]}:{a[1]}" for a in runner.addresses)
    log.info("web_started", listen=listening, public_url=web_config.public_url)
    return runner
