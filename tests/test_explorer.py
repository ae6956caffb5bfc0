"""The explorer driven from Python, the way a person drives it in the notebook."""

import datetime
import html
import io
import json
import re
import time

import pytest
import torch
from PIL import Image

from conftest import blobs, stripes
from nst_lib import images
from nst_lib.explorer import UPLOADED, Explorer
from nst_lib.images import load_image
from nst_lib.losses import LossSpec


@pytest.fixture
def explorer(oxford, tmp_path):
    return Explorer(oxford, size=64, steps=20, output_dir=tmp_path / "saved")


def upload(widget, name, data: bytes):
    """Hand a file to a FileUpload as the browser does."""
    widget.value = (
        {
            "name": name,
            "type": "",
            "size": len(data),
            "content": memoryview(data),
            "last_modified": datetime.datetime.now(datetime.timezone.utc),
        },
    )


def png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    images.tensor_to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def message(explorer) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", explorer.message.value))


def size_of(png_bytes: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png_bytes)).size


def test_run_shows_the_picture_forming_and_the_loss_falls(explorer):
    previews = []
    explorer.preview.observe(lambda change: previews.append(change["new"]), names="value")
    placeholder, empty_plot = explorer.preview.value, explorer.loss_plot.value

    explorer.run_button.click()
    run = explorer.wait(timeout=120)

    history = run.result.history["total"]
    assert run.result.loss_fell and run.result.final_losses["total"] < 0.5 * history[0]
    assert len(set(previews)) >= 4  # after evaluations 5, 10, 15, 20, then the best image
    assert explorer.preview.value != placeholder and size_of(explorer.preview.value) == (64, 48)
    assert explorer.loss_plot.value != empty_plot
    assert explorer.progress.value == explorer.progress.max == 20
    assert message(explorer).startswith("Run 1 done: 20 evaluations in ")
    assert len(explorer.strip.children) == 1
    assert "tubingen × starry_night" in explorer.strip.children[0].children[1].value
    assert not explorer.run_button.disabled and explorer.stop_button.disabled


def test_stop_ends_a_run_midway_while_the_notebook_stays_responsive(explorer):
    explorer.steps.value = 1000
    explorer.run_button.click()
    deadline = time.monotonic() + 60
    while explorer.progress.value < 5:
        assert time.monotonic() < deadline, "the run made no progress within a minute"
        time.sleep(0.05)
    assert explorer.running and explorer.run_button.disabled and not explorer.stop_button.disabled

    started = time.monotonic()
    explorer.run_button.click()  # handled at once, because the run is in its own thread
    assert time.monotonic() - started < 1
    assert message(explorer) == "A run is already going: press Stop first."

    explorer.stop_button.click()
    run = explorer.wait(timeout=30)
    assert run.result.stopped and 5 <= run.result.evaluations < 1000
    assert message(explorer).startswith(f"Stopped run 1 after {run.result.evaluations} of 1000 evaluations")
    assert "stopped at" in explorer.strip.children[0].children[1].value
    assert not explorer.run_button.disabled


def test_an_upload_that_is_not_an_image_is_one_sentence_and_changes_nothing(explorer):
    upload(explorer.content_upload, "notes.txt", b"hello")
    assert message(explorer) == "notes.txt is not an image PIL can read (PNG, JPEG, TIFF, WebP, BMP, ...)."
    upload(explorer.style_upload, "half.png", png(stripes(64, 64))[:100])
    assert message(explorer).startswith("half.png is damaged or truncated and cannot be read")
    assert explorer.content.value == "tubingen" and explorer.style.value == "starry_night"
    assert not any(option.startswith(UPLOADED) for option in explorer.content.options + explorer.style.options)


def test_uploaded_images_are_the_content_and_style_of_the_next_run(explorer):
    content = blobs(40, 64)  # wider than any named content image, so the shape tells which was used
    upload(explorer.content_upload, "blobs.png", png(content))
    assert message(explorer) == "Uploaded blobs.png (64x40 px) as the content image."
    upload(explorer.style_upload, "stripes.png", png(stripes()))
    assert explorer.content.value == "uploaded: blobs.png" and explorer.style.value == "uploaded: stripes.png"
    assert "uploaded: stripes.png" in explorer.second_style.options and explorer.second_style.value == "(none)"

    explorer.init.value = "content"
    explorer.steps.value = 10
    explorer.run_button.click()
    run = explorer.wait(timeout=120)
    assert run.image.shape == (1, 3, 40, 64)
    tubingen = load_image("tubingen", 64)[..., :40, :]
    assert (run.image - content).abs().mean() < 0.5 * (run.image - tubingen).abs().mean()


