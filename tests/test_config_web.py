"""The [web] and [notify] tables, and inbox password hashes."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest

from textback.config import Config, load, summary
from textback.config_web import (
    NOTIFY_KEYS,
    WEB_KEYS,
    NotifyConfig,
    WebConfig,
    WebUser,
    authenticate,
    hash_password,
    password_hash_problem,
    verify_password,
)
from textback.errors import ConfigError
from textback.tomltable import Secret

EXAMPLE = Path(__file__).parent.parent / "textback.example.toml"
MINIMAL = '[business]\nname = "Acme"\n[trunks.carrier-a]\nchannels = ["PJSIP/carrier-a-*"]\n'
PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD)  # one scrypt run for the whole module
SECRET = "k" * 40 + "-do-not-print"
PUBLIC = '"https://textback.example.com"'
USER = f'[[web.users]]\nname = "alice"\npassword_hash = "{HASH}"\n'


def toml_table(name: str, keys: dict[str, str | None], base: dict[str, str]) -> str:
    """[name] with ``base`` keys, each overridden (or, with None, removed) by ``keys``."""
    merged = {**base, **keys}
    return f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in merged.items() if v is not None)


def web(users: str = USER, /, **keys: str | None) -> str:
    return toml_table("web", keys, {"public_url": PUBLIC}) + users


def notify(**keys: str | None) -> str:
    return toml_table("notify", keys, {"webhook_url": '"https://crm.example.com/hooks/t"'})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "textback.toml"
    path.write_text(text)
    return path


def loaded(tmp_path: Path, text: str, *, require_secrets: bool = True) -> Config:
    return load(write(tmp_path, MINIMAL + text), require_secrets=require_secrets)


def ours(config: Config) -> list[str]:
    """The notices about [web] and [notify] (the minimal file has a template notice too)."""
    return [notice for notice in config.notices if notice.startswith(("web", "notify"))]


def problems_of(tmp_path: Path, text: str, *, require_secrets: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, MINIMAL + text), require_secrets=require_secrets)
    return info.value.problems


def scrypt_hash(password: str, *, n: int, r: int = 8, p: int = 1, salt: bytes = b"s" * 16) -> str:
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


class TestPasswords:
    def test_round_trip(self) -> None:
        """A hash made by hash_password verifies with the same password."""
        assert verify_password(PASSWORD, HASH)

    def test_wrong_password(self) -> None:
        """Another password, or the right one in another case, does not verify."""
        assert not verify_password("correct horse battery stapler", HASH)
        assert not verify_password(PASSWORD.upper(), HASH)
        assert not verify_password("", HASH)

    def test_shape(self) -> None:
        """The hash is scrypt$16384$8$1$salt$hash with a 16-byte salt and a 32-byte hash."""
        kind, n, r, p, salt, digest = HASH.split("$")

        assert (kind, n, r, p) == ("scrypt", "16384", "8", "1")
        assert len(base64.b64decode(salt)) == 16
        assert len(base64.b64decode(digest)) == 32
        assert password_hash_problem(HASH) is None

    def test_fresh_salt_each_time(self) -> None:
        """Two hashes of one password differ, and both verify."""
        other = hash_password(PASSWORD)

        assert other != HASH
        assert verify_password(PASSWORD, other)

    def test_parameters_come_from_the_hash(self) -> None:
        """A hash made with other scrypt costs verifies: N, r and p are read from it."""
        stored = scrypt_hash("pw", n=2**10, r=4, p=2)

        assert verify_password("pw", stored)
        assert not verify_password("pw2", stored)

    def test_empty_password_refused(self) -> None:
        """hash_password refuses an empty password."""
        with pytest.raises(ValueError, match="empty"):
            hash_password("")

    @pytest.mark.parametrize(
        ("stored", "fragment"),
        [
            ("", "not a textback password hash"),
            ("bcrypt$2b$12$abc", "not a textback password hash"),
            ("scrypt$16384$8$1$c2FsdA==", "not a textback password hash"),
            ("scrypt$x$8$1$c2FsdA==$" + "A" * 44, "N, r and p must be whole numbers"),
            ("scrypt$16000$8$1$c2FsdA==$" + "A" * 44, "N (16000) must be a power of two"),
            ("scrypt$1$8$1$c2FsdA==$" + "A" * 44, "N (1) must be a power of two"),
            ("scrypt$2097152$8$1$c2FsdA==$" + "A" * 44, "is beyond N=1048576"),
            ("scrypt$16384$0$1$c2FsdA==$" + "A" * 44, "is beyond"),
            ("scrypt$16384$8$1$not base64!$" + "A" * 44, "not base64"),
            ("scrypt$16384$8$1$$" + "A" * 44, "not base64"),
            ("scrypt$16384$8$1$c2FsdA==$AAAA", "too short"),
        ],
    )
    def test_bad_hashes(self, stored: str, fragment: str) -> None:
        """A malformed hash has a problem saying what is wrong and how to fix it; never verifies."""
        problem = password_hash_problem(stored)

        assert problem is not None
        assert fragment in problem
        assert "`textback passwd`" in problem
        assert not verify_password(PASSWORD, stored)

    def test_authenticate(self) -> None:
        """authenticate returns the user only for their own password; unknown names get None."""
        users = (WebUser("alice", HASH), WebUser("bob", scrypt_hash("bob-pw", n=2**10)))

        assert authenticate(users, "alice", PASSWORD) == users[0]
        assert authenticate(users, "bob", "bob-pw") == users[1]
        assert authenticate(users, "alice", "bob-pw") is None
        assert authenticate(users, "carol", PASSWORD) is None
        assert authenticate(users, "ALICE", PASSWORD) is None

    def test_user_repr_hides_the_hash(self) -> None:
        """A WebUser's repr does not carry its password hash."""
        assert HASH not in repr(WebUser("alice", HASH))


