"""Shared helpers for the storage tests (not a test module)."""

from __future__ import annotations

import os

from lb.storage import CommitLog, LogOptions, MessageIn


def body_for(offset: int) -> bytes:
    """Deterministic value for a given offset, so a reopened log can be checked byte by byte."""
    return f"msg-{offset}-".encode() * (offset % 7 + 1)


def fill(log: CommitLog, n_batches: int, per_batch: int, now_ns: int = 1_000,
         epoch: int | None = None) -> None:
    for b in range(n_batches):
        first = log.next_offset
        msgs = [MessageIn(body_for(first + i), key=b"k%d" % ((first + i) % 5))
                for i in range(per_batch)]
        log.append(msgs, now_ns=now_ns + b, leader_epoch=epoch)


def small_options(**kw: object) -> LogOptions:
    base = dict(segment_bytes_max=2_000, index_interval_bytes=256)
    base.update(kw)
    return LogOptions(**base)  # type: ignore[arg-type]


def segment_files(path: str, suffix: str = ".log") -> list[str]:
    return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(suffix))


def flip_byte(path: str, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        b = f.read(1)
        f.seek(position)
        f.write(bytes([b[0] ^ 0xFF]))
