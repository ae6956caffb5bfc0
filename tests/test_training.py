import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import blobs, stripes
from nst_lib import checkpoints, sizing, training
from nst_lib.assets import MIRROR_VARIABLE
from nst_lib.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from nst_lib.generator import Generator, Recipe, stylize, synthesize
from nst_lib.images import load_image, save_image
from nst_lib.losses import LossSpec
from nst_lib.training import train_generator

# A narrow network and shallow layers: a training step takes milliseconds.
TINY_LOSS = LossSpec(content_layers=("conv2_1",), style_layers=("conv1_1", "conv2_1"))
TINY_RECIPE = dict(channels=8, residual_blocks=1, crop_size=32, batch=2)


def tiny(steps: int, **recipe) -> dict:
    """Keyword arguments of train_generator for a tiny training of ``steps`` steps."""
    return dict(loss=TINY_LOSS, recipe=Recipe(**{**TINY_RECIPE, "steps": steps, **recipe}), progress=False)


def same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_random_crops_are_square_flipped_and_reproducible():
    image = torch.arange(3 * 40 * 50, dtype=torch.float32).reshape(1, 3, 40, 50)
    crops = training.random_crops([image], 16, 20, torch.Generator().manual_seed(1))
    again = training.random_crops([image], 16, 20, torch.Generator().manual_seed(1))
    assert crops.shape == (16, 3, 20, 20)
    assert torch.equal(crops, again)
    rising = (crops[..., 1:] > crops[..., :-1]).all(-1).all(-1).all(-1)
    assert 0 < rising.sum() < 16  # some crops read left to right, the others were flipped


def test_random_crops_at_smaller_scales_show_more_of_the_image():
    image = torch.linspace(0, 1, 64).repeat(1, 3, 64, 1)  # brightness rises left to right
    generator = torch.Generator().manual_seed(0)
    own = training.random_crops([image], 8, 16, generator, scales=(1.0, 1.0))
    halved = training.random_crops([image], 8, 16, generator, scales=(0.25, 0.25))
    assert halved.shape == own.shape == (8, 3, 16, 16)
    spread = lambda crops: (crops[..., -1] - crops[..., 0]).abs().mean()  # noqa: E731
    assert spread(halved) > 3 * spread(own)  # a quarter scale: four times the width of the image in one crop


def test_the_cosine_schedule_falls_from_the_learning_rate_to_a_hundredth():
    recipe = Recipe(steps=11, lr=1e-3)
    rates = [recipe.lr_at(step) for step in range(11)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-5)
    assert rates[5] == pytest.approx((1e-3 + 1e-5) / 2)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert {Recipe(steps=11, schedule="constant").lr_at(step) for step in range(11)} == {Recipe().lr}


