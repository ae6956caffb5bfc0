"""Optimize an image against a weighted sum of loss terms.

``optimize_image`` is the loop: it knows nothing of VGG, only of an objective
that maps an image to named loss terms. ``transfer`` is Gatys et al.'s method
built on it; content reconstruction (content loss only), texture synthesis
(style loss only) and style transfer (both) are all calls of ``transfer``.

Guards, so that no run returns NaN or garbage:
- the network always sees pixels clamped to [0, 1]; pixels the optimizer
  pushes outside feel only a penalty that pulls them back, so the returned
  image is exactly what the losses were measured on;
- L-BFGS takes plain steps by default, stable at its default learning rate
  of 1; above 1, ``line_search=True`` adds a strong-Wolfe line search, which
  shortens a step that would blow the loss up instead of taking it;
- a non-finite loss or gradient rolls the image back to the best one seen,
  halves the learning rate, restarts the optimizer and says so in
  ``Result.events``;
- the image returned is the best (lowest total loss) one evaluated.
"""

from __future__ import annotations

import math
import numbers
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm

from . import profiles
from .images import MAX_SIZE, check_image, luminance_only, match_luminance, rgb_to_yiq, yiq_to_rgb
from .losses import LossSpec
from .timing import alternated
from .vgg import VGG19, min_image_side

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("noise", "content")
MAX_SCALES = 4
MAX_ROLLBACKS = 5
# Learning rates above this are typing mistakes: pixels live in [0, 1] (and float32 ends near 3e38).
MAX_LEARNING_RATE = 1e3
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
    ``params``: what ``transfer`` was asked for (JSON-ready; the loss under "loss").
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

    @property
    def loss(self) -> LossSpec:
        """The loss specification this image was optimized against (from ``params``)."""
        if "loss" not in self.params:
            raise ValueError("This result records no loss specification: it did not come from transfer().")
        return LossSpec.from_dict(self.params["loss"])


class _StopRun(Exception):
    pass


class _NonFinite(Exception):
    pass


def check_steps(steps, name: str = "steps") -> int:
    """A whole number of at least 1, or a ValueError that names it."""
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
    (how many past steps L-BFGS remembers) concern L-BFGS only. By default
    L-BFGS takes plain steps, which held steady at learning rate 1; at 3 and
    above they blew up in ``bench/stability.py``, and ``line_search=True``
    (strong Wolfe) kept them in check.
    """
    steps = check_steps(steps)
    history_size = check_steps(history_size, "history_size")
    lr = _learning_rate(optimizer, lr)
    if isinstance(should_stop, threading.Event):
        should_stop = should_stop.is_set
    run = _Run(objective, init, dict(weights), steps, progress_bar(progress, steps, description))
    run.callback, run.callback_every, run.should_stop = callback, callback_every, should_stop
    try:
        _descend(run, optimizer, lr, line_search, history_size)
    finally:
        run.bar.close()
    if run.count == 0:
        raise RuntimeError("The objective could not be evaluated even once with a finite value.")
    if callback is not None and run.count % callback_every != 0:
        callback(run.count, run.best, run.latest())
    return run.result()


def _learning_rate(optimizer: str, lr) -> float:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}: choose {' or '.join(map(repr, OPTIMIZERS))}.")
    return check_learning_rate(profiles.LEARNING_RATES[optimizer] if lr is None else lr)


def check_learning_rate(lr, name: str = "The learning rate") -> float:
    """A learning rate as a float in (0, MAX_LEARNING_RATE], or a ValueError that names it."""
    try:
        value = float(lr)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(lr, bool) or not (math.isfinite(value) and 0 < value <= MAX_LEARNING_RATE):
        raise ValueError(f"{name} must be a positive number up to {MAX_LEARNING_RATE:g}, got {lr!r}.")
    return value


class _Run:
    """The state of one optimization; ``evaluate`` is the closure the optimizers call."""

    def __init__(self, objective: Objective, init: torch.Tensor, weights: dict, steps: int, bar):
        self.objective, self.weights, self.steps, self.bar = objective, weights, steps, bar
        self.range_weight = RANGE_PENALTY * max(sum(weights.values()), 1e-12)
        self.image = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
        self.best = self.image.detach().clamp(0, 1)
        self.best_total = math.inf
        self.best_index = -1
        self.history: dict[str, list[float]] = {}
        self.times: list[float] = []
        self.events: list[str] = []
        self.count = 0
        self.stopped = False
        self.optimizer = None
        self.callback, self.callback_every, self.should_stop = None, 1, None
        self.start = time.perf_counter()

    def evaluate(self) -> torch.Tensor:
        """One forward and backward pass: the loss the optimizer minimizes, with the image's gradient."""
        if self.count >= self.steps or (self.should_stop is not None and self.should_stop()):
            raise _StopRun
        self.optimizer.zero_grad(set_to_none=True)
        shown = self.image.clamp(0, 1)
        terms = self.objective(shown)
        total = sum(self.weights[name] * value for name, value in terms.items())
        penalty = self.range_weight * (self.image - shown).pow(2).mean()
        (total + penalty).backward()
        total_value = float(total.detach())
        if not math.isfinite(total_value) or not torch.isfinite(self.image.grad).all():
            raise _NonFinite
        self._record(terms, total_value, shown.detach())
        return total + penalty

    def _record(self, terms, total_value: float, shown: torch.Tensor) -> None:
        self.count += 1
        for name, value in terms.items():
            self.history.setdefault(name, []).append(float(value.detach()))
        self.history.setdefault("total", []).append(total_value)
        self.times.append(time.perf_counter() - self.start)
        if total_value < self.best_total:
            self.best_total, self.best, self.best_index = total_value, shown.clone(), self.count - 1
        if not self.bar.disable:
            self.bar.set_postfix_str(" ".join(f"{k} {v[-1]:.3g}" for k, v in self.history.items()), refresh=False)
        self.bar.update(1)
        if self.callback is not None and self.count % self.callback_every == 0:
            self.callback(self.count, shown, self.latest())

    def latest(self) -> dict[str, float]:
        return {name: values[-1] for name, values in self.history.items()}

    def roll_back(self) -> None:
        with torch.no_grad():
            self.image.copy_(self.best)

    def result(self) -> Result:
        return Result(
            image=self.best.cpu(),
            history=self.history,
            times=self.times,
            evaluations=self.count,
            seconds=time.perf_counter() - self.start,
            events=self.events,
            stopped=self.stopped,
            best_index=self.best_index,
        )


