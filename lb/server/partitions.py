"""Start, stop and update this server's partition replicas as the metadata changes.

The manager reconciles: after any metadata effect it compares the partitions this server should
serve (it is a replica, the partition is not paused) with those it runs, and starts, restarts
(new leader epoch: a role change), updates in place (ISR, readonly) or stops each one. Working
from the state rather than from individual effects makes a restored snapshot, a replayed log and
a single op all the same case. Each partition runs in its own cancel scope under the manager's
nursery, so stopping one never touches another.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio
import trio_asyncio
from nats.aio.client import Client as NatsClient

from lb.metadata import effects as fx
from lb.metadata.model import MetadataState, Stream
from lb.metadata.model import Partition as PartitionMeta
from lb.server.partition import (
    DELETED,
    NOT_LEADER,
    PAUSED,
    LocalAcks,
    MetadataRequest,
    PartitionClosed,
    PartitionEvents,
    PartitionRuntime,
    Settings,
)
from lb.server.replication import decode_notify, notify_subject
from lb.server.stall import StallWatch

log = logging.getLogger("lb.partition")

Key = tuple[str, int]


@dataclass
class _Slot:
    runtime: PartitionRuntime
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    delete: bool = False  # remove the data once the log is closed


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
        # Partitions being stopped: a new incarnation of the same key waits for the old one
        # to close its log (and delete its data) before opening the directory.
        self._closing: dict[Key, trio.Event] = {}
        # Event timestamps outlive runtimes (a pause stops one, the resume starts another).
        self._events: dict[Key, tuple[int, PartitionEvents]] = {}
        self._paused: set[Key] = set()
        self._led: dict[Key, int] = {}  # leader epochs this process has led, per partition
        self.metadata_request: MetadataRequest | None = None
        """How partitions propose metadata changes (auto-pause); set by the node's wiring."""
        self.local_acks: LocalAcks | None = None
        """Delivers acks to this server's own inboxes without NATS (set by the API)."""
        self.stall_watch: StallWatch | None = None
        """Notices when this process stalled; leaders then confirm before acking (the node)."""

    def get(self, stream: str, partition: int) -> PartitionRuntime | None:
        slot = self._slots.get((stream, partition))
        return slot.runtime if slot is not None else None

    def events(self, stream: str, partition: int) -> PartitionEvents | None:
        """This server's event timestamps of a partition (also while it is paused)."""
        entry = self._events.get((stream, partition))
        return entry[1] if entry is not None else None

    def stopping(self, stream: str) -> bool:
        """True while a stopped partition of ``stream`` is still closing or deleting its data."""
        return any(key[0] == stream for key in self._closing)

    def runtimes(self) -> list[PartitionRuntime]:
        return [s.runtime for s in self._slots.values()]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async def on_notify(msg: Any) -> None:
            key = decode_notify(msg.data)
            slot = self._slots.get(key) if key is not None else None
            if slot is not None and slot.runtime.follower_repl is not None:
                slot.runtime.follower_repl.notify()

        subject = notify_subject(self.settings.namespace, self.settings.server_id)
        await trio_asyncio.aio_as_trio(self._nats.subscribe)(subject, cb=on_notify)
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

    def sweep_deleted_streams(self) -> list[str]:
        """Remove data of streams deleted while this server was down or mid-delete.

        Call only once this server's own metadata log has been replayed (see
        ``trash_deleted_streams``); never for a server that started without Raft state, whose
        state says nothing about the directories it finds. The deleting runs in the
        background; the renames that make it safe happen now.
        """
        assert self._nursery is not None
        streams_dir = self.settings.data_dir / "streams"
        removed = trash_deleted_streams(streams_dir, set(self._state().streams))
        if removed:
            log.warning("removing data of deleted streams: %s", ", ".join(sorted(removed)))
        self._nursery.start_soon(
            partial(trio.to_thread.run_sync, abandon_on_cancel=True),
            empty_trash,
            streams_dir,
            name="empty the stream trash",
        )
        return removed

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
        now_ns = time.time_ns()
        paused: set[Key] = set()
        for stream in state.streams.values():
            for p in stream.partitions:
                if me not in p.replicas:
                    continue
                key = (stream.name, p.id)
                events = self._events_for(key, stream)
                if p.paused:
                    paused.add(key)
                    if key not in self._paused:
                        events.pause.mark(now_ns)  # PMETA-3: every pause...
                else:
                    if key in self._paused:
                        events.pause.mark(now_ns)  # ...and every resume
                    wanted[key] = (stream, p)
        self._paused = paused
        for key in list(self._events):
            s = state.streams.get(key[0])
            if s is None or s.creation_timestamp_ns != self._events[key][0]:
                del self._events[key]
        for key, slot in list(self._slots.items()):
            rt = slot.runtime
            target = wanted.get(key)
            if target is None:
                if key[0] in deleted or key[0] not in state.streams:
                    self._stop(key, DELETED, delete=True)
                else:
                    self._stop(key, PAUSED)
                continue
            stream, meta = target
            recreated = stream.creation_timestamp_ns != rt.stream.creation_timestamp_ns
            if recreated or meta.leader_epoch != rt.meta.leader_epoch:
                # A new incarnation or a new leader generation: restart the role from scratch.
                self._stop(key, DELETED if recreated else NOT_LEADER, delete=recreated)
                continue
            rt.stream = stream
            if meta != rt.meta:
                rt.meta = meta
                rt.on_meta_changed()  # e.g. a new ISR for the leader's HW
            if rt.readonly != meta.readonly:
                rt.readonly = meta.readonly
                rt.readonly_times.mark(now_ns)
                rt.notifier.notify()
        for key, (stream, meta) in wanted.items():
            if key not in self._slots:
                self._start(key, stream, meta, self._closing.get(key))

    def _events_for(self, key: Key, stream: Stream) -> PartitionEvents:
        entry = self._events.get(key)
        if entry is None or entry[0] != stream.creation_timestamp_ns:
            entry = (stream.creation_timestamp_ns, PartitionEvents())
            self._events[key] = entry
        return entry[1]

    def _start(
        self, key: Key, stream: Stream, meta: PartitionMeta, after: trio.Event | None
    ) -> None:
        assert self._nursery is not None
        runtime = PartitionRuntime(
            self.settings,
            stream,
            meta,
            self._nats,
            events=self._events_for(key, stream),
            metadata_request=self.metadata_request,
            local_acks=self.local_acks,
            stall_watch=self.stall_watch,
        )
        if meta.leader == self.settings.server_id:
            # Leading the same epoch again in this process (e.g. after a resume) is safe; a
            # leadership recorded by a previous process is handed over (see the runtime).
            runtime.led_before = self._led.get(key) == meta.leader_epoch
            self._led[key] = meta.leader_epoch
        slot = _Slot(runtime)
        self._slots[key] = slot
        self._nursery.start_soon(self._run_slot, slot, after, name=f"partition {runtime.name}")

    def _stop(self, key: Key, reason: PartitionClosed, delete: bool = False) -> None:
        """Stop a partition. Its data, if ``delete``, goes once its log is closed; until then
        ``_closing[key]`` holds back a new incarnation of the same partition."""
        slot = self._slots.pop(key)
        rt = slot.runtime
        rt.stop(reason)
        slot.delete = delete
        slot.scope.cancel()
        self._closing[key] = slot.done
        log.info("%s: stopped (%s)", rt.name, reason.message)

    async def _run_slot(self, slot: _Slot, after: trio.Event | None) -> None:
        rt = slot.runtime
        key = (rt.stream.name, rt.meta.id)
        try:
            with slot.scope:
                if after is not None:
                    await after.wait()  # the previous incarnation must close its log first
                await trio.to_thread.run_sync(
                    claim_partition_dir, rt.path, rt.stream.creation_timestamp_ns
                )
                await rt.run()
        except Exception:
            log.exception("%s: partition task failed", rt.name)
            rt.stop(PartitionClosed("INTERNAL", "commit log was closed"))
            if self._slots.get(key) is slot:
                del self._slots[key]
        finally:
            if slot.delete:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(_delete_partition_dir, rt.path)
            if self._closing.get(key) is slot.done:
                del self._closing[key]
            slot.done.set()


