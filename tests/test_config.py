"""Configuration: YAML (nested, flat, mixed), LIFTBRIDGE_* env, flags, precedence, errors."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from lb.config import (
    DEFAULT_NATS_URL,
    KEYS,
    Config,
    ConfigError,
    HostPort,
    add_serve_arguments,
    default_config,
    load_config,
    parse_duration_ns,
)
from lb.config._model import SECTIONS

S = 1_000_000_000


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lb serve")
    add_serve_arguments(parser)
    return parser.parse_args(list(argv))


def load(
    tmp_path: Path, yaml_text: str | None = None, *argv: str, env: dict[str, str] | None = None
) -> Config:
    args = list(argv)
    if yaml_text is not None:
        path = tmp_path / "liftbridge.yaml"
        path.write_text(yaml_text)
        args = ["--config", str(path), *args]
    return load_config(parse_args(*args), env or {})


def error_of(tmp_path: Path, yaml_text: str | None = None, *argv: str,
             env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, yaml_text, *argv, env=env)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- defaults --------------------------------------------------------------------------------


def test_defaults_match_liftbridge() -> None:
    c = default_config()
    assert c.port == 9292
    assert c.listen is None and c.host is None
    assert c.bind_address == HostPort("0.0.0.0", 9292)
    assert c.advertise_address == HostPort("localhost", 9292)
    assert c.data_dir == "/tmp/liftbridge/liftbridge-default"
    assert c.metadata_cache_age_ns_max == 120 * S
    assert (c.batch_messages_max, c.batch_time_ns_max) == (1024, 0)
    assert c.logging.level == "info" and not c.logging.raft
    assert c.clustering.server_id is None
    assert c.clustering.namespace == "liftbridge-default"
    assert c.clustering.replica_lag_ns_max == 15 * S
    assert c.clustering.replica_leader_timeout_ns_max == 15 * S
    assert c.clustering.replica_idle_wait_ns_max == 10 * S
    assert c.clustering.replica_fetch_timeout_ns == 3 * S
    assert c.clustering.min_insync_replicas == 1
    assert c.clustering.replication_bytes_max == 1024 * 1024
    assert (c.clustering.raft_snapshot_retain, c.clustering.raft_cache_size) == (2, 512)
    assert c.streams.retention_age_ns_max == 168 * 3600 * S
    assert c.streams.segment_age_ns_max == c.streams.retention_age_ns_max
    assert c.streams.segment_bytes_max == 256 * 1024 * 1024
    assert c.streams.cleaner_interval_ns == 300 * S
    assert c.streams.compact_goroutines_max == 10
    assert (c.streams.fsync_policy, c.streams.fsync_interval_ns) == ("never", S)
    assert c.streams.fsync_messages == 1000
    assert c.activity_stream.publish_ack_policy == "all"
    assert c.activity_stream.publish_timeout_ns == 5 * S
    assert (c.cursors_stream.partitions, c.cursors_stream.replication_factor) == (0, -1)
    assert c.cursors_stream.auto_pause_time_ns == 60 * S
    assert c.groups.consumer_timeout_ns == c.groups.coordinator_timeout_ns == 15 * S
    # No NATS configured: lb runs its own nats-server child and connects to it.
    assert c.nats.embedded and c.nats.servers == ()
    assert c.nats.embedded_restarts_max == 5


def test_config_is_frozen() -> None:
    c = default_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.logging.level = "debug"  # type: ignore[misc]


def test_every_key_has_a_field_and_every_field_a_key() -> None:
    fields = {f.name for f in dataclasses.fields(Config)} - set(SECTIONS) - {"config_file"}
    for section, cls in SECTIONS.items():
        fields |= {f"{section}.{f.name}" for f in dataclasses.fields(cls)}
    targets = {k.field for k in KEYS if k.field is not None}
    assert targets == fields


# --- file formats -----------------------------------------------------------------------------

NESTED = """
listen: 127.0.0.1:9393
host: lb.example
port: 9494
data:
  dir: /var/lib/lb
logging:
  level: debug
  raft: true
nats:
  servers: ["nats://127.0.0.1:4300", "nats://127.0.0.1:4301"]
streams:
  retention.max:
    age: 24h
    messages: 100
  compact.enabled: true
clustering:
  server.id: server-2
  raft:
    bootstrap:
      seed: true
  replica.max.lag.time: 20s
  min.insync.replicas: 2
