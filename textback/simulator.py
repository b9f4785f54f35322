"""A fake Asterisk: a real AMI server on TCP that replays recorded captures.

Shell (IO). Used by ``textback demo`` and by the tests as the PBX. It behaves
like Asterisk where textback can tell the difference: banner first, Login
checked (a wrong secret gets ``Authentication failed`` and the socket closed),
``Events:`` classes honoured, Ping / CoreShowChannels / Logoff answered, the
``write`` classes of manager.conf enforced, and ``Command`` answered for the two
CLI commands ``textback install-check`` sends (``manager show user <name>``,
``manager show settings``), in Asterisk 14+'s or Asterisk 13's reply format.

The captures play once per simulator, like time on a real PBX: the stream
starts at the first successful Login and is broadcast to every logged-in
client. A message that falls due while nobody is logged in is lost, as
events during a real outage are. Each message goes out as the exact bytes of
the capture; only the cut into TCP writes (``chunking``) and the pacing vary.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from textback.pbx.ami_proto import BANNER_PREFIX, epoch_of_uniqueid
from textback.replayserver import Chunking, ReplayClient, ReplayServer, bundled

DEFAULT_BANNER: Final = b"Asterisk Call Manager/9.0.0\r\n"
# What Asterisk sends its sessions on `core restart now`.
SHUTDOWN_EVENT: Final = (
    b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Uncleanly\r\nRestart: True\r\n\r\n"
)
_FRAME_END = re.compile(rb"\r?\n\r?\n")
_ALL_EVENTS = frozenset({"on", "yes", "true", "all", "1"})
_NO_EVENTS = frozenset({"off", "no", "false", "0", ""})
_SMS_ACTIONS: Final = {"donglesendsms": "dongle", "quectelsendsms": "quectel"}
_SHOW_DEVICES: Final = {"dongleshowdevices": "dongle", "quectelshowdevices": "quectel"}
_DIALLABLE = re.compile(r"\+?[0-9*#]+")
# The write class each action needs (any one of them), as in Asterisk and chan_dongle.
_WRITE_NEEDS: Final = {
    "coreshowchannels": frozenset({"system", "reporting"}),
    "command": frozenset({"command"}),
    "donglesendsms": frozenset({"call"}),
    "quectelsendsms": frozenset({"call"}),
    "dongleshowdevices": frozenset({"system", "reporting"}),
    "quectelshowdevices": frozenset({"system", "reporting"}),
}
# Asterisk's permission classes, in the order `manager show user` lists them.
PERMISSION_CLASSES: Final = (
    "system",
    "call",
    "log",
    "verbose",
    "command",
    "agent",
    "user",
    "config",
    "dtmf",
    "reporting",
    "cdr",
    "dialplan",
    "originate",
    "agi",
    "cc",
    "aoc",
    "test",
    "security",
    "message",
)
CommandFormat = Literal["output", "follows"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorOptions:
    """How the fake PBX behaves. The defaults replay as fast as possible."""

    username: str = "textback"
    secret: str = field(default="textback", repr=False)
    speed: float = 0.0  # 0 = as fast as possible; 1.0 = real time; 10 = ten times faster
    chunking: Chunking = "whole"  # how bytes are cut into writes
    seed: int = 0  # for random chunking
    # None = every class; else only events whose Privilege classes intersect,
    # as if manager.conf granted only these read classes.
    read_classes: frozenset[str] | None = None
    answer_pings: bool = True  # False plays a half-open, dead peer
    close_after_stream: bool = False  # drop clients once every capture is out
    channels_snapshot: list[str] | None = None  # raw CoreShowChannel event texts
    # GSM modems (chan_dongle / chan_quectel): the drivers loaded (others' SMS
    # actions are unknown commands), the devices that exist, and a refusal
    # (e.g. "Device not connected / initialized / registered") for every send.
    modem_drivers: frozenset[str] = frozenset({"dongle", "quectel"})
    modem_devices: frozenset[str] = frozenset({"dongle0", "quectel0"})
    modem_error: str | None = None
    # manager.conf write= classes of the user; None = every class (write = all).
    write_classes: frozenset[str] | None = None
    # Send FullyBooted right after each Login whose Events and read classes allow
    # "system", as Asterisk does. Off by default: the captures carry their own.
    fully_booted: bool = False
    # How `Action: Command` replies: "output" (Asterisk 14+, one Output: header per
    # line) or "follows" (Asterisk 13 and older, raw text up to --END COMMAND--).
    command_format: CommandFormat = "output"
    # manager.conf [general] channelvars, as `manager show settings` reports them.
    channelvars: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Frame:
    raw: bytes
    classes: frozenset[str] | None  # None: no Privilege header, never filtered
    stamp: float | None  # capture time of a Newchannel, for pacing


def _classes(value: str) -> frozenset[str]:
    # Every event's Privilege ends in ",all"; it names no class of its own.
    return frozenset(c.strip().lower() for c in value.split(",") if c.strip()) - {"all"}


def _describe(raw: bytes) -> _Frame:
    headers: dict[str, str] = {}
    # latin-1 never fails: a frame of garbage still gets a description.
    for line in raw.decode("latin-1").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            headers.setdefault(key.strip().lower(), value.strip())
    privilege = headers.get("privilege")
    uniqueid = headers.get("uniqueid")
    epoch = None
    if headers.get("event") == "Newchannel" and uniqueid is not None:
        epoch = epoch_of_uniqueid(uniqueid)
    return _Frame(raw, None if privilege is None else _classes(privilege), epoch)


_SHUTDOWN_FRAME: Final = _describe(SHUTDOWN_EVENT)
# What Asterisk sends a session right after its Login when it may read "system".
FULLY_BOOTED_EVENT: Final = (
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 4242\r\nLastReload: 4242\r\n"
    b"Status: Fully Booted\r\n\r\n"
)
_FULLY_BOOTED_FRAME: Final = _describe(FULLY_BOOTED_EVENT)


def split_capture(capture: bytes) -> list[_Frame]:
    """Cut a capture into messages, dropping its banner and its own Login reply.

    Raw bytes that are not a capture (garbage for tests) pass through as they
    are: the concatenated frames always equal the input minus what was dropped.
    """
    data = capture
    if data.startswith(BANNER_PREFIX):
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else b""
    raws: list[bytes] = []
    start = 0
    for match in _FRAME_END.finditer(data):
        raws.append(data[start : match.end()])
        start = match.end()
    if start < len(data):
        raws.append(data[start:])
    # The recorder's Login response precedes the first event; each live
    # client gets its own instead.
    while raws and raws[0].startswith(b"Response:"):
        raws.pop(0)
    return [_describe(raw) for raw in raws]


def banner_of(captures: Sequence[bytes]) -> bytes:
    """The first capture's banner line, CRLF included, or a default one."""
    if captures and captures[0].startswith(BANNER_PREFIX):
        newline = captures[0].find(b"\n")
        if newline >= 0:
            return captures[0][: newline + 1]
    return DEFAULT_BANNER


