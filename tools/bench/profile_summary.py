#!/usr/bin/env python3
"""Rank the hot frames of a py-spy ``--format raw`` (collapsed stacks) profile.

    python tools/bench/profile_summary.py PROFILE.txt [--top 20]

Prints the frames with the most *self* samples (where the CPU was) and the most *inclusive*
samples (what the time was spent under), as percentages of all samples. bench.py ``--profile``
writes such files (py-spy is a dev tool: ``pip install py-spy``, not a project dependency).
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path


def load(path: Path) -> list[tuple[list[str], int]]:
    """(stack from root to leaf, samples) per line of a collapsed-stack file."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out.append((stack.split(";"), int(count)))
    return out


def _short(frame: str) -> str:
    # py-spy frames look like "func (path/to/module.py:123)"; keep func and file:line.
    return frame.replace("/work/main/", "").replace("/work/venv/lib/python3.11/site-packages/", "")


def _area(frame: str) -> str:
    """``lb/server/partition.py`` -> ``lb.server.partition``; a library -> its package;
    the standard library -> ``stdlib:<module>``."""
    inside = frame.rpartition("(")[2].rstrip(")").rpartition(":")[0]
    if inside.startswith("lb/"):
        return inside.removesuffix(".py").replace("/", ".")
    parts = inside.split("/")
    if len(parts) > 1 and not inside.startswith("<"):
        return parts[0]
    return "stdlib:" + parts[-1].removesuffix(".py") if inside else "?"


def summarize(path: Path, top: int = 20) -> str:
    stacks = load(path)
    total = sum(c for _, c in stacks) or 1
    self_ = collections.Counter[str]()
    incl = collections.Counter[str]()
    for frames, c in stacks:
        if not frames:
            continue
        self_[_short(frames[-1])] += c
        for f in {_short(f) for f in frames}:
            incl[f] += c
    by_area = collections.Counter[str]()
    for f, c in self_.items():
        by_area[_area(f)] += c
    lines = [f"{path.name}: {total} samples", "  self by area (package of the leaf frame):"]
    lines += [f"    {100 * c / total:5.1f}%  {a}" for a, c in by_area.most_common(top)]
    lines.append("  self (where the CPU was):")
    lines += [f"    {100 * c / total:5.1f}%  {f}" for f, c in self_.most_common(top)]
    lines.append("  inclusive (time spent under; frames under >=95% of samples, i.e. the "
                 "process and event-loop roots, left out):")
    lines += [f"    {100 * c / total:5.1f}%  {f}"
              for f, c in [(f, c) for f, c in incl.most_common() if c < 0.95 * total][:top]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profiles", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    for p in args.profiles:
        print(summarize(p, args.top))


if __name__ == "__main__":
    main()
