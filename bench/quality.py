"""Quality per second: the best picture for the time spent, against the classic recipe.

Run by hand: ``make bench-quality`` (``--quick``: a minute or two, to check that it runs).
It prints README-ready Markdown tables and writes ``bench/results/quality.json``, the
trade-off curves ``bench/results/quality_curves.png`` and the classic recipe's pictures
beside the default's, ``bench/results/quality_pictures.png``.

Runs. Each configuration (``CONFIGS``) optimizes content x style pairs (``PAIRS``) at
several style weights (``STYLE_WEIGHTS``) with L-BFGS, from the same seed. The best image
after 50, 100, 200 and 400 evaluations is taken from one run: L-BFGS's path does not depend
on its budget, so that image is exactly what a run with that budget returns
(tests/test_bench_quality.py checks it). Every configuration runs on the first pairs up to
200 evaluations; the classic recipe and the default also on every pair up to 400.

Yardstick. Every picture is measured the same way, whatever objective made it:
``nst_lib.yardstick`` (float32 VGG-19, rectified responses at layers that no configuration's
objective reads, relative errors, on the picture as saved). The same layers before the ReLU
give a second yardstick, to check that the conclusions do not hang on rectification.

Trade-off. For one configuration, pair and budget, the style weights trace a curve of style
error against content error. The tables compare style errors at matched content error: the
classic recipe's content error at the middle style weight, each other curve interpolated
there (``nst_lib.yardstick.style_at``); the ratio to the classic recipe's style error, as a
geometric mean over the pairs, is the figure of merit (below 1: more stylized at the same
content error).

Time. The configurations run again on the first pair, one evaluation each in turn
(bench/speed.py's ``Turns``), so that all of them meet the same machine; the seconds each
spends on its own turns up to each budget are its wall time.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from nst_lib import VGG19, load_image, profiles, save_image, transfer
from nst_lib.files import atomic_write
from nst_lib.losses import LossSpec
from nst_lib.vgg import describe_device, fast_bfloat16, source_layer
from nst_lib.yardstick import CONTENT as YARDSTICK_CONTENT
from nst_lib.yardstick import STYLE as YARDSTICK_STYLE
from nst_lib.yardstick import Yardstick, style_at

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import Turns  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

PAIRS = (
    ("tubingen", "starry_night"),
    ("golden_gate", "the_scream"),
    ("kodim23", "frida_kahlo"),
    ("kodim21", "starry_night"),
)
STYLE_WEIGHTS = (1e3, 3e3, 1e4)
BUDGETS = (50, 100, 200, 400)
SIZE = 256
LEVER_PAIRS = 2  # every configuration runs on this many of PAIRS ...
LEVER_BUDGET = 200  # ... up to this many evaluations

# Every configuration's objective: Gatys et al.'s layers; Config.rectified says what conv names give.
CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


@dataclass(frozen=True)
class Config:
    """One way of running the optimization; only ``name`` is not a setting."""

    name: str
    precision: str = "bfloat16"
    rectified: bool = True  # layers after the ReLU (Caffe's blobs) or the convolutions' own outputs
    line_search: bool = False
    history_size: int = 100
    init: str = "noise"

    def model(self, weights: str) -> VGG19:
        return _model(weights, self.precision, self.rectified)

    def options(self, style_weight: float = profiles.STYLE_WEIGHT) -> dict:
        """transfer()'s keyword arguments for this configuration (besides model and images)."""
        loss = LossSpec(content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS, style_weight=style_weight)
        return dict(loss=loss, init=self.init, line_search=self.line_search, history_size=self.history_size)

    def settings(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "name"}


@functools.lru_cache(maxsize=None)
def _model(weights: str, precision: str, rectified: bool) -> VGG19:
    """One network per setting, shared by the configurations that use it."""
    return VGG19(weights, precision=precision, pre_relu=not rectified)


CLASSIC = Config("classic recipe: float32, rectified, no line search", precision="float32")
BASE = Config("bfloat16, rectified, no line search")
CONFIGS = (
    CLASSIC,
    BASE,
    Config("bfloat16, pre-ReLU, no line search", rectified=False),
    Config("bfloat16, rectified, line search", line_search=True),
    Config("bfloat16, rectified, no line search, history 10", history_size=10),
    Config("bfloat16, rectified, no line search, history 30", history_size=30),
    Config("bfloat16, rectified, no line search, content init", init="content"),
    Config("bfloat16, pre-ReLU, line search", rectified=False, line_search=True),
)


