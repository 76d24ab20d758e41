#!/usr/bin/env python3
"""µs per operation: lb's fast hot-path codecs against betterproto (and upb, when available).

Usage::

    python tools/bench/codec_bench.py [--number N]

Why: design.md sets the rule that hot paths use lb.codec / lb.envelope instead of betterproto;
this shows the margin on this machine. Sizes follow design.md's 311-byte ``Message``. upb
(``google.protobuf``) is measured when grpcio-tools can generate ``api_pb2`` (test extra).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from lb import codec, envelope
from lb._proto import proto as bp

ROOT = Path(__file__).resolve().parent.parent.parent

KEY = b"key-0123456789ab"
VALUE = bytes(range(200))
SUBJECT = "orders.eu.1"
REPLY = "_INBOX.8TKZ3bq9KxQnE2S5a1uWbQ"
HEADERS = {"trace-id": b"4bf92f3577b34da6", "subject": SUBJECT.encode(), "reply": REPLY.encode()}
OFFSET = 1_234_567
TIMESTAMP_NS = 1_732_600_000_123_456_789


def load_upb() -> ModuleType | None:
    """``api_pb2`` generated into a temp dir, or None when grpcio-tools is missing."""
    out = Path(tempfile.mkdtemp(prefix="lb-bench-"))
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{ROOT / 'protos'}",
                f"--python_out={out}",
                str(ROOT / "protos" / "api.proto"),
            ],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("api_pb2")
    except ImportError:
        return None
    finally:
        sys.path.remove(str(out))


def per_op_us(fn: Callable[[], Any], number: int) -> float:
    """Best of 5 runs, in µs per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing run")
    args = parser.parse_args()
    n = args.number
    pb2 = load_upb()

    # Fixtures --------------------------------------------------------------------------
    ingest = envelope.parse_published(
        envelope.encode_publish(KEY, VALUE, {"trace-id": b"4bf92f3577b34da6"}, "ack.in", "c-1", 1),
        SUBJECT,
        REPLY,
    )
    body = ingest.encode_body()
    message_kwargs = dict(
        offset=OFFSET,
        key=KEY,
        value=VALUE,
        timestamp=TIMESTAMP_NS,
        stream="orders",
        partition=1,
        subject=SUBJECT,
        reply_subject=REPLY,
        headers=HEADERS,
    )
    sub_msg = codec.message_from_body(OFFSET, TIMESTAMP_NS, "orders", 1, body)
    assert bp.Message().parse(sub_msg) == bp.Message(**message_kwargs)

    request = bp.PublishRequest(
        key=KEY,
        value=VALUE,
        stream="orders",
        partition=1,
        headers={"trace-id": b"4bf92f3577b34da6"},
        ack_inbox="ack.in",
        correlation_id="c-1",
        ack_policy=bp.AckPolicy.ALL,
        expected_offset=-1,
    )
    request_bytes = bytes(request)

    ack_kwargs: dict[str, Any] = dict(
        stream="orders",
        partition_subject="orders",
        msg_subject=SUBJECT,
        offset=OFFSET,
        ack_inbox="ack.in",
        correlation_id="c-1",
        ack_policy=1,
        reception_timestamp_ns=TIMESTAMP_NS,
        commit_timestamp_ns=TIMESTAMP_NS + 1000,
    )
    ack_bytes = codec.encode_ack_proto(**ack_kwargs)
    bp_ack = bp.Ack().parse(ack_bytes)

    raw_payload = bytes(256)
    env_payload = envelope.encode_publish(
        KEY, VALUE, {"trace-id": b"4bf92f3577b34da6"}, "ack.in", "c-1", 1, -1
    )

    def bp_message_from_body() -> bytes:
        return bytes(bp.Message(**message_kwargs))

    def bp_parse_published() -> Any:
        dec = envelope.decode_envelope(env_payload)
        assert dec is not None
        return bp.Message().parse(dec[1])

    rows: list[tuple[str, float, float, float | None]] = []

    def row(name: str, fast: Callable[[], Any], slow: Callable[[], Any], upb: Any) -> None:
        upb_us = per_op_us(upb, n) if upb is not None else None
        rows.append((name, per_op_us(fast, n), per_op_us(slow, max(n // 20, 200)), upb_us))

    row(
        f"Message encode from body ({len(sub_msg)} B)",
        lambda: codec.message_from_body(OFFSET, TIMESTAMP_NS, "orders", 1, body),
        bp_message_from_body,
        (lambda: pb2.Message(**_upb_msg_kwargs(message_kwargs)).SerializeToString())
        if pb2
        else None,
    )
    row(
        "  ... include_ack_fields=True (no strip)",
        lambda: codec.message_from_body(
            OFFSET, TIMESTAMP_NS, "orders", 1, body, include_ack_fields=True
        ),
        bp_message_from_body,
        None,
    )
    row(
        "IngestMessage.encode_body (record body)",
        ingest.encode_body,
        bp_message_from_body,
        None,
    )
    row(
        f"PublishRequest decode ({len(request_bytes)} B)",
        lambda: codec.decode_publish_request(request_bytes),
        lambda: bp.PublishRequest().parse(request_bytes),
        (lambda: pb2.PublishRequest.FromString(request_bytes)) if pb2 else None,
    )
    row(
        f"Ack encode ({len(ack_bytes)} B)",
        lambda: codec.encode_ack_proto(**ack_kwargs),
        lambda: bytes(
            bp.Ack(
                stream="orders",
                partition_subject="orders",
                msg_subject=SUBJECT,
                offset=OFFSET,
                ack_inbox="ack.in",
                correlation_id="c-1",
                ack_policy=bp.AckPolicy.ALL,
                reception_timestamp=TIMESTAMP_NS,
                commit_timestamp=TIMESTAMP_NS + 1000,
            )
        ),
        (
            lambda: pb2.Ack(
                stream="orders",
                partitionSubject="orders",
                msgSubject=SUBJECT,
                offset=OFFSET,
                ackInbox="ack.in",
                correlationId="c-1",
                ackPolicy=1,
                receptionTimestamp=TIMESTAMP_NS,
                commitTimestamp=TIMESTAMP_NS + 1000,
            ).SerializeToString()
        )
        if pb2
        else None,
    )
    row(
        "PublishResponse encode (pre-encoded ack)",
        lambda: codec.encode_publish_response(ack=ack_bytes, correlation_id="c-1"),
        lambda: bytes(bp.PublishResponse(ack=bp_ack, correlation_id="c-1")),
        None,
    )
    # Raw rows: the betterproto column is a naive ingest (betterproto parse of an envelope).
    row(
        "envelope parse: raw 256 B NATS msg",
        lambda: envelope.parse_published(raw_payload, SUBJECT, REPLY),
        bp_parse_published,
        None,
    )
    row(
        f"envelope parse: Publish envelope ({len(env_payload)} B)",
        lambda: envelope.parse_published(env_payload, SUBJECT, REPLY),
        bp_parse_published,
        (lambda: pb2.Message.FromString(env_payload[8:])) if pb2 else None,
    )
    row(
        "envelope parse + encode_body: raw 256 B",
        lambda: envelope.parse_published(raw_payload, SUBJECT, REPLY).encode_body(),
        bp_parse_published,
        None,
    )
    row(
        "ack envelope encode",
        lambda: envelope.encode_ack(**ack_kwargs),
        lambda: envelope.encode_envelope(1, bytes(bp.Ack(stream="orders", offset=OFFSET))),
        None,
    )

    print(f"python {sys.version.split()[0]}, {n} calls per run, best of 5; µs per op")
    print("betterproto column: the same operation with betterproto; for raw-message rows, a")
    print("betterproto parse of a Publish envelope (what an ingest without lb.envelope does)")
    print(f"{'operation':<46} {'lb fast':>9} {'betterproto':>12} {'speed-up':>9} {'upb':>7}")
    for name, fast, slow, upb in rows:
        upb_s = f"{upb:7.2f}" if upb is not None else f"{'-':>7}"
        print(f"{name:<46} {fast:9.2f} {slow:12.1f} {slow / fast:8.0f}x {upb_s}")


def _upb_msg_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    out = dict(kw)
    out["replySubject"] = out.pop("reply_subject")
    return out


if __name__ == "__main__":
    main()
