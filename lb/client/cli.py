"""The admin commands of ``lb`` (everything except ``serve``), on :class:`lb.client.Client`.

Commands::

    lb stream create NAME --subject S [--partitions N] [--replication-factor N] [--group G] ...
    lb stream list | delete NAME | pause NAME [--partitions 0,1] [--resume-all]
    lb stream readonly NAME [--partitions 0,1] [--off]
    lb publish STREAM [VALUE ...]   (no VALUE: one message per stdin line)
    lb subscribe STREAM [--partition N] [--from earliest|latest|new|offset N|time T] [--follow]
    lb cluster status

Every command takes ``--servers HOST:PORT[,HOST:PORT...]`` (default 127.0.0.1:9292, or the
``LB_SERVERS`` environment variable), ``--timeout SECONDS`` and ``--json``. Output is an aligned
table for people, and JSON for scripts (one JSON document; ``subscribe`` and ``publish`` print
JSON Lines, one object per message).

Exit codes: 0 success; 1 the server or the connection failed (one line on stderr: ``lb: CODE:
message``, with the gRPC status name and the server's text); 2 usage error (bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any, TextIO

from lb.client.client import Client
from lb.client.errors import (
    EndOfPartitionError,
    InvalidArgumentError,
    LbError,
)
from lb.client.metadata import PartitionInfo, parse_address
from lb.client.partitioners import KeyHashPartitioner
from lb.codec import AckFields, AckPolicy, MessageFields

EXIT_OK = 0
EXIT_SERVER_ERROR = 1
EXIT_USAGE = 2

DEFAULT_SERVERS = "127.0.0.1:9292"
CLIENT_COMMANDS = ("stream", "publish", "subscribe", "cluster")
STDIN_LINES_MAX = 1_000_000
PUBLISH_LINE_BYTES_MAX = 1 << 20


class UsageError(Exception):
    """A bad argument the parser could not catch; exit code 2."""


# ------------------------------------------------------------------------------------------
# Parser
# ------------------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--servers",
        default=os.environ.get("LB_SERVERS", DEFAULT_SERVERS),
        metavar="HOST:PORT[,HOST:PORT...]",
        help="seed servers (default: $LB_SERVERS or %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS",
        help="deadline of each call (default %(default)s)",
    )


def _partitions_arg(text: str) -> list[int]:
    try:
        out = [int(p) for p in text.replace(" ", "").split(",") if p]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad partition list {text!r}") from None
    if any(p < 0 for p in out):
        raise argparse.ArgumentTypeError("partitions are >= 0")
    return out


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the client-side subcommands on the ``lb`` parser."""
    stream = commands.add_parser("stream", help="create, list, delete, pause, readonly streams")
    sub = stream.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    create = sub.add_parser("create", help="create a stream")
    create.add_argument("name")
    create.add_argument("--subject", required=True, help="NATS subject (wildcards allowed)")
    create.add_argument("--partitions", type=int, default=1)
    create.add_argument("--replication-factor", type=int, default=1,
                        help="replicas per partition (-1: every server)")
    create.add_argument("--group", default="", help="load-balance group (NATS queue group)")
    create.add_argument("--retention-max-bytes", type=int)
    create.add_argument("--retention-max-messages", type=int)
    create.add_argument("--retention-max-age-ms", type=int)
    create.add_argument("--segment-max-bytes", type=int)
    create.add_argument("--segment-max-age-ms", type=int)
    create.add_argument("--cleaner-interval-ms", type=int)
    create.add_argument("--compact", action="store_true", default=None,
                        help="keep only the newest message per key")
    create.add_argument("--auto-pause-time-ms", type=int)
    create.add_argument("--min-isr", type=int)
    create.add_argument("--optimistic-concurrency-control", action="store_true", default=None)
    _common(create)

    lst = sub.add_parser("list", help="list streams and their partitions")
    _common(lst)

    delete = sub.add_parser("delete", help="delete a stream and its data")
    delete.add_argument("name")
    _common(delete)

    pause = sub.add_parser("pause", help="pause partitions (a publish resumes them)")
    pause.add_argument("name")
    pause.add_argument("--partitions", type=_partitions_arg, default=[],
                       help="comma-separated ids (default: all)")
    pause.add_argument("--resume-all", action="store_true",
                       help="a publish to any partition resumes all of them")
    _common(pause)

    readonly = sub.add_parser("readonly", help="make partitions readonly (or writable: --off)")
    readonly.add_argument("name")
    readonly.add_argument("--partitions", type=_partitions_arg, default=[],
                          help="comma-separated ids (default: all)")
    readonly.add_argument("--off", action="store_true", help="make them writable again")
    _common(readonly)

    publish = commands.add_parser("publish", help="publish messages (arguments or stdin lines)")
    publish.add_argument("stream")
    publish.add_argument("values", nargs="*", metavar="VALUE",
                         help="message values; none: read one message per stdin line")
    publish.add_argument("--key", default=None,
                         help="message key (picks the partition by key hash unless --partition)")
    publish.add_argument("--header", action="append", default=[], metavar="K=V",
                         help="a message header, repeatable")
    publish.add_argument("--ack-policy", choices=("leader", "all", "none"), default="leader")
    publish.add_argument("--partition", type=int, default=None)
    _common(publish)

    subscribe = commands.add_parser("subscribe", help="print messages of a partition")
    subscribe.add_argument("stream")
    subscribe.add_argument("--partition", type=int, default=0)
    subscribe.add_argument(
        "--from", dest="start", nargs="+", default=["earliest"], metavar="WHERE",
        help="earliest (default), latest, new, 'offset N', or 'time T' (T: ISO-8601, "
        "or integer ns since the epoch)",
    )
    subscribe.add_argument("--follow", action="store_true",
                           help="keep waiting for new messages (default: print what is there)")
    subscribe.add_argument("--read-isr-replica", action="store_true",
                           help="read from any in-sync replica, not only the leader")
    _common(subscribe)

    cluster = commands.add_parser("cluster", help="cluster state")
    csub = cluster.add_subparsers(dest="action", metavar="ACTION")
    csub.required = True
    status = csub.add_parser("status", help="brokers and partitions (leader, ISR, HW, newest)")
    _common(status)


