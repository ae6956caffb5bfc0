"""Speed and memory of nst_lib on this machine. Run by hand: ``make bench``.

Prints a table and writes ``bench/results/speed.json``. In one run it measures:

1. the floor: a bare VGG-19 (torchvision's layers, in-place ReLU, nothing else)
   forward to conv5_1 and backward to the input image only;
2. nst_lib's time per evaluation for style transfer (conv4_2 and five style
   layers): clamp, features, Gram matrices, losses, backward, as the optimizer
   runs it. Goal: within 10% of the floor at the same precision;
3. time to quality at 512 px: the total loss that plain L-BFGS (float32,
   NCHW tensors, single scale) reaches after 300 evaluations is the target;
   each lever, added one after the other, is timed until its float32 loss is
   at the target. Goal: the default at least 2x faster;
4. peak memory (resident set) of one evaluation at 512 and 1024 px.

``--quick`` shrinks everything (sizes, budgets) to check that the script runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchvision

from nst_lib import VGG19, load_image, transfer
from nst_lib.figures import Table
from nst_lib.files import atomic_write
from nst_lib.losses import STYLE_SCALE, perceptual_objective
from nst_lib.profiles import CONTENT_LAYERS, STYLE_LAYERS, STYLE_WEIGHT
from nst_lib.vgg import describe_device

RESULTS = Path(__file__).resolve().parent / "results"
LAYERS = [*STYLE_LAYERS, *CONTENT_LAYERS]
CONTENT, STYLE = "tubingen", "starry_night"


def machine() -> str:
    return f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def timed(function, repeats: int) -> float:
    """Median seconds of ``function()`` over ``repeats`` runs, after one warm-up."""
    function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


# --------------------------------------------------------------------------------------
# 1 and 2: per-evaluation cost


def floor_step(size: int, bfloat16: bool):
    """One bare forward (to conv5_1) and backward (to the input) of torchvision's VGG-19 on an
    image of the content's shape, in its fastest form here: weights already in the precision,
    channels-last."""
    dtype = torch.bfloat16 if bfloat16 else torch.float32
    network = torchvision.models.vgg19(weights=None).features[:29].eval().requires_grad_(False)
    network = network.to(dtype).to(memory_format=torch.channels_last)
    image = torch.rand(1, 3, *load_image(CONTENT, size).shape[-2:])  # the same shape nst_step optimizes

    def step():
        x = image.clone().requires_grad_(True)
        out = network(x.to(dtype).contiguous(memory_format=torch.channels_last))
        out.float().sum().backward()

    return step


def nst_step(size: int, precision: str, channels_last: bool = True):
    """One evaluation of nst_lib's style-transfer objective, as optimize_image runs it."""
    model = VGG19(precision=precision, channels_last=channels_last)
    objective = perceptual_objective(
        model, load_image(CONTENT, size), [load_image(STYLE, size)], CONTENT_LAYERS, STYLE_LAYERS
    )
    image = torch.rand(1, 3, *load_image(CONTENT, size).shape[-2:])

    def step():
        x = image.clone().requires_grad_(True)
        shown = x.clamp(0, 1)
        terms = objective(shown)
        total = terms["content"] + STYLE_SCALE * STYLE_WEIGHT * terms["style"]
        (total + (x - shown).pow(2).mean()).backward()

    return step


def per_evaluation(sizes, repeats):
    rows = []
    for size in sizes:
        for precision in ("float32", "bfloat16"):
            floor = timed(floor_step(size, precision == "bfloat16"), repeats)
            ours = timed(nst_step(size, precision), repeats)
            rows.append(
                {
                    "size": size,
                    "precision": precision,
                    "floor s": floor,
                    "nst_lib s": ours,
                    "overhead": f"{100 * (ours / floor - 1):+.1f}%",
                    "goal (<= +10%)": "met" if ours <= 1.1 * floor else "missed",
                }
            )
            print(rows[-1], flush=True)
    return rows


# --------------------------------------------------------------------------------------
# 3: time to quality


def float32_total(image, size) -> float:
    """The float32 single-scale objective of ``image``: the yardstick for every lever."""
    model = VGG19(precision="float32")
    objective = perceptual_objective(
        model, load_image(CONTENT, size), [load_image(STYLE, size)], CONTENT_LAYERS, STYLE_LAYERS
    )
    with torch.no_grad():
        terms = objective(image)
    return float(terms["content"] + STYLE_SCALE * STYLE_WEIGHT * terms["style"])


