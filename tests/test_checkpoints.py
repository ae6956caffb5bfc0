"""Generator checkpoints: what a resume must agree on, and what is no longer read."""

import pytest
import torch
from conftest import blobs, stripes, vgg_weights
from test_training import tiny

from nst_lib.checkpoints import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint
from nst_lib.training import train_generator
from nst_lib.vgg import VGG19


def test_resuming_on_other_weights_under_the_same_name_is_refused(tmp_path):
    weights = vgg_weights(tmp_path / "my_vgg.pt", seed=0)
    path = tmp_path / "style.pt"
    train_generator(stripes(), [blobs()], model=VGG19(weights, precision="float32"), checkpoint=path, **tiny(2))
    vgg_weights(weights, seed=1)  # another network, saved under the same name
    with pytest.raises(CheckpointError, match="trained with other VGG-19 weights \\(the same name, other contents\\)"):
        train_generator(stripes(), [blobs()], model=VGG19(weights, precision="float32"), checkpoint=path,
                        resume=True, **tiny(3))
    vgg_weights(weights, seed=0)  # the first one back: the training goes on
    resumed = train_generator(stripes(), [blobs()], model=VGG19(weights, precision="float32"), checkpoint=path,
                              resume=True, **tiny(3))
    assert resumed.step == 3


def test_a_checkpoint_from_before_the_weights_digest_still_resumes(random_vgg, tmp_path):
    path = tmp_path / "style.pt"
    train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, **tiny(2))
    state = torch.load(path, weights_only=True)
    state["config"].pop("vgg_digest")
    torch.save(state, path)
    assert load_checkpoint(path).config["vgg_digest"] is None
    assert train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, resume=True, **tiny(3)).step == 3


def test_a_checkpoint_of_the_first_format_is_one_sentence(random_vgg, tmp_path):
    path = tmp_path / "old.pt"
    train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, **tiny(2))
    state = torch.load(path, weights_only=True)
    torch.save({**state, "format": "nst_lib.generator/1"}, path)
    with pytest.raises(CheckpointError, match=f"is not a generator checkpoint written by nst_lib \\({CHECKPOINT_FORMAT}\\)"):
        load_checkpoint(path)
