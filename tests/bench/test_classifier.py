"""The downstream check: a classifier trained from a store and from the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from inrstore.bench.classifier import ClassifierSettings, compare
from inrstore.models.fit import presets
from inrstore.store import Store
from inrstore.store.archive import read_labels


def test_both_classifiers_train_on_the_same_split_with_the_stored_labels(
    tmp_path: Path, cifar_samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(presets.PRESETS, "fast", presets.Preset("fast", 10, arm_levels=0))
    report = compare(cifar_samples, tmp_path / "store", ClassifierSettings(epochs=1))
    assert (report["train_images"], report["test_images"]) == (12, 4)
    assert set(report["results"]) == {"PNG files", "store"}
    for row in report["results"].values():
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["epoch_seconds"] > 0
    labels = read_labels(cifar_samples / "labels.csv")
    with Store.open(tmp_path / "store", readonly=True) as store:
        stored = {info.name: info.label for info in store.members()}
    assert stored == {name: labels[name] for name in stored} and len(stored) == 16
