"""The Store API: add, ids, get, info, ls, rm, verify, stats, export, compact, errors."""

from __future__ import annotations

import dataclasses
import shutil
import struct
from pathlib import Path

import lmdb
import numpy as np
import pytest
from PIL import Image

from inrstore.datasets.load import pixel_sha256
from inrstore.models.codec import read_header
from inrstore.models.fit.presets import Preset
from inrstore.models.metrics import psnr
from inrstore.models.shard_codec import read_shard_header
from inrstore.store import (
    AmbiguousIdError,
    CorruptRecordError,
    NotAStoreError,
    Store,
    StoreNotFoundError,
    StoreVersionError,
    UnknownIdError,
)
from inrstore.store.archive import PIXELS_DIFFER, MemberInfo
from inrstore.store.records import pack_member, unpack_member

from .conftest import QUICK, flip_member_byte


def test_add_records_everything_and_gets_decode(filled: Path, images: Path) -> None:
    with Store.open(filled, readonly=True) as store:
        infos = {info.name: info for info in store.members()}
        expected = [f"cats/{i:04d}.png" for i in range(3)] + [
            f"dogs/{i:04d}.png" for i in range(3, 6)
        ]
        assert sorted(infos) == expected
        assert {info.label for name, info in infos.items() if name.startswith("cats")} == {0}
        assert {info.label for name, info in infos.items() if name.startswith("dogs")} == {1}
        assert {info.shard for info in infos.values()} == {1, 2}
        original = np.asarray(Image.open(images / "dogs" / "0004.png"))
        info = infos["dogs/0004.png"]
        assert info.hex_id == pixel_sha256(original)
        decoded = store.get(info.hex_id[:8])
        assert decoded.shape == (32, 32, 3)
        assert psnr(original, decoded) == pytest.approx(info.psnr, abs=1e-3)
        assert store.get("dogs/0004.png", scale=2).shape == (64, 64, 3)
        stats = store.stats()
        assert (stats.images, stats.shards) == (6, 2)
        assert stats.original_bytes == sum(p.stat().st_size for p in images.rglob("*.png"))


def test_second_add_skips_duplicates(filled: Path, images: Path, tmp_path: Path) -> None:
    extra = tmp_path / "more"
    extra.mkdir()
    shutil.copy(images / "cats" / "0000.png", extra / "copy-of-0000.png")
    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(extra / "new.png")
    with Store.open(filled) as store:
        report = store.add([images, extra], preset=QUICK)
        assert len(report.added) == 1 and len(report.duplicates) == 7
        assert len(store.ids()) == 7


def test_ids_resolve_by_prefix_and_name_with_clear_errors(filled: Path, tmp_path: Path) -> None:
    with Store.open(filled) as store:
        for value in (0, 255):  # two different images, both named "same.png"
            folder = tmp_path / f"folder{value}"
            folder.mkdir()
            Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(folder / "same.png")
            store.add([folder], preset=QUICK)
        hex_id = store.ids()[0]
        assert store.resolve(hex_id) == hex_id
        assert store.resolve(hex_id[:6]) == hex_id
        assert store.resolve(hex_id.upper()[:10]) == hex_id
        assert store.resolve("dogs/0004.png") in store.ids()
        with pytest.raises(UnknownIdError, match="no image with id or name 'ffffffffffff'"):
            store.resolve("f" * 12)
        with pytest.raises(UnknownIdError):
            store.resolve("f" * 64)  # a whole id that is not stored
        with pytest.raises(UnknownIdError):
            store.resolve("abc")  # too short to be a prefix, and no such name
        with pytest.raises(
            AmbiguousIdError, match=r"'same\.png' is ambiguous: it matches \w+, \w+"
        ):
            store.resolve("same.png")


def test_remove_drops_members_and_empty_shards(filled: Path) -> None:
    with Store.open(filled) as store:
        shard_two = [i.hex_id for i in store.members() if i.shard == 2]
        assert len(shard_two) == 2
        share = store.info(shard_two[1]).header_share
        store.remove([shard_two[0]])
        assert store.stats().shards == 2
        assert store.info(shard_two[1]).header_share == pytest.approx(2 * share)  # now alone
        store.remove(["dogs/0005.png" if "dogs/0005.png" in _names(store) else shard_two[1]])
        assert store.stats().shards == 1 and len(store.ids()) == 4
        with pytest.raises(UnknownIdError):
            store.get(shard_two[0])
        before, after = store.compact()
        assert after <= before and len(store.ids()) == 4


def _names(store: Store) -> set[str]:
    return {info.name for info in store.members()}


