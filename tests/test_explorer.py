"""The explorer without a browser: its session driven from Python, and its widgets clicked from Python."""

import datetime
import html
import io
import json
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import blobs, stripes
from nst_lib import images
from nst_lib.explorer import UPLOADED, Explorer, Listener, Session, Settings
from nst_lib.images import load_image
from nst_lib.losses import LossSpec
from nst_lib.profiles import get_profile


class Recorder(Listener):
    """What a session tells its view, kept for the test to read."""

    def __init__(self):
        self.messages, self.previews, self.finished_runs, self.ends = [], [], [], 0

    def said(self, text, error):
        self.messages.append((text, error))

    def previewed(self, preview):
        self.previews.append(preview)

    def finished(self, run):
        self.finished_runs.append(run)

    def ended(self):
        self.ends += 1


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def session(oxford, recorder):
    return Session(oxford, listener=recorder)


SMALL = Settings(size=64, steps=20)


def png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    images.tensor_to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def size_of(png_bytes: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png_bytes)).size


# --------------------------------------------------------------------------------------
# The settings


def test_settings_hand_on_the_loss_and_the_run_options_and_read_back_what_they_record():
    settings = Settings(styles=("starry_night", "the_scream"), style_blend=(0.25, 0.75), style_weight=1e3,
                        content_layers=("conv5_2",), init="noise", seed=4, steps=30, size=96)
    assert settings.loss_spec() == LossSpec(content_layers=("conv5_2",), style_weight=1e3, style_blend=(0.25, 0.75))
    assert settings.run_options() == {"init": "noise", "seed": 4, "steps": 30, "optimizer": "lbfgs",
                                      "preserve_colors": False}
    assert Settings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    assert settings.style_names() == "starry_night + the_scream (0.75)"
    assert [name for name, _, _ in settings.differences(Settings())] == [
        "styles", "style_blend", "content_layers", "style_weight", "init", "steps", "size", "seed"]
    with pytest.raises(ValueError, match=r"^Not explorer settings: unknown fields style \(the fields are content, "):
        Settings.from_dict({"style": "starry_night"})
    with pytest.raises(ValueError, match="Unknown start 'photo': choose noise or content"):
        Settings(init="photo")


def test_the_first_run_starts_from_the_photograph_and_a_report_profile_caps_its_cost():
    first = Settings.first()
    assert (first.content, first.styles, first.init, first.style_weight) == ("tubingen", ("starry_night",),
                                                                             "content", 1e4)
    quick = get_profile("quick")
    assert (Settings.first("quick").size, Settings.first("quick").steps) == (quick.size, min(quick.steps, first.steps))
    assert Settings.first("full") == first  # a larger profile does not make the first Run longer
    assert Settings.first("quick", size=128).size == 128


# --------------------------------------------------------------------------------------
# The session, without widgets


def test_a_run_shows_the_picture_forming_and_the_loss_falls(session, recorder):
    assert session.run(SMALL)
    run = session.wait(timeout=120)
    assert run.result.loss_fell and run.result.final_losses["total"] < 0.5 * run.result.history["total"][0]
    evaluations = [preview.evaluation for preview in recorder.previews]
    assert evaluations == sorted({*range(session.preview_every, 21, session.preview_every), 20})
    assert all(0 < a.seconds <= b.seconds for a, b in zip(recorder.previews, recorder.previews[1:]))
    assert recorder.finished_runs == [run] and recorder.ends == 1 and session.runs == [run]
    assert recorder.messages[-1][0].startswith("Run 1 done: 20 evaluations in ")
    assert run.image.shape == (1, 3, 48, 64)


def test_stop_ends_a_run_midway_and_a_second_run_waits_its_turn(session, recorder):
    session.run(SMALL.replace(steps=1000))
    deadline = time.monotonic() + 60
    while not recorder.previews:
        assert time.monotonic() < deadline, "the run made no progress within a minute"
        time.sleep(0.05)
    started = time.monotonic()
    assert not session.run(SMALL)  # answered at once: the run is in its own thread
    assert time.monotonic() - started < 1
    assert session.message == "A run is already going: press Stop first." and session.message_is_error
    session.stop()
    run = session.wait(timeout=30)
    assert run.result.stopped and session.preview_every <= run.result.evaluations < 1000
    assert session.message.startswith(f"Stopped run 1 after {run.result.evaluations} of 1000 evaluations")
    assert "stopped at" in run.summary()[-2]


