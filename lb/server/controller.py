"""The metadata controller: the Raft driver, the metadata state machine and propagation.

One Trio task (``_loop``) owns the sans-IO Raft core. It follows the core's contract for every
``Ready``: persist (fsynced, in a worker thread), then send over NATS, then apply committed
entries to the :class:`~lb.metadata.fsm.MetadataFSM` and hand their effects to the server.

NATS subjects, all under the cluster namespace ``<ns>``:

- ``<ns>.raft.metadata.<server id>``: Raft messages to that server;
- ``<ns>.raft.join``: a server with no Raft state asks to be added (only the leader answers);
- ``<ns>.raft.probe``: cluster-id announcements, so that two servers that both bootstrapped as
  seed find each other (Liftbridge CLU-3) and stop with a fatal error;
- ``<ns>.raft.propagate.<server id>``: metadata requests forwarded to that server, the leader.

Any server accepts a metadata request (:meth:`MetadataController.request`): the leader turns it
into an op, proposes it and answers once it is committed *and applied*; a follower forwards it
to the leader and relays the leader's status unchanged (API-CREATE-9).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
import trio_asyncio
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from lb._proto import lbinternal as pb
from lb.metadata import effects as fx
from lb.metadata import ops as mops
from lb.metadata.errors import ErrorCode, MetadataError, internal
from lb.metadata.failover import LeaderFailureTracker, LeaderReport
from lb.metadata.fsm import MetadataFSM
from lb.metadata.model import MetadataState, StreamConfig
from lb.metadata.preconditions import check_leader_generation
from lb.metadata.propagation import (
    decode_request,
    decode_response,
    encode_response,
    register_server_request,
)
from lb.raft.bootstrap import join_change
from lb.raft.core import RaftConfig, RaftNode
from lb.raft.errors import ConfChangeInProgress, NotLeader, ProposalDropped, RaftError
from lb.raft.messages import EntryKind, MessageType
from lb.raft.ready import Ready, Role
from lb.server.bridge import TrioWorkQueue, resolve
from lb.server.raft_storage import RaftStorage
from lb.server.raft_wire import decode_message, encode_message

log = logging.getLogger("lb.raft")

TICK_S = 0.05
ELECTION_TICKS = 10  # 0.5-1 s election timeout
HEARTBEAT_TICKS = 2
PROBE_INTERVAL_S = 2.0
JOIN_ATTEMPTS_MAX = 30
JOIN_INTERVAL_S = 1.0
INBOX_CAPACITY = 4096
REQUEST_TIMEOUT_S = 5.0
NO_LEADER = "no known metadata leader"
RAFT_TIMEOUT = "Failed to replicate partition: raft operation timed out"


class ControllerFatalError(RuntimeError):
    """The metadata cluster is misconfigured (e.g. two seeds) or cannot be joined."""


EffectsHandler = Callable[[Sequence[fx.Effect]], None]


@dataclass
class _Pending:
    """A local proposal waiting to be applied: resolved with the FSM's verdict."""

    term: int
    done: trio.Event
    error: MetadataError | None = None


