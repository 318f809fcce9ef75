"""Fault injection against a store, counted by outcome.

``python -m inrstore.bench.faults [--tier quick|full] [--out DIR]`` runs five kinds of trial
on stores of CIFAR sample images (``--preset``-free: a 15-step training so that each shard
encodes in about a second) and prints, per kind, how many trials ended in each outcome:

- ``kill``: ``add`` killed with SIGKILL at a random moment, inside its N-th write transaction
  (before the commit), while it creates the store, or (where ``strace`` exists) at its N-th
  ``fdatasync``/``pwrite64``. After each kill the store must open, hold every member committed
  before with the same pixels, show no partial shard and verify; a last ``add`` completes it
  with no duplicates.
- ``flip``: one byte flipped in a copy of a whole store: anywhere in ``data.mdb``'s pages, in
  a stored value, or in a key. A fresh process then reads every member, lists and verifies.
- ``bitstream``: ``.inr`` files and shard members mutated (flipped bytes, truncation, extra
  bytes, random headers) and decoded.
- ``readers``: four reader processes decode every member in a loop while a writer adds.

Outcomes: ``ok`` (nothing visible changed), ``clean error`` (a one-line error or a reported
problem), ``lost`` (a committed member gone or undecodable after a kill), ``partial`` (a
shard with fewer members than it was encoded with), ``wrong pixels`` (pixels returned without
an error that differ from the original decode), ``crash`` (a traceback or a signal),
``hang`` (no answer within the time limit). Results go to ``DIR/faults.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

OUTCOMES = ("ok", "clean error", "lost", "partial", "wrong pixels", "crash", "hang")
TIERS = {
    "quick": {"kill": 4, "flip": 12, "bitstream": 60, "readers": 1},
    "full": {"kill": 24, "flip": 640, "bitstream": 320, "readers": 3},
}
SHARD_SIZE = 4
IMAGES = 8
READ_TIMEOUT = 120.0
SAMPLES = Path(__file__).resolve().parent.parent / "datasets" / "samples" / "cifar10"


@dataclass
class Tally:
    """Outcome counts of one kind of trial, with a few examples of each bad outcome."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, outcome: str, detail: str = "") -> None:
        self.counts[outcome] += 1
        if outcome not in ("ok", "clean error") or len(self.examples.get(outcome, [])) < 3:
            self.examples.setdefault(outcome, [])
            if len(self.examples[outcome]) < 10 and detail:
                self.examples[outcome].append(detail)

    def to_json(self) -> dict:
        return {"counts": {o: self.counts.get(o, 0) for o in OUTCOMES}, "examples": self.examples}


def quick_preset():
    from inrstore.models.fit.presets import Preset

    return Preset("quick", iterations=15, arm_levels=0)


def image_folder(root: Path, start: int = 0, count: int = IMAGES) -> Path:
    """A folder of ``count`` bundled CIFAR images from index ``start``."""
    folder = root / f"images-{start}-{count}"
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(start, start + count):
        shutil.copy(SAMPLES / f"{index:04d}.png", folder / f"{index:04d}.png")
    return folder


def pixel_hashes(store_path: Path) -> dict[str, str]:
    """Content id → SHA-256 of the decoded pixels, for every member."""
    from inrstore.store import Store

    with Store.open(store_path, readonly=True) as store:
        return {i: hashlib.sha256(store.get(i).tobytes()).hexdigest() for i in store.ids()}


def python_child(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "inrstore.bench.faults", *arguments]


# -- children: what runs in the processes that are killed or that read damaged stores -------


def encode_or_die_once(job, threads: int):
    """A Ray task's function for the engine's tests: the first call on a cluster (the file
    named by ``INRSTORE_FAULT_MARKER`` does not exist yet) kills its own worker process,
    every later call encodes."""
    from inrstore.store.encoding import encode_job_in_worker

    try:
        Path(os.environ["INRSTORE_FAULT_MARKER"]).open("x").close()
    except FileExistsError:
        return encode_job_in_worker(job, threads)
    os.kill(os.getpid(), signal.SIGKILL)
    return None


