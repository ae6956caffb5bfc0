import subprocess
import sys

import pytest
import torch

from conftest import blobs, stripes

from nst_lib import generator
from nst_lib.generator import (
    CheckpointError,
    Generator,
    evaluate,
    load_checkpoint,
    save_checkpoint,
    speed_table,
    stylize,
    stylize_timed,
    synthesize,
    train_generator,
)
from nst_lib.images import load_image, save_image
from nst_lib.optimize import transfer

# A narrow network and shallow layers: a training step takes milliseconds.
TINY = dict(
    channels=8,
    residual_blocks=1,
    crop_size=32,
    batch=2,
    content_layers=["conv2_1"],
    style_layers=["conv1_1", "conv2_1"],
    progress=False,
)


def same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_the_network_keeps_any_shape_and_stays_in_range():
    network = Generator(channels=4, residual_blocks=1)
    for shape in ((2, 3, 32, 48), (1, 3, 21, 37)):
        images = torch.rand(shape)
        out = network(images)
        assert out.shape == shape
        assert 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="at least 16 px a side"):
        network(torch.rand(1, 3, 12, 40))


def test_random_crops_are_square_flipped_and_reproducible():
    image = torch.arange(3 * 40 * 50, dtype=torch.float32).reshape(1, 3, 40, 50)
    crops = generator.random_crops([image], 16, 20, torch.Generator().manual_seed(1))
    again = generator.random_crops([image], 16, 20, torch.Generator().manual_seed(1))
    assert crops.shape == (16, 3, 20, 20)
    assert torch.equal(crops, again)
    rising = (crops[..., 1:] > crops[..., :-1]).all(-1).all(-1).all(-1)
    assert 0 < rising.sum() < 16  # some crops read left to right, the others were flipped


