"""The web app over real HTTP on 127.0.0.1: sign-in, the inbox, and provider callbacks.

Everything behind the app is real: the config loaded from TOML, the SQLite
store in tmp_path, the Conversations service and the Twilio and VoIP.ms
adapters. Callbacks are signed here the way Twilio signs them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Self
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from textback.config import Config, load
from textback.config_web import hash_password
from textback.conversations import Conversations
from textback.core.verdict import CallVerdict, Reason, Verdict
from textback.gateways.base import (
    Gateway,
    GatewayContext,
    OutgoingSms,
    SendReceipt,
)
from textback.gateways.voipms import VoipMsGateway
from textback.store import Store
from textback.tomltable import Secret
from textback.web import WebDeps, make_app, start_web
from textback.web.auth import SESSION_COOKIE, Admission, LoginLimiter, Sessions
from textback.web.pages import CONTENT_SECURITY_POLICY, MAX_REPLY

PUBLIC_URL = "https://inbox.acme.example"
ACCOUNT = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "twilio-auth-token-for-tests"
VOIPMS_TOKEN = "voipms-callback-token-0123456789abcdef"
OUR_NUMBER = "+12125550100"
CALLER = "+12125550123"
USER, PASSWORD = "alice", "correct horse battery staple"
LOGIN_RATE = 3
SESSION_HOURS = 1
NOW = 1_790_000_000.0  # 2026-09-21, a Monday, in the afternoon in New York
# One hash for the whole module: scrypt takes a noticeable moment.
PASSWORD_HASH = hash_password(PASSWORD)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NEXT = re.compile(r'name="next" value="([^"]*)"')


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class PlainGateway:
    """A gateway that sends but takes no callbacks (not WebhookCapable)."""

    name = "plain"
    idempotent = False

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        return cls()

    async def start(self, context: GatewayContext) -> None:
        return None

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        return SendReceipt("plain-1")

    async def aclose(self) -> None:
        return None


def write_config(tmp_path: Path, *, public_url: str = PUBLIC_URL) -> Path:
    (tmp_path / "ami-secret").write_text("textback\n")
    (tmp_path / "twilio-token").write_text(AUTH_TOKEN + "\n")
    path = tmp_path / "textback.toml"
    path.write_text(
        f"""
[daemon]
database = "{tmp_path / "textback.db"}"

[log]
format = "logfmt"

[business]
name = "Acme Plumbing"

[asterisk]
secret_file = "{tmp_path / "ami-secret"}"

[trunks.carrier-a]
channels = ["PJSIP/carrier-a-*"]

[sending]
timezone = "America/New_York"

[gateway]
kind = "twilio"
account_sid = "{ACCOUNT}"
auth_token_file = "{tmp_path / "twilio-token"}"
from = "{OUR_NUMBER}"

[web]
listen = "127.0.0.1:8080"
public_url = "{public_url}"
login_rate = {LOGIN_RATE}
session_hours = {SESSION_HOURS}

[[web.users]]
name = "{USER}"
password_hash = "{PASSWORD_HASH}"
"""
    )
    return path


@dataclass
class Env:
    client: TestClient[web.Request, web.Application]
    store: Store
    config: Config
    clock: Clock
    public_url: str = PUBLIC_URL

    async def login(
        self,
        name: str = USER,
        password: str = PASSWORD,
        *,
        next_path: str | None = None,
        post_next: str | None = None,
    ) -> aiohttp.ClientResponse:
        """Open the login form (with ``next`` as a redirect gives it) and submit it as is,
        or with ``post_next`` in place of the form's own."""
        query = {} if next_path is None else {"next": next_path}
        page = await (await self.client.get("/login", params=query)).text()
        found = NEXT.search(page)
        assert found is not None, page
        data = {
            "csrf": csrf_of(page),
            "next": unescape(found.group(1)) if post_next is None else post_next,
            "name": name,
            "password": password,
        }
        return await self.client.post("/login", data=data, allow_redirects=False)

    async def page(self, path: str) -> str:
        """A page's HTML; fails the test unless it is a 200."""
        response = await self.client.get(path, allow_redirects=False)
        text = await response.text()
        assert response.status == 200, text
        return text

    async def csrf(self) -> str:
        return csrf_of(await self.page("/"))

    async def twilio(
        self, hook: str, params: Mapping[str, str], *, token: str = AUTH_TOKEN
    ) -> aiohttp.ClientResponse:
        """A form POST to /hooks/twilio/<hook>, signed as Twilio signs (over the public URL)."""
        path = f"/hooks/twilio/{hook}"
        return await self.client.post(
            path,
            data=urlencode(params),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(token, self.public_url + path, params),
            },
        )

    async def outbox_bodies(self) -> list[str]:
        return [row.body for row in await self.store.outbox.recent()]


