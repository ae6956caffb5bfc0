"""Which recipe makes a feed-forward generator learn on a CPU: each lever against CPU minutes,
judged on held-out photos. Run by hand, niced, on the machine it describes:

    nice -n 10 .venv/bin/python bench/generator_recipe.py --stage short      # each lever, a few hundred steps
    nice -n 10 .venv/bin/python bench/generator_recipe.py --stage long       # the winners combined, longer

Every setting trains Starry Night generators on the 20 ``kodak-train`` photos (checkpoints under
``bench/results/recipe/<stage>/``, gitignored); the same command resumes an interrupted run from its
checkpoints and reuses what is finished. Each generator is then scored on the held-out photos at
256 px under the default ``LossSpec()`` (style weight 1e4, whatever loss it was trained on): its
content, style and total loss per photo and its equivalent budget, the L-BFGS evaluations from noise
whose best total reaches the generator's (``nst_lib.heldout``; the reference curves are cached in
``bench/results/curves/``). Long settings are also scored at milestones on the way.

Prints one table per stage (Markdown, for ``docs/generators.md``), writes
``bench/results/recipe/<stage>.json`` and, for a person to look at, one PNG per setting (the
held-out photos and the setting's pictures of them) and one contact sheet per stage.
``--quick`` runs tiny sizes with a random VGG-19 (checks that it runs; numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from nst_lib import VGG19, LossSpec, heldout, load_image, profiles
from nst_lib.assets import image_set
from nst_lib.checkpoints import load_checkpoint
from nst_lib.figures import Table, contact_sheet, save_figure
from nst_lib.files import atomic_write
from nst_lib.generator import Recipe, stylize
from nst_lib.training import train_generator
from nst_lib.vgg import describe_device

RESULTS = Path(__file__).resolve().parent / "results"
STYLE = "starry_night"
SIZE = profiles.SIZE
# The standard profile's recipe before this study, with 4 crops a step: the baseline of every lever.
BASE = Recipe(steps=300, batch=4, crop_size=128, lr=1e-3, scales=(0.5, 1.0), schedule="cosine", channels=32,
              residual_blocks=5, warmup=0, upsample="nearest")


@dataclass(frozen=True)
class Setting:
    """One recipe to measure: changes to ``BASE`` and to the training loss, and the training photos' size."""

    name: str
    what: str
    recipe: dict = field(default_factory=dict)
    loss: dict = field(default_factory=dict)
    image_size: int = SIZE
    milestones: tuple[int, ...] = ()

    def full_recipe(self, base: Recipe) -> Recipe:
        return replace(base, **self.recipe)

    def training_loss(self) -> LossSpec:
        return LossSpec(**self.loss)


SHORT = [
    Setting("baseline", "the standard profile's recipe before this study, 4 crops of 128 px a step"),
    Setting("warm-up 100", "the first 100 steps on the content loss alone", {"warmup": 100}),
    Setting("style 3e3", "style weight 3e3 in training", loss={"style_weight": 3e3}),
    Setting("crops 160 x 3", "3 crops of 160 px a step", {"crop_size": 160, "batch": 3}),
    Setting("crops 256 x 1", "1 crop of 256 px a step, at scale 1 from photos at 384 px", {"crop_size": 256, "batch": 1,
            "scales": (1.0, 1.0)}, image_size=384),
    Setting("tv 10", "total variation weight 10 in training", loss={"tv_weight": 10.0}),
    Setting("bilinear", "bilinear resize before each upsampling convolution", {"upsample": "bilinear"}),
    Setting("scales 1-1", "every crop at the photos' own scale (the judged one)", {"scales": (1.0, 1.0)}),
    Setting("lr 2e-3", "learning rate 2e-3", {"lr": 2e-3}),
    Setting("16 channels", "a network half as wide", {"channels": 16}),
    Setting("3 blocks", "3 residual blocks instead of 5", {"residual_blocks": 3}),
    Setting("constant lr", "no cosine decay", {"schedule": "constant"}),
    Setting("chosen", "crops 160 x 3, bilinear, tv 10: the defaults chosen from the rows above",
            {"crop_size": 160, "batch": 3, "upsample": "bilinear"}, loss={"tv_weight": 10.0}),
]
LONG = [
    Setting("baseline", "the standard profile's recipe before this study, 1500 steps", {"steps": 1500},
            milestones=(300, 600, 1000)),
    Setting("crops 160 x 3", "3 crops of 160 px a step, 3000 steps", {"crop_size": 160, "batch": 3, "steps": 3000},
            milestones=(500, 1000, 1500, 2000, 2500)),
]
STAGES = {"short": SHORT, "long": LONG}


