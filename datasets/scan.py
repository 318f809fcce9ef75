"""Recursive discovery of image files in a deterministic order."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".avif"}
)


@dataclass(frozen=True)
class FoundImage:
    """An image file found by :func:`scan_images`.

    ``name`` is the path relative to the scanned root, with ``/`` separators; for a file
    given directly it is the file name.
    """

    path: Path
    name: str


@dataclass
class ScanResult:
    """Files found, in deterministic order, and the problems met on the way."""

    images: list[FoundImage] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def scan_images(paths: list[str | Path] | str | Path) -> ScanResult:
    """Find image files under ``paths`` (files or folders), recursively.

    Folders are walked in sorted order, following symbolic links but never entering a folder
    twice (a symlink loop is reported once as a problem, not followed forever). Files given
    explicitly are kept whatever their suffix; files found in folders are kept when their
    suffix is in :data:`IMAGE_SUFFIXES`. A path seen twice is listed once.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    result = ScanResult()
    seen_files: set[Path] = set()
    for given in map(Path, paths):
        if given.is_dir():
            _walk(given, result, seen_files)
        elif given.is_file():
            _add(given, given.name, result, seen_files)
        elif given.exists() or given.is_symlink():
            result.problems.append((given, "not a regular file or folder"))
        else:
            result.problems.append((given, "no such file or folder"))
    return result


def _add(path: Path, name: str, result: ScanResult, seen: set[Path]) -> None:
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symbolic link loop (Python < 3.13)
        result.problems.append((path, "symbolic link loop"))
        return
    if real not in seen:
        seen.add(real)
        result.images.append(FoundImage(path=path, name=name))


def _walk(root: Path, result: ScanResult, seen_files: set[Path]) -> None:
    visited_dirs: set[Path] = set()

    def on_error(err: OSError) -> None:
        result.problems.append((Path(err.filename or root), f"cannot list folder: {err.strerror}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        here = Path(dirpath)
        try:
            real = here.resolve()
        except (OSError, RuntimeError):
            result.problems.append((here, "symbolic link loop"))
            dirnames[:] = []
            continue
        if real in visited_dirs:
            result.problems.append((here, "folder already visited (symbolic link loop)"))
            dirnames[:] = []
            continue
        visited_dirs.add(real)
        dirnames.sort()
        for filename in sorted(filenames):
            path = here / filename
            if path.suffix.lower() in IMAGE_SUFFIXES:
                _add(path, path.relative_to(root).as_posix(), result, seen_files)