class TestWebValid:
    def test_defaults(self, tmp_path: Path) -> None:
        """A [web] table with public_url and one user gets the documented defaults."""
        config = loaded(tmp_path, web())

        w = config.web
        assert w is not None
        assert (w.host, w.port, w.listen) == ("127.0.0.1", 8080, "127.0.0.1:8080")
        assert w.public_url == "https://textback.example.com"
        assert (w.session_hours, w.session_seconds, w.login_rate) == (12.0, 43200.0, 5)
        assert w.users == (WebUser("alice", HASH),)
        assert w.secure_cookies
        assert ours(config) == []

    def test_no_table_no_server(self, tmp_path: Path) -> None:
        """Without [web] or [notify] both are None."""
        config = loaded(tmp_path, "")

        assert (config.web, config.notify) == (None, None)

    def test_everything_set(self, tmp_path: Path) -> None:
        """Every key is read: IPv6 listen, trailing slash dropped, hours, rate, users."""
        users = USER + '[[web.users]]\nname = "bob.smith@acme"\npassword_hash = "' + HASH + '"\n'
        text = web(
            users,
            listen='"[::1]:8443"',
            public_url='"http://127.0.0.1:8443/textback/"',
            session_hours="0.5",
            login_rate="10",
        )

        config = loaded(tmp_path, text)

        w = config.web
        assert w is not None
        assert (w.host, w.port, w.listen) == ("::1", 8443, "[::1]:8443")
        assert w.public_url == "http://127.0.0.1:8443/textback"
        assert w.url("/hooks/twilio/inbound") == (
            "http://127.0.0.1:8443/textback/hooks/twilio/inbound"
        )
        assert not w.secure_cookies
        assert (w.session_hours, w.login_rate) == (0.5, 10)
        assert [u.name for u in w.users] == ["alice", "bob.smith@acme"]
        assert ours(config) == []

    @pytest.mark.parametrize(
        ("web_listen", "metrics_listen"),
        [
            ('"127.0.0.1:9464"', None),
            ('"127.0.0.1:9100"', '"127.0.0.1:9100"'),
            ('"0.0.0.0:9100"', '"127.0.0.1:9100"'),
            ('"127.0.0.1:9100"', '"0.0.0.0:9100"'),
        ],
    )
    def test_metrics_on_the_web_port(
        self, tmp_path: Path, web_listen: str, metrics_listen: str | None
    ) -> None:
        """[metrics] and [web] on one port is one problem under metrics.listen."""
        metrics = "[metrics]\n" + (f"listen = {metrics_listen}\n" if metrics_listen else "")

        problems = problems_of(tmp_path, web(listen=web_listen) + metrics)

        [problem] = problems
        assert problem.startswith("metrics.listen: ")
        assert "is where [web] listens too — give the metrics server a port of its own" in problem

    def test_metrics_beside_web(self, tmp_path: Path) -> None:
        """Another port, or another address on the same port, is no clash."""
        for metrics in ('listen = "127.0.0.1:8081"', 'listen = "127.0.0.2:8080"'):
            config = loaded(tmp_path, web() + f"[metrics]\n{metrics}\n")
            assert config.metrics is not None
            assert config.web is not None

    def test_not_loopback_is_a_notice(self, tmp_path: Path) -> None:
        """Listening on all addresses loads, with a notice to put a reverse proxy in front."""
        config = loaded(tmp_path, web(listen='"0.0.0.0:8080"'))

        [notice] = ours(config)
        assert notice.startswith('web.listen: "0.0.0.0:8080" is reachable from other machines')
        assert "reverse proxy" in notice

    def test_plain_http_public_url_is_a_notice(self, tmp_path: Path) -> None:
        """An http:// public_url off this machine loads, with a notice to use https."""
        config = loaded(tmp_path, web(public_url='"http://textback.example.com"'))

        [notice] = ours(config)
        assert notice.startswith('web.public_url: "http://textback.example.com" is plain http')


