from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest

from textback.config import (
    AsteriskConfig,
    BusinessConfig,
    Config,
    CorrelationConfig,
    DaemonConfig,
    FreeswitchConfig,
    LogConfig,
    MetricsConfig,
    RoiConfig,
    load,
    summary,
)
from textback.config_delivery import (
    BUILTIN_DEFAULT,
    BUILTIN_DEFAULT_WITH_LINK,
    MISSED_REASONS,
    SendingConfig,
    gateway_settings,
)
from textback.core.freeswitch import FsCorrelatorSettings
from textback.core.policy import PolicySettings
from textback.core.templates import KINDS, Route, lint
from textback.core.window import SendingWindow
from textback.errors import ConfigError
from textback.tomltable import Secret

EXAMPLE = Path(__file__).parent.parent / "textback.example.toml"
ESL_SNIPPET = Path(__file__).parent.parent / "config" / "freeswitch" / "event_socket.conf.xml"
SECRET = "pa55-w0rd-do-not-print"

BUSINESS = '[business]\nname = "Acme"\n'
TRUNK = '[trunks.carrier-a]\nchannels = ["PJSIP/carrier-a-*"]\n'
MINIMAL = BUSINESS + TRUNK
FS_TRUNK = '[trunks.carrier-a]\ngateways = ["carrier-a"]\n'
FS_MINIMAL = BUSINESS + FS_TRUNK

# Channel variables of the A-legs in the FreeSWITCH captures (README there), trimmed.
FS_CARRIER_A_LEG = {
    "Caller-Context": "public",
    "variable_sofia_profile_name": "external",
    "variable_sip_gateway": "carrier-a",
    "variable_sip_acl_authed_by": "carrier-a",
    "variable_sip_network_ip": "127.0.0.2",
}
FS_CARRIER_B_LEG = {
    "Caller-Context": "public",
    "variable_sofia_profile_name": "external",
    "variable_sip_acl_authed_by": "carrier-b",
    "variable_sip_network_ip": "127.0.0.3",
}
FS_PHONE_LEG = {
    "Caller-Context": "default",
    "variable_sofia_profile_name": "internal",
    "variable_sip_network_ip": "127.0.0.11",
}


def freeswitch_example() -> str:
    """The example as a FreeSWITCH site edits it: [asterisk] deleted, [freeswitch] uncommented."""
    text = EXAMPLE.read_text()
    [asterisk] = re.findall(
        r"^\[asterisk\]\n(?:.*\n)*?(?=\n\n# How textback talks to FreeSWITCH)", text, re.M
    )
    [freeswitch] = re.findall(r"^# \[freeswitch\]\n(?:# .*\n)*", text, re.M)
    text = text.replace(asterisk, "")
    return text.replace(freeswitch, re.sub("^# ", "", freeswitch, flags=re.M))


# What the example (average_job_value = 0) adds after its template notices.
ROI_NOTICE = (
    "roi.average_job_value: is 0, so textback stats counts recovered callers but shows no "
    "money — set average_job_value to what a typical job is worth (e.g. 250) to see money in "
    "textback stats",
)


def template_notices(config: Config) -> list[str]:
    return [notice for notice in config.notices if notice.startswith("templates.")]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "textback.toml"
    path.write_text(text)
    return path


def problems_of(tmp_path: Path, text: str, *, require_secrets: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), require_secrets=require_secrets)
    return info.value.problems