def encode_slowly(job, threads: int):
    """A Ray task's function that waits ``INRSTORE_FAULT_DELAY`` seconds (default 3) before
    encoding: a driver can be interrupted between two commits."""
    from inrstore.store.encoding import encode_job_in_worker

    time.sleep(float(os.environ.get("INRSTORE_FAULT_DELAY", "3")))
    return encode_job_in_worker(job, threads)


def encode_always_fails(job, threads: int):
    """A Ray task's function that always fails, as a broken worker would."""
    raise RuntimeError("injected encoder failure")


def child_add(store: str, folder: str, kill_in_commit: int, kill_at_create: bool) -> None:
    """``add`` of ``folder``; optionally SIGKILL itself inside its N-th write transaction
    (after the writes, before the commit) or right after LMDB creates ``data.mdb``."""
    from inrstore.store import Store
    from inrstore.store.env import StoreEnv

    if kill_at_create:
        StoreEnv._open_databases = lambda self, create: os.kill(os.getpid(), signal.SIGKILL)
    if kill_in_commit:
        original = StoreEnv.write
        calls = [0]

        @contextlib.contextmanager
        def dying_write(self):
            with original(self) as txn:
                yield txn
                calls[0] += 1
                if calls[0] == kill_in_commit:
                    os.kill(os.getpid(), signal.SIGKILL)

        StoreEnv.write = dying_write
    with Store.open(store, create=True) as opened:
        opened.add([folder], preset=quick_preset(), shard_size=SHARD_SIZE)


def child_read(store: str, expected_json: str) -> None:
    """Read a (possibly damaged) store as a user would; print one JSON line of findings."""
    from inrstore.models.bitstream.errors import BitstreamError
    from inrstore.store import Store, StoreError
    from inrstore.store.memory_faults import guard_memory_faults

    guard_memory_faults(Path(store))
    expected = json.loads(Path(expected_json).read_text())
    found = {"errors": 0, "wrong": 0, "ok": 0, "verify": None}
    try:
        with Store.open(store, readonly=True) as opened:
            for hex_id, digest in expected.items():
                try:
                    pixels = opened.get(hex_id)
                except (StoreError, BitstreamError, ValueError):
                    found["errors"] += 1
                    continue
                same = hashlib.sha256(pixels.tobytes()).hexdigest() == digest
                found["ok" if same else "wrong"] += 1
            list(opened.members())
            opened.shards()
            found["verify"] = len(opened.verify())
    except (StoreError, BitstreamError) as err:
        found["open_error"] = str(err)
    print(json.dumps(found))


def child_bitstreams(cases_dir: str, first: int) -> None:
    """Decode the mutated bitstreams ``case-N.*`` from ``first`` on; one JSON line each."""
    from inrstore.models.bitstream.errors import BitstreamError
    from inrstore.models.codec import decode_image
    from inrstore.models.shard_codec import decode_member

    root = Path(cases_dir)
    reference = json.loads((root / "reference.json").read_text())
    header = (root / "header.bin").read_bytes()
    index = first
    while (root / f"case-{index}.bin").exists():
        data = (root / f"case-{index}.bin").read_bytes()
        kind = (root / f"case-{index}.kind").read_text()
        try:
            if kind == "image":
                pixels = decode_image(data)
            elif kind == "member":
                pixels = decode_member(header, data)
            else:
                pixels = decode_member(data, (root / "member.bin").read_bytes())
            digest = hashlib.sha256(pixels.tobytes()).hexdigest()
            outcome = "ok" if digest == reference[kind] else "wrong pixels"
        except (BitstreamError, ValueError):
            outcome = "clean error"
        except Exception as err:  # anything else is what the suite is looking for
            outcome = f"crash: {type(err).__name__}: {err}"
        print(json.dumps({"case": index, "outcome": outcome}), flush=True)
        index += 1


def child_reader(store: str, seconds: float) -> None:
    """Decode every member in a loop for ``seconds``; print ``{"reads", "errors"}``."""
    from inrstore.store import Store

    reads = errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with Store.open(store, readonly=True) as opened:
                for hex_id in opened.ids():
                    opened.get(hex_id)
                    reads += 1
        except Exception:  # every failure of a reader is counted
            errors += 1
    print(json.dumps({"reads": reads, "errors": errors}))


# -- trials ---------------------------------------------------------------------------------


