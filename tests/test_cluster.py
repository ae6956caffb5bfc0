"""The Dask cluster: choosing an executor, GPU workers, and the same pictures in this process and on a
local cluster."""

import os
import re
import time
import tomllib
from pathlib import Path

import pytest
import torch
from conftest import blobs, stripes, web_server
from test_jobs import jobs

from nst_lib import cluster as clusters
from nst_lib import jobs as jobs_module
from nst_lib import report
from nst_lib.jobs import InProcess, run_in_order
from nst_lib.keys import device_kind
from nst_lib.notebook import setup
from nst_lib.sizing import Layout

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module: two workers, one thread each."""
    said = []
    started = clusters.local_cluster(workers=2, threads=1, size=64, log=said.append)
    started.said = said
    yield started
    started.close()


# --------------------------------------------------------------------------------------
# Without a cluster.


def test_each_gpu_worker_sees_only_its_own_gpu():
    spec = clusters.gpu_worker_spec(3)
    visible = [worker["options"]["env"]["CUDA_VISIBLE_DEVICES"] for worker in spec.values()]
    assert visible == ["0", "1", "2"]
    assert all(worker["options"]["nthreads"] == 1 for worker in spec.values())
    # A job asked for on cuda:1 runs on each worker's own (only) GPU.
    assert device_kind("cuda:1") == "cuda" and device_kind("cpu") == "cpu"


def test_the_executor_is_chosen_by_name_or_environment(monkeypatch):
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    monkeypatch.setenv("NST_THREADS", "3")
    chosen = clusters.executor_from()
    assert isinstance(chosen, InProcess) and chosen.threads == 3
    monkeypatch.setenv("NST_THREADS", "many")
    with pytest.raises(ValueError, match="NST_THREADS='many' is not a number of threads"):
        clusters.executor_from()
    with pytest.raises(ValueError, match="Unknown executor 'cloud'"):
        clusters.executor_from("cloud", threads=1)
    monkeypatch.setattr(clusters, "available_cores", lambda: 2)
    monkeypatch.delenv("NST_EXECUTOR")
    assert isinstance(clusters.executor_from("auto", threads=1), InProcess)  # 2 cores: in-process


def test_an_unreachable_scheduler_is_one_sentence():
    with pytest.raises(ValueError, match=r"Cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'.*dask scheduler"):
        clusters.connect("tcp://127.0.0.1:9", timeout="1s")


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
        ended = within(30, lambda: clusters.connect(address, timeout="2s"))
    assert isinstance(ended.get("raised"), ValueError), ended
    assert str(ended["raised"]) == (
        f"{address} answers, but not as a Dask scheduler (no scheduler's handshake within 2 s): give the "
        "scheduler's own address (`dask scheduler` prints it; port 8786 by default), not its dashboard's or another "
        "server's.")
    assert time.monotonic() - started < 5


def test_a_worker_is_not_taken_for_the_scheduler(cluster):
    worker = next(iter(cluster.client.scheduler_info()["workers"]))
    with pytest.raises(ValueError, match=f"^{worker} is a Dask worker, not the scheduler: give the scheduler's own"):
        clusters.connect(worker, timeout="5s")


def test_in_process_and_a_scheduler_are_not_both_asked_for(monkeypatch):
    with pytest.raises(ValueError, match="The executor 'inprocess' runs the batch here and the scheduler "
                                         r"tcp://127.0.0.1:9 names a cluster \(--executor, --scheduler\): give one"):
        clusters.executor_from("inprocess", scheduler="tcp://127.0.0.1:9")
    monkeypatch.setenv("NST_SCHEDULER", "tcp://127.0.0.1:9")  # the environment's address gives way, and says so
    said = []
    assert isinstance(clusters.executor_from("inprocess", log=said.append), InProcess)
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
        return len(jobs_module._MODELS), os.environ.get("MALLOC_TRIM_THRESHOLD_")

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
    with clusters.served(scheduler=address, threads=1, log=lambda line: None) as chosen:
        assert os.environ["NST_SCHEDULER"] == address and os.environ["NST_THREADS"] == "1"
        assert chosen.workers == 2
    assert "NST_SCHEDULER" not in os.environ
    with clusters.served("inprocess"):
        assert os.environ["NST_EXECUTOR"] == "inprocess"
    assert "NST_EXECUTOR" not in os.environ
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")  # an address given outright outranks the environment
    with clusters.served(scheduler=address, log=lambda line: None) as chosen:
        assert isinstance(chosen, clusters.DaskExecutor) and os.environ["NST_SCHEDULER"] == address


def test_gpu_workers_start_with_their_own_device_and_leave_this_environment_alone():
    before = dict(os.environ)
    started = clusters._start(Layout(2, 1, 0, "two pretend GPUs"), gpus=True)
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