def library_default() -> Config:
    """The configuration that ``transfer`` runs when nothing is said (bfloat16 where native)."""
    if (profiles.CONTENT_LAYERS, profiles.STYLE_LAYERS) != (CONTENT_LAYERS, STYLE_LAYERS):
        raise LookupError("The library's default layers are not Gatys et al.'s, which every configuration uses.")
    precision = "bfloat16" if fast_bfloat16(torch.device("cpu")) else "float32"
    return Config("nst_lib default", precision=precision, rectified=not profiles.PRE_RELU,
                  line_search=profiles.LINE_SEARCH, history_size=profiles.HISTORY_SIZE, init=profiles.INIT)


def default_config(configs) -> Config:
    """The row of ``configs`` that is the library's default."""
    settings = library_default().settings()
    for config in configs:
        if config.settings() == settings:
            return config
    raise LookupError(f"No configuration has the library's default settings {settings}.")


# --------------------------------------------------------------------------------------
# The yardstick


def measure(record: dict, image: torch.Tensor, yardsticks) -> None:
    """Fill ``record``'s errors under both yardsticks (rectified, pre-ReLU)."""
    rectified, pre_relu = yardsticks
    record["content_error"], record["style_error"] = rectified(image)
    record["content_error_pre_relu"], record["style_error_pre_relu"] = pre_relu(image)


def yardstick_layers() -> set[str]:
    """Every layer either yardstick reads (conv names before the ReLU)."""
    return {f"{kind}{n}" for kind in ("relu", "conv") for n in (*YARDSTICK_CONTENT, *YARDSTICK_STYLE)}


def objective_layers(config: Config) -> set[str]:
    """The layers whose outputs ``config``'s objective reads (as yardstick_layers names them)."""
    return {source_layer(name, pre_relu=not config.rectified) for name in (*CONTENT_LAYERS, *STYLE_LAYERS)}


# --------------------------------------------------------------------------------------
# Runs


def snapshots(budgets):
    """A transfer() callback that keeps the best image after each of ``budgets`` evaluations,
    the image a run with that budget would return (the loop keeps the lowest total)."""
    state = {"best": math.inf, "image": None, "kept": {}}

    def callback(count, image, losses):
        if losses["total"] < state["best"]:
            state["best"], state["image"] = losses["total"], image.detach().cpu().clone()
        if count in budgets:
            state["kept"][count] = state["image"]

    return callback, state["kept"]


def run(config: Config, model: VGG19, content, style, style_weight: float, budgets, seed: int = 0):
    """Optimize once up to max(budgets); {budget: image} and the loop's own seconds at each budget."""
    callback, kept = snapshots(set(budgets))
    result = transfer(content, style, model=model, steps=max(budgets), seed=seed, callback=callback,
                      callback_every=1, progress=False, **config.options(style_weight))
    for budget in budgets:  # a run that converged early keeps its best image for the larger budgets
        kept.setdefault(budget, result.image)
    seconds = {b: result.times[min(b, len(result.times)) - 1] for b in budgets}
    return kept, seconds, result


def plan(configs, pairs, lever_pairs, lever_budget, budgets):
    """[(config, pair, largest budget)]: every configuration on the first pairs up to the lever
    budget; the classic recipe and the default on every pair up to the largest budget."""
    default = default_config(configs)
    jobs = []
    for pair_index, pair in enumerate(pairs):
        for config in configs:
            if config in (CLASSIC, default):
                jobs.append((config, pair, max(budgets)))
            elif pair_index < lever_pairs:
                jobs.append((config, pair, lever_budget))
    return jobs


