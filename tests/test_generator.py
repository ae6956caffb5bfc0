import pytest
import torch

from nst_lib.generator import Generator, evaluations_to_reach, stylize, stylize_timed


def test_the_network_keeps_any_shape_and_stays_in_range():
    network = Generator(channels=4, residual_blocks=1)
    for shape in ((2, 3, 32, 48), (1, 3, 21, 37)):
        images = torch.rand(shape)
        out = network(images)
        assert out.shape == shape
        assert 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="at least 16 px a side"):
        network(torch.rand(1, 3, 12, 40))


def test_bilinear_upsampling_keeps_the_shape_and_changes_the_picture():
    torch.manual_seed(0)
    nearest = Generator(channels=4, residual_blocks=1, upsample="nearest")
    bilinear = Generator(channels=4, residual_blocks=1, upsample="bilinear")
    bilinear.load_state_dict(nearest.state_dict())  # the same weights: only the resizing differs
    image = torch.rand(1, 3, 21, 37)
    smooth, blocky = bilinear(image), nearest(image)
    assert smooth.shape == blocky.shape == image.shape and 0 <= smooth.min() and smooth.max() <= 1
    assert not torch.allclose(smooth, blocky)
    with pytest.raises(ValueError, match="Unknown upsampling 'cubic': choose nearest or bilinear"):
        Generator(channels=4, residual_blocks=1, upsample="cubic")


def test_stylize_timed_gives_the_picture_and_its_time():
    network = Generator(channels=4, residual_blocks=1)
    image = torch.rand(1, 3, 24, 40)
    stylized, seconds = stylize_timed(network, image)
    assert torch.equal(stylized, stylize(network, image)) and seconds > 0


def test_stylize_in_bfloat16_stays_close_to_float32():
    torch.manual_seed(0)
    network = Generator(channels=4, residual_blocks=1)
    image = torch.rand(1, 3, 32, 32)
    exact, rounded = stylize(network, image, bfloat16=False), stylize(network, image, bfloat16=True)
    assert rounded.dtype == torch.float32 and 0 < (exact - rounded).abs().max() < 0.05


def test_evaluations_to_reach_counts_until_the_best_so_far_gets_there():
    totals = [9.0, 5.0, 6.0, 4.0, 4.5, 3.0]
    assert evaluations_to_reach(totals, 5.0) == 2
    assert evaluations_to_reach(totals, 4.2) == 4
    assert evaluations_to_reach(totals, 9.5) == 1
    assert evaluations_to_reach(totals, 2.0) is None


def test_stylize_takes_images_by_the_library_rule():
    network = Generator(channels=4, residual_blocks=1)
    image = torch.rand(1, 3, 24, 40)
    as_bytes = (image * 255).round().to(torch.uint8)
    assert torch.equal(stylize(network, as_bytes), stylize(network, as_bytes.float() / 255))
    with pytest.raises(ValueError, match="image has values from"):
        stylize(network, image * 255)
    with pytest.raises(ValueError, match="image must be an RGB tensor"):
        stylize(network, torch.rand(1, 4, 24, 40))
