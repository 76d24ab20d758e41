"""The admin CLI as real subprocesses (``python -m lb`` and the ``lb`` script) against a real
server: tables for people, JSON for scripts, one-line errors and exit codes 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LB_SCRIPT = Path(sys.executable).parent / "lb"


def lb(
    *args: str, stdin: str | None = None, script: bool = False
) -> subprocess.CompletedProcess[str]:
    cmd = [str(LB_SCRIPT)] if script else [sys.executable, "-m", "lb"]
    return subprocess.run(
        [*cmd, *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_stream_admin_publish_subscribe(address: str) -> None:
    s = ["--servers", address]
    r = lb("stream", "create", "cli", "--subject", "cli.subj", "--partitions", "2", *s,
           script=True)
    assert (r.returncode, r.stdout.strip()) == (0, "created stream cli"), r.stderr
    r = lb("stream", "create", "cli", "--subject", "cli.subj", *s)
    assert r.returncode == 1
    assert r.stderr.strip() == "lb: ALREADY_EXISTS: stream already exists"

    r = lb("publish", "cli", *s, stdin="one\ntwo\nthree\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0].split() == ["STREAM", "PARTITION", "OFFSET"]
    assert [line.split()[2] for line in r.stdout.strip().split("\n")[1:]] == ["0", "1", "2"]
    r = lb("publish", "cli", "x", "y", "--partition", "1", "--key", "k", "--header", "h=v",
           "--ack-policy", "all", "--json", *s)
    assert r.returncode == 0, r.stderr
    acks = [json.loads(line) for line in r.stdout.splitlines()]
    assert acks == [{"stream": "cli", "partition": 1, "offset": i} for i in (0, 1)]

    r = lb("subscribe", "cli", *s)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.strip().split("\n")]
    assert rows[0] == ["OFFSET", "TIMESTAMP", "KEY", "VALUE"]
    assert [(row[0], row[-1]) for row in rows[1:]] == [("0", "one"), ("1", "two"), ("2", "three")]
    r = lb("subscribe", "cli", "--partition", "1", "--from", "offset", "1", "--json", *s)
    msgs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(m["offset"], m["key"], m["value"], m["headers"]) for m in msgs] == [
        (1, "k", "y", {"h": "v"})
    ]
    r = lb("subscribe", "cli", "--from", "latest", "--json", *s)
    assert [json.loads(line)["value"] for line in r.stdout.splitlines()] == ["three"]
    r = lb("subscribe", "cli", "--from", "time", "2001-01-01T00:00:00Z", "--json", *s)
    assert len(r.stdout.splitlines()) == 3

    r = lb("stream", "list", "--json", *s)
    (stream,) = [x for x in json.loads(r.stdout) if x["name"] == "cli"]
    assert stream["subject"] == "cli.subj"
    assert [(p["id"], p["newest_offset"]) for p in stream["partitions"]] == [(0, 2), (1, 1)]
    r = lb("stream", "list", *s)
    assert r.stdout.split("\n")[0].split()[:3] == ["NAME", "SUBJECT", "PARTITIONS"]

    assert lb("stream", "readonly", "cli", "--partitions", "0", *s).returncode == 0
    r = lb("publish", "cli", "z", *s)
    assert (r.returncode, r.stderr.strip()) == (1, "lb: FAILED_PRECONDITION: readonly partition: 0")
    assert lb("stream", "readonly", "cli", "--off", *s).returncode == 0
    assert lb("stream", "pause", "cli", "--partitions", "1", "--resume-all", *s).returncode == 0

    r = lb("cluster", "status", "--json", *s)
    status = json.loads(r.stdout)
    assert status["metadata_leader"] is None and status["note"]
    assert status["brokers"][0]["id"] == status["answering_server"]
    parts = {(p["stream"], p["id"]): p for p in status["partitions"]}
    assert parts[("cli", 0)]["high_watermark"] == 2 and parts[("cli", 0)]["from_leader"]
    assert parts[("cli", 1)]["paused"]
    r = lb("cluster", "status", *s)
    assert r.returncode == 0 and "metadata leader: unknown" in r.stdout
    assert "STREAM" in r.stdout and "HW" in r.stdout

    assert lb("stream", "delete", "cli", *s).returncode == 0
    r = lb("stream", "delete", "cli", *s)
    assert (r.returncode, r.stderr.strip()) == (1, "lb: NOT_FOUND: stream does not exist")


def test_errors_and_usage(address: str) -> None:
    r = lb("subscribe", "nope", "--servers", address)
    assert (r.returncode, r.stderr.strip()) == (1, "lb: NOT_FOUND: no such stream: nope")
    assert r.stdout == ""
    r = lb("subscribe", "nope", "--from", "sideways", "--servers", address)
    assert r.returncode == 2 and r.stderr.startswith("lb: usage error: --from")
    r = lb("publish", "x", "v", "--header", "novalue", "--servers", address)
    assert r.returncode == 2
    r = lb("stream", "create", "x", "--servers", address)  # argparse: --subject is required
    assert r.returncode == 2
    r = lb("stream", "list", "--servers", "127.0.0.1:1", "--timeout", "2")
    assert r.returncode == 1 and r.stderr.startswith("lb: UNAVAILABLE: ")
    assert len(r.stderr.strip().splitlines()) == 1