def measure_all(args, configs, pairs, budgets, out: Path):
    """Run the plan; one record per (config, pair, style weight, budget) with both yardsticks."""
    records = _cached(args)
    done: dict[tuple, int] = {}  # (config, content, style, style weight) -> the largest budget kept
    for r in records:
        key = (r["config"], r["content"], r["style"], r["style_weight"])
        done[key] = max(done.get(key, 0), r["budget"])
    jobs = plan(configs, pairs, args.lever_pairs, args.lever_budget, budgets)
    for number, (config, pair, largest) in enumerate(jobs, start=1):
        content, style = load_image(pair[0], args.size), load_image(pair[1], args.size)
        yardsticks = _yardsticks(args, pair)
        model = config.model(args.weights)
        for style_weight in args.style_weights:
            key = (config.name, *pair, style_weight)
            if done.get(key, 0) >= largest:
                continue
            records = [r for r in records if (r["config"], r["content"], r["style"], r["style_weight"]) != key]
            kept, seconds, result = run(config, model, content, style, style_weight,
                                        [b for b in budgets if b <= largest])
            for budget, image in sorted(kept.items()):
                record = {"config": config.name, "content": pair[0], "style": pair[1], "style_weight": style_weight,
                          "budget": budget, "loop_seconds": seconds[budget],
                          "objective": {k: v[result.best_index] for k, v in result.history.items()}}
                measure(record, image, yardsticks)
                records.append(record)
                path = picture_path(pictures(args), config.name, pair, style_weight, budget)
                path.parent.mkdir(parents=True, exist_ok=True)
                save_image(image, path)
            _save_cache(args, records)
            print(f"[{number}/{len(jobs)}] {config.name} | {pair[0]} x {pair[1]} | style weight {style_weight:g}: "
                  f"content {records[-1]['content_error']:.3f}, style {records[-1]['style_error']:.4f} after "
                  f"{records[-1]['budget']} ({result.seconds:.0f} s)", flush=True)
    return records


def remeasure(args, records, out: Path) -> None:
    """Measure every record again from its saved picture (after a change of the yardstick)."""
    for record in records:
        pair = (record["content"], record["style"])
        image = load_image(picture_path(pictures(args), record["config"], pair, record["style_weight"],
                                        record["budget"]))
        measure(record, image, _yardsticks(args, pair))
    _save_cache(args, records)


def _yardsticks(args, pair):
    return _yardsticks_for(args.weights, args.size, *pair)


@functools.lru_cache(maxsize=1)  # runs go pair by pair
def _yardsticks_for(weights: str, size: int, content_name: str, style_name: str):
    """Both yardsticks (rectified, pre-ReLU) for one pair."""
    content, style = load_image(content_name, size), load_image(style_name, size)
    return [Yardstick(weights, content, style, rectified) for rectified in (True, False)]


def pictures(args) -> Path:
    """The folder of one size's and weights' pictures, as _cache_path keeps their records apart."""
    return Path(args.out) / "pictures" / f"{args.size}px_{args.weights}"


def picture_path(folder: Path, config: str, pair, style_weight: float, budget: int) -> Path:
    slug = "".join(c if c.isalnum() else "_" for c in config).strip("_")
    return folder / slug / f"{pair[0]}_{pair[1]}_{style_weight:g}_{budget}.png"


def _cache_path(args) -> Path:
    return Path(args.out) / f"quality_runs_{args.size}px_{args.weights}.json"


def _cached(args) -> list[dict]:
    """Records of an earlier run with the same size and weights, with --resume."""
    path = _cache_path(args)
    if not args.resume or not path.is_file():
        return []
    return json.loads(path.read_text())


def _save_cache(args, records) -> None:
    with atomic_write(_cache_path(args), "w") as handle:
        json.dump(records, handle)


# --------------------------------------------------------------------------------------
# Trade-off curves and matched content error


def curve(records, config: str, pair, budget: int, yardstick: str = "") -> list[tuple[float, float]]:
    """(content error, style error) of ``config`` at one pair and budget, one point per style
    weight, by content error; ``yardstick`` "" (rectified) or "_pre_relu"."""
    return sorted(
        (r["content_error" + yardstick], r["style_error" + yardstick])
        for r in records
        if r["config"] == config and (r["content"], r["style"]) == tuple(pair) and r["budget"] == budget
    )


def matched(records, config: str, pair, budget: int, middle_weight: float, yardstick: str = ""):
    """(content error, classic's style error, ``config``'s style error) at the content error of
    the classic recipe at ``middle_weight``; None where a curve is missing or does not reach it."""
    reference = [r for r in records if r["config"] == CLASSIC.name and (r["content"], r["style"]) == tuple(pair)
                 and r["budget"] == budget and r["style_weight"] == middle_weight]
    if not reference:
        return None
    content_error = reference[0]["content_error" + yardstick]
    style = style_at(curve(records, config, pair, budget, yardstick), content_error)
    if style is None:
        return None
    return content_error, reference[0]["style_error" + yardstick], style


