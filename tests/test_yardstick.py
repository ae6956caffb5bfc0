import math

import pytest
import torch

from conftest import blobs, stripes
from nst_lib.yardstick import Yardstick, layers, style_at


def test_the_yardstick_gives_zero_for_its_own_targets_and_more_for_other_pictures():
    content, style = (image.mul(255).round().div(255) for image in (blobs(48, 64), stripes(48, 64)))  # as saved
    measure = Yardstick("random", content, style)
    assert measure(content)[0] == pytest.approx(0, abs=1e-6)
    assert measure(style)[1] == pytest.approx(0, abs=1e-6)
    noise = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    content_error, style_error = measure(noise)
    assert content_error > 0.1 and style_error > 0.1


def test_the_yardstick_reads_other_layers_than_the_default_objective():
    from nst_lib.losses import LossSpec
    from nst_lib.vgg import source_layer

    read = {source_layer(name, pre_relu=False) for name in LossSpec().layers}
    for rectified in (True, False):
        content_layers, style_layers = layers(rectified)
        assert not read & {*content_layers, *style_layers}


def test_style_at_interpolates_in_log_log_and_says_none_outside_the_curve():
    points = [(0.1, 1.0), (1.0, 0.01)]  # a straight line in log-log: style = 0.01 * content^-2
    assert style_at(points, 0.1) == pytest.approx(1.0)
    assert style_at(points, math.sqrt(0.1)) == pytest.approx(0.1)
    assert style_at(list(reversed(points)), 1.0) == pytest.approx(0.01)
    assert style_at(points, 2.0) is None and style_at(points, 0.05) is None
    assert style_at([(0.0, 0.5)], 0.1) is None


def test_style_errors_give_each_scale_its_own_error_and_their_mean_is_the_style_error():
    content, style = blobs(48, 64), stripes(48, 64)
    measure = Yardstick("random", content, style)
    noise = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    errors = measure.style_errors(noise)
    assert list(errors) == layers()[1] and all(value > 0 for value in errors.values())
    assert sum(errors.values()) / len(errors) == pytest.approx(measure(noise)[1], rel=1e-5)
