"""textback: text the caller back when an inbound PBX call goes unanswered."""

from __future__ import annotations

__version__ = "0.1.0"