def test_an_empty_style_layer_selection_is_one_sentence_and_nothing_runs(explorer):
    placeholder = explorer.preview.value
    explorer.style_layers.value = ()
    explorer.run_button.click()
    assert message(explorer) == "No style layer is selected: pick at least one (Ctrl- or Shift-click picks several)."
    assert not explorer.running and explorer.runs == [] and explorer.preview.value == placeholder
    assert not explorer.run_button.disabled


def test_an_image_too_elongated_for_the_size_is_one_sentence(explorer):
    upload(explorer.content_upload, "banner.png", png(torch.rand(1, 3, 16, 400)))
    explorer.run_button.click()
    assert "its shorter side must reach 16 px" in message(explorer)
    assert not explorer.running and explorer.runs == []


def test_save_writes_the_picture_and_a_json_of_its_parameters(explorer, tmp_path):
    explorer.save_button.click()
    assert message(explorer) == "Nothing to save yet: press Run first."

    explorer.style_weight.value = 1e3
    explorer.seed.value = 7
    explorer.run_button.click()
    run = explorer.wait(timeout=120)
    explorer.save_button.click()

    saved = sorted((tmp_path / "saved").iterdir())
    assert [path.suffix for path in saved] == [".json", ".png"]  # and no half-written leftovers
    assert saved[0].stem == saved[1].stem and saved[0].stem.endswith("_run1_tubingen_starry_night")
    assert torch.allclose(load_image(saved[1]), run.image, atol=1 / 255)
    record = json.loads(saved[0].read_text())
    assert record["style_weight"] == record["loss"]["style_weight"] == 1000
    assert LossSpec.from_dict(record["loss"]) == run.result.loss == explorer.loss_spec()
    assert record["seed"] == 7 and record["steps"] == 20 and record["content"] == "tubingen"
    assert record["final_losses"]["total"] == pytest.approx(run.result.final_losses["total"])
    assert message(explorer).startswith("Saved run 1 as ")

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    explorer.output_dir.value = str(blocker / "inside")
    explorer.save_button.click()
    assert message(explorer).startswith(f"Cannot save into {blocker / 'inside'} (")
    assert message(explorer).endswith("): choose another folder.")


def test_a_second_style_at_full_blend_weight_replaces_the_first(explorer):
    explorer.steps.value = 8
    explorer.second_style.value = "the_scream"
    pictures = {}
    for weight in (1.0, 0.5):
        explorer.second_style_weight.value = weight
        explorer.run()
        pictures[weight] = explorer.wait(timeout=120).image
    explorer.style.value = "the_scream"
    explorer.second_style.value = "(none)"
    explorer.run()
    only_scream = explorer.wait(timeout=120).image

    assert torch.allclose(pictures[1.0], only_scream, atol=1e-5)
    assert (pictures[0.5] - only_scream).abs().mean() > 0.01
    assert "starry_night + the_scream (0.5)" in explorer.strip.children[1].children[1].value


def test_keeping_the_contents_colours_keeps_its_chrominance(explorer):
    explorer.preserve_colors.value = True
    explorer.steps.value = 10
    explorer.run()
    run = explorer.wait(timeout=120)
    chroma = lambda image: images.rgb_to_yiq(image)[:, 1:]
    assert (chroma(run.image) - chroma(load_image("tubingen", 64))).abs().mean() < 0.02
    assert "own colours" in explorer.strip.children[0].children[1].value


def test_choosing_images_shows_their_thumbnails(explorer):
    assert explorer.second_style_thumbnail.layout.display == "none" and explorer.second_style_weight.disabled
    landscape = explorer.style_thumbnail.value
    explorer.style.value = "the_scream"
    width, height = size_of(explorer.style_thumbnail.value)
    assert explorer.style_thumbnail.value != landscape and height > width  # The Scream is a portrait
    explorer.second_style.value = "shipwreck"
    assert explorer.second_style_thumbnail.layout.display is None and not explorer.second_style_weight.disabled
    assert max(size_of(explorer.second_style_thumbnail.value)) == 160


