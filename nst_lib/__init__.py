"""nst_lib: neural style transfer after Gatys et al., for study and teaching."""

from .images import load_image, save_image
from .losses import LossSpec
from .optimize import Result, optimize_image, transfer
from .vgg import LAYER_NAMES, VGG19

__all__ = ["LAYER_NAMES", "VGG19", "LossSpec", "Result", "load_image", "optimize_image", "save_image", "transfer"]