WEB_ERRORS = [
    # id, [web] overrides, key, fragment
    ("listen-no-port", {"listen": '"127.0.0.1"'}, "web.listen", 'expected "host:port"'),
    ("listen-int", {"listen": "8080"}, "web.listen", "expected a non-empty string"),
    ("listen-v6-bare", {"listen": '"::1:8080"'}, "web.listen", "IPv6 address goes in brackets"),
    ("listen-port-0", {"listen": '"127.0.0.1:0"'}, "web.listen", "port 0 is not from 1 to 65535"),
    ("listen-port-big", {"listen": '"127.0.0.1:70000"'}, "web.listen", "not from 1 to 65535"),
    ("listen-space", {"listen": '"my host:80"'}, "web.listen", "not a host name or address"),
    ("url-missing", {"public_url": None}, "web.public_url", "missing — "),
    ("url-ftp", {"public_url": '"ftp://x.example"'}, "web.public_url", "not an http:// or"),
    ("url-query", {"public_url": '"https://x.example/?a=1"'}, "web.public_url", "?query"),
    ("url-user", {"public_url": '"https://u:pw@x.example"'}, "web.public_url", "user name"),
    ("url-space", {"public_url": '"https://x.example/a b"'}, "web.public_url", "whitespace"),
    ("hours-0", {"session_hours": "0"}, "web.session_hours", "a number of hours from 0 to 720"),
    ("hours-str", {"session_hours": '"12"'}, "web.session_hours", 'got "12"'),
    ("hours-big", {"session_hours": "1000"}, "web.session_hours", "from 0 to 720"),
    ("rate-0", {"login_rate": "0"}, "web.login_rate", "a whole number from 1 to 1000"),
    ("rate-float", {"login_rate": "2.5"}, "web.login_rate", "got 2.5"),
    ("rate-bool", {"login_rate": "true"}, "web.login_rate", "got true"),
    ("unknown-port", {"port": "8080"}, "web.port", 'listen = "127.0.0.1:8080"'),
    ("unknown-url", {"url": PUBLIC}, "web.url", "did you mean public_url?"),
]