def kill_trials(work: Path, trials: int, rng: random.Random) -> Tally:
    """Kill ``add`` repeatedly on one store, then complete it; check after every kill."""
    work.mkdir(parents=True)
    tally = Tally()
    folder = image_folder(work)
    store = work / "killed"
    started = time.monotonic()
    subprocess.run(python_child("child-add", str(work / "timing"), str(folder)), check=True)
    duration = time.monotonic() - started
    committed: dict[str, str] = {}
    strace = shutil.which("strace")
    for trial in range(trials):
        kind = ("moment", "commit", "create", "sync")[trial % (4 if strace else 3)]
        if kind == "create" and store.exists():
            shutil.rmtree(store)
            committed = {}
        command = python_child("child-add", str(store), str(folder))
        if kind == "commit":
            command += ["--kill-in-commit", str(rng.randint(1, 3))]
        elif kind == "create":
            command += ["--kill-at-create"]
        elif kind == "sync":
            call = rng.choice(("fdatasync", "pwrite64"))
            inject = f"inject={call}:signal=KILL:when={rng.randint(1, 12)}"
            trace = [strace, "-f", "-qq", "-o", os.devnull, "-e", f"trace={call}", "-e", inject]
            command = trace + command
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        if kind == "moment":
            time.sleep(rng.uniform(0.0, duration))
            process.send_signal(signal.SIGKILL)
        process.wait()
        outcome, detail, committed = _after_kill(store, committed, f"{kind} kill {trial}")
        tally.add(outcome, detail)
    final = subprocess.run(python_child("child-add", str(store), str(folder)), check=False)
    outcome, detail, committed = _after_kill(store, committed, "completion")
    if final.returncode != 0 or len(committed) != IMAGES:
        outcome, detail = "lost", f"completion: rc {final.returncode}, {len(committed)} members"
    tally.add(outcome, detail)
    return tally


def _after_kill(store: Path, before: dict[str, str], what: str) -> tuple[str, str, dict]:
    from inrstore.store import Store, StoreNotFoundError

    try:
        after = pixel_hashes(store)
        with Store.open(store, readonly=True) as opened:
            sizes = Counter(info.shard for info in opened.members())
            problems = opened.verify(quick=True)
    except StoreNotFoundError:
        return ("ok" if not before else "lost"), what, before
    except Exception as err:  # a store that no longer opens after a kill loses everything
        return "lost", f"{what}: {type(err).__name__}: {err}", before
    if any(after.get(i) != digest for i, digest in before.items()):
        gone = [i[:12] for i in before if i not in after]
        return ("lost" if gone else "wrong pixels"), f"{what}: {gone}", after
    if any(size != SHARD_SIZE for size in sizes.values()):
        return "partial", f"{what}: shard sizes {dict(sizes)}", after
    if problems:
        return "clean error", f"{what}: verify {problems[:2]}", after
    return "ok", what, after


