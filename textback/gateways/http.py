"""HTTP plumbing shared by the HTTP gateway adapters.

An adapter subclasses :class:`HttpAdapterBase` (which gives it ``start``/``aclose``
and one ``aiohttp.ClientSession`` with a total timeout, so connections are reused)
and calls :meth:`HttpAdapterBase.post` / :meth:`HttpAdapterBase.get`. Those return
an :class:`HttpReply` whatever the status, and raise
``GatewayError(FailureKind.TRANSIENT)`` when no reply came (DNS, refused, reset,
timeout), with ``maybe_sent=True`` unless the connection never opened. The
adapter then reads its vendor's error code from the reply and turns it into a
``GatewayError`` with :func:`failure`, which falls back on the HTTP status
(:func:`classify_http_status`) and carries ``Retry-After`` (:func:`retry_after`)
on transient failures.

Example::

    reply = await self.post(url, data=fields, auth=(user, secret.reveal()))
    if reply.status == 201:
        return SendReceipt(str(reply.field("sid")))
    raise failure(reply, code=vendor_code(reply.field("code")), codes=CODES)

Adapters read their TOML with ``textback.tomltable.Table`` plus the helpers here
(:func:`read_timeout`, :func:`read_base_url`, :func:`read_e164`, :func:`read_matching`,
:func:`secret_hint`).
"""

from __future__ import annotations

import base64
import json as jsonlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from textback import __version__
from textback.gateways.base import FailureKind, GatewayContext, GatewayError
from textback.tomltable import SecretSpec, Table

USER_AGENT: Final = f"textback/{__version__}"
# A vendor's reply is a few hundred bytes; more is a misconfigured base_url (an HTML page).
MAX_BODY: Final = 64 * 1024
DEFAULT_TIMEOUT: Final = 10.0
# A Retry-After beyond this is treated as this: the outbox's max_age decides when to give up.
MAX_RETRY_AFTER: Final = 24 * 3600.0

E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")

Fields = Mapping[str, str]


def read_timeout(s: Table, default: float = DEFAULT_TIMEOUT) -> float:
    """The ``timeout`` key every HTTP adapter takes: seconds for one request, end to end."""
    return s.number(
        "timeout",
        default,
        ok=lambda v: 0 < v <= 300,
        expected="seconds between 0 and 300",
        fix=f"the longest wait for the provider's reply, e.g. timeout = {default:g}",
    )


def secret_hint(spec: SecretSpec) -> str:
    """The fix for a secret pasted straight into the table (``auth_token = "..."``)."""
    return f"the {spec.what} itself never goes in the TOML — {spec.howto}"


def read_matching(
    s: Table,
    name: str,
    pattern: re.Pattern[str],
    *,
    shape: str,
    fix: str,
    wrong_fix: str | None = None,
    required: bool = False,
) -> str | None:
    """A string key that must match ``pattern`` whole; None when absent or bad.

    A value that does not match is recorded as ``"<value>" is not <shape> — <wrong_fix>``
    (``wrong_fix`` defaults to ``fix``, the text for a missing or non-string value).
    """
    value = s.string(name, "", fix=fix, required=required)
    if not value or name in s.bad:
        return None
    if not pattern.fullmatch(value):
        s.problem(name, f'"{value}" is not {shape} — {wrong_fix or fix}')
        return None
    return value


def read_e164(s: Table, name: str, *, fix: str, required: bool = False) -> str | None:
    """An E.164 number key ("+14155550100"); None when absent or bad (a problem is recorded)."""
    shape = 'an E.164 number like "+14155550100"'
    return read_matching(s, name, E164, shape=shape, fix=fix, required=required)


def check_sender(s: Table, pool: str, *, neither: str, both: str | None = None) -> None:
    """Check that a send has a sender: the ``from`` key, or ``pool`` (a key naming a
    vendor-side sender pool, such as a Messaging Service).

    Neither is recorded against the table as ``no sender — <neither>``; both, when the
    vendor refuses that, as the problem ``both`` of the ``pool`` key.
    """
    has_from, has_pool = "from" in s.data, pool in s.data
    if has_from and has_pool:
        if both is not None:
            s.problem(pool, both)
    elif not has_from and not has_pool:
        s.problems.append(f"{s.path}: no sender — {neither}")


