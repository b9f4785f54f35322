"""textback install-check against real servers on 127.0.0.1: the AMI and event-socket
simulators, the fake providers, aiosmtpd, real SQLite files and real sockets."""

from __future__ import annotations

import contextlib
import io
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final, Protocol

import pytest

from tests.amihelpers import CAPTURES, item_of, running, settings
from tests.fakeproviders import TelnyxFake, TwilioFake, VonageFake
from tests.fakeproviders_b import PLIVO_AUTH_ID, PlivoFake, SmtpSink, VoipMsFake
from textback.config import Config, load
from textback.config_web import hash_password
from textback.esl_simulator import EslSimulator, EslSimulatorOptions
from textback.gateways.ami_modem import AmiModemGateway
from textback.gateways.base import (
    NOTHING_TO_CHECK,
    Checkable,
    FailureKind,
    Gateway,
    GatewayContext,
    GatewayError,
)
from textback.gateways.console import ConsoleGateway
from textback.gateways.plivo import PlivoGateway
from textback.gateways.smtp import SmtpGateway
from textback.gateways.telnyx import TelnyxGateway
from textback.gateways.twilio import SignalWireGateway, TwilioGateway
from textback.gateways.voipms import VoipMsGateway
from textback.gateways.vonage import VonageGateway
from textback.gateways.webhook import WebhookGateway
from textback.installcheck import Report, check_database, check_listen, run_checks
from textback.pbx.ami_source import AmiResync, AmiSource
from textback.pbxcheck import (
    command_output,
    frame_end,
    parse_channelvars,
    parse_manager_user,
)
from textback.simulator import AmiSimulator, SimulatorOptions
from textback.store import SCHEMA_VERSION, open_store
from textback.tomltable import Secret

ACCOUNT: Final = "AC" + "0" * 31 + "1"
PROJECT: Final = "12345678-90ab-cdef-1234-567890abcdef"
HASH: Final = hash_password("correct horse battery staple")
# What manager_textback.conf grants, and what `manager show user` then says.
RECOMMENDED_READ: Final = frozenset({"system", "call", "agent", "dialplan"})
RECOMMENDED_WRITE: Final = frozenset({"reporting", "call"})
CHANNELVARS: Final = ("CALLERID(pres)", "FROM_DID")


# -- helpers -----------------------------------------------------------------------------------


def channel_snapshot(capture: str) -> str:
    """A CoreShowChannel for the first channel of a capture, as a live PBX would list it."""
    text = (CAPTURES / capture).read_bytes().decode()
    newchannel = next(f for f in text.split("\r\n\r\n") if f.startswith("Event: Newchannel"))
    lines = [ln for ln in newchannel.split("\r\n")[1:] if not ln.startswith("Privilege:")]
    return "\r\n".join(["Event: CoreShowChannel", *lines]) + "\r\n"


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick, released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(
    tmp_path: Path,
    *,
    pbx: str,
    gateway: str,
    extra: str = "",
    secret: str = "textback",
    trunk: str = 'channels = ["PJSIP/carrier-a-*"]',
) -> Config:
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "pbx-secret").write_text(secret + "\n")
    path = tmp_path / "textback.toml"
    path.write_text(
        f'[daemon]\ndatabase = "{tmp_path / "state" / "textback.db"}"\n'
        '[business]\nname = "Acme Plumbing"\n'
        f"[trunks.carrier-a]\n{trunk}\n{pbx}\n{gateway}\n{extra}"
    )
    return load(path)


def asterisk_table(port: int) -> str:
    return f'[asterisk]\nport = {port}\nsecret_file = "pbx-secret"\nconnect_timeout = 2.0\n'


def twilio_table(tmp_path: Path, url: str, token: str = "twilio-token") -> str:
    (tmp_path / "twilio-token").write_text(token + "\n")
    return (
        f'[gateway]\nkind = "twilio"\naccount_sid = "{ACCOUNT}"\n'
        f'auth_token_file = "twilio-token"\nfrom = "+12125550100"\nbase_url = "{url}"\n'
    )


