"""The report's page: the executed notebooks, rendered by nbconvert, as one HTML file.

Each executed notebook becomes a section, rendered by nbconvert's
``HTMLExporter``, so that every output type a notebook can show (tables as
HTML or Markdown, text, images) reaches the page as Jupyter shows it. Cell
tags decide what a reader sees:

- ``check`` (the assertions the tests rely on), ``remove-cell`` and papermill's
  ``injected-parameters`` are left out; they stay in the executed notebook,
  which every section links to;
- every other code cell's source is folded under "code", one click away;
- stderr (progress bars, warnings) and the bare ``<Figure size ...>`` texts
  that plotting leaves behind are dropped.

Figures (outputs of ``notebook.Setup.save``, or any other PNG output) appear
as compressed images at display size, embedded in the page so that it opens
offline, each linking to its full-size PNG in the report folder, with a
numbered caption and alternative text taken from the figure's title and
caption. Headings move down one level (a notebook's ``#`` title is the
section's ``h2``), get anchors, and make up one contents list.
"""

from __future__ import annotations

import base64
import html
import io
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from PIL import Image, features

from .profiles import FIGURE_METADATA, FIGURES, SETUP_FILE

# The width, in CSS pixels, at which figures are shown: the page's text column.
DISPLAY_WIDTH = 1040
DISPLAY_QUALITY = 80
HIDDEN_TAGS = {"check", "remove-cell", "injected-parameters"}
PLOTTING_LEFTOVERS = re.compile(r"^<(Figure size|IPython\.core\.display\.|matplotlib\.)")
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    "<p class='note'>Interactive controls appear here in JupyterLab: open this notebook there and run its cells "
    "(<b>Run ▸ Run All Cells</b>).</p>"
)
TITLE = "Neural style transfer: the report"

# Code cells fold their source away; prompts are left out.
SECTION_TEMPLATE = """{%- extends 'classic/base.html.j2' -%}
{% block input_group -%}
<details class="code"><summary>code</summary>
{{ super() }}
</details>
{%- endblock input_group %}
"""

STYLE = """
:root { color-scheme: light dark; --fg: #1f2328; --bg: #fff; --muted: #59636e; --rule: #d1d9e0; --panel: #f6f8fa;
  --accent: #0b57d0; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #15181d; --muted: #9aa4ae; --rule: #3d444d; --panel: #1f242b; --accent: #8ab4f8; }
}
html { -webkit-text-size-adjust: 100%; }
body { font: 16px/1.6 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); max-width: 1100px; margin: 0 auto; padding: 1.5rem 1.2rem 4rem; }
h1 { font-size: 1.9em; line-height: 1.25; margin: 0.3em 0; }
h2 { font-size: 1.5em; border-bottom: 1px solid var(--rule); padding-bottom: 0.2em; margin-top: 2.4em; }
h3 { font-size: 1.2em; margin-top: 1.8em; } h4 { font-size: 1.05em; }
a { color: var(--accent); }
.anchor-link { margin-left: 0.35em; text-decoration: none; color: var(--muted); visibility: hidden; }
h2:hover .anchor-link, h3:hover .anchor-link, h4:hover .anchor-link, .anchor-link:focus { visibility: visible; }
p, li { max-width: 80ch; }
table { border-collapse: collapse; margin: 0.8em 0; display: block; overflow-x: auto; max-width: 100%; }
td, th { border: 1px solid var(--rule); padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: var(--panel); }
figure { margin: 1.2em 0 1.6em; }
figure img { display: block; max-width: 100%; height: auto; background: #fff; }
figcaption { color: var(--muted); font-size: 0.92em; margin-top: 0.45em; max-width: 80ch; }
pre { background: var(--panel); padding: 0.6em 0.8em; overflow-x: auto; font-size: 0.88em; }
code { font-size: 0.92em; }
details.code { margin: 0.2em 0; }
details.code > summary { color: var(--muted); cursor: pointer; font-size: 0.85em; }
details.code pre { margin: 0.3em 0 0.8em; }
.meta { color: var(--muted); font-size: 0.9em; }
.note { color: var(--muted); font-style: italic; }
nav.contents ul { padding-left: 1.3em; margin: 0.3em 0; } nav.contents > ul > li { margin: 0.3em 0; }
table.facts th { background: none; font-weight: 600; white-space: nowrap; }
@media (max-width: 640px) { body { font-size: 15px; padding: 1rem 0.7rem 3rem; } h1 { font-size: 1.5em; } }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; color: #000; background: #fff; }
  details.code, .anchor-link { display: none; }
  a { color: inherit; text-decoration: none; }
  h2, h3 { break-after: avoid; } figure, table, pre { break-inside: avoid; }
  h2 { break-before: page; } nav.contents + section h2 { break-before: auto; }
}
"""


@dataclass
class Section:
    """One notebook as it appears on the page."""

    anchor: str
    title: str
    seconds: float
    body: str = ""
    headings: list[tuple[int, str, str]] = field(default_factory=list)  # (level, id, text)
    setup: dict = field(default_factory=dict)