# ------------------------------------------------------------------------------------------
# Output helpers
# ------------------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    numeric = [
        all(isinstance(r[i], int) and not isinstance(r[i], bool) for r in rows) and bool(rows)
        for i in range(len(headers))
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i]) for i, c in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _bytes_out(b: bytes) -> Any:
    """Bytes for JSON: a string when they are UTF-8, else {"base64": ...}."""
    try:
        return b.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(b).decode()}


def _bytes_text(b: bytes) -> str:
    text = b.decode(errors="backslashreplace")
    return text.replace("\n", "\\n").replace("\t", "\\t")


def _iso(ns: int) -> str:
    if ns <= 0:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="milliseconds")


def _emit_json(out: TextIO, obj: Any) -> None:
    out.write(json.dumps(obj, separators=(",", ":"), sort_keys=False) + "\n")
    out.flush()


def _partition_json(p: PartitionInfo) -> dict[str, Any]:
    return {
        "id": p.id,
        "leader": p.leader,
        "replicas": list(p.replicas),
        "isr": list(p.isr),
        "high_watermark": p.high_watermark,
        "newest_offset": p.newest_offset,
        "paused": p.paused,
        "readonly": p.readonly,
    }


# ------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------


def _servers(args: argparse.Namespace) -> list[str]:
    servers = [s for s in args.servers.split(",") if s.strip()]
    if not servers:
        raise UsageError("--servers is empty")
    for s in servers:
        try:
            parse_address(s)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return servers