batch:
  max:
    messages: 64
    time: 5ms
"""

FLAT = """
listen: 127.0.0.1:9393
host: lb.example
port: 9494
data.dir: /var/lib/lb
logging.level: debug
logging.raft: true
nats.servers:
  - nats://127.0.0.1:4300
  - nats://127.0.0.1:4301
streams.retention.max.age: 24h
streams.retention.max.messages: 100
streams.compact.enabled: true
clustering.server.id: server-2
clustering.raft.bootstrap.seed: true
clustering.replica.max.lag.time: 20s
clustering.min.insync.replicas: 2
batch.max.messages: 64
batch.max.time: 5ms
"""

MIXED = """
listen: 127.0.0.1:9393
host: lb.example
port: 9494
data.dir: /var/lib/lb
logging:
  level: debug
logging.raft: true
nats.servers: nats://127.0.0.1:4300,nats://127.0.0.1:4301
streams:
  retention.max.age: 24h
streams.retention.max.messages: 100
streams.compact:
  enabled: true
clustering:
  server.id: server-2
  raft.bootstrap.seed: true
clustering.replica.max.lag.time: 20s
clustering.min.insync.replicas: 2
batch.max:
  messages: 64
batch.max.time: 5ms
"""


@pytest.mark.parametrize("text", [NESTED, FLAT, MIXED], ids=["nested", "flat", "mixed"])
def test_file_formats_agree(tmp_path: Path, text: str) -> None:
    c = load(tmp_path, text)
    assert c.listen == HostPort("127.0.0.1", 9393)
    assert c.bind_address == HostPort("127.0.0.1", 9393)
    assert c.advertise_address == HostPort("lb.example", 9494)
    assert c.data_dir == "/var/lib/lb"
    assert c.logging.level == "debug" and c.logging.raft and not c.logging.recovery
    assert c.nats.servers == ("nats://127.0.0.1:4300", "nats://127.0.0.1:4301")
    assert not c.nats.embedded
    assert c.streams.retention_age_ns_max == 24 * 3600 * S
    assert c.streams.segment_age_ns_max == 24 * 3600 * S  # follows retention age
    assert c.streams.retention_messages_max == 100
    assert c.streams.compact_enabled
    assert c.clustering.server_id == "server-2"
    assert c.clustering.raft_bootstrap_seed
    assert c.clustering.replica_lag_ns_max == 20 * S
    assert c.clustering.min_insync_replicas == 2
    assert (c.batch_messages_max, c.batch_time_ns_max) == (64, 5_000_000)
    assert c.config_file is not None and c.config_file.endswith("liftbridge.yaml")


def test_every_key_is_accepted_in_a_file(tmp_path: Path) -> None:
    samples = {
        "listen": "127.0.0.1:1", "host": "h", "port": "1", "data.dir": "/d",
        "logging.level": "warn", "activity.stream.publish.ack.policy": "leader",
        "streams.fsync.policy": "batch", "nats.servers": "[nats://127.0.0.1:1]",
        "clustering.raft.bootstrap.peers": "[a, b]", "clustering.server.id": "s",
        "clustering.namespace": "ns", "cursors.stream.replication.factor": "3",
        "tls.client.authz.enabled": "false", "tls.client.auth.enabled": "false",
        "nats.embedded": "true",
    }
    lines = []
    for key in KEYS:
        if key.name in samples:
            value = samples[key.name]
        elif isinstance(key.default, bool):
            value = "false"
        elif key.kind.label.startswith("a duration"):
            value = "2s"
        elif key.kind.label == "an integer":
            value = "7"
        else:
            value = "x"
        lines.append(f"{key.name}: {value}")
    c = load(tmp_path, "\n".join(lines))
    assert c.clustering.raft_bootstrap_peers == ("a", "b")
    assert c.clustering.replica_fetch_timeout_ns == 2 * S
    assert c.streams.fsync_messages == 7
    assert c.activity_stream.publish_ack_policy == "leader"


def test_empty_file_sections_and_nulls_give_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, "").to_dict() == load(tmp_path, "# nothing\n").to_dict()
    c = load(tmp_path, "logging:\nhost:\nport: 9300\nstreams: {}\n")
    assert (c.logging.level, c.host, c.port) == ("info", None, 9300)


def test_keys_are_case_insensitive(tmp_path: Path) -> None:
    c = load(tmp_path, "Logging:\n  Level: ERROR\n")
    assert c.logging.level == "error"


def test_nested_under_a_key_that_is_also_a_section(tmp_path: Path) -> None:
    c = load(tmp_path, "nats:\n  embedded:\n    config: /etc/nats.conf\n    restart.max: 2\n")
    assert c.nats.embedded and c.nats.embedded_config == "/etc/nats.conf"
    assert c.nats.embedded_restarts_max == 2
    assert c.nats.servers == ()


def test_telemetry_is_accepted_and_ignored(tmp_path: Path) -> None:
    c = load(tmp_path, "telemetry:\n  enabled: false\n  interval.seconds: 60\n")
    assert "telemetry" not in c.to_dict()
    assert "interval.seconds: expected an integer" in error_of(
        tmp_path, "telemetry.interval.seconds: soon\n"
    )


def test_segment_age_explicit(tmp_path: Path) -> None:
    c = load(tmp_path, "streams.segment.max.age: 1h\n")
    assert c.streams.segment_age_ns_max == 3600 * S
    c = load(tmp_path, "streams.retention.max.age: 0\nstreams.segment.max.age: 0\n")
    assert c.streams.retention_age_ns_max == c.streams.segment_age_ns_max == 0


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("15s", 15 * S), ("2m", 120 * S), ("168h", 168 * 3600 * S), ("500ms", S // 2),
        ("1h30m", 5400 * S), ("1.5h", 5400 * S), (".5s", S // 2), ("1us", 1000),
        ("1\u00b5s", 1000), ("7ns", 7), ("0", 0), ("-0", 0), ("+3s", 3 * S),
        ("1m0.5s", 60 * S + S // 2), ("1.0000000005s", S),
    ],
)
def test_go_durations(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("value", ["abc", "15", "1d", "s", ".s", "1.2.3s", "-5s", "1h 30m", ""])
def test_bad_durations(tmp_path: Path, value: str) -> None:
    message = error_of(tmp_path, f'clustering.replica.max.lag.time: "{value}"\n')
    assert message.startswith(
        f'config error: clustering.replica.max.lag.time: invalid duration "{value}"'
    )


def test_duration_error_message_exact(tmp_path: Path) -> None:
    assert error_of(tmp_path, "clustering:\n  replica.max.lag.time: abc\n") == (
        'config error: clustering.replica.max.lag.time: invalid duration "abc"'
    )
    assert error_of(tmp_path, "streams.auto.pause.time: 15\n") == (
        'config error: streams.auto.pause.time: invalid duration 15 '
        '(a number needs a unit, e.g. "15s")'
    )
    assert load(tmp_path, "streams.auto.pause.time: 0\n").streams.auto_pause_time_ns == 0


# --- environment ------------------------------------------------------------------------------


def test_env_overrides_file_including_nested_keys(tmp_path: Path) -> None:
    env = {
        "LIFTBRIDGE_LOGGING_LEVEL": "error",
        "LIFTBRIDGE_CLUSTERING_REPLICA_MAX_LAG_TIME": "45s",
        "LIFTBRIDGE_CLUSTERING_RAFT_BOOTSTRAP_SEED": "true",
        "LIFTBRIDGE_HOST": "env.example",
        "LIFTBRIDGE_PORT": "9555",
        "LIFTBRIDGE_NATS_SERVERS": "nats://127.0.0.1:5000, nats://127.0.0.1:5001",
        "LIFTBRIDGE_ENCRYPTION_KEY": "not-a-setting",
        "LIFTBRIDGE_DATA_DIR": "",  # empty counts as unset
        "PATH": "/usr/bin",
    }
    c = load(tmp_path, NESTED, env=env)
    assert c.logging.level == "error"
    assert c.logging.raft  # from the file, not overridden
    assert c.clustering.replica_lag_ns_max == 45 * S
    assert c.clustering.raft_bootstrap_seed
    assert c.advertise_address == HostPort("env.example", 9555)
    assert c.nats.servers == ("nats://127.0.0.1:5000", "nats://127.0.0.1:5001")
    assert c.data_dir == "/var/lib/lb"


def test_env_applies_without_a_config_file(tmp_path: Path) -> None:
    c = load(tmp_path, None, env={"LIFTBRIDGE_LOGGING_LEVEL": "debug",
                                  "LIFTBRIDGE_CLUSTERING_NAMESPACE": "envns"})
    assert c.logging.level == "debug"
    assert c.clustering.namespace == "envns"
    assert c.data_dir == "/tmp/liftbridge/envns"


def test_env_error_names_key_and_variable(tmp_path: Path) -> None:
    assert error_of(tmp_path, None, env={"LIFTBRIDGE_LOGGING_LEVEL": "loud"}) == (
        'config error: logging.level (from LIFTBRIDGE_LOGGING_LEVEL): invalid log level "loud" '
        "(want debug, info, warn or error)"
    )
    assert error_of(tmp_path, None, env={"LIFTBRIDGE_LOGGING_RAFT": "yes"}) == (
        'config error: logging.raft (from LIFTBRIDGE_LOGGING_RAFT): expected true or false, '
        'got "yes"'
    )


# --- flags ------------------------------------------------------------------------------------


def test_liftbridge_short_flags_parse() -> None:
    args = parse_args(
        "-c", "f.yaml", "--id", "s1", "--ns", "ns1", "-n", "nats://a:1,nats://b:2",
        "-n", "nats://c:3", "-e", "--nc", "nats.conf", "-d", "/data", "-p", "9000",
        "-l", "debug", "--raft-bootstrap-seed", "--raft-bootstrap-peers", "s1,s2",
        "--tls-cert", "c.pem", "--tls-key", "k.pem",
    )
    assert args.config == "f.yaml"
    assert (args.server_id, args.namespace, args.data_dir) == ("s1", "ns1", "/data")
    assert args.nats_servers == ["nats://a:1,nats://b:2", "nats://c:3"]
    assert args.embedded_nats is True and args.embedded_nats_config == "nats.conf"
    assert (args.port, args.level) == ("9000", "debug")
    assert args.raft_bootstrap_seed is True and args.raft_bootstrap_peers == ["s1,s2"]
    assert (args.tls_cert, args.tls_key) == ("c.pem", "k.pem")
    args = parse_args("--server-id", "s2", "--namespace", "n2", "--nats-servers", "x:1",
                      "--embedded-nats", "--embedded-nats-config", "e.conf", "--data-dir",
                      "/d2", "--port", "1", "--level", "warn", "--config", "g.yaml")
    assert (args.server_id, args.namespace, args.config) == ("s2", "n2", "g.yaml")
    unset = parse_args()
    assert all(value is None for value in vars(unset).values())


def test_flags_apply(tmp_path: Path) -> None:
    c = load(
        tmp_path, None, "--id", "s1", "--ns", "ns1", "-n", "nats://127.0.0.1:1,127.0.0.1:2",
        "-n", "nats://127.0.0.1:3", "-d", "/data", "-p", "9000", "-l", "DEBUG",
        "--raft-bootstrap-seed", "--raft-bootstrap-peers", "s1,s2", "--raft-bootstrap-peers",
        "s3", "--tls-cert", "c.pem", "--tls-key", "k.pem",
    )
    assert (c.clustering.server_id, c.clustering.namespace) == ("s1", "ns1")
    assert c.nats.servers == ("nats://127.0.0.1:1", "nats://127.0.0.1:2", "nats://127.0.0.1:3")
    assert not c.nats.embedded
    assert (c.data_dir, c.port, c.logging.level) == ("/data", 9000, "debug")
    assert c.clustering.raft_bootstrap_seed
    assert c.clustering.raft_bootstrap_peers == ("s1", "s2", "s3")
    assert c.tls.enabled and (c.tls.cert, c.tls.key) == ("c.pem", "k.pem")


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    text = "logging.level: warn\nport: 9100\nclustering.namespace: filens\n"
    env = {"LIFTBRIDGE_LOGGING_LEVEL": "error", "LIFTBRIDGE_PORT": "9200"}
    c = load(tmp_path, text, "--level", "debug", env=env)
    assert c.logging.level == "debug"  # flag beats env and file
    assert c.port == 9200  # env beats file; --port not given
    assert c.clustering.namespace == "filens"  # file beats default; --ns not given
    assert c.data_dir == "/tmp/liftbridge/filens"
    assert c.batch_messages_max == 1024  # default
    c = load(tmp_path, text, "-p", "9300", env=env)
    assert (c.port, c.logging.level) == (9300, "error")


def test_flag_error_names_key_and_flag(tmp_path: Path) -> None:
    assert error_of(tmp_path, None, "-p", "http") == (
        'config error: port (from --port): expected an integer, got "http"'
    )
    assert error_of(tmp_path, None, "--id", "a.b") == (
        'config error: clustering.server.id (from --server-id): invalid name "a.b" '
        '(must be non-empty, without spaces, ".", "*" or ">")'
    )


# --- embedded NATS ----------------------------------------------------------------------------


def test_embedded_nats_semantics(tmp_path: Path) -> None:
    servers = 'nats.servers: ["nats://127.0.0.1:4300"]\n'
    c = load(tmp_path, servers)
    assert (c.nats.embedded, c.nats.servers) == (False, ("nats://127.0.0.1:4300",))
    c = load(tmp_path, servers + "nats.embedded: true\n")
    assert (c.nats.embedded, c.nats.servers) == (True, ("nats://127.0.0.1:4300",))
    c = load(tmp_path, servers, "-e")
    assert c.nats.embedded
    c = load(tmp_path, servers, "--nc", "/etc/nats.conf")
    assert c.nats.embedded and c.nats.embedded_config == "/etc/nats.conf"
    c = load(tmp_path, servers + "nats.embedded.config: /etc/nats.conf\n")
    assert c.nats.embedded
    # Liftbridge's quirk fixed: false means false; with no servers, connect to the default URL.
    c = load(tmp_path, "nats.embedded: false\n")
    assert (c.nats.embedded, c.nats.servers) == (False, (DEFAULT_NATS_URL,))
    c = load(tmp_path, "nats.embedded: false\n", "-e")
    assert (c.nats.embedded, c.nats.servers) == (True, ())
    c = load(tmp_path, None, env={"LIFTBRIDGE_NATS_EMBEDDED": "false"})
    assert not c.nats.embedded
    assert error_of(tmp_path, "nats.embedded: false\nnats.embedded.config: x.conf\n") == (
        "config error: nats.embedded: is false but nats.embedded.config is set"
    )


# --- addresses --------------------------------------------------------------------------------


def test_addresses(tmp_path: Path) -> None:
    c = load(tmp_path, "host: 127.0.0.1\nport: 9301\n")
    assert c.bind_address == c.advertise_address == HostPort("127.0.0.1", 9301)
    c = load(tmp_path, "listen: 127.0.0.1:9302\n")
    assert c.bind_address == c.advertise_address == HostPort("127.0.0.1", 9302)
    c = load(tmp_path, "listen: 0.0.0.0:9303\nhost: public.example\n", "-p", "9304")
    assert c.bind_address == HostPort("0.0.0.0", 9303)
    assert c.advertise_address == HostPort("public.example", 9304)
    c = load(tmp_path, 'listen: "[::1]:9305"\n')
    assert c.bind_address == HostPort("::1", 9305) and str(c.bind_address) == "[::1]:9305"
    c = load(tmp_path, 'listen: ":9306"\n')
    assert c.bind_address == HostPort("0.0.0.0", 9306)
    assert load(tmp_path, None, "-p", "9307").bind_address == HostPort("0.0.0.0", 9307)


# --- errors: exact one-line messages ----------------------------------------------------------


def test_unknown_key(tmp_path: Path) -> None:
    assert error_of(tmp_path, "foo.bar: 1\n") == (
        'config error: unknown configuration setting "foo.bar"'
    )
    assert error_of(tmp_path, "foo:\n  bar: 1\n") == (
        'config error: unknown configuration setting "foo.bar"'
    )
    assert error_of(tmp_path, "foo: {}\n") == 'config error: unknown configuration setting "foo"'
    assert error_of(tmp_path, "logging:\n  colour: true\n") == (
        'config error: unknown configuration setting "logging.colour"'
    )


def test_wrong_types(tmp_path: Path) -> None:
    assert error_of(tmp_path, "port: abc\n") == (
        'config error: port: expected an integer, got "abc"'
    )
    assert error_of(tmp_path, "logging.raft: 3\n") == (
        "config error: logging.raft: expected true or false, got 3"
    )
    assert error_of(tmp_path, "batch.max.messages: 1.5\n") == (
        "config error: batch.max.messages: expected an integer, got 1.5"
    )
    assert error_of(tmp_path, "clustering:\n  server.id: [a]\n") == (
        "config error: clustering.server.id: expected a string, got a list"
    )
    assert error_of(tmp_path, "port:\n  x: 1\n") == (
        "config error: port: expected an integer, got a mapping"
    )


def test_bad_values(tmp_path: Path) -> None:
    assert error_of(tmp_path, "logging.level: loud\n") == (
        'config error: logging.level: invalid log level "loud" '
        "(want debug, info, warn or error)"
    )
    assert error_of(tmp_path, "activity.stream.publish.ack.policy: some\n") == (
        'config error: activity.stream.publish.ack.policy: invalid ack policy "some" '
        "(want none, leader or all)"
    )
    assert error_of(tmp_path, "clustering.min.insync.replicas: 0\n") == (
        "config error: clustering.min.insync.replicas: must be at least 1, got 0"
    )
    assert error_of(tmp_path, "port: 70000\n") == (
        "config error: port: invalid port 70000 (want 0..65535)"
    )
    assert error_of(tmp_path, "nats.servers: []\n") == "config error: nats.servers: empty list"
    assert error_of(tmp_path, "nats.servers: [http://x:1]\n") == (
        'config error: nats.servers: invalid NATS server URL "http://x:1"'
    )
    assert error_of(tmp_path, "clustering.namespace: my ns\n") == (
        'config error: clustering.namespace: invalid name "my ns" '
        '(must be non-empty, without spaces, ".", "*" or ">")'
    )


def test_bad_listen(tmp_path: Path) -> None:
    assert error_of(tmp_path, "listen: localhost\n") == (
        'config error: listen: invalid address "localhost" (want host:port)'
    )
    assert error_of(tmp_path, "listen: 9292\n") == (
        'config error: listen: expected a "host:port" string, got 9292'
    )
    assert error_of(tmp_path, "listen: h:99999\n") == (
        'config error: listen: invalid port "99999" (want 0..65535)'
    )
    assert error_of(tmp_path, "listen: ::1:9292\n") == (
        'config error: listen: invalid address "::1:9292" (want host:port)'
    )


def test_tls_halves(tmp_path: Path) -> None:
    assert error_of(tmp_path, None, "--tls-cert", "c.pem") == (
        "config error: tls.cert: needs tls.key too"
    )
    assert error_of(tmp_path, "nats.tls.key: k.pem\n") == (
        "config error: nats.tls.key: needs nats.tls.cert too"
    )
    assert error_of(tmp_path, "tls.client.auth.enabled: true\n") == (
        "config error: tls.client.auth.enabled: needs tls.cert and tls.key too"
    )
    text = "tls: {cert: c, key: k, client.auth.enabled: true, client.authz.enabled: true}\n"
    assert error_of(tmp_path, text) == (
        "config error: tls.client.authz.enabled: needs tls.client.authz.model and "
        "tls.client.authz.policy too"
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(parse_args("-c", str(path)), {})
    assert str(info.value) == f'config error: config file "{path}" not found'


def test_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "liftbridge.yaml"
    assert error_of(tmp_path, "port: 1\nlogging: [debug\n") == (
        f'config error: invalid YAML in "{path}" at line 3, column 1: '
        "expected ',' or ']', but got '<stream end>'"
    )
    assert error_of(tmp_path, "port: 1\nhost: a: b\n") == (
        f'config error: invalid YAML in "{path}" at line 2, column 8: '
        "mapping values are not allowed here"
    )
    assert error_of(tmp_path, "port: 1\nport: 2\n") == (
        f'config error: invalid YAML in "{path}" at line 2, column 1: duplicate key "port"'
    )
    assert error_of(tmp_path, "- port\n") == (
        f'config error: config file "{path}" must hold a mapping of settings'
    )


def test_key_given_nested_and_flat(tmp_path: Path) -> None:
    assert error_of(tmp_path, "logging: {level: debug}\nlogging.level: info\n") == (
        "config error: logging.level: set more than once in the config file"
    )


# --- to_dict ----------------------------------------------------------------------------------


def test_to_dict_redacts_password(tmp_path: Path) -> None:
    text = "nats:\n  user: u\n  password: hunter2\nlisten: 127.0.0.1:9400\n"
    c = load(tmp_path, text, "-l", "debug")
    d = c.to_dict()
    assert d["nats"]["password"] == "<redacted>" and d["nats"]["user"] == "u"
    assert d["listen"] == "127.0.0.1:9400" and d["bind_address"] == "127.0.0.1:9400"
    assert c.to_dict(redact=False)["nats"]["password"] == "hunter2"
    assert c.nats.password == "hunter2"
    assert c.logging.python_level == 10
