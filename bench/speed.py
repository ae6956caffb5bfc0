"""Speed and memory of nst_lib on this machine. Run by hand: ``make bench``.

Prints a table and writes ``bench/results/speed.json``. In one run it measures:

1. the floor: a bare VGG-19 (torchvision's layers holding the Oxford weights,
   in-place ReLU, nothing else) forward to the deepest layer the objective
   reads (relu5_1: conv5_1 after its ReLU) and backward to the input image only;
2. nst_lib's time per evaluation for style transfer (conv4_2 and five style
   layers): clamp, features, Gram matrices, losses, backward, as the optimizer
   runs it, channels-last (the default) and NCHW, and with the other reading of
   the layers (before the ReLU). Goal: within 10% of the floor at the same
   precision. Floor and nst_lib alternate, run by run;
3. time to quality at 512 px: the total loss that plain L-BFGS (float32,
   NCHW tensors, single scale) reaches after 300 evaluations is the target;
   each lever, added one after the other, runs until its picture, measured in
   float32, is at the target. The configurations are timed in turns, one
   evaluation each (see ``Turns``). Goal: the default at least 2x faster;
4. peak memory (resident set) of one evaluation at 512 and 1024 px, and how
   much of it the evaluation itself adds to the model and targets.

``--quick`` shrinks everything (sizes, budgets) to check that the script runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import torchvision

from nst_lib import VGG19, load_image, transfer
from nst_lib.figures import Table
from nst_lib.files import atomic_write
from nst_lib.losses import LossSpec
from nst_lib.profiles import PRE_RELU
from nst_lib.vgg import LAYER_INDEX, describe_device, source_layer

RESULTS = Path(__file__).resolve().parent / "results"
LAYERS = LossSpec().layers
CONTENT, STYLE = "tubingen", "starry_night"


def machine() -> str:
    return f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def timed_group(functions, rounds: int) -> list[float]:
    """Median seconds of each of ``functions``, after one warm-up each, taken in alternation
    so that a change in the machine's speed during the run touches all of them alike."""
    for function in functions:
        function()
    samples = [[] for _ in functions]
    for _ in range(rounds):
        for function, times in zip(functions, samples):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


# --------------------------------------------------------------------------------------
# 1 and 2: per-evaluation cost


def floor_step(size: int, bfloat16: bool):
    """One bare forward (to the deepest layer the objective reads) and backward (to the input) of
    torchvision's VGG-19 layers holding the same Oxford weights, on an image of the content's
    shape, in its fastest form here: weights already in the precision, channels-last, in-place ReLU."""
    dtype = torch.bfloat16 if bfloat16 else torch.float32
    oxford = VGG19(precision="float32")
    deepest = max(LAYER_INDEX[source_layer(name, PRE_RELU)] for name in LAYERS)  # same order as torchvision's
    network = torchvision.models.vgg19(weights=None).features[: deepest + 1]
    with torch.no_grad():
        convs = [module for module in oxford.layers.values() if isinstance(module, torch.nn.Conv2d)]
        for theirs, ours in zip((m for m in network if isinstance(m, torch.nn.Conv2d)), convs):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    network = network.eval().requires_grad_(False).to(dtype).to(memory_format=torch.channels_last)
    image = torch.rand(1, 3, *load_image(CONTENT, size).shape[-2:])  # the same shape nst_step optimizes

    def step():
        x = image.clone().requires_grad_(True)
        out = network((x - oxford.input_shift).to(dtype).contiguous(memory_format=torch.channels_last))
        out.float().sum().backward()

    return step


def nst_step(size: int, precision: str, channels_last: bool = True, pre_relu: bool = PRE_RELU):
    """One evaluation of nst_lib's style-transfer objective, as optimize_image runs it."""
    model = VGG19(precision=precision, channels_last=channels_last, pre_relu=pre_relu)
    spec = LossSpec()
    objective = spec.objective(model, load_image(CONTENT, size), [load_image(STYLE, size)])
    weights = spec.weights()
    image = torch.rand(1, 3, *load_image(CONTENT, size).shape[-2:])

    def step():
        x = image.clone().requires_grad_(True)
        shown = x.clamp(0, 1)
        total = sum(weights[name] * value for name, value in objective(shown).items())
        (total + (x - shown).pow(2).mean()).backward()

    return step


