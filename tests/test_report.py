"""The report build: papermill over the notebooks, one HTML page, safe swaps, reuse."""

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from playwright.sync_api import sync_playwright

from browser import launch
from nst_lib import report


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The quick report, built once for this module."""
    output = tmp_path_factory.mktemp("report") / "quick"
    lines = []
    index = report.build(output, profile="quick", log=lines.append)
    return output, index, lines


def test_every_numbered_notebook_becomes_a_section_in_order(built):
    output, index, lines = built
    stems = [nb.stem for nb in report.notebooks()]
    sections = ["01_content_reconstruction", "02_texture_synthesis", "03_style_transfer"]
    assert [stem for stem in stems if stem in sections] == sections
    page = index.read_text()
    positions = [page.index(f"id='{stem}'") for stem in stems]
    assert positions == sorted(positions)
    for stem in stems:
        section = json.loads((output / stem / report.SECTION_FILE).read_text())
        assert section["parameters"].get("profile", "quick") == "quick" and section["seconds"] > 0
        executed = nbformat.read(output / stem / f"{stem}.ipynb", as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert [line.split(":")[0] for line in lines if line.startswith("[")] == [
        f"[{i}/{len(stems)}] {stem}" for i, stem in enumerate(stems, 1)
    ]


def test_the_page_states_profile_weights_device_and_times(built):
    page = built[1].read_text()
    for fact in ("quick", "oxford", "cpu", "Wall time", "evaluations per optimization"):
        assert fact in page
    assert page.count("<img") >= 7  # every figure of sections 1 to 3 is embedded
    assert "http://" not in page and "https://" not in page  # opens offline


def test_an_unchanged_section_is_reused_and_a_changed_one_rerun(built, tmp_path, monkeypatch):
    output = tmp_path / "again"
    shutil.copytree(built[0], output)
    lines = []
    report.build(output, profile="quick", only=["01", "02"], log=lines.append)
    assert all("unchanged, reused" in line for line in lines if line.startswith("["))
    lines.clear()
    # The same notebook with other parameters is another section: it runs again.
    report.build(output, profile="quick", steps=2, only=["01"], log=lines.append)
    assert "running" in lines[0]
    section = json.loads((output / "01_content_reconstruction" / report.SECTION_FILE).read_text())
    assert section["parameters"]["steps"] == 2


def test_a_failing_notebook_names_its_cell_and_leaves_the_old_report(built, tmp_path, monkeypatch):
    output = tmp_path / "kept"
    shutil.copytree(built[0], output)
    before = (output / "index.html").read_bytes()
    broken = tmp_path / "notebooks"
    broken.mkdir()
    book = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Broken"),
        nbformat.v4.new_code_cell('profile = "quick"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("raise ValueError('the style image is missing')"),
    ])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(book, broken / "01_broken.ipynb")
    monkeypatch.setattr(report, "notebook_folder", lambda: broken)
    monkeypatch.setattr(report, "notebooks", lambda folder=broken: [broken / "01_broken.ipynb"])
    with pytest.raises(report.BuildError, match=r"01_broken.ipynb failed in cell \d+ \(ValueError: the style image is missing\)") as error:
        report.build(output, profile="quick", log=lambda line: None)
    assert "raise ValueError" in str(error.value)  # the failing cell is shown
    assert (output / "index.html").read_bytes() == before


def test_the_report_renders_in_chromium_with_every_image_and_link(built, artifacts):
    output, index, _ = built
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(index.as_uri())
            page.wait_for_load_state("load")
            widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
            links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
            ids = set(page.eval_on_selector_all("[id]", "nodes => nodes.map(n => n.id)"))
            page.screenshot(path=str(artifacts / "report.png"), full_page=False)
        finally:
            browser.close()
    assert len(widths) >= 7 and all(w > 0 for w in widths), widths
    assert links
    for link in links:
        url = urlparse(link)
        if url.fragment and url.path == urlparse(index.as_uri()).path:
            assert url.fragment in ids, link
        else:
            assert url.scheme == "file" and Path(unquote(url.path)).is_file(), link


def test_an_unknown_profile_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="Unknown profile 'huge'"):
        report.build(tmp_path / "r", profile="huge")


def tiny_notebooks(folder: Path) -> list[Path]:
    """Three numbered notebooks that run in a second each: the report's machinery without the optimizations."""
    folder.mkdir()
    books = []
    for stem in ("01_first", "02_second", "03_third"):
        book = nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_markdown_cell(f"# Section {stem}"),
            nbformat.v4.new_code_cell("profile = 'quick'\nsteps = None", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print('made with', profile, steps)"),
        ])
        book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(book, folder / f"{stem}.ipynb")
        books.append(folder / f"{stem}.ipynb")
    return books


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    books = tiny_notebooks(tmp_path / "notebooks")
    monkeypatch.setattr(report, "notebooks", lambda folder=None: list(books))
    return books


def test_an_output_that_is_a_file_is_refused_and_kept(tmp_path, tiny):
    from nst_lib import cli

    file = tmp_path / "notes.txt"
    file.write_text("my notes")
    with pytest.raises(ValueError, match="notes.txt is a file, not a report folder"):
        report.build(file, profile="quick", log=lambda line: None)
    assert cli.main(["report", "--profile", "quick", "--output", str(file)]) == 2
    assert file.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebooks", "notes.txt"]  # no .old, no .partial


def test_only_rebuilds_its_sections_and_keeps_the_others(tmp_path, tiny):
    output = tmp_path / "report"
    report.build(output, profile="quick", log=lambda line: None)
    lines = []
    index = report.build(output, profile="quick", steps=2, only=["02"], log=lines.append)
    assert [stem for stem in ("01_first", "02_second", "03_third") if (output / stem / report.SECTION_FILE).is_file()] \
        == ["01_first", "02_second", "03_third"]
    page = index.read_text()
    positions = [page.index(f"id='{book.stem}'") for book in tiny]
    assert positions == sorted(positions)
    assert "running" in lines[0] and sum("kept from the report as it was" in line for line in lines) == 2
    steps = {book.stem: json.loads((output / book.stem / report.SECTION_FILE).read_text())["parameters"]["steps"]
             for book in tiny}
    assert steps == {"01_first": None, "02_second": 2, "03_third": None}


def test_an_interrupted_build_says_what_it_kept_and_the_next_one_reuses_it(tmp_path, tiny, monkeypatch):
    output = tmp_path / "report"
    execute = report._execute
    calls = []

    def stopped_at_the_second(notebook, folder, parameters):
        calls.append(notebook.stem)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return execute(notebook, folder, parameters)

    monkeypatch.setattr(report, "_execute", stopped_at_the_second)
    with pytest.raises(report.Interrupted) as stop:
        report.build(output, profile="quick", log=lambda line: None)
    partial = output.with_name("report.partial")
    assert str(stop.value) == (
        f"no report was written to {output}; finished sections (01_first) are kept in {partial}, "
        "and the next build reuses them; not finished: 02_second, 03_third."
    )
    assert not output.exists()
    monkeypatch.setattr(report, "_execute", execute)
    lines = []
    report.build(output, profile="quick", log=lines.append)
    assert "unchanged, reused" in lines[0] and (output / "index.html").is_file() and not partial.exists()
