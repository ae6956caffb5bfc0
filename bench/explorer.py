"""How long the explorer's first Run takes, and where the time goes, each trial in a fresh process.

Run by hand (timings taken while other jobs run mean little; the table says the load average):

    .venv/bin/python bench/explorer.py                         # the first Run as it starts, 3 trials each way
    .venv/bin/python bench/explorer.py --code /tmp/before      # another checkout's explorer, for a before/after
    .venv/bin/python bench/explorer.py --repeats 1 --size 64 --steps 10   # tiny: checks that the script runs

Each trial is a fresh Python process that imports the explorer, builds it as
the notebook does (the default VGG-19, the controls' starting settings), and
presses Run: ``ready`` presses it once the explorer says it is ready (what a
person who looks at the controls first sees), ``at once`` presses it as soon
as the controls exist. Trials of every checkout and way alternate, so that
each meets the same machine. The table gives medians: seconds to import, to
show the controls, to be ready, from the click to the first preview and to the
finished picture, seconds per evaluation, and the processor time (all
threads) from the click to the first preview and to the finished picture.
Other jobs on the machine sway processor time far less than wall time, and it
bounds what the wall time would be on an idle machine: the run waits for
nothing but the processor, so it cannot take longer than the processor time
it needs (on two cores, about half of it when both are busy).

``--code`` puts another checkout's ``nst_lib`` first on the path (``git
worktree add /tmp/before <commit>``): an explorer from before the background
preparation is ready when its controls are, and its first Run is its own
default.

Writes ``bench/results/explorer.json`` and, per checkout, the first Run's
picture as ``bench/results/explorer_<label>.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def trial(way: str, size: int | None, steps: int | None, picture: str) -> dict:
    """One first Run in this process (a fresh one): the seconds of each phase."""
    started = time.perf_counter()
    import torch

    from nst_lib import explorer as package
    from nst_lib.images import save_image

    imported = time.perf_counter()
    explorer = package.Explorer(size=size, steps=steps, output_dir=RESULTS / "explorer-saved")
    shown = time.perf_counter()
    session = getattr(explorer, "session", None)  # an explorer from before the session has none
    if way == "ready" and session is not None:
        session.model  # loaded and warmed up
    ready = time.perf_counter()
    previews = []  # (wall, processor) seconds at each preview
    explorer.preview.observe(lambda change: previews.append((time.perf_counter(), _processor_seconds())),
                             names="value")
    processor = _processor_seconds()
    clicked = time.perf_counter()
    explorer.run_button.click()
    run = explorer.wait()
    if run is None:  # the Run said why it could not run (a missing picture, say)
        raise SystemExit(getattr(explorer.session, "message", "") or "The first Run made no picture.")
    finished = time.perf_counter()
    processor_finished = _processor_seconds()
    times = run.result.times
    steps_between = sorted(b - a for a, b in zip(times, times[1:]))
    save_image(run.image, picture)
    return {
        "import": imported - started,
        "controls": shown - imported,
        "ready": ready - shown,
        "first preview": previews[0][0] - clicked,
        "processor, first preview": previews[0][1] - processor,
        "finished": finished - clicked,
        "per evaluation": steps_between[len(steps_between) // 2],
        "processor": processor_finished - processor,
        "evaluations": run.result.evaluations,
        "size": list(run.image.shape[-2:]),
        "total loss": run.result.final_losses["total"],
        "threads": torch.get_num_threads(),
    }


def _processor_seconds() -> float:
    """Processor time of this process so far, every thread's (less swayed by other jobs than wall time)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", action="append", default=[], help="another checkout to measure beside this one")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, help="the controls' starting size (default: the explorer's own)")
    parser.add_argument("--steps", type=int, help="the controls' starting evaluations (default: the explorer's own)")
    parser.add_argument("--trial", nargs=2, metavar=("WAY", "PICTURE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trial:
        print(json.dumps(trial(args.trial[0], args.size, args.steps, args.trial[1])))
        return

    RESULTS.mkdir(exist_ok=True)
    checkouts = {"this": ROOT, **{Path(code).name or code: Path(code).resolve() for code in args.code}}
    ways = ("ready", "at once")
    results: dict[tuple[str, str], list[dict]] = {(label, way): [] for label in checkouts for way in ways}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for label, code in checkouts.items():
            for way in ways:
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get(
                    "PYTHONPATH")])), "NST_PROGRESS": "off"}
                picture = RESULTS / f"explorer_{label}.png"
                command = [sys.executable, __file__, "--trial", way, str(picture)]
                command += [f"--size={args.size}"] if args.size else []
                command += [f"--steps={args.steps}"] if args.steps else []
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=code)
                results[(label, way)].append(json.loads(done.stdout.strip().splitlines()[-1]))
                loads.append(os.getloadavg()[0])

    print(f"{cpu_name()}, {os.cpu_count()} cores; load average (1 min) from {min(loads):.2f} to {max(loads):.2f}; "
          f"medians of {args.repeats} trials, each in a fresh process\n")
    heads = ["checkout", "Run pressed", "picture", "evaluations", "import", "controls shown", "ready",
             "click to first preview", "click to finished picture", "per evaluation",
             "processor time to first preview", "processor time to finished picture", "total loss"]
    rows = []
    for (label, way), trials in results.items():
        def median(key):
            return statistics.median(t[key] for t in trials)

        height, width = trials[0]["size"]
        rows.append([label, way, f"{width}x{height} px", trials[0]["evaluations"]]
                    + [f"{median(key):.2f} s" for key in ("import", "controls", "ready", "first preview", "finished",
                                                           "per evaluation", "processor, first preview",
                                                           "processor")]
                    + [f"{median('total loss'):.3g}"])
    lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    print("\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]))
    record = {"cpu": cpu_name(), "cores": os.cpu_count(), "loads": loads, "date": time.strftime("%Y-%m-%d %H:%M"),
              "trials": {f"{label} / {way}": trials for (label, way), trials in results.items()}}
    (RESULTS / "explorer.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
