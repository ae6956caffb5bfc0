import threading

import pytest
import torch

from conftest import blobs, stripes
from nst_lib import images
from nst_lib.losses import LossSpec
from nst_lib.optimize import optimize_image, transfer

SHALLOW = LossSpec(content_layers=("conv2_2",), style_layers=("conv1_1", "conv2_1", "conv3_1"))
SMALL = dict(loss=SHALLOW, progress=False)


def small(**loss_changes) -> dict:
    """The keyword arguments of a small transfer, with some loss settings changed."""
    return {**SMALL, "loss": SHALLOW.replace(**loss_changes)}


def test_style_transfer_lowers_both_losses_and_keeps_pixels_in_range(oxford):
    result = transfer(blobs(), stripes(), model=oxford, steps=25, **small(style_weight=1e3))
    first, final = {k: v[0] for k, v in result.history.items()}, result.final_losses
    assert result.loss_fell
    assert final["total"] < 0.5 * first["total"]
    assert final["style"] < first["style"]
    assert result.image.shape == (1, 3, 48, 64)
    assert 0 <= result.image.min() and result.image.max() <= 1
    assert result.evaluations == 25 and len(result.history["total"]) == 25


def test_content_reconstruction_moves_noise_towards_the_content(oxford):
    content = blobs()
    result = transfer(content, model=oxford, steps=30, **small(style_weight=0))
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(0))
    assert (result.image - content).abs().mean() < 0.7 * (noise - content).abs().mean()
    assert set(result.history) == {"content", "total"}


def test_texture_synthesis_takes_the_shape_it_is_given(oxford):
    result = transfer(styles=[stripes()], shape=(32, 40), model=oxford, steps=10, **small(content_weight=0))
    assert result.image.shape == (1, 3, 32, 40)
    assert set(result.history) == {"style", "total"}


def test_the_same_seed_gives_the_same_picture(random_vgg):
    runs = [transfer(blobs(), stripes(), model=random_vgg, steps=8, seed=s, **SMALL).image for s in (3, 3, 4)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_content_init_at_a_huge_style_weight_stays_finite(oxford):
    result = transfer(blobs(), stripes(), model=oxford, init="content", steps=20, **small(style_weight=1e6))
    assert torch.isfinite(result.image).all()
    assert result.loss_fell


def test_adam_and_multiscale_and_lbfgs_with_a_line_search_also_lower_the_loss(random_vgg):
    for options in ({"optimizer": "adam", "lr": 0.05}, {"scales": 2}, {"line_search": True}):
        result = transfer(blobs(64, 64), stripes(64, 64), model=random_vgg, steps=12, **SMALL, **options)
        assert result.loss_fell, options
        assert result.image.shape == (1, 3, 64, 64)


def test_a_non_finite_loss_rolls_back_and_says_so():
    calls = {"n": 0}
    target = torch.full((1, 3, 8, 8), 0.25)

    def objective(image):
        calls["n"] += 1
        loss = (image - target).pow(2).mean()
        return {"fit": loss * float("nan") if calls["n"] == 4 else loss}

    result = optimize_image(objective, torch.rand(1, 3, 8, 8), {"fit": 1.0}, steps=12, progress=False)
    assert any("not finite; rolled back" in event for event in result.events)
    assert torch.isfinite(result.image).all()
    assert result.final_losses["fit"] < result.history["fit"][0]


def test_a_loss_that_is_never_finite_stops_with_a_clear_error():
    with pytest.raises(RuntimeError, match="could not be evaluated even once with a finite value"):
        optimize_image(lambda image: {"x": image.sum() * float("inf")}, torch.rand(1, 3, 4, 4), {"x": 1}, steps=3, progress=False)


def test_callback_sees_every_kth_image_and_stop_ends_the_run(random_vgg):
    seen = []
    stop = threading.Event()

    def callback(evaluation, image, losses):
        seen.append(evaluation)
        assert image.shape == (1, 3, 48, 64) and "total" in losses
        if evaluation >= 6:
            stop.set()

    result = transfer(
        blobs(), stripes(), model=random_vgg, steps=50, callback=callback, callback_every=3, should_stop=stop, **SMALL
    )
    assert seen == [3, 6]
    assert result.stopped and result.evaluations == 6


def test_preserving_colours_keeps_the_contents_chrominance(oxford):
    content = blobs()
    result = transfer(content, stripes(), model=oxford, steps=10, preserve_colors=True, **SMALL)
    chroma = lambda image: images.rgb_to_yiq(image)[:, 1:]
    assert (chroma(result.image) - chroma(content)).abs().mean() < 0.02


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps must be a whole number of at least 1"),
        ({"init": "zeros"}, "Unknown init 'zeros'"),
        ({"optimizer": "sgd"}, "Unknown optimizer 'sgd'"),
        ({"scales": 9}, "scales must be a whole number from 1 to 4"),
        ({"loss": LossSpec(style_blend=(1, 2))}, "Got 2 blend weights for 1 style images"),
    ],
)
def test_bad_settings_are_one_sentence(random_vgg, kwargs, message):
    with pytest.raises(ValueError, match=message):
        transfer(blobs(), stripes(), model=random_vgg, **{**SMALL, "steps": 2, **kwargs})