def geometric_mean(values) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def ratio_summary(records, config: str, pairs, budget: int, middle_weight: float, yardstick: str = ""):
    """(geometric mean over pairs of style error / classic's at matched content, pairs counted, pairs asked)."""
    found = [m for pair in pairs if (m := matched(records, config, pair, budget, middle_weight, yardstick))]
    if not found:
        return None, 0
    return geometric_mean(style / classic for _, classic, style in found), len(found)


# --------------------------------------------------------------------------------------
# Wall time, taken in turns


def timings(args, configs, pair, budgets, lever_budget: int, style_weight: float):
    """{config: {budget: seconds}}: every configuration optimizes ``pair`` again, one evaluation
    each in turn; a configuration's seconds at a budget are those of its own turns so far."""
    default = default_config(configs)
    content, style = load_image(pair[0], args.size), load_image(pair[1], args.size)
    for config in configs:  # warm-up: one-time kernel set-up is not what is being compared
        transfer(content, style, model=config.model(args.weights), steps=2, progress=False, **config.options())
    turns = Turns(len(configs))
    seconds: list[dict[int, float]] = [{} for _ in configs]

    def job(index: int, config: Config):
        largest = max(budgets) if config in (CLASSIC, default) else lever_budget

        def clock(count, image, losses):
            if count in budgets:
                seconds[index][count] = turns.seconds[index] + time.perf_counter() - turns.since

        return lambda stop: transfer(
            content, style, model=config.model(args.weights), steps=largest, should_stop=stop, callback=clock,
            callback_every=1, progress=False, **config.options(style_weight),
        )

    turns.run([job(i, config) for i, config in enumerate(configs)])
    return {config.name: times for config, times in zip(configs, seconds)}


# --------------------------------------------------------------------------------------
# Tables (Markdown) and figures


def markdown(rows: list[dict]) -> str:
    """A Markdown table; floats with 3 significant digits."""
    columns = list(rows[0])

    def cell(value):
        if value is None:
            return "-"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _ratio_cell(summary, asked: int) -> str:
    value, count = summary
    if value is None:
        return "-"
    return f"{value:.2f}x" + ("" if count == asked else f" ({count} of {asked})")


def headline_table(records, configs, pairs, budgets, times, middle_weight):
    """Classic recipe against the default on every pair, at every budget."""
    default = default_config(configs)
    rows = []
    for budget in budgets:
        found = [m for pair in pairs if (m := matched(records, default.name, pair, budget, middle_weight))]
        classic_s, default_s = times.get(CLASSIC.name, {}).get(budget), times.get(default.name, {}).get(budget)
        rows.append({
            "evaluations": budget,
            "content error (matched)": geometric_mean(c for c, _, _ in found) if found else None,
            "classic: style error": geometric_mean(s for _, s, _ in found) if found else None,
            "default: style error": geometric_mean(s for _, _, s in found) if found else None,
            "default / classic": _ratio_cell(ratio_summary(records, default.name, pairs, budget, middle_weight),
                                             len(pairs)),
            "same, pre-ReLU yardstick": _ratio_cell(
                ratio_summary(records, default.name, pairs, budget, middle_weight, "_pre_relu"), len(pairs)),
            "classic: seconds": classic_s,
            "default: seconds": default_s,
            "speed-up": f"{classic_s / default_s:.2f}x" if classic_s and default_s else "-",
        })
    return rows


def lever_table(records, configs, pairs, budgets, times, middle_weight):
    """Every configuration on the lever pairs: style error at matched content, relative to the
    classic recipe, per budget; and its wall time at the largest of those budgets."""
    default = default_config(configs)
    last = max(budgets)
    rows = []
    for config in configs:
        row = {"configuration": config.name + (" (the default)" if config == default else "")}
        for budget in budgets:
            row[f"{budget} evaluations"] = _ratio_cell(
                ratio_summary(records, config.name, pairs, budget, middle_weight), len(pairs))
        row[f"{last}, pre-ReLU yardstick"] = _ratio_cell(
            ratio_summary(records, config.name, pairs, last, middle_weight, "_pre_relu"), len(pairs))
        row[f"seconds for {last}"] = times.get(config.name, {}).get(last)
        rows.append(row)
    return rows


