"""Prometheus metrics and the health check, served on their own (loopback) port.

Shell (IO). :class:`Metrics` holds every textback metric on a registry of its
own, not prometheus_client's global one, so two daemons in one process (the
tests) never share counters. The daemon feeds it; :func:`start_metrics_server`
serves it beside :class:`Health`:

* ``GET /metrics``: the Prometheus text format.
* ``GET /healthz``: ``{"pbx": ..., "database": ..., "gateway": ...}`` as JSON,
  200 when all three are fine, 503 otherwise, for a monitor that only reads
  status codes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal, get_args

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from textback.gateways.base import FailureKind
from textback.log import get_logger

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "TEXT_STATES",
    "Health",
    "Metrics",
    "TextState",
    "start_metrics_server",
]

log = get_logger(__name__)

TextState = Literal["queued", "suppressed", "sent", "failed", "expired", "cancelled", "retried"]
TEXT_STATES: Final[tuple[TextState, ...]] = get_args(TextState)

# What generate_latest writes (newer prometheus_client versions name version 1.0.0 "latest").
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# Hangup to accepted spans a second (no grace delay) to a night of quiet hours
# (12 h is the default max_age_hours; 24 h catches a raised one).
LATENCY_BUCKETS: Final = (
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    4 * 3600.0,
    12 * 3600.0,
    24 * 3600.0,
)

# A gateway_error kind for an adapter that raised something other than GatewayError.
ADAPTER_BUG: Final = "adapter_error"

# /healthz answers a monitor; a database that does not answer this fast is not fine.
DB_CHECK_TIMEOUT: Final = 5.0


class Metrics:
    """Every textback metric, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self._calls = Counter(
            "textback_calls",
            "Inbound trunk calls judged, by PBX, verdict and reason.",
            ("pbx", "verdict", "reason"),
            registry=reg,
        )
        self._texts = Counter(
            "textback_texts",
            "Outbox events by state: queued or suppressed at intake; then retried,"
            " sent, failed, expired or cancelled (the caller was reached another way).",
            ("state",),
            registry=reg,
        )
        self._latency = Histogram(
            "textback_send_latency_seconds",
            "From the missed call's hangup to the gateway accepting the text.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._gateway_errors = Counter(
            "textback_gateway_errors",
            "Sends the gateway refused or failed, by failure class.",
            ("kind",),
            registry=reg,
        )
        self._pbx = Gauge(
            "textback_pbx_connected",
            "1 while the AMI/ESL connection to the PBX is up, else 0.",
            registry=reg,
        )
        self._depth = Gauge(
            "textback_outbox_depth",
            "Texts waiting in the outbox to be sent (pending rows).",
            registry=reg,
        )
        self._optouts = Counter(
            "textback_optouts",
            "Numbers newly opted out (STOP replies and provider opt-out errors).",
            registry=reg,
        )
        # Series that exist from the start read 0, not "no data", so rate() and alerts work.
        for state in TEXT_STATES:
            self._texts.labels(state=state)
        for kind in (*FailureKind, ADAPTER_BUG):
            self._gateway_errors.labels(kind=kind)
        self._pbx_up = False

    def call_judged(self, pbx: str, verdict: str, reason: str) -> None:
        """One verdict from the correlator (Verdict and Reason are str enums)."""
        self._calls.labels(pbx=pbx, verdict=verdict, reason=reason).inc()

    def text_state(self, state: TextState) -> None:
        if state not in TEXT_STATES:
            # A bounded label set: a typo must not become a new series.
            raise ValueError(f"unknown text state {state!r}; one of {', '.join(TEXT_STATES)}")
        self._texts.labels(state=state).inc()

    def send_latency(self, seconds: float) -> None:
        """Hangup to gateway accepted, in seconds."""
        self._latency.observe(max(0.0, seconds))

    def gateway_error(self, kind: str) -> None:
        """A failed send, by :class:`FailureKind` value (or ``"adapter_error"``)."""
        self._gateway_errors.labels(kind=kind).inc()

    def pbx_connected(self, up: bool) -> None:
        self._pbx_up = up
        self._pbx.set(1 if up else 0)

    @property
    def pbx_up(self) -> bool:
        """What :meth:`pbx_connected` last said (for :class:`Health`)."""
        return self._pbx_up

    def set_outbox_depth(self, n: int) -> None:
        self._depth.set(n)

    def outbox_depth_grew(self) -> None:
        """One more text queued; the dispatcher sets the counted depth after each step."""
        self._depth.inc()

    def opt_out(self) -> None:
        self._optouts.inc()

    def render(self) -> bytes:
        """The Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class Health:
    """Where /healthz looks: each callable answers one question, now."""

    pbx_connected: Callable[[], bool]
    db_writable: Callable[[], Awaitable[bool]]
    # The gateway's configuration error (sending stopped until restart), or None.
    gateway_error: Callable[[], str | None]
    db_timeout: float = DB_CHECK_TIMEOUT

    async def report(self) -> tuple[bool, dict[str, str]]:
        """(all fine, the /healthz body)."""
        pbx_ok = self.pbx_connected()
        database = await self._database()
        problem = self.gateway_error()
        body = {
            "pbx": "connected" if pbx_ok else "down",
            "database": database,
            "gateway": "ok" if problem is None else f"config error: {problem}",
        }
        return pbx_ok and database == "ok" and problem is None, body

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(self.db_timeout):
                writable = await self.db_writable()
        except TimeoutError:
            return f"error: no answer within {self.db_timeout:g} s"
        # Whatever went wrong is the answer to the question: report it, never crash the check.
        except Exception as exc:  # noqa: BLE001
            return f"error: {exc}"
        return "ok" if writable else "error: not writable"


async def start_metrics_server(
    metrics: Metrics, health: Health, host: str, port: int
) -> web.AppRunner:
    """Serve /metrics and /healthz on host:port; stop it with ``await runner.cleanup()``.

    Raises OSError when the address is taken.
    """

    async def get_metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def get_healthz(request: web.Request) -> web.Response:
        ok, body = await health.report()
        return web.json_response(
            body, status=200 if ok else 503, headers={"Cache-Control": "no-store"}
        )

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", get_healthz)
    # No access log: a scrape every 15 s would drown the journal.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    listening = ", ".join(f"{a[0]}:{a[1]}" for a in runner.addresses)
    log.info("metrics_started", listen=listening)
    return runner
