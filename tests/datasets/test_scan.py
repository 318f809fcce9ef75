"""Folder scanning: order, recursion, suffixes, links and missing paths."""

from __future__ import annotations

import os
from pathlib import Path

from inrstore.datasets import scan_images


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_scan_is_recursive_sorted_and_filters_suffixes(tmp_path: Path) -> None:
    for name in ["b/z.PNG", "b/a.jpg", "a.webp", "c/d/e.tiff", "c/readme.md", "x.txt"]:
        _touch(tmp_path / name)
    result = scan_images(tmp_path)
    assert [image.name for image in result.images] == ["a.webp", "b/a.jpg", "b/z.PNG", "c/d/e.tiff"]
    assert result.problems == []


def test_explicit_files_are_kept_and_duplicates_listed_once(tmp_path: Path) -> None:
    odd = _touch(tmp_path / "photo.dat")
    image = _touch(tmp_path / "f" / "one.png")
    result = scan_images([odd, tmp_path / "f", image])
    assert [found.name for found in result.images] == ["photo.dat", "one.png"]


def test_symlink_loop_is_reported_not_followed(tmp_path: Path) -> None:
    _touch(tmp_path / "root" / "sub" / "p.png")
    os.symlink(tmp_path / "root", tmp_path / "root" / "sub" / "loop")
    result = scan_images(tmp_path / "root")
    assert [found.name for found in result.images] == ["sub/p.png"]
    assert [reason for _, reason in result.problems] == [
        "folder already visited (symbolic link loop)"
    ]


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = scan_images([tmp_path / "empty", tmp_path / "absent"])
    assert result.images == []
    assert result.problems == [(tmp_path / "absent", "no such file or folder")]
