"""Jobs: what a job may carry, running a batch in this process, the network a job is sent with."""

import pytest
import torch

from conftest import blobs, stripes
from nst_lib import jobs as jobs_module
from nst_lib.jobs import InProcess, Job, JobError, ModelSpec, run_in_order
from nst_lib.keys import model_fingerprint
from nst_lib.losses import LossSpec


def jobs(steps=8):
    """Four small optimizations: two style weights x two seeds, 48 x 64 px."""
    content, style = blobs(), stripes()
    return [
        Job(dict(content=content, styles=[style], loss=LossSpec(style_weight=weight), seed=seed, steps=steps),
            f"weight {weight:g}, seed {seed}")
        for weight in (1e2, 1e4)
        for seed in (0, 1)
    ]


def test_a_job_refuses_what_cannot_travel_to_another_process():
    with pytest.raises(ValueError, match="cannot take callback="):
        Job(dict(content=blobs(), callback=print))
    with pytest.raises(ValueError, match="cannot take model="):
        Job(dict(content=blobs(), model="vgg"))
    with pytest.raises(ValueError, match="must be a LossSpec"):
        Job(dict(content=blobs(), loss={"style_weight": 1}))
    assert Job(dict(steps=10, scales=3, coarse_steps=4)).evaluations == 18


def test_in_process_reports_a_failing_job_and_runs_the_others(random_vgg):
    batch = jobs(steps=3)
    batch.insert(1, Job(dict(content=blobs(), styles=[stripes()], init="paint", steps=3), "bad init"))
    outcomes = dict(InProcess(threads=1).run(random_vgg, batch))
    assert isinstance(outcomes[1], JobError) and "bad init failed: ValueError: Unknown init 'paint'" in str(outcomes[1])
    assert all(outcomes[i].evaluations == 3 and outcomes[i].params["threads"] == 1 for i in (0, 2, 3, 4))
    with pytest.raises(JobError, match="bad init failed"):
        run_in_order(InProcess(threads=1), random_vgg, batch)


def test_the_threads_of_an_optimization_are_recorded_and_restored(random_vgg):
    before = torch.get_num_threads()
    (result,) = run_in_order(InProcess(threads=2), random_vgg, jobs(steps=2)[:1])
    assert result.params["threads"] == 2 and torch.get_num_threads() == before


def test_a_model_spec_rebuilds_the_same_network(random_vgg):
    spec = ModelSpec.of(random_vgg)
    assert spec.device == "cpu" and spec.fingerprint == model_fingerprint(random_vgg)
    assert jobs_module.worker_model(spec) is jobs_module.worker_model(spec)  # built once per process
    assert model_fingerprint(jobs_module.worker_model(spec)) == spec.fingerprint
    other = ModelSpec(spec.settings.replace('"seed": 0', '"seed": 1'), "cpu", spec.fingerprint)
    with pytest.raises(RuntimeError, match="other weights than the process that sent the job"):
        jobs_module.worker_model(other)
