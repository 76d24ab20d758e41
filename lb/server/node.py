"""One lb server: the root of the Trio nursery tree.

```
node (trio-asyncio loop)
└── infra          the embedded nats-server child, when no NATS servers are configured
    └── services   (one cancel scope: shutdown() cancels it)
        ├── signals    SIGINT/SIGTERM -> shutdown()
        ├── stall watch notices this process stalled (leaders confirm before acking again)
        ├── controller the metadata Raft driver + state machine + propagation
        └── grpc       grpclib server (API + grpc.health.v1)
```

Shutdown order: NOT_SERVING, cancel the services, close the NATS connection, stop the child.

Later parts (the Raft driver, partitions) hang off the same root so that shutdown is just
cancelling it. Every task has this nursery as its owner; nothing is fire-and-forget.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import trio
import trio_asyncio
from nats.aio.client import Client as NatsClient

from lb.config import Config
from lb.metadata.model import MetadataState
from lb.metadata.propagation import leader_restarted_request
from lb.server.api import ApiService
from lb.server.controller import MetadataController
from lb.server.embedded_nats import EmbeddedNats
from lb.server.grpc_server import GrpcServer, Readiness
from lb.server.identity import load_or_create_server_id
from lb.server.partition import Settings
from lb.server.partitions import PartitionManager
from lb.server.stall import StallWatch, stall_threshold_s

log = logging.getLogger("lb.server")

NATS_CONNECT_ATTEMPTS_MAX = 30
NATS_CONNECT_BACKOFF_S = 1.0
NATS_CLOSE_TIMEOUT_S = 2.0
READY_LEADER_WAIT_S = 10.0
HANDOFF_S = 2.0


class FatalServerError(RuntimeError):
    """The node cannot keep serving; the CLI prints it and exits 1."""


@dataclass
class NodeInfo:
    """What the node learned while starting, for logs and tests."""

    server_id: str = ""
    nats_url: str = ""
    grpc_port: int = 0


class Node:
    """Owns every task of one server. ``await node.run()`` serves until cancelled or signalled."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.info = NodeInfo()
        self.readiness = Readiness()
        self._nats: NatsClient | None = None
        self._services_scope = trio.CancelScope()
        self.controller: MetadataController | None = None
        self.partitions: PartitionManager | None = None

    async def run(
        self,
        *,
        handle_signals: bool = True,
        task_status: trio.TaskStatus[NodeInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        data_dir = Path(self.config.data_dir)
        self.info.server_id = load_or_create_server_id(
            data_dir, self.config.clustering.server_id
        )
        log.info(
            "starting lb server %s (namespace %s, data dir %s)",
            self.info.server_id,
            self.config.clustering.namespace,
            data_dir,
        )
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        # The receiver stays installed until the node is gone, so that a repeated signal during
        # shutdown is absorbed instead of killing the process half-way.
        with trio.open_signal_receiver(*signals) as received:
            await self._run(received, task_status)
        log.info("lb server %s stopped", self.info.server_id)

    async def _run(self, received: Any, task_status: trio.TaskStatus[NodeInfo]) -> None:
        async with trio_asyncio.open_loop(), trio.open_nursery() as infra:
            # infra owns what must outlive the services during shutdown (the NATS child).
            infra.start_soon(self._watch_signals, received)
            try:
                with self._services_scope:
                    async with trio.open_nursery() as services:
                        await self._serve(infra, services)
                        task_status.started(self.info)
                        log.info(
                            "lb server %s ready: gRPC on %s:%d, NATS at %s",
                            self.info.server_id,
                            self.config.bind_address.host,
                            self.info.grpc_port,
                            self.info.nats_url,
                        )
                        await trio.sleep_forever()
            finally:
                self.readiness.set_serving(False)
                with trio.CancelScope(shield=True):
                    await self._close_nats()
                infra.cancel_scope.cancel()

    def shutdown(self) -> None:
        """Begin a graceful shutdown: NOT_SERVING, stop services, close NATS, stop the child."""
        self.readiness.set_serving(False)
        self._services_scope.cancel()

    async def _serve(self, infra: trio.Nursery, services: trio.Nursery) -> None:
        nats_cfg = self.config.nats
        if nats_cfg.embedded:
            embedded = EmbeddedNats(
                restart_max=nats_cfg.embedded_restarts_max,
                log_output=self.config.logging.nats,
                extra_args=("-c", nats_cfg.embedded_config) if nats_cfg.embedded_config else (),
            )
            servers = [await infra.start(embedded.run)]
        else:
            servers = list(nats_cfg.servers)
        self.info.nats_url = ",".join(servers)
        self._nats = await self._connect_nats(servers)

        settings = Settings(
            server_id=self.info.server_id,
            namespace=self.config.clustering.namespace,
            data_dir=Path(self.config.data_dir),
            batch_messages_max=self.config.batch_messages_max,
            batch_time_ns_max=self.config.batch_time_ns_max,
            replication_bytes_max=self.config.clustering.replication_bytes_max,
            min_insync_replicas=self.config.clustering.min_insync_replicas,
            replica_lag_ns_max=self.config.clustering.replica_lag_ns_max,
            replica_leader_timeout_ns=self.config.clustering.replica_leader_timeout_ns_max,
            replica_idle_wait_ns=self.config.clustering.replica_idle_wait_ns_max,
            replica_fetch_timeout_ns=self.config.clustering.replica_fetch_timeout_ns,
            stream_defaults=dataclasses.asdict(self.config.streams),
        )
        self.partitions = PartitionManager(settings, self._nats, self._metadata_state)
        stall_watch = StallWatch(stall_threshold_s(settings.replica_leader_timeout_ns))
        services.start_soon(stall_watch.run)
        self.partitions.stall_watch = stall_watch
        await services.start(self.partitions.run)

        api = ApiService(self)
        # Partitions propose metadata changes (auto-pause, ISR, leader reports) the way RPCs
        # do, and hand acks for this server's own inboxes straight to their waiters.
        self.partitions.metadata_request = api.metadata_call
        self.partitions.local_acks = api.acks.deliver
        await trio_asyncio.aio_as_trio(self._nats.subscribe)(
            f"{api.acks.prefix}.>", cb=api.acks.on_msg
        )
        handlers = [api, self.readiness.health_service(api)]
        bind = self.config.bind_address
        grpc = GrpcServer(handlers, bind.host, bind.port)
        self.info.grpc_port = await services.start(grpc.run)
        cfg = self.config
        clustering = cfg.clustering
        advertise = cfg.advertise_address
        self.controller = MetadataController(
            server_id=self.info.server_id,
            namespace=clustering.namespace,
            data_dir=Path(cfg.data_dir),
            nats=self._nats,
            advertise_host=advertise.host,
            # With port 0 the OS picked the port: advertise the one actually bound.
            advertise_port=advertise.port or self.info.grpc_port,
            # An embedded NATS server is private to this process: nobody else can ever join,
            # so a server without Raft state bootstraps a one-server cluster by itself.
            bootstrap_seed=clustering.raft_bootstrap_seed
            or (nats_cfg.embedded and not clustering.raft_bootstrap_peers),
            bootstrap_peers=clustering.raft_bootstrap_peers,
            quorum_size_max=clustering.raft_quorum_size_max,
            snapshot_threshold=clustering.raft_snapshot_threshold,
            snapshot_retain=clustering.raft_snapshot_retain,
            leader_timeout_ns=clustering.replica_leader_timeout_ns_max,
            log_recovery=cfg.logging.recovery,
            on_effects=self.partitions.on_effects,
        )
        await services.start(self.controller.run)
        if self.controller.restarted:
            self.partitions.sweep_deleted_streams()
        # Report SERVING once a metadata leader is known (bounded: a server whose cluster has
        # no quorum yet still serves reads of what it has).
        leader = await self.controller.wait_leader(READY_LEADER_WAIT_S)
        if not leader:
            log.warning("no metadata leader after %.0fs; serving anyway", READY_LEADER_WAIT_S)

        self.readiness.set_serving(True)

    def _metadata_state(self) -> MetadataState:
        assert self.controller is not None
        return self.controller.state

    @property
    def nats(self) -> NatsClient:
        assert self._nats is not None
        return self._nats

    async def _connect_nats(self, servers: list[str]) -> NatsClient:
        cfg = self.config
        name = f"LIFT.{cfg.clustering.namespace}.{self.info.server_id}"
        options: dict[str, object] = {
            "servers": servers,
            "name": name,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,  # reconnect forever, as Liftbridge does
            "reconnect_time_wait": 0.25,
            "connect_timeout": 2,
            # One line per event instead of nats-py's default tracebacks.
            "error_cb": _nats_error,
            "disconnected_cb": _nats_disconnected,
            "reconnected_cb": _nats_reconnected,
        }
        if cfg.nats.user:
            options["user"] = cfg.nats.user
            options["password"] = cfg.nats.password
        last_error: Exception | None = None
        for attempt in range(1, NATS_CONNECT_ATTEMPTS_MAX + 1):
            try:
                return await trio_asyncio.aio_as_trio(nats.connect)(**options)
            except Exception as exc:  # nats-py raises several unrelated types here
                last_error = exc
                log.warning(
                    "cannot connect to NATS at %s (attempt %d of %d): %s",
                    ",".join(servers),
                    attempt,
                    NATS_CONNECT_ATTEMPTS_MAX,
                    exc or type(exc).__name__,
                )
                await trio.sleep(NATS_CONNECT_BACKOFF_S)
        raise FatalServerError(
            f"cannot connect to NATS at {','.join(servers)}: {last_error or 'no answer'}"
        )

    async def _close_nats(self) -> None:
        nc, self._nats = self._nats, None
        if nc is None:
            return
        with trio.move_on_after(NATS_CLOSE_TIMEOUT_S):
            await trio_asyncio.aio_as_trio(nc.close)()

    async def _watch_signals(self, received: Any) -> None:
        async for signum in received:
            log.info("received %s; shutting down", signal.Signals(signum).name)
            self.readiness.set_serving(False)
            with trio.move_on_after(HANDOFF_S):
                await self._hand_off_leadership()
            self.shutdown()
            break
        async for signum in received:  # absorb repeats while shutting down
            log.info("received %s again; already shutting down", signal.Signals(signum).name)

    async def _hand_off_leadership(self) -> None:
        """Graceful shutdown moves this server's leaderships first (bounded by HANDOFF_S):
        partitions it leads go to another ISR member, and the metadata Raft leadership to
        another voter, so clients see a planned move instead of a failure."""
        controller, partitions = self.controller, self.partitions
        if controller is None or partitions is None:
            return
        me = self.info.server_id
        requests = [
            leader_restarted_request(rt.stream.name, rt.meta.id, me, rt.meta.leader_epoch)
            for rt in partitions.runtimes()
            if rt.meta.leader == me and len(rt.meta.isr) > 1
        ]

        async def move(req: Any) -> None:
            try:
                await trio_asyncio.aio_as_trio(controller.request)(req, HANDOFF_S)
            except Exception as exc:  # best effort: the followers take over anyway
                log.info("could not hand a partition over before shutdown: %s", exc)

        if requests:
            log.info("moving %d partition leaderships before shutdown", len(requests))
            async with trio.open_nursery() as nursery:
                for req in requests:
                    nursery.start_soon(move, req)
        await controller.transfer_leadership()


async def _nats_error(exc: Exception) -> None:
    log.warning("NATS: %s", exc or type(exc).__name__)


async def _nats_disconnected() -> None:
    log.warning("NATS: disconnected; reconnecting")


async def _nats_reconnected() -> None:
    log.info("NATS: reconnected")
