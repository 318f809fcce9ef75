"""Merging bench result folders of disjoint image sets into one set of curves."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inrstore.bench.merge import (
    AVERAGED_KEYS,
    MergeError,
    load_run,
    merge_curves,
    merge_runs,
    replace_points,
)
from inrstore.cli.app import app

runner = CliRunner()


def _bench(folder: Path, out: Path, codecs: str = "jpeg,webp") -> Path:
    outcome = runner.invoke(
        app, ["bench", str(folder), "--codecs", codecs, "--crop", "48", "--out", str(out)]
    )
    assert outcome.exit_code == 0, outcome.output
    return out


def _split(kodak_samples: Path, root: Path) -> tuple[Path, Path, Path]:
    """Folders with the first image, the other three, and all four."""
    paths = sorted(kodak_samples.glob("*.png"))
    folders = [root / "first", root / "rest", root / "all"]
    for folder, chosen in zip(folders, [paths[:1], paths[1:], paths], strict=True):
        folder.mkdir()
        for path in chosen:
            shutil.copy(path, folder)
    return folders[0], folders[1], folders[2]


def test_merging_two_runs_gives_the_curves_of_one_run_over_all_images(
    kodak_samples: Path, tmp_path: Path
) -> None:
    first, rest, every = _split(kodak_samples, tmp_path)
    runs = [load_run(_bench(folder, tmp_path / f"out-{folder.name}")) for folder in (first, rest)]
    assert [run.images for run in runs] == [1, 3]
    merged_rates = merge_runs(runs, "jpeg", tmp_path / "merged")
    _bench(every, tmp_path / "out-all")
    for name in ("jpeg", "webp"):
        merged = json.loads((tmp_path / "merged" / f"{name}.json").read_text())["results"]
        single = json.loads((tmp_path / "out-all" / f"{name}.json").read_text())["results"]
        for key in ("quality", "bpp", "psnr-rgb"):
            assert merged[key] == pytest.approx(single[key], rel=1e-12), key
    single_rates = json.loads((tmp_path / "out-all" / "bd-rate.json").read_text())
    assert merged_rates == pytest.approx(single_rates["bd_rate_psnr"])
    summary = json.loads((tmp_path / "merged" / "bd-rate.json").read_text())
    assert summary["images"] == 4 and summary["anchor"] == "jpeg"
    assert summary["merged_from"] == ["out-first (1 images)", "out-rest (3 images)"]
    assert sorted(summary["image_names"]) == sorted(single_rates["image_names"])
    assert len(set(summary["image_names"])) == 4
    assert (tmp_path / "merged" / "rd-psnr.png").read_bytes()[:4] == b"\x89PNG"
    single_per_image = single_rates["bd_rate_psnr_per_image"]
    assert sorted(summary["bd_rate_psnr_per_image"]) == sorted(single_per_image)
    for image, rates in summary["bd_rate_psnr_per_image"].items():
        assert rates == pytest.approx(single_per_image[image])


def test_a_one_image_run_without_per_image_curves_gives_its_means_as_its_image_curve(
    kodak_samples: Path, tmp_path: Path
) -> None:
    first, rest, _ = _split(kodak_samples, tmp_path)
    folders = [_bench(folder, tmp_path / f"out-{folder.name}") for folder in (first, rest)]
    for path in folders[0].glob("*.json"):  # as written before per-image curves were
        report = json.loads(path.read_text())
        report.pop("per_image", None)
        path.write_text(json.dumps(report))
    runs = [load_run(folder) for folder in folders]
    (name,) = runs[0].image_names
    assert runs[0].image_curves("webp") == {name: runs[0].reports["webp"]["results"]}
    merge_runs(runs, "jpeg", tmp_path / "merged")
    merged = json.loads((tmp_path / "merged" / "webp.json").read_text())
    assert sorted(merged["per_image"]) == sorted([name, *runs[1].image_names])
    summary = json.loads((tmp_path / "merged" / "bd-rate.json").read_text())
    assert len(summary["bd_rate_psnr_per_image"]) == 4


def test_curves_are_weighted_by_their_image_counts() -> None:
    one = {key: [1.0, 2.0] for key in AVERAGED_KEYS} | {"quality": [25.0, 75.0]}
    three = {key: [10.0, 5.0] for key in AVERAGED_KEYS} | {"quality": [75.0, 25.0]}
    merged = merge_curves([(one, 1), (three, 3)])
    assert merged["quality"] == [25.0, 75.0]
    assert merged["bpp"] == pytest.approx([(1 + 3 * 5) / 4, (2 + 3 * 10) / 4])


def test_runs_with_different_qualities_or_codecs_are_refused(
    kodak_samples: Path, tmp_path: Path
) -> None:
    first, rest, _ = _split(kodak_samples, tmp_path)
    a = load_run(_bench(first, tmp_path / "a"))
    b = load_run(_bench(rest, tmp_path / "b", codecs="jpeg"))
    with pytest.raises(MergeError, match="holds codecs"):
        merge_runs([a, b], "jpeg", tmp_path / "merged")
    with pytest.raises(MergeError, match="anchor 'avif' is not among"):
        merge_runs([a], "avif", tmp_path / "merged")
    curve = a.reports["jpeg"]["results"]
    fewer = {key: values[:-1] for key, values in curve.items()}
    with pytest.raises(MergeError, match="qualities differ"):
        merge_curves([(curve, 1), (fewer, 1)])


def test_a_folder_without_bench_results_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MergeError, match=r"bd-rate\.json: unreadable"):
        load_run(tmp_path)
    (tmp_path / "bd-rate.json").write_text(json.dumps({"images": 2}))
    (tmp_path / "jpeg.json").write_text(json.dumps({"name": "jpeg", "results": {"bpp": [1]}}))
    with pytest.raises(MergeError, match="not a CompressAI result"):
        load_run(tmp_path)


def test_runs_that_share_an_image_or_a_folder_are_refused(
    kodak_samples: Path, tmp_path: Path
) -> None:
    first, _, every = _split(kodak_samples, tmp_path)
    one = load_run(_bench(first, tmp_path / "one"))
    four = load_run(_bench(every, tmp_path / "four"))
    shared = one.image_names[0]
    with pytest.raises(MergeError, match=rf"{re.escape(shared)} is in both \S*one and \S*four"):
        merge_runs([one, four], "jpeg", tmp_path / "merged")
    for again in (one, load_run(tmp_path / "one")):
        with pytest.raises(MergeError, match="is given twice"):
            merge_runs([one, again], "jpeg", tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_runs_without_image_names_still_merge_on_their_counts(
    kodak_samples: Path, tmp_path: Path
) -> None:
    first, rest, _ = _split(kodak_samples, tmp_path)
    folders = [_bench(folder, tmp_path / f"out-{folder.name}") for folder in (first, rest)]
    summary_path = folders[0] / "bd-rate.json"
    summary = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps({k: v for k, v in summary.items() if k != "image_names"}))
    runs = [load_run(folder) for folder in folders]
    assert runs[0].image_names is None and len(runs[1].image_names) == 3
    merge_runs(runs, "jpeg", tmp_path / "merged")
    merged = json.loads((tmp_path / "merged" / "bd-rate.json").read_text())
    assert merged["images"] == 4 and merged["image_names"] is None
    summary_path.write_text(json.dumps(summary | {"image_names": ["a", "b"]}))
    with pytest.raises(MergeError, match="image_names are not 1 names"):
        load_run(folders[0])


def _rerun(folder: Path, image: str, curve: dict[str, list[float]]) -> Path:
    """A one-image result folder holding ``curve`` as ``webp``'s points for ``image``."""
    folder.mkdir()
    (folder / "bd-rate.json").write_text(json.dumps({"images": 1, "image_names": [image]}))
    (folder / "webp.json").write_text(json.dumps({"name": "webp", "results": curve}))
    return folder


