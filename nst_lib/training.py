"""Training feed-forward generators (see ``generator``); their files are ``checkpoints``.

Training draws random square crops from a set of content images, each at a
random scale and place and flipped left-right at random, or noise for a
texture, and takes Adam steps on the loss of a ``LossSpec`` (the same loss
``transfer`` optimizes per image), with a learning rate that decays along a
cosine. Where the device runs bfloat16 natively (as the VGG-19 does, see
``vgg.fast_bfloat16``) the generator's convolutions run in bfloat16 under
autocast while its weights and Adam's state stay float32.

All randomness comes from one seeded generator whose state is saved in each
checkpoint with the network, the Adam state and the loss history, so an
interrupted training resumed from its last checkpoint ends with the same
network as one that never stopped. Checkpoints are written atomically: a
crash leaves the previous one intact.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from . import profiles
from .checkpoints import Training, check_checkpoint_path, resumed, save_checkpoint
from .generator import Generator, Recipe, noise, run_generator
from .images import check_image
from .keys import images_digest, weights_digest
from .losses import LossSpec, PerceptualLoss
from .optimize import check_steps, check_styles, progress_bar
from .vgg import VGG19


def generator_loss(**changes) -> LossSpec:
    """The loss generators train on by default: ``LossSpec()`` with the generators' style and total
    variation weights (``profiles``), and any ``changes``."""
    return LossSpec(style_weight=profiles.GENERATOR_STYLE_WEIGHT, tv_weight=profiles.GENERATOR_TV_WEIGHT, **changes)


def random_crops(
    images: Sequence[torch.Tensor],
    count: int,
    size: int,
    generator: torch.Generator,
    scales: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """``count`` square crops of ``size`` px (count, 3, size, size): each from an image chosen
    at random, at a scale drawn log-uniformly from ``scales`` (1: the image's own pixels; 1/2: a
    square of twice ``size``, halved), at a random place, flipped left-right half of the time.
    A square larger than the image's shorter side is cut at that side."""
    low, high = scales
    crops = []
    for _ in range(count):
        image = images[int(torch.randint(len(images), (1,), generator=generator))]
        height, width = image.shape[-2:]
        scale = low
        if low < high:
            scale = math.exp(math.log(low) + math.log(high / low) * float(torch.rand(1, generator=generator)))
        side = min(round(size / scale), height, width) if scale < 1 else size
        top = int(torch.randint(height - side + 1, (1,), generator=generator))
        left = int(torch.randint(width - side + 1, (1,), generator=generator))
        crop = image[..., top : top + side, left : left + side]
        if side != size:
            crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if bool(torch.rand(1, generator=generator) < 0.5):
            crop = crop.flip(-1)
        crops.append(crop)
    return torch.cat(crops)


def train_generator(
    styles: torch.Tensor | Sequence[torch.Tensor],
    contents: Sequence[torch.Tensor] = (),
    *,
    model: VGG19 | None = None,
    loss: LossSpec | None = None,
    recipe: Recipe | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = profiles.CHECKPOINT_EVERY,
    resume: bool = False,
    progress: bool | str = True,
    description: str = "training",
    callback: Callable[[Training], None] | None = None,
) -> Training:
    """Train a generator with Adam on ``loss`` (default ``generator_loss()``).

    With ``contents`` (images (1, 3, H, W) in [0, 1]), a style-transfer
    generator: it learns ``G(crop)`` for random crops of them, against each
    crop's own content and the style. Images whose shorter side is below the
    crop size are scaled up to it. Without contents, a texture generator:
    ``G(noise)`` against the style alone (the content weight is ignored).

    ``checkpoint``: where to save the state every ``checkpoint_every`` steps
    and at the end (atomically). ``resume``: continue from that checkpoint,
    which must come from the same settings and images (only the recipe's
    ``steps`` may grow); without it an existing checkpoint is an error rather
    than overwritten. ``callback(training)`` runs after every step (its time
    counts as training time).
    """
    styles = check_styles(styles)
    contents = [check_image(content, f"contents[{i}]") for i, content in enumerate(contents)]
    mode = "style" if contents else "texture"
    loss, recipe = _checked_settings(mode, styles, loss, recipe)
    checkpoint_every = check_steps(checkpoint_every, "checkpoint_every")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint to resume from.")
    if checkpoint is not None:
        check_checkpoint_path(checkpoint, resume)
    model = model if model is not None else VGG19()
    recipe.check_memory(loss, model.device)  # before the network is made
    bfloat16 = model.uses_bfloat16(model.device)  # the generator runs in the precision the VGG-19 runs in
    contents = [_at_least(image, recipe.crop_size) for image in contents]
    config = _config(mode, recipe, loss, model, [*styles, *contents], len(contents), bfloat16)
    state, optimizer, rng = _start(config, model.device, checkpoint, resume)
    objective = PerceptualLoss(loss, model, None, styles)
    # The warm-up's loss reads the content layers only: no style term to compute and throw away.
    warmup = PerceptualLoss(loss.replace(style_weight=0.0), model, None, styles) if recipe.warmup else None
    bar = progress_bar(progress, recipe.steps, description)
    bar.update(state.step)
    started, seconds_before = time.perf_counter(), state.seconds
    cpu_started, cpu_before = time.process_time(), state.cpu_seconds
    try:
        while state.step < recipe.steps:
            inputs = _inputs(contents, recipe, rng).to(model.device)
            lr = recipe.lr_at(state.step)
            terms, total = train_step(
                state.generator, optimizer, warmup if state.step < recipe.warmup else objective, inputs,
                step=state.step, lr=lr, bfloat16=bfloat16,
            )
            state.step += 1
            _record(state.history, objective.spec.weights(), terms, total)
            state.seconds = seconds_before + time.perf_counter() - started
            state.cpu_seconds = cpu_before + time.process_time() - cpu_started
            bar.update(1)
            if state.step % 10 == 0:
                bar.set_postfix(loss=f"{state.history['total'][-1]:.3g}")
            if checkpoint is not None and (state.step % checkpoint_every == 0 or state.step == recipe.steps):
                save_checkpoint(checkpoint, state, optimizer, rng)
            if callback is not None:
                callback(state)
    finally:
        bar.close()
        state.generator.eval()
    return state