def text_of(html: str) -> str:
    """What a reader sees of the page: the markup's text, tags dropped."""
    return re.sub(r"<[^>]+>", "", html)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, html
    return found.group(1)


def twilio_signature(token: str, url: str, params: Mapping[str, str]) -> str:
    text = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def inbound_params(sid: str, body: str, sender: str = CALLER) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": sender,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
    }


EnvFactory = Callable[..., Awaitable[Env]]


@pytest.fixture
async def make_env(tmp_path: Path) -> AsyncIterator[EnvFactory]:
    """Builds the app on a real store and serves it on 127.0.0.1 (one per test)."""
    opened: list[tuple[Store, TestClient[web.Request, web.Application]]] = []

    async def build(*, public_url: str = PUBLIC_URL) -> Env:
        config = load(write_config(tmp_path, public_url=public_url))
        clock = Clock(NOW)
        store = await Store.open(config.daemon.database)
        conversations = Conversations(config, store, config.gateway, clock=clock)
        voipms = VoipMsGateway(
            api_username="office@acme.example",
            api_password=Secret("voipms-api-password"),
            did="2125550100",
            webhook_token=Secret(VOIPMS_TOKEN),
        )
        gateways: dict[str, Gateway] = {
            "twilio": config.gateway,
            "voipms": voipms,
            "plain": PlainGateway(),
        }
        deps = WebDeps(
            config=config,
            store=store,
            conversations=conversations,
            gateways=gateways,
            clock=clock,
        )
        server = TestServer(make_app(deps))
        await server.start_server()
        # The test server is plain http on 127.0.0.1: let the jar return Secure cookies to it.
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=str(server.make_url("/")))
        client: TestClient[web.Request, web.Application] = TestClient(server, cookie_jar=jar)
        await client.start_server()
        opened.append((store, client))
        return Env(client=client, store=store, config=config, clock=clock, public_url=public_url)

    yield build
    for store, client in opened:
        await client.close()
        await store.aclose()


@pytest.fixture
async def env(make_env: EnvFactory) -> Env:
    return await make_env()


async def missed_call(
    store: Store,
    *,
    caller: str = CALLER,
    name: str = "Bob Jones",
    at: float = NOW - 600,
    call_id: str = "1790000000.1",
) -> None:
    """A missed call from ``caller`` in the call log, and our text to them in the outbox, sent."""
    verdict = CallVerdict(
        call_id=call_id,
        pbx="asterisk",
        trunk="carrier-a",
        verdict=Verdict.MISSED,
        reason=Reason.NO_ANSWER,
        caller_raw=caller,
        caller_name=name,
        anonymous=False,
        did=OUR_NUMBER,
        started_at=at,
        ended_at=at + 20,
        ring_seconds=20,
    )
    await store.calls.record(verdict, caller_e164=caller, did_e164=OUR_NUMBER, now=at + 20)
    row_id = await store.outbox.accept(
        pbx="asterisk",
        call_id=call_id,
        to_e164=caller,
        body="Sorry we missed your call - Acme Plumbing",
        template="missed",
        gateway="twilio",
        state="pending",
        reason="ok",
        created_at=at + 20,
        send_at=at + 20,
        expires_at=at + 3600,
        now=at + 20,
    )
    assert row_id is not None
    assert [row_id] == [row.id for row in await store.outbox.claim_due(at + 21)]
    assert await store.outbox.mark_sent(row_id, f"SM{call_id.replace('.', '')}", at + 22)


