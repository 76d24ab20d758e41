"""The server's durable identity: its ID, kept in the data dir so that it survives restarts.

Liftbridge silently prefers the saved ID over a configured one (CLU-6). lb instead refuses to
start when they disagree, as Kafka does with ``broker.id``: a server that quietly changes who it
is confuses replica placement far more than a clear startup error does.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from pathlib import Path

STATE_FILE = "server.json"
_ALPHABET = string.ascii_letters + string.digits


class IdentityError(RuntimeError):
    """The configured server ID conflicts with the one saved in the data dir."""


def random_server_id() -> str:
    """A 22-character random ID in NUID style (base62, ~131 bits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(22))


def load_or_create_server_id(data_dir: Path, configured: str | None) -> str:
    """Return the server ID to use, persisting it atomically on first start."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / STATE_FILE
    if path.exists():
        try:
            saved = json.loads(path.read_text())["server_id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise IdentityError(f"{path} is unreadable ({exc}); remove it or fix it") from exc
        if configured and configured != saved:
            raise IdentityError(
                f"clustering.server.id: configured {configured!r} but data dir {data_dir} "
                f"belongs to server {saved!r}; use that ID or another data.dir"
            )
        return str(saved)
    server_id = configured or random_server_id()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump({"server_id": server_id}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return server_id
