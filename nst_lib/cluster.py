"""Batches of optimizations on a Dask cluster, and the choice of where a batch runs.

This module is the only code that knows Dask. ``DaskExecutor`` runs a batch
(a list of ``jobs.Job``) on a cluster through a client:

- a local cluster sized to the machine (``local_cluster``: workers x threads
  from a measurement, memory per worker checked against what one
  optimization needs, see ``sizing``; one worker per GPU for
  ``device="cuda``, on a SpecCluster);
- any running scheduler (``connect("tcp://host:8786")``).

``executor_from(...)`` picks an executor from a name or from the environment
(``NST_SCHEDULER``, ``NST_EXECUTOR`` and ``NST_THREADS``, read here and
nowhere else); ``served(...)`` starts one for child processes (the report's
notebook kernels) and tells them where it is.

Workers build the VGG-19 once from ``VGG19.settings`` and keep it; a worker
whose network or library code differs from this process's refuses the job.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence

import torch

from . import profiles
from .jobs import InProcess, Job, JobError, ModelSpec, run_job, worker_model
from .keys import code_fingerprint
from .optimize import Result, progress_bar
from .sizing import (
    IN_PROCESS_CORES,
    Layout,
    available_cores,
    available_memory,
    measure_threads,
    optimization_bytes,
    plan_layout,
    thread_candidates,
)
from .vgg import VGG19, pick_device

EXECUTORS = ("auto", "inprocess", "local")
EXECUTOR_VARIABLE = "NST_EXECUTOR"
SCHEDULER_VARIABLE = "NST_SCHEDULER"
THREADS_VARIABLE = "NST_THREADS"
CONNECT_TIMEOUT = "10s"


def _run_task(spec: ModelSpec, code: str, options: dict, threads: int | None, topic: str, index: int) -> Result:
    """What a Dask worker runs for one job: the progress goes to ``topic`` as (index, evaluations)."""
    from distributed import get_worker

    if code != code_fingerprint():
        raise RuntimeError("This worker runs other nst_lib code than the process that sent the job: "
                           "install the same version of nst_lib on every machine of the cluster.")
    worker = get_worker()
    worker.log_event(topic, (index, 0))
    return run_job(worker_model(spec), options, threads, lambda done: worker.log_event(topic, (index, done)))


class DaskExecutor:
    """Runs a batch on a Dask cluster through ``client``; closes ``cluster`` (if it started one) on ``close``.

    ``threads``: torch threads per optimization (default 1; each worker runs one job per Dask thread).
    """

    def __init__(self, client, cluster=None, threads: int | None = None, name: str = "dask"):
        self.client, self.cluster, self.threads, self.name = client, cluster, threads or 1, name

    @property
    def job_threads(self) -> int:
        """The torch threads each optimization runs with."""
        return self.threads

    @property
    def dashboard(self) -> str | None:
        """The Dask dashboard's address, when the scheduler serves one (its HTTP server shows only a
        notice where bokeh is not installed next to the scheduler)."""
        services = self.client.scheduler_info().get("services", {})
        if "dashboard" not in services or not self.client.run_on_scheduler(_has_bokeh):
            return None
        return self.client.dashboard_link

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def run(self, model, jobs: Sequence[Job], *, progress=False, description: str = "batch") -> Iterator:
        """Yield (index, Result or JobError) for each job as it finishes."""
        from distributed import as_completed

        spec = model if isinstance(model, ModelSpec) else ModelSpec.of(model)
        topic = f"nst-progress-{uuid.uuid4().hex}"
        done = [0] * len(jobs)
        self.client.subscribe_topic(topic, lambda event: _note(done, *event[1]))
        futures = self._submit(spec, jobs, topic)
        bar = progress_bar(progress, sum(job.evaluations for job in jobs), description)
        try:
            finished = as_completed(futures)
            while not finished.is_empty():
                for future in finished.next_batch(block=False):
                    index = futures.index(future)
                    done[index] = math.inf  # late progress events of a finished job change nothing
                    bar.set_description_str(jobs[index].label, refresh=False)
                    yield index, _outcome(future, index, jobs[index])
                bar.update(sum(min(n, job.evaluations) for n, job in zip(done, jobs)) - bar.n)
                time.sleep(0.1)
        finally:
            bar.close()
            self.client.unsubscribe_topic(topic)
            self.client.cancel([f for f in futures if not f.done()])

    def _submit(self, spec: ModelSpec, jobs: Sequence[Job], topic: str) -> list:
        """One task per job; each distinct input picture is sent to the cluster once, not once per job."""
        code = code_fingerprint()
        shared: dict[int, object] = {}

        def sent(value):
            if isinstance(value, torch.Tensor):
                if id(value) not in shared:
                    shared[id(value)] = self.client.scatter(value.cpu(), hash=False)
                return shared[id(value)]
            if isinstance(value, (list, tuple)):
                return [sent(v) for v in value]
            return value

        return [
            self.client.submit(_run_task, spec, code, {k: sent(v) for k, v in job.options.items()}, self.threads,
                               topic, index, key=f"nst-{topic[-8:]}-{index}", pure=False)
            for index, job in enumerate(jobs)
        ]

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _note(done: list, index: int, evaluations: int) -> None:
    if done[index] != math.inf:
        done[index] = evaluations  # a job rerun after its worker died counts from zero again


def _outcome(future, index: int, job: Job):
    error = future.exception()
    if error is not None:
        return JobError(index, job.label, error)
    result = future.result()
    result.image = result.image.cpu()
    return result


# --------------------------------------------------------------------------------------
# Clusters: where they are, how large.


def connect(address: str, threads: int | None = None, timeout: str = CONNECT_TIMEOUT) -> DaskExecutor:
    """An executor on the running Dask scheduler at ``address`` (``tcp://host:8786``)."""
    from distributed import Client

    try:
        _check_scheduler(address, timeout)
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as error:
        if isinstance(error, NotAScheduler):
            raise ValueError(str(error)) from None
        raise ValueError(
            f"Cannot reach a Dask scheduler at {address!r} ({type(error).__name__}): start one "
            f"(`dask scheduler`, then `dask worker {address}` on each machine) or unset {SCHEDULER_VARIABLE}."
        ) from None
    return DaskExecutor(client, threads=threads, name=f"scheduler {address}")


class NotAScheduler(ValueError):
    """Something answers at the address, but not a Dask scheduler."""


def _check_scheduler(address: str, timeout: str) -> None:
    """Raise, within ``timeout``, an OSError when nothing answers at ``address`` and a ``NotAScheduler``
    when what answers is not a Dask scheduler. The client's own handshake waits without end on a server that
    takes the connection and never speaks Dask (an HTTP server, such as the scheduler's dashboard)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from dask.utils import parse_timedelta
    from distributed.comm import connect as open_comm
    from distributed.comm.addressing import parse_address, parse_host_port

    seconds = parse_timedelta(timeout, "s")
    scheme, place = parse_address(address)
    reached = {}

    async def identity() -> dict:
        if scheme == "tcp":  # first the bare connection: refused or unanswered means nobody is there
            _, writer = await asyncio.open_connection(*parse_host_port(place))
            writer.close()
        reached["yes"] = True
        comm = await open_comm(address, timeout=seconds)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    def ask() -> dict:
        return asyncio.run(asyncio.wait_for(identity(), seconds))

    with ThreadPoolExecutor(1) as pool:  # a thread of its own: a notebook's kernel already runs an event loop
        try:
            reply = pool.submit(ask).result()
        except Exception as error:  # whatever a stranger's bytes make of the handshake (even a MemoryError)
            if not reached:
                raise OSError(str(error)) from None
            reply = None
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        what = f"is a Dask {kind.lower()}, not the scheduler" if isinstance(kind, str) else (
            f"answers, but not as a Dask scheduler (no scheduler's handshake within {seconds:g} s)")
        raise NotAScheduler(f"{address} {what}: give the scheduler's own address (`dask scheduler` prints it; "
                            "port 8786 by default), not its dashboard's or another server's.")


def gpu_worker_spec(gpus: int, threads: int = 1, memory_limit: int | str = "auto") -> dict:
    """A Dask SpecCluster's workers: one per GPU, each seeing only its own GPU (as ``cuda``), running
    one optimization at a time."""
    from distributed import Nanny

    return {
        f"gpu-{index}": {
            "cls": Nanny,
            "options": {
                "nthreads": 1,
                "memory_limit": memory_limit,
                "env": {"CUDA_VISIBLE_DEVICES": str(index), "OMP_NUM_THREADS": str(threads)},
                "name": f"gpu-{index}",
            },
        }
        for index in range(gpus)
    }


def local_cluster(
    *,
    device: str = "cpu",
    workers: int | None = None,
    threads: int | None = None,
    size: int = profiles.SIZE,
    model: VGG19 | None = None,
    tasks: int | None = None,
    log=print,
) -> DaskExecutor:
    """A Dask cluster on this machine: for ``device="cuda"`` one worker per GPU; on CPUs, ``workers`` x
    ``threads`` as given, or else as ``plan_layout`` chooses from a measurement at ``size`` px with
    ``model`` (default: the Oxford VGG-19). Prints the layout and the dashboard's address."""
    on_gpus = pick_device(device).type == "cuda"
    if on_gpus:
        gpus = workers or torch.cuda.device_count()
        layout = Layout(gpus, threads or 1, 0, f"one worker per GPU ({gpus})")
    else:
        layout = _cpu_layout(workers, threads, size, model, tasks)
    executor = _start(layout, gpus=on_gpus)
    log(f"local Dask cluster: {layout.workers} workers x {layout.threads} threads ({layout.reason})")
    announce_dashboard(executor, log)
    return executor


def announce_dashboard(executor: DaskExecutor, log=print) -> None:
    """Say where the cluster's Dask dashboard is, or why there is none."""
    if executor.dashboard:
        log(f"Dask dashboard: {executor.dashboard}")
    else:
        log("Dask dashboard: none (a scheduler serves one where bokeh>=3.1 is installed: "
            "pip install 'nst_lib[cluster]')")


def _start(layout: Layout, gpus: bool) -> DaskExecutor:
    """Start the cluster. Its workers keep glibc's own memory trimming: Dask's default
    MALLOC_TRIM_THRESHOLD_ makes every large tensor a fresh mapping of zeroed pages (about 24,000 page
    faults per evaluation at 64 px). The nanny sets its variables in this process's environment
    while it spawns the workers: they are put back, so that processes started later do not inherit them."""
    import dask
    from distributed import Client, LocalCluster, Scheduler, SpecCluster

    before = dict(os.environ)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            if gpus:
                scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
                cluster = SpecCluster(workers=gpu_worker_spec(layout.workers, layout.threads), scheduler=scheduler,
                                      silence_logs=40)
            else:
                cluster = LocalCluster(n_workers=layout.workers, threads_per_worker=1, processes=True,
                                       memory_limit=layout.memory_limit, silence_logs=40, dashboard_address=":0")
    finally:
        os.environ.clear()
        os.environ.update(before)
    client = Client(cluster)
    client.register_plugin(_ignoring_ctrl_c())
    return DaskExecutor(client, cluster, layout.threads, name="local cluster")


def _ignoring_ctrl_c():
    """A worker plugin by which a local cluster's workers ignore SIGINT and SIGTERM. A terminal's Ctrl-C, or
    a SIGTERM sent to the process group (a CI timeout, ``kill -- -PID``), reaches every process the command
    started, and each worker would print its own traceback; this process stops them (``DaskExecutor.close``)
    and says what was written. Workers started later (after one died) get it too.

    A worker still in the middle of an optimization when the cluster closes is killed (SIGKILL), which leaves
    behind the semaphore of tqdm's lock across processes, and Python warns of a "leaked semaphore" at exit; a
    worker's progress bars are off, so it takes a lock within the process instead."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoringCtrlC(WorkerPlugin):
        name = "nst-ignoring-ctrl-c"

        def setup(self, worker):
            from tqdm import tqdm

            tqdm.set_lock(threading.RLock())
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)

    return IgnoringCtrlC()


def _cpu_layout(workers, threads, size, model, tasks) -> Layout:
    cores, memory = available_cores(), available_memory()
    task_bytes = optimization_bytes((size, size))
    if workers and threads:
        if workers * task_bytes > memory:
            raise ValueError(f"{workers} workers need about {workers * task_bytes / 2**30:.1f} GiB at {size} px "
                             f"but {memory / 2**30:.1f} GiB are free: use fewer workers or a smaller size.")
        return Layout(workers, threads, int(memory // workers), "as asked")
    candidates = [threads] if threads else thread_candidates(cores)
    seconds = measure_threads(model or VGG19(), size, candidates)
    layout = plan_layout(cores, memory, task_bytes, seconds, tasks)
    if workers:
        layout = Layout(workers, layout.threads, int(memory // workers), layout.reason)
    return layout


# --------------------------------------------------------------------------------------
# Choosing one: by name, or from the environment variables (read here and nowhere else).


def executor_from(
    kind: str | None = None,
    *,
    scheduler: str | None = None,
    threads: int | None = None,
    device: str = "cpu",
    size: int = profiles.SIZE,
    model: VGG19 | None = None,
    tasks: int | None = None,
    log=print,
):
    """The executor asked for: ``scheduler`` (or ``NST_SCHEDULER``) connects to a running cluster;
    ``kind`` (or ``NST_EXECUTOR``) is "inprocess", "local" (a cluster on this machine) or "auto"
    (a local cluster above ``IN_PROCESS_CORES`` cores, else in-process); ``threads`` (or
    ``NST_THREADS``) are torch threads per optimization."""
    given = scheduler or None
    if not scheduler:  # an address given here outranks NST_EXECUTOR; else both come from the environment
        scheduler = os.environ.get(SCHEDULER_VARIABLE) or None
        kind = kind or os.environ.get(EXECUTOR_VARIABLE)
    kind = kind or "auto"
    threads = threads or _threads_from_environment()
    if kind not in EXECUTORS:
        raise ValueError(f"Unknown executor {kind!r}: choose {', '.join(EXECUTORS)}, or give a scheduler address.")
    if scheduler and kind == "inprocess":
        if given is not None:
            raise ValueError(f"The executor 'inprocess' runs the batch here and the scheduler {scheduler} names a "
                             "cluster (--executor, --scheduler): give one of them.")
        log(f"{SCHEDULER_VARIABLE}={scheduler} is set, but the batch runs in this process, as asked.")
    if scheduler and kind != "inprocess":
        executor = connect(scheduler, threads)
        announce_dashboard(executor, log)
        return executor
    if kind == "local" or (kind == "auto" and _cluster_pays(device)):
        return local_cluster(device=device, threads=threads, size=size, model=model, tasks=tasks, log=log)
    return InProcess(threads)


def _cluster_pays(device: str) -> bool:
    """Whether a local cluster beats one process: with several GPUs, or on CPUs with more than
    ``IN_PROCESS_CORES`` cores."""
    if pick_device(device).type == "cuda":
        return torch.cuda.device_count() > 1
    return pick_device(device).type == "cpu" and available_cores() > IN_PROCESS_CORES


def _threads_from_environment() -> int | None:
    text = os.environ.get(THREADS_VARIABLE)
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{THREADS_VARIABLE}={text!r} is not a number of threads: use a whole number of at least 1.")
    return int(text)


@contextlib.contextmanager
def served(kind: str | None = None, *, scheduler: str | None = None, threads: int | None = None, **local):
    """For the block, the executor asked for (see ``executor_from``), announced to child processes
    through the environment: a cluster's address in ``NST_SCHEDULER``, else ``NST_EXECUTOR=inprocess``.
    A local cluster started here is closed at the end."""
    executor = executor_from(kind, scheduler=scheduler, threads=threads, **local)
    names = (EXECUTOR_VARIABLE, SCHEDULER_VARIABLE, THREADS_VARIABLE)
    before = {name: os.environ.get(name) for name in names}
    if isinstance(executor, DaskExecutor):
        os.environ[SCHEDULER_VARIABLE] = executor.client.scheduler.address
        os.environ.pop(EXECUTOR_VARIABLE, None)
    else:
        os.environ[EXECUTOR_VARIABLE] = "inprocess"
        os.environ.pop(SCHEDULER_VARIABLE, None)
    if executor.threads:
        os.environ[THREADS_VARIABLE] = str(executor.threads)
    try:
        yield executor
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        executor.close()
