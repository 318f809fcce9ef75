"""Typed errors for image input; each message is one line naming the file and the reason."""

from __future__ import annotations

from pathlib import Path


class ImageError(Exception):
    """An input image that cannot be used. ``str(err)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnreadableFileError(ImageError):
    """The file is missing, is not a regular file, or cannot be opened (permissions)."""


class EmptyFileError(ImageError):
    """The file has zero bytes."""


class UnsupportedFormatError(ImageError):
    """The bytes are not an image format Pillow can identify."""


class CorruptImageError(ImageError):
    """The header was readable but the pixel data is truncated or damaged."""


class ImageTooLargeError(ImageError):
    """The header declares more pixels than the configured limit (decompression-bomb guard)."""


class DatasetError(Exception):
    """A named dataset is missing, incomplete or fails checksum verification."""
