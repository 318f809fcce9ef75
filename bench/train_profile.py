"""Where an iteration of the single-image encoder spends its time, by ``torch.profiler``.

Usage: ``python -m inrstore.bench.train_profile IMAGE --out FILE.txt [--device cuda]``. Trains
``best``'s model (the 24-neighbour ARM on every grid below the coarsest, all grids kept) on the
whole IMAGE and profiles iterations 11–20. The report gives the seconds per profiled iteration,
the operators by their own CPU time and by device time, and the number of kernel launches and
host–device copies: on a GPU, an encoder whose iteration costs far more on the host than on
the device is bound by launches, not by arithmetic.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from inrstore.datasets import load_image
from inrstore.models.core.architecture import image_architecture
from inrstore.models.fit.presets import Preset, quality_to_lambda
from inrstore.models.fit.train import TrainingStatus, fit_image

WAIT, WARMUP, ACTIVE = 5, 5, 10
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    pixels = load_image(args.image).pixels
    arch = image_architecture(*pixels.shape, 1, 0, True)
    activities = [ProfilerActivity.CPU]
    if args.device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    profiler = profile(
        activities=activities, schedule=schedule(wait=WAIT, warmup=WARMUP, active=ACTIVE)
    )
    stamps: list[float] = []

    def step(status: TrainingStatus) -> None:
        stamps.append(time.perf_counter())
        profiler.step()

    with profiler:
        preset = Preset("profile", WAIT + WARMUP + ACTIVE, arch.arm_levels)
        lam = quality_to_lambda(50)
        fit_image(pixels, arch, preset, lam, device=args.device, on_status=step, status_every=1)
    events = profiler.key_averages()
    launches = sum(event.count for event in events if event.key in LAUNCHES)
    copies = {event.key: event.count for event in events if "Memcpy" in event.key}
    device_sort = "cuda_time_total" if args.device == "cuda" else "cpu_time_total"
    seconds = (stamps[-1] - stamps[-1 - ACTIVE]) / ACTIVE
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        f"{args.image.name} {pixels.shape[1]}x{pixels.shape[0]} on {_device_name(args.device)}\n"
        f"seconds per profiled iteration: {seconds:.4f}\n"
        f"kernel launches per iteration: {launches / ACTIVE:.0f}\n"
        f"copies per iteration: { {key: count / ACTIVE for key, count in copies.items()} }\n\n"
        + events.table(sort_by="self_cpu_time_total", row_limit=30)
        + "\n\n"
        + events.table(sort_by=device_sort, row_limit=20)
        + "\n"
    )


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else "cpu"


if __name__ == "__main__":
    main()