def test_training_a_style_generator_lowers_the_loss(oxford, artifacts):
    content, style = blobs(48, 64), stripes(48, 64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = Generator(TINY_RECIPE["channels"], TINY_RECIPE["residual_blocks"])
    trained = train_generator(style, [content], model=oxford, **tiny(40, lr=3e-3))
    assert trained.step == 40 and len(trained.history["total"]) == 40
    assert set(trained.history) == {"content", "style", "total"}
    assert trained.loss_fell
    image = stylize(trained.generator, content)
    assert image.shape == content.shape
    before = trained.loss.evaluate(oxford, stylize(untrained, content), content, style)
    after = trained.loss.evaluate(oxford, image, content, style)
    assert after["total"] < 0.6 * before["total"]
    assert after["style"] < 0.6 * before["style"]
    save_image(torch.cat([content, image, style], dim=-1), artifacts / "generator_style_tiny.png")


def test_training_a_texture_generator_lowers_the_style_loss(oxford):
    trained = train_generator(stripes(48, 64), model=oxford, **tiny(30, lr=3e-3))
    assert trained.mode == "texture" and trained.loss.content_weight == 0
    assert set(trained.history) == {"style", "total"}
    assert trained.loss_fell
    textures = [synthesize(trained.generator, (40, 56), seed=s) for s in (0, 0, 1)]
    assert textures[0].shape == (1, 3, 40, 56)
    assert torch.equal(textures[0], textures[1])
    assert not torch.equal(textures[0], textures[2])


def test_a_warm_up_trains_on_the_content_alone_before_the_style(random_vgg):
    seen = []
    trained = train_generator(stripes(), [blobs()], model=random_vgg, callback=lambda t: seen.append(t.step),
                              **tiny(7, warmup=3))
    history = trained.history
    assert seen == list(range(1, 8)) and trained.recipe.warmup == 3
    assert all(math.isnan(value) for value in history["style"][:3])
    assert all(math.isfinite(value) for value in history["style"][3:])
    assert history["total"][:3] == history["content"][:3]  # the warm-up's loss is the content term alone
    weights = TINY_LOSS.weights()
    assert history["total"][3] == pytest.approx(weights["content"] * history["content"][3]
                                                + weights["style"] * history["style"][3], rel=1e-5)


def test_a_texture_generator_has_no_warm_up(random_vgg):
    trained = train_generator(stripes(), model=random_vgg, **tiny(3, warmup=2))
    assert trained.recipe.warmup == 0 and all(math.isfinite(value) for value in trained.history["style"])


def test_training_time_on_the_processor_is_kept_across_a_resume(random_vgg, tmp_path):
    path = tmp_path / "style.pt"
    first = train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, **tiny(2))
    assert first.cpu_seconds > 0 and load_checkpoint(path).cpu_seconds == first.cpu_seconds
    resumed = train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, resume=True, **tiny(3))
    assert resumed.cpu_seconds > first.cpu_seconds


def test_a_checkpoint_round_trips(random_vgg, tmp_path):
    path = tmp_path / "style.pt"
    trained = train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, **tiny(3))
    loaded = load_checkpoint(path)
    assert loaded.step == 3 and loaded.config == trained.config
    assert loaded.loss == TINY_LOSS and loaded.recipe == Recipe(**{**TINY_RECIPE, "steps": 3})
    assert loaded.history == trained.history and loaded.seconds == trained.seconds
    assert same_parameters(loaded.generator, trained.generator)
    content = blobs(40, 40)
    assert torch.equal(stylize(loaded.generator, content), stylize(trained.generator, content))