def render(build_dir: Path, sections: list[dict]) -> str:
    """One self-contained HTML page for the executed notebooks under ``build_dir``
    (``sections``: what the build recorded for each, in order)."""
    rendered = [_section(build_dir, record) for record in sections]
    first = next((s.setup for s in rendered if s.setup), {})
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{TITLE}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>{TITLE}</h1>",
        _facts(first, sections),
        "</header>",
        _contents(rendered),
    ]
    for section, record in zip(rendered, sections):
        parts.append(_section_html(section, record))
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------
# One section


def _section(build_dir: Path, record: dict) -> Section:
    import nbformat

    stem = Path(record["notebook"]).stem
    folder = build_dir / stem
    book = nbformat.read(folder / record["notebook"], as_version=4)
    section = Section(anchor=stem, title=stem, seconds=record["seconds"], setup=_setup_of(folder))
    book.cells = [cell for cell in book.cells if not HIDDEN_TAGS & set(cell.metadata.get("tags", []))]
    section.title = _take_title(book) or stem
    figures = _Figures(folder, stem, _number(stem), section.title)
    for cell in book.cells:
        if cell.cell_type == "markdown":
            cell.source = _demoted(cell.source)
            figures.heading = _last_heading(cell.source) or figures.heading
        elif cell.cell_type == "code":
            cell.outputs = [shown for output in cell.get("outputs", []) if (shown := figures.output(output))]
    body, _ = _exporter().from_notebook_node(book)
    section.body, section.headings = _anchored(body, stem)
    return section


def _take_title(book) -> str | None:
    """Remove the notebook's ``# title`` line (the section's heading) and return its text."""
    for cell in book.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            title, _, rest = cell.source.lstrip()[2:].partition("\n")
            cell.source = rest
            return title.strip()
    return None


def _demoted(markdown: str) -> str:
    """Headings one level down (``#`` becomes ``##``), outside fenced code."""
    lines, fenced = [], False
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        lines.append("#" + line if not fenced and re.match(r"#{1,5} ", line) else line)
    return "\n".join(lines)


def _last_heading(markdown: str) -> str | None:
    headings = re.findall(r"^#+ +(.+)$", markdown, flags=re.MULTILINE)
    return headings[-1].strip() if headings else None


def _number(stem: str) -> str:
    digits = re.match(r"\d+", stem)
    return str(int(digits.group())) if digits else stem


class _Figures:
    """Turns a section's outputs into what the page shows, numbering its figures."""

    def __init__(self, folder: Path, stem: str, number: str, title: str):
        self.folder, self.stem, self.number, self.title = folder, stem, number, title
        self.heading = title
        self.count = 0

    def output(self, output):
        """The output as the page shows it, or None to leave it out."""
        kind = output.get("output_type")
        if kind == "stream":
            return output if output.get("name") == "stdout" and output.get("text", "").strip() else None
        if kind not in ("display_data", "execute_result"):
            return output
        data = output.get("data", {})
        if WIDGET in data:
            return _as_html(output, WIDGET_NOTE)
        if "image/png" in data:
            return _as_html(output, self.figure(output))
        if set(data) <= {"text/plain"} and PLOTTING_LEFTOVERS.match(data.get("text/plain", "")):
            return None
        return output

    def figure(self, output) -> str:
        """A numbered, captioned figure at display size that links to its full-size PNG."""
        self.count += 1
        info = output.get("metadata", {}).get(FIGURE_METADATA)
        if info and (self.folder / FIGURES / info["file"]).is_file():
            path = self.folder / FIGURES / info["file"]
            title, caption = info.get("title") or "", info.get("caption") or ""
        else:  # a PNG shown some other way: keep it as a file, so that it too has a full-size link
            path = self.folder / FIGURES / f"output-{self.count}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(output["data"]["image/png"]))
            title, caption = "", f"A figure in “{self.heading}”"
        label = f"Figure {self.number}.{self.count}"
        alt = ". ".join(t.strip().rstrip(".") for t in (title, caption) if t.strip()) + "."
        return figure_html(path, f"{self.stem}/{FIGURES}/{path.name}", label, caption or title, alt)


def _as_html(output, markup: str):
    import nbformat

    return nbformat.v4.new_output("display_data", data={"text/html": markup})


def figure_html(path: Path, href: str, label: str, caption: str, alt: str) -> str:
    """A figure: ``path`` shown at display size (embedded), linking to ``href``, with its caption."""
    source, width, height, full = display_image(path)
    href = html.escape(href, quote=True)
    return (
        f"<figure><a href='{href}'><img src='{source}' width='{width}' height='{height}' "
        f"alt='{html.escape(alt, quote=True)}'></a>"
        f"<figcaption><b>{html.escape(label)}.</b> {html.escape(caption)} "
        f"<a href='{href}'>Full size</a> ({full[0]}×{full[1]} px PNG).</figcaption></figure>"
    )


