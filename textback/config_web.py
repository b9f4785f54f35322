"""The [web] and [notify] tables, and the password hashes of inbox users.

Shell layer, split from ``config.py`` like ``config_delivery.py``; ``config.load`` calls
:func:`read_web` and :func:`read_notify`. Every problem is one line naming its TOML key and the
fix; credentials (the SMTP password, the webhook secret, password hashes) are read
by reference or checked for shape, and never echoed.

A password hash is ``scrypt$N$r$p$salt$hash`` (salt and hash in standard base64), made by
:func:`hash_password` (``textback passwd``) and checked by :func:`verify_password`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from ipaddress import ip_address
from pathlib import Path
from typing import Final, Literal, cast
from urllib.parse import urlsplit

import phonenumbers

from textback.numbers import mask
from textback.tomltable import NOT_SET, Secret, SecretSpec, Table, read_secret, show

# --- password hashes ------------------------------------------------------------------------

SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SALT_BYTES: Final = 16
_HASH_BYTES: Final = 32
# Beyond these a single login would take seconds or more memory than OpenSSL allows.
_MAX_N: Final = 2**20
_MAX_R: Final = 32
_MAX_P: Final = 16
_MAKE_ONE: Final = "make one with `textback passwd` and paste the line it prints"


def hash_password(password: str) -> str:
    """A new ``scrypt$N$r$p$salt$hash`` string for ``password``, with a fresh random salt.

    Raises:
        ValueError: the password is empty.
    """
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _HASH_BYTES)
    return "$".join(
        ("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest))
    )


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for a wrong password or a bad hash.

    CPU-bound for tens of milliseconds: an event loop should run it in an executor.
    """
    parsed = _parse_hash(stored)
    if isinstance(parsed, str):
        return False
    n, r, p, salt, expected = parsed
    computed = _scrypt(password, salt, n, r, p, len(expected))
    return hmac.compare_digest(computed, expected)


def password_hash_problem(stored: str) -> str | None:
    """Why ``stored`` is not a usable password hash (without repeating it), or None."""
    parsed = _parse_hash(stored)
    return parsed if isinstance(parsed, str) else None


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # OpenSSL refuses anything above 32 MiB unless told more may be used.
    maxmem = 128 * r * (n + p + 2) + 2**20
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes] | str:
    """The parts of a hash, or the problem with it."""
    parts = stored.strip().split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return f"not a textback password hash (scrypt$N$r$p$salt$hash) — {_MAKE_ONE}"
    if not all(part.isascii() and part.isdigit() for part in parts[1:4]):
        return f"N, r and p must be whole numbers — {_MAKE_ONE}"
    n, r, p = (int(part) for part in parts[1:4])
    if n < 2 or n & (n - 1):
        return f"N ({n}) must be a power of two, such as {SCRYPT_N} — {_MAKE_ONE}"
    if n > _MAX_N or not 1 <= r <= _MAX_R or not 1 <= p <= _MAX_P:
        return (
            f"scrypt cost N={n}, r={r}, p={p} is beyond N={_MAX_N}, r={_MAX_R}, p={_MAX_P} — "
            f"{_MAKE_ONE}"
        )
    salt, digest = _unb64(parts[4]), _unb64(parts[5])
    if not salt or not digest:
        return f"the salt or hash is not base64 — {_MAKE_ONE}"
    if len(digest) < 16:
        return f"the hash part is too short to be safe — {_MAKE_ONE}"
    return n, r, p, salt, digest


