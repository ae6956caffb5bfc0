"""Whether precision="auto" picks the faster precision on this processor, shown by measurement.

Run by hand: ``.venv/bin/python bench/precision.py`` (about 2 minutes; ``--quick``: 64 px, one case).

oneDNN can be limited to fewer instructions than the processor has (``ONEDNN_MAX_CPU_ISA``), which
makes one machine stand in for others: ``AVX512_CORE`` is a processor with AVX-512 but no BF16
instructions (oneDNN still offers bfloat16 there, emulated), ``AVX2`` one without AVX-512 (it offers
none). For each case, in a fresh process with an empty cache: whether oneDNN offers bfloat16, one
evaluation of the default objective in each precision (``optimize.seconds_per_evaluation``: in turn,
one thread, the median), and what "auto" chose (``vgg.precision_choice``) with its reason. "auto" is
right where it chose the precision with the smaller time.

Prints a table and writes ``bench/results/precision.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {"this processor": None, "AVX-512 without BF16": "AVX512_CORE", "AVX2, no AVX-512": "AVX2"}

PROBE = """
import json, statistics, sys, torch
from nst_lib.optimize import seconds_per_evaluation
from nst_lib.vgg import VGG19, precision_choice
from nst_lib.timing import load_average
size, repeats = int(sys.argv[1]), int(sys.argv[2])
offered = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
choice = precision_choice(torch.device("cpu"))
image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
models = {name: VGG19("random", precision=name) for name in ("float32", "bfloat16")}
jobs = {name: {"content": image, "styles": [image], "model": model} for name, model in models.items()}
times = seconds_per_evaluation(jobs, model=models["float32"], repeats=repeats)
print(json.dumps({"offered": offered, "chosen": choice.precision, "reason": choice.reason, "load": load_average(),
                  **{name: statistics.median(values) for name, values in times.items()}}))
"""


def measure(limit: str | None, size: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        environment = {**os.environ, "NST_CACHE_DIR": cache}
        environment.pop("ONEDNN_MAX_CPU_ISA", None)
        if limit:
            environment["ONEDNN_MAX_CPU_ISA"] = limit
        done = subprocess.run([sys.executable, "-c", PROBE, str(size), str(repeats)], env=environment,
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="64 px, this processor only: check that the script runs")
    parser.add_argument("--size", type=int, default=256, help="picture side of the timed evaluations (px)")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations of each precision")
    args = parser.parse_args()
    cases = dict(list(CASES.items())[:1]) if args.quick else CASES
    size = 64 if args.quick else args.size
    from nst_lib.vgg import describe_device
    import torch

    rows = []
    for name, limit in cases.items():
        measured = measure(limit, size, args.repeats)
        faster = "bfloat16" if measured["bfloat16"] < measured["float32"] else "float32"
        rows.append({"case": name, "ONEDNN_MAX_CPU_ISA": limit or "(not set)", **measured, "faster": faster,
                     "right": measured["chosen"] == faster})
    print(f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}; {size} px, one thread, median of "
          f"{args.repeats}")
    print("| case | oneDNN offers bfloat16 | float32 s | bfloat16 s | auto chose | right |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['case']} | {'yes' if row['offered'] else 'no'} | {row['float32']:.3f} | {row['bfloat16']:.3f} | "
              f"{row['chosen']} | {'yes' if row['right'] else 'NO'} |")
    for row in rows:
        print(f"{row['case']}: {row['reason']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("precision_quick.json" if args.quick else "precision.json")).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
