"""Encoding throughput of ``add``'s engines: the local pool against Ray with 1 and 2 workers.

Usage: ``python -m inrstore.bench.engines FOLDER --out FILE.json [--limit N]
[--shard-size S] [--preset fast]``. Each configuration adds the same images into a fresh
store and reports images per hour; Ray's overhead per shard is its wall time minus the
local pool's at the same parallelism, over the shards. Ray runs a local instance with as
many CPUs as workers, started before the clock does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from inrstore.bench.run import write_report
from inrstore.store import Store

CONFIGS = (("local", 1), ("local", 2), ("ray", 1), ("ray", 2))


def timed_add(folder: Path, engine: str, workers: int, limit: int | None, shard_size: int,
              preset: str) -> dict:  # fmt: skip
    """Seconds and shards of one ``add`` of ``folder`` into a fresh store."""
    from inrstore.datasets import scan_images

    paths = [image.path for image in scan_images(folder).images][:limit]
    with tempfile.TemporaryDirectory(prefix="inrstore-engines-") as temporary:
        store = Store.open(Path(temporary) / "store", create=True)
        started = time.perf_counter()
        report = store.add(paths, preset=preset, shard_size=shard_size, workers=workers,
                           engine=engine, warm_start=False)  # fmt: skip
        seconds = time.perf_counter() - started
        store.close()
    return {"engine": engine, "workers": workers, "images": len(report.added),
            "shards": report.shards, "seconds": seconds,
            "images_per_hour": 3600 * len(report.added) / seconds}  # fmt: skip


def run(folder: Path, limit: int | None, shard_size: int, preset: str) -> dict:
    rows = []
    for engine, workers in CONFIGS:
        if engine == "ray":
            import ray

            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            rows.append(timed_add(folder, engine, workers, limit, shard_size, preset))
        finally:
            if engine == "ray":
                ray.shutdown()
        print(rows[-1], flush=True)
    local = {row["workers"]: row for row in rows if row["engine"] == "local"}
    overhead = {
        str(row["workers"]): (row["seconds"] - local[row["workers"]]["seconds"]) / row["shards"]
        for row in rows
        if row["engine"] == "ray"
    }
    return {"name": "engines", "folder": folder.name, "runs": rows,
            "ray_overhead_seconds_per_shard": overhead}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--preset", default="fast")
    args = parser.parse_args()
    report = run(args.folder, args.limit, args.shard_size, args.preset)
    settings = {"folder": str(args.folder), "limit": args.limit, "shard_size": args.shard_size,
                "preset": args.preset}  # fmt: skip
    write_report(args.out, report, settings)


if __name__ == "__main__":
    main()
