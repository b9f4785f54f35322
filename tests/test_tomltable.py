"""Secrets from systemd credentials: ``<key>_credential`` read from $CREDENTIALS_DIRECTORY."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from textback.errors import ConfigError
from textback.gateways.smtp import SmtpGateway
from textback.gateways.twilio import TwilioGateway
from textback.gateways.vonage import VonageGateway
from textback.gateways.webhook import WebhookGateway
from textback.tomltable import (
    AMI_SECRET,
    Secret,
    SecretSpec,
    Table,
    credential_name_shown,
    read_secret,
)

SECRET = "pa55-w0rd-do-not-print"
TOKEN = SecretSpec(
    key="auth_token",
    what="Twilio auth token",
    origin="the Twilio console",
    env_example="TWILIO_AUTH_TOKEN",
    file_example="/etc/textback/twilio-auth-token",
)


@pytest.fixture
def creds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A credentials directory as systemd's LoadCredential= sets one up."""
    directory = tmp_path / "credentials"
    directory.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
    return directory


@pytest.fixture
def no_creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def read(
    data: dict[str, object], base: Path, *, require: bool = True, spec: SecretSpec = AMI_SECRET
) -> tuple[Secret | None, str, list[str]]:
    problems: list[str] = []
    table = Table(problems, "asterisk", data, spec.keys)
    secret, source = read_secret(table, base, require, spec)
    return secret, source, problems


class TestSpec:
    def test_three_keys(self) -> None:
        """A secret may be named three ways, env first, in the order tables list them."""
        assert TOKEN.keys == ("auth_token_env", "auth_token_file", "auth_token_credential")

    def test_credential_example_is_the_file_name(self) -> None:
        """The example credential is named after the example file, as LoadCredential= reads."""
        assert (AMI_SECRET.credential_example, TOKEN.credential_example) == (
            "ami-secret",
            "twilio-auth-token",
        )

    @pytest.mark.parametrize(
        ("data", "named"),
        [
            ({"secret_credential": "x"}, True),
            ({"secret_file": "x"}, True),
            ({"secret_env": "X"}, True),
            ({"secret": "x", "host": "pbx"}, False),
        ],
    )
    def test_named_in(self, data: dict[str, object], named: bool) -> None:
        """named_in() is true for any of the three keys and nothing else."""
        assert AMI_SECRET.named_in(data) is named

    def test_howto_names_all_three(self) -> None:
        """The advice for a missing secret offers the credential with its LoadCredential= line."""
        assert AMI_SECRET.howto.endswith(
            'or secret_credential = "ami-secret" (a systemd credential, '
            "LoadCredential=ami-secret:/etc/textback/ami-secret in the unit)"
        )