def test_stop_before_the_first_evaluation_ends_quietly(explorer):
    explorer.size.value = 256  # the targets alone take a good fraction of a second, so Stop comes first
    explorer.run()
    explorer.stop()
    assert explorer.wait(timeout=60) is None
    assert message(explorer) == "Stopped before the first evaluation ended; there is no picture to keep."
    assert explorer.strip.children == () and not explorer.run_button.disabled


def test_a_failure_inside_the_run_is_one_sentence_not_a_traceback(explorer, monkeypatch):
    def broken_transfer(*args, **kwargs):
        raise RuntimeError("out of memory\nTraceback (most recent call last): ...")

    monkeypatch.setattr("nst_lib.explorer.transfer", broken_transfer)
    explorer.run()
    explorer.wait(timeout=30)
    assert message(explorer) == "The run failed unexpectedly (RuntimeError: out of memory)."
    assert isinstance(explorer.error, RuntimeError) and not explorer.run_button.disabled


def test_the_preview_shows_the_picture_at_its_own_pixels_and_every_layer_is_in_view(explorer):
    assert not explorer.preview.width and not explorer.preview.height  # no width or height that would stretch it
    assert explorer.style_layers.rows == len(explorer.style_layers.options)  # conv5_1 included, no scrolling
    explorer.steps.value = 10
    explorer.run()
    explorer.wait(timeout=120)
    assert size_of(explorer.preview.value) == (64, 48)


def test_the_first_run_starts_from_the_photograph_at_a_size_worth_keeping(oxford, tmp_path):
    explorer = Explorer(oxford, output_dir=tmp_path)
    settings = explorer.settings()
    assert (settings["init"], settings["size"], settings["style_weight"]) == ("content", 256, 1e4)
    assert settings["content"] == "tubingen" and settings["style"] == "starry_night"


def test_any_run_in_the_strip_can_be_saved_restored_and_compared(explorer, tmp_path):
    explorer.steps.value = 10
    explorer.run()
    first = explorer.wait(timeout=120)
    explorer.style_weight.value, explorer.seed.value, explorer.init.value = 1e2, 3, "noise"
    explorer.run()
    second = explorer.wait(timeout=120)
    older, newer = explorer.strip.children[1], explorer.strip.children[0]  # newest first
    save, restore, compare = older.children[2].children
    assert [b.description for b in (save, restore, compare)] == ["Save", "Restore", "Compare"]

    save.click()
    picture, record = sorted((tmp_path / "saved").iterdir(), key=lambda path: path.suffix != ".png")
    assert picture.stem.endswith("_run1_tubingen_starry_night")
    assert torch.allclose(load_image(picture), first.image, atol=1 / 255)
    assert json.loads(record.read_text())["style_weight"] == 1e4 and json.loads(record.read_text())["run"] == 1

    assert explorer.settings() == second.settings
    restore.click()
    assert explorer.settings() == first.settings
    assert message(explorer) == "The controls hold run 1's settings again: press Run to run it anew."

    compare.value = True
    assert explorer.comparison.children == ()
    assert message(explorer) == "Run 1 is picked for comparison: pick a second run."
    newer.children[2].children[2].value = True
    (panel,) = explorer.comparison.children
    title, pictures, table = panel.children
    assert "Runs 1 and 2 side by side" in title.value
    assert [size_of(box.children[1].value) for box in pictures.children] == [(64, 48), (64, 48)]
    for differing in ("style weight", "seed", "init", "final total loss"):
        assert f"<th>{differing}</th>" in table.value
    assert "<th>content layer</th>" not in table.value  # only what differs
    assert "100.0" in table.value and "10000.0" in table.value


def test_compare_keeps_the_last_two_runs_picked(explorer):
    explorer.steps.value = 10
    for seed in (1, 2, 3):
        explorer.seed.value = seed
        explorer.run()
        explorer.wait(timeout=120)
    by_run = {3 - i: item.children[2].children[2] for i, item in enumerate(explorer.strip.children)}
    by_run[1].value = True
    by_run[2].value = True
    by_run[3].value = True  # the first pick gives way
    assert sorted(n for n, toggle in by_run.items() if toggle.value) == [2, 3]
    assert "Runs 2 and 3 side by side" in explorer.comparison.children[0].children[0].value
    by_run[3].value = False
    assert explorer.comparison.children == ()
    explorer.compare(1, 3)
    assert sorted(n for n, toggle in by_run.items() if toggle.value) == [1, 3]
    with pytest.raises(ValueError, match="There is no run 9: the runs are 1, 2, 3."):
        explorer.compare(1, 9)
