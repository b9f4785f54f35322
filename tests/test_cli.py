"""The `textback` command: check-config, replay, run (as a real process) and demo."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.conftest import CAPTURES, EXAMPLE_CONFIG, REPO
from textback.cli import EX_CONFIG, EX_DATAERR, EX_NOINPUT, main
from textback.simulator import AmiSimulator, SimulatorOptions

CONTRACT_KEYS = {"call_id", "trunk", "caller", "did", "verdict", "reason"}
PATIENCE = 30.0


class TestCheckConfig:
    def test_example_with_secret_is_ok(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The shipped example passes once its secret is there, and says what it loaded."""
        monkeypatch.setenv("TEXTBACK_AMI_SECRET", "s3cret-value-123")
        assert main(["check-config", "-c", str(EXAMPLE_CONFIG)]) == 0
        out = capsys.readouterr().out
        assert "OK" in out
        assert "carrier-a" in out
        assert "s3cret-value-123" not in out

    def test_problems_exit_78_one_line_each(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A broken file lists every problem with its key, and exits 78 (EX_CONFIG)."""
        path = tmp_path / "textback.toml"
        path.write_text(
            '[business]\nname = "Acme"\n[asterisk]\nport = "abc"\nsecret = "inline"\n'
            '[trunks.a]\nchanels = ["PJSIP/a-*"]\n'
        )
        assert main(["check-config", "-c", str(path)]) == EX_CONFIG
        err = capsys.readouterr().err
        for key in ("asterisk.port", "asterisk.secret", "trunks.a.chanels"):
            assert any(key in line for line in err.splitlines()), key
        assert "inline" not in err

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A config path that does not exist is a config problem, not a traceback."""
        assert main(["check-config", "-c", str(tmp_path / "nope.toml")]) == EX_CONFIG
        assert "nope.toml" in capsys.readouterr().err


class TestReplay:
    def test_json_lines_contract(self, capsys: pytest.CaptureFixture[str]) -> None:
        """One JSON object per inbound call, with the contract's keys, from the shipped config."""
        capture = CAPTURES / "pjsip-T12-abandon-then-callback-answered.ami"
        assert main(["replay", "-c", str(EXAMPLE_CONFIG), str(capture)]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(r["verdict"], r["reason"]) for r in lines] == [
            ("missed", "abandoned"),
            ("answered", "answered"),
        ]
        for record in lines:
            assert record.keys() >= CONTRACT_KEYS
            assert (record["trunk"], record["caller"], record["did"]) == (
                "carrier-a",
                "+14155550312",
                "+12125550100",
            )

    def test_all_adds_ignored_calls(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--all prints internal calls with verdict 'ignored'; without it nothing is printed."""
        capture = str(CAPTURES / "09-internal-101-to-102.ami")
        assert main(["replay", "-c", str(EXAMPLE_CONFIG), capture]) == 0
        assert capsys.readouterr().out == ""
        assert main(["replay", "-c", str(EXAMPLE_CONFIG), "--all", capture]) == 0
        (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert (record["verdict"], record["reason"]) == ("ignored", "internal")

    def test_bad_inputs(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An unreadable file and a non-capture file are named on stderr with distinct codes."""
        junk = tmp_path / "notes.txt"
        junk.write_text("hello")
        config = str(EXAMPLE_CONFIG)
        assert main(["replay", "-c", config, str(tmp_path / "missing.ami")]) == EX_NOINPUT
        assert main(["replay", "-c", config, str(junk)]) == EX_DATAERR
        err = capsys.readouterr().err
        assert "missing.ami" in err
        assert "notes.txt: not a PBX capture" in err


def run_config(tmp_path: Path, port: int, secret: str) -> Path:
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret + "\n")
    path = tmp_path / "textback.toml"
    path.write_text(
        f'[daemon]\ndatabase = "{tmp_path / "textback.db"}"\n[log]\nformat = "logfmt"\n'
        '[business]\nname = "Acme Plumbing"\n'
        f'[asterisk]\nport = {port}\nsecret_file = "{secret_file}"\n'
        "reconnect_min = 0.1\nreconnect_max = 0.5\nauth_retry = 30\n"
        '[trunks.carrier-a]\nchannels = ["SIP/carrier-a-*", "PJSIP/carrier-a-*"]\n'
    )
    return path


async def start_run(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "textback",
        "run",
        "-c",
        str(config),
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def line_with(process: asyncio.subprocess.Process, needle: str) -> tuple[str, list[str]]:
    """Read stderr until a line contains ``needle``; return it and every line read."""
    assert process.stderr is not None
    seen: list[str] = []
    async with asyncio.timeout(PATIENCE):
        while True:
            raw = await process.stderr.readline()
            assert raw, f"textback run exited before logging {needle}: {seen}"
            seen.append(raw.decode())
            if needle in seen[-1]:
                return seen[-1], seen


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(PATIENCE):
        return await process.wait()


class TestRun:
    async def test_judges_logs_and_stores_then_stops_on_sigterm(self, tmp_path: Path) -> None:
        """`textback run` logs one masked logfmt line per call, fills SQLite, exits 0 on SIGTERM."""
        capture = (CAPTURES / "pjsip-02-voicemail.ami").read_bytes()
        async with AmiSimulator([capture], SimulatorOptions(secret="pbx-secret")) as simulator:
            process = await start_run(run_config(tmp_path, simulator.port, "pbx-secret"))
            try:
                line, _ = await line_with(process, "event=call_judged")
                # The daemon still runs: another process can read the call log now.
                with sqlite3.connect(f"file:{tmp_path / 'textback.db'}?mode=ro", uri=True) as db:
                    rows = db.execute("SELECT caller_e164, verdict, reason FROM calls").fetchall()
            finally:
                code = await stop(process)
        assert line.startswith("<6>")
        assert "verdict=missed" in line
        assert "reason=voicemail" in line
        assert "+14155550202" not in line
        assert "caller=+1415***0202" in line
        assert rows == [("+14155550202", "missed", "voicemail")]
        assert code == 0

    async def test_wrong_secret_is_one_clear_error(self, tmp_path: Path) -> None:
        """A refused AMI login is an error line naming the fix, never the secret."""
        capture = (CAPTURES / "01-abandoned-ringing.ami").read_bytes()
        wrong = "wrong-secret-5f3a9"
        async with AmiSimulator([capture], SimulatorOptions(secret="pbx-secret")) as simulator:
            process = await start_run(run_config(tmp_path, simulator.port, wrong))
            try:
                line, seen = await line_with(process, "ami_login_refused")
            finally:
                code = await stop(process)
        assert line.startswith("<3>")
        assert "secret" in line
        assert wrong not in "".join(seen)
        assert code == 0


def test_demo_runs_and_shows_texts_and_summary() -> None:
    """`textback demo` texts the missed callers on the console and ends with the table."""
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "textback", "demo", "--speed", "50"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "SMS to +14155550101: Hi, this is Acme Plumbing" in result.stdout
    assert "Reply STOP to opt out." in result.stdout
    assert "13 inbound calls judged" in result.stdout
    assert "queue_abandoned" in result.stdout
    assert "SMS to +14155550103" not in result.stdout  # answered: no text


def admin_config(tmp_path: Path, provider_url: str) -> Path:
    (tmp_path / "token").write_text("twilio-token\n")
    path = tmp_path / "textback.toml"
    path.write_text(
        f'[daemon]\ndatabase = "{tmp_path / "textback.db"}"\n'
        '[business]\nname = "Acme Plumbing"\n'
        '[trunks.carrier-a]\nchannels = ["PJSIP/carrier-a-*"]\n'
        f'[gateway]\nkind = "twilio"\naccount_sid = "AC{"0" * 31}1"\n'
        f'auth_token_file = "{tmp_path / "token"}"\nfrom = "+12125550100"\n'
        f'base_url = "{provider_url}"\n'
    )
    return path


class TestAdminCommands:
    async def test_optout_blocks_send_test_until_removed(self, tmp_path: Path) -> None:
        """optout add/list/remove work on the daemon's file; send-test never texts an opt-out."""
        from tests.fakeproviders import TwilioFake

        async with TwilioFake() as fake:
            config = str(admin_config(tmp_path, fake.url))

            def run(*args: str) -> tuple[int, str]:
                import subprocess

                done = subprocess.run(
                    [sys.executable, "-m", "textback", *args, "-c", config],
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                return done.returncode, done.stdout

            async def arun(*args: str) -> tuple[int, str]:
                return await asyncio.to_thread(run, *args)

            assert (await arun("optout", "add", "(415) 555-0123"))[0] == 0
            code, listing = await arun("optout", "list")
            assert (code, "+14155550123" in listing) == (0, True)
            code, out = await arun("send-test", "+14155550123")
            assert (code, fake.requests) == (1, [])
            assert "opted out" in out
            assert (await arun("optout", "remove", "+14155550123"))[0] == 0
            code, out = await arun("send-test", "+14155550123")
            assert code == 0, out
            assert "sent to +14155550123 through twilio" in out
            (request,) = fake.requests
            assert request.form["To"] == "+14155550123"
            assert "Acme Plumbing" in request.form["Body"]
            code, out = await arun("outbox")
            assert code == 0
            assert "state" in out

    def test_optout_rejects_a_non_number(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A number that does not parse is refused, not stored."""
        config = str(admin_config(tmp_path, "http://127.0.0.1:9"))
        assert main(["optout", "add", "call-me-maybe", "-c", config]) == EX_DATAERR
        assert "not a valid phone number" in capsys.readouterr().out


def test_demo_on_freeswitch_runs_the_same_pipeline() -> None:
    """`textback demo --pbx freeswitch` plays event-socket captures through the real daemon."""
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "textback", "demo", "--pbx", "freeswitch", "--speed", "50"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "FreeSWITCH event-socket simulator" in result.stdout
    assert "SMS to +14155550101: Hi, this is Acme Plumbing" in result.stdout
    assert "unavailable" in result.stdout
    assert "cancelled (recovered)" in result.stdout


def test_passwd_prints_a_users_table_whose_hash_checks_out() -> None:
    """`textback passwd alice` turns the password into a [[web.users]] entry the login accepts."""
    import subprocess

    from textback.config_web import verify_password

    result = subprocess.run(
        [sys.executable, "-m", "textback", "passwd", "alice"],
        cwd=REPO,
        input="correct horse battery staple\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert '[[web.users]]\nname = "alice"' in result.stdout
    stored = result.stdout.split('password_hash = "')[1].split('"')[0]
    assert verify_password("correct horse battery staple", stored)
    assert not verify_password("wrong password", stored)
    assert "correct horse" not in result.stdout
