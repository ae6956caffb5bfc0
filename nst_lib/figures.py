"""Figures for the report: labelled image grids, loss and trade-off curves (matplotlib)."""

from __future__ import annotations

import html
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .claims import Claim, Claims
from .files import atomic_write

DPI = 100
# Tiles are at least this wide so their captions fit, and at most so that a grid fits a page.
MIN_TILE_INCHES = 1.5
MAX_TILE_INCHES = 2.8
# A full row of a grid is drawn at most this many times taller to reach the width of the widest row.
MAX_ROW_SCALE = 1.5
LABEL_POINTS = 9
# Labels of a grid redrawn for a phone (two columns of tiles), where it is shown at about two thirds of its size.
NARROW_POINTS = 13


def literal(text) -> str:
    """``text`` as matplotlib should draw it, letter for letter: its dollar signs escaped, so that a file name
    such as 'cost $5 and $10.png' is not read as mathtext (nor fails to parse as it, after all the compute)."""
    return str(text).replace("$", r"\$")


def _wrapped(label: str, characters: int) -> str:
    return "\n".join(textwrap.fill(line, characters, break_long_words=False) or line for line in label.split("\n"))


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
    label_points: float = LABEL_POINTS,
):
    """A figure with one tile per image, each captioned with its label.

    Images are (1, 3, H, W) or (3, H, W) tensors in [0, 1]; labels may hold
    several lines (layer, weights, seed, ...). Tiles show small images pixel
    for pixel (enlarged without smoothing) and large ones scaled down to fit.
    Every tile of a row has the same height and its own image's width, so
    that a tall picture among wide ones (a portrait beside landscapes) leaves
    no white gap around it; a full row that would end shorter than the widest
    (it holds taller pictures) is drawn taller to the same width, up to
    ``MAX_ROW_SCALE`` times, and a last row with fewer pictures keeps the height.

    The figure's ``narrow`` attribute redraws the same grid for a narrow
    screen (two columns, larger labels); ``notebook.Setup.save`` saves it
    beside the figure, and the report's page shows it on phones.
    """
    if len(images) != len(labels):
        raise ValueError(f"Got {len(images)} images but {len(labels)} labels: give one label per image.")
    if not images:
        raise ValueError("A grid needs at least one image.")
    columns = columns or min(len(images), 5)
    rows = [list(range(start, min(start + columns, len(images)))) for start in range(0, len(images), columns)]
    gap = 0.12
    first_width, first_height = images[0].shape[-1], images[0].shape[-2]
    first_inches = min(max(first_width / DPI, MIN_TILE_INCHES), MAX_TILE_INCHES)
    height = first_inches * first_height / first_width  # every tile's height: the first tile's, at its width
    widths = [height * image.shape[-1] / image.shape[-2] for image in images]
    spans = [sum(widths[i] for i in row) + gap * (len(row) - 1) for row in rows]
    scales = [min((max(spans) - gap * (len(row) - 1)) / (span - gap * (len(row) - 1)), MAX_ROW_SCALE)
              if len(row) == columns else 1.0 for row, span in zip(rows, spans)]
    widths = [width * scale for row, scale in zip(rows, scales) for width in (widths[i] for i in row)]
    # Captions wrap to their tile's width (about 0.55 em per character) instead of running into the next tile.
    wrapped = [literal(_wrapped(str(label), max(8, int(width * 72 / (label_points * 0.55)))))
               for label, width in zip(labels, widths)]
    line = label_points * 1.3 / 72  # inches per caption line
    captions = [max(wrapped[i].count("\n") + 1 for i in row) * line + 0.06 for row in rows]
    margin, heading = 0.05, (0.45 if title else 0.0)
    figure_width = max(sum(widths[i] for i in row) + gap * (len(row) - 1) for row in rows) + 2 * margin
    figure_height = heading + sum(captions) + height * sum(scales) + gap * (len(rows) - 1) + 2 * margin
    figure = plt.figure(figsize=(figure_width, figure_height), dpi=DPI)
    top = figure_height - margin - heading
    for row, caption, scale in zip(rows, captions, scales):
        left, top, tall = margin, top - caption, height * scale
        for index in row:
            image, width = images[index], widths[index]
            axis = figure.add_axes((left / figure_width, (top - tall) / figure_height,
                                    width / figure_width, tall / figure_height))
            axis.axis("off")
            enlarged = width * DPI > image.shape[-1]
            axis.imshow(_as_array(image), interpolation="nearest" if enlarged else "antialiased", aspect="auto")
            axis.set_title(wrapped[index], fontsize=label_points, pad=3)
            left += width + gap
        top -= tall + gap
    if title:
        figure.suptitle(literal(title), fontsize=max(12, label_points), y=1 - margin / figure_height, va="top")
    figure.narrow = lambda: grid(images, labels, title=title, columns=min(2, columns), label_points=NARROW_POINTS)
    return figure