def web_tables(public_url: str, web_port: int, metrics_port: int) -> str:
    return (
        f'[web]\nlisten = "127.0.0.1:{web_port}"\npublic_url = "{public_url}"\n'
        f'[[web.users]]\nname = "alice"\npassword_hash = "{HASH}"\n'
        f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
    )


async def checked(config: Config) -> tuple[int, list[str]]:
    """run_checks' exit status and its lines, the closing summary left out."""
    out = io.StringIO()
    status = await run_checks(config, out)
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("install-check: ")
    return status, lines[:-1]


def line(lines: list[str], start: str) -> str:
    """The one line starting with ``start``."""
    (found,) = [ln for ln in lines if ln.startswith(start)]
    return found


def tags(lines: list[str]) -> dict[str, list[str]]:
    """Each topic's statuses, in order: {"asterisk read": ["ok", "??"]}."""
    found: dict[str, list[str]] = {}
    for text in lines:
        tag, _, rest = text.partition(" ")
        found.setdefault(rest.strip().partition(":")[0], []).append(tag)
    return found


@contextlib.asynccontextmanager
async def asterisk(**overrides: object) -> AsyncIterator[AmiSimulator]:
    """The AMI simulator set up as manager_textback.conf recommends, with ``overrides``."""
    values: dict[str, object] = {
        "read_classes": RECOMMENDED_READ,
        "write_classes": RECOMMENDED_WRITE,
        "fully_booted": True,
        "channelvars": CHANNELVARS,
    }
    values.update(overrides)
    async with AmiSimulator([], SimulatorOptions(**values)) as sim:  # type: ignore[arg-type]
        yield sim


