"""Timing on a shared machine: calls in turn, ratios round by round, the load while a build runs."""

import time

import pytest

from nst_lib import timing


def test_alternated_calls_every_task_once_per_round_in_turn():
    calls = []

    def task(name, seconds):
        def run():
            calls.append(name)
            return seconds
        return run

    times = timing.alternated({"a": task("a", 0.2), "b": task("b", 0.1)}, repeats=3)
    assert calls == ["a", "b"] * 3 and times == {"a": [0.2] * 3, "b": [0.1] * 3}
    with pytest.raises(ValueError, match="repeats is 0: give 1 or more"):
        timing.alternated({"a": task("a", 1)}, repeats=0)


def test_a_ratio_round_by_round_ignores_a_load_that_slows_both_alike():
    # Round 3 ran while the machine was busy: both timings of that round are five times as long.
    times = {"fast": [1.0, 1.1, 5.0, 1.0, 0.9], "slow": [2.0, 2.2, 10.0, 2.0, 1.8]}
    middle, spread = timing.ratio(times, "fast", "slow")
    assert middle == pytest.approx(0.5) and spread == pytest.approx(0.0)
    # Means taken at different times would not: the same data compared by totals.
    assert sum(times["fast"]) / sum(times["slow"]) == pytest.approx(0.5)
    uneven = {"a": [1.0, 1.2, 0.8, 1.0], "b": [1.0, 1.0, 1.0, 1.0]}
    assert timing.ratio(uneven, "a", "b")[1] > 0


def test_the_load_sampler_reads_the_load_at_the_start_at_the_end_and_in_between():
    with timing.LoadSampler(every=0.05) as load:
        time.sleep(0.3)
    if timing.load_average() is None:
        pytest.skip("this system does not give its load average")
    assert len(load.samples) >= 4 and all(value >= 0 for value in load.samples)
    assert timing.summary(load.samples)["samples"] == len(load.samples)


def test_the_load_is_described_in_a_few_words():
    assert timing.describe_load([0.5, 2.5, 1.9], 2) == "load average 1.9 (0.5 to 2.5) on 2 cores"
    assert timing.describe_load([1.0, 1.0], 1) == "load average 1.0 on 1 core"
    assert timing.describe_load([], 2) == "load not recorded (2 cores)"
