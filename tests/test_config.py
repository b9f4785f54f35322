from __future__ import annotations

import dataclasses
import re
from datetime import date
from pathlib import Path

import pytest

from textback.config import (
    AsteriskConfig,
    BusinessConfig,
    Config,
    CorrelationConfig,
    DaemonConfig,
    load,
    summary,
)
from textback.errors import ConfigError
from textback.tomltable import Secret

EXAMPLE = Path(__file__).parent.parent / "textback.example.toml"
SECRET = "pa55-w0rd-do-not-print"

BUSINESS = '[business]\nname = "Acme"\n'
TRUNK = '[trunks.carrier-a]\nchannels = ["PJSIP/carrier-a-*"]\n'
MINIMAL = BUSINESS + TRUNK


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
        assert [t.name for t in config.trunks.trunks] == ["carrier-a", "carrier-b"]
        assert CorrelationConfig() == config.correlation
        assert config.hours is not None
        assert config.hours.timezone == "America/New_York"
        assert config.hours.weekly == ((((8 * 60, 18 * 60),),) * 5 + ((), ()))
        assert frozenset({date(2026, 12, 25), date(2027, 1, 1)}) == config.hours.holidays

    def test_trunks_match_lab_channels(self) -> None:
        """The example's trunks claim the lab's carrier channels and not its desk phones."""
        trunks = load(EXAMPLE, require_secrets=False).trunks

        assert getattr(trunks.by_channel("SIP/carrier-a-0000000b"), "name", None) == "carrier-a"
        assert getattr(trunks.by_channel("PJSIP/carrier-b-00000003"), "name", None) == "carrier-b"
        assert trunks.by_channel("SIP/101-0000000c") is None
        assert trunks.by_channel("PJSIP/102-00000004") is None

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
            ("[business]", {f.name for f in dataclasses.fields(BusinessConfig)}),
            (
                "[asterisk]",
                {f.name for f in dataclasses.fields(AsteriskConfig)} - {"secret", "secret_source"}
                | {"secret_env", "secret_file"},
            ),
            ("[trunks.carrier-a]", {"channels", "country"}),
            ("# [trunks.pstn]", {"contexts", "country"}),
            ("[correlation]", {f.name for f in dataclasses.fields(CorrelationConfig)}),
            ("[hours]", {"timezone", "mon", "tue", "wed", "thu", "fri", "sat", "sun", "holidays"}),
        ],
    )
    def test_documents_every_key(self, header: str, keys: set[str]) -> None:
        """Every setting appears in the example under its table, set or commented out."""
        section = EXAMPLE.read_text().split(f"\n{header}\n", 1)[1].split("\n[", 1)[0]

        missing = {k for k in keys if not re.search(rf"^(# )?{k} = ", section, re.MULTILINE)}

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
    ("key-outside-table", 'host = "pbx"\n' + MINIMAL, "host", "belongs in the [asterisk] table"),
    ("table-not-table", "daemon = 5\n" + MINIMAL, "daemon", "expected a [daemon] table, got 5"),
    ("db-tilde", MINIMAL + '[daemon]\ndatabase = "~/tb.db"\n', "daemon.database", "uses ~"),
    ("db-dir", MINIMAL + '[daemon]\ndatabase = "."\n', "daemon.database", "names a directory"),
    ("db-type", MINIMAL + "[daemon]\ndatabase = 3\n", "daemon.database", "got 3"),
    (
        "log-level",
        MINIMAL + '[daemon]\nlog_level = "inf"\n',
        "daemon.log_level",
        'expected one of "debug", "info", "warning", "error", got "inf" — did you mean "info"?',
    ),
    ("log-format", MINIMAL + '[daemon]\nlog_format = "json"\n', "daemon.log_format", '"logfmt"'),
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
        'no channels or contexts — add channels = ["PJSIP/carrier-a-*"]',
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
            '[daemon]\nlog_level = "loud"\n'
            "[business]\n"
            '[asterisk]\nport = 70000\nsecret = "x"\n'
            '[trunks.a]\nchannels = ["PJSIP/*"]\n'
            "[correlation]\ngrace_seconds = -1\n"
            '[hours]\ntimezone = "Mars/Olympus"\nmon = ["08:00-18:00"]\n'
        )

        problems = problems_of(tmp_path, text)

        assert [p.split(": ", 1)[0] for p in problems] == [
            "daemon.log_level",
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
        assert "trunk carrier-a: channels SIP/carrier-a-*, PJSIP/carrier-a-*; country US" in lines
        assert "trunk carrier-b: channels SIP/carrier-b-*, PJSIP/carrier-b-*; country US" in lines
        assert "AMI 127.0.0.1:5038 as user textback" in text
        assert "secret from environment variable TEXTBACK_AMI_SECRET," in text
        assert "database: /var/lib/textback/textback.db" in lines
        assert "hours: America/New_York; mon-fri 08:00-18:00; sat-sun closed" in text
        assert "business: Acme Plumbing (booking link https://acme.example/book)" in lines

    def test_minimal_config(self, tmp_path: Path) -> None:
        """Without [asterisk] or [hours] the summary says they are not configured."""
        lines = summary(load(write(tmp_path, MINIMAL)))

        assert "asterisk: not configured (no [asterisk] table)" in lines
        assert "hours: not configured (no [hours] table)" in lines