@contextlib.contextmanager
def listening() -> Iterator[int]:
    """A port something already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# -- whole runs --------------------------------------------------------------------------------


class TestRunAsterisk:
    async def test_recommended_setup_passes_and_says_what_it_cannot_see(
        self, tmp_path: Path
    ) -> None:
        """manager_textback.conf as shipped: 0, ok lines, and ?? for what needs write=command."""
        async with asterisk() as sim, TwilioFake() as fake:
            config = write_config(
                tmp_path,
                pbx=asterisk_table(sim.port),
                gateway=twilio_table(tmp_path, fake.url),
                extra=web_tables("https://textback.example.com", free_port(), free_port()),
            )
            status, lines = await checked(config)
        assert status == 0, lines
        assert tags(lines) == {
            "database": ["ok"],
            "web": ["ok", "ok"],
            "metrics": ["ok"],
            "asterisk": ["ok"],
            "asterisk write": ["ok"],
            "asterisk read": ["ok", "??"],
            "asterisk channelvars": ["??"],
            "gateway twilio": ["ok"],
        }
        assert "includes system (FullyBooted" in line(lines, "ok   asterisk read")
        assert "call, agent and dialplan" in line(lines, "??   asterisk read")
        assert f"account {ACCOUNT} (Acme Plumbing) active" in line(lines, "ok   gateway")
        # Nothing was sent: the provider saw one GET of the account.
        assert [(r.method, r.path) for r in fake.requests] == [
            ("GET", f"/2010-04-01/Accounts/{ACCOUNT}.json")
        ]
        assert sim.logins == 1

    @pytest.mark.parametrize("command_format", ["output", "follows"])
    async def test_with_write_command_every_class_is_verified(
        self, tmp_path: Path, command_format: str
    ) -> None:
        """write=command: read classes and channelvars come from the CLI, in both reply shapes."""
        write = RECOMMENDED_WRITE | {"command"}
        async with (
            asterisk(write_classes=write, command_format=command_format, chunking="byte") as sim,
            TwilioFake() as fake,
        ):
            config = write_config(
                tmp_path, pbx=asterisk_table(sim.port), gateway=twilio_table(tmp_path, fake.url)
            )
            status, lines = await checked(config)
        assert status == 0, lines
        assert "includes system, call, agent, dialplan" in line(lines, "ok   asterisk read")
        assert "present in manager show settings" in line(lines, "ok   asterisk channelvars")
        assert "write includes command" in line(lines, "warn asterisk write")
        assert not [ln for ln in lines if ln.startswith(("??", "FAIL"))]

    async def test_wrong_secret_is_a_fail_naming_the_fix(self, tmp_path: Path) -> None:
        """A refused Login fails with the manager.conf fix, and nothing after it is tried."""
        async with asterisk() as sim, TwilioFake() as fake:
            config = write_config(
                tmp_path,
                pbx=asterisk_table(sim.port),
                gateway=twilio_table(tmp_path, fake.url),
                secret="not-the-secret",
            )
            status, lines = await checked(config)
        assert status == 1
        failed = line(lines, "FAIL asterisk:")
        assert "refused the login as textback (Authentication failed)" in failed
        assert ", fix: the secret in manager.conf [textback] must equal" in failed
        assert "file " in failed  # where textback read it from
        assert "not-the-secret" not in "\n".join(lines)
        assert not [ln for ln in lines if ln.startswith(("ok   asterisk", "??   asterisk"))]
        assert line(lines, "ok   gateway twilio")  # the other checks still ran

    async def test_nothing_listening(self, tmp_path: Path) -> None:
        """No AMI at the address: a FAIL saying to start Asterisk and check the port."""
        config = write_config(
            tmp_path, pbx=asterisk_table(free_port()), gateway='[gateway]\nkind = "console"\n'
        )
        status, lines = await checked(config)
        assert status == 1
        assert "cannot connect to 127.0.0.1:" in line(lines, "FAIL asterisk:")
        assert NOTHING_TO_CHECK in line(lines, "??   gateway console")

    async def test_coreshowchannels_refused(self, tmp_path: Path) -> None:
        """write without system or reporting: the resync after a reconnect is impossible."""
        async with asterisk(write_classes=frozenset({"call"})) as sim:
            config = write_config(
                tmp_path, pbx=asterisk_table(sim.port), gateway='[gateway]\nkind = "console"\n'
            )
            status, lines = await checked(config)
        assert status == 1
        failed = line(lines, "FAIL asterisk write")
        assert "CoreShowChannels refused (Permission denied)" in failed
        assert "write=system or write=reporting" in failed

    async def test_read_without_system_is_a_warning(self, tmp_path: Path) -> None:
        """No FullyBooted after the login: read lacks system, said as a warning."""
        async with asterisk(read_classes=frozenset({"call", "agent"})) as sim:
            config = write_config(
                tmp_path, pbx=asterisk_table(sim.port), gateway='[gateway]\nkind = "console"\n'
            )
            status, lines = await checked(config)
        assert status == 0
        assert "no FullyBooted after the login" in line(lines, "warn asterisk read")

    async def test_missing_read_class_fails_when_visible(self, tmp_path: Path) -> None:
        """With write=command, a read without agent is a FAIL naming the line to write."""
        async with asterisk(
            read_classes=frozenset({"system", "call"}),
            write_classes=frozenset({"reporting", "command"}),
        ) as sim:
            config = write_config(
                tmp_path, pbx=asterisk_table(sim.port), gateway='[gateway]\nkind = "console"\n'
            )
            status, lines = await checked(config)
        assert status == 1
        failed = line(lines, "FAIL asterisk read")
        assert "read lacks agent" in failed
        assert "fix: set read = system,call,agent,dialplan in [textback]" in failed

    async def test_channelvars_missing_in_settings(self, tmp_path: Path) -> None:
        """manager show settings without CALLERID(pres): FAIL with the channelvars line to add."""
        async with asterisk(
            write_classes=frozenset({"reporting", "command"}), channelvars=("FROM_DID",)
        ) as sim:
            config = write_config(
                tmp_path, pbx=asterisk_table(sim.port), gateway='[gateway]\nkind = "console"\n'
            )
            status, lines = await checked(config)
        assert status == 1
        failed = line(lines, "FAIL asterisk channelvars")
        assert "CALLERID(pres) missing in manager show settings" in failed
        assert "channelvars = CALLERID(pres),FROM_DID" in failed

    @pytest.mark.parametrize(
        ("capture", "expected"),
        [
            ("pjsip-01-abandoned-ringing.ami", "ok   asterisk channelvars"),
            ("01-abandoned-ringing.ami", "FAIL asterisk channelvars"),
        ],
    )
    async def test_channelvars_read_off_live_channels(
        self, tmp_path: Path, capture: str, expected: str
    ) -> None:
        """A call up during the check shows channelvars without write=command, either way."""
        async with asterisk(channels_snapshot=[channel_snapshot(capture)]) as sim:
            config = write_config(
                tmp_path, pbx=asterisk_table(sim.port), gateway='[gateway]\nkind = "console"\n'
            )
            _, lines = await checked(config)
        assert "on the 1 channel up now" in line(lines, expected)
        assert "1 channel up now" in line(lines, "ok   asterisk write")

    async def test_gateway_401_fails(self, tmp_path: Path) -> None:
        """A refused auth token: FAIL with Twilio's words and code, exit 1."""
        async with asterisk() as sim, TwilioFake() as fake:
            config = write_config(
                tmp_path,
                pbx=asterisk_table(sim.port),
                gateway=twilio_table(tmp_path, fake.url, token="wrong-token"),
            )
            status, lines = await checked(config)
        assert status == 1
        failed = line(lines, "FAIL gateway twilio")
        assert "HTTP 401: Authenticate (code 20003)" in failed
        assert "fix: check the [gateway] keys and the secret" in failed

    async def test_modem_gateway_checked_on_the_check_session(self, tmp_path: Path) -> None:
        """ami_modem: the device list is read on install-check's own login; write=call too."""
        gateway = '[gateway]\nkind = "ami_modem"\ndevice = "dongle0"\n'
        async with asterisk(write_classes=frozenset({"reporting", "command"})) as sim:
            config = write_config(tmp_path, pbx=asterisk_table(sim.port), gateway=gateway)
            status, lines = await checked(config)
        assert status == 1
        assert "write lacks call" in line(lines, "FAIL asterisk write")
        assert "modem dongle0 is known to chan_dongle" in line(lines, "ok   gateway ami_modem")
        assert sim.sent_sms == []


