"""Fakes for the plivo, voipms, webhook and smtp gateways: real servers on 127.0.0.1.

The HTTP fakes build on :class:`tests.fakeproviders.FakeProvider` (a script of
:class:`Reply` / :class:`Hang` / :class:`Drop`, every request recorded; with
the script empty they answer as the provider does on success and check
credentials as it does). :class:`SmtpSink` is aiosmtpd's SMTP server, started
in the test's own loop, that keeps every mail and refuses on command.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import uuid
from collections.abc import Mapping
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.fakeproviders import Drop, FakeProvider, Hang, Recorded, Reply

__all__ = [
    "Drop",
    "Hang",
    "PlivoFake",
    "Recorded",
    "Reply",
    "SmtpSink",
    "VoipMsFake",
    "WebhookFake",
]

PLIVO_AUTH_ID = "MA2025RK4E639VJFZAGV"
# A self-signed certificate for 127.0.0.1 (valid until 2126): no client trusts it.
SELF_SIGNED_KEY = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg319AK1T+4wF0jIST
Y4xyl1aHDsDhGdxNUBPSuvencZChRANCAAQk34ZEI6Wbb4ZqExqNTpR/S0j6kmZO
VKZFltG1Mhh2+qjjplnSHLsNsBDniOAOCUimBNu/l6HW+6iEtlZYfXI2
-----END PRIVATE KEY-----
"""
SELF_SIGNED_CERT = """\
-----BEGIN CERTIFICATE-----
MIIBkDCCATagAwIBAgIUHtAQesSMJDolUJAi19p6Ao9Mo3AwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyNzIxNDIxMVoYDzIxMjYxMTAz
MjE0MjExWjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQk34ZEI6Wbb4ZqExqNTpR/S0j6kmZOVKZFltG1Mhh2+qjjplnSHLsN
sBDniOAOCUimBNu/l6HW+6iEtlZYfXI2o2QwYjAdBgNVHQ4EFgQU835Zj8opKi1a
nUdSRTczPSfi3OIwHwYDVR0jBBgwFoAU835Zj8opKi1anUdSRTczPSfi3OIwDwYD
VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0gAMEUC
IQDyc8n9B2R24F2NhqR3MpJsSQ7vJfvaXnf4keXnX2PKEgIgX9u9JFTs9lMxtpSz
0OEBh5YJl8A8rX945VqbmTMy0H4=
-----END CERTIFICATE-----
"""


class PlivoFake(FakeProvider):
    """Plivo ``POST /v1/Account/{auth_id}/Message/``: JSON, Basic auth, 202 + message_uuid."""

    def __init__(self, *, auth_id: str = PLIVO_AUTH_ID, token: str = "plivo-token") -> None:
        super().__init__()
        self.auth_id = auth_id
        self.token = token
        self.app.router.add_route("*", "/v1/Account/{auth_id}/Message/", self.create)
        self.app.router.add_get("/v1/Account/{auth_id}/", self.fetch_account)

    async def fetch_account(self, request: web.Request) -> web.StreamResponse:
        recorded, scripted = await self.answer(request)
        if scripted is not None:
            return scripted
        if recorded.basic_auth() != (self.auth_id, self.token):
            return web.Response(status=401, text="Could not verify your access level")
        if request.match_info["auth_id"] != self.auth_id:
            return self.error("not found", 404).response()
        return web.json_response(
            {
                "account_type": "standard",
                "auth_id": self.auth_id,
                "cash_credits": "22.75000",
                "name": "Acme Plumbing",
                "state": "",
                "resource_uri": f"/v1/Account/{self.auth_id}/",
            }
        )

    @staticmethod
    def error(text: str, status: int = 400, **headers: str) -> Reply:
        """Plivo's error shape: an ``error`` text, no code."""
        body = {"api_id": str(uuid.uuid4()), "error": text}
        return Reply(status, body, {k.replace("_", "-"): v for k, v in headers.items()})

    async def create(self, request: web.Request) -> web.StreamResponse:
        recorded, scripted = await self.answer(request)
        if scripted is not None:
            return scripted
        if recorded.basic_auth() != (self.auth_id, self.token):
            return web.Response(
                status=401,
                text="Could not verify your access level for that URL.\n"
                "You have to login with proper credentials",
            )
        if request.match_info["auth_id"] != self.auth_id:
            return self.error("not found", 404).response()
        if request.method != "POST":
            return self.error("method not allowed", 405).response()
        payload = recorded.json
        assert isinstance(payload, dict)
        if ("src" in payload) == ("powerpack_uuid" in payload):
            return self.error("specify either src or powerpack_uuid").response()
        for name in ("dst", "text"):
            if not payload.get(name):
                return self.error(f"{name} parameter not present").response()
        return web.json_response(
            {
                "api_id": str(uuid.uuid4()),
                "message": "message(s) queued",
                "message_uuid": [str(uuid.UUID(int=self.next_id()))],
            },
            status=202,
        )


