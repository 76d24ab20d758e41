"""Value kinds for configuration keys: how a raw YAML, environment or flag value gets typed.

Every kind has one ``parse(value) -> typed value`` method that raises :class:`Invalid` with a short
reason. The same method serves YAML values (already typed by the YAML parser) and environment or
flag values (always strings), so that a key behaves the same wherever it is set.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

INT64_MAX = 2**63 - 1


class Invalid(Exception):
    """A value does not fit its key; ``reason`` is the one-line explanation (no key name)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def show(value: object) -> str:
    """Render a raw value for an error message on one line, strings quoted like Go's ``%q``."""
    if isinstance(value, str):
        text = value if len(value) <= 80 else value[:77] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


# --- durations ------------------------------------------------------------------------------

_UNIT_NS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign, as Go accepts
    "\u03bcs": 1_000,  # Greek mu, as Go accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
# One "<number><unit>" element of a Go duration; "ms" etc. are tried before "m" and "s".
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration_ns(text: str) -> int:
    """Parse a Go duration string ("15s", "1h30m", "500ms", "1.5h", "0") into nanoseconds.

    Follows Go's ``time.ParseDuration`` grammar (fractions are truncated to whole nanoseconds),
    except that negative durations are refused: no Liftbridge setting means anything by them.
    Raises :class:`Invalid`.
    """
    bad = Invalid(f"invalid duration {show(text)}")
    s = text.strip()
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise bad
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise bad
        whole, frac, unit = m.group(1), m.group(2) or "", m.group(3)
        if not whole and not frac:
            raise bad
        scale = _UNIT_NS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        pos = m.end()
    if total > INT64_MAX:
        raise Invalid(f"invalid duration {show(text)} (too large)")
    if sign < 0 and total != 0:
        raise Invalid(f"invalid duration {show(text)} (must not be negative)")
    return total


# --- kinds ----------------------------------------------------------------------------------


class Kind:
    """How a raw value becomes a typed one; subclasses implement :meth:`parse`."""

    label: ClassVar[str] = "value"

    def parse(self, value: object) -> object:  # pragma: no cover - abstract
        raise NotImplementedError

    def wrong_type(self, value: object) -> Invalid:
        return Invalid(f"expected {self.label}, got {show(value)}")


class StrKind(Kind):
    """A string. A YAML integer is accepted and turned into its decimal text (an id like 1)."""

    label = "a string"

    def parse(self, value: object) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.wrong_type(value)
        return str(value)


_INT_TEXT = re.compile(r"[+-]?\d+")


