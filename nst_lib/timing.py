"""Time on a shared machine: the load while something runs, and timings that survive it.

A time measured once says as much about the other processes as about the code. Two things
help: measuring the things to be compared in turn, round after round, so that a busy stretch
slows them all alike (``alternated``), and comparing them round by round by the median ratio,
which a few disturbed rounds cannot move (``ratio``); and saying what the load was while they
ran (``LoadSampler``, which the report build runs for each section, and ``load_average`` for a
single reading).
"""

from __future__ import annotations

import os
import statistics
import threading
from collections.abc import Callable, Mapping, Sequence


def load_average() -> float | None:
    """The machine's 1-minute load average (runnable processes, ours included), or None where the
    system does not say."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def cores() -> int:
    """The processor cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def describe_load(samples: Sequence[float], cores_: int | None = None) -> str:
    """Load samples in a few words: 'load average 1.9 (1.2 to 3.4) on 2 cores'."""
    cores_ = cores_ or cores()
    if not samples:
        return f"load not recorded ({cores_} cores)"
    middle, low, high = statistics.median(samples), min(samples), max(samples)
    spread = f" ({low:.1f} to {high:.1f})" if high - low >= 0.05 else ""
    return f"load average {middle:.1f}{spread} on {cores_} core" + "s" * (cores_ != 1)


def summary(samples: Sequence[float]) -> dict:
    """Load samples as recorded in a section's record: median, lowest, highest, how many, cores."""
    if not samples:
        return {"samples": 0, "cores": cores()}
    return {"median": round(statistics.median(samples), 2), "low": round(min(samples), 2),
            "high": round(max(samples), 2), "samples": len(samples), "cores": cores()}


class LoadSampler:
    """Samples the load average every ``every`` seconds in a background thread while in a
    ``with`` block; ``samples`` holds the readings (one at the start and one at the end at least)."""

    def __init__(self, every: float = 10.0):
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _take(self) -> None:
        value = load_average()
        if value is not None:
            self.samples.append(value)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._take()

    def __enter__(self) -> "LoadSampler":
        self._take()
        self._thread = threading.Thread(target=self._loop, name="load sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._take()


def alternated(tasks: Mapping[str, Callable[[], float]], repeats: int = 15) -> dict[str, list[float]]:
    """Call every task once per round, in turn, for ``repeats`` rounds; per task, the seconds each call
    returned (a task times what it runs and returns its seconds). Calls next to each other in time see
    the same load: compare tasks round by round (``ratio``), not by totals taken at different times."""
    if repeats < 1:
        raise ValueError(f"repeats is {repeats}: give 1 or more.")
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(repeats):
        for name, task in tasks.items():
            times[name].append(float(task()))
    return times


def ratio(times: Mapping[str, Sequence[float]], first: str, second: str) -> tuple[float, float]:
    """``first``'s time over ``second``'s, round by round (as ``alternated`` measured them, so that both
    times of a round saw the same load): the median of the rounds' ratios, and how far the middle half of
    them spreads around it (half their interquartile range, as a share of the median)."""
    ratios = sorted(a / b for a, b in zip(times[first], times[second]))
    middle = statistics.median(ratios)
    if len(ratios) < 4:
        return middle, (ratios[-1] - ratios[0]) / 2 / middle
    low, _, high = statistics.quantiles(ratios, n=4)
    return middle, (high - low) / 2 / middle
