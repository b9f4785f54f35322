"""The PBX half of ``textback install-check``: log in the way the daemon will, and say what the
login may see.

Shell (IO), with the reply parsing kept in pure functions. One short session per PBX,
on plain asyncio streams; nothing that changes a call is ever sent.

**Asterisk (AMI).** What is verified, and how:

* the connection and the Login, with the configured username and secret;
* ``write`` allows ``CoreShowChannels`` (system or reporting): the action is run;
* ``read`` includes ``system``: Asterisk sends ``FullyBooted`` right after a Login whose
  ``Events:`` and read classes allow it (we log in with ``Events: system``);
* every read and write class, when the user may run ``Action: Command``
  (``write=command``, rarely granted and not needed by textback): the output of
  ``manager show user <name>``. Without it, ``call``, ``agent`` and ``dialplan`` cannot
  be seen until calls happen, and the report says so instead of guessing;
* ``channelvars`` (``CALLERID(pres)``, ``FROM_DID``): on the channels
  ``CoreShowChannels`` lists when a call is up (each carries a ``ChanVariable`` line
  per variable), else from ``manager show settings`` when ``Command`` is allowed,
  else reported as not verifiable now.

``Action: Command`` answers in two shapes: Asterisk 14+ sends one ``Output:`` header per
line; Asterisk 13 and older send ``Response: Follows``, the CLI's raw text (which may
hold blank lines) and ``--END COMMAND--``. :func:`frame_end` cuts both; ordinary frames
go through :class:`~textback.pbx.ami_proto.AmiFramer`.

**FreeSWITCH (event socket).** The ACL lets us in, ``auth`` is accepted,
``api show channels as json`` answers JSON, and the subscription textback sends is
accepted.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import deque
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Final, Protocol

from textback.config import AsteriskConfig, FreeswitchConfig
from textback.pbx import ami_source, esl_source
from textback.pbx.ami_proto import BANNER_PREFIX, AmiFramer, AmiMessage
from textback.pbx.esl_proto import (
    API_RESPONSE,
    API_SHOW_CHANNELS,
    AUTH_REQUEST,
    COMMAND_REPLY,
    EVENT_CONTENT_TYPES,
    RUDE_REJECTION,
    SUBSCRIBED_CUSTOM,
    SUBSCRIBED_EVENTS,
    EslFrame,
    EslFramer,
    auth_command,
    parse_show_channels,
    subscribe_command,
)
from textback.pbx.link import describe_error

# Read classes the correlator needs (calls, queue answers, restarts) and the one it can
# do without (voicemail is then found by context only).
NEEDED_READ: Final = ("system", "call", "agent")
_MISSED: Final = {"system": "PBX restarts", "call": "calls", "agent": "queue answers"}
OPTIONAL_READ: Final = ("dialplan",)
# The channel variables manager.conf's channelvars should name, and why.
PRESENTATION_VAR: Final = "CALLERID(pres)"
DID_VAR: Final = "FROM_DID"
CHANNELVARS_FIX: Final = (
    "add channelvars = CALLERID(pres),FROM_DID to [general] in manager.conf, then "
    'asterisk -rx "manager reload"'
)
# Asterisk prints at most this many characters of a `manager show settings` value.
SETTINGS_WIDTH: Final = 55
_END: Final = re.compile(rb"\r?\n\r?\n")
_FOLLOWS: Final = b"Response: Follows"
_COMMAND_END: Final = re.compile(rb"--END COMMAND--[ \t]*\r?\n(?:\r?\n)?")
_REPLY_HEADERS: Final = frozenset({"response", "actionid", "message", "privilege"})
_READ_SIZE: Final = 65536


class Report(Protocol):
    """Where the checks say what they found: one line each, as they go."""

    def ok(self, topic: str, text: str) -> None: ...
    def warn(self, topic: str, text: str, fix: str) -> None: ...
    def fail(self, topic: str, text: str, fix: str) -> None: ...
    def unknown(self, topic: str, text: str, fix: str = "") -> None: ...


class SessionLost(Exception):
    """The PBX closed the session or stopped answering."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- AMI: pure parsing ---------------------------------------------------------------------