def pair_table(records, configs, pairs, budget, middle_weight):
    """Per pair at one budget: the matched content error and both style errors."""
    default = default_config(configs)
    rows = []
    for pair in pairs:
        m = matched(records, default.name, pair, budget, middle_weight)
        rows.append({
            "content x style": f"{pair[0]} x {pair[1]}",
            "content error (matched)": m[0] if m else None,
            "classic: style error": m[1] if m else None,
            "default: style error": m[2] if m else None,
            "default / classic": f"{m[2] / m[1]:.2f}x" if m else "-",
        })
    return rows


def plot_curves(records, configs, pairs, budgets, path: Path):
    """Style error against content error, one panel per pair and budget, one line per configuration."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from nst_lib.figures import save_figure

    default = default_config(configs)
    figure, axes = plt.subplots(len(budgets), len(pairs), figsize=(3.6 * len(pairs), 3.0 * len(budgets)),
                                squeeze=False)
    for row, budget in enumerate(budgets):
        for column, pair in enumerate(pairs):
            axis = axes[row][column]
            for number, config in enumerate(configs):
                points = curve(records, config.name, pair, budget)
                if points:
                    label = config.name + (" (the default)" if config == default else "")
                    classic = config == CLASSIC
                    axis.plot(*zip(*points), marker="o", markersize=3, label=label,
                              color="black" if classic else f"C{number}", linewidth=2.2 if classic else 1.2)
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_title(f"{pair[0]} x {pair[1]}, {budget} evaluations", fontsize=8)
            axis.tick_params(labelsize=7)
            for ticks in (axis.xaxis, axis.yaxis):
                ticks.set_major_locator(LogLocator(subs=(1, 2, 5)))
                ticks.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
                ticks.set_minor_formatter(NullFormatter())
            axis.grid(True, which="both", alpha=0.25)
            if row == len(budgets) - 1:
                axis.set_xlabel(f"content error ({', '.join('relu' + n for n in YARDSTICK_CONTENT)})", fontsize=8)
            if column == 0:
                axis.set_ylabel("style error (Gram matrices)", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, 1.0))
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
    return path


def picture_sheet(records, configs, pairs, budget, middle_weight, size, folder: Path, path: Path):
    """Per pair: content, style, the classic recipe at the middle style weight, and the default at
    the style weight whose content error comes closest to the classic's."""
    import matplotlib.pyplot as plt

    from nst_lib.figures import grid, save_figure

    default = default_config(configs)
    images, labels = [], []
    for pair in pairs:
        chosen = {}
        for config in (CLASSIC, default):
            rows = [r for r in records if r["config"] == config.name and (r["content"], r["style"]) == pair
                    and r["budget"] == budget]
            if not rows:
                break
            classic = chosen.get(CLASSIC.name)
            target = classic["content_error"] if classic else None
            chosen[config.name] = (
                min(rows, key=lambda r: abs(math.log(r["content_error"] / target))) if target
                else next((r for r in rows if r["style_weight"] == middle_weight), rows[0])
            )
        paths = {name: picture_path(folder, name, pair, r["style_weight"], budget) for name, r in chosen.items()}
        if len(chosen) < 2 or not all(path.is_file() for path in paths.values()):  # --resume of a partial folder
            continue
        images += [load_image(pair[0], size), load_image(pair[1], size)]
        labels += [pair[0], pair[1]]
        for name, label in ((CLASSIC.name, "classic"), (default.name, "default")):
            r = chosen[name]
            images.append(load_image(paths[name]))
            labels.append(f"{label}, style weight {r['style_weight']:g}\n"
                          f"content error {r['content_error']:.3f}\nstyle error {r['style_error']:.4f}")
    if not images:
        return None
    figure = grid(images, labels, columns=4, title=f"{budget} evaluations, {size} px")
    save_figure(figure, path)
    plt.close(figure)
    return path


# --------------------------------------------------------------------------------------


