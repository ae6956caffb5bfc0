import argparse
import os
import signal
import subprocess
import sys
import time

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
                   "--save-every", "--scales", "--tv-weight", "--line-search", "--no-line-search"):
        assert option in text
    assert "(default: 300)" in text and "(default: oxford)" in text
    assert "(default: 0.0)" in text and "(default: 0)" in text  # zero defaults are shown too
    assert "(default: conv1_1,conv2_1,conv3_1,conv4_1,conv5_1)" in text  # lists as one would type them
    assert "--line-search, --no-line-search L-BFGS only:" in text and "less stylized at 1 (default: off)" in text
    for option in ("--init-image", "--print-every", "--precision", "--style-layer-weights", "--pre-relu"):
        assert option in text


def test_conv_layers_are_read_after_the_relu_unless_asked_otherwise():
    from nst_lib.cli import options

    parser = argparse.ArgumentParser()
    options.add_model_options(parser)
    assert not options.model(parser.parse_args(["--weights", "random"])).pre_relu
    assert options.model(parser.parse_args(["--weights", "random", "--pre-relu"])).pre_relu


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
        (["--content", "{picture}", "--output", "{picture}"], "--output {picture} is also an input ({picture})"),
        (["--content", "{picture}", "--style", "{tmp}/./style.png", "--output", "{tmp}/style.png"], "is also an input"),
        (["--content", "{picture}", "--output", "{tmp}/folder.png"], "is a folder: give the name of a file inside"),
        (["--style", "{picture}", "--style-size", "32", "--size", "100000"], "--size=100000 is out of range"),
        (["--style", "{picture}", "--style-size", "32", "--size", "6000"],
         "--size=6000 is out of range: use 16 to 4096"),
        (["--content", "{picture}", "--style", "{picture}", "--style-size", "0"], "--style-size=0 is out of range"),
        (["--content", "{picture}", "--optimizer", "adam", "--lr", "1e300"],
         "--lr must be a positive number up to 1000"),
        (["--content", "{picture}", "--optimizer", "adam", "--line-search"],
         "--line-search is for L-BFGS only, not adam: drop it or use --optimizer lbfgs."),
        (["--content", "{picture}", "--weights", "{tmp}/list.pth"], "holds a list, not a torchvision VGG-19 state"),
        (["--content", "https://example.com/a/photo.png"], "https://example.com/a/photo.png is a URL"),
        (["--content", "{tmp}/huge.png"], "huge.png has more than 89 megapixels, more than this package opens"),
        (["--content", "{tmp}/out_0002.png", "--save-every", "2"], "--save-every would write over the input"),
    ],
)
def test_bad_input_is_one_sentence_without_a_traceback(tmp_path, image_file, monkeypatch, args, message):
    from test_images import png_header_claiming

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    (tmp_path / "folder.png").mkdir()
    torch.save([1, 2, 3], tmp_path / "list.pth")
    (tmp_path / "huge.png").write_bytes(png_header_claiming(12000, 12000))
    values = {"notes": notes, "picture": image_file(), "tmp": tmp_path}
    image_file(name="style.png")
    image_file(name="out_0002.png")
    pictures = {path: path.read_bytes() for path in tmp_path.glob("*.png") if path.is_file()}
    args = [a.format(**values) for a in args]
    message = message.format(**values)
    if "--output" not in args:
        args += ["--output", str(tmp_path / "out.png")]
    monkeypatch.chdir(tmp_path)
    done = run("transfer", *args, "--steps" if "--steps" not in args else "--seed", "1")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists()
    assert {path: path.read_bytes() for path in pictures} == pictures  # no input was touched


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


@pytest.mark.parametrize("flags, line_search", [([], False), (["--line-search"], True), (["--no-line-search"], False)])
def test_lbfgs_runs_without_a_line_search_unless_asked(tmp_path, monkeypatch, capsys, image_file, flags, line_search):
    from nst_lib.optimize import Result

    asked = {}

    def recorded(*args, **kwargs):
        asked.update(kwargs)
        return Result(torch.rand(1, 3, 24, 32), {"total": [2.0, 1.0]}, [0.1, 0.2], evaluations=2, seconds=0.2)

    monkeypatch.setattr("nst_lib.optimize.transfer", recorded)
    output = tmp_path / "out.png"
    code = cli.main(["transfer", "--content", str(image_file()), "-o", str(output), "--weights", "random", *flags])
    assert code == 0, capsys.readouterr().err
    assert asked["optimizer"] == "lbfgs" and asked["line_search"] is line_search
    assert load_image(output).shape == (1, 3, 24, 32)


def test_an_output_that_is_a_named_images_file_is_refused(tmp_path, image_file):
    from nst_lib.assets import resolve

    mirror_file = resolve("starry_night")
    before = mirror_file.read_bytes()
    done = run("transfer", "--content", str(image_file()), "--style", "starry_night", "-o", str(mirror_file),
               "--weights", "random", "--steps", "1")
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --output {mirror_file} is also an input (starry_night): write the result " \
                                  "to another file."
    assert mirror_file.read_bytes() == before


