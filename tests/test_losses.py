import pytest
import torch

from conftest import blobs, stripes
from nst_lib.losses import STYLE_SCALE, ContentLoss, LossSpec, StyleLoss, gram, total_variation


def features(seed, channels=8, height=6, width=5):
    return torch.rand(1, channels, height, width, generator=torch.Generator().manual_seed(seed))


def test_gram_is_the_mean_outer_product_over_positions():
    f = features(0)
    flat = f.reshape(8, 30)
    assert gram(f).shape == (1, 8, 8)
    assert torch.allclose(gram(f)[0], flat @ flat.T / 30)


def test_gram_does_not_depend_on_image_size():
    """A texture tiled to twice the size has the same statistics."""
    f = features(1)
    assert torch.allclose(gram(f), gram(f.repeat(1, 1, 2, 2)), atol=1e-6)


def test_content_loss_is_zero_at_the_target_and_relative_elsewhere():
    target, other = features(2), features(3)
    loss = ContentLoss({"conv4_2": target})
    assert loss({"conv4_2": target}).item() == 0
    expected = (other - target).pow(2).mean() / target.pow(2).mean()
    assert torch.isclose(loss({"conv4_2": other}), expected)


@pytest.mark.parametrize("scale", [1e-3, 255.0, 1e4])
def test_losses_do_not_depend_on_the_networks_activation_scale(scale):
    """What makes one style_weight mean the same with every weight source."""
    target, other = features(4), features(5)
    for make in (lambda t: ContentLoss({"conv1_1": t}), lambda t: StyleLoss([{"conv1_1": t}])):
        base = make(target)({"conv1_1": other})
        scaled = make(target * scale)({"conv1_1": other * scale})
        assert torch.isclose(base, scaled, rtol=1e-4)


def test_style_loss_ignores_where_things_are():
    target = features(6)
    shuffled = target.flatten(2)[..., torch.randperm(30)].reshape(target.shape)
    loss = StyleLoss([{"conv2_1": target}])
    assert loss({"conv2_1": shuffled}).item() < 1e-10
    assert loss({"conv2_1": features(7)}).item() > 1e-3


def test_blended_styles_target_the_weighted_mean_gram():
    a, b, x = features(8), features(9), features(10)
    loss = StyleLoss([{"conv1_1": a}, {"conv1_1": b}], blend=[3, 1])
    assert torch.allclose(loss.grams["conv1_1"], 0.75 * gram(a) + 0.25 * gram(b))
    only_a = StyleLoss([{"conv1_1": a}, {"conv1_1": b}], blend=[1, 0])
    assert torch.isclose(only_a({"conv1_1": x}), StyleLoss([{"conv1_1": a}])({"conv1_1": x}))


def test_layer_weights_are_normalized():
    a, b = features(11), features(12)
    targets = {"conv1_1": a, "conv2_1": a}
    image = {"conv1_1": b, "conv2_1": a}
    assert torch.isclose(StyleLoss([targets], layer_weights=[2, 2])(image), StyleLoss([targets])(image))
    assert StyleLoss([targets], layer_weights=[0, 1])(image).item() == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"blend": [1, -1]}, "blend weights must be finite, non-negative"),
        ({"blend": [1]}, "Got 1 blend weights for 2 style images"),
        ({"layer_weights": [0, 0]}, "Layer weights must be finite, non-negative and not all zero"),
        ({"layer_weights": [float("nan"), 1]}, "Layer weights must be finite"),
    ],
)
def test_bad_weights_are_one_sentence(kwargs, message):
    targets = {"conv1_1": features(0), "conv2_1": features(1)}
    with pytest.raises(ValueError, match=message):
        StyleLoss([targets, targets], **kwargs)