def read_base_url(s: Table, default: str) -> str:
    """The ``base_url`` key of a vendor adapter: the vendor's API root unless proxied or tested."""
    return s.url(
        "base_url",
        default,
        fix=f'leave it out to use "{default}"; set it only for a proxy or a test',
    )


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A complete HTTP reply (any status)."""

    status: int
    headers: CIMultiDictProxy[str] = field(repr=False)
    body: bytes = field(repr=False)

    def json(self) -> object:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return jsonlib.loads(self.body)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            return None

    def field(self, *path: str | int) -> object:
        """A value deep in a JSON body (``reply.field("data", "id")``), or None when absent."""
        node = self.json()
        for step in path:
            if isinstance(step, str) and isinstance(node, dict):
                node = node.get(step)
            elif (
                isinstance(step, int) and isinstance(node, list) and -len(node) <= step < len(node)
            ):
                node = node[step]
            else:
                return None
        return node

    def text(self, limit: int = 200) -> str:
        """The body as text, cut to ``limit`` characters, for error details."""
        text = " ".join(self.body.decode("utf-8", "replace").split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    @property
    def retry_after(self) -> float | None:
        return retry_after(self.headers)


def retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None.

    Unparseable values are ignored rather than trusted; the result is clamped to
    ``0 .. MAX_RETRY_AFTER``.
    """
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def classify_http_status(status: int) -> FailureKind | None:
    """What an HTTP status alone says about a send; None for 2xx (the vendor's body decides).

    401/403 and 3xx (a wrong ``base_url``) are CONFIG; 408, 425, 429 and 5xx are
    TRANSIENT; any other status is PERMANENT (retrying the same request fails the
    same way).
    """
    if 200 <= status < 300:
        return None
    if status in (401, 403) or 300 <= status < 400:
        return FailureKind.CONFIG
    if status in (408, 425, 429) or status >= 500:
        return FailureKind.TRANSIENT
    return FailureKind.PERMANENT


def failure(
    reply: HttpReply,
    *,
    code: str = "",
    codes: Mapping[str, FailureKind] | None = None,
    detail: str = "",
    default: FailureKind | None = None,
    wait: float | None = None,
) -> GatewayError:
    """The GatewayError for a failed reply.

    The kind comes from ``codes[code]`` when the vendor's code is known, else from
    ``default`` when given, else from the HTTP status (a 2xx with an error body,
    as Vonage and VoIP.ms send, counts as PERMANENT). ``detail`` defaults to the
    start of the body. ``retry_after`` is set on TRANSIENT failures from ``wait``
    when given (a vendor's own rate-limit header) else from ``Retry-After``.
    """
    kind = (codes or {}).get(code) if code else None
    if kind is None:
        kind = default or classify_http_status(reply.status) or FailureKind.PERMANENT
    text = detail or reply.text() or "(empty body)"
    return GatewayError(
        kind,
        f"HTTP {reply.status}: {text}",
        code=code,
        retry_after=(wait if wait is not None else reply.retry_after)
        if kind is FailureKind.TRANSIENT
        else None,
    )


def accepted_unreadable(reply: HttpReply, missing: str) -> GatewayError:
    """A 2xx whose message id cannot be read: the text may be on its way, so never retry it."""
    return GatewayError(
        FailureKind.PERMANENT,
        f"HTTP {reply.status} without {missing}: {reply.text()}",
        maybe_sent=True,
    )