def test_missing_images_and_too_small_images_are_one_sentence(random_vgg):
    with pytest.raises(ValueError, match="no style image was given"):
        transfer(blobs(), model=random_vgg, steps=2, progress=False)
    with pytest.raises(ValueError, match="no content image was given"):
        transfer(styles=[stripes()], model=random_vgg, steps=2, progress=False)
    with pytest.raises(ValueError, match="init='content' needs a content image"):
        transfer(styles=[stripes()], init="content", model=random_vgg, steps=2, **small(content_weight=0))
    with pytest.raises(ValueError, match="needs a side of at least 16 px"):
        transfer(blobs(12, 12), stripes(), model=random_vgg, steps=2, progress=False)


def test_the_result_records_its_loss_specification(random_vgg):
    loss = SHALLOW.replace(style_weight=3e3, tv_weight=0.5, style_blend=(2.0, 1.0))
    result = transfer(blobs(), [stripes(), blobs()], model=random_vgg, loss=loss, steps=3, seed=7, progress=False)
    assert result.loss == loss
    assert result.params["loss"]["style_blend"] == [2.0, 1.0] and result.params["seed"] == 7


def test_library_tensors_are_converted_or_refused_by_one_rule(random_vgg, artifacts):
    """uint8 pictures are divided by 255; 0-255 floats, NaN, infinity or four channels name the argument."""
    reconstruct = dict(model=random_vgg, steps=30, **small(style_weight=0))
    photo = blobs(64, 64)
    as_bytes = (photo * 255).round().to(torch.uint8)
    from_bytes = transfer(as_bytes, **reconstruct)
    assert from_bytes.final_losses["content"] < 0.05  # a 0-255 picture read as [0, 1] stayed near 1.0
    assert torch.equal(from_bytes.image, transfer(as_bytes.float() / 255, **reconstruct).image)
    images.save_image(torch.cat([photo, from_bytes.image], -1), artifacts / "uint8_content.png")
    nan = photo.clone()
    nan[0, 1, 5, 5] = float("nan")
    for arguments, message in [
        ((photo * 255,), "content has values from .* give pixels in \\[0, 1\\] \\(divide 0-255 pixels by 255\\)"),
        ((nan,), "content holds NaN or infinite values"),
        ((photo / 0,), "content holds NaN or infinite values"),
        ((torch.rand(1, 4, 64, 64),), "content must be an RGB tensor .* got shape \\(1, 4, 64, 64\\)"),
        ((photo, [stripes(), stripes() * 255]), "styles\\[1\\] has values from"),
    ]:
        with pytest.raises(ValueError, match=message):
            transfer(*arguments, model=random_vgg, steps=2, **SMALL)
    with pytest.raises(ValueError, match="init must be an RGB tensor"):
        transfer(photo, stripes(), init=torch.rand(1, 3, 64), model=random_vgg, steps=2, **SMALL)


def test_a_texture_beyond_the_size_limit_is_refused_before_any_work(random_vgg):
    with pytest.raises(ValueError, match=f"would be 100000x100000 px: its sides must be at most {images.MAX_SIZE} px"):
        transfer(styles=[stripes()], shape=(100000, 100000), model=random_vgg, **small(content_weight=0))
    with pytest.raises(ValueError, match="shape must be \\(height, width\\) in whole pixels, got 64"):
        transfer(styles=[stripes()], shape=64, model=random_vgg, **small(content_weight=0))


@pytest.mark.parametrize("lr", [1e300, float("inf"), 0.0, -1.0, 5e3])
def test_an_absurd_learning_rate_is_one_sentence(random_vgg, lr):
    with pytest.raises(ValueError, match="The learning rate must be a positive number up to 1000"):
        transfer(blobs(), stripes(), model=random_vgg, steps=2, optimizer="adam", lr=lr, **SMALL)


def test_an_init_image_of_another_shape_is_stretched_with_a_warning_first(random_vgg):
    import warnings

    content, loss = blobs(48, 64), LossSpec(style_layers=("conv1_1",))
    warned_by_then = []
    with pytest.warns(UserWarning, match=r"^The init image is 48x64 px \(portrait\) and the picture 64x48 px "
                                         r"\(landscape\): it is stretched to the picture's shape; crop it") as said:
        result = transfer(content, [stripes()], model=random_vgg, loss=loss, init=blobs(64, 48), steps=1,
                          callback=lambda *args: warned_by_then.append(len(said)), progress=False)
    assert result.image.shape[-2:] == (48, 64) and warned_by_then == [1]  # said before the first evaluation
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same shape at another size is scaled, not stretched: no warning
        transfer(content, [stripes()], model=random_vgg, loss=loss, init=blobs(96, 128), steps=1, progress=False)


def test_seconds_per_evaluation_times_each_job_in_turn_on_one_thread(random_vgg):
    from nst_lib.optimize import seconds_per_evaluation

    threads = torch.get_num_threads()
    times = seconds_per_evaluation({
        "noise": dict(content=blobs(), styles=[stripes()], init="noise"),
        "content": dict(content=blobs(), styles=[stripes()], init="content", loss=LossSpec(style_weight=10.0)),
    }, model=random_vgg, repeats=4)
    assert list(times) == ["noise", "content"] and all(len(v) == 4 and min(v) > 0 for v in times.values())
    assert torch.get_num_threads() == threads  # the thread count is put back
    # How the optimizer steps does not change what an evaluation computes: accepted, and left out.
    stepping = seconds_per_evaluation({"a": dict(content=blobs(), styles=[stripes()], steps=3, line_search=True)},
                                      model=random_vgg, repeats=1)
    assert len(stepping["a"]) == 1
    with pytest.raises(ValueError, match="times a job's start and loss only; not scales"):
        seconds_per_evaluation({"a": dict(content=blobs(), scales=2)}, model=random_vgg)
