import pytest
import torch

from nst_lib.generator import Generator, stylize, stylize_timed


def test_the_network_keeps_any_shape_and_stays_in_range():
    network = Generator(channels=4, residual_blocks=1)
    for shape in ((2, 3, 32, 48), (1, 3, 21, 37)):
        images = torch.rand(shape)
        out = network(images)
        assert out.shape == shape
        assert 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="at least 16 px a side"):
        network(torch.rand(1, 3, 12, 40))


def test_stylize_timed_gives_the_picture_and_its_time():
    network = Generator(channels=4, residual_blocks=1)
    image = torch.rand(1, 3, 24, 40)
    stylized, seconds = stylize_timed(network, image)
    assert torch.equal(stylized, stylize(network, image)) and seconds > 0


def test_stylize_takes_images_by_the_library_rule():
    network = Generator(channels=4, residual_blocks=1)
    image = torch.rand(1, 3, 24, 40)
    as_bytes = (image * 255).round().to(torch.uint8)
    assert torch.equal(stylize(network, as_bytes), stylize(network, as_bytes.float() / 255))
    with pytest.raises(ValueError, match="image has values from"):
        stylize(network, image * 255)
    with pytest.raises(ValueError, match="image must be an RGB tensor"):
        stylize(network, torch.rand(1, 4, 24, 40))
