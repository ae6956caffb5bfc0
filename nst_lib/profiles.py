"""Defaults and run profiles: the one place for layer choices, weights, sizes and steps.

The defaults follow Gatys et al. (2016) and the report being reproduced:
content at conv4_2, style at conv1_1 ... conv5_1 with equal layer weights,
each layer read after its ReLU (as in their Caffe network), L-BFGS with
learning rate 1 and no line search.

A profile fixes image size and step counts for a whole report:
``quick`` for tests and CI, ``standard`` for a laptop CPU, ``full`` for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 1e4
TV_WEIGHT = 0.0
OPTIMIZER = "lbfgs"
LEARNING_RATES = {"lbfgs": 1.0, "adam": 0.02}
HISTORY_SIZE = 100  # L-BFGS: past steps kept
STEPS = 300
# L-BFGS without a line search: as stylized as the classic recipe at the same content error, and stable at
# learning rate 1 (bench/quality.py and bench/stability.py measure both); above 1, turn it on.
LINE_SEARCH = False
SIZE = 256
WEIGHTS = "oxford"
POOLING = "max"
PRECISION = "auto"  # bfloat16 where it measures faster than float32 on this machine (precision.py)
DEVICE = "auto"  # cuda when there is a GPU
# What conv names give: the response after the ReLU, as in Gatys et al.'s Caffe network (False), or the
# convolution's own output before it (True, PyTorch's convention); see vgg.py and bench/quality.py.
PRE_RELU = False
INIT = "noise"
SEED = 0
# The explorer's first Run: the photograph taking on the painting's style from the photograph itself (the
# report's start for that, at STYLE_WEIGHT and SIZE), in few enough evaluations to watch.
EXPLORER_INIT = "content"
EXPLORER_STEPS = 50

# A sweep of more cells than this runs only when asked for by name (--max-cells).
SWEEP_MAX_CELLS = 1000

# Feed-forward generators, as in Johnson et al. (2016). A learning rate of 3e-3
# already threw the training off course in its first steps on the named images.
GENERATOR_CHANNELS = 32
RESIDUAL_BLOCKS = 5
GENERATOR_LR = 1e-3
GENERATOR_SCALES = (0.5, 1.0)  # each training crop shows its photo at a scale drawn from this range
GENERATOR_SCHEDULE = "cosine"  # Adam's learning rate decays from GENERATOR_LR along half a cosine
GENERATOR_UPSAMPLE = "bilinear"  # resize before each upsampling convolution: "nearest" or "bilinear"
GENERATOR_WARMUP = 0  # Adam steps on the content loss alone before the style is added
# The loss generators train on (judged, like every picture, under the default loss above).
GENERATOR_STYLE_WEIGHT = STYLE_WEIGHT
GENERATOR_TV_WEIGHT = 10.0  # smooths away the fine lattice that generators otherwise lay over every picture
# L-BFGS evaluations of the report's reference curves on held-out photos (at most; past Johnson et al.'s 50).
GENERATOR_CURVE_STEPS = 60
CHECKPOINT_EVERY = 100
# The named set of photographs (assets/manifest.json) that generators train on when given none;
# "held-out" names the photographs that no generator trains on.
GENERATOR_TRAINING_SET = "kodak-train"
GENERATOR_HELD_OUT_SET = "held-out"


@dataclass(frozen=True)
class Profile:
    """Image sizes (longest side, px) and optimization budgets for one kind of run."""

    name: str
    size: int  # per-image optimization
    steps: int  # evaluations per optimization
    generator_size: int  # feed-forward training crops
    generator_steps: int
    generator_batch: int
    stylize_size: int  # images stylized by a trained generator
    speed_size: int  # the picture on which a generator pass and an optimization are timed

    def with_overrides(self, **changes) -> "Profile":
        """This profile with some fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


PROFILES = {
    "quick": Profile(
        "quick", size=64, steps=30,
        generator_size=64, generator_steps=40, generator_batch=2, stylize_size=96, speed_size=128,
    ),
    "standard": Profile(
        "standard", size=256, steps=200,
        generator_size=128, generator_steps=200, generator_batch=2, stylize_size=256, speed_size=512,
    ),
    "full": Profile(
        "full", size=512, steps=400,
        generator_size=256, generator_steps=5000, generator_batch=4, stylize_size=512, speed_size=512,
    ),
}


# What `make report`, `nst report` and a notebook opened by hand run.
DEFAULT_PROFILE = "standard"

# Where a notebook's figures go (a folder beside it, or in its section of the report), the record of the
# run's settings written there, and the key under which a figure output's metadata holds its file name,
# title and caption (what the report's page builds its figures from).
FIGURES = "figures"
SETUP_FILE = "setup.json"
# The named images and files a notebook loaded, in order (the report's summary lists them).
INPUTS_FILE = "inputs.json"
# A grid's rendition for narrow screens is saved beside it as <name>.narrow.png.
NARROW_SUFFIX = ".narrow.png"
# Where optimizations are kept and found again (see store.py): a report's folder, or beside a notebook's figures.
RESULTS = "results"
FIGURE_METADATA = "nst_lib/figure"


def get_profile(name: str, **overrides) -> Profile:
    """The named profile, with optional per-field overrides (e.g. ``size=128``)."""
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}: choose one of {', '.join(PROFILES)}.")
    return PROFILES[name].with_overrides(**overrides)