def display_image(path: Path) -> tuple[str, int, int, tuple[int, int]]:
    """``path`` as a data URI of a compressed image no wider than ``DISPLAY_WIDTH``, its width and
    height, and the full size."""
    with Image.open(path) as picture:
        picture.load()
        full = picture.size
        if picture.mode in ("RGBA", "LA", "P"):
            picture = picture.convert("RGBA")
            flat = Image.new("RGB", picture.size, "white")
            flat.paste(picture, mask=picture.getchannel("A"))
            picture = flat
        picture = picture.convert("RGB")
        if picture.width > DISPLAY_WIDTH:
            picture = picture.resize((DISPLAY_WIDTH, round(picture.height * DISPLAY_WIDTH / picture.width)),
                                     Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        kind = "webp" if features.check("webp") else "jpeg"
        picture.save(buffer, format=kind.upper(), quality=DISPLAY_QUALITY, **({"method": 6} if kind == "webp" else {}))
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/{kind};base64,{encoded}", picture.width, picture.height, full


@lru_cache(maxsize=1)
def _exporter():
    import jinja2
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="basic",
        extra_loaders=[jinja2.DictLoader({"nst_section.html.j2": SECTION_TEMPLATE})],
        template_file="nst_section.html.j2",
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


def _anchored(body: str, prefix: str) -> tuple[str, list[tuple[int, str, str]]]:
    """Give the section's headings ids unique on the page (``<prefix>-<slug>``); drop cell ids."""
    body = re.sub(r' id="cell-id=[^"]*"', "", body)
    renamed: dict[str, str] = {}
    headings = []

    def rename(match) -> str:
        level, old, inner = match.group(1), match.group(2), match.group(3)
        text = html.unescape(re.sub(r"<[^>]+>|¶", "", inner)).strip()
        new = f"{prefix}-{_slug(text)}"
        while new in renamed.values():
            new += "-"
        renamed[old] = new
        headings.append((int(level), new, text))
        return f'<h{level} id="{new}">{inner}</h{level}>'

    body = re.sub(r'<h([2-6]) id="([^"]*)">(.*?)</h\1>', rename, body, flags=re.DOTALL)
    body = re.sub(r'href="#([^"]*)"', lambda m: f'href="#{renamed.get(m.group(1), m.group(1))}"', body)
    return body, headings


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "part"


def _section_html(section: Section, record: dict) -> str:
    parameters = {k: v for k, v in record.get("parameters", {}).items() if k != "output_dir" and v is not None}
    facts = [f"ran for {_duration(section.seconds)}"]
    if parameters:
        facts.append("parameters " + ", ".join(f"{k}={v}" for k, v in parameters.items()))
    link = f"<a href='{section.anchor}/{html.escape(record['notebook'])}'>executed notebook</a>"
    return "\n".join([
        f"<section id='{section.anchor}'>",
        f"<h2>{html.escape(section.title)}<a class='anchor-link' href='#{section.anchor}'>¶</a></h2>",
        f"<p class='meta'>{html.escape(' · '.join(facts))} · {link}</p>",
        section.body,
        "</section>",
    ])


# --------------------------------------------------------------------------------------
# Header and contents


def _facts(setup: dict, sections: list[dict]) -> str:
    total = sum(s["seconds"] for s in sections)
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        ("profile", f"{setup.get('profile', '?')}: images of {setup.get('size', '?')} px (longest side), "
                    f"{setup.get('steps', '?')} evaluations per optimization"),
        ("precision", setup.get("precision", "?")),
        ("VGG-19", f"{setup.get('weights', '?')} weights, {setup.get('pooling', '?')} pooling"),
        ("device", f"{setup.get('device', '?')}: {setup.get('device_name', '?')}, {_threads(setup.get('threads'))}"),
        ("torch", setup.get("torch", "?")),
        ("code", commit()),
        ("built", f"{built}; the notebooks ran for {_duration(total)}"),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table class='facts'>{body}</table>"


def _contents(sections: list[Section]) -> str:
    items = []
    for section in sections:
        subsections = "".join(
            f"<li><a href='#{anchor}'>{html.escape(text)}</a></li>" for level, anchor, text in section.headings
            if level == 3
        )
        items.append(
            f"<li><a href='#{section.anchor}'>{html.escape(section.title)}</a>"
            + (f"<ul>{subsections}</ul>" if subsections else "")
            + "</li>"
        )
    return f"<nav class='contents' aria-label='Contents'><h2 id='contents'>Contents</h2><ul>{''.join(items)}</ul></nav>"


def commit() -> str:
    """The checkout's commit, and whether the working tree differs from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"commit {head}" + (" with uncommitted changes" if changes else "")


def _setup_of(folder: Path) -> dict:
    import json

    try:
        return json.loads((folder / FIGURES / SETUP_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _threads(count) -> str:
    return "? threads" if count is None else f"{count} torch thread" + "s" * (count != 1)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
