"""Gateway registry, HTTP plumbing, and the console, Twilio, SignalWire, Telnyx, Vonage adapters.

Every HTTP adapter is driven against a fake provider on 127.0.0.1 (tests/fakeproviders.py);
Twilio's requests are also checked against Twilio's published OpenAPI contract.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Final, Self
from urllib.parse import urlsplit

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict

from tests.fakeproviders import Drop, Hang, Recorded, Reply, TelnyxFake, TwilioFake, VonageFake
from textback.errors import ConfigError
from textback.gateways.base import (
    FailureKind,
    Gateway,
    GatewayContext,
    GatewayError,
    OutgoingSms,
    SendReceipt,
)
from textback.gateways.console import ConsoleGateway
from textback.gateways.http import (
    HttpAdapterBase,
    HttpReply,
    classify_http_status,
    code_table,
    failure,
    retry_after,
)
from textback.gateways.registry import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    installed_kinds,
    load_gateway,
    resolve,
)
from textback.gateways.telnyx import TelnyxGateway
from textback.gateways.twilio import SignalWireGateway, TwilioGateway
from textback.gateways.vonage import VonageGateway, needs_unicode
from textback.tomltable import Table

TESTS: Final = Path(__file__).parent
CONTRACT: Final = json.loads(
    (TESTS / "contracts" / "twilio-api-v2010-messages.openapi.json").read_text()
)
CALLER: Final = "+14155550111"
OUR_NUMBER: Final = "+14155550100"
DID: Final = "+14155550199"
SMS: Final = OutgoingSms(
    to=CALLER, body="Sorry we missed your call. Reply STOP to opt out.", reference="textback-7"
)
SERVICE_SID: Final = "MG" + "ab" * 16
PROJECT: Final = "12345678-90ab-cdef-1234-567890abcdef"
TOKEN_ENV: Final = "TEXTBACK_TEST_GATEWAY_SECRET"


def build(cls: type[Gateway], table: Mapping[str, object], *, require: bool = True) -> Gateway:
    return cls.from_config(table, path="gateway", base=TESTS, require_secrets=require)


def problems(cls: type[Gateway], table: Mapping[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build(cls, table)
    return caught.value.problems


@asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[Gateway]:
    await gateway.start(GatewayContext())
    try:
        yield gateway
    finally:
        await gateway.aclose()


async def send_error(gateway: Gateway, sms: OutgoingSms = SMS) -> GatewayError:
    async with running(gateway):
        with pytest.raises(GatewayError) as caught:
            await gateway.send(sms)
    return caught.value


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "twilio-token")


# --- A worked third-party adapter, found by "tests.test_gateways_a:EchoGateway" or an entry point.


class EchoGateway:
    """The smallest complete adapter: validates one key, "sends" by remembering."""

    name = "echo"
    idempotent = True

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.sent: list[OutgoingSms] = []
        self.started = False

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        found: list[str] = []
        s = Table(found, path, table, known=("prefix",))
        prefix = s.string("prefix", "echo", fix='a word, e.g. prefix = "echo"')
        if found:
            raise ConfigError(found)
        return cls(prefix)

    async def start(self, context: GatewayContext) -> None:
        self.started = True

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        self.sent.append(sms)
        return SendReceipt(f"{self.prefix}-{sms.reference}")

    async def aclose(self) -> None:
        self.started = False


class NotAGateway:
    """Has no send: must be refused by the registry."""

    @classmethod
    def from_config(cls) -> None: ...


@pytest.fixture
def echo_plugin(tmp_path: Path) -> Iterator[None]:
    """An installed distribution declaring ``echo`` in the textback.gateways entry-point group."""
    dist = tmp_path / "textback_echo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: textback-echo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\necho = tests.test_gateways_a:EchoGateway\n"
    )
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        importlib.invalidate_caches()


class TestRegistry:
    def test_builtin_names_resolve_to_their_classes(self) -> None:
        """The five gw-a built-ins resolve to their adapter classes, case-insensitively."""
        assert resolve("console") is ConsoleGateway
        assert resolve("Twilio") is TwilioGateway
        assert resolve("signalwire") is SignalWireGateway
        assert resolve("telnyx") is TelnyxGateway
        assert resolve("vonage") is VonageGateway

    def test_every_builtin_resolves(self) -> None:
        """Every name in BUILTIN imports and names an adapter class."""
        for kind in BUILTIN:
            assert isinstance(resolve(kind), type), kind

    def test_module_path_loads_a_third_party_class(self) -> None:
        """A "package.module:Class" kind loads that class."""
        assert resolve("tests.test_gateways_a:EchoGateway") is EchoGateway

    async def test_load_gateway_builds_and_sends_through_a_module_path(self) -> None:
        """load_gateway passes the table minus kind to from_config and the adapter works."""
        gateway = load_gateway(
            {"kind": "tests.test_gateways_a:EchoGateway", "prefix": "hi"},
            path="gateway",
            base=TESTS,
            require_secrets=True,
        )
        assert isinstance(gateway, EchoGateway)
        async with running(gateway):
            assert await gateway.send(SMS) == SendReceipt("hi-textback-7")
        assert gateway.sent == [SMS]

    def test_third_party_table_errors_name_the_key(self) -> None:
        """A third-party adapter's own validation reaches the user as gateway.<key> lines."""
        with pytest.raises(ConfigError) as caught:
            load_gateway(
                {"kind": "tests.test_gateways_a:EchoGateway", "prefx": "x"},
                path="gateway",
                base=TESTS,
                require_secrets=True,
            )
        assert caught.value.problems == ['gateway.prefx: unknown key — did you mean "prefix"?']

    def test_entry_point_is_found_by_name(self, echo_plugin: None) -> None:
        """An entry point in the textback.gateways group is a kind."""
        assert "echo" in installed_kinds()
        assert resolve("echo") is EchoGateway
        gateway = load_gateway({"kind": "echo"}, path="gateway", base=TESTS, require_secrets=True)
        assert isinstance(gateway, EchoGateway)

    def test_without_the_entry_point_the_name_is_unknown(self) -> None:
        """ "echo" is found only through the installed entry point."""
        with pytest.raises(ConfigError, match="unknown gateway"):
            resolve("echo")

    def test_unknown_kind_lists_known_kinds_and_suggests(self) -> None:
        """A misspelt kind names gateway.kind, suggests the close name and lists all kinds."""
        with pytest.raises(ConfigError) as caught:
            resolve("twillio")
        (line,) = caught.value.problems
        assert line.startswith('gateway.kind: unknown gateway "twillio" — did you mean "twilio"?')
        for kind in BUILTIN:
            assert kind in line
        assert "package.module:Class" in line

    def test_missing_module_is_a_config_error(self) -> None:
        """A module path that cannot be imported says to install the package."""
        with pytest.raises(ConfigError) as caught:
            resolve("textback_no_such_pkg.adapter:Gw")
        (line,) = caught.value.problems
        assert line.startswith("gateway.kind: ")
        assert "cannot import textback_no_such_pkg.adapter" in line
        assert "install the package" in line

    def test_missing_class_is_a_config_error(self) -> None:
        """A module path naming no attribute says to check the class name."""
        with pytest.raises(ConfigError, match="has no NoSuchGateway — check the class name"):
            resolve("tests.test_gateways_a:NoSuchGateway")

    def test_non_adapter_class_is_refused(self) -> None:
        """A class without the Gateway methods is refused, naming what it lacks."""
        with pytest.raises(ConfigError, match="lacks start, send, aclose"):
            resolve("tests.test_gateways_a:NotAGateway")

    def test_missing_kind(self) -> None:
        """A gateway table without kind says which kinds exist."""
        with pytest.raises(ConfigError) as caught:
            load_gateway({}, path="gateway", base=TESTS, require_secrets=True)
        (line,) = caught.value.problems
        assert line.startswith("gateway.kind: missing")
        assert "twilio" in line

    def test_kind_not_a_string(self) -> None:
        """kind = 3 is refused with an example."""
        with pytest.raises(ConfigError, match=r"gateway.kind: expected a gateway name, got 3"):
            load_gateway({"kind": 3}, path="gateway", base=TESTS, require_secrets=True)