async def _stream_cmd(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    action = args.action
    if action == "create":
        if args.partitions < 1:
            raise UsageError("--partitions must be at least 1")
        await client.create_stream(
            args.subject,
            args.name,
            group=args.group,
            partitions=args.partitions,
            replication_factor=args.replication_factor,
            retention_max_bytes=args.retention_max_bytes,
            retention_max_messages=args.retention_max_messages,
            retention_max_age_ms=args.retention_max_age_ms,
            segment_max_bytes=args.segment_max_bytes,
            segment_max_age_ms=args.segment_max_age_ms,
            cleaner_interval_ms=args.cleaner_interval_ms,
            compact_enabled=args.compact,
            auto_pause_time_ms=args.auto_pause_time_ms,
            min_isr=args.min_isr,
            optimistic_concurrency_control=args.optimistic_concurrency_control,
            timeout_s=args.timeout,
        )
        _done(out, args, {"created": args.name}, f"created stream {args.name}")
    elif action == "list":
        md = await client.fetch_metadata()
        streams = sorted(md.streams.values(), key=lambda s: s.name)
        if args.json:
            _emit_json(out, [
                {
                    "name": s.name,
                    "subject": s.subject,
                    "creation_timestamp_ns": s.creation_timestamp_ns,
                    "partitions": [_partition_json(p) for p in s.partitions.values()],
                }
                for s in streams
            ])
        else:
            rows = [
                (s.name, s.subject, len(s.partitions),
                 sum(p.paused for p in s.partitions.values()),
                 sum(p.readonly for p in s.partitions.values()),
                 _iso(s.creation_timestamp_ns))
                for s in streams
            ]
            out.write(format_table(
                ("NAME", "SUBJECT", "PARTITIONS", "PAUSED", "READONLY", "CREATED"), rows) + "\n")
    elif action == "delete":
        await client.delete_stream(args.name, timeout_s=args.timeout)
        _done(out, args, {"deleted": args.name}, f"deleted stream {args.name}")
    elif action == "pause":
        await client.pause_stream(args.name, args.partitions, resume_all=args.resume_all,
                                  timeout_s=args.timeout)
        which = ",".join(map(str, args.partitions)) or "all"
        _done(out, args, {"paused": args.name, "partitions": args.partitions},
              f"paused stream {args.name} partitions {which}")
    elif action == "readonly":
        await client.set_stream_readonly(args.name, args.partitions, readonly=not args.off,
                                         timeout_s=args.timeout)
        which = ",".join(map(str, args.partitions)) or "all"
        state = "writable" if args.off else "readonly"
        _done(out, args, {"stream": args.name, "partitions": args.partitions,
                          "readonly": not args.off},
              f"stream {args.name} partitions {which} are {state}")
    return EXIT_OK


def _done(out: TextIO, args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    if args.json:
        _emit_json(out, {"ok": True, **obj})
    else:
        out.write(text + "\n")


def _headers(pairs: Sequence[str]) -> dict[str, bytes]:
    headers: dict[str, bytes] = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise UsageError(f"--header wants K=V, got {pair!r}")
        headers[k] = v.encode()
    return headers


async def _values(args: argparse.Namespace, stdin: TextIO) -> AsyncIterator[bytes]:
    if args.values:
        for v in args.values:
            yield v.encode()
        return
    for count, line in enumerate(stdin):
        if count >= STDIN_LINES_MAX:
            raise UsageError(f"more than {STDIN_LINES_MAX} lines on stdin; split the input")
        data = line.rstrip("\n").rstrip("\r").encode()
        if len(data) > PUBLISH_LINE_BYTES_MAX:
            raise UsageError(f"line {count + 1} is longer than {PUBLISH_LINE_BYTES_MAX} bytes")
        yield data


async def _publish_cmd(
    client: Client, args: argparse.Namespace, out: TextIO, stdin: TextIO
) -> int:
    headers = _headers(args.header)
    policy = {"leader": AckPolicy.LEADER, "all": AckPolicy.ALL, "none": AckPolicy.NONE}[
        args.ack_policy
    ]
    key = b"" if args.key is None else args.key.encode()
    partitioner = KeyHashPartitioner() if args.key is not None and args.partition is None else None
    partition = args.partition
    if partition is None and partitioner is None:
        partition = 0
    sent: list[tuple[int, asyncio.Future[AckFields | None]]] = []
    for value in [v async for v in _values(args, stdin)]:
        if partitioner is not None:
            md = client.metadata
            count = md.partition_count(args.stream)
            if count is None:
                count = (await client.fetch_metadata([args.stream])).partition_count(args.stream)
            pid = partitioner.partition(args.stream, key, value, count or 1)
        else:
            assert partition is not None
            pid = partition
        future = await client.publish_async(
            args.stream, value, key=key, partition=pid, headers=headers, ack_policy=policy
        )
        sent.append((pid, future))
    results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
    rows = []
    failure: LbError | None = None
    for (pid, _), result in zip(sent, results, strict=True):
        if isinstance(result, LbError):
            failure = failure or result
            if args.json:
                _emit_json(out, {"stream": args.stream, "partition": pid, "error": {
                    "code": result.status.name, "message": result.message}})
            continue
        if isinstance(result, BaseException):
            raise result
        offset = None if result is None else result.offset
        if args.json:
            _emit_json(out, {"stream": args.stream, "partition": pid, "offset": offset})
        else:
            rows.append((args.stream, pid, "-" if offset is None else offset))
    if not args.json and rows:
        out.write(format_table(("STREAM", "PARTITION", "OFFSET"), rows) + "\n")
    if failure is not None:
        raise failure
    return EXIT_OK


def _start(args: argparse.Namespace) -> dict[str, Any]:
    from lb._proto.proto import StartPosition

    words = args.start
    kind = words[0].lower()
    if kind in ("earliest", "latest", "new") and len(words) == 1:
        return {"start": {"earliest": StartPosition.EARLIEST, "latest": StartPosition.LATEST,
                          "new": StartPosition.NEW_ONLY}[kind]}
    if kind == "offset" and len(words) == 2:
        try:
            return {"start": StartPosition.OFFSET, "start_offset": int(words[1])}
        except ValueError:
            raise UsageError(f"--from offset wants an integer, got {words[1]!r}") from None
    if kind == "time" and len(words) == 2:
        return {"start": StartPosition.TIMESTAMP, "start_timestamp_ns": _parse_time(words[1])}
    raise UsageError(
        "--from wants earliest, latest, new, 'offset N' or 'time T', got " + " ".join(words)
    )


def _parse_time(text: str) -> int:
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"bad time {text!r}: use ISO-8601 or integer ns") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1_000_000_000)