# Each lever adds to the one before it; the last line is the library's default.
LEVERS = {
    "plain: float32, NCHW, single scale": {"precision": "float32", "channels_last": False},
    "+ channels-last": {"precision": "float32"},
    "+ bfloat16 (the default)": {"precision": "auto"},
    "+ 2 scales": {"precision": "auto", "scales": 2},
    "+ 3 scales": {"precision": "auto", "scales": 3},
}


def run_config(size, steps, precision="auto", channels_last=True, scales=1, coarse_steps=100):
    model = VGG19(precision=precision, channels_last=channels_last)
    return transfer(
        load_image(CONTENT, size),
        [load_image(STYLE, size)],
        model=model,
        steps=steps,
        scales=scales,
        coarse_steps=coarse_steps,
        progress=False,
    )


def time_to_quality(size, budget):
    """Seconds each configuration needs to reach the plain configuration's float32 loss."""
    names = list(LEVERS)
    plain = run_config(size, budget, **LEVERS[names[0]])
    target = float32_total(plain.image, size)
    print(f"target: float32 total {target:.4g} after {budget} evaluations, {plain.seconds:.1f} s", flush=True)
    rows = [{"configuration": names[0], "final-scale evaluations": budget, "seconds to target": plain.seconds,
             "float32 total": target, "speed-up": "1.00x"}]
    for name in names[1:]:
        lever = LEVERS[name]
        probe = run_config(size, budget, **lever)
        final_scale = probe.history["total"][-budget:]
        # Where its own loss first reaches the target, then checked in float32 (bfloat16 losses differ slightly).
        steps = next((i + 1 for i, value in enumerate(final_scale) if value <= target), budget)
        result = probe if steps == budget else run_config(size, steps, **lever)
        total = float32_total(result.image, size)
        for _ in range(3):
            if total <= target or steps == budget:
                break
            steps = min(budget, int(steps * 1.1) + 1)
            result = run_config(size, steps, **lever)
            total = float32_total(result.image, size)
        reached = total <= target
        rows.append(
            {
                "configuration": name,
                "final-scale evaluations": steps,
                "seconds to target": result.seconds,
                "float32 total": total,
                "speed-up": f"{plain.seconds / result.seconds:.2f}x" if reached else "not within the budget",
            }
        )
        print(rows[-1], flush=True)
    return rows


# --------------------------------------------------------------------------------------
# 4: memory, each in a fresh process so that the high-water mark is its own


def memory_probe(size: int, precision: str, what: str) -> None:
    """Print this process's peak resident set after loading the model, or after one evaluation."""
    if what == "model":
        VGG19(precision=precision)
    else:
        nst_step(size, precision)()
    print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _probe(size: int, precision: str, what: str) -> float:
    done = subprocess.run(
        [sys.executable, __file__, "--memory-probe", str(size), precision, what],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


def memory(sizes):
    rows = []
    for size in sizes:
        for precision in ("float32", "bfloat16"):
            model = _probe(size, precision, "model")
            peak = _probe(size, precision, "evaluation")
            rows.append({"size": size, "precision": precision, "peak RSS MiB": round(peak),
                         "above the loaded model MiB": round(peak - model)})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and budgets: check that the script runs")
    parser.add_argument("--memory-probe", nargs=3, metavar=("SIZE", "PRECISION", "WHAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        memory_probe(int(args.memory_probe[0]), *args.memory_probe[1:])
        return
    sizes, quality_size, budget, memory_sizes, repeats = (
        ((64, 128), 128, 30, (128, 256), 2) if args.quick else ((256, 512), 512, 300, (512, 1024), 5)
    )
    started = time.perf_counter()
    print(f"machine: {machine()}", flush=True)
    results = {
        "machine": machine(),
        "per_evaluation": per_evaluation(sizes, repeats),
        "time_to_quality": time_to_quality(quality_size, budget),
        "memory": memory(memory_sizes),
    }
    results["seconds"] = time.perf_counter() - started
    for title, key in (("Per evaluation", "per_evaluation"), ("Time to quality", "time_to_quality"), ("Memory", "memory")):
        print(f"\n{title} ({results['machine']})")
        print(Table(results[key], digits=4))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("speed_quick.json" if args.quick else "speed.json")
    with atomic_write(path, "w") as handle:
        json.dump(results, handle, indent=1)
    print(f"\nwrote {path} ({results['seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
