"""The admin commands of ``lb`` (everything except ``serve``). Filled in by the client work."""

from __future__ import annotations

import argparse


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the client-side subcommands on the ``lb`` parser."""


def run(args: argparse.Namespace) -> int:
    """Run a client-side subcommand; returns the exit code."""
    raise SystemExit(f"lb: unknown command {args.command!r}")
