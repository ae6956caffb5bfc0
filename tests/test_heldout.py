"""Reference curves on held-out photos and a generator's scores against them (random VGG-19, tiny pictures)."""

import pytest
import torch

from conftest import blobs, stripes
from nst_lib import LossSpec, heldout
from nst_lib.generator import Generator, evaluations_to_reach, stylize

LOSS = LossSpec(content_layers=("conv2_1",), style_layers=("conv1_1", "conv2_1"))


def test_a_cached_curve_is_read_back_and_serves_shorter_requests(random_vgg, tmp_path, monkeypatch):
    content, style = blobs(), stripes()
    first = heldout.reference_curve(random_vgg, content, style, LOSS, 8, cache=tmp_path)
    assert len(first["total"]) == first["evaluations"] == 8 and first["cpu_seconds"] > 0
    assert len(list(tmp_path.iterdir())) == 1

    def no_optimization(*args, **kwargs):
        raise AssertionError("the curve was optimized again instead of read from the cache")

    monkeypatch.setattr(heldout, "transfer", no_optimization)
    assert heldout.reference_curve(random_vgg, content, style, LOSS, 8, cache=tmp_path)["total"] == first["total"]
    shorter = heldout.reference_curve(random_vgg, content, style, LOSS, 5, cache=tmp_path)
    assert shorter["total"] == first["total"][:5] and shorter["evaluations"] == 5
    with pytest.raises(AssertionError, match="optimized again"):  # another loss is another curve
        heldout.reference_curve(random_vgg, content, style, LOSS.replace(style_weight=1e3), 5, cache=tmp_path)
    with pytest.raises(AssertionError, match="optimized again"):  # and a longer one must be computed
        heldout.reference_curve(random_vgg, content, style, LOSS, 9, cache=tmp_path)


def test_the_first_evaluations_of_a_long_curve_are_those_of_a_short_run(random_vgg):
    content, style = blobs(), stripes()
    long = heldout.reference_curve(random_vgg, content, style, LOSS, 9)
    short = heldout.reference_curve(random_vgg, content, style, LOSS, 4)
    assert long["total"][:4] == short["total"]


def test_a_generator_is_scored_on_each_photo_against_its_curve(random_vgg):
    torch.manual_seed(0)
    network = Generator(channels=4, residual_blocks=1)
    style = stripes()
    photos = {"a": blobs(), "b": blobs().flip(-1)}
    curves = {name: heldout.reference_curve(random_vgg, photo, style, LOSS, 30) for name, photo in photos.items()}
    rows = heldout.score(network, random_vgg, photos, style, LOSS, curves)
    assert [row["photo"] for row in rows] == ["a", "b"]
    for row, (name, photo) in zip(rows, photos.items()):
        expected = LOSS.evaluate(random_vgg, stylize(network, photo), photo, style)
        assert row["total"] == pytest.approx(expected["total"]) and row["content"] == pytest.approx(expected["content"])
        assert row["budget"] == evaluations_to_reach(curves[name]["total"], row["total"])
        assert row["at_25"] == min(curves[name]["total"][:25]) and row["curve_evaluations"] == 30
    # An untrained network is worth very little optimization.
    assert all(row["budget"] is not None and row["budget"] < 30 for row in rows)


def test_a_texture_generator_is_scored_per_noise_seed(random_vgg):
    torch.manual_seed(0)
    network = Generator(channels=4, residual_blocks=1)
    style = stripes()
    curves = {seed: heldout.reference_curve(random_vgg, None, style, LOSS, 6, seed=seed, shape=(32, 32))
              for seed in (0, 1)}
    rows = heldout.score_texture(network, random_vgg, (0, 1), (32, 32), style, LOSS, curves)
    assert [row["photo"] for row in rows] == ["seed 0", "seed 1"]
    assert all(row["content"] == 0 and row["total"] == pytest.approx(LOSS.weights()["style"] * row["style"])
               for row in rows)
    assert rows[0]["total"] != rows[1]["total"]


def test_budgets_past_the_curve_say_so():
    assert heldout.budget_text(12, 100) == "12" and heldout.budget_text(None, 100) == "> 100"
    assert heldout.best_after([3.0, 2.0, 2.5], 2) == 2.0
    assert heldout.best_after([3.0], 2) != heldout.best_after([3.0], 2)  # NaN: the curve is shorter
