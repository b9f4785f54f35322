"""Every provider's replies and receipts as real HTTP requests to the running web app.

For each gateway kind that takes callbacks, the app is built as the daemon builds
it: the config loaded from a TOML file whose [gateway] reads its webhook secrets
from files, the SQLite store in tmp_path, the real Conversations, all served on
127.0.0.1. Callbacks are signed by the reference signers of the adapters' own
tests, over the configured public URL (a reverse proxy's address with a path
prefix the proxy strips before forwarding), and sent byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs
from yarl import URL

from tests.fakeproviders_b import PLIVO_AUTH_ID
from tests.test_webhooks_a import CALLER as CALLER_A
from tests.test_webhooks_a import OUR_NUMBER as OUR_A
from tests.test_webhooks_a import (
    PROJECT,
    SID,
    SIGNING,
    TELNYX_ID,
    TOKEN,
    VONAGE_ID,
    TelnyxSigner,
    dlr_params,
    finalized_payload,
    inbound_pairs,
    received_payload,
    signed,
    status_pairs,
    telnyx_event,
    twilio_reference,
)
from tests.test_webhooks_a import inbound_params as vonage_inbound
from tests.test_webhooks_b import CALLER as CALLER_B
from tests.test_webhooks_b import (
    CONSOLE_TOKEN,
    HOOK_REPLY,
    HOOK_SECRET,
    INBOUND,
    PLIVO_TOKEN,
    VOIPMS_TOKEN,
    console_url,
    hook_headers,
    plivo_headers,
    plivo_signature,
    voipms_url,
)
from tests.test_webhooks_b import OUR as OUR_B
from textback.config import load
from textback.config_web import hash_password
from textback.conversations import Conversations
from textback.store import Store, open_reader
from textback.web import WebDeps, make_app

# A reverse proxy serves the app under /textback and strips that prefix: providers sign
# the public address, the app sees only /hooks/...
PUBLIC_URL: Final = "https://office.example.com/textback"
NOW: Final = 1_790_000_000.0
TEXT: Final = "Is Tuesday at 3 ok? café & 100% + more"
TEXTED: Final = "+14155550177"  # whom our missed-call text went to, for receipts
FORM: Final = "application/x-www-form-urlencoded"
JSON: Final = "application/json"
TELNYX: Final = TelnyxSigner()
# One scrypt hash for the module: it takes a noticeable moment.
PASSWORD_HASH: Final = hash_password("correct horse battery staple")


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the provider makes it; ``path_qs`` is already percent-encoded."""

    method: str
    path_qs: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stored:
    """The ``messages`` row a reply must leave."""

    provider_id: str
    sender: str
    recipient: str
    body: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Provider:
    kind: str
    gateway: str  # the [gateway] table's keys after kind
    secrets: Mapping[str, str]  # secret files beside the TOML: name, content
    answer: tuple[str, bytes]  # the content type and body the provider is answered with
    reply: Call
    stored: Stored
    forged_reply: Call
    malformed_reply: Call  # no sender, yet signed correctly where the signature covers it
    receipt: Call
    forged_receipt: Call
    sent_id: str  # the provider id our send got back: the receipt names it
    # The outbox row's delivery_status and delivery_error once the receipt arrived.
    delivery: tuple[str | None, str | None]
    # The table the receipt's failure adds the number to ("not_sms_capable", "optouts").
    marks: str | None = None


def json_call(path_qs: str, payload: object, headers: Mapping[str, str] | None = None) -> Call:
    return Call("POST", path_qs, json.dumps(payload).encode(), headers or {"Content-Type": JSON})


# -- Twilio and SignalWire ------------------------------------------------------------------


def twilio_form(
    path: str, pairs: list[tuple[str, str]], key: str, header: str = "X-Twilio-Signature"
) -> Call:
    signature = twilio_reference(key, PUBLIC_URL + path, pairs)
    return Call("POST", path, urlencode(pairs).encode(), {"Content-Type": FORM, header: signature})


TWIML: Final = ("text/xml", b'<?xml version="1.0" encoding="UTF-8"?><Response/>')
NO_FROM: Final = [pair for pair in inbound_pairs(TEXT) if pair[0] != "From"]

