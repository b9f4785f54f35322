"""Fake SMS providers: real aiohttp servers on 127.0.0.1 speaking each vendor's documented shapes.

A fake records every request and answers from a script: push outcomes
(:class:`Reply`, :class:`Hang`, :class:`Drop`) onto ``fake.script``; with the
script empty it answers as the provider does on success. Each fake also checks
credentials the way its provider does, so a wrong secret gets the vendor's real
authentication error.

    async with TwilioFake() as fake:
        fake.script.append(fake.error(21610))
        ...
        assert fake.requests[0].form["To"] == "+14155550100"
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from aiohttp import web
from multidict import CIMultiDictProxy, MultiDict


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: MultiDict[str]
    headers: CIMultiDictProxy[str]
    body: bytes
    peer_port: int  # the client's source port: equal ports mean a reused connection

    @property
    def form(self) -> dict[str, str]:
        """The urlencoded body as a dict (single values; a repeated field fails the test)."""
        from urllib.parse import parse_qsl

        pairs = parse_qsl(
            self.body.decode(), keep_blank_values=True, strict_parsing=bool(self.body)
        )
        names = [name for name, _ in pairs]
        assert len(names) == len(set(names)), f"repeated form field in {names}"
        return dict(pairs)

    @property
    def json(self) -> object:
        return json.loads(self.body)

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer with this status, body (JSON-encoded unless bytes) and headers."""

    status: int
    body: object = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        if isinstance(self.body, bytes):
            return web.Response(status=self.status, body=self.body, headers=dict(self.headers))
        return web.json_response(self.body, status=self.status, headers=dict(self.headers))


@dataclass(frozen=True, slots=True)
class Hang:
    """Read the request, then never answer (until the fake stops)."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Read the request, then close the connection without a reply."""


Outcome = Reply | Hang | Drop


