"""Regression tests for the holes the fault-injection probe found: each reproduces one."""

from __future__ import annotations

import dataclasses
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import lmdb
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from inrstore.cli.app import app
from inrstore.models.bitstream.shard_format import pack_member as pack_shard_member
from inrstore.models.bitstream.shard_format import unpack_header, unpack_member
from inrstore.store import CorruptRecordError, Store, StoreError, StoreNotFoundError
from inrstore.store.errors import StoreBusyError
from inrstore.store.lmdb_pages import PageDamage, walk_pages
from inrstore.store.records import pack_member
from inrstore.store.records import unpack_member as unpack_record

from .conftest import QUICK

runner = CliRunner()


def _raw_env(path: Path) -> lmdb.Environment:
    return lmdb.open(str(path), max_dbs=5)


def _rewrite(path: Path, db_name: bytes, edit) -> None:
    """Apply ``edit(txn, db)`` to one database of the store at ``path``, bypassing it."""
    env = _raw_env(path)
    db = env.open_db(db_name, dupsort=db_name == b"by_name")
    with env.begin(write=True, db=db) as txn:
        edit(txn, db)
    env.close()


def _rewrite_member(path: Path, hex_id: str, **changes) -> None:
    def edit(txn, db) -> None:
        record = unpack_record(txn.get(hex_id.encode()))
        txn.put(hex_id.encode(), pack_member(dataclasses.replace(record, **changes)))

    _rewrite(path, b"members", edit)


def test_a_store_whose_creation_was_killed_is_created_by_the_next_add(tmp_path: Path) -> None:
    interrupted = tmp_path / "interrupted"
    lmdb.open(str(interrupted), max_dbs=5).close()  # data.mdb exists, nothing committed yet
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "data.mdb").write_bytes(b"")  # a disk that filled before LMDB's first page
    for path in (interrupted, empty):
        with pytest.raises(StoreNotFoundError, match="creation was interrupted"):
            Store.open(path, readonly=True)
        with Store.open(path, create=True) as store:
            assert store.ids() == []
        with Store.open(path, readonly=True) as store:
            assert store.verify() == []


def test_a_kill_while_creating_leaves_a_store_that_add_completes(
    tmp_path: Path, cifar_samples: Path
) -> None:
    store = tmp_path / "store"
    killed = subprocess.run(
        [sys.executable, "-m", "inrstore.bench.faults", "child-add", str(store),
         str(cifar_samples), "--kill-at-create"],
    )  # fmt: skip
    assert killed.returncode == -9 and (store / "data.mdb").exists()
    with Store.open(store, create=True) as opened:
        opened.add([cifar_samples / "0000.png"], preset=QUICK)
        assert len(opened.ids()) == 1


def test_a_symlink_loop_inside_a_folder_is_reported_and_the_rest_added(
    tmp_path: Path, cifar_samples: Path
) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.png").symlink_to("b.png")
    (folder / "b.png").symlink_to("a.png")
    shutil.copy(cifar_samples / "0000.png", folder / "c.png")
    with Store.open(tmp_path / "store", create=True) as store:
        report = store.add([folder], preset=QUICK)
    assert len(report.added) == 1
    assert sorted((p.name, r) for p, r in report.failures) == [
        ("a.png", "symbolic link loop"),
        ("b.png", "symbolic link loop"),
    ]