def test_flipped_bytes_damage_only_that_member(filled: Path) -> None:
    with Store.open(filled) as store:
        victim, *others = store.ids()
    flip_member_byte(filled, victim)
    with Store.open(filled, readonly=True) as store:
        with pytest.raises(CorruptRecordError, match="fails its checksum"):
            store.get(victim)
        for hex_id in others:
            assert store.get(hex_id).shape == (32, 32, 3)
        failures = store.verify()
        assert failures == [(victim[:12], "member record fails its checksum (damaged bytes)")]
        assert store.verify(quick=True) == failures


def test_verify_tells_float_rounding_from_damage(filled: Path) -> None:
    """A record whose checksums pass but whose pixel hash differs (as after a float change)
    is reported as such, and only by the full check."""
    with Store.open(filled) as store:
        victim = store.ids()[0]
    env = lmdb.open(str(filled), max_dbs=5)
    members = env.open_db(b"members")
    with env.begin(write=True, db=members) as txn:
        record = unpack_member(txn.get(victim.encode()))
        txn.put(victim.encode(), pack_member(dataclasses.replace(record, decoded_id=bytes(32))))
    env.close()
    with Store.open(filled, readonly=True) as store:
        assert store.verify() == [(victim[:12], PIXELS_DIFFER)]
        assert store.verify(quick=True) == []


def test_verify_passes_on_an_intact_store(filled: Path) -> None:
    with Store.open(filled, readonly=True) as store:
        assert store.verify() == []


def test_export_keeps_names_and_cannot_escape(filled: Path, tmp_path: Path) -> None:
    with Store.open(filled) as store:
        written = store.export(tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written)[:2] == [
        "cats/0000.png", "cats/0001.png",
    ]  # fmt: skip
    from inrstore.store.archive import _safe_target

    root = (tmp_path / "out").resolve()
    for hostile in ("../../etc/passwd", "/etc/passwd", "a/../../b.png"):
        target, reason = _safe_target(root, hostile, "ab" * 32, set())
        assert target == root / f"{'ab' * 6}.png" and reason


def test_opening_errors(tmp_path: Path, filled: Path) -> None:
    with pytest.raises(StoreNotFoundError, match="no store here"):
        Store.open(tmp_path / "absent")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hello")
    with pytest.raises(NotAStoreError, match="not an inrstore store"):
        Store.open(tmp_path / "plain", create=True)
    for version, message in ((99, "store format 99 is newer"),
                             (1, "store format 1 predates shared-basis shards")):  # fmt: skip
        env = lmdb.open(str(filled), max_dbs=5)
        with env.begin(write=True, db=env.open_db(b"meta")) as txn:
            txn.put(b"format", struct.pack(">I", version))
        env.close()
        with pytest.raises(StoreVersionError, match=message):
            Store.open(filled)


