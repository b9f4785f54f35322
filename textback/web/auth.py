"""Staff sign-in: server-side sessions, CSRF tokens on every form, a login rate limit.

Sessions live in this process's memory only: a restart signs everyone out,
which is the price of keeping no session secrets on disk. The session cookie
holds a random token and nothing else; the server keeps only its SHA-256, so
looking one up compares digests of secrets, never the secrets themselves.

The login form has no session yet, so it is protected by a double-submit
token: a random cookie set with the form and the same value inside it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from textback.config_web import WebUser, authenticate
from textback.log import get_logger
from textback.web import pages
from textback.web.state import DEPS, SITE

log = get_logger(__name__)

SESSION_COOKIE: Final = "textback_session"
LOGIN_COOKIE: Final = "textback_login"
LOGIN_WINDOW: Final = 60.0  # seconds: [web] login_rate counts attempts per minute
# Remotes remembered by the login limiter; beyond this the quietest are forgotten.
MAX_TRACKED: Final = 10_000
# Longest name worth looking up or logging; anything longer is not one of ours.
MAX_NAME: Final = 64

# Where a login may send the browser on: one of our paths, never "//other.site" or "/\\x".
LOCAL_PATH: Final = re.compile(r"/(?![/\\])[^\s\\]*")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    user: str
    csrf: str  # embedded in every form of this session, checked on every POST
    expires_at: float  # Unix seconds; fixed at sign-in, never extended


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Sessions:
    """Signed-in sessions by token digest."""

    def __init__(self, lifetime: float) -> None:
        self._lifetime = lifetime
        self._by_digest: dict[bytes, Session] = {}

    def __len__(self) -> int:
        return len(self._by_digest)

    @property
    def lifetime(self) -> float:
        return self._lifetime

    def open(self, user: str, now: float) -> tuple[str, Session]:
        """A new session for ``user``: its cookie token and the session."""
        self._forget_expired(now)
        token = secrets.token_urlsafe(32)
        session = Session(
            user=user, csrf=secrets.token_urlsafe(32), expires_at=now + self._lifetime
        )
        self._by_digest[_digest(token)] = session
        return token, session

    def get(self, token: str | None, now: float) -> Session | None:
        """The live session the token opens, or None (unknown, expired or signed out)."""
        if not token:
            return None
        digest = _digest(token)
        session = self._by_digest.get(digest)
        if session is None:
            return None
        if session.expires_at <= now:
            del self._by_digest[digest]
            return None
        return session

    def close(self, token: str | None) -> None:
        if token:
            self._by_digest.pop(_digest(token), None)

    def _forget_expired(self, now: float) -> None:
        for digest in [d for d, s in self._by_digest.items() if s.expires_at <= now]:
            del self._by_digest[digest]


class Admission(Enum):
    ALLOWED = "allowed"
    REFUSED = "refused"  # the first refusal in this window: worth one log line
    REFUSED_AGAIN = "refused_again"


class LoginLimiter:
    """At most ``per_minute`` login attempts per remote address in any 60 seconds."""

    def __init__(self, per_minute: int, *, max_tracked: int = MAX_TRACKED) -> None:
        self._per_minute = per_minute
        self._max_tracked = max_tracked
        self._attempts: dict[str, deque[float]] = {}
        self._refused: set[str] = set()

    def __len__(self) -> int:
        """How many addresses it remembers."""
        return len(self._attempts)

    def admit(self, remote: str, now: float) -> Admission:
        """Count one attempt from ``remote`` unless it is over the limit."""
        attempts = self._attempts.get(remote)
        if attempts is None:
            if len(self._attempts) >= self._max_tracked:
                self._forget(now)
            attempts = self._attempts[remote] = deque()
        while attempts and attempts[0] <= now - LOGIN_WINDOW:
            attempts.popleft()
        if len(attempts) >= self._per_minute:
            if remote in self._refused:
                return Admission.REFUSED_AGAIN
            self._refused.add(remote)
            return Admission.REFUSED
        self._refused.discard(remote)
        attempts.append(now)
        return Admission.ALLOWED

    def _forget(self, now: float) -> None:
        """Drop every remote idle for a window, and if that is not enough, the stalest half."""
        for remote in [
            r for r, a in self._attempts.items() if not a or a[-1] <= now - LOGIN_WINDOW
        ]:
            del self._attempts[remote]
            self._refused.discard(remote)
        if len(self._attempts) >= self._max_tracked:
            by_age = sorted(self._attempts, key=lambda r: self._attempts[r][-1])
            for remote in by_age[: len(by_age) // 2 + 1]:
                del self._attempts[remote]
                self._refused.discard(remote)


SESSIONS: Final = web.AppKey("textback_sessions", Sessions)
LOGIN_LIMITER: Final = web.AppKey("textback_login_limiter", LoginLimiter)
# The signed-in session of the request, set by the session middleware.
SESSION: Final = web.RequestKey("textback_session", Session)


def same_token(given: object, expected: str | None) -> bool:
    """Constant-time comparison of a submitted token with the one we issued."""
    if not isinstance(given, str) or not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser GETs the new page (no resubmit on reload)."""
    return web.Response(status=303, headers={"Location": location})


