"""Score a trained generator on the held-out photos and write it into the package as a shipped generator.

    .venv/bin/python bench/ship_generator.py --checkpoint build/generators/starry_night.pt --name starry_night \\
        --style starry_night --image-size 256

``make generators`` runs it after each training (see the Makefile and docs/generators.md). The style
generator is scored on every photo of the set ``held-out`` at 256 px under the default ``LossSpec()``,
a texture generator on the noise of seeds 0 and 1 at 256 x 256 px under the same loss without content
(texture synthesis), each against L-BFGS from noise (``nst_lib.heldout``, curves cached in
``bench/results/curves``). The training photos are checked against the checkpoint's digest of its images,
so the description names the photos it was trained on. Prints the scores; writes
``nst_lib/trained/<name>.pt`` (half precision) and ``<name>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from nst_lib import VGG19, LossSpec, heldout, load_image, pretrained, profiles
from nst_lib.assets import image_set
from nst_lib.checkpoints import load_checkpoint
from nst_lib.figures import Table
from nst_lib.keys import images_digest
from nst_lib.training import _at_least
from nst_lib.vgg import describe_device

CURVES = Path(__file__).resolve().parent / "results" / "curves"
TEXTURE_SEEDS = (0, 1)


def held_out_scores(trained, model, style_name: str, evaluations: int, progress: bool) -> dict:
    """The generator's scores on the held-out photos (or noise seeds), as the package's description holds them."""
    size = profiles.SIZE
    style = load_image(style_name, size)
    if trained.mode == "texture":
        judged = LossSpec(content_weight=0.0)
        shape = (size, size)
        curves = {seed: heldout.reference_curve(model, None, style, judged, evaluations, seed=seed, shape=shape,
                                                cache=CURVES, progress=progress, description=f"curve seed {seed}")
                  for seed in TEXTURE_SEEDS}
        rows = heldout.score_texture(trained.generator, model, TEXTURE_SEEDS, shape, style, judged, curves)
        against = "texture synthesis by L-BFGS from noise of the same seed"
    else:
        judged = LossSpec()
        photos = {name: load_image(name, size) for name in image_set(profiles.GENERATOR_HELD_OUT_SET)}
        curves = {name: heldout.reference_curve(model, photo, style, judged, evaluations, cache=CURVES,
                                                progress=progress, description=f"curve {name}")
                  for name, photo in photos.items()}
        rows = heldout.score(trained.generator, model, photos, style, judged, curves)
        against = "style transfer by L-BFGS from noise on the same photo"
    return {"size": size, "loss": judged.to_dict(), "against": against, "evaluations": evaluations,
            "machine": describe_device(model.device), "date": time.strftime("%Y-%m-%d"), "photos": rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a generator saved by nst train-generator")
    parser.add_argument("--name", required=True, help="the shipped generator's name")
    parser.add_argument("--style", required=True, help="the named style image it was trained on")
    parser.add_argument("--content-set", default=profiles.GENERATOR_TRAINING_SET,
                        help="the named set of photos it was trained on (none for a texture generator)")
    parser.add_argument("--image-size", type=int, required=True, help="--image-size of its training")
    parser.add_argument("--evaluations", type=int, default=heldout.EVALUATIONS, help="length of each reference curve")
    parser.add_argument("--folder", type=Path, default=pretrained.FOLDER, help="where to write it")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    trained = load_checkpoint(args.checkpoint)
    config = trained.config
    photos = [] if trained.mode == "texture" else image_set(args.content_set)
    styles = [load_image(args.style, args.image_size)]
    contents = [_at_least(load_image(name, args.image_size), trained.recipe.crop_size) for name in photos]
    if images_digest([*styles, *contents]) != config["images"]:
        raise SystemExit(f"{args.checkpoint} was not trained on {args.style} and "
                         f"{args.content_set if photos else 'no photos'} at {args.image_size} px: "
                         "give the --style, --content-set and --image-size of its training.")
    model = VGG19(config["vgg_weights"], config["pooling"], pre_relu=config["pre_relu"])
    scores = held_out_scores(trained, model, args.style, args.evaluations, not args.no_progress)
    path = pretrained.export(trained, args.name, args.style, training_photos=photos, held_out=scores,
                             folder=args.folder)
    rows = [{"photo": row["photo"], "content": row["content"], "style": row["style"], "total": row["total"],
             "L-BFGS at 25": row["at_25"], "L-BFGS at 50": row["at_50"],
             "equivalent budget": heldout.budget_text(row["budget"], row["curve_evaluations"])}
            for row in scores["photos"]]
    print(f"{args.name}: {trained.step} steps, {trained.cpu_seconds / 3600:.2f} CPU hours; held out "
          f"({scores['against']}, {scores['size']} px):\n{Table(rows)!r}")
    budgets = [row["budget"] for row in scores["photos"]]
    print(f"median equivalent budget: "
          f"{statistics.median(args.evaluations + 1 if b is None else b for b in budgets):g} evaluations")
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MB) and {path.with_suffix('.json')}")


if __name__ == "__main__":
    main()