def per_evaluation(sizes, rounds):
    rows = []
    for size in sizes:
        for precision in ("float32", "bfloat16"):
            floor, ours, nchw, other = timed_group(
                [floor_step(size, precision == "bfloat16"), nst_step(size, precision),
                 nst_step(size, precision, channels_last=False), nst_step(size, precision, pre_relu=not PRE_RELU)],
                rounds,
            )
            rows.append(
                {
                    "size": size,
                    "precision": precision,
                    "floor s": floor,
                    "nst_lib s": ours,
                    "overhead": f"{100 * (ours / floor - 1):+.1f}%",
                    "goal (<= +10%)": "met" if ours <= 1.1 * floor else "missed",
                    "nst_lib NCHW s": nchw,
                    f"nst_lib {'after' if PRE_RELU else 'before'} the ReLU s": other,
                }
            )
            print(rows[-1], flush=True)
    return rows


# --------------------------------------------------------------------------------------
# 3: time to quality


class Yardstick:
    """The float32, single-scale objective at full size: every configuration's picture is
    measured with it, whatever precision and scales it was made with."""

    def __init__(self, size: int):
        spec = LossSpec()
        self.shape = load_image(CONTENT, size).shape[-2:]
        content, style = load_image(CONTENT, size), load_image(STYLE, size)
        self.objective = spec.objective(VGG19(precision="float32"), content, [style])
        self.weights = spec.weights()

    def __call__(self, image: torch.Tensor) -> float:
        with torch.no_grad():
            return float(sum(self.weights[name] * value for name, value in self.objective(image).items()))


# The plain configuration sets the target; each lever adds to the one before it.
PLAIN = "plain: float32, NCHW, single scale"
LEVERS = {
    PLAIN: {"precision": "float32", "channels_last": False},
    "+ bfloat16 and channels-last (the default)": {"precision": "auto"},
    "+ 2 scales": {"precision": "auto", "scales": 2},
    "+ 3 scales": {"precision": "auto", "scales": 3},
}
COARSE_STEPS = 100  # evaluations at each coarser scale


def run_config(size, steps, precision="auto", channels_last=True, scales=1, **loop):
    return transfer(
        load_image(CONTENT, size),
        [load_image(STYLE, size)],
        model=VGG19(precision=precision, channels_last=channels_last),
        steps=steps,
        scales=scales,
        coarse_steps=COARSE_STEPS,
        progress=False,
        **loop,
    )


def evaluations_to_target(size, lever, target, yardstick, limit) -> int | None:
    """The fewest full-size evaluations after which ``lever``'s picture, measured in float32,
    is at ``target``; None when ``limit`` evaluations are not enough."""
    reached = []

    def check(count, image, losses):
        # Measured in float32 only near the target: bfloat16's own losses differ slightly.
        if image.shape[-2:] == yardstick.shape and losses["total"] <= 1.02 * target and yardstick(image) <= target:
            reached.append(count)

    run_config(size, limit, **lever, callback=check, callback_every=1, should_stop=lambda: bool(reached))
    return reached[0] if reached else None