class TestRunFreeswitch:
    FS_TRUNK: Final = 'gateways = ["carrier-a"]'

    def config(self, tmp_path: Path, port: int, password: str = "ClueCon") -> Config:
        pbx = f'[freeswitch]\nport = {port}\npassword_file = "pbx-secret"\nconnect_timeout = 2.0\n'
        return write_config(
            tmp_path,
            pbx=pbx,
            gateway='[gateway]\nkind = "console"\n',
            secret=password,
            trunk=self.FS_TRUNK,
        )

    async def test_all_good(self, tmp_path: Path) -> None:
        """Password, show channels and the subscription: three ok lines, exit 0."""
        options = EslSimulatorOptions(heartbeats=False)
        async with EslSimulator([], options) as sim:
            status, lines = await checked(self.config(tmp_path, sim.port))
            assert sim.subscriptions == 1
        assert status == 0
        assert tags(lines)["freeswitch"] == ["ok", "ok", "ok"]
        assert "(0 channels up now)" in lines[2]

    async def test_wrong_password(self, tmp_path: Path) -> None:
        """-ERR invalid: FAIL with the event_socket.conf.xml fix, nothing more tried."""
        async with EslSimulator([], EslSimulatorOptions(heartbeats=False)) as sim:
            status, lines = await checked(self.config(tmp_path, sim.port, password="nope"))
        assert status == 1
        failed = line(lines, "FAIL freeswitch")
        assert "refused the password (-ERR invalid)" in failed
        assert "event_socket.conf.xml" in failed
        assert tags(lines)["freeswitch"] == ["FAIL"]

    async def test_acl_rejection(self, tmp_path: Path) -> None:
        """text/rude-rejection: FAIL naming apply-inbound-acl."""
        options = EslSimulatorOptions(heartbeats=False, reject_acl=True)
        async with EslSimulator([], options) as sim:
            status, lines = await checked(self.config(tmp_path, sim.port))
        assert status == 1
        assert "apply-inbound-acl" in line(lines, "FAIL freeswitch")


