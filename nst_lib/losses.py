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
style + tv_weight * tv``; ``LossSpec`` holds those settings and is the only
code that applies ``STYLE_SCALE``. ``STYLE_SCALE`` is a fixed constant chosen once so
that the style weights of the classic sweep (1, 100, 1e3, 1e4, 1e6 with
content weight 1, from noise) keep their meaning: the content wins at 1 and
100, the two balance around 1e3 to 1e4 (the default is 1e4), and the style
washes the content out at 1e6.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace

import torch

from . import profiles
from .images import check_image
from .vgg import check_layers

# See the module docstring: puts the balance of content and style at style_weight 1e3-1e4.
STYLE_SCALE = 1e-3
# Loss weights above this are typing mistakes, not settings.
MAX_WEIGHT = 1e12


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
    weights = _check_shares(weights, "Layer weights")
    if len(weights) != len(layers):
        raise ValueError(f"Got {len(weights)} layer weights for {len(layers)} layers: give one per layer.")
    total = sum(weights)
    return {name: w / total for name, w in zip(layers, weights)}


def _check_shares(values, what: str) -> tuple[float, ...]:
    """Blend or layer weights: finite, non-negative, not all zero."""
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers, got {values!r}.") from None
    if any(not (v >= 0 and math.isfinite(v)) for v in values) or sum(values) <= 0:
        raise ValueError(f"{what} must be finite, non-negative and not all zero; got {list(values)}.")
    return values


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
        return sum(w * self.term(name, features[name])[1] for name, w in self.weights.items())

    def term(self, name: str, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the same features, the relative error at layer ``name``); see ``_ContentTerm``."""
        return _ContentTerm.apply(features, self.targets[name], self.scales[name])


def _per_image_mean(values: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,): the mean of each batch item (no copy of channels-last values, whose
    gradient then stays channels-last like the network's own)."""
    return values.mean(dim=tuple(range(1, values.dim())))


# Loss terms as autograd functions that hand their features on.
#
# A layer's features feed both a loss term and the next layer, so in a plain autograd graph
# their gradient arrives in two tensors that autograd then adds: one more pass over the
# largest tensors of the evaluation. Each function below returns the features it was given,
# unchanged, with its term; placed in the network's forward pass (``VGG19.forward``'s
# ``tap``), its backward receives the gradient of the layers above and adds the term's own
# gradient into it, in place: for the style term, inside the matrix product that computes it.
# Called on features that feed nothing else, the features output is simply not used and the
# term's gradient is a tensor of its own.


class _ContentTerm(torch.autograd.Function):
    """(F, P, s) -> (F, mean_b(mean((F_b - P_b)^2) / s_b)) for features F (B, N, H, W),
    targets P (1 or B, N, H, W) and one scale per target image s (1 or B,)."""

    @staticmethod
    def forward(ctx, features, target, scale):
        ctx.set_materialize_grads(False)
        difference = _at_least_float32(features) - target
        ctx.save_for_backward(difference, scale)
        ctx.dtype = features.dtype
        return features, (_per_image_mean(difference.pow(2)) / scale).mean()

    @staticmethod
    def backward(ctx, grad_features, grad_output):
        if grad_output is None:
            return grad_features, None, None
        difference, scale = ctx.saved_tensors
        batch = difference.shape[0]
        factor = grad_output * 2 / (batch * difference[0].numel() * scale)
        # In the features' precision: an in-place add of float32 into bfloat16 is ten times slower.
        own = (difference * factor.expand(batch).view(batch, 1, 1, 1)).to(ctx.dtype)
        return own if grad_features is None else grad_features.add_(own), None, None


class _GramTerm(torch.autograd.Function):
    """(F, A, s) -> (F, mean((G - A)^2) / s) with G = F F^T / M, for features F (B, N, H, W),
    a target Gram matrix A (1 or B, N, N) and its scale s.

    Autograd would differentiate the Gram matrix with two (N x N) @ (N x M)
    products; G is symmetric, so dL/dF = 4 (G - A) F / (B N^2 M s) needs one.
    The products run on the (B, M, N) view of channels-last features, so
    nothing is copied. This is the costliest part of the style loss.
    """

    @staticmethod
    def forward(ctx, features, target, scale):
        ctx.set_materialize_grads(False)
        positions = _positions_by_channels(features)
        # One torch.mm per image: unlike bmm, it reads the transposed operand in place (no copy).
        products = _per_image(lambda p: torch.mm(p.t(), p), positions)
        difference = _at_least_float32(products) / positions.shape[1] - target
        ctx.save_for_backward(features, difference, scale)
        return features, difference.pow(2).mean() / scale

    @staticmethod
    def backward(ctx, grad_features, grad_output):
        if grad_output is None:
            return grad_features, None, None
        features, difference, scale = ctx.saved_tensors
        batch, channels, height, width = features.shape
        factor = grad_output * 4 / (batch * channels * channels * height * width * scale)
        weights = (factor * difference).to(features.dtype).expand(batch, -1, -1)
        positions = _positions_by_channels(features)
        if grad_features is None:
            grad, accumulate = torch.empty_like(features), False
        elif _channels_last(grad_features) and _channels_last(features):
            grad, accumulate = grad_features, True
        else:
            return grad_features + _GramTerm.backward(ctx, None, grad_output)[0], None, None
        by_position = grad.permute(0, 2, 3, 1)  # (B, H, W, N), contiguous when channels-last
        for image in range(batch):
            if by_position.is_contiguous():
                out = by_position[image].view(height * width, channels)
                if accumulate:
                    out.addmm_(positions[image], weights[image])
                else:
                    torch.mm(positions[image], weights[image], out=out)
            else:
                by_position[image].copy_(torch.mm(positions[image], weights[image]).view(height, width, channels))
        return grad, None, None


