"""The report build: papermill over the notebooks, one HTML page, safe swaps, reuse."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from browser import launch
from nst_lib import report

# The quick report that most tests look at is built once, in the setup of the first of them: on two busy cores
# that build alone can take most of the default 900 s.
pytestmark = pytest.mark.timeout(1800)

# The page must stay under this size at the standard profile; the quick page, with smaller figures, as well.
PAGE_BUDGET_BYTES = 3_000_000
GENERIC_ALT = {"", "figure", "image", "picture", "plot", "png"}


def write_notebook(path: Path, title: str, parameters: str, code: str) -> Path:
    """A notebook as the report runs them: a title, a cell tagged ``parameters`` and one cell of ``code``."""
    book = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(title),
        nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(code),
    ])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(book, path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The quick report, built once for this module."""
    output = tmp_path_factory.mktemp("report") / "quick"
    lines = []
    index = report.build(output, profile="quick", log=lines.append)
    return output, index, lines


def test_every_numbered_notebook_becomes_a_section_in_order(built):
    output, index, lines = built
    stems = [nb.stem for nb in report.notebooks() if nb.stem != report.PICTURES]  # no pictures given: left out
    sections = ["01_content_reconstruction", "02_texture_synthesis", "03_style_transfer"]
    assert [stem for stem in stems if stem in sections] == sections
    page = index.read_text()
    numbered = [stem for stem in stems if stem != "00_explorer"]  # the explorer is part A of the appendix
    positions = [page.index(f"id='{stem}'") for stem in numbered]
    assert positions == sorted(positions)
    appendix = page.index("<section id='appendix'>")
    assert positions[-1] < appendix < page.index("href='00_explorer/00_explorer.ipynb'")
    assert f"id='{report.PICTURES}'" not in page and not (output / report.PICTURES).exists()
    for stem in stems:
        section = json.loads((output / stem / report.SECTION_FILE).read_text())
        assert section["parameters"].get("profile", "quick") == "quick" and section["seconds"] > 0
        executed = nbformat.read(output / stem / f"{stem}.ipynb", as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert [line.split(":")[0] for line in lines if line.startswith("[")] == [
        f"[{i}/{len(stems)}] {stem}" for i, stem in enumerate(stems, 1)
    ]


def test_the_page_states_profile_precision_device_commit_times_and_load(built):
    output, index, _ = built
    page = index.read_text()
    header = page[: page.index("</header>")]
    for fact in ("quick: images of 64 px", "precision", "oxford weights", "cpu: ", "torch", "commit ", "ran for",
                 "load average "):
        assert fact in header, fact
    assert any(reason in header for reason in ("bfloat16 measured", "no bfloat16 kernels", "GPU"))  # why that one
    record = json.loads((output / report.BUILD_FILE).read_text())
    assert [s["notebook"] for s in record["sections"]] == [json.loads((output / Path(s["notebook"]).stem /
                                                            report.SECTION_FILE).read_text())["notebook"]
                                                           for s in record["sections"]]
    assert all(s["seconds"] > 0 and s["load"]["samples"] >= 2 for s in record["sections"])
    assert record["machine"]["cores"] >= 1 and record["machine"]["precision"] in ("bfloat16", "float32")
    assert page.count("<img") >= 9  # every figure of sections 1 to 3 is embedded
    assert "http://" not in page and "https://" not in page  # opens offline


def test_the_page_shows_narrative_figures_and_tables_and_no_plumbing(built):
    output, index, _ = built
    page = index.read_text()
    assert len(page.encode()) < PAGE_BUDGET_BYTES
    for plumbing in ("<IPython.core.display", "<Figure size", "PosixPath(", "every content loss fell", "result shapes",
                     "loss fell:", "all different:", "injected-parameters", "assert "):
        assert plumbing not in page, plumbing
    assert "| method |" not in page  # the feed-forward section's speed table (Markdown output) is a table
    assert page.count("<th>claim</th>") >= 10  # sections 1 to 4 state their findings as measured
    assert "data:image/png" not in page  # figures are shown compressed; their PNGs are linked


def test_the_explorer_section_shows_what_its_first_run_makes(built):
    """Built by papermill, nobody presses Run: the explorer's notebook runs its first Run and shows the
    picture and its settings instead of controls that no page can show."""
    from nst_lib.explorer import Settings

    output, index, _ = built
    section = index.read_text().split("href='00_explorer/00_explorer.ipynb'")[1].split("<section")[0]  # appendix A
    assert "What the explorer" in section and "Figure A.1" in section and "Interactive controls" not in section
    (record,) = (output / "00_explorer" / "figures").glob("*_run1_tubingen_starry_night.json")
    saved = json.loads(record.read_text())
    assert Settings.from_dict(saved["settings"]) == Settings.first("quick")
    assert saved["evaluations"] == Settings.first("quick").steps and not saved["stopped"]
    picture = Image.open(record.with_suffix(".png"))
    assert max(picture.size) == Settings.first("quick").size and np.asarray(picture).std() > 10  # not blank
    assert f"<td>{saved['final_losses']['total']:.3g}</td>" in section  # the settings table, from this run


def test_every_claim_has_a_verdict_with_its_reason_and_the_summary_lists_them_all(built):
    from bs4 import BeautifulSoup

    from nst_lib.claims import VERDICTS

    output, index, _ = built
    soup = BeautifulSoup(index.read_text(), "html.parser")
    assert soup.find("h2").get_text(strip=True).rstrip("¶") == "Summary"  # the summary opens the page
    stated = json.loads((output / report.CLAIMS_FILE).read_text())["claims"]
    in_sections = [row for table in soup.select("section:not(#summary) table.claims")
                   for row in table.select("tbody tr")]
    in_summary = soup.select("#summary table.claims tbody tr:not(.group)")
    assert len(stated) == len(in_sections) == len(in_summary) >= 10
    for claim, row in zip(stated, in_sections):
        verdict, why = row.find("td", class_="verdict").get_text(), row.find("td", class_="why").get_text()
        assert verdict == claim["verdict"] in VERDICTS and why.strip() == claim["reason"] and len(why) > 10
        assert row.find("td", class_="measured").get_text().strip()
    assert {claim["section"] for claim in stated} >= {"1", "2", "3", "4"}  # and appendix parts
    assert not any(cell.get_text().strip().lower() in ("no", "yes") for cell in soup.select("table.claims td"))


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
    write_notebook(broken / "01_broken.ipynb", "# Broken", 'profile = "quick"',
                   "raise ValueError('the style image is missing')")
    monkeypatch.setattr(report, "notebook_folder", lambda: broken)
    monkeypatch.setattr(report, "notebooks", lambda folder=broken: [broken / "01_broken.ipynb"])
    expected = r"01_broken.ipynb failed in cell \d+ \(ValueError: the style image is missing\)"
    with pytest.raises(report.BuildError, match=expected) as error:
        report.build(output, profile="quick", log=lambda line: None)
    assert "raise ValueError" in str(error.value)  # the failing cell is shown
    assert (output / "index.html").read_bytes() == before


IMAGES = """images => images.map(i => ({
    loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth, alt: i.getAttribute('alt'),
    link: i.closest('a') ? i.closest('a').href : null, shown: i.getBoundingClientRect().width}))"""


def test_the_report_renders_in_chromium_with_every_image_and_link(built, artifacts):
    output, index, _ = built
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(index.as_uri())
            page.wait_for_load_state("load")
            images = page.eval_on_selector_all("img", IMAGES)
            links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
            ids = set(page.eval_on_selector_all("[id]", "nodes => nodes.map(n => n.id)"))
            headings = page.eval_on_selector_all(
                "h2, h3", "hs => hs.map(h => [h.tagName, h.id || h.closest('[id]').id])"
            )
            text = page.inner_text("body")
            page.screenshot(path=str(artifacts / "report.png"), full_page=False)
            page.emulate_media(color_scheme="dark")
            page.screenshot(path=str(artifacts / "report-dark.png"), full_page=False)
            dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
            page.emulate_media(media="print", color_scheme="light")
            code_shown_in_print = page.eval_on_selector_all("details.code", "ds => ds.some(d => d.offsetParent)")
        finally:
            browser.close()
    assert not any(repr_ in text for repr_ in ("<IPython.core.display", "<Figure size", "PosixPath("))
    assert len(images) >= 9 and all(image["loaded"] for image in images), images
    for image in images:
        assert image["alt"].strip().lower().rstrip(".") not in GENERIC_ALT and len(image["alt"]) > 20, image
        full = Path(unquote(urlparse(image["link"] or "").path))
        assert full.suffix == ".png" and full.is_file(), image  # each figure links to its full-size PNG
        assert Image.open(full).width >= image["width"] >= image["shown"] - 1, image
    alts = [image["alt"] for image in images]
    assert len(set(alts)) == len(alts)  # each says which figure it is
    assert all(anchor for _, anchor in headings) and headings[:2] == [["H2", "summary"], ["H2", "contents"]]
    assert dark != "rgb(255, 255, 255)" and not code_shown_in_print
    assert links
    for link in links:
        url = urlparse(link)
        if url.fragment and url.path == urlparse(index.as_uri()).path:
            assert url.fragment in ids, link
        else:
            assert url.scheme == "file" and Path(unquote(url.path)).is_file(), link


PHONE = 390  # CSS px: a phone held upright


def test_the_page_fits_a_phone_with_whole_claims_tables_and_larger_tiles(built, artifacts):
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": PHONE, "height": 800}, device_scale_factor=2)
            page.goto(built[1].as_uri())
            page.wait_for_load_state("load")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            # Every cell of every claims table lies inside the screen and needs no scrolling of its own.
            cells = page.eval_on_selector_all("table.claims td, table.claims th", """cells => cells.map(c => {
                const box = c.getBoundingClientRect(), table = c.closest('table');
                return {left: box.left, right: box.right, text: c.innerText,
                        scrolls: table.scrollWidth > table.clientWidth + 1 || c.scrollWidth > c.clientWidth + 1}; })""")
            # A grid shows its narrow rendition: fewer, larger tiles than the desktop figure.
            grids = page.eval_on_selector_all("figure picture img", """imgs => imgs.map(i => ({
                shown: i.currentSrc, desktop: i.getAttribute('src'), natural: i.naturalWidth,
                width: i.getBoundingClientRect().width}))""")
            page.locator("[id='01_content_reconstruction'] table.claims").first.scroll_into_view_if_needed()
            page.screenshot(path=str(artifacts / "report-phone-claims.png"), full_page=False)
            page.screenshot(path=str(artifacts / "report-phone.png"), full_page=True)
        finally:
            browser.close()
    assert overflow <= 1  # wide tables and code scroll inside themselves
    assert len(cells) >= 40
    for cell in cells:
        assert -1 <= cell["left"] and cell["right"] <= PHONE + 1 and not cell["scrolls"], cell
    assert len(grids) >= 5
    for grid in grids:
        assert grid["shown"] != grid["desktop"] and grid["width"] >= PHONE - 40, grid


def test_an_unknown_profile_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="Unknown profile 'huge'"):
        report.build(tmp_path / "r", profile="huge")