class Turns:
    """Runs optimizations in threads one evaluation at a time each, in turn, and counts the
    seconds each spends on its own turns. On a shared machine whose speed drifts by tens of
    percent from one minute to the next, configurations timed one after the other would
    mostly measure the drift; taken in turns, all of them meet the same machine."""

    def __init__(self, count: int):
        self.condition = threading.Condition()
        self.running = list(range(count))
        self.turn = 0
        self.seconds = [0.0] * count
        self.since = 0.0

    def begin(self, index: int) -> None:
        with self.condition:
            self.condition.wait_for(lambda: self.turn == index)
            self.since = time.perf_counter()

    def end(self, index: int, finished: bool = False) -> None:
        with self.condition:
            self.seconds[index] += time.perf_counter() - self.since
            position = self.running.index(index)
            if finished:
                self.running.remove(index)
            else:
                position += 1
            if self.running:
                self.turn = self.running[position % len(self.running)]
            self.condition.notify_all()

    def run(self, jobs):
        """Run each of ``jobs`` (a function of a ``should_stop`` callable) in turns; their results."""
        results = [None] * len(jobs)

        def work(index, job):
            def next_turn():  # called before each evaluation: hand over, then wait to go on
                self.end(index)
                self.begin(index)
                return False

            self.begin(index)
            try:
                results[index] = job(next_turn)
            finally:
                self.end(index, finished=True)

        threads = [threading.Thread(target=work, args=(i, job)) for i, job in enumerate(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results


def time_to_quality(size, budget):
    """Seconds each configuration needs to reach the float32 loss of plain L-BFGS after
    ``budget`` evaluations. First untimed, each lever's evaluation count is found; then all
    configurations run again, timed, in turns."""
    yardstick = Yardstick(size)
    target = yardstick(run_config(size, budget, **LEVERS[PLAIN]).image)
    print(f"target: float32 total {target:.4g} after {budget} evaluations of the plain configuration", flush=True)
    counts = {PLAIN: budget}
    for name, lever in list(LEVERS.items())[1:]:
        counts[name] = evaluations_to_target(size, lever, target, yardstick, 2 * budget)
        print(f"{name}: {counts[name]} full-size evaluations to the target", flush=True)
    timed = [name for name, count in counts.items() if count is not None]
    turns = Turns(len(timed))
    results = turns.run(
        [lambda stop, name=name: run_config(size, counts[name], **LEVERS[name], should_stop=stop) for name in timed]
    )
    seconds = dict(zip(timed, turns.seconds))
    rows = []
    for name, lever in LEVERS.items():
        result = results[timed.index(name)] if name in timed else None
        total = yardstick(result.image) if result else float("nan")
        rows.append(
            {
                "configuration": name,
                "full-size evaluations": counts[name] if counts[name] is not None else f"> {2 * budget}",
                "seconds to target": seconds.get(name, float("nan")),
                "float32 total": total,
                "speed-up": f"{seconds[PLAIN] / seconds[name]:.2f}x" if name in seconds and total <= target
                else "target not reached",
            }
        )
        print(rows[-1], flush=True)
    return {"target": target, "rows": rows}


# --------------------------------------------------------------------------------------
# 4: memory, each in a fresh process


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def memory_probe(size: int, precision: str) -> None:
    """Print the resident set before one evaluation (model and targets ready) and its peak
    during the evaluation. Linux: writing 5 to clear_refs resets the peak (VmHWM)."""
    step = nst_step(size, precision)
    before = _status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    step()
    print(json.dumps({"before_mib": before, "peak_mib": _status_mib("VmHWM")}))


def memory(sizes):
    rows = []
    for size in sizes:
        for precision in ("float32", "bfloat16"):
            done = subprocess.run(
                [sys.executable, __file__, "--memory-probe", str(size), precision],
                capture_output=True, text=True, check=True,
            )
            probe = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({"size": size, "precision": precision, "peak RSS MiB": round(probe["peak_mib"]),
                         "evaluation's own MiB": round(probe["peak_mib"] - probe["before_mib"])})
            print(rows[-1], flush=True)
    return rows


PARTS = ("per-evaluation", "time-to-quality", "memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and budgets: check that the script runs")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="measure only these parts (default: all three)")
    parser.add_argument("--memory-probe", nargs=2, metavar=("SIZE", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        memory_probe(int(args.memory_probe[0]), args.memory_probe[1])
        return
    sizes, quality_size, budget, memory_sizes, rounds = (
        ((64, 128), 128, 30, (128, 256), 2) if args.quick else ((256, 512), 512, 300, (512, 1024), 15)
    )
    started = time.perf_counter()
    print(f"machine: {machine()}", flush=True)
    results = {"machine": machine()}
    tables = []
    if "per-evaluation" in args.parts:
        results["per_evaluation"] = per_evaluation(sizes, rounds)
        tables.append(("Per evaluation, median of alternating runs", results["per_evaluation"]))
    if "time-to-quality" in args.parts:
        quality = results["time_to_quality"] = time_to_quality(quality_size, budget)
        tables.append((f"Time to quality at {quality_size} px: target float32 total {quality['target']:.4g}, "
                       f"taken in turns", quality["rows"]))
    if "memory" in args.parts:
        results["memory"] = memory(memory_sizes)
        tables.append(("Memory", results["memory"]))
    results["seconds"] = time.perf_counter() - started
    print(f"\nmachine: {results['machine']}")
    for title, rows in tables:
        print(f"\n{title}")
        print(Table(rows, digits=4))
    RESULTS.mkdir(exist_ok=True)
    name = "speed" + ("_quick" if args.quick else "") + ("" if args.parts == list(PARTS) else "_" + "_".join(args.parts))
    path = RESULTS / f"{name}.json"
    with atomic_write(path, "w") as handle:
        json.dump(results, handle, indent=1)
    print(f"\nwrote {path} ({results['seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