TWILIO: Final = Provider(
    kind="twilio",
    gateway=f"""
account_sid = "AC{"0" * 32}"
auth_token_file = "twilio-token"
from = "{OUR_A}"
""",
    secrets={"twilio-token": TOKEN},
    answer=TWIML,
    reply=twilio_form("/hooks/twilio/inbound", inbound_pairs(TEXT), TOKEN),
    stored=Stored(SID, CALLER_A, OUR_A, TEXT),
    forged_reply=twilio_form("/hooks/twilio/inbound", inbound_pairs(TEXT), "not-the-token"),
    malformed_reply=twilio_form("/hooks/twilio/inbound", NO_FROM, TOKEN),
    receipt=twilio_form("/hooks/twilio/status", status_pairs("undelivered", "30006"), TOKEN),
    forged_receipt=twilio_form("/hooks/twilio/status", status_pairs("delivered"), "guess"),
    sent_id=SID,
    delivery=("undelivered", "undelivered, code 30006 (not_sms_capable)"),
    marks="not_sms_capable",
)

SW_HEADER: Final = "X-SignalWire-Signature"
SIGNALWIRE: Final = Provider(
    kind="signalwire",
    gateway=f"""
project_id = "{PROJECT}"
space = "example"
api_token_file = "signalwire-api-token"
signing_key_file = "signalwire-signing-key"
from = "{OUR_A}"
""",
    secrets={"signalwire-api-token": TOKEN, "signalwire-signing-key": SIGNING},
    answer=TWIML,
    reply=twilio_form("/hooks/signalwire/inbound", inbound_pairs(TEXT), SIGNING, SW_HEADER),
    stored=Stored(SID, CALLER_A, OUR_A, TEXT),
    # Signed with the API token: with a Signing Key configured, that is not the key.
    forged_reply=twilio_form("/hooks/signalwire/inbound", inbound_pairs(TEXT), TOKEN, SW_HEADER),
    malformed_reply=twilio_form("/hooks/signalwire/inbound", NO_FROM, SIGNING, SW_HEADER),
    receipt=twilio_form("/hooks/signalwire/status", status_pairs("delivered"), SIGNING, SW_HEADER),
    forged_receipt=twilio_form(
        "/hooks/signalwire/status", status_pairs("delivered"), "guess", SW_HEADER
    ),
    sent_id=SID,
    delivery=("delivered", None),
)

# -- Telnyx ---------------------------------------------------------------------------------


def telnyx_call(path: str, body: bytes, signer: TelnyxSigner = TELNYX, at: float = NOW) -> Call:
    return Call("POST", path, body, signer.headers(body, int(at)))


TELNYX_REPLY: Final = telnyx_event("message.received", received_payload(text=TEXT))
TELNYX_NO_FROM: Final = {k: v for k, v in received_payload(text=TEXT).items() if k != "from"}
TELNYX_DELIVERED: Final = telnyx_event("message.finalized", finalized_payload("delivered"))

TELNYX_PROVIDER: Final = Provider(
    kind="telnyx",
    gateway=f"""
api_key_file = "telnyx-api-key"
from = "{OUR_A}"
public_key = "{TELNYX.public_b64}"
""",
    secrets={"telnyx-api-key": "KEY0123456789ABCDEF"},
    answer=("text/plain", b""),
    reply=telnyx_call("/hooks/telnyx/inbound", TELNYX_REPLY),
    stored=Stored(TELNYX_ID, CALLER_A, OUR_A, TEXT),
    forged_reply=telnyx_call("/hooks/telnyx/inbound", TELNYX_REPLY, TelnyxSigner()),
    malformed_reply=telnyx_call(
        "/hooks/telnyx/inbound", telnyx_event("message.received", TELNYX_NO_FROM)
    ),
    receipt=telnyx_call(
        "/hooks/telnyx/status",
        telnyx_event("message.finalized", finalized_payload("delivery_failed", "40001")),
    ),
    # Telnyx's own signature, but over a timestamp past the window: a replay.
    forged_receipt=telnyx_call("/hooks/telnyx/status", TELNYX_DELIVERED, at=NOW - 301),
    sent_id=TELNYX_ID,
    delivery=("undelivered", "delivery_failed, code 40001 (not_sms_capable)"),
    marks="not_sms_capable",
)

# -- Vonage (signed GET callbacks, sha256) ------------------------------------------------

VONAGE_SECRET: Final = "vonage-signature-secret-0123456789"


def vonage_get(path: str, params: Mapping[str, str], secret: str = VONAGE_SECRET) -> Call:
    query = signed(params, method="sha256", secret=secret, at=NOW)
    return Call("GET", f"{path}?{urlencode(query)}")


VONAGE_NO_SENDER: Final = {k: v for k, v in vonage_inbound(TEXT).items() if k != "msisdn"}
VONAGE_TAMPERED: Final = {
    **signed(dlr_params("failed", "3"), method="sha256", secret=VONAGE_SECRET, at=NOW),
    "status": "delivered",
}