class IntKind(Kind):
    """An integer within int64. Decimal strings are accepted (environment values, quoted YAML)."""

    label = "an integer"

    def parse(self, value: object) -> int:
        if isinstance(value, bool):
            raise self.wrong_type(value)
        if isinstance(value, str):
            if not _INT_TEXT.fullmatch(value.strip()):
                raise self.wrong_type(value)
            value = int(value.strip())
        if not isinstance(value, int):
            raise self.wrong_type(value)
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise Invalid(f"{value} is out of range")
        return value


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class BoolKind(Kind):
    """A boolean: YAML true/false, or a string Go's ``strconv.ParseBool`` takes ("1", "t", ...)."""

    label = "true or false"

    def parse(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            if value.strip() in _TRUE:
                return True
            if value.strip() in _FALSE:
                return False
        raise self.wrong_type(value)


class DurationKind(Kind):
    """A duration, stored as int nanoseconds.

    Liftbridge (via viper/cast) reads a bare YAML integer as nanoseconds, which turns
    ``replica.max.lag.time: 15`` into 15 ns. lb accepts only 0 as a bare number and asks for a
    unit otherwise.
    """

    label = 'a duration like "15s"'

    def parse(self, value: object) -> int:
        if isinstance(value, bool):
            raise self.wrong_type(value)
        if isinstance(value, int):
            if value == 0:
                return 0
            raise Invalid(f'invalid duration {value} (a number needs a unit, e.g. "{value}s")')
        if not isinstance(value, str):
            raise self.wrong_type(value)
        return parse_duration_ns(value)


class StrListKind(Kind):
    """A list of strings: a YAML list, or one string split on commas and whitespace."""

    label = "a list of strings"

    def parse(self, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            items: list[object] = [p for p in re.split(r"[,\s]+", value) if p]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise self.wrong_type(value)
        out: list[str] = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, str | int):
                raise self.wrong_type(value)
            text = str(item).strip()
            if not text:
                raise Invalid("empty entry in list")
            out.append(text)
        if not out:
            raise Invalid("empty list")
        return tuple(out)


@dataclass(frozen=True)
class Choice(Kind):
    """One of a fixed set of words (case-insensitive, stored lower-case)."""

    what: str
    options: tuple[str, ...]

    def parse(self, value: object) -> str:
        if not isinstance(value, str):
            raise Invalid(f"expected a {self.what}, got {show(value)}")
        word = value.strip().lower()
        if word not in self.options:
            want = ", ".join(self.options[:-1]) + " or " + self.options[-1]
            raise Invalid(f"invalid {self.what} {show(value)} (want {want})")
        return word


@dataclass(frozen=True)
class HostPort:
    """A host and a TCP port, as in Liftbridge's ``HostPort``."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_port(text: str) -> int:
    """Parse a TCP port number 0..65535 (0 asks the OS for a free port)."""
    if not text.isdigit() or int(text) > 65535:
        raise Invalid(f"invalid port {show(text)} (want 0..65535)")
    return int(text)


def parse_host_port(text: str) -> HostPort:
    """Split "host:port" like Go's ``net.SplitHostPort`` ("[::1]:9292" for IPv6).

    An empty host (":9292") means every interface, "0.0.0.0", which is what Go's listener does
    with it. (Liftbridge ignores such a listen value entirely, port included.)
    """
    bad = Invalid(f"invalid address {show(text)} (want host:port)")
    s = text.strip()
    if s.startswith("["):
        end = s.find("]")
        if end < 0 or s[end + 1 : end + 2] != ":":
            raise bad
        host, port = s[1:end], s[end + 2 :]
    else:
        host, sep, port = s.rpartition(":")
        if not sep or ":" in host:
            raise bad
    if any(c.isspace() or c in "[]/" for c in host):
        raise bad
    return HostPort(host or "0.0.0.0", parse_port(port))


class ListenKind(Kind):
    """The ``listen`` address: a "host:port" string.

    Liftbridge silently ignores a bare YAML integer here; lb reports it.
    """

    label = 'a "host:port" string'

    def parse(self, value: object) -> HostPort:
        if not isinstance(value, str):
            raise self.wrong_type(value)
        return parse_host_port(value)


class PortKind(IntKind):
    """A TCP port number, 0..65535."""

    def parse(self, value: object) -> int:
        port = super().parse(value)
        if not 0 <= port <= 65535:
            raise Invalid(f"invalid port {port} (want 0..65535)")
        return port


_NATS_SCHEMES = ("nats", "tls", "ws", "wss")


class NatsServersKind(StrListKind):
    """NATS server URLs. A URL without a scheme gets ``nats://``, as the Go NATS client does."""

    def parse(self, value: object) -> tuple[str, ...]:
        urls = []
        for raw in super().parse(value):
            url = raw if "://" in raw else "nats://" + raw
            try:
                parts = urlsplit(url)
                _ = parts.port  # raises ValueError on a bad port
            except ValueError:
                raise Invalid(f"invalid NATS server URL {show(raw)}") from None
            if parts.scheme not in _NATS_SCHEMES or not parts.hostname:
                raise Invalid(f"invalid NATS server URL {show(raw)}")
            urls.append(url)
        return tuple(urls)


# Shared instances: kinds hold no state.
STR = StrKind()
INT = IntKind()
BOOL = BoolKind()
DURATION = DurationKind()
STR_LIST = StrListKind()
LISTEN = ListenKind()
PORT = PortKind()
NATS_SERVERS = NatsServersKind()
