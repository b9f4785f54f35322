from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from structlog.contextvars import bound_contextvars
from structlog.testing import capture_logs

from textback import log


class TtyStringIO(io.StringIO):
    """An in-memory stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    log.reset()


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


class TestLogfmt:
    def test_line_shape(self, out: io.StringIO) -> None:
        """A logfmt line is the priority prefix, the event first, then the keys; no timestamp."""
        log.configure("logfmt", stream=out)
        log.get_logger().info("call_judged", caller="+14155550101", reason="no answer", ring=12.5)
        assert lines(out) == [
            '<6>event=call_judged caller=+1415***0101 reason="no answer" ring=12.5'
        ]

    def test_logger_name_follows_event(self, out: io.StringIO) -> None:
        """get_logger(name) puts logger=name right after the event."""
        log.configure("logfmt", stream=out)
        log.get_logger("textback.pbx").info("ami_connected", host="127.0.0.1")
        assert lines(out) == ["<6>event=ami_connected logger=textback.pbx host=127.0.0.1"]

    @pytest.mark.parametrize(
        ("method", "prefix"),
        [
            ("debug", "<7>"),
            ("info", "<6>"),
            ("warning", "<4>"),
            ("error", "<3>"),
            ("critical", "<2>"),
        ],
    )
    def test_priority_prefix(self, out: io.StringIO, method: str, prefix: str) -> None:
        """Each level carries the sd-daemon prefix journald maps to PRIORITY=."""
        log.configure("logfmt", level="debug", stream=out)
        getattr(log.get_logger(), method)("something_happened")
        assert [f"{prefix}event=something_happened"] == lines(out)

    def test_level_filters(self, out: io.StringIO) -> None:
        """Events below the configured level are dropped."""
        log.configure("logfmt", level="warning", stream=out)
        logger = log.get_logger()
        logger.info("quiet")
        logger.debug("quieter")
        logger.warning("ami_disconnected")
        assert lines(out) == ["<4>event=ami_disconnected"]

    def test_exception_stays_on_one_line(self, out: io.StringIO) -> None:
        """A traceback is rendered into the line with escaped newlines, at error priority."""
        log.configure("logfmt", stream=out)
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            log.get_logger().exception("dispatch_failed")
        [line] = lines(out)
        assert line.startswith("<3>event=dispatch_failed exception=")
        assert "ZeroDivisionError: boom" in line

    def test_context_vars_are_merged(self, out: io.StringIO) -> None:
        """Values bound with bound_contextvars appear on every line inside the block."""
        log.configure("logfmt", stream=out)
        with bound_contextvars(call_id="1764274841.12"):
            log.get_logger().info("call_judged")
        log.get_logger().info("idle")
        assert lines(out) == ["<6>event=call_judged call_id=1764274841.12", "<6>event=idle"]

    def test_default_stream_is_stderr(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without a stream, lines go to stderr and nothing to stdout."""
        log.configure("logfmt")
        log.get_logger().info("started")
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("", "<6>event=started\n")

    def test_configure_twice_does_not_duplicate(self, out: io.StringIO) -> None:
        """Calling configure again replaces the setup instead of stacking handlers."""
        first = io.StringIO()
        log.configure("logfmt", stream=first)
        log.configure("logfmt", stream=out)
        log.get_logger().info("once")
        logging.getLogger("panoramisk").warning("also once")
        assert (
            first.getvalue(),
            lines(out),
        ) == ("", ["<6>event=once", '<4>event="also once" logger=panoramisk'])

    def test_logger_made_before_configure_follows_it(self, out: io.StringIO) -> None:
        """A module-level logger created before configure() writes with the later setup."""
        early = log.get_logger("textback.early")
        log.configure("logfmt", stream=out)
        early.info("hello")
        assert lines(out) == ["<6>event=hello logger=textback.early"]


class TestStdlibBridge:
    def test_stdlib_records_get_same_shape(self, out: io.StringIO) -> None:
        """Libraries logging through stdlib logging get the prefix and logfmt too."""
        log.configure("logfmt", stream=out)
        logging.getLogger("panoramisk.manager").error("connection lost to %s", "127.0.0.1")
        assert lines(out) == ['<3>event="connection lost to 127.0.0.1" logger=panoramisk.manager']

    def test_stdlib_level_follows_configuration(self, out: io.StringIO) -> None:
        """Stdlib records below the configured level are dropped as well."""
        log.configure("logfmt", level="warning", stream=out)
        logging.getLogger("panoramisk").info("chatty")
        assert lines(out) == []


