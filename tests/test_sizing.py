"""Sizing a local cluster: the layout that finishes soonest, and the memory an optimization needs."""

import pytest

from nst_lib import sizing
from nst_lib.sizing import plan_layout

GIB = 2**30


def test_the_layout_follows_the_measured_speed_the_memory_and_the_batch():
    sublinear = {1: 1.0, 2: 0.6, 4: 0.4}  # seconds per evaluation with 1, 2, 4 threads
    assert plan_layout(4, 64 * GIB, GIB, sublinear).shape == (4, 1)  # many jobs: one thread per worker
    assert plan_layout(4, 64 * GIB, GIB, sublinear, tasks=1).shape == (1, 4)  # one job: all threads on it
    assert plan_layout(4, 64 * GIB, GIB, sublinear, tasks=2).shape == (2, 2)
    tight = plan_layout(16, 3.5 * GIB, GIB, {1: 1.0, 2: 0.6})
    assert tight.workers == 3 and "limited by memory" in tight.reason
    linear = plan_layout(4, 64 * GIB, GIB, {1: 1.0, 2: 0.5, 4: 0.25})
    assert linear.workers * linear.threads == 4
    with pytest.raises(ValueError, match="needs about 2.0 GiB but only 1.0 GiB are free"):
        plan_layout(4, GIB, 2 * GIB, sublinear)


def test_an_optimization_needs_more_memory_at_larger_sizes():
    small, large = (sizing.optimization_bytes((s, s)) for s in (256, 512))
    assert sizing.PROCESS_BYTES < small < large
    # The forward pass to conv5_1 keeps 83.9 million values at 512 px (counted by hand from VGG-19's shapes).
    assert sizing.activation_values((512, 512)) == 83_886_080