def frame_end(buffer: bytes | bytearray) -> int | None:
    """Where the first complete AMI frame in ``buffer`` ends (past its blank line), or None.

    A ``Response: Follows`` reply (Asterisk 13's ``Command``) ends at ``--END COMMAND--``,
    not at its first blank line: the CLI text inside it may have blank lines of its own.
    """
    if bytes(buffer[: len(_FOLLOWS)]) == _FOLLOWS:
        found = _COMMAND_END.search(buffer)
    else:
        found = _END.search(buffer)
    return found.end() if found is not None else None


def reply_headers(text: str) -> dict[str, str]:
    """The reply headers (Response, ActionID, Message, Privilege) at the top of a frame."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep or key.lower() not in _REPLY_HEADERS:
            break
        headers.setdefault(key, value.strip())
    return headers


def command_output(text: str) -> list[str]:
    """The CLI output lines in a ``Command`` reply, in either of Asterisk's shapes."""
    lines: list[str] = []
    in_headers = True
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip() == "--END COMMAND--":
            break
        if line.startswith("Output:"):
            lines.append(line.removeprefix("Output:").removeprefix(" "))
            in_headers = False
            continue
        key, sep, _ = line.partition(":")
        if in_headers and sep and key.lower() in _REPLY_HEADERS:
            continue
        in_headers = False
        lines.append(line)
    return lines


def classes(text: str) -> frozenset[str]:
    """A manager.conf permission list (``system,call``, ``all``, ``<none>``) as a set."""
    found = frozenset(part.strip().lower() for part in text.split(",") if part.strip())
    return found - {"<none>"}


def channels_up(count: int) -> str:
    return f"{count} channel{'' if count == 1 else 's'} up now"


def grants(granted: frozenset[str], name: str) -> bool:
    return name in granted or "all" in granted


@dataclass(frozen=True, slots=True)
class ManagerUser:
    """What ``manager show user <name>`` says about an AMI user."""

    read: frozenset[str]
    write: frozenset[str]


def parse_manager_user(lines: Sequence[str]) -> ManagerUser | None:
    """The read and write classes in ``manager show user`` output; None if they are not there."""
    fields: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    if "read perm" not in fields or "write perm" not in fields:
        return None
    return ManagerUser(classes(fields["read perm"]), classes(fields["write perm"]))


def parse_channelvars(lines: Sequence[str]) -> str | None:
    """The ``Channel vars:`` value of ``manager show settings``; None if the line is absent."""
    for line in lines:
        label, sep, value = line.strip().partition(":")
        if sep and label.strip().lower() == "channel vars":
            return value.strip()
    return None


def names(channelvars: str) -> frozenset[str]:
    """channelvars' names, upper-cased: Asterisk matches function names in any case."""
    return frozenset(part.strip().upper() for part in channelvars.split(",") if part.strip())


# -- AMI: the session ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandReply:
    """A ``Command`` action's reply: refused (``Message`` says why) or the output lines."""

    refused: bool
    message: str
    lines: list[str]


