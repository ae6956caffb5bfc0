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

Claims tables (``claims.Claims`` outputs) are shown with their verdicts and
reasons, each claim linked to its figure (the one it names, else the last one
shown before it); the page opens with a summary: what was reproduced, the
credit of the report being reproduced and which photographs stand in for
its own, and a table of every claim of every section with its verdict and a
link to its figure (``compose`` returns the claims too, for ``claims.json``).
A notebook's cells from a markdown cell tagged ``appendix`` up to the next
heading of the same or a higher level (the whole notebook, when its title is
tagged) move to the appendix at the end of the page, lettered A, B, ...
A heading with nothing shown under it is left out.
"""

from __future__ import annotations

import base64
import html
import io
import re
import json
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from PIL import Image, features

from . import audit
from . import claims as claim_kinds
from .profiles import FIGURE_METADATA, FIGURES, INPUTS_FILE, NARROW_SUFFIX, SETUP_FILE
from .timing import describe_load

# The width, in CSS pixels, at which figures are shown: the page's text column.
DISPLAY_WIDTH = 1040
# WebP quality of the embedded figures: the standard page, with every grid also in its narrow rendition, stays
# under 3 MB (tests/test_report.py's PAGE_BUDGET_BYTES); each figure links to its full-size PNG.
DISPLAY_QUALITY = 60
HIDDEN_TAGS = {"check", "remove-cell", "injected-parameters"}
PLOTTING_LEFTOVERS = re.compile(r"^<(Figure size|IPython\.core\.display\.|matplotlib\.)")
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    "<p class='note'>Interactive controls appear here in JupyterLab: open this notebook there and run its cells "
    "(<b>Run ▸ Run All Cells</b>).</p>"
)
TITLE = "Neural style transfer: the report"
APPENDIX_TAG = "appendix"
# Below this width (CSS px) figures show their narrow rendition and claims tables stack their cells.
NARROW_SCREEN = 640
# A grid's narrow rendition, embedded beside the figure, at most this wide (a phone's column at about 1x) and
# compressed further, for the same budget.
NARROW_WIDTH = 360
NARROW_QUALITY = 50
# The report being reproduced, and the photographs of its own that named images stand in for.
SOURCE = ("a report on neural style transfer written for an assignment of the course CMU 16-726, "
          "Learning-Based Image Synthesis, in spring 2023")
SOURCE_PHOTOGRAPHS = "photographs of its own (“wally”, “dancing” and an album)"

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
  --accent: #0b57d0; --holds: #1a7f37; --fails: #c4262e; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #15181d; --muted: #9aa4ae; --rule: #3d444d; --panel: #1f242b; --accent: #8ab4f8;
    --holds: #56d364; --fails: #ff8182; }
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
details.facts > summary { color: var(--muted); font-size: 0.92em; cursor: pointer; }
table.claims { display: table; width: 100%; overflow: visible; }
table.claims td { overflow-wrap: anywhere; }
table.claims td.verdict { font-weight: 600; }
table.claims tr.holds td.verdict { color: var(--holds); } table.claims tr.fails td.verdict { color: var(--fails); }
table.claims tr.unjudged td.verdict { color: var(--muted); }
table.claims tr.group th { font-weight: 600; }
.figref { white-space: nowrap; font-size: 0.88em; }
@media (max-width: 640px) {
  body { font-size: 15px; padding: 1rem 0.7rem 3rem; } h1 { font-size: 1.5em; }
  table.claims, table.claims tbody, table.claims tr, table.claims td, table.claims th { display: block; }
  table.claims thead { display: none; }
  table.claims tr { border: 1px solid var(--rule); margin: 0.5em 0; }
  table.claims td, table.claims th { border: 0; padding: 0.25em 0.55em; }
  table.claims td + td { border-top: 1px solid var(--rule); }
  table.claims td::before { content: attr(data-label); display: block; font-size: 0.78em; font-weight: normal;
    color: var(--muted); }
  table.claims td.claim::before { content: none; }
  table.claims tr.group { border: 0; margin: 1em 0 0; }
  figure img { width: 100%; }
}
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
    """One notebook, or one appendix part of one, as it appears on the page."""

    anchor: str
    title: str
    seconds: float
    record: dict = field(default_factory=dict)
    body: str = ""
    headings: list[tuple[int, str, str]] = field(default_factory=list)  # (level, id, text)
    setup: dict = field(default_factory=dict)
    claims: list[dict] = field(default_factory=list)
    label: str = ""  # "1" for a numbered section, "B" for an appendix part
    parent: str = ""  # an appendix part of a numbered section: that section's title


@dataclass
class Page:
    """The page and every claim on it, in page order (as ``claims.json`` records them)."""

    html: str
    claims: list[dict]


def render(build_dir: Path, sections: list[dict]) -> str:
    """One self-contained HTML page for the executed notebooks under ``build_dir``
    (``sections``: what the build recorded for each, in order)."""
    return compose(build_dir, sections).html


def compose(build_dir: Path, sections: list[dict]) -> Page:
    """The page (``render``) and its claims, each with its section, verdict, reason and figure."""
    letters = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    main, appendix = [], []
    for record in sections:
        section, parts = _section(build_dir, record, letters)
        if section is not None:
            main.append(section)
        appendix += parts
    everything = main + appendix
    cost = audit.rows(build_dir, sections)
    if cost:
        appendix.append(Section(anchor="appendix-cost", title="What this build cost", seconds=0, label=next(letters),
                                body=_cost_html(cost)))
    first = next((s.setup for s in everything if s.setup), {})
    claims = [claim for section in everything for claim in section.claims]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{TITLE}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>{TITLE}</h1>",
        _facts(first, sections),
        "</header>",
        _summary(build_dir, sections, main, claims, first),
        _contents(main, appendix),
    ]
    parts += [_section_html(section) for section in main]
    if appendix:
        parts.append("<section id='appendix'><h2>Appendix<a class='anchor-link' href='#appendix'>¶</a></h2>")
        parts += [_part_html(part) for part in appendix]
        parts.append("</section>")
    parts.append("</body></html>")
    return Page("\n".join(parts), [_public(claim) for claim in claims])


# --------------------------------------------------------------------------------------
# One section


def _section(build_dir: Path, record: dict, letters) -> tuple[Section | None, list[Section]]:
    """A notebook as its numbered section (None when all of it is appendix) and its appendix parts."""
    import nbformat

    stem = Path(record["notebook"]).stem
    folder = build_dir / stem
    book = nbformat.read(folder / record["notebook"], as_version=4)
    setup = _setup_of(folder)
    book.cells = [cell for cell in book.cells if not HIDDEN_TAGS & set(cell.metadata.get("tags", []))]
    main_cells, appendix_cells = _split(book.cells)
    title = _take_title(main_cells)
    headings = [_take_title(cells, level) for level, cells in appendix_cells]
    whole = title is None and bool(appendix_cells) and appendix_cells[0][0] == 1  # the title itself is tagged
    title = title or (headings[0] if whole else None) or stem
    section = None
    if any(cell.cell_type == "code" or cell.source.strip() for cell in main_cells):
        section = Section(anchor=stem, title=title, seconds=record["seconds"], record=record, setup=setup,
                          label=_number(stem))
        figures = _Figures(folder, stem, section)
        section.body, section.headings = _body(book, main_cells, figures, stem, shift=1)
    parts = []
    for index, ((level, cells), heading) in enumerate(zip(appendix_cells, headings)):
        letter = next(letters)
        part = Section(anchor=f"appendix-{letter.lower()}", title=_unnumbered(heading or title),
                       seconds=record["seconds"], record=record, setup=setup, label=letter,
                       parent="" if whole and index == 0 else title)
        figures = _Figures(folder, stem, part)
        part.body, part.headings = _body(book, cells, figures, part.anchor, shift=3 - level)
        parts.append(part)
    return section, parts


def _split(cells: list) -> tuple[list, list[tuple[int, list]]]:
    """The cells of the numbered section, and the appendix parts as (heading level, cells): a part starts
    at a markdown cell tagged ``APPENDIX_TAG`` and ends before the next heading of its level or higher."""
    main, parts, current, level = [], [], None, 0
    for cell in cells:
        if cell.cell_type == "markdown":
            heading = _first_level(cell.source)
            if APPENDIX_TAG in cell.metadata.get("tags", []):
                level, current = heading or 1, []
                parts.append((level, current))
            elif current is not None and heading is not None and heading <= level:
                current = None
        (main if current is None else current).append(cell)
    return main, parts


def _first_level(markdown: str) -> int | None:
    match = re.search(r"^(#{1,6}) ", markdown, flags=re.MULTILINE)
    return len(match.group(1)) if match else None


def _body(book, cells: list, figures: "_Figures", prefix: str, shift: int) -> tuple[str, list]:
    """Cells rendered by nbconvert, headings moved ``shift`` levels down and anchored under ``prefix``."""
    import copy

    visible = []
    for cell in cells:
        cell = copy.deepcopy(cell)
        if cell.cell_type == "markdown":
            cell.source = _demoted(cell.source, shift)
            figures.heading = _last_heading(cell.source) or figures.heading
        elif cell.cell_type == "code":
            cell.outputs = [shown for output in cell.get("outputs", []) if (shown := figures.output(output))]
        visible.append(cell)
    part = copy.copy(book)
    part.cells = _without_empty_headings(visible)
    body, _ = _exporter().from_notebook_node(part)
    return _anchored(body, prefix)


def _without_empty_headings(cells: list) -> list:
    """The cells without any heading-only markdown cell under which nothing is shown (no text, no
    output) before the next heading of its level or higher."""
    kept = []
    for index, cell in enumerate(cells):
        level = _first_level(cell.source) if cell.cell_type == "markdown" else None
        if level is not None and not re.sub(r"^#{1,6} .*$", "", cell.source, flags=re.MULTILINE).strip():
            shown = False
            for later in cells[index + 1:]:
                if later.cell_type == "markdown":
                    later_level = _first_level(later.source)
                    if later_level is not None and later_level <= level:
                        break
                    if re.sub(r"^#{1,6} .*$", "", later.source, flags=re.MULTILINE).strip() or later_level:
                        shown = True
                        break
                elif later.cell_type == "code" and later.get("outputs"):
                    shown = True
                    break
            if not shown:
                continue
        kept.append(cell)
    return kept


def _take_title(cells: list, level: int = 1) -> str | None:
    """Remove the first heading of ``level`` from the cells (the section's or part's own heading) and
    return its text."""
    marker = "#" * level + " "
    for cell in cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith(marker):
            title, _, rest = cell.source.lstrip()[len(marker):].partition("\n")
            cell.source = rest
            return title.strip()
    return None


def _unnumbered(title: str) -> str:
    """A heading without its section number ("0. Explorer" -> "Explorer")."""
    return re.sub(r"^\d+(\.\d+)*\.?\s+", "", title)


def _demoted(markdown: str, shift: int = 1) -> str:
    """Headings ``shift`` levels down (``#`` becomes ``##`` for 1), outside fenced code."""
    lines, fenced = [], False
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        lines.append("#" * shift + line if not fenced and re.match(r"#{1,5} ", line) else line)
    return "\n".join(lines)


def _last_heading(markdown: str) -> str | None:
    headings = re.findall(r"^#+ +(.+)$", markdown, flags=re.MULTILINE)
    return headings[-1].strip() if headings else None


def _number(stem: str) -> str:
    digits = re.match(r"\d+", stem)
    return str(int(digits.group())) if digits else stem


class _Figures:
    """Turns a section's outputs into what the page shows, numbering its figures and claims."""

    def __init__(self, folder: Path, stem: str, section: Section):
        self.folder, self.stem, self.section = folder, stem, section
        self.number = section.label
        self.heading = section.title
        self.count = 0
        self.shown: dict[str, tuple[str, str]] = {}  # figure file stem -> (label, anchor)
        self.last: tuple[str, str] | None = None

    def output(self, output):
        """The output as the page shows it, or None to leave it out."""
        kind = output.get("output_type")
        if kind == "stream":
            return output if output.get("name") == "stdout" and output.get("text", "").strip() else None
        if kind not in ("display_data", "execute_result"):
            return output
        data = output.get("data", {})
        if claim_kinds.METADATA in output.get("metadata", {}):
            return _as_html(output, self.claims(output["metadata"][claim_kinds.METADATA]))
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
        anchor = f"figure-{self.number.lower()}-{self.count}"
        self.shown[path.stem] = self.last = (label, anchor)
        alt = ". ".join(t.strip().rstrip(".") for t in (title, caption) if t.strip()) + "."
        return figure_html(path, f"{self.stem}/{FIGURES}/{path.name}", label, caption or title, alt, anchor=anchor)

    def claims(self, stated: list[dict]) -> str:
        """A claims table with each claim's row anchored and linked to its figure."""
        rows = []
        for data in stated:
            claim = claim_kinds.Claim.from_dict(data)
            label, anchor = (self.shown.get(claim.figure) if claim.figure else None) or self.last or ("", "")
            record = {
                **claim.to_dict(), "section": self.section.label, "section_title": self.section.title,
                "section_anchor": self.section.anchor, "heading": self.heading,
                "id": f"claim-{self.section.label.lower()}-{len(self.section.claims) + 1}",
                "figure_label": label, "figure_anchor": anchor,
            }
            self.section.claims.append(record)
            rows.append(record)
        return claims_table(rows)


def claims_table(rows: list[dict], summary: bool = False) -> str:
    """Claims as a table whose rows stack on a narrow screen: claim (with a link to its figure), what was
    measured (left out of the summary, which links to the claim's row instead), verdict and why."""
    columns = ["claim", "verdict", "why"] if summary else ["claim", "measured", "verdict", "why"]
    head = "".join(f"<th>{name}</th>" for name in columns)
    body, group = [], None
    for row in rows:
        if summary and row["section_anchor"] != group:
            group = row["section_anchor"]
            title = row["section_title"] if row["section"].isdigit() else f"{row['section']}. {row['section_title']}"
            body.append(f"<tr class='group'><th colspan='{len(columns)}'><a href='#{group}'>"
                        f"{'Appendix ' if not row['section'].isdigit() else ''}{html.escape(title)}</a></th></tr>")
        figure = (f" <a class='figref' href='#{row['figure_anchor']}'>{html.escape(row['figure_label'])}</a>"
                  if row.get("figure_anchor") else "")
        claim = (f"<a href='#{row['id']}'>{html.escape(row['claim'])}</a>" if summary
                 else html.escape(row["claim"])) + figure
        cells = {"claim": claim, "measured": html.escape(row["measured"]),
                 "verdict": html.escape(row["verdict"]), "why": html.escape(row["reason"])}
        css = {claim_kinds.HOLDS: "holds", claim_kinds.FAILS: "fails", claim_kinds.UNJUDGED: "unjudged"}[row["verdict"]]
        ident = "" if summary else f" id='{row['id']}'"
        body.append(f"<tr class='{css}'{ident}>" + "".join(
            f"<td data-label='{name}' class='{name}'>{cells[name]}</td>" for name in columns) + "</tr>")
    kind = "claims summary" if summary else "claims"
    return f"<table class='{kind}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _public(claim: dict) -> dict:
    """A claim as ``claims.json`` records it: the section's number or letter and title, not page anchors."""
    keep = ("section", "section_title", "heading", "claim", "measured", "verdict", "reason", "margin", "figure_label")
    return {name: claim.get(name) for name in keep}


def _as_html(output, markup: str):
    import nbformat

    return nbformat.v4.new_output("display_data", data={"text/html": markup})


def figure_html(path: Path, href: str, label: str, caption: str, alt: str, anchor: str | None = None) -> str:
    """A figure: ``path`` shown at display size (embedded), linking to ``href``, with its caption; on a
    narrow screen, its narrow rendition (``<name>.narrow.png`` beside it) when there is one."""
    source, width, height, full = display_image(path)
    narrow = path.with_name(path.stem + NARROW_SUFFIX)
    image = f"<img src='{source}' width='{width}' height='{height}' alt='{html.escape(alt, quote=True)}'>"
    if narrow.is_file():
        small, small_width, small_height, _ = display_image(narrow, NARROW_QUALITY, NARROW_WIDTH)
        image = (f"<picture><source media='(max-width: {NARROW_SCREEN}px)' srcset='{small}' width='{small_width}' "
                 f"height='{small_height}'>{image}</picture>")
    href = html.escape(href, quote=True)
    ident = f" id='{anchor}'" if anchor else ""
    return (
        f"<figure{ident}><a href='{href}'>{image}</a>"
        f"<figcaption><b>{html.escape(label)}.</b> {html.escape(caption)} "
        f"<a href='{href}'>Full size</a> ({full[0]}×{full[1]} px PNG).</figcaption></figure>"
    )


def display_image(
    path: Path, quality: int = DISPLAY_QUALITY, width: int = DISPLAY_WIDTH
) -> tuple[str, int, int, tuple[int, int]]:
    """``path`` as a data URI of a compressed image no wider than ``width``, its width and height, and
    the full size."""
    with Image.open(path) as picture:
        picture.load()
        full = picture.size
        if picture.mode in ("RGBA", "LA", "P"):
            picture = picture.convert("RGBA")
            flat = Image.new("RGB", picture.size, "white")
            flat.paste(picture, mask=picture.getchannel("A"))
            picture = flat
        picture = picture.convert("RGB")
        if picture.width > width:
            picture = picture.resize((width, round(picture.height * width / picture.width)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        kind = "webp" if features.check("webp") else "jpeg"
        picture.save(buffer, format=kind.upper(), quality=quality, **({"method": 6} if kind == "webp" else {}))
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


def _section_html(section: Section) -> str:
    record = section.record
    parameters = {k: v for k, v in record.get("parameters", {}).items() if k != "output_dir" and v is not None}
    facts = [f"ran for {_duration(section.seconds)}"]
    if record.get("load"):
        facts.append(describe_load(record["load"], record.get("cores")))
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


def _part_html(part: Section) -> str:
    meta = ""
    if part.record:
        stem = Path(part.record["notebook"]).stem
        link = f"<a href='{stem}/{html.escape(part.record['notebook'])}'>executed notebook</a>"
        origin = f"from “{html.escape(part.parent)}” · " if part.parent else ""
        meta = f"<p class='meta'>{origin}{link}</p>"
    return "\n".join([
        f"<section id='{part.anchor}'>",
        f"<h3>{part.label}. {html.escape(part.title)}<a class='anchor-link' href='#{part.anchor}'>¶</a></h3>",
        meta,
        part.body,
        "</section>",
    ])


def _cost_html(cost: list[dict]) -> str:
    return ("<p>Every optimization, training and timing this build ran, by section and figure, with the seconds it "
            "took in this build (an optimization read back from the store, computed by an earlier build or section, "
            "costs none; the time it took then is said). Each section's last row is the rest of its time: starting "
            "the kernel, loading the network and the pictures, drawing the figures, judging the claims. "
            "<code>nst report</code> prints the same table when it ends; <code>build.json</code> keeps every entry.</p>"
            + audit.html(cost))


# --------------------------------------------------------------------------------------
# Header, summary and contents


def _facts(setup: dict, sections: list[dict]) -> str:
    """The build's facts: one line always shown (profile, device, load, time), the table one click away."""
    total = sum(s["seconds"] for s in sections)
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    samples = [value for s in sections for value in s.get("load", [])]
    cores = next((s["cores"] for s in sections if s.get("cores")), None)
    load = describe_load(samples, cores)
    profile = (f"{setup.get('profile', '?')}: images of {setup.get('size', '?')} px (longest side), "
               f"{setup.get('steps', '?')} evaluations per optimization")
    device = f"{setup.get('device', '?')}: {setup.get('device_name', '?')}, {_threads(setup.get('threads'))}"
    rows = [
        ("profile", profile),
        ("precision", setup.get("precision", "?") + (f": {setup['precision_reason']}" if setup.get("precision_reason")
                                                      else "")),
        ("VGG-19", f"{setup.get('weights', '?')} weights, {setup.get('pooling', '?')} pooling"),
        ("device", device),
        ("load", f"{load} while the notebooks ran (sampled every few seconds; a load above the cores means the "
                 "build shared the machine)"),
        ("torch", setup.get("torch", "?")),
        ("code", commit()),
        ("built", f"{built}; the notebooks ran for {_duration(total)}"),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    line = (f"Built {built} at the {setup.get('profile', '?')} profile on {setup.get('device_name', '?')}, "
            f"{setup.get('precision', '?')}; {load}; the notebooks ran for {_duration(total)}.")
    return (f"<details class='facts'><summary>{html.escape(line)}</summary>"
            f"<table class='facts'>{body}</table></details>")


def _summary(build_dir: Path, records: list[dict], main: list[Section], claims: list[dict], setup: dict) -> str:
    """What was reproduced, every claim with its verdict and figure, and which pictures stand in for the
    source's own photographs."""
    profile = (f"the {setup.get('profile', '?')} profile (images of {setup.get('size', '?')} px, "
               f"{setup.get('steps', '?')} evaluations per optimization)")
    sections = "; ".join(_unnumbered(section.title) for section in main) or "none of its sections"
    parts = [
        "<section id='summary'><h2>Summary<a class='anchor-link' href='#summary'>¶</a></h2>",
        f"<p>This page reproduces {html.escape(SOURCE)}: its experiments run again with this package's code, at "
        f"{html.escape(profile)}. Sections: {html.escape(sections)}.</p>",
        f"<p>The findings of that report, and a few of this package's own, are stated as claims, each judged by a "
        f"value measured in this build. {html.escape(_tally(claims))} Each row links to the claim in its section, "
        "where the value measured is given, and to the figure it is judged on.</p>",
        claims_table(claims, summary=True) if claims else "",
        _pictures(build_dir, records),
        "</section>",
    ]
    return "\n".join(part for part in parts if part)


def _tally(claims: list[dict]) -> str:
    """'Of its 12 claims, 9 hold, 2 do not hold and 1 cannot be judged at this profile.'"""
    if not claims:
        return "No section of this build states a claim."
    words = {claim_kinds.HOLDS: ("holds", "hold"), claim_kinds.FAILS: ("does not hold", "do not hold"),
             claim_kinds.UNJUDGED: ("cannot be judged at this profile", "cannot be judged at this profile")}
    counts = [(verdict, sum(c["verdict"] == verdict for c in claims)) for verdict in claim_kinds.VERDICTS]
    said = [f"{count} {words[verdict][count != 1]}" for verdict, count in counts if count]
    listed = said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]
    return f"Of its {len(claims)} claim{'s' * (len(claims) != 1)}, {listed}."


def _pictures(build_dir: Path, records: list[dict]) -> str:
    """The photographs and paintings this build loaded (``inputs.json`` of each section), against the
    source's own photographs."""
    from .assets import image_sets, manifest

    loaded = []
    for record in records:
        try:
            names = json.loads((build_dir / Path(record["notebook"]).stem / FIGURES / INPUTS_FILE).read_text())
        except (OSError, ValueError):
            continue
        loaded += [name for name in names if name not in loaded]
    if not loaded:
        return ""
    known = manifest()
    kodak = set(image_sets().get("kodak", ()))
    def credited(name: str) -> str:
        asset = known[name]
        return asset.title if asset.author.lower() in ("", "unknown") else f"{asset.title} by {asset.author}"

    photographs = [credited(n) for n in loaded if n in known and known[n].role == "content"]
    suite = [n for n in loaded if n in kodak]
    if suite:
        photographs.append(f"{len(suite)} photographs of the Kodak Lossless True Color Image Suite")
    paintings = [credited(n) for n in loaded if n in known and known[n].role == "style"]
    yours = [Path(n).name for n in loaded if n not in known]
    text = [f"The report being reproduced used {SOURCE_PHOTOGRAPHS}, which are not public; this build uses "
            f"in their place: {'; '.join(photographs) or 'no named photograph'}."]
    if paintings:
        text.append(f"Paintings: {'; '.join(paintings)}.")
    if yours:
        text.append(f"Your pictures: {', '.join(yours)}.")
    return f"<p>{html.escape(' '.join(text))}</p>"


def _contents(main: list[Section], appendix: list[Section]) -> str:
    items = ["<li><a href='#summary'>Summary</a></li>"]
    for section in main:
        subsections = "".join(
            f"<li><a href='#{anchor}'>{html.escape(text)}</a></li>" for level, anchor, text in section.headings
            if level == 3
        )
        items.append(
            f"<li><a href='#{section.anchor}'>{html.escape(section.title)}</a>"
            + (f"<ul>{subsections}</ul>" if subsections else "")
            + "</li>"
        )
    if appendix:
        parts = "".join(f"<li><a href='#{part.anchor}'>{part.label}. {html.escape(part.title)}</a></li>"
                        for part in appendix)
        items.append(f"<li><a href='#appendix'>Appendix</a><ul>{parts}</ul></li>")
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
    try:
        return json.loads((folder / FIGURES / SETUP_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _threads(count) -> str:
    return "? threads" if count is None else f"{count} torch thread" + "s" * (count != 1)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