def test_total_variation_is_zero_for_flat_images_and_grows_with_noise():
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert total_variation(flat).item() == 0
    assert total_variation(torch.rand(1, 3, 8, 8)).item() > total_variation(flat + 0.01 * torch.rand(1, 3, 8, 8)).item()


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_the_closed_form_gram_gradient_matches_autograd(memory_format):
    target = torch.rand(1, 4, 3, 5, dtype=torch.float64)
    image = torch.rand(2, 4, 3, 5, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_(True)
    loss = StyleLoss([{"conv1_1": target}])
    assert torch.autograd.gradcheck(lambda f: loss({"conv1_1": f}), (image,))
    plain = ((gram(image) - loss.grams["conv1_1"]).pow(2).mean() / loss.scales["conv1_1"])
    assert torch.isclose(loss({"conv1_1": image}), plain)


def test_a_batch_loss_is_the_mean_of_each_images_own_loss():
    """What lets a feed-forward generator train on a batch with one target per image."""
    targets = torch.cat([features(13), 40 * features(14)])  # the second target is far brighter
    images = torch.cat([features(15), 40 * features(16)])
    content = ContentLoss({"conv4_2": targets})({"conv4_2": images})
    alone = [ContentLoss({"conv4_2": targets[i : i + 1]})({"conv4_2": images[i : i + 1]}) for i in range(2)]
    assert torch.isclose(content, (alone[0] + alone[1]) / 2)
    style = StyleLoss([{"conv1_1": targets[:1]}])
    together = style({"conv1_1": images})
    assert torch.isclose(together, (style({"conv1_1": images[:1]}) + style({"conv1_1": images[1:]})) / 2)


def test_a_loss_spec_names_its_layers_and_weights():
    spec = LossSpec(content_layers=("conv4_2",), style_layers=("conv1_1", "conv4_2"), style_weight=1e4, tv_weight=2)
    assert spec.layers == ["conv4_2", "conv1_1"]
    assert spec.weights() == {"content": 1.0, "style": STYLE_SCALE * 1e4, "tv": 2.0}
    texture = spec.replace(content_weight=0)
    assert texture.layers == ["conv1_1", "conv4_2"] and "content" not in texture.weights()


def test_a_loss_spec_round_trips_through_json():
    import json

    spec = LossSpec(style_layers=("conv1_1", "conv2_1"), style_blend=(3, 1), style_layer_weights=(1, 2), tv_weight=0.5)
    again = LossSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.style_blend == (3.0, 1.0)
    with pytest.raises(ValueError, match="unknown fields style_wieght"):
        LossSpec.from_dict({"style_wieght": 1})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"style_weight": -1}, "style_weight=-1 is out of range"),
        ({"content_weight": float("nan")}, "content_weight=nan is out of range"),
        ({"style_weight": 1e20}, "style_weight=1e\\+20 is out of range"),
        ({"tv_weight": "a lot"}, "tv_weight must be a number"),
        ({"content_layers": ()}, "No layer given"),
        ({"style_layers": ("conv9_9",)}, "Unknown VGG-19 layer 'conv9_9'"),
        ({"content_weight": 0, "style_weight": 0}, "nothing to optimize"),
        ({"style_blend": (1, -1)}, "blend weights must be finite, non-negative"),
        ({"style_layer_weights": (1, 1)}, "Got 2 style layer weights for 5 style layers"),
    ],
)
def test_a_bad_loss_spec_is_one_sentence(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LossSpec(**kwargs)


def test_a_term_switched_off_needs_no_layers():
    assert LossSpec(content_weight=0, content_layers=()).layers == list(LossSpec().style_layers)
    assert LossSpec(style_weight=0, style_layers=()).layers == ["conv4_2"]


def test_evaluate_scores_a_picture_as_transfer_does(random_vgg):
    """So that a generator's output and an optimized picture are compared on the same scale."""
    from nst_lib.optimize import transfer

    loss = LossSpec(content_layers=("conv2_1",), style_layers=("conv1_1", "conv2_1"), tv_weight=0.5)
    result = transfer(blobs(), stripes(), model=random_vgg, loss=loss, steps=5, progress=False)
    scored = result.loss.evaluate(random_vgg, result.image, blobs(), stripes())
    assert set(scored) == {"content", "style", "tv", "total"}
    for name, value in result.final_losses.items():
        assert scored[name] == pytest.approx(value, rel=1e-4), name


def test_a_blended_optimization_is_evaluated_with_its_blend(random_vgg):
    from nst_lib.optimize import transfer

    styles = [stripes(), blobs().flip(-1)]
    loss = LossSpec(content_layers=("conv2_1",), style_layers=("conv1_1", "conv2_1"), style_blend=(0.9, 0.1))
    result = transfer(blobs(), styles, model=random_vgg, loss=loss, steps=5, progress=False)
    scored = result.loss.evaluate(random_vgg, result.image, blobs(), styles)
    assert scored["style"] == pytest.approx(result.final_losses["style"], rel=1e-4)
    equal = result.loss.replace(style_blend=None).evaluate(random_vgg, result.image, blobs(), styles)
    assert abs(equal["style"] - scored["style"]) > 1e-3 * scored["style"]  # the blend changes the score


def test_evaluate_takes_images_by_the_library_rule(random_vgg):
    loss = LossSpec(content_layers=("conv2_1",), style_layers=("conv1_1", "conv2_1"))
    picture = blobs().flip(-1)
    as_bytes = [(image * 255).round().to(torch.uint8) for image in (picture, blobs(), stripes())]
    exact = loss.evaluate(random_vgg, *[image.float() / 255 for image in as_bytes[:2]], as_bytes[2].float() / 255)
    assert loss.evaluate(random_vgg, *as_bytes) == pytest.approx(exact, rel=1e-5)
    with pytest.raises(ValueError, match="image has values from"):
        loss.evaluate(random_vgg, picture * 255, blobs(), stripes())
    with pytest.raises(ValueError, match="content must be an RGB tensor"):
        loss.evaluate(random_vgg, picture, torch.rand(1, 4, 48, 64), stripes())
    with pytest.raises(ValueError, match="styles\\[0\\] holds NaN or infinite values"):
        loss.evaluate(random_vgg, picture, blobs(), stripes() / 0)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("term", ["content", "style"])
def test_a_term_handing_its_features_on_adds_its_gradient_to_the_one_from_above(memory_format, term):
    """Placed inside the network, a term's backward receives the gradient of the layers above
    and adds its own into it: the sum must be the one autograd would form."""
    target = torch.rand(1, 4, 3, 5, dtype=torch.float64)
    loss = ContentLoss({"conv1_1": target}) if term == "content" else StyleLoss([{"conv1_1": target}])
    above = torch.rand(2, 4, 3, 5, dtype=torch.float64).contiguous(memory_format=memory_format)
    image = torch.rand(2, 4, 3, 5, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_(True)

    def both(f):
        passed_on, value = loss.term("conv1_1", f)
        return (passed_on * above).sum() + 3 * value

    assert torch.autograd.gradcheck(both, (image,))
    passed_on, _ = loss.term("conv1_1", image)
    assert torch.equal(passed_on, image)


def test_the_objective_through_the_network_has_the_gradient_of_the_plain_formulas(random_vgg):
    """PerceptualLoss evaluates its terms inside VGG19's forward pass (the tap); the gradient on
    the image must equal plain autograd through the formulas of this module's docstring,
    with a layer that feeds the content and the style term and the network above it."""
    spec = LossSpec(content_layers=("conv2_1",), style_layers=("conv1_1", "conv2_1", "conv3_1"), tv_weight=0)
    content, style = blobs(32, 40), stripes(32, 40)
    image = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    weights = spec.weights()
    sum(weights[k] * v for k, v in spec.objective(random_vgg, content, [style])(image).items()).backward()
    tapped, image.grad = image.grad, None

    with torch.no_grad():
        p = random_vgg(content, ["conv2_1"])["conv2_1"]
        targets = {name: gram(f) for name, f in random_vgg(style, spec.style_layers).items()}
    f = random_vgg(image, spec.layers)
    content_term = (f["conv2_1"] - p).pow(2).mean() / p.pow(2).mean()
    style_term = sum((gram(f[n]) - a).pow(2).mean() / a.pow(2).mean() for n, a in targets.items()) / 3
    (weights["content"] * content_term + weights["style"] * style_term).backward()
    assert torch.allclose(tapped, image.grad, rtol=1e-4, atol=1e-7 * float(image.grad.abs().max()))