# A hash of nothing anyone can type, checked for unknown user names so that a wrong name takes
# as long to refuse as a wrong password, and timing does not tell which names exist.
_DECOY_HASH: Final = (
    f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$AAAAAAAAAAAAAAAAAAAAAA==$"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)


# --- [web] ----------------------------------------------------------------------------------

DEFAULT_LISTEN: Final = "127.0.0.1:8080"
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8080
DEFAULT_SESSION_HOURS: Final = 12.0
DEFAULT_LOGIN_RATE: Final = 5


@dataclass(frozen=True, slots=True)
class WebUser:
    """One person who may log in to the inbox."""

    name: str
    password_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebConfig:
    public_url: str  # what providers and browsers reach us at; no trailing slash
    users: tuple[WebUser, ...]
    host: str = DEFAULT_HOST  # where the server listens (no brackets around IPv6)
    port: int = DEFAULT_PORT
    session_hours: float = DEFAULT_SESSION_HOURS
    login_rate: int = DEFAULT_LOGIN_RATE  # login attempts per minute from one address

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def session_seconds(self) -> float:
        return self.session_hours * 3600.0

    @property
    def secure_cookies(self) -> bool:
        """Cookies get ``Secure`` when browsers reach us over https."""
        return self.public_url.startswith("https://")

    def url(self, path: str) -> str:
        """The public URL of ``path`` ("/hooks/twilio/inbound")."""
        return self.public_url + "/" + path.lstrip("/")


def authenticate(users: Sequence[WebUser], name: str, password: str) -> WebUser | None:
    """The user ``name`` when ``password`` is theirs, else None; as slow for unknown names.

    CPU-bound for tens of milliseconds: an event loop should run it in an executor.
    """
    found = next((user for user in users if hmac.compare_digest(user.name, name)), None)
    ok = verify_password(password, found.password_hash if found else _DECOY_HASH)
    return found if ok and found is not None else None


WEB_KEYS: Final = (
    "listen",
    "public_url",
    "session_hours",
    "login_rate",
    "users",
)
_NO_COOKIE_SECRET: Final = "not needed: sessions are kept in memory and end when textback restarts"
_LISTEN_HINT: Final = f'write host:port in listen, e.g. listen = "{DEFAULT_LISTEN}"'
_WEB_HINTS: Final = {
    "host": _LISTEN_HINT,
    "port": _LISTEN_HINT,
    "bind": _LISTEN_HINT,
    "address": _LISTEN_HINT,
    "url": "did you mean public_url?",
    "base_url": "did you mean public_url?",
    "secret": "the inbox needs no secret here: logins are users with password hashes",
    "cookie_secret": _NO_COOKIE_SECRET,
    "cookie_secret_env": _NO_COOKIE_SECRET,
    "cookie_secret_file": _NO_COOKIE_SECRET,
    "cookie_secret_credential": _NO_COOKIE_SECRET,
    "password": "passwords never go in this file — under [[web.users]], set password_hash: "
    + _MAKE_ONE,
    "user": "write each user as a [[web.users]] table with name and password_hash",
    "session_timeout": "did you mean session_hours?",
}
_USER_KEYS: Final = ("name", "password_hash")
_USER_HINTS: Final = {
    "password": f"the password itself never goes in this file — set password_hash: {_MAKE_ONE}",
    "hash": "did you mean password_hash?",
    "user": "did you mean name?",
    "username": "did you mean name?",
    "login": "did you mean name?",
}
_USER_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
_ADD_USER: Final = (
    f'add a [[web.users]] table with name = "alice" and password_hash = "..." ({_MAKE_ONE})'
)


def read_web(
    problems: list[str],
    notices: list[str],
    data: Mapping[str, object],
    base: Path,
    require_secrets: bool,
) -> WebConfig:
    """[web] and its [[web.users]]."""
    s = Table(problems, "web", data, WEB_KEYS, _WEB_HINTS)
    host, port = _listen(s, notices)
    public_url = _public_url(s, notices)
    session_hours = s.number(
        "session_hours",
        DEFAULT_SESSION_HOURS,
        ok=lambda v: 0 < v <= 720,
        expected="a number of hours from 0 to 720",
        fix="how long a login lasts before the inbox asks again (default 12)",
    )
    login_rate = s.integer(
        "login_rate",
        DEFAULT_LOGIN_RATE,
        ok=lambda v: 1 <= v <= 1000,
        expected="a whole number from 1 to 1000",
        fix="login attempts allowed per minute from one address (default 5)",
    )
    users = _users(s)
    return WebConfig(
        public_url=public_url,
        users=users,
        host=host,
        port=port,
        session_hours=session_hours,
        login_rate=login_rate,
    )


def read_listen(s: Table, default: str) -> tuple[str, int]:
    """``listen = "host:port"`` (IPv6 in brackets) as host and port; ``default`` on a problem.

    Shared with [metrics]; the caller decides what to say about an address that is not loopback.
    """
    default_host, _, default_port = default.rpartition(":")
    fallback = default_host.strip("[]"), int(default_port)
    text = s.string("listen", default, fix=f'e.g. listen = "{default}"')
    if "listen" in s.bad:
        return fallback
    host, colon, port_text = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not colon or not host or not (port_text.isascii() and port_text.isdigit()):
        s.problem(
            "listen",
            f'expected "host:port", got {show(text)} — e.g. "{default}" '
            f'(or "[::1]:{default_port}" for IPv6)',
        )
        return fallback
    if ":" in host and not bracketed:
        s.problem(
            "listen",
            f'{show(text)}: an IPv6 address goes in brackets — e.g. "[{host}]:{port_text}"',
        )
        return fallback
    if any(c.isspace() or c in "/[]" for c in host):
        s.problem("listen", f"{show(text)} is not a host name or address — e.g. {default}")
        return fallback
    port = int(port_text)
    if not 1 <= port <= 65535:
        s.problem("listen", f"port {port} is not from 1 to 65535 — e.g. {default}")
        return fallback
    return host, port


def _listen(s: Table, notices: list[str]) -> tuple[str, int]:
    host, port = read_listen(s, DEFAULT_LISTEN)
    if "listen" not in s.bad and not is_loopback(host):
        notices.append(
            f"web.listen: {show(s.data['listen'])} is reachable from other machines — put a "
            "reverse proxy (nginx, Caddy) with HTTPS in front and listen on 127.0.0.1 instead"
        )
    return host, port


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses: only this machine can connect."""
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _public_url(s: Table, notices: list[str]) -> str:
    fix = (
        "the https:// address your reverse proxy serves textback at, which providers post to, "
        'e.g. public_url = "https://textback.example.com"'
    )
    url = s.url("public_url", "", fix=fix, required=True)
    if "public_url" in s.bad or not url:
        return ""
    parts = urlsplit(url)
    if any(c.isspace() for c in url):
        s.problem("public_url", f"{show(url)} contains whitespace — {fix}")
        return ""
    if parts.query or parts.fragment or "?" in url or "#" in url:
        s.problem("public_url", f"{show(url)} has a ?query or #fragment — remove it; {fix}")
        return ""
    if "@" in parts.netloc:
        s.problem("public_url", "has a user name or password in it — remove it; " + fix)
        return ""
    url = url.rstrip("/")
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        notices.append(
            f"web.public_url: {show(url)} is plain http, so passwords and session cookies "
            "cross the network unencrypted and most providers refuse to post to it — serve "
            "textback through a reverse proxy with HTTPS and use its https:// address"
        )
    return url


def _users(s: Table) -> tuple[WebUser, ...]:
    raw = s.data.get("users", NOT_SET)
    if raw is NOT_SET:
        s.problems.append(f"web.users: no inbox user — {_ADD_USER}")
        return ()
    if isinstance(raw, dict):
        s.problem(
            "users",
            "is a single [web.users] table — write [[web.users]] (double brackets), "
            "once per user, each with name and password_hash",
        )
        return ()
    if not isinstance(raw, list) or not raw:
        s.problem("users", f"expected [[web.users]] tables, got {show(raw)} — {_ADD_USER}")
        return ()
    users: list[WebUser] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            s.problem(
                "users",
                f"expected a [[web.users]] table, got {show(item)} — {_ADD_USER}",
                index,
            )
            continue
        user = _user(s.problems, f"web.users[{index}]", item, seen, index)
        if user is not None:
            users.append(user)
    return tuple(users)


def _user(
    problems: list[str], path: str, item: Mapping[str, object], seen: dict[str, int], index: int
) -> WebUser | None:
    u = Table(problems, path, item, _USER_KEYS, _USER_HINTS)
    name = u.string("name", "", required=True, fix='the login name, e.g. name = "alice"')
    if name and "name" not in u.bad:
        if not _USER_NAME.fullmatch(name):
            u.problem(
                "name",
                f"{show(name)} — use up to 64 letters, digits and . _ @ + - (no spaces), "
                'e.g. "alice"',
            )
        elif name.lower() in seen:
            u.problem(
                "name",
                f"{show(name)} is already used by web.users[{seen[name.lower()]}] — "
                "give each user a name of their own",
            )
        else:
            seen[name.lower()] = index
    stored = u.string("password_hash", "", required=True, fix=_MAKE_ONE)
    if stored and "password_hash" not in u.bad:
        problem = password_hash_problem(stored)
        if problem is not None:
            u.problem("password_hash", problem)
    if u.bad:
        return None
    return WebUser(name=name, password_hash=stored.strip())


# --- [notify] -------------------------------------------------------------------------------

SmtpTls = Literal["starttls", "implicit", "none"]
SMTP_PORTS: Final[Mapping[str, int]] = {"starttls": 587, "implicit": 465, "none": 25}
SMTP_PASSWORD: Final = SecretSpec(
    key="smtp_password",
    what="SMTP password",
    origin="your mail provider's SMTP settings",
    env_example="TEXTBACK_NOTIFY_SMTP_PASSWORD",
    file_example="/etc/textback/notify-smtp-password",
)
WEBHOOK_SECRET: Final = SecretSpec(
    key="webhook_secret",
    what="webhook signing secret",
    origin="the system the webhook goes to (a long random string you both know)",
    env_example="TEXTBACK_NOTIFY_WEBHOOK_SECRET",
    file_example="/etc/textback/notify-webhook-secret",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyConfig:
    email_to: tuple[str, ...] = ()
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_tls: SmtpTls = "starttls"
    smtp_username: str = ""
    smtp_password: Secret | None = None
    smtp_password_source: str = ""  # for humans; never the value
    from_address: str = ""
    webhook_url: str = ""
    webhook_secret: Secret | None = None  # None: requests go unsigned
    webhook_secret_source: str = ""  # for humans; never the value
    on_missed_call: bool = False
    urgent_keywords: tuple[str, ...] = ("URGENT",)
    on_call: tuple[str, ...] = ()  # E.164 numbers texted when a reply is urgent
    retry_attempts: int = 5  # attempts in all, the first included
    retry_base_seconds: float = 2.0
    timeout: float = 10.0  # seconds for one attempt (SMTP session or HTTP request)


NOTIFY_KEYS: Final = (
    "email_to",
    "smtp_host",
    "smtp_port",
    "smtp_tls",
    "smtp_username",
    *SMTP_PASSWORD.keys,
    "from_address",
    "webhook_url",
    *WEBHOOK_SECRET.keys,
    "on_missed_call",
    "urgent_keywords",
    "on_call",
    "retry_attempts",
    "retry_base_seconds",
    "timeout",
)
_NOTIFY_HINTS: Final = {
    "smtp_password": f"secrets may not be written in this file — {SMTP_PASSWORD.howto}",
    "password": f"secrets may not be written in this file — {SMTP_PASSWORD.howto}",
    "webhook_secret": f"secrets may not be written in this file — {WEBHOOK_SECRET.howto}",
    "secret": f"secrets may not be written in this file — {WEBHOOK_SECRET.howto}",
    "host": "did you mean smtp_host?",
    "port": "did you mean smtp_port?",
    "tls": "did you mean smtp_tls?",
    "username": "did you mean smtp_username?",
    "user": "did you mean smtp_username?",
    "to": "did you mean email_to?",
    "email": "did you mean email_to?",
    "from": "did you mean from_address?",
    "url": "did you mean webhook_url?",
    "webhook": "did you mean webhook_url?",
    "keywords": "did you mean urgent_keywords?",
    "oncall": "did you mean on_call?",
    "missed_calls": "did you mean on_missed_call?",
    "max_attempts": "did you mean retry_attempts?",
    "retries": "did you mean retry_attempts?",
}
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_KEYWORD = re.compile(r"[^\W_]+(?:[ '-][^\W_]+)*")


def read_notify(
    problems: list[str],
    notices: list[str],
    data: Mapping[str, object],
    base: Path,
    require_secrets: bool,
    *,
    web: bool,
) -> NotifyConfig:
    """[notify]; ``web`` says whether a [web] table exists (without it no reply ever arrives)."""
    s = Table(problems, "notify", data, NOTIFY_KEYS, _NOTIFY_HINTS)
    d = NotifyConfig()
    email_to = s.strings("email_to", (), example='["office@example.com"]', check=_address_problem)
    tls = cast(
        SmtpTls,
        s.choice(
            "smtp_tls",
            d.smtp_tls,
            tuple(SMTP_PORTS),
            fix='"starttls" (port 587), "implicit" (port 465) or "none" (a local relay only)',
        ),
    )
    smtp_port = s.integer(
        "smtp_port",
        SMTP_PORTS[tls],
        ok=lambda v: 1 <= v <= 65535,
        expected="an integer from 1 to 65535",
        fix=f"leave it out for the usual port with smtp_tls = {show(tls)} ({SMTP_PORTS[tls]})",
    )
    mail = bool(email_to) or "email_to" in s.bad
    smtp_host = s.string(
        "smtp_host",
        "",
        required=bool(email_to),
        fix='set it to your mail server, e.g. smtp_host = "smtp.example.com"',
    )
    if smtp_host and any(c.isspace() for c in smtp_host):
        s.problem("smtp_host", f"{show(smtp_host)} contains whitespace — write just the name")
    username = s.string("smtp_username", "", fix="the SMTP login name; leave it out for no login")
    if any(c in username for c in "\r\n"):
        s.problem("smtp_username", "contains a line break — write the login name on one line")
    has_password = SMTP_PASSWORD.named_in(data)
    password, password_source = read_secret(
        s, base, require_secrets and bool(username), SMTP_PASSWORD
    )
    if has_password and not username and "smtp_username" not in s.bad:
        s.problems.append(
            f"notify: {'/'.join(k for k in SMTP_PASSWORD.keys if k in data)} is set but "
            "smtp_username is not — set smtp_username to the SMTP login name"
        )
    from_address = s.string(
        "from_address",
        "",
        required=bool(email_to),
        fix='the address the mail comes from, e.g. from_address = "textback@example.com"',
    )
    if from_address and "from_address" not in s.bad:
        problem = _address_problem(from_address)
        if problem is not None:
            s.problem("from_address", problem)
    if not mail and (smtp_host or username or "from_address" in data):
        notices.append(
            "notify: SMTP settings are set but email_to is empty, so no mail is sent — "
            'add email_to = ["office@example.com"] or remove them'
        )
    webhook_url = s.url(
        "webhook_url",
        "",
        fix="the https:// URL that receives a JSON POST per notice, e.g. "
        '"https://crm.example.com/hooks/textback"',
    )
    if (
        webhook_url
        and urlsplit(webhook_url).scheme == "http"
        and not is_loopback(urlsplit(webhook_url).hostname or "")
    ):
        notices.append(
            "notify.webhook_url: plain http sends callers' replies across the network "
            "unencrypted — use an https:// URL"
        )
    wanted = WEBHOOK_SECRET.named_in(data)
    webhook_secret, webhook_source = read_secret(
        s, base, require_secrets and wanted, WEBHOOK_SECRET
    )
    if wanted and not webhook_url and "webhook_url" not in s.bad:
        notices.append(
            "notify: a webhook secret is set but webhook_url is not, so no webhook is sent"
        )
    on_missed_call = s.boolean(
        "on_missed_call",
        d.on_missed_call,
        fix="true also tells staff about every missed call, false only about replies",
    )
    keywords = s.strings(
        "urgent_keywords",
        d.urgent_keywords,
        example='["URGENT", "EMERGENCY"]',
        check=_keyword_problem,
    )
    on_call = s.strings("on_call", (), example='["+15551234567"]', check=_on_call_problem)
    if on_call and not keywords and "urgent_keywords" not in s.bad:
        notices.append(
            "notify.urgent_keywords: is empty, so no reply is ever urgent and the on_call "
            "numbers are never texted"
        )
    attempts = s.integer(
        "retry_attempts",
        d.retry_attempts,
        ok=lambda v: 1 <= v <= 20,
        expected="a whole number from 1 to 20",
        fix="tries per notice, the first included, before giving up (default 5)",
    )
    retry_base = s.number(
        "retry_base_seconds",
        d.retry_base_seconds,
        ok=lambda v: 0 < v <= 3600,
        expected="a number of seconds from 0 to 3600",
        fix="the first wait before trying again; each wait doubles (default 2)",
    )
    timeout = s.number(
        "timeout",
        d.timeout,
        ok=lambda v: 0 < v <= 300,
        expected="a number of seconds from 0 to 300",
        fix="how long one mail or webhook request may take (default 10)",
    )
    if not (email_to or webhook_url or on_call) and not (
        {"email_to", "webhook_url", "on_call"} & s.bad
    ):
        problems.append(
            'notify: nothing to notify — set email_to = ["office@example.com"], '
            'webhook_url = "https://..." or on_call = ["+15551234567"], '
            "or delete the [notify] table"
        )
    if not web:
        notices.append(
            "notify: there is no [web] table, so textback receives no replies to forward"
            + (
                " — only missed calls are sent"
                if on_missed_call
                else " and nothing is ever sent — add [web], or set on_missed_call = true"
            )
        )
    return NotifyConfig(
        email_to=email_to,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        smtp_tls=tls,
        smtp_username=username,
        smtp_password=password,
        smtp_password_source=password_source,
        from_address=from_address,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_secret_source=webhook_source,
        on_missed_call=on_missed_call,
        urgent_keywords=keywords,
        on_call=on_call,
        retry_attempts=attempts,
        retry_base_seconds=retry_base,
        timeout=timeout,
    )


def _address_problem(value: str) -> str | None:
    if any(c in value for c in "\r\n"):
        return f"{show(value)} contains a line break — write the address on one line"
    _, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in address):
        return f'{show(value)} is not an e-mail address — e.g. "office@example.com"'
    return None


def _keyword_problem(value: str) -> str | None:
    if _KEYWORD.fullmatch(value.strip()):
        return None
    return (
        f"{show(value)} — a keyword is a word or a few words, matched whole and in any case, "
        'e.g. "URGENT" or "EMERGENCY"'
    )


def _on_call_problem(value: str) -> str | None:
    if _E164.fullmatch(value):
        try:
            possible = phonenumbers.is_possible_number(phonenumbers.parse(value))
        except phonenumbers.NumberParseException:
            possible = False
        if possible:
            return None
        return f"{show(value)} is not a possible phone number — check its digits"
    compact = re.sub(r"[\s().\-/]", "", value)
    if compact != value and _E164.fullmatch(compact):
        return f'{show(value)} contains spaces or punctuation — write "{compact}"'
    return (
        f"{show(value)} is not an E.164 number — write +, the country code, then the number, "
        'e.g. "+15551234567"'
    )


# --- summary --------------------------------------------------------------------------------


def web_summary(web: WebConfig | None) -> list[str]:
    """check-config's lines for [web]; never a secret or a hash."""
    if web is None:
        return [
            "web: not configured (no [web] table): no inbox, and no replies or delivery "
            "receipts are received"
        ]
    names = ", ".join(user.name for user in web.users) or "(none)"
    return [
        f"web: inbox and provider webhooks on {web.listen}, public URL {web.public_url}",
        f"web: users {names}; sessions last {web.session_hours:g} h; at most "
        f"{web.login_rate} login attempts per minute per address; sessions are kept in memory "
        "(everyone logs in again after a restart)",
    ]


def notify_summary(notify: NotifyConfig | None) -> list[str]:
    """check-config's lines for [notify]; never a secret, the webhook's path or a full number."""
    if notify is None:
        return ["notify: not configured (no [notify] table): replies are shown in the inbox only"]
    what = "replies and missed calls" if notify.on_missed_call else "replies"
    lines = []
    if notify.email_to:
        login = (
            f"login {notify.smtp_username}, "
            + _source("password", notify.smtp_password_source, notify.smtp_password)
            if notify.smtp_username
            else "no login"
        )
        lines.append(
            f"notify: {what} by e-mail to {', '.join(notify.email_to)} via "
            f"{notify.smtp_host}:{notify.smtp_port} ({notify.smtp_tls}; {login}), "
            f"from {notify.from_address}"
        )
    if notify.webhook_url:
        parts = urlsplit(notify.webhook_url)
        signed = (
            "signed, " + _source("secret", notify.webhook_secret_source, notify.webhook_secret)
            if notify.webhook_secret_source
            else "unsigned"
        )
        lines.append(f"notify: {what} by webhook to {parts.scheme}://{parts.hostname}/… ({signed})")
    keywords = ", ".join(notify.urgent_keywords) or "(none: nothing is urgent)"
    on_call = ", ".join(mask(number) for number in notify.on_call)
    lines.append(
        f"notify: urgent keywords {keywords}; "
        + (f"urgent replies are texted to {on_call}" if on_call else "no on-call numbers")
    )
    lines.append(
        f"notify: {notify.retry_attempts} attempts per notice, {notify.timeout:g} s each, "
        f"the first retry after {notify.retry_base_seconds:g} s, each wait doubling"
    )
    return lines


def _source(what: str, source: str, secret: Secret | None) -> str:
    if not source:
        return f"no {what}"
    return f"{what} from {source}" + (" (not available now)" if secret is None else "")