class TestWebProblems:
    @pytest.mark.parametrize(
        ("overrides", "key", "fragment"),
        [case[1:] for case in WEB_ERRORS],
        ids=[case[0] for case in WEB_ERRORS],
    )
    def test_one_line_naming_the_key(
        self, tmp_path: Path, overrides: dict[str, str | None], key: str, fragment: str
    ) -> None:
        """Each mistake in [web] is one line naming its key and the fix."""
        [problem] = problems_of(tmp_path, web(**overrides))

        assert problem.startswith(f"{key}: ")
        assert fragment in problem
        assert " — " in problem

    @pytest.mark.parametrize(
        ("users", "key", "fragment"),
        [
            ("", "web.users", "no inbox user — add a [[web.users]] table"),
            ("users = []\n", "web.users", "expected [[web.users]] tables"),
            ('users = ["alice"]\n', "web.users[0]", 'expected a [[web.users]] table, got "alice"'),
            (
                f'[web.users]\nname = "alice"\npassword_hash = "{HASH}"\n',
                "web.users",
                "is a single [web.users] table — write [[web.users]]",
            ),
            (f'[[web.users]]\npassword_hash = "{HASH}"\n', "web.users[0].name", "missing — "),
            ('[[web.users]]\nname = "alice"\n', "web.users[0].password_hash", "`textback passwd`"),
            (
                f'[[web.users]]\nname = "al ice"\npassword_hash = "{HASH}"\n',
                "web.users[0].name",
                "no spaces",
            ),
            (
                USER + f'[[web.users]]\nname = "Alice"\npassword_hash = "{HASH}"\n',
                "web.users[1].name",
                '"Alice" is already used by web.users[0]',
            ),
            (
                '[[web.users]]\nname = "alice"\npassword_hash = "hunter2"\n',
                "web.users[0].password_hash",
                "not a textback password hash",
            ),
            (
                '[[web.users]]\nname = "alice"\npassword_hash = "scrypt$1000$8$1$c2FsdA==$'
                + "A" * 44
                + '"\n',
                "web.users[0].password_hash",
                "N (1000) must be a power of two",
            ),
            (
                f'[[web.users]]\nname = "alice"\npassword_hash = "{HASH}"\npassword = "hunter2"\n',
                "web.users[0].password",
                "the password itself never goes in this file",
            ),
            (
                f'[[web.users]]\nuser = "alice"\nname = "a"\npassword_hash = "{HASH}"\n',
                "web.users[0].user",
                "did you mean name?",
            ),
        ],
        ids=[
            "missing",
            "empty",
            "not-tables",
            "single-bracket",
            "no-name",
            "no-hash",
            "bad-name",
            "duplicate",
            "plain-password",
            "n-not-power-of-two",
            "inline-password",
            "user-key",
        ],
    )
    def test_users(self, tmp_path: Path, users: str, key: str, fragment: str) -> None:
        """Each mistake in [[web.users]] is one line naming the user's key; no password echoed."""
        [problem] = problems_of(tmp_path, web(users))

        assert problem.startswith(f"{key}: ")
        assert fragment in problem
        assert "hunter2" not in problem

    def test_password_in_web_table(self, tmp_path: Path) -> None:
        """A password written in [web] is refused, pointing at password_hash, without echo."""
        [problem] = problems_of(tmp_path, web(password='"hunter2"'))

        assert problem.startswith("web.password: unknown key — passwords never go in this file")
        assert "`textback passwd`" in problem
        assert "hunter2" not in problem

    @pytest.mark.parametrize("key", ["cookie_secret", "cookie_secret_env", "cookie_secret_file"])
    def test_cookie_secret_not_needed(self, tmp_path: Path, key: str) -> None:
        """A cookie secret key, inline or _env/_file, is unknown: sessions live in memory."""
        [problem] = problems_of(tmp_path, web(**{key: f'"{SECRET}"'}))

        assert problem == (
            f"web.{key}: unknown key — not needed: sessions are kept in memory and end when "
            "textback restarts"
        )
        assert SECRET not in problem

    def test_web_not_a_table(self, tmp_path: Path) -> None:
        """web = "..." is one problem asking for a [web] table."""
        [problem] = problems_of_text(tmp_path, 'web = "on"\n' + MINIMAL)

        assert problem.startswith("web: expected a [web] table")

    def test_top_level_key_points_at_its_table(self, tmp_path: Path) -> None:
        """public_url above every header is reported as belonging in [web]."""
        [problem] = problems_of_text(tmp_path, f"public_url = {PUBLIC}\n" + MINIMAL)

        assert problem == (
            "public_url: unknown top-level key — it belongs in the [web] table; "
            "move it below the [web] line"
        )


def problems_of_text(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), require_secrets=False)
    return info.value.problems