def nst(*args):
    """The command line in a fresh interpreter, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "nst_lib", *args], capture_output=True, text=True, timeout=900)


def photo(path: Path, seed: int) -> Path:
    """A photograph of one's own, made here: a gradient with a bright disc, saved as ``path``."""
    y, x = np.mgrid[0:90, 0:120] / 120
    disc = ((x - 0.3 - 0.1 * seed) ** 2 + (y - 0.35) ** 2 < 0.03).astype(float)
    array = np.stack([0.2 + 0.6 * x, 0.3 + 0.6 * disc, 0.9 - 0.6 * y], axis=-1)
    Image.fromarray((array.clip(0, 1) * 255).astype(np.uint8)).save(path)
    return path


def test_your_album_becomes_a_section_of_its_own(tmp_path):
    album = tmp_path / "my photos"
    album.mkdir()
    photo(album / "garden.png", 0)
    photo(album / "beach.jpg", 1)
    (album / "notes.txt").write_text("not a picture, and not in an album's images")
    output = tmp_path / "report"
    done = nst("report", "--profile", "quick", "--album", str(album), "--style", "the_scream", "--only", "05",
               "--output", str(output))
    assert done.returncode == 0, done.stderr[-2000:]
    page = (output / "index.html").read_text()
    assert f"id='{report.PICTURES}'" in page and "5. Your pictures" in page
    section = page[page.index(f"id='{report.PICTURES}'"):]
    assert section.count("<figure ") == 2 and "Figure 5.2." in section
    for name in ("garden", "beach"):
        assert f'alt="{name}. {name} with each painting: from noise at style weight 1000' in section
    figures = sorted(p.name for p in (output / report.PICTURES / "figures").glob("your_picture_*.png"))
    assert figures == ["your_picture_1.narrow.png", "your_picture_1.png", "your_picture_2.narrow.png",
                       "your_picture_2.png"]  # each grid and its rendition for narrow screens
    executed = nbformat.read(output / report.PICTURES / f"{report.PICTURES}.ipynb", as_version=4)
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert str(album) in injected.source and "the_scream" in injected.source


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--album", "/no/such/folder"], "error: /no/such/folder is not a folder: give a folder of images."),
        (["--content", "starry_nigth"], "error: 'starry_nigth' is neither an image file nor a named image"),
        (["--only", "05"], "error: 05_your_pictures shows your own pictures: give --content, --style or --album"),
    ],
)
def test_a_bad_picture_is_one_sentence_before_anything_runs(tmp_path, arguments, message):
    done = nst("report", "--profile", "quick", "--output", str(tmp_path / "report"), *arguments)
    assert done.returncode == 2 and done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "report").exists()


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    notes = tmp_path / "holiday.jpg"
    notes.write_text("not a picture")
    done = nst("report", "--profile", "quick", "--content", str(notes), "--output", str(tmp_path / "report"))
    assert done.returncode == 2 and done.stderr.startswith(f"error: {notes} ")
    assert "Traceback" not in done.stderr