class MetadataController:
    """Owns the metadata Raft node of one server (see the module docstring)."""

    def __init__(
        self,
        *,
        server_id: str,
        namespace: str,
        data_dir: Path,
        nats: NatsClient,
        advertise_host: str,
        advertise_port: int,
        bootstrap_seed: bool,
        bootstrap_peers: Sequence[str],
        quorum_size_max: int,
        snapshot_threshold: int,
        snapshot_retain: int,
        leader_timeout_ns: int,
        log_recovery: bool,
        on_effects: EffectsHandler,
    ) -> None:
        self.server_id = server_id
        self.namespace = namespace
        self.fsm = MetadataFSM()
        self._nats = nats
        self._advertise = (advertise_host, advertise_port)
        self._seed = bootstrap_seed
        self._peers = list(bootstrap_peers)
        self._quorum_size_max = quorum_size_max
        self._snapshot_threshold = max(1, snapshot_threshold)
        self._storage = RaftStorage(data_dir / "raft", snapshot_retain)
        self._log_recovery = log_recovery
        self._on_effects = on_effects
        self._tracker = LeaderFailureTracker(leader_timeout_ns)
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[tuple[Any, ...]](
            INBOX_CAPACITY
        )
        self._work = TrioWorkQueue()
        self._pending: dict[int, _Pending] = {}
        self._leader = ""
        self._role = Role.FOLLOWER
        self._leader_changed = trio.Event()
        self._replay_until = 0
        self.restarted = False
        """True when this server had Raft state: ``state`` then holds every committed op it
        ever applied once ``run`` has started (the replay comes first)."""
        self._fatal: ControllerFatalError | None = None
        self._subs: list[Any] = []
        self.node: RaftNode | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def state(self) -> MetadataState:
        return self.fsm.state

    @property
    def leader_id(self) -> str:
        return self._leader

    @property
    def is_leader(self) -> bool:
        return self._role is Role.LEADER

    def members(self) -> tuple[str, ...]:
        assert self.node is not None
        return self.node.status().conf_state.members()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        state = await trio.to_thread.run_sync(self._storage.open)
        rng = random.Random()
        cfg = RaftConfig(
            id=self.server_id,
            rng=rng,
            election_timeout_ticks=ELECTION_TICKS,
            heartbeat_ticks=HEARTBEAT_TICKS,
        )
        joining = False
        if state.hard_state.term == 0 and state.snapshot.index == 0 and not state.entries:
            if self._seed:
                log.info("bootstrapping the metadata cluster as seed")
                self.node = RaftNode.bootstrap_seed(cfg)
            elif self._peers:
                log.info("bootstrapping the metadata cluster with peers %s", self._peers)
                self.node = RaftNode.bootstrap_peers(cfg, self._peers, self._quorum_size_max)
            else:
                log.info("no Raft state and no bootstrap setting: joining an existing cluster")
                self.node = RaftNode.join(cfg)
                joining = True
        else:
            self.restarted = True
            if state.snapshot.index:
                self._apply_effects(self.fsm.restore(state.snapshot.data))
            self._replay_until = state.hard_state.commit
            if self._log_recovery:
                log.info(
                    "replaying the metadata Raft log from index %d to %d",
                    state.snapshot.index + 1,
                    self._replay_until,
                )
            self.node = RaftNode.restart(cfg, state.hard_state, state.snapshot, state.entries)
        try:
            async with trio.open_nursery() as nursery:
                await self._subscribe()
                # Replay what is already committed (restart) before the server reports ready,
                # so that its first answers reflect the stored metadata.
                await self._process_ready()
                if self.node.status().conf_state.voters == (self.server_id,):
                    # The only voter need not wait an election timeout to lead.
                    self.node.campaign()
                    await self._process_ready()
                nursery.start_soon(self._work.run)
                nursery.start_soon(self._loop)
                nursery.start_soon(self._probe_loop)
                if joining:
                    nursery.start_soon(self._join_loop)
                task_status.started()
                nursery.start_soon(self._register_self)
        finally:
            with trio.CancelScope(shield=True):
                await self._unsubscribe()
                self._storage.close()
                for p in self._pending.values():
                    p.error = internal("server is shutting down")
                    p.done.set()

    async def wait_leader(self, timeout_s: float) -> str:
        """The current metadata leader, waiting up to ``timeout_s`` for one; "" if none."""
        with trio.move_on_after(timeout_s):
            while not self._leader:
                await self._leader_changed.wait()
        return self._leader

    async def transfer_leadership(self) -> None:
        """Before a graceful shutdown: hand the metadata leadership to another voter and wait
        (bounded by the caller) until it has moved."""
        node = self.node
        if node is None or node.role is not Role.LEADER:
            return
        if len(node.status().conf_state.voters) < 2:
            return
        await self._inbox_send.send(("transfer",))
        while self._leader == self.server_id:
            await self._leader_changed.wait()
        log.info("metadata leadership moved to %s", self._leader or "nobody yet")

    async def request(self, req: pb.PropagatedRequest, timeout_s: float | None) -> None:
        """Execute a metadata request from this server (asyncio side, gRPC handlers).

        Raises :class:`MetadataError` with Liftbridge's codes and texts.
        """
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else REQUEST_TIMEOUT_S)
        while True:
            leader = self._leader
            if not leader:
                if timeout_s is None:
                    raise internal(NO_LEADER)
                await asyncio.sleep(0.05)
                if time.monotonic() >= deadline:
                    raise internal(NO_LEADER)
                continue
            remaining = max(0.01, deadline - time.monotonic())
            if leader == self.server_id:
                try:
                    await self._work.call(self._execute, req, remaining)
                    return
                except _Retry:
                    pass
            else:
                try:
                    reply = await self._nats.request(
                        self._propagate_subject(leader), bytes(req), timeout=remaining
                    )
                except Exception as exc:  # nats timeouts and no-responders
                    if time.monotonic() >= deadline:
                        raise internal(f"metadata leader {leader} did not answer: {exc}") from exc
                    await asyncio.sleep(0.05)
                    continue
                error = decode_response(reply.data)
                if error is not None and not (
                    error.code is ErrorCode.INTERNAL and error.message == _NOT_LEADER
                ):
                    raise error
                if error is None:
                    return
            if time.monotonic() >= deadline:
                raise internal(RAFT_TIMEOUT)
            await asyncio.sleep(0.02)

    # -- executing requests on the leader (Trio side) ---------------------------------------

    async def _execute(self, req: pb.PropagatedRequest, timeout_s: float) -> None:
        kind, body = decode_request(bytes(req))
        op = self._plan(kind, body)
        if op is None:
            return
        await self._propose_and_wait(mops.encode_op(op), timeout_s)

    def _plan(self, kind: str, body: Any) -> pb.MetadataOp | None:
        """Turn a request into the op to propose (validation and placement happen here)."""
        state = self.fsm.state
        if kind == "create_stream":
            from lb.metadata.convert import config_from_proto

            return mops.plan_create_stream(
                state,
                self.members(),
                name=body.name,
                subject=body.subject,
                now_ns=time.time_ns(),
                partitions=body.partitions,
                replication_factor=body.replication_factor,
                group=body.group,
                config=config_from_proto(body.config) if body.config else StreamConfig(),
            )
        if kind == "report_leader":
            op = self._tracker.report(state, LeaderReport.from_proto(body), time.time_ns())
            if op is not None:
                op.change_leader.drop_previous_from_isr = True  # it failed: see the op's doc
            return op
        if kind == "leader_restarted":
            # Move leadership to another ISR member (they hold every committed offset); only
            # when the restarted server is alone in the ISR does it lead again, in a new epoch.
            p = check_leader_generation(
                state, body.stream, body.partition, body.leader, body.leader_epoch
            )
            others = [r for r in p.isr if r != body.leader]
            load = state.leader_load()
            target = min(others, key=lambda r: (load.get(r, 0), r)) if others else body.leader
            return mops.change_leader_op(
                body.stream, body.partition, target, body.leader, body.leader_epoch
            )
        field = {
            "delete_stream": "delete_stream",
            "pause_stream": "pause_stream",
            "resume_stream": "resume_stream",
            "set_stream_readonly": "set_stream_readonly",
            "shrink_isr": "shrink_isr",
            "expand_isr": "expand_isr",
            "register_server": "register_server",
            "confirm_leader": "confirm_leader",
        }[kind]
        op = pb.MetadataOp(**{field: body})
        error = self.fsm.check(op)
        if error is not None:
            raise error
        return op

    async def _propose_and_wait(self, data: bytes, timeout_s: float) -> None:
        waiter = _Pending(term=0, done=trio.Event())
        await self._inbox_send.send(("propose", data, waiter))
        with trio.move_on_after(timeout_s):
            await waiter.done.wait()
        if not waiter.done.is_set():
            raise internal(RAFT_TIMEOUT)
        if waiter.error is _RETRY_ERROR:
            raise _Retry()
        if waiter.error is not None:
            raise waiter.error

    # -- the Raft loop ----------------------------------------------------------------------

    async def _loop(self) -> None:
        node = self.node
        assert node is not None
        next_tick = trio.current_time() + TICK_S
        while True:
            with trio.move_on_at(next_tick):
                item = await self._inbox_recv.receive()
                self._handle(item)
                for _ in range(256):
                    try:
                        self._handle(self._inbox_recv.receive_nowait())
                    except trio.WouldBlock:
                        break
            if trio.current_time() >= next_tick:
                node.tick()
                next_tick = trio.current_time() + TICK_S
            await self._process_ready()
            if self._fatal is not None:
                raise self._fatal

    def _handle(self, item: tuple[Any, ...]) -> None:
        node = self.node
        assert node is not None
        kind = item[0]
        if kind == "msg":
            try:
                message = decode_message(item[1])
            except ValueError as exc:
                log.warning("dropping a bad Raft message: %s", exc)
                return
            if message.type is MessageType.PROBE and message.from_ == self.server_id:
                return
            try:
                node.step(message)
            except AssertionError as exc:
                # The core asserts on inputs that violate Raft's rules (a malformed or forged
                # message); drop it rather than take the server down.
                log.error("dropping a Raft message the core rejected (%r): %s", exc, message)
        elif kind == "propose":
            _, data, waiter = item
            try:
                index = node.propose(data)
            except NotLeader:
                waiter.error = _RETRY_ERROR
                waiter.done.set()
                return
            except ProposalDropped as exc:
                waiter.error = internal(f"metadata proposal dropped: {exc}")
                waiter.done.set()
                return
            waiter.term = node.term
            self._pending[index] = waiter
        elif kind == "transfer":
            try:
                target = node.transfer_leadership()
                log.info("transferring the metadata leadership to %s", target)
            except RaftError as exc:
                log.info("no metadata leadership transfer: %s", exc)
        elif kind == "join":
            _, server_id, fut = item
            self._handle_join(server_id, fut)

    def _handle_join(self, server_id: str, fut: asyncio.Future[bytes]) -> None:
        node = self.node
        assert node is not None
        if node.role is not Role.LEADER:
            resolve(fut, b"")  # only the leader answers
            return
        change = join_change(node.status().conf_state, server_id, self._quorum_size_max)
        if change is None:
            resolve(fut, bytes(pb.RaftJoinResponse(leader=self.server_id)))
            return
        try:
            node.propose_conf_change(change)
        except (ConfChangeInProgress, ProposalDropped, RaftError) as exc:
            resolve(fut, bytes(pb.RaftJoinResponse(error=str(exc), leader=self.server_id)))
            return
        log.info("adding server %s to the metadata cluster (%s)", server_id, change.kind.name)
        resolve(fut, bytes(pb.RaftJoinResponse(leader=self.server_id)))

    async def _process_ready(self) -> None:
        node = self.node
        assert node is not None
        while node.has_ready():
            rd = node.ready()
            if rd is None:
                return
            if rd.must_sync():
                await trio.to_thread.run_sync(
                    self._storage.persist, rd.snapshot, rd.entries, rd.hard_state
                )
            if rd.messages:
                await self._send(rd)
            if rd.snapshot is not None and rd.snapshot.index > 0:
                log.info("installing metadata snapshot at index %d", rd.snapshot.index)
                self._apply_effects(self.fsm.restore(rd.snapshot.data))
            self._apply_committed(rd)
            if rd.soft_state is not None:
                self._on_soft_state(rd.soft_state.leader, rd.soft_state.role)
            if rd.cluster_conflicts:
                c = rd.cluster_conflicts[0]
                self._fatal = ControllerFatalError(
                    f"server {c.peer} belongs to another metadata cluster ({c.peer_cluster_id}) "
                    f"on namespace {self.namespace!r} (ours: {c.local_cluster_id}); two servers "
                    "were probably started with raft.bootstrap.seed. Stop one, clear its data "
                    "dir, and start it without the seed flag"
                )
            node.advance(rd)
            await self._maybe_snapshot()

    def _apply_committed(self, rd: Ready) -> None:
        for entry in rd.committed_entries:
            pending = self._pending.pop(entry.index, None)
            if entry.kind is not EntryKind.NORMAL or not entry.data:
                if pending is not None:
                    pending.error = _RETRY_ERROR
                    pending.done.set()
                continue
            if pending is not None and pending.term != entry.term:
                pending.error = _RETRY_ERROR  # our entry was replaced by a new leader's
                pending.done.set()
                pending = None
            result = self.fsm.apply(entry.data, entry.index)
            if self._log_recovery and entry.index <= self._replay_until:
                log.info("replayed metadata entry %d (%s)", entry.index, _describe(entry.data))
            if pending is not None:
                pending.error = result.error
                pending.done.set()
            if result.effects:
                self._apply_effects(result.effects)
        # Proposals whose index was passed without being applied here (a snapshot covered
        # them) or that cannot commit any more are retried by their callers.
        if rd.committed_entries:
            last = rd.committed_entries[-1].index
            for index in [i for i in self._pending if i <= last]:
                p = self._pending.pop(index)
                p.error = _RETRY_ERROR
                p.done.set()

    def _apply_effects(self, effects: Sequence[fx.Effect]) -> None:
        for effect in effects:
            if isinstance(effect, fx.StreamDeleted):
                self._tracker.forget(effect.stream.name)
        self._on_effects(effects)

    async def _maybe_snapshot(self) -> None:
        node = self.node
        assert node is not None
        status = node.status()
        if status.applied - status.snapshot_index < self._snapshot_threshold:
            return
        snap = node.compact(status.applied, self.fsm.snapshot())
        await trio.to_thread.run_sync(self._storage.save_snapshot, snap, node.first_index())
        log.info("took a metadata snapshot at index %d", snap.index)

    def _on_soft_state(self, leader: str, role: Role) -> None:
        was_leader = self._role is Role.LEADER
        self._role = role
        if leader != self._leader:
            log.info("metadata leader is now %s", leader or "unknown")
            self._leader = leader
            self._leader_changed.set()
            self._leader_changed = trio.Event()
        if was_leader and role is not Role.LEADER:
            self._tracker.clear()
            for index in list(self._pending):
                p = self._pending.pop(index)
                p.error = _RETRY_ERROR
                p.done.set()

    async def _send(self, rd: Ready) -> None:
        out = []
        for m in rd.messages:
            subject = (
                f"{self.namespace}.raft.probe"
                if m.type is MessageType.PROBE
                else f"{self.namespace}.raft.metadata.{m.to}"
            )
            out.append((subject, encode_message(m)))
        await trio_asyncio.aio_as_trio(self._publish_all)(out)

    async def _publish_all(self, out: list[tuple[str, bytes]]) -> None:
        for subject, data in out:
            await self._nats.publish(subject, data)

    # -- NATS subscriptions (asyncio callbacks; each crosses into Trio with one send_nowait) --

    def _propagate_subject(self, server_id: str) -> str:
        return f"{self.namespace}.raft.propagate.{server_id}"

    async def _subscribe(self) -> None:
        ns = self.namespace

        async def on_raft(msg: Msg) -> None:
            # When full, drop: Raft tolerates lost messages and the sender retries.
            with contextlib.suppress(trio.WouldBlock):
                self._inbox_send.send_nowait(("msg", msg.data))

        async def on_join(msg: Msg) -> None:
            try:
                request = pb.RaftJoinRequest().parse(msg.data)
            except Exception:
                return
            if not request.server_id or not msg.reply:
                return
            fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            try:
                self._inbox_send.send_nowait(("join", request.server_id, fut))
            except trio.WouldBlock:
                return
            answer = await fut
            if answer:
                await msg.respond(answer)

        async def on_propagate(msg: Msg) -> None:
            if not msg.reply:
                return
            try:
                if not self.is_leader:
                    raise internal(_NOT_LEADER)
                await self._work.call(self._execute, pb.PropagatedRequest().parse(msg.data),
                                      REQUEST_TIMEOUT_S)
                answer = encode_response(None)
            except MetadataError as err:
                answer = encode_response(err)
            except _Retry:
                answer = encode_response(internal(_NOT_LEADER))
            except Exception as exc:
                answer = encode_response(internal(str(exc)))
            await msg.respond(answer)

        async def subscribe() -> list[Any]:
            return [
                await self._nats.subscribe(f"{ns}.raft.metadata.{self.server_id}", cb=on_raft),
                await self._nats.subscribe(f"{ns}.raft.probe", cb=on_raft),
                await self._nats.subscribe(f"{ns}.raft.join", cb=on_join),
                await self._nats.subscribe(self._propagate_subject(self.server_id),
                                           cb=on_propagate),
            ]

        self._subs = await trio_asyncio.aio_as_trio(subscribe)()

    async def _unsubscribe(self) -> None:
        subs, self._subs = self._subs, []

        async def unsubscribe() -> None:
            for sub in subs:
                # The connection may already be closed.
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

        with trio.move_on_after(1):
            await trio_asyncio.aio_as_trio(unsubscribe)()

    # -- background chores ------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        node = self.node
        assert node is not None
        while True:
            await trio.sleep(PROBE_INTERVAL_S)
            if node.cluster_id:
                probe = node.cluster_probe()
                await trio_asyncio.aio_as_trio(self._publish_all)(
                    [(f"{self.namespace}.raft.probe", encode_message(probe))]
                )

    async def _join_loop(self) -> None:
        node = self.node
        assert node is not None
        request = bytes(pb.RaftJoinRequest(server_id=self.server_id))
        for attempt in range(1, JOIN_ATTEMPTS_MAX + 1):
            if self.server_id in node.status().conf_state.members():
                log.info("joined the metadata cluster")
                return
            try:
                reply = await trio_asyncio.aio_as_trio(self._nats.request)(
                    f"{self.namespace}.raft.join", request, timeout=JOIN_INTERVAL_S
                )
                answer = pb.RaftJoinResponse().parse(reply.data)
                if answer.error:
                    log.info("join attempt %d: %s", attempt, answer.error)
            except Exception as exc:  # timeouts / no responders while no leader exists
                log.debug("join attempt %d: %s", attempt, exc)
            with trio.move_on_after(JOIN_INTERVAL_S):
                while self.server_id not in node.status().conf_state.members():
                    await trio.sleep(0.05)
        if self.server_id not in node.status().conf_state.members():
            raise ControllerFatalError(
                f"could not join the metadata cluster in namespace {self.namespace!r} after "
                f"{JOIN_ATTEMPTS_MAX} attempts; start the first server with "
                "--raft-bootstrap-seed, or set clustering.raft.bootstrap.peers"
            )

    async def _register_self(self) -> None:
        """Record this server's advertised address in the metadata (for FetchMetadata)."""
        host, port = self._advertise
        req = register_server_request(self.server_id, host, port)
        while True:
            server = self.fsm.state.servers.get(self.server_id)
            if server is not None and (server.host, server.port) == (host, port):
                return
            try:
                await trio_asyncio.aio_as_trio(self.request)(req, REQUEST_TIMEOUT_S)
                return
            except MetadataError as err:
                log.debug("registering this server: %s", err)
                await trio.sleep(0.5)


class _Retry(Exception):
    """Internal: the proposal did not commit here (leadership moved); try again."""


_NOT_LEADER = "not the metadata leader"
_RETRY_ERROR = MetadataError(ErrorCode.INTERNAL, _NOT_LEADER)


def _describe(data: bytes) -> str:
    try:
        return mops.op_kind(mops.decode_op(data))
    except Exception:
        return "unreadable"


__all__ = ["ControllerFatalError", "MetadataController"]

