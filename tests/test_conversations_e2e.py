"""End to end: a missed call, the caller's signed reply, the inbox in a real Chromium, STOP.

The real daemon (AMI simulator → correlator → outbox → fake Twilio on 127.0.0.1)
with its web server; replies arrive as Twilio-signed HTTP posts, computed here
the way Twilio computes them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.browser import CHROMIUM, chromium
from tests.conftest import CAPTURES, REPO
from tests.fakeproviders import TwilioFake
from textback.config import load
from textback.config_web import hash_password
from textback.service import Daemon
from textback.simulator import AmiSimulator, SimulatorOptions

PATIENCE = 30.0
ACCOUNT = "AC" + "0" * 31 + "1"
TOKEN = "twilio-token"
CALLER = "+14155550101"  # the caller of 01-abandoned-ringing
OUR_NUMBER = "+12125550100"
PASSWORD = "correct horse battery staple"
ARTIFACTS = REPO / "test-artifacts"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(
    tmp_path: Path, ami_port: int, provider_url: str, web_port: int, extra: str = ""
) -> Path:
    (tmp_path / "ami-secret").write_text("textback\n")
    (tmp_path / "twilio-token").write_text(TOKEN + "\n")
    path = tmp_path / "textback.toml"
    path.write_text(
        f"""
[daemon]
database = "{tmp_path / "textback.db"}"

[business]
name = "Acme Plumbing"
link = "https://acme.example/book"

[asterisk]
port = {ami_port}
secret_file = "{tmp_path / "ami-secret"}"
reconnect_min = 0.1
reconnect_max = 0.5

[trunks.carrier-a]
channels = ["SIP/carrier-a-*", "PJSIP/carrier-a-*"]

[gateway]
kind = "twilio"
account_sid = "{ACCOUNT}"
auth_token_file = "{tmp_path / "twilio-token"}"
from = "{OUR_NUMBER}"
base_url = "{provider_url}"

[web]
listen = "127.0.0.1:{web_port}"
public_url = "http://127.0.0.1:{web_port}"