def loss_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    terms: Sequence[str] = ("content", "style"),
    title: str | None = None,
    xlabel: str = "evaluation",
    marks: Mapping[str, Sequence[int]] | None = None,
    every: Mapping[str, int] | None = None,
):
    """One panel per loss term, one line per run, log scale, against evaluations (or ``xlabel``).

    ``marks``: per run label, evaluations to mark with a dashed vertical line in that run's colour
    (rollbacks, restarts). ``every``: per run label, how many evaluations each of its values stands
    for (a history kept as means over windows); 1 when not given. NaN values leave a gap.
    """
    terms = [t for t in terms if any(t in h for h in histories.values())]
    if not terms:
        raise ValueError("None of the runs recorded the loss terms asked for.")
    figure, axes = plt.subplots(1, len(terms), figsize=(4.8 * len(terms), 3.4), squeeze=False)
    for axis, term in zip(axes[0], terms):
        for label, history in histories.items():
            if term in history:
                step = (every or {}).get(label, 1)
                values = history[term]
                (line,) = axis.plot(range(step, step * len(values) + 1, step), values, label=literal(label))
                for evaluation in (marks or {}).get(label, ()):
                    axis.axvline(evaluation, color=line.get_color(), linestyle="--", linewidth=0.8, alpha=0.8)
        axis.set_yscale("log")
        axis.set_xlabel(literal(xlabel))
        axis.set_ylabel(f"{term} loss (relative)")
        axis.grid(True, alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    if title:
        figure.suptitle(literal(title))
    figure.tight_layout()
    return figure


def equivalence_curves(
    totals: Mapping[str, Sequence[float]],
    levels: Mapping[str, float | Mapping[str, float]],
    *,
    title: str | None = None,
    level_label: str = "generator",
):
    """Per run, the best total loss so far against evaluations (log scale), with a dashed line at
    that run's ``levels[label]`` and a dot where the curve first reaches it. A run's level may be
    several, {name: level} (several generators on one photo): each in a line style of its own,
    named in the legend."""
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    styles = ["--", ":", "-."]
    for index, (label, values) in enumerate(totals.items()):
        best = [min(values[: i + 1]) for i in range(len(values))]
        colour = f"C{index % 10}"
        axis.plot(range(1, len(best) + 1), best, color=colour, label=literal(label))
        marks = levels.get(label)
        marks = marks if isinstance(marks, Mapping) else ({} if marks is None else {None: marks})
        for number, (name, level) in enumerate(marks.items()):
            style = styles[number % len(styles)]
            axis.axhline(level, color=colour, linestyle=style, linewidth=0.8,
                         label=None if name is None else literal(f"{label}: {name}"))
            reached = next((i for i, value in enumerate(best) if value <= level), None)
            if reached is not None:
                axis.plot([reached + 1], [level], "o", color=colour)
    axis.set_yscale("log")
    axis.set_xlabel("L-BFGS evaluations of the per-image optimization")
    axis.set_ylabel("best total loss so far")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8, title=literal(f"dashed: {level_label}"), title_fontsize=8)
    if title:
        axis.set_title(literal(title), fontsize=10)
    figure.tight_layout()
    return figure


def tradeoff_curves(curves: Mapping[str, Sequence[tuple[float, float, str]]], *, title: str | None = None):
    """Style error against content error (log-log), one curve per recipe; ``curves[name]`` holds
    (content error, style error, label) points, one per style weight, each labelled. The lower
    of two curves is the more stylized at the same content error."""
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for index, (name, points) in enumerate(curves.items()):
        points = sorted(points)
        (line,) = axis.plot([c for c, _, _ in points], [s for _, s, _ in points], marker="o", label=literal(name))
        for content, style, label in points:  # the first curve's labels above its points, the others' below
            axis.annotate(literal(label), (content, style), textcoords="offset points",
                          xytext=(6, 5 if index == 0 else -11),
                          fontsize=8, color=line.get_color())
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("content error")
    axis.set_ylabel("style error")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    if title:
        axis.set_title(literal(title), fontsize=10)
    figure.tight_layout()
    return figure


