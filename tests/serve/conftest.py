"""A live ``inrstore serve`` on 127.0.0.1 (a subprocess), tokens, and frames to post."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from inrstore.bench.gateway import free_port, wait_healthy
from inrstore.store import Store

CAMERA = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "camera-campus"


def frame_bytes(index: int, size: int = 16) -> bytes:
    """A distinct small PNG per ``index`` (a gradient with the index written in its pixels)."""
    rng = np.random.default_rng(index)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Gateway:
    """A running server: its URL, store, tokens, and the command that (re)starts it."""

    store: Path
    port: int
    arguments: list[str]
    write: str = ""
    read: str = ""
    process: subprocess.Popen | None = None
    log: Path = field(default=Path(os.devnull))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def auth(self, scope: str = "read") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.write if scope == 'write' else self.read}"}

    def start(self) -> None:
        command = [sys.executable, "-m", "inrstore.cli", "--store", str(self.store), "serve",
                   "--port", str(self.port), *self.arguments]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            wait_healthy(self.url, self.process)
        except RuntimeError as err:
            raise RuntimeError(f"{err}: {self.log_text()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_stored(self, count: int, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = httpx.get(f"{self.url}/v1/stats", headers=self.auth()).json()
            if stats["frames_stored"] >= count:
                return stats
            time.sleep(0.5)
        raise AssertionError(f"only {stats['frames_stored']} of {count} frames stored: {stats}")


def make_gateway(tmp_path: Path, *arguments: str) -> Gateway:
    store = tmp_path / "gateway"
    with Store.open(store, create=True) as opened:
        write = opened.frames.create_token("write", "camera")
        read = opened.frames.create_token("read", "viewer")
    quick = ["--preset", "fast", "--time-limit", "1", *arguments]
    return Gateway(store, free_port(), quick, write, read, log=tmp_path / "serve.log")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A server that encodes a source's frames once 4 wait or the oldest waited 1 s."""
    server = make_gateway(tmp_path, "--shard-frames", "4", "--shard-seconds", "1")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[int]:
    """A mosquitto broker on a free loopback port (skipped where mosquitto is absent)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.skip("mosquitto is not installed")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield port
    broker.terminate()
    broker.wait()