class TestRunNotify:
    @pytest.mark.parametrize(("password", "expected"), [("smtp-pw", "ok  "), ("wrong", "FAIL")])
    async def test_notify_mail_login(self, tmp_path: Path, password: str, expected: str) -> None:
        """[notify]'s mail server: connect, EHLO and the login; no mail goes out."""
        (tmp_path / "smtp-pw").write_text(password + "\n")
        async with SmtpSink(users={"textback": "smtp-pw"}) as sink, asterisk() as sim:
            notify = (
                '[notify]\nemail_to = ["office@example.com"]\nsmtp_host = "127.0.0.1"\n'
                f'smtp_port = {sink.port}\nsmtp_tls = "none"\nsmtp_username = "textback"\n'
                'smtp_password_file = "smtp-pw"\nfrom_address = "textback@example.com"\n'
            )
            config = write_config(
                tmp_path,
                pbx=asterisk_table(sim.port),
                gateway='[gateway]\nkind = "console"\n',
                extra=notify,
            )
            status, lines = await checked(config)
        assert status == (0 if expected == "ok  " else 1)
        found = line(lines, f"{expected} notify mail")
        assert ("login as textback" if expected == "ok  " else "refused the login") in found
        assert sink.envelopes == []


# -- database and listen addresses -------------------------------------------------------------


def database_lines(path: Path) -> list[str]:
    out = io.StringIO()
    check_database(path, Report(out))
    return out.getvalue().splitlines()


class TestDatabase:
    def test_missing_directory(self, tmp_path: Path) -> None:
        """No directory: FAIL with mkdir and StateDirectory= as the fixes."""
        (found,) = database_lines(tmp_path / "nope" / "textback.db")
        assert found.startswith("FAIL database: directory")
        assert "mkdir -p" in found
        assert "StateDirectory=" in found

    def test_new_database_is_not_created(self, tmp_path: Path) -> None:
        """A writable directory without the file: ok, and the check leaves no file behind."""
        (found,) = database_lines(tmp_path / "textback.db")
        assert found.startswith("ok   database:")
        assert "created at start" in found
        assert list(tmp_path.iterdir()) == []

    def test_existing_database_opens_read_only(self, tmp_path: Path) -> None:
        """A migrated database: ok with its schema version; no -wal or -shm file is made."""
        path = tmp_path / "textback.db"
        open_store(path).close()
        before = sorted(p.name for p in tmp_path.iterdir())
        (found,) = database_lines(path)
        assert found.startswith("ok   database:")
        assert f"schema version {SCHEMA_VERSION}," in found
        assert sorted(p.name for p in tmp_path.iterdir()) == before

    def test_not_a_database(self, tmp_path: Path) -> None:
        """A file that is not SQLite: FAIL saying so."""
        path = tmp_path / "textback.db"
        path.write_bytes(b"this is a text file, not a database" * 200)
        (found,) = database_lines(path)
        assert found.startswith("FAIL database: cannot open")

    def test_newer_schema(self, tmp_path: Path) -> None:
        """A database from a newer textback: FAIL asking for an upgrade."""
        path = tmp_path / "textback.db"
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()
        (found,) = database_lines(path)
        assert "newer than this textback's" in found
        assert "upgrade textback" in found