def test_an_empty_style_layer_selection_is_one_sentence_and_nothing_runs(session, recorder):
    assert not session.run(SMALL.replace(style_layers=()))
    assert session.message == "No style layer is selected: pick at least one (Ctrl- or Shift-click picks several)."
    assert not session.running and session.runs == [] and recorder.ends == 0


def test_an_image_too_elongated_for_the_size_is_one_sentence(session):
    label = session.pictures.add_upload("banner.png", png(torch.rand(1, 3, 16, 400)))
    assert not session.run(SMALL.replace(content=label))
    assert "its shorter side must reach 16 px" in session.message
    assert not session.running and session.runs == []


def test_a_file_that_is_not_an_image_is_one_sentence(session):
    with pytest.raises(ValueError, match=r"^notes.txt is not an image PIL can read \(PNG, JPEG"):
        session.pictures.add_upload("notes.txt", b"hello")
    assert not session.pictures.available(UPLOADED + "notes.txt")


def test_uploaded_images_are_the_content_and_style_of_a_run(session):
    content = blobs(40, 64)  # wider than any named content image, so the shape tells which was used
    settings = SMALL.replace(content=session.pictures.add_upload("blobs.png", png(content)),
                             styles=(session.pictures.add_upload("stripes.png", png(stripes())),), steps=10)
    run = session.run_now(settings)
    assert run.image.shape == (1, 3, 40, 64) and run.settings.content == "uploaded: blobs.png"
    tubingen = load_image("tubingen", 64)[..., :40, :]
    assert (run.image - content).abs().mean() < 0.5 * (run.image - tubingen).abs().mean()


def test_save_writes_the_picture_and_a_json_of_its_settings(session, tmp_path):
    assert session.save(tmp_path) is None and session.message == "Nothing to save yet: press Run first."
    run = session.run_now(SMALL.replace(style_weight=1e3, seed=7))
    picture, record = session.save(tmp_path / "saved")
    assert sorted(path.name for path in (tmp_path / "saved").iterdir()) == sorted([picture.name, record.name])
    assert picture.stem == record.stem and picture.stem.endswith("_run1_tubingen_starry_night")
    assert torch.allclose(load_image(picture), run.image, atol=1 / 255)
    saved = json.loads(record.read_text())
    assert Settings.from_dict(saved["settings"]) == run.settings
    assert LossSpec.from_dict(saved["loss"]) == run.result.loss == run.settings.loss_spec()
    assert saved["final_losses"]["total"] == pytest.approx(run.result.final_losses["total"])
    assert session.message.startswith("Saved run 1 as ")

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert session.save(blocker / "inside") is None
    assert session.message.startswith(f"Cannot save into {blocker / 'inside'} (")
    assert session.message.endswith("): choose another folder.") and session.message_is_error


def test_a_second_style_at_full_blend_weight_replaces_the_first(session):
    two = SMALL.replace(styles=("starry_night", "the_scream"), steps=8)
    full, half = (session.run_now(two.replace(style_blend=blend)).image for blend in ((0.0, 1.0), (0.5, 0.5)))
    only_scream = session.run_now(two.replace(styles=("the_scream",))).image
    assert torch.allclose(full, only_scream, atol=1e-5)
    assert (half - only_scream).abs().mean() > 0.01
    assert session.runs[1].summary()[0] == "tubingen × starry_night + the_scream (0.5)"


def test_keeping_the_contents_colours_keeps_its_chrominance(session):
    run = session.run_now(SMALL.replace(preserve_colors=True, steps=10))
    chroma = lambda image: images.rgb_to_yiq(image)[:, 1:]
    assert (chroma(run.image) - chroma(load_image("tubingen", 64))).abs().mean() < 0.02
    assert "own colours" in run.summary()[4]


def test_stop_before_the_first_evaluation_ends_quietly(session, recorder):
    session.run(SMALL.replace(size=256))  # the targets alone take a good fraction of a second, so Stop comes first
    session.stop()
    assert session.wait(timeout=60) is None
    assert session.message == "Stopped before the first evaluation ended; there is no picture to keep."
    assert recorder.finished_runs == [] and recorder.ends == 1


