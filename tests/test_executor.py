"""Executors: jobs, layouts, GPU workers, and the same pictures in-process and on a local Dask cluster."""

import os
import re
import time
import tomllib
from pathlib import Path

import pytest
import torch
from conftest import blobs, stripes, web_server

from nst_lib import executor, report
from nst_lib.executor import InProcess, Job, JobError, Layout, ModelSpec, plan_layout, run_in_order
from nst_lib.losses import LossSpec
from nst_lib.notebook import setup

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30


def jobs(steps=8):
    """Four small optimizations: two style weights x two seeds, 48 x 64 px."""
    content, style = blobs(), stripes()
    return [
        Job(dict(content=content, styles=[style], loss=LossSpec(style_weight=weight), seed=seed, steps=steps),
            f"weight {weight:g}, seed {seed}")
        for weight in (1e2, 1e4)
        for seed in (0, 1)
    ]


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module: two workers, one thread each."""
    said = []
    started = executor.local_cluster(workers=2, threads=1, size=64, log=said.append)
    started.said = said
    yield started
    started.close()


# --------------------------------------------------------------------------------------
# Without a cluster.


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
    assert spec.device == "cpu" and spec.fingerprint == executor.model_fingerprint(random_vgg)
    assert executor.worker_model(spec) is executor.worker_model(spec)  # built once per process
    assert executor.model_fingerprint(executor.worker_model(spec)) == spec.fingerprint
    other = ModelSpec(spec.settings.replace('"seed": 0', '"seed": 1'), "cpu", spec.fingerprint)
    with pytest.raises(RuntimeError, match="other weights than the process that sent the job"):
        executor.worker_model(other)


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
    small, large = (executor.optimization_bytes((s, s)) for s in (256, 512))
    assert executor.PROCESS_BYTES < small < large
    # The forward pass to conv5_1 keeps 83.9 million values at 512 px (counted by hand from VGG-19's shapes).
    assert executor.activation_values((512, 512)) == 83_886_080


def test_each_gpu_worker_sees_only_its_own_gpu():
    spec = executor.gpu_worker_spec(3)
    visible = [worker["options"]["env"]["CUDA_VISIBLE_DEVICES"] for worker in spec.values()]
    assert visible == ["0", "1", "2"]
    assert all(worker["options"]["nthreads"] == 1 for worker in spec.values())
    # A job asked for on cuda:1 runs on each worker's own (only) GPU.
    assert executor.pick_device_kind("cuda:1") == "cuda" and executor.pick_device_kind("cpu") == "cpu"


def test_the_executor_is_chosen_by_name_or_environment(monkeypatch):
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    monkeypatch.setenv("NST_THREADS", "3")
    chosen = executor.executor_from()
    assert isinstance(chosen, InProcess) and chosen.threads == 3
    monkeypatch.setenv("NST_THREADS", "many")
    with pytest.raises(ValueError, match="NST_THREADS='many' is not a number of threads"):
        executor.executor_from()
    with pytest.raises(ValueError, match="Unknown executor 'cloud'"):
        executor.executor_from("cloud", threads=1)
    monkeypatch.setattr(executor, "available_cores", lambda: 2)
    monkeypatch.delenv("NST_EXECUTOR")
    assert isinstance(executor.executor_from("auto", threads=1), InProcess)  # 2 cores: in-process


def test_an_unreachable_scheduler_is_one_sentence():
    with pytest.raises(ValueError, match=r"Cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'.*dask scheduler"):
        executor.connect("tcp://127.0.0.1:9", timeout="1s")


def within(seconds: float, call):
    """What ``call()`` raised or returned, or a failure when it has not ended within ``seconds``."""
    import threading

    ended = {}

    def attempt():
        try:
            ended["returned"] = call()
        except Exception as error:
            ended["raised"] = error

    waiting = threading.Thread(target=attempt, daemon=True)  # one that hangs is left behind, and fails the test
    waiting.start()
    waiting.join(seconds)
    assert ended, f"still waiting after {seconds} s"
    return ended


def test_a_server_that_is_not_a_dask_scheduler_is_one_sentence_within_the_timeout():
    with web_server() as address:
        started = time.monotonic()
        ended = within(30, lambda: executor.connect(address, timeout="2s"))
    assert isinstance(ended.get("raised"), ValueError), ended
    assert str(ended["raised"]) == (
        f"{address} answers, but not as a Dask scheduler (no scheduler's handshake within 2 s): give the "
        "scheduler's own address (`dask scheduler` prints it; port 8786 by default), not its dashboard's or another "
        "server's.")
    assert time.monotonic() - started < 5


def test_a_worker_is_not_taken_for_the_scheduler(cluster):
    worker = next(iter(cluster.client.scheduler_info()["workers"]))
    with pytest.raises(ValueError, match=f"^{worker} is a Dask worker, not the scheduler: give the scheduler's own"):
        executor.connect(worker, timeout="5s")


def test_in_process_and_a_scheduler_are_not_both_asked_for(monkeypatch):
    with pytest.raises(ValueError, match="The executor 'inprocess' runs the batch here and the scheduler "
                                         r"tcp://127.0.0.1:9 names a cluster \(--executor, --scheduler\): give one"):
        executor.executor_from("inprocess", scheduler="tcp://127.0.0.1:9")
    monkeypatch.setenv("NST_SCHEDULER", "tcp://127.0.0.1:9")  # the environment's address gives way, and says so
    said = []
    assert isinstance(executor.executor_from("inprocess", log=said.append), InProcess)
    assert said == ["NST_SCHEDULER=tcp://127.0.0.1:9 is set, but the batch runs in this process, as asked."]


def test_dask_is_pinned_alike_in_requirements_and_the_conda_environment():
    def pins(text):
        return dict(re.findall(r"^\s*-?\s*(dask|distributed)==(\S+)", text, flags=re.M))

    required = pins((ROOT / "requirements.txt").read_text())
    assert set(required) == {"dask", "distributed"}
    assert pins((ROOT / "environment.yml").read_text()) == required
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["cluster"]
    assert {re.match(r"[a-z]+", text).group() for text in extra} >= {"dask", "distributed", "bokeh"}


# --------------------------------------------------------------------------------------
# On a local cluster.


def test_a_cluster_returns_the_same_pictures_as_this_process(cluster, random_vgg):
    batch = jobs()
    here = run_in_order(InProcess(threads=1), random_vgg, batch)
    there = run_in_order(cluster, random_vgg, batch)
    for a, b in zip(here, there):
        assert torch.equal(a.image, b.image) and a.history == b.history
        assert b.params["threads"] == 1 and b.params["loss"] == a.params["loss"]
    assert len({r.params["seed"] for r in there}) == 2  # in order: each result is its own job's
    assert cluster.said[0].startswith("local Dask cluster: 2 workers x 1 threads")
    assert cluster.said[1].startswith("Dask dashboard: ")  # its address, or how to get one


def test_workers_keep_their_network_and_free_memory_trimming_stays_off(cluster, random_vgg):
    def state():
        return len(executor._MODELS), os.environ.get("MALLOC_TRIM_THRESHOLD_")

    for _ in range(2):
        run_in_order(cluster, random_vgg, jobs(steps=2))
    models = cluster.client.run(state)
    assert len(models) == 2 and sum(count for count, _ in models.values()) >= 1
    assert all(count <= 1 and trim is None for count, trim in models.values())  # one network per worker, kept
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ  # not left in this process either


def test_a_notebook_batch_runs_on_the_cluster(cluster, tmp_path, random_vgg):
    run = setup("quick", output_dir=tmp_path, weights="random")
    run.model = random_vgg
    run._executor = cluster
    results = run.transfer_all({seed: dict(content=blobs(), styles=[stripes()], seed=seed, steps=4) for seed in (3, 4)})
    assert list(results) == [3, 4] and [r.params["seed"] for r in results.values()] == [3, 4]


def test_served_tells_child_processes_where_the_cluster_is(cluster, monkeypatch):
    monkeypatch.delenv("NST_SCHEDULER", raising=False)
    monkeypatch.delenv("NST_EXECUTOR", raising=False)  # the tests' own setting: served must put back what it found
    address = cluster.client.scheduler.address
    with executor.served(scheduler=address, threads=1, log=lambda line: None) as chosen:
        assert os.environ["NST_SCHEDULER"] == address and os.environ["NST_THREADS"] == "1"
        assert chosen.workers == 2
    assert "NST_SCHEDULER" not in os.environ
    with executor.served("inprocess"):
        assert os.environ["NST_EXECUTOR"] == "inprocess"
    assert "NST_EXECUTOR" not in os.environ
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")  # an address given outright outranks the environment
    with executor.served(scheduler=address, log=lambda line: None) as chosen:
        assert isinstance(chosen, executor.DaskExecutor) and os.environ["NST_SCHEDULER"] == address


def test_gpu_workers_start_with_their_own_device_and_leave_this_environment_alone():
    before = dict(os.environ)
    started = executor._start(Layout(2, 1, 0, "two pretend GPUs"), gpus=True)
    try:
        seen = started.client.run(lambda: (os.environ["CUDA_VISIBLE_DEVICES"], os.environ["OMP_NUM_THREADS"]))
    finally:
        started.close()
    assert sorted(seen.values()) == [("0", "1"), ("1", "1")]
    assert dict(os.environ) == before


def test_the_report_builds_on_a_local_cluster_with_the_same_figures(tmp_path):
    figures = {}
    for kind in ("inprocess", "local"):
        output = tmp_path / kind
        report.build(output, profile="quick", only=["01"], executor=kind, threads=1, log=lambda line: None)
        folder = output / "01_content_reconstruction" / "figures"
        figures[kind] = {path.name: path.read_bytes() for path in folder.glob("*.png")}
    assert len(figures["inprocess"]) >= 2
    assert figures["local"] == figures["inprocess"]


def test_the_code_fingerprint_follows_the_library_but_not_the_page(tmp_path, monkeypatch):
    import shutil

    from nst_lib import executor

    package = tmp_path / "nst_lib"
    shutil.copytree(Path(executor.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(executor, "__file__", str(package / "executor.py"))
    before = executor.code_fingerprint()
    (package / "page.py").write_text((package / "page.py").read_text() + "\n# a new page rule\n")
    assert executor.code_fingerprint() == before
    (package / "losses.py").write_text((package / "losses.py").read_text() + "\n# a new loss\n")
    assert executor.code_fingerprint() != before
