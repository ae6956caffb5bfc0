"""One fixed measure of pictures, whatever objective made them.

An optimizer's own loss cannot compare two recipes: each is lowest under its own objective.
The yardstick reads Oxford-style VGG-19 features in float32 at layers that the default
objective (conv4_2; conv1_1 ... conv5_1) does not read: content at relu4_3 and relu4_4 (the
layers after conv4_2), style (Gram matrices) at relu1_2, relu2_2, relu3_2, relu4_3 and relu5_2
(next to conv1_1 ... conv5_1), as relative errors (the normalization of ``losses``), on the
picture as saved (8 bits a channel). ``rectified=False`` reads the same layers before the ReLU.

Trade-off. One recipe at several style weights traces a curve of style error against content
error; two recipes compare by their style errors at the same content error (``style_at``).
``bench/quality.py`` measures the package's settings this way; section 3 of the report shows
the default against the classic recipe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .losses import ContentLoss, StyleLoss
from .vgg import VGG19

CONTENT = ("4_3", "4_4")
STYLE = ("1_2", "2_2", "3_2", "4_3", "5_2")


def layers(rectified: bool = True) -> tuple[list[str], list[str]]:
    """(content layers, style layers) that the yardstick reads, as VGG19(pre_relu=True) names them."""
    kind = "relu" if rectified else "conv"
    return [kind + n for n in CONTENT], [kind + n for n in STYLE]


class Yardstick:
    """Content and style errors of pictures against one content and one style image."""

    def __init__(self, weights, content: torch.Tensor, style: torch.Tensor, rectified: bool = True,
                 device: torch.device | str = "cpu"):
        self.content_layers, self.style_layers = layers(rectified)
        self.model = VGG19(weights, precision="float32", pre_relu=True).to(device)
        with torch.no_grad():
            self.content_loss = ContentLoss(self.model(content.to(device), self.content_layers))
            self.style_loss = StyleLoss([self.model(style.to(device), self.style_layers)])

    def __call__(self, image: torch.Tensor) -> tuple[float, float]:
        """(content error, style error) of ``image`` as saved: rounded to 8 bits a channel."""
        with torch.no_grad():
            saved = image.to(self.model.device).mul(255).round().div(255)
            features = self.model(saved, [*self.content_layers, *self.style_layers])
            return float(self.content_loss(features)), float(self.style_loss(features))


    def style_errors(self, image: torch.Tensor) -> dict[str, float]:
        """The style error of ``image`` as saved, layer by layer: one per scale of the network. The style
        error of ``__call__`` is their mean, which the deepest layers' larger errors dominate; a picture that
        misses one scale altogether shows it here."""
        with torch.no_grad():
            saved = image.to(self.model.device).mul(255).round().div(255)
            features = self.model(saved, self.style_layers)
            return {name: float(self.style_loss.term(name, features[name])[1]) for name in self.style_layers}


def style_at(points: Sequence[tuple[float, float]], content_error: float) -> float | None:
    """A curve's style error at ``content_error``: ``points`` are (content error, style error),
    one per style weight; log-log interpolation between them; None outside the curve."""
    points = sorted((c, s) for c, s in points if c > 0 and s > 0)  # a picture that is its content has no log
    if not points:
        return None
    x = np.log([c for c, _ in points])
    y = np.log([s for _, s in points])
    target = math.log(content_error)
    if not x[0] - 1e-9 <= target <= x[-1] + 1e-9:
        return None
    return float(np.exp(np.interp(target, x, y)))
