"""The store commands through the CLI: a session a user would run, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from inrstore.cli.app import app
from inrstore.models.fit import presets

runner = CliRunner()


@pytest.fixture
def session(monkeypatch, tmp_path: Path, cifar_samples: Path):
    monkeypatch.setitem(presets.PRESETS, "fast", presets.Preset("fast", 15, arm_levels=0))
    monkeypatch.setenv("INRSTORE_STORE", str(tmp_path / "store"))
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(3):
        Image.open(cifar_samples / f"{index:04d}.png").save(folder / f"{index:04d}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG broken")

    def run(*arguments: str):
        return runner.invoke(app, list(arguments))

    return run, folder


def test_a_user_session(session, tmp_path: Path) -> None:
    run, folder = session
    added = run("add", str(folder))
    assert added.exit_code == 1  # one file failed, and the exit code says so
    assert "added 3 images in 1 shards" in added.output and "broken.png" in added.output
    again = run("add", str(folder / "0000.png"))
    assert again.exit_code == 0 and "1 already stored" in again.output
    listing = run("ls", "--json")
    rows = [json.loads(line) for line in listing.output.splitlines()]
    assert sorted(r["name"] for r in rows) == ["0000.png", "0001.png", "0002.png"]
    hex_id = rows[0]["hex_id"]
    big = tmp_path / "big.png"
    got = run("get", hex_id[:7], "--scale", "2", "-o", str(big))
    assert got.exit_code == 0, got.output
    assert Image.open(big).size == (64, 64)
    assert run("get", "0001.png", "-o", str(tmp_path / "x.webp")).exit_code == 0
    assert Image.open(tmp_path / "x.webp").format == "WEBP"
    assert run("info", hex_id[:8]).exit_code == 0
    shard_rows = [json.loads(line) for line in run("ls", "--shards", "--json").output.splitlines()]
    assert len(shard_rows) == 1 and shard_rows[0]["members"] == 3
    total_bits = sum(r["bpp"] * 32 * 32 for r in rows)  # members' effective bits
    assert shard_rows[0]["bpp"] * 3 * 32 * 32 == pytest.approx(total_bits)
    assert run("verify").exit_code == 0
    stats = run("stats")
    assert stats.exit_code == 0 and "ratio to originals" in stats.output
    exported = run("export", str(tmp_path / "out"))
    assert exported.exit_code == 0 and (tmp_path / "out" / "0002.png").exists()
    assert run("rm", "0002.png").exit_code == 0
    assert len(run("ls", "--json").output.splitlines()) == 2
    assert run("compact").exit_code == 0


def test_get_to_stdout_writes_only_the_image(session) -> None:
    run, folder = session
    run("add", str(folder / "0001.png"))
    outcome = runner.invoke(app, ["get", "0001.png", "-o", "-"])
    assert outcome.exit_code == 0
    assert outcome.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("arguments", [["get", "deadbeef"], ["ls"], ["verify"], ["rm", "ab12"]])
def test_a_missing_store_is_one_line(tmp_path: Path, arguments: list[str]) -> None:
    outcome = runner.invoke(app, ["--store", str(tmp_path / "nowhere"), *arguments])
    assert outcome.exit_code == 1
    assert "no store here" in outcome.output and "Traceback" not in outcome.output
    assert not (tmp_path / "nowhere").exists()


def test_a_folder_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "photos" / "a.png")
    outcome = runner.invoke(app, ["--store", str(tmp_path / "photos"), "ls"])
    assert outcome.exit_code == 1 and "not an inrstore store" in outcome.output


def test_unknown_id_in_an_existing_store(session) -> None:
    run, folder = session
    run("add", str(folder / "0001.png"))
    outcome = run("get", "deadbeef")
    assert outcome.exit_code == 1 and "no image with id or name 'deadbeef'" in outcome.output


def test_add_with_a_psnr_target_lists_each_shards_quality(session) -> None:
    run, folder = session
    outside = run("add", str(folder), "--psnr", "70")
    assert outside.exit_code == 2 and "--psnr" in outside.output
    added = run("add", str(folder), "--psnr", "60", "--quality", "30", "--shard-size", "2")
    assert added.exit_code == 1  # the broken file
    shards = [json.loads(line) for line in run("ls", "--shards", "--json").output.splitlines()]
    assert [shard["quality"] for shard in shards] == [30.0, 100.0]