def flip_trials(work: Path, trials: int, rng: random.Random, jobs: int = 2) -> Tally:
    """Flip one byte in a copy of a pristine store per trial; read it in a fresh process."""
    work.mkdir(parents=True)
    tally = Tally()
    pristine = work / "pristine"
    folder = image_folder(work)
    subprocess.run(python_child("child-add", str(pristine), str(folder)), check=True)
    expected = work / "expected.json"
    expected.write_text(json.dumps(pixel_hashes(pristine)))
    running: list[tuple[subprocess.Popen, str, Path, float]] = []
    for trial in range(trials):
        copy = work / f"flip-{trial}"
        shutil.copytree(pristine, copy)
        detail = _flip(copy, rng, ("page", "value", "key")[trial % 3])
        process = subprocess.Popen(
            python_child("child-read", str(copy), str(expected)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        running.append((process, detail, copy, time.monotonic()))
        while len(running) >= jobs or (trial == trials - 1 and running):
            _collect_flip(running.pop(0), tally)
    return tally


def _collect_flip(entry, tally: Tally) -> None:
    process, detail, copy, started = entry
    try:
        out, err = process.communicate(
            timeout=max(1.0, READ_TIMEOUT - (time.monotonic() - started))
        )
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        tally.add("hang", detail)
        shutil.rmtree(copy)
        return
    shutil.rmtree(copy)
    if "Traceback" in err or process.returncode not in (0, 1):
        tally.add("crash", f"{detail}: rc {process.returncode}: {err.strip()[-300:]}")
        return
    if process.returncode == 1:  # the SIGBUS guard's one-line error
        tally.add("clean error", detail)
        return
    found = json.loads(out.strip().splitlines()[-1])
    if found["wrong"]:
        tally.add("wrong pixels", f"{detail}: {found}")
    elif found["errors"] or found.get("open_error") or found["verify"]:
        tally.add("clean error", detail)
    else:
        tally.add("ok", detail)


def _flip(store: Path, rng: random.Random, kind: str) -> str:
    """Flip one byte of ``store``: in data.mdb's pages, in a value or in a key."""
    import lmdb

    if kind == "page":
        data = store / "data.mdb"
        size = data.stat().st_size
        offset = rng.randrange(2 * 4096, size)
        with open(data, "r+b") as handle:
            handle.seek(offset)
            byte = handle.read(1)[0]
            handle.seek(offset)
            handle.write(bytes([byte ^ (1 << rng.randrange(8))]))
        return f"page byte {offset}"
    env = lmdb.open(str(store), max_dbs=5)
    try:
        name = rng.choice((b"members", b"by_name", b"shards", b"headers", b"meta"))
        db = env.open_db(name, dupsort=name == b"by_name")
        with env.begin(write=True, db=db) as txn:
            items = list(txn.cursor())
            key, value = rng.choice(items)
            target = bytearray(key if kind == "key" else value)
            position = rng.randrange(len(target))
            target[position] ^= 1 << rng.randrange(8)
            txn.delete(key, value)
            if kind == "key":
                txn.put(bytes(target), value)
            else:
                txn.put(key, bytes(target))
    finally:
        env.close()
    return f"{kind} byte {position} of {name.decode()} {bytes(key)[:16]!r}"


def bitstream_trials(work: Path, trials: int, rng: random.Random) -> Tally:
    """Mutate a single-image bitstream, a shard member and a shard header; decode each."""
    work.mkdir(parents=True)
    import numpy as np
    from PIL import Image

    from inrstore.models.codec import decode_image, encode_image
    from inrstore.models.shard_codec import decode_member, encode_shard

    pixels = np.asarray(Image.open(SAMPLES / "0000.png"))
    image = encode_image(pixels, quick_preset())
    shard = encode_shard(
        [pixels, np.asarray(Image.open(SAMPLES / "0001.png"))], quick_preset(), sharing="shared"
    )
    cases = work
    (cases / "header.bin").write_bytes(shard.header)
    (cases / "member.bin").write_bytes(shard.members[0])
    sources = {"image": image, "member": shard.members[0], "header": shard.header}

    def digest(array) -> str:
        return hashlib.sha256(array.tobytes()).hexdigest()

    reference = {
        "image": digest(decode_image(image)),
        "member": digest(decode_member(shard.header, shard.members[0])),
    }
    reference["header"] = reference["member"]
    (cases / "reference.json").write_text(json.dumps(reference))
    for index in range(trials):
        kind = ("image", "member", "header")[index % 3]
        (cases / f"case-{index}.bin").write_bytes(_mutate(sources[kind], rng))
        (cases / f"case-{index}.kind").write_text(kind)
    tally = Tally()
    first = 0
    while first < trials:
        process = subprocess.Popen(
            python_child("child-bitstreams", str(cases), str(first)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            out, err = process.communicate(timeout=READ_TIMEOUT + 10 * (trials - first))
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        done = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        for row in done:
            outcome = row["outcome"]
            label = "crash" if outcome.startswith("crash") else outcome
            tally.add(label, f"case {row['case']}: {outcome}")
        first += len(done)
        if first < trials:  # the child died or hung on case `first`
            tally.add("crash" if process.returncode else "hang", f"case {first}: {err[-300:]}")
            first += 1
    return tally


def _mutate(data: bytes, rng: random.Random) -> bytes:
    mutated = bytearray(data)
    choice = rng.randrange(5)
    if choice == 0:
        return bytes(mutated[: rng.randrange(len(mutated))])
    if choice == 1:
        return bytes(mutated + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))))
    if choice == 2:
        start = rng.randrange(min(len(mutated), 24))
        mutated[start : start + 8] = bytes(rng.randrange(256) for _ in range(8))
        return bytes(mutated)
    for _ in range(rng.randint(1, 4)):
        mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
    return bytes(mutated)


def reader_trials(work: Path, trials: int) -> Tally:
    """Four readers decode in a loop while a writer adds eight more images."""
    work.mkdir(parents=True)
    tally = Tally()
    for trial in range(trials):
        store = work / f"readers-{trial}"
        subprocess.run(python_child("child-add", str(store), str(image_folder(work))), check=True)
        more = image_folder(work, IMAGES * (trial + 1) % 16 or IMAGES, IMAGES)
        writer = subprocess.Popen(python_child("child-add", str(store), str(more)))
        reader = python_child("child-reader", str(store), "8")
        readers = [subprocess.Popen(reader, stdout=subprocess.PIPE, text=True) for _ in range(4)]
        results = [json.loads(r.communicate(timeout=READ_TIMEOUT)[0]) for r in readers]
        writer_rc = writer.wait(timeout=READ_TIMEOUT)
        errors = sum(r["errors"] for r in results)
        reads = sum(r["reads"] for r in results)
        outcome = "ok" if errors == 0 and writer_rc == 0 else "crash"
        tally.add(outcome, f"trial {trial}: {reads} reads, {errors} errors, writer rc {writer_rc}")
    return tally


def run_suite(tier: str, seed: int = 0) -> dict[str, Tally]:
    counts = TIERS[tier]
    rng = random.Random(seed)
    results: dict[str, Tally] = {}
    with tempfile.TemporaryDirectory(prefix="inrstore-faults-") as temporary:
        work = Path(temporary)
        for kind, trial in (
            ("kill", lambda: kill_trials(work / "kill", counts["kill"], rng)),
            ("flip", lambda: flip_trials(work / "flip", counts["flip"], rng)),
            ("bitstream", lambda: bitstream_trials(work / "bits", counts["bitstream"], rng)),
            ("readers", lambda: reader_trials(work / "readers", counts["readers"])),
        ):
            started = time.monotonic()
            results[kind] = trial()
            results[kind].examples["seconds"] = [f"{time.monotonic() - started:.0f}"]
            print(kind, dict(results[kind].counts), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inrstore.bench.faults")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="run the suite (the default)")
    for target in (parser, run):
        target.add_argument("--tier", choices=sorted(TIERS), default="quick")
        target.add_argument("--seed", type=int, default=0)
        target.add_argument("--out", type=Path, default=None)
    add = commands.add_parser("child-add")
    add.add_argument("store")
    add.add_argument("folder")
    add.add_argument("--kill-in-commit", type=int, default=0)
    add.add_argument("--kill-at-create", action="store_true")
    read = commands.add_parser("child-read")
    read.add_argument("store")
    read.add_argument("expected")
    bits = commands.add_parser("child-bitstreams")
    bits.add_argument("cases")
    bits.add_argument("first", type=int)
    reader = commands.add_parser("child-reader")
    reader.add_argument("store")
    reader.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    if args.command == "child-add":
        child_add(args.store, args.folder, args.kill_in_commit, args.kill_at_create)
    elif args.command == "child-read":
        child_read(args.store, args.expected)
    elif args.command == "child-bitstreams":
        child_bitstreams(args.cases, args.first)
    elif args.command == "child-reader":
        child_reader(args.store, args.seconds)
    else:
        return _report(args.tier, args.seed, args.out)
    return 0


def _report(tier: str, seed: int, out: Path | None) -> int:
    from inrstore.bench.run import write_report

    started = time.monotonic()
    results = run_suite(tier, seed)
    report = {
        "name": "faults",
        "seconds": round(time.monotonic() - started, 1),
        "results": {kind: tally.to_json() for kind, tally in results.items()},
    }
    if out is not None:
        write_report(out / "faults.json", report, {"tier": tier, "seed": seed, **TIERS[tier]})
    bad = sum(t.counts[o] for t in results.values() for o in ("lost", "partial", "wrong pixels",
                                                               "crash", "hang"))  # fmt: skip
    print(json.dumps({k: dict(t.counts) for k, t in results.items()}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
