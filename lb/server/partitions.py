"""Start, stop and update this server's partition replicas as the metadata changes.

The manager reconciles: after any metadata effect it compares the partitions this server should
serve (it is a replica, the partition is not paused) with those it runs, and starts, restarts
(new leader epoch: a role change), updates in place (ISR, readonly) or stops each one. Working
from the state rather than from individual effects makes a restored snapshot, a replayed log and
a single op all the same case. Each partition runs in its own cancel scope under the manager's
nursery, so stopping one never touches another.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio
from nats.aio.client import Client as NatsClient

from lb.metadata import effects as fx
from lb.metadata.model import MetadataState, Stream
from lb.metadata.model import Partition as PartitionMeta
from lb.server.partition import (
    DELETED,
    NOT_LEADER,
    PAUSED,
    PartitionClosed,
    PartitionRuntime,
    Settings,
)

log = logging.getLogger("lb.partition")

Key = tuple[str, int]


@dataclass
class _Slot:
    runtime: PartitionRuntime
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)


class PartitionManager:
    """Owns every partition task of this server."""

    def __init__(
        self, settings: Settings, nats: NatsClient, state: Callable[[], MetadataState]
    ) -> None:
        self.settings = settings
        self._nats = nats
        self._state = state
        self._slots: dict[Key, _Slot] = {}
        self._nursery: trio.Nursery | None = None
        self._pending: list[Sequence[fx.Effect]] = []

    def get(self, stream: str, partition: int) -> PartitionRuntime | None:
        slot = self._slots.get((stream, partition))
        return slot.runtime if slot is not None else None

    def runtimes(self) -> list[PartitionRuntime]:
        return [s.runtime for s in self._slots.values()]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for effects in self._pending:
                self.on_effects(effects)
            self._pending.clear()
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                for slot in self._slots.values():
                    slot.runtime.stop(PartitionClosed("UNAVAILABLE", "server is shutting down"))

    def on_effects(self, effects: Sequence[fx.Effect]) -> None:
        """Called by the controller (synchronously, in commit order) after each apply."""
        if self._nursery is None:
            self._pending.append(effects)
            return
        deleted = {e.stream.name for e in effects if isinstance(e, fx.StreamDeleted)}
        self._reconcile(deleted)

    def _reconcile(self, deleted: set[str]) -> None:
        me = self.settings.server_id
        state = self._state()
        wanted: dict[Key, tuple[Stream, PartitionMeta]] = {}
        for stream in state.streams.values():
            for p in stream.partitions:
                if me in p.replicas and not p.paused:
                    wanted[(stream.name, p.id)] = (stream, p)
        previous: dict[Key, trio.Event] = {}
        for key, slot in list(self._slots.items()):
            rt = slot.runtime
            target = wanted.get(key)
            if target is None:
                if key[0] in deleted or key[0] not in state.streams:
                    previous[key] = self._stop(key, DELETED, delete=True)
                else:
                    previous[key] = self._stop(key, PAUSED)
                continue
            stream, meta = target
            recreated = stream.creation_timestamp_ns != rt.stream.creation_timestamp_ns
            if recreated or meta.leader_epoch != rt.meta.leader_epoch:
                # A new incarnation or a new leader generation: restart the role from scratch.
                previous[key] = self._stop(key, DELETED if recreated else NOT_LEADER)
                continue
            rt.stream = stream
            rt.meta = meta
            if rt.readonly != meta.readonly:
                rt.readonly = meta.readonly
                rt.readonly_times.mark(time.time_ns())
                rt.notifier.notify()
        for key, (stream, meta) in wanted.items():
            if key not in self._slots:
                self._start(key, stream, meta, previous.get(key))

    def _start(
        self, key: Key, stream: Stream, meta: PartitionMeta, after: trio.Event | None
    ) -> None:
        assert self._nursery is not None
        runtime = PartitionRuntime(self.settings, stream, meta, self._nats)
        slot = _Slot(runtime)
        self._slots[key] = slot
        self._nursery.start_soon(self._run_slot, slot, after, name=f"partition {runtime.name}")

    def _stop(self, key: Key, reason: PartitionClosed, delete: bool = False) -> trio.Event:
        """Stop a partition; returns an event set once its log is closed."""
        slot = self._slots.pop(key)
        rt = slot.runtime
        rt.stop(reason)
        slot.scope.cancel()
        if delete:
            # Remove the data now, before a stream of the same name can be created again.
            shutil.rmtree(rt.path, ignore_errors=True)
        log.info("%s: stopped (%s)", rt.name, reason.message)
        return slot.done

    async def _run_slot(self, slot: _Slot, after: trio.Event | None) -> None:
        try:
            with slot.scope:
                if after is not None:
                    await after.wait()  # the previous incarnation must close its log first
                await slot.runtime.run()
        except Exception:
            log.exception("%s: partition task failed", slot.runtime.name)
            slot.runtime.stop(PartitionClosed("INTERNAL", "commit log was closed"))
            if self._slots.get((slot.runtime.stream.name, slot.runtime.meta.id)) is slot:
                del self._slots[(slot.runtime.stream.name, slot.runtime.meta.id)]
        finally:
            slot.done.set()