class TestCredential:
    def test_read_from_the_directory(self, tmp_path: Path, creds: Path) -> None:
        """The value is the credential file's text without its final newline."""
        (creds / "ami-secret").write_text(SECRET + "\n")

        secret, source, problems = read({"secret_credential": "ami-secret"}, tmp_path)

        assert (secret, source, problems) == (Secret(SECRET), "systemd credential ami-secret", [])

    def test_base_does_not_matter(self, tmp_path: Path, creds: Path) -> None:
        """A credential is looked up in $CREDENTIALS_DIRECTORY, never next to the config file."""
        (tmp_path / "ami-secret").write_text("the wrong one\n")
        (creds / "ami-secret").write_text(SECRET)

        secret, _, _ = read({"secret_credential": "ami-secret"}, tmp_path)

        assert secret == Secret(SECRET)

    def test_outside_systemd(self, tmp_path: Path, no_creds: None) -> None:
        """Without CREDENTIALS_DIRECTORY the problem says it works only under LoadCredential=."""
        secret, source, problems = read({"secret_credential": "ami-secret"}, tmp_path)

        assert (secret, source) == (None, "systemd credential ami-secret")
        assert problems == [
            "asterisk.secret_credential: CREDENTIALS_DIRECTORY is not set — secret_credential "
            "works only when textback runs under systemd with "
            "LoadCredential=ami-secret:/etc/textback/ami-secret in the unit (check it there: "
            "systemctl restart textback, then journalctl -u textback), or use secret_env or "
            "secret_file instead"
        ]

    def test_outside_systemd_tolerated_without_require(
        self, tmp_path: Path, no_creds: None
    ) -> None:
        """With require False the credential is just not available now: no problem."""
        secret, source, problems = read(
            {"secret_credential": "ami-secret"}, tmp_path, require=False
        )

        assert (secret, source, problems) == (None, "systemd credential ami-secret", [])

    def test_not_loaded(self, tmp_path: Path, creds: Path) -> None:
        """A name the unit does not load is one line with the LoadCredential= to add."""
        _, _, problems = read({"auth_token_credential": "twilio-token"}, tmp_path, spec=TOKEN)

        assert problems == [
            "asterisk.auth_token_credential: systemd credential twilio-token is not loaded — add "
            "LoadCredential=twilio-token:/etc/textback/twilio-auth-token to the unit (systemctl "
            "edit textback), the file holding only the Twilio auth token from the Twilio console"
        ]

    def test_empty(self, tmp_path: Path, creds: Path) -> None:
        """A credential holding only a newline counts as empty."""
        (creds / "ami-secret").write_text("\n")

        _, _, [problem] = read({"secret_credential": "ami-secret"}, tmp_path)

        assert problem.startswith(
            "asterisk.secret_credential: systemd credential ami-secret is empty — add "
        )

    def test_two_lines_refused(self, tmp_path: Path, creds: Path) -> None:
        """A line break inside the value is refused, as for the other sources."""
        (creds / "ami-secret").write_text(SECRET + "\nmore\n")

        secret, _, problems = read({"secret_credential": "ami-secret"}, tmp_path)

        assert secret is None
        assert problems == [
            "asterisk.secret_credential: the secret contains a line break — it must be a "
            "single line"
        ]

    def test_directory_refused(self, tmp_path: Path, creds: Path) -> None:
        """A name that is a directory in the credentials directory says so."""
        (creds / "ami-secret").mkdir()

        _, _, [problem] = read({"secret_credential": "ami-secret"}, tmp_path)

        assert problem.startswith(
            "asterisk.secret_credential: systemd credential ami-secret: that is a directory — "
        )

    @pytest.mark.parametrize("name", ["../ami-secret", "/etc/textback/ami-secret", "", ".", 5])
    def test_not_a_name(self, tmp_path: Path, creds: Path, name: object) -> None:
        """A path, nothing, or not a string is refused: credential names are plain file names."""
        (tmp_path / "ami-secret").write_text(SECRET)

        secret, source, problems = read({"secret_credential": name}, tmp_path)

        assert (secret, source) == (None, "")
        assert problems == [
            "asterisk.secret_credential: expected the NAME of a systemd credential (letters, "
            "digits and _ . @ + -), as in the unit's LoadCredential=NAME:/path, not the secret "
            'itself — e.g. secret_credential = "ami-secret"'
        ]

    @pytest.mark.parametrize("pasted", [SECRET + "!#", "Xk9aQ2vLr0"])
    def test_pasted_secret_not_echoed(self, tmp_path: Path, creds: Path, pasted: str) -> None:
        """A value that could be the secret itself never appears in the problem or the source."""
        secret, source, problems = read({"secret_credential": pasted}, tmp_path)

        assert secret is None
        assert pasted not in source
        assert [pasted in p for p in problems] == [False]

    def test_unusual_name_shown_once_loaded(self, creds: Path) -> None:
        """A name unlike a secret is shown; an unusual one only when systemd loaded it."""
        assert credential_name_shown("ami-secret") == "ami-secret"
        assert credential_name_shown("Xk9aQ2vLr0") == "named there"
        (creds / "Xk9aQ2vLr0").write_text(SECRET)
        assert credential_name_shown("Xk9aQ2vLr0") == "Xk9aQ2vLr0"


class TestExactlyOne:
    def test_env_and_credential(self, tmp_path: Path, creds: Path) -> None:
        """Two sources for one secret is a problem on the first, naming the other."""
        (creds / "ami-secret").write_text(SECRET)

        secret, _, problems = read(
            {"secret_env": "TEXTBACK_AMI_SECRET", "secret_credential": "ami-secret"}, tmp_path
        )

        assert secret is None
        assert problems == [
            "asterisk.secret_env: set together with secret_credential — keep only one of the two"
        ]

    def test_all_three(self, tmp_path: Path, creds: Path) -> None:
        """All three sources name the other two."""
        data: dict[str, object] = {
            "secret_credential": "ami-secret",
            "secret_file": "ami-secret",
            "secret_env": "TEXTBACK_AMI_SECRET",
        }

        _, _, problems = read(data, tmp_path)

        assert problems == [
            "asterisk.secret_env: set together with secret_file and secret_credential — keep "
            "only one of the three"
        ]

    def test_none_required(self, tmp_path: Path, no_creds: None) -> None:
        """No source at all, when required, offers all three."""
        _, _, problems = read({}, tmp_path)

        assert problems == [f"asterisk: no AMI secret configured — {AMI_SECRET.howto}"]

    def test_file_still_works(self, tmp_path: Path, creds: Path) -> None:
        """<key>_file is unchanged: relative to the config file's directory."""
        (tmp_path / "ami-secret").write_text(SECRET + "\n")

        secret, source, problems = read({"secret_file": "ami-secret"}, tmp_path)

        assert (secret, source, problems) == (
            Secret(SECRET),
            f"file {tmp_path / 'ami-secret'}",
            [],
        )