class TestConsole:
    async def test_prints_and_numbers_each_text(self) -> None:
        """Each text is printed as "SMS to <to>: <body>" and gets console-<n>."""
        out = io.StringIO()
        gateway = build(ConsoleGateway, {})
        assert gateway.idempotent is True
        await gateway.start(GatewayContext(out=out))
        first = await gateway.send(SMS)
        second = await gateway.send(OutgoingSms(to=DID, body="two", reference="textback-8"))
        await gateway.aclose()
        assert (first, second) == (SendReceipt("console-1"), SendReceipt("console-2"))
        assert out.getvalue() == f"SMS to {CALLER}: {SMS.body}\nSMS to {DID}: two\n"

    async def test_prints_to_stdout_by_default(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without an out stream the console adapter prints to stdout."""
        gateway = build(ConsoleGateway, {})
        async with running(gateway):
            await gateway.send(SMS)
        assert capsys.readouterr().out == f"SMS to {CALLER}: {SMS.body}\n"

    def test_takes_no_keys(self) -> None:
        """Any key besides kind is reported."""
        assert problems(ConsoleGateway, {"from": OUR_NUMBER}) == [
            "gateway.from: unknown key — remove it"
        ]


class TestHttpHelpers:
    def test_retry_after_seconds(self) -> None:
        """Retry-After in delay-seconds is read as seconds."""
        assert retry_after({"Retry-After": "7"}) == 7.0
        assert retry_after({"Retry-After": " 2.5 "}) == 2.5

    def test_retry_after_http_date(self) -> None:
        """Retry-After as an HTTP date is the time left until then."""
        now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
        header = format_datetime(now + timedelta(seconds=90), usegmt=True)
        assert retry_after({"Retry-After": header}, now=now) == 90.0

    def test_retry_after_garbage_past_and_huge(self) -> None:
        """Unreadable values are ignored; past dates are 0; huge waits are capped at a day."""
        now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
        assert retry_after({"Retry-After": "soon"}, now=now) is None
        assert retry_after({"Retry-After": "nan"}, now=now) is None
        assert retry_after({}, now=now) is None
        past = format_datetime(now - timedelta(hours=1), usegmt=True)
        assert retry_after({"Retry-After": past}, now=now) == 0.0
        assert retry_after({"Retry-After": "-5"}, now=now) == 0.0
        assert retry_after({"Retry-After": "99999999"}, now=now) == 86400.0

    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            (200, None),
            (201, None),
            (301, FailureKind.CONFIG),
            (400, FailureKind.PERMANENT),
            (401, FailureKind.CONFIG),
            (403, FailureKind.CONFIG),
            (404, FailureKind.PERMANENT),
            (408, FailureKind.TRANSIENT),
            (429, FailureKind.TRANSIENT),
            (500, FailureKind.TRANSIENT),
            (503, FailureKind.TRANSIENT),
        ],
    )
    def test_classify_http_status(self, status: int, kind: FailureKind | None) -> None:
        """An HTTP status alone maps to the documented failure kind."""
        assert classify_http_status(status) is kind

    def test_failure_prefers_the_vendor_code(self) -> None:
        """A known vendor code wins over the status; unknown codes fall back on it."""
        codes = code_table(opted_out=(1,))
        headers = CIMultiDictProxy(CIMultiDict({"Retry-After": "3"}))
        assert failure(HttpReply(400, headers, b"{}"), code="1", codes=codes).kind is (
            FailureKind.OPTED_OUT
        )
        unknown = failure(HttpReply(429, headers, b"slow down"), code="2", codes=codes)
        assert (unknown.kind, unknown.retry_after, unknown.code) == (
            FailureKind.TRANSIENT,
            3.0,
            "2",
        )
        assert unknown.detail == "HTTP 429: slow down"
        # Retry-After belongs to transient failures only.
        assert failure(HttpReply(400, headers, b"")).retry_after is None

    def test_code_table_refuses_duplicates(self) -> None:
        """A code listed under two kinds is a programming error caught at import."""
        with pytest.raises(ValueError, match="listed twice"):
            code_table(config=(1,), permanent=(1,))

    def test_reply_field_walks_json(self) -> None:
        """field() follows keys and indexes and answers None for anything missing."""
        reply = HttpReply(200, CIMultiDictProxy(CIMultiDict()), b'{"a": [{"b": 1}]}')
        assert reply.field("a", 0, "b") == 1
        assert reply.field("a", 1, "b") is None
        assert reply.field("a", "b") is None
        assert HttpReply(200, reply.headers, b"<html>").field("a") is None

    async def test_send_before_start_is_a_bug(self) -> None:
        """Using an adapter that was never started raises RuntimeError, not a GatewayError."""
        with pytest.raises(RuntimeError, match="before start"):
            await HttpAdapterBase().post("http://127.0.0.1:9/")


# --- Twilio's contract ------------------------------------------------------------------------

E164_RE: Final = re.compile(r"\+[1-9][0-9]{6,14}")


def _schema(node: Mapping[str, object]) -> Mapping[str, object]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        found: object = CONTRACT
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(found, dict)
            found = found[part]
        assert isinstance(found, dict)
        return found
    return node


def _value_problems(name: str, schema: Mapping[str, object], value: str) -> list[str]:
    schema = _schema(schema)
    out: list[str] = []
    kind = schema.get("type")
    if kind == "integer":
        if not re.fullmatch(r"-?[0-9]+", value):
            return [f"{name}: {value!r} is not an integer"]
        # Ranges Twilio states in prose: "Accepted values are integers from `1` to `36000`".
        description = str(schema.get("description", ""))
        bounds = re.search(r"integers from `(\d+)` to `(\d+)`", description)
        if bounds and not int(bounds[1]) <= int(value) <= int(bounds[2]):
            out.append(f"{name}: {value} outside {bounds[1]}..{bounds[2]}")
    elif kind == "boolean":
        if value not in ("true", "false"):
            out.append(f"{name}: {value!r} is not a boolean")
    elif kind == "number":
        try:
            float(value)
        except ValueError:
            out.append(f"{name}: {value!r} is not a number")
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        out.append(f"{name}: {value!r} not in enum")
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not re.search(pattern, value):
        out.append(f"{name}: {value!r} does not match {pattern}")
    min_length, max_length = schema.get("minLength"), schema.get("maxLength")
    if isinstance(min_length, int) and len(value) < min_length:
        out.append(f"{name}: shorter than {min_length}")
    if isinstance(max_length, int) and len(value) > max_length:
        out.append(f"{name}: longer than {max_length}")
    fmt = schema.get("format")
    if fmt == "phone-number" and not E164_RE.fullmatch(value):
        out.append(f"{name}: {value!r} is not an E.164 phone number")
    if fmt == "uri":
        parts = urlsplit(value)
        # "URL must contain a valid hostname and underscores are not allowed."
        if parts.scheme not in ("http", "https") or not parts.hostname or "_" in parts.hostname:
            out.append(f"{name}: {value!r} is not a usable URI")
    return out


def _contract_path(path: str) -> tuple[str, re.Match[str]] | None:
    for template in CONTRACT["paths"]:
        regex = re.escape(template)
        for param in re.findall(r"{(\w+)}", template):
            regex = regex.replace(re.escape("{" + param + "}"), f"(?P<{param}>[^/]+)")
        match = re.fullmatch(regex, path)
        if match:
            return template, match
    return None


def contract_problems(request: Recorded, *, prefix: str = "") -> list[str]:
    """Where a recorded request breaks Twilio's OpenAPI description of Message create."""
    out: list[str] = []
    path = request.path.removeprefix(prefix)
    found = _contract_path(path)
    if found is None:
        return [f"path {request.path} is not in the contract"]
    template, match = found
    operation = CONTRACT["paths"][template].get(request.method.lower())
    if operation is None:
        return [f"{request.method} is not an operation on {template}"]
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            out += _value_problems(param["name"], param["schema"], match[param["name"]])
    for requirement in operation["security"]:
        for scheme_name in requirement:
            scheme = CONTRACT["components"]["securitySchemes"][scheme_name]
            assert (scheme["type"], scheme["scheme"]) == ("http", "basic")
            if request.basic_auth() is None:
                out.append("no HTTP Basic credentials")
    content = operation["requestBody"]["content"]
    media = request.headers.get("Content-Type", "").split(";")[0].strip()
    if media not in content:
        return [*out, f"content type {media!r} not one of {list(content)}"]
    schema = content[media]["schema"]
    assert schema["title"] == "CreateMessageRequest"
    form = request.form
    for required in schema.get("required", []):
        if required not in form:
            out.append(f"required field {required} missing")
    for name, value in form.items():
        prop = schema["properties"].get(name)
        if prop is None:
            out.append(f"field {name} is not a property of CreateMessageRequest")
            continue
        out += _value_problems(name, prop, value)
    return out


def _recorded(path: str, form: str, auth: bool = True) -> Recorded:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth:
        headers["Authorization"] = "Basic dXNlcjpwYXNz"
    return Recorded(
        method="POST",
        path=path,
        query=MultiDict(),
        headers=CIMultiDictProxy(CIMultiDict(headers)),
        body=form.encode(),
        peer_port=0,
    )


def test_contract_checker_catches_bad_requests() -> None:
    """The contract check itself refuses requests that break the OpenAPI description."""
    good_path = "/2010-04-01/Accounts/AC" + "0" * 32 + "/Messages.json"
    assert contract_problems(_recorded(good_path, "To=%2B14155550111&Body=hi")) == []
    assert contract_problems(_recorded(good_path, "Body=hi")) == ["required field To missing"]
    bad = contract_problems(
        _recorded(
            "/2010-04-01/Accounts/AB123/Messages.json",
            "To=14155550111&Colour=red&ValidityPeriod=0&MessagingServiceSid=MG1"
            "&StatusCallback=ftp%3A%2F%2Fx",
            auth=False,
        )
    )
    assert "no HTTP Basic credentials" in bad
    assert "field Colour is not a property of CreateMessageRequest" in bad
    assert "To: '14155550111' is not an E.164 phone number" in bad
    assert "ValidityPeriod: 0 outside 1..36000" in bad
    assert any(p.startswith("AccountSid: 'AB123' does not match") for p in bad)
    assert any(p.startswith("MessagingServiceSid: 'MG1' does not match") for p in bad)
    assert "StatusCallback: 'ftp://x' is not a usable URI" in bad
    assert contract_problems(_recorded("/2010-04-01/Accounts/x/Calls.json", "")) == [
        "path /2010-04-01/Accounts/x/Calls.json is not in the contract"
    ]


# --- Twilio -----------------------------------------------------------------------------------


def twilio_table(fake: TwilioFake, **extra: object) -> dict[str, object]:
    table: dict[str, object] = {
        "account_sid": fake.account,
        "auth_token_env": TOKEN_ENV,
        "from": OUR_NUMBER,
        "base_url": fake.url,
        "timeout": 2,
    }
    table.update(extra)
    return {k: v for k, v in table.items() if v is not None}


@pytest.mark.usefixtures("secret_env")
class TestTwilioSend:
    async def test_success_returns_the_sid_and_matches_the_contract(self) -> None:
        """A send is one contract-valid form POST with Basic auth; the receipt is Twilio's sid."""
        async with TwilioFake() as fake:
            gateway = build(TwilioGateway, twilio_table(fake))
            async with running(gateway):
                receipt = await gateway.send(SMS)
        assert receipt == SendReceipt("SM" + "0" * 31 + "1")
        (request,) = fake.requests
        assert contract_problems(request) == []
        assert request.method == "POST"
        assert request.path == f"/2010-04-01/Accounts/{fake.account}/Messages.json"
        assert request.basic_auth() == (fake.account, "twilio-token")
        assert request.form == {"To": CALLER, "From": OUR_NUMBER, "Body": SMS.body}
        assert gateway.idempotent is False

    async def test_route_sender_and_all_options_match_the_contract(self) -> None:
        """The route's DID is the From; StatusCallback and ValidityPeriod are sent as configured."""
        async with TwilioFake() as fake:
            table = twilio_table(
                fake, status_callback="https://hooks.example.com/twilio", validity_period=3600
            )
            gateway = build(TwilioGateway, table)
            async with running(gateway):
                await gateway.send(OutgoingSms(to=CALLER, body="x", reference="r", sender=DID))
        (request,) = fake.requests
        assert contract_problems(request) == []
        assert request.form == {
            "To": CALLER,
            "From": DID,
            "Body": "x",
            "StatusCallback": "https://hooks.example.com/twilio",
            "ValidityPeriod": "3600",
        }

    async def test_messaging_service_matches_the_contract(self) -> None:
        """With a Messaging Service the SID is sent, and From only when the route names one."""
        async with TwilioFake() as fake:
            table = twilio_table(fake, messaging_service_sid=SERVICE_SID)
            del table["from"]
            gateway = build(TwilioGateway, table)
            async with running(gateway):
                await gateway.send(SMS)
                await gateway.send(OutgoingSms(to=CALLER, body="y", reference="r", sender=DID))
        first, second = fake.requests
        assert contract_problems(first) == contract_problems(second) == []
        assert first.form == {"To": CALLER, "MessagingServiceSid": SERVICE_SID, "Body": SMS.body}
        assert second.form["From"] == DID

    async def test_api_key_authenticates_with_the_key_sid(self) -> None:
        """With api_key_sid, Basic auth is the key SID and secret; the path keeps the account."""
        key_sid = "SK" + "12" * 16
        async with TwilioFake(user=key_sid) as fake:
            table = twilio_table(fake, api_key_sid=key_sid, api_key_secret_env=TOKEN_ENV)
            del table["auth_token_env"]
            gateway = build(TwilioGateway, table)
            async with running(gateway):
                await gateway.send(SMS)
        (request,) = fake.requests
        assert request.basic_auth() == (key_sid, "twilio-token")
        assert contract_problems(request) == []

    @pytest.mark.parametrize(
        ("code", "status", "kind"),
        [
            (21610, 400, FailureKind.OPTED_OUT),
            (21614, 400, FailureKind.NOT_SMS_CAPABLE),
            (21635, 400, FailureKind.NOT_SMS_CAPABLE),
            (21612, 400, FailureKind.NOT_SMS_CAPABLE),
            (21211, 400, FailureKind.PERMANENT),
            (21408, 400, FailureKind.CONFIG),
            (21606, 400, FailureKind.CONFIG),
            (30034, 400, FailureKind.CONFIG),
            (30007, 400, FailureKind.FILTERED),
            (21611, 400, FailureKind.TRANSIENT),
            (21999, 400, FailureKind.PERMANENT),  # unknown 4xx
            (20500, 500, FailureKind.TRANSIENT),
        ],
    )
    async def test_error_codes_map_to_kinds(
        self, code: int, status: int, kind: FailureKind
    ) -> None:
        """Twilio's error codes become our failure kinds, keeping code and message."""
        async with TwilioFake() as fake:
            fake.script.append(fake.error(code, status, f"message {code}"))
            error = await send_error(build(TwilioGateway, twilio_table(fake)))
        assert (error.kind, error.code, error.maybe_sent) == (kind, str(code), False)
        assert error.detail == f"HTTP {status}: message {code}"

    async def test_wrong_token_is_config(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Twilio's 401 (code 20003) for a wrong token is a CONFIG failure."""
        monkeypatch.setenv(TOKEN_ENV, "not-the-token")
        async with TwilioFake() as fake:
            error = await send_error(build(TwilioGateway, twilio_table(fake)))
        assert (error.kind, error.code) == (FailureKind.CONFIG, "20003")

    async def test_wrong_account_is_config(self) -> None:
        """A valid API key with an Account SID that is not its account gets 20404: CONFIG."""
        key_sid = "SK" + "12" * 16
        async with TwilioFake(user=key_sid) as fake:
            table = twilio_table(
                fake, account_sid="AC" + "f" * 32, api_key_sid=key_sid, api_key_secret_env=TOKEN_ENV
            )
            del table["auth_token_env"]
            error = await send_error(build(TwilioGateway, table))
        assert (error.kind, error.code) == (FailureKind.CONFIG, "20404")

    async def test_429_honours_retry_after_seconds(self) -> None:
        """429 code 20429 is TRANSIENT and carries Retry-After in seconds."""
        async with TwilioFake() as fake:
            fake.script.append(fake.error(20429, 429, "Too Many Requests", Retry_After="7"))
            error = await send_error(build(TwilioGateway, twilio_table(fake)))
        assert (error.kind, error.code, error.retry_after) == (FailureKind.TRANSIENT, "20429", 7.0)

    async def test_429_honours_retry_after_date(self) -> None:
        """A Retry-After HTTP date becomes the seconds left until it."""
        when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
        async with TwilioFake() as fake:
            fake.script.append(fake.error(20429, 429, Retry_After=when))
            error = await send_error(build(TwilioGateway, twilio_table(fake)))
        assert error.kind is FailureKind.TRANSIENT
        assert error.retry_after is not None
        assert 100 < error.retry_after <= 120

    async def test_500_html_is_transient(self) -> None:
        """A 500 with an HTML body is TRANSIENT with no code."""
        async with TwilioFake() as fake:
            fake.script.append(Reply(500, b"<html><body>Internal Server Error</body></html>"))
            error = await send_error(build(TwilioGateway, twilio_table(fake)))
        assert (error.kind, error.code, error.retry_after) == (FailureKind.TRANSIENT, "", None)
        assert "Internal Server Error" in error.detail

    async def test_hang_past_the_timeout_is_transient(self) -> None:
        """A provider that never answers is a TRANSIENT failure after the configured timeout."""
        async with TwilioFake() as fake:
            fake.script.append(Hang())
            gateway = build(TwilioGateway, twilio_table(fake, timeout=0.2))
            started = time.monotonic()
            error = await send_error(gateway)
        assert error.kind is FailureKind.TRANSIENT
        assert error.detail == "no reply from 127.0.0.1 within 0.2 s"
        assert error.maybe_sent is True
        assert isinstance(error.__cause__, TimeoutError)
        assert time.monotonic() - started < 5

    async def test_dropped_connection_is_transient(self) -> None:
        """A connection closed without a reply is TRANSIENT."""
        async with TwilioFake() as fake:
            fake.script.append(Drop())
            error = await send_error(build(TwilioGateway, twilio_table(fake)))
        assert error.kind is FailureKind.TRANSIENT
        assert error.detail.startswith("connection to 127.0.0.1 failed")
        assert error.maybe_sent is True

    async def test_refused_connection_is_transient(self) -> None:
        """Nobody listening is TRANSIENT ("cannot connect")."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        table = {
            "account_sid": "AC" + "0" * 32,
            "auth_token_env": TOKEN_ENV,
            "from": OUR_NUMBER,
            "base_url": f"http://127.0.0.1:{port}",
        }
        error = await send_error(build(TwilioGateway, table))
        assert error.kind is FailureKind.TRANSIENT
        assert error.detail.startswith("cannot connect to 127.0.0.1")
        assert error.maybe_sent is False

    async def test_redirect_means_a_wrong_base_url(self) -> None:
        """A 3xx is not followed: it is CONFIG (base_url points somewhere else)."""
        async with TwilioFake() as fake:
            fake.script.append(Reply(301, b"", {"Location": "https://example.com/"}))
            error = await send_error(build(TwilioGateway, twilio_table(fake)))
        assert error.kind is FailureKind.CONFIG
        assert len(fake.requests) == 1

    async def test_accepted_without_sid_is_not_retried(self) -> None:
        """A 2xx without a sid may have sent the text: PERMANENT, never TRANSIENT."""
        async with TwilioFake() as fake:
            fake.script.append(Reply(201, {"status": "queued"}))
            error = await send_error(build(TwilioGateway, twilio_table(fake)))
        assert (error.kind, error.maybe_sent) == (FailureKind.PERMANENT, True)

    async def test_connections_are_reused(self) -> None:
        """Consecutive sends share one keep-alive connection; a later send works after a failure."""
        async with TwilioFake() as fake:
            gateway = build(TwilioGateway, twilio_table(fake))
            async with running(gateway):
                await gateway.send(SMS)
                await gateway.send(SMS)
                fake.script.append(fake.error(21610))
                with pytest.raises(GatewayError):
                    await gateway.send(SMS)
                assert (await gateway.send(SMS)).provider_id.startswith("SM")
        ports = {request.peer_port for request in fake.requests}
        assert len(fake.requests) == 4
        assert len(ports) == 1

    async def test_no_secret_without_require_is_config_at_send(self) -> None:
        """Built for check-config without secrets, the adapter refuses to send (CONFIG)."""
        table = {"account_sid": "AC" + "0" * 32, "from": OUR_NUMBER}
        gateway = build(TwilioGateway, table, require=False)
        error = await send_error(gateway)
        assert error.kind is FailureKind.CONFIG


@pytest.mark.usefixtures("secret_env")
class TestSignalWireSend:
    async def test_same_path_under_laml_with_project_auth(self) -> None:
        """SignalWire gets Twilio's request under /api/laml, authenticated by project and token."""
        async with TwilioFake(account=PROJECT, prefix="/api/laml") as fake:
            table = {
                "project_id": PROJECT,
                "api_token_env": TOKEN_ENV,
                "from": OUR_NUMBER,
                "base_url": fake.url + "/api/laml",
            }
            gateway = build(SignalWireGateway, table)
            async with running(gateway):
                receipt = await gateway.send(SMS)
        assert receipt.provider_id.startswith("SM")
        (request,) = fake.requests
        assert request.path == f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages.json"
        assert request.basic_auth() == (PROJECT, "twilio-token")
        assert request.form == {"To": CALLER, "From": OUR_NUMBER, "Body": SMS.body}
        # The form is Twilio's: every field is one the contract allows.
        assert [
            p for p in contract_problems(request, prefix="/api/laml") if "AccountSid" not in p
        ] == []
        assert gateway.name == "signalwire"

    async def test_opt_out_code_maps_like_twilio(self) -> None:
        """SignalWire's Twilio-style error codes map through the same table."""
        async with TwilioFake(account=PROJECT, prefix="/api/laml") as fake:
            fake.script.append(fake.error(21610))
            table = {
                "project_id": PROJECT,
                "api_token_env": TOKEN_ENV,
                "from": OUR_NUMBER,
                "base_url": fake.url + "/api/laml",
            }
            error = await send_error(build(SignalWireGateway, table))
        assert error.kind is FailureKind.OPTED_OUT

    def test_space_names_the_host(self) -> None:
        """space = "example" (or the full host) means https://example.signalwire.com/api/laml."""
        for space in ("example", "Example.signalwire.com"):
            gateway = build(
                SignalWireGateway,
                {
                    "project_id": PROJECT,
                    "api_token_env": TOKEN_ENV,
                    "from": OUR_NUMBER,
                    "space": space,
                },
            )
            assert isinstance(gateway, SignalWireGateway)
            assert gateway.url == (
                f"https://example.signalwire.com/api/laml/2010-04-01/Accounts/{PROJECT}/Messages.json"
            )


class TestTwilioConfig:
    def test_minimal_table_builds(self, secret_env: None) -> None:
        """account_sid, a token and a sender are all Twilio needs."""
        gateway = build(
            TwilioGateway,
            {"account_sid": "AC" + "0" * 32, "auth_token_env": TOKEN_ENV, "from": OUR_NUMBER},
        )
        assert isinstance(gateway, TwilioGateway)
        assert gateway.url == (
            "https://api.twilio.com/2010-04-01/Accounts/AC" + "0" * 32 + "/Messages.json"
        )
        assert gateway.timeout == 10.0

    def test_each_problem_is_one_line_naming_its_key(self, secret_env: None) -> None:
        """Bad values are reported together, one line each, naming gateway.<key>."""
        found = problems(
            TwilioGateway,
            {
                "account_sid": "AC123",
                "auth_token_env": TOKEN_ENV,
                "from": "4155550100",
                "status_callback": "hooks.example.com",
                "validity_period": 40000,
                "timeout": True,
                "auth_token": "abc",
            },
        )
        keys = [line.split(":")[0] for line in found]
        assert keys == [
            "gateway.auth_token",
            "gateway.account_sid",
            "gateway.from",
            "gateway.status_callback",
            "gateway.validity_period",
            "gateway.timeout",
        ]
        assert "never goes in the TOML" in found[0]
        assert "abc" not in found[0]

    def test_status_callback_host_without_underscore(self, secret_env: None) -> None:
        """A callback host with "_" (Twilio refuses it on every send) is caught at config time."""
        found = problems(
            TwilioGateway,
            {
                "account_sid": "AC" + "0" * 32,
                "auth_token_env": TOKEN_ENV,
                "from": OUR_NUMBER,
                "status_callback": "https://my_host.example.com/cb",
            },
        )
        assert found == [
            "gateway.status_callback: Twilio does not accept an underscore in the host name"
        ]

    def test_sender_is_required_once(self, secret_env: None) -> None:
        """Neither from nor messaging_service_sid, or both, is a problem."""
        base = {"account_sid": "AC" + "0" * 32, "auth_token_env": TOKEN_ENV}
        (line,) = problems(TwilioGateway, base)
        assert line.startswith("gateway: no sender")
        (line,) = problems(
            TwilioGateway, {**base, "from": OUR_NUMBER, "messaging_service_sid": SERVICE_SID}
        )
        assert line.startswith("gateway.messaging_service_sid: set together with")
        (line,) = problems(TwilioGateway, {**base, "messaging_service_sid": "MG12"})
        assert line.startswith(
            'gateway.messaging_service_sid: "MG12" is not a Messaging Service SID'
        )

    def test_missing_secret_names_both_ways(self) -> None:
        """No token configured says how to set one, and never asks for the value in the TOML."""
        (line,) = problems(TwilioGateway, {"account_sid": "AC" + "0" * 32, "from": OUR_NUMBER})
        assert line == (
            "gateway: no Twilio auth token configured — set auth_token_env = "
            '"TWILIO_AUTH_TOKEN" (an environment variable holding it), auth_token_file = '
            '"/etc/textback/twilio-auth-token" (a file holding it) or auth_token_credential = '
            '"twilio-auth-token" (a systemd credential, '
            "LoadCredential=twilio-auth-token:/etc/textback/twilio-auth-token in the unit)"
        )

    def test_secret_from_a_file(self, tmp_path: Path) -> None:
        """auth_token_file is read relative to the config file's directory."""
        (tmp_path / "token").write_text("file-token\n")
        gateway = TwilioGateway.from_config(
            {"account_sid": "AC" + "0" * 32, "auth_token_file": "token", "from": OUR_NUMBER},
            path="gateway",
            base=tmp_path,
            require_secrets=True,
        )
        assert gateway.secret is not None
        assert gateway.secret.reveal() == "file-token"

    def test_api_key_and_auth_token_conflict(self, secret_env: None) -> None:
        """An API key SID with an auth token, or a key secret without a SID, is refused."""
        base = {"account_sid": "AC" + "0" * 32, "from": OUR_NUMBER}
        found = problems(
            TwilioGateway,
            {**base, "api_key_sid": "SK" + "0" * 32, "auth_token_env": TOKEN_ENV},
        )
        assert found[0].startswith("gateway.auth_token_env: set together with api_key_sid")
        found = problems(TwilioGateway, {**base, "api_key_secret_env": TOKEN_ENV})
        assert (
            found[0]
            == "gateway.api_key_secret_env: an API key secret needs api_key_sid too — add it"
        )

    def test_signalwire_problems(self, secret_env: None) -> None:
        """SignalWire wants a UUID project, a space or a base_url (not both), and a from."""
        found = problems(
            SignalWireGateway,
            {"project_id": "AC" + "0" * 32, "api_token_env": TOKEN_ENV, "space": "a b"},
        )
        assert [line.split(":")[0] for line in found] == [
            "gateway.project_id",
            "gateway.from",
            "gateway.space",
        ]
        found = problems(
            SignalWireGateway,
            {
                "project_id": PROJECT,
                "api_token_env": TOKEN_ENV,
                "from": OUR_NUMBER,
                "space": "x",
                "base_url": "https://x.example.com",
            },
        )
        assert found == ["gateway.base_url: set together with space — keep only space"]
        found = problems(
            SignalWireGateway,
            {"project_id": PROJECT, "api_token_env": TOKEN_ENV, "from": OUR_NUMBER},
        )
        assert found[0].startswith("gateway.space: missing")


# --- Telnyx -----------------------------------------------------------------------------------

PROFILE: Final = "40017f7e-1111-2222-3333-444455556666"


@pytest.fixture
def telnyx_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "KEY-telnyx")


def telnyx_table(fake: TelnyxFake, **extra: object) -> dict[str, object]:
    return {
        "api_key_env": TOKEN_ENV,
        "from": OUR_NUMBER,
        "base_url": fake.url,
        "timeout": 2,
        **extra,
    }


@pytest.mark.usefixtures("telnyx_env")
class TestTelnyx:
    async def test_success_posts_json_with_bearer(self) -> None:
        """A send is a JSON POST to /v2/messages with the Bearer key; the receipt is data.id."""
        async with TelnyxFake() as fake:
            gateway = build(
                TelnyxGateway,
                telnyx_table(
                    fake, messaging_profile_id=PROFILE, webhook_url="https://hooks.example.com/t"
                ),
            )
            async with running(gateway):
                receipt = await gateway.send(SMS)
        assert receipt == SendReceipt("00000000-0000-0000-0000-000000000001")
        (request,) = fake.requests
        assert (request.method, request.path) == ("POST", "/v2/messages")
        assert request.headers["Authorization"] == "Bearer KEY-telnyx"
        assert request.headers["Content-Type"].startswith("application/json")
        assert request.json == {
            "from": OUR_NUMBER,
            "to": CALLER,
            "text": SMS.body,
            "messaging_profile_id": PROFILE,
            "webhook_url": "https://hooks.example.com/t",
        }

    async def test_route_sender_wins_and_profile_alone_is_enough(self) -> None:
        """The route's DID is the from; a profile without from sends no from."""
        async with TelnyxFake() as fake:
            table = telnyx_table(fake, messaging_profile_id=PROFILE)
            del table["from"]
            gateway = build(TelnyxGateway, table)
            async with running(gateway):
                await gateway.send(SMS)
                await gateway.send(OutgoingSms(to=CALLER, body="b", reference="r", sender=DID))
        first, second = (r.json for r in fake.requests)
        assert first == {"to": CALLER, "text": SMS.body, "messaging_profile_id": PROFILE}
        assert isinstance(second, dict)
        assert second["from"] == DID

    @pytest.mark.parametrize(
        ("code", "status", "kind"),
        [
            (40300, 400, FailureKind.OPTED_OUT),
            (40001, 400, FailureKind.NOT_SMS_CAPABLE),
            (40310, 422, FailureKind.PERMANENT),
            (10016, 422, FailureKind.PERMANENT),
            (40010, 400, FailureKind.CONFIG),
            (40333, 403, FailureKind.CONFIG),
            (40020, 400, FailureKind.CONFIG),
            (40002, 400, FailureKind.FILTERED),
            (40015, 400, FailureKind.FILTERED),
            (40318, 400, FailureKind.TRANSIENT),
            (40006, 400, FailureKind.TRANSIENT),
            (49999, 422, FailureKind.PERMANENT),  # unknown 4xx
            (10007, 500, FailureKind.TRANSIENT),  # unknown 5xx
        ],
    )
    async def test_error_codes_map_to_kinds(
        self, code: int, status: int, kind: FailureKind
    ) -> None:
        """Telnyx's errors[0].code decides the kind; the detail keeps title and detail."""
        async with TelnyxFake() as fake:
            fake.script.append(fake.error(code, status, f"title {code}"))
            error = await send_error(build(TelnyxGateway, telnyx_table(fake)))
        assert (error.kind, error.code) == (kind, str(code))
        assert error.detail == f"HTTP {status}: title {code}: detail of {code}"

    async def test_wrong_key_is_config(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Telnyx's 401 (code 10009) for a wrong key is CONFIG."""
        monkeypatch.setenv(TOKEN_ENV, "KEY-wrong")
        async with TelnyxFake() as fake:
            error = await send_error(build(TelnyxGateway, telnyx_table(fake)))
        assert (error.kind, error.code) == (FailureKind.CONFIG, "10009")

    async def test_429_honours_retry_after(self) -> None:
        """429 code 10011 is TRANSIENT and carries Retry-After."""
        async with TelnyxFake() as fake:
            fake.script.append(fake.error(10011, 429, "Too many requests", Retry_After="12"))
            error = await send_error(build(TelnyxGateway, telnyx_table(fake)))
        assert (error.kind, error.code, error.retry_after) == (FailureKind.TRANSIENT, "10011", 12.0)

    async def test_429_falls_back_on_ratelimit_reset(self) -> None:
        """Without Retry-After, Telnyx's x-ratelimit-reset (seconds) is the wait."""
        async with TelnyxFake() as fake:
            fake.script.append(fake.error(10011, 429, x_ratelimit_reset="30"))
            error = await send_error(build(TelnyxGateway, telnyx_table(fake)))
        assert (error.kind, error.retry_after) == (FailureKind.TRANSIENT, 30.0)

    async def test_500_hang_and_drop_are_transient(self) -> None:
        """A 500, a hang past the timeout and a dropped connection are all TRANSIENT."""
        async with TelnyxFake() as fake:
            gateway = build(TelnyxGateway, telnyx_table(fake, timeout=0.2))
            fake.script.extend([Reply(502, b"Bad Gateway"), Hang(), Drop()])
            async with running(gateway):
                details = []
                for _ in range(3):
                    with pytest.raises(GatewayError) as caught:
                        await gateway.send(SMS)
                    assert caught.value.kind is FailureKind.TRANSIENT
                    details.append(caught.value.detail)
                assert (await gateway.send(SMS)).provider_id
        assert details[0] == "HTTP 502: Bad Gateway"
        assert details[1] == "no reply from 127.0.0.1 within 0.2 s"
        assert details[2].startswith("connection to 127.0.0.1 failed")

    def test_config_problems(self) -> None:
        """Telnyx needs a key and a sender; bad values name their keys."""
        found = problems(
            TelnyxGateway, {"messaging_profile_id": "abc", "webhook_url": "x", "api_key": "k"}
        )
        assert [line.split(":")[0] for line in found] == [
            "gateway.api_key",
            "gateway",
            "gateway.messaging_profile_id",
            "gateway.webhook_url",
        ]
        assert "never goes in the TOML" in found[0]


# --- Vonage -----------------------------------------------------------------------------------


@pytest.fixture
def vonage_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "vonage-secret")


def vonage_table(fake: VonageFake, **extra: object) -> dict[str, object]:
    return {
        "api_key": "a1b2c3d4",
        "api_secret_env": TOKEN_ENV,
        "from": OUR_NUMBER,
        "base_url": fake.url,
        "timeout": 2,
        **extra,
    }


@pytest.mark.usefixtures("vonage_env")
class TestVonage:
    async def test_success_posts_the_documented_form(self) -> None:
        """A send is a form POST to /sms/json: key, secret, numbers without "+", client-ref."""
        async with VonageFake() as fake:
            table = vonage_table(fake, status_callback="https://hooks.example.com/v")
            gateway = build(VonageGateway, table)
            async with running(gateway):
                receipt = await gateway.send(SMS)
        assert receipt == SendReceipt("0C00000000000001")
        (request,) = fake.requests
        assert (request.method, request.path) == ("POST", "/sms/json")
        assert request.form == {
            "api_key": "a1b2c3d4",
            "api_secret": "vonage-secret",
            "from": OUR_NUMBER[1:],
            "to": CALLER[1:],
            "text": SMS.body,
            "type": "text",
            "client-ref": "textback-7",
            "callback": "https://hooks.example.com/v",
        }

    async def test_non_gsm_text_goes_as_unicode(self) -> None:
        """Curly quotes or emoji go as type=unicode; the route's DID is the from."""
        async with VonageFake() as fake:
            gateway = build(VonageGateway, vonage_table(fake))
            async with running(gateway):
                await gateway.send(
                    OutgoingSms(to=CALLER, body="We’re sorry 🙏", reference="r", sender=DID)
                )
        form = fake.requests[0].form
        assert (form["type"], form["from"]) == ("unicode", DID[1:])

    def test_gsm7_detection(self) -> None:
        """GSM-7 covers accents like é and the extension table (€, braces); curly quotes do not."""
        assert not needs_unicode("Café: 5€ {ok} [x] ~^|\\ @£$¥")
        assert needs_unicode("it’s")
        assert needs_unicode("ç")  # only capital Ç is in GSM-7

    async def test_long_text_in_parts_returns_the_first_id(self) -> None:
        """A multi-part text accepted whole returns the first part's message-id."""
        async with VonageFake() as fake:
            gateway = build(VonageGateway, vonage_table(fake))
            async with running(gateway):
                receipt = await gateway.send(OutgoingSms(to=CALLER, body="x" * 200, reference="r"))
        assert receipt == SendReceipt("0C00000000000001")

    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            (1, FailureKind.TRANSIENT),
            (5, FailureKind.TRANSIENT),
            (6, FailureKind.NOT_SMS_CAPABLE),
            (7, FailureKind.NOT_SMS_CAPABLE),
            (33, FailureKind.NOT_SMS_CAPABLE),
            (8, FailureKind.CONFIG),
            (9, FailureKind.CONFIG),
            (15, FailureKind.CONFIG),
            (29, FailureKind.CONFIG),
            (3, FailureKind.PERMANENT),
            (99, FailureKind.PERMANENT),  # unknown
        ],
    )
    async def test_status_codes_map_to_kinds(self, status: int, kind: FailureKind) -> None:
        """HTTP 200 with a non-zero messages[0].status maps by the status table."""
        async with VonageFake() as fake:
            fake.script.append(fake.error(status, f"text {status}"))
            error = await send_error(build(VonageGateway, vonage_table(fake)))
        assert (error.kind, error.code) == (kind, str(status))
        assert error.detail == f"HTTP 200: text {status}"

    async def test_wrong_secret_is_config(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Vonage's status 4 (bad credentials, still HTTP 200) is CONFIG."""
        monkeypatch.setenv(TOKEN_ENV, "wrong")
        async with VonageFake() as fake:
            error = await send_error(build(VonageGateway, vonage_table(fake)))
        assert (error.kind, error.code, error.detail) == (
            FailureKind.CONFIG,
            "4",
            "HTTP 200: Bad Credentials",
        )

    async def test_partly_accepted_is_not_retried(self) -> None:
        """When some parts went out, a failed part is PERMANENT so nothing is sent twice."""
        async with VonageFake() as fake:
            fake.script.append(fake.parts(0, 1))
            error = await send_error(build(VonageGateway, vonage_table(fake)))
        assert (error.kind, error.code, error.maybe_sent) == (FailureKind.PERMANENT, "1", True)
        assert error.detail.startswith("only 1 of 2 parts accepted")

    async def test_429_500_hang_and_drop_are_transient(self) -> None:
        """429 (with Retry-After), 500, a hang and a drop are TRANSIENT."""
        async with VonageFake() as fake:
            gateway = build(VonageGateway, vonage_table(fake, timeout=0.2))
            fake.script.extend(
                [Reply(429, b"", {"Retry-After": "4"}), Reply(500, b"oops"), Hang(), Drop()]
            )
            async with running(gateway):
                errors = []
                for _ in range(4):
                    with pytest.raises(GatewayError) as caught:
                        await gateway.send(SMS)
                    errors.append(caught.value)
        assert [e.kind for e in errors] == [FailureKind.TRANSIENT] * 4
        assert errors[0].retry_after == 4.0
        assert errors[1].detail == "HTTP 500: oops"

    def test_config_problems(self) -> None:
        """Vonage needs api_key, a secret and a from; each bad value names its key."""
        found = problems(
            VonageGateway, {"api_key": "a b", "from": "My Business Name", "callback": "x"}
        )
        assert [line.split(":")[0] for line in found] == [
            "gateway.callback",
            "gateway.api_key",
            "gateway",
            "gateway.from",
        ]
        assert 'did you mean "status_callback"?' in found[0]

    def test_alphanumeric_sender_is_accepted(self, vonage_env: None) -> None:
        """An alphanumeric sender ID of up to 11 characters is a valid from."""
        gateway = build(
            VonageGateway,
            {"api_key": "a1b2c3d4", "api_secret_env": TOKEN_ENV, "from": "Acme Dental"},
        )
        assert isinstance(gateway, VonageGateway)
        assert gateway.sender == "Acme Dental"