def test_a_failure_inside_the_run_is_one_sentence_not_a_traceback(session, monkeypatch):
    def broken_transfer(*args, **kwargs):
        raise RuntimeError("out of memory\nTraceback (most recent call last): ...")

    monkeypatch.setattr("nst_lib.explorer.session.transfer", broken_transfer)
    with pytest.raises(RuntimeError, match=r"^The run failed unexpectedly \(RuntimeError: out of memory\)\.$"):
        session.run_now(SMALL)
    assert isinstance(session.error, RuntimeError) and session.message_is_error


def test_runs_are_restored_and_compared_by_number(session):
    first = session.run_now(SMALL.replace(steps=10))
    second = session.run_now(SMALL.replace(steps=10, style_weight=1e2, seed=3, init="noise"))
    assert session.restore(1) == first.settings and session.restore() == second.settings
    comparison = session.compare(1, 2)
    assert [row[0] for row in comparison.rows] == ["style weight", "init", "seed", "evaluations",
                                                   "final content loss", "final style loss", "final total loss"]
    assert comparison.rows[0][1:] == (1e4, 1e2) and not comparison.same_settings
    with pytest.raises(ValueError, match="There is no run 9: the runs are 1, 2."):
        session.compare(1, 9)


def test_a_run_of_an_upload_that_is_gone_cannot_be_restored(session):
    label = session.pictures.add_upload("blobs.png", png(blobs(40, 64)))
    session.run_now(SMALL.replace(content=label, steps=5))
    session.pictures = type(session.pictures)()  # a new session of the notebook would not have the upload
    assert session.restore(1) is None
    assert session.message == "Cannot restore run 1: uploaded: blobs.png is no longer available."


def test_the_model_loads_and_the_first_run_warms_up_in_the_background():
    session = Session()  # no model given: the default VGG-19, loaded in a thread
    session.prepare(SMALL)
    model = session.model  # waits for the loading and the warm-up
    assert model.weights == "oxford" and session.preparation.seconds > 0
    assert session.pictures.scaled("tubingen", 64) is session.pictures.scaled("tubingen", 64)  # read once
    assert session.run_now(SMALL.replace(steps=5)).result.evaluations == 5


def test_weights_that_cannot_load_are_one_sentence_when_a_run_needs_them(tmp_path):
    session = Session(weights=str(tmp_path / "missing.pt"))
    with pytest.raises(RuntimeError, match="missing.pt"):
        session.run_now(SMALL)
    assert "Traceback" not in session.message and session.message_is_error


# --------------------------------------------------------------------------------------
# The widgets, clicked from Python


@pytest.fixture
def explorer(oxford, tmp_path):
    return Explorer(oxford, size=64, steps=20, output_dir=tmp_path / "saved")