class TestOptionalSecretsInAdapters:
    """An optional secret named only by ``<key>_credential`` is still read, and still checked."""

    @staticmethod
    def problems(
        from_config: Callable[..., object], table: dict[str, object], base: Path
    ) -> list[str]:
        with pytest.raises(ConfigError) as caught:
            from_config(table, path="gateway", base=base, require_secrets=True)
        return caught.value.problems

    def test_webhook(self, tmp_path: Path, creds: Path) -> None:
        """A webhook's bearer token and inbound secret credentials that are not loaded are named."""
        table: dict[str, object] = {
            "url": "https://sms.example.com/send",
            "bearer_token_credential": "webhook-bearer",
            "inbound_secret_credential": "webhook-inbound",
        }

        problems = self.problems(WebhookGateway.from_config, table, tmp_path)

        assert [p.split(":")[0] for p in problems] == [
            "gateway.bearer_token_credential",
            "gateway.inbound_secret_credential",
        ]
        assert "systemd credential webhook-bearer is not loaded" in problems[0]

    def test_twilio(self, tmp_path: Path, creds: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Twilio's webhook auth token credential is read with an API key, a stray without one."""
        monkeypatch.setenv("TEXTBACK_TWILIO_KEY", SECRET)
        table: dict[str, object] = {
            "account_sid": "AC" + "0" * 32,
            "api_key_sid": "SK" + "0" * 32,
            "api_key_secret_env": "TEXTBACK_TWILIO_KEY",
            "from": "+14155550100",
            "webhook_auth_token_credential": "twilio-webhook-token",
        }

        unread = self.problems(TwilioGateway.from_config, table, tmp_path)
        del table["api_key_sid"], table["api_key_secret_env"]
        table["auth_token_env"] = "TEXTBACK_TWILIO_KEY"
        stray = self.problems(TwilioGateway.from_config, table, tmp_path)

        assert len(unread) == 1
        assert unread[0].startswith(
            "gateway.webhook_auth_token_credential: systemd credential twilio-webhook-token "
            "is not loaded"
        )
        assert stray == [
            "gateway.webhook_auth_token_credential: needed only with api_key_sid — without it "
            "the auth token already checks webhook signatures; remove it"
        ]

    def test_vonage(self, tmp_path: Path, creds: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Vonage's signature secret credential, when not loaded, is a problem naming it."""
        monkeypatch.setenv("TEXTBACK_VONAGE_SECRET", SECRET)
        table: dict[str, object] = {
            "api_key": "a1b2c3d4",
            "api_secret_env": "TEXTBACK_VONAGE_SECRET",
            "from": "+14155550100",
            "signature_secret_credential": "vonage-signature-secret",
            "signature_method": "sha256",
        }

        problems = self.problems(VonageGateway.from_config, table, tmp_path)

        assert len(problems) == 1
        assert problems[0].startswith(
            "gateway.signature_secret_credential: systemd credential vonage-signature-secret "
            "is not loaded"
        )

    def test_smtp(self, tmp_path: Path, creds: Path) -> None:
        """An SMTP password credential without a username names password_credential."""
        table: dict[str, object] = {
            "host": "127.0.0.1",
            "tls": "none",
            "from_address": "textback@acme.example",
            "to_template": "{national}@sms.example.com",
            "password_credential": "smtp-password",
        }

        problems = self.problems(SmtpGateway.from_config, table, tmp_path)
        table["username"] = "textback"
        unread = self.problems(SmtpGateway.from_config, table, tmp_path)

        assert problems == [
            "gateway: password_credential is set but username is not — set username to the "
            "SMTP login name"
        ]
        assert len(unread) == 1
        assert unread[0].startswith(
            "gateway.password_credential: systemd credential smtp-password is not loaded"
        )
