"""What every notebook does first (profile, figures), and what the committed notebooks hold."""

import base64
import json

import matplotlib.pyplot as plt
import nbformat
import pytest
from PIL import Image

from nst_lib import report
from nst_lib.notebook import FIGURE_METADATA, SavedFigure, Setup, chosen_profile
from nst_lib.profiles import get_profile


def test_a_notebook_opened_by_hand_runs_the_standard_profile(monkeypatch):
    monkeypatch.delenv("NST_PROFILE", raising=False)
    assert chosen_profile(None) == "standard"
    monkeypatch.setenv("NST_PROFILE", "quick")  # what the tests give the kernels nbval starts
    assert chosen_profile(None) == "quick"
    assert chosen_profile("full") == "full"  # a profile the notebook (or a report build) names wins
    monkeypatch.setenv("NST_PROFILE", "huge")
    with pytest.raises(ValueError, match=r"^NST_PROFILE='huge' is not a profile: use one of quick, standard, full"):
        chosen_profile(None)


def test_save_writes_one_opaque_png_shows_it_with_its_caption_and_closes_the_figure(tmp_path, random_vgg):
    run = Setup(profile=get_profile("quick"), device=random_vgg.device, model=random_vgg, output_dir=tmp_path,
                progress=False)
    figure, axis = plt.subplots(figsize=(2, 1))
    axis.plot([0, 1])
    figure.suptitle("A title")
    assert run.save(figure, "curve", caption="How to read it.") is None  # nothing echoed under the cell
    assert figure.number not in plt.get_fignums()  # shown once, by save, not again by the inline backend
    saved = Image.open(tmp_path / "curve.png")
    assert saved.mode == "RGB" or saved.getextrema()[3] == (255, 255)  # opaque: white, not transparent
    assert run.figures == ["curve.png"]

    data, metadata = SavedFigure(tmp_path / "curve.png", "A title", "How to read it.")._repr_mimebundle_()
    assert base64.b64decode(data["image/png"]) == (tmp_path / "curve.png").read_bytes()
    assert data["text/plain"] == "A title. How to read it."
    assert metadata[FIGURE_METADATA] == {"file": "curve.png", "title": "A title", "caption": "How to read it."}


def test_every_committed_notebook_agrees_with_what_it_says():
    """A notebook stores no outputs, or outputs of the profile its parameters cell names: a notebook that
    leaves its profile open (standard by hand, quick under the tests) stores none, so that no stored picture
    can contradict its words."""
    for path in report.notebooks():
        book = nbformat.read(path, as_version=4)
        stored = [cell for cell in book.cells if cell.cell_type == "code" and (cell.outputs or cell.execution_count)]
        parameters = next(c for c in book.cells if "parameters" in c.metadata.get("tags", []))
        open_profile = "profile = None" in parameters.source
        assert not (stored and open_profile), f"{path.name} stores outputs but leaves its profile open"
        checks = [c for c in book.cells if "check" in c.metadata.get("tags", [])]
        assert not checks or all(c.cell_type == "code" and "assert" in c.source for c in checks), path.name
        ids = [c.get("id") for c in json.loads(path.read_text())["cells"]]  # nbformat 4.5 (reading fills them in)
        assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: cells without an id or with the same id"


def test_the_report_notebooks_leave_their_profile_to_the_reader():
    for name in ("01_content_reconstruction", "02_texture_synthesis", "03_style_transfer", "04_feedforward",
                 "05_your_pictures"):
        book = nbformat.read(report.notebook_folder() / f"{name}.ipynb", as_version=4)
        parameters = next(c for c in book.cells if "parameters" in c.metadata.get("tags", []))
        assert parameters.source.startswith("profile = None"), name
        assert not any(cell.get("outputs") for cell in book.cells if cell.cell_type == "code"), name
        assert any("check" in c.metadata.get("tags", []) for c in book.cells), f"{name} has no checks for nbval"
