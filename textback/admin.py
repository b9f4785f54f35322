"""The admin commands beside the daemon: send-test, optout, outbox. Shell (IO).

They open the same SQLite file as the running daemon (WAL: a second process may
read and write while it runs) and print for a person, not for a program.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TextIO

from textback.config import Config
from textback.core.templates import choose, render
from textback.gateways.base import AmiAction, GatewayContext, GatewayError, OutgoingSms
from textback.numbers import to_e164
from textback.pbx.ami_source import AmiResync, AmiSource
from textback.service import ami_settings
from textback.store import open_store

# Waiting this long for the AMI link is enough on the PBX box itself.
AMI_WAIT = 10.0


def e164_or_none(config: Config, number: str) -> str | None:
    region = config.trunks.trunks[0].country if config.trunks.trunks else "US"
    return to_e164(number, region)


def optout(config: Config, action: str, number: str | None, out: TextIO) -> int:
    with open_store(config.daemon.database) as store:
        if action == "list":
            rows = store.outbox.list_optouts()
            for e164, source, at in rows:
                print(f"{e164}  {source:<8}  {_when(at)}", file=out)
            print(f"{len(rows)} opted-out numbers", file=out)
            return 0
        assert number is not None
        valid = e164_or_none(config, number)
        if valid is None:
            print(f"{number}: not a valid phone number", file=out)
            return 65
        e164 = valid
        if action == "add":
            new = store.outbox.add_optout(e164, "manual", time.time())
            print(f"{e164}: {'opted out' if new else 'was already opted out'}", file=out)
        else:
            gone = store.outbox.remove_optout(e164)
            print(f"{e164}: {'may be texted again' if gone else 'was not opted out'}", file=out)
        return 0


def outbox(config: Config, limit: int, out: TextIO) -> int:
    with open_store(config.daemon.database) as store:
        rows = store.outbox.recent(limit)
    header = f"{'id':>5} {'call ended':<19} {'to':<13} {'state':<10} {'tries':>5} reason"
    print(header, file=out)
    print("-" * len(header), file=out)
    for row in rows:
        print(
            f"{row.id:>5} {_when(row.created_at):<19} {row.to_e164 or '-':<13} {row.state:<10}"
            f" {row.attempts:>5} {row.reason}" + (f" ({row.last_error})" if row.last_error else ""),
            file=out,
        )
    return 0


async def send_test(config: Config, number: str, out: TextIO) -> int:
    """One text through the configured gateway: no cooldown, but never to an opted-out number."""
    e164 = e164_or_none(config, number)
    if e164 is None:
        print(f"{number}: not a valid phone number", file=out)
        return 65
    with open_store(config.daemon.database) as store:
        if store.outbox.is_opted_out(e164):
            print(
                f"{e164} opted out: not sending (textback optout remove {e164} to undo)", file=out
            )
            return 1
    chosen = choose(
        config.templates, did=None, trunk=None, reason="abandoned", open_now=None, holiday=False
    )
    body = render(chosen, {"caller_name": "", "did": "", "phone": ""})
    gateway = config.gateway
    async with _ami_link(config) as ami_action:
        await gateway.start(GatewayContext(ami_action=ami_action, out=out))
        try:
            sms = OutgoingSms(to=e164, body=body, reference=f"textback-test-{int(time.time())}")
            receipt = await gateway.send(sms)
        except GatewayError as exc:
            print(f"not sent through {gateway.name}: {exc}", file=out)
            return 78 if exc.kind.value == "config" else 69
        finally:
            await gateway.aclose()
    print(f"sent to {e164} through {gateway.name} (provider id {receipt.provider_id!r})", file=out)
    return 0


@contextlib.asynccontextmanager
async def _ami_link(config: Config) -> AsyncIterator[AmiAction | None]:
    """The AMI link, for gateways that send through the PBX; None without [asterisk]."""
    if config.asterisk is None or config.gateway.name != "ami_modem":
        yield None
        return
    source = AmiSource(ami_settings(config.asterisk))
    task = asyncio.create_task(source.run())
    try:
        async with asyncio.timeout(AMI_WAIT):
            # The resync that follows every login says the link is up.
            while not isinstance(await source.next_item(), AmiResync):
                pass
        yield source.action
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")
