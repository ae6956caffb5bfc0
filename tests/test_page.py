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
from nst_lib.notebook import FIGURE_METADATA, SETUP_FILE


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