@pytest.mark.parametrize("warmup", [0, 4])  # with a warm-up, the run stops and resumes inside it
def test_resuming_an_interrupted_training_ends_where_an_uninterrupted_one_does(random_vgg, tmp_path, monkeypatch,
                                                                                warmup):
    style, contents = stripes(), [blobs(), blobs(40, 56).flip(-2)]
    settings = dict(model=random_vgg, checkpoint_every=3, **tiny(7, warmup=warmup))
    whole = train_generator(style, contents, checkpoint=tmp_path / "whole.pt", **settings)

    crops = training.random_crops
    calls = {"n": 0}

    def interrupted_at_step_5(*args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return crops(*args)

    path = tmp_path / "broken.pt"
    monkeypatch.setattr(training, "random_crops", interrupted_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train_generator(style, contents, checkpoint=path, **settings)
    monkeypatch.setattr(training, "random_crops", crops)
    assert load_checkpoint(path).step == 3  # the last good checkpoint
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial files left

    resumed = train_generator(style, contents, checkpoint=path, resume=True, **settings)
    assert resumed.step == 7
    assert str(resumed.history) == str(whole.history)  # as text: NaN (the warm-up's style) equals itself
    assert same_parameters(resumed.generator, whole.generator)
    assert load_checkpoint(path).step == 7


def test_a_failed_save_keeps_the_previous_checkpoint(random_vgg, tmp_path, monkeypatch):
    path = tmp_path / "style.pt"
    trained = train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, **tiny(2))

    def crash(state, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    trained.step = 99
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, trained)
    monkeypatch.undo()
    assert load_checkpoint(path).step == 2


def test_checkpoint_mistakes_are_one_sentence(random_vgg, tmp_path):
    path = tmp_path / "style.pt"
    train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, **tiny(2))
    with pytest.raises(CheckpointError, match="already exists: resume it"):
        train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, **tiny(4))
    with pytest.raises(CheckpointError, match="trained with other batch \\(2, now 3\\)"):
        train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, resume=True, **tiny(4, batch=3))
    with pytest.raises(CheckpointError, match="trained with other style_weight \\(10000.0, now 100.0\\)"):
        options = {**tiny(4), "loss": TINY_LOSS.replace(style_weight=100)}
        train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, resume=True, **options)
    with pytest.raises(CheckpointError, match="trained with other images: resume with the same settings"):
        train_generator(stripes(), [blobs().flip(-1)], model=random_vgg, checkpoint=path, resume=True, **tiny(4))
    with pytest.raises(CheckpointError, match="Checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    notes = tmp_path / "notes.pt"
    notes.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a generator checkpoint"):
        load_checkpoint(notes)


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"steps": 0}, "steps must be a whole number of at least 1"),
        ({"batch": 0}, "batch must be a whole number of at least 1"),
        ({"lr": -1.0}, "learning rate must be a positive number"),
        ({"crop_size": 8}, "crop_size must be a whole number from 16 px \\(for these layers\\) to 4096 px"),
        ({"crop_size": 100000}, "crop_size must be a whole number from 16 px \\(for these layers\\) to 4096 px"),
        ({"lr": 1e300}, "learning rate must be a positive number up to 1000"),
        ({"channels": 0}, "channels must be a whole number of at least 1"),
        ({"residual_blocks": -1}, "residual_blocks must be a whole number of at least 0"),
        ({"channels": 100000}, "channels=100000 is out of range: use 1 to 128"),
        ({"batch": 100000}, "batch=100000 is out of range: use 1 to 256"),
        ({"residual_blocks": 100000000}, "residual_blocks=100000000 is out of range: use 0 to 32"),
        ({"scales": (0.5, 2)}, "scales must satisfy 0 < smallest <= largest <= 1"),
        ({"scales": (0.5,)}, "scales must be two numbers"),
        ({"schedule": "linear"}, "Unknown learning-rate schedule 'linear'"),
        ({"warmup": 2}, "warmup must be a whole number from 0 to fewer than the 2 steps, got 2"),
        ({"warmup": -1}, "warmup must be a whole number from 0 to fewer than the 2 steps, got -1"),
        ({"upsample": "cubic"}, "Unknown upsampling 'cubic': choose nearest or bilinear"),
    ],
)
def test_bad_training_settings_are_one_sentence(random_vgg, recipe, message):
    with pytest.raises(ValueError, match=message):
        train_generator(stripes(), [blobs()], model=random_vgg, **tiny(**{"steps": 2, **recipe}))


def test_training_mistakes_are_one_sentence(random_vgg):
    with pytest.raises(ValueError, match="resume=True needs the checkpoint"):
        train_generator(stripes(), [blobs()], model=random_vgg, resume=True, **tiny(2))
    with pytest.raises(ValueError, match="Got 1 blend weights for 2 style images"):
        options = {**tiny(2), "loss": TINY_LOSS.replace(style_blend=(1,))}
        train_generator([stripes(), blobs()], [blobs()], model=random_vgg, **options)


def legacy(steps: int) -> dict:
    """A tiny training as every generator was trained before crops at several scales and the cosine schedule."""
    return tiny(steps, **checkpoints.LEGACY_RECIPE)