def machine() -> str:
    return f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def train(setting: Setting, base: Recipe, model, style, photos, folder: Path, progress: bool) -> dict:
    """Train (or resume, or reuse) one setting; its generator's snapshots at its milestones and at the end."""
    recipe = setting.full_recipe(base)
    checkpoint = folder / f"{_slug(setting.name)}.pt"
    milestones = sorted({*(m for m in setting.milestones if m < recipe.steps), recipe.steps})
    snapshots = folder / f"{_slug(setting.name)}.snapshots"
    snapshots.mkdir(parents=True, exist_ok=True)

    def keep(training) -> None:
        if training.step in milestones:
            path = snapshots / f"{training.step}.pt"
            if not path.exists():
                with atomic_write(path) as handle:
                    torch.save({"step": training.step, "seconds": training.seconds,
                                "cpu_seconds": training.cpu_seconds, "history": training.history,
                                "generator": training.generator.state_dict()}, handle)

    resume = checkpoint.is_file()
    if resume:
        saved = load_checkpoint(checkpoint)
        keep(saved)  # a run stopped between its checkpoint and its snapshot
        if saved.step >= recipe.steps:
            return {"recipe": recipe, "snapshots": snapshots, "milestones": milestones}
    train_generator(style, photos, model=model, loss=setting.training_loss(), recipe=recipe, checkpoint=checkpoint,
                    checkpoint_every=min(50, recipe.steps), resume=resume, progress=progress,
                    description=setting.name, callback=keep)
    return {"recipe": recipe, "snapshots": snapshots, "milestones": milestones}


def score(setting: Setting, trained: dict, model, style, held_out, curves, judged: LossSpec) -> list[dict]:
    """One row per milestone: the setting's generator then, scored on the held-out photos."""
    rows = []
    for step in trained["milestones"]:
        snapshot = torch.load(trained["snapshots"] / f"{step}.pt", weights_only=True)
        network = trained["recipe"].network()
        network.load_state_dict(snapshot["generator"])
        network.eval()
        scores = heldout.score(network, model, held_out, style, judged, curves)
        budgets = [row["budget"] for row in scores]
        evaluations = scores[0]["curve_evaluations"]
        rows.append({
            "setting": setting.name, "step": step,
            "s/step": snapshot["seconds"] / step, "CPU min": snapshot["cpu_seconds"] / 60,
            "content": statistics.mean(row["content"] for row in scores),
            "style": statistics.mean(row["style"] for row in scores),
            "total": statistics.mean(row["total"] for row in scores),
            "median budget": _median_budget(budgets, evaluations),
            "budgets": " ".join(heldout.budget_text(b, evaluations) for b in budgets),
            "photos": scores, "what": setting.what,
        })
    return rows


def _median_budget(budgets, evaluations: int) -> str:
    """The median equivalent budget; beyond the curve counts as its length + 1."""
    value = statistics.median(evaluations + 1 if b is None else b for b in budgets)
    return f"> {evaluations}" if value > evaluations else f"{value:g}"


