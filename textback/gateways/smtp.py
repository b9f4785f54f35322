"""The ``smtp`` gateway: each text as a short e-mail to an e-mail-to-SMS address.

Shell (IO through aiosmtplib). For providers that turn mail into texts
(``{e164}@sms.example.com``) and the carrier gateways that still exist
(``{national}@vtext.com``). One SMTP session per text: textback sends a few
texts an hour, and a fresh session never trips over a connection the server
dropped while idle.

The provider id is the Message-ID we put on the mail; it carries the outbox
reference, so a mail in the server's logs can be traced back to its call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import string
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Final, Literal, Self, cast

import aiosmtplib
import phonenumbers

from textback.errors import ConfigError
from textback.gateways.base import (
    FailureKind,
    GatewayContext,
    GatewayError,
    OutgoingSms,
    SendReceipt,
)
from textback.tomltable import Secret, SecretSpec, Table, read_secret, show

Tls = Literal["starttls", "implicit", "none"]
PASSWORD: Final = SecretSpec(
    key="password",
    what="SMTP password",
    origin="your mail provider's SMTP settings",
    env_example="TEXTBACK_SMTP_PASSWORD",
    file_example="/etc/textback/smtp-password",
)
DEFAULT_PORTS: Final[Mapping[Tls, int]] = {"starttls": 587, "implicit": 465, "none": 25}
DEFAULT_TIMEOUT: Final = 30.0
PLACEHOLDERS: Final = ("e164", "digits", "national")
_KNOWN: Final = (
    "host",
    "port",
    "tls",
    "username",
    PASSWORD.env_key,
    PASSWORD.file_key,
    PASSWORD.credential_key,
    "from_address",
    "to_template",
    "subject",
    "timeout",
)
_HINTS: Final = {
    "password": f"secrets may not be written in this file — {PASSWORD.howto}",
    "secret": f"secrets may not be written in this file — {PASSWORD.howto}",
    "starttls": 'use tls = "starttls" (or "implicit" for port 465, "none" for a local relay)',
    "use_tls": 'use tls = "implicit" (or "starttls", or "none" for a local relay)',
    "ssl": 'use tls = "implicit" (or "starttls", or "none" for a local relay)',
    "server": "did you mean host?",
    "hostname": "did you mean host?",
    "user": "did you mean username?",
    "login": "did you mean username?",
    "from": "did you mean from_address?",
    "sender": "did you mean from_address?",
    "to": 'did you mean to_template? e.g. to_template = "{e164}@sms.example.com"',
}


class SmtpGateway:
    """Mails each text to the address ``to_template`` makes from the number."""

    name = "smtp"
    # SMTP has no idempotency key: a session cut off after DATA may have been
    # delivered, and a second session delivers a second mail.
    idempotent = False
    max_in_flight = 1  # one relay session at a time

    def __init__(
        self,
        *,
        host: str,
        port: int | None = None,
        tls: Tls = "starttls",
        username: str | None = None,
        password: Secret | None = None,
        from_address: str,
        to_template: str,
        subject: str = "",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port if port is not None else DEFAULT_PORTS[tls]
        self.tls = tls
        self.username = username
        self._password = password
        self.from_address = from_address
        self.to_template = to_template
        self.subject = subject
        self.timeout = timeout
        _, self._envelope_from = parseaddr(from_address)
        self._domain = self._envelope_from.rpartition("@")[2]

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        problems: list[str] = []
        s = Table(problems, path, table, _KNOWN, _HINTS)
        host = s.string(
            "host",
            "",
            fix='set it to your SMTP server, e.g. host = "smtp.example.com"',
            required=True,
        )
        if "host" not in s.bad and any(c.isspace() for c in host):
            s.problem("host", f"{show(host)} contains whitespace — write just the server name")
        tls = cast(
            "Tls",
            s.choice(
                "tls",
                "starttls",
                tuple(DEFAULT_PORTS),
                fix='"starttls" (port 587), "implicit" (port 465) or "none" (a local relay only)',
            ),
        )
        port = s.integer(
            "port",
            DEFAULT_PORTS[tls],
            ok=lambda v: 1 <= v <= 65535,
            expected="an integer from 1 to 65535",
            fix=f"leave it out for the usual port with tls = {show(tls)} ({DEFAULT_PORTS[tls]})",
        )
        username = s.string("username", "", fix="the SMTP login name; leave it out for no login")
        if username and any(c in username for c in "\r\n"):
            s.problem("username", "contains a line break — write the login name on one line")
        password_key = next((key for key in PASSWORD.keys if key in table), None)
        password, _ = read_secret(s, base, require_secrets and bool(username), PASSWORD)
        if password_key is not None and not username and "username" not in s.bad:
            s.problems.append(
                f"{path}: {password_key} is set but username is not — "
                "set username to the SMTP login name"
            )
        from_address = s.string(
            "from_address",
            "",
            fix='set it to the address the mail comes from, e.g. "textback@example.com"',
            required=True,
        )
        if "from_address" not in s.bad and from_address:
            problem = _address_problem(from_address)
            if problem is not None:
                s.problem("from_address", f"{show(from_address)} {problem}")
        to_template = s.string(
            "to_template",
            "",
            fix='e.g. to_template = "{e164}@sms.example.com" (placeholders: '
            + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            + ")",
            required=True,
        )
        if "to_template" not in s.bad and to_template:
            problem = _to_template_problem(to_template)
            if problem is not None:
                s.problem("to_template", problem)
        subject = s.string("subject", "", fix="a short subject line, or leave it out for none")
        if any(c in subject for c in "\r\n"):
            s.problem("subject", "contains a line break — write the subject on one line")
        timeout = s.number(
            "timeout",
            DEFAULT_TIMEOUT,
            ok=lambda v: v > 0,
            expected="a number of seconds greater than 0",
            fix=f"how long one send may take, end to end (default {DEFAULT_TIMEOUT:g})",
        )
        if problems:
            raise ConfigError(problems)
        return cls(
            host=host,
            port=port,
            tls=tls,
            username=username or None,
            password=password,
            from_address=from_address,
            to_template=to_template,
            subject=subject,
            timeout=timeout,
        )

    async def start(self, context: GatewayContext) -> None:
        """Nothing to open: each send is its own SMTP session."""

    async def aclose(self) -> None:
        """Nothing held open between sends."""

    def recipient(self, e164: str) -> str:
        """The e-mail address for a number; GatewayError(PERMANENT) if it is not E.164."""
        try:
            number = phonenumbers.parse(e164)
        except phonenumbers.NumberParseException as exc:
            raise GatewayError(
                FailureKind.PERMANENT, f"{show(e164)} is not an E.164 number"
            ) from exc
        return _render(
            self.to_template,
            {
                "e164": e164,
                "digits": e164.removeprefix("+"),
                "national": phonenumbers.national_significant_number(number),
            },
        )

    def message(self, sms: OutgoingSms) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.from_address
        mail["To"] = self.recipient(sms.to)
        if self.subject:
            mail["Subject"] = self.subject
        mail["Date"] = formatdate(usegmt=True)
        # A domain of our own: make_msgid would otherwise look up this host's FQDN (blocking DNS).
        mail["Message-ID"] = make_msgid(idstring=sms.reference, domain=self._domain)
        mail.set_content(sms.body)
        return mail

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        mail = self.message(sms)
        client = self._client()
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    await client.connect()
                    await client.send_message(
                        mail, sender=self._envelope_from, recipients=[mail["To"]]
                    )
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                raise classify(exc, self.host, self.port, self.timeout) from exc
            # The server has the mail; saying goodbye is a courtesy that must not fail the send.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await client.quit()
        finally:
            client.close()
        return SendReceipt(str(mail["Message-ID"]))

    async def check(self) -> str:
        """Connect, EHLO, STARTTLS when configured and log in, then QUIT: no mail is sent."""
        client = self._client()
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    # connect() reads the greeting, upgrades with STARTTLS and logs in.
                    await client.connect()
                    if client.is_ehlo_or_helo_needed:
                        await client.ehlo()
                    extensions = client.esmtp_extensions
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                raise classify(exc, self.host, self.port, self.timeout) from exc
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await client.quit()
        finally:
            client.close()
        tls = {"starttls": ", STARTTLS", "implicit": ", TLS"}.get(self.tls, "")
        login = f", login as {self.username}" if self.username else ", no login configured"
        if not self.username and "auth" in extensions:
            login += " (the server offers AUTH: it may refuse to relay without one)"
        return f"{self.host}:{self.port} accepted EHLO{tls}{login}"

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self._password.reveal() if self._password is not None else None,
            use_tls=self.tls == "implicit",
            start_tls=self.tls == "starttls",
            timeout=self.timeout,
        )


def classify(exc: BaseException, host: str, port: int, timeout: float) -> GatewayError:
    """The GatewayError for an aiosmtplib or network error."""
    where = f"{host}:{port}"
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    cert = _cert_error(exc)
    if cert is not None:
        return GatewayError(
            FailureKind.CONFIG,
            f"{where}: TLS certificate not trusted ({cert.verify_message}) — check host",
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code, text = exc.code, " ".join(exc.message.split())
        said = f"{code} {text}"
        if 400 <= code < 500:
            return GatewayError(FailureKind.TRANSIENT, f"{where} said {said}", code=str(code))
        kind, what = _refusal(exc, text)
        return GatewayError(kind, f"{where} {what}: {said}", code=str(code))
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return GatewayError(FailureKind.TRANSIENT, f"no reply from {where} within {timeout:g} s")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return GatewayError(FailureKind.TRANSIENT, f"{where}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):
        # STARTTLS or AUTH not offered, no usable AUTH method: the settings do not fit the server.
        return GatewayError(
            FailureKind.CONFIG, f"{where}: {exc} — check tls, port and username against the server"
        )
    return GatewayError(FailureKind.TRANSIENT, f"{where}: {type(exc).__name__}: {exc}")


def _refusal(exc: aiosmtplib.SMTPResponseException, text: str) -> tuple[FailureKind, str]:
    """Kind and wording for a 5xx reply."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return FailureKind.CONFIG, "refused the login (check username and the password)"
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return FailureKind.CONFIG, "refused the sender (check from_address)"
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        if "relay" in text.lower():
            # The server will not pass mail on for us: every text would fail the same way.
            return FailureKind.CONFIG, "will not relay (set username and a password)"
        return FailureKind.PERMANENT, "refused the recipient"
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return FailureKind.PERMANENT, "refused the message"
    if isinstance(exc, aiosmtplib.SMTPHeloError | aiosmtplib.SMTPConnectResponseError):
        return FailureKind.CONFIG, "refused the session"
    return FailureKind.PERMANENT, "refused"


def _cert_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure behind ``exc`` (aiosmtplib wraps it when TLS starts at connect)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__
    return None


def _address_problem(value: str) -> str | None:
    if any(c in value for c in "\r\n"):
        return "contains a line break — write the address on one line"
    _, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain:
        return 'is not an e-mail address — e.g. "textback@example.com"'
    return None


def _to_template_problem(template: str) -> str | None:
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError:
        return (
            f"{show(template)} has an unmatched {{ or }} — write {{{{ and }}}} for literal braces"
        )
    allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS or spec or conversion:
            return f"unknown placeholder {{{name}}} — use {allowed}"
    if not fields:
        return f"{show(template)} has no placeholder — the number must be in it, e.g. {{e164}}"
    sample = _render(template, {"e164": "+15550100", "digits": "15550100", "national": "5550100"})
    local, at, domain = sample.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in sample):
        return f'{show(template)} does not make an e-mail address — e.g. "{{e164}}@sms.example.com"'
    return None


def _render(template: str, values: Mapping[str, str]) -> str:
    return template.format_map(values)