def _descend(run: _Run, optimizer: str, lr: float, line_search: bool, history_size: int) -> None:
    """Spend the run's budget: restart L-BFGS when it stops early, roll back and halve the
    learning rate when the loss is not finite, give up after ``MAX_ROLLBACKS``."""
    rollbacks = 0
    while run.count < run.steps:
        run.optimizer = _make_optimizer(optimizer, run.image, lr, run.steps - run.count, line_search,
                                        history_size)
        before = run.count
        try:
            if optimizer == "lbfgs":
                run.optimizer.step(run.evaluate)
            else:
                while True:
                    run.optimizer.step(run.evaluate)
        except _StopRun:
            run.stopped = run.count < run.steps
            return
        except _NonFinite:
            rollbacks += 1
            run.roll_back()
            if rollbacks > MAX_ROLLBACKS:
                run.events.append(
                    f"Evaluation {run.count + 1}: the loss was not finite {rollbacks} times; "
                    "stopped and kept the best image so far."
                )
                return
            lr /= 2
            run.events.append(
                f"Evaluation {run.count + 1}: the loss was not finite; rolled back to the best image so far "
                f"and restarted with learning rate {lr:g}."
            )
            continue
        if run.count >= run.steps:
            return
        if run.count - before < 3:  # L-BFGS found no descent direction twice in a row: converged
            run.events.append(f"Converged after {run.count} evaluations (no further descent direction).")
            return
        run.events.append(f"L-BFGS stopped early at evaluation {run.count}; restarted it with a fresh history.")


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
    loss: LossSpec | None = None,
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
    ``styles``: style images, each at its own size.
    ``loss``: layers, weights and style blend (default: ``LossSpec()``, the
    report's settings); content reconstruction is ``style_weight=0``,
    texture synthesis ``content_weight=0``.
    ``init``: "noise" (uniform, seeded), "content", or an image tensor.
    ``scales``: levels of coarse-to-fine optimization (1 = single scale); each
    level halves the size of the next. The full-size level runs ``steps``
    evaluations, each coarser one ``coarse_steps`` (default: ``steps``).
    ``preserve_colors``: luminance-only transfer (Gatys et al. 2016): style
    the content's luminance, keep the content's colours.
    Remaining keyword arguments go to ``optimize_image`` (optimizer, lr,
    line_search, callback, ...): by default plain L-BFGS steps at learning
    rate 1; above 1, pass ``line_search=True``. The model defaults to the
    Oxford VGG-19 with max pooling.
    """
    styles = check_styles(styles)
    content = None if content is None else check_image(content, "content")
    if isinstance(init, torch.Tensor):
        init = check_image(init, "init")
    loss = LossSpec() if loss is None else loss
    loss.check_images(content, styles)
    _check_start(init, content, scales)
    steps = check_steps(steps)
    if coarse_steps is not None:
        check_steps(coarse_steps, "coarse_steps")
    model = model if model is not None else VGG19()
    shape = _output_shape(content, styles, shape, loss.layers)

    colour_source = content
    if preserve_colors:
        if content is None:
            raise ValueError("preserve_colors needs a content image whose colours to keep.")
        styles = [match_luminance(style, content) for style in styles]
        content = luminance_only(content)
    start = _start_image(init, content, shape, seed)
    budgets = [coarse_steps or steps] * (scales - 1) + [steps]
    levels = list(zip(pyramid(shape, scales, loss), budgets))
    result = coarse_to_fine(model, loss, content, styles, start, levels, **loop)
    if preserve_colors:
        result.image = _recolor(result.image, colour_source)
    result.params = {
        "loss": loss.to_dict(),
        "init": init if isinstance(init, str) else "image",
        **dict(seed=seed, steps=steps, scales=scales, coarse_steps=coarse_steps, preserve_colors=preserve_colors),
        **dict(vgg_weights=model.weights, pooling=model.pooling, pre_relu=model.pre_relu),
        **dict(size=list(shape), device=str(model.device)),
        **{k: v for k, v in loop.items() if isinstance(v, (int, float, str, bool))},
    }
    return result


# Options of transfer that say how the optimizer steps, not what one evaluation computes.
STEPPING = ("steps", "optimizer", "lr", "line_search", "history_size", "label")


def seconds_per_evaluation(
    jobs: Mapping[str, Mapping], *, model: VGG19, repeats: int = 15, threads: int | None = 1
) -> dict[str, list[float]]:
    """How long one evaluation (a forward and backward pass of the objective, as ``transfer`` runs it) of
    each job's settings takes, measured so that a busy machine slows every job alike: one evaluation of each
    job in turn, ``repeats`` times over (``timing.alternated``), after one untimed evaluation of each. A job
    names ``content``, ``styles``, ``loss``, ``init`` ("noise" or "content"), ``seed`` and ``model`` as
    ``transfer`` takes them (the model defaults to ``model``); the optimizer's own options (``STEPPING``),
    which do not change what an evaluation computes, are left out. Per job, the seconds of each timed evaluation.

    ``threads``: torch threads while timing (None: as set). One, by default: on a machine with more runnable
    threads than cores, threads that wait for each other at every operation make a time measure the load,
    not the work (two threads took many times as long as one, and bfloat16 lost its lead over float32:
    docs/report.md, "Timing on a busy machine"); one thread is slowed by the load in proportion."""

    def task(options: Mapping) -> Callable[[], float]:
        options = dict(options)
        chosen = options.pop("model", None) or model
        loss = options.pop("loss", None) or LossSpec()
        styles = check_styles(options.pop("styles", ()))
        content = options.pop("content", None)
        content = None if content is None else check_image(content, "content")
        init, seed = options.pop("init", profiles.INIT), options.pop("seed", profiles.SEED)
        options = {name: value for name, value in options.items() if name not in STEPPING}
        if options:
            raise ValueError(f"seconds_per_evaluation times a job's start and loss only; not {', '.join(options)}.")
        _check_start(init, content, 1)
        shape = _output_shape(content, styles, None, loss.layers)
        objective, weights = loss.objective(chosen, content, styles), loss.weights()
        image = _start_image(init, content, shape, seed).to(chosen.device).requires_grad_(True)

        def evaluation() -> float:
            started = time.perf_counter()
            terms = objective(image.clamp(0, 1))
            sum(weights[name] * value for name, value in terms.items()).backward()
            image.grad = None
            return time.perf_counter() - started

        evaluation()  # builds what the first evaluation builds, untimed
        return evaluation

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        return alternated({name: task(options) for name, options in jobs.items()}, repeats=repeats)
    finally:
        torch.set_num_threads(before)


def check_styles(styles) -> list[torch.Tensor]:
    """One style image or several, as a list of checked images (see ``images.check_image``)."""
    styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
    return [check_image(style, f"styles[{i}]") for i, style in enumerate(styles)]


def _check_start(init, content, scales) -> None:
    if isinstance(init, str) and init not in INITS:
        raise ValueError(f"Unknown init {init!r}: choose {', '.join(map(repr, INITS))} or pass an image tensor.")
    if isinstance(init, str) and init == "content" and content is None:
        raise ValueError("init='content' needs a content image.")
    if isinstance(scales, bool) or not isinstance(scales, int) or not 1 <= scales <= MAX_SCALES:
        raise ValueError(f"scales must be a whole number from 1 to {MAX_SCALES}, got {scales!r}.")


def _output_shape(content, styles, shape, layers) -> tuple[int, int]:
    """The content's (H, W), else ``shape``, else the first style's; checked against the layers' depth."""
    if content is not None:
        shape = tuple(content.shape[-2:])
    elif shape is None:
        shape = tuple(styles[0].shape[-2:])
    sides_ok = isinstance(shape, (tuple, list)) and len(shape) == 2
    if not sides_ok or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in shape):
        raise ValueError(f"shape must be (height, width) in whole pixels, got {shape!r}.")
    shape = (int(shape[0]), int(shape[1]))
    if max(shape) > MAX_SIZE:
        raise ValueError(f"The image would be {shape[1]}x{shape[0]} px: its sides must be at most {MAX_SIZE} px.")
    smallest = min_image_side(layers)
    if min(shape) < smallest:
        raise ValueError(
            f"The image is {shape[1]}x{shape[0]} px but {layers[-1] if len(layers) == 1 else 'the deepest layer'} "
            f"needs a side of at least {smallest} px: use a larger size or shallower layers."
        )
    return shape


