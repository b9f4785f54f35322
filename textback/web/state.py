"""What every part of the web app shares: its dependencies and the typed slots they live in.

Kept apart from :mod:`textback.web.app` so the handler modules can import the
slots without importing the app that imports them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from textback.gateways.base import Gateway

if TYPE_CHECKING:
    from textback.config import Config
    from textback.config_web import WebConfig
    from textback.conversations import Conversations
    from textback.store import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class WebDeps:
    """What the daemon hands the web app; the app owns none of it and closes none of it."""

    config: Config
    store: Store
    conversations: Conversations
    # Keyed by the adapter's kind name ("twilio"), as in /hooks/<kind>/inbound.
    gateways: Mapping[str, Gateway]
    clock: Callable[[], float] = field(default=time.time)  # Unix seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """Settings derived once from [web] for every request."""

    # The public URL's scheme, host and port, without a trailing slash: what signatures cover.
    origin: str
    # Where the app lives under that host ("" at the root, "/textback" behind a proxy prefix).
    # The proxy strips it before forwarding; links and redirects put it back.
    prefix: str
    secure: bool  # the public URL is https: cookies get Secure
    tz: ZoneInfo  # the business's zone, for times on the pages and the dashboard's "today"
    business: str
    web: WebConfig

    @classmethod
    def of(cls, config: Config) -> Site:
        """Raises ValueError when the config has no [web] table."""
        if config.web is None:
            raise ValueError("no [web] table: the web server has nothing to serve")
        public = urlsplit(config.web.public_url)
        return cls(
            origin=f"{public.scheme}://{public.netloc}",
            prefix=public.path.rstrip("/"),
            secure=config.web.secure_cookies,
            tz=ZoneInfo(config.sending.timezone),
            business=config.business.name,
            web=config.web,
        )

    def link(self, path: str) -> str:
        """An app path ("/c/+1...") as the browser must ask for it."""
        return self.prefix + path

    def public_url(self, target: str) -> str:
        """The URL a provider called, for signature checks: public origin and prefix + target."""
        return self.origin + self.prefix + target


DEPS = web.AppKey("textback_deps", WebDeps)
SITE = web.AppKey("textback_site", Site)