def save_figure(figure, path: str | os.PathLike, dpi: int = DPI) -> Path:
    """Write a figure as PNG, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        # An opaque white background: the notebook's inline backend makes figures transparent by default.
        figure.savefig(handle, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def speed_table(rows: Sequence[tuple[str, Sequence[int], int, float]]) -> str:
    """A Markdown table of timings, one row per (method, image shape (..., H, W), iterations, seconds),
    with each time also as a multiple of the fastest."""
    fastest = min(seconds for *_, seconds in rows)
    lines = ["| method | image (px) | iterations | seconds | x fastest |", "| --- | --- | --- | --- | --- |"]
    for method, shape, iterations, seconds in rows:
        height, width = shape[-2:]
        lines.append(f"| {method} | {width} x {height} | {iterations} | {seconds:.3g} | {seconds / fastest:,.0f} |")
    return "\n".join(lines)


class Table:
    """Rows of a results table; shows as HTML in notebooks (and so in the report).

    ``rows`` are dicts with the same keys, which become the column headers;
    floats are shown with ``digits`` significant digits.
    """

    def __init__(self, rows: Sequence[Mapping[str, object]], digits: int = 3):
        self.rows = [dict(row) for row in rows]
        self.digits = digits

    def _cell(self, value) -> str:
        text = f"{value:.{self.digits}g}" if isinstance(value, float) else str(value)
        return html.escape(text)

    def _repr_html_(self) -> str:
        if not self.rows:
            return "<p>(no rows)</p>"
        columns = list(self.rows[0])
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{self._cell(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        columns = list(self.rows[0]) if self.rows else []
        lines = [" | ".join(columns)]
        lines += [" | ".join(self._cell(row.get(c, "")) for c in columns) for row in self.rows]
        return "\n".join(lines)


def claims(rows: Sequence[Claim]) -> Claims:
    """Findings stated as measured, so that they stay true at every profile: a table of claims, each
    judged in this run (``nst_lib.claims.judge``: claim, value measured, verdict and its reason), which
    the report's page also lists in its summary."""
    return Claims(rows)


def contact_sheet(
    tiles: Sequence[Sequence[torch.Tensor | None]],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    captions: Sequence[Sequence[str]] | None = None,
    *,
    title: str | None = None,
):
    """A labelled grid of pictures: ``tiles[row][column]``, each row named on its left, each column on
    top, and each tile captioned below (losses, seconds, ...). None is a grey tile where it has a caption
    (a picture that failed, say so there) and blank space where it has none."""
    rows, columns = len(tiles), len(column_labels)
    if rows != len(row_labels) or any(len(row) != columns for row in tiles):
        raise ValueError("A contact sheet needs one row label per row and one column label per column.")
    tile_inches = min(MAX_TILE_INCHES, max(0.9, 20 / max(columns, 1)))
    shown = [image for row in tiles for image in row if image is not None]
    aspect = shown[0].shape[-2] / shown[0].shape[-1] if shown else 1.0
    lines = 1 + max((str(c).count("\n") + 1 for row in captions or [] for c in row), default=0)
    figure, axes = plt.subplots(rows, columns, figsize=(tile_inches * columns + 0.6,
                                (tile_inches * aspect + 0.16 * lines) * rows + 0.4), dpi=DPI, squeeze=False)
    for r, c in ((r, c) for r in range(rows) for c in range(columns)):
        axis, image = axes[r][c], tiles[r][c]
        axis.set_xticks([])
        axis.set_yticks([])
        if image is not None:
            enlarged = tile_inches * DPI > image.shape[-1]
            axis.imshow(_as_array(image), interpolation="nearest" if enlarged else "antialiased")
        elif captions and captions[r][c]:
            axis.set_facecolor("#eeeeee")
        else:
            axis.set_facecolor("none")
            for spine in axis.spines.values():
                spine.set_visible(False)
        axis.set_xlabel(literal(captions[r][c]) if captions else "", fontsize=7)
        if r == 0:
            axis.set_title(literal(column_labels[c]), fontsize=8, fontweight="bold")
        if c == 0:
            axis.set_ylabel(literal(row_labels[r]), fontsize=8, fontweight="bold")
    if title:
        figure.suptitle(literal(title), fontsize=11)
    figure.tight_layout()
    return figure
