"""``add --engine ray`` on a local Ray instance started by the tests (2 CPUs): the same
pixels as the local pool, retries of a killed worker, failures reported, and interrupted
drivers completed by a rerun."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inrstore.bench.faults import encode_always_fails, encode_or_die_once
from inrstore.store import Store
from inrstore.store.engines import RayEngine

from .conftest import QUICK

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Path]:
    """A local Ray instance for the module; the marker file of the dying encoder."""
    marker = tmp_path_factory.mktemp("ray") / "died"
    os.environ["INRSTORE_FAULT_MARKER"] = str(marker)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield marker
    ray.shutdown()


@pytest.fixture
def eight(tmp_path: Path, cifar_samples: Path) -> Path:
    folder = tmp_path / "eight"
    folder.mkdir()
    for index in range(8):
        shutil.copy(cifar_samples / f"{index:04d}.png", folder)
    return folder


def _pixels(path: Path) -> dict[str, bytes]:
    with Store.open(path, readonly=True) as store:
        assert store.verify(quick=True) == []
        return {hex_id: store.get(hex_id).tobytes() for hex_id in store.ids()}


def test_ray_gives_the_pixels_of_the_local_pool(cluster, tmp_path: Path, eight: Path) -> None:
    for engine in ("ray", "local"):
        with Store.open(tmp_path / engine, create=True) as store:
            report = store.add([eight], preset=QUICK, shard_size=4, workers=2, engine=engine,
                               warm_start=False)  # fmt: skip
            assert len(report.added) == 8 and report.shards == 2 and not report.failures
    assert _pixels(tmp_path / "ray") == _pixels(tmp_path / "local")


def test_a_killed_worker_is_retried(cluster: Path, tmp_path: Path, eight: Path) -> None:
    engine = RayEngine(encode=encode_or_die_once)
    with Store.open(tmp_path / "store", create=True) as store:
        report = store.add([eight], preset=QUICK, shard_size=4, engine=engine)
        assert len(report.added) == 8 and not report.failures
    assert cluster.exists()  # a worker did die


def test_a_task_that_always_fails_is_reported_and_the_rest_commits(
    cluster, tmp_path: Path, eight: Path
) -> None:
    with Store.open(tmp_path / "store", create=True) as store:
        report = store.add([eight], preset=QUICK, shard_size=4,
                           engine=RayEngine(encode=encode_always_fails))  # fmt: skip
        assert report.added == [] and len(report.failures) == 8
        assert {reason for _, reason in report.failures} == {
            "encoding failed on the cluster: RuntimeError: injected encoder failure"
        }
        again = store.add([eight], preset=QUICK, shard_size=4, engine="ray")
        assert len(again.added) == 8


DRIVER = """
import sys
from inrstore.bench.faults import encode_slowly
from inrstore.models.fit.presets import Preset
from inrstore.store import Store
from inrstore.store.engines import RayEngine
with Store.open(sys.argv[1], create=True) as store:
    engine = RayEngine(encode=encode_slowly)  # 3 s per shard: time to stop between commits
    store.add([sys.argv[2]], preset=Preset("quick", 15, 0), shard_size=1, engine=engine)
"""


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_driver_is_completed_by_a_rerun(
    tmp_path: Path, eight: Path, stop: signal.Signals
) -> None:
    store = tmp_path / "store"
    environment = {**os.environ, "RAY_ADDRESS": ""}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(store), str(eight)],
                              env=environment, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _committed(store):
        time.sleep(0.5)
    driver.send_signal(stop)
    driver.wait(timeout=120)
    assert driver.returncode != 0
    before = _pixels(store)
    assert 0 < len(before) < 8
    rerun = subprocess.run([sys.executable, "-c", DRIVER, str(store), str(eight)],
                           env=environment, stderr=subprocess.DEVNULL, timeout=300)  # fmt: skip
    assert rerun.returncode == 0
    after = _pixels(store)
    assert len(after) == 8 and all(after[i] == pixels for i, pixels in before.items())


def _committed(store: Path) -> bool:
    if not (store / "data.mdb").exists():
        return False
    try:
        with Store.open(store, readonly=True) as opened:
            return len(opened.ids()) > 0
    except Exception:  # not created yet
        return False
