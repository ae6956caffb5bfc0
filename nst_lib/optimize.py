"""Optimize an image against a weighted sum of loss terms.

``optimize_image`` is the loop: it knows nothing of VGG, only of an objective
that maps an image to named loss terms. ``transfer`` is Gatys et al.'s method
built on it; content reconstruction (content loss only), texture synthesis
(style loss only) and style transfer (both) are all calls of ``transfer``.

Guards, so that no run returns NaN or garbage:
- the network always sees pixels clamped to [0, 1]; pixels the optimizer
  pushes outside feel only a penalty that pulls them back, so the returned
  image is exactly what the losses were measured on;
- L-BFGS uses a strong-Wolfe line search, so a step that would blow the loss
  up is shortened instead of taken;
- a non-finite loss or gradient rolls the image back to the best one seen,
  halves the learning rate, restarts the optimizer and says so in
  ``Result.events``;
- the image returned is the best (lowest total loss) one evaluated.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm

from . import profiles
from .images import luminance_only, match_luminance, rgb_to_yiq, yiq_to_rgb
from .losses import STYLE_SCALE, perceptual_objective
from .vgg import VGG19, check_layers, min_image_side

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("noise", "content")
MAX_WEIGHT = 1e12
MAX_ROLLBACKS = 5
# Strength of the pull back into [0, 1], relative to the sum of the loss weights.
RANGE_PENALTY = 10.0

Objective = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
Callback = Callable[[int, torch.Tensor, Mapping[str, float]], None]


@dataclass
class Result:
    """What an optimization produced.

    ``image``: (1, 3, H, W) in [0, 1] on the CPU, the best image evaluated.
    ``history``: per evaluation, each loss term unweighted plus the weighted ``total``.
    ``times``: per evaluation, seconds since the run started.
    ``events``: rollbacks, restarts and early stops, one sentence each.
    ``stopped``: True when the caller stopped the run before its budget was spent.
    """

    image: torch.Tensor
    history: dict[str, list[float]]
    times: list[float]
    evaluations: int
    seconds: float
    events: list[str] = field(default_factory=list)
    stopped: bool = False
    best_index: int = -1
    params: dict = field(default_factory=dict)

    @property
    def final_losses(self) -> dict[str, float]:
        """Loss terms at the returned (best) image."""
        return {name: values[self.best_index] for name, values in self.history.items()}

    @property
    def loss_fell(self) -> bool:
        """Whether the best total loss is below the first one evaluated."""
        total = self.history["total"]
        return len(total) > 1 and min(total) < total[0]


class _StopRun(Exception):
    pass


class _NonFinite(Exception):
    pass


def check_weight(value, name: str) -> float:
    """A loss weight as a float in [0, MAX_WEIGHT], or a ValueError that names it."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if not 0 <= value <= MAX_WEIGHT:
        raise ValueError(f"{name}={value:g} is out of range: use a number from 0 to {MAX_WEIGHT:g}.")
    return value