def test_a_checkpoint_from_before_the_new_recipe_fields_keeps_its_recipe(random_vgg, tmp_path):
    path = tmp_path / "old.pt"
    trained = train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, **legacy(2))
    state = torch.load(path, weights_only=True)
    config = {k: v for k, v in state["config"].items() if k != "precision"}
    config["recipe"] = {k: v for k, v in config["recipe"].items() if k not in checkpoints.LEGACY_RECIPE}
    torch.save({**state, "config": config}, path)
    loaded = load_checkpoint(path)
    assert loaded.recipe == trained.recipe and loaded.recipe.schedule == "constant"
    assert loaded.recipe.scales == (1.0, 1.0)
    assert same_parameters(loaded.generator, trained.generator)
    with pytest.raises(CheckpointError, match="trained with other scales"):
        train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, resume=True, **tiny(3))
    resumed = train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, resume=True, **legacy(3))
    assert resumed.step == 3


def nst(*args):
    """Run the CLI in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "nst_lib", *args], capture_output=True, text=True, timeout=300)


CLI_TINY = [
    "--weights",
    "random",
    "--steps",
    "2",
    "--batch",
    "1",
    "--crop-size",
    "32",
    "--image-size",
    "40",
    "--channels",
    "4",
    "--residual-blocks",
    "1",
    "--content-layers",
    "conv2_1",
    "--style-layers",
    "conv1_1,conv2_1",
]


def test_train_generator_and_stylize_from_the_command_line(tmp_path, image_file):
    folder = tmp_path / "photos"
    folder.mkdir()
    image_file(size=(60, 40), name="photos/a.png")
    image_file("L", size=(40, 60), name="photos/b.jpg")
    style = image_file(size=(30, 30), name="style.png")
    checkpoint = tmp_path / "style.pt"
    train = ["train-generator", "--style", str(style), "--content-dir", str(folder), "--checkpoint", str(checkpoint)]
    done = nst(*train, *CLI_TINY)
    assert done.returncode == 0, done.stderr
    assert f"wrote {checkpoint}" in done.stdout and "2 content images" in done.stdout and "step 2 of 2" in done.stdout
    again = nst(*train, *CLI_TINY[:2], "--steps", "3", *CLI_TINY[4:], "--resume")
    assert again.returncode == 0, again.stderr
    assert "step 3 of 3" in again.stdout and load_checkpoint(checkpoint).step == 3

    output = tmp_path / "out.png"
    done = nst(
        "stylize",
        "--checkpoint",
        str(checkpoint),
        "--content",
        str(folder / "a.png"),
        "-o",
        str(output),
        "--size",
        "48",
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    assert load_image(output).shape == (1, 3, 32, 48)


@pytest.mark.skipif(not os.environ.get(MIRROR_VARIABLE), reason="no local image mirror")
def test_a_generator_trains_on_a_named_set_of_photographs(tmp_path, image_file):
    style = image_file(size=(30, 30), name="style.png")
    checkpoint = tmp_path / "style.pt"
    done = nst("train-generator", "--style", str(style), "--content-set", "kodak-held-out", "--image-size", "64",
               "--scales", "0.5,1", "--checkpoint", str(checkpoint), *CLI_TINY)
    assert done.returncode == 0, done.stderr
    assert "4 content images" in done.stdout
    assert load_checkpoint(checkpoint).recipe.scales == (0.5, 1.0)


def test_a_texture_generator_from_the_command_line(tmp_path, image_file):
    style = image_file(size=(30, 30), name="style.png")
    checkpoint = tmp_path / "texture.pt"
    done = nst("train-generator", "--texture", "--style", str(style), "--checkpoint", str(checkpoint), *CLI_TINY)
    assert done.returncode == 0, done.stderr
    assert "texture" in done.stdout
    for seed in ("1", "2"):
        done = nst(
            "stylize",
            "--checkpoint",
            str(checkpoint),
            "-o",
            str(tmp_path / f"t{seed}.png"),
            "--size",
            "24",
            "--seed",
            seed,
        )
        assert done.returncode == 0, done.stderr
    first, second = load_image(tmp_path / "t1.png"), load_image(tmp_path / "t2.png")
    assert first.shape == (1, 3, 24, 24)
    assert not torch.equal(first, second)
    done = nst("stylize", "--checkpoint", str(checkpoint), "--content", str(style), "-o", str(tmp_path / "x.png"))
    assert done.returncode == 2 and "is a texture generator: it takes no --content" in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["stylize", "--checkpoint", "{tmp}/missing.pt", "--content", "{picture}", "-o", "{tmp}/out.png"],
            "Checkpoint not found",
        ),
        (
            ["stylize", "--checkpoint", "{picture}", "--content", "{picture}", "-o", "{tmp}/out.png"],
            "is not a generator checkpoint",
        ),
        (
            ["stylize", "--checkpoint", "{picture}", "--content", "{picture}", "-o", "{tmp}/out.txt"],
            "needs an image suffix",
        ),
        (
            [
                "train-generator",
                "--style",
                "{picture}",
                "--content",
                "{picture}",
                "--texture",
                "--checkpoint",
                "{tmp}/c.pt",
            ],
            "A texture generator takes no content images",
        ),
        (["train-generator", "--style", "{picture}", "--checkpoint", "{tmp}/no/such/dir/c.pt"], "does not exist"),
        (
            ["train-generator", "--style", "{picture}", "--content-dir", "{tmp}/nowhere", "--checkpoint", "{tmp}/c.pt"],
            "is not a folder",
        ),
        (["train-generator", "--style", "{picture}", "--checkpoint", "{tmp}/c.pt", "--resume"], "Checkpoint not found"),
        (
            ["train-generator", "--style", "{picture}", "--content-set", "kodak-tain", "--checkpoint", "{tmp}/c.pt"],
            "'kodak-tain' is not a named set of images; the sets are: kodak, kodak-train",
        ),
        (
            ["train-generator", "--style", "{picture}", "--scales", "0.5", "--checkpoint", "{tmp}/c.pt"],
            "--scales takes two numbers, LOW,HIGH",
        ),
        (["train-generator", "--style", "{picture}", "--checkpoint", "{tmp}"], "is a folder: give the path of a"),
        (["train-generator", "--style", "{picture}", "--checkpoint", "{tmp}/c.pt", "--crop-size", "100000"],
         "--crop-size=100000 is out of range: use 16 to 4096 pixels"),
        (["train-generator", "--style", "{picture}", "--checkpoint", "{tmp}/c.pt", "--lr", "1e300"],
         "The learning rate must be a positive number up to 1000, got 1e+300"),
        (["stylize", "--checkpoint", "{picture}", "--content", "{picture}", "-o", "{picture}"], "is also an input"),
        (["stylize", "--style", "monet", "--content", "{picture}", "-o", "{tmp}/out.png"],
         "No shipped style-transfer generator for the style 'monet': shipped are "),
        (["stylize", "--style", "starry_night", "-o", "{tmp}/out.png"],
         "the shipped generator starry_night, trained"),  # ... is a style-transfer generator: give ... --content
        (["stylize", "--style", "starry_night", "-o", "{tmp}/out.png"], "give the image to stylize with --content"),
        (["stylize", "--style", "starry_night", "--texture", "--content", "{picture}", "-o", "{tmp}/out.png"],
         "is a texture generator: it takes no --content"),
        (["stylize", "--checkpoint", "{picture}", "--texture", "-o", "{tmp}/out.png"],
         "--texture picks a shipped texture generator with --style"),
    ],
)
def test_generator_command_mistakes_are_one_sentence(tmp_path, image_file, args, message):
    values = {"picture": image_file(), "tmp": tmp_path}
    before = values["picture"].read_bytes()
    command, *options = [a.format(**values) for a in args]
    done = nst(command, *(CLI_TINY if command == "train-generator" else []), *options)  # the options given win
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "c.pt").exists()
    assert values["picture"].read_bytes() == before


def test_an_interrupted_training_points_to_its_last_checkpoint(tmp_path, image_file, monkeypatch, capsys, random_vgg):
    from nst_lib import cli

    checkpoint = tmp_path / "style.pt"

    def interrupted_after_a_checkpoint(styles, contents, **options):
        train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=checkpoint, **tiny(2))
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_generator", interrupted_after_a_checkpoint)
    picture = str(image_file())
    code = cli.main(
        ["train-generator", "--style", picture, "--content", picture, "--checkpoint", str(checkpoint), *CLI_TINY]
    )
    assert code == 130
    message = capsys.readouterr().err
    assert message.splitlines()[-1] == (
        f"interrupted: wrote {checkpoint} (it holds step 2, the last good checkpoint); "
        "the steps after it were not saved: add --resume to continue."
    )
    assert load_checkpoint(checkpoint).step == 2


def damaged_copies(state: dict) -> list[tuple[dict, str]]:
    """Checkpoints with the right format tag but missing keys, absurd sizes or bad tensors; each with its message."""
    generator = state["generator"]
    first = next(iter(generator))
    recipe = state["config"]["recipe"]
    return [
        ({k: v for k, v in state.items() if k != "generator"}, "it has no 'generator'"),
        ({k: v for k, v in state.items() if k != "history"}, "it has no 'history'"),
        ({**state, "config": {**state["config"], "recipe": {**recipe, "channels": 100}}},
         rf"its generator's '{first}' has shape \(8, 3, 9, 9\), "
         r"and the network of its recipe needs \(100, 3, 9, 9\)"),
        ({**state, "config": {**state["config"], "recipe": {**recipe, "channels": 100000}}},
         r"its recipe or loss is not valid \(channels=100000 is out of range: use 1 to 128\)"),
        ({**state, "config": {**state["config"], "recipe": {**recipe, "residual_blocks": 31}}},
         "its recipe's 31 residual blocks do not match its 30 tensors"),
        ({**state, "config": {**state["config"], "recipe": {**recipe, "residual_blocks": 10**9}}},
         r"its recipe or loss is not valid \(residual_blocks=1000000000 is out of range: use 0 to 32\)"),
        ({**state, "config": {**state["config"], "recipe": {**recipe, "crop_size": 10**6}}},
         "its recipe or loss is not valid"),
        ({**state, "generator": {**generator, first: generator[first][..., :1]}},
         rf"its generator's '{first}' has shape \(8, 3, 9, 1\), and the network of its recipe needs \(8, 3, 9, 9\)"),
        ({**state, "generator": {**generator, first: generator[first] / 0}},
         f"its generator's '{first}' holds NaN or infinite values"),
        ({**state, "generator": {k: v for k, v in generator.items() if k != first}},
         rf"its generator's tensors do not fit its recipe \('{first}' is missing or extra\)"),
        ({**state, "step": -3}, "its step is -3, not a whole number"),
        ({**state, "config": {**state["config"], "mode": "painting"}}, "its config names no mode"),
    ]


def test_a_damaged_checkpoint_is_one_sentence_and_allocates_nothing(random_vgg, tmp_path):
    path = tmp_path / "style.pt"
    train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, **tiny(2))
    state = torch.load(path, weights_only=True)
    for number, (damaged, message) in enumerate(damaged_copies(state)):
        broken = tmp_path / f"broken{number}.pt"
        torch.save(damaged, broken)
        with pytest.raises(CheckpointError, match=f"{broken.name} is damaged: {message}"):
            load_checkpoint(broken)
        with pytest.raises(CheckpointError, match=f"{broken.name} is damaged: "):
            train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=broken, resume=True, **tiny(4))
    torch.save({**state, "optimizer": {"state": {}, "param_groups": []}}, tmp_path / "no_adam.pt")
    with pytest.raises(CheckpointError, match="cannot be resumed: its optimizer or random-number state"):
        train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=tmp_path / "no_adam.pt", resume=True,
                        **tiny(4))


def test_a_checkpoint_path_is_checked_before_any_training(random_vgg, tmp_path, monkeypatch):
    from test_files import unwritable_folder

    from nst_lib.files import WriteError

    steps = []
    monkeypatch.setattr(training, "train_step", lambda *args: steps.append(1))
    with pytest.raises(CheckpointError, match="is a folder: give the path of a checkpoint file, such as"):
        train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=tmp_path, **tiny(2))
    locked = unwritable_folder(tmp_path)
    with pytest.raises(WriteError, match="takes no new files"):
        train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=locked / "style.pt", **tiny(2))
    with pytest.raises(ValueError, match="contents\\[0\\] has values from"):
        train_generator(stripes(), [blobs() * 255], model=random_vgg, checkpoint=tmp_path / "a.pt", **tiny(2))
    with pytest.raises(ValueError, match="styles\\[0\\] must be an RGB tensor"):
        train_generator(torch.rand(1, 4, 32, 32), model=random_vgg, checkpoint=tmp_path / "a.pt", **tiny(2))
    assert steps == [] and not (tmp_path / "a.pt").exists()


def test_resuming_with_fewer_steps_than_done_is_refused(random_vgg, tmp_path):
    path = tmp_path / "style.pt"
    train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, **tiny(3))
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="style.pt already holds step 3, beyond the 2 steps asked for"):
        train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, resume=True, **tiny(2))
    again = train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=path, resume=True, **tiny(3))
    assert again.step == 3 and path.read_bytes() == before  # nothing left to do, nothing written


def test_generator_commands_refuse_what_they_could_not_finish(tmp_path, image_file):
    from test_files import unwritable_folder

    picture = str(image_file())
    checkpoint = tmp_path / "style.pt"
    train = ["train-generator", "--style", picture, "--content", picture, *CLI_TINY]
    assert nst(*train, "--steps", "3", "--checkpoint", str(checkpoint)).returncode == 0
    before = checkpoint.read_bytes()
    fewer = nst(*train, "--steps", "2", "--checkpoint", str(checkpoint), "--resume")
    assert fewer.returncode == 2 and "Traceback" not in fewer.stderr
    assert fewer.stderr.strip() == (
        f"error: {checkpoint} already holds step 3, beyond the 2 steps asked for: "
        "ask for more than 3 steps to train on."
    )
    same = nst(*train, "--steps", "3", "--checkpoint", str(checkpoint), "--resume")
    assert same.returncode == 0 and f"{checkpoint} already holds step 3 of 3: nothing to train" in same.stdout
    assert checkpoint.read_bytes() == before
    locked = unwritable_folder(tmp_path)
    refused = nst(*train, "--checkpoint", str(locked / "style.pt"))
    assert refused.returncode == 2 and "takes no new files" in refused.stderr and "Traceback" not in refused.stderr


def test_a_training_that_would_not_fit_in_memory_is_refused_before_the_network_is_made(random_vgg, monkeypatch):
    made = []
    monkeypatch.setattr(training.Recipe, "network", lambda self: made.append(self))
    monkeypatch.setattr(sizing, "free_memory", lambda device: (2**30, 2 * 2**30))
    recipe = Recipe(batch=8, crop_size=256)
    needed = recipe.memory(LossSpec())
    assert needed > 2**30
    with pytest.raises(ValueError) as refused:
        train_generator(stripes(), [blobs()], model=random_vgg, recipe=recipe, progress=False)
    assert str(refused.value) == (
        f"Training 8 crops of 256 px at a time through a generator of 32 channels and 5 residual blocks needs about "
        f"{needed / 2**30:.1f} GiB of memory, and this machine has 1.0 GiB free (of 2.0 GiB): lower the batch, the "
        "crop size, the channels or the residual blocks.")
    assert made == []
    # The estimate grows with what the recipe asks for: crops, their size, the network's width and depth.
    base = Recipe(batch=2, crop_size=128, channels=16, residual_blocks=2)
    for larger in ({"batch": 4}, {"crop_size": 256}, {"channels": 32}, {"residual_blocks": 8}):
        assert Recipe(**{**vars(base), **larger}).memory(LossSpec()) > base.memory(LossSpec()), larger


@pytest.mark.parametrize("sizes, message", [
    (["--channels", "100000"], "error: channels=100000 is out of range: use 1 to 128.\n"),
    (["--batch", "100000"], "error: batch=100000 is out of range: use 1 to 256.\n"),
    (["--residual-blocks", "100000000"], "error: residual_blocks=100000000 is out of range: use 0 to 32.\n"),
    (["--batch", "256", "--crop-size", "4096"], "error: Training 256 crops of 4096 px at a time through a generator "
                                                "of 32 channels and 5 residual blocks needs about "),
])
def test_generator_sizes_are_bounded_before_any_network_is_made(tmp_path, image_file, capsys, monkeypatch, sizes,
                                                                 message):
    from nst_lib import cli
    from nst_lib.cli import options

    def never(*args, **kwargs):
        raise AssertionError("no network may be made")

    monkeypatch.setattr(options, "model", never)
    monkeypatch.setattr(training, "train_generator", never)
    style = image_file()
    status = cli.main(["train-generator", "--style", str(style), "--content", str(style), "--checkpoint",
                       str(tmp_path / "c.pt"), *sizes])
    error = capsys.readouterr().err
    assert status == 2 and error.startswith(message) and len(error.strip().splitlines()) == 1, error
    assert not (tmp_path / "c.pt").exists()


def test_stylizing_is_refused_when_it_would_not_fit_in_memory(random_vgg, tmp_path, image_file, capsys, monkeypatch):
    from nst_lib import cli
    from nst_lib.generator import stylize_bytes

    checkpoint = tmp_path / "style.pt"
    train_generator(stripes(), [blobs()], model=random_vgg, checkpoint=checkpoint, **tiny(1))
    monkeypatch.setattr(sizing, "free_memory", lambda device: (2**20, 2**30))
    output = tmp_path / "out.png"
    status = cli.main(["stylize", "--checkpoint", str(checkpoint), "--content", str(image_file()), "--size", "512",
                       "-o", str(output)])
    needed = stylize_bytes(8, 1, (512, 512)) / 2**30
    assert status == 2 and capsys.readouterr().err == (
        f"error: Stylizing at 512 px with a generator of 8 channels needs about {needed:.1f} GiB of memory, and this "
        "machine has 0.0 GiB free (of 1.0 GiB): use a smaller --size.\n")
    assert not output.exists()


def test_a_checkpoint_that_is_a_folder_is_named_so(tmp_path, image_file, capsys):
    from nst_lib import cli

    folder = tmp_path / "generators"
    folder.mkdir()
    status = cli.main(["stylize", "--checkpoint", str(folder), "--content", str(image_file()), "-o",
                       str(tmp_path / "out.png")])
    assert status == 2 and capsys.readouterr().err == (
        f"error: {folder} is a folder: give the path of a checkpoint file in it (a .pt file written by "
        "train-generator).\n")


@pytest.mark.parametrize("named", ["kodak-held-out", "held-out"])
def test_training_on_the_held_out_photographs_is_warned_against(tmp_path, image_file, capsys, monkeypatch, named):
    from nst_lib import cli

    def stop(*args, **kwargs):
        raise ValueError("stopped before the training, as this test asks")

    monkeypatch.setattr(training, "train_generator", stop)
    monkeypatch.setattr("nst_lib.images.load_image", lambda *args, **kwargs: blobs())  # no need for the photographs
    status = cli.main(["train-generator", "--style", str(image_file()), "--content-set", named, "--checkpoint",
                       str(tmp_path / "c.pt"), *CLI_TINY])
    error = capsys.readouterr().err
    assert status == 2 and error.startswith(
        f"warning: the photographs of {named} are kept out of every generator's training, to judge generators on "
        "pictures they never saw (the report does): train on kodak-train to keep that judgement fair.\n"), error
    assert cli.main(["train-generator", "--style", str(image_file()), "--content-set", "kodak-train", "--checkpoint",
                     str(tmp_path / "c.pt"), *CLI_TINY]) == 2
    assert "warning" not in capsys.readouterr().err
