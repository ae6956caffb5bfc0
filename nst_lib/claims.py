"""Claims: a finding of the report being reproduced, judged by a value measured in this run.

A claim is stated as the source states it and gets one of three verdicts, each with its reason
computed in the run that judged it:

- ``HOLDS``: the measure clears its limit; the reason gives the margin (how far it could move
  before the verdict turned);
- ``FAILS`` (does not hold): the measure misses its limit; the reason says why, as the notebook
  measured it (the budget, the profile, the measure, the load), and by how much it missed;
- ``UNJUDGED`` (cannot be judged): this run cannot decide, whatever the measure says (a budget the
  optimization had not converged in, a difference smaller than the measure's own noise); the reason
  says what is missing.

A test (``below``, ``above``, ``every``) compares a measured value with its limit and knows its
margin: the distance to the limit as a share of the limit, positive when the claim holds.
``judge`` turns a test into a ``Claim``. ``Claims`` shows a table of them in a notebook and carries
them, as JSON in the output's metadata (``METADATA``), to the report's page, which lists every
claim of every section in its summary and writes them to ``claims.json`` beside the page:
two builds are compared with ``python -m nst_lib.claims A/claims.json B/claims.json``.

This module knows nothing of images or networks: it compares numbers and writes sentences.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

HOLDS = "holds"
FAILS = "does not hold"
UNJUDGED = "cannot be judged"
VERDICTS = (HOLDS, FAILS, UNJUDGED)
# The key under which a claims table's output metadata holds its claims.
METADATA = "nst_lib/claims"
COLUMNS = ("claim", "measured", "verdict", "why")
# A run whose best loss fell less than this share over the last tenth of its evaluations has settled:
# more of the same budget would not change what it shows.
SETTLED = 0.05


@dataclass(frozen=True)
class Test:
    """``value`` compared with ``limit``: below it (``relation`` "<") or above it (">")."""

    value: float
    limit: float
    relation: str

    def __post_init__(self):
        if self.relation not in ("<", ">"):
            raise ValueError(f"A test's relation is '<' or '>', not {self.relation!r}.")

    @property
    def holds(self) -> bool:
        return self.value < self.limit if self.relation == "<" else self.value > self.limit

    @property
    def margin(self) -> float:
        """How far the value is from the limit, as a share of the limit: positive when the test holds."""
        gap = self.limit - self.value if self.relation == "<" else self.value - self.limit
        return gap / abs(self.limit) if self.limit else (float("inf") if gap > 0 else float("-inf") if gap else 0.0)

    def describe(self, digits: int = 3) -> str:
        """The value against its limit, e.g. '0.026, limit below 0.055'."""
        side = "below" if self.relation == "<" else "above"
        return f"{self.value:.{digits}g}, limit: {side} {self.limit:.{digits}g}"


def below(value: float, limit: float) -> Test:
    """The claim holds when ``value`` is below ``limit``."""
    return Test(float(value), float(limit), "<")


def above(value: float, limit: float) -> Test:
    """The claim holds when ``value`` is above ``limit``."""
    return Test(float(value), float(limit), ">")


def every(tests: Iterable[Test]) -> Test:
    """All of ``tests`` at once: the one with the smallest margin, which decides the verdict."""
    tests = list(tests)
    if not tests:
        raise ValueError("every() needs at least one test.")
    return min(tests, key=lambda test: test.margin)


def percent(share: float) -> str:
    """A margin as a percentage with the digits it needs: 48%, 1.6%, 0.04%."""
    if share != share or abs(share) == float("inf"):
        return "unbounded"
    magnitude = abs(share) * 100
    digits = 0 if magnitude >= 10 else 1 if magnitude >= 1 else 2
    return f"{magnitude:.{digits}f}%"


@dataclass(frozen=True)
class Claim:
    """One claim as the page shows it: what is claimed, what was measured, the verdict and why.

    ``figure``: the file name (without .png) of the figure it is judged on; None: the figure
    shown last before its table. ``margin``: the test's margin (None when unjudged).
    """

    claim: str
    measured: str
    verdict: str
    reason: str
    figure: str | None = None
    margin: float | None = None

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"A verdict is one of {', '.join(VERDICTS)}, not {self.verdict!r}.")
        if not self.reason.strip():
            raise ValueError(f"The claim {self.claim!r} has no reason for its verdict {self.verdict!r}: give one.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Claim":
        return cls(**{name: data.get(name) for name in ("claim", "measured", "verdict", "reason", "figure", "margin")})


def judge(
    claim: str,
    test: Test,
    measured: str,
    *,
    otherwise: str,
    unless: str | None = None,
    budget: Mapping[str, Sequence[float]] | None = None,
    what: str = "loss",
    rising: bool | None = True,
    within: float = 0.0,
    noise: str = "",
    figure: str | None = None,
) -> Claim:
    """The verdict on ``claim`` by ``test``, with its reason.

    ``otherwise``: why the claim does not hold, should the test fail (computed in the run: the
    budget, the measure, the load). ``unless``: a reason this run cannot judge the claim whatever
    the test says (None: it can).

    ``budget``: the loss histories (``what``) of the runs the measure comes from, whose budget may
    have ended before they settled. More evaluations move the measured value up if ``rising``, down
    if not, either way if None. When that move is toward the limit and the loss still fell, over the
    last tenth of a run, by at least the claim's margin (``still_falling``), more evaluations could
    turn the verdict: the claim is unjudged.

    ``within``: a margin smaller than this share cannot be told from the measure's own variation,
    described by ``noise``; the claim is then unjudged.
    """
    if unless:
        return Claim(claim, measured, UNJUDGED, unless, figure)
    moving = unsettled(budget or {}, what)
    toward = rising is None or ((test.relation == "<") == rising) == test.holds
    if moving and toward and max(still_falling(budget).values()) >= abs(test.margin):
        why = f"{moving}, as much as the claim's margin of {percent(test.margin)}: more evaluations could turn it"
        return Claim(claim, measured, UNJUDGED, why, figure, test.margin)
    if abs(test.margin) < within:
        why = f"the margin, {percent(test.margin)}, is less than the {percent(within)} {noise}".rstrip()
        return Claim(claim, measured, UNJUDGED, why, figure, test.margin)
    note = f"; {moving}, less than the margin" if moving and toward else ""
    if test.holds:
        why = f"margin {percent(test.margin)} ({test.describe()}){note}"
        return Claim(claim, measured, HOLDS, why, figure, test.margin)
    if not otherwise.strip():
        raise ValueError(f"The claim {claim!r} does not hold and says not why: give otherwise=.")
    why = f"{otherwise.strip().rstrip('.')}; it misses by {percent(test.margin)} ({test.describe()}){note}"
    return Claim(claim, measured, FAILS, why, figure, test.margin)


def unsettled(histories: Mapping[str, Sequence[float]], what: str = "loss", limit: float = SETTLED) -> str | None:
    """A sentence naming the run furthest from converging, when its best ``what`` still fell more than
    ``limit`` over the last tenth of its evaluations (``still_falling``); None when every run had settled."""
    falls = still_falling(histories)
    if not falls:
        return None
    name = max(falls, key=falls.get)
    if falls[name] <= limit:
        return None
    evaluations = len(histories[name])
    return (f"the {what} of {name} was still falling ({percent(falls[name])} lower over the last tenth of its "
            f"{evaluations} evaluations)")


def settled(histories: Mapping[str, Sequence[float]], what: str = "loss") -> str:
    """A clause saying how settled the runs were: the largest fall over the last tenth of a run."""
    falls = still_falling(histories)
    name = max(falls, key=falls.get)
    return (f"the {what} had settled (of {name}, {percent(falls[name])} lower over the last tenth of its "
            f"{len(histories[name])} evaluations)")


def still_falling(histories: Mapping[str, Sequence[float]], share: float = 0.1) -> dict[str, float]:
    """Per run, how much its best loss fell over the last ``share`` of its evaluations, as a share of
    the best loss before them: how far the run was from converging when its budget ended."""
    falls = {}
    for name, values in histories.items():
        values = [v for v in values if v == v]
        cut = max(1, round(len(values) * (1 - share)))
        if len(values) < 2 or cut >= len(values):
            falls[name] = 0.0
            continue
        before, after = min(values[:cut]), min(values)
        falls[name] = (before - after) / before if before > 0 else 0.0
    return falls


class Claims:
    """Claims shown as a table in a notebook (and so on the page), carrying them in the output's
    metadata under ``METADATA`` for the page's summary."""

    def __init__(self, claims: Iterable[Claim]):
        self.claims = list(claims)
        for claim in self.claims:
            if not isinstance(claim, Claim):
                raise TypeError(f"A claims table takes Claim objects (from claims.judge), not {claim!r}.")

    def to_html(self) -> str:
        head = "".join(f"<th>{name}</th>" for name in COLUMNS)
        rows = []
        for claim in self.claims:
            cells = (claim.claim, claim.measured, claim.verdict, claim.reason)
            css = {HOLDS: "holds", FAILS: "fails", UNJUDGED: "unjudged"}[claim.verdict]
            rows.append(f"<tr class='{css}'>" + "".join(
                f"<td data-label='{name}'>{html.escape(str(cell))}</td>" for name, cell in zip(COLUMNS, cells)
            ) + "</tr>")
        return f"<table class='claims'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = {"text/html": self.to_html(), "text/plain": repr(self)}
        return data, {METADATA: [claim.to_dict() for claim in self.claims]}

    def __repr__(self) -> str:
        return "\n".join(f"{c.claim}: {c.measured} -> {c.verdict} ({c.reason})" for c in self.claims)


