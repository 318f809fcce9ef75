"""Frames of a gateway in the store: staging, encoding from staging, listing, deletion,
retention, tokens, and the format 2 → 3 upgrade."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from inrstore.datasets import UnsupportedFormatError
from inrstore.store import Store, UnknownIdError

from .conftest import QUICK

GOLDEN = Path(__file__).parent / "golden" / "store-v2"


@pytest.fixture
def frames(cifar_samples: Path) -> list[bytes]:
    return [(cifar_samples / f"{i:04d}.png").read_bytes() for i in range(6)]


def test_staged_frames_are_encoded_once_and_leave_staging(tmp_path: Path, frames) -> None:
    with Store.open(tmp_path / "store", create=True) as store:
        staged = [store.frames.stage(data, "gate", captured_at=100 + i) for i, data in
                  enumerate(frames[:4])]  # fmt: skip
        assert all(s.created for s in staged)
        assert not store.frames.stage(frames[0], "other").created  # same content: one frame
        ids = [s.id for s in staged]
        assert store.frames.due(3, 3600, now=0) == [ids[:3]]
        assert store.frames.due(3, 3600, now=10**10) == [ids[:3], ids[3:]]
        store.frames.delete(ids[2])  # deleted while waiting: left out of the shard
        assert store.add_staged(ids[:3], preset=QUICK) == ids[:2]
        assert store.add_staged(ids[:3], preset=QUICK) == []  # nothing staged twice
        assert [info.state for info in store.frames.list()[0]] == ["staged", "stored", "stored"]
        assert store.frames.staged_bytes(ids[0]) is None
        assert store.frames.staged_bytes(ids[3]) == frames[3]
        assert store.verify() == []
        with pytest.raises(UnknownIdError):
            store.frames.info(ids[2])


def test_bad_frames_are_refused_before_staging(tmp_path: Path, frames) -> None:
    with Store.open(tmp_path / "store", create=True) as store:
        with pytest.raises(UnsupportedFormatError):
            store.frames.stage(b"not an image", "gate")
        with pytest.raises(ValueError, match="source must be"):
            store.frames.stage(frames[0], "../etc")
        assert store.frames.stats()["frames_staged"] == 0


def test_retention_removes_the_oldest_frames_and_empty_shards(tmp_path: Path, frames) -> None:
    with Store.open(tmp_path / "store", create=True) as store:
        ids = [store.frames.stage(d, "gate", captured_at=1000 + i).id for i, d in enumerate(frames)]
        store.add_staged(ids[:2], preset=QUICK)
        assert (
            store.frames.apply_retention(retain_days=1, max_bytes=None, now=1003 + 86400) == ids[:3]
        )
        assert store.stats().shards == 0 and len(store.ids()) == 0
        sizes = [store.frames.info(i).bytes for i in ids[3:]]
        removed = store.frames.apply_retention(None, max_bytes=int(sizes[-1] + sizes[-2]))
        assert removed == ids[3:4]
        assert [f.id for f in store.frames.list()[0]] == ids[:3:-1]
        yard = store.frames.stage(frames[0], "yard", captured_at=1).id  # the oldest overall
        keep = int(max(store.frames.info(i).bytes for i in (ids[5], yard)))
        assert store.frames.apply_retention(None, keep, per_source=True) == [ids[4]]
        assert {f.id for f in store.frames.list()[0]} == {ids[5], yard}
        assert store.verify() == []


def test_removing_a_member_forgets_its_frame(tmp_path: Path, frames) -> None:
    with Store.open(tmp_path / "store", create=True) as store:
        hex_id = store.frames.stage(frames[0], "gate").id
        store.add_staged([hex_id], preset=QUICK)
        store.remove([hex_id])
        assert store.frames.list()[0] == [] and store.verify() == []


def test_tokens_are_stored_hashed(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store", create=True) as store:
        token = store.frames.create_token("write", "camera 1")
        assert store.frames.token_scope(token) == "write"
        assert store.frames.token_scope(token + "x") is None
        with pytest.raises(ValueError, match="scope must be"):
            store.frames.create_token("admin")
    assert token.encode() not in (tmp_path / "store" / "data.mdb").read_bytes()


def test_a_format_2_store_gains_the_frame_tables_when_opened_for_writing(
    tmp_path: Path, frames
) -> None:
    copy = tmp_path / "store"
    shutil.copytree(GOLDEN, copy)
    with Store.open(copy, readonly=True) as store:
        assert len(store.ids()) == 5
    with Store.open(copy) as store:
        store.frames.stage(frames[5], "gate")
        assert store.verify(quick=True) == []
    with Store.open(copy, readonly=True) as store:
        assert store.frames.stats()["frames_staged"] == 1


def test_shared_latents_split_a_batch_by_size_and_warm_start_from_the_same_source(
    tmp_path: Path, frames, monkeypatch
) -> None:
    """With shared latents a source's batch becomes one shard per frame size, and each
    shard starts from the latest shard of its own source, not another camera's."""
    import io

    from PIL import Image

    from inrstore.store import encoding

    small = io.BytesIO()
    Image.open(io.BytesIO(frames[5])).crop((0, 0, 24, 32)).save(small, format="PNG")
    warm_starts = []
    real = encoding.encode_shard

    def spy(*args, warm_start=None, **kwargs):
        warm_starts.append(warm_start)
        return real(*args, warm_start=warm_start, **kwargs)

    monkeypatch.setattr(encoding, "encode_shard", spy)
    with Store.open(tmp_path / "store", create=True) as store:
        gate = [store.frames.stage(d, "gate", captured_at=i).id for i, d in enumerate(frames[:2])]
        yard = [store.frames.stage(d, "yard", captured_at=i).id for i, d in enumerate(frames[2:4])]
        odd = store.frames.stage(small.getvalue(), "gate", captured_at=9).id
        assert store.add_staged([*gate, odd], preset=QUICK, sharing="latents") == [*gate, odd]
        with store._env.read() as txn:
            first, second = store._header(txn, 1), store._header(txn, 2)
        assert store.stats().shards == 2 and warm_starts == [None, first]
        assert store.add_staged(yard, preset=QUICK, sharing="latents") == yard
        assert warm_starts[2] is None  # no earlier shard of this source
        later = store.frames.stage(frames[4], "gate", captured_at=20).id
        store.add_staged([later], preset=QUICK, sharing="latents")
        assert warm_starts[3] == second
        assert store.latest_header("nowhere") is None and store.verify() == []
