"""The memory a generator's training step and a stylized picture take, measured against the estimates that
``nst train-generator`` and ``nst stylize`` check before they start (``Recipe.memory``,
``generator.stylize_bytes``). Run by hand: ``.venv/bin/python bench/generator_memory.py`` (``--quick``
checks that it runs; a few minutes otherwise, most of it in the first training steps).

Each case runs in a fresh process: two training steps (random VGG-19 weights, one content image the size
of a crop), or one stylized picture. ``measured`` is that process's peak resident memory minus its memory
before the work (torch and the VGG-19 loaded); ``estimated`` is what the check compares with the memory
free. The estimates count float32 feature maps; in bfloat16 the measured peak is lower still.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from nst_lib.figures import Table
from nst_lib.vgg import describe_device

# What one case does in its own process; it prints its memory before the work and its peak, in bytes.
PROBE = """
import json, sys, torch
from nst_lib.generator import Generator, stylize
from nst_lib.generator import Recipe
from nst_lib.training import train_generator
from nst_lib.vgg import VGG19

def memory(field):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(field))

mode, precision, channels, blocks, batch, size = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
if mode == "train":
    model = VGG19("random", precision=precision)
    images = [torch.rand(1, 3, size, size) for _ in range(2)]
    before = memory("VmRSS")
    recipe = Recipe(steps=2, batch=batch, crop_size=size, channels=channels, residual_blocks=blocks, scales=(1, 1))
    train_generator(images[:1], images[1:], model=model, recipe=recipe, progress=False)
else:
    image = torch.rand(1, 3, size, size)
    before = memory("VmRSS")
    stylize(Generator(channels, blocks), image, bfloat16=precision == "bfloat16")
print(json.dumps({"before": before, "peak": memory("VmHWM")}))
"""

# (what, precision, channels, residual blocks, batch, size in px)
CASES = [
    ("train", "float32", 32, 5, 1, 128), ("train", "float32", 32, 5, 4, 128), ("train", "float32", 64, 5, 2, 128),
    ("train", "float32", 32, 20, 2, 128), ("train", "float32", 32, 5, 1, 256), ("train", "bfloat16", 32, 5, 4, 128),
    ("stylize", "float32", 32, 5, 1, 512), ("stylize", "float32", 32, 5, 1, 1024),
    ("stylize", "float32", 64, 5, 1, 1024), ("stylize", "float32", 32, 5, 1, 2048),
    ("stylize", "bfloat16", 32, 5, 1, 1024),
]
QUICK = [("train", "float32", 8, 1, 1, 32), ("stylize", "float32", 8, 1, 1, 64)]


def estimate(mode: str, channels: int, blocks: int, batch: int, size: int) -> int:
    from nst_lib.generator import stylize_bytes
    from nst_lib.losses import LossSpec
    from nst_lib.generator import Recipe

    if mode == "train":
        recipe = Recipe(batch=batch, crop_size=size, channels=channels, residual_blocks=blocks)
        return recipe.memory(LossSpec())
    return stylize_bytes(channels, blocks, (size, size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two tiny cases, to check that the bench runs")
    args = parser.parse_args()
    rows = []
    for mode, precision, channels, blocks, batch, size in QUICK if args.quick else CASES:
        done = subprocess.run([sys.executable, "-c", PROBE, mode, precision, str(channels), str(blocks), str(batch),
                               str(size)], capture_output=True, text=True, check=True)
        measured = json.loads(done.stdout.splitlines()[-1])
        used = measured["peak"] - measured["before"]
        guessed = estimate(mode, channels, blocks, batch, size)
        rows.append({"what": mode, "precision": precision, "channels": channels, "blocks": blocks, "batch": batch,
                     "px": size, "measured MiB": round(used / 2**20), "estimated MiB": round(guessed / 2**20),
                     "estimate / measured": round(guessed / max(used, 1), 2)})
    import torch

    print(f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}")
    print(Table(rows))


if __name__ == "__main__":
    main()