def test_training_a_style_generator_lowers_the_loss(oxford, artifacts):
    content, style = blobs(48, 64), stripes(48, 64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = Generator(TINY["channels"], TINY["residual_blocks"])
    training = train_generator(style, [content], model=oxford, steps=40, lr=3e-3, **TINY)
    assert training.step == 40 and len(training.history["total"]) == 40
    assert set(training.history) == {"content", "style", "total"}
    assert training.loss_fell
    image = stylize(training.generator, content)
    assert image.shape == content.shape
    before = evaluate(stylize(untrained, content), content, style, model=oxford, config=training.config)
    after = evaluate(image, content, style, model=oxford, config=training.config)
    assert after["total"] < 0.6 * before["total"]
    assert after["style"] < 0.6 * before["style"]
    save_image(torch.cat([content, image, style], dim=-1), artifacts / "generator_style_tiny.png")


def test_training_a_texture_generator_lowers_the_style_loss(oxford):
    training = train_generator(stripes(48, 64), model=oxford, steps=30, lr=3e-3, **TINY)
    assert training.mode == "texture"
    assert set(training.history) == {"style", "total"}
    assert training.loss_fell
    textures = [synthesize(training.generator, (40, 56), seed=s) for s in (0, 0, 1)]
    assert textures[0].shape == (1, 3, 40, 56)
    assert torch.equal(textures[0], textures[1])
    assert not torch.equal(textures[0], textures[2])


def test_evaluate_scores_a_picture_as_transfer_does(random_vgg):
    """So that a generator's output and an optimized picture are compared on the same scale."""
    layers = {k: TINY[k] for k in ("content_layers", "style_layers")}
    result = transfer(blobs(), stripes(), model=random_vgg, steps=5, tv_weight=0.5, progress=False, **layers)
    scored = evaluate(result.image, blobs(), stripes(), model=random_vgg, config=result.params)
    assert set(scored) == {"content", "style", "tv", "total"}
    for name, value in result.final_losses.items():
        assert scored[name] == pytest.approx(value, rel=1e-4), name


def test_stylize_timed_and_the_speed_table():
    network = Generator(channels=4, residual_blocks=1)
    image = torch.rand(1, 3, 24, 40)
    stylized, seconds = stylize_timed(network, image)
    assert torch.equal(stylized, stylize(network, image)) and seconds > 0
    table = speed_table([("generator", image.shape, 1, 0.02), ("optimization", (24, 40), 300, 6.0)]).splitlines()
    assert table[0] == "| method | image (px) | iterations | seconds | x fastest |"
    assert table[2] == "| generator | 40 x 24 | 1 | 0.02 | 1 |"
    assert table[3] == "| optimization | 40 x 24 | 300 | 6 | 300 |"


def test_a_checkpoint_round_trips(random_vgg, tmp_path):
    path = tmp_path / "style.pt"
    training = train_generator(stripes(), [blobs()], model=random_vgg, steps=3, checkpoint=path, **TINY)
    loaded = load_checkpoint(path)
    assert loaded.step == 3 and loaded.config == training.config
    assert loaded.history == training.history and loaded.seconds == training.seconds
    assert same_parameters(loaded.generator, training.generator)
    content = blobs(40, 40)
    assert torch.equal(stylize(loaded.generator, content), stylize(training.generator, content))


def test_resuming_an_interrupted_training_ends_where_an_uninterrupted_one_does(random_vgg, tmp_path, monkeypatch):
    style, contents = stripes(), [blobs(), blobs(40, 56).flip(-2)]
    settings = dict(model=random_vgg, steps=7, checkpoint_every=3, **TINY)
    whole = train_generator(style, contents, checkpoint=tmp_path / "whole.pt", **settings)

    crops = generator.random_crops
    calls = {"n": 0}

    def interrupted_at_step_5(*args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return crops(*args)

    path = tmp_path / "broken.pt"
    monkeypatch.setattr(generator, "random_crops", interrupted_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train_generator(style, contents, checkpoint=path, **settings)
    monkeypatch.setattr(generator, "random_crops", crops)
    assert load_checkpoint(path).step == 3  # the last good checkpoint
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial files left

    resumed = train_generator(style, contents, checkpoint=path, resume=True, **settings)
    assert resumed.step == 7
    assert resumed.history == whole.history
    assert same_parameters(resumed.generator, whole.generator)
    assert load_checkpoint(path).step == 7


def test_a_failed_save_keeps_the_previous_checkpoint(random_vgg, tmp_path, monkeypatch):
    path = tmp_path / "style.pt"
    training = train_generator(stripes(), [blobs()], model=random_vgg, steps=2, checkpoint=path, **TINY)

    def crash(state, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    training.step = 99
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, training)
    monkeypatch.undo()
    assert load_checkpoint(path).step == 2


def test_checkpoint_mistakes_are_one_sentence(random_vgg, tmp_path):
    path = tmp_path / "style.pt"
    train_generator(stripes(), [blobs()], model=random_vgg, steps=2, checkpoint=path, **TINY)
    with pytest.raises(CheckpointError, match="already exists: resume it"):
        train_generator(stripes(), [blobs()], model=random_vgg, steps=4, checkpoint=path, **TINY)
    with pytest.raises(CheckpointError, match="trained with other batch \\(2, now 3\\)"):
        train_generator(
            stripes(), [blobs()], model=random_vgg, steps=4, checkpoint=path, resume=True, **{**TINY, "batch": 3}
        )
    with pytest.raises(CheckpointError, match="trained with other images: resume with the same settings"):
        train_generator(stripes(), [blobs().flip(-1)], model=random_vgg, steps=4, checkpoint=path, resume=True, **TINY)
    with pytest.raises(CheckpointError, match="Checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    notes = tmp_path / "notes.pt"
    notes.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a generator checkpoint"):
        load_checkpoint(notes)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps must be a whole number of at least 1"),
        ({"batch": 0}, "batch must be a whole number of at least 1"),
        ({"lr": -1.0}, "learning rate must be a positive number"),
        ({"crop_size": 8}, "crop_size must be a whole number of at least 16 px"),
        ({"style_weight": -1}, "style_weight=-1 is out of range"),
        ({"resume": True}, "resume=True needs the checkpoint"),
        ({"channels": 0}, "channels must be a whole number of at least 1"),
        ({"residual_blocks": -1}, "residual_blocks must be a whole number of at least 0"),
    ],
)
def test_bad_training_settings_are_one_sentence(random_vgg, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_generator(stripes(), [blobs()], model=random_vgg, **{**TINY, "steps": 2, **kwargs})


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
    ],
)
def test_generator_command_mistakes_are_one_sentence(tmp_path, image_file, args, message):
    values = {"picture": image_file(), "tmp": tmp_path}
    done = nst(*[a.format(**values) for a in args], *(CLI_TINY if args[0] == "train-generator" else []))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "c.pt").exists()


def test_an_interrupted_training_points_to_its_last_checkpoint(tmp_path, image_file, monkeypatch, capsys, random_vgg):
    from nst_lib import cli

    checkpoint = tmp_path / "style.pt"

    def interrupted_after_a_checkpoint(styles, contents, **options):
        train_generator(stripes(), [blobs()], model=random_vgg, steps=2, checkpoint=checkpoint, **TINY)
        raise KeyboardInterrupt

    monkeypatch.setattr(generator, "train_generator", interrupted_after_a_checkpoint)
    picture = str(image_file())
    with pytest.raises(SystemExit) as stopped:
        cli.main(
            ["train-generator", "--style", picture, "--content", picture, "--checkpoint", str(checkpoint), *CLI_TINY]
        )
    assert stopped.value.code == 130
    message = capsys.readouterr().err
    assert f"the last good checkpoint is {checkpoint} (it holds step 2); add --resume to continue" in message
    assert load_checkpoint(checkpoint).step == 2