def check_steps(steps, name: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {steps!r}.")
    return steps


def optimize_image(
    objective: Objective,
    init: torch.Tensor,
    weights: Mapping[str, float],
    *,
    steps: int = profiles.STEPS,
    optimizer: str = profiles.OPTIMIZER,
    lr: float | None = None,
    line_search: bool = profiles.LINE_SEARCH,
    history_size: int = profiles.HISTORY_SIZE,
    callback: Callback | None = None,
    callback_every: int = 10,
    should_stop: Callable[[], bool] | threading.Event | None = None,
    progress: bool | str = True,  # True, False or "terminal" (see progress_bar)
    description: str = "optimizing",
) -> Result:
    """Minimize ``sum(weights[k] * objective(image)[k])`` over the pixels of ``init``.

    ``steps`` counts evaluations of the objective (forward and backward passes),
    the unit that costs time, for L-BFGS and Adam alike. ``callback(evaluation,
    image, losses)`` runs every ``callback_every`` evaluations and at the end,
    with the current image clamped to [0, 1]. ``should_stop`` (a callable or an
    Event) is checked before each evaluation. ``line_search`` and ``history_size``
    (how many past steps L-BFGS remembers) concern L-BFGS only.
    """
    steps = check_steps(steps)
    history_size = check_steps(history_size, "history_size")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}: choose 'lbfgs' or 'adam'.")
    lr = profiles.LEARNING_RATES[optimizer] if lr is None else float(lr)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"The learning rate must be a positive number, got {lr!r}.")
    if isinstance(should_stop, threading.Event):
        should_stop = should_stop.is_set
    weights = dict(weights)
    range_weight = RANGE_PENALTY * max(sum(weights.values()), 1e-12)

    image = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    best = image.detach().clamp(0, 1)
    best_total = math.inf
    best_index = -1
    history: dict[str, list[float]] = {}
    times: list[float] = []
    events: list[str] = []
    count = 0
    bar = progress_bar(progress, steps, description)

    def closure():
        nonlocal count, best, best_total, best_index
        if count >= steps:
            raise _StopRun
        if should_stop is not None and should_stop():
            raise _StopRun
        optim.zero_grad(set_to_none=True)
        shown = image.clamp(0, 1)
        terms = objective(shown)
        total = sum(weights[name] * value for name, value in terms.items())
        penalty = range_weight * (image - shown).pow(2).mean()
        (total + penalty).backward()
        total_value = float(total.detach())
        if not math.isfinite(total_value) or not torch.isfinite(image.grad).all():
            raise _NonFinite
        count += 1
        for name, value in terms.items():
            history.setdefault(name, []).append(float(value.detach()))
        history.setdefault("total", []).append(total_value)
        times.append(time.perf_counter() - start)
        if total_value < best_total:
            best_total, best, best_index = total_value, shown.detach().clone(), count - 1
        bar.update(1)
        if callback is not None and count % callback_every == 0:
            callback(count, shown.detach(), {k: v[-1] for k, v in history.items()})
        return total + penalty

    start = time.perf_counter()
    stopped = False
    rollbacks = 0
    while count < steps:
        optim = _make_optimizer(optimizer, image, lr, steps - count, line_search, history_size)
        before = count
        try:
            if optimizer == "lbfgs":
                optim.step(closure)
            else:
                while True:
                    optim.step(closure)
        except _StopRun:
            stopped = count < steps
            break
        except _NonFinite:
            rollbacks += 1
            with torch.no_grad():
                image.copy_(best)
            if rollbacks > MAX_ROLLBACKS:
                events.append(
                    f"Evaluation {count + 1}: the loss was not finite {rollbacks} times; "
                    "stopped and kept the best image so far."
                )
                break
            lr /= 2
            events.append(
                f"Evaluation {count + 1}: the loss was not finite; rolled back to the best image so far "
                f"and restarted with learning rate {lr:g}."
            )
            continue
        if count >= steps:
            break
        if count - before < 3:  # L-BFGS found no descent direction twice in a row: converged
            events.append(f"Converged after {count} evaluations (no further descent direction).")
            break
        events.append(f"L-BFGS stopped early at evaluation {count}; restarted it with a fresh history.")
    bar.close()
    if count == 0:
        raise RuntimeError("The objective could not be evaluated even once with a finite value.")
    if callback is not None and count % callback_every != 0:
        callback(count, best, {k: v[-1] for k, v in history.items()})
    return Result(
        image=best.cpu(),
        history=history,
        times=times,
        evaluations=count,
        seconds=time.perf_counter() - start,
        events=events,
        stopped=stopped,
        best_index=best_index,
    )


def _make_optimizer(name, image, lr, budget, line_search, history_size):
    if name == "adam":
        return torch.optim.Adam([image], lr=lr)
    # Tolerances off: the budget decides when to stop, not the gradient's (tiny, normalized) scale.
    return torch.optim.LBFGS(
        [image],
        lr=lr,
        max_iter=budget,
        max_eval=budget + 25,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        history_size=history_size,
        line_search_fn="strong_wolfe" if line_search else None,
    )