VONAGE: Final = Provider(
    kind="vonage",
    gateway=f"""
api_key = "a1b2c3d4"
api_secret_file = "vonage-api-secret"
signature_secret_file = "vonage-signature-secret"
signature_method = "sha256"
from = "{OUR_A}"
""",
    secrets={"vonage-api-secret": "api-secret-0123", "vonage-signature-secret": VONAGE_SECRET},
    answer=("text/plain", b""),
    reply=vonage_get("/hooks/vonage/inbound", vonage_inbound(TEXT)),
    stored=Stored(VONAGE_ID, CALLER_A, OUR_A, TEXT),
    forged_reply=vonage_get("/hooks/vonage/inbound", vonage_inbound(TEXT), "guessed-secret"),
    malformed_reply=vonage_get("/hooks/vonage/inbound", VONAGE_NO_SENDER),
    receipt=vonage_get("/hooks/vonage/status", dlr_params("delivered")),
    forged_receipt=Call("GET", "/hooks/vonage/status?" + urlencode(VONAGE_TAMPERED)),
    sent_id=VONAGE_ID,
    delivery=("delivered", None),
)

# -- Plivo ----------------------------------------------------------------------------------


def plivo_form(
    path: str, fields: Mapping[str, str], token: str = PLIVO_TOKEN, signed_url: str = ""
) -> Call:
    signature = plivo_signature(token, signed_url or PUBLIC_URL + path, fields, "30516297")
    headers = plivo_headers(signature, "30516297", **{"Content-Type": FORM})
    return Call("POST", path, urlencode(fields).encode(), headers)


PLIVO_REPLY: Final = {**INBOUND, "Text": TEXT}
PLIVO_SENT: Final = "8d2f1e0a-0d3e-11f0-9e5a-0242ac110002"

PLIVO: Final = Provider(
    kind="plivo",
    gateway=f"""
auth_id = "{PLIVO_AUTH_ID}"
auth_token_file = "plivo-auth-token"
from = "{OUR_B}"
""",
    secrets={"plivo-auth-token": PLIVO_TOKEN},
    answer=("application/xml", b"<Response></Response>"),
    reply=plivo_form("/hooks/plivo/inbound", PLIVO_REPLY),
    stored=Stored(INBOUND["MessageUUID"], CALLER_B, OUR_B, TEXT),
    forged_reply=plivo_form("/hooks/plivo/inbound", PLIVO_REPLY, "not-the-auth-token-000000"),
    malformed_reply=plivo_form(
        "/hooks/plivo/inbound", {k: v for k, v in PLIVO_REPLY.items() if k != "From"}
    ),
    receipt=plivo_form(
        "/hooks/plivo/status", {"MessageUUID": PLIVO_SENT, "Status": "failed", "ErrorCode": "200"}
    ),
    # Signed with the right token, for another site's address.
    forged_receipt=plivo_form(
        "/hooks/plivo/status",
        {"MessageUUID": PLIVO_SENT, "Status": "delivered"},
        signed_url="https://attacker.example.net/hooks/plivo/status",
    ),
    sent_id=PLIVO_SENT,
    delivery=("undelivered", "failed, code 200 (opted_out)"),
    marks="optouts",
)

# -- VoIP.ms (a token in the URL; no delivery receipts) -------------------------------------

VOIPMS: Final = Provider(
    kind="voipms",
    gateway="""
api_username = "office@example.com"
api_password_file = "voipms-api-password"
did = "4155550100"
webhook_token_file = "voipms-webhook-token"
""",
    secrets={"voipms-api-password": "api-password", "voipms-webhook-token": VOIPMS_TOKEN},
    answer=("text/plain", b"ok"),
    reply=Call("GET", voipms_url()),
    stored=Stored("23456789", CALLER_B, OUR_B, "Is 3pm ok? A&B + 50%"),
    forged_reply=Call("GET", voipms_url(token="b4c1e0f2a7d94b0e8c3f5a6d7e8f9a0c")),
    malformed_reply=Call("GET", voipms_url(**{"from": ""})),
    # VoIP.ms sends none: a status callback with the token is answered and changes nothing.
    receipt=Call("GET", "/hooks/voipms/status?" + urlencode({"token": VOIPMS_TOKEN, "id": "77"})),
    forged_receipt=Call("GET", "/hooks/voipms/status?" + urlencode({"token": "x" * 32})),
    sent_id="77",
    delivery=(None, None),
)

# -- the generic webhook --------------------------------------------------------------------


def hook_call(path: str, payload: object, secret: str = HOOK_SECRET, at: float = NOW) -> Call:
    body = json.dumps(payload).encode()
    return Call("POST", path, body, hook_headers(body, secret=secret, at=at))