def test_a_rerun_replaces_its_points_and_the_means_follow(
    kodak_samples: Path, tmp_path: Path
) -> None:
    first, rest, _ = _split(kodak_samples, tmp_path)
    runs = [load_run(_bench(folder, tmp_path / f"out-{folder.name}")) for folder in (first, rest)]
    image = runs[1].image_names[1]
    old = runs[1].reports["webp"]["per_image"][image]
    quality = old["quality"][0]
    new = {key: [1.5 * old[key][0]] for key in AVERAGED_KEYS} | {"quality": [quality]}
    rerun = load_run(_rerun(tmp_path / "rerun", image, new))
    merge_runs(runs, "jpeg", tmp_path / "merged", [rerun])
    merge_runs(runs, "jpeg", tmp_path / "plain")

    def report(folder: str, codec: str) -> dict:
        return json.loads((tmp_path / folder / f"{codec}.json").read_text())

    merged, plain = report("merged", "webp"), report("plain", "webp")
    for name, curve in merged["per_image"].items():
        if name != image:
            assert curve == plain["per_image"][name]
    replaced = merged["per_image"][image]
    for index, point_quality in enumerate(replaced["quality"]):
        before = old["quality"].index(point_quality)
        for key in AVERAGED_KEYS:
            expected = new[key][0] if point_quality == quality else old[key][before]
            assert replaced[key][index] == pytest.approx(expected, nan_ok=True), key
    at = merged["results"]["quality"].index(quality)
    means = [c["bpp"][c["quality"].index(quality)] for c in merged["per_image"].values()]
    assert merged["results"]["bpp"][at] == pytest.approx(sum(means) / 4)
    assert merged["results"]["bpp"][at] != pytest.approx(plain["results"]["bpp"][at])
    assert report("merged", "jpeg")["results"] == report("plain", "jpeg")["results"]
    summary = json.loads((tmp_path / "merged" / "bd-rate.json").read_text())
    assert summary["merged_from"][-1] == "rerun (replacing points)"