def machine() -> str:
    return f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 px, budgets 5-40, two pairs: check that it runs")
    parser.add_argument("--size", type=int, help=f"longest side in px (default {SIZE}; 64 with --quick)")
    parser.add_argument("--weights", default="oxford", help="VGG-19 weights of the runs and the yardstick")
    parser.add_argument("--pairs", type=int, help=f"use the first N content x style pairs (default {len(PAIRS)})")
    parser.add_argument("--lever-pairs", type=int, help=f"pairs every configuration runs on (default {LEVER_PAIRS})")
    parser.add_argument("--lever-budget", type=int, help=f"evaluations of those runs (default {LEVER_BUDGET})")
    parser.add_argument("--budgets", type=int, nargs="+", help=f"default {' '.join(map(str, BUDGETS))}")
    parser.add_argument("--style-weights", type=float, nargs="+", default=list(STYLE_WEIGHTS))
    parser.add_argument("--no-timing", action="store_true", help="skip the wall-time runs (quality only)")
    parser.add_argument("--resume", action="store_true", help="keep the runs of an earlier call with the same "
                        "size and weights (in OUT/quality_runs_*.json) and do only the missing ones")
    parser.add_argument("--remeasure", action="store_true", help="with --resume: measure the kept runs again "
                        "from their saved pictures (after a change of the yardstick)")
    parser.add_argument("--out", default=str(RESULTS), help="folder for results (default bench/results)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.size = args.size or (64 if quick else SIZE)
    args.budgets = sorted(args.budgets or ((5, 10, 20, 40) if quick else BUDGETS))
    args.pairs = args.pairs or (2 if quick else len(PAIRS))
    args.lever_pairs = min(args.pairs, (1 if quick else LEVER_PAIRS) if args.lever_pairs is None else args.lever_pairs)
    args.lever_budget = args.lever_budget or (20 if quick else LEVER_BUDGET)
    if len(args.style_weights) < 2:
        parser.error("give at least two style weights: a trade-off curve needs two points")
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pairs = PAIRS[: args.pairs]
    lever_budgets = [b for b in args.budgets if b <= args.lever_budget]
    middle_weight = sorted(args.style_weights)[len(args.style_weights) // 2]
    default = default_config(CONFIGS)
    print(f"machine: {machine()}; {load()}", flush=True)
    records = measure_all(args, CONFIGS, pairs, args.budgets, out)
    if args.remeasure:
        remeasure(args, records, out)
    times, timing_load = {}, None
    if not args.no_timing:
        before = load()
        times = timings(args, CONFIGS, pairs[0], args.budgets, args.lever_budget, profiles.STYLE_WEIGHT)
        timing_load = f"{before} before the timed runs, {load()} after"
    tables = {
        f"Classic recipe and default, {len(pairs)} pairs, {args.size} px": headline_table(
            records, CONFIGS, pairs, args.budgets, times, middle_weight),
        f"Every configuration, {args.lever_pairs} pairs, {args.size} px: style error at matched content error, "
        "relative to the classic recipe": lever_table(
            records, CONFIGS, pairs[: args.lever_pairs], lever_budgets, times, middle_weight),
        f"Per pair at {args.lever_budget} evaluations": pair_table(
            records, CONFIGS, pairs, args.lever_budget, middle_weight),
    }
    figures = {
        "curves": plot_curves(records, CONFIGS, pairs, args.budgets, out / "quality_curves.png"),
        "curve": plot_curves(records, CONFIGS, pairs, [args.lever_budget], out / "quality_curve.png"),
        "pictures": picture_sheet(records, CONFIGS, pairs, args.lever_budget, middle_weight, args.size,
                                  pictures(args), out / "quality_pictures.png"),
    }
    results = {
        "machine": machine(), "timing_load": timing_load, "size": args.size, "weights": args.weights,
        "pairs": pairs, "style_weights": args.style_weights, "budgets": args.budgets,
        "configs": {c.name: c.settings() for c in CONFIGS}, "default": default.name,
        "yardstick": {"rectified": sorted(n for n in yardstick_layers() if n.startswith("relu")),
                      "pre_relu": sorted(n for n in yardstick_layers() if n.startswith("conv"))},
        "records": records, "times": times, "tables": tables,
        "figures": {k: str(v) if v else None for k, v in figures.items()},
        "seconds": time.perf_counter() - started,
    }
    print(f"\nmachine: {results['machine']}")
    if timing_load:
        print(f"timed in turns on the first pair ({pairs[0][0]} x {pairs[0][1]}, style weight "
              f"{profiles.STYLE_WEIGHT:g}); {timing_load}")
    print(f"matched content error: the classic recipe's at style weight {middle_weight:g}")
    for title, rows in tables.items():
        print(f"\n**{title}**\n\n{markdown(rows)}")
    path = out / ("quality_quick.json" if args.quick else "quality.json")
    with atomic_write(path, "w") as handle:
        json.dump(results, handle, indent=1)
    print(f"\nwrote {path} and {', '.join(str(f) for f in figures.values() if f)} ({results['seconds'] / 60:.1f} min)")
    return results


if __name__ == "__main__":
    main()