def test_a_photograph_changed_under_the_same_name_makes_its_section_stale(tmp_path):
    notebook = tmp_path / "05_example.ipynb"
    notebook.write_text("{}")
    picture = photo(tmp_path / "garden.png", 0)
    parameters = {"photos": [str(picture)], "album": None}
    before = report.section_key(notebook, parameters, "code")
    assert report.section_key(notebook, parameters, "code") == before
    photo(picture, 1)
    assert report.section_key(notebook, parameters, "code") != before


def tiny_notebooks(folder: Path) -> list[Path]:
    """Three numbered notebooks that run in a second each: the report's machinery without the optimizations."""
    folder.mkdir()
    books = []
    for stem in ("01_first", "02_second", "03_third"):
        books.append(write_notebook(folder / f"{stem}.ipynb", f"# Section {stem}", "profile = 'quick'\nsteps = None",
                                    "print('made with', profile, steps)"))
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


def test_a_report_folder_that_cannot_be_built_is_refused_before_anything_runs(tmp_path, tiny, capsys, monkeypatch):
    from test_files import unwritable_folder

    from nst_lib import cli

    def never(*args, **kwargs):
        raise AssertionError("no notebook may run")

    monkeypatch.setattr(report, "_execute", never)
    earlier = tmp_path / "earlier"
    (earlier / "figures").mkdir(parents=True)
    picture = photo(earlier / "figures" / "garden.png", 0)  # a figure of an earlier report, given as a picture
    locked = unwritable_folder(tmp_path)
    cases = [
        (tmp_path / ("a" * 250), [], ("with '.partial' added, as the folder made beside it is named, its name is "
                                      "258 bytes long, and this file system allows 255.")),
        (locked / "report", [], f"the folder {locked} takes no new folders"),
        (earlier, ["--content", str(picture)], (f"{picture} is inside the report folder {earlier}, which the "
                                                "build replaces: copy it elsewhere first, or build elsewhere.")),
        (earlier, ["--album", str(earlier / "figures")], f"{earlier / 'figures'} is inside the report folder"),
    ]
    for output, pictures, message in cases:
        status = cli.main(["report", "--profile", "quick", "--output", str(output), *pictures])
        error = capsys.readouterr().err
        assert status == 2 and message in error and len(error.strip().splitlines()) == 1, error
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "locked") == ["earlier", "notebooks"]
    assert sorted(p.name for p in earlier.rglob("*")) == ["figures", "garden.png"]


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