def differences(first: Sequence[Mapping], second: Sequence[Mapping]) -> list[str]:
    """Where two builds' claims (as ``claims.json`` lists them) differ in verdict, one line each; a
    claim that only one build states is a difference too."""
    def keyed(claims):
        return {(c.get("section", ""), c["claim"]): c["verdict"] for c in claims}

    a, b = keyed(first), keyed(second)
    lines = []
    for key in list(a) + [k for k in b if k not in a]:
        if a.get(key) != b.get(key):
            section, claim = key
            lines.append(f"{section}: {claim}: {a.get(key, 'not stated')} / {b.get(key, 'not stated')}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nst_lib.claims A/claims.json B/claims.json``: the claims whose verdicts differ
    between two builds; exit status 0 when none do, 1 when some do."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) != 2:
        print("usage: python -m nst_lib.claims FIRST/claims.json SECOND/claims.json", file=sys.stderr)
        return 2
    loaded = []
    for path in argv:
        try:
            with open(path, encoding="utf-8") as handle:
                loaded.append(json.load(handle)["claims"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            print(f"error: {path} is not a report's claims.json ({error}): give the claims.json that "
                  "`nst report` writes beside index.html.", file=sys.stderr)
            return 2
    lines = differences(*loaded)
    for line in lines:
        print(line)
    print(f"{len(loaded[0])} and {len(loaded[1])} claims; {len(lines) or 'no'} verdict"
          f"{'s' if len(lines) != 1 else ''} differ.")
    return 1 if lines else 0


if __name__ == "__main__":
    raise SystemExit(main())
