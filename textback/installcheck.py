"""``textback install-check``: after editing the TOML, find every mistake before the first
missed call.

Shell (IO). Each check prints one line as it finishes::

    ok   asterisk: logged in to 127.0.0.1:5038 as textback (Asterisk Call Manager/9.0.0)
    FAIL gateway twilio: HTTP 401: Authenticate, fix: check the [gateway] ... keys ...
    ??   asterisk read: cannot verify call, agent and dialplan until calls happen: ...

``ok`` verified; ``warn`` works but deserves a look; ``FAIL`` will not work (the exit
status is then 1); ``??`` cannot be verified from here, and the line says why and how
to look by hand. Nothing is sent: no text, no mail, no PBX action that changes a call.

What is checked: the database file opens and its directory is writable (read-only:
never created or migrated here, so no file ends up owned by whoever ran the check);
``[web]``'s public_url is https and its listen address (and ``[metrics]``') is free;
the PBX login and what it may see (:mod:`textback.pbxcheck`); ``[notify]``'s mail
server login; the gateway's credentials through the adapter's no-send ``check()``
(:class:`~textback.gateways.base.Checkable`).
"""

from __future__ import annotations

import errno
import os
import pwd
import socket
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TextIO, cast

from textback.config import Config
from textback.config_web import NotifyConfig, WebConfig
from textback.errors import ConfigError
from textback.gateways.base import (
    NOTHING_TO_CHECK,
    AmiAction,
    FailureKind,
    Gateway,
    GatewayContext,
    GatewayError,
)
from textback.gateways.smtp import SmtpGateway
from textback.pbxcheck import check_asterisk, check_freeswitch
from textback.store import SCHEMA_VERSION


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    UNKNOWN = "??"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's outcome: one line of the report."""

    status: Status
    topic: str
    text: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status.value:<4} {self.topic}: {self.text}"
        if not self.fix:
            return text
        return text + (", to check: " if self.status is Status.UNKNOWN else ", fix: ") + self.fix