class TestListen:
    def test_port_in_use(self) -> None:
        """A port something listens on: FAIL naming ss and the TOML table."""
        out = io.StringIO()
        with listening() as port:
            check_listen("web", "127.0.0.1", port, "[web]", Report(out))
        text = out.getvalue()
        assert text.startswith("FAIL web: 127.0.0.1:")
        assert f"ss -ltnp 'sport = :{port}'" in text
        assert "listen in [web]" in text

    async def test_plain_http_public_url_warns(self, tmp_path: Path) -> None:
        """public_url on http: a warning, not a failure, with the reverse-proxy fix."""
        config = write_config(
            tmp_path,
            pbx="",
            gateway='[gateway]\nkind = "console"\n',
            extra=web_tables("http://127.0.0.1:8080", free_port(), free_port()),
        )
        status, lines = await checked(config)
        assert "reverse proxy with HTTPS" in line(lines, "warn web")
        # Without a PBX table that is the one failure.
        assert status == 1
        assert [ln for ln in lines if ln.startswith("FAIL")] == [
            "FAIL pbx: no [asterisk] or [freeswitch] table: textback run would not start, "
            "fix: keep the one for your PBX from textback.example.toml"
        ]


# -- each adapter's check() against its fake ---------------------------------------------------


@contextlib.asynccontextmanager
async def started(gateway: Gateway, context: GatewayContext | None = None) -> AsyncIterator[None]:
    await gateway.start(context or GatewayContext())
    try:
        yield
    finally:
        await gateway.aclose()


class CheckableGateway(Gateway, Checkable, Protocol):
    """A gateway with a check(): every built-in adapter."""


async def check(gateway: CheckableGateway, context: GatewayContext | None = None) -> str:
    async with started(gateway, context):
        return await gateway.check()


async def check_error(
    gateway: CheckableGateway, context: GatewayContext | None = None
) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await check(gateway, context)
    return caught.value


def twilio(url: str, token: str = "twilio-token", user: str = ACCOUNT) -> TwilioGateway:
    return TwilioGateway(
        api_base=url,
        account=ACCOUNT,
        user=user,
        secret=Secret(token),
        sender="+12125550100",
        timeout=2.0,
    )