def pictures(setting: Setting, trained: dict, held_out, folder: Path) -> list[torch.Tensor]:
    """The setting's final generator on each held-out photo; saved as one PNG beside its checkpoint."""
    step = trained["milestones"][-1]
    snapshot = torch.load(trained["snapshots"] / f"{step}.pt", weights_only=True)
    network = trained["recipe"].network()
    network.load_state_dict(snapshot["generator"])
    network.eval()
    tiles = [stylize(network, photo) for photo in held_out.values()]
    figure = contact_sheet([list(held_out.values()), tiles], ["held out", setting.name], list(held_out),
                           title=f"{setting.name}: {setting.what}, {step} steps")
    save_figure(figure, folder / f"{_slug(setting.name)}.png")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return tiles


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=STAGES, default="short")
    parser.add_argument("--only", nargs="*", help="settings to run (default: all of the stage)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, random VGG-19: checks that it runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    settings = [s for s in STAGES[args.stage] if not args.only or s.name in args.only]
    base, size, evaluations = BASE, SIZE, heldout.EVALUATIONS
    model = VGG19("random", precision="float32") if args.quick else VGG19()
    held_out_names, training_names = image_set("held-out"), image_set("kodak-train")
    if args.quick:
        base, size, evaluations = replace(BASE, steps=4, batch=1, crop_size=32), 64, 6
        settings = [replace(s, image_size=64, milestones=tuple(m for m in s.milestones if m < 4),
                            recipe={**s.recipe, **({"warmup": 1} if s.recipe.get("warmup") else {})})
                    for s in settings[:2]]
        held_out_names, training_names = held_out_names[:2], training_names[:2]
    folder = args.out / "recipe" / args.stage
    folder.mkdir(parents=True, exist_ok=True)
    print(machine(), flush=True)
    style = load_image(STYLE, size)
    judged = LossSpec()
    held_out = {name: load_image(name, size) for name in held_out_names}
    photos_at = {}

    trained = {}
    for setting in settings:
        image_size = size if args.quick else setting.image_size
        if image_size not in photos_at:
            photos_at[image_size] = [load_image(name, image_size) for name in training_names]
        # The style at the judged size whatever the photos' size: one Gram target for every setting.
        trained[setting.name] = train(setting, base, model, style, photos_at[image_size], folder,
                                      not args.no_progress)
        print(f"trained {setting.name}", flush=True)

    curves = {name: heldout.reference_curve(model, photo, style, judged, evaluations, cache=args.out / "curves",
                                            progress=not args.no_progress, description=f"curve {name}")
              for name, photo in held_out.items()}
    rows, tiles = [], []
    for setting in settings:
        rows += score(setting, trained[setting.name], model, style, held_out, curves, judged)
        tiles.append(pictures(setting, trained[setting.name], held_out, folder))
    targets = {f"L-BFGS best total after {n} evaluations (mean over the photos)":
               statistics.mean(heldout.best_after(c["total"], n) for c in curves.values()) for n in (25, 50)}
    for label, value in targets.items():
        print(f"{label}: {value:.3g}")
    shown = ["setting", "step", "s/step", "CPU min", "content", "style", "total", "median budget", "budgets"]
    table = Table([{key: row[key] for key in shown} for row in rows])
    print(f"\nStage {args.stage} ({machine()}; held out: {', '.join(held_out)}):\n")
    print(_markdown(table))
    sheet = contact_sheet([list(held_out.values())] + tiles, ["held out"] + [s.name for s in settings],
                          list(held_out), title=f"Recipe study, stage {args.stage}")
    save_figure(sheet, folder.parent / f"{args.stage}.png")
    results = {"machine": machine(), "platform": platform.platform(), "date": time.strftime("%Y-%m-%d"),
               "stage": args.stage, "base": asdict(base), "targets": targets, "rows": rows,
               "settings": [asdict(s) for s in settings]}
    with atomic_write(folder.parent / f"{args.stage}.json", "w") as handle:
        json.dump(results, handle, indent=1, default=str)
    return results


def _markdown(table: Table) -> str:
    lines = repr(table).splitlines()
    header = lines[0].split(" | ")
    return "\n".join([f"| {lines[0]} |", "| " + " | ".join("---" for _ in header) + " |"]
                     + [f"| {line} |" for line in lines[1:]])


if __name__ == "__main__":
    main()