# The build of the notebooks in argv[1] into argv[2] on the command line.
BUILD = """
import sys
from pathlib import Path
from nst_lib import cli, report
books = sorted(Path(sys.argv[1]).glob("*.ipynb"))
report.notebooks = lambda folder=None: list(books)
sys.argv = ["nst", "report", "--profile", "quick", "--output", sys.argv[2]]
cli.run()
"""


def processes_in(folder: Path) -> list[str]:
    """The processes working in ``folder`` (a notebook's kernel works in its section's folder)."""
    found = []
    for link in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if link.resolve() == folder.resolve():
                found.append(link.parent.name)
        except OSError:  # ended meanwhile, or not ours to see
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc to find the kernel")
@pytest.mark.parametrize("name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_build_stopped_in_a_notebook_ends_its_kernel_and_says_what_it_kept(tmp_path, name, code):
    books = tiny_notebooks(tmp_path / "notebooks")
    second = nbformat.read(books[1], as_version=4)
    second.cells.append(nbformat.v4.new_code_cell("open('started', 'w').close()\nimport time\ntime.sleep(120)"))
    nbformat.write(second, books[1])
    output = tmp_path / "report"
    partial = tmp_path / "report.partial"
    process = subprocess.Popen([sys.executable, "-c", BUILD, str(tmp_path / "notebooks"), str(output)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (partial / "02_second" / "started").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_in(partial / "02_second"), "the kernel runs the second notebook"
    os.killpg(process.pid, getattr(signal, name))  # as a terminal's Ctrl-C, or kill, would
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code and "Traceback" not in stderr, stderr
    assert stderr.endswith(
        f"\ninterrupted: no report was written to {output}; finished sections (01_first) are kept in {partial}, "
        "and the next build reuses them; not finished: 02_second, 03_third.\n"
    ), stderr
    time.sleep(1)
    assert processes_in(partial / "02_second") == [] and not output.exists()


# --------------------------------------------------------------------------------------
# What a section depends on, and optimizations kept across figures, sections and builds.


def test_an_album_is_fingerprinted_by_its_images_alone_read_in_chunks(tmp_path):
    import tracemalloc

    notebook = tmp_path / "05_example.ipynb"
    notebook.write_text("{}")
    album = tmp_path / "album"
    album.mkdir()
    garden = photo(album / "garden.png", 0)
    video = album / "holiday.mp4"
    with open(video, "wb") as handle:  # 300 MB beside the photograph, taking no disk (a sparse file)
        handle.truncate(300 * 2**20)
    parameters = {"photos": [], "album": str(album)}
    tracemalloc.start()
    try:
        before = report.section_key(notebook, parameters, "code")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB to fingerprint one photograph"
    with open(video, "r+b") as handle:  # the video changes: no image of the section does
        handle.write(b"another film")
    assert report.section_key(notebook, parameters, "code") == before
    photo(garden, 1)
    assert report.section_key(notebook, parameters, "code") != before


def test_a_weights_file_changed_under_the_same_name_makes_its_section_stale(tmp_path, monkeypatch):
    notebook = tmp_path / "01_example.ipynb"
    notebook.write_text("{}")
    monkeypatch.chdir(tmp_path)
    Path("my_vgg.pt").write_bytes(b"first weights")
    parameters = {"weights": "my_vgg.pt"}  # as typed, relative to the folder the build runs in
    before = report.section_key(notebook, parameters, "code")
    Path("my_vgg.pt").write_bytes(b"other weights")
    assert report.section_key(notebook, parameters, "code") != before


OPTIMIZING = """
import torch
from nst_lib.losses import LossSpec
from nst_lib.notebook import setup

run = setup(profile, size=32, steps=3, weights="random", output_dir=output_dir)
noise = lambda seed: torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
content, style = noise(0), noise(1)
results = run.transfer_all({w: dict(content=content, styles=[style], loss=LossSpec(style_weight=w)) for w in WEIGHTS})
"""


def optimizing_notebooks(folder: Path, weights: dict[str, list[float]], alone: str = "") -> list[Path]:
    """Numbered notebooks, each optimizing a tiny picture at the style weights given for it in one batch; the
    first also runs one of them again alone (``alone``: code appended to it)."""
    folder.mkdir(exist_ok=True)
    books = []
    for number, (stem, chosen) in enumerate(weights.items()):
        code = OPTIMIZING.replace("WEIGHTS", repr(chosen)) + (alone if number == 0 else "")
        books.append(write_notebook(folder / f"{stem}.ipynb", f"# Section {stem}",
                                    "profile = 'quick'\noutput_dir = None", code))
    return books


def tallies(lines: list[str]) -> list[str]:
    return [line.split("(", 1)[1].rstrip(")") for line in lines if line.startswith("    done in")]


def test_an_optimization_runs_once_across_figures_sections_and_builds(tmp_path, monkeypatch):
    alone = "again = run.transfer(content, [style], loss=LossSpec(style_weight=1e4))\nassert again is results[1e4]\n"
    books = optimizing_notebooks(tmp_path / "notebooks", {"01_first": [1e2, 1e4], "02_second": [1e4, 1e6]}, alone)
    monkeypatch.setattr(report, "notebooks", lambda folder=None: list(books))
    output = tmp_path / "report"
    lines = []
    environment = dict(os.environ)
    report.build(output, profile="quick", executor="inprocess", log=lines.append)
    assert dict(os.environ) == environment  # what the kernels are told (bars, the results) is theirs alone
    # The first section runs two and reads one back (the same optimization, asked for alone); the second runs
    # only the one the first did not.
    assert tallies(lines) == ["2 optimizations run, 1 reused", "1 optimizations run, 1 reused"]
    assert len(list((output / "results").glob("*.json"))) == 3
    lines.clear()
    # Both notebooks written again (new cell ids: both sections run again), the second with one more weight:
    # only that one optimization runs, every other is read back from the previous build.
    optimizing_notebooks(tmp_path / "notebooks", {"01_first": [1e2, 1e4], "02_second": [1e6, 1e4, 1.0]}, alone)
    report.build(output, profile="quick", executor="inprocess", log=lines.append)
    assert tallies(lines) == ["0 optimizations run, 3 reused", "1 optimizations run, 2 reused"]


def test_an_interrupted_build_keeps_the_optimizations_it_finished(tmp_path, monkeypatch):
    books = optimizing_notebooks(tmp_path / "notebooks", {"01_first": [1e2], "02_second": [1e2, 1e4]})
    monkeypatch.setattr(report, "notebooks", lambda folder=None: list(books))
    execute = report._execute

    def stopped_in_the_second(notebook, folder, parameters):
        if notebook.stem == "02_second":
            raise KeyboardInterrupt
        return execute(notebook, folder, parameters)

    monkeypatch.setattr(report, "_execute", stopped_in_the_second)
    output = tmp_path / "report"
    with pytest.raises(report.Interrupted):
        report.build(output, profile="quick", executor="inprocess", log=lambda line: None)
    assert len(list((tmp_path / "report.partial" / "results").glob("*.json"))) == 1
    monkeypatch.setattr(report, "_execute", execute)
    lines = []
    report.build(output, profile="quick", executor="inprocess", log=lines.append)
    assert tallies(lines) == ["1 optimizations run, 1 reused"]


# Nothing the build did not write is ever removed.


def refused(arguments, capsys) -> str:
    """``nst report`` with ``arguments``: refused with exit status 2 and one line; that line."""
    from nst_lib import cli

    status = cli.main(["report", "--profile", "quick", *arguments])
    error = capsys.readouterr().err
    assert status == 2 and len(error.strip().splitlines()) == 1, error
    return error.strip()


@pytest.fixture
def no_notebook_runs(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("no notebook may run")

    monkeypatch.setattr(report, "_execute", never)


def contents(folder: Path) -> dict:
    return {path.relative_to(folder).as_posix(): path.read_bytes() if path.is_file() else None
            for path in sorted(folder.rglob("*"))}


def test_a_folder_that_is_not_a_report_is_refused_and_kept(tmp_path, tiny, capsys, no_notebook_runs):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("three years of work")
    website = tmp_path / "website"
    website.mkdir()
    (website / "index.html").write_text("<p>my page</p>")
    swept = tmp_path / "swept"
    (swept / "cells").mkdir(parents=True)
    (swept / "cells" / "0123.json").write_text("{}")
    (swept / "sweep.json").write_text("[]")
    before = {folder: contents(folder) for folder in (thesis, website, swept)}
    assert refused(["--output", str(thesis)], capsys) == (
        f"error: {thesis} is not a report (it holds thesis.txt, and no {report.MARKER}), and the build would replace "
        "it: give a new or empty folder, or the folder of an earlier report.")
    assert refused(["--output", str(website)], capsys).startswith(f"error: {website} is not a report")
    assert refused(["--output", str(swept)], capsys) == (
        f"error: {swept} is a sweep's folder, not a report's, and the build would replace it: give the report a "
        "folder of its own.")
    assert {folder: contents(folder) for folder in (thesis, website, swept)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebooks", "swept", "thesis", "website"]


def test_the_build_s_spare_folders_are_refused_when_they_are_not_the_build_s(tmp_path, tiny, capsys, no_notebook_runs):
    output = tmp_path / "report"
    for suffix in (".old", ".partial"):
        spare = tmp_path / f"report{suffix}"
        spare.mkdir()
        (spare / "mine.txt").write_text("mine")
        message = refused(["--output", str(output)], capsys)
        assert message.startswith(f"error: {spare} is not ") and "move it away, or build elsewhere." in message
        assert (spare / "mine.txt").read_text() == "mine" and not output.exists()
        (spare / "mine.txt").rename(tmp_path / f"mine{suffix}.txt")
        spare.rmdir()


def test_the_current_folder_and_the_root_are_refused(tmp_path, tiny, capsys, monkeypatch, no_notebook_runs):
    here = tmp_path / "here"
    here.mkdir()
    (here / "mine.txt").write_text("mine")
    monkeypatch.chdir(here)
    assert refused(["--output", "."], capsys) == (
        "error: The report folder . is the current folder, which the build would replace: give a folder for the "
        "report, such as report/quick.")
    assert refused(["--output", ".."], capsys).startswith("error: The report folder .. is the current folder or holds")
    assert refused(["--output", "/"], capsys) == (
        "error: The report folder / is the root of the file system: give a folder for the report, such as "
        "report/quick.")
    assert sorted(p.name for p in here.iterdir()) == ["mine.txt"]


def test_a_report_folder_holding_what_the_build_did_not_write_is_refused_until_it_is_moved(tmp_path, tiny, capsys):
    output = tmp_path / "report"
    report.build(output, profile="quick", log=lambda line: None)
    assert json.loads((output / report.MARKER).read_text())["entries"] == sorted(
        path.relative_to(output).as_posix() for path in output.rglob("*") if path.name != report.MARKER)
    notes = output / "02_second" / "notes.txt"
    notes.write_text("my notes on the second section")
    assert refused(["--output", str(output)], capsys) == (
        f"error: {notes} was not written by the report build, which replaces {output}: move it out first.")
    assert notes.read_text() == "my notes on the second section"
    notes.unlink()
    lines = []
    report.build(output, profile="quick", steps=2, only=["02"], log=lines.append)
    assert "running" in lines[0] and not output.with_name("report.old").exists()


def test_what_appears_in_the_old_report_during_a_build_is_kept(tmp_path, tiny, monkeypatch):
    output = tmp_path / "report"
    report.build(output, profile="quick", log=lambda line: None)
    execute = report._execute

    def meanwhile(notebook, folder, parameters):  # someone saves a file into the report while it is rebuilt
        (output / "01_first" / "late.txt").write_text("written during the build")
        return execute(notebook, folder, parameters)

    monkeypatch.setattr(report, "_execute", meanwhile)
    lines = []
    report.build(output, profile="quick", steps=3, only=["01"], log=lines.append)
    old = tmp_path / "report.old"
    assert (old / "01_first" / "late.txt").read_text() == "written during the build"
    assert sorted(p.relative_to(old).as_posix() for p in old.rglob("*")) == ["01_first", "01_first/late.txt"]
    assert lines[-1] == f"report: {old} keeps what the build did not write, found in the previous report: 01_first, " \
                        "01_first/late.txt"
    assert (output / "index.html").is_file()


def test_a_report_built_before_reports_were_marked_is_still_recognised(tmp_path, tiny):
    output = tmp_path / "report"
    report.build(output, profile="quick", log=lambda line: None)
    (output / report.MARKER).unlink()  # as written by an earlier version
    lines = []
    report.build(output, profile="quick", steps=2, only=["01"], log=lines.append)
    assert "running" in lines[0] and (output / report.MARKER).is_file()
    assert sum("kept from the report as it was" in line for line in lines) == 2


def weights_notebook(folder: Path) -> Path:
    """A section that builds the VGG-19 from its ``weights`` parameter, in its own folder, as the report's do."""
    folder.mkdir()
    return write_notebook(folder / "01_weights.ipynb", "# Weights", "weights = 'oxford'",
                          "from nst_lib.vgg import VGG19\nVGG19(weights, precision='float32')")


def test_a_relative_weights_path_is_the_caller_s_and_a_missing_one_is_refused_first(tmp_path, capsys, monkeypatch):
    from test_vgg import vgg_state_dict

    import torch
    from nst_lib import cli

    book = weights_notebook(tmp_path / "notebooks")
    monkeypatch.setattr(report, "notebooks", lambda folder=None: [book])
    monkeypatch.chdir(tmp_path)
    torch.save(vgg_state_dict(), tmp_path / "my_vgg.pt")
    assert cli.main(["report", "--profile", "quick", "--weights", "my_vgg.pt", "--output", "built"]) == 0, \
        capsys.readouterr().err
    section = json.loads((tmp_path / "built" / "01_weights" / report.SECTION_FILE).read_text())
    assert section["parameters"]["weights"] == str(tmp_path / "my_vgg.pt")

    def never(*args, **kwargs):
        raise AssertionError("no notebook may run")

    monkeypatch.setattr(report, "_execute", never)
    assert refused(["--weights", "missing.pt", "--output", "other"], capsys) == (
        f"error: The VGG-19 weights file missing.pt does not exist (looked for in {tmp_path}): give an existing "
        "state_dict file, or one of 'oxford', 'torchvision', 'random'.")
    assert not (tmp_path / "other").exists() and not (tmp_path / "other.partial").exists()


def test_a_report_sent_to_a_server_that_is_not_a_dask_scheduler_stops_within_the_timeout(tmp_path):
    from conftest import web_server

    output = tmp_path / "report"
    with web_server() as address:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "nst_lib", "report", "--profile", "quick", "--only", "01",
                               "--scheduler", address, "--output", str(output)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {address} answers, but not as a Dask scheduler")
    assert len(done.stderr.strip().splitlines()) == 1 and time.monotonic() - started < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the report nor its .partial folder


def test_the_cost_audit_counts_every_optimization_and_training_by_figure(built):
    output, index, lines = built
    record = json.loads((output / report.BUILD_FILE).read_text())
    for section in record["sections"]:
        setup = output / Path(section["notebook"]).stem / "figures" / "setup.json"  # the explorer has none
        counted = json.loads(setup.read_text()) if setup.exists() else {}
        optimizations = [entry for entry in section["work"] if entry["optimization"]]
        assert len(optimizations) == sum(counted.get("optimizations", {}).values()), section["notebook"]
        # each was for a figure, but for the timing runs of the time table (4.7)
        assert all(entry["figure"] or entry["what"].startswith("timing ") for entry in optimizations), \
            section["notebook"]
    rows = record["cost"]
    for number in {s["notebook"][:2] for s in record["sections"]}:  # a section's rows add up to its time
        seconds = next(s["seconds"] for s in record["sections"] if s["notebook"].startswith(number))
        assert sum(row["seconds"] for row in rows if row["section"] == number) == pytest.approx(seconds, abs=0.5)
    assert any(row["figure"] == "content_reconstruction" and "optimizations (content conv1_1" in row["work"]
               for row in rows)
    assert any("generator training" in row["work"] and "Adam steps" in row["evaluations or steps"] for row in rows)
    assert any(row["work"].startswith("timing: ") for row in rows)
    printed = next(i for i, line in enumerate(lines) if line.startswith("cost of this build"))
    assert "content_reconstruction" in lines[printed] and "total: " in lines[printed]
    assert "What this build cost" in index.read_text()
