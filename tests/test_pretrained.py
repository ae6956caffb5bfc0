"""Generators shipped with the package: writing, listing, loading with a checksum, using; and the ones shipped."""

import json

import pytest
import torch

from conftest import blobs, stripes
from nst_lib import keys, pretrained
from nst_lib.generator import Recipe, stylize
from nst_lib.losses import LossSpec
from nst_lib.training import train_generator

TINY_LOSS = LossSpec(content_layers=("conv2_1",), style_layers=("conv1_1", "conv2_1"))
TINY = Recipe(steps=2, channels=4, residual_blocks=1, crop_size=32, batch=1)
SHIPPED = {(info["style"], info["mode"]): info for info in pretrained.available()}


@pytest.fixture(scope="module")
def shelf(tmp_path_factory, random_vgg):
    """A folder holding a tiny style generator and a tiny texture generator, as ``export`` writes them."""
    folder = tmp_path_factory.mktemp("trained")
    style = train_generator(stripes(), [blobs()], model=random_vgg, loss=TINY_LOSS, recipe=TINY, progress=False)
    texture = train_generator(stripes(), model=random_vgg, loss=TINY_LOSS, recipe=TINY, progress=False)
    scores = {"photos": [{"photo": "blobs", "total": 1.0, "budget": 3}]}
    pretrained.export(style, "stripes", "stripes", training_photos=["blobs"], held_out=scores, folder=folder)
    pretrained.export(texture, "stripes_texture", "stripes", training_photos=[], held_out={}, folder=folder)
    return folder, style, texture


def test_an_exported_generator_is_listed_described_and_loads_as_trained(shelf):
    folder, style, _ = shelf
    assert [(i["name"], i["style"], i["mode"]) for i in pretrained.available(folder)] == [
        ("stripes", "stripes", "style"), ("stripes_texture", "stripes", "texture")]
    info = pretrained.description("stripes", folder)
    assert info["steps"] == 2 and info["training_photos"] == ["blobs"] and info["held_out"]["photos"][0]["budget"] == 3
    assert Recipe(**info["recipe"]) == TINY and LossSpec.from_dict(info["loss"]) == TINY_LOSS
    assert info["sha256"] == keys.file_digest(folder / "stripes.pt")
    loaded = pretrained.load("stripes", folder=folder)
    assert all(value.dtype == torch.float32 for value in loaded.state_dict().values())
    content = blobs(40, 40)
    # Half precision weights: the same picture to within a few levels of 8 bits.
    assert (stylize(loaded, content) - stylize(style.generator, content)).abs().max() < 4 / 255
    assert pretrained.find("stripes", folder=folder) == "stripes"
    assert pretrained.find("stripes", texture=True, folder=folder) == "stripes_texture"


def test_the_weights_are_stored_in_half_precision(shelf):
    folder, _, _ = shelf
    state = torch.load(folder / "stripes.pt", weights_only=True)
    assert {value.dtype for value in state.values() if value.is_floating_point()} == {torch.float16}


def test_a_damaged_or_missing_generator_is_one_sentence(shelf, tmp_path):
    folder, _, _ = shelf
    for name in ("stripes.pt", "stripes.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    weights = bytearray((tmp_path / "stripes.pt").read_bytes())
    weights[-20] ^= 0xFF
    (tmp_path / "stripes.pt").write_bytes(bytes(weights))
    with pytest.raises(pretrained.PretrainedError, match=r"stripes.pt is damaged: its sha256 is .* reinstall"):
        pretrained.load("stripes", folder=tmp_path)
    with pytest.raises(pretrained.PretrainedError, match="No shipped generator is called 'monet': shipped are stripes"):
        pretrained.load("monet", folder=tmp_path)
    with pytest.raises(pretrained.PretrainedError, match="No shipped texture generator for the style 'stripes'"):
        pretrained.find("stripes", texture=True, folder=tmp_path)
    (tmp_path / "stripes.pt").unlink()
    with pytest.raises(pretrained.PretrainedError, match="stripes.pt is missing: reinstall the package"):
        pretrained.load("stripes", folder=tmp_path)
    (tmp_path / "stripes.json").write_text("{ not json")
    with pytest.raises(pretrained.PretrainedError, match="cannot be read as JSON"):
        pretrained.description("stripes", folder=tmp_path)
    (tmp_path / "stripes.json").write_text(json.dumps({"name": "stripes"}))
    with pytest.raises(pretrained.PretrainedError, match="is not a shipped generator's description"):
        pretrained.description("stripes", folder=tmp_path)


def test_the_shipped_generators_are_the_three_promised():
    assert set(SHIPPED) == {("starry_night", "style"), ("frida_kahlo", "style"), ("starry_night", "texture")}


@pytest.mark.parametrize("key", sorted(SHIPPED), ids=lambda key: "-".join(key))
def test_each_shipped_generator_loads_matches_its_checksum_and_draws(key):
    info = SHIPPED[key]
    path = pretrained.FOLDER / f"{info['name']}.pt"
    assert path.stat().st_size < 8 * 2**20 and keys.file_digest(path) == info["sha256"]
    assert info["steps"] == Recipe(**info["recipe"]).steps and info["held_out"]["photos"]
    if info["mode"] == "style":
        picture = pretrained.stylize_with(info["name"], blobs(48, 64))
        assert picture.shape == (1, 3, 48, 64)
        with pytest.raises(pretrained.PretrainedError, match="is a style-transfer generator"):
            pretrained.texture_from(info["name"], (32, 32))
    else:
        picture = pretrained.texture_from(info["name"], (40, 56), seed=3)
        assert picture.shape == (1, 3, 40, 56)
        assert not torch.equal(picture, pretrained.texture_from(info["name"], (40, 56), seed=4))
    assert torch.isfinite(picture).all() and 0 <= picture.min() and picture.max() <= 1
    assert picture.std() > 0.02  # a picture, not a flat field
