"""Loss terms for image optimization: content, Gram style, total variation.

Normalization (the one convention of this package)
--------------------------------------------------
Raw VGG activations differ by orders of magnitude between weight sources (the
Oxford network works on a 0-255 scale, torchvision's on standardized input)
and sums over positions grow with the image. So every term here is a
*relative squared error*, measured against its own target:

    content(l) = mean((F_l - P_l)^2) / mean(P_l^2)
    style(l)   = mean((G_l - A_l)^2) / mean(A_l^2),   G_l = F_l F_l^T / M_l

with F_l the (N_l channels x M_l positions) features of the image being
optimized, P_l the content target's, and A_l the style target's Gram matrix
(a blend of several when there are several styles). Means over positions make
the terms independent of image size; dividing by the target's own magnitude
makes them independent of the weight source. Each loss is the weighted mean of
its layers' terms (layer weights are normalized to sum to 1), so a loss of 1
means "as far from the target as the target is from zero", whatever the
layers, the image size or the network.

Batches: for features of B images, both losses are the mean of the B images'
own losses. A style target is shared by the batch; content targets may be one
per image (B, N, H, W), each normalized by its own magnitude.

The objective is ``content_weight * content + STYLE_SCALE * style_weight *
style + tv_weight * tv``. ``STYLE_SCALE`` is a fixed constant chosen once so
that the style weights of the classic sweep (1, 100, 1e3, 1e4, 1e6 with
content weight 1, from noise) keep their meaning: the content wins at 1 and
100, the two balance around 1e3 to 1e4 (the default is 1e4), and the style
washes the content out at 1e6.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .vgg import check_layers

# See the module docstring: puts the balance of content and style at style_weight 1e3-1e4.
STYLE_SCALE = 1e-3


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix F F^T / M of features (B, N, H, W) -> float32 (B, N, N), M = H * W.

    bfloat16 features are multiplied in bfloat16 (accumulated in float32 by
    the matrix product), which is where the speed of bfloat16 comes from.
    """
    flat = features.flatten(2)
    return _at_least_float32(flat @ flat.transpose(1, 2)) / flat.shape[-1]


def _at_least_float32(values: torch.Tensor) -> torch.Tensor:
    return values.to(torch.promote_types(values.dtype, torch.float32))


def _layer_weights(layers, weights) -> dict[str, float]:
    """Normalized per-layer weights (summing to 1); equal when ``weights`` is None."""
    layers = check_layers(layers)
    if weights is None:
        weights = [1.0] * len(layers)
    elif isinstance(weights, Mapping):
        weights = [weights[name] for name in layers]
    weights = [float(w) for w in weights]
    if len(weights) != len(layers):
        raise ValueError(f"Got {len(weights)} layer weights for {len(layers)} layers: give one per layer.")
    if any(not w >= 0 or w == float("inf") for w in weights) or sum(weights) <= 0:
        raise ValueError(f"Layer weights must be finite, non-negative and not all zero; got {weights}.")
    total = sum(weights)
    return {name: w / total for name, w in zip(layers, weights)}


