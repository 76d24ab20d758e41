"""The one table of configuration keys: name, kind, default, where it lands, and its check.

To add a setting, add a :class:`Key` row here and the matching field to its section dataclass in
``_model.py``; parsing, environment variables, error messages and ``to_dict`` follow from the row.
A test checks that every row has a field and every field a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lb.config._kinds import (
    BOOL,
    DURATION,
    INT,
    LISTEN,
    NATS_SERVERS,
    PORT,
    STR,
    STR_LIST,
    Choice,
    Kind,
    show,
)

# A check takes the parsed value and returns None when it is fine, else a one-line reason.
Check = Callable[[object], str | None]

SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS
HOUR_NS = 60 * MINUTE_NS
MIB = 1024 * 1024

DEFAULT_NAMESPACE = "liftbridge-default"
DEFAULT_PORT = 9292
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"

LOG_LEVELS = ("debug", "info", "warn", "error")
ACK_POLICIES = ("none", "leader", "all")
FSYNC_POLICIES = ("never", "interval", "batch", "messages")


def at_least(low: int) -> Check:
    """A check for an integer (or duration in ns) that must be >= ``low``."""

    def check(value: object) -> str | None:
        assert isinstance(value, int)
        return None if value >= low else f"must be at least {low}, got {value}"

    return check


def positive_duration(value: object) -> str | None:
    """A check for a duration that must be longer than zero."""
    assert isinstance(value, int)
    return None if value > 0 else "must be longer than 0"


def replication_factor(value: object) -> str | None:
    """-1 (every server in the cluster) or a count >= 1."""
    assert isinstance(value, int)
    return None if value == -1 or value >= 1 else f"must be -1 or at least 1, got {value}"


def nats_token(value: object) -> str | None:
    """Server ids and namespaces become NATS subject tokens: no spaces, periods or wildcards."""
    assert isinstance(value, str)
    if not value or any(c.isspace() or c in ".*>" for c in value):
        return f'invalid name {show(value)} (must be non-empty, without spaces, ".", "*" or ">")'
    return None


@dataclass(frozen=True)
class Key:
    """One configuration setting.

    ``name`` is Liftbridge's dotted key. ``field`` is where the parsed value goes in
    :class:`~lb.config.Config` ("attr" or "section.attr"), or None for a key that is accepted,
    type-checked and ignored. A ``default`` of None means "unset"; the loader derives some of
    those (data.dir, nats.servers, ...). ``lb_only`` marks keys Liftbridge does not have.
    """

    name: str
    kind: Kind
    default: object
    field: str | None
    doc: str
    check: Check | None = None
    lb_only: bool = False

    @property
    def env_name(self) -> str:
        """``LIFTBRIDGE_`` plus the key upper-cased with dots as underscores."""
        return "LIFTBRIDGE_" + self.name.upper().replace(".", "_")


KEYS: tuple[Key, ...] = (
    # --- top level -----------------------------------------------------------------------
    Key("listen", LISTEN, None, "listen", "bind address host:port"),
    Key("host", STR, None, "host", "advertised host (also bound when listen is unset)"),
    Key("port", PORT, DEFAULT_PORT, "port", "port"),
    Key("data.dir", STR, None, "data_dir", "data directory; default /tmp/liftbridge/<namespace>"),
    Key("metadata.cache.max.age", DURATION, 2 * MINUTE_NS, "metadata_cache_age_ns_max",
        "max age of cached broker metadata"),
    Key("batch.max.messages", INT, 1024, "batch_messages_max",
        "max messages per disk write batch", at_least(1)),
    Key("batch.max.time", DURATION, 0, "batch_time_ns_max",
        "max wait to fill a write batch (0: no wait)"),
    # --- logging ---------------------------------------------------------------------------
    Key("logging.level", Choice("log level", LOG_LEVELS), "info", "logging.level", "log level"),
    Key("logging.recovery", BOOL, False, "logging.recovery", "log Raft replay at recovery"),
    Key("logging.raft", BOOL, False, "logging.raft", "log the Raft subsystem"),
    Key("logging.nats", BOOL, False, "logging.nats", "log the embedded NATS server"),
    # --- tls (gRPC port) -------------------------------------------------------------------
    Key("tls.key", STR, None, "tls.key", "server private key file"),
    Key("tls.cert", STR, None, "tls.cert", "server certificate file"),
    Key("tls.client.auth.enabled", BOOL, False, "tls.client_auth_enabled",
        "require client certificates"),
    Key("tls.client.auth.ca", STR, None, "tls.client_auth_ca", "CA file for client certificates"),
    Key("tls.client.authz.enabled", BOOL, False, "tls.client_authz_enabled",
        "Casbin authorization (experimental)"),
    Key("tls.client.authz.model", STR, None, "tls.client_authz_model", "Casbin model file"),
    Key("tls.client.authz.policy", STR, None, "tls.client_authz_policy", "Casbin policy file"),
    # --- nats ------------------------------------------------------------------------------
    Key("nats.servers", NATS_SERVERS, None, "nats.servers",
        "NATS URLs; unset: use an embedded NATS server"),
    Key("nats.user", STR, None, "nats.user", "NATS user"),
    Key("nats.password", STR, None, "nats.password", "NATS password"),
    Key("nats.tls.cert", STR, None, "nats.tls_cert", "NATS client certificate file"),
    Key("nats.tls.key", STR, None, "nats.tls_key", "NATS client key file"),
    Key("nats.tls.ca", STR, None, "nats.tls_ca", "NATS CA file"),
    Key("nats.embedded", BOOL, None, "nats.embedded", "run an embedded NATS server"),
    Key("nats.embedded.config", STR, None, "nats.embedded_config",
        "nats-server config file for the embedded server (implies nats.embedded)"),
    Key("nats.embedded.restart.max", INT, 5, "nats.embedded_restarts_max",
        "restarts of the embedded nats-server within a minute before giving up",
        at_least(0), lb_only=True),
    # --- streams ---------------------------------------------------------------------------
    Key("streams.retention.max.bytes", INT, 0, "streams.retention_bytes_max",
        "max log size per partition (0: no limit)", at_least(0)),
    Key("streams.retention.max.messages", INT, 0, "streams.retention_messages_max",
        "max messages per partition (0: no limit)", at_least(0)),
    Key("streams.retention.max.age", DURATION, 168 * HOUR_NS, "streams.retention_age_ns_max",
        "segment TTL (0: none)"),
    Key("streams.cleaner.interval", DURATION, 5 * MINUTE_NS, "streams.cleaner_interval_ns",
        "how often retention and compaction run", positive_duration),
    Key("streams.segment.max.bytes", INT, 256 * MIB, "streams.segment_bytes_max",
        "max segment file size", at_least(1)),
    Key("streams.segment.max.age", DURATION, None, "streams.segment_age_ns_max",
        "max segment age before a roll; unset or 0: streams.retention.max.age"),
    Key("streams.compact.enabled", BOOL, False, "streams.compact_enabled", "log compaction"),
    Key("streams.compact.max.goroutines", INT, 10, "streams.compact_goroutines_max",
        "compaction concurrency", at_least(1)),
    Key("streams.auto.pause.time", DURATION, 0, "streams.auto_pause_time_ns",
        "idle time before a partition pauses (0: never)"),
    Key("streams.auto.pause.disable.if.subscribers", BOOL, False,
        "streams.auto_pause_disable_if_subscribers", "no auto-pause while subscribed"),
    Key("streams.concurrency.control", BOOL, False, "streams.concurrency_control",
        "optimistic concurrency control on publish"),
    Key("streams.encryption", BOOL, False, "streams.encryption",
        "encryption at rest (key in LIFTBRIDGE_ENCRYPTION_KEY)"),
    Key("streams.fsync.policy", Choice("fsync policy", FSYNC_POLICIES), "never",
        "streams.fsync_policy", "when the writer fsyncs", lb_only=True),
    Key("streams.fsync.interval", DURATION, SECOND_NS, "streams.fsync_interval_ns",
        "fsync period for policy interval", positive_duration, lb_only=True),
    Key("streams.fsync.messages", INT, 1000, "streams.fsync_messages",
        "fsync every this many messages for policy messages", at_least(1), lb_only=True),
    # --- clustering ------------------------------------------------------------------------
    Key("clustering.server.id", STR, None, "clustering.server_id",
        "server id; unset: generated and persisted by the server", nats_token),
    Key("clustering.namespace", STR, DEFAULT_NAMESPACE, "clustering.namespace",
        "cluster namespace", nats_token),
    Key("clustering.raft.snapshot.retain", INT, 2, "clustering.raft_snapshot_retain",
        "Raft snapshots kept on disk", at_least(1)),
    Key("clustering.raft.snapshot.threshold", INT, 8192, "clustering.raft_snapshot_threshold",
        "Raft entries since the last snapshot before a new one", at_least(1)),
    Key("clustering.raft.cache.size", INT, 512, "clustering.raft_cache_size",
        "Raft entries cached in memory", at_least(0)),
    Key("clustering.raft.bootstrap.seed", BOOL, False, "clustering.raft_bootstrap_seed",
        "bootstrap a new cluster with this server as leader"),
    Key("clustering.raft.bootstrap.peers", STR_LIST, (), "clustering.raft_bootstrap_peers",
        "bootstrap a new cluster with these server ids"),
    Key("clustering.raft.max.quorum.size", INT, 0, "clustering.raft_quorum_size_max",
        "max Raft voters (0: no limit)", at_least(0)),
    Key("clustering.replica.max.lag.time", DURATION, 15 * SECOND_NS,
        "clustering.replica_lag_ns_max", "lag before a follower leaves the ISR",
        positive_duration),
    Key("clustering.replica.max.leader.timeout", DURATION, 15 * SECOND_NS,
        "clustering.replica_leader_timeout_ns_max",
        "leader silence before a follower reports it", positive_duration),
    Key("clustering.replica.max.idle.wait", DURATION, 10 * SECOND_NS,
        "clustering.replica_idle_wait_ns_max", "max wait between caught-up follower fetches",
        positive_duration),
    Key("clustering.replica.fetch.timeout", DURATION, 3 * SECOND_NS,
        "clustering.replica_fetch_timeout_ns", "follower fetch request timeout",
        positive_duration),
    Key("clustering.min.insync.replicas", INT, 1, "clustering.min_insync_replicas",
        "ISR size needed to commit", at_least(1)),
    Key("clustering.replication.max.bytes", INT, MIB, "clustering.replication_bytes_max",
        "max replication response payload", at_least(1)),
    # --- activity stream -------------------------------------------------------------------
    Key("activity.stream.enabled", BOOL, False, "activity_stream.enabled",
        "publish metadata events to __activity"),
    Key("activity.stream.publish.timeout", DURATION, 5 * SECOND_NS,
        "activity_stream.publish_timeout_ns", "ack wait for activity events"),
    Key("activity.stream.publish.ack.policy", Choice("ack policy", ACK_POLICIES), "all",
        "activity_stream.publish_ack_policy", "ack policy for activity events"),
    # --- cursors stream --------------------------------------------------------------------
    Key("cursors.stream.partitions", INT, 0, "cursors_stream.partitions",
        "partitions of __cursors (0: cursors disabled)", at_least(0)),
    Key("cursors.stream.replication.factor", INT, -1, "cursors_stream.replication_factor",
        "replication factor of __cursors (-1: cluster size)", replication_factor),
    Key("cursors.stream.auto.pause.time", DURATION, MINUTE_NS, "cursors_stream.auto_pause_time_ns",
        "idle time before a __cursors partition pauses (0: never)"),
    # --- consumer groups -------------------------------------------------------------------
    Key("groups.consumer.timeout", DURATION, 15 * SECOND_NS, "groups.consumer_timeout_ns",
        "consumer silence before removal from its group", positive_duration),
    Key("groups.coordinator.timeout", DURATION, 15 * SECOND_NS, "groups.coordinator_timeout_ns",
        "coordinator silence before members report it", positive_duration),
    # --- telemetry: accepted and ignored (lb sends no telemetry) ---------------------------
    Key("telemetry.enabled", BOOL, True, None, "ignored: lb sends no telemetry"),
    Key("telemetry.interval.seconds", INT, 86400, None, "ignored: lb sends no telemetry"),
)

KEYS_BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}
KEYS_BY_ENV: dict[str, Key] = {k.env_name: k for k in KEYS}
# Every dotted prefix of a key ("clustering", "clustering.raft", ...): a YAML mapping under one
# of these is a section to descend into, not a value.
SECTION_PREFIXES: frozenset[str] = frozenset(
    k.name.rsplit(".", i)[0] for k in KEYS for i in range(1, k.name.count(".") + 1)
)

assert len(KEYS_BY_NAME) == len(KEYS), "duplicate key name"
assert len(KEYS_BY_ENV) == len(KEYS), "two keys map to one environment variable"
assert all("_" not in k.name and k.name == k.name.lower() for k in KEYS)