class Report:
    """Prints each finding as it comes and keeps them (see :class:`textback.pbxcheck.Report`)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.findings: list[Finding] = []

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)
        print(finding.line(), file=self._out, flush=True)

    def ok(self, topic: str, text: str) -> None:
        self.add(Finding(Status.OK, topic, text))

    def warn(self, topic: str, text: str, fix: str) -> None:
        self.add(Finding(Status.WARN, topic, text, fix))

    def fail(self, topic: str, text: str, fix: str) -> None:
        self.add(Finding(Status.FAIL, topic, text, fix))

    def unknown(self, topic: str, text: str, fix: str = "") -> None:
        self.add(Finding(Status.UNKNOWN, topic, text, fix))

    def count(self, status: Status) -> int:
        return sum(1 for finding in self.findings if finding.status is status)

    def summary(self) -> str:
        warnings = self.count(Status.WARN)
        parts = [
            f"{self.count(Status.FAIL)} failed",
            f"{warnings} warning{'' if warnings == 1 else 's'}",
            f"{self.count(Status.UNKNOWN)} not verifiable here",
            f"{self.count(Status.OK)} ok",
        ]
        return "install-check: " + ", ".join(parts)


async def run_checks(config: Config, out: TextIO) -> int:
    """Run every check that applies to ``config``, print one line each and a summary.

    Returns 0 when nothing failed (warnings and unverifiable points included), else 1.
    """
    report = Report(out)
    check_database(config.daemon.database, report)
    if config.web is not None:
        check_web(config.web, report)
    if config.metrics is not None:
        check_listen("metrics", config.metrics.host, config.metrics.port, "[metrics]", report)
    if config.notify is not None and config.notify.smtp_host:
        await check_notify_mail(config.notify, report)
    modem = config.gateway.name == "ami_modem"
    session = None
    if config.asterisk is not None:
        session = await check_asterisk(config.asterisk, report, needs_call_write=modem)
    if config.freeswitch is not None:
        await check_freeswitch(config.freeswitch, report)
    if config.asterisk is None and config.freeswitch is None:
        report.fail(
            "pbx",
            "no [asterisk] or [freeswitch] table: textback run would not start",
            "keep the one for your PBX from textback.example.toml",
        )
    try:
        if modem and config.asterisk is not None and session is None:
            report.unknown(
                f"gateway {config.gateway.name}",
                "not checked: it sends through the AMI login, which failed above",
            )
        else:
            await check_gateway(config.gateway, session.action if session else None, report)
    finally:
        if session is not None:
            await session.close()
    print(report.summary(), file=out, flush=True)
    return 1 if report.count(Status.FAIL) else 0


# -- the database ----------------------------------------------------------------------------


def check_database(path: Path, report: Report) -> None:
    """The directory exists and is writable; an existing file is a database this textback reads.

    Read-only: the file is opened ``immutable`` (no -wal/-shm files made), never created
    or migrated, so running the check as root leaves nothing the service cannot open.
    """
    topic, who = "database", _whoami()
    directory = path.parent
    if not directory.is_dir():
        report.fail(
            topic,
            f"directory {directory} does not exist",
            f"mkdir -p {directory} and give it to the user textback runs as, or start the "
            "service once: the unit's StateDirectory= creates it",
        )
        return
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        report.fail(
            topic,
            f"{who} cannot create files in {directory} ({exc.strerror or exc}); SQLite keeps "
            "its -wal and -shm files there",
            "give the directory to the user textback runs as, or set [daemon] database to a "
            "file in a directory it owns",
        )
        return
    if not path.exists():
        report.ok(topic, f"{directory} is writable by {who}; {path.name} is created at start")
        return
    if not os.access(path, os.R_OK | os.W_OK):
        report.fail(
            topic,
            f"{who} cannot read and write {path}",
            "give the file to the user textback runs as (chown)",
        )
        return
    try:
        version = schema_version(path)
    except sqlite3.Error as exc:
        report.fail(
            topic,
            f"cannot open {path}: {exc}",
            "is it a textback database? Move it away to start with a new one",
        )
        return
    if version > SCHEMA_VERSION:
        report.fail(
            topic,
            f"{path} has schema version {version}, newer than this textback's {SCHEMA_VERSION}",
            "upgrade textback, or point [daemon] database at another file",
        )
        return
    later = " (migrated at the next start)" if version < SCHEMA_VERSION else ""
    report.ok(topic, f"{path} opens, schema version {version}{later}, writable by {who}")


def schema_version(path: Path) -> int:
    """The file's ``user_version``; sqlite3.Error when it is not a SQLite database.

    ``immutable``: no lock, no -wal or -shm file. A running daemon's last commit may
    still sit in its -wal, so the version read can lag one migration behind.
    """
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True)
    try:
        # sqlite_master is read from the file itself: a non-database fails here.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        return int(version)
    finally:
        conn.close()


def _whoami() -> str:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid {uid}"
    return f"{name} (not necessarily the service's user)" if uid == 0 else name


# -- the web server --------------------------------------------------------------------------


def check_web(web: WebConfig, report: Report) -> None:
    if web.public_url.startswith("https://"):
        report.ok("web", f"public_url {web.public_url} is https")
    else:
        report.warn(
            "web",
            f"public_url {web.public_url} is plain http: most providers refuse to post "
            "replies to it and inbox passwords cross the network unencrypted",
            "serve textback behind a reverse proxy with HTTPS and set public_url to its "
            "https:// address",
        )
    check_listen("web", web.host, web.port, "[web]", report)


def check_listen(topic: str, host: str, port: int, table: str, report: Report) -> None:
    """Whether a server could listen on ``host:port`` now (bound and released at once)."""
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        report.fail(topic, f"{host} does not resolve ({exc.strerror})", f"fix listen in {table}")
        return
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            # As aiohttp's server does: a closed connection in TIME_WAIT is no obstacle.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                report.fail(topic, *_bind_problem(listen, port, table, exc))
                return
    report.ok(topic, f"{listen} is free to listen on")


def _bind_problem(listen: str, port: int, table: str, exc: OSError) -> tuple[str, str]:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{listen} is in use (by textback itself if the service is running)",
            f"stop what listens there (ss -ltnp 'sport = :{port}' names it) or change "
            f"listen in {table}",
        )
    if exc.errno == errno.EACCES:
        return (
            f"listening on {listen} needs privileges textback does not have",
            f"use a port above 1023 in {table} listen; the reverse proxy takes 443",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"{listen} is not an address of this machine",
            f"use one of its addresses (or 127.0.0.1) in {table} listen",
        )
    return f"cannot listen on {listen}: {exc.strerror or exc}", f"check listen in {table}"


# -- staff notifications ---------------------------------------------------------------------


async def check_notify_mail(notify: NotifyConfig, report: Report) -> None:
    """[notify]'s mail server: the same connect, EHLO and login the smtp gateway's check does."""
    server = SmtpGateway(
        host=notify.smtp_host,
        port=notify.smtp_port,
        tls=notify.smtp_tls,
        username=notify.smtp_username or None,
        password=notify.smtp_password,
        from_address=notify.from_address,
        to_template="{e164}@unused.invalid",  # never rendered: nothing is sent
    )
    try:
        report.ok("notify mail", await server.check())
    except GatewayError as exc:
        report.fail(
            "notify mail",
            exc.detail,
            "check smtp_host, smtp_port, smtp_tls, smtp_username and the password in [notify]",
        )


# -- the gateway -----------------------------------------------------------------------------

_FIXES = {
    FailureKind.CONFIG: "check the [gateway] keys and the secret against the provider's console",
    FailureKind.TRANSIENT: "check that this machine reaches the provider (DNS, firewall, "
    "proxy), then run install-check again",
}


async def check_gateway(gateway: Gateway, ami_action: AmiAction | None, report: Report) -> None:
    """Start the adapter, run its no-send ``check()`` and close it."""
    topic = f"gateway {gateway.name}"
    check = getattr(gateway, "check", None)
    if not callable(check):
        report.unknown(
            topic,
            "this adapter has no check(): only a real text proves it",
            "textback send-test sends one",
        )
        return
    try:
        await gateway.start(GatewayContext(ami_action=ami_action))
        described = await cast("Callable[[], Awaitable[str]]", check)()
    except GatewayError as exc:
        fix = _FIXES.get(exc.kind, "see the provider's message; textback send-test tries a text")
        report.fail(topic, exc.detail + (f" (code {exc.code})" if exc.code else ""), fix)
        return
    except ConfigError as exc:
        report.fail(topic, "; ".join(exc.problems), "see textback check-config")
        return
    finally:
        await gateway.aclose()
    if described.startswith(NOTHING_TO_CHECK):
        report.unknown(topic, described)
    else:
        report.ok(topic, described)
