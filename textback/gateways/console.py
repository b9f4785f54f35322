"""The console gateway: prints each text instead of sending it (the demo and dry runs use it)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Self, TextIO

from textback.errors import ConfigError
from textback.gateways.base import GatewayContext, OutgoingSms, SendReceipt
from textback.tomltable import Table


class ConsoleGateway:
    """Writes ``SMS to <to>: <body>`` to the context's ``out`` (stdout by default)."""

    name = "console"
    # Nothing leaves the machine, so printing twice after a crash costs nothing.
    idempotent = True

    def __init__(self) -> None:
        self._out: TextIO | None = None
        self._sent = 0

    @classmethod
    def from_config(
        cls, table: Mapping[str, object], *, path: str, base: Path, require_secrets: bool
    ) -> Self:
        problems: list[str] = []
        Table(problems, path, table, known=())
        if problems:
            raise ConfigError(problems)
        return cls()

    async def start(self, context: GatewayContext) -> None:
        self._out = context.out

    async def send(self, sms: OutgoingSms) -> SendReceipt:
        out = self._out or sys.stdout
        print(f"SMS to {sms.to}: {sms.body}", file=out, flush=True)
        self._sent += 1
        return SendReceipt(f"console-{self._sent}")

    async def aclose(self) -> None:
        self._out = None
