"""Judging generators on photos they never saw: what one forward pass is worth.

Johnson et al. (2016) compare a trained generator with per-image optimization
under the same loss: for each held-out photo, L-BFGS from noise under the same
``LossSpec``, at the same size, traces a *reference curve* (its total loss per
evaluation); the generator's total on that photo is then placed on the curve.
Its *equivalent budget* is the number of evaluations after which the
optimization's best total so far is at or below the generator's
(``generator.evaluations_to_reach``): how much optimization the one pass is
worth. A texture generator is judged the same way against texture synthesis
from noise (content weight 0), one curve per noise seed.

Curves cost a whole optimization each, so ``reference_curves`` can keep them in
a folder (``bench/results/curves`` for the benches and ``make generators``), as
JSON files named by a digest of everything the curve depends on: photo and style
pixels, loss, seed, VGG-19 weights, pooling, layer reading and precision. A
longer curve serves a shorter request: L-BFGS without a line search spends one
evaluation a step, so its first N evaluations are those of a run of N. Scoring a
generator against cached curves costs forward passes only.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from . import keys, profiles
from .files import atomic_write
from .generator import Generator, evaluations_to_reach, seeded_noise, stylize
from .losses import LossSpec
from .optimize import transfer

# The size the pictures are judged at (longest side, px): profiles.SIZE. The length of each reference curve:
EVALUATIONS = 100
CURVE_FORMAT = "nst_lib.curve/1"


def curve_key(model, content: torch.Tensor | None, style: torch.Tensor, loss: LossSpec, seed: int) -> str:
    """A digest of everything a reference curve depends on but its length (see the module docstring)."""
    return keys.digest({
        "format": CURVE_FORMAT, "loss": loss, "seed": seed,
        "weights": model.weights, "pooling": model.pooling, "pre_relu": model.pre_relu,
        "bfloat16": model.uses_bfloat16(model.device), "device": model.device.type,
        "images": keys.images_digest(([] if content is None else [content]) + [style]),
    })


def reference_curve(model, content: torch.Tensor | None, style: torch.Tensor, loss: LossSpec,
                    evaluations: int = EVALUATIONS, *, seed: int = profiles.SEED, shape: Sequence[int] | None = None,
                    cache: str | os.PathLike | None = None, progress: bool | str = False,
                    description: str = "reference curve") -> dict:
    """L-BFGS from noise (seed ``seed``) on ``content`` (None: texture synthesis of ``shape``) for
    ``evaluations`` evaluations: {"total": [...], "content": [...], "style": [...] per evaluation,
    "seconds", "cpu_seconds", "evaluations"}; read from / written to the folder ``cache`` when given."""
    if content is None and loss.content_weight > 0:
        loss = loss.replace(content_weight=0.0)
    path = None
    if cache is not None:
        path = Path(cache) / f"{curve_key(model, content, style, loss, seed)}.json"
        if path.is_file():
            kept = json.loads(path.read_text())
            if kept["evaluations"] >= evaluations:
                return _first(kept, evaluations)
    started = time.process_time()
    result = transfer(content, style, model=model, loss=loss, steps=evaluations, seed=seed, shape=shape,
                      progress=progress, description=description)
    curve = {**{name: list(values) for name, values in result.history.items()},
             "seconds": result.seconds, "cpu_seconds": time.process_time() - started, "evaluations": result.evaluations}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as handle:
            json.dump(curve, handle)
    return curve


def _first(curve: dict, evaluations: int) -> dict:
    """A cached curve cut to its first ``evaluations`` evaluations (its times scaled alike)."""
    share = evaluations / curve["evaluations"]
    cut = {name: values[:evaluations] for name, values in curve.items() if isinstance(values, list)}
    return {**curve, **cut, "evaluations": evaluations, "seconds": curve["seconds"] * share,
            "cpu_seconds": curve["cpu_seconds"] * share}


def budget_text(budget: int | None, evaluations: int) -> str:
    """An equivalent budget as a table shows it: the number, or "> N" past the curve's end."""
    return str(budget) if budget is not None else f"> {evaluations}"


def score(network: Generator, model, photos: Mapping[str, torch.Tensor], style: torch.Tensor, loss: LossSpec,
          curves: Mapping[str, Mapping]) -> list[dict]:
    """A style-transfer generator on each held-out photo: {"photo", "content", "style", "total" (its
    picture's losses under ``loss``), "budget" (evaluations of that photo's curve that reach its
    total, None past the end), "curve_evaluations", "at_25", "at_50" (the curve's best total after
    25 and 50 evaluations)} per photo."""
    rows = []
    for name, photo in photos.items():
        terms = loss.evaluate(model, stylize(network, photo), photo, style)
        rows.append(_row(name, terms, curves[name]))
    return rows


def score_texture(network: Generator, model, seeds: Sequence[int], shape: Sequence[int], style: torch.Tensor,
                  loss: LossSpec, curves: Mapping[int, Mapping]) -> list[dict]:
    """A texture generator's picture of ``shape`` from the noise of each seed, scored as ``score``
    does against texture synthesis from noise of the same seed ("photo" holds "seed N")."""
    loss = loss.replace(content_weight=0.0)
    rows = []
    for seed in seeds:
        terms = loss.evaluate(model, stylize(network, seeded_noise(shape, seed)), None, style)
        rows.append(_row(f"seed {seed}", terms, curves[seed]))
    return rows


def _row(name: str, terms: Mapping[str, float], curve: Mapping) -> dict:
    totals = curve["total"]
    return {"photo": name, "content": terms.get("content", 0.0), "style": terms["style"], "total": terms["total"],
            "budget": evaluations_to_reach(totals, terms["total"]), "curve_evaluations": len(totals),
            "at_25": best_after(totals, 25), "at_50": best_after(totals, 50)}


def best_after(totals: Sequence[float], evaluations: int) -> float:
    """The best total of a curve's first ``evaluations`` evaluations (NaN when it is shorter)."""
    return min(totals[:evaluations]) if len(totals) >= evaluations else math.nan
