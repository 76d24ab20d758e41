"""The frozen configuration: one :class:`Config` with a frozen dataclass per section.

Field names follow lb's naming rule (units last: ``replica_lag_ns_max``); every duration is int
nanoseconds with an ``_ns`` in its name, every size is int bytes. The Liftbridge key behind each
field is in ``_keys.KEYS``.
"""

from __future__ import annotations

import dataclasses
import logging as _logging
from dataclasses import dataclass
from typing import Any

from lb.config._kinds import HostPort

_PYTHON_LOG_LEVELS = {
    "debug": _logging.DEBUG,
    "info": _logging.INFO,
    "warn": _logging.WARNING,
    "error": _logging.ERROR,
}
# Fields whose values to_dict() hides unless asked not to.
_SECRETS = frozenset({"nats.password"})
_REDACTED = "<redacted>"


@dataclass(frozen=True)
class LoggingConfig:
    """``logging.*``: level is one of debug, info, warn, error (lower-case)."""

    level: str
    recovery: bool
    raft: bool
    nats: bool

    @property
    def python_level(self) -> int:
        """The level as a :mod:`logging` number (warn maps to WARNING)."""
        return _PYTHON_LOG_LEVELS[self.level]


@dataclass(frozen=True)
class TLSConfig:
    """``tls.*``: TLS on the gRPC port. The loader ensures key and cert come together."""

    key: str | None
    cert: str | None
    client_auth_enabled: bool
    client_auth_ca: str | None
    client_authz_enabled: bool
    client_authz_model: str | None
    client_authz_policy: str | None

    @property
    def enabled(self) -> bool:
        return bool(self.key and self.cert)


@dataclass(frozen=True)
class NATSConfig:
    """``nats.*``.

    ``embedded`` is True when lb must start its own nats-server child: ``nats.embedded`` is true,
    ``--embedded-nats`` or an embedded config is given, or no NATS server is configured at all.
    ``servers`` is empty exactly when lb should connect to that child (no servers configured);
    otherwise it lists the URLs to connect to (``nats://127.0.0.1:4222`` when ``nats.embedded``
    is explicitly false and no servers are given, as in Liftbridge).
    """

    servers: tuple[str, ...]
    user: str | None
    password: str | None
    tls_cert: str | None
    tls_key: str | None
    tls_ca: str | None
    embedded: bool
    embedded_config: str | None
    embedded_restarts_max: int


@dataclass(frozen=True)
class StreamsConfig:
    """``streams.*``: defaults for every stream (a stream's own config may override them)."""

    retention_bytes_max: int
    retention_messages_max: int
    retention_age_ns_max: int
    cleaner_interval_ns: int
    segment_bytes_max: int
    segment_age_ns_max: int
    compact_enabled: bool
    compact_goroutines_max: int
    auto_pause_time_ns: int
    auto_pause_disable_if_subscribers: bool
    concurrency_control: bool
    encryption: bool
    fsync_policy: str
    fsync_interval_ns: int
    fsync_messages: int


@dataclass(frozen=True)
class ClusteringConfig:
    """``clustering.*``. ``server_id`` None means: generate one and persist it (server's job)."""

    server_id: str | None
    namespace: str
    raft_snapshot_retain: int
    raft_snapshot_threshold: int
    raft_cache_size: int
    raft_bootstrap_seed: bool
    raft_bootstrap_peers: tuple[str, ...]
    raft_quorum_size_max: int
    replica_lag_ns_max: int
    replica_leader_timeout_ns_max: int
    replica_idle_wait_ns_max: int
    replica_fetch_timeout_ns: int
    min_insync_replicas: int
    replication_bytes_max: int


@dataclass(frozen=True)
class ActivityStreamConfig:
    """``activity.stream.*``; ack policy is none, leader or all."""

    enabled: bool
    publish_timeout_ns: int
    publish_ack_policy: str


@dataclass(frozen=True)
class CursorsStreamConfig:
    """``cursors.stream.*``; partitions 0 disables cursors, replication factor -1 = cluster size."""

    partitions: int
    replication_factor: int
    auto_pause_time_ns: int


@dataclass(frozen=True)
class GroupsConfig:
    """``groups.*``: consumer group timeouts."""

    consumer_timeout_ns: int
    coordinator_timeout_ns: int


# Section attribute name on Config -> its dataclass. The loader fills them from the key table.
SECTIONS: dict[str, type] = {
    "logging": LoggingConfig,
    "tls": TLSConfig,
    "nats": NATSConfig,
    "streams": StreamsConfig,
    "clustering": ClusteringConfig,
    "activity_stream": ActivityStreamConfig,
    "cursors_stream": CursorsStreamConfig,
    "groups": GroupsConfig,
}


@dataclass(frozen=True)
class Config:
    """Everything an lb server is configured with, after file, environment and flags.

    Addresses keep Liftbridge's semantics (SRV-4); see :attr:`bind_address` and
    :attr:`advertise_address`.
    """

    config_file: str | None
    listen: HostPort | None
    host: str | None
    port: int
    data_dir: str
    metadata_cache_age_ns_max: int
    batch_messages_max: int
    batch_time_ns_max: int
    logging: LoggingConfig
    tls: TLSConfig
    nats: NATSConfig
    streams: StreamsConfig
    clustering: ClusteringConfig
    activity_stream: ActivityStreamConfig
    cursors_stream: CursorsStreamConfig
    groups: GroupsConfig

    @property
    def bind_address(self) -> HostPort:
        """Where the gRPC server listens: ``listen``, else ``host:port``, else ``0.0.0.0:port``.

        Liftbridge's default binds every interface; lb keeps that. Tests pass a loopback host.
        """
        if self.listen is not None:
            return self.listen
        return HostPort(self.host if self.host is not None else "0.0.0.0", self.port)

    @property
    def advertise_address(self) -> HostPort:
        """What metadata tells clients: ``host:port``, else ``listen``, else ``localhost:port``."""
        if self.host is not None:
            return HostPort(self.host, self.port)
        if self.listen is not None:
            return self.listen
        return HostPort("localhost", self.port)

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """Plain nested dict for debugging and logs; addresses as "host:port" strings.

        Secrets (``nats.password``) are replaced by a marker unless ``redact`` is False.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, HostPort):
                section = dataclasses.asdict(value)
                for name in section:
                    if redact and f"{f.name}.{name}" in _SECRETS and section[name] is not None:
                        section[name] = _REDACTED
                out[f.name] = section
            elif isinstance(value, HostPort):
                out[f.name] = str(value)
            else:
                out[f.name] = value
        out["bind_address"] = str(self.bind_address)
        out["advertise_address"] = str(self.advertise_address)
        return out