def parse_events_value(value: str | None) -> frozenset[str] | None:
    """Login ``Events:`` as a class set; None means every class."""
    if value is None or value.strip().lower() in _ALL_EVENTS:
        return None
    if value.strip().lower() in _NO_EVENTS:
        return frozenset()
    return _classes(value)


def _parse_action(raw: bytes) -> dict[str, str]:
    action: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            action.setdefault(key.strip().lower(), value.strip())
    return action


def _reply(kind: str, action_id: str | None, *lines: str) -> bytes:
    head = [f"Response: {kind}"]
    if action_id is not None:
        head.append(f"ActionID: {action_id}")
    return ("\r\n".join([*head, *lines]) + "\r\n\r\n").encode()


def _list_item(text: str, action_id: str | None) -> bytes:
    lines = [
        line
        for line in text.replace("\r\n", "\n").split("\n")
        if line.strip() and not line.lower().startswith("actionid:")
    ]
    if action_id is not None:
        lines.insert(1, f"ActionID: {action_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Client(ReplayClient):
    """One AMI session; ``events`` is what its Login asked for."""

    def __init__(
        self, writer: asyncio.StreamWriter, cut: Callable[[bytes], Iterator[bytes]]
    ) -> None:
        super().__init__(writer, cut)
        self.events: frozenset[str] | None = frozenset()

    def wants(self, frame: _Frame, read_classes: frozenset[str] | None) -> bool:
        if frame.classes is None:
            return True
        if read_classes is not None and not frame.classes & read_classes:
            return False
        return self.events is None or bool(frame.classes & self.events)


class AmiSimulator(ReplayServer[SimulatorOptions, _Frame, _Client]):
    """A fake Asterisk AMI server replaying ``captures``. See the module docstring."""

    _REQUEST_END = b"\r\n\r\n"

    def __init__(self, captures: Sequence[bytes], options: SimulatorOptions | None = None) -> None:
        super().__init__(captures, options if options is not None else SimulatorOptions())
        self._banner = banner_of(captures)
        self.pings_answered = 0
        # Every DongleSendSMS / QuectelSendSMS received, as parsed: lower-case keys.
        self.sent_sms: list[dict[str, str]] = []
        self._sms_ids = 0

    def _split(self, capture: bytes) -> list[_Frame]:
        return split_capture(capture)

    def _new_client(
        self, writer: asyncio.StreamWriter, cut: Callable[[bytes], Iterator[bytes]]
    ) -> _Client:
        return _Client(writer, cut)

    def _wants(self, client: _Client, frame: _Frame) -> bool:
        return client.authenticated and client.wants(frame, self.options.read_classes)

    def _farewell(self, client: _Client) -> bytes | None:
        # What Asterisk sends on `core restart now`, to those whose Login wants it.
        return SHUTDOWN_EVENT if self._wants(client, _SHUTDOWN_FRAME) else None

    async def _greet(self, client: _Client) -> bool:
        return await client.send(self._banner)

    async def _answer(self, client: _Client, raw: bytes) -> bool:
        """Answer one action; False closes the session."""
        action = _parse_action(raw)
        name = action.get("action", "").lower()
        action_id = action.get("actionid")
        if name == "login":
            return await self._login(client, action)
        if name == "logoff":
            await client.send(_reply("Goodbye", action_id, "Message: Thanks for all the fish."))
            return False
        if not client.authenticated:
            return await client.send(_reply("Error", action_id, "Message: Permission denied"))
        if name == "ping":
            if not self.options.answer_pings:
                return True
            self.pings_answered += 1
            await self._notify()
            pong = _reply("Success", action_id, "Ping: Pong", f"Timestamp: {time.time():.6f}")
            return await client.send(pong)
        known = (
            name in ("coreshowchannels", "command")
            or _SMS_ACTIONS.get(name, _SHOW_DEVICES.get(name)) in self.options.modem_drivers
        )
        if not known:
            return await client.send(_reply("Error", action_id, "Message: Invalid/unknown command"))
        if not self._may_write(name):
            return await client.send(_reply("Error", action_id, "Message: Permission denied"))
        if name == "coreshowchannels":
            return await client.send(self._channels_reply(action_id))
        if name == "command":
            return await client.send(self._command_reply(action))
        if name in _SHOW_DEVICES:
            return await client.send(self._devices_reply(_SHOW_DEVICES[name], action))
        return await client.send(await self._send_sms(action))

    def _may_write(self, action: str) -> bool:
        granted = self.options.write_classes
        return granted is None or bool(granted & _WRITE_NEEDS.get(action, frozenset()))

    async def _login(self, client: _Client, action: dict[str, str]) -> bool:
        self.login_attempts += 1
        action_id = action.get("actionid")
        accepted = (
            action.get("username") == self.options.username
            and action.get("secret") == self.options.secret
        )
        if not accepted:
            await client.send(_reply("Error", action_id, "Message: Authentication failed"))
            await self._notify()
            return False
        if not await client.send(_reply("Success", action_id, "Message: Authentication accepted")):
            return False
        client.events = parse_events_value(action.get("events"))
        client.authenticated = True
        self.logins += 1
        if self.options.fully_booted and self._wants(client, _FULLY_BOOTED_FRAME):
            await client.send(FULLY_BOOTED_EVENT)
        self._start_stream()
        await self._notify()
        return True

    async def _send_sms(self, action: dict[str, str]) -> bytes:
        """Answer an SMS action the way chan_dongle's manager.c does."""
        self.sent_sms.append(action)
        await self._notify()
        action_id = action.get("actionid")
        device = action.get("device", "")
        for field_name in ("device", "number", "message"):
            if not action.get(field_name):
                return _reply("Error", action_id, f"Message: {field_name.title()} not specified")
        reason: str | None
        if not _DIALLABLE.fullmatch(action["number"]):
            reason = "Invalid destination number"
        elif device not in self.options.modem_devices:
            reason = "Device not found"
        else:
            reason = self.options.modem_error
        if reason is not None:
            return _reply("Error", action_id, f"Message: [{device}] {reason}", "ID: (nil)")
        self._sms_ids += 1
        return _reply(
            "Success",
            action_id,
            f"Message: [{device}] SMS queued for send",
            f"ID: 0x{0x55D0C0DE0000 + self._sms_ids:x}",
        )

    def _channels_reply(self, action_id: str | None) -> bytes:
        snapshot = self.options.channels_snapshot or []
        parts = [_reply("Success", action_id, "EventList: start", "Message: Channels will follow")]
        parts.extend(_list_item(text, action_id) for text in snapshot)
        done = ["Event: CoreShowChannelsComplete"]
        if action_id is not None:
            done.append(f"ActionID: {action_id}")
        done += ["EventList: Complete", f"ListItems: {len(snapshot)}"]
        parts.append(("\r\n".join(done) + "\r\n\r\n").encode())
        return b"".join(parts)

    def _command_reply(self, action: dict[str, str]) -> bytes:
        """Run a CLI command the way ``Action: Command`` does, in the configured reply format."""
        action_id = action.get("actionid")
        words = action.get("command", "").split()
        if not words:
            return _reply("Error", action_id, "Message: No command provided")
        output = self._cli(words)
        if self.options.command_format == "follows":
            head = ["Response: Follows", "Privilege: Command"]
            if action_id is not None:
                head.append(f"ActionID: {action_id}")
            # The CLI's own newlines, unchanged: a blank line in the output is not a frame end.
            return ("\r\n".join(head) + "\r\n" + output + "--END COMMAND--\r\n\r\n").encode()
        lines = [f"Output: {line}" for line in output.split("\n")[:-1]]
        return _reply("Success", action_id, "Message: Command output follows", *lines)

    def _cli(self, words: list[str]) -> str:
        """The CLI output of a command (lines ended by \\n), for the commands install-check uses."""
        o = self.options
        lowered = [w.lower() for w in words]
        if lowered[:3] == ["manager", "show", "user"] and len(words) == 4:
            if words[3].lower() != o.username.lower():
                return f"There is no manager called {words[3]}\n"
            return (
                "\n"
                f"          username: {o.username}\n"
                "            secret: <Set>\n"
                "               ACL: yes\n"
                f"         read perm: {_perms(o.read_classes)}\n"
                f"        write perm: {_perms(o.write_classes)}\n"
                "   displayconnects: yes\n"
                "allowmultiplelogin: yes\n"
                "         Variables: \n"
            )
        if lowered == ["manager", "show", "settings"]:
            rows = [
                ("Manager (AMI):", "Yes"),
                ("Web Manager (AMI/HTTP):", "No"),
                ("TCP Bindaddress:", "127.0.0.1:5038"),
                ("Allow multiple login:", "Yes"),
                ("Display connects:", "Yes"),
                ("Timestamp events:", "No"),
                # Asterisk prints at most 55 characters of a value.
                ("Channel vars:", ",".join(o.channelvars)[:55]),
                ("Debug:", "No"),
            ]
            return "\nGlobal Settings:\n----------------\n" + "".join(
                f"  {label:<25.25}  {value}\n" for label, value in rows
            )
        said = " ".join(words)
        return (
            f"No such command '{said}' (type 'core show help {said}' for other possible commands)\n"
        )

    def _devices_reply(self, driver: str, action: dict[str, str]) -> bytes:
        """The modem driver's device list (``Device:`` filters it), as chan_dongle sends it."""
        action_id = action.get("actionid")
        wanted = action.get("device", "")
        prefix = driver.title()
        devices = sorted(d for d in self.options.modem_devices if wanted in ("", d))
        parts = [
            _reply(
                "Success", action_id, "EventList: start", "Message: Device status list will follow"
            )
        ]
        tail = [f"ActionID: {action_id}"] if action_id is not None else []
        for device in devices:
            lines = [f"Event: {prefix}DeviceEntry", *tail, f"Device: {device}", "State: Free"]
            parts.append(("\r\n".join(lines) + "\r\n\r\n").encode())
        done = [f"Event: {prefix}ShowDevicesComplete", *tail, "EventList: Complete"]
        done.append(f"ListItems: {len(devices)}")
        parts.append(("\r\n".join(done) + "\r\n\r\n").encode())
        return b"".join(parts)


def _perms(classes: frozenset[str] | None) -> str:
    """A class set as ``manager show user`` prints it (``<none>`` when empty)."""
    if classes is None:
        return ",".join((*PERMISSION_CLASSES, "all"))
    return ",".join(c for c in PERMISSION_CLASSES if c in classes) or "<none>"


def bundled_captures() -> list[tuple[str, bytes]]:
    """The demo captures shipped in ``textback/data/captures``, sorted by name."""
    return bundled(".ami")
