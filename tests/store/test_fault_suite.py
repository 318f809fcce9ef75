"""The quick tier of the fault-injection suite: no trial may lose, split, corrupt, crash or
hang (the full tier is a benchmark: ``python -m inrstore.bench.faults --tier full``)."""

from __future__ import annotations

from inrstore.bench.faults import TIERS, run_suite

BAD = ("lost", "partial", "wrong pixels", "crash", "hang")


def test_quick_fault_tier_finds_no_bad_outcome() -> None:
    results = run_suite("quick", seed=1)
    for kind, tally in results.items():
        assert sum(tally.counts.values()) >= TIERS["quick"][kind], kind
        bad = {outcome: tally.examples.get(outcome) for outcome in BAD if tally.counts[outcome]}
        assert not bad, (kind, bad)
    assert results["flip"].counts["clean error"] > 0  # the flips did damage something
    assert results["bitstream"].counts["clean error"] > 0