class FakeProvider:
    """Base: an aiohttp app on 127.0.0.1:0; subclasses add routes, checks and success bodies."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.requests: list[Recorded] = []
        self.script: deque[Outcome] = deque()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._ids = itertools.count(1)
        # While set to an unset Event, requests wait on it before being answered.
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        # How many requests were in flight (itself included) as each arrived, in order.
        self.arrivals_in_flight: list[int] = []

    async def __aenter__(self) -> Self:
        self._runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def record(self, request: web.Request) -> Recorded:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        recorded = Recorded(
            method=request.method,
            path=request.path,
            query=MultiDict(request.query),
            headers=request.headers,
            body=await request.read(),
            peer_port=peer[1] if peer else 0,
        )
        self.requests.append(recorded)
        return recorded

    async def answer(self, request: web.Request) -> tuple[Recorded, web.StreamResponse | None]:
        """Record the request and play the next scripted outcome; None: answer as on success."""
        recorded = await self.record(request)
        self.in_flight += 1
        self.arrivals_in_flight.append(self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            return recorded, await self._play(request)
        finally:
            self.in_flight -= 1

    async def _play(self, request: web.Request) -> web.StreamResponse | None:
        if not self.script:
            return None
        outcome = self.script.popleft()
        if isinstance(outcome, Reply):
            return outcome.response()
        if isinstance(outcome, Hang):
            await self._stopping.wait()
            return web.Response(status=503)
        assert request.transport is not None
        request.transport.abort()
        # The reply is never written: the connection is already gone.
        return web.Response(status=500)

    def next_id(self) -> int:
        return next(self._ids)


def _hex32(n: int) -> str:
    return f"{n:032x}"


class TwilioFake(FakeProvider):
    """Twilio's (and SignalWire LaML's) Message create: form POST, Basic auth, 201 + sid."""

    def __init__(
        self,
        *,
        account: str = "AC" + "0" * 31 + "1",
        token: str = "twilio-token",
        user: str | None = None,
        prefix: str = "",
    ) -> None:
        super().__init__()
        self.account = account
        self.token = token
        self.user = user or account
        self.account_status = "active"  # what the Account resource says: "suspended", ...
        self.account_type = "Full"  # or "Trial"
        self.app.router.add_route(
            "*", prefix + "/2010-04-01/Accounts/{account}/Messages.json", self.create
        )
        self.app.router.add_get(prefix + "/2010-04-01/Accounts/{account}.json", self.fetch_account)

    @staticmethod
    def error(code: int, status: int = 400, message: str = "", **headers: str) -> Reply:
        """Twilio's REST error shape."""
        body = {
            "code": code,
            "message": message or f"error {code}",
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return Reply(status, body, {k.replace("_", "-"): v for k, v in headers.items()})

    def refused(self, request: web.Request, recorded: Recorded) -> web.Response | None:
        """Twilio's answer to wrong credentials or someone else's account; None if both fit."""
        if recorded.basic_auth() != (self.user, self.token):
            return self.error(20003, 401, "Authenticate").response()
        if request.match_info["account"] != self.account:
            return self.error(20404, 404, "The requested resource was not found").response()
        return None

    async def fetch_account(self, request: web.Request) -> web.StreamResponse:
        """GET the Account resource (an API key may not: 401, as Twilio answers it)."""
        recorded, scripted = await self.answer(request)
        if scripted is not None:
            return scripted
        if self.user != self.account:
            return self.error(20003, 401, "Authenticate").response()
        refused = self.refused(request, recorded)
        if refused is not None:
            return refused
        return web.json_response(
            {
                "sid": self.account,
                "friendly_name": "Acme Plumbing",
                "status": self.account_status,
                "type": self.account_type,
            }
        )

    async def create(self, request: web.Request) -> web.StreamResponse:
        recorded, scripted = await self.answer(request)
        if scripted is not None:
            return scripted
        refused = self.refused(request, recorded)
        if refused is not None:
            return refused
        if request.method == "GET":  # the message list
            return web.json_response({"messages": [], "page": 0, "page_size": 1})
        form = recorded.form
        if "To" not in form:
            return self.error(21604, 400, "A 'To' phone number is required.").response()
        sid = "SM" + _hex32(self.next_id())
        return web.json_response(
            {
                "account_sid": self.account,
                "api_version": "2010-04-01",
                "body": form.get("Body", ""),
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_segments": "1",
                "sid": sid,
                "status": "accepted" if "MessagingServiceSid" in form else "queued",
                "to": form["To"],
                "uri": f"/2010-04-01/Accounts/{self.account}/Messages/{sid}.json",
            },
            status=201,
        )


class TelnyxFake(FakeProvider):
    """Telnyx ``POST /v2/messages``: JSON, Bearer key, 200 + data.id."""

    def __init__(self, *, api_key: str = "KEY-telnyx") -> None:
        super().__init__()
        self.api_key = api_key
        self.balance = "300.00"
        self.app.router.add_route("*", "/v2/messages", self.create)
        self.app.router.add_get("/v2/balance", self.fetch_balance)

    async def fetch_balance(self, request: web.Request) -> web.StreamResponse:
        recorded, scripted = await self.answer(request)
        if scripted is not None:
            return scripted
        if recorded.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(10009, 401, "Authentication failed").response()
        return web.json_response(
            {
                "data": {
                    "record_type": "balance",
                    "balance": self.balance,
                    "credit_limit": "100.00",
                    "available_credit": "400.00",
                    "currency": "USD",
                }
            }
        )

    @staticmethod
    def error(code: int, status: int = 400, title: str = "", **headers: str) -> Reply:
        """Telnyx's error shape: an ``errors`` array, codes as strings."""
        body = {
            "errors": [
                {
                    "code": str(code),
                    "title": title or f"error {code}",
                    "detail": f"detail of {code}",
                    "meta": {"url": f"https://developers.telnyx.com/docs/overview/errors/{code}"},
                }
            ]
        }
        return Reply(status, body, {k.replace("_", "-"): v for k, v in headers.items()})

    async def create(self, request: web.Request) -> web.StreamResponse:
        recorded, scripted = await self.answer(request)
        if scripted is not None:
            return scripted
        if recorded.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(10009, 401, "Authentication failed").response()
        if not recorded.headers.get("Content-Type", "").startswith("application/json"):
            return self.error(10015, 400, "Bad Request").response()
        payload = recorded.json
        assert isinstance(payload, dict)
        return web.json_response(
            {
                "data": {
                    "record_type": "message",
                    "direction": "outbound",
                    "id": str(uuid.UUID(int=self.next_id())),
                    "type": "SMS",
                    "from": {"phone_number": payload.get("from")},
                    "to": [{"phone_number": payload.get("to"), "status": "queued"}],
                    "text": payload.get("text"),
                    "messaging_profile_id": payload.get("messaging_profile_id"),
                    "parts": 1,
                    "encoding": "GSM-7",
                }
            }
        )


class VonageFake(FakeProvider):
    """Vonage SMS API ``POST /sms/json``: form, key+secret fields, HTTP 200 with per-part status."""

    def __init__(self, *, api_key: str = "a1b2c3d4", api_secret: str = "vonage-secret") -> None:
        super().__init__()
        self.api_key = api_key
        self.api_secret = api_secret
        self.app.router.add_route("*", "/sms/json", self.create)
        self.app.router.add_get("/account/get-balance", self.fetch_balance)

    async def fetch_balance(self, request: web.Request) -> web.StreamResponse:
        recorded, scripted = await self.answer(request)
        if scripted is not None:
            return scripted
        query = recorded.query
        if (query.get("api_key"), query.get("api_secret")) != (self.api_key, self.api_secret):
            return web.json_response(
                {"error-code": "401", "error-code-label": "authentication failed"}, status=401
            )
        return web.json_response({"value": 10.28, "autoReload": False})

    @staticmethod
    def part(status: int, text: str = "") -> dict[str, str]:
        if status == 0:
            return {"status": "0", "message-id": "0C000000" + uuid.uuid4().hex[:8].upper()}
        return {"status": str(status), "error-text": text or f"status {status}"}

    @classmethod
    def error(cls, status: int, text: str = "") -> Reply:
        """A refused one-part text: still HTTP 200."""
        return Reply(200, {"message-count": "1", "messages": [cls.part(status, text)]})

    @classmethod
    def parts(cls, *statuses: int) -> Reply:
        return Reply(
            200,
            {"message-count": str(len(statuses)), "messages": [cls.part(s) for s in statuses]},
        )

    async def create(self, request: web.Request) -> web.StreamResponse:
        recorded, scripted = await self.answer(request)
        if scripted is not None:
            return scripted
        form = recorded.form
        if (form.get("api_key"), form.get("api_secret")) != (self.api_key, self.api_secret):
            return self.error(4, "Bad Credentials").response()
        unicode = form.get("type") == "unicode"
        single, multi = (70, 67) if unicode else (160, 153)
        size = len(form.get("text", ""))
        count = 1 if size <= single else -(-size // multi)
        messages = [
            {
                "to": form.get("to", ""),
                "message-id": f"0C0000000{self.next_id():07X}",
                "status": "0",
                "remaining-balance": "3.14159265",
                "message-price": "0.03330000",
                "network": "12345",
                "client-ref": form.get("client-ref", ""),
            }
            for _ in range(count)
        ]
        return web.json_response({"message-count": str(count), "messages": messages})
