"""Dump a partition directory for operators: segments, batches, offsets, indexes, HW, epochs.

    python tools/inspect_log.py PARTITION_DIR [--batches] [--records] [--index] [--json]

Read-only: opens files directly (does not run recovery, so it also works on a damaged log) and
verifies each batch's CRC, flagging problems instead of stopping.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from lb.storage import batch as fmt
from lb.storage import checkpoint
from lb.storage.index import read_offset_index, read_time_index
from lb.storage.records import decode_body

_LOG = re.compile(r"^(\d{20})\.log$")


def inspect_segment(path: str, base: int, with_records: bool) -> dict[str, Any]:
    with open(path, "rb") as f:
        data = f.read()
    batches: list[dict[str, Any]] = []
    pos = 0
    problem = None
    count = 0
    expected = base
    while pos < len(data):
        if len(data) - pos < fmt.HEADER_SIZE:
            problem = f"partial header at byte {pos}"
            break
        h = fmt.parse_header(data, pos)
        reason = fmt.header_problem(h)
        if reason is None and pos + h.size > len(data):
            reason = "batch runs past end of file"
        if reason is not None:
            problem = f"byte {pos}: {reason}"
            break
        b: dict[str, Any] = {
            "position": pos, "base_offset": h.base_offset, "last_offset": h.last_offset,
            "records": h.record_count, "leader_epoch": h.leader_epoch, "bytes": h.size,
            "first_timestamp_ns": h.first_timestamp, "max_timestamp_ns": h.max_timestamp,
            "crc_ok": fmt.crc_ok(data, pos, h.size, h.crc),
            "contiguous": h.base_offset == expected,
        }
        if with_records and b["crc_ok"]:
            recs = []
            for od, ts, body in fmt.iter_record_fields(data, pos, h):
                try:
                    f = decode_body(body)
                    desc = {"key": f.key.hex(), "value_bytes": len(f.value),
                            "subject": f.subject}
                except ValueError:
                    desc = {"undecodable_body_bytes": len(body)}
                recs.append({"offset": h.base_offset + od, "timestamp_ns": ts, **desc})
            b["record_list"] = recs
        batches.append(b)
        count += h.record_count
        expected = h.next_offset
        pos += h.size
    stem = path[: -len(".log")]
    out: dict[str, Any] = {
        "file": os.path.basename(path), "base_offset": base, "bytes": len(data),
        "next_offset": expected, "records": count, "batches": batches, "problem": problem,
    }
    for kind, reader, suffix in (("index", read_offset_index, ".index"),
                                 ("timeindex", read_time_index, ".timeindex")):
        try:
            out[kind] = reader(stem + suffix, base)
        except FileNotFoundError:
            out[kind] = None
    return out


def inspect_dir(path: str, with_records: bool = False) -> dict[str, Any]:
    segs = sorted((int(m.group(1)), n) for n in os.listdir(path) if (m := _LOG.match(n)))
    return {
        "path": path,
        "hw": checkpoint.read_hw(path),
        "leader_epochs": checkpoint.read_epochs(path),
        "segments": [inspect_segment(os.path.join(path, n), b, with_records) for b, n in segs],
        "other_files": sorted(n for n in os.listdir(path)
                              if not re.match(r"^\d{20}\.(log|index|timeindex)$", n)),
    }


def print_human(info: dict[str, Any], show_batches: bool, show_index: bool) -> None:
    print(f"partition {info['path']}")
    print(f"  HW checkpoint: {info['hw']}   leader epochs (epoch start): "
          f"{info['leader_epochs']}")
    print(f"  other files: {', '.join(info['other_files']) or '-'}")
    print(f"  {'segment':<26} {'base':>12} {'next':>12} {'records':>9} {'batches':>8} "
          f"{'bytes':>11} {'idx':>5} {'tidx':>5}  problems")
    for s in info["segments"]:
        bad = [b for b in s["batches"] if not b["crc_ok"] or not b["contiguous"]]
        probs = ([s["problem"]] if s["problem"] else []) + [
            f"offset {b['base_offset']}: {'CRC' if not b['crc_ok'] else 'gap'}" for b in bad]
        n_idx = "-" if s["index"] is None else str(len(s["index"]))
        n_tidx = "-" if s["timeindex"] is None else str(len(s["timeindex"]))
        print(f"  {s['file']:<26} {s['base_offset']:>12} {s['next_offset']:>12} "
              f"{s['records']:>9} {len(s['batches']):>8} {s['bytes']:>11} {n_idx:>5} "
              f"{n_tidx:>5}  {'; '.join(probs) or 'ok'}")
        if show_batches:
            print(f"    {'position':>10} {'base':>10} {'last':>10} {'recs':>6} {'epoch':>6} "
                  f"{'bytes':>8} {'max_ts':>20} crc")
            for b in s["batches"]:
                print(f"    {b['position']:>10} {b['base_offset']:>10} {b['last_offset']:>10} "
                      f"{b['records']:>6} {b['leader_epoch']:>6} {b['bytes']:>8} "
                      f"{b['max_timestamp_ns']:>20} {'ok' if b['crc_ok'] else 'BAD'}")
                for r in b.get("record_list", []):
                    print(f"        {r}")
        if show_index:
            print(f"    index (offset, position): {s['index']}")
            print(f"    timeindex (timestamp, offset): {s['timeindex']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Dump an lb partition directory.")
    ap.add_argument("partition_dir")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--batches", action="store_true", help="list every batch")
    ap.add_argument("--records", action="store_true", help="list every record (implies "
                    "--batches)")
    ap.add_argument("--index", action="store_true", help="show index entries")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.partition_dir):
        print(f"not a directory: {args.partition_dir}", file=sys.stderr)
        return 2
    info = inspect_dir(args.partition_dir, with_records=args.records)
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
    else:
        print_human(info, args.batches or args.records, args.index)
    bad = any(s["problem"] or any(not b["crc_ok"] or not b["contiguous"] for b in s["batches"])
              for s in info["segments"])
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