INCARNATION_FILE = "stream-incarnation"
"""In each partition directory: the creation timestamp (ns) of the stream the data belongs to."""

TRASH_DIR = ".trash"
"""Under ``<data>/streams``: directories being removed. Stream names never contain a dot."""


def claim_partition_dir(path: Path, creation_timestamp_ns: int) -> None:
    """Make ``path`` hold data of this stream incarnation only.

    A stream deleted and created again under the same name while this server was down (or
    crashed between the committed delete and removing the files) leaves the old incarnation's
    log behind; opening it would serve old messages as new ones. The directory records whose
    data it holds; a mismatch discards it. A directory without the record (made before lb
    kept one) is adopted.
    """
    marker = path / INCARNATION_FILE
    expected = str(creation_timestamp_ns)
    try:
        recorded = marker.read_text().strip()
    except FileNotFoundError:
        recorded = None
    if recorded is not None and recorded != expected:
        log.warning(
            "%s holds data of an earlier stream of the same name (created at %s ns, this one "
            "at %s ns): discarding it",
            path,
            recorded,
            expected,
        )
        _discard(path)
    if recorded != expected:
        path.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(expected + "\n")
        os.replace(tmp, marker)


def trash_deleted_streams(streams_dir: Path, live: set[str]) -> list[str]:
    """Move the directories of streams that no longer exist to the trash; returns their names.

    Run once the metadata log has been replayed: every stream this server ever stored data
    for was created by a committed op it has applied, so a directory whose stream is not in
    the state was left by a delete that committed before the files were gone (a crash, or
    this server being down). Only renames: quick enough to run on the event loop, which keeps
    it atomic with respect to partitions starting. ``empty_trash`` does the slow part.
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(streams_dir))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name != TRASH_DIR and entry.is_dir() and entry.name not in live:
            _to_trash(Path(entry.path), streams_dir)
            removed.append(entry.name)
    return removed


def empty_trash(streams_dir: Path) -> None:
    """Delete what ``_to_trash`` moved aside, including leftovers of a crash."""
    try:
        entries = list(os.scandir(streams_dir / TRASH_DIR))
    except FileNotFoundError:
        return
    for entry in entries:
        shutil.rmtree(entry.path, ignore_errors=True)


def _to_trash(path: Path, streams_dir: Path) -> Path:
    trash = streams_dir / TRASH_DIR
    trash.mkdir(exist_ok=True)
    target = trash / f"{path.parent.name}.{path.name}.{time.time_ns()}"
    os.replace(path, target)  # atomic: a crash leaves the data either in place or in the trash
    return target


def _discard(path: Path) -> None:
    """Remove a partition directory so that a crash halfway leaves only trash behind."""
    shutil.rmtree(_to_trash(path, path.parents[1]), ignore_errors=True)


def _delete_partition_dir(path: Path) -> None:
    """Remove a partition's directory, and its stream's directory once it is empty."""
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # fails while other partitions of the stream still have data
