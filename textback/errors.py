"""Exception hierarchy shared by every layer. Imports nothing from textback."""

from __future__ import annotations


class TextbackError(Exception):
    """Base of every error textback raises on purpose."""


class ConfigError(TextbackError):
    """The configuration cannot be used. Carries one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class PbxError(TextbackError):
    """Talking to the PBX failed."""


class PbxAuthError(PbxError):
    """The PBX refused our credentials: retrying fast will not help."""


class PbxProtocolError(PbxError):
    """The PBX sent something we cannot follow; reconnecting may help."""


class StoreError(TextbackError):
    """The SQLite database cannot be opened or migrated."""