def is_public(path: str) -> bool:
    """Paths reachable without a session: the login form and the providers' callbacks."""
    return path == "/login" or path.startswith("/hooks/")


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but /login and /hooks/* needs a session, every POST its CSRF token."""
    if is_public(request.path):
        return await handler(request)
    site = request.app[SITE]
    now = request.app[DEPS].clock()
    session = request.app[SESSIONS].get(request.cookies.get(SESSION_COOKIE), now)
    if session is None:
        if request.method != "GET":
            return redirect(site.link("/login"))
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            # A link from webmail or chat: the browser withholds SameSite=Strict cookies on
            # this one navigation. Reload from here (now same-site) to find out if we have one.
            return pages.html(pages.reload_page(site))
        back = "" if request.path == "/" else "?" + urlencode({"next": request.path_qs})
        return redirect(site.link("/login") + back)
    if request.method not in ("GET", "HEAD"):
        form = await request.post()
        if not same_token(form.get("csrf"), session.csrf):
            log.warning(
                "csrf_rejected", path=request.path, user=session.user, remote=request.remote
            )
            return pages.html(
                pages.message_page(
                    site,
                    "This form has expired",
                    "Nothing was done. Go back, reload the page and try again.",
                ),
                status=403,
            )
    request[SESSION] = session
    return await handler(request)


def local_path(value: object) -> str:
    """``value`` when it is a path of this app ("/c/+1..."), else "/": never another site."""
    if isinstance(value, str) and LOCAL_PATH.fullmatch(value):
        return value
    return "/"


async def login_form(request: web.Request) -> web.Response:
    site = request.app[SITE]
    next_path = local_path(request.query.get("next"))
    if request.app[SESSIONS].get(request.cookies.get(SESSION_COOKIE), request.app[DEPS].clock()):
        return redirect(site.link(next_path))
    return _login_page(request, error="", status=200, next_path=next_path)


def _login_page(
    request: web.Request, *, error: str, status: int, next_path: str, name: str = ""
) -> web.Response:
    site = request.app[SITE]
    token = secrets.token_urlsafe(32)
    page = pages.login_page(site, csrf=token, error=error, name=name, next_path=next_path)
    response = pages.html(page, status=status)
    # A fresh token with every form: a token seen once (a shoulder, a log) is worthless.
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        path=site.link("/login"),
        httponly=True,
        samesite="Strict",
        secure=site.secure,
    )
    return response


async def login_submit(request: web.Request) -> web.Response:
    deps, site = request.app[DEPS], request.app[SITE]
    now = deps.clock()
    remote = request.remote or "unknown"
    admission = request.app[LOGIN_LIMITER].admit(remote, now)
    if admission is not Admission.ALLOWED:
        if admission is Admission.REFUSED:
            log.warning("login_rate_limited", remote=remote)
        response = pages.html(
            pages.message_page(site, "Too many sign-in attempts", "Wait a minute, then try again."),
            status=429,
        )
        response.headers["Retry-After"] = str(int(LOGIN_WINDOW))
        return response
    form = await request.post()
    if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
        log.warning("csrf_rejected", path=request.path, remote=remote)
        return pages.html(
            pages.message_page(
                site,
                "This sign-in form has expired",
                "Reload the page and sign in again. If this keeps happening, allow cookies "
                "for this site.",
            ),
            status=403,
        )
    next_path = local_path(form.get("next"))
    name = str(form.get("name", "")).strip()[:MAX_NAME]
    password = str(form.get("password", ""))
    user = await _authenticate(site.web.users, name, password)
    if user is None:
        log.warning("login_failed", user=name, remote=remote)
        return _login_page(
            request, error="Wrong name or password.", status=401, next_path=next_path, name=name
        )
    token, _ = request.app[SESSIONS].open(user.name, now)
    log.info("login_succeeded", user=user.name, remote=remote)
    response = redirect(site.link(next_path))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=site.link("/"),
        max_age=int(request.app[SESSIONS].lifetime),
        httponly=True,
        samesite="Strict",
        secure=site.secure,
    )
    response.del_cookie(LOGIN_COOKIE, path=site.link("/login"))
    return response


async def _authenticate(users: Sequence[WebUser], name: str, password: str) -> WebUser | None:
    # scrypt takes tens of milliseconds: off the loop, so callbacks are not held up meanwhile.
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, authenticate, users, name, password)


async def logout(request: web.Request) -> web.Response:
    """POST only (with the session's CSRF token, checked by the middleware)."""
    site = request.app[SITE]
    request.app[SESSIONS].close(request.cookies.get(SESSION_COOKIE))
    log.info("logout", user=request[SESSION].user)
    response = redirect(site.link("/login"))
    response.del_cookie(SESSION_COOKIE, path=site.link("/"))
    return response
