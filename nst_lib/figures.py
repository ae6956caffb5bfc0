"""Figures for the report: labelled image grids and loss curves (matplotlib)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .files import atomic_write


def _as_array(image: torch.Tensor):
    image = image.detach().float().cpu().clamp(0, 1)
    if image.dim() == 4:
        image = image[0]
    return image.permute(1, 2, 0).numpy()


def grid(
    images: Sequence[torch.Tensor],
    labels: Sequence[str],
    *,
    title: str | None = None,
    columns: int | None = None,
    tile_inches: float = 2.6,
):
    """A figure with one tile per image, each captioned with its label.

    Images are (1, 3, H, W) or (3, H, W) tensors in [0, 1]; labels may hold
    several lines (layer, weights, seed, ...).
    """
    if len(images) != len(labels):
        raise ValueError(f"Got {len(images)} images but {len(labels)} labels: give one label per image.")
    if not images:
        raise ValueError("A grid needs at least one image.")
    columns = columns or min(len(images), 5)
    rows = math.ceil(len(images) / columns)
    aspect = images[0].shape[-2] / images[0].shape[-1]
    lines = max(str(label).count("\n") + 1 for label in labels)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(tile_inches * columns, (tile_inches * aspect + 0.22 * lines) * rows + (0.4 if title else 0)),
        squeeze=False,
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, label in zip(axes.flat, images, labels):
        axis.imshow(_as_array(image), interpolation="lanczos")
        axis.set_title(str(label), fontsize=9)
    if title:
        figure.suptitle(title, fontsize=12)
    figure.tight_layout()
    return figure


def loss_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    terms: Sequence[str] = ("content", "style"),
    title: str | None = None,
    xlabel: str = "evaluation",
):
    """One panel per loss term, one line per run, log scale, against evaluations (or ``xlabel``)."""
    terms = [t for t in terms if any(t in h for h in histories.values())]
    if not terms:
        raise ValueError("None of the runs recorded the loss terms asked for.")
    figure, axes = plt.subplots(1, len(terms), figsize=(4.8 * len(terms), 3.4), squeeze=False)
    for axis, term in zip(axes[0], terms):
        for label, history in histories.items():
            if term in history:
                axis.plot(range(1, len(history[term]) + 1), history[term], label=label)
        axis.set_yscale("log")
        axis.set_xlabel(xlabel)
        axis.set_ylabel(f"{term} loss (relative)")
        axis.grid(True, alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def save_figure(figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a figure as PNG, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    return path