class AmiCheckSession:
    """One AMI session over asyncio streams; every wait is bounded by ``patience`` seconds."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, patience: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._patience = patience
        self._framer = AmiFramer()
        self._buffer = bytearray()
        self._frames: deque[bytes] = deque()
        self._banner_done = False
        self._ids = itertools.count(1)
        self.banner: str | None = None
        self.events: list[AmiMessage] = []  # events that arrived between replies

    @classmethod
    async def open(cls, host: str, port: int, patience: float) -> AmiCheckSession:
        """Connect; OSError or TimeoutError when nothing listens there."""
        async with asyncio.timeout(patience):
            reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, patience)

    async def request(self, fields: Mapping[str, str]) -> list[AmiMessage]:
        """Send an action; its reply, and for an event list every item up to the last."""
        action_id = self._send(fields)
        replies = [await self._reply(action_id)]
        if replies[0].get("EventList", "").lower() == "start":
            while replies[-1].get("EventList", "").lower() not in ("complete", "cancelled"):
                replies.append(await self._reply(action_id))
        return replies

    async def action(self, fields: Mapping[str, str]) -> Mapping[str, str]:
        """An :data:`~textback.gateways.base.AmiAction`: the reply, with an event list's
        ``ListItems`` (from its closing event) added."""
        replies = await self.request(fields)
        first = dict(replies[0])
        if len(replies) > 1 and "ListItems" in replies[-1]:
            first["ListItems"] = replies[-1]["ListItems"]
        return first

    async def command(self, text: str) -> CommandReply:
        """Run a CLI command through ``Action: Command`` (needs write=command)."""
        action_id = self._send({"Action": "Command", "Command": text})
        while True:
            raw = await self._next_frame()
            decoded = raw.decode("utf-8", "replace")
            headers = reply_headers(decoded)
            if "Response" not in headers or headers.get("ActionID") != action_id:
                self._take(raw)
                continue
            output = command_output(decoded)
            message = headers.get("Message", "")
            # Asterisk answers a refused or blacklisted command with an Error and no output;
            # a command that ran but failed is "Error" too, with its output following.
            refused = headers["Response"].lower() == "error" and message != (
                "Command output follows"
            )
            return CommandReply(refused, message, output)

    async def close(self) -> None:
        """Log off politely, then close; never raises."""
        try:
            self._send({"Action": "Logoff"})
            async with asyncio.timeout(self._patience):
                await self._writer.drain()
        except (OSError, TimeoutError):
            pass
        self._writer.close()
        try:
            async with asyncio.timeout(self._patience):
                await self._writer.wait_closed()
        except (OSError, TimeoutError):
            pass

    def _send(self, fields: Mapping[str, str]) -> str:
        action_id = f"install-check-{next(self._ids)}"
        lines = [*(f"{key}: {value}" for key, value in fields.items()), f"ActionID: {action_id}"]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return action_id

    async def _reply(self, action_id: str) -> AmiMessage:
        while True:
            for message in self._take(await self._next_frame()):
                if message.get("ActionID") == action_id:
                    return message

    def _take(self, raw: bytes) -> list[AmiMessage]:
        """Parse one frame; keep events aside, return what answers actions."""
        messages, _ = self._framer.receive_data(raw)
        replies: list[AmiMessage] = []
        for message in messages:
            if "ActionID" in message:
                replies.append(message)
            else:
                self.events.append(message)
        return replies

    async def _next_frame(self) -> bytes:
        while not self._frames:
            self._cut()
            if self._frames:
                break
            try:
                async with asyncio.timeout(self._patience):
                    data = await self._reader.read(_READ_SIZE)
            except TimeoutError:
                raise SessionLost(f"no reply within {self._patience:g} s") from None
            except OSError as exc:
                raise SessionLost(f"connection lost: {describe_error(exc)}") from None
            if not data:
                raise SessionLost("the PBX closed the connection")
            self._buffer += data
        return self._frames.popleft()

    def _cut(self) -> None:
        if not self._banner_done:
            if not self._buffer:
                return
            head = bytes(self._buffer[: len(BANNER_PREFIX)])
            if BANNER_PREFIX.startswith(head):  # a banner, maybe not all of it yet
                newline = self._buffer.find(b"\n")
                if len(head) < len(BANNER_PREFIX) or newline < 0:
                    return
                self.banner = self._buffer[:newline].decode("utf-8", "replace").strip()
                del self._buffer[: newline + 1]
            self._banner_done = True
        while True:
            # A blank line the last frame left (after a bare "--END COMMAND--\r\n").
            while self._buffer and self._buffer[0] in b"\r\n":
                del self._buffer[:1]
            end = frame_end(self._buffer)
            if end is None:
                return
            self._frames.append(bytes(self._buffer[:end]))
            del self._buffer[:end]


# -- AMI: the checks -----------------------------------------------------------------------


async def check_asterisk(
    ami: AsteriskConfig, report: Report, *, needs_call_write: bool
) -> AmiCheckSession | None:
    """Every Asterisk check, in order; the logged-in session when the Login worked.

    ``needs_call_write``: texts go out through a modem on the PBX (write=call).
    The caller closes the session (the modem check runs on it).
    """
    topic, where = "asterisk", f"{ami.host}:{ami.port}"
    if ami.secret is None:
        report.fail(
            topic,
            f"the AMI secret could not be read ({ami.secret_source or 'not set'})",
            "make secret_file readable or secret_env set for the user textback runs as",
        )
        return None
    if any(c in ami.username + ami.secret.reveal() for c in "\r\n"):
        # It would end the Login action early and inject headers.
        report.fail(
            topic,
            "the AMI username or secret contains a line break",
            "write the secret on one line (a trailing newline is ignored)",
        )
        return None
    try:
        session = await AmiCheckSession.open(ami.host, ami.port, ami.connect_timeout)
    except (OSError, TimeoutError) as exc:
        report.fail(
            topic,
            f"cannot connect to {where}: {describe_error(exc)}",
            "start Asterisk and check manager.conf [general]: enabled = yes, and bindaddr and "
            "port matching [asterisk] host and port here",
        )
        return None
    logged_in = False
    try:
        logged_in = await _log_in(session, ami, report)
        if logged_in:
            await _check_permissions(session, ami, report, needs_call_write=needs_call_write)
            return session
    except SessionLost as lost:
        fix = (
            "see the Asterisk log for why it dropped the session, then run install-check again"
            if logged_in
            else "check that port is AMI's (manager.conf port, usually 5038), not SIP or HTTP"
        )
        report.fail(topic, f"{where} stopped answering: {lost.reason}", fix)
    await session.close()
    return None


async def _log_in(session: AmiCheckSession, ami: AsteriskConfig, report: Report) -> bool:
    assert ami.secret is not None
    login = {
        "Action": "Login",
        "Username": ami.username,
        "Secret": ami.secret.reveal(),
        # Only "system": FullyBooted (which proves read=system) and nothing chatty.
        "Events": "system",
    }
    reply = (await session.request(login))[0]
    where = f"{ami.host}:{ami.port}"
    if reply.get("Response", "").lower() != "success":
        report.fail(
            "asterisk",
            f"{where} refused the login as {ami.username} ({reply.get('Message', 'no reason')})",
            f"the secret in manager.conf [{ami.username}] must equal the one textback reads "
            f"({ami.secret_source or 'secret_file/secret_env'}); the user's permit= must allow "
            'this host; then asterisk -rx "manager reload" (with allowmultiplelogin = no, '
            "a running textback holds the only login)",
        )
        return False
    banner = f" ({session.banner})" if session.banner else ""
    report.ok("asterisk", f"logged in to {where} as {ami.username}{banner}")
    return True


async def _check_permissions(
    session: AmiCheckSession, ami: AsteriskConfig, report: Report, *, needs_call_write: bool
) -> None:
    channels = await _check_resync(session, report)
    shown = await session.command(f"manager show user {ami.username}")
    user = None if shown.refused else parse_manager_user(shown.lines)
    fully_booted = any(e.get("Event") == "FullyBooted" for e in session.events)
    if user is None:
        why = (
            f"the user may not run Action: Command ({shown.message})"
            if shown.refused
            else "manager show user gave no read/write perm lines"
        )
        _read_unverified(ami.username, fully_booted, why, report)
        if needs_call_write:
            report.unknown(
                "asterisk write",
                f"cannot see whether write includes call (DongleSendSMS needs it): {why}",
                f'asterisk -rx "manager show user {ami.username}" should list call under '
                "write perm",
            )
    else:
        _read_verified(ami.username, user, report)
        _write_verified(ami.username, user, report, needs_call_write=needs_call_write)
    await _check_channelvars(session, channels, can_command=user is not None, report=report)


async def _check_resync(session: AmiCheckSession, report: Report) -> list[AmiMessage] | None:
    """CoreShowChannels, as after every reconnect; the channels, or None when refused."""
    replies = await session.request({"Action": "CoreShowChannels"})
    if replies[0].get("Response", "").lower() != "success":
        report.fail(
            "asterisk write",
            f"CoreShowChannels refused ({replies[0].get('Message', 'no reason')}): after a "
            "reconnect textback could not see the calls already up",
            ami_source.RESYNC_HINT,
        )
        return None
    channels = [m for m in replies if m.get("Event") == "CoreShowChannel"]
    report.ok("asterisk write", f"CoreShowChannels works ({channels_up(len(channels))})")
    return channels


def _read_fix(username: str) -> str:
    return (
        f"set read = system,call,agent,dialplan in [{username}] of manager.conf, then "
        'asterisk -rx "manager reload"'
    )


def _read_unverified(username: str, fully_booted: bool, why: str, report: Report) -> None:
    if fully_booted:
        report.ok("asterisk read", "includes system (FullyBooted arrived after the login)")
    else:
        report.warn(
            "asterisk read",
            "no FullyBooted after the login: read lacks system (or Asterisk is still starting)",
            _read_fix(username),
        )
    report.unknown(
        "asterisk read",
        "cannot verify call, agent and dialplan until calls happen: "
        f"{why}; textback does not need write=command",
        f'asterisk -rx "manager show user {username}" should list '
        "system,call,agent,dialplan under read perm",
    )


def _read_verified(username: str, user: ManagerUser, report: Report) -> None:
    missing = [c for c in NEEDED_READ if not grants(user.read, c)]
    if missing:
        missed = " and ".join(_MISSED[c] for c in missing)
        report.fail(
            "asterisk read",
            f"read lacks {', '.join(missing)}: textback would not see {missed}",
            _read_fix(username),
        )
        return
    lacking = [c for c in OPTIONAL_READ if not grants(user.read, c)]
    note = " (no dialplan: voicemail is recognised by context only)" if lacking else ", dialplan"
    report.ok("asterisk read", f"includes {', '.join(NEEDED_READ)}{note}")


def _write_verified(
    username: str, user: ManagerUser, report: Report, *, needs_call_write: bool
) -> None:
    if needs_call_write and not grants(user.write, "call"):
        report.fail(
            "asterisk write",
            "write lacks call: the modem gateway's DongleSendSMS / QuectelSendSMS would be refused",
            f"add call to write = in [{username}] of manager.conf, then "
            'asterisk -rx "manager reload"',
        )
    if grants(user.write, "command"):
        report.warn(
            "asterisk write",
            "write includes command, which runs any CLI command; textback does not need it",
            f"remove command from write = in [{username}] once install-check has passed",
        )


async def _check_channelvars(
    session: AmiCheckSession,
    channels: list[AmiMessage] | None,
    *,
    can_command: bool,
    report: Report,
) -> None:
    topic = "asterisk channelvars"
    if channels:
        seen = {
            key.removeprefix("ChanVariable[").removesuffix("]").upper()
            for channel in channels
            for key in channel
            if key.startswith("ChanVariable[")
        }
        _judge_channelvars(seen, f"on the {channels_up(len(channels))}", False, report)
        return
    if can_command:
        settings = await session.command("manager show settings")
        value = None if settings.refused else parse_channelvars(settings.lines)
        if value is not None:
            truncated = len(value) >= SETTINGS_WIDTH
            _judge_channelvars(names(value), "in manager show settings", truncated, report)
            return
    report.unknown(
        topic,
        "cannot verify now: no call is up to show them, and the user may not run "
        "manager show settings (write=command)",
        'asterisk -rx "manager show settings" should show Channel vars: '
        "CALLERID(pres),FROM_DID; or run install-check again during a call",
    )


def _judge_channelvars(seen: AbstractSet[str], where: str, cut: bool, report: Report) -> None:
    """``seen``: the variable names found, upper-cased."""
    topic = "asterisk channelvars"
    if PRESENTATION_VAR.upper() not in seen:
        if cut:
            report.unknown(
                topic,
                f"{PRESENTATION_VAR} not among the first {SETTINGS_WIDTH} characters {where}",
                "grep channelvars /etc/asterisk/manager*.conf shows the whole line",
            )
            return
        report.fail(
            topic,
            f"{PRESENTATION_VAR} missing {where}: a caller who withheld the number "
            "would look like one who did not, and could get a text",
            CHANNELVARS_FIX,
        )
        return
    if DID_VAR.upper() not in seen and not cut:
        report.warn(
            topic,
            f"{PRESENTATION_VAR} present but {DID_VAR} missing {where}: calls whose trunk "
            'sends the DID only in the To header (Exten "s") lose their DID',
            CHANNELVARS_FIX,
        )
        return
    report.ok(topic, f"{PRESENTATION_VAR} and {DID_VAR} present {where}")


# -- FreeSWITCH ------------------------------------------------------------------------------


class _EslLink:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, patience: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._patience = patience
        self._framer = EslFramer()
        self._frames: deque[EslFrame] = deque()

    async def frame(self) -> EslFrame:
        while not self._frames:
            try:
                async with asyncio.timeout(self._patience):
                    data = await self._reader.read(_READ_SIZE)
            except TimeoutError:
                raise SessionLost(f"no reply within {self._patience:g} s") from None
            except OSError as exc:
                raise SessionLost(f"connection lost: {describe_error(exc)}") from None
            if not data:
                raise SessionLost("FreeSWITCH closed the connection")
            frames, _ = self._framer.receive_data(data)
            self._frames.extend(frames)
        return self._frames.popleft()

    async def reply_to(self, command: bytes, content_type: str) -> EslFrame:
        """Send ``command`` and return the next frame of ``content_type`` (events skipped)."""
        self._writer.write(command)
        while True:
            frame = await self.frame()
            if frame.content_type == content_type:
                return frame
            if frame.content_type not in EVENT_CONTENT_TYPES:
                raise SessionLost(f"unexpected {frame.content_type or 'frame'} in reply")

    async def close(self) -> None:
        self._writer.close()
        try:
            async with asyncio.timeout(self._patience):
                await self._writer.wait_closed()
        except (OSError, TimeoutError):
            pass


async def check_freeswitch(fs: FreeswitchConfig, report: Report) -> None:
    """Every FreeSWITCH check, in order; one session, closed before returning."""
    topic, where = "freeswitch", f"{fs.host}:{fs.port}"
    if fs.password is None:
        report.fail(
            topic,
            f"the event socket password could not be read ({fs.password_source or 'not set'})",
            "make password_file readable or password_env set for the user textback runs as",
        )
        return
    try:
        async with asyncio.timeout(fs.connect_timeout):
            reader, writer = await asyncio.open_connection(fs.host, fs.port)
    except (OSError, TimeoutError) as exc:
        report.fail(
            topic,
            f"cannot connect to {where}: {describe_error(exc)}",
            "start FreeSWITCH with mod_event_socket loaded, listen-ip and listen-port in "
            "event_socket.conf.xml matching [freeswitch] host and port here",
        )
        return
    link = _EslLink(reader, writer, fs.connect_timeout)
    try:
        await _esl_checks(link, fs, report)
    except SessionLost as lost:
        report.fail(
            topic,
            f"{where} stopped answering: {lost.reason}",
            "check that port is the event socket's (listen-port, usually 8021)",
        )
    finally:
        await link.close()


async def _esl_checks(link: _EslLink, fs: FreeswitchConfig, report: Report) -> None:
    assert fs.password is not None
    topic, where = "freeswitch", f"{fs.host}:{fs.port}"
    hello = await link.frame()
    if hello.content_type == RUDE_REJECTION:
        report.fail(topic, f"{where} rejected this host (event socket ACL)", esl_source.ACL_HINT)
        return
    if hello.content_type != AUTH_REQUEST:
        report.fail(
            topic,
            f"{where} is not a FreeSWITCH event socket (it sent {hello.content_type or 'no'} "
            "Content-Type)",
            "check [freeswitch] port against listen-port in event_socket.conf.xml",
        )
        return
    reply = await link.reply_to(auth_command(fs.password.reveal()), COMMAND_REPLY)
    if not reply.reply_text.startswith("+OK"):
        report.fail(
            topic, f"{where} refused the password ({reply.reply_text})", esl_source.AUTH_HINT
        )
        return
    report.ok(topic, f"logged in to the event socket at {where}")
    answer = await link.reply_to(API_SHOW_CHANNELS, API_RESPONSE)
    rows = parse_show_channels(answer.body)
    if rows is None:
        first_line = answer.text().strip().partition("\n")[0][:80]
        report.fail(
            topic,
            f"api show channels as json gave no JSON ({first_line or 'empty'}): after a "
            "reconnect textback could not see the calls already up",
            "the event socket user must be allowed the api command show (no "
            "apply-inbound-acl or api restrictions on it)",
        )
    else:
        report.ok(topic, f"api show channels as json answers ({channels_up(len(rows))})")
    subscribed = await link.reply_to(subscribe_command(fs.events_format), COMMAND_REPLY)
    count = len(SUBSCRIBED_EVENTS) + len(SUBSCRIBED_CUSTOM)
    if subscribed.reply_text.startswith("+OK"):
        report.ok(topic, f"subscription to the {count} events textback reads accepted")
    else:
        report.fail(
            topic,
            f"the event subscription was refused ({subscribed.reply_text})",
            f'check events_format ("plain" or "json"), now "{fs.events_format}"',
        )