class TestMasking:
    @pytest.mark.parametrize(
        "key", ["caller", "caller_raw", "caller_e164", "number", "to", "from_number"]
    )
    def test_personal_keys_are_masked(self, out: io.StringIO, key: str) -> None:
        """Every key that holds a caller's number is masked in the rendered line."""
        log.configure("logfmt", stream=out)
        log.get_logger().info("sms_queued", **{key: "+14155550101"})
        assert [f"<6>event=sms_queued {key}=+1415***0101"] == lines(out)

    def test_dids_stay_readable(self, out: io.StringIO) -> None:
        """The business's own numbers (DIDs) are not personal data and stay unmasked."""
        log.configure("logfmt", stream=out)
        log.get_logger().info("call_judged", did="+12125550100", did_e164="+12125550100")
        assert lines(out) == ["<6>event=call_judged did=+12125550100 did_e164=+12125550100"]

    @pytest.mark.parametrize(
        "key", ["secret", "ami_secret", "password", "SMTP_PASSWORD", "webhook_secret_key"]
    )
    def test_secrets_are_hidden(self, out: io.StringIO, key: str) -> None:
        """Any key containing secret or password is replaced whatever its value's type."""
        log.configure("logfmt", stream=out)
        log.get_logger().info("login", **{key: "hunter2"})
        log.get_logger().info("login", **{key: 12345})
        assert "hunter2" not in out.getvalue()
        assert "12345" not in out.getvalue()
        assert [f"<6>event=login {key}=***"] * 2 == lines(out)

    def test_non_string_caller_is_left_alone(self, out: io.StringIO) -> None:
        """A missing number (None) renders as empty rather than crashing the processor."""
        log.configure("logfmt", stream=out)
        log.get_logger().info("call_judged", caller_e164=None)
        assert lines(out) == ["<6>event=call_judged caller_e164="]

    def test_processor_alone(self) -> None:
        """The masking processor works on a bare event dict, for reuse in other chains."""
        event = {"event": "x", "caller": "101", "api_password": "p", "did": "+12125550100"}
        assert (log.mask_personal_data(None, "info", event)) == {
            "event": "x",
            "caller": "*01",
            "api_password": "***",
            "did": "+12125550100",
        }

    def test_console_output_is_masked_too(self, out: io.StringIO) -> None:
        """Masking does not depend on the renderer."""
        log.configure("console", stream=out)
        log.get_logger().info("call_judged", caller="+14155550101", ami_secret="hunter2")
        text = out.getvalue()
        assert "+1415***0101" in text
        assert "+14155550101" not in text
        assert "hunter2" not in text


class TestFormats:
    def test_console_when_forced(self, out: io.StringIO) -> None:
        """fmt='console' renders human output without a priority prefix or colours on a pipe."""
        log.configure("console", stream=out)
        log.get_logger("textback.pbx").info("call_judged", reason="busy")
        [line] = lines(out)
        assert not line.startswith("<")
        assert "call_judged" in line
        assert "reason=busy" in line
        assert "\x1b[" not in line

    def test_auto_on_a_pipe_is_logfmt(self, out: io.StringIO) -> None:
        """fmt='auto' on a non-terminal (journald's pipe) writes logfmt."""
        log.configure("auto", stream=out)
        log.get_logger().info("started")
        assert lines(out) == ["<6>event=started"]

    def test_auto_on_a_terminal_is_console(self) -> None:
        """fmt='auto' on a terminal writes coloured console output."""
        tty = TtyStringIO()
        log.configure("auto", stream=tty)
        log.get_logger().info("started")
        assert not tty.getvalue().startswith("<")
        assert "\x1b[" in tty.getvalue()
        assert "started" in tty.getvalue()

    def test_bad_level_is_value_error(self) -> None:
        """An unknown level names the choices."""
        with pytest.raises(ValueError, match=r"unknown log level 'loud'.*debug"):
            log.configure("logfmt", level="loud")

    def test_bad_format_is_value_error(self) -> None:
        """An unknown format names the choices."""
        with pytest.raises(
            ValueError, match="unknown log format 'yaml'; use one of: auto, logfmt, console, json"
        ):
            log.configure("yaml", stream=io.StringIO())  # type: ignore[arg-type]


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines(stream)]


def utc_stamp(value: object) -> datetime:
    assert isinstance(value, str)
    assert value.endswith("Z")
    return datetime.fromisoformat(value.removesuffix("Z") + "+00:00")


