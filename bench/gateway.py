"""Gateway ingestion: acknowledged frames per second and POST latency with clients posting
while the encoder runs, the encode backlog over time, and the bytes per stored frame.

Usage: ``python -m inrstore.bench.gateway FRAMES_DIR --out FILE.json [--clients 4]
[--watch 600] [--preset fast] [--shard-frames 16]``. Starts ``inrstore serve`` on a free
loopback port with a fresh store, posts every image of FRAMES_DIR (sorted, one source) from
``--clients`` threads, then samples ``/v1/stats`` every 2 s for ``--watch`` seconds or until
the backlog is empty.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from inrstore.bench.run import write_report
from inrstore.datasets import scan_images
from inrstore.store import Store


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post_all(url: str, token: str, frames: list[bytes], clients: int) -> tuple[list, float]:
    import httpx

    latencies: list[float] = []
    lock = threading.Lock()

    def client(part: list[bytes]) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            for index, data in part:
                started = time.perf_counter()
                answer = http.post(f"{url}/v1/frames", content=data,
                                   params={"source": "camera", "captured_at": index})  # fmt: skip
                answer.raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - started)

    numbered = list(enumerate(frames))
    threads = [
        threading.Thread(target=client, args=(numbered[i::clients],)) for i in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started


def run(folder: Path, clients: int, watch: float, preset: str, shard_frames: int) -> dict:
    import httpx

    frames = [image.path.read_bytes() for image in scan_images(folder).images]
    with tempfile.TemporaryDirectory(prefix="inrstore-gateway-") as temporary:
        store_path = Path(temporary) / "store"
        with Store.open(store_path, create=True) as store:
            write = store.frames.create_token("write")
            read = store.frames.create_token("read")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "inrstore.cli", "--store", str(store_path), "serve",
             "--port", str(port), "--preset", preset, "--shard-frames", str(shard_frames),
             "--shard-seconds", "30"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_healthy(url, server)
            latencies, seconds = _post_all(url, write, frames, clients)
            backlog = []
            started = time.perf_counter()
            while time.perf_counter() - started < watch:
                stats = httpx.get(f"{url}/v1/stats", headers={"Authorization": f"Bearer {read}"})
                stats = stats.json()
                backlog.append([round(time.perf_counter() - started, 1),
                                stats["frames_staged"], stats["frames_stored"]])  # fmt: skip
                if stats["frames_staged"] == 0:
                    break
                time.sleep(2)
        finally:
            server.terminate()
            server.wait(timeout=60)
    ordered = sorted(latencies)
    stored = stats["frames_stored"]
    return {
        "name": "gateway",
        "frames": len(frames),
        "clients": clients,
        "frames_per_second_acknowledged": len(frames) / seconds,
        "post_latency_ms": {
            "p50": 1000 * statistics.median(ordered),
            "p99": 1000 * ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        },
        "backlog": {"columns": ["seconds", "staged", "stored"], "rows": backlog},
        "frames_stored": stored,
        "bytes_per_stored_frame": stats["bytes_stored"] / stored if stored else None,
        "original_bytes_per_frame": statistics.fmean(len(f) for f in frames),
    }


def wait_healthy(url: str, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Wait until the gateway at ``url`` answers ``/healthz`` (RuntimeError if ``process``
    exits first or ``timeout`` seconds pass)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"the gateway did not answer within {timeout:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--watch", type=float, default=600.0)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--shard-frames", type=int, default=16)
    args = parser.parse_args()
    report = run(args.folder, args.clients, args.watch, args.preset, args.shard_frames)
    write_report(args.out, report, vars(args) | {"folder": str(args.folder), "out": str(args.out)})
    print({k: v for k, v in report.items() if k != "backlog"})


if __name__ == "__main__":
    main()
