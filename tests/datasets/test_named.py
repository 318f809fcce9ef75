"""Named datasets: checksum verification and downloads (with a fake network)."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inrstore.datasets import named
from inrstore.datasets.errors import DatasetError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def test_missing_root_and_unset_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(named.DATA_ENV, raising=False)
    with pytest.raises(DatasetError, match=r"INRSTORE_DATA is not set"):
        named.kodak()
    with pytest.raises(DatasetError, match="is not a folder"):
        named.kodak(tmp_path / "nowhere")


def test_environment_variable_names_the_parent_folder(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "kodak").mkdir()
    monkeypatch.setenv(named.DATA_ENV, str(tmp_path))
    dataset = named.kodak(verify=False)
    assert dataset.root == tmp_path / "kodak"
    assert [path.name for path in dataset.paths][:2] == ["kodim01.png", "kodim02.png"]
    assert len(dataset.entries) == 24


def test_verification_names_missing_and_altered_files(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "kodim01.png")
    with pytest.raises(DatasetError) as err:
        named.kodak(tmp_path)
    message = str(err.value)
    assert "24 bad files" in message
    assert "kodim01.png (checksum mismatch)" in message
    assert "kodim02.png (No such file or directory)" in message


def test_download_kodak_rejects_wrong_bytes(tmp_path: Path) -> None:
    fake_png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(fake_png, format="PNG")
    urls: list[str] = []

    def fetch(url: str) -> bytes:
        urls.append(url)
        return fake_png.getvalue()

    with pytest.raises(DatasetError, match="checksum mismatch"):
        named.download_kodak(tmp_path, fetch=fetch)
    assert urls[0] == "https://r0k.us/graphics/kodak/kodak/kodim01.png"
    assert len(urls) == 24 and not list(tmp_path.glob("*.part"))


def _fake_cifar_archive(images: list[np.ndarray]) -> bytes:
    records = b"".join(bytes([3]) + image.transpose(2, 0, 1).tobytes() for image in images)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(named.CIFAR10_TEST_MEMBER)
        info.size = len(records)
        tar.addfile(info, io.BytesIO(records))
    return buffer.getvalue()


def test_download_cifar10_checks_md5_and_picks_sample_images(
    monkeypatch, tmp_path: Path, cifar_samples: Path
) -> None:
    sample = [np.asarray(Image.open(cifar_samples / f"{i:04d}.png")) for i in (1, 0)]
    stranger = np.zeros((32, 32, 3), dtype=np.uint8)
    archive = _fake_cifar_archive([sample[0], stranger, sample[1]])

    with pytest.raises(DatasetError, match="fails its MD5 check"):
        named.download_cifar10(tmp_path, fetch=lambda url: archive)

    monkeypatch.setattr(named, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    with pytest.raises(DatasetError, match="998 bad files"):
        named.download_cifar10(tmp_path, fetch=lambda url: archive)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["0000.png", "0001.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "0001.png")), sample[0])


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared datasets are not beside this clone")
def test_shared_copies_verify(tmp_path: Path) -> None:
    assert len(named.kodak(SHARED / "kodak").paths) == 24
    cifar = named.cifar10(SHARED / "cifar10-sample")
    assert len(cifar.labels) == 1000 and set(cifar.labels.values()) == set(range(10))
    copy = tmp_path / "kodak"
    shutil.copytree(SHARED / "kodak", copy)
    Image.open(copy / "kodim05.png").rotate(180).save(copy / "kodim05.png")
    with pytest.raises(DatasetError, match=r"1 bad files: kodim05\.png \(checksum mismatch\)"):
        named.kodak(copy)
