"""What one Run of the explorer does, as one frozen dataclass: the images, the loss and the run's options.

The fields are those that ``LossSpec`` and ``transfer`` take, under their
names, plus the images by name (a named image, or ``UPLOADED`` + a file name)
and their size. ``loss_spec()`` and ``run_options()`` hand them on; a saved
run records ``to_dict()``, and ``from_dict()`` reads it back.

The defaults are the first Run: Tübingen in the style of Starry Night, from
the photograph itself at style weight 1e4 (the report's setting for that
start), so that the photograph is there from the first preview and takes on
the painting's strokes and colours. Size and evaluations are chosen so that
the picture is finished within 15 s on 2 cores with native bfloat16
(``bench/explorer.py`` measures it; docs/explorer.md has the figures).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from .. import profiles
from ..images import check_size
from ..losses import LossSpec
from ..optimize import INITS, OPTIMIZERS, check_steps

SIZE = profiles.SIZE
STEPS = profiles.EXPLORER_STEPS
INIT = profiles.EXPLORER_INIT
STYLE_WEIGHT = profiles.STYLE_WEIGHT
CONTENT = "tubingen"
STYLE = "starry_night"
UPLOADED = "uploaded: "
NO_STYLE_LAYER = "No style layer is selected: pick at least one (Ctrl- or Shift-click picks several)."


@dataclass(frozen=True)
class Settings:
    """Everything a Run depends on. Images are named (``assets``) or uploaded (``UPLOADED`` + file name);
    ``size`` is the longest side in px; the rest are ``LossSpec``'s and ``transfer``'s own arguments."""

    content: str = CONTENT
    styles: tuple[str, ...] = (STYLE,)
    style_blend: tuple[float, ...] | None = None
    content_layers: tuple[str, ...] = profiles.CONTENT_LAYERS
    style_layers: tuple[str, ...] = profiles.STYLE_LAYERS
    content_weight: float = profiles.CONTENT_WEIGHT
    style_weight: float = STYLE_WEIGHT
    tv_weight: float = profiles.TV_WEIGHT
    init: str = INIT
    optimizer: str = profiles.OPTIMIZER
    steps: int = STEPS
    size: int = SIZE
    seed: int = profiles.SEED
    preserve_colors: bool = False

    def __post_init__(self):
        for name in ("styles", "style_blend", "content_layers", "style_layers"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, None if value is None else tuple(value))
        if not self.styles:
            raise ValueError("No style image is chosen: pick one.")
        if self.init not in INITS:
            raise ValueError(f"Unknown start {self.init!r}: choose {' or '.join(INITS)}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}: choose {' or '.join(OPTIMIZERS)}.")
        check_steps(self.steps)
        check_size(self.size)

    def loss_spec(self) -> LossSpec:
        """The loss these settings describe (checked: a ValueError says what is wrong)."""
        if self.style_weight > 0 and not self.style_layers:
            raise ValueError(NO_STYLE_LAYER)
        return LossSpec(
            content_layers=self.content_layers,
            style_layers=self.style_layers,
            content_weight=self.content_weight,
            style_weight=self.style_weight,
            tv_weight=self.tv_weight,
            style_blend=self.style_blend,
        )

    def run_options(self) -> dict:
        """``transfer``'s keyword arguments other than the images, the model and the loss."""
        return {
            "init": self.init,
            "seed": self.seed,
            "steps": self.steps,
            "optimizer": self.optimizer,
            "preserve_colors": self.preserve_colors,
        }

    def replace(self, **changes) -> Settings:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data) -> Settings:
        """The settings ``to_dict`` recorded; unknown keys are an error, missing ones take the defaults."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            known = ", ".join(f.name for f in fields(cls))
            raise ValueError(f"Not explorer settings: unknown fields {', '.join(unknown)} (the fields are {known}).")
        return cls(**data)

    def differences(self, other: Settings) -> list[tuple[str, object, object]]:
        """(field, this value, the other's) for each field in which the two differ, in field order."""
        return [
            (f.name, getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]

    def style_names(self) -> str:
        """The styles as one phrase: ``starry_night``, or ``starry_night + the_scream (0.5)`` with the
        share of each style after the first."""
        if len(self.styles) == 1:
            return self.styles[0]
        blend = self.style_blend or (1.0,) * len(self.styles)
        shares = [weight / sum(blend) for weight in blend]
        others = (f"{name} ({share:g})" for name, share in zip(self.styles[1:], shares[1:]))
        return " + ".join([self.styles[0], *others])

    def summary(self) -> list[str]:
        """A few short lines that tell these settings from others (a run's caption)."""
        return [
            f"{self.content} × {self.style_names()}",
            f"style {self.style_weight:.2g} · content {self.content_weight:g} · tv {self.tv_weight:g}",
            f"content layer {' '.join(self.content_layers)}",
            f"style layers {' '.join(self.style_layers)}",
            f"{self.init} · {OPTIMIZER_LABELS[self.optimizer]} · seed {self.seed} · {self.size} px"
            + (" · own colours" if self.preserve_colors else ""),
        ]

    @classmethod
    def first(cls, profile: str | None = None, size: int | None = None, steps: int | None = None) -> Settings:
        """The first Run's settings; a report's ``profile`` caps the size and the evaluations at its own
        (the quick profile's page stays quick), and ``size`` / ``steps`` override both."""
        settings = cls()
        if profile is not None:
            chosen = profiles.get_profile(profile)
            settings = settings.replace(size=min(SIZE, chosen.size), steps=min(STEPS, chosen.steps))
        return settings.replace(size=size or settings.size, steps=steps or settings.steps)


OPTIMIZER_LABELS = {"lbfgs": "L-BFGS", "adam": "Adam"}