def _damage_pointer(path: Path) -> str:
    """Point the first node of a leaf page of members far past the end of ``data.mdb``;
    return the content id that node held."""
    data = path / "data.mdb"
    raw = bytearray(data.read_bytes())
    page = 4096
    for number in range(len(raw) // page - 1, 1, -1):
        start = number * page
        flags, lower = struct.unpack_from("<HH", raw, start + 10)
        if not flags & 0x02 or lower <= 16:  # a leaf page with at least one node
            continue
        (node,) = struct.unpack_from("<H", raw, start + 16)
        (key_size,) = struct.unpack_from("<H", raw, start + node + 6)
        key = bytes(raw[start + node + 8 : start + node + 8 + key_size])
        if key_size == 64 and all(c in b"0123456789abcdef" for c in key):
            struct.pack_into("<H", raw, start + 16, 0xFFF0)
            data.write_bytes(bytes(raw))
            return key.decode()
    raise AssertionError("no leaf page of members found")


def test_damaged_pages_are_found_by_verify_without_touching_the_map(filled: Path) -> None:
    _damage_pointer(filled)
    with pytest.raises(PageDamage, match="points outside the page"):
        walk_pages(filled)
    with Store.open(filled, readonly=True) as store:
        [(where, problem)] = store.verify()
    assert where == "store" and "LMDB structure damaged" in problem


def test_a_wild_page_pointer_is_a_one_line_error_not_a_bus_error(filled: Path) -> None:
    victim = _damage_pointer(filled)
    for command in (["get", victim, "-o", os.devnull], ["ls"], ["verify"]):
        done = subprocess.run(
            [sys.executable, "-m", "inrstore.cli", "--store", str(filled), *command],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 1, (command, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr and "damaged" in done.stderr, done.stderr


def test_a_flipped_byte_in_meta_size_is_a_clean_error(filled: Path) -> None:
    data = filled / "data.mdb"
    raw = bytearray(data.read_bytes())
    struct.pack_into("<Q", raw, 16 + 24 + 96, 10**6)  # meta 0's last page
    struct.pack_into("<Q", raw, 4096 + 16 + 24 + 96, 10**6)  # and meta 1's
    data.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=r"store damaged .*declares 1000001 pages"):
        Store.open(filled, readonly=True)


def test_keys_that_are_not_content_ids_are_reported_not_fatal(filled: Path, tmp_path: Path) -> None:
    with Store.open(filled, readonly=True) as store:
        victim = store.ids()[0]

    def edit(txn, db) -> None:
        value = txn.get(victim.encode())
        txn.delete(victim.encode())
        txn.put(b"\xff" + victim.encode()[1:], value)

    _rewrite(filled, b"members", edit)
    with Store.open(filled, readonly=True) as store:
        assert len(store.ids()) == 5
        problems = dict(store.verify(quick=True))
        assert any("not a content id" in p for p in problems.values())
        assert len(store.export(tmp_path / "out")) == 5


def test_ls_json_reports_damage_like_the_table(filled: Path) -> None:
    with Store.open(filled, readonly=True) as store:
        victim = store.ids()[1]

    def edit(txn, db) -> None:
        raw = bytearray(txn.get(victim.encode()))
        raw[20] ^= 1
        txn.put(victim.encode(), bytes(raw))

    _rewrite(filled, b"members", edit)
    for arguments in (["ls", "--json"], ["ls"]):
        outcome = runner.invoke(app, ["--store", str(filled), *arguments])
        assert outcome.exit_code == 1 and f"damaged: {victim[:12]}" in outcome.output
    rows = runner.invoke(app, ["--store", str(filled), "ls", "--json"]).stdout.splitlines()
    assert '"error": "member record fails its checksum (damaged bytes)"' in rows[1]


def test_verify_checks_name_entries(filled: Path) -> None:
    with Store.open(filled, readonly=True) as store:
        victim = store.info(store.ids()[2])

    def edit(txn, db) -> None:
        txn.delete(victim.name.encode(), victim.hex_id.encode())
        txn.put(victim.name.encode(), ("0" * 64).encode())

    _rewrite(filled, b"by_name", edit)
    with Store.open(filled, readonly=True) as store:
        problems = store.verify(quick=True)
    assert (f"name {victim.name!r}", f"points at {'0' * 12}, which is not stored") in problems
    assert (victim.hex_id[:12], f"no name entry {victim.name!r} points at it") in problems


def test_a_damaged_shard_counter_never_overwrites_a_shard(
    filled: Path, tmp_path: Path, cifar_samples: Path
) -> None:
    with Store.open(filled, readonly=True) as store:
        before = {i: store.get(i).tobytes() for i in store.ids()}
    _rewrite(filled, b"meta", lambda txn, db: txn.put(b"next_shard", struct.pack(">Q", 1)))
    with Store.open(filled, readonly=True) as store:
        assert ("meta", "the next shard number is not above shard 2 (damaged)") in store.verify(
            quick=True
        )
    more = tmp_path / "more"
    more.mkdir()
    for index in (8, 9):
        shutil.copy(cifar_samples / f"{index:04d}.png", more)
    with Store.open(filled) as store:
        report = store.add([more], preset=QUICK)
        assert len(report.added) == 2
        assert {store.info(i).shard for i in report.added} == {3}
        assert all(store.get(i).tobytes() == pixels for i, pixels in before.items())
        assert store.verify(quick=True) == []


def test_compact_refuses_while_another_process_has_the_store_open(filled: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(filled)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with Store.open(filled) as store, pytest.raises(StoreBusyError, match="store is busy"):
            store.compact()
    finally:
        holder.kill()
        holder.wait()
    with Store.open(filled) as alone:
        before, after = alone.compact()
        assert after <= before and len(alone.ids()) == 6 and alone.verify() == []


HOLD_OPEN = """
import sys, time
from inrstore.store import Store
with Store.open(sys.argv[1]):
    print("open", flush=True)
    time.sleep(60)
"""


def test_compact_in_another_process_during_add_loses_nothing(
    filled: Path, cifar_samples: Path, tmp_path: Path
) -> None:
    more = tmp_path / "more"
    more.mkdir()
    for index in range(8, 12):
        shutil.copy(cifar_samples / f"{index:04d}.png", more)
    with Store.open(filled) as store:
        compacting = subprocess.run(
            [sys.executable, "-m", "inrstore.cli", "--store", str(filled), "compact"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        report = store.add([more], preset=QUICK)
    assert compacting.returncode == 1 and "store is busy" in compacting.stderr
    with Store.open(filled, readonly=True) as store:
        assert set(report.added) <= set(store.ids()) and len(store.ids()) == 10


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_a_clear_error_and_loses_nothing(
    small_disk: Path, cifar_samples: Path
) -> None:
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:  # leave about 1.3 MB, enough to create a store
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        handle.write(bytes(max(0, free - 1_300_000)))
    store = small_disk / "store"
    with Store.open(store, create=True) as opened:
        opened.add([cifar_samples / "0000.png"], preset=QUICK)
        kept = opened.ids()
        with open(filler, "ab") as handle:  # now fill the rest
            free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
            handle.write(bytes(max(0, free - 4096)))
        with pytest.raises(StoreError, match="no space left on device"):
            for index in range(1, 16):  # every shard bigger than what is left
                opened.add([cifar_samples / f"{index:04d}.png"], preset=QUICK)
    with Store.open(store, readonly=True) as opened:
        assert set(kept) <= set(opened.ids()) and opened.verify() == []
    with pytest.raises(StoreError, match="no space left on device"):
        Store.open(small_disk / "new-store", create=True)


def test_a_crafted_huge_member_is_refused_before_allocating(filled: Path) -> None:
    with Store.open(filled, readonly=True) as store:
        victim = store.ids()[0]
    env = _raw_env(filled)
    with env.begin() as txn:
        record = unpack_record(txn.get(victim.encode(), db=env.open_db(b"members", txn=txn)))
        key = struct.pack(">Q", record.shard)
        header = txn.get(key, db=env.open_db(b"headers", txn=txn))
    env.close()
    template = unpack_header(header)[0].template
    own, payload = unpack_member(record.bitstream, template)
    all_zero = (1 << template.levels) - 1
    for height, width in ((4096, 4096), (1525, 65535)):
        crafted = dataclasses.replace(own, height=height, width=width, zero_flags=all_zero)
        bitstream = pack_shard_member(crafted, payload)
        _rewrite_member(filled, victim, height=height, width=width, bitstream=bitstream)
        with (
            Store.open(filled, readonly=True) as store,
            pytest.raises(
                CorruptRecordError, match="needs more latent grids than its shard header"
            ),
        ):
            store.get(victim)


def test_the_decode_budget_is_checked_before_allocating(monkeypatch) -> None:
    from inrstore.models import render
    from inrstore.models.core.architecture import image_architecture

    arch = image_architecture(10_000, 10_000, 3, 2)
    assert render.decode_memory(arch, 1.0) > 3 * 10**9
    monkeypatch.setattr(render, "DECODE_MEMORY_BUDGET", 2 << 30)
    with pytest.raises(ValueError, match=r"would need about .* GiB, over the 2 GiB"):
        render.check_decode_memory(arch, 1.0)
    render.check_decode_memory(image_architecture(4000, 4000, 3, 2), 2.0)


def test_export_keeps_going_past_names_it_cannot_use(filled: Path, tmp_path: Path) -> None:
    with Store.open(filled, readonly=True) as store:
        victims = store.ids()[:5]
    hostile = ["", ".", "..", "a\0b.png", "x" * 300 + ".png"]
    for hex_id, name in zip(victims, hostile, strict=True):
        _rewrite_member(filled, hex_id, name=name)
    outcome = runner.invoke(app, ["--store", str(filled), "export", str(tmp_path / "out")])
    assert outcome.exit_code == 0, outcome.output
    assert "wrote 6 images" in outcome.stdout
    for hex_id in victims:
        assert (tmp_path / "out" / f"{hex_id[:12]}.png").is_file()
        assert f"{hex_id[:12]}: name" in outcome.stderr


def test_thirty_two_bit_tiff_is_scaled_from_its_full_range(tmp_path: Path) -> None:
    from inrstore.datasets import load_image

    values = np.array([[0, 2**24, 2**31 - 1, -(2**31)]], dtype=np.int32)
    Image.fromarray(values, mode="I").save(tmp_path / "deep.tif")
    loaded = load_image(tmp_path / "deep.tif")
    assert loaded.conversion == "I -> L (32-bit values scaled to 8 bits)"
    # Pillow writes SampleFormat 2 (signed): -2**31 is black, 2**31 - 1 is white.
    assert loaded.pixels[0, :, 0].tolist() == [128, 129, 255, 0]


def test_a_lost_frame_table_is_reported_not_a_crash(filled: Path) -> None:
    """Found by the full fault tier: a flipped byte in the main database's page made one
    frame table vanish, and verify raised KeyError."""
    Store.open(filled).close()  # upgrade to format 3: the frame tables exist
    env = _raw_env(filled)
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(b"by_time", txn=txn), delete=True)
    env.close()
    with Store.open(filled, readonly=True) as store:
        assert ("store", "frame tables missing (damaged): by_time") in store.verify(quick=True)
        with pytest.raises(StoreError, match="frame tables missing"):
            store.frames.list()


def test_a_damaged_shard_header_is_named_in_the_shard_table(filled: Path) -> None:
    def edit(txn, db) -> None:
        key = struct.pack(">Q", 1)
        header = bytearray(txn.get(key))
        header[-1] ^= 0xFF  # the checksum
        txn.put(key, bytes(header))

    _rewrite(filled, b"headers", edit)
    with Store.open(filled, readonly=True) as store:
        networks = [summary.networks for summary in store.shards()]
    assert networks == ["unreadable header", "2 shared bases"]


def test_get_many_names_the_damaged_member_of_a_shard(filled: Path) -> None:
    with Store.open(filled, readonly=True) as store:
        infos = sorted((i for i in store.members() if i.shard == 1), key=lambda i: i.hex_id)
    env = _raw_env(filled)
    with env.begin() as txn:
        raw = txn.get(infos[1].hex_id.encode(), db=env.open_db(b"members", txn=txn))
    env.close()
    bitstream = unpack_record(raw).bitstream
    _rewrite_member(filled, infos[1].hex_id, bitstream=bitstream[:-8])
    with (
        Store.open(filled, readonly=True) as store,
        pytest.raises(CorruptRecordError, match=infos[1].hex_id[:8]),
    ):
        store.get_many([info.hex_id for info in infos])
