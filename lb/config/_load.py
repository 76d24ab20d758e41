"""Loading: YAML file, then ``LIFTBRIDGE_*`` environment, then explicit CLI flags, then checks.

Each layer produces raw values keyed by dotted Liftbridge key, each with a label for error
messages ("logging.level", "logging.level (from LIFTBRIDGE_LOGGING_LEVEL)", "... (from
--level)"). A later layer replaces an earlier one key by key. The merged raw values are parsed
once, through the key table, into the frozen :class:`Config`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from lb.config._errors import ConfigError
from lb.config._keys import (
    DEFAULT_NATS_URL,
    KEYS,
    KEYS_BY_ENV,
    KEYS_BY_NAME,
    SECTION_PREFIXES,
)
from lb.config._kinds import Invalid, show
from lb.config._model import SECTIONS, Config

# A config file larger than this is refused rather than read (bounded reads).
CONFIG_FILE_BYTES_MAX = 1024 * 1024

# dotted key -> (raw value, label naming the key and where the value came from)
_Raw = dict[str, tuple[object, str]]


# --- CLI flags ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Flag:
    """One of Liftbridge's serve flags; ``key`` None for --config, which is not a setting."""

    names: tuple[str, ...]
    dest: str
    key: str | None
    action: str  # "store", "store_true" or "append"
    help: str
    metavar: str | None = None


_FLAGS: tuple[_Flag, ...] = (
    _Flag(("--config", "-c"), "config", None, "store", "load configuration from FILE", "FILE"),
    _Flag(("--server-id", "--id"), "server_id", "clustering.server.id", "store",
          "ID of the server in the cluster if there is no stored ID (default: random ID)", "ID"),
    _Flag(("--namespace", "--ns"), "namespace", "clustering.namespace", "store",
          'cluster namespace (default: "liftbridge-default")', "NS"),
    _Flag(("--nats-servers", "-n"), "nats_servers", "nats.servers", "append",
          "connect to NATS cluster at ADDR[,ADDR]; repeatable (default: run an embedded "
          "NATS server)", "ADDR[,ADDR]"),
    _Flag(("--embedded-nats", "-e"), "embedded_nats", "nats.embedded", "store_true",
          "run an embedded NATS server"),
    _Flag(("--embedded-nats-config", "--nc"), "embedded_nats_config", "nats.embedded.config",
          "store", "load configuration for the embedded NATS server from FILE", "FILE"),
    _Flag(("--data-dir", "-d"), "data_dir", "data.dir", "store",
          'store data in DIR (default: "/tmp/liftbridge/<namespace>")', "DIR"),
    _Flag(("--port", "-p"), "port", "port", "store", "port to bind to (default: 9292)", "PORT"),
    _Flag(("--level", "-l"), "level", "logging.level", "store",
          'logging level [debug|info|warn|error] (default: "info")', "LEVEL"),
    _Flag(("--raft-bootstrap-seed",), "raft_bootstrap_seed", "clustering.raft.bootstrap.seed",
          "store_true",
          "bootstrap the Raft cluster by electing self as leader if there is no existing state"),
    _Flag(("--raft-bootstrap-peers",), "raft_bootstrap_peers", "clustering.raft.bootstrap.peers",
          "append", "bootstrap the Raft cluster with these peer IDs if there is no existing "
          "state; comma-separated, repeatable", "ID[,ID]"),
    _Flag(("--tls-cert",), "tls_cert", "tls.cert", "store", "server certificate file", "FILE"),
    _Flag(("--tls-key",), "tls_key", "tls.key", "store", "private key for server certificate",
          "FILE"),
)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add Liftbridge's server flags (SRV-1) to ``parser``.

    Every flag defaults to None so that :func:`load_config` can tell "not given" from "given":
    only explicitly set flags override the environment and the file. ``--help`` and
    ``--version`` are the caller's.
    """
    group = parser.add_argument_group("server configuration (Liftbridge flags)")
    for flag in _FLAGS:
        kwargs: dict[str, Any] = {"dest": flag.dest, "help": flag.help, "default": None}
        if flag.action == "store_true":
            kwargs["action"] = "store_true"
        else:
            kwargs["action"] = flag.action
            if flag.metavar is not None:
                kwargs["metavar"] = flag.metavar
        group.add_argument(*flag.names, **kwargs)


def _split_commas(values: Sequence[str]) -> list[str]:
    """Flatten repeated comma-separated flag values, dropping empty parts (as Liftbridge does)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _flag_layer(args: argparse.Namespace) -> _Raw:
    raw: _Raw = {}
    for flag in _FLAGS:
        value = getattr(args, flag.dest, None)
        if flag.key is None or value is None or value is False:
            continue
        if flag.action == "append":
            value = _split_commas(value)
        raw[flag.key] = (value, f"{flag.key} (from {flag.names[0]})")
    if "nats.embedded.config" in raw:
        # As in Liftbridge, giving the embedded server a config file turns it on.
        raw["nats.embedded"] = (True, "nats.embedded (from --embedded-nats-config)")
    return raw


