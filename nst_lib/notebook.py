"""What every report notebook does first: settings, device, model, and where figures go.

A notebook's ``parameters`` cell names a profile and optional overrides; it
then calls ``setup(...)`` and uses the returned ``Setup`` for everything else,
so that a notebook run by papermill and one stepped through by hand behave
the same.

Progress follows the environment variable ``NST_PROGRESS``: ``notebook``
(default; bars under the cells), ``terminal`` (what ``make report`` sets: bars
and figure names on the terminal that runs the build) or ``off`` (tests).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import profiles
from .figures import save_figure
from .files import atomic_write
from .images import load_image
from .optimize import Result, transfer
from .profiles import Profile, get_profile
from .vgg import VGG19, describe_device, pick_device

PROGRESS_VARIABLE = "NST_PROGRESS"
PROGRESS_MODES = {"notebook": True, "terminal": "terminal", "off": False}
SETUP_FILE = "setup.json"


@dataclass
class Setup:
    """The settings of one notebook run and the objects they imply."""

    profile: Profile
    device: torch.device
    model: VGG19
    output_dir: Path
    progress: bool | str = True
    figures: list[str] = field(default_factory=list)

    def load(self, name_or_path, size: int | None = None) -> torch.Tensor:
        """A named image or file at the profile's size (or ``size``), on the CPU."""
        return load_image(name_or_path, size or self.profile.size)

    def transfer(self, content=None, styles=(), *, label: str = "optimizing", **options) -> Result:
        """``optimize.transfer`` with this run's model, step budget and progress display."""
        self.announce(label)
        options.setdefault("steps", self.profile.steps)
        return transfer(content, styles, model=self.model, progress=self.progress, description=label, **options)

    def transfer_all(self, jobs: Mapping[Hashable, Mapping]) -> dict:
        """A figure's independent optimizations as one batch: {key: keyword arguments of ``transfer``
        (``label`` included)} -> {key: Result}, in the order of ``jobs``."""
        return {key: self.transfer(**job) for key, job in jobs.items()}

    def save(self, figure, name: str) -> None:
        """Save a figure as ``<output_dir>/<name>.png`` (the notebook shows it as well)."""
        path = save_figure(figure, self.output_dir / f"{name}.png")
        self.figures.append(path.name)
        self.announce(f"figure {path.name} saved")

    def announce(self, message: str) -> None:
        """Tell the person running a report build what is happening (terminal mode only)."""
        if self.progress == "terminal":
            print(f"    {message}", file=sys.__stderr__, flush=True)

    def describe(self) -> dict:
        return {
            "profile": self.profile.name,
            "size": self.profile.size,
            "steps": self.profile.steps,
            "device": str(self.device),
            "device_name": describe_device(self.device),
            "threads": torch.get_num_threads(),
            "weights": self.model.weights,
            "pooling": self.model.pooling,
            "torch": torch.__version__,
            "python": sys.executable,
            "library": str(Path(__file__).resolve().parent),
        }


def setup(
    profile: str = "quick",
    *,
    size: int | None = None,
    steps: int | None = None,
    device: str = profiles.DEVICE,
    weights: str = profiles.WEIGHTS,
    pooling: str = profiles.POOLING,
    output_dir: str | os.PathLike = "figures",
) -> Setup:
    """Resolve a notebook's parameters; record them in ``<output_dir>/setup.json``."""
    chosen = get_profile(profile, size=size, steps=steps)
    mode = os.environ.get(PROGRESS_VARIABLE, "notebook")
    if mode not in PROGRESS_MODES:
        raise ValueError(f"{PROGRESS_VARIABLE}={mode!r} is not understood: use notebook, terminal or off.")
    where = pick_device(device)
    run = Setup(
        profile=chosen,
        device=where,
        model=VGG19(weights, pooling).to(where),
        output_dir=Path(output_dir),
        progress=PROGRESS_MODES[mode],
    )
    run.output_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(run.output_dir / SETUP_FILE, "w") as handle:
        json.dump(run.describe(), handle, indent=1)
    return run