class TestAdapterChecks:
    async def test_twilio(self) -> None:
        """The Account resource: ok when active; a trial is said; 401 and suspended are CONFIG."""
        async with TwilioFake() as fake:
            assert await check(twilio(fake.url)) == f"account {ACCOUNT} (Acme Plumbing) active"
            fake.account_type = "Trial"
            assert "a trial: it texts verified numbers only" in await check(twilio(fake.url))
            refused = await check_error(twilio(fake.url, token="wrong"))
            fake.account_status = "suspended"
            suspended = await check_error(twilio(fake.url))
        assert (refused.kind, refused.code) == (FailureKind.CONFIG, "20003")
        assert suspended.kind is FailureKind.CONFIG
        assert "is suspended" in suspended.detail
        assert {r.method for r in fake.requests} == {"GET"}

    async def test_twilio_api_key_reads_the_message_list(self) -> None:
        """An API key may not read the account: the first page of messages proves it instead."""
        key = "SK" + "0" * 31 + "2"
        async with TwilioFake(user=key) as fake:
            said = await check(twilio(fake.url, user=key))
        assert said == f"API key {key} accepted for account {ACCOUNT}"
        (request,) = fake.requests
        assert (request.method, request.query.get("PageSize")) == ("GET", "1")

    async def test_signalwire(self) -> None:
        """SignalWire: the same Account resource under /api/laml, with the project as user."""
        async with TwilioFake(account=PROJECT, prefix="/api/laml") as fake:
            gateway = SignalWireGateway(
                api_base=fake.url + "/api/laml",
                account=PROJECT,
                user=PROJECT,
                secret=Secret("twilio-token"),
                sender="+12125550100",
                timeout=2.0,
            )
            assert await check(gateway) == f"account {PROJECT} (Acme Plumbing) active"
        assert fake.requests[0].path == f"/api/laml/2010-04-01/Accounts/{PROJECT}.json"

    async def test_telnyx(self) -> None:
        """GET /v2/balance: the balance when the key works, CONFIG (10009) when it does not."""
        async with TelnyxFake() as fake:

            def telnyx(key: str) -> TelnyxGateway:
                return TelnyxGateway(
                    api_key=Secret(key), sender="+12125550100", base_url=fake.url, timeout=2.0
                )

            assert await check(telnyx("KEY-telnyx")) == "API key accepted, balance 300.00 USD"
            refused = await check_error(telnyx("KEY-wrong"))
        assert (refused.kind, refused.code) == (FailureKind.CONFIG, "10009")

    async def test_vonage(self) -> None:
        """GET /account/get-balance: ok with the balance; a wrong secret is a 401, CONFIG."""
        async with VonageFake() as fake:

            def vonage(secret: str) -> VonageGateway:
                return VonageGateway(
                    api_key="a1b2c3d4",
                    api_secret=Secret(secret),
                    sender="Acme",
                    base_url=fake.url,
                    timeout=2.0,
                )

            assert (
                await check(vonage("vonage-secret")) == "API key a1b2c3d4 accepted, balance 10.28"
            )
            refused = await check_error(vonage("wrong"))
        assert refused.kind is FailureKind.CONFIG
        assert "authentication failed" in refused.detail

    async def test_plivo(self) -> None:
        """GET /v1/Account/{auth_id}/: ok with the cash credits; a wrong token is CONFIG."""
        async with PlivoFake() as fake:

            def plivo(token: str) -> PlivoGateway:
                return PlivoGateway(
                    auth_id=PLIVO_AUTH_ID,
                    auth_token=Secret(token),
                    sender="+12125550100",
                    base_url=fake.url,
                    timeout=2.0,
                )

            said = await check(plivo("plivo-token"))
            refused = await check_error(plivo("wrong"))
        assert said == f"account {PLIVO_AUTH_ID} (Acme Plumbing) accepted, cash credits 22.75000"
        assert refused.kind is FailureKind.CONFIG

    async def test_voipms(self) -> None:
        """method=getBalance: ok with the balance; invalid_credentials is CONFIG with the hint."""
        async with VoipMsFake() as fake:

            def voipms(password: str) -> VoipMsGateway:
                return VoipMsGateway(
                    api_username="owner@example.com",
                    api_password=Secret(password),
                    did="5145550100",
                    base_url=fake.url,
                    timeout=2.0,
                )

            said = await check(voipms("voipms-api-password"))
            refused = await check_error(voipms("wrong"))
        assert said == "API user owner@example.com accepted, balance 25.3400"
        assert (refused.kind, refused.code) == (FailureKind.CONFIG, "invalid_credentials")
        assert "allow-list" in refused.detail
        assert {r.query.get("method") for r in fake.requests} == {"getBalance"}

    async def test_smtp(self) -> None:
        """EHLO and the login, no mail; a wrong password is CONFIG; no login is said."""
        async with SmtpSink(users={"textback": "smtp-pw"}) as sink:

            def smtp(username: str | None, password: str | None) -> SmtpGateway:
                return SmtpGateway(
                    host="127.0.0.1",
                    port=sink.port,
                    tls="none",
                    username=username,
                    password=Secret(password) if password else None,
                    from_address="textback@example.com",
                    to_template="{e164}@sms.example.com",
                    timeout=2.0,
                )

            said = await check(smtp("textback", "smtp-pw"))
            anonymous = await check(smtp(None, None))
            refused = await check_error(smtp("textback", "wrong"))
        assert said == f"127.0.0.1:{sink.port} accepted EHLO, login as textback"
        assert "the server offers AUTH" in anonymous
        assert refused.kind is FailureKind.CONFIG
        assert "refused the login" in refused.detail
        assert sink.envelopes == []
        assert sink.logins == ["textback"]

    async def test_webhook_and_console_have_nothing_to_check(self) -> None:
        """Neither can be tested without sending, and both say so."""
        webhook = WebhookGateway.from_config(
            {"url": "https://crm.example.com/sms"},
            path="gateway",
            base=Path("."),
            require_secrets=True,
        )
        for gateway in (webhook, ConsoleGateway()):
            assert (await check(gateway)).startswith(NOTHING_TO_CHECK)

    async def test_ami_modem_through_the_daemons_link(self) -> None:
        """Through AmiSource (first reply only): the driver answers, the device is not proven."""
        options = SimulatorOptions(modem_drivers=frozenset({"dongle"}))
        async with AmiSimulator([], options) as sim:
            source = AmiSource(settings(sim.port))
            async with running(source):
                await item_of(source, AmiResync)
                context = GatewayContext(ami_action=source.action)
                said = await check(AmiModemGateway(device="dongle9"), context)
                missing = await check_error(
                    AmiModemGateway(device="quectel0", driver="quectel"), context
                )
        assert (
            said == "the PBX answers DongleShowDevices; device dongle9 is checked at the first send"
        )
        assert missing.kind is FailureKind.CONFIG
        assert "does not know" in missing.detail

    async def test_ami_modem_not_checked_when_the_login_fails(self, tmp_path: Path) -> None:
        """A refused AMI login leaves the modem unchecked, said once, not as a second FAIL."""
        gateway = '[gateway]\nkind = "ami_modem"\ndevice = "dongle0"\n'
        async with asterisk() as sim:
            config = write_config(
                tmp_path, pbx=asterisk_table(sim.port), gateway=gateway, secret="wrong"
            )
            _, lines = await checked(config)
        assert "it sends through the AMI login, which failed above" in line(
            lines, "??   gateway ami_modem"
        )
        assert len([ln for ln in lines if ln.startswith("FAIL")]) == 1

    async def test_ami_modem_unknown_device(self, tmp_path: Path) -> None:
        """On install-check's own session the device list is read: an unknown device is CONFIG."""
        gateway = '[gateway]\nkind = "ami_modem"\ndevice = "dongle9"\n'
        async with asterisk(write_classes=None) as sim:
            config = write_config(tmp_path, pbx=asterisk_table(sim.port), gateway=gateway)
            status, lines = await checked(config)
        assert status == 1
        assert "modem dongle9: Device not found" in line(lines, "FAIL gateway ami_modem")


