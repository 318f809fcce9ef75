"""Finding, validating and loading images; named benchmark datasets."""

from inrstore.datasets.errors import (
    CorruptImageError,
    EmptyFileError,
    ImageError,
    ImageTooLargeError,
    UnreadableFileError,
    UnsupportedFormatError,
)
from inrstore.datasets.load import DEFAULT_MAX_PIXELS, ImageBatch, LoadedImage, load_image
from inrstore.datasets.scan import IMAGE_SUFFIXES, ScanResult, scan_images

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "CorruptImageError",
    "EmptyFileError",
    "ImageBatch",
    "ImageError",
    "ImageTooLargeError",
    "LoadedImage",
    "ScanResult",
    "UnreadableFileError",
    "UnsupportedFormatError",
    "load_image",
    "scan_images",
]