def upload(widget, name, data: bytes):
    """Hand a file to a FileUpload as the browser does."""
    widget.value = ({"name": name, "type": "", "size": len(data), "content": memoryview(data),
                     "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


def message(explorer) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", explorer.message.value))


def test_the_explorer_gets_ready_in_the_background_and_says_so(explorer):
    assert message(explorer).startswith("Getting the first Run ready") or message(explorer) == "Ready: press Run."
    explorer.session.model  # waits for the preparation
    assert message(explorer) == "Ready: press Run." and explorer.session.preparation.seconds > 0


def test_pressing_run_shows_the_picture_forming_the_loss_curve_and_the_strip(explorer):
    previews = []
    explorer.preview.observe(lambda change: previews.append(change["new"]), names="value")
    placeholder, empty_plot = explorer.preview.value, explorer.loss_plot.value
    explorer.run_button.click()
    run = explorer.wait(timeout=120)
    assert len(set(previews)) >= 4 and size_of(explorer.preview.value) == (64, 48) != size_of(placeholder)
    assert explorer.loss_plot.value != empty_plot and "<polyline" in explorer.loss_plot.value
    assert explorer.progress.value == explorer.progress.max == 20
    assert message(explorer).startswith("Run 1 done: 20 evaluations in ")
    assert len(explorer.strip.children) == 1 and explorer.runs == [run]
    assert "tubingen × starry_night" in explorer.strip.children[0].children[1].value
    assert not explorer.run_button.disabled and explorer.stop_button.disabled and not explorer.save_button.disabled


def test_instant_shows_the_shipped_generator_s_picture_and_says_when_there_is_none(explorer):
    from nst_lib import pretrained

    placeholder = explorer.preview.value
    explorer.instant_button.click()
    assert size_of(explorer.preview.value) == (64, 48) != size_of(placeholder)  # tubingen at 64 px, in one pass
    expected = pretrained.stylize_with("starry_night", explorer.session.pictures.scaled("tubingen", 64))
    shown = np.asarray(Image.open(io.BytesIO(explorer.preview.value)).convert("RGB"), dtype=np.float32) / 255
    assert np.abs(shown - expected[0].permute(1, 2, 0).numpy()).max() <= 1 / 255  # that very picture
    steps = pretrained.description("starry_night")["steps"]
    assert message(explorer).startswith(f"Instant: the shipped generator starry_night ({steps} Adam steps")
    assert explorer.runs == []  # not a Run: nothing to save or compare
    shown = explorer.preview.value
    explorer.style.value = "the_scream"
    assert explorer.instant() is None and explorer.preview.value == shown
    assert message(explorer).startswith("No shipped style-transfer generator for the style 'the_scream': ")


def test_the_controls_make_the_settings_and_show_them_again(explorer):
    explorer.second_style.value, explorer.second_style_weight.value = "the_scream", 0.25
    explorer.style_layers.value = ("conv5_1", "conv1_1")
    explorer.style_weight.value, explorer.init.value = 1e3, "noise"
    settings = explorer.settings()
    assert settings.styles == ("starry_night", "the_scream") and settings.style_blend == (0.75, 0.25)
    assert settings.style_layers == ("conv1_1", "conv5_1")  # in the network's order
    explorer.controls.show(Settings())
    assert explorer.settings() == Settings()
    explorer.controls.show(settings)
    assert explorer.settings() == settings


def test_an_upload_that_is_not_an_image_is_one_sentence_and_changes_nothing(explorer):
    upload(explorer.content_upload, "notes.txt", b"hello")
    assert message(explorer) == "notes.txt is not an image PIL can read (PNG, JPEG, TIFF, WebP, BMP, ...)."
    upload(explorer.style_upload, "half.png", png(stripes(64, 64))[:100])
    assert message(explorer).startswith("half.png is damaged or truncated and cannot be read")
    assert explorer.content.value == "tubingen" and explorer.style.value == "starry_night"
    assert not any(option.startswith(UPLOADED) for option in explorer.content.options + explorer.style.options)


def test_an_uploaded_image_becomes_the_chosen_one(explorer):
    upload(explorer.content_upload, "blobs.png", png(blobs(40, 64)))
    assert message(explorer) == "Uploaded blobs.png (64x40 px) as the content image."
    upload(explorer.style_upload, "stripes.png", png(stripes()))
    assert explorer.content.value == "uploaded: blobs.png" and explorer.style.value == "uploaded: stripes.png"
    assert "uploaded: stripes.png" in explorer.second_style.options and explorer.second_style.value == "(none)"
    assert size_of(explorer.thumbnails["content"].value) == (64, 40)


def test_a_run_that_cannot_start_says_why_under_the_buttons(explorer):
    placeholder = explorer.preview.value
    explorer.style_layers.value = ()
    explorer.run_button.click()
    assert message(explorer) == "No style layer is selected: pick at least one (Ctrl- or Shift-click picks several)."
    assert not explorer.session.running and explorer.runs == [] and explorer.preview.value == placeholder
    assert not explorer.run_button.disabled


def test_choosing_images_shows_their_thumbnails(explorer):
    assert explorer.thumbnails["second_style"].layout.display == "none" and explorer.second_style_weight.disabled
    landscape = explorer.thumbnails["style"].value
    explorer.style.value = "the_scream"
    width, height = size_of(explorer.thumbnails["style"].value)
    assert explorer.thumbnails["style"].value != landscape and height > width  # The Scream is a portrait
    explorer.second_style.value = "shipwreck"
    assert explorer.thumbnails["second_style"].layout.display is None and not explorer.second_style_weight.disabled
    assert max(size_of(explorer.thumbnails["second_style"].value)) == 160


def test_the_preview_shows_the_picture_at_its_own_pixels_and_every_layer_is_in_view(explorer):
    assert not explorer.preview.width and not explorer.preview.height  # no width or height that would stretch it
    assert explorer.style_layers.rows == len(explorer.style_layers.options)  # conv5_1 included, no scrolling


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
    picture = next(path for path in (tmp_path / "saved").iterdir() if path.suffix == ".png")
    assert picture.stem.endswith("_run1_tubingen_starry_night")
    assert torch.allclose(load_image(picture), first.image, atol=1 / 255)

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
    assert "<th>content layers</th>" not in table.value  # only what differs
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