[[web.users]]
name = "alice"
password_hash = "{hash_password(PASSWORD)}"
{extra}
"""
    )
    return path


def twilio_signed(url: str, params: dict[str, str], token: str = TOKEN) -> dict[str, str]:
    """The X-Twilio-Signature Twilio would send: HMAC-SHA1 over URL + sorted name+value."""
    signed = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    return {"X-Twilio-Signature": base64.b64encode(digest).decode()}


async def post_reply(web_url: str, body: str, sid: str, token: str = TOKEN) -> int:
    url = web_url + "/hooks/twilio/inbound"
    form = {
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": CALLER,
        "To": OUR_NUMBER,
        "Body": body,
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url,
            data=urlencode(form),
            headers={
                **twilio_signed(url, form, token),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        ) as response,
    ):
        return response.status


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(PATIENCE):
            # The state is in another server or in SQLite: nothing to await but it.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def rows(tmp_path: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(
        sqlite3.connect(f"file:{tmp_path / 'textback.db'}?mode=ro", uri=True)
    ) as db:
        try:
            return [tuple(r) for r in db.execute(sql).fetchall()]
        except sqlite3.OperationalError:
            return []


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, captures: list[bytes], extra: str = ""
) -> AsyncIterator[tuple[TwilioFake, AmiSimulator, str]]:
    web_port = free_port()
    async with (
        TwilioFake(account=ACCOUNT, token=TOKEN) as fake,
        AmiSimulator(captures, SimulatorOptions()) as pbx,
    ):
        config = load(write_config(tmp_path, pbx.port, fake.url, web_port, extra))
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        try:
            web_url = f"http://127.0.0.1:{web_port}"
            await until(lambda: daemon.web is not None, "the web server")
            yield fake, pbx, web_url
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def capture(name: str) -> bytes:
    return (CAPTURES / f"{name}.ami").read_bytes()


class TestStop:
    async def test_stop_reply_opts_out_and_the_next_missed_call_is_not_texted(
        self, tmp_path: Path
    ) -> None:
        """STOP by reply: opted out at once; their next missed call is suppressed, nothing sent."""
        async with running(tmp_path, []) as (fake, pbx, web_url):
            assert await post_reply(web_url, "Stop. Thank you", "SM" + "1" * 32) == 200
            assert rows(tmp_path, "SELECT e164, source FROM optouts") == [(CALLER, "sms")]
            pbx.feed(capture("01-abandoned-ringing"))
            await until(lambda: bool(rows(tmp_path, "SELECT id FROM outbox")), "the outbox row")
        assert rows(tmp_path, "SELECT to_e164, state, reason FROM outbox") == [
            (CALLER, "suppressed", "suppressed: opted_out")
        ]
        assert fake.requests == []  # Twilio confirms STOP itself; no adapter call for this caller

    async def test_forged_and_repeated_callbacks(self, tmp_path: Path) -> None:
        """A wrong signature is 403 and stores nothing; the same message twice is stored once."""
        async with running(tmp_path, []) as (_, _, web_url):
            assert await post_reply(web_url, "hello", "SM" + "2" * 32, token="wrong") == 403
            assert rows(tmp_path, "SELECT COUNT(*) FROM messages") == [(0,)]
            for _ in range(2):
                assert await post_reply(web_url, "hello", "SM" + "3" * 32) == 200
            assert rows(tmp_path, "SELECT COUNT(*) FROM messages") == [(1,)]


async def test_urgent_reply_texts_the_on_call_phone(tmp_path: Path) -> None:
    """A reply saying URGENT is flagged and texted at once to the on-call number."""
    on_call = "+14155550999"
    extra = f'[notify]\non_call = ["{on_call}"]\nurgent_keywords = ["URGENT"]\n'
    async with running(tmp_path, [], extra) as (fake, _, web_url):
        assert await post_reply(web_url, "URGENT: water everywhere", "SM" + "5" * 32) == 200
        await until(lambda: any(r.form["To"] == on_call for r in fake.requests), "the alert")
    alert = next(r.form for r in fake.requests if r.form["To"] == on_call)
    assert "water everywhere" in alert["Body"]
    assert rows(tmp_path, "SELECT urgent FROM messages") == [(1,)]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (CI installs it)")
async def test_inbox_in_a_real_browser(tmp_path: Path) -> None:
    """Log in, see the missed call and the reply, answer it, see it reach Twilio, log out."""
    async with running(tmp_path, [capture("01-abandoned-ringing")]) as (fake, _, web_url):
        await until(lambda: len(fake.requests) == 1, "the text to the missed caller")
        assert await post_reply(web_url, "Can you come tomorrow at 10?", "SM" + "4" * 32) == 200
        async with chromium(tmp_path / "profile") as page:
            await page.goto(web_url + "/")
            assert "/login" in await page.url()  # no page without a session
            await page.submit('form[action$="/login"]', name="alice", password=PASSWORD)
            listing = await page.text()
            assert "SMITH JOHN" in listing  # the caller's name, from the PBX
            assert "1 reply" in listing
            await page.goto(f"{web_url}/c/{CALLER}")
            thread = await page.text()
            assert "Can you come tomorrow at 10?" in thread
            await page.submit('form[action$="/reply"]', body="Yes, 10am works. See you then!")
            await until(lambda: len(fake.requests) == 2, "the reply to reach Twilio")
            assert "Reply queued" in await page.text()
            await page.screenshot(tmp_path / "inbox.png")
            await page.screenshot(ARTIFACTS / "inbox-thread.png")
            await page.submit('form[action$="/logout"]')
            assert "/login" in await page.url()
    reply = fake.requests[1].form
    assert (reply["To"], reply["Body"]) == (CALLER, "Yes, 10am works. See you then!")
    assert (tmp_path / "inbox.png").stat().st_size > 1000
