"""Record byte formats: exact round trips, damage always detected."""

from __future__ import annotations

import numpy as np
import pytest

from inrstore.store.errors import CorruptRecordError
from inrstore.store.records import (
    MemberRecord,
    ShardRecord,
    pack_member,
    pack_shard,
    unpack_member,
    unpack_shard,
)

MEMBER = MemberRecord(
    content_id=bytes(range(32)), decoded_id=bytes(range(32, 64)), shard=7, height=32, width=48,
    channels=3, original_bytes=3000, psnr=31.234, label=4, name="cats/0001.png",
    conversion="P -> RGB", bitstream=b"INRS" + bytes(200),
)  # fmt: skip
SHARD = ShardRecord(7, 1_700_000_000, "fast", 50.0, (bytes(32), bytes(range(32))))


def test_round_trips() -> None:
    assert unpack_member(pack_member(MEMBER)) == MEMBER
    assert unpack_shard(pack_shard(SHARD)) == SHARD
    unlabelled = MemberRecord(**{**MEMBER.__dict__, "label": None, "name": "ünïcode.png"})
    assert unpack_member(pack_member(unlabelled)) == unlabelled


@pytest.mark.parametrize(("pack", "unpack", "record"), [
    (pack_member, unpack_member, MEMBER), (pack_shard, unpack_shard, SHARD),
])  # fmt: skip
def test_every_truncation_and_flip_is_detected(pack, unpack, record) -> None:
    data = pack(record)
    for cut in range(len(data)):
        with pytest.raises(CorruptRecordError):
            unpack(data[:cut])
    rng = np.random.default_rng(0)
    for _ in range(300):
        damaged = bytearray(data)
        damaged[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        with pytest.raises(CorruptRecordError):
            unpack(bytes(damaged))
