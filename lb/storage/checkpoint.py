"""Small durable files replaced atomically: the HW checkpoint and the leader-epoch checkpoint.

Both are text (Kafka/Liftbridge style: a version line first) so operators can read them.
Replacement is temp file + fsync + rename + directory fsync, so a crash leaves either the old
or the new content, never a mix.
"""

from __future__ import annotations

import itertools
import os

HW_FILE = "replication-offset-checkpoint"
EPOCH_FILE = "leader-epoch-checkpoint"
TMP_SUFFIX = ".tmp"
CHECKPOINT_VERSION = 0


def fsync_dir(path: str) -> None:
    """fsync a directory so that renames and new entries in it are durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(directory: str, name: str, data: bytes) -> None:
    """Replace ``directory/name`` with ``data`` durably and atomically."""
    final = os.path.join(directory, name)
    tmp = final + TMP_SUFFIX
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(directory)


def write_hw(directory: str, hw: int) -> None:
    write_atomic(directory, HW_FILE, f"{CHECKPOINT_VERSION}\n{hw}\n".encode())


def read_hw(directory: str) -> int | None:
    """The checkpointed HW, or None when the file is missing or unreadable."""
    try:
        with open(os.path.join(directory, HW_FILE), "rb") as f:
            lines = f.read().decode().split()
        if len(lines) != 2 or int(lines[0]) != CHECKPOINT_VERSION:
            return None
        return int(lines[1])
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def encode_epochs(entries: list[tuple[int, int]]) -> bytes:
    lines = [str(CHECKPOINT_VERSION), str(len(entries))]
    lines += [f"{e} {o}" for e, o in entries]
    return ("\n".join(lines) + "\n").encode()


def read_epochs(directory: str) -> list[tuple[int, int]] | None:
    """The (epoch, start_offset) entries, or None when missing or malformed."""
    try:
        with open(os.path.join(directory, EPOCH_FILE), "rb") as f:
            lines = f.read().decode().splitlines()
        if len(lines) < 2 or int(lines[0]) != CHECKPOINT_VERSION:
            return None
        n = int(lines[1])
        if len(lines) != n + 2:
            return None
        out = []
        for line in lines[2:]:
            e, o = line.split()
            out.append((int(e), int(o)))
        for (e1, o1), (e2, o2) in itertools.pairwise(out):
            if e2 <= e1 or o2 < o1:
                return None
        return out
    except (OSError, ValueError, UnicodeDecodeError):
        return None
