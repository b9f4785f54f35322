"""Prometheus metrics and /healthz: the text format, Delivery's counters, the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakeproviders import TwilioFake
from textback.config import Config, load
from textback.core.verdict import CallNotice, CallVerdict, Reason, Verdict
from textback.delivery import Delivery
from textback.errors import StoreError
from textback.gateways.base import GatewayContext
from textback.metrics import TEXT_STATES, Health, Metrics, start_metrics_server
from textback.store import Store

ACCOUNT = "AC" + "0" * 31 + "1"
NOW = 1_800_000_000.0
CALLER = "+14155550123"
FAMILIES = {
    "textback_calls": "counter",
    "textback_texts": "counter",
    "textback_send_latency_seconds": "histogram",
    "textback_gateway_errors": "counter",
    "textback_pbx_connected": "gauge",
    "textback_outbox_depth": "gauge",
    "textback_optouts": "counter",
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(metrics: Metrics) -> Samples:
    """Every sample of the rendered text, parsed as Prometheus parses it."""
    text = metrics.render().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, frozenset(labels.items()))]


def texts(metrics: Metrics) -> dict[str, float]:
    """textback_texts_total by state, zeros left out."""
    counted = {s: value(metrics, "textback_texts_total", state=s) for s in TEXT_STATES}
    return {state: n for state, n in counted.items() if n}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write_config(tmp_path: Path, provider_url: str, *, token: str = "twilio-token") -> Config:
    (tmp_path / "ami-secret").write_text("textback\n")
    (tmp_path / "twilio-token").write_text(f"{token}\n")
    path = tmp_path / "textback.toml"
    path.write_text(
        f"""
[daemon]
database = "{tmp_path / "textback.db"}"

[business]
name = "Acme Plumbing"

[asterisk]
secret_file = "{tmp_path / "ami-secret"}"

[trunks.carrier-a]
channels = ["PJSIP/carrier-a-*"]

[sending]
grace_seconds = 0
max_age_hours = 1
retry_base_seconds = 0.1
retry_max_seconds = 0.5

[gateway]
kind = "twilio"
account_sid = "{ACCOUNT}"
auth_token_file = "{tmp_path / "twilio-token"}"
from = "+12125550100"
base_url = "{provider_url}"
timeout = 5
"""
    )
    return load(path)


def missed_call(call_id: str, caller: str, ended_at: float) -> CallVerdict:
    return CallVerdict(
        call_id=call_id,
        pbx="asterisk",
        trunk="carrier-a",
        verdict=Verdict.MISSED,
        reason=Reason.ABANDONED,
        caller_raw=caller,
        caller_name="",
        anonymous=False,
        did="+12125550100",
        started_at=ended_at - 10,
        ended_at=ended_at,
    )


@asynccontextmanager
async def delivering(
    tmp_path: Path, fake: TwilioFake, clock: Clock, *, token: str = "twilio-token"
) -> AsyncIterator[tuple[Delivery, Metrics]]:
    """A Delivery on a real Store and the real Twilio adapter, counting into fresh Metrics."""
    config = write_config(tmp_path, fake.url, token=token)
    metrics = Metrics()
    async with await Store.open(config.daemon.database) as store:
        await config.gateway.start(GatewayContext())
        try:
            yield Delivery(config, store, config.gateway, clock=clock, metrics=metrics), metrics
        finally:
            await config.gateway.aclose()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for the delivery task to bring the condition about, or fail."""
    try:
        async with asyncio.timeout(10):
            # Metrics have no events to await; the delivery task moves them.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


class TestRender:
    def test_text_parses_and_names_every_family(self) -> None:
        """The output parses as Prometheus text and holds each family with its type."""
        metrics = Metrics()
        metrics.call_judged("asterisk", Verdict.MISSED, Reason.NO_ANSWER)
        metrics.text_state("sent")
        metrics.send_latency(42.0)
        metrics.gateway_error("transient")
        metrics.pbx_connected(True)
        metrics.set_outbox_depth(3)
        metrics.opt_out()
        families = {
            f.name: f.type for f in text_string_to_metric_families(metrics.render().decode())
        }
        assert {name: families.get(name) for name in FAMILIES} == FAMILIES
        called = value(
            metrics, "textback_calls_total", pbx="asterisk", verdict="missed", reason="no_answer"
        )
        assert called == 1.0
        assert value(metrics, "textback_texts_total", state="sent") == 1.0
        assert value(metrics, "textback_send_latency_seconds_bucket", le="30.0") == 0.0
        assert value(metrics, "textback_send_latency_seconds_bucket", le="60.0") == 1.0
        assert value(metrics, "textback_gateway_errors_total", kind="transient") == 1.0
        assert value(metrics, "textback_pbx_connected") == 1.0
        assert value(metrics, "textback_outbox_depth") == 3.0
        assert value(metrics, "textback_optouts_total") == 1.0

    def test_states_and_error_kinds_read_zero_before_anything_happens(self) -> None:
        """Every text state and gateway failure class is a series from the start, at 0."""
        found = samples(Metrics())
        for state in TEXT_STATES:
            assert found[("textback_texts_total", frozenset({("state", state)}))] == 0.0
        for kind in ("transient", "config", "opted_out", "adapter_error"):
            assert found[("textback_gateway_errors_total", frozenset({("kind", kind)}))] == 0.0
        assert found[("textback_pbx_connected", frozenset())] == 0.0

    def test_each_instance_counts_alone(self) -> None:
        """Two Metrics (two daemons in one process) neither collide nor share counts."""
        first, second = Metrics(), Metrics()
        first.opt_out()
        first.pbx_connected(True)
        assert value(first, "textback_optouts_total") == 1.0
        assert value(second, "textback_optouts_total") == 0.0
        assert (first.pbx_up, second.pbx_up) == (True, False)

    def test_unknown_text_state_is_refused(self) -> None:
        """A misspelt state raises instead of growing a new series."""
        with pytest.raises(ValueError, match="unknown text state 'snet'"):
            Metrics().text_state("snet")  # type: ignore[arg-type]


