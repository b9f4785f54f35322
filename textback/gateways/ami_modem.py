"""The ``ami_modem`` gateway: texts from a GSM modem on the PBX, over the daemon's AMI link.

Shell (IO through ``GatewayContext.ami_action``). chan_dongle (Huawei sticks)
answers ``Action: DongleSendSMS`` and the chan_quectel fork answers
``Action: QuectelSendSMS``, both with ``Device``, ``Number``, ``Message`` and
optional ``Validity`` (minutes) and ``Report`` (delivery report, yes/no).
chan_dongle's manager.c replies at once, when the text is queued on the modem,
not when it is delivered::

    Response: Success                     Response: Error
    Message: [dongle0] SMS queued for send   Message: [dongle0] Device not found
    ID: 0x7f3a2c001230                    ID: (nil)

``ID`` is the address of chan_dongle's queued task; it names the text in the
later ``DongleSMSStatus`` event and is our provider id ("" when absent).

A modem does no STOP filtering (textback's own opt-out table is all there is)
and consumer SIM plans forbid application-to-person traffic: the carrier may
bar the SIM.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal, Self, cast

from textback.errors import ConfigError, PbxError
from textback.gateways.base import (
    AmiAction,
    FailureKind,
    GatewayContext,
    GatewayError,
    OutgoingSms,
    SendReceipt,
)
from textback.tomltable import Table, show

Driver = Literal["dongle", "quectel"]
ACTIONS: Final[Mapping[Driver, str]] = {"dongle": "DongleSendSMS", "quectel": "QuectelSendSMS"}
SHOW_ACTIONS: Final[Mapping[Driver, str]] = {
    "dongle": "DongleShowDevices",
    "quectel": "QuectelShowDevices",
}
DEFAULT_TIMEOUT: Final = 10.0
# chan_dongle turns Validity minutes into a relative TP-VP, whose longest is 63 weeks.
MAX_VALIDITY: Final = 63 * 7 * 24 * 60
_KNOWN: Final = ("driver", "device", "validity", "report", "timeout")
_DEVICE = re.compile(r"[A-Za-z0-9_.-]+")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_LINE_BREAKS = re.compile(r"[ \t]*(?:\r\n|\r|\n)[ \t]*")
_DEVICE_PREFIX = re.compile(r"\[[^\]]*\]\s*")

# Reasons (after the "[device] " prefix) from chan_dongle's helpers.c / chan_dongle.c.
_REASONS: Final[tuple[tuple[str, FailureKind, str], ...]] = (
    (
        "device not found",
        FailureKind.CONFIG,
        "check gateway.device against `dongle show devices` on the PBX",
    ),
    ("device disabled", FailureKind.CONFIG, "enable the device in dongle.conf"),
    # The modem is (re)registering with the network, or was just plugged in.
    ("not connected", FailureKind.TRANSIENT, "the modem is not registered with the network yet"),
    ("invalid destination number", FailureKind.PERMANENT, ""),
)


class AmiModemGateway:
    """Sends each text as one SMS action on the PBX's AMI link."""

    name = "ami_modem"
    # chan_dongle has no client reference: an action cut off by a crash may have
    # queued the text, and sending again may text twice.
    idempotent = False
    max_in_flight = 1  # one modem sends one text at a time

    def __init__(
        self,
        *,
        driver: Driver = "dongle",
        device: str,
        validity: int | None = None,
        report: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.driver = driver
        self.device = device
        self.validity = validity
        self.report = report
        self.timeout = timeout
        self._action: AmiAction | None = None

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        problems: list[str] = []
        s = Table(problems, path, table, _KNOWN)
        driver = cast(
            "Driver",
            s.choice(
                "driver",
                "dongle",
                tuple(ACTIONS),
                fix='"dongle" for chan_dongle, "quectel" for chan_quectel',
            ),
        )
        device = s.string(
            "device",
            "",
            fix="set it to the modem's [section] name in dongle.conf / quectel.conf, "
            'e.g. device = "dongle0"',
            required=True,
        )
        if "device" not in s.bad and device and not _DEVICE.fullmatch(device):
            s.problem(
                "device",
                f"{show(device)} is not a device name — use the [section] name from "
                'dongle.conf / quectel.conf, e.g. "dongle0"',
            )
        validity = s.integer(
            "validity",
            0,
            ok=lambda v: 1 <= v <= MAX_VALIDITY,
            expected=f"a whole number of minutes from 1 to {MAX_VALIDITY}",
            fix="how long the network keeps trying an unreachable phone; leave it out for "
            "the network's default",
        )
        report = s.boolean(
            "report", False, fix="true asks the network for a delivery report (default false)"
        )
        timeout = s.number(
            "timeout",
            DEFAULT_TIMEOUT,
            ok=lambda v: v > 0,
            expected="a number of seconds greater than 0",
            fix=f"how long to wait for the PBX to accept a text (default {DEFAULT_TIMEOUT:g})",
        )
        if problems:
            raise ConfigError(problems)
        return cls(
            driver=driver,
            device=device,
            validity=validity or None,
            report=report,
            timeout=timeout,
        )

    async def start(self, context: GatewayContext) -> None:
        if context.ami_action is None:
            raise ConfigError(
                [
                    'gateway: kind = "ami_modem" sends through the AMI link, but there is none — '
                    "add the [asterisk] section"
                ]
            )
        self._action = context.ami_action

    async def aclose(self) -> None:
        """The AMI link belongs to the daemon: nothing of ours to close."""
        self._action = None

    def action(self, sms: OutgoingSms) -> dict[str, str]:
        """The AMI action that sends ``sms``. The modem's SIM is the sender; ``sms.sender`` is
        not used. An AMI header cannot hold a line break, so each becomes a space."""
        if not _E164.fullmatch(sms.to):
            raise GatewayError(
                FailureKind.PERMANENT, f"{show(sms.to)} is not an E.164 number (+ and digits)"
            )
        fields = {
            "Action": ACTIONS[self.driver],
            "Device": self.device,
            "Number": sms.to,
            "Message": _LINE_BREAKS.sub(" ", sms.body.strip()),
            "Report": "yes" if self.report else "no",
        }
        if self.validity is not None:
            fields["Validity"] = str(self.validity)
        return fields

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        if self._action is None:
            raise GatewayError(FailureKind.CONFIG, "ami_modem used before start()")
        fields = self.action(sms)
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._action(fields)
        except TimeoutError as exc:
            # The PBX may have queued it: like a lost HTTP reply, "maybe sent".
            raise GatewayError(
                FailureKind.TRANSIENT,
                f"no reply from the PBX to {fields['Action']} within {self.timeout:g} s",
            ) from exc
        except PbxError as exc:
            raise GatewayError(FailureKind.TRANSIENT, f"AMI link: {exc}") from exc
        return interpret(reply, self.device)

    async def check(self) -> str:
        """Ask the driver for the configured device (``DongleShowDevices`` with ``Device:``).

        Nothing is sent. The reply's ``ListItems`` (the device count, from the list's
        closing event) is there when the AMI action returns it, as install-check's own
        session does; the daemon's link returns the first reply only, which proves the
        driver is loaded and the user may list devices, not that the device exists.
        """
        if self._action is None:
            raise GatewayError(FailureKind.CONFIG, "ami_modem used before start()")
        action = SHOW_ACTIONS[self.driver]
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._action({"Action": action, "Device": self.device})
        except TimeoutError as exc:
            raise GatewayError(
                FailureKind.TRANSIENT,
                f"no reply from the PBX to {action} within {self.timeout:g} s",
            ) from exc
        except PbxError as exc:
            raise GatewayError(FailureKind.TRANSIENT, f"AMI link: {exc}") from exc
        if reply.get("Response", "").lower() != "success":
            raise _show_refused(action, reply.get("Message", "").strip() or "(no message)")
        count = reply.get("ListItems", "").strip()
        if not count:
            return f"the PBX answers {action}; device {self.device} is checked at the first send"
        if count == "0":
            raise GatewayError(
                FailureKind.CONFIG,
                f"modem {self.device}: Device not found — {_REASONS[0][2]}",
            )
        return f"modem {self.device} is known to chan_{self.driver}"


def _show_refused(action: str, message: str) -> GatewayError:
    lowered = message.lower()
    if lowered == "permission denied":
        return GatewayError(
            FailureKind.CONFIG,
            f"AMI user may not run {action}: Permission denied — add write=reporting to its "
            "section in manager.conf",
        )
    if "invalid/unknown command" in lowered:
        return GatewayError(
            FailureKind.CONFIG,
            f"the PBX does not know {action}: {message} — is the modem's channel driver loaded "
            "(`module show like dongle` / `quectel`) and gateway.driver right?",
        )
    return GatewayError(FailureKind.CONFIG, f"{action} refused: {message}")


def interpret(reply: Mapping[str, str], device: str) -> SendReceipt:
    """The receipt for an SMS action's reply, or the GatewayError it means."""
    response = reply.get("Response", "")
    message = reply.get("Message", "").strip()
    if response.lower() == "success":
        provider_id = reply.get("ID", "").strip()
        return SendReceipt("" if provider_id in ("", "(nil)") else provider_id)
    reason = _DEVICE_PREFIX.sub("", message, count=1) or "(no message)"
    lowered = reason.lower()
    if response.lower() != "error":
        raise GatewayError(FailureKind.PERMANENT, f"unexpected reply {show(response)}: {reason}")
    if lowered == "permission denied":
        raise GatewayError(
            FailureKind.CONFIG,
            "AMI user may not send SMS: Permission denied — add write=call to its "
            "section in manager.conf",
        )
    if "invalid/unknown command" in lowered:
        raise GatewayError(
            FailureKind.CONFIG,
            f"the PBX does not know the SMS action: {reason} — is the modem's channel driver "
            "loaded (`module show like dongle` / `quectel`) and gateway.driver right?",
        )
    for needle, kind, hint in _REASONS:
        if needle in lowered:
            raise GatewayError(kind, f"modem {device}: {reason}" + (f" — {hint}" if hint else ""))
    raise GatewayError(FailureKind.PERMANENT, f"modem {device}: {reason}")
