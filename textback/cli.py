"""The ``textback`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from textback import __version__
from textback.callview import verdict_record
from textback.config import DEFAULT_CONFIG_PATH, Config, LogFormat, load, summary
from textback.core.verdict import Verdict
from textback.errors import ConfigError, StoreError
from textback.log import configure, get_logger
from textback.replay import UnsupportedCapture, replay_bytes

# sysexits.h: systemd's RestartPreventExitStatus and shell scripts know these.
EX_OK: Final = 0
EX_DATAERR: Final = 65
EX_NOINPUT: Final = 66
EX_CANTCREAT: Final = 73
EX_CONFIG: Final = 78


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textback",
        description="Text the caller back when an inbound call on your PBX goes unanswered.",
    )
    parser.add_argument("--version", action="version", version=f"textback {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "-c",
            "--config",
            type=Path,
            default=DEFAULT_CONFIG_PATH,
            help=f"TOML configuration file (default: {DEFAULT_CONFIG_PATH})",
        )

    run = commands.add_parser("run", help="run the daemon (what the systemd unit starts)")
    with_config(run)
    run.add_argument(
        "--log-format",
        choices=["auto", "logfmt", "console", "json"],
        help="override [log] format (json: one object per line, for shipping logs elsewhere)",
    )
    stats = commands.add_parser(
        "stats", help="missed calls, texts, replies and what they earned (the ROI report)"
    )
    with_config(stats)
    stats.add_argument(
        "--since", default="30d", help="how far back, in days: 7d, 30d, 90 (default 30d)"
    )
    stats.add_argument("--format", choices=["table", "json", "csv"], default="table")
    install_check = commands.add_parser(
        "install-check",
        help="log into the PBX and the SMS provider with the configured credentials; sends nothing",
    )
    with_config(install_check)
    check = commands.add_parser(
        "check-config", help="validate the configuration; exit 78 when it has problems"
    )
    with_config(check)
    replay = commands.add_parser(
        "replay", help="judge the calls in recorded AMI streams; prints JSON Lines"
    )
    with_config(replay)
    replay.add_argument(
        "--all", action="store_true", help="also print internal and outbound calls (ignored)"
    )
    replay.add_argument("captures", nargs="+", type=Path, metavar="CAPTURE")
    send_test = commands.add_parser(
        "send-test",
        help="send one text through the configured gateway (skips cooldown, never opt-outs)",
    )
    with_config(send_test)
    send_test.add_argument("number", help="the phone to text, e.g. +14155550123")
    optout = commands.add_parser("optout", help="add, remove or list opted-out numbers")
    with_config(optout)
    optout.add_argument("action", choices=["add", "remove", "list"])
    optout.add_argument("number", nargs="?", help="the number (for add and remove)")
    outbox = commands.add_parser("outbox", help="recent texts: state, attempts, reason")
    with_config(outbox)
    outbox.add_argument("--limit", type=int, default=30, help="how many rows (default 30)")
    passwd = commands.add_parser(
        "passwd", help="make a [[web.users]] entry for the inbox (asks for the password)"
    )
    passwd.add_argument("name", help="the login name, e.g. alice")
    demo = commands.add_parser(
        "demo", help="run the daemon against a built-in PBX simulator; texts shown on the console"
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=20.0,
        help="how much faster than real time the recorded calls are played (default 20)",
    )
    demo.add_argument(
        "--pbx", choices=["asterisk", "freeswitch"], default="asterisk", help="PBX to simulate"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command: str = args.command
    if command == "check-config":
        return _check_config(args.config)
    if command == "replay":
        return _replay(args.config, args.captures, show_all=args.all)
    if command == "stats":
        return _stats(args.config, args.since, args.format)
    if command == "install-check":
        return _install_check(args.config)
    if command == "passwd":
        return _passwd(args.name)
    if command in ("send-test", "optout", "outbox"):
        return _admin(args)
    if command == "demo":
        from textback.demo import run_demo

        configure("auto", "info")
        return asyncio.run(run_demo(speed=args.speed, out=sys.stdout, pbx=args.pbx))
    return _run(args.config, args.log_format)


def _load(path: Path, *, require_secrets: bool) -> Config | None:
    try:
        return load(path, require_secrets=require_secrets)
    except ConfigError as exc:
        for problem in exc.problems:
            # File-level problems already name the file.
            shown = problem if problem.startswith(str(path)) else f"{path}: {problem}"
            print(shown, file=sys.stderr)
        return None


def _check_config(path: Path) -> int:
    config = _load(path, require_secrets=True)
    if config is None:
        print(f"{path}: configuration has problems (see above)", file=sys.stderr)
        return EX_CONFIG
    print(f"{path}: OK")
    for line in summary(config):
        print(f"  {line}")
    for notice in config.notices:
        print(f"  note: {notice}")
    return EX_OK


def _replay(path: Path, captures: Sequence[Path], *, show_all: bool) -> int:
    config = _load(path, require_secrets=False)
    if config is None:
        return EX_CONFIG
    configure("console" if sys.stderr.isatty() else "logfmt", "warning")
    log = get_logger("textback.replay")
    asterisk, freeswitch = config.correlator_settings(), config.freeswitch_settings()
    status = EX_OK
    for capture in captures:
        try:
            data = capture.read_bytes()
        except OSError as exc:
            print(f"{capture}: cannot read: {exc.strerror}", file=sys.stderr)
            status = EX_NOINPUT
            continue
        try:
            result = replay_bytes(data, asterisk, freeswitch)
        except UnsupportedCapture as exc:
            print(f"{capture}: {exc}", file=sys.stderr)
            status = EX_DATAERR
            continue
        for problem in result.problems:
            log.warning("frame_skipped", capture=str(capture), reason=problem.reason)
        for verdict in result.verdicts:
            if verdict.verdict is Verdict.IGNORED and not show_all:
                continue
            record = {**verdict_record(verdict, config.trunks), "capture": capture.name}
            print(json.dumps(record, ensure_ascii=False), flush=True)
    return status


def _passwd(name: str) -> int:
    import getpass

    from textback.config_web import hash_password

    if not name.strip() or any(c.isspace() or c == '"' for c in name):
        print(f"{name!r}: a login name is one word, without quotes", file=sys.stderr)
        return 2
    # getpass reads the terminal; with a pipe (scripts, tests) read one line from stdin.
    ask = (
        getpass.getpass
        if sys.stdin.isatty()
        else (lambda prompt: sys.stdin.readline().rstrip("\n"))
    )
    first = ask(f"Password for {name}: ")
    if sys.stdin.isatty() and ask("Again: ") != first:
        print("The two passwords differ; nothing written.", file=sys.stderr)
        return 1
    if len(first) < 10:
        print("Use at least 10 characters.", file=sys.stderr)
        return 1
    print("Add this to the [web] part of textback.toml, then restart textback:\n")
    print(f'[[web.users]]\nname = "{name}"\npassword_hash = "{hash_password(first)}"')
    return EX_OK


def _admin(args: argparse.Namespace) -> int:
    from textback import admin

    command: str = args.command
    config = _load(args.config, require_secrets=command == "send-test")
    if config is None:
        return EX_CONFIG
    try:
        if command == "optout":
            if args.action != "list" and args.number is None:
                print(f"textback optout {args.action}: give the number", file=sys.stderr)
                return 2
            return admin.optout(config, args.action, args.number, sys.stdout)
        if command == "outbox":
            return admin.outbox(config, args.limit, sys.stdout)
        configure("console" if sys.stderr.isatty() else "logfmt", "warning")
        return asyncio.run(admin.send_test(config, args.number, sys.stdout))
    except StoreError as exc:
        print(f"{config.daemon.database}: {exc}", file=sys.stderr)
        return EX_CANTCREAT


def _stats(path: Path, since: str, fmt: str) -> int:
    import time

    from textback import stats

    days = since.strip().lower().removesuffix("d")
    if not days.isdigit() or int(days) < 1:
        print(f"--since {since}: give a number of days, e.g. 30d", file=sys.stderr)
        return 2
    config = _load(path, require_secrets=False)
    if config is None:
        return EX_CONFIG
    return stats.main(config, since_days=int(days), fmt=fmt, out=sys.stdout, now=time.time())


def _install_check(path: Path) -> int:
    from textback.installcheck import run_checks

    # Unreadable secrets are reported among the other findings, not as a config error.
    config = _load(path, require_secrets=False)
    if config is None:
        return EX_CONFIG
    configure("console" if sys.stderr.isatty() else "logfmt", "warning")
    return asyncio.run(run_checks(config, sys.stdout))


def _run(path: Path, log_format: LogFormat | None = None) -> int:
    config = _load(path, require_secrets=True)
    if config is None:
        return EX_CONFIG
    configure(log_format or config.log.format, config.log.level)
    from textback.service import serve

    try:
        return asyncio.run(serve(config, path))
    except StoreError as exc:
        get_logger("textback").error("database_unusable", error=str(exc))
        return EX_CANTCREAT
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return EX_CONFIG