HOOK_FAILED: Final = {"id": "crm-sent-1", "status": "failed", "error_code": "4720"}

WEBHOOK: Final = Provider(
    kind="webhook",
    gateway="""
url = "https://crm.example.com/api/sms"
inbound_secret_file = "webhook-inbound-secret"
error_codes = { not_sms_capable = ["4720"] }
""",
    secrets={"webhook-inbound-secret": HOOK_SECRET},
    answer=("text/plain", b""),
    reply=hook_call("/hooks/webhook/inbound", HOOK_REPLY),
    stored=Stored("crm-981", CALLER_B, OUR_B, "Can you come Tuesday?"),
    forged_reply=hook_call("/hooks/webhook/inbound", HOOK_REPLY, "0" * 32),
    malformed_reply=hook_call(
        "/hooks/webhook/inbound", {k: v for k, v in HOOK_REPLY.items() if k != "from"}
    ),
    receipt=hook_call("/hooks/webhook/status", HOOK_FAILED),
    # The right secret, signed six minutes ago: a replay.
    forged_receipt=hook_call("/hooks/webhook/status", HOOK_FAILED, at=NOW - 360),
    sent_id="crm-sent-1",
    delivery=("undelivered", "failed, code 4720 (not_sms_capable)"),
    marks="not_sms_capable",
)

# -- the console ----------------------------------------------------------------------------

CONSOLE_REPLY: Final = {"id": "demo-1", "from": CALLER_B, "to": OUR_B, "text": TEXT}
CONSOLE_FILTERED: Final = {"id": "console-1", "status": "undelivered", "error_code": "30007"} | {
    "kind": "filtered"
}

CONSOLE: Final = Provider(
    kind="console",
    gateway="""
webhook_token_file = "console-webhook-token"
""",
    secrets={"console-webhook-token": CONSOLE_TOKEN},
    answer=("text/plain", b""),
    reply=json_call(console_url("inbound"), CONSOLE_REPLY),
    stored=Stored("demo-1", CALLER_B, OUR_B, TEXT),
    forged_reply=json_call(console_url("inbound", "x" * 32), CONSOLE_REPLY),
    malformed_reply=json_call(
        console_url("inbound"), {k: v for k, v in CONSOLE_REPLY.items() if k != "from"}
    ),
    receipt=json_call(console_url("status"), CONSOLE_FILTERED),
    forged_receipt=json_call("/hooks/console/status", CONSOLE_FILTERED),
    sent_id="console-1",
    delivery=("undelivered", "undelivered, code 30007 (filtered)"),
)

PROVIDERS: Final = (TWILIO, SIGNALWIRE, TELNYX_PROVIDER, VONAGE, PLIVO, VOIPMS, WEBHOOK, CONSOLE)


# -- the running app ------------------------------------------------------------------------