def test_a_rerun_that_does_not_fit_the_runs_is_refused(kodak_samples: Path, tmp_path: Path) -> None:
    first, rest, _ = _split(kodak_samples, tmp_path)
    folders = [_bench(folder, tmp_path / f"out-{folder.name}") for folder in (first, rest)]
    runs = [load_run(folder) for folder in folders]
    image = runs[1].image_names[0]
    curve = runs[1].reports["webp"]["per_image"][image]
    one_point = {key: values[:1] for key, values in curve.items()}
    stranger = load_run(_rerun(tmp_path / "stranger", "elsewhere.png", one_point))
    with pytest.raises(MergeError, match=r"elsewhere\.png is in none of the runs"):
        merge_runs(runs, "jpeg", tmp_path / "merged", [stranger])
    odd_quality = load_run(_rerun(tmp_path / "odd", image, one_point | {"quality": [1.5]}))
    with pytest.raises(MergeError, match=r"rerun at quality 1\.5, which it lacks"):
        merge_runs(runs, "jpeg", tmp_path / "merged", [odd_quality])
    with pytest.raises(MergeError, match="holds none of the codecs jpeg"):
        replace_points(runs, odd_quality, codecs=["jpeg"])
    webp_only = _rerun(tmp_path / "webp-only", image, one_point)
    (webp_only / "jpeg.json").write_text(
        json.dumps({"name": "jpeg", "results": one_point | {"quality": [1.5]}})
    )
    assert replace_points(runs, load_run(webp_only), codecs=["webp"])[0] == runs[0]
    for path in folders[1].glob("*.json"):  # as written before per-image curves were
        report = json.loads(path.read_text())
        report.pop("per_image", None)
        path.write_text(json.dumps(report))
    fitting = load_run(_rerun(tmp_path / "fitting", image, one_point))
    with pytest.raises(MergeError, match="webp lacks per-image curves"):
        merge_runs([runs[0], load_run(folders[1])], "jpeg", tmp_path / "merged", [fitting])
    assert not (tmp_path / "merged").exists()