class TestJson:
    def test_line_shape(self, out: io.StringIO) -> None:
        """A json line is one object: ts, level and event first, then the fields, masked."""
        before = datetime.now(UTC)
        log.configure("json", stream=out)
        log.get_logger().info("call_judged", caller="+14155550101", reason="no answer", ring=12.5)
        [line] = lines(out)
        event = json.loads(line)
        assert list(event) == ["ts", "level", "event", "caller", "reason", "ring"]
        assert {k: v for k, v in event.items() if k != "ts"} == {
            "level": "info",
            "event": "call_judged",
            "caller": "+1415***0101",
            "reason": "no answer",
            "ring": 12.5,
        }
        assert before <= utc_stamp(event["ts"]) <= datetime.now(UTC)

    @pytest.mark.parametrize("method", ["debug", "info", "warning", "error", "critical"])
    def test_no_priority_prefix(self, out: io.StringIO, method: str) -> None:
        """Shippers get pure JSON lines: no sd-daemon <N> prefix at any level."""
        log.configure("json", level="debug", stream=out)
        getattr(log.get_logger(), method)("something_happened")
        [line] = lines(out)
        assert line.startswith("{")
        assert json.loads(line)["level"] == method

    def test_logger_name_follows_event(self, out: io.StringIO) -> None:
        """get_logger(name) puts "logger" right after the event."""
        log.configure("json", stream=out)
        log.get_logger("textback.pbx").info("ami_connected", host="127.0.0.1")
        [event] = json_lines(out)
        assert list(event) == ["ts", "level", "event", "logger", "host"]
        assert (event["logger"], event["host"]) == ("textback.pbx", "127.0.0.1")

    def test_stdlib_records_get_same_shape(self, out: io.StringIO) -> None:
        """Libraries logging through stdlib logging come out as the same JSON objects."""
        log.configure("json", stream=out)
        logging.getLogger("panoramisk.manager").error("connection lost to %s", "127.0.0.1")
        [event] = json_lines(out)
        assert list(event) == ["ts", "level", "event", "logger"]
        assert (event["level"], event["event"], event["logger"]) == (
            "error",
            "connection lost to 127.0.0.1",
            "panoramisk.manager",
        )
        utc_stamp(event["ts"])

    def test_secrets_are_hidden(self, out: io.StringIO) -> None:
        """The masking processor runs for json as for logfmt."""
        log.configure("json", stream=out)
        log.get_logger().info("login", ami_secret="hunter2", to="+14155550101")
        assert "hunter2" not in out.getvalue()
        assert "+14155550101" not in out.getvalue()
        [event] = json_lines(out)
        assert (event["ami_secret"], event["to"]) == ("***", "+1415***0101")

    def test_exception_stays_on_one_line(self, out: io.StringIO) -> None:
        """A traceback goes into the "exception" field of the one object."""
        log.configure("json", stream=out)
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            log.get_logger().exception("dispatch_failed")
        [event] = json_lines(out)
        assert event["level"] == "error"
        assert isinstance(event["exception"], str)
        assert "ZeroDivisionError: boom" in event["exception"]

    def test_odd_values_become_strings(self, out: io.StringIO) -> None:
        """A field JSON cannot hold (a path) is written as its str, not dropped with the line."""
        log.configure("json", stream=out)
        log.get_logger().info("database_opened", path=Path("/var/lib/textback/textback.db"))
        [event] = json_lines(out)
        assert event["path"] == "/var/lib/textback/textback.db"

    def test_text_stays_readable(self, out: io.StringIO) -> None:
        """Non-ASCII text is written as UTF-8, not \\u escapes."""
        log.configure("json", stream=out)
        log.get_logger().info("reply_received", business="Café Zoë")
        assert '"business":"Café Zoë"' in out.getvalue()

    def test_context_vars_are_merged(self, out: io.StringIO) -> None:
        """Values bound with bound_contextvars are fields of every object inside the block."""
        log.configure("json", stream=out)
        with bound_contextvars(call_id="1764274841.12"):
            log.get_logger().info("call_judged")
        log.get_logger().info("idle")
        first, second = json_lines(out)
        assert (first.get("call_id"), second.get("call_id")) == ("1764274841.12", None)


class TestGetLogger:
    def test_events_are_capturable(self) -> None:
        """Loggers from get_logger() work with structlog's capture_logs() in other tests."""
        with capture_logs() as captured:
            log.get_logger("textback.test").warning("ami_disconnected", host="127.0.0.1")
        assert captured == [
            {"event": "ami_disconnected", "host": "127.0.0.1", "log_level": "warning"}
        ]

    def test_reset_restores_defaults(self, out: io.StringIO) -> None:
        """reset() removes our stdlib handler and structlog configuration."""
        log.configure("logfmt", stream=out)
        log.reset()
        logging.getLogger("panoramisk").error("after reset")
        assert not structlog.is_configured()
        assert out.getvalue() == ""