def write_config(tmp_path: Path, provider: Provider) -> Path:
    (tmp_path / "ami-secret").write_text("textback\n")
    for name, content in provider.secrets.items():
        (tmp_path / name).write_text(content + "\n")
    path = tmp_path / "textback.toml"
    path.write_text(
        f"""
[daemon]
database = "{tmp_path / "textback.db"}"

[business]
name = "Acme Plumbing"

[asterisk]
secret_file = "ami-secret"

[trunks.carrier-a]
channels = ["PJSIP/carrier-a-*"]

[sending]
timezone = "America/New_York"

[gateway]
kind = "{provider.kind}"
{provider.gateway}
[web]
listen = "127.0.0.1:8080"
public_url = "{PUBLIC_URL}"

[[web.users]]
name = "alice"
password_hash = "{PASSWORD_HASH}"
"""
    )
    return path


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Running:
    base: str
    store: Store
    session: aiohttp.ClientSession

    async def call(self, call: Call) -> Answer:
        # encoded=True: the request target goes out exactly as signed.
        url = URL(self.base + call.path_qs, encoded=True)
        async with self.session.request(
            call.method, url, data=call.body or None, headers=dict(call.headers)
        ) as response:
            return Answer(response.status, response.content_type, await response.read())

    def rows(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with closing(open_reader(self.store.path)) as conn:
            return [tuple(row) for row in conn.execute(sql, params)]

    def messages(self) -> list[tuple[object, ...]]:
        return self.rows(
            "SELECT direction, gateway, provider_id, e164, did, body, intent FROM messages"
        )

    def delivery(self, row_id: int) -> tuple[object, ...]:
        sql = "SELECT delivery_status, delivery_error FROM outbox WHERE id = ?"
        (row,) = self.rows(sql, row_id)
        return row

    async def sent_text(self, kind: str, provider_id: str) -> int:
        """Our missed-call text to TEXTED, sent through ``kind`` and given ``provider_id``."""
        outbox = self.store.outbox
        row_id = await outbox.accept(
            pbx="asterisk",
            call_id="1789999900.1",
            to_e164=TEXTED,
            body="Sorry we missed your call - Acme Plumbing",
            template="missed",
            gateway=kind,
            state="pending",
            reason="ok",
            created_at=NOW - 60,
            send_at=NOW - 60,
            expires_at=NOW + 3600,
            now=NOW - 60,
        )
        assert row_id is not None
        assert [row.id for row in await outbox.claim_due(NOW - 59)] == [row_id]
        assert await outbox.mark_dispatched(row_id, NOW - 59)
        assert await outbox.mark_sent(row_id, provider_id, NOW - 58)
        return row_id


@pytest.fixture(params=PROVIDERS, ids=[p.kind for p in PROVIDERS])
def provider(request: pytest.FixtureRequest) -> Provider:
    chosen: Provider = request.param
    return chosen


@pytest.fixture
async def app(provider: Provider, tmp_path: Path) -> AsyncIterator[Running]:
    """The daemon's web app for ``provider``'s config, on 127.0.0.1, with a client session."""
    config = load(write_config(tmp_path, provider))
    assert config.gateway.name == provider.kind
    async with await Store.open(config.daemon.database) as store:
        deps = WebDeps(
            config=config,
            store=store,
            conversations=Conversations(config, store, config.gateway, clock=lambda: NOW),
            gateways={config.gateway.name: config.gateway},
            clock=lambda: NOW,
        )
        server = TestServer(make_app(deps), host="127.0.0.1", port=0)
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                yield Running(str(server.make_url("")).rstrip("/"), store, session)
        finally:
            await server.close()


# -- the tests ------------------------------------------------------------------------------


async def test_signed_reply_is_stored_once(provider: Provider, app: Running) -> None:
    """A signed reply gets the provider's answer and one messages row, however often it comes."""
    expected = Answer(200, *provider.answer)
    assert await app.call(provider.reply) == expected
    assert await app.call(provider.reply) == expected
    stored = provider.stored
    row = ("in", provider.kind, stored.provider_id, stored.sender, stored.recipient, stored.body)
    assert app.messages() == [(*row, "message")]
    # A conversation message is answered by staff, not automatically.
    assert app.rows("SELECT id FROM outbox") == []


async def test_forged_reply_is_403_and_leaves_nothing(provider: Provider, app: Running) -> None:
    """A reply with a wrong signature or token is a 403, stored nowhere, logged once."""
    with capture_logs() as logs:
        answer = await app.call(provider.forged_reply)
    assert (answer.status, answer.body) == (403, b"")
    assert app.messages() == []
    assert app.rows("SELECT id FROM outbox") == []
    assert app.rows("SELECT e164 FROM optouts") == []
    rejected = [entry for entry in logs if entry["event"] == "webhook_rejected"]
    assert [(entry["gateway"], entry["status"]) for entry in rejected] == [(provider.kind, 403)]
    assert provider.stored.sender not in repr(logs)


async def test_malformed_reply_is_400(provider: Provider, app: Running) -> None:
    """A reply without its sender, signed correctly where the signature covers it, is a 400."""
    answer = await app.call(provider.malformed_reply)
    assert (answer.status, answer.body) == (400, b"")
    assert app.messages() == []
    assert app.rows("SELECT id FROM outbox") == []


async def test_signed_receipt_updates_our_text(provider: Provider, app: Running) -> None:
    """A signed receipt marks the text it names delivered or undelivered, with why (VoIP.ms
    sends none: its status URL answers and changes nothing)."""
    row_id = await app.sent_text(provider.kind, provider.sent_id)
    assert await app.call(provider.receipt) == Answer(200, *provider.answer)
    assert app.delivery(row_id) == provider.delivery
    assert app.messages() == []
    for table in ("not_sms_capable", "optouts"):
        numbers = app.rows(f"SELECT e164 FROM {table}")
        assert numbers == ([(TEXTED,)] if table == provider.marks else [])


async def test_forged_receipt_is_403_and_changes_nothing(provider: Provider, app: Running) -> None:
    """A receipt with a wrong, stale or missing signature or token is a 403 and changes no text."""
    row_id = await app.sent_text(provider.kind, provider.sent_id)
    answer = await app.call(provider.forged_receipt)
    assert (answer.status, answer.body) == (403, b"")
    assert app.delivery(row_id) == (None, None)
    assert app.rows("SELECT e164 FROM not_sms_capable UNION ALL SELECT e164 FROM optouts") == []
