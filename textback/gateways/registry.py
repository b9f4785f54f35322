"""Finding the adapter class for ``[gateway] kind`` and building it from its table.

A kind is, in this order: a built-in name (``BUILTIN``), the name of an entry
point in the ``textback.gateways`` group (a third-party package that declares
``[project.entry-points."textback.gateways"] mysms = "mysms.adapter:MyGateway"``),
or a ``"package.module:Class"`` path. Modules are imported only when their kind
is asked for, so a broken or missing adapter affects only configs that use it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Final, cast

from textback.errors import ConfigError
from textback.gateways.base import Gateway
from textback.tomltable import did_you_mean, show

BUILTIN: Final[Mapping[str, str]] = {
    "console": "textback.gateways.console:ConsoleGateway",
    "twilio": "textback.gateways.twilio:TwilioGateway",
    "signalwire": "textback.gateways.twilio:SignalWireGateway",
    "telnyx": "textback.gateways.telnyx:TelnyxGateway",
    "vonage": "textback.gateways.vonage:VonageGateway",
    "plivo": "textback.gateways.plivo:PlivoGateway",
    "voipms": "textback.gateways.voipms:VoipMsGateway",
    "webhook": "textback.gateways.webhook:WebhookGateway",
    "smtp": "textback.gateways.smtp:SmtpGateway",
    "ami_modem": "textback.gateways.ami_modem:AmiModemGateway",
}
ENTRY_POINT_GROUP: Final = "textback.gateways"
_METHODS: Final = ("from_config", "start", "send", "aclose")


def installed_kinds() -> list[str]:
    """Kinds offered by installed packages through the entry-point group."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


def resolve(kind: str, *, path: str = "gateway") -> type[Gateway]:
    """The adapter class for a kind; ConfigError naming ``<path>.kind`` when there is none."""
    where = f"{path}.kind"
    name = kind.strip()
    if name.lower() in BUILTIN:
        return _load(BUILTIN[name.lower()], where, f'built-in gateway "{name.lower()}"')
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        dist = entry.dist.name if entry.dist is not None else "an installed package"
        return _load(entry.value, where, f'gateway "{name}" (entry point from {dist})')
    if ":" in name:
        return _load(name, where, f'"{name}"')
    known = [*BUILTIN, *installed_kinds()]
    hint = did_you_mean(name.lower(), known)
    raise ConfigError(
        [
            f"{where}: unknown gateway {show(kind)} — "
            + (f"{hint} " if hint else "")
            + "known kinds: "
            + ", ".join(known)
            + ' (or a third-party adapter as "package.module:Class")'
        ]
    )


def _load(target: str, where: str, what: str) -> type[Gateway]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            [
                f'{where}: {what} is not "package.module:Class" — '
                'write it as e.g. "mysms.adapter:MyGateway"'
            ]
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            [
                f"{where}: {what}: cannot import {module_name} ({type(exc).__name__}: {exc}) — "
                "install the package that provides it into textback's environment"
            ]
        ) from exc
    found: object = module
    for part in attr.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise ConfigError(
                [f"{where}: {what}: module {module_name} has no {attr} — check the class name"]
            )
    missing = [m for m in _METHODS if not callable(getattr(found, m, None))]
    if not isinstance(found, type) or missing:
        lacking = f" (it lacks {', '.join(missing)})" if missing and isinstance(found, type) else ""
        raise ConfigError(
            [
                f"{where}: {what} is not a gateway adapter class{lacking} — it must implement "
                "textback.gateways.base.Gateway (from_config, start, send, aclose)"
            ]
        )
    return cast("type[Gateway]", found)


def load_gateway(
    table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
) -> Gateway:
    """Build the adapter a gateway table names: ``kind`` picks the class, the rest is its own.

    Raises ConfigError (one line per problem, each naming ``<path>.<key>``); does no IO
    beyond importing the adapter and reading its secret files.
    """
    kind = table.get("kind")
    if kind is None:
        raise ConfigError(
            [
                f'{path}.kind: missing — say which gateway sends the texts, e.g. kind = "twilio" '
                f"(known kinds: {', '.join([*BUILTIN, *installed_kinds()])})"
            ]
        )
    if not isinstance(kind, str) or not kind.strip():
        raise ConfigError(
            [f'{path}.kind: expected a gateway name, got {show(kind)} — e.g. kind = "twilio"']
        )
    cls = resolve(kind, path=path)
    rest = {key: value for key, value in table.items() if key != "kind"}
    return cls.from_config(rest, path=path, base=base, require_secrets=require_secrets)