class TestNotifyValid:
    def test_email(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """E-mail settings are read; the port follows smtp_tls; the password comes by reference."""
        monkeypatch.setenv("TB_SMTP", SECRET)
        text = web() + toml_table(
            "notify",
            {
                "email_to": '["office@acme.example", "Bob <bob@acme.example>"]',
                "smtp_host": '"smtp.example.com"',
                "smtp_tls": '"implicit"',
                "smtp_username": '"textback@acme.example"',
                "smtp_password_env": '"TB_SMTP"',
                "from_address": '"textback <textback@acme.example>"',
            },
            {},
        )

        n = loaded(tmp_path, text).notify

        assert n is not None
        assert n.email_to == ("office@acme.example", "Bob <bob@acme.example>")
        assert (n.smtp_host, n.smtp_port, n.smtp_tls) == ("smtp.example.com", 465, "implicit")
        assert (n.smtp_username, n.smtp_password) == ("textback@acme.example", Secret(SECRET))
        assert n.from_address == "textback <textback@acme.example>"
        assert n.webhook_url == ""

    def test_defaults(self, tmp_path: Path) -> None:
        """A [notify] with only webhook_url gets the documented defaults."""
        config = loaded(tmp_path, web() + notify())

        n = config.notify
        assert n is not None
        assert n.webhook_url == "https://crm.example.com/hooks/t"
        assert n.webhook_secret is None
        assert (n.on_missed_call, n.urgent_keywords, n.on_call) == (False, ("URGENT",), ())
        assert (n.retry_attempts, n.retry_base_seconds, n.timeout) == (5, 2.0, 10.0)
        assert (n.smtp_port, n.smtp_tls) == (587, "starttls")
        assert n == NotifyConfig(webhook_url="https://crm.example.com/hooks/t")
        assert ours(config) == []

    def test_everything_else(self, tmp_path: Path) -> None:
        """Webhook secret file, missed calls, keywords, on-call numbers and retry settings."""
        (tmp_path / "hook-secret").write_text(SECRET)
        text = web() + notify(
            webhook_secret_file='"hook-secret"',
            on_missed_call="true",
            urgent_keywords='["URGENT", "emergency", "no heat"]',
            on_call='["+15555550123", "+442071838750"]',
            retry_attempts="3",
            retry_base_seconds="0.5",
            timeout="2.5",
        )

        n = loaded(tmp_path, text).notify

        assert n is not None
        assert n.webhook_secret == Secret(SECRET)
        assert n.webhook_secret_source == f"file {tmp_path / 'hook-secret'}"
        assert n.on_missed_call
        assert n.urgent_keywords == ("URGENT", "emergency", "no heat")
        assert n.on_call == ("+15555550123", "+442071838750")
        assert (n.retry_attempts, n.retry_base_seconds, n.timeout) == (3, 0.5, 2.5)

    def test_on_call_alone_is_enough(self, tmp_path: Path) -> None:
        """on_call without e-mail or webhook is a valid [notify]."""
        n = loaded(tmp_path, web() + notify(webhook_url=None, on_call='["+15555550123"]')).notify

        assert n is not None
        assert n.on_call == ("+15555550123",)

    def test_without_web_is_a_notice(self, tmp_path: Path) -> None:
        """[notify] without [web] loads, with a notice that no reply can arrive to forward."""
        config = loaded(tmp_path, notify())

        [notice] = ours(config)
        assert notice.startswith("notify: there is no [web] table, so textback receives no ")
        assert "nothing is ever sent" in notice

    def test_without_web_missed_calls_still_go(self, tmp_path: Path) -> None:
        """Without [web], on_missed_call = true is said to be all that is sent."""
        [notice] = ours(loaded(tmp_path, notify(on_missed_call="true")))

        assert notice.endswith("only missed calls are sent")

    def test_plain_http_webhook_is_a_notice(self, tmp_path: Path) -> None:
        """An http:// webhook off this machine loads, with a notice to use https."""
        config = loaded(tmp_path, web() + notify(webhook_url='"http://crm.example.com/h"'))

        [notice] = ours(config)
        assert notice.startswith("notify.webhook_url: plain http")

    def test_empty_keywords_with_on_call_is_a_notice(self, tmp_path: Path) -> None:
        """urgent_keywords = [] with on_call numbers loads, with a notice they are never texted."""
        text = web() + notify(urgent_keywords="[]", on_call='["+15555550123"]')

        [notice] = ours(loaded(tmp_path, text))

        assert notice.startswith("notify.urgent_keywords: is empty")

    def test_smtp_without_email_to_is_a_notice(self, tmp_path: Path) -> None:
        """SMTP settings with no email_to load, with a notice that no mail is sent."""
        [notice] = ours(loaded(tmp_path, web() + notify(smtp_host='"smtp.example.com"')))

        assert notice.startswith("notify: SMTP settings are set but email_to is empty")


NOTIFY_ERRORS = [
    # id, [notify] overrides, key, fragment
    ("nothing", {"webhook_url": None}, "notify", "nothing to notify"),
    ("email-string", {"email_to": '"a@b.example"'}, "notify.email_to", "wrap it in brackets"),
    ("email-bad", {"email_to": '["office"]'}, "notify.email_to[0]", "is not an e-mail address"),
    ("tls", {"smtp_tls": '"ssl"'}, "notify.smtp_tls", 'expected one of "starttls"'),
    ("port", {"smtp_port": "0"}, "notify.smtp_port", "an integer from 1 to 65535"),
    ("host-space", {"smtp_host": '"smtp example"'}, "notify.smtp_host", "contains whitespace"),
    ("user-int", {"smtp_username": "5"}, "notify.smtp_username", "expected a non-empty string"),
    ("from-bad", {"from_address": '"textback"'}, "notify.from_address", "not an e-mail address"),
    ("url-ftp", {"webhook_url": '"ftp://x.example"'}, "notify.webhook_url", "not an http://"),
    ("missed-str", {"on_missed_call": '"yes"'}, "notify.on_missed_call", "expected true or"),
    ("kw-punct", {"urgent_keywords": '["!!!"]'}, "notify.urgent_keywords[0]", "whole"),
    ("kw-string", {"urgent_keywords": '"URGENT"'}, "notify.urgent_keywords", "wrap it"),
    ("oncall-spaces", {"on_call": '["+1 555 555 0123"]'}, "notify.on_call[0]", '"+15555550123"'),
    ("oncall-national", {"on_call": '["5555550123"]'}, "notify.on_call[0]", "not an E.164"),
    ("oncall-short", {"on_call": '["+1555555"]'}, "notify.on_call[0]", "not a possible"),
    ("attempts-0", {"retry_attempts": "0"}, "notify.retry_attempts", "from 1 to 20"),
    ("base-0", {"retry_base_seconds": "0"}, "notify.retry_base_seconds", "from 0 to 3600"),
    ("timeout-0", {"timeout": "0"}, "notify.timeout", "from 0 to 300"),
    ("unknown-host", {"host": '"smtp.example.com"'}, "notify.host", "did you mean smtp_host?"),
    ("unknown-to", {"to": '["a@b.example"]'}, "notify.to", "did you mean email_to?"),
    (
        "password-without-user",
        {"smtp_password_env": '"TB_SMTP"'},
        "notify",
        "smtp_password_env is set but smtp_username is not",
    ),
]


class TestNotifyProblems:
    @pytest.mark.parametrize(
        ("overrides", "key", "fragment"),
        [case[1:] for case in NOTIFY_ERRORS],
        ids=[case[0] for case in NOTIFY_ERRORS],
    )
    def test_one_line_naming_the_key(
        self, tmp_path: Path, overrides: dict[str, str | None], key: str, fragment: str
    ) -> None:
        """Each mistake in [notify] is one line naming its key and the fix."""
        [problem] = problems_of(tmp_path, web() + notify(**overrides))

        assert problem.startswith(f"{key}: ")
        assert fragment in problem
        assert " — " in problem

    def test_email_needs_host_and_sender(self, tmp_path: Path) -> None:
        """email_to without smtp_host and from_address names both missing keys."""
        problems = problems_of(tmp_path, web() + notify(email_to='["office@acme.example"]'))

        assert [p.split(":")[0] for p in problems] == ["notify.smtp_host", "notify.from_address"]
        assert all("missing — " in p for p in problems)

    def test_inline_secrets_not_echoed(self, tmp_path: Path) -> None:
        """smtp_password and webhook_secret written inline are refused without their values."""
        text = web() + notify(smtp_password=f'"{SECRET}"', webhook_secret=f'"{SECRET}x"')

        problems = problems_of(tmp_path, text)

        assert [p.split(":")[0] for p in problems] == [
            "notify.smtp_password",
            "notify.webhook_secret",
        ]
        assert "smtp_password_env" in problems[0]
        assert "webhook_secret_env" in problems[1]
        assert not any(SECRET in p for p in problems)

    def test_unset_secrets_required(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Named but unset SMTP password and webhook secret are problems when required."""
        monkeypatch.delenv("TB_SMTP", raising=False)
        monkeypatch.delenv("TB_HOOK", raising=False)
        text = web() + notify(
            smtp_username='"u"', smtp_password_env='"TB_SMTP"', webhook_secret_env='"TB_HOOK"'
        )

        problems = problems_of(tmp_path, text, require_secrets=True)

        assert [p.split(":")[0] for p in problems] == [
            "notify.smtp_password_env",
            "notify.webhook_secret_env",
        ]
        assert loaded(tmp_path, text, require_secrets=False).notify is not None

    def test_unloaded_credentials_required(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """SMTP password and webhook secret named as credentials but not loaded are problems."""
        (tmp_path / "credentials").mkdir()
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "credentials"))
        text = web() + notify(
            smtp_username='"u"',
            smtp_password_credential='"smtp-password"',
            webhook_secret_credential='"hook-secret"',
        )

        problems = problems_of(tmp_path, text, require_secrets=True)

        assert [p.split(" — ")[0] for p in problems] == [
            "notify.smtp_password_credential: systemd credential smtp-password is not loaded",
            "notify.webhook_secret_credential: systemd credential hook-secret is not loaded",
        ]

    def test_credential_without_user(self, tmp_path: Path) -> None:
        """An SMTP password credential without smtp_username names the key that is set."""
        [problem] = problems_of(tmp_path, notify(smtp_password_credential='"smtp-password"'))

        assert problem == (
            "notify: smtp_password_credential is set but smtp_username is not — set "
            "smtp_username to the SMTP login name"
        )

    def test_notify_not_a_table(self, tmp_path: Path) -> None:
        """notify = true is one problem asking for a [notify] table."""
        [problem] = problems_of_text(tmp_path, "notify = true\n" + MINIMAL)

        assert problem.startswith("notify: expected a [notify] table")


class TestSummary:
    def test_not_configured(self, tmp_path: Path) -> None:
        """Without [web] and [notify] the summary says what is missing."""
        lines = summary(loaded(tmp_path, ""))

        assert any(line.startswith("web: not configured (no [web] table)") for line in lines)
        assert any(line.startswith("notify: not configured (no [notify] table)") for line in lines)

    def test_web(self, tmp_path: Path) -> None:
        """The web lines give the address, URL, users and session limits, not the hashes."""
        config = loaded(tmp_path, web())

        lines = summary(config)

        text = "\n".join(lines)
        assert (
            "web: inbox and provider webhooks on 127.0.0.1:8080, "
            "public URL https://textback.example.com"
        ) in lines
        assert (
            "web: users alice; sessions last 12 h; at most 5 login attempts per minute per "
            "address; sessions are kept in memory (everyone logs in again after a restart)"
        ) in lines
        assert HASH not in text

    def test_sessions_end_on_restart_explained(self, tmp_path: Path) -> None:
        """The summary says sessions are in memory, so logins end at restart."""
        text = "\n".join(summary(loaded(tmp_path, web())))

        assert "sessions are kept in memory (everyone logs in again after a restart)" in text
        assert "cookie secret" not in text

    def test_notify(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The notify lines name channels and sources, mask numbers, and hide URL paths."""
        monkeypatch.setenv("TB_SMTP", SECRET)
        monkeypatch.setenv("TB_HOOK", SECRET + "h")
        text = web() + notify(
            email_to='["office@acme.example"]',
            smtp_host='"smtp.example.com"',
            smtp_username='"tb"',
            smtp_password_env='"TB_SMTP"',
            from_address='"tb@acme.example"',
            webhook_url='"https://hooks.slack.example/services/T000/B000/XXXXSECRETPATH"',
            webhook_secret_env='"TB_HOOK"',
            on_call='["+14155550101"]',
            on_missed_call="true",
        )

        lines = summary(loaded(tmp_path, text))

        joined = "\n".join(lines)
        assert (
            "notify: replies and missed calls by e-mail to office@acme.example via "
            "smtp.example.com:587 (starttls; login tb, password from environment variable "
            "TB_SMTP), from tb@acme.example"
        ) in lines
        assert (
            "notify: replies and missed calls by webhook to https://hooks.slack.example/… "
            "(signed, secret from environment variable TB_HOOK)"
        ) in lines
        assert "notify: urgent keywords URGENT; urgent replies are texted to +1415***0101" in lines
        assert (
            "notify: 5 attempts per notice, 10 s each, the first retry after 2 s, "
            "each wait doubling"
        ) in lines
        assert SECRET not in joined
        assert "XXXXSECRETPATH" not in joined
        assert "+14155550101" not in joined

    def test_credentials(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Secrets from systemd credentials are read, and the summary names the credentials."""
        creds = tmp_path / "credentials"
        creds.mkdir()
        (creds / "smtp-password").write_text(SECRET + "\n")
        (creds / "hook-secret").write_text(SECRET + "h\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
        text = web() + notify(
            email_to='["office@acme.example"]',
            smtp_host='"smtp.example.com"',
            smtp_username='"tb"',
            smtp_password_credential='"smtp-password"',
            from_address='"tb@acme.example"',
            webhook_secret_credential='"hook-secret"',
        )

        config = loaded(tmp_path, text)

        assert config.notify is not None
        assert (config.notify.smtp_password, config.notify.webhook_secret) == (
            Secret(SECRET),
            Secret(SECRET + "h"),
        )
        joined = "\n".join(summary(config))
        assert "login tb, password from systemd credential smtp-password)" in joined
        assert "(signed, secret from systemd credential hook-secret)" in joined
        assert SECRET not in joined

    def test_secret_not_available_now(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A webhook secret that cannot be read without require_secrets is said to be missing."""
        monkeypatch.delenv("TB_HOOK", raising=False)
        config = loaded(
            tmp_path, web() + notify(webhook_secret_env='"TB_HOOK"'), require_secrets=False
        )

        text = "\n".join(summary(config))

        assert "(signed, secret from environment variable TB_HOOK (not available now))" in text


def uncommented(text: str) -> str:
    """The example's [web] and [notify] as an admin turns them on: settings uncommented."""
    tail = text[text.index("\n# [web]\n") :]
    lines = [
        line[2:] if re.match(r"# (\[|[a-z_]+ = )", line) else line for line in tail.splitlines()
    ]
    # The example shows both ways to give a secret; only one may be used.
    kept = [
        line
        for line in lines
        if not re.match(r"(smtp_password|webhook_secret)_(file|credential) ", line)
    ]
    return text[: text.index("\n# [web]\n")] + "\n".join(kept) + "\n"


class TestExample:
    @pytest.mark.parametrize(
        ("header", "keys"),
        [
            ("# [web]", set(WEB_KEYS) - {"users"}),
            ("# [[web.users]]", {"name", "password_hash"}),
            ("# [notify]", set(NOTIFY_KEYS)),
        ],
    )
    def test_documents_every_key(self, header: str, keys: set[str]) -> None:
        """Every [web], [[web.users]] and [notify] key appears, commented out, in the example."""
        section = EXAMPLE.read_text().split(f"\n{header}\n", 1)[1].split("\n\n\n", 1)[0]

        missing = {k for k in keys if not re.search(rf"^# {k} = ", section, re.MULTILINE)}

        assert missing == set()

    def test_shipped_example_has_neither(self) -> None:
        """As shipped, the example runs no web server and notifies nobody."""
        config = load(EXAMPLE, require_secrets=False)

        assert (config.web, config.notify) == (None, None)

    def test_placeholder_hash_sends_admin_to_passwd(self, tmp_path: Path) -> None:
        """Uncommented as is, the example's placeholder hash is refused with `textback passwd`."""
        [problem] = problems_of_text(tmp_path, uncommented(EXAMPLE.read_text()))

        assert problem.startswith("web.users[0].password_hash: ")
        assert "`textback passwd`" in problem

    def test_uncommented_loads(self, tmp_path: Path) -> None:
        """With a real hash pasted in, the uncommented [web] and [notify] load as documented."""
        text = re.sub(
            r'password_hash = ".*"', f'password_hash = "{HASH}"', uncommented(EXAMPLE.read_text())
        )

        config = load(write(tmp_path, text), require_secrets=False)

        assert config.web is not None
        assert config.notify is not None
        assert config.web == WebConfig(
            public_url="https://textback.example.com",
            users=(WebUser("alice", HASH),),
        )
        assert config.notify.email_to == ("office@acme.example",)
        assert config.notify.on_call == ("+15555550123",)
        assert config.notify.webhook_url == "https://crm.example.com/hooks/textback"
        assert config.notices == load(EXAMPLE, require_secrets=False).notices