class ContentLoss:
    """Relative feature error against content images' features.

    ``targets``: {layer: features (B, N, H, W)} of the content images; with
    B = 1 every image is compared with the one target, otherwise image i of
    the batch with target i.
    ``layer_weights``: one per layer, or None for equal weights.
    """

    def __init__(self, targets: Mapping[str, torch.Tensor], layer_weights=None):
        self.weights = _layer_weights(list(targets), layer_weights)
        self.targets = {name: _at_least_float32(t.detach()) for name, t in targets.items()}
        # One scale per target image, so that a dark crop counts as much as a bright one.
        tiny = torch.finfo(torch.float32).tiny
        self.scales = {name: _per_image_mean(t.pow(2)).clamp_min(tiny) for name, t in self.targets.items()}

    @property
    def layers(self) -> list[str]:
        return list(self.weights)

    def __call__(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum(
            w * (_per_image_mean((_at_least_float32(features[name]) - self.targets[name]).pow(2)) / self.scales[name]).mean()
            for name, w in self.weights.items()
        )


def _per_image_mean(values: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,): the mean of each batch item (no copy of channels-last values, whose
    gradient then stays channels-last like the network's own)."""
    return values.mean(dim=tuple(range(1, values.dim())))


class _GramError(torch.autograd.Function):
    """mean((G - A)^2) / scale with G = F F^T / M, for features F (B, N, H, W) and A (1 or B, N, N).

    Autograd would differentiate the Gram matrix with two (N x N) @ (N x M)
    products; G is symmetric, so dL/dF = 4 (G - A) F / (B N^2 M scale) needs
    one. The products run on the (B, M, N) view of channels-last features, so
    nothing is copied. This is the costliest part of the style loss.
    """

    @staticmethod
    def forward(ctx, features, target, scale):
        positions = _positions_by_channels(features)
        # One torch.mm per image: unlike bmm, it reads the transposed operand in place (no copy).
        products = _per_image(lambda p: torch.mm(p.t(), p), positions)
        difference = _at_least_float32(products) / positions.shape[1] - target
        ctx.save_for_backward(features, difference, scale)
        return difference.pow(2).mean() / scale

    @staticmethod
    def backward(ctx, grad_output):
        features, difference, scale = ctx.saved_tensors
        batch, channels, height, width = features.shape
        factor = grad_output * 4 / (batch * channels * channels * height * width * scale)
        weights = (factor * difference).to(features.dtype).expand(batch, -1, -1)
        positions = _positions_by_channels(features)
        # A tensor of its own, not a view: autograd can then add the next layer's gradient into it in place.
        grad = torch.empty_like(features)
        by_position = grad.permute(0, 2, 3, 1)  # (B, H, W, N), contiguous when channels-last
        for image in range(batch):
            if by_position.is_contiguous():
                torch.mm(positions[image], weights[image], out=by_position[image].view(height * width, channels))
            else:
                by_position[image].copy_(torch.mm(positions[image], weights[image]).view(height, width, channels))
        return grad, None, None


def _per_image(function, *batches: torch.Tensor) -> torch.Tensor:
    """``function`` applied to each batch item (B, ...), results stacked (a view for one image)."""
    if batches[0].shape[0] == 1:
        return function(*(b[0] for b in batches)).unsqueeze(0)
    return torch.stack([function(*items) for items in zip(*batches)])


def _positions_by_channels(features: torch.Tensor) -> torch.Tensor:
    """(B, N, H, W) -> (B, H*W, N); a view when the features are channels-last."""
    batch, channels, height, width = features.shape
    return features.permute(0, 2, 3, 1).reshape(batch, height * width, channels)


class StyleLoss:
    """Relative Gram error against one or several style images.

    ``targets``: one {layer: features} per style image (each at its own size).
    ``blend``: one weight per style image (normalized to sum to 1); the target
    Gram matrix is their weighted mean.
    ``layer_weights``: one per layer, or None for equal weights.
    """

    def __init__(self, targets: Sequence[Mapping[str, torch.Tensor]], blend=None, layer_weights=None):
        if isinstance(targets, Mapping):
            targets = [targets]
        if not targets:
            raise ValueError("No style image given: StyleLoss needs at least one.")
        blend = [1.0] * len(targets) if blend is None else [float(b) for b in blend]
        if len(blend) != len(targets):
            raise ValueError(f"Got {len(blend)} blend weights for {len(targets)} style images: give one per style.")
        if any(not b >= 0 or b == float("inf") for b in blend) or sum(blend) <= 0:
            raise ValueError(f"Style blend weights must be finite, non-negative and not all zero; got {blend}.")
        self.weights = _layer_weights(list(targets[0]), layer_weights)
        total = sum(blend)
        self.grams = {
            name: sum(b / total * gram(t[name].detach()) for b, t in zip(blend, targets))
            for name in self.weights
        }
        self.scales = {name: g.pow(2).mean().clamp_min(torch.finfo(torch.float32).tiny) for name, g in self.grams.items()}

    @property
    def layers(self) -> list[str]:
        return list(self.weights)

    def __call__(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum(w * self.layer_loss(name, features[name]) for name, w in self.weights.items())

    def layer_loss(self, name: str, features: torch.Tensor) -> torch.Tensor:
        """The relative Gram error of ``features`` (B, N, H, W) at one layer (mean over the batch)."""
        return _GramError.apply(features, self.grams[name], self.scales[name])


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels of (B, C, H, W) images."""
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
    return dx + dy


def content_distance(model, image: torch.Tensor, reference: torch.Tensor, layers) -> float:
    """Content loss of ``image`` against ``reference`` (the convention above), at ``layers``."""
    device = model.input_shift.device
    with torch.no_grad():
        return float(ContentLoss(model(reference.to(device), layers))(model(image.to(device), layers)))


def style_distance(model, image: torch.Tensor, reference: torch.Tensor, layers) -> float:
    """Style (Gram) loss of ``image`` against ``reference`` (the convention above), at ``layers``."""
    device = model.input_shift.device
    with torch.no_grad():
        return float(StyleLoss([model(reference.to(device), layers)])(model(image.to(device), layers)))


def perceptual_objective(
    model,
    content: torch.Tensor | None,
    styles: Sequence[torch.Tensor],
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    blend=None,
    style_layer_weights=None,
    use_tv: bool = False,
):
    """A function image -> {"content", "style", "tv": unweighted loss} with the targets computed once.

    Terms with no layers (or no ``use_tv``) are left out; ``model`` is a VGG19
    (or anything that maps (image, layers) to {layer: features}).
    """
    content_loss = style_loss = None
    with torch.no_grad():
        if content_layers:
            content_loss = ContentLoss(model(content, content_layers))
        if style_layers:
            style_loss = StyleLoss([model(s, style_layers) for s in styles], blend, style_layer_weights)
    layers = list(dict.fromkeys([*content_layers, *style_layers]))

    def objective(image: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {}
        if layers:
            features = model(image, layers)
            if content_loss is not None:
                terms["content"] = content_loss(features)
            if style_loss is not None:
                terms["style"] = style_loss(features)
        if use_tv:
            terms["tv"] = total_variation(image)
        return terms

    return objective
