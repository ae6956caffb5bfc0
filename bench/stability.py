"""When does L-BFGS without a line search blow up? Run by hand: ``.venv/bin/python bench/stability.py``.

Section 3 of the report shows one setting where L-BFGS without its line search
blows up beside the guarded run. This script is the search behind that
choice: Starry Night onto Tübingen, L-BFGS without a line search (the
rollback on a non-finite loss stays on) over image sizes, style weights,
starts and learning rates, and for learning rates above 1 the same start with
the line search. For each run it prints the first and the lowest total loss,
the largest jump of the loss above the best so far, and how many evaluations
were not finite (each rolled back). Nothing here is timed, so the machine's
load does not change the numbers.

``--quick`` runs a small grid to check that the script works.
"""

from __future__ import annotations

import argparse
import itertools

from nst_lib import VGG19, load_image, transfer
from nst_lib.figures import Table
from nst_lib.losses import LossSpec

# (sizes, style weights, starts, learning rates): first the default learning rate everywhere, then larger ones.
GRID = [
    ((64,), (1e2, 1e4, 1e6, 1e8, 1e10), ("content", "noise"), (1.0,)),
    ((64,), (1e4, 1e6), ("content", "noise"), (3.0, 10.0, 100.0)),
    ((256,), (1e4,), ("content",), (1.0, 3.0, 10.0)),
]
QUICK_GRID = [((64,), (1e4,), ("content",), (1.0, 10.0))]


def one_run(model, size: int, style_weight: float, init: str, lr: float, line_search: bool, steps: int) -> dict:
    content, style = load_image("tubingen", size), load_image("starry_night", size)
    result = transfer(content, [style], model=model, loss=LossSpec(style_weight=style_weight), init=init,
                      steps=steps, lr=lr, line_search=line_search, progress=False)
    total = result.history["total"]
    jump = max((value / min(total[:i]) for i, value in enumerate(total) if i), default=1.0)
    return {
        "size": size,
        "style weight": f"{style_weight:g}",
        "start": init,
        "learning rate": f"{lr:g}",
        "line search": "yes" if line_search else "no",
        "first total": total[0],
        "lowest total": result.final_losses["total"],
        "largest jump": f"{jump:.1f}x",
        "non-finite evaluations": sum("not finite" in event for event in result.events),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small grid, to check that the script runs")
    parser.add_argument("--steps", type=int, default=200, help="evaluations per run")
    args = parser.parse_args()
    model = VGG19()
    rows = []
    for sizes, weights, inits, rates in QUICK_GRID if args.quick else GRID:
        for size, weight, init, lr in itertools.product(sizes, weights, inits, rates):
            for line_search in (False, True) if lr > 1 else (False,):
                rows.append(one_run(model, size, weight, init, lr, line_search, 20 if args.quick else args.steps))
                print(" | ".join(str(value) for value in rows[-1].values()), flush=True)
    print()
    print(repr(Table(rows)))


if __name__ == "__main__":
    main()
