"""The precision that ``precision="auto"`` runs in on this machine, chosen by a measurement.

bfloat16 halves the work of a convolution only where the processor computes it natively (AVX512-BF16,
AMX, a recent GPU). oneDNN's own check (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) says whether it
has bfloat16 kernels at all, not whether they are fast: a processor with AVX-512 but no BF16
instructions says yes and emulates them. Measured on a 2-core AMD EPYC limited to those instructions
(``ONEDNN_MAX_CPU_ISA=AVX512_CORE``), an evaluation at 256 px took 1.26 s in bfloat16 against 0.46 s in
float32; with its BF16 instructions, 0.23 s against 0.49 s (docs/speed.md, "How auto chooses").

So on a CPU that oneDNN says can run bfloat16, "auto" times one evaluation in each precision (the
caller's: ``vgg.precision_choice`` passes a forward and backward pass of a random-weight VGG-19 to the
layers the default objective reads), in turn, ``REPEATS`` times after one untimed pass each
(``timing.alternated``, one thread, ``MEASURE_SIZE`` px: the ratio was the same from 64 to 512 px, and
this size takes about a second), and picks bfloat16 when the median ratio says it is at least ``FASTER``
times as fast: it costs precision, so it must buy time. The choice is made once per machine, on first
use, and remembered in ``<cache>/precision.json`` (``assets.cache_dir``; delete the file to measure again), so that every
process, and every build, computes in the same precision and finds the same results in the store. A
CUDA GPU runs bfloat16 where torch says it supports it; other devices run float32.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import torch

from . import timing
from .assets import cache_dir
from .files import atomic_write

MEASURE_SIZE = 128
REPEATS = 4
FASTER = 1.15
FILE = "precision.json"
FORMAT = "nst_lib.precision/1"
# Environment variables that limit the instructions oneDNN uses, hence what bfloat16 costs.
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


@dataclass(frozen=True)
class Choice:
    """What "auto" runs in on a device, and why, in a sentence."""

    precision: str  # "bfloat16" or "float32"
    reason: str


_chosen: dict[str, Choice] = {}
_lock = threading.Lock()


def choose(device: torch.device, evaluation: Callable[[str], Callable[[], object]], processor: str) -> Choice:
    """The precision "auto" runs in on ``device`` (see the module's text); measured at most once per machine.

    ``evaluation(precision)`` makes a function that runs one evaluation in that precision ("float32" or
    "bfloat16") at ``MEASURE_SIZE`` px; ``processor`` names the CPU (its model and cores)."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Choice("bfloat16", "this GPU supports bfloat16 (torch.cuda.is_bf16_supported)")
        return Choice("float32", "this GPU does not support bfloat16")
    if device.type != "cpu":
        return Choice("float32", f"bfloat16 is used on CPUs and CUDA GPUs only, not on {device.type}")
    if not _onednn_bfloat16():
        return Choice("float32", "oneDNN has no bfloat16 kernels for this processor")
    machine = machine_key(processor)
    with _lock:
        if machine not in _chosen:
            _chosen[machine] = _remembered(machine) or _measured(machine, evaluation)
        return _chosen[machine]


@lru_cache(maxsize=1)
def bfloat16_features() -> list[str]:
    """The processor's bfloat16 instructions (Linux: the flags of /proc/cpuinfo): AMX tiles, AVX-512 BF16,
    or none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted({flag for flag in line.split(":", 1)[1].split() if flag in ("amx_bf16", "avx512_bf16")})
    except OSError:
        pass
    return []


def machine_key(processor: str) -> str:
    """What the measurement is remembered under: the processor, its bfloat16 instructions, torch, and a limit
    set on the instructions oneDNN may use."""
    features = "+".join(bfloat16_features()) or "no bfloat16 instructions"
    limits = [f"{name}={os.environ[name]}" for name in ISA_VARIABLES if os.environ.get(name)]
    return "; ".join([processor, features, f"torch {torch.__version__}", *limits])


@lru_cache(maxsize=1)
def _onednn_bfloat16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _measured(machine: str, evaluation: Callable[[str], Callable[[], object]]) -> Choice:
    """Time both precisions here, decide, and remember the outcome for the next process."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: a busy machine slows it in proportion (see optimize.seconds_per_evaluation)
    try:
        tasks = {name: _timed(evaluation(name)) for name in ("float32", "bfloat16")}
        times = timing.alternated(tasks, repeats=REPEATS)
    finally:
        torch.set_num_threads(before)
    ratio, _ = timing.ratio(times, "float32", "bfloat16")
    record = {
        "precision": "bfloat16" if ratio >= FASTER else "float32",
        "float32_s": round(statistics.median(times["float32"]), 4),
        "bfloat16_s": round(statistics.median(times["bfloat16"]), 4),
        "ratio": round(ratio, 2), "size": MEASURE_SIZE, "repeats": REPEATS, "load": timing.load_average(),
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    choice = Choice(record["precision"], _reason(record))
    _remember(machine, {**record, **asdict(choice)})
    return choice


def _timed(run: Callable[[], object]) -> Callable[[], float]:
    """``run`` once untimed (the first pass at a size builds what later ones reuse), then a function that
    runs it and returns its seconds."""
    run()

    def timed() -> float:
        started = time.perf_counter()
        run()
        return time.perf_counter() - started
    return timed


def _reason(record: dict) -> str:
    timed = (f"{record['bfloat16_s']:.3f} s per evaluation against {record['float32_s']:.3f} s at {record['size']} px, "
             f"measured {record['measured']}")
    if record["precision"] == "bfloat16":
        return f"bfloat16 measured {record['ratio']:.2f}x as fast as float32 on this processor ({timed})"
    return (f"bfloat16 measured only {record['ratio']:.2f}x as fast as float32 on this processor ({timed}): "
            f"oneDNN runs it, but not {FASTER:g}x faster")


def _file() -> Path:
    return cache_dir() / FILE


def _remembered(machine: str) -> Choice | None:
    """The choice measured earlier on this machine, or None (none yet, or a file that cannot be read)."""
    try:
        record = json.loads(_file().read_text())["machines"][machine]
        if record["precision"] in ("bfloat16", "float32"):
            return Choice(record["precision"], str(record["reason"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _remember(machine: str, record: dict) -> None:
    """Add this machine's measurement to the file; where it cannot be written, the choice holds for this
    process only (and the next one measures again)."""
    path = _file()
    try:
        known = json.loads(path.read_text())["machines"]
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError, KeyError, TypeError):
        known = {}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as handle:
            json.dump({"format": FORMAT, "machines": {**known, machine: record}}, handle, indent=1)
    except OSError:
        pass
