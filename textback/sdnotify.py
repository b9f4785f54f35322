"""systemd's notify protocol (sd_notify(3)), in the few lines it takes.

Shell (IO). systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace) to a ``Type=notify`` service; the service sends newline
separated ``KEY=value`` assignments to it as one datagram each time its state
changes. Without ``NOTIFY_SOCKET`` (a terminal, the tests, another init system)
every method does nothing.

Sending never raises and never blocks the event loop: the socket is
non-blocking and a datagram that cannot go (no listener, a full queue) is
dropped. The first failure is
logged once, and so is the recovery.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Final

from textback.log import get_logger

log = get_logger(__name__)

_NOTIFY_SOCKET: Final = "NOTIFY_SOCKET"
_WATCHDOG_USEC: Final = "WATCHDOG_USEC"
_WATCHDOG_PID: Final = "WATCHDOG_PID"


def _address(value: str) -> str | None:
    """The socket address for a NOTIFY_SOCKET value; None when it is not a unix socket."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _one_line(text: str) -> str:
    # A newline would start a new assignment: the rest of the text would be read as one.
    return " ".join(text.splitlines())


def _watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Half of WATCHDOG_USEC in seconds, as sd_watchdog_enabled(3) would allow it."""
    usec = environ.get(_WATCHDOG_USEC, "")
    owner = environ.get(_WATCHDOG_PID, "")
    # The watchdog is meant for the process systemd named, not for its children.
    if owner and owner != str(pid):
        return None
    try:
        micros = int(usec)
    except ValueError:
        return None
    if micros <= 0:
        return None
    return micros / 2_000_000


class SystemdNotifier:
    """Tells systemd how the service is doing. A no-op without ``NOTIFY_SOCKET``.

    ``watchdog_interval`` is how often to call :meth:`watchdog` (half of
    ``WATCHDOG_USEC``, in seconds), or None when systemd set no watchdog.
    """

    def __init__(self, address: str | None = None, watchdog_interval: float | None = None) -> None:
        self.address = address
        self.watchdog_interval = watchdog_interval if address is not None else None
        self._failing = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        """The notifier systemd's environment asks for (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        value = env.get(_NOTIFY_SOCKET, "")
        if not value:
            return cls()
        address = _address(value)
        if address is None:
            log.warning(
                "sd_notify_unsupported",
                notify_socket=value,
                hint="only unix socket paths and @abstract names are supported",
            )
            return cls()
        return cls(address, _watchdog_interval(env, os.getpid()))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str) -> None:
        """Startup finished (or a reload did): the unit is active."""
        self._send(f"READY=1\nSTATUS={_one_line(status)}")

    def status(self, text: str) -> None:
        """What ``systemctl status`` shows under the unit."""
        self._send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> None:
        """Still alive: reset the watchdog timer."""
        self._send("WATCHDOG=1")

    def stopping(self, status: str = "") -> None:
        """Shutdown has begun."""
        self._send("STOPPING=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))

    def reloading(self) -> None:
        """A reload has begun; :meth:`ready` ends it."""
        # systemd 253+ wants the time the reload began, to match it with the request.
        micros = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={micros}")

    def _send(self, message: str) -> None:
        if self.address is None:
            return
        try:
            # A socket per message, as sd_notify(3) does: nothing to keep open or close.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(message.encode(), self.address)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                log.warning(
                    "sd_notify_failed",
                    notify_socket=self.address.replace("\0", "@"),
                    error=exc.strerror or str(exc),
                    hint="systemd may not see this service's state; later failures stay quiet",
                )
            return
        if self._failing:
            self._failing = False
            log.info("sd_notify_recovered")
