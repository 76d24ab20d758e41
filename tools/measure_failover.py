#!/usr/bin/env python3
"""Measure partition failover time on a local 3-server cluster with given timeouts.

Starts a real nats-server and three ``python -m lb serve`` processes on 127.0.0.1, creates an
RF=3 stream, SIGKILLs the partition leader and reports how long until the next ALL-acked publish
succeeds on the new leader. Every process it starts, it stops.

    python tools/measure_failover.py --rounds 3 --leader-timeout 1s --lag 3s
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lb._proto.proto import (
    AckPolicy,
    ApiStub,
    CreateStreamRequest,
    FetchMetadataRequest,
    PublishRequest,
)
from lb.testing.cluster import nats_cluster, wait_until


async def _try_publish(port: int, stream: str) -> bool:
    from grpclib.client import Channel

    channel = Channel("127.0.0.1", port)
    try:
        await ApiStub(channel).publish(
            PublishRequest(stream=stream, value=b"after", ack_policy=AckPolicy.ALL), timeout=1
        )
        return True
    except Exception:
        return False
    finally:
        channel.close()


def one_round(base: Path, args: argparse.Namespace) -> float:
    cfg = {
        "clustering.replica.max.leader.timeout": args.leader_timeout,
        "clustering.replica.max.lag.time": args.lag,
        "clustering.replica.max.idle.wait": args.idle_wait,
        "clustering.replica.fetch.timeout": args.fetch_timeout,
        "logging.level": "info",
    }
    with nats_cluster(base) as cluster:
        cluster.add("a", args=["--raft-bootstrap-seed"], config=cfg).wait_serving()
        cluster.add("b", config=cfg).wait_serving()
        cluster.add("c", config=cfg).wait_serving()
        cluster.wait_leader()
        wait_until(
            lambda: len(cluster.call("a", "fetch_metadata", FetchMetadataRequest()).brokers) == 3
        )
        cluster.call("a", "create_stream",
                     CreateStreamRequest(subject="fo", name="fo", replication_factor=3))
        md = cluster.call("a", "fetch_metadata", FetchMetadataRequest(streams=["fo"]))
        leader = md.stream_metadata[0].partitions[0].leader
        assert asyncio.run(_try_publish(cluster.servers[leader].port, "fo"))
        others = [n for n in "abc" if n != leader]
        started = time.monotonic()
        cluster.kill(leader)

        def recovered() -> bool:
            return any(asyncio.run(_try_publish(cluster.servers[n].port, "fo")) for n in others)

        wait_until(recovered, timeout_s=60, interval_s=0.01, what="an ALL ack after failover")
        return time.monotonic() - started


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--leader-timeout", default="1s")
    p.add_argument("--lag", default="3s")
    p.add_argument("--idle-wait", default="200ms")
    p.add_argument("--fetch-timeout", default="250ms")
    args = p.parse_args()
    times = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            t = one_round(Path(tmp), args)
        times.append(t)
        print(f"round {i + 1}: kill -9 leader -> next ALL ack: {t:.2f}s", flush=True)
    print(f"median {statistics.median(times):.2f}s, max {max(times):.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
