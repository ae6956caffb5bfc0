"""What a report build spent its time on: every optimization, training and timing, by section and figure.

Each notebook's ``Setup`` records its work in ``setup.json`` (``"work"``: one entry per optimization, run or
read back from the store, and per block timed with ``Setup.cost``), with the figure it was for. ``rows``
groups the entries of a build by section, figure and kind, and adds per section what the entries do not
cover (starting the kernel, loading the network and the pictures, drawing the figures, judging the claims);
``text`` prints them at the end of ``nst report``, ``html`` shows them in the page's appendix, and
``build.json`` keeps them.
"""

from __future__ import annotations

import html as markup
import json
from pathlib import Path

from .profiles import FIGURES, SETUP_FILE

COLUMNS = ("section", "figure", "work", "size (px)", "evaluations or steps", "precision", "seconds")


def work_of(build_dir: Path, record: dict) -> list[dict]:
    """The work a section's notebook recorded (``setup.json``), or none where it recorded nothing."""
    try:
        work = json.loads((build_dir / Path(record["notebook"]).stem / FIGURES / SETUP_FILE).read_text())["work"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [entry for entry in work if isinstance(entry, dict)] if isinstance(work, list) else []


def rows(build_dir: Path, sections: list[dict]) -> list[dict]:
    """One row per section, figure and kind of work (with ``COLUMNS`` as keys), then the section's rest."""
    table = []
    for record in sections:
        number = record["notebook"][:2]
        work = work_of(build_dir, record)
        groups: dict[tuple, list[dict]] = {}
        for entry in work:  # optimizations together, each other kind of work on its own
            what = None if entry.get("optimization") else entry.get("what")
            key = (entry.get("figure") or "(a table)", entry.get("unit"), entry.get("precision"), what)
            groups.setdefault(key, []).append(entry)
        for (figure, unit, precision, _), entries in groups.items():
            table.append({"section": number, "figure": figure, "work": _work(entries),
                          "size (px)": _spread([e.get("size", "?") for e in entries]),
                          "evaluations or steps": _amounts(entries, unit), "precision": precision,
                          "seconds": round(sum(e.get("seconds", 0.0) for e in entries), 1)})
        listed = sum(e.get("seconds", 0.0) for e in work)
        table.append({"section": number, "figure": "", "work": "everything else: kernel, network, pictures, "
                      "figures, claims", "size (px)": "", "evaluations or steps": "", "precision": "",
                      "seconds": round(max(record.get("seconds", 0.0) - listed, 0.0), 1)})
    return table


def _work(entries: list[dict]) -> str:
    """'10 optimizations (content conv1_1 ... content conv5_2), 2 read back from earlier builds' or the one label."""
    reused = sum(e.get("reused_seconds") is not None for e in entries)
    if not entries[0].get("optimization"):
        text = str(entries[0].get("what"))
    elif len(entries) == 1:
        text = f"1 optimization ({entries[0].get('what')})"
    else:
        text = f"{len(entries)} optimizations ({entries[0].get('what')} ... {entries[-1].get('what')})"
    if reused:
        before = sum(e["reused_seconds"] for e in entries if e.get("reused_seconds") is not None)
        text += f"; {reused} read back from the store ({before:.0f} s when computed)"
    return text


def _spread(values: list) -> str:
    distinct = list(dict.fromkeys(map(str, values)))
    return distinct[0] if len(distinct) == 1 else ", ".join(distinct)


def _amounts(entries: list[dict], unit) -> str:
    amounts = [int(e.get("amount", 0)) for e in entries]
    each = " each" if len(amounts) > 1 else ""
    if len(set(amounts)) == 1:
        return f"{amounts[0]} {unit}{each}"
    return f"{sum(amounts)} {unit} ({min(amounts)} to {max(amounts)}{each})"


def text(table: list[dict]) -> str:
    """The audit as a plain-text table for a terminal, with the total."""
    if not table:
        return "cost of this build: nothing recorded"
    widths = {c: max(len(c), *(len(_cell(row[c])) for row in table)) for c in COLUMNS if c != "work"}
    lines = ["cost of this build (seconds this build spent; read back from the store: 0):"]
    header = [c.ljust(widths[c]) for c in COLUMNS if c != "work"] + ["work"]
    lines.append("  ".join(header))
    for row in table:
        lines.append("  ".join([_cell(row[c]).ljust(widths[c]) for c in COLUMNS if c != "work"] + [row["work"]]))
    lines.append(f"total: {sum(row['seconds'] for row in table):.0f} s")
    return "\n".join(lines)


def html(table: list[dict]) -> str:
    """The audit as the page's table (the same rows as ``text``), with the total."""
    head = "".join(f"<th>{markup.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{markup.escape(_cell(row[c]))}</td>" for c in COLUMNS) + "</tr>"
                   for row in table)
    total = sum(row["seconds"] for row in table)
    return (f"<table class='audit'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<p>In all: {total:.0f} s of notebooks.</p>")


def _cell(value) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)