def progress_bar(progress, total: int, description: str):
    """True: a bar where the code runs (a widget in notebooks); "terminal": a text bar on the
    process's own stderr, which a report build shows even from inside a notebook kernel."""
    if progress == "terminal":
        return text_tqdm(total=total, desc=description, leave=False, file=sys.__stderr__, mininterval=1.0)
    return tqdm(total=total, desc=description, leave=False, disable=not progress)


# --------------------------------------------------------------------------------------
# Gatys et al.: content reconstruction, texture synthesis and style transfer.


def transfer(
    content: torch.Tensor | None = None,
    styles: torch.Tensor | Sequence[torch.Tensor] = (),
    *,
    model: VGG19 | None = None,
    style_blend: Sequence[float] | None = None,
    content_layers: Sequence[str] = profiles.CONTENT_LAYERS,
    style_layers: Sequence[str] = profiles.STYLE_LAYERS,
    style_layer_weights: Sequence[float] | None = None,
    content_weight: float = profiles.CONTENT_WEIGHT,
    style_weight: float = profiles.STYLE_WEIGHT,
    tv_weight: float = profiles.TV_WEIGHT,
    init: str | torch.Tensor = profiles.INIT,
    shape: tuple[int, int] | None = None,
    seed: int = profiles.SEED,
    steps: int = profiles.STEPS,
    scales: int = 1,
    coarse_steps: int | None = None,
    preserve_colors: bool = False,
    **loop,
) -> Result:
    """Optimize an image to have ``content``'s features and ``styles``' Gram statistics.

    ``content``: (1, 3, H, W) in [0, 1], or None for texture synthesis (then
    the output has ``shape`` (H, W), by default the first style's).
    ``styles``: style images, each at its own size; ``style_blend`` weighs them.
    ``init``: "noise" (uniform, seeded), "content", or an image tensor.
    ``scales``: levels of coarse-to-fine optimization (1 = single scale); each
    level halves the size of the next. The full-size level runs ``steps``
    evaluations, each coarser one ``coarse_steps`` (default: ``steps``).
    ``preserve_colors``: luminance-only transfer (Gatys et al. 2016): style
    the content's luminance, keep the content's colours.
    Remaining keyword arguments go to ``optimize_image`` (optimizer, lr,
    callback, ...). The model defaults to the Oxford VGG-19 with max pooling.
    """
    styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
    content_weight = check_weight(content_weight, "content_weight")
    style_weight = check_weight(style_weight, "style_weight")
    tv_weight = check_weight(tv_weight, "tv_weight")
    content_layers = check_layers(content_layers) if content_weight > 0 else []
    style_layers = check_layers(style_layers) if style_weight > 0 else []
    if content_weight > 0 and content is None:
        raise ValueError("content_weight is above 0 but no content image was given.")
    if style_weight > 0 and not styles:
        raise ValueError("style_weight is above 0 but no style image was given.")
    if content_weight + style_weight == 0:
        raise ValueError("Both content_weight and style_weight are 0: there is nothing to optimize for.")
    if isinstance(init, str) and init not in INITS:
        raise ValueError(f"Unknown init {init!r}: choose 'noise', 'content' or pass an image tensor.")
    if isinstance(init, str) and init == "content" and content is None:
        raise ValueError("init='content' needs a content image.")
    if isinstance(scales, bool) or not isinstance(scales, int) or not 1 <= scales <= 4:
        raise ValueError(f"scales must be 1, 2, 3 or 4, got {scales!r}.")
    steps = check_steps(steps)
    if coarse_steps is not None:
        check_steps(coarse_steps, "coarse_steps")
    model = model if model is not None else VGG19(profiles.WEIGHTS, profiles.POOLING)
    device = model.input_shift.device

    if content is not None:
        shape = tuple(content.shape[-2:])
    elif shape is None:
        shape = tuple(styles[0].shape[-2:])
    layers = list(dict.fromkeys([*content_layers, *style_layers]))
    smallest = min_image_side(layers)
    if min(shape) < smallest:
        raise ValueError(
            f"The image is {shape[1]}x{shape[0]} px but {layers[-1] if len(layers) == 1 else 'the deepest layer'} "
            f"needs a side of at least {smallest} px: use a larger size or shallower layers."
        )

    colour_source = content
    if preserve_colors:
        if content is None:
            raise ValueError("preserve_colors needs a content image whose colours to keep.")
        styles = [match_luminance(style, content) for style in styles]
        content = luminance_only(content)

    generator = torch.Generator().manual_seed(seed)
    if isinstance(init, torch.Tensor):
        start = init
    elif init == "noise":
        start = torch.rand((1, 3, *shape), generator=generator)
    else:
        start = content

    params = {
        "content_layers": content_layers,
        "style_layers": style_layers,
        "content_weight": content_weight,
        "style_weight": style_weight,
        "tv_weight": tv_weight,
        "init": init if isinstance(init, str) else "image",
        "seed": seed,
        "steps": steps,
        "scales": scales,
        "coarse_steps": coarse_steps,
        "preserve_colors": preserve_colors,
        "weights": model.weights,
        "pooling": model.pooling,
        "pre_relu": model.pre_relu,
        "size": list(shape),
        "device": str(device),
    }
    weights = {"content": content_weight, "style": STYLE_SCALE * style_weight, "tv": tv_weight}
    weights = {name: w for name, w in weights.items() if w > 0}

    level_shapes = [
        tuple(max(smallest, round(side / 2**level)) for side in shape) for level in reversed(range(scales))
    ]
    results = []
    image = start
    for number, level_shape in enumerate(level_shapes, start=1):
        budget = steps if number == scales else (coarse_steps or steps)
        factor = level_shape[0] / shape[0]
        level_content = None if content is None else _resized(content, level_shape)
        level_styles = [_resized(s, _scaled(s.shape[-2:], factor)) for s in styles]
        objective = perceptual_objective(
            model,
            level_content.to(device) if level_content is not None else None,
            [s.to(device) for s in level_styles],
            content_layers,
            style_layers,
            style_blend,
            style_layer_weights,
            tv_weight > 0,
        )
        image = _resized(image, level_shape).to(device)
        result = optimize_image(objective, image, weights, steps=budget, **loop)
        results.append(result)
        image = result.image
        if result.stopped:
            break

    result = _merge(results)
    if preserve_colors:
        result.image = _recolor(result.image, colour_source)
    result.params = {**params, **{k: v for k, v in loop.items() if isinstance(v, (int, float, str, bool))}}
    return result


def _scaled(shape, factor):
    return tuple(max(1, round(side * factor)) for side in shape)


def _resized(image: torch.Tensor, shape) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(shape):
        return image
    return F.interpolate(image, size=shape, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _merge(results: list[Result]) -> Result:
    """One Result for a coarse-to-fine run: the last level's image, all levels' history."""
    history: dict[str, list[float]] = {}
    times: list[float] = []
    for result in results:
        for name, values in result.history.items():
            history.setdefault(name, []).extend(values)
        offset = times[-1] if times else 0.0
        times.extend(offset + t for t in result.times)
    last = results[-1]
    return Result(
        image=last.image,
        history=history,
        times=times,
        evaluations=sum(r.evaluations for r in results),
        seconds=sum(r.seconds for r in results),
        events=[e for r in results for e in r.events],
        stopped=last.stopped,
        best_index=sum(r.evaluations for r in results[:-1]) + last.best_index,
    )


def _recolor(image: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """The luminance of ``image`` with the chrominance of ``colours``."""
    yiq = rgb_to_yiq(image)
    yiq[:, 1:] = rgb_to_yiq(_resized(colours.cpu(), image.shape[-2:]))[:, 1:]
    return yiq_to_rgb(yiq).clamp(0, 1)