class TestExampleFile:
    def test_loads_without_secrets(self) -> None:
        """The shipped example loads as-is when secrets are not required."""
        config = load(EXAMPLE, require_secrets=False)

        assert config.business.name == "Acme Plumbing"
        assert config.business.link == "https://acme.example/book"
        assert Path("/var/lib/textback/textback.db") == config.daemon.database
        assert config.asterisk is not None
        assert config.asterisk.secret is None
        assert (
            config.asterisk.host,
            config.asterisk.port,
            config.asterisk.username,
        ) == ("127.0.0.1", 5038, "textback")
        assert config.asterisk.closed_contexts == ("app-announcement-1",)
        assert AsteriskConfig().voicemail_contexts == config.asterisk.voicemail_contexts
        assert config.freeswitch is None
        assert [t.name for t in config.trunks.trunks] == ["carrier-a", "carrier-b"]
        carrier_a, carrier_b = config.trunks.trunks
        assert (carrier_a.gateways, carrier_a.acls) == (("carrier-a",), ())
        assert (carrier_b.gateways, carrier_b.acls) == ((), ("carrier-b",))
        assert CorrelationConfig() == config.correlation
        assert config.hours is not None
        assert config.hours.timezone == "America/New_York"
        assert config.hours.weekly == ((((8 * 60, 18 * 60),),) * 5 + ((), ()))
        assert frozenset({date(2026, 12, 25), date(2027, 1, 1)}) == config.hours.holidays

    def test_delivery_tables(self) -> None:
        """The example's policy, templates, sending and gateway are the documented defaults."""
        config = load(EXAMPLE, require_secrets=False)

        assert dataclasses.replace(config.policy, reasons={}) == PolicySettings()
        assert dict.fromkeys(MISSED_REASONS, "yes") == config.policy.reasons
        assert list(config.templates.templates) == [
            "default",
            "after_hours",
            "holiday",
            "voicemail",
        ]
        assert config.templates.routes == ()
        assert (config.templates.business, config.templates.link) == (
            "Acme Plumbing",
            "https://acme.example/book",
        )
        assert SendingConfig(timezone="America/New_York") == config.sending
        assert config.gateway.name == "console"

    def test_templates_lint_clean(self) -> None:
        """Every example text lints with no error or warning: one segment each."""
        config = load(EXAMPLE, require_secrets=False)

        levels = [
            f.level
            for text in config.templates.templates.values()
            for f in lint("x", text, business="Acme Plumbing", link="https://acme.example/book")
        ]

        assert levels == ["info"] * 4
        assert len(template_notices(config)) == 4
        assert all(": 1 SMS segment (GSM-7, " in n for n in template_notices(config))

    def test_commented_template_examples_load(self, tmp_path: Path) -> None:
        """The commented custom template and route, switched on, load with no new notice."""
        text = EXAMPLE.read_text()
        [custom] = re.findall(r"^# queue = .*$", text, re.M)
        [route] = re.findall(r"^# \[\[templates\.route\]\]\n(?:# .*\n)*", text, re.M)
        text = text.replace('queue_abandoned = "yes"', 'queue_abandoned = "queue"')
        text = text.replace(custom, custom[2:]).replace(route, re.sub("^# ", "", route, flags=re.M))

        config = load(write(tmp_path, text), require_secrets=False)

        assert config.policy.reasons["queue_abandoned"] == "queue"
        [emergency] = config.templates.routes
        assert (emergency.name, emergency.dids, emergency.link) == (
            "emergency",
            ("+15555550199",),
            "",
        )
        assert len(template_notices(config)) == 6
        assert all(": 1 SMS segment (GSM-7, " in n for n in template_notices(config))
        assert config.notices[len(template_notices(config)) :] == ROI_NOTICE

    @pytest.mark.parametrize(
        "kind",
        [
            "twilio",
            "signalwire",
            "telnyx",
            "vonage",
            "plivo",
            "voipms",
            "webhook",
            "smtp",
            "ami_modem",
        ],
    )
    def test_gateway_examples_load(self, tmp_path: Path, kind: str) -> None:
        """Each commented gateway example, uncommented in place of console, loads as-is."""
        text = EXAMPLE.read_text()
        [block] = re.findall(rf'^# \[gateway\]\n# kind = "{kind}"\n(?:# .*\n)*', text, re.M)
        active = '\n[gateway]\nkind = "console"\n'
        assert active in text

        config = load(
            write(tmp_path, text.replace(active, "\n" + re.sub("^# ", "", block, flags=re.M))),
            require_secrets=False,
        )

        assert config.gateway.name == kind
        assert config.notices == load(EXAMPLE, require_secrets=False).notices

    def test_trunks_match_lab_channels(self) -> None:
        """The example's trunks claim the lab's carrier channels and not its desk phones."""
        trunks = load(EXAMPLE, require_secrets=False).trunks

        assert getattr(trunks.by_channel("SIP/carrier-a-0000000b"), "name", None) == "carrier-a"
        assert getattr(trunks.by_channel("PJSIP/carrier-b-00000003"), "name", None) == "carrier-b"
        assert trunks.by_channel("SIP/101-0000000c") is None
        assert trunks.by_channel("PJSIP/102-00000004") is None

    def test_trunks_match_lab_freeswitch_legs(self) -> None:
        """The example names the lab's FreeSWITCH carriers by gateway and by ACL, not phones."""
        trunks = load(EXAMPLE, require_secrets=False).trunks

        assert getattr(trunks.for_freeswitch(FS_CARRIER_A_LEG), "name", None) == "carrier-a"
        assert getattr(trunks.for_freeswitch(FS_CARRIER_B_LEG), "name", None) == "carrier-b"
        assert trunks.for_freeswitch(FS_PHONE_LEG) is None

    def test_freeswitch_variant_loads(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With [asterisk] deleted and [freeswitch] uncommented, the example loads as-is."""
        monkeypatch.setenv("TEXTBACK_ESL_PASSWORD", SECRET)

        config = load(write(tmp_path, freeswitch_example()))

        assert config.asterisk is None
        assert config.freeswitch is not None
        assert (
            dataclasses.replace(config.freeswitch, password=None, password_source="")
            == FreeswitchConfig()
        )
        assert config.freeswitch.password == Secret(SECRET)
        assert config.notices == load(EXAMPLE, require_secrets=False).notices

    def test_freeswitch_variant_keeps_both_tables_apart(self, tmp_path: Path) -> None:
        """Uncommenting [freeswitch] but keeping [asterisk] is the one-PBX problem, alone."""
        text = EXAMPLE.read_text()
        [block] = re.findall(r"^# \[freeswitch\]\n(?:# .*\n)*", text, re.M)
        text = text.replace(block, re.sub("^# ", "", block, flags=re.M))

        problems = problems_of(tmp_path, text)

        assert problems == [
            "freeswitch: set together with [asterisk], but textback talks to one PBX per daemon "
            "— keep [asterisk] or [freeswitch] and delete the other table"
        ]

    def test_documents_password_file(self) -> None:
        """The [freeswitch] notes show password_file, the alternative to password_env."""
        notes = EXAMPLE.read_text().split("\n# [freeswitch]\n", 1)[0].rsplit("\n\n\n", 1)[1]

        assert 'password_file = "/etc/textback/esl-password"' in notes

    def test_freeswitch_settings(self) -> None:
        """The FreeSWITCH correlator gets the example's trunks, call age, answer rule and hours."""
        config = load(EXAMPLE, require_secrets=False)

        settings = config.freeswitch_settings()

        assert settings == FsCorrelatorSettings(
            trunks=config.trunks,
            max_call_age_seconds=14400.0,
            external_answer_is_answer=True,
            hours=config.hours,
        )
        assert settings.trunks is config.trunks

    def test_correlator_settings(self) -> None:
        """The correlator gets the example's trunks, contexts, timing and hours."""
        config = load(EXAMPLE, require_secrets=False)

        settings = config.correlator_settings()

        assert settings.trunks is config.trunks
        assert settings.hours is config.hours
        assert settings.closed_contexts == ("app-announcement-1",)
        assert settings.voicemail_contexts == ("sub-vm", "macro-vm", "vm-*")
        assert (settings.grace_seconds, settings.max_call_age_seconds) == (2.0, 14400.0)
        assert settings.external_answer_is_answer is True

    def test_loads_with_secret_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With TEXTBACK_AMI_SECRET set, the example resolves the secret and hides it."""
        monkeypatch.setenv("TEXTBACK_AMI_SECRET", SECRET)

        config = load(EXAMPLE)

        assert config.asterisk is not None
        assert config.asterisk.secret is not None
        assert config.asterisk.secret.reveal() == SECRET
        assert SECRET not in repr(config)
        assert SECRET not in str(config)
        assert SECRET not in "\n".join(summary(config))

    def test_requires_env_secret_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without the environment variable, a normal load names the variable to set."""
        monkeypatch.delenv("TEXTBACK_AMI_SECRET", raising=False)

        with pytest.raises(ConfigError) as info:
            load(EXAMPLE)

        [problem] = info.value.problems
        assert problem.startswith("asterisk.secret_env: environment variable TEXTBACK_AMI_SECRET")

    @pytest.mark.parametrize(
        ("header", "keys"),
        [
            ("[daemon]", {f.name for f in dataclasses.fields(DaemonConfig)}),
            ("[log]", {f.name for f in dataclasses.fields(LogConfig)}),
            ("[business]", {f.name for f in dataclasses.fields(BusinessConfig)}),
            (
                "[asterisk]",
                {f.name for f in dataclasses.fields(AsteriskConfig)} - {"secret", "secret_source"}
                | {"secret_env", "secret_file", "secret_credential"},
            ),
            (
                "# [freeswitch]",
                {f.name for f in dataclasses.fields(FreeswitchConfig)}
                - {"password", "password_source"}
                | {"password_env"},
            ),
            ("[trunks.carrier-a]", {"channels", "gateways", "country"}),
            ("[trunks.carrier-b]", {"channels", "acls", "country"}),
            ("# [trunks.pstn]", {"contexts", "country"}),
            ("# [trunks.sip-provider]", {"networks", "country"}),
            ("# [trunks.carriers]", {"profiles", "country"}),
            ("[correlation]", {f.name for f in dataclasses.fields(CorrelationConfig)}),
            ("[hours]", {"timezone", "mon", "tue", "wed", "thu", "fri", "sat", "sun", "holidays"}),
            (
                "[policy]",
                {f.name for f in dataclasses.fields(PolicySettings)}
                - {"cooldown_seconds", "reasons"}
                | {"cooldown_hours"},
            ),
            ("[policy.reasons]", set(MISSED_REASONS)),
            ("[templates]", set(KINDS)),
            ("# [[templates.route]]", {"name", "dids", "trunks", "business", "link", "templates"}),
            ("[sending]", {f.name for f in dataclasses.fields(SendingConfig)}),
            ("[gateway]", {"kind"}),
            ("# [metrics]", {"listen"}),
            ("[roi]", {f.name for f in dataclasses.fields(RoiConfig)}),
        ],
    )
    def test_documents_every_key(self, header: str, keys: set[str]) -> None:
        """Every setting appears in the example under its table, set or commented out."""
        section = EXAMPLE.read_text().split(f"\n{header}\n", 1)[1].split("\n[", 1)[0]

        missing = {k for k in keys if not re.search(rf"^(# )?{k} +=", section, re.MULTILINE)}

        assert missing == set()


class TestSecrets:
    def test_secret_repr_hides_value(self) -> None:
        """Secret's repr and str are a fixed placeholder; reveal() gives the value."""
        secret = Secret(SECRET)

        assert repr(secret) == "Secret('***')"
        assert str(secret) == "Secret('***')"
        assert f"{secret}" == "Secret('***')"
        assert secret.reveal() == SECRET

    def test_secret_file_strips_one_newline(self, tmp_path: Path) -> None:
        """secret_file reads the file and drops exactly one trailing newline."""
        (tmp_path / "ami-secret").write_text(SECRET + "\r\n")
        config = load(write(tmp_path, MINIMAL + '[asterisk]\nsecret_file = "ami-secret"\n'))

        assert config.asterisk is not None
        assert config.asterisk.secret == Secret(SECRET)
        assert f"file {tmp_path / 'ami-secret'}" == config.asterisk.secret_source

    def test_secret_file_with_two_lines_is_rejected(self, tmp_path: Path) -> None:
        """A secret with a line break inside is refused, since it would corrupt the AMI login."""
        (tmp_path / "ami-secret").write_text(SECRET + "\n\n")

        problems = problems_of(tmp_path, MINIMAL + '[asterisk]\nsecret_file = "ami-secret"\n')

        assert problems == [
            "asterisk.secret_file: the secret contains a line break — it must be a single line"
        ]

    def test_missing_secret_file(self, tmp_path: Path) -> None:
        """A secret_file that does not exist is one problem naming the path."""
        path = tmp_path / "nope" / "ami-secret"

        problems = problems_of(
            tmp_path, MINIMAL + f'[asterisk]\nsecret_file = "{path}"\n', require_secrets=True
        )

        [problem] = problems
        assert problem.startswith(f"asterisk.secret_file: file {path} does not exist — create it")

    def test_missing_secret_file_tolerated_without_require(self, tmp_path: Path) -> None:
        """With require_secrets=False an unreadable secret_file leaves the secret as None."""
        text = MINIMAL + f'[asterisk]\nsecret_file = "{tmp_path / "nope"}"\n'

        config = load(write(tmp_path, text), require_secrets=False)

        assert config.asterisk is not None
        assert config.asterisk.secret is None

    def test_empty_secret_file(self, tmp_path: Path) -> None:
        """A secret_file holding only a newline counts as empty."""
        (tmp_path / "ami-secret").write_text("\n")

        problems = problems_of(
            tmp_path, MINIMAL + '[asterisk]\nsecret_file = "ami-secret"\n', require_secrets=True
        )

        [problem] = problems
        assert problem.startswith("asterisk.secret_file: file ")
        assert " is empty — " in problem

    def test_inline_secret_is_rejected_without_echo(self, tmp_path: Path) -> None:
        """An inline secret is refused with a pointer to secret_file/secret_env, never echoed."""
        problems = problems_of(tmp_path, MINIMAL + f'[asterisk]\nsecret = "{SECRET}"\n')

        [problem] = problems
        assert problem.startswith("asterisk.secret: secrets may not be written in this file — ")
        assert "secret_env" in problem
        assert "secret_file" in problem
        assert SECRET not in problem

    def test_secret_pasted_into_secret_file_not_echoed(self, tmp_path: Path) -> None:
        """A secret pasted where the file path belongs is not repeated in the error."""
        problems = problems_of(
            tmp_path, MINIMAL + f'[asterisk]\nsecret_file = "{SECRET}"\n', require_secrets=True
        )

        [problem] = problems
        assert problem.startswith("asterisk.secret_file: file named there does not exist")
        assert SECRET not in problem

    def test_secret_pasted_into_secret_env_not_echoed(self, tmp_path: Path) -> None:
        """A secret pasted where the variable name belongs is not repeated in the error."""
        problems = problems_of(
            tmp_path, MINIMAL + f'[asterisk]\nsecret_env = "{SECRET}"\n', require_secrets=True
        )

        [problem] = problems
        assert problem.startswith("asterisk.secret_env: expected the NAME of an environment")
        assert SECRET not in problem

    def test_both_sources_rejected(self, tmp_path: Path) -> None:
        """Setting both secret_file and secret_env is one problem."""
        text = MINIMAL + '[asterisk]\nsecret_file = "/x"\nsecret_env = "X"\n'

        problems = problems_of(tmp_path, text)

        assert (problems) == [
            "asterisk.secret_env: set together with secret_file — keep only one of the two"
        ]

    def test_no_secret_configured(self, tmp_path: Path) -> None:
        """An [asterisk] table with no secret source says how to add one."""
        problems = problems_of(tmp_path, MINIMAL + "[asterisk]\n", require_secrets=True)

        [problem] = problems
        assert problem.startswith("asterisk: no AMI secret configured — set secret_env = ")

    def test_errors_never_contain_the_secret(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With a resolved secret and many other problems, no problem line holds the secret."""
        monkeypatch.setenv("TEXTBACK_AMI_SECRET", SECRET)
        text = (
            MINIMAL + '[asterisk]\nsecret_env = "TEXTBACK_AMI_SECRET"\nport = "x"\nhost = ""\n'
            f'pasword = "{SECRET}"\n'
        )

        with pytest.raises(ConfigError) as info:
            load(write(tmp_path, text))

        assert len(info.value.problems) == 3
        assert SECRET not in str(info.value)
        assert SECRET not in repr(info.value)


class TestFreeswitch:
    def test_empty_table_gets_defaults(self, tmp_path: Path) -> None:
        """An empty [freeswitch] table is the loopback event socket with every default."""
        config = load(write(tmp_path, FS_MINIMAL + "[freeswitch]\n"), require_secrets=False)

        assert FreeswitchConfig() == config.freeswitch
        assert config.asterisk is None
        assert (FreeswitchConfig().host, FreeswitchConfig().port) == ("127.0.0.1", 8021)

    def test_values_are_read(self, tmp_path: Path) -> None:
        """Every key is read; events_format ignores case and whole seconds become floats."""
        text = FS_MINIMAL + (
            '[freeswitch]\nhost = "::1"\nport = 8022\nevents_format = "JSON"\n'
            "connect_timeout = 2\nheartbeat_timeout = 45\nreconnect_min = 0.5\n"
            "reconnect_max = 30\nauth_retry = 120\n"
        )

        fs = load(write(tmp_path, text), require_secrets=False).freeswitch

        assert fs == FreeswitchConfig(
            host="::1",
            port=8022,
            events_format="json",
            connect_timeout=2.0,
            heartbeat_timeout=45.0,
            reconnect_min=0.5,
            reconnect_max=30.0,
            auth_retry=120.0,
        )
        assert isinstance(fs.heartbeat_timeout, float)

    def test_password_file(self, tmp_path: Path) -> None:
        """password_file is read, one trailing newline dropped, and its path is the source."""
        (tmp_path / "esl-password").write_text(SECRET + "\n")
        text = FS_MINIMAL + '[freeswitch]\npassword_file = "esl-password"\n'

        fs = load(write(tmp_path, text)).freeswitch

        assert fs is not None
        assert fs.password == Secret(SECRET)
        assert f"file {tmp_path / 'esl-password'}" == fs.password_source

    def test_password_env_unset(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unset password variable names the variable and where the value comes from."""
        monkeypatch.delenv("TEXTBACK_ESL_PASSWORD", raising=False)
        text = FS_MINIMAL + '[freeswitch]\npassword_env = "TEXTBACK_ESL_PASSWORD"\n'

        problems = problems_of(tmp_path, text, require_secrets=True)

        assert problems == [
            "freeswitch.password_env: environment variable TEXTBACK_ESL_PASSWORD is not set or "
            "empty — set it in the service's environment (systemd: Environment= or "
            "EnvironmentFile=) to the event socket password from event_socket.conf.xml"
        ]

    def test_no_password_configured(self, tmp_path: Path) -> None:
        """A [freeswitch] table without a password source says how to add one."""
        problems = problems_of(tmp_path, FS_MINIMAL + "[freeswitch]\n", require_secrets=True)

        assert problems == [
            "freeswitch: no event socket password configured — set password_env = "
            '"TEXTBACK_ESL_PASSWORD" (an environment variable holding it), password_file = '
            '"/etc/textback/esl-password" (a file holding it) or password_credential = '
            '"esl-password" (a systemd credential, '
            "LoadCredential=esl-password:/etc/textback/esl-password in the unit)"
        ]

    @pytest.mark.parametrize("key", ["password", "secret", "pass"])
    def test_inline_password_refused_without_echo(self, tmp_path: Path, key: str) -> None:
        """A password written into the file is refused, pointed elsewhere, never echoed."""
        problems = problems_of(tmp_path, FS_MINIMAL + f'[freeswitch]\n{key} = "{SECRET}"\n')

        [problem] = problems
        assert problem.startswith(
            f"freeswitch.{key}: passwords may not be written in this file — "
            'set password_env = "TEXTBACK_ESL_PASSWORD"'
        )
        assert SECRET not in problem

    def test_unknown_key_lists_only_real_keys(self, tmp_path: Path) -> None:
        """An unknown key lists the table's keys, and never an inline password as allowed."""
        text = FS_MINIMAL + '[freeswitch]\nvoicemail_contexts = ["vm"]\n'

        problems = problems_of(tmp_path, text)

        assert problems == [
            "freeswitch.voicemail_contexts: unknown key — keys allowed here: host, port, "
            "events_format, connect_timeout, heartbeat_timeout, reconnect_min, reconnect_max, "
            "auth_retry, password_env, password_file, password_credential"
        ]

    def test_password_with_line_break_refused(self, tmp_path: Path) -> None:
        """A two-line password is refused: it would end the auth command early."""
        (tmp_path / "esl-password").write_text(SECRET + "\nmore\n")
        text = FS_MINIMAL + '[freeswitch]\npassword_file = "esl-password"\n'

        problems = problems_of(tmp_path, text, require_secrets=True)

        assert problems == [
            "freeswitch.password_file: the secret contains a line break — it must be a single line"
        ]

    def test_password_hidden(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The loaded password shows in no repr, str or summary line."""
        monkeypatch.setenv("TEXTBACK_ESL_PASSWORD", SECRET)
        text = FS_MINIMAL + '[freeswitch]\npassword_env = "TEXTBACK_ESL_PASSWORD"\n'

        config = load(write(tmp_path, text))

        assert config.freeswitch is not None
        assert config.freeswitch.password is not None
        assert config.freeswitch.password.reveal() == SECRET
        assert SECRET not in repr(config)
        assert SECRET not in str(config)
        assert SECRET not in "\n".join((*summary(config), *config.notices))

    def test_stock_password_is_a_notice(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """FreeSWITCH's stock password loads, with a notice that does not repeat it."""
        monkeypatch.setenv("TEXTBACK_ESL_PASSWORD", "ClueCon")
        text = FS_MINIMAL + '[freeswitch]\npassword_env = "TEXTBACK_ESL_PASSWORD"\n'

        config = load(write(tmp_path, text))

        [notice] = [n for n in config.notices if n.startswith("freeswitch")]
        assert len(config.notices) == len(load(write(tmp_path, FS_MINIMAL)).notices) + 1
        assert notice.startswith(
            "freeswitch: the event socket password is FreeSWITCH's published default"
        )
        assert notice.endswith("and in environment variable TEXTBACK_ESL_PASSWORD")
        assert "ClueCon" not in notice

    def test_own_password_no_notice(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A password of the site's own adds no notice."""
        monkeypatch.setenv("TEXTBACK_ESL_PASSWORD", SECRET)
        text = FS_MINIMAL + '[freeswitch]\npassword_env = "TEXTBACK_ESL_PASSWORD"\n'

        config = load(write(tmp_path, text))

        assert config.notices == load(write(tmp_path, FS_MINIMAL)).notices

    def test_neither_pbx_is_fine(self, tmp_path: Path) -> None:
        """Without [asterisk] or [freeswitch] (replay) trunks of either kind load."""
        text = FS_MINIMAL + '[trunks.b]\nchannels = ["PJSIP/carrier-b-*"]\n'

        config = load(write(tmp_path, text))

        assert (config.asterisk, config.freeswitch) == (None, None)
        assert [t.name for t in config.trunks.trunks] == ["carrier-a", "b"]

    def test_both_pbx_reported_with_the_rest(self, tmp_path: Path) -> None:
        """Both PBX tables are one problem, reported with the tables' own problems."""
        text = MINIMAL + "[asterisk]\nport = 0\n[freeswitch]\nheartbeat_timeout = 5\n"

        problems = problems_of(tmp_path, text)

        assert [p.split(": ", 1)[0] for p in problems] == [
            "asterisk.port",
            "freeswitch.heartbeat_timeout",
            "freeswitch",
        ]

    def test_modem_gateway_needs_asterisk(self, tmp_path: Path) -> None:
        """The AMI modem gateway is refused when the PBX is FreeSWITCH."""
        text = FS_MINIMAL + (
            '[freeswitch]\n[gateway]\nkind = "ami_modem"\ndriver = "dongle"\ndevice = "dongle0"\n'
        )

        problems = problems_of(tmp_path, text)

        assert problems == [
            'gateway.kind: "ami_modem" sends through Asterisk\'s manager interface, and this file '
            "talks to FreeSWITCH — pick an SMS provider (see the [gateway] examples)"
        ]

    def test_settings_follow_correlation(self, tmp_path: Path) -> None:
        """freeswitch_settings() carries [correlation] and [hours] to the correlator."""
        text = FS_MINIMAL + (
            '[correlation]\nmax_call_age_seconds = 600\nexternal_answer = "missed"\n'
            '[hours]\ntimezone = "UTC"\nmon = ["08:00-18:00"]\n'
        )
        config = load(write(tmp_path, text))

        settings = config.freeswitch_settings()

        assert settings.trunks is config.trunks
        assert settings.hours is config.hours
        assert settings.hours is not None
        assert (settings.max_call_age_seconds, settings.external_answer_is_answer) == (
            600.0,
            False,
        )


class TestFreeswitchTrunks:
    def test_keys_read_in_order(self, tmp_path: Path) -> None:
        """gateways, acls, networks and profiles come out as written, networks canonical."""
        text = BUSINESS + (
            '[trunks.a]\ngateways = ["carrier-a", "2b1b3c3e-0a4d-4c4e-9b7f-5e0c1d2a3b4c"]\n'
            'acls = ["carrier-a"]\n'
            'networks = ["127.0.0.3", "203.0.113.0/24", "2001:db8::7", "2001:DB8:1::/48"]\n'
            'profiles = ["external"]\n'
        )

        [trunk] = load(write(tmp_path, text)).trunks.trunks

        assert trunk.gateways == ("carrier-a", "2b1b3c3e-0a4d-4c4e-9b7f-5e0c1d2a3b4c")
        assert trunk.acls == ("carrier-a",)
        assert trunk.networks == (
            "127.0.0.3/32",
            "203.0.113.0/24",
            "2001:db8::7/128",
            "2001:db8:1::/48",
        )
        assert trunk.profiles == ("external",)

    def test_bare_address_is_one_host(self, tmp_path: Path) -> None:
        """networks = ["127.0.0.3"] admits exactly that address."""
        text = BUSINESS + '[trunks.b]\nnetworks = ["127.0.0.3"]\n'

        trunks = load(write(tmp_path, text)).trunks

        assert getattr(trunks.for_freeswitch(FS_CARRIER_B_LEG), "name", None) == "b"
        assert trunks.for_freeswitch(FS_CARRIER_A_LEG) is None
        assert trunks.for_freeswitch({"variable_sip_network_ip": "127.0.0.4"}) is None

    def test_each_problem_in_a_list_reported(self, tmp_path: Path) -> None:
        """Every bad item of a list is its own line, by index, and good ones are kept quiet."""
        text = BUSINESS + (
            '[trunks.a]\nnetworks = ["203.0.113.0/24", "nope", "10.0.0.1/8"]\n'
            'acls = ["carrier-a", "localnet.auto"]\n'
        )

        problems = problems_of(tmp_path, text)

        assert [p.split(": ", 1)[0] for p in problems] == [
            "trunks.a.acls[1]",
            "trunks.a.networks[1]",
            "trunks.a.networks[2]",
        ]

    def test_profiles_only_is_a_notice(self, tmp_path: Path) -> None:
        """A trunk named only by a sofia profile loads, with a notice naming the key."""
        text = BUSINESS + '[trunks.carriers]\nprofiles = ["external"]\n'

        config = load(write(tmp_path, text))

        assert config.notices[0] == (
            "trunks.carriers.profiles: every inbound call on that profile counts as a carriers "
            "call; prefer gateways/acls/networks, which name the carrier itself"
        )
        assert config.trunks.trunks[0].profiles == ("external",)

    @pytest.mark.parametrize(
        "extra",
        ['gateways = ["carrier-a"]', 'acls = ["carrier-a"]', 'networks = ["127.0.0.2"]'],
    )
    def test_profiles_with_a_carrier_key_no_notice(self, tmp_path: Path, extra: str) -> None:
        """profiles next to gateways, acls or networks adds no notice."""
        plain = load(write(tmp_path, FS_MINIMAL)).notices
        text = BUSINESS + f'[trunks.carriers]\nprofiles = ["external"]\n{extra}\n'

        assert load(write(tmp_path, text)).notices == plain

    def test_freeswitch_trunk_with_contexts_on_asterisk(self, tmp_path: Path) -> None:
        """A trunk both PBXs can see (contexts) loads under either PBX table."""
        text = BUSINESS + '[trunks.a]\ngateways = ["carrier-a"]\ncontexts = ["public"]\n'

        for table in ("[asterisk]\n", "[freeswitch]\n"):
            config = load(write(tmp_path, text + table), require_secrets=False)
            assert config.trunks.trunks[0].contexts == ("public",)


class TestFreeswitchSnippet:
    def params(self) -> dict[str, str]:
        root = ET.parse(ESL_SNIPPET).getroot()
        assert (root.tag, root.get("name")) == ("configuration", "event_socket.conf")
        return {p.attrib["name"]: p.attrib["value"] for p in root.iter("param")}

    def test_loopback_and_default_port(self) -> None:
        """The shipped event_socket.conf.xml listens on loopback at [freeswitch]'s port."""
        params = self.params()

        assert params["listen-ip"] == FreeswitchConfig().host
        assert params["listen-port"] == str(FreeswitchConfig().port)
        assert params["apply-inbound-acl"] == "loopback.auto"

    def test_password_is_a_placeholder(self) -> None:
        """The snippet's password is an obvious placeholder, never the stock ClueCon."""
        password = self.params()["password"]

        assert password.lower() != "cluecon"
        assert password.startswith("CHANGE-ME")

    def test_says_where_and_how_to_install(self) -> None:
        """The comments give FusionPBX's path and the reload command."""
        text = ESL_SNIPPET.read_text()

        assert "/etc/freeswitch/autoload_configs/event_socket.conf.xml" in text
        assert 'fs_cli -x "reload mod_event_socket"' in text
        assert "switch.event_socket.password" in text  # FusionPBX's own copy of the password


class TestValid:
    def test_minimal_file_gets_defaults(self, tmp_path: Path) -> None:
        """A file with just a business name and one trunk loads with every default."""
        config = load(write(tmp_path, MINIMAL))

        assert DaemonConfig() == config.daemon
        assert config.asterisk is None
        assert config.hours is None
        assert CorrelationConfig() == config.correlation
        assert config.trunks.trunks[0].country == "US"

    def test_ints_accepted_for_float_fields(self, tmp_path: Path) -> None:
        """Whole numbers are fine where seconds are expected, and come back as floats."""
        text = MINIMAL + "[asterisk]\nconnect_timeout = 3\n[correlation]\ngrace_seconds = 0\n"

        config = load(write(tmp_path, text), require_secrets=False)

        assert config.asterisk is not None
        assert isinstance(config.asterisk.connect_timeout, float)
        assert config.asterisk.connect_timeout == 3.0
        assert config.correlation.grace_seconds == 0.0

    def test_trunks_keep_file_order(self, tmp_path: Path) -> None:
        """Trunks come out in file order with their patterns, contexts and country."""
        text = (
            BUSINESS
            + '[trunks.zeta]\ncontexts = ["from-pstn"]\ncountry = "gb"\n'
            + '[trunks.alpha]\nchannels = ["IAX2/alpha-*", "DAHDI/1-*"]\n'
        )

        trunks = load(write(tmp_path, text)).trunks.trunks

        assert [t.name for t in trunks] == ["zeta", "alpha"]
        assert (trunks[0].contexts, trunks[0].country) == (("from-pstn",), "GB")
        assert trunks[1].channels == ("IAX2/alpha-*", "DAHDI/1-*")

    def test_hours_split_shifts_and_dates(self, tmp_path: Path) -> None:
        """Split shifts are sorted, 24:00 ends a day, and TOML date literals are holidays."""
        text = MINIMAL + (
            '[hours]\ntimezone = "Europe/London"\n'
            'mon = ["13:00-18:00", "08:00-12:00"]\nfri = ["20:00-24:00"]\n'
            'holidays = [2026-12-25, "2026-12-26"]\n'
        )

        hours = load(write(tmp_path, text)).hours

        assert hours is not None
        assert hours.weekly[0] == ((480, 720), (780, 1080))
        assert hours.weekly[4] == ((1200, 1440),)
        assert hours.weekly[6] == ()
        assert frozenset({date(2026, 12, 25), date(2026, 12, 26)}) == hours.holidays

    def test_external_answer_missed_reaches_correlator(self, tmp_path: Path) -> None:
        """external_answer = "missed" turns off trusting answers outside the PBX."""
        text = MINIMAL + '[correlation]\nexternal_answer = "Missed"\n'

        settings = load(write(tmp_path, text)).correlator_settings()

        assert settings.external_answer_is_answer is False

    def test_relative_database_follows_config_file(self, tmp_path: Path) -> None:
        """A relative database path is taken relative to the config file's directory."""
        config = load(write(tmp_path, MINIMAL + '[daemon]\ndatabase = "state/tb.db"\n'))

        assert tmp_path / "state" / "tb.db" == config.daemon.database
        assert not (tmp_path / "state").exists()

    def test_config_is_frozen(self, tmp_path: Path) -> None:
        """The loaded config cannot be changed after load."""
        config = load(write(tmp_path, MINIMAL))

        with pytest.raises(dataclasses.FrozenInstanceError):
            config.business = BusinessConfig(name="Other")  # type: ignore[misc]


# (id, file text, expected key, fragment the line must contain).
ERROR_CASES = [
    ("toplevel-typo", MINIMAL + "[trunk.x]\n", "trunk", 'unknown key — did you mean "trunks"?'),
    (
        "key-outside-table",
        'host = "pbx"\n' + MINIMAL,
        "host",
        "belongs in the [asterisk] or [freeswitch] table; move it below the [asterisk] or "
        "[freeswitch] line",
    ),
    (
        "asterisk-key-outside-table",
        'username = "tb"\n' + MINIMAL,
        "username",
        "belongs in the [asterisk] table",
    ),
    (
        "freeswitch-key-outside-table",
        "heartbeat_timeout = 60\n" + MINIMAL,
        "heartbeat_timeout",
        "belongs in the [freeswitch] table",
    ),
    (
        "trunk-key-outside-table",
        'gateways = ["carrier-a"]\n' + MINIMAL,
        "gateways",
        "belongs in the [trunks.<name>] table",
    ),
    ("table-not-table", "daemon = 5\n" + MINIMAL, "daemon", "expected a [daemon] table, got 5"),
    ("db-tilde", MINIMAL + '[daemon]\ndatabase = "~/tb.db"\n', "daemon.database", "uses ~"),
    ("db-dir", MINIMAL + '[daemon]\ndatabase = "."\n', "daemon.database", "names a directory"),
    ("db-type", MINIMAL + "[daemon]\ndatabase = 3\n", "daemon.database", "got 3"),
    (
        "log-level",
        MINIMAL + '[log]\nlevel = "inf"\n',
        "log.level",
        'expected one of "debug", "info", "warning", "error", got "inf" — did you mean "info"?',
    ),
    ("log-format", MINIMAL + '[log]\nformat = "jsn"\n', "log.format", 'did you mean "json"?'),
    (
        "log-format-moved",
        MINIMAL + '[daemon]\nlog_format = "logfmt"\n',
        "daemon.log_format",
        'unknown key — logging has its own table now: write format = "logfmt" below a [log] line',
    ),
    (
        "log-level-moved",
        MINIMAL + "[daemon]\nlog_level = 3\n",
        "daemon.log_level",
        'unknown key — logging has its own table now: write level = "info" below a [log] line',
    ),
    ("log-old-name", MINIMAL + '[log]\nlog_level = "info"\n', "log.log_level", '"level"?'),
    ("log-top-level", 'level = "info"\n' + MINIMAL, "level", "belongs in the [log] table"),
    (
        "log-old-top-level",
        'log_format = "json"\n' + MINIMAL,
        "log_format",
        'unknown key — logging has its own table now: write format = "json" below a [log] line',
    ),
    ("no-business", TRUNK, "business.name", "missing — add a [business] table with name ="),
    ("empty-name", TRUNK + '[business]\nname = " "\n', "business.name", "non-empty string"),
    (
        "bad-link",
        TRUNK + '[business]\nname = "A"\nlink = "acme.example"\n',
        "business.link",
        "must start with http:// or https://",
    ),
    ("port-zero", MINIMAL + "[asterisk]\nport = 0\n", "asterisk.port", "65535, got 0"),
    ("port-bool", MINIMAL + "[asterisk]\nport = true\n", "asterisk.port", "65535, got true"),
    (
        "timeout-zero",
        MINIMAL + "[asterisk]\nconnect_timeout = 0\n",
        "asterisk.connect_timeout",
        "expected a number of seconds greater than 0, got 0",
    ),
    (
        "timeout-bool",
        MINIMAL + "[asterisk]\nping_interval = true\n",
        "asterisk.ping_interval",
        "got true",
    ),
    ("timeout-inf", MINIMAL + "[asterisk]\nauth_retry = inf\n", "asterisk.auth_retry", "got inf"),
    (
        "reconnect-order",
        MINIMAL + "[asterisk]\nreconnect_min = 10\nreconnect_max = 5\n",
        "asterisk.reconnect_min",
        "10 is more than reconnect_max (5)",
    ),
    ("asterisk-typo", MINIMAL + '[asterisk]\nuser = "tb"\n', "asterisk.user", '"username"?'),
    ("events-off", MINIMAL + '[asterisk]\nevents = "off"\n', "asterisk.events", "turns off"),
    ("events-typo", MINIMAL + '[asterisk]\nevents = "calls"\n', "asterisk.events", '"call"?'),
    (
        "events-no-call",
        MINIMAL + '[asterisk]\nevents = "system,agent"\n',
        "asterisk.events",
        'leaves out "call"',
    ),
    (
        "context-is-channel",
        MINIMAL + '[asterisk]\nclosed_contexts = ["SIP/x-*"]\n',
        "asterisk.closed_contexts[0]",
        "looks like a channel",
    ),
    (
        "contexts-not-array",
        MINIMAL + '[asterisk]\nvoicemail_contexts = "vm"\n',
        "asterisk.voicemail_contexts",
        'wrap it in brackets: voicemail_contexts = ["vm"]',
    ),
    ("no-trunks", BUSINESS, "trunks", "no trunk configured — add a [trunks.<name>] table"),
    (
        "trunk-name",
        BUSINESS + '[trunks."carrier a"]\ncontexts = ["from-pstn"]\n',
        'trunks."carrier a"',
        "trunk names may use only letters, digits",
    ),
    (
        "trunk-empty",
        BUSINESS + '[trunks.carrier-a]\ncountry = "US"\n',
        "trunks.carrier-a",
        "no channels, contexts, gateways, acls, networks or profiles — on Asterisk add "
        'channels = ["PJSIP/carrier-a-*"] (your trunk endpoint\'s channel names) or contexts = '
        '["from-pstn"] (the context its calls arrive in); on FreeSWITCH add gateways = '
        '["carrier-a"] (its sofia gateway) or acls = ["carrier-a"]',
    ),
    (
        "trunk-not-table",
        BUSINESS + '[trunks]\ncarrier-a = "PJSIP/carrier-a-*"\n',
        "trunks.carrier-a",
        "expected a table",
    ),
    (
        "no-slash",
        BUSINESS + '[trunks.a]\nchannels = ["carrier-a-*"]\n',
        "trunks.a.channels[0]",
        '"carrier-a-*" is not a channel pattern — write it as TECH/endpoint-*',
    ),
    (
        "odd-tech",
        BUSINESS + '[trunks.a]\nchannels = ["PJ-SIP/carrier-a-*"]\n',
        "trunks.a.channels[0]",
        '"PJ-SIP" is not a channel technology',
    ),
    (
        "tech-case",
        BUSINESS + '[trunks.a]\nchannels = ["pjsip/carrier-a-*"]\n',
        "trunks.a.channels[0]",
        'Asterisk spells it PJSIP and patterns are case-sensitive — write "PJSIP/carrier-a-*"',
    ),
    (
        "bare-endpoint",
        BUSINESS + '[trunks.a]\nchannels = ["PJSIP/*"]\n',
        "trunks.a.channels[0]",
        "would treat every phone as a trunk",
    ),
    (
        "bare-endpoint-dash",
        BUSINESS + '[trunks.a]\nchannels = ["SIP/*-*"]\n',
        "trunks.a.channels[0]",
        "would treat every phone as a trunk",
    ),
    (
        "matches-phone",
        BUSINESS + '[trunks.a]\nchannels = ["PJSIP/1*"]\n',
        "trunks.a.channels[0]",
        "also matches desk phone channels such as PJSIP/101-00000001",
    ),
    (
        "local",
        BUSINESS + '[trunks.a]\nchannels = ["Local/*@from-queue*"]\n',
        "trunks.a.channels[0]",
        "Local channels are the PBX's own internal legs",
    ),
    (
        "no-wildcard",
        BUSINESS + '[trunks.a]\nchannels = ["PJSIP/carrier-a"]\n',
        "trunks.a.channels[0]",
        'end it with -*: "PJSIP/carrier-a-*"',
    ),
    (
        "sofia-channel",
        BUSINESS + '[trunks.a]\nchannels = ["sofia/gateway/carrier-a/*"]\n',
        "trunks.a.channels[0]",
        "is a FreeSWITCH channel name, but channels are Asterisk's — name a FreeSWITCH trunk "
        'by its sofia gateway (gateways = ["carrier-a"])',
    ),
    (
        "gateway-space",
        BUSINESS + '[trunks.a]\ngateways = ["carrier a"]\n',
        "trunks.a.gateways[0]",
        '"carrier a" contains whitespace — FreeSWITCH gateway names never do',
    ),
    (
        "gateway-glob",
        BUSINESS + '[trunks.a]\ngateways = ["carrier-*"]\n',
        "trunks.a.gateways[0]",
        "gateway names are matched exactly, without wildcards",
    ),
    (
        "gateway-dial-string",
        BUSINESS + '[trunks.a]\ngateways = ["sofia/gateway/carrier-a"]\n',
        "trunks.a.gateways[0]",
        'is a path or dial string — write just the gateway name, e.g. "carrier-a"',
    ),
    (
        "gateway-with-profile",
        BUSINESS + '[trunks.a]\ngateways = ["external::carrier-a"]\n',
        "trunks.a.gateways[0]",
        '"external::carrier-a" is profile::name as sofia status prints it — write just the '
        'gateway name, "carrier-a"',
    ),
    (
        "gateways-not-array",
        BUSINESS + '[trunks.a]\ngateways = "carrier-a"\n',
        "trunks.a.gateways",
        'wrap it in brackets: gateways = ["carrier-a"]',
    ),
    (
        "gateway-not-string",
        BUSINESS + "[trunks.a]\ngateways = [7]\n",
        "trunks.a.gateways[0]",
        'expected a non-empty string, got 7 — e.g. gateways = ["carrier-a"]',
    ),
    (
        "acl-is-address",
        BUSINESS + '[trunks.a]\nacls = ["203.0.113.7"]\n',
        "trunks.a.acls[0]",
        'is an address, not an ACL list name — move it to networks = ["203.0.113.7"]',
    ),
    (
        "acl-builtin",
        BUSINESS + '[trunks.a]\nacls = ["rfc1918.auto"]\n',
        "trunks.a.acls[0]",
        "built-in lists of whole address ranges, which may hold your desk phones too",
    ),
    (
        "acl-space",
        BUSINESS + '[trunks.a]\nacls = ["carrier b"]\n',
        "trunks.a.acls[0]",
        "FreeSWITCH ACL list names never do",
    ),
    (
        "network-not-address",
        BUSINESS + '[trunks.a]\nnetworks = ["carrier-b"]\n',
        "trunks.a.networks[0]",
        '"carrier-b" is not an IP address or network — write the carrier\'s addresses as '
        '"203.0.113.0/24" or "203.0.113.7" (one address)',
    ),
    (
        "network-everything",
        BUSINESS + '[trunks.a]\nnetworks = ["::/0"]\n',
        "trunks.a.networks[0]",
        '"::/0" matches every address, desk phones included',
    ),
    (
        "network-host-bits",
        BUSINESS + '[trunks.a]\nnetworks = ["127.0.0.3", "203.0.113.7/24"]\n',
        "trunks.a.networks[1]",
        'has bits set after the /24 — write "203.0.113.0/24" for the network or '
        '"203.0.113.7" for one address',
    ),
    (
        "profile-internal",
        BUSINESS + '[trunks.a]\nprofiles = ["internal"]\n',
        "trunks.a.profiles[0]",
        '"internal" is where desk phones register',
    ),
    (
        "profile-path",
        BUSINESS + '[trunks.a]\nprofiles = ["sofia/external"]\n',
        "trunks.a.profiles[0]",
        'write just the sofia profile name, e.g. "external"',
    ),
    (
        "trunk-key-typo",
        BUSINESS + '[trunks.a]\ncontexts = ["public"]\ngateway = ["carrier-a"]\n',
        "trunks.a.gateway",
        'unknown key — did you mean "gateways"?',
    ),
    (
        "asterisk-trunk-on-freeswitch",
        MINIMAL + "[freeswitch]\n",
        "trunks.carrier-a",
        "channels are Asterisk's, and this file talks to FreeSWITCH ([freeswitch]), so no call "
        'would match — add gateways = ["carrier-a"] (its sofia gateway), acls = ["carrier-a"]',
    ),
    (
        "freeswitch-trunk-on-asterisk",
        FS_MINIMAL + "[asterisk]\n",
        "trunks.carrier-a",
        "gateways, acls, networks and profiles are FreeSWITCH's, and this file talks to "
        'Asterisk ([asterisk]), so no call would match — add channels = ["PJSIP/carrier-a-*"]',
    ),
    (
        "country",
        BUSINESS + '[trunks.a]\ncontexts = ["from-pstn"]\ncountry = "USA"\n',
        "trunks.a.country",
        'expected a two-letter country code such as "US", "CA" or "GB", got "USA"',
    ),
    (
        "country-uk",
        BUSINESS + '[trunks.a]\ncontexts = ["from-pstn"]\ncountry = "UK"\n',
        "trunks.a.country",
        'did you mean "GB"?',
    ),
    (
        "both-pbx",
        MINIMAL + "[asterisk]\n[freeswitch]\n",
        "freeswitch",
        "set together with [asterisk], but textback talks to one PBX per daemon — "
        "keep [asterisk] or [freeswitch]",
    ),
    (
        "fs-port",
        FS_MINIMAL + "[freeswitch]\nport = 80210\n",
        "freeswitch.port",
        "expected an integer from 1 to 65535, got 80210 — set it to listen-port in "
        "event_socket.conf.xml (usually 8021)",
    ),
    (
        "fs-host",
        FS_MINIMAL + '[freeswitch]\nhost = "127.0.0.1:8021 "\n',
        "freeswitch.host",
        "contains whitespace — write just the address",
    ),
    (
        "fs-host-empty",
        FS_MINIMAL + '[freeswitch]\nhost = ""\n',
        "freeswitch.host",
        'expected a non-empty string, got "" — set it to the event socket\'s listen-ip',
    ),
    (
        "fs-events-format",
        FS_MINIMAL + '[freeswitch]\nevents_format = "jsn"\n',
        "freeswitch.events_format",
        'expected one of "plain", "json", got "jsn" — did you mean "json"?',
    ),
    (
        "fs-events-format-xml",
        FS_MINIMAL + '[freeswitch]\nevents_format = "xml"\n',
        "freeswitch.events_format",
        '"plain" unless you are comparing with captures taken as json',
    ),
    (
        "fs-heartbeat",
        FS_MINIMAL + "[freeswitch]\nheartbeat_timeout = 20\n",
        "freeswitch.heartbeat_timeout",
        "expected a number of seconds greater than 20, got 20 — FreeSWITCH sends a HEARTBEAT "
        "every 20 seconds, so a shorter wait would drop a healthy link (default 60)",
    ),
    (
        "fs-connect-timeout",
        FS_MINIMAL + "[freeswitch]\nconnect_timeout = 0\n",
        "freeswitch.connect_timeout",
        "expected a number of seconds greater than 0, got 0",
    ),
    (
        "fs-auth-retry",
        FS_MINIMAL + "[freeswitch]\nauth_retry = true\n",
        "freeswitch.auth_retry",
        "got true — wait after FreeSWITCH refuses the password (default 300)",
    ),
    (
        "fs-reconnect-order",
        FS_MINIMAL + "[freeswitch]\nreconnect_min = 10\nreconnect_max = 5\n",
        "freeswitch.reconnect_min",
        "10 is more than reconnect_max (5) — make reconnect_min the smaller of the two",
    ),
    (
        "fs-secret-env",
        FS_MINIMAL + '[freeswitch]\nsecret_env = "X"\n',
        "freeswitch.secret_env",
        'unknown key — did you mean "password_env"?',
    ),
    (
        "fs-username",
        FS_MINIMAL + '[freeswitch]\nusername = "textback"\n',
        "freeswitch.username",
        "the event socket has no user name, only a password: remove it",
    ),
    (
        "fs-both-password-sources",
        FS_MINIMAL + '[freeswitch]\npassword_env = "X"\npassword_file = "/x"\n',
        "freeswitch.password_env",
        "set together with password_file — keep only one of the two",
    ),
    (
        "grace",
        MINIMAL + "[correlation]\ngrace_seconds = 61\n",
        "correlation.grace_seconds",
        "expected a number of seconds from 0 to 60, got 61",
    ),
    (
        "max-age",
        MINIMAL + "[correlation]\nmax_call_age_seconds = 59.5\n",
        "correlation.max_call_age_seconds",
        "at least 60, got 59.5",
    ),
    (
        "external-answer",
        MINIMAL + '[correlation]\nexternal_answer = "answerd"\n',
        "correlation.external_answer",
        'did you mean "answered"?',
    ),
    (
        "no-timezone",
        MINIMAL + '[hours]\nmon = ["08:00-18:00"]\n',
        "hours.timezone",
        "missing — set it to your IANA",
    ),
    (
        "all-closed",
        MINIMAL + '[hours]\ntimezone = "UTC"\nsat = []\n',
        "hours",
        "no opening hours on any day",
    ),
    (
        "timezone-typo",
        MINIMAL + '[hours]\ntimezone = "America/New_Yrok"\nmon = ["08:00-18:00"]\n',
        "hours.timezone",
        '"America/New_Yrok" is not a known time zone — did you mean "America/New_York"?',
    ),
    (
        "day-name",
        MINIMAL + '[hours]\ntimezone = "UTC"\nmon = ["08:00-18:00"]\nthursday = ["08:00-18:00"]\n',
        "hours.thursday",
        'unknown key — did you mean "thu"?',
    ),
    (
        "interval-format",
        MINIMAL + '[hours]\ntimezone = "UTC"\nmon = ["8am-6pm"]\n',
        "hours.mon[0]",
        'expected "HH:MM-HH:MM", got "8am-6pm" — write it like "08:00-18:00"',
    ),
    (
        "interval-time",
        MINIMAL + '[hours]\ntimezone = "UTC"\nmon = ["08:00-24:30"]\n',
        "hours.mon[0]",
        "is not a time range",
    ),
    (
        "interval-empty",
        MINIMAL + '[hours]\ntimezone = "UTC"\nmon = ["09:00-09:00"]\n',
        "hours.mon[0]",
        "is empty",
    ),
    (
        "overnight",
        MINIMAL + '[hours]\ntimezone = "UTC"\nsun = ["22:00-02:00"]\n',
        "hours.sun[0]",
        'runs past midnight — split it at midnight: "22:00-24:00" on this day and '
        '"00:00-02:00" in mon',
    ),
    (
        "overlap",
        MINIMAL + '[hours]\ntimezone = "UTC"\ntue = ["08:00-12:00", "11:00-13:00"]\n',
        "hours.tue",
        '"08:00-12:00" and "11:00-13:00" overlap — merge them into "08:00-13:00"',
    ),
    (
        "holiday",
        MINIMAL + '[hours]\ntimezone = "UTC"\nmon = ["08:00-18:00"]\nholidays = ["2026-02-30"]\n',
        "hours.holidays[0]",
        'expected a date as "YYYY-MM-DD", got "2026-02-30"',
    ),
]


class TestProblems:
    def test_issue_port_example(self, tmp_path: Path) -> None:
        """A non-numeric port gives exactly the line the issue asks for."""
        problems = problems_of(tmp_path, MINIMAL + '[asterisk]\nport = "abc"\n')

        assert problems == [
            'asterisk.port: expected an integer from 1 to 65535, got "abc" — '
            "set it to the AMI port from manager.conf (usually 5038)"
        ]

    def test_issue_typo_example(self, tmp_path: Path) -> None:
        """A misspelt trunk key is reported with a suggestion, as the issue asks."""
        text = BUSINESS + '[trunks.carrier-a]\nchanels = ["PJSIP/carrier-a-*"]\n'

        problems = problems_of(tmp_path, text)

        assert problems[0] == 'trunks.carrier-a.chanels: unknown key — did you mean "channels"?'

    @pytest.mark.parametrize(
        ("text", "key", "fragment"),
        [case[1:] for case in ERROR_CASES],
        ids=[case[0] for case in ERROR_CASES],
    )
    def test_one_line_naming_the_key(
        self, tmp_path: Path, text: str, key: str, fragment: str
    ) -> None:
        """Each kind of mistake gives exactly one line that names its TOML key and the fix."""
        problems = problems_of(tmp_path, text)

        [problem] = problems
        assert problem.startswith(f"{key}: ")
        assert fragment in problem
        assert " — " in problem

    def test_all_problems_reported_at_once(self, tmp_path: Path) -> None:
        """Problems in every table are collected into one ConfigError, in file order."""
        text = (
            '[log]\nlevel = "loud"\n'
            "[business]\n"
            '[asterisk]\nport = 70000\nsecret = "x"\n'
            '[trunks.a]\nchannels = ["PJSIP/*"]\n'
            "[correlation]\ngrace_seconds = -1\n"
            '[hours]\ntimezone = "Mars/Olympus"\nmon = ["08:00-18:00"]\n'
        )

        problems = problems_of(tmp_path, text)

        assert [p.split(": ", 1)[0] for p in problems] == [
            "log.level",
            "business.name",
            "asterisk.secret",
            "asterisk.port",
            "trunks.a.channels[0]",
            "correlation.grace_seconds",
            "hours.timezone",
        ]

    def test_toml_syntax_error(self, tmp_path: Path) -> None:
        """Broken TOML is one line with the file, line and column, and not the line's text."""
        path = write(tmp_path, f'[asterisk]\nsecret_env = "X" "{SECRET}"\n')

        with pytest.raises(ConfigError) as info:
            load(path)

        [problem] = info.value.problems
        assert problem.startswith(f"{path}: line 2, column 18: invalid TOML (")
        assert SECRET not in problem

    def test_toml_error_at_end_of_file(self, tmp_path: Path) -> None:
        """A file cut short reports the end of the file as the place to look."""
        path = write(tmp_path, MINIMAL + "[hours]\nmon = [\n")

        with pytest.raises(ConfigError) as info:
            load(path)

        [problem] = info.value.problems
        assert problem.startswith(f"{path}: end of file: invalid TOML (")

    def test_database_is_a_directory(self, tmp_path: Path) -> None:
        """A database path that is an existing directory is refused."""
        problems = problems_of(tmp_path, MINIMAL + f'[daemon]\ndatabase = "{tmp_path}"\n')

        [problem] = problems
        assert problem.startswith(f'daemon.database: "{tmp_path}" is a directory — name a file')

    def test_database_under_a_file(self, tmp_path: Path) -> None:
        """A database path whose parent is a regular file is refused."""
        (tmp_path / "plain").write_text("")

        problems = problems_of(tmp_path, MINIMAL + '[daemon]\ndatabase = "plain/tb.db"\n')

        [problem] = problems
        assert problem.startswith(f'daemon.database: "plain/tb.db": {tmp_path / "plain"} is a file')

    def test_missing_file(self, tmp_path: Path) -> None:
        """A config file that does not exist is one line naming it."""
        path = tmp_path / "absent.toml"

        with pytest.raises(ConfigError) as info:
            load(path)

        assert [
            f"{path}: no such file — create it from textback.example.toml, "
            "or pass the right file with -c"
        ] == info.value.problems


class TestSummary:
    def test_mentions_everything_but_the_secret(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The summary lists trunks, AMI target, secret source, database, hours and name."""
        monkeypatch.setenv("TEXTBACK_AMI_SECRET", SECRET)
        config: Config = load(EXAMPLE)

        lines = summary(config)

        text = "\n".join(lines)
        assert SECRET not in text
        assert (
            "trunk carrier-a: channels SIP/carrier-a-*, PJSIP/carrier-a-*; gateways carrier-a; "
            "country US"
        ) in lines
        assert (
            "trunk carrier-b: channels SIP/carrier-b-*, PJSIP/carrier-b-*; acls carrier-b; "
            "country US"
        ) in lines
        assert not any(line.startswith("freeswitch:") for line in lines)
        assert "AMI 127.0.0.1:5038 as user textback" in text
        assert "secret from environment variable TEXTBACK_AMI_SECRET," in text
        assert "database: /var/lib/textback/textback.db" in lines
        assert "hours: America/New_York; mon-fri 08:00-18:00; sat-sun closed" in text
        assert "business: Acme Plumbing (booking link https://acme.example/book)" in lines

    def test_minimal_config(self, tmp_path: Path) -> None:
        """Without [asterisk] or [hours] the summary says they are not configured."""
        lines = summary(load(write(tmp_path, MINIMAL)))

        assert "asterisk: not configured (no [asterisk] table)" in lines
        assert "freeswitch: not configured (no [freeswitch] table)" in lines
        assert "hours: not configured (no [hours] table)" in lines

    def test_freeswitch_without_the_password(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A [freeswitch] line names the socket and where the password comes from, never it."""
        monkeypatch.setenv("TEXTBACK_ESL_PASSWORD", SECRET)
        text = FS_MINIMAL + '[freeswitch]\npassword_env = "TEXTBACK_ESL_PASSWORD"\n'

        lines = summary(load(write(tmp_path, text)))

        assert SECRET not in "\n".join(lines)
        assert (
            "freeswitch: event socket 127.0.0.1:8021, password from environment variable "
            "TEXTBACK_ESL_PASSWORD, events plain, link judged dead after 60s without a HEARTBEAT"
        ) in lines
        assert not any(line.startswith("asterisk:") for line in lines)

    def test_freeswitch_password_not_available(self, tmp_path: Path) -> None:
        """A password that cannot be read now (replay, check without secrets) is said so."""
        text = FS_MINIMAL + '[freeswitch]\npassword_file = "/nonexistent/esl"\n'

        lines = summary(load(write(tmp_path, text), require_secrets=False))

        assert any(
            "password from file /nonexistent/esl (not available now)" in line for line in lines
        )

    def test_freeswitch_trunk_keys(self, tmp_path: Path) -> None:
        """A trunk line lists every FreeSWITCH key it has, networks in canonical form."""
        text = BUSINESS + (
            '[trunks.b]\ngateways = ["gw-b"]\nacls = ["carrier-b"]\n'
            'networks = ["127.0.0.3"]\nprofiles = ["external"]\ncountry = "CA"\n'
        )

        lines = summary(load(write(tmp_path, text)))

        assert (
            "trunk b: gateways gw-b; acls carrier-b; networks 127.0.0.3/32; profiles external; "
            "country CA"
        ) in lines


# --- delivery tables -------------------------------------------------------------------------

STOP = "Reply STOP to opt out."
TEMPLATES = f'[templates]\ndefault = "Hi, this is {{business}}. {STOP}"\n'
ROUTE = "[[templates.route]]\n"

# (id, text after MINIMAL, expected key, fragment the line must contain).
DELIVERY_ERROR_CASES = [
    (
        "region",
        '[policy]\nallowed_regions = ["USA"]\n',
        "policy.allowed_regions[0]",
        'expected a two-letter region code such as "US", "CA" or "GB", got "USA"',
    ),
    ("region-uk", '[policy]\nallowed_regions = ["UK"]\n', "policy.allowed_regions[0]", '"GB"?'),
    (
        "regions-empty",
        "[policy]\nallowed_regions = []\n",
        "policy.allowed_regions",
        "is empty, so no caller could ever be texted",
    ),
    (
        "regions-string",
        '[policy]\nallowed_regions = "US"\n',
        "policy.allowed_regions",
        'wrap it in brackets: allowed_regions = ["US"]',
    ),
    (
        "number-type",
        '[policy]\nrefused_types = ["PREMIUM"]\n',
        "policy.refused_types[0]",
        '"PREMIUM" is not a phone number type — did you mean "PREMIUM_RATE"?',
    ),
    (
        "cooldown",
        "[policy]\ncooldown_hours = -1\n",
        "policy.cooldown_hours",
        "expected a number of hours of 0 or more, got -1",
    ),
    (
        "cooldown-name",
        "[policy]\ncooldown = 24\n",
        "policy.cooldown",
        'unknown key — did you mean "cooldown_hours"?',
    ),
    (
        "per-hour",
        "[policy]\nmax_per_hour = 0\n",
        "policy.max_per_hour",
        "expected a whole number greater than 0, got 0",
    ),
    ("per-day-float", "[policy]\nmax_per_day = 2.5\n", "policy.max_per_day", "got 2.5"),
    (
        "caps-order",
        "[policy]\nmax_per_hour = 50\nmax_per_day = 40\n",
        "policy.max_per_hour",
        "50 is more than max_per_day (40) — make max_per_hour the smaller of the two",
    ),
    (
        "allow-spaces",
        '[policy]\nallow = ["+1 (555) 555-0123"]\n',
        "policy.allow[0]",
        'contains spaces or punctuation — write "+15555550123"',
    ),
    (
        "deny-national",
        '[policy]\ndeny = ["5555550123"]\n',
        "policy.deny[0]",
        "has no country code — write it in E.164 form",
    ),
    (
        "deny-class",
        '[policy]\ndeny = ["+1[89]00*"]\n',
        "policy.deny[0]",
        "is not an E.164 number or pattern — write +, then digits, with * for any digits",
    ),
    (
        "internal-long",
        '[policy]\ninternal = ["+1234567890123456"]\n',
        "policy.internal[0]",
        "has more than 15 digits",
    ),
    (
        "internal-word",
        '[policy]\ninternal = ["ext101"]\n',
        "policy.internal[0]",
        "is not an E.164 number or pattern",
    ),
    (
        "min-ring",
        "[policy]\nmin_ring_seconds = -2\n",
        "policy.min_ring_seconds",
        "expected a number of seconds from 0 to 300, got -2",
    ),
    (
        "reasons-not-table",
        '[policy]\nreasons = "no"\n',
        "policy.reasons",
        "expected a [policy.reasons] table",
    ),
    (
        "reason-typo",
        '[policy.reasons]\nvoicemal = "no"\n',
        "policy.reasons.voicemal",
        'did you mean "voicemail"?',
    ),
    (
        "reason-answered",
        '[policy.reasons]\nanswered = "no"\n',
        "policy.reasons.answered",
        "unknown key — answered calls are never texted — remove it",
    ),
    (
        "reason-anonymous",
        '[policy.reasons]\nanonymous = "yes"\n',
        "policy.reasons.anonymous",
        "have none to text, so this cannot be switched on — remove the line",
    ),
    (
        "reason-type",
        "[policy.reasons]\nbusy = 1\n",
        "policy.reasons.busy",
        'expected "yes", "no" or a template name, got 1 — use one of "yes", "no", "default"',
    ),
    (
        "reason-template",
        '[policy.reasons]\nvoicemail = "vm"\n' + TEMPLATES,
        "policy.reasons.voicemail",
        'no template named "vm" in [templates] — define templates.vm = "...", or use one of '
        '"yes", "no", "default"',
    ),
    (
        "reason-template-typo",
        '[policy.reasons]\nqueue_abandoned = "queu"\n'
        + TEMPLATES
        + f'queue = "Sorry about the wait - {{business}}. {STOP}"\n',
        "policy.reasons.queue_abandoned",
        'no template named "queu" in [templates] — did you mean "queue"?',
    ),
    (
        "no-default",
        f'[templates]\nafter_hours = "{{business}} is closed. {STOP}"\n',
        "templates.default",
        'missing — add default = "Hi, this is {business}',
    ),
    (
        "empty-text",
        '[templates]\ndefault = " "\n',
        "templates.default",
        "is empty — write the text callers get",
    ),
    (
        "text-type",
        "[templates]\ndefault = 3\n",
        "templates.default",
        "expected the text as a string, got 3",
    ),
    (
        "text-table",
        f'[templates.default]\ntext = "Hi from {{business}}. {STOP}"\n',
        "templates.default",
        "expected the text as a string, got a table",
    ),
    ("no-stop", '[templates]\ndefault = "Hi from {business}."\n', "templates.default", "STOP"),
    (
        "no-business",
        f'[templates]\ndefault = "Hi! {STOP}"\n',
        "templates.default",
        "does not name the business — add {business}",
    ),
    (
        "placeholder",
        TEMPLATES + f'voicemail = "Thanks {{caller_nme}} - {{business}}. {STOP}"\n',
        "templates.voicemail",
        "unknown placeholder {caller_nme} — did you mean {caller_name}?",
    ),
    (
        "braces",
        TEMPLATES + f'holiday = "{{business}} is closed {{today. {STOP}"\n',
        "templates.holiday",
        'unclosed "{" at character',
    ),
    (
        "kind-typo",
        TEMPLATES + f'afterhours = "{{business}} is closed. {STOP}"\n',
        "templates.afterhours",
        'not a template kind and no [policy.reasons] uses it — did you mean "after_hours"?',
    ),
    (
        "template-yes",
        TEMPLATES + f'yes = "{{business}}. {STOP}"\n',
        "templates.yes",
        'may not be "yes" or "no" — rename it',
    ),
    (
        "route-single",
        TEMPLATES + '[templates.route]\nname = "x"\n',
        "templates.route",
        "expected [[templates.route]] tables, got a table — start each route with a "
        "[[templates.route]] line (double brackets)",
    ),
    (
        "route-name",
        TEMPLATES + ROUTE + 'trunks = ["carrier-a"]\n',
        "templates.route[0].name",
        'missing — name it for the logs, e.g. "sales"',
    ),
    (
        "route-no-match",
        TEMPLATES + ROUTE + 'name = "sales"\n',
        "templates.route[0]",
        'matches no call — add dids = ["+15551234567"] (the numbers callers dial) and/or '
        'trunks = ["carrier-a"]',
    ),
    (
        "route-trunk",
        TEMPLATES + ROUTE + 'name = "sales"\ntrunks = ["carrier-b"]\n',
        "templates.route[0].trunks[0]",
        '"carrier-b" is not a [trunks.<name>] table — did you mean "carrier-a"?',
    ),
    (
        "route-did-glob",
        TEMPLATES + ROUTE + 'name = "sales"\ndids = ["+1555*"]\n',
        "templates.route[0].dids[0]",
        "is not a whole E.164 number — list each number in full, no wildcards",
    ),
    (
        "route-did-twice",
        TEMPLATES
        + ROUTE
        + 'name = "a"\ndids = ["+15555550100"]\n'
        + ROUTE
        + 'name = "b"\ndids = ["+15555550100"]\n',
        "templates.route[1].dids",
        '"+15555550100" is already in route "a", which wins — list it in one route only',
    ),
    (
        "route-name-twice",
        TEMPLATES
        + ROUTE
        + 'name = "a"\ndids = ["+15555550100"]\n'
        + ROUTE
        + 'name = "a"\ndids = ["+15555550101"]\n',
        "templates.route[1].name",
        '"a" is used by an earlier route — give each a new name',
    ),
    (
        "route-link",
        TEMPLATES + ROUTE + 'name = "a"\ntrunks = ["carrier-a"]\nlink = "acme.example"\n',
        "templates.route[0].link",
        'expected a full URL like "https://example.com/book", or "" for no link',
    ),
    (
        "route-texts-type",
        TEMPLATES + ROUTE + 'name = "a"\ntrunks = ["carrier-a"]\ntemplates = "Hi"\n',
        "templates.route[0].templates",
        'expected a table, got "Hi" — e.g. templates = { default = ',
    ),
    (
        "route-text-name",
        TEMPLATES
        + ROUTE
        + 'name = "a"\ntrunks = ["carrier-a"]\n'
        + f'templates = {{ vm = "{{business}}. {STOP}" }}\n',
        "templates.route[0].templates.vm",
        "a route's texts replace the ones of the same name in [templates] — use one of "
        "after_hours, default, holiday, voicemail, or define templates.vm first",
    ),
    (
        "route-text-lint",
        TEMPLATES
        + ROUTE
        + 'name = "a"\ntrunks = ["carrier-a"]\nbusiness = "Beta Heating"\n'
        + 'templates = { default = "Hi from Acme. Reply STOP to opt out." }\n',
        "templates.route[0].templates.default",
        'does not name the business — add {business} (or the name "Beta Heating")',
    ),
    (
        "grace",
        "[sending]\ngrace_seconds = 3601\n",
        "sending.grace_seconds",
        "expected a number of seconds from 0 to 3600, got 3601",
    ),
    (
        "window-format",
        '[sending]\nwindow = "9-20"\n',
        "sending.window",
        'expected "HH:MM-HH:MM", got "9-20" — write the hours texts may go out',
    ),
    (
        "window-overnight",
        '[sending]\nwindow = "20:00-09:00"\n',
        "sending.window",
        "the start must be before the end",
    ),
    (
        "window-time",
        '[sending]\nwindow = "09:00-25:00"\n',
        "sending.window",
        "is not a time range",
    ),
    (
        "max-age",
        "[sending]\nmax_age_hours = 0\n",
        "sending.max_age_hours",
        "expected a number of hours greater than 0, got 0",
    ),
    (
        "attempts",
        "[sending]\nmax_attempts = 0\n",
        "sending.max_attempts",
        "expected a whole number from 1 to 100, got 0",
    ),
    (
        "retry-order",
        "[sending]\nretry_base_seconds = 10\nretry_max_seconds = 5\n",
        "sending.retry_base_seconds",
        "10 is more than retry_max_seconds (5)",
    ),
    (
        "sending-timezone",
        '[sending]\ntimezone = "Europe/Londn"\n',
        "sending.timezone",
        '"Europe/Londn" is not a known time zone — did you mean "Europe/London"?',
    ),
    (
        "gateway-kind",
        '[gateway]\nkind = "twillio"\n',
        "gateway.kind",
        'unknown gateway "twillio" — did you mean "twilio"?',
    ),
    ("gateway-no-kind", "[gateway]\n", "gateway.kind", "missing — say which gateway sends"),
    ("gateway-extra", '[gateway]\nkind = "console"\nto = "x"\n', "gateway.to", "unknown key"),
    ("gateway-type", "gateway = 5\n", "gateway", "expected a [gateway] table, got 5"),
    (
        "templates-type",
        'templates = "Hi"\n',
        "templates",
        'expected a [templates] table, got "Hi"',
    ),
    (
        "key-outside",
        "cooldown_hours = 1\n",
        "cooldown_hours",
        "belongs in the [policy] table",
    ),
]


def delivery_problems(tmp_path: Path, text: str) -> list[str]:
    # Top-level keys must come before the first [table] header.
    first = text if "\n[" not in text and not text.startswith("[") else ""
    return problems_of(tmp_path, first + MINIMAL + (text if not first else ""))


class TestDeliveryProblems:
    @pytest.mark.parametrize(
        ("text", "key", "fragment"),
        [case[1:] for case in DELIVERY_ERROR_CASES],
        ids=[case[0] for case in DELIVERY_ERROR_CASES],
    )
    def test_one_line_naming_the_key(
        self, tmp_path: Path, text: str, key: str, fragment: str
    ) -> None:
        """Each mistake in a delivery table is one line naming its TOML key and the fix."""
        problems = delivery_problems(tmp_path, text)

        [problem] = problems
        assert problem.startswith(f"{key}: ")
        assert fragment in problem
        assert " — " in problem

    def test_lint_errors_all_reported_with_paths(self, tmp_path: Path) -> None:
        """Every lint error of every text is a problem under the text's TOML path."""
        text = (
            '[templates]\ndefault = "Hi {nme}"\n'
            + ROUTE
            + 'name = "a"\ntrunks = ["carrier-a"]\ntemplates = { voicemail = "}" }\n'
        )

        problems = problems_of(tmp_path, MINIMAL + text)

        assert [p.split(": ", 1)[0] for p in problems] == [
            "templates.default",
            "templates.default",
            "templates.default",
            "templates.route[0].templates.voicemail",
        ]
        assert "unknown placeholder {nme}" in problems[0]
        assert "does not name the business" in problems[1]
        assert "has no opt-out instruction" in problems[2]
        assert 'lone "}" at character 1' in problems[3]

    def test_problems_in_file_order_with_the_rest(self, tmp_path: Path) -> None:
        """Delivery problems join the other tables' problems in one ConfigError."""
        text = (
            '[log]\nlevel = "loud"\n'
            + MINIMAL
            + "[policy]\nmax_per_hour = 0\n"
            + '[templates]\ndefault = "Hi"\n'
            + "[sending]\nmax_attempts = 0\n"
            + '[gateway]\nkind = "nope"\n'
        )

        problems = problems_of(tmp_path, text)

        assert [p.split(": ", 1)[0] for p in problems] == [
            "log.level",
            "policy.max_per_hour",
            "templates.default",
            "templates.default",
            "sending.max_attempts",
            "gateway.kind",
        ]

    def test_gateway_secret_problems_merged(self, tmp_path: Path) -> None:
        """A gateway's own problems (here a missing secret) come out with the file's others."""
        text = MINIMAL + '[gateway]\nkind = "twilio"\naccount_sid = "AC' + "0" * 32 + '"\n'
        text += 'from = "+15555550100"\nauth_token_env = "TEXTBACK_TEST_UNSET_TOKEN"\n'

        problems = problems_of(tmp_path, text, require_secrets=True)

        [problem] = problems
        assert problem.startswith(
            "gateway.auth_token_env: environment variable TEXTBACK_TEST_UNSET_TOKEN is not set"
        )


class TestDeliveryValid:
    def test_defaults_when_tables_absent(self, tmp_path: Path) -> None:
        """Without the delivery tables: default policy and sending, built-in text, console."""
        config = load(write(tmp_path, MINIMAL))

        assert PolicySettings() == config.policy
        assert SendingConfig() == config.sending
        assert config.templates.templates == {"default": BUILTIN_DEFAULT}
        assert (config.templates.business, config.templates.link) == ("Acme", "")
        assert config.gateway.name == "console"
        assert config.gateway_settings == ()

    def test_builtin_text_with_link(self, tmp_path: Path) -> None:
        """With a booking link and no [templates], the built-in text carries the link."""
        text = TRUNK + '[business]\nname = "Acme"\nlink = "https://acme.example/book"\n'

        config = load(write(tmp_path, text))

        assert config.templates.templates == {"default": BUILTIN_DEFAULT_WITH_LINK}

    @pytest.mark.parametrize("link", ["", "https://acme.example/book"])
    def test_builtin_text_is_one_gsm7_segment(self, link: str) -> None:
        """The built-in texts lint clean and fit one GSM-7 segment for a short business name."""
        text = BUILTIN_DEFAULT_WITH_LINK if link else BUILTIN_DEFAULT

        findings = lint("templates.default", text, business="Acme Plumbing", link=link)

        assert [f.level for f in findings] == ["info"]
        assert findings[0].message.startswith("1 SMS segment (GSM-7, ")

    def test_builtin_text_too_long_for_long_name_is_a_notice(self, tmp_path: Path) -> None:
        """A long business name pushing the built-in text past one segment is a notice."""
        name = "Acme Plumbing, Heating and Air Conditioning of Greater Springfield"
        text = TRUNK + f'[business]\nname = "{name}"\nlink = "https://acme.example/book"\n'

        config = load(write(tmp_path, text))

        [warning] = [n for n in config.notices if "each billed" in n]
        assert warning.startswith("templates.default (built in; add a [templates] table")
        assert "2 SMS segments, each billed as one text — shorten it" in warning

    def test_sending_timezone_follows_hours(self, tmp_path: Path) -> None:
        """sending.timezone defaults to [hours].timezone and can be set apart."""
        hours = '[hours]\ntimezone = "Europe/London"\nmon = ["08:00-18:00"]\n'

        following = load(write(tmp_path, MINIMAL + hours)).sending
        own = load(write(tmp_path, MINIMAL + hours + '[sending]\ntimezone = "Asia/Tokyo"\n'))

        assert following.timezone == "Europe/London"
        assert own.sending.timezone == "Asia/Tokyo"

    def test_policy_values(self, tmp_path: Path) -> None:
        """Policy keys are normalised: regions and types upper-case, hours in seconds."""
        text = MINIMAL + (
            '[policy]\nallowed_regions = ["us", "GB"]\n'
            'refused_types = ["premium_rate", "SHARED_COST", "VOIP"]\n'
            "cooldown_hours = 0.5\nmax_per_hour = 5\nmax_per_day = 5\n"
            'allow = ["+1555*", "+4420????????"]\ndeny = ["+15555550123"]\n'
            'internal = ["101", "+15555550100"]\nmin_ring_seconds = 3\n'
        )

        policy = load(write(tmp_path, text)).policy

        assert (
            PolicySettings(
                allowed_regions=frozenset({"US", "GB"}),
                refused_types=frozenset({"PREMIUM_RATE", "SHARED_COST", "VOIP"}),
                cooldown_seconds=1800.0,
                max_per_hour=5,
                max_per_day=5,
                allow=("+1555*", "+4420????????"),
                deny=("+15555550123",),
                internal=("101", "+15555550100"),
                min_ring_seconds=3.0,
            )
            == policy
        )

    def test_reasons_name_templates(self, tmp_path: Path) -> None:
        """A per-reason switch may name a defined template; yes/no and booleans normalise."""
        text = MINIMAL + (
            '[policy.reasons]\nqueue_abandoned = "queue"\nbusy = false\nivr = "No"\n'
            'voicemail = "voicemail"\nanonymous = "no"\n'
            + TEMPLATES
            + f'queue = "Sorry about the wait - {{business}}. {STOP}"\n'
            + f'voicemail = "Thanks for the message - {{business}}. {STOP}"\n'
        )

        config = load(write(tmp_path, text))

        assert config.policy.reasons == {
            "queue_abandoned": "queue",
            "busy": "no",
            "ivr": "no",
            "voicemail": "voicemail",
        }
        assert "queue" in config.templates.templates
        assert not [n for n in config.notices if "no call gets this text" in n]

    def test_unused_custom_template_is_a_notice(self, tmp_path: Path) -> None:
        """A custom template no reason names loads, with a notice saying nothing sends it."""
        text = MINIMAL + TEMPLATES + f'spare = "Hi again from {{business}}. {STOP}"\n'

        config = load(write(tmp_path, text))

        assert "spare" in config.templates.templates
        assert (
            "templates.spare: no call gets this text, as no [policy.reasons] entry names it — "
            'e.g. voicemail = "spare" under [policy.reasons]'
        ) in config.notices

    def test_lint_warnings_are_notices_not_problems(self, tmp_path: Path) -> None:
        """A two-segment UCS-2 text loads; its warning and segment count become notices."""
        long = "We’re closed right now, sorry we missed your call! " * 2
        text = MINIMAL + TEMPLATES + f'after_hours = "{long}{{business}}. {STOP}"\n'

        config = load(write(tmp_path, text))

        after = [n for n in config.notices if n.startswith("templates.after_hours: ")]
        assert len(after) == 2
        assert after[0].startswith("templates.after_hours: 2 SMS segments (UCS-2 because of ’, ")
        assert after[1].startswith(
            "templates.after_hours: 2 SMS segments, each billed as one text — shorten it; ’ "
            "force UCS-2 (70 characters per text instead of 160): replace ’ with '"
        )

    def test_dropped_fraud_types_are_a_notice(self, tmp_path: Path) -> None:
        """Leaving premium-rate numbers textable loads, with a notice about SMS pumping."""
        text = MINIMAL + '[policy]\nrefused_types = ["SHARED_COST", "TOLL_FREE"]\n'

        config = load(write(tmp_path, text))

        assert config.policy.refused_types == frozenset({"SHARED_COST", "TOLL_FREE"})
        [notice] = [n for n in config.notices if n.startswith("policy.")]
        assert notice.startswith("policy.refused_types: leaves out PREMIUM_RATE — ")

    def test_window_longer_than_max_age_is_a_notice(self, tmp_path: Path) -> None:
        """A night outside the window longer than max_age_hours is flagged as a notice."""
        text = MINIMAL + '[sending]\nwindow = "09:00-20:00"\n'

        config = load(write(tmp_path, text))

        assert SendingWindow(9 * 60, 20 * 60) == config.sending.window
        assert (
            "sending.max_age_hours: 12 h is shorter than the 13 h outside the sending window, "
            "so a call just after 20:00 is dropped instead of texted at 09:00 — raise "
            "max_age_hours to 13 or more to text those callers next morning"
        ) in config.notices
        relaxed = load(write(tmp_path, text + "max_age_hours = 13\n"))
        assert not [n for n in relaxed.notices if n.startswith("sending.")]

    def test_sending_values(self, tmp_path: Path) -> None:
        """Every [sending] key comes through, whole numbers as floats."""
        text = MINIMAL + (
            '[sending]\ngrace_seconds = 45\nwindow = "08:30-24:00"\nmax_age_hours = 6\n'
            "max_attempts = 3\nretry_base_seconds = 1\nretry_max_seconds = 60\n"
            'timezone = "America/Chicago"\n'
        )

        sending = load(write(tmp_path, text)).sending

        assert (
            SendingConfig(
                grace_seconds=45.0,
                window=SendingWindow(510, 1440),
                max_age_hours=6.0,
                max_attempts=3,
                retry_base_seconds=1.0,
                retry_max_seconds=60.0,
                timezone="America/Chicago",
            )
            == sending
        )
        assert sending.max_age_seconds == 6 * 3600

    def test_routes(self, tmp_path: Path) -> None:
        """Routes keep their DIDs, trunks, business, link, texts and TOML path."""
        text = (
            MINIMAL
            + TEMPLATES
            + ROUTE
            + (
                'name = "emergency"\ndids = ["+15555550199"]\ntrunks = ["carrier-a"]\n'
                'business = "Acme 24h"\nlink = ""\n'
                f'templates = {{ default = "{{business}} will call you back. {STOP}" }}\n'
            )
            + ROUTE
            + 'name = "sales"\ndids = ["+15555550100", "+15555550101"]\n'
        )

        book = load(write(tmp_path, text)).templates

        assert book.routes == (
            Route(
                name="emergency",
                dids=("+15555550199",),
                trunks=("carrier-a",),
                business="Acme 24h",
                link="",
                templates={"default": f"{{business}} will call you back. {STOP}"},
                path="templates.route[0].templates",
            ),
            Route(
                name="sales",
                dids=("+15555550100", "+15555550101"),
                path="templates.route[1].templates",
            ),
        )

    def test_multiline_text_trimmed(self, tmp_path: Path) -> None:
        """A multi-line string loses the blank lines around it but keeps its inner breaks."""
        text = MINIMAL + f'[templates]\ndefault = """\nHi from {{business}}.\n{STOP}\n"""\n'

        book = load(write(tmp_path, text)).templates

        assert book.templates["default"] == f"Hi from {{business}}.\n{STOP}"

    def test_gateway_secret_stays_hidden(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A provider gateway loads with its token from the environment, never shown."""
        monkeypatch.setenv("TEXTBACK_TEST_TOKEN", SECRET)
        sid = "AC" + "0" * 32
        text = MINIMAL + (
            f'[gateway]\nkind = "twilio"\naccount_sid = "{sid}"\nfrom = "+15555550100"\n'
            'auth_token_env = "TEXTBACK_TEST_TOKEN"\n'
        )

        config = load(write(tmp_path, text))

        assert config.gateway.name == "twilio"
        lines = summary(config)
        assert (
            f'gateway: twilio; account_sid = "{sid}"; from = "+15555550100"; '
            "auth_token from environment variable TEXTBACK_TEST_TOKEN; "
        ) in "\n".join(lines)
        assert SECRET not in "\n".join(lines)
        assert SECRET not in repr(config)
        assert SECRET not in str(config)


class TestGatewaySettings:
    def test_secrets_never_shown(self) -> None:
        """Anything that may be a credential is named without its value."""
        table = {
            "kind": "x",
            "url": "https://user:hunter2@sms.example/send",
            "api_key": "hunter2",
            "password_env": "SMS_PASSWORD",
            "token_env": "hunter2-not-a-name",
            "secret_file": "hunter2",
            "api_token_credential": "twilio-token",
            "auth_token_credential": "hunter2Xk9",
            "headers": {"Authorization": "Bearer hunter2"},
            "port": 587,
            "tags": ["a", "b"],
        }

        phrases = gateway_settings(table)

        assert phrases == (
            'url = "https://***@sms.example/send"',
            "api_key (set, not shown)",
            "password from environment variable SMS_PASSWORD",
            "token from environment variable",
            "secret from file",
            "api_token from systemd credential twilio-token",
            "auth_token from systemd credential",
            "headers with Authorization",
            "port = 587",
            'tags = ["a", "b"]',
        )
        assert "hunter2" not in " ".join(phrases)


class TestDeliverySummary:
    def test_example_lines(self) -> None:
        """check-config's summary has a line for policy, templates, sending and gateway."""
        lines = summary(load(EXAMPLE, require_secrets=False))

        text = "\n".join(lines)
        assert "policy: texts callers in CA, US; refuses PAGER, PREMIUM_RATE, " in text
        assert "one text per caller per 24 h; at most 30/hour and 200/day; " in text
        assert (
            "templates: default (1 segment), after_hours (1 segment), holiday (1 segment), "
            "voicemail (1 segment)"
        ) in lines
        assert (
            "sending: after 0 s grace, at any hour (zone America/New_York when the number's is "
            "unknown); dropped after 12 h; 5 attempts, retries 2-300 s apart"
        ) in lines
        assert lines[-1] == "gateway: console; crash mid-send: safe to retry"

    def test_routes_and_window(self, tmp_path: Path) -> None:
        """Routes get a line each; a window is shown in the caller's local time."""
        text = (
            MINIMAL
            + TEMPLATES
            + ROUTE
            + (
                'name = "sales"\ndids = ["+15555550100"]\nbusiness = "Beta"\n'
                f'templates = {{ default = "Hi from {{business}}. {STOP}" }}\n'
                '[sending]\nwindow = "09:00-20:00"\nmax_age_hours = 14\n'
            )
        )

        lines = summary(load(write(tmp_path, text)))

        assert (
            "template route sales: dids +15555550100; business Beta; texts default (1 segment)"
            in lines
        )
        assert any("between 09:00 and 20:00 caller's local time" in line for line in lines)


class TestLogTable:
    def test_defaults(self, tmp_path: Path) -> None:
        """Without [log], textback picks its format itself and logs at info."""
        config = load(write(tmp_path, MINIMAL))

        assert LogConfig(format="auto", level="info") == config.log
        assert (
            "logging: level info, format auto (console on a terminal, logfmt with journald "
            "priorities otherwise)"
        ) in summary(config)

    def test_json(self, tmp_path: Path) -> None:
        """format and level are read case-insensitively; json says what it writes."""
        config = load(write(tmp_path, MINIMAL + '[log]\nformat = "JSON"\nlevel = "Debug"\n'))

        assert LogConfig(format="json", level="debug") == config.log
        assert (
            "logging: level debug, format json (one JSON object per line, with a UTC timestamp)"
        ) in summary(config)

    def test_daemon_keeps_only_the_database(self, tmp_path: Path) -> None:
        """Both old [daemon] log keys are refused at once, with the new spelling for each."""
        text = MINIMAL + '[daemon]\nlog_format = "json"\nlog_level = "warning"\n'

        problems = problems_of(tmp_path, text)

        assert problems == [
            "daemon.log_format: unknown key — logging has its own table now: write "
            'format = "json" below a [log] line',
            "daemon.log_level: unknown key — logging has its own table now: write "
            'level = "warning" below a [log] line',
        ]


class TestMetricsTable:
    def test_absent(self, tmp_path: Path) -> None:
        """Without [metrics] there is no metrics server, and the summary says so."""
        config = load(write(tmp_path, MINIMAL))

        assert config.metrics is None
        assert "metrics: not configured (no [metrics] table): no /metrics or /healthz" in (
            summary(config)
        )

    def test_empty_table_is_loopback_default(self, tmp_path: Path) -> None:
        """An empty [metrics] serves on 127.0.0.1:9464, with no notice."""
        plain = load(write(tmp_path, MINIMAL))
        config = load(write(tmp_path, MINIMAL + "[metrics]\n"))

        assert config.metrics == MetricsConfig(host="127.0.0.1", port=9464)
        assert config.metrics.listen == "127.0.0.1:9464"
        assert config.notices == plain.notices
        assert "metrics: Prometheus /metrics and /healthz on http://127.0.0.1:9464" in (
            summary(config)
        )

    def test_ipv6(self, tmp_path: Path) -> None:
        """An IPv6 listen address is written in brackets and kept without them."""
        config = load(write(tmp_path, MINIMAL + '[metrics]\nlisten = "[::1]:9100"\n'))

        assert config.metrics == MetricsConfig(host="::1", port=9100)
        assert config.metrics.listen == "[::1]:9100"

    def test_not_loopback_is_a_notice(self, tmp_path: Path) -> None:
        """Listening beyond this machine loads, with a notice that nothing asks for a login."""
        config = load(write(tmp_path, MINIMAL + '[metrics]\nlisten = "0.0.0.0:9464"\n'))

        [notice] = [n for n in config.notices if n.startswith("metrics")]
        assert notice.startswith(
            'metrics.listen: "0.0.0.0:9464" is reachable from other machines, and /metrics and '
            "/healthz ask for no login — "
        )

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                'listen = "9464"',
                'metrics.listen: expected "host:port", got "9464" — e.g. "127.0.0.1:9464" '
                '(or "[::1]:9464" for IPv6)',
            ),
            (
                'listen = "127.0.0.1:99999"',
                "metrics.listen: port 99999 is not from 1 to 65535 — e.g. 127.0.0.1:9464",
            ),
            (
                "port = 9100",
                "metrics.port: unknown key — write host:port in listen, e.g. "
                'listen = "127.0.0.1:9464"',
            ),
            (
                "enabled = true",
                "metrics.enabled: unknown key — the [metrics] table itself turns the metrics "
                "server on — remove it",
            ),
        ],
    )
    def test_problems(self, tmp_path: Path, text: str, expected: str) -> None:
        """Each mistake in [metrics] is one line naming the key and the fix."""
        assert problems_of(tmp_path, MINIMAL + f"[metrics]\n{text}\n") == [expected]

    def test_listen_at_top_level(self, tmp_path: Path) -> None:
        """A listen above every table points at both tables that take one."""
        [problem] = problems_of(tmp_path, 'listen = "127.0.0.1:9464"\n' + MINIMAL)

        assert problem.startswith("listen: unknown top-level key — it belongs in the [web] or ")


ROI = "[roi]\n"


class TestRoiTable:
    def test_absent_is_defaults_with_a_notice(self, tmp_path: Path) -> None:
        """Without [roi] the defaults apply, and check-config asks for average_job_value."""
        config = load(write(tmp_path, MINIMAL))

        assert RoiConfig() == config.roi
        assert (
            config.roi.average_job_value,
            config.roi.close_rate,
            config.roi.sms_segment_price,
            config.roi.currency,
            config.roi.recovered_days,
        ) == (0.0, 0.3, 0.0079, "$", 7)
        assert config.notices[-1] == (
            "roi: there is no [roi] table, so textback stats counts recovered callers but shows "
            "no money — add [roi] with average_job_value to what a typical job is worth "
            "(e.g. 250) to see money in textback stats"
        )

    def test_everything_set(self, tmp_path: Path) -> None:
        """Every [roi] key reaches RoiConfig; a job value set means no notice."""
        text = (
            ROI + "average_job_value = 350\nclose_rate = 0.25\nsms_segment_price = 0.01\n"
            'currency = "CHF"\nrecovered_days = 14\n'
        )

        config = load(write(tmp_path, MINIMAL + text))

        assert config.roi == RoiConfig(
            average_job_value=350.0,
            close_rate=0.25,
            sms_segment_price=0.01,
            currency="CHF",
            recovered_days=14,
        )
        assert not [n for n in config.notices if n.startswith("roi")]
        assert (
            "roi: a recovered caller books a CHF 350.00 job 25% of the time; SMS CHF 0.0100 per "
            "segment; recovered means back within 14 days"
        ) in summary(config)

    def test_zero_value_in_the_table(self, tmp_path: Path) -> None:
        """average_job_value = 0 written out gets the notice naming the key, and the summary."""
        config = load(write(tmp_path, MINIMAL + ROI + "average_job_value = 0\n"))

        assert config.notices[-1].startswith("roi.average_job_value: is 0, so textback stats ")
        assert (
            "roi: no average_job_value: stats count recovered callers without money; SMS $0.0079 "
            "per segment; recovered means back within 7 days"
        ) in summary(config)

    def test_price_in_cents_is_a_notice(self, tmp_path: Path) -> None:
        """A segment price above 1 loads, with a notice that it is per segment in whole units."""
        config = load(
            write(tmp_path, MINIMAL + ROI + "average_job_value = 1\nsms_segment_price = 0.79\n")
        )
        assert not [n for n in config.notices if n.startswith("roi")]

        config = load(
            write(tmp_path, MINIMAL + ROI + "average_job_value = 1\nsms_segment_price = 79\n")
        )
        [notice] = [n for n in config.notices if n.startswith("roi")]
        assert notice.startswith(
            "roi.sms_segment_price: $79.0000 per SMS segment is far more than providers charge — "
        )

    @pytest.mark.parametrize(
        ("text", "key", "fragment"),
        [
            ("average_job_value = -5", "average_job_value", "expected a number of at least 0"),
            ('average_job_value = "250"', "average_job_value", 'got "250"'),
            ("close_rate = 30", "close_rate", "got 30 — write 0.3 for 30%"),
            ("close_rate = 1.5", "close_rate", "got 1.5 — write 0.015 for 1.5%"),
            ("close_rate = -0.1", "close_rate", "expected a fraction from 0 to 1, got -0.1"),
            ("close_rate = 250", "close_rate", "expected a fraction from 0 to 1, got 250"),
            ("sms_segment_price = true", "sms_segment_price", "got true"),
            ("sms_segment_price = -0.01", "sms_segment_price", "at least 0"),
            ('currency = ""', "currency", "expected a non-empty string"),
            ('currency = "US dollars"', "currency", "up to 8 characters on one line"),
            ('currency = "$\\n"', "currency", "up to 8 characters on one line"),
            ("recovered_days = 0", "recovered_days", "from 1 to 60, got 0"),
            ("recovered_days = 61", "recovered_days", "from 1 to 60, got 61"),
            ("recovered_days = 7.5", "recovered_days", "got 7.5"),
            ("job_value = 250", "job_value", 'did you mean "average_job_value"?'),
        ],
    )
    def test_problems(self, tmp_path: Path, text: str, key: str, fragment: str) -> None:
        """Each mistake in [roi] is one line naming the key and the fix."""
        [problem] = problems_of(tmp_path, MINIMAL + ROI + text + "\n")

        assert problem.startswith(f"roi.{key}: ")
        assert fragment in problem
        assert " — " in problem

    def test_roi_key_at_top_level(self, tmp_path: Path) -> None:
        """An ROI key above every table points at [roi]."""
        [problem] = problems_of(tmp_path, "average_job_value = 250\n" + MINIMAL)

        assert problem == (
            "average_job_value: unknown top-level key — it belongs in the [roi] table; move it "
            "below the [roi] line"
        )

    @pytest.mark.parametrize(
        ("currency", "amount", "places", "shown"),
        [
            ("$", 1234.5, 2, "$1,234.50"),
            ("$", -3, 2, "-$3.00"),
            ("€", 0.0079, 4, "€0.0079"),
            ("CHF", 12, 2, "CHF 12.00"),
        ],
    )
    def test_money(self, currency: str, amount: float, places: int, shown: str) -> None:
        """money() puts the currency before the amount, a code with a space, a sign first."""
        assert RoiConfig(currency=currency).money(amount, places=places) == shown


class TestCredentials:
    @pytest.fixture
    def creds(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        directory = tmp_path / "credentials"
        directory.mkdir()
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
        return directory

    def test_ami_secret(self, tmp_path: Path, creds: Path) -> None:
        """secret_credential reads the AMI secret systemd loaded, and the summary names it."""
        (creds / "ami-secret").write_text(SECRET + "\n")

        config = load(write(tmp_path, MINIMAL + '[asterisk]\nsecret_credential = "ami-secret"\n'))

        assert config.asterisk is not None
        assert config.asterisk.secret == Secret(SECRET)
        assert config.asterisk.secret_source == "systemd credential ami-secret"
        text = "\n".join(summary(config))
        assert "secret from systemd credential ami-secret," in text
        assert SECRET not in text

    def test_esl_password(self, tmp_path: Path, creds: Path) -> None:
        """password_credential reads the event socket password the same way."""
        (creds / "esl-password").write_text(SECRET)

        config = load(
            write(tmp_path, FS_MINIMAL + '[freeswitch]\npassword_credential = "esl-password"\n')
        )

        assert config.freeswitch is not None
        assert config.freeswitch.password == Secret(SECRET)
        assert "password from systemd credential esl-password" in "\n".join(summary(config))

    def test_not_loaded_is_one_problem(self, tmp_path: Path, creds: Path) -> None:
        """A credential the unit does not load is one line under the key that names it."""
        [problem] = problems_of(
            tmp_path,
            MINIMAL + '[asterisk]\nsecret_credential = "ami-secret"\n',
            require_secrets=True,
        )

        assert problem.startswith(
            "asterisk.secret_credential: systemd credential ami-secret is not loaded — add "
            "LoadCredential=ami-secret:/etc/textback/ami-secret to the unit"
        )

    @pytest.mark.parametrize(
        "kind",
        ["twilio", "signalwire", "telnyx", "vonage", "plivo", "voipms", "webhook", "smtp"],
    )
    def test_every_gateway_secret(self, tmp_path: Path, creds: Path, kind: str) -> None:
        """Each gateway example loads with every _env/_file secret turned into a credential."""
        text = EXAMPLE.read_text()
        [block] = re.findall(rf'^# \[gateway\]\n# kind = "{kind}"\n(?:# .*\n)*', text, re.M)
        block = re.sub("^# ", "", block, flags=re.M)
        keys = re.findall(r"^(\w+)_(?:env|file) = ", block, re.M)
        assert keys
        for key in keys:
            (creds / key).write_text(f"{key}-{'x' * 24}\n")  # long enough for a URL token
        block = re.sub(r"^(\w+)_(?:env|file) = .*$", r'\1_credential = "\1"', block, flags=re.M)
        active = '\n[gateway]\nkind = "console"\n'
        text = text.replace(active, "\n" + block).replace(
            'secret_env = "TEXTBACK_AMI_SECRET"', 'secret_credential = "ami-secret"'
        )
        (creds / "ami-secret").write_text(SECRET)

        config = load(write(tmp_path, text))

        assert config.gateway.name == kind
        assert [f"{key} from systemd credential {key}" for key in keys] == [
            phrase for phrase in config.gateway_settings if "credential" in phrase
        ]