def test_unwritable_outputs_are_refused_before_any_work(tmp_path, image_file, monkeypatch, capsys):
    from test_files import unwritable_folder

    def never(*args, **kwargs):
        raise AssertionError("the optimization must not start")

    monkeypatch.setattr("nst_lib.optimize.transfer", never)
    locked = unwritable_folder(tmp_path)
    picture = str(image_file())
    for output, message in [(locked / "out.png", f"--output {locked / 'out.png'}: the folder {locked} takes no new"),
                            (tmp_path / ("a" * 252 + ".png"), "the file name is 256 bytes long")]:
        assert cli.main(["transfer", "--content", picture, "-o", str(output), "--weights", "random"]) == 2
        assert message in capsys.readouterr().err


def test_a_legal_name_of_249_characters_is_written(tmp_path, image_file):
    output = tmp_path / ("a" * 245 + ".png")
    done = run("transfer", "--content", str(image_file()), "-o", str(output), "--size", "32", "--steps", "1",
               "--weights", "random", "--content-layers", "conv2_1")
    assert done.returncode == 0, done.stderr
    assert load_image(output).shape[-1] == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["picture.png", output.name])


def test_the_help_states_the_limits_that_are_enforced(capsys):
    from nst_lib.images import MAX_SIZE, MIN_SIZE
    from nst_lib.optimize import MAX_LEARNING_RATE

    limits = f"{MIN_SIZE}-{MAX_SIZE}"
    transfer_help = " ".join(run("transfer", "--help").stdout.split())
    assert f"longest side in pixels ({limits})" in transfer_help
    assert f"longest side of the style images ({limits};" in transfer_help
    assert f"learning rate, up to {MAX_LEARNING_RATE:g}; above 1, L-BFGS wants --line-search" in transfer_help
    training_help = " ".join(run("train-generator", "--help").stdout.split())
    assert f"to {MAX_SIZE})" in training_help and f"(px; {limits})" in training_help
    assert f"(up to {MAX_LEARNING_RATE:g})" in training_help
    for option, value, accepted in [("--size", MAX_SIZE + 1, False), ("--size", MIN_SIZE - 1, False),
                                    ("--style-size", MAX_SIZE + 1, False), ("--lr", MAX_LEARNING_RATE * 1.01, False),
                                    ("--lr", MAX_LEARNING_RATE, True)]:
        code = cli.main(["transfer", "--content", "nowhere.png", "-o", "/nonexistent/out.png", option, str(value)])
        error = capsys.readouterr().err
        assert code == 2
        assert (option in error) != accepted, (option, value, error)  # accepted values fail later, on the output


@pytest.mark.parametrize("name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stopped_transfer_says_what_it_wrote_on_a_line_of_its_own(tmp_path, image_file, name, code):
    output = tmp_path / "out.png"
    command = [sys.executable, "-m", "nst_lib", "transfer", "--content", str(image_file(size=(64, 64))),
               "-o", str(output), "--size", "64", "--steps", "100000", "--save-every", "2", "--weights", "random",
               "--content-layers", "conv2_1", "--style-weight", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "out_0004.png").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, getattr(signal, name))  # as a terminal's Ctrl-C, or kill, would
    _, stderr = process.communicate(timeout=60)
    written = sorted(p.name for p in tmp_path.glob("out_*.png"))
    assert process.returncode == code and len(written) >= 2
    assert "Traceback" not in stderr
    assert stderr.endswith(
        f"\ninterrupted: wrote {len(written)} intermediate pictures (the last: {tmp_path / written[-1]}); "
        f"{output} was not written.\n"
    )
    assert not output.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# A command that has ended, then an exit handler that takes its time, as torch's do after a report.
SLOW_EXIT = """
import atexit, sys, time
from nst_lib import cli
atexit.register(time.sleep, 30)
atexit.register(print, "exiting", flush=True)
sys.argv = ["nst", "assets"]
cli.run()
"""


def test_ctrl_c_after_a_command_ends_the_process_without_a_traceback():
    process = subprocess.Popen([sys.executable, "-c", SLOW_EXIT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line == "exiting\n":
            break
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert lines[-1] == "exiting\n" and any(line.startswith("starry_night") for line in lines)
    assert process.returncode == -signal.SIGINT and stderr == ""


def test_a_warning_is_one_line_of_its_own(tmp_path, image_file, capsys):
    landscape = image_file(size=(40, 30), name="landscape.png")
    portrait = image_file(size=(30, 40), name="portrait.png")
    status = cli.main(["transfer", "--content", str(landscape), "--style", str(landscape), "--init-image",
                       str(portrait), "--size", "32", "--steps", "1", "--weights", "random", "--style-layers",
                       "conv1_1", "-o", str(tmp_path / "out.png")])
    error = capsys.readouterr().err
    assert status == 0
    assert error.startswith("warning: The init image is 24x32 px (portrait) and the picture 32x24 px (landscape): "
                            "it is stretched to the picture's shape; crop it to that shape to start from it "
                            "undistorted.\n"), error
    assert "UserWarning" not in error and "warnings.warn" not in error