# --- environment ----------------------------------------------------------------------------


def _env_layer(environ: Mapping[str, str]) -> _Raw:
    """``LIFTBRIDGE_<KEY>`` for every known key, dots as underscores; empty values are unset.

    Unlike Liftbridge, these apply whether or not a config file is given, and nested keys work
    (``LIFTBRIDGE_LOGGING_LEVEL``). Other ``LIFTBRIDGE_`` variables are not settings and are
    left alone (``LIFTBRIDGE_ENCRYPTION_KEY`` is the data-at-rest key, not a config key).
    """
    raw: _Raw = {}
    for name, value in environ.items():
        key = KEYS_BY_ENV.get(name)
        if key is not None and value != "":
            raw[key.name] = (value, f"{key.name} (from {name})")
    return raw


# --- YAML file ------------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML loader that refuses duplicate keys in one mapping (PyYAML keeps the last).

    The pure-Python loader, not libyaml's: a config file is small, and its error messages are
    then the same whether or not PyYAML was built with libyaml.
    """

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[object] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable key: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {show(key)}",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: str) -> object:
    try:
        with open(path, "rb") as f:
            data = f.read(CONFIG_FILE_BYTES_MAX + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {show(path)} not found") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {show(path)}: {e.strerror}") from None
    if len(data) > CONFIG_FILE_BYTES_MAX:
        raise ConfigError(
            f"config file {show(path)} is larger than {CONFIG_FILE_BYTES_MAX} bytes"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {show(path)} is not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(e.problem or e.context or "syntax error").split())
        raise ConfigError(f"invalid YAML in {show(path)}{where}: {problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML in {show(path)}: {' '.join(str(e).split())}") from None


def _flatten(mapping: Mapping[Any, Any], prefix: str, raw: _Raw) -> None:
    """Turn nested and dotted YAML keys into dotted names; a key given twice is an error.

    A mapping is descended into when its dotted name is the prefix of known keys (so
    ``nats: {embedded: {config: f}}`` works although ``nats.embedded`` is also a key). Keys are
    case-insensitive, as in Liftbridge.
    """
    for k, v in mapping.items():
        name = prefix + str(k).lower()
        if isinstance(v, dict) and (
            name in SECTION_PREFIXES or (v and name not in KEYS_BY_NAME)
        ):
            # Unknown sections are descended into too, to name the full unknown key.
            _flatten(v, name + ".", raw)
        elif v is None and name in SECTION_PREFIXES and name not in KEYS_BY_NAME:
            continue  # an empty section ("logging:" with nothing under it)
        elif name in KEYS_BY_NAME:
            if name in raw:
                raise ConfigError(f"{name}: set more than once in the config file", key=name)
            raw[name] = (v, name)
        else:
            raise ConfigError(f"unknown configuration setting {show(name)}", key=name)


def _file_layer(path: str) -> _Raw:
    doc = _read_yaml(path)
    raw: _Raw = {}
    if doc is None:
        return raw
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {show(path)} must hold a mapping of settings")
    _flatten(doc, "", raw)
    return raw


# --- building -------------------------------------------------------------------------------


def _parse_all(raw: _Raw) -> dict[str, object]:
    """Parse and check every key; unset keys (or YAML nulls) take the table default."""
    values: dict[str, object] = {}
    for key in KEYS:
        value, label = raw.get(key.name, (None, key.name))
        if value is None:
            values[key.name] = key.default
            continue
        try:
            parsed = key.kind.parse(value)
        except Invalid as e:
            raise ConfigError(f"{label}: {e.reason}", key=key.name) from None
        if key.check is not None:
            reason = key.check(parsed)
            if reason is not None:
                raise ConfigError(f"{label}: {reason}", key=key.name)
        values[key.name] = parsed
    return values


def _need(values: dict[str, object], key: str, *others: str) -> None:
    """If ``key`` is set (truthy), every one of ``others`` must be set too."""
    if not values[key]:
        return
    missing = [o for o in others if not values[o]]
    if missing:
        raise ConfigError(f"{key}: needs {' and '.join(missing)} too", key=key)


def _derive(values: dict[str, object]) -> None:
    """Fill derived defaults and check settings that only make sense together."""
    if values["data.dir"] is None:
        values["data.dir"] = f"/tmp/liftbridge/{values['clustering.namespace']}"
    if not values["streams.segment.max.age"]:
        values["streams.segment.max.age"] = values["streams.retention.max.age"]

    # Embedded NATS (SRV-6, with the quirk fixed: nats.embedded false means false).
    explicit = values["nats.embedded"]
    if explicit is False and values["nats.embedded.config"] is not None:
        raise ConfigError(
            "nats.embedded: is false but nats.embedded.config is set", key="nats.embedded"
        )
    servers = values["nats.servers"]
    if explicit is None:
        embedded = servers is None or values["nats.embedded.config"] is not None
    else:
        embedded = bool(explicit)
    if servers is None:
        servers = () if embedded else (DEFAULT_NATS_URL,)
    values["nats.embedded"] = embedded
    values["nats.servers"] = servers

    # Half-configured TLS is an error (Liftbridge silently runs without TLS).
    _need(values, "tls.cert", "tls.key")
    _need(values, "tls.key", "tls.cert")
    _need(values, "nats.tls.cert", "nats.tls.key")
    _need(values, "nats.tls.key", "nats.tls.cert")
    _need(values, "tls.client.auth.enabled", "tls.cert", "tls.key")
    _need(values, "tls.client.authz.enabled", "tls.client.auth.enabled",
          "tls.client.authz.model", "tls.client.authz.policy")


def _assemble(values: dict[str, object], config_file: str | None) -> Config:
    top: dict[str, object] = {"config_file": config_file}
    sections: dict[str, dict[str, object]] = {name: {} for name in SECTIONS}
    for key in KEYS:
        if key.field is None:
            continue  # accepted and ignored (telemetry.*)
        section, _, attr = key.field.rpartition(".")
        (sections[section] if section else top)[attr] = values[key.name]
    for name, cls in SECTIONS.items():
        top[name] = cls(**sections[name])
    return Config(**top)  # type: ignore[arg-type]


def load_config(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """Build the server configuration: defaults < config file < environment < explicit flags.

    ``args`` comes from a parser set up with :func:`add_serve_arguments` (missing attributes
    count as not given); ``args.config`` names the YAML file, if any. ``environ`` is usually
    ``os.environ``. Raises :class:`ConfigError` with a one-line message on any problem.
    """
    config_file = getattr(args, "config", None)
    raw: _Raw = {}
    if config_file is not None:
        raw.update(_file_layer(os.fspath(config_file)))
    raw.update(_env_layer(environ))
    raw.update(_flag_layer(args))
    values = _parse_all(raw)
    _derive(values)
    return _assemble(values, config_file)


def default_config() -> Config:
    """The configuration with no file, environment or flags: every default (handy in tests)."""
    return load_config(argparse.Namespace(), {})


