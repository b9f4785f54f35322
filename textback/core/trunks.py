"""Which channels are carrier trunks. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from ipaddress import ip_address, ip_network


@dataclass(frozen=True, slots=True, kw_only=True)
class Trunk:
    """One carrier trunk as configured under ``[trunks.<name>]``.

    Asterisk: ``channels`` are shell-style globs on the channel name
    (``PJSIP/carrier-a-*``). FreeSWITCH: ``gateways`` (the sofia gateway an
    inbound call came through, ``sip_gateway``), ``acls`` (the ACL list that
    admitted an IP-authenticated carrier, ``sip_acl_authed_by``), ``networks``
    (CIDRs of the carrier's addresses, ``sip_network_ip``) and ``profiles``
    (sofia profiles only carriers use). Both: ``contexts`` are the dialplan
    contexts this carrier's calls start in (``from-pstn``, ``public``).
    ``country`` is the ISO region used to read national-format numbers.
    """

    name: str
    channels: tuple[str, ...] = ()
    contexts: tuple[str, ...] = ()
    country: str = "US"
    gateways: tuple[str, ...] = ()
    acls: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()

    def admits(self, fs: Mapping[str, str]) -> bool:
        """Whether a FreeSWITCH inbound leg with these channel variables came from this trunk."""
        if fs.get("variable_sip_gateway", "") in self.gateways:
            return True
        if fs.get("variable_sip_acl_authed_by", "") in self.acls:
            return True
        if self.networks and _in_networks(fs.get("variable_sip_network_ip", ""), self.networks):
            return True
        if fs.get("variable_sofia_profile_name", "") in self.profiles:
            return True
        return any(fnmatchcase(fs.get("Caller-Context", ""), p) for p in self.contexts)


def _in_networks(address: str, networks: tuple[str, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in ip_network(net, strict=False) for net in networks)


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

    def for_freeswitch(self, fs: Mapping[str, str]) -> Trunk | None:
        """The trunk a FreeSWITCH inbound leg came in on, from its channel variables."""
        return next((t for t in self.trunks if t.admits(fs)), None)

    def get(self, name: str) -> Trunk | None:
        return next((t for t in self.trunks if t.name == name), None)