async def _subscribe_cmd(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    from lb._proto.proto import StopPosition

    start = _start(args)
    stop = StopPosition.STOP_ON_CANCEL if args.follow else StopPosition.STOP_LATEST
    sub = client.subscribe(
        args.stream, partition=args.partition, stop=stop,
        read_isr_replica=args.read_isr_replica, **start,
    )
    try:
        async with sub:
            if not args.json:
                out.write(f"{'OFFSET':>8}  {'TIMESTAMP':<29}  {'KEY':<12}  VALUE\n")
            async for msg in sub:
                _print_message(out, args, msg)
    except EndOfPartitionError:
        pass  # "Stream is empty": nothing to print
    except InvalidArgumentError as err:
        # Without --follow the stop is the newest offset; a start past it means "nothing new".
        if args.follow or "Stop offset is before start offset" not in err.message:
            raise
    return EXIT_OK


def _print_message(out: TextIO, args: argparse.Namespace, msg: MessageFields) -> None:
    if args.json:
        _emit_json(out, {
            "stream": msg.stream,
            "partition": msg.partition,
            "offset": msg.offset,
            "timestamp_ns": msg.timestamp_ns,
            "key": _bytes_out(msg.key),
            "value": _bytes_out(msg.value),
            "subject": msg.subject,
            "headers": {k: _bytes_out(v) for k, v in msg.headers.items()
                        if k not in ("subject", "reply")},
        })
    else:
        out.write(f"{msg.offset:>8}  {_iso(msg.timestamp_ns):<29}  "
                  f"{_bytes_text(msg.key):<12}  {_bytes_text(msg.value)}\n")
        if args.follow:
            out.flush()


async def _cluster_cmd(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    md = await client.fetch_metadata()
    partitions: list[PartitionInfo] = []
    fresh: dict[tuple[str, int], bool] = {}
    for s in sorted(md.streams.values(), key=lambda s: s.name):
        for p in s.partitions.values():
            try:  # HW and newest offset as the leader sees them (FetchMetadata may lag, META-6)
                lead = await client.fetch_partition_metadata(s.name, p.id)
                p = PartitionInfo(s.name, p.id, p.leader, p.replicas, p.isr, lead.high_watermark,
                                  lead.newest_offset, p.paused, p.readonly)
                fresh[(s.name, p.id)] = True
            except LbError:
                fresh[(s.name, p.id)] = False
            partitions.append(p)
    answering = md.brokers[0].id if md.brokers else ""
    note = ("the API does not expose the metadata leader; brokers are listed as the "
            "answering server reports them, itself first")
    if args.json:
        _emit_json(out, {
            "answering_server": answering,
            "metadata_leader": None,
            "note": note,
            "brokers": [{"id": b.id, "host": b.host, "port": b.port,
                         "partition_count": b.partition_count, "leader_count": b.leader_count}
                        for b in md.brokers],
            "partitions": [{"stream": p.stream, **_partition_json(p),
                            "from_leader": fresh[(p.stream, p.id)]} for p in partitions],
        })
        return EXIT_OK
    out.write("BROKERS\n")
    out.write(format_table(
        ("ID", "ADDRESS", "PARTITIONS", "LEADERS", "NOTE"),
        [(b.id, b.address, b.partition_count, b.leader_count,
          "answered this query" if b.id == answering else "")
         for b in md.brokers],
    ) + "\n")
    out.write(f"metadata leader: unknown ({note})\n\nPARTITIONS\n")
    rows = [
        (p.stream, p.id, p.leader, ",".join(p.isr), p.high_watermark, p.newest_offset,
         " ".join(word for word, on in (
             ("paused", p.paused), ("readonly", p.readonly),
             ("(offsets from metadata)", not fresh[(p.stream, p.id)])) if on))
        for p in partitions
    ]
    out.write(format_table(
        ("STREAM", "PARTITION", "LEADER", "ISR", "HW", "NEWEST", "STATE"), rows) + "\n")
    return EXIT_OK


async def _run(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    servers = _servers(args)
    client = Client(servers, rpc_timeout_s=args.timeout, ack_timeout_s=args.timeout,
                    retries_max=3)
    try:
        if args.command == "stream":
            return await _stream_cmd(client, args, out)
        if args.command == "publish":
            return await _publish_cmd(client, args, out, stdin)
        if args.command == "subscribe":
            return await _subscribe_cmd(client, args, out)
        if args.command == "cluster":
            return await _cluster_cmd(client, args, out)
        raise UsageError(f"unknown command {args.command!r}")
    finally:
        await client.close()


def run(args: argparse.Namespace) -> int:
    """Run a client-side subcommand; returns the exit code (0, 1 server error, 2 usage)."""
    try:
        return asyncio.run(_run(args, sys.stdout, sys.stdin))
    except UsageError as exc:
        print(f"lb: usage error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LbError as exc:
        print(f"lb: {exc.status.name}: {exc.message}", file=sys.stderr)
        return EXIT_SERVER_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return EXIT_OK