def vendor_code(value: object) -> str:
    """A vendor's error code from JSON (number or string) as text; "" for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return ""
    return str(value).strip()


def code_table(**kinds: tuple[str | int, ...]) -> dict[str, FailureKind]:
    """A vendor-code table written by kind: ``code_table(opted_out=(21610,), config=(20003,))``."""
    table: dict[str, FailureKind] = {}
    for kind, vendor_codes in kinds.items():
        for vendor_code in vendor_codes:
            key = str(vendor_code)
            if key in table:
                raise ValueError(f"vendor code {key} listed twice")
            table[key] = FailureKind(kind)
    return table


class HttpAdapterBase:
    """Session lifecycle and requests for an HTTP adapter; subclasses add from_config and send.

    Subclasses call ``super().__init__(timeout=...)``. ``timeout`` bounds each
    request end to end (connect, send, the whole reply).
    """

    # Providers queue texts per sender themselves: a few requests at once keep a
    # burst of missed calls moving without one slow reply holding up the rest.
    max_in_flight = 8

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self, context: GatewayContext) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": USER_AGENT},
            )
            # aiohttp re-sends an idempotent-method request (GET, PUT) once, silently, when
            # the connection drops before the reply: for a send, a second text. There is no
            # public switch; aiohttp's own test client turns it off the same way.
            self._session._retry_connection = False

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def post(
        self,
        url: str,
        *,
        data: Fields | None = None,
        json: object = None,
        params: Fields | None = None,
        auth: tuple[str, str] | None = None,
        headers: Fields | None = None,
    ) -> HttpReply:
        """POST a form (``data``) or JSON (``json``) body."""
        return await self.request(
            "POST", url, data=data, json=json, params=params, auth=auth, headers=headers
        )

    async def get(
        self,
        url: str,
        *,
        params: Fields | None = None,
        auth: tuple[str, str] | None = None,
        headers: Fields | None = None,
    ) -> HttpReply:
        return await self.request("GET", url, params=params, auth=auth, headers=headers)

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: Fields | None = None,
        json: object = None,
        params: Fields | None = None,
        auth: tuple[str, str] | None = None,
        headers: Fields | None = None,
    ) -> HttpReply:
        """One request; any HTTP status is a reply, no reply at all is a TRANSIENT GatewayError.

        Redirects are not followed: a vendor API does not redirect a send, so a 3xx
        means ``base_url`` is wrong (CONFIG by :func:`classify_http_status`).
        """
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__}.send() called before start()")
        host = URL(url).host or url
        merged = dict(headers or {})
        if auth is not None:
            merged["Authorization"] = basic_auth(*auth)
        try:
            async with self._session.request(
                method,
                url,
                data=dict(data) if data is not None else None,
                json=json,
                params=dict(params) if params is not None else None,
                headers=merged,
                allow_redirects=False,
            ) as response:
                body = b""
                # read(n) returns what has arrived so far, not n bytes: loop to the end.
                while len(body) < MAX_BODY:
                    chunk = await response.content.read(MAX_BODY - len(body))
                    if not chunk:
                        break
                    body += chunk
                return HttpReply(
                    response.status, CIMultiDictProxy(CIMultiDict(response.headers)), body
                )
        except aiohttp.ConnectionTimeoutError as exc:
            # Nothing was sent: the connection never opened.
            raise GatewayError(
                FailureKind.TRANSIENT, f"cannot connect to {host} within {self.timeout:g} s"
            ) from exc
        except TimeoutError as exc:
            # The request may have reached the vendor: the text may have gone out.
            raise GatewayError(
                FailureKind.TRANSIENT,
                f"no reply from {host} within {self.timeout:g} s",
                maybe_sent=True,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            # Nothing was sent: the connection never opened.
            raise GatewayError(
                FailureKind.TRANSIENT, f"cannot connect to {host}: {exc.os_error.strerror or exc}"
            ) from exc
        except aiohttp.ClientError as exc:
            # Reset or closed after the request went out (or while reading the reply).
            raise GatewayError(
                FailureKind.TRANSIENT,
                f"connection to {host} failed: {describe(exc)}",
                maybe_sent=True,
            ) from exc


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP Basic auth (UTF-8, RFC 7617)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "DEFAULT_TIMEOUT",
    "E164",
    "USER_AGENT",
    "HttpAdapterBase",
    "HttpReply",
    "accepted_unreadable",
    "basic_auth",
    "check_sender",
    "classify_http_status",
    "code_table",
    "failure",
    "read_base_url",
    "read_e164",
    "read_matching",
    "read_timeout",
    "retry_after",
    "secret_hint",
    "vendor_code",
]
