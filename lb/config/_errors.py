"""The one exception configuration loading raises."""

from __future__ import annotations


class ConfigError(Exception):
    """Bad configuration: unknown key, wrong type, invalid value, unreadable file, bad YAML.

    ``str(err)`` is one line, ``config error: <key or file>: <reason>``, ready for stderr; the
    CLI prints it and exits with status 2. ``key`` is the dotted setting it concerns, if any.
    """

    def __init__(self, detail: str, *, key: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.key = key

    def __str__(self) -> str:
        return f"config error: {self.detail}"