# -- parsing -----------------------------------------------------------------------------------

SHOW_USER_CLI: Final = (
    "\n"
    "          username: textback\n"
    "            secret: <Set>\n"
    "               ACL: yes\n"
    "         read perm: system,call,agent\n"
    "        write perm: reporting\n"
    "   displayconnects: yes\n"
    "allowmultiplelogin: yes\n"
    "         Variables: \n"
)


class TestParsing:
    def test_follows_frame_ends_at_end_command_not_at_a_blank_line(self) -> None:
        """Asterisk 13's reply holds blank lines: only --END COMMAND-- ends it."""
        frame = (
            b"Response: Follows\r\nPrivilege: Command\r\nActionID: a1\r\n"
            + SHOW_USER_CLI.encode()
            + b"--END COMMAND--\r\n\r\n"
        )
        assert frame_end(frame + b"Event: Next\r\n\r\n") == len(frame)
        assert frame_end(frame[:-10]) is None
        assert parse_manager_user(command_output(frame.decode())) is not None

    def test_both_command_shapes_give_the_same_lines(self) -> None:
        """Output: headers (Asterisk 14+) and raw text (13) read as the same CLI lines."""
        output = (
            "Response: Success\r\nActionID: a1\r\nMessage: Command output follows\r\n"
            + "".join(f"Output: {text}\r\n" for text in SHOW_USER_CLI.split("\n")[:-1])
        )
        follows = "Response: Follows\r\nPrivilege: Command\r\nActionID: a1\r\n" + SHOW_USER_CLI
        follows += "--END COMMAND--\r\n"
        assert command_output(output)[:9] == command_output(follows)[:9]
        user = parse_manager_user(command_output(output))
        assert user is not None
        assert (user.read, user.write) == (
            frozenset({"system", "call", "agent"}),
            frozenset({"reporting"}),
        )

    def test_settings_channelvars(self) -> None:
        """The Channel vars: line of manager show settings, empty when none are set."""
        assert parse_channelvars(["  Channel vars:              CALLERID(pres),FROM_DID"]) == (
            "CALLERID(pres),FROM_DID"
        )
        assert parse_channelvars(["  Channel vars:              "]) == ""
        assert parse_channelvars(["  Debug:   No"]) is None
