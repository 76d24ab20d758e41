"""The sans-IO cores stay pure: only ``lb/server`` (and the CLI, client and test kit) do I/O.

Pure cores take time and randomness as values, so that the simulator can drive them
deterministically and every decision is testable without sockets, files or clocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

LB = Path(__file__).resolve().parent.parent / "lb"

IO_AND_ASYNC = {"trio", "trio_asyncio", "asyncio", "anyio", "nats", "grpclib", "socket",
                "selectors", "subprocess", "threading", "multiprocessing", "signal"}
CLOCK = {"time", "datetime"}
FILES = {"os", "shutil", "tempfile", "pathlib", "io", "mmap"}

# module path (relative to lb/, a file or a package dir) -> forbidden top-level imports
RULES: dict[str, set[str]] = {
    "raft": IO_AND_ASYNC | CLOCK | FILES,
    "metadata": IO_AND_ASYNC | CLOCK | FILES,
    "replication": IO_AND_ASYNC | CLOCK | FILES,
    "envelope.py": IO_AND_ASYNC | CLOCK | FILES,
    "codec.py": IO_AND_ASYNC | CLOCK | FILES,
    "protowire.py": IO_AND_ASYNC | CLOCK | FILES,
    # The storage engine touches files by design, but is synchronous and never reads the clock.
    "storage": IO_AND_ASYNC | CLOCK,
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
            if node.module == "lb" or node.module.startswith("lb."):
                found.add(node.module)
    return found


def _files(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(target.rglob("*.py"))
    return [target] if target.exists() else []


def test_pure_cores_import_no_io() -> None:
    problems = []
    checked = 0
    for rel, forbidden in RULES.items():
        for path in _files(LB / rel):
            checked += 1
            imports = _imports(path)
            bad = sorted(imports & forbidden)
            bad += sorted(m for m in imports if m.startswith("lb.server") or m == "lb.cli")
            if bad:
                problems.append(f"{path.relative_to(LB.parent)} imports {', '.join(bad)}")
    assert checked > 0
    assert not problems, "\n".join(problems)


def test_layering_check_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself must see both import forms."""
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom trio import sleep\nfrom lb.server.node import Node\n")
    assert {"time", "trio", "lb.server.node"} <= _imports(bad)
