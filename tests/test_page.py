"""The report's page, rendered from an executed notebook made here with every kind of output."""

import base64
import io
import json
import re

import nbformat
import pytest
from bs4 import BeautifulSoup
from PIL import Image

from nst_lib import page
from nst_lib.claims import FAILS, HOLDS, UNJUDGED, VERDICTS, Claims, above, below, judge
from nst_lib.notebook import FIGURE_METADATA, INPUTS_FILE, NARROW_SUFFIX, SETUP_FILE


def png(width: int, height: int, mode: str = "RGBA") -> bytes:
    picture = Image.new(mode, (width, height), (200, 40, 40, 128) if mode == "RGBA" else (200, 40, 40))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def output(data: dict, metadata: dict | None = None, kind: str = "display_data"):
    if kind == "execute_result":
        return nbformat.v4.new_output(kind, data=data, metadata=metadata or {}, execution_count=1)
    return nbformat.v4.new_output(kind, data=data, metadata=metadata or {})


@pytest.fixture
def built(tmp_path):
    """A build folder with one executed notebook, as the report build leaves it."""
    folder = tmp_path / "07_example"
    (folder / "figures").mkdir(parents=True)
    (folder / "figures" / "wide.png").write_bytes(png(2000, 500))
    (folder / "figures" / SETUP_FILE).write_text(json.dumps({
        "profile": "quick", "size": 64, "steps": 30, "precision": "bfloat16", "weights": "oxford", "pooling": "max",
        "device": "cpu", "device_name": "a test CPU", "threads": 2, "torch": "2.x",
    }))
    code = nbformat.v4.new_code_cell
    cells = [
        nbformat.v4.new_markdown_cell("# 7. An example section\n\nSome narrative.\n\n## A subsection"),
        code("profile = None", metadata={"tags": ["parameters"]}),
        code('profile = "quick"', metadata={"tags": ["injected-parameters"]}),
        code("run.save(...)", outputs=[output(
            {"image/png": base64.b64encode((folder / "figures" / "wide.png").read_bytes()).decode(),
             "text/plain": "Wide. How to read it."},
            {FIGURE_METADATA: {"file": "wide.png", "title": "A wide figure", "caption": "How to read the wide one."}},
        )]),
        code("plt.plot()", outputs=[
            output({"image/png": base64.b64encode(png(300, 200, "RGB")).decode(), "text/plain": "<Figure size 3x2>"}),
            output({"text/plain": "<Figure size 640x480 with 1 Axes>"}),
        ]),
        code("Markdown(table)", outputs=[output(
            {"text/markdown": "| method | seconds |\n| --- | --- |\n| generator | 0.05 |",
             "text/plain": "<IPython.core.display.Markdown object>"}, kind="execute_result",
        )]),
        code("Table(rows)", outputs=[output({"text/html": "<table><tr><td>html cell</td></tr></table>",
                                             "text/plain": "html cell"}, kind="execute_result")]),
        code("print('stdout text')", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="stdout text\n"),
            nbformat.v4.new_output("stream", name="stderr", text="progress 50%|#####\n"),
        ]),
        code("assert every_loss_fell", metadata={"tags": ["check"]},
             outputs=[nbformat.v4.new_output("stream", name="stdout", text="result shapes: {(1, 3, 48, 64)}\n")]),
        code("explorer", outputs=[output({"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                          "text/plain": "Explorer: press Run."})]),
        nbformat.v4.new_markdown_cell("### Two seeds\n\nMore narrative, see [above](#A-subsection)."),
    ]
    book = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(book, folder / "07_example.ipynb")
    sections = [{"notebook": "07_example.ipynb", "seconds": 83.0, "parameters": {"profile": "quick"}}]
    return tmp_path, sections


def test_every_output_type_reaches_the_page_as_a_reader_sees_it(built):
    html = page.render(*built)
    assert "<td>generator</td>" in html and "| method |" not in html  # Markdown output rendered as a table
    assert "<td>html cell</td>" in html and "stdout text" in html
    for plumbing in ("<IPython.core.display", "<Figure size", "progress 50%", "result shapes", "every_loss_fell",
                     'profile = "quick"'):
        assert plumbing not in html, plumbing
    assert "Interactive controls appear here in JupyterLab" in html
    folded = re.findall(r'<details class="code"><summary>code</summary>(.*?)</details>', html, re.DOTALL)
    assert "profile = None" in re.sub(r"<[^>]+>", "", folded[0])  # code is there, folded away


def test_figures_are_compressed_at_display_size_and_link_to_their_full_size_png(built):
    folder, sections = built
    figures = BeautifulSoup(page.render(folder, sections), "html.parser").find_all("figure")
    assert len(figures) == 2
    saved, fallback = figures
    link, image, caption = saved.a, saved.img, saved.figcaption
    assert link["href"] == "07_example/figures/wide.png" and image.parent is link
    kind, data = re.match(r"data:image/(\w+);base64,(.+)", image["src"]).groups()
    shown = Image.open(io.BytesIO(base64.b64decode(data)))
    assert kind in ("webp", "jpeg") and shown.mode == "RGB"
    assert shown.size == (int(image["width"]), int(image["height"])) == (page.DISPLAY_WIDTH, page.DISPLAY_WIDTH // 4)
    assert len(data) < 0.5 * len(base64.b64encode(png(2000, 500)))
    assert image["alt"] == "A wide figure. How to read the wide one."
    assert caption.get_text(" ", strip=True) == (
        "Figure 7.1. How to read the wide one. Full size (2000×500 px PNG)."
    )
    assert caption.a["href"] == link["href"]
    # A PNG shown without Setup.save is kept as a file too, and named by where it appears.
    assert fallback.a["href"] == "07_example/figures/output-2.png" and (folder / fallback.a["href"]).is_file()
    assert fallback.img["alt"] == "A figure in “A subsection”." and "Figure 7.2." in fallback.figcaption.get_text()


def test_headings_are_h2_and_h3_with_page_unique_anchors_in_one_contents_list(built):
    html = page.render(*built)
    assert "<h1>" in html and html.count("<h1") == 1
    assert "<h2>7. An example section<a class='anchor-link' href='#07_example'>" in html
    assert '<h3 id="07_example-a-subsection">A subsection' in html
    assert '<h4 id="07_example-two-seeds">Two seeds' in html
    assert 'href="#07_example-a-subsection">above</a>' in html  # a link to a heading follows its new id
    contents = re.search(r"<nav class='contents'.*?</nav>", html, re.DOTALL).group()
    assert "<a href='#07_example'>7. An example section</a>" in contents
    assert "<a href='#07_example-a-subsection'>A subsection</a>" in contents
    assert "cell-id=" not in html


def test_the_header_names_profile_precision_device_torch_commit_and_times(built):
    html = page.render(*built)
    header = re.search(r"<header>.*?</header>", html, re.DOTALL).group()
    for fact in ("quick: images of 64 px", "bfloat16", "oxford weights, max pooling", "cpu: a test CPU, 2 torch threads",
                 "2.x", "commit ", "the notebooks ran for 1 min 23 s"):
        assert fact in header, fact
    assert "<meta name='viewport'" in html and "prefers-color-scheme: dark" in html and "@media print" in html


def claims_output(*stated):
    """A claims table's output, as ``claims.Claims`` shows it in a notebook."""
    data, metadata = Claims(stated)._repr_mimebundle_()
    return output(data, metadata)


def figure_output(folder, name: str, width: int = 400, narrow: bool = False):
    """A figure's output, as ``Setup.save`` shows it, with its PNG (and narrow rendition) in ``folder``."""
    (folder / "figures" / f"{name}.png").write_bytes(png(width, 200, "RGB"))
    if narrow:
        (folder / "figures" / f"{name}{NARROW_SUFFIX}").write_bytes(png(width // 3, 600, "RGB"))
    return output({"image/png": base64.b64encode(png(4, 2, "RGB")).decode(), "text/plain": name},
                  {FIGURE_METADATA: {"file": f"{name}.png", "title": name, "caption": f"The {name} figure."}})


@pytest.fixture
def claimed(tmp_path):
    """Two executed notebooks with claims: a tool whose whole notebook is appendix, and a section with two
    figures, claims, a heading with nothing under it and an appendix part with its own figure and claim."""
    code, markdown = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    tool = tmp_path / "00_tool"
    (tool / "figures").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[
        markdown("# 0. A tool: try it by hand", metadata={"tags": ["appendix"]}),
        markdown("## How to use it\n\nPress the button."),
    ]), tool / "00_tool.ipynb")
    folder = tmp_path / "01_first"
    (folder / "figures").mkdir(parents=True)
    (folder / "figures" / SETUP_FILE).write_text(json.dumps({"profile": "quick", "size": 64, "steps": 30}))
    loaded = ["tubingen", "starry_night", "kodim04", "/home/me/cat.jpg"]
    (folder / "figures" / INPUTS_FILE).write_text(json.dumps(loaded))
    cells = [
        markdown("# 1. The first section\n\nWhat it shows."),
        code("grid", outputs=[figure_output(folder, "grid", narrow=True)]),
        code("curves", outputs=[figure_output(folder, "curves")]),
        code("claims", outputs=[claims_output(
            judge("the grid shows it", below(0.2, 0.5), "0.2 apart", otherwise="-", figure="grid"),
            judge("the curves fall", above(0.1, 0.5), "0.1", otherwise="they had settled: the layer keeps it"),
        )]),
        markdown("## A heading over nothing"),
        code("hidden = 1"),
        markdown("## Stability", metadata={"tags": ["appendix"]}),
        markdown("Why it holds.\n\n### Details"),
        code("stability", outputs=[figure_output(folder, "stability")]),
        code("claims", outputs=[claims_output(
            judge("it never blows up", below(0, 1), "0 rollbacks", otherwise="-", unless="too few evaluations"),
        )]),
        markdown("## Back in the section\n\nMore of section 1."),
        code("claims", outputs=[claims_output(judge("a last claim", above(3, 2), "3", otherwise="-"))]),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / "01_first.ipynb")
    sections = [{"notebook": "00_tool.ipynb", "seconds": 1.0, "parameters": {}},
                {"notebook": "01_first.ipynb", "seconds": 83.0, "parameters": {"profile": "quick"},
                 "load": [0.5, 2.5, 1.9], "cores": 2}]
    return tmp_path, sections


def test_the_page_opens_with_a_summary_of_every_claim_with_its_verdict_reason_and_figure(claimed):
    composed = page.compose(*claimed)
    soup = BeautifulSoup(composed.html, "html.parser")
    assert [h2.get_text(strip=True).rstrip("¶") for h2 in soup.find_all("h2")][:2] == ["Summary", "Contents"]
    summary = soup.find(id="summary")
    text = summary.get_text(" ", strip=True)
    assert "CMU 16-726" in text and "spring 2023" in text and "“wally”, “dancing” and an album" in text
    assert "Of its 4 claims, 2 hold, 1 does not hold and 1 cannot be judged at this profile." in text
    assert "Neckarfront, Tuebingen" in text and "1 photographs of the Kodak" in text and "cat.jpg" in text
    assert "The Starry Night (1889) by Vincent van Gogh" in text
    rows = summary.select("table.claims tr.holds, table.claims tr.fails, table.claims tr.unjudged")
    assert [row.find("td", class_="claim").a.get_text() for row in rows] == [
        "the grid shows it", "the curves fall", "a last claim", "it never blows up"]
    ids = {tag["id"] for tag in soup.find_all(id=True)}
    for row in rows:
        claim, figure = row.find("td", class_="claim").find_all("a")
        assert claim["href"][1:] in ids and figure["href"][1:] in ids  # its row in its section, its figure
        assert row.find("td", class_="verdict").get_text() in VERDICTS and row.find("td", class_="why").get_text()
    links = [row.find("a", class_="figref").get_text() for row in rows]
    assert links == ["Figure 1.1", "Figure 1.2", "Figure 1.2", "Figure B.1"]  # named, else the last shown before
    assert [c["verdict"] for c in composed.claims] == [HOLDS, FAILS, HOLDS, UNJUDGED]
    assert composed.claims[1]["reason"].startswith("they had settled: the layer keeps it; it misses by 80%")
    assert composed.claims[3]["section"] == "B" and composed.claims[3]["section_title"] == "Stability"


def test_appendix_parts_move_to_the_end_lettered_with_their_own_figures(claimed):
    soup = BeautifulSoup(page.render(*claimed), "html.parser")
    order = [section["id"] for section in soup.find_all("section")]
    assert order == ["summary", "01_first", "appendix", "appendix-a", "appendix-b", "appendix-cost"]
    assert soup.find(id="appendix-a").h3.get_text(strip=True).rstrip("¶") == "A. A tool: try it by hand"
    assert soup.find(id="appendix-a").find(class_="meta").get_text() == "executed notebook"  # a whole notebook
    assert soup.find(id="appendix-b").find(class_="meta").get_text().startswith("from “1. The first section”")
    part = soup.find(id="appendix-b")
    assert part.h3.get_text(strip=True).rstrip("¶") == "B. Stability"
    assert "Why it holds." in part.get_text() and part.find("h4").get_text(strip=True).rstrip("¶") == "Details"
    assert "Figure B.1." in part.figcaption.get_text() and part.figure["id"] == "figure-b-1"
    section = soup.find(id="01_first")
    assert "Why it holds." not in section.get_text() and "More of section 1." in section.get_text()
    assert [f["id"] for f in section.find_all("figure")] == ["figure-1-1", "figure-1-2"]
    contents = soup.find("nav").get_text(" ", strip=True)
    assert "Appendix A. A tool: try it by hand B. Stability" in contents
    assert "0. A tool" not in contents.split("Appendix")[0]  # not among the numbered sections


def test_a_heading_with_nothing_under_it_is_left_out(claimed):
    html = page.render(*claimed)
    assert "A heading over nothing" not in html and "Back in the section" in html


def test_a_grid_shows_its_narrow_rendition_on_a_narrow_screen(claimed):
    soup = BeautifulSoup(page.render(*claimed), "html.parser")
    grid, curves = soup.find(id="figure-1-1"), soup.find(id="figure-1-2")
    source = grid.find("source")
    assert source["media"] == f"(max-width: {page.NARROW_SCREEN}px)" and source["srcset"].startswith("data:image/")
    assert (int(source["width"]), int(source["height"])) == (133, 600)
    assert grid.img["width"] == "400" and grid.a["href"] == "01_first/figures/grid.png"
    assert curves.find("source") is None  # a figure without a narrow rendition is shown as it is


def test_the_header_records_the_load_while_the_notebooks_ran(claimed):
    soup = BeautifulSoup(page.render(*claimed), "html.parser")
    line = soup.find("header").find("summary").get_text()
    assert "load average 1.9 (0.5 to 2.5) on 2 cores" in line
    assert "load average 1.9 (0.5 to 2.5) on 2 cores" in soup.find(id="01_first").find(class_="meta").get_text()
