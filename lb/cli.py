"""The ``lb`` command (also ``python -m lb``).

``lb serve`` runs a server. Configuration problems print one line naming the key and exit with
code 2, with no traceback; a server that cannot keep serving exits with code 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import trio

from lb import __version__

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR}


def build_parser() -> argparse.ArgumentParser:
    from lb.client.cli import add_commands as add_client_commands
    from lb.config import add_serve_arguments

    parser = argparse.ArgumentParser(
        prog="lb", description="lb: Liftbridge on Trio, durable streams on NATS subjects"
    )
    parser.add_argument("--version", action="version", version=f"lb {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    serve = commands.add_parser("serve", help="run an lb server")
    add_serve_arguments(serve)
    add_client_commands(commands)
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=_LEVELS.get(level, logging.INFO),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _serve(args: argparse.Namespace) -> int:
    from lb.config import ConfigError, load_config
    from lb.server.controller import ControllerFatalError
    from lb.server.embedded_nats import EmbeddedNatsError
    from lb.server.identity import IdentityError
    from lb.server.node import FatalServerError, Node

    try:
        config = load_config(args, os.environ)
    except ConfigError as exc:
        print(f"lb: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _configure_logging(config.logging.level)
    node = Node(config)
    try:
        trio.run(node.run)
    except BaseException as exc:
        fatal_kinds = (
            IdentityError, FatalServerError, EmbeddedNatsError, ControllerFatalError, OSError
        )
        leaf = _known_failure(exc, fatal_kinds)
        if leaf is None:
            raise
        if isinstance(leaf, IdentityError):
            print(f"lb: config error: {leaf}", file=sys.stderr)
            return EXIT_USAGE
        logging.getLogger("lb.server").error("fatal: %s", leaf)
        print(f"lb: fatal: {leaf}", file=sys.stderr)
        return EXIT_FATAL
    return EXIT_OK


def _known_failure(
    exc: BaseException, kinds: tuple[type[BaseException], ...]
) -> BaseException | None:
    """The expected failure inside ``exc``, looking through Trio's exception groups."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _known_failure(sub, kinds)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    from lb.client.cli import run

    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