# -- signing in ---------------------------------------------------------------------------------


class TestSignIn:
    @pytest.mark.parametrize(
        ("path", "location"),
        [
            ("/", "/login"),
            ("/dashboard", "/login?next=%2Fdashboard"),
            (f"/c/{CALLER}", "/login?next=%2Fc%2F%2B12125550123"),
            ("/no-such-page", "/login?next=%2Fno-such-page"),
        ],
    )
    async def test_no_page_without_a_session(self, env: Env, path: str, location: str) -> None:
        """Every page but /login sends a visitor without a session to /login, and back after."""
        response = await env.client.get(path, allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == location

    async def test_login_returns_to_the_page_asked_for(self, env: Env) -> None:
        """A link to a thread, opened signed out, lands on that thread after signing in."""
        await missed_call(env.store)
        response = await env.login(next_path=f"/c/{CALLER}")
        assert response.headers["Location"] == f"/c/{CALLER}"

    @pytest.mark.parametrize(
        "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "c/x"]
    )
    async def test_login_never_sends_elsewhere(self, env: Env, target: str) -> None:
        """A "next" that is not one of our paths is replaced by the inbox, in form and POST."""
        page = await (await env.client.get("/login", params={"next": target})).text()
        assert 'name="next" value="/"' in page
        response = await env.login(post_next=target)
        assert response.headers["Location"] == "/"

    async def test_cross_site_link_reloads_once(self, env: Env) -> None:
        """A link followed from another site (cookies withheld) reloads itself, not /login."""
        cross = await env.client.get(
            "/", headers={"Sec-Fetch-Site": "cross-site"}, allow_redirects=False
        )
        assert cross.status == 200
        assert '<meta http-equiv="refresh" content="0">' in await cross.text()
        same = await env.client.get(
            "/", headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False
        )
        assert same.status == 303

    async def test_posts_without_a_session_do_nothing(self, env: Env) -> None:
        """A reply posted without a session is redirected to /login and queues no text."""
        response = await env.client.post(
            f"/c/{CALLER}/reply", data={"body": "hello", "csrf": "x"}, allow_redirects=False
        )
        assert (response.status, response.headers["Location"]) == (303, "/login")
        assert await env.outbox_bodies() == []

    async def test_login_lands_in_the_inbox(self, env: Env) -> None:
        """The right password opens a session: the inbox shows, with the user's name."""
        response = await env.login()
        assert (response.status, response.headers["Location"]) == (303, "/")
        page = await env.page("/")
        assert "<h1>Inbox</h1>" in page
        assert f"Log out {USER}" in page

    @pytest.mark.parametrize(
        ("name", "password"), [(USER, "wrong password"), ("mallory", PASSWORD), ("", "")]
    )
    async def test_wrong_credentials(self, env: Env, name: str, password: str) -> None:
        """A wrong password or an unknown name gets the form again, says so, and no session."""
        with capture_logs() as logs:
            response = await env.login(name, password)
        assert response.status == 401
        assert "Wrong name or password." in await response.text()
        assert SESSION_COOKIE not in response.cookies
        assert (await env.client.get("/", allow_redirects=False)).status == 303
        assert [entry["event"] for entry in logs] == ["login_failed"]
        assert PASSWORD not in repr(logs)

    async def test_login_rate_limit(self, env: Env) -> None:
        """Past login_rate attempts a minute from one address, even the right password gets 429."""
        for _ in range(LOGIN_RATE):
            assert (await env.login(USER, "guess")).status == 401
        with capture_logs() as logs:
            refused = await env.login()
            again = await env.login()
        assert (refused.status, again.status) == (429, 429)
        assert refused.headers["Retry-After"] == "60"
        assert (await env.client.get("/", allow_redirects=False)).status == 303
        # One line per burst, not one per attempt.
        assert [entry["event"] for entry in logs] == ["login_rate_limited"]
        env.clock.now += 61
        assert (await env.login()).status == 303
        await env.page("/")

    async def test_login_form_needs_its_token(self, env: Env) -> None:
        """A login POST without the form's token (or with another) is refused with 403."""
        await env.client.get("/login")
        missing = await env.client.post(
            "/login", data={"name": USER, "password": PASSWORD}, allow_redirects=False
        )
        wrong = await env.client.post(
            "/login",
            data={"name": USER, "password": PASSWORD, "csrf": "forged"},
            allow_redirects=False,
        )
        assert (missing.status, wrong.status) == (403, 403)
        assert (await env.client.get("/", allow_redirects=False)).status == 303

    async def test_cookie_flags(self, env: Env) -> None:
        """The session cookie is HttpOnly, SameSite=Strict and Secure (public_url is https)."""
        response = await env.login()
        cookie = response.cookies[SESSION_COOKIE]
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Strict"
        assert cookie["secure"] is True
        assert cookie["path"] == "/"
        assert str(SESSION_HOURS * 3600) == cookie["max-age"]
        assert len(cookie.value) >= 40  # 32 random bytes

    async def test_no_secure_flag_on_plain_http(self, make_env: EnvFactory) -> None:
        """On a plain-http public URL (a LAN install) the cookie works without Secure."""
        env = await make_env(public_url="http://127.0.0.1:8080")
        response = await env.login()
        assert not response.cookies[SESSION_COOKIE]["secure"]
        await env.page("/")

    async def test_session_expires(self, env: Env) -> None:
        """After session_hours the session no longer opens pages."""
        await env.login()
        env.clock.now += SESSION_HOURS * 3600 - 1
        await env.page("/")
        env.clock.now += 1
        assert (await env.client.get("/", allow_redirects=False)).status == 303

    async def test_logout_ends_the_session_on_the_server(self, env: Env) -> None:
        """After logout the old cookie, replayed, opens nothing."""
        await env.login()
        token = env.client.session.cookie_jar.filter_cookies(env.client.make_url("/"))[
            SESSION_COOKIE
        ].value
        response = await env.client.post(
            "/logout", data={"csrf": await env.csrf()}, allow_redirects=False
        )
        assert (response.status, response.headers["Location"]) == (303, "/login")
        replay = await env.client.get(
            "/", headers={"Cookie": f"{SESSION_COOKIE}={token}"}, allow_redirects=False
        )
        assert replay.status == 303

    async def test_logged_in_login_page_goes_to_the_inbox(self, env: Env) -> None:
        """Someone already signed in who opens /login is sent to the inbox."""
        await env.login()
        response = await env.client.get("/login", allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/")


class TestCsrf:
    @pytest.mark.parametrize("token", [None, "", "forged-token", "é"])
    async def test_posts_need_the_session_token(self, env: Env, token: str | None) -> None:
        """Reply, handled and logout without the session's CSRF token are 403 and do nothing."""
        await missed_call(env.store)
        await env.login()
        data = {} if token is None else {"csrf": token}
        with capture_logs() as logs:
            reply = await env.client.post(f"/c/{CALLER}/reply", data={**data, "body": "hi"})
            handled = await env.client.post(f"/c/{CALLER}/handled", data=data)
            logout = await env.client.post("/logout", data=data)
        assert [reply.status, handled.status, logout.status] == [403, 403, 403]
        assert [entry["event"] for entry in logs] == ["csrf_rejected"] * 3
        assert "".join(await env.outbox_bodies()) == "Sorry we missed your call - Acme Plumbing"
        assert 'badge muted">handled' not in await env.page("/")

    async def test_every_form_carries_the_token(self, env: Env) -> None:
        """Each form on the pages embeds the session's CSRF token."""
        await missed_call(env.store)
        await env.login()
        for path in ("/", f"/c/{CALLER}", "/dashboard"):
            page = await env.page(path)
            forms = page.count("<form")
            assert forms >= 1
            assert forms == len(CSRF.findall(page))
            assert {await env.csrf()} == set(CSRF.findall(page))


class TestHeaders:
    @pytest.mark.parametrize("path", ["/login", "/", "/hooks/twilio/inbound"])
    async def test_security_headers(self, env: Env, path: str) -> None:
        """Pages and callbacks carry CSP, nosniff, no framing, no referrer, no caching, HSTS."""
        await env.login()
        response = await env.client.get(path, allow_redirects=False)
        headers = response.headers
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Strict-Transport-Security"].startswith("max-age=")

    async def test_style_block_matches_the_policy(self, env: Env) -> None:
        """The page's one <style> block is the one the CSP hash allows."""
        page = await (await env.client.get("/login")).text()
        style = re.search(r"<style>(.*?)</style>", page, re.S)
        assert style is not None
        digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
        assert f"'sha256-{digest}'" in CONTENT_SECURITY_POLICY
        assert "<script" not in page


# -- the inbox ----------------------------------------------------------------------------------


class TestInbox:
    async def test_the_whole_round(self, env: Env) -> None:
        """Log in, see the conversation, open it, reply, mark it handled, log out."""
        await missed_call(env.store)
        assert (
            await env.twilio("inbound", inbound_params("SM1", "Can you come today?"))
        ).status == 200
        await env.login()

        listing = await env.page("/")
        shown = text_of(listing)
        assert "Bob Jones" in shown
        assert "+1 212-555-0123" in shown  # staff see the full number
        assert "no answer" in shown
        assert "to +1 212-555-0100" in shown
        assert "text sent" in shown
        assert "1 reply" in shown
        assert f'href="/c/{CALLER}"' in listing

        thread = await env.page(f"/c/{CALLER}")
        assert "reply" not in text_of(await env.page("/")).split("Bob Jones")[1]  # now read
        assert "Missed call" in thread
        assert "Sorry we missed your call - Acme Plumbing" in thread
        assert "Can you come today?" in thread
        assert f'href="tel:{CALLER}"' in thread

        response = await env.client.post(
            f"/c/{CALLER}/reply",
            data={"csrf": csrf_of(thread), "body": "Yes, we'll be there at 3."},
            allow_redirects=False,
        )
        assert (303, f"/c/{CALLER}?queued") == (response.status, response.headers["Location"])
        assert "Yes, we'll be there at 3." in await env.outbox_bodies()
        thread = await env.page(f"/c/{CALLER}?queued")
        assert "Reply queued" in thread
        assert "Yes, we&#x27;ll be there at 3." in thread

        response = await env.client.post(
            f"/c/{CALLER}/handled", data={"csrf": csrf_of(thread)}, allow_redirects=False
        )
        assert (response.status, response.headers["Location"]) == (303, "/")
        assert '<span class="badge muted">handled</span>' in await env.page("/")
        thread = await env.page(f"/c/{CALLER}")
        assert "Marked handled by alice" in thread
        assert "Mark handled</button>" not in thread

        response = await env.client.post(
            "/logout", data={"csrf": await env.csrf()}, allow_redirects=False
        )
        assert (response.status, response.headers["Location"]) == (303, "/login")
        assert (await env.client.get("/", allow_redirects=False)).status == 303

    async def test_reply_to_an_opted_out_number_is_refused(self, env: Env) -> None:
        """A reply to a number that texted STOP says why, offers no reply box, queues nothing."""
        await missed_call(env.store)
        await env.twilio("inbound", inbound_params("SM2", "STOP"))
        await env.login()
        before = await env.outbox_bodies()
        response = await env.client.post(
            f"/c/{CALLER}/reply",
            data={"csrf": await env.csrf(), "body": "Are you sure?"},
            allow_redirects=False,
        )
        page = await response.text()
        assert response.status == 400
        assert "Not sent:" in page
        assert "opted out" in page
        assert "They opted out" in page
        assert "Opted out · they texted STOP" in text_of(page)
        assert "<textarea" not in page
        assert before == await env.outbox_bodies()

    async def test_reply_needs_a_conversation(self, env: Env) -> None:
        """A reply to a number that never called or texted is 404 and texts nobody."""
        await missed_call(env.store)
        await env.login()
        response = await env.client.post(
            "/c/+12125550199/reply", data={"csrf": await env.csrf(), "body": "Hello?"}
        )
        assert response.status == 404
        assert await env.outbox_bodies() == ["Sorry we missed your call - Acme Plumbing"]

    async def test_public_url_with_a_path(self, make_env: EnvFactory) -> None:
        """Behind a proxy at /textback, links and redirects carry it, and signatures cover it."""
        env = await make_env(public_url="https://pbx.acme.example/textback")
        response = await env.client.get("/", allow_redirects=False)
        assert response.headers["Location"] == "/textback/login"
        assert 'action="/textback/login"' in await env.page("/login")
        await missed_call(env.store)
        assert (await env.twilio("inbound", inbound_params("SM9", "hi"))).status == 200
        env.public_url = PUBLIC_URL
        assert (await env.twilio("inbound", inbound_params("SM8", "hi"))).status == 403

    async def test_empty_reply_is_refused(self, env: Env) -> None:
        """A blank reply is not sent; the page asks for text."""
        await missed_call(env.store)
        await env.login()
        response = await env.client.post(
            f"/c/{CALLER}/reply", data={"csrf": await env.csrf(), "body": "   "}
        )
        assert response.status == 400
        assert "Write a reply first." in await response.text()
        assert len(await env.outbox_bodies()) == 1

    async def test_overlong_reply_keeps_the_draft(self, env: Env) -> None:
        """A reply over the length limit is refused with the text kept in the box to shorten."""
        await missed_call(env.store)
        await env.login()
        draft = "<b>" + "a" * MAX_REPLY
        response = await env.client.post(
            f"/c/{CALLER}/reply", data={"csrf": await env.csrf(), "body": draft}
        )
        page = await response.text()
        assert response.status == 400
        assert f"longer than {MAX_REPLY} characters" in page
        assert f">&lt;b&gt;{'a' * MAX_REPLY}</textarea>" in page
        assert len(await env.outbox_bodies()) == 1

    async def test_everything_is_escaped(self, env: Env) -> None:
        """Markup in a caller name or a reply is shown as text, never run."""
        await missed_call(env.store, name='<script>alert("name")</script>')
        await env.twilio("inbound", inbound_params("SM3", "<img src=x onerror=alert(1)>"))
        await env.login()
        listing = await env.page("/")
        thread = await env.page(f"/c/{CALLER}")
        for page in (listing, thread):
            assert "<script>alert" not in page
            assert "<img src=x" not in page
        assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;" in listing
        assert "&lt;img src=x onerror=alert(1)&gt;" in thread

    async def test_urgent_reply_is_marked(self, env: Env) -> None:
        """A reply with URGENT shows the URGENT badge in the list and the thread."""
        await missed_call(env.store)
        await env.twilio("inbound", inbound_params("SM4", "URGENT water everywhere"))
        await env.login()
        assert "URGENT</span>" in await env.page("/")
        assert "URGENT</span>" in await env.page(f"/c/{CALLER}")

    async def test_newest_first(self, env: Env) -> None:
        """The list shows the most recent conversation first."""
        await missed_call(env.store, caller="+12125550111", name="Old Caller", at=NOW - 7200)
        await missed_call(
            env.store, caller="+12125550122", name="New Caller", at=NOW - 60, call_id="2.2"
        )
        await env.login()
        listing = await env.page("/")
        assert listing.index("New Caller") < listing.index("Old Caller")

    @pytest.mark.parametrize("path", ["/c/+12125550199", "/c/12125550123", "/c/+1%3Cb%3E"])
    async def test_unknown_threads_are_404(self, env: Env, path: str) -> None:
        """A number with no conversation, or no number at all, is not found."""
        await env.login()
        assert (await env.client.get(path)).status == 404

    async def test_dashboard(self, env: Env) -> None:
        """The dashboard counts today's and the week's missed calls, texts, replies, opt-outs."""
        await missed_call(env.store)
        await missed_call(env.store, caller="+12125550111", at=NOW - 3 * 86400, call_id="3.3")
        await env.twilio("inbound", inbound_params("SM5", "thanks"))
        await env.twilio("inbound", inbound_params("SM6", "STOP", sender="+12125550111"))
        await env.login()
        page = await env.page("/dashboard")
        cells = re.findall(
            r'<th scope="row">([^<]+)</th><td class="n">(\d+)</td><td class="n">(\d+)', page
        )
        assert cells == [
            ("Missed calls", "1", "2"),
            ("Texted back", "1", "2"),
            ("Replied", "2", "2"),  # numbers that texted us: a STOP is a text too
            ("Opted out", "1", "1"),
        ]
        assert "America/New_York" in page


# -- provider callbacks -------------------------------------------------------------------------


class TestHooks:
    @pytest.mark.parametrize("path", ["/hooks/nexmo/inbound", "/hooks/plain/status"])
    async def test_unknown_or_deaf_gateway_is_404(self, env: Env, path: str) -> None:
        """A gateway that is not configured, or takes no callbacks, is not found."""
        assert (await env.client.post(path, data={"Body": "hi"})).status == 404

    async def test_valid_reply_is_stored_once(self, env: Env) -> None:
        """A signed reply answers Twilio's empty TwiML; delivered twice, it is stored once."""
        await missed_call(env.store)
        params = inbound_params("SM10", "Call me back please")
        first = await env.twilio("inbound", params)
        second = await env.twilio("inbound", params)
        for response in (first, second):
            assert response.status == 200
            assert response.content_type == "text/xml"
            assert "<Response/>" in await response.text()
        thread = await env.store.inbox.thread(CALLER)
        assert thread is not None
        assert [item.text for item in thread.items].count("Call me back please") == 1

    async def test_forged_reply_is_403_and_leaves_nothing(self, env: Env) -> None:
        """A reply signed with another key is 403, empty, stored nowhere, logged once."""
        params = inbound_params("SM11", "STOP")
        with capture_logs() as logs:
            response = await env.twilio("inbound", params, token="not-the-auth-token")
        assert response.status == 403
        assert await response.read() == b""
        assert await env.store.inbox.conversations() == []
        assert not await env.store.outbox.is_opted_out(CALLER)
        assert len(logs) == 1
        (entry,) = logs
        assert entry["event"] == "webhook_rejected"
        assert (entry["gateway"], entry["remote"], entry["status"]) == ("twilio", "127.0.0.1", 403)
        assert entry["reason"]
        assert CALLER not in repr(logs)
        assert "STOP" not in repr(logs)

    async def test_unsigned_reply_is_403(self, env: Env) -> None:
        """A reply without any signature is refused."""
        response = await env.client.post(
            "/hooks/twilio/inbound", data=inbound_params("SM12", "hello")
        )
        assert response.status == 403
        assert await env.store.inbox.conversations() == []

    async def test_malformed_reply_is_400(self, env: Env) -> None:
        """A correctly signed callback missing the fields a reply needs is 400, stored nowhere."""
        with capture_logs() as logs:
            response = await env.twilio("inbound", {"AccountSid": ACCOUNT, "Body": "hi"})
        assert response.status == 400
        assert await response.read() == b""
        assert [entry["event"] for entry in logs] == ["webhook_rejected"]
        assert await env.store.inbox.conversations() == []

    async def test_oversized_body_is_refused(self, env: Env) -> None:
        """A body over 64 KiB is refused before anything reads it."""
        params = inbound_params("SM13", "x" * (64 * 1024))
        response = await env.twilio("inbound", params)
        assert response.status == 413
        assert await env.store.inbox.conversations() == []

    async def test_status_callback_updates_our_text(self, env: Env) -> None:
        """A signed delivery receipt marks our text delivered in the inbox."""
        await missed_call(env.store)
        response = await env.twilio(
            "status",
            {"MessageSid": "SM17900000001", "MessageStatus": "delivered", "AccountSid": ACCOUNT},
        )
        assert response.status == 200
        await env.login()
        assert "text delivered" in await env.page("/")

    async def test_get_callback_with_url_token(self, env: Env) -> None:
        """VoIP.ms calls back with GET and a token in the URL; a wrong token is 403."""
        await missed_call(env.store)
        query = {"from": "2125550123", "to": "2125550100", "message": "on my way", "id": "77"}
        wrong = await env.client.get("/hooks/voipms/inbound", params={"token": "guess", **query})
        assert wrong.status == 403
        right = await env.client.get(
            "/hooks/voipms/inbound", params={"token": VOIPMS_TOKEN, **query}
        )
        assert right.status == 200
        thread = await env.store.inbox.thread(CALLER)
        assert thread is not None
        assert [item.text for item in thread.items].count("on my way") == 1


# -- the pieces ---------------------------------------------------------------------------------


class TestPieces:
    def test_sessions_expire_and_close(self) -> None:
        """A session opens with its token until it expires or is closed; others open nothing."""
        sessions = Sessions(lifetime=100)
        token, session = sessions.open("alice", now=0)
        assert session == sessions.get(token, now=99)
        assert sessions.get(token + "x", now=1) is None
        assert sessions.get(None, now=1) is None
        assert sessions.get(token, now=100) is None
        token, _ = sessions.open("alice", now=200)
        sessions.close(token)
        assert sessions.get(token, now=201) is None
        assert len(sessions) == 0

    def test_limiter_window_slides(self) -> None:
        """Attempts count for 60 seconds; the limit is per address."""
        limiter = LoginLimiter(2)
        assert Admission.ALLOWED is limiter.admit("a", 0)
        assert Admission.ALLOWED is limiter.admit("a", 30)
        assert Admission.REFUSED is limiter.admit("a", 59)
        assert Admission.REFUSED_AGAIN is limiter.admit("a", 59.5)
        assert Admission.ALLOWED is limiter.admit("b", 59.5)
        assert Admission.ALLOWED is limiter.admit("a", 60)
        assert Admission.REFUSED is limiter.admit("a", 61)

    def test_limiter_memory_is_bounded(self) -> None:
        """Many addresses never grow the limiter past its bound, and the newest still count."""
        limiter = LoginLimiter(1, max_tracked=10)
        for n in range(1000):
            limiter.admit(f"10.0.{n // 256}.{n % 256}", float(n) / 100)
        assert len(limiter) <= 10
        assert Admission.REFUSED is limiter.admit("10.0.3.231", 10.0)


async def test_start_web_serves_on_the_configured_address(tmp_path: Path) -> None:
    """start_web binds [web] listen and serves the login page until cleanup."""
    config = load(write_config(tmp_path))
    assert config.web is not None
    config = dataclasses.replace(config, web=dataclasses.replace(config.web, port=0))
    async with await Store.open(config.daemon.database) as store:
        deps = WebDeps(
            config=config,
            store=store,
            conversations=Conversations(config, store, config.gateway),
            gateways={"twilio": config.gateway},
        )
        runner = await start_web(deps)
        try:
            (host, port, *_) = runner.addresses[0]
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://{host}:{port}/login") as response,
            ):
                assert response.status == 200
                assert "Sign in" in await response.text()
        finally:
            await runner.cleanup()