class TestDeliveryCounts:
    async def test_sent_text_counts_queued_sent_latency_and_depth(self, tmp_path: Path) -> None:
        """A text that goes out moves queued, sent, the latency histogram and the depth gauge."""
        clock = Clock(NOW + 30)
        async with TwilioFake() as fake, delivering(tmp_path, fake, clock) as (delivery, metrics):
            await delivery.on_verdict(missed_call("c1", CALLER, NOW))
            assert texts(metrics) == {"queued": 1}
            assert value(metrics, "textback_outbox_depth") == 1.0
            task = asyncio.create_task(delivery.run())
            try:
                await until(lambda: texts(metrics).get("sent") == 1, "the text to go")
                await until(
                    lambda: value(metrics, "textback_outbox_depth") == 0.0, "the depth to drop"
                )
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        assert [r.form["To"] for r in fake.requests] == [CALLER]
        assert texts(metrics) == {"queued": 1, "sent": 1}
        assert value(metrics, "textback_send_latency_seconds_count") == 1.0
        assert value(metrics, "textback_send_latency_seconds_sum") == 30.0
        assert value(metrics, "textback_send_latency_seconds_bucket", le="10.0") == 0.0
        assert value(metrics, "textback_send_latency_seconds_bucket", le="30.0") == 1.0

    async def test_a_repeated_verdict_counts_once(self, tmp_path: Path) -> None:
        """The same call judged twice (a replay) is one queued text, not two."""
        async with TwilioFake() as fake, delivering(tmp_path, fake, Clock(NOW)) as (delivery, m):
            for _ in range(2):
                await delivery.on_verdict(missed_call("c1", CALLER, NOW))
        assert texts(m) == {"queued": 1}

    async def test_suppressed_text_is_counted_as_suppressed(self, tmp_path: Path) -> None:
        """A caller outside the allowed regions counts as suppressed, not queued."""
        async with TwilioFake() as fake, delivering(tmp_path, fake, Clock(NOW)) as (delivery, m):
            queued = await delivery.on_verdict(missed_call("c1", "+442079460123", NOW))
        assert queued is not None
        assert queued.state == "suppressed"
        assert texts(m) == {"suppressed": 1}
        assert fake.requests == []

    async def test_provider_opt_out_counts_failure_error_class_and_opt_out(
        self, tmp_path: Path
    ) -> None:
        """Twilio's 21610 (recipient said STOP): a failed text, an opted_out error, an opt-out."""
        async with TwilioFake() as fake, delivering(tmp_path, fake, Clock(NOW)) as (delivery, m):
            fake.script.append(fake.error(21610, 400, "Attempt to send to unsubscribed recipient"))
            await delivery.on_verdict(missed_call("c1", CALLER, NOW))
            await delivery._step()
        assert texts(m) == {"queued": 1, "failed": 1}
        assert value(m, "textback_gateway_errors_total", kind="opted_out") == 1.0
        assert value(m, "textback_optouts_total") == 1.0
        assert value(m, "textback_send_latency_seconds_count") == 0.0

    async def test_transient_error_counts_a_retry(self, tmp_path: Path) -> None:
        """A 503 from the provider is a retried text and a transient gateway error."""
        async with TwilioFake() as fake, delivering(tmp_path, fake, Clock(NOW)) as (delivery, m):
            fake.script.append(fake.error(20500, 503, "Service unavailable"))
            await delivery.on_verdict(missed_call("c1", CALLER, NOW))
            await delivery._step()
        assert texts(m) == {"queued": 1, "retried": 1}
        assert value(m, "textback_gateway_errors_total", kind="transient") == 1.0

    async def test_recovered_and_expired_texts_are_counted(self, tmp_path: Path) -> None:
        """An answered call-back cancels one text; another left past max_age expires."""
        clock = Clock(NOW)
        async with TwilioFake() as fake, delivering(tmp_path, fake, clock) as (delivery, m):
            await delivery.on_verdict(missed_call("c1", CALLER, NOW))
            await delivery.on_verdict(missed_call("c2", "+14155550124", NOW))
            assert value(m, "textback_outbox_depth") == 2.0
            await delivery.on_notice(
                CallNotice(kind="answered", number=CALLER, trunk="carrier-a", at=NOW + 1)
            )
            assert value(m, "textback_outbox_depth") == 1.0
            clock.now = NOW + 3601  # max_age_hours = 1
            await delivery._step()
        assert texts(m) == {"queued": 2, "cancelled": 1, "expired": 1}
        assert fake.requests == []

    async def test_gateway_config_error_fails_health(self, tmp_path: Path) -> None:
        """Bad credentials count a config error and turn /healthz's gateway field red."""
        clock = Clock(NOW)
        async with (
            TwilioFake() as fake,
            delivering(tmp_path, fake, clock, token="wrong") as (delivery, m),
        ):
            await delivery.on_verdict(missed_call("c1", CALLER, NOW))
            await delivery._step()
            health = Health(lambda: True, ok, lambda: delivery.gateway_problem)
            healthy, body = await health.report()
        assert value(m, "textback_gateway_errors_total", kind="config") == 1.0
        assert texts(m) == {"queued": 1}  # kept for when the credentials are fixed
        assert not healthy
        assert body["gateway"].startswith("config error: ")