def test_damaged_shard_header_fails_its_members_only(filled: Path) -> None:
    with Store.open(filled) as store:
        by_shard = {}
        for info in store.members():
            by_shard.setdefault(info.shard, []).append(info.hex_id)
    env = lmdb.open(str(filled), max_dbs=5)
    with env.begin(write=True, db=env.open_db(b"headers")) as txn:
        key = struct.pack(">Q", 1)
        raw = bytearray(txn.get(key))
        raw[len(raw) // 2] ^= 0x01
        txn.put(key, bytes(raw))
    env.close()
    with Store.open(filled, readonly=True) as store:
        with pytest.raises(CorruptRecordError, match="shard header checksum mismatch"):
            store.get(by_shard[1][0])
        for hex_id in by_shard[2]:
            assert store.get(hex_id).shape == (32, 32, 3)
        assert sorted(f[0] for f in store.verify()) == sorted(i[:12] for i in by_shard[1])


def test_repeated_gets_parse_each_shard_header_once(
    filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inrstore.store.archive as archive

    calls = []
    original = archive.read_shard_header
    monkeypatch.setattr(archive, "read_shard_header", lambda b: calls.append(1) or original(b))
    with Store.open(filled, readonly=True) as store:
        for _ in range(3):
            for hex_id in store.ids():
                store.get(hex_id)
    assert len(calls) == 2


def test_rate_accounting_shares_each_header_among_its_members(filled: Path) -> None:
    env = lmdb.open(str(filled), max_dbs=5, readonly=True)
    with env.begin(db=env.open_db(b"headers")) as txn:
        headers = {struct.unpack(">Q", k)[0]: len(v) for k, v in txn.cursor()}
    env.close()
    with Store.open(filled, readonly=True) as store:
        infos = list(store.members())
        sizes = {s: sum(1 for i in infos if i.shard == s) for s in headers}
        for info in infos:
            share = headers[info.shard] / sizes[info.shard]
            assert info.header_share == pytest.approx(share)
            assert info.bpp == pytest.approx((info.stored_bytes + share) * 8 / 1024)
        own = sum(i.stored_bytes for i in infos)
        assert store.stats().stored_bytes == own + sum(headers.values())


def test_parallel_workers_add_the_same_images(tmp_path: Path, images: Path) -> None:
    with Store.open(tmp_path / "parallel", create=True) as store:
        report = store.add([images], preset=QUICK, shard_size=2, workers=2)
        assert len(report.added) == 6 and report.shards == 3 and not report.failures
        assert {i.shard for i in store.members()} == {1, 2, 3}
        assert store.verify() == []


def test_bad_inputs_are_reported_and_the_rest_added(tmp_path: Path, images: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "empty.png").write_bytes(b"")
    (tmp_path / "bad" / "text.jpg").write_text("no")
    (tmp_path / "bad" / "loop").symlink_to(tmp_path / "bad")
    (tmp_path / "empty-folder").mkdir()
    with Store.open(tmp_path / "store", create=True) as store:
        report = store.add(
            [tmp_path / "bad", tmp_path / "empty-folder", tmp_path / "missing",
             images / "cats" / "0000.png"], preset=QUICK,
        )  # fmt: skip
        reasons = sorted(reason for _, reason in report.failures)
        assert reasons == [
            "empty file (0 bytes)",
            "folder already visited (symbolic link loop)",
            "no such file or folder",
            "not a recognised image format",
        ]
        assert len(report.added) == 1
        record = unpack_member(_raw(store, report.added[0]))
        assert record.name == "0000.png"


def _raw(store: Store, hex_id: str) -> bytes:
    with store._env.read() as txn:
        return txn.get(hex_id.encode(), db=store._env.dbs["members"])


def test_unreadable_file_is_reported_with_the_system_reason(
    tmp_path: Path, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permissions cannot be taken from root (CI runs as root), so the refusal is simulated
    where the operating system would raise it: opening the file."""
    victim = images / "cats" / "0001.png"
    real_open = Image.open

    def guarded(fp, *args, **kwargs):
        if Path(fp) == victim:
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", guarded)
    with Store.open(tmp_path / "store", create=True) as store:
        report = store.add([images], preset=QUICK, shard_size=8)
        assert report.failures == [(victim, "Permission denied")]
        assert len(report.added) == 5 and len(store.ids()) == 5


def test_add_with_best_like_settings_stores_members_that_declare_them(
    tmp_path: Path, cifar_samples: Path, kodak_samples: Path
) -> None:
    """Small images sharing networks and a larger one with its own (an image bitstream):
    either way the stored bytes declare the preset's ARM, pre-filters and synthesis."""
    best_like = Preset(
        "best-like", iterations=10, arm_levels=2, wide_arm=True, prefilter=True,
        compact_synthesis="refine", weight_deadzones=(0.2,),
    )  # fmt: skip
    files = [cifar_samples / "0000.png", cifar_samples / "0001.png"]
    with Store.open(tmp_path / "store", create=True) as store:
        store.add(files, preset=best_like, sharing="shared")
        store.add([kodak_samples / "kodim23-128.png"], preset=best_like)
        kodak = store.read("kodim23-128.png", decode=False)[1]
        with store._env.read() as txn:
            small = read_shard_header(store._header(txn, 1)).header
            large = read_shard_header(store._header(txn, 2)).header
            member = store._member(txn, kodak.hex_id).bitstream
    assert not small.own_networks and large.own_networks
    with Store.open(tmp_path / "store", readonly=True) as store:
        assert [s.networks for s in store.shards()] == ["2 shared bases", "own networks"]
    for arch in (small.template, read_header(member).arch):
        assert arch.arm_context == 24 and arch.prefilter and arch.synthesis_kind == "refine"


def test_shared_latents_group_frames_by_folder_and_size_in_scan_order(
    tmp_path: Path, cifar_samples: Path
) -> None:
    """Two cameras' frames (folders), one of them with a frame of another size: one shard
    per camera and size, members in scan order, each of one set of shared networks (with
    shared latents where they pay)."""
    for camera, names in (("a", ["0000", "0001", "0002"]), ("b", ["0003", "0004"])):
        (tmp_path / "frames" / camera).mkdir(parents=True)
        for name in names:
            shutil.copy(cifar_samples / f"{name}.png", tmp_path / "frames" / camera)
    small = Image.open(cifar_samples / "0005.png").crop((0, 0, 24, 32))
    small.save(tmp_path / "frames" / "a" / "0009.png")
    with Store.open(tmp_path / "store", create=True) as store:
        report = store.add([tmp_path / "frames"], preset=QUICK, sharing="latents")
        assert report.shards == 3 and not report.failures
        shards = store.shards()
        kinds = {"shared networks and latents", "shared networks"}
        assert len(shards) == 3 and all(s.networks in kinds for s in shards)
        members = [m for m in store.members() if isinstance(m, MemberInfo)]
        names = [sorted(m.name for m in members if m.shard == s.shard) for s in shards]
    assert names == [
        ["a/0000.png", "a/0001.png", "a/0002.png"],
        ["a/0009.png"],
        ["b/0003.png", "b/0004.png"],
    ]
