"""Seconds per training step and per stylized picture of a feed-forward generator. Run by hand on an
idle machine: ``.venv/bin/python bench/generator_speed.py`` (``--quick`` checks that it runs).

Prints two tables and writes ``bench/results/generator_speed.json`` (gitignored):

1. a training step (a batch of crops through the generator and the VGG-19, the loss, the backward
   pass, Adam) at each profile's crop size and batch, in three forms: everything in float32; the
   VGG-19 in bfloat16 and channels-last with the generator in float32 (how training ran before the
   generator used autocast); both in bfloat16 (the default where the CPU has AVX512-BF16 or AMX);
2. one stylized picture (a forward pass) at 256 and 512 px, in float32 and in bfloat16.

The forms are timed in turns, one run each, so that a change in the machine's speed touches all of
them alike; each figure is a median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from nst_lib import VGG19, LossSpec, load_image
from nst_lib.figures import Table
from nst_lib.files import atomic_write
from nst_lib.generator import Generator, stylize
from nst_lib.losses import PerceptualLoss
from nst_lib.profiles import PROFILES
from nst_lib.training import train_step
from nst_lib.vgg import describe_device

RESULTS = Path(__file__).resolve().parent / "results"
STYLE, CONTENT = "starry_night", "hoovertowernight"
# (label, VGG-19 precision, generator in bfloat16)
FORMS = [("all float32", "float32", False), ("VGG bfloat16, generator float32", "bfloat16", False),
         ("all bfloat16 (default here)", "bfloat16", True)]


def in_turns(functions, rounds: int) -> list[float]:
    """Median seconds of each function, after one warm-up each, taken in alternation."""
    for function in functions:
        function()
    samples = [[] for _ in functions]
    for _ in range(rounds):
        for function, times in zip(functions, samples):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
    return [statistics.median(times) for times in samples]


def step_of(precision: str, bfloat16: bool, crop: int, batch: int, style: torch.Tensor):
    """One training step of a fresh generator, as ``train_generator`` takes it."""
    model = VGG19(precision=precision)
    objective = PerceptualLoss(LossSpec(), model, None, [style])
    torch.manual_seed(0)
    network = Generator().train()
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    crops = torch.rand(batch, 3, crop, crop, generator=torch.Generator().manual_seed(0))
    return lambda: train_step(network, optimizer, objective, crops, step=0, lr=1e-3, bfloat16=bfloat16)


def training_steps(profiles, rounds: int, style: torch.Tensor) -> list[dict]:
    rows = []
    for profile in profiles:
        crop, batch = profile.generator_size, profile.generator_batch
        times = in_turns([step_of(precision, fast, crop, batch, style) for _, precision, fast in FORMS], rounds)
        for (label, *_), seconds in zip(FORMS, times):
            rows.append({"profile": profile.name, "crops": f"{batch} x {crop} px", "form": label,
                         "s/step": seconds, "x all float32": times[0] / seconds})
            print(rows[-1], flush=True)
    return rows


def passes(sizes, rounds: int) -> list[dict]:
    torch.manual_seed(0)
    network = Generator().eval()
    rows = []
    for size in sizes:
        image = load_image(CONTENT, size)
        times = in_turns([lambda: stylize(network, image, bfloat16=False),
                          lambda: stylize(network, image, bfloat16=True)], rounds)
        for label, seconds in zip(("float32", "bfloat16"), times):
            height, width = image.shape[-2:]
            rows.append({"picture": f"{width} x {height} px", "precision": label, "s/pass": seconds,
                         "x float32": times[0] / seconds})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few rounds: check that it runs")
    args = parser.parse_args()
    machine = f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(machine, flush=True)
    style = load_image(STYLE, 256)
    if args.quick:
        profiles, sizes, rounds = [PROFILES["quick"]], [64], 2
    else:
        profiles, sizes, rounds = [PROFILES["standard"], PROFILES["full"]], [256, 512], 7
    steps = training_steps(profiles, rounds, style)
    pictures = passes(sizes, rounds)
    print(f"\nTraining step ({machine}; median of {rounds} in turns):\n{Table(steps)!r}")
    print(f"\nStylizing one picture:\n{Table(pictures)!r}")
    RESULTS.mkdir(exist_ok=True)
    with atomic_write(RESULTS / "generator_speed.json", "w") as handle:
        json.dump({"machine": machine, "training_steps": steps, "passes": pictures}, handle, indent=1)


if __name__ == "__main__":
    main()
