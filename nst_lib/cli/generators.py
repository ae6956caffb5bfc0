"""``nst train-generator`` and ``nst stylize``: feed-forward generators from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import profiles
from ..images import MAX_SIZE, MIN_SIZE
from ..optimize import MAX_LEARNING_RATE
from . import options

FULL = profiles.PROFILES["full"]


def register(commands) -> None:
    train = commands.add_parser(
        "train-generator",
        help="train a feed-forward generator for one style (Johnson et al. 2016) or its texture",
        description="Train a network that stylizes any image in one pass, on random crops of content images "
        f"(by default the named set {profiles.GENERATOR_TRAINING_SET}), or with --texture one that turns noise into "
        "the style's texture. "
        "Checkpoints are written atomically; run the same command with --resume to continue an interrupted training. "
        "List options take comma-separated values and may be repeated.",
        formatter_class=options.HelpFormatter,
    )
    options.add_list(train, "--style", required=True, help="style images: files or named images")
    options.add_list(train, "--content", help="content images: files or named images")
    options.add_list(
        train,
        "--content-set",
        help=f"named sets of content images ({', '.join(_set_names())}); "
        f"without any content option: {profiles.GENERATOR_TRAINING_SET}",
    )
    train.add_argument("--content-dir", type=Path, help="a folder whose images are all added to the content images")
    train.add_argument("--texture", action="store_true", help="train a texture generator: noise in, style loss only")
    train.add_argument("--checkpoint", required=True, type=Path, help="where to save the generator (a .pt file)")
    train.add_argument("--resume", action="store_true", help="continue the training saved in --checkpoint")
    _add_recipe_options(train)
    options.add_loss_options(train)
    # A generator's training loss has its own defaults (profiles.GENERATOR_*): see docs/generators.md.
    train.set_defaults(style_weight=profiles.GENERATOR_STYLE_WEIGHT, tv_weight=profiles.GENERATOR_TV_WEIGHT)
    options.add_model_options(train)
    train.set_defaults(handler=_train)

    run = commands.add_parser(
        "stylize",
        help="apply a trained generator to an image (or draw a texture from noise)",
        description="Stylize an image in one forward pass of a generator: one shipped with the package "
        f"(--style: {_shipped_names()}) or one saved by `nst train-generator` (--checkpoint). "
        "A texture generator instead turns seeded noise into a square texture.",
        formatter_class=options.HelpFormatter,
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--style", help="the style of a generator shipped with the package (no training needed)")
    source.add_argument("--checkpoint", type=Path, help="a generator saved by train-generator")
    run.add_argument("--texture", action="store_true", help="with --style: the style's shipped texture generator")
    run.add_argument("--content", help="the image to stylize: a file or a named image (not for textures)")
    options.add_output_option(run)
    run.add_argument(
        "--size", type=int, default=FULL.stylize_size, help=f"longest side in pixels ({MIN_SIZE}-{MAX_SIZE})"
    )
    run.add_argument("--seed", type=int, default=profiles.SEED, help="seed of a texture's noise")
    options.add_device_option(run)
    run.set_defaults(handler=_stylize)


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    from ..generator import MAX_BATCH, MAX_CHANNELS, MAX_RESIDUAL_BLOCKS, SCHEDULES, UPSAMPLINGS, Recipe

    recipe = Recipe()
    parser.add_argument("--steps", type=int, default=recipe.steps, help="Adam steps")
    parser.add_argument("--batch", type=int, default=recipe.batch, help=f"crops per step (1-{MAX_BATCH})")
    parser.add_argument(
        "--crop-size",
        type=int,
        default=recipe.crop_size,
        help=f"side of the square training crops (px; {MIN_SIZE} or what the layers need, to {MAX_SIZE})",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=FULL.stylize_size,
        help=f"longest side of the content and style images the crops come from (px; {MIN_SIZE}-{MAX_SIZE})",
    )
    parser.add_argument(
        "--lr", type=float, default=recipe.lr, help=f"Adam's learning rate (up to {MAX_LEARNING_RATE:g})"
    )
    options.add_list(
        parser,
        "--scales",
        kind=options.numbers,
        default=recipe.scales,
        metavar="LOW,HIGH",
        help="each crop shows its image at a scale drawn from LOW to HIGH (1: the image's own pixels)",
    )
    parser.add_argument(
        "--schedule", choices=SCHEDULES, default=recipe.schedule, help="the learning rate: cosine decay or constant"
    )
    parser.add_argument("--warmup", type=int, default=recipe.warmup,
                        help="first steps on the content loss alone, before the style is added")
    parser.add_argument("--seed", type=int, default=recipe.seed, help="seed of the network, crops and noise")
    parser.add_argument("--channels", type=int, default=recipe.channels,
                        help=f"width of the network's first layer (1-{MAX_CHANNELS})")
    parser.add_argument("--residual-blocks", type=int, default=recipe.residual_blocks,
                        help=f"residual blocks (0-{MAX_RESIDUAL_BLOCKS})")
    parser.add_argument("--upsample", choices=UPSAMPLINGS, default=recipe.upsample,
                        help="how the network resizes before each upsampling convolution")
    parser.add_argument("--checkpoint-every", type=int, default=profiles.CHECKPOINT_EVERY, help="save every K steps")


def _recipe(args: argparse.Namespace):
    from ..generator import Recipe
    from ..images import check_size

    check_size(args.crop_size, "--crop-size")

    scales = args.scales if isinstance(args.scales, list) else options.numbers(args.scales)
    if len(scales) != 2:
        raise ValueError(f"--scales takes two numbers, LOW,HIGH (e.g. 0.5,1), got {len(scales)}.")
    return Recipe(
        steps=args.steps,
        batch=args.batch,
        crop_size=args.crop_size,
        lr=args.lr,
        schedule=args.schedule,
        scales=tuple(scales),
        seed=args.seed,
        channels=args.channels,
        residual_blocks=args.residual_blocks,
        warmup=0 if args.texture else args.warmup,
        upsample=args.upsample,
    )


def _set_names() -> list[str]:
    from ..assets import image_sets

    return list(image_sets())


def _content_sources(args: argparse.Namespace) -> list:
    from ..assets import image_set
    from ..images import image_files_in

    if args.texture and (args.content or args.content_dir or args.content_set):
        raise ValueError("A texture generator takes no content images: drop --texture or the content options.")
    if args.texture:
        return []
    sources = list(args.content or [])
    judged = set(image_set(profiles.GENERATOR_HELD_OUT_SET))
    for name in args.content_set or []:
        sources += image_set(name)
        if set(image_set(name)) <= judged:
            print(f"warning: the photographs of {name} are kept out of every generator's training, to judge "
                  f"generators on pictures they never saw (the report does): train on {profiles.GENERATOR_TRAINING_SET}"
                  " to keep that judgement fair.", file=sys.stderr)
    if args.content_dir is not None:
        sources += image_files_in(args.content_dir)
    return sources or image_set(profiles.GENERATOR_TRAINING_SET)


def _train(args: argparse.Namespace) -> None:
    from .. import training
    from ..checkpoints import check_checkpoint_path, load_checkpoint
    from ..images import check_size, load_image
    from ..vgg import pick_device

    check_checkpoint_path(args.checkpoint, args.resume)
    before = load_checkpoint(args.checkpoint).step if args.resume else None
    check_size(args.image_size, "--image-size")
    sources = _content_sources(args)
    recipe = _recipe(args)
    loss = options.loss_spec(args, content=not args.texture)
    recipe.check_crops(loss)
    recipe.check_memory(loss, pick_device(args.device))  # before the networks are made or the images loaded
    model = options.model(args)
    styles = [load_image(style, args.image_size) for style in args.style]
    contents = [load_image(source, args.image_size) for source in sources]
    args.on_interrupt = lambda: _interrupted(args.checkpoint, before)
    trained = training.train_generator(
        styles,
        contents,
        model=model,
        loss=loss,
        recipe=recipe,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        description=f"training ({'texture' if args.texture else 'style transfer'})",
    )
    if trained.step == before:
        print(f"{args.checkpoint} already holds step {before} of {args.steps}: nothing to train, nothing written.")
        return
    total = trained.history.get("total", [])
    change = f"; total loss {total[0]:.4g} -> {total[-1]:.4g}" if total else ""
    count = len(contents)
    what = "texture" if args.texture else f"style transfer on {count} content image{'s' * (count != 1)}"
    print(
        f"wrote {args.checkpoint} ({what}; step {trained.step} of {args.steps}, {trained.seconds:.1f} s in all, "
        f"{trained.seconds_per_step:.3f} s/step on {model.device}{change})"
    )


def _interrupted(checkpoint: Path, before: int | None) -> str:
    """What an interrupted training left in ``checkpoint`` (which held step ``before``, or did not exist)."""
    from ..checkpoints import load_checkpoint

    after = load_checkpoint(checkpoint).step if checkpoint.is_file() else None
    if after is None:
        return "nothing was written: the training stopped before its first checkpoint."
    if after == before:
        return f"nothing was written: {checkpoint} still holds step {after}; add --resume to continue from there."
    return (
        f"wrote {checkpoint} (it holds step {after}, the last good checkpoint); the steps after it were not saved: "
        "add --resume to continue."
    )


def _shipped_names() -> str:
    from ..pretrained import PretrainedError, available

    try:
        names = sorted({info["style"] for info in available()})
    except PretrainedError:  # a damaged description must not stop every command: stylize says what is wrong
        return "see the package's nst_lib/trained folder"
    return ", ".join(names) if names else "none in this installation"


def _stylize(args: argparse.Namespace) -> None:
    from ..generator import seeded_noise, stylize, stylize_bytes
    from ..images import check_size, load_image, save_image
    from ..sizing import check_memory
    from ..vgg import pick_device

    if args.texture and args.checkpoint is not None:
        raise ValueError("--texture picks a shipped texture generator with --style: drop it with --checkpoint "
                         "(a checkpoint knows whether it is a texture generator).")
    options.check_output(args.output, inputs=[args.content, args.checkpoint])
    check_size(args.size, "--size")
    device = pick_device(args.device)
    network, mode, what = _generator(args, device)
    check_memory(stylize_bytes(network.channels, network.residual_blocks, (args.size, args.size)), device,
                 f"Stylizing at {args.size} px with a generator of {network.channels} channels", "use a smaller --size")
    if mode == "texture":
        if args.content is not None:
            raise ValueError(f"{what} is a texture generator: it takes no --content; give --size and --seed.")
        source = seeded_noise((args.size, args.size), args.seed)
    else:
        if args.content is None:
            raise ValueError(f"{what} is a style-transfer generator: give the image to stylize with --content.")
        source = load_image(args.content, args.size)
    started = time.perf_counter()
    image = stylize(network, source)
    seconds = time.perf_counter() - started
    save_image(image, args.output)
    height, width = image.shape[-2:]
    print(f"wrote {args.output} ({width}x{height} px in {seconds:.2f} s on {device}; {what})")


def _generator(args: argparse.Namespace, device):
    """(network, mode, a few words on where it came from) for --checkpoint or --style [--texture]."""
    if args.checkpoint is not None:
        from ..checkpoints import load_checkpoint

        trained = load_checkpoint(args.checkpoint, device)
        return trained.generator, trained.mode, f"{args.checkpoint}, trained {trained.step} steps"
    from .. import pretrained

    name = pretrained.find(args.style, texture=args.texture)
    info = pretrained.description(name)
    return pretrained.load(name, device), info["mode"], f"the shipped generator {name}, trained {info['steps']} steps"