def _config(mode: str, recipe: Recipe, loss: LossSpec, model: VGG19, images: list[torch.Tensor], contents: int,
            bfloat16: bool) -> dict:
    """Every setting that shapes a training, as its checkpoint keeps it (a resume must match it)."""
    return {
        "mode": mode,
        "recipe": asdict(recipe),
        "loss": loss.to_dict(),
        "vgg_weights": model.weights,
        "pooling": model.pooling,
        "pre_relu": model.pre_relu,
        "vgg_digest": weights_digest(model.settings["weights"], model.settings["seed"]),
        "images": images_digest(images),
        "content_images": contents,
        "precision": "bfloat16" if bfloat16 else "float32",
    }


def _record(history: dict[str, list[float]], names, terms: dict, total: torch.Tensor) -> None:
    """Append one step's loss terms (NaN for a term the step did not compute: the style during the warm-up)
    and its total to ``history``."""
    for name in names:
        history.setdefault(name, []).append(float(terms[name].detach()) if name in terms else math.nan)
    history.setdefault("total", []).append(float(total.detach()))


def _inputs(contents: list[torch.Tensor], recipe: Recipe, rng: torch.Generator) -> torch.Tensor:
    """The next batch: crops of the content images, or noise for a texture generator."""
    if contents:
        return random_crops(contents, recipe.batch, recipe.crop_size, rng, recipe.scales)
    return noise(recipe.batch, (recipe.crop_size, recipe.crop_size), rng)


def _checked_settings(mode: str, styles, loss: LossSpec | None, recipe: Recipe | None) -> tuple[LossSpec, Recipe]:
    if not styles:
        raise ValueError("No style image given: a generator learns one style (or a blend).")
    loss = generator_loss() if loss is None else loss
    if mode == "texture" and loss.content_weight > 0:
        loss = loss.replace(content_weight=0.0)
    if loss.style_blend is not None and len(loss.style_blend) != len(styles):
        raise ValueError(
            f"Got {len(loss.style_blend)} blend weights for {len(styles)} style images: give one per style."
        )
    recipe = Recipe() if recipe is None else recipe
    if recipe.warmup and (mode == "texture" or loss.content_weight == 0):
        recipe = replace(recipe, warmup=0)  # nothing to give back: the style is trained from the first step
    recipe.check_crops(loss)
    return loss, recipe


def _start(config: dict, device, checkpoint, resume: bool):
    """A fresh network, Adam and random generator, or those saved in ``checkpoint`` when resuming."""
    recipe = Recipe(**config["recipe"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        network = recipe.network().to(device).train()
    rng = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=recipe.lr)
    state = Training(network, config, step=0, history={}, seconds=0.0)
    if checkpoint is not None and resume:
        state = resumed(Path(checkpoint), config, network, optimizer, rng)
    return state, optimizer, rng


def train_step(
    network: Generator, optimizer, objective: PerceptualLoss, inputs: torch.Tensor, *, step: int, lr: float,
    bfloat16: bool,
):
    """One Adam step at learning rate ``lr`` on a batch (the ``step``-th, 0-based), the generator in
    bfloat16 under autocast when ``bfloat16``; returns the unweighted terms and the weighted total."""
    objective.set_content(inputs)
    terms = objective(run_generator(network, inputs, bfloat16))
    weights = objective.spec.weights()
    total = sum(weights[name] * value for name, value in terms.items())
    if not torch.isfinite(total):
        raise ValueError(
            f"The training loss became {float(total)} at step {step + 1}: start again with a lower learning rate."
        )
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return terms, total


def _at_least(image: torch.Tensor, side: int) -> torch.Tensor:
    """``image`` scaled up (aspect kept) so that its shorter side is at least ``side``."""
    height, width = image.shape[-2:]
    if min(height, width) >= side:
        return image
    scale = side / min(height, width)
    shape = (max(side, math.ceil(height * scale)), max(side, math.ceil(width * scale)))
    return F.interpolate(image, size=shape, mode="bilinear", align_corners=False).clamp(0, 1)


