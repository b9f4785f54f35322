"""The web server inside the daemon: provider callbacks and the staff inbox (aiohttp)."""

from __future__ import annotations

from textback.web.app import WebDeps, make_app, start_web

__all__ = ["WebDeps", "make_app", "start_web"]