def _channels_last(values: torch.Tensor) -> bool:
    return values.is_contiguous(memory_format=torch.channels_last)


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
        blend = _check_shares([1.0] * len(targets) if blend is None else blend, "Style blend weights")
        if len(blend) != len(targets):
            raise ValueError(f"Got {len(blend)} blend weights for {len(targets)} style images: give one per style.")
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
        return sum(w * self.term(name, features[name])[1] for name, w in self.weights.items())

    def term(self, name: str, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the same features, the relative Gram error at layer ``name``, mean over the batch); see ``_GramTerm``."""
        return _GramTerm.apply(features, self.grams[name], self.scales[name])


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels of (B, C, H, W) images."""
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
    return dx + dy


def check_weight(value, name: str) -> float:
    """A loss weight as a float in [0, MAX_WEIGHT], or a ValueError that names it."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if not 0 <= value <= MAX_WEIGHT:
        raise ValueError(f"{name}={value:g} is out of range: use a number from 0 to {MAX_WEIGHT:g}.")
    return value


@dataclass(frozen=True)
class LossSpec:
    """What an image is optimized (or a generator trained) against: layers, weights, style blend.

    ``content_layers``, ``style_layers``: VGG-19 layer names. A term whose
    weight is 0 is left out, and then its layers are not needed.
    ``content_weight``, ``style_weight``, ``tv_weight``: in [0, 1e12], not
    content and style both 0.
    ``style_blend``: one weight per style image (None: equal).
    ``style_layer_weights``: one per style layer (None: equal).

    A spec checks itself when made, so every later use can trust it; runs
    record it with ``to_dict()`` and read it back with ``from_dict()``.
    """

    content_layers: tuple[str, ...] = profiles.CONTENT_LAYERS
    style_layers: tuple[str, ...] = profiles.STYLE_LAYERS
    content_weight: float = profiles.CONTENT_WEIGHT
    style_weight: float = profiles.STYLE_WEIGHT
    tv_weight: float = profiles.TV_WEIGHT
    style_blend: tuple[float, ...] | None = None
    style_layer_weights: tuple[float, ...] | None = None

    def __post_init__(self):
        def set_field(name, value):
            object.__setattr__(self, name, value)

        for name in ("content_weight", "style_weight", "tv_weight"):
            set_field(name, check_weight(getattr(self, name), name))
        if self.content_weight + self.style_weight == 0:
            raise ValueError("Both content_weight and style_weight are 0: there is nothing to optimize for.")
        set_field("content_layers", _checked_layers(self.content_layers, needed=self.content_weight > 0))
        set_field("style_layers", _checked_layers(self.style_layers, needed=self.style_weight > 0))
        if self.style_blend is not None:
            set_field("style_blend", _check_shares(self.style_blend, "Style blend weights"))
        if self.style_layer_weights is not None:
            set_field("style_layer_weights", _check_shares(self.style_layer_weights, "Style layer weights"))
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ValueError(
                    f"Got {len(self.style_layer_weights)} style layer weights for {len(self.style_layers)} "
                    "style layers: give one per layer."
                )

    @property
    def active_content_layers(self) -> tuple[str, ...]:
        """The content layers, or none when the content weight is 0."""
        return self.content_layers if self.content_weight > 0 else ()

    @property
    def active_style_layers(self) -> tuple[str, ...]:
        """The style layers, or none when the style weight is 0."""
        return self.style_layers if self.style_weight > 0 else ()

    @property
    def layers(self) -> list[str]:
        """Every layer the objective reads, each once, content layers first."""
        return list(dict.fromkeys([*self.active_content_layers, *self.active_style_layers]))

    def weights(self) -> dict[str, float]:
        """The weight of each term of the objective that is switched on (``STYLE_SCALE`` applied)."""
        weights = {"content": self.content_weight, "style": STYLE_SCALE * self.style_weight, "tv": self.tv_weight}
        return {name: w for name, w in weights.items() if w > 0}

    def replace(self, **changes) -> "LossSpec":
        """This spec with some fields changed (checked again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready: tuples become lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping) -> "LossSpec":
        """The spec recorded by ``to_dict`` (unknown keys are an error, missing ones take the defaults)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"Not a loss specification: unknown fields {', '.join(unknown)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def check_images(self, content: torch.Tensor | None, styles: Sequence[torch.Tensor]) -> None:
        """Raise a ValueError when the images given cannot feed the terms switched on."""
        if self.content_weight > 0 and content is None:
            raise ValueError("content_weight is above 0 but no content image was given.")
        if self.style_weight > 0 and not styles:
            raise ValueError("style_weight is above 0 but no style image was given.")
        if self.style_weight > 0 and self.style_blend is not None and len(self.style_blend) != len(styles):
            raise ValueError(
                f"Got {len(self.style_blend)} blend weights for {len(styles)} style images: give one per style."
            )

    def objective(self, model, content: torch.Tensor | None = None, styles: Sequence[torch.Tensor] = ()):
        """The ``PerceptualLoss`` of this spec, with targets from ``content`` and ``styles`` computed once."""
        self.check_images(content, styles)
        return PerceptualLoss(self, model, content, styles)

    def evaluate(
        self, model, image: torch.Tensor, content: torch.Tensor | None, styles: Sequence[torch.Tensor]
    ) -> dict[str, float]:
        """The terms of ``image`` as ``transfer`` measures them, unweighted, plus the weighted ``total``.

        Images follow ``images.check_image``'s rule (uint8 is divided by 255; anything else outside [0, 1] is an
        error); ``image`` may be a batch, whose terms are then the means over it.
        """
        image = check_image(image, "image", batch=True)
        content = None if content is None else check_image(content, "content")
        styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
        styles = [check_image(style, f"styles[{i}]") for i, style in enumerate(styles)]
        spec = self if content is not None or self.content_weight == 0 else self.replace(content_weight=0.0)
        with torch.no_grad():
            terms = spec.objective(model, content, styles)(image.to(model.device))
        values = {name: float(value) for name, value in terms.items()}
        weights = spec.weights()
        values["total"] = sum(weights[name] * value for name, value in values.items())
        return values


def _checked_layers(layers, needed: bool) -> tuple[str, ...]:
    layers = [layers] if isinstance(layers, str) else list(layers)
    return tuple(check_layers(layers)) if needed or layers else ()


class PerceptualLoss:
    """A ``LossSpec``'s terms with their targets: a function image -> {"content", "style", "tv"}.

    Each value is the unweighted term (weigh them with ``spec.weights()``);
    terms that are switched off are left out. ``model`` is a VGG19 (or
    anything that maps (image, layers, tap=) to {layer: features} the way
    ``VGG19.forward`` does).
    ``set_content`` swaps the content targets (a generator's training crops)
    and keeps the style targets.
    """

    def __init__(self, spec: LossSpec, model, content: torch.Tensor | None, styles: Sequence[torch.Tensor]):
        self.spec = spec
        self.model = model
        self.content_loss = None
        self.style_loss = None
        if spec.active_style_layers:
            with torch.no_grad():
                targets = [model(s.to(model.device), spec.active_style_layers) for s in styles]
            self.style_loss = StyleLoss(targets, spec.style_blend, spec.style_layer_weights)
        if content is not None:
            self.set_content(content)

    def set_content(self, content: torch.Tensor) -> None:
        """Measure the content term against ``content`` (1 or B images) from now on."""
        if self.spec.active_content_layers:
            with torch.no_grad():
                targets = self.model(content.to(self.model.device), self.spec.active_content_layers)
            self.content_loss = ContentLoss(targets)

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {}
        if self.spec.layers:
            if self.spec.active_content_layers and self.content_loss is None:
                raise ValueError("The content term is switched on but no content image was set.")
            losses = {"content": self.content_loss, "style": self.style_loss}
            losses = {kind: loss for kind, loss in losses.items() if loss is not None}
            parts: dict[str, list[torch.Tensor]] = {kind: [] for kind in losses}

            def tap(name: str, features: torch.Tensor) -> torch.Tensor:
                # Each term hands the features on down the network (see _GramTerm).
                for kind, loss in losses.items():
                    if name in loss.weights:
                        features, value = loss.term(name, features)
                        parts[kind].append(loss.weights[name] * value)
                return features

            self.model(image, self.spec.layers, tap=tap)
            terms.update({kind: sum(values) for kind, values in parts.items()})
        if self.spec.tv_weight > 0:
            terms["tv"] = total_variation(image)
        return terms


def style_distance(model, image: torch.Tensor, reference: torch.Tensor, layers) -> float:
    """Style (Gram) loss of ``image`` against ``reference`` (the convention above), at ``layers``."""
    with torch.no_grad():
        return float(StyleLoss([model(reference.to(model.device), layers)])(model(image.to(model.device), layers)))
