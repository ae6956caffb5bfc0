import subprocess
import sys

import pytest
import torch

from nst_lib import cli
from nst_lib.images import load_image


def run(*args):
    """Run the CLI in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "nst_lib", *args], capture_output=True, text=True, timeout=300)


def test_help_explains_every_option_with_its_default():
    text = " ".join(run("transfer", "--help").stdout.split())
    for option in ("--content", "--style", "--blend", "--output", "--size", "--steps", "--weights", "--init",
                   "--optimizer", "--content-layers", "--style-layers", "--seed", "--device", "--preserve-colors",
                   "--save-every", "--scales", "--tv-weight"):
        assert option in text
    assert "(default: 300)" in text and "(default: oxford)" in text
    assert "(default: 0.0)" in text and "(default: 0)" in text  # zero defaults are shown too
    assert "(default: conv1_1,conv2_1,conv3_1,conv4_1,conv5_1)" in text  # lists as one would type them
    for option in ("--init-image", "--print-every", "--precision", "--style-layer-weights"):
        assert option in text


def test_every_subcommand_shows_its_defaults():
    for command in ("train-generator", "stylize", "report"):
        text = " ".join(run(command, "--help").stdout.split())
        assert "(default: " in text and "[]" not in text and "['" not in text, command


def test_options_from_neural_style_work_together(tmp_path, image_file):
    content = image_file(size=(40, 32), name="content.png")
    start = image_file("L", size=(20, 16), name="start.png")
    output = tmp_path / "out.png"
    done = run("transfer", "--content", str(content), "--style", f"{content},{start}", "--init-image", str(start),
               "-o", str(output), "--size", "32", "--steps", "4", "--print-every", "2", "--weights", "random",
               "--precision", "float32", "--content-layers", "conv2_1", "--style-layers", "conv1_1",
               "--style-layers", "conv2_1", "--style-layer-weights", "1,3")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("evaluation ")]
    assert [line.split(":")[0] for line in lines] == ["evaluation 2/4", "evaluation 4/4"]
    assert "content" in lines[0] and "style" in lines[0] and "total" in lines[0]
    assert load_image(output).shape == (1, 3, 26, 32)


def test_a_tiny_transfer_writes_the_picture_and_its_intermediates(tmp_path, image_file):
    content = image_file(size=(40, 32), name="content.png")
    style = image_file("L", size=(24, 24), name="style.png")
    output = tmp_path / "out.png"
    done = run("transfer", "--content", str(content), "--style", str(style), "--style", str(style), "--blend", "2,1",
               "-o", str(output), "--size", "32", "--steps", "4", "--save-every", "2", "--weights", "random",
               "--content-layers", "conv2_1", "--style-layers", "conv1_1,conv2_1")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "4 evaluations" in done.stdout
    assert load_image(output).shape == (1, 3, 26, 32)
    assert (tmp_path / "out_0002.png").is_file() and (tmp_path / "out_0004.png").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--content", "missing.jpg"], "Image file not found: missing.jpg"),
        (["--content", "{notes}"], "is not an image PIL can read"),
        (["--content", "{picture}", "--content-layers", "conv9_1"], "Unknown VGG-19 layer 'conv9_1'"),
        (["--content", "{picture}", "--steps", "0"], "--steps must be a whole number of at least 1"),
        (["--content", "{picture}", "--style-weight", "-5"], "style_weight=-5 is out of range"),
        (["--content", "{picture}", "--size", "8"], "size=8 is out of range"),
        (["--content", "{picture}", "--device", "cuda"], "no usable CUDA GPU"),
        (["--content", "{picture}", "--device", "tpu"], "Unknown device 'tpu'"),
        (["--content", "{picture}", "--style", "{picture}", "--blend", "1,2,3"], "Got 3 blend weights for 1 style"),
        (["--content", "{picture}", "--style-layer-weights", "1"], "Got 1 style layer weights for 5 style layers"),
        (["--content", "{picture}", "--weights", "nowhere.pth"], "Unknown VGG-19 weights 'nowhere.pth'"),
        (["--style", "{picture}", "--output", "{tmp}/out.txt"], "needs an image suffix"),
        (["--style", "{picture}", "--output", "{tmp}/no/such/dir/out.png"], "does not exist"),
        ([], "Give --content, --style or both"),
    ],
)
def test_bad_input_is_one_sentence_without_a_traceback(tmp_path, image_file, monkeypatch, args, message):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    values = {"notes": notes, "picture": image_file(), "tmp": tmp_path}
    args = [a.format(**values) for a in args]
    if "--output" not in args:
        args += ["--output", str(tmp_path / "out.png")]
    monkeypatch.chdir(tmp_path)
    done = run("transfer", *args, "--steps" if "--steps" not in args else "--seed", "1")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


def test_assets_lists_the_named_images():
    done = run("assets")
    assert done.returncode == 0
    assert "starry_night" in done.stdout and "tubingen" in done.stdout


def test_an_interrupted_run_writes_nothing(tmp_path, monkeypatch, capsys, image_file):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("nst_lib.optimize.transfer", interrupted)
    output = tmp_path / "out.png"
    code = cli.main(["transfer", "--content", str(image_file()), "-o", str(output), "--weights", "random"])
    assert code == 130
    assert "interrupted: nothing was written" in capsys.readouterr().err
    assert not output.exists()