def _start_image(init, content, shape, seed) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        _check_init_shape(init, shape)
        return init
    if init == "noise":
        return torch.rand((1, 3, *shape), generator=torch.Generator().manual_seed(seed))
    return content


def _check_init_shape(init: torch.Tensor, shape: tuple[int, int]) -> None:
    """Warn, before any work, when an init image of another shape than the picture's is stretched to it."""
    (height, width), (init_height, init_width) = shape, init.shape[-2:]
    if abs(math.log((init_height / init_width) / (height / width))) > math.log(1.02):  # more than rounding
        def form(w, h):
            return f"{w}x{h} px ({'portrait' if h > w else 'landscape' if w > h else 'square'})"

        warnings.warn(f"The init image is {form(init_width, init_height)} and the picture {form(width, height)}: it "
                      "is stretched to the picture's shape; crop it to that shape to start from it undistorted.",
                      stacklevel=4)


def pyramid(shape: tuple[int, int], scales: int, loss: LossSpec) -> list[tuple[int, ...]]:
    """The (H, W) of each coarse-to-fine level, coarsest first, ending at ``shape``; each level
    halves the next, but no side goes below what the loss's deepest layer needs."""
    smallest = min_image_side(loss.layers)
    return [tuple(max(smallest, round(side / 2**level)) for side in shape) for level in reversed(range(scales))]


def coarse_to_fine(model, loss: LossSpec, content, styles, start, levels, **loop) -> Result:
    """Optimize ``start`` at each (shape, evaluations) level in turn, each level starting from the
    previous one's image scaled up; the content and styles are scaled with the image.
    One level is plain single-scale optimization."""
    full_height = levels[-1][0][0]
    results = []
    image = start
    for shape, budget in levels:
        factor = shape[0] / full_height
        level_content = None if content is None else _resized(content, shape)
        level_styles = [_resized(s, _scaled(s.shape[-2:], factor)) for s in styles]
        objective = loss.objective(model, level_content, level_styles)
        image = _resized(image, shape).to(model.device)
        result = optimize_image(objective, image, loss.weights(), steps=budget, **loop)
        results.append(result)
        image = result.image
        if result.stopped:
            break
    return _merge(results)


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
