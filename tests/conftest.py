"""Shared fixtures: the shipped example config and the real captures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from textback.config import Config, load
from textback.log import reset

TESTS = Path(__file__).parent
REPO = TESTS.parent
CAPTURES = TESTS / "captures" / "asterisk"
FS_CAPTURES = TESTS / "captures" / "freeswitch"
EXAMPLE_CONFIG = REPO / "textback.example.toml"


@dataclass(frozen=True, slots=True)
class Expected:
    """What a capture's sidecar says, in textback's vocabulary."""

    calls: list[tuple[str, str]]  # (verdict, reason) per inbound trunk call, in order
    ignored: str | None  # "internal" / "outbound" when the capture holds no inbound call
    caller: str


def expected_of(capture: Path) -> Expected:
    side = json.loads(capture.with_suffix(".json").read_text())
    names = {"missed": "missed", "not_missed": "answered"}
    if side["expected"] == "ignore":
        return Expected(calls=[], ignored=side["reason"], caller=side["caller"])
    listed = side.get("expected_calls")
    if listed:
        calls = [(names[c["expected"]], c["reason"]) for c in listed]
    else:
        calls = [(names[side["expected"]], side["reason"])] * int(side.get("calls") or 1)
    return Expected(calls=calls, ignored=None, caller=side["caller"])


def all_captures() -> list[Path]:
    return sorted(CAPTURES.glob("*.ami"))


def fs_captures() -> list[Path]:
    return sorted(FS_CAPTURES.glob("*.esl"))


@pytest.fixture(scope="session")
def example_config() -> Config:
    return load(EXAMPLE_CONFIG, require_secrets=False)


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """CLI tests configure logging onto pytest's captured stderr; undo that after each test."""
    yield
    reset()