class VoipMsFake(FakeProvider):
    """VoIP.ms ``GET /api/v1/rest.php?method=sendSMS``: HTTP 200 whatever happens."""

    def __init__(
        self,
        *,
        username: str = "owner@example.com",
        password: str = "voipms-api-password",
        dids: tuple[str, ...] = ("5145550100",),
    ) -> None:
        super().__init__()
        self.username = username
        self.password = password
        self.dids = dids
        self.app.router.add_route("*", "/api/v1/rest.php", self.rest)

    @staticmethod
    def status(word: str) -> Reply:
        return Reply(200, {"status": word})

    async def rest(self, request: web.Request) -> web.StreamResponse:
        recorded, scripted = await self.answer(request)
        if scripted is not None:
            return scripted
        query = recorded.query
        if (query.get("api_username"), query.get("api_password")) != (
            self.username,
            self.password,
        ):
            return self.status("invalid_credentials").response()
        if query.get("method") == "getBalance":
            return web.json_response(
                {"status": "success", "balance": {"current_balance": "25.3400"}}
            )
        if query.get("method") != "sendSMS":
            return self.status("invalid_method").response()
        if query.get("did") not in self.dids:
            return self.status("invalid_did").response()
        dst = query.get("dst", "")
        if len(dst) != 10 or not dst.isdigit():
            return self.status("invalid_dst").response()
        if len(query.get("message", "").encode()) > 160:
            return self.status("sms_toolong").response()
        return web.json_response({"status": "success", "sms": 23000 + self.next_id()})


class WebhookFake(FakeProvider):
    """Any endpoint at ``/hook``: 200 with ``{"data": {"id": "wh-<n>"}}`` unless scripted."""

    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_route("*", "/hook", self.hook)

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook"

    async def hook(self, request: web.Request) -> web.StreamResponse:
        _, scripted = await self.answer(request)
        if scripted is not None:
            return scripted
        return web.json_response({"data": {"id": f"wh-{self.next_id()}"}})


class SmtpSink:
    """aiosmtpd on 127.0.0.1:0 in the running loop, keeping each mail it accepts.

    ``users`` turns on AUTH (PLAIN and LOGIN, without TLS: loopback only).
    ``rcpt_reply`` / ``data_reply`` refuse every RCPT / DATA with that reply line.
    ``tls`` offers STARTTLS, or speaks TLS from the start, with a self-signed
    certificate written to ``cert_dir``.
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        tls: Literal["starttls", "implicit"] | None = None,
        cert_dir: Path | None = None,
    ) -> None:
        self.users = dict(users or {})
        self._tls = tls
        self._context = _self_signed(cert_dir) if tls is not None else None
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.envelopes: list[Envelope] = []
        self.logins: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        # Controller(port=0) cannot be used: it connects to the literal port 0 to check readiness.
        implicit = self._context if self._tls == "implicit" else None
        self._server = await loop.create_server(self._protocol, "127.0.0.1", 0, ssl=implicit)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _protocol(self) -> SMTP:
        return SMTP(
            self,
            hostname="sink.test",  # else aiosmtpd looks up this host's FQDN
            authenticator=self._authenticate if self.users else None,
            auth_require_tls=False,
            tls_context=self._context if self._tls == "starttls" else None,
        )

    @property
    def messages(self) -> list[Message]:
        """The accepted mails, parsed."""
        return [message_from_bytes(_bytes(e.original_content)) for e in self.envelopes]

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: object,
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                self.logins.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    async def handle_RCPT(  # aiosmtpd calls it by this name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd calls it by this name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data_reply is not None:
            return self.data_reply
        self.envelopes.append(envelope)
        return f"250 Message accepted for delivery (queued as Q{next(self._ids)})"


def _self_signed(cert_dir: Path | None) -> ssl.SSLContext:
    assert cert_dir is not None, "a TLS sink needs cert_dir"
    (cert_dir / "sink-key.pem").write_text(SELF_SIGNED_KEY)
    (cert_dir / "sink-cert.pem").write_text(SELF_SIGNED_CERT)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_dir / "sink-cert.pem", cert_dir / "sink-key.pem")
    return context


def _bytes(content: bytes | None) -> bytes:
    assert content is not None
    return content