async def ok() -> bool:
    return True


async def not_writable() -> bool:
    return False


async def broken() -> bool:
    raise StoreError("cannot write the outbox in /var/lib/textback/textback.db: disk I/O error")


@asynccontextmanager
async def serving(metrics: Metrics, health: Health) -> AsyncIterator[str]:
    runner = await start_metrics_server(metrics, health, "127.0.0.1", 0)
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers["Content-Type"], await response.text()


async def healthz(health: Health) -> tuple[int, object]:
    async with (
        serving(Metrics(), health) as base,
        aiohttp.ClientSession() as session,
        session.get(base + "/healthz") as response,
    ):
        return response.status, await response.json()


class TestServer:
    async def test_metrics_is_prometheus_text(self) -> None:
        """GET /metrics answers 200, the text format's content type, and parseable text."""
        metrics = Metrics()
        metrics.opt_out()
        async with serving(metrics, Health(lambda: True, ok, lambda: None)) as base:
            status, content_type, text = await get(base + "/metrics")
        assert status == 200
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        names = {f.name for f in text_string_to_metric_families(text)}
        assert set(FAMILIES) <= names
        assert "textback_optouts_total 1.0" in text.splitlines()

    async def test_healthz_all_fine_is_200(self) -> None:
        """PBX up, database writable, gateway fine: 200 and three green fields."""
        status, body = await healthz(Health(lambda: True, ok, lambda: None))
        assert (status, body) == (200, {"pbx": "connected", "database": "ok", "gateway": "ok"})

    @pytest.mark.parametrize(
        ("health", "field", "shown"),
        [
            (Health(lambda: False, ok, lambda: None), "pbx", "down"),
            (Health(lambda: True, not_writable, lambda: None), "database", "error: not writable"),
            (
                Health(lambda: True, broken, lambda: None),
                "database",
                "error: cannot write the outbox in /var/lib/textback/textback.db: disk I/O error",
            ),
            (
                Health(lambda: True, ok, lambda: "twilio: 20003 Authenticate"),
                "gateway",
                "config error: twilio: 20003 Authenticate",
            ),
        ],
    )
    async def test_any_problem_is_503_and_named(
        self, health: Health, field: str, shown: str
    ) -> None:
        """One failing check makes it 503, with that field saying what is wrong."""
        status, body = await healthz(health)
        fine = {"pbx": "connected", "database": "ok", "gateway": "ok"}
        assert (status, body) == (503, fine | {field: shown})

    async def test_database_that_does_not_answer_is_an_error(self) -> None:
        """A database check that hangs past db_timeout is reported, not waited on forever."""
        never = asyncio.Event()

        async def hangs() -> bool:
            await never.wait()
            return True

        status, body = await healthz(Health(lambda: True, hangs, lambda: None, db_timeout=0.05))
        assert status == 503
        assert body == {
            "pbx": "connected",
            "database": "error: no answer within 0.05 s",
            "gateway": "ok",
        }

    async def test_taken_port_raises_and_leaves_nothing_running(self) -> None:
        """A second server on the same port fails with OSError."""
        health = Health(lambda: True, ok, lambda: None)
        async with serving(Metrics(), health) as base:
            port = int(base.rsplit(":", 1)[1])
            with pytest.raises(OSError, match="address already in use"):
                await start_metrics_server(Metrics(), health, "127.0.0.1", port)
