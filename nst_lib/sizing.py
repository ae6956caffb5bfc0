"""How large a local cluster should be: the memory one optimization needs, and the layout of
workers x threads that finishes a batch soonest, from a measurement of this machine.

Nothing here starts a cluster (``cluster.local_cluster`` does, from a ``Layout``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from . import profiles
from .jobs import torch_threads
from .losses import LossSpec
from .vgg import LAYER_INDEX, LAYER_NAMES, VGG19, check_layers, layer_channels, layer_scale

# Up to this many cores one process with all of them beats a cluster (see bench/fanout.py).
IN_PROCESS_CORES = 2


def available_cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def available_memory() -> int:
    """Bytes of memory the machine has free now."""
    import psutil  # comes with distributed

    return psutil.virtual_memory().available


# A process that holds torch and a VGG-19 (float32 weights plus a bfloat16 copy), before any work:
# 935 MiB in bench/speed.py's peak-memory run (1363 MiB peak minus 428 MiB for the evaluation).
PROCESS_BYTES = 950 * 2**20
# An evaluation's peak over the forward activations it keeps (the same run: 428 MiB for 335 MB).
EVALUATION_FACTOR = 1.35


def activation_values(shape: tuple[int, int], layers: Sequence[str] = ("conv5_1",)) -> int:
    """Values in the feature maps that a forward pass of one image of ``shape`` (H, W) up to the deepest of
    ``layers`` keeps for its backward pass (each convolution's output, rectified in place, and each pooling's)."""
    height, width = shape
    deepest = max(LAYER_INDEX[name] for name in check_layers(layers))
    total = 0
    for name in LAYER_NAMES[: deepest + 1]:
        if not name.startswith("relu"):
            scale = layer_scale(name)
            total += layer_channels(name) * (height // scale) * (width // scale)
    return total


def optimization_bytes(shape: tuple[int, int], bytes_per_value: int = 4) -> int:
    """Memory one worker needs for one optimization of an image of ``shape`` (H, W): the process
    with its network, an evaluation's peak, and L-BFGS's history of image-sized vectors."""
    evaluation = EVALUATION_FACTOR * activation_values(shape) * bytes_per_value
    history = 2 * profiles.HISTORY_SIZE * 3 * shape[0] * shape[1] * 4
    return int(PROCESS_BYTES + evaluation + history)


def free_memory(device: torch.device) -> tuple[int, int]:
    """(bytes free now, bytes in all) of the memory that work on ``device`` draws on: the GPU's own for CUDA,
    else the machine's (what Linux calls available, within a cgroup's limit where there is one)."""
    if device.type == "cuda":
        return tuple(torch.cuda.mem_get_info(device))
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        free, total = (int(info[name].split()[0]) * 1024 for name in ("MemAvailable", "MemTotal"))
    except (OSError, KeyError, ValueError):  # not Linux
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * size, pages * size
    try:  # a container's limit (cgroup v2)
        limit, used = (Path("/sys/fs/cgroup", name).read_text().strip() for name in ("memory.max", "memory.current"))
        if limit != "max":
            free, total = min(free, int(limit) - int(used)), min(total, int(limit))
    except (OSError, ValueError):
        pass
    return free, total


def check_memory(needed: int, device: torch.device, what: str, fix: str) -> None:
    """Raise a one-sentence ValueError when ``what`` needs more than the ``needed`` bytes ``device`` has free."""
    free, total = free_memory(device)
    if needed > free:
        where = "this GPU" if device.type == "cuda" else "this machine"
        raise ValueError(f"{what} needs about {needed / 2**30:,.1f} GiB of memory, and {where} has "
                         f"{free / 2**30:.1f} GiB free (of {total / 2**30:.1f} GiB): {fix}.")


@dataclass(frozen=True)
class Layout:
    """Workers x torch threads per worker for a local cluster, and why."""

    workers: int
    threads: int
    memory_limit: int  # bytes per worker
    reason: str

    @property
    def shape(self) -> tuple[int, int]:
        return self.workers, self.threads


def plan_layout(
    cores: int, memory: int, task_bytes: int, seconds: dict[int, float], tasks: int | None = None
) -> Layout:
    """The layout that finishes soonest: ``seconds`` maps torch threads to the measured seconds of one
    evaluation; with ``tasks`` known, a batch of that many jobs takes ceil(tasks / workers) rounds,
    otherwise the evaluations per second of the whole cluster count. Workers are capped by the cores
    and by how many optimizations of ``task_bytes`` fit in ``memory``."""
    by_memory = int(memory // task_bytes)
    if by_memory < 1:
        raise ValueError(f"One optimization needs about {task_bytes / 2**30:.1f} GiB but only "
                         f"{memory / 2**30:.1f} GiB are free: use a smaller size or fewer workers' threads.")
    best = None
    for threads, per_evaluation in sorted(seconds.items()):
        workers = min(cores // threads, by_memory, tasks or cores)
        if workers < 1:
            continue
        cost = math.ceil(tasks / workers) * per_evaluation if tasks else per_evaluation / workers
        if best is None or cost < best[0] - 1e-12:
            best = (cost, workers, threads)
    _, workers, threads = best
    why = ", ".join(f"{t} thread{'s' * (t > 1)} {s:.3g} s" for t, s in sorted(seconds.items()))
    limit = "memory" if workers == by_memory and by_memory < cores // threads else "cores"
    return Layout(workers, threads, int(memory // workers),
                  f"one evaluation: {why}; workers limited by {limit} ({task_bytes / 2**30:.2f} GiB per optimization)")


def measure_threads(model: VGG19, size: int, candidates: Sequence[int]) -> dict[int, float]:
    """Seconds of one style-transfer evaluation at ``size`` px with each number of torch threads
    (the best of two after a warm-up), measured in this process."""
    generator = torch.Generator().manual_seed(0)
    content, style = (torch.rand(1, 3, size, size, generator=generator) for _ in range(2))
    objective = LossSpec().objective(model, content.to(model.device), [style.to(model.device)])
    image = content.to(model.device).requires_grad_(True)
    seconds = {}
    for threads in candidates:
        with torch_threads(threads):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                sum(objective(image).values()).backward()
                times.append(time.perf_counter() - start)
        seconds[threads] = min(times[1:])
    return seconds


def thread_candidates(cores: int) -> list[int]:
    """1, 2, 4, ... up to ``cores``."""
    return [2**k for k in range(int(math.log2(cores)) + 1)]

