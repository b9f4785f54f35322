"""Which channels are carrier trunks. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True, slots=True, kw_only=True)
class Trunk:
    """One carrier trunk as configured under ``[trunks.<name>]``.

    ``channels`` are shell-style globs on the PBX channel name
    (``PJSIP/carrier-a-*``); ``contexts`` are the dialplan contexts calls from
    this carrier start in (``from-pstn``). ``country`` is the ISO region used
    to read national-format numbers the carrier sends.
    """

    name: str
    channels: tuple[str, ...] = ()
    contexts: tuple[str, ...] = ()
    country: str = "US"


@dataclass(frozen=True, slots=True)
class TrunkMap:
    trunks: tuple[Trunk, ...]

    def by_channel(self, channel: str) -> Trunk | None:
        """The trunk whose channel patterns match ``channel``, if any."""
        for trunk in self.trunks:
            if any(fnmatchcase(channel, pattern) for pattern in trunk.channels):
                return trunk
        return None

    def match(self, channel: str, context: str) -> Trunk | None:
        """The trunk of a channel: by name first, then by its starting context."""
        trunk = self.by_channel(channel)
        if trunk is not None:
            return trunk
        for trunk in self.trunks:
            if any(fnmatchcase(context, pattern) for pattern in trunk.contexts):
                return trunk
        return None

    def get(self, name: str) -> Trunk | None:
        return next((t for t in self.trunks if t.name == name), None)
