"""Server configuration: Liftbridge's YAML keys, ``LIFTBRIDGE_*`` environment, and CLI flags.

One call builds one frozen :class:`Config`::

    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    config = load_config(parser.parse_args(argv), os.environ)   # raises ConfigError

Precedence, lowest first: built-in defaults, the YAML file (``--config``), ``LIFTBRIDGE_<KEY>``
environment variables, and flags given explicitly on the command line. Every key, type and
default is Liftbridge's (spec SRV-3); they are declared once, in ``lb/config/_keys.py``.

File format
    YAML, with nested maps, flat dotted keys, or both (``logging: {level: debug}`` and
    ``logging.level: debug`` are the same key; giving one key both ways is an error). Keys are
    case-insensitive. A YAML null leaves a key at its default.

Values
    Durations are Go duration strings ("500ms", "15s", "1h30m", "168h"), stored as int
    nanoseconds in fields named ``*_ns*``. Sizes and counts are integers (bytes for sizes).
    Environment values are strings parsed the same way; lists are comma-separated.

Environment
    ``LIFTBRIDGE_`` + the key upper-cased with dots as underscores:
    ``LIFTBRIDGE_PORT``, ``LIFTBRIDGE_LOGGING_LEVEL``,
    ``LIFTBRIDGE_CLUSTERING_RAFT_BOOTSTRAP_SEED``.
    Empty values count as unset. Unknown ``LIFTBRIDGE_*`` names are ignored.

Where lb differs from Liftbridge, on purpose:

- Environment overrides apply with or without a config file, and for nested keys too
  (Liftbridge: only with a file, and only for keys written in it; nested names do not work).
- ``nats.embedded: false`` means false (Liftbridge enables embedded NATS when the key is merely
  present). With no NATS server configured at all, lb runs its own nats-server child on
  loopback (``Config.nats.embedded`` True, ``Config.nats.servers`` empty); with
  ``nats.embedded: false`` and no servers it connects to ``nats://127.0.0.1:4222`` as
  Liftbridge does.
- ``listen`` given as a bare YAML integer is an error (Liftbridge ignores it); ``listen: ":9293"``
  binds every interface on port 9293 (Liftbridge ignores that too).
- A bare number as a duration is refused unless it is 0 (Liftbridge reads it as nanoseconds).
  Negative durations are refused.
- Half-configured TLS (cert without key, client auth without server TLS, authz without auth,
  model and policy) is an error; ``tls.client.authz.enabled`` is read from its own key
  (Liftbridge reads ``tls.client.auth.enabled``, quirk SRV-10).
- ``clustering.raft.snapshot.threshold`` defaults to 8192 explicitly (Liftbridge leaves 0 and
  gets hashicorp/raft's 8192). Server ids and namespaces must be usable as NATS subject tokens.
- ``telemetry.*`` is accepted and type-checked, then ignored: lb sends no telemetry.

Addresses keep Liftbridge's semantics (SRV-4): :attr:`Config.bind_address` is ``listen``, else
``host:port``, else ``0.0.0.0:port``; :attr:`Config.advertise_address` is ``host:port``, else
``listen``, else ``localhost:port``.

Keys lb adds (Liftbridge does not have them):

================================  ========  ========  ==========================================
key                               type      default   meaning
================================  ========  ========  ==========================================
streams.fsync.policy              choice    never     when partition writers fsync: never,
                                                      interval, batch (every write batch) or
                                                      messages (every N messages)
streams.fsync.interval            duration  1s        fsync period for policy ``interval``
streams.fsync.messages            int       1000      N for policy ``messages``
nats.embedded.restart.max         int       5         restarts of the embedded nats-server child
                                                      within a minute before lb gives up
================================  ========  ========  ==========================================
"""

from lb.config._errors import ConfigError
from lb.config._keys import DEFAULT_NAMESPACE, DEFAULT_NATS_URL, DEFAULT_PORT, KEYS, Key
from lb.config._kinds import HostPort, parse_duration_ns
from lb.config._load import add_serve_arguments, default_config, load_config
from lb.config._model import (
    ActivityStreamConfig,
    ClusteringConfig,
    Config,
    CursorsStreamConfig,
    GroupsConfig,
    LoggingConfig,
    NATSConfig,
    StreamsConfig,
    TLSConfig,
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_NATS_URL",
    "DEFAULT_PORT",
    "KEYS",
    "ActivityStreamConfig",
    "ClusteringConfig",
    "Config",
    "ConfigError",
    "CursorsStreamConfig",
    "GroupsConfig",
    "HostPort",
    "Key",
    "LoggingConfig",
    "NATSConfig",
    "StreamsConfig",
    "TLSConfig",
    "add_serve_arguments",
    "default_config",
    "load_config",
    "parse_duration_ns",
]
