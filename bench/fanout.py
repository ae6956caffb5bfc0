"""Where a batch of optimizations runs fastest on this machine: in one process or on local Dask clusters.

Run by hand on an idle machine (timings taken while other jobs run mean nothing):

    .venv/bin/python bench/fanout.py                       # a batch at the standard profile's size
    .venv/bin/python bench/fanout.py --sections 01,03      # and report sections, with an estimate for N machines
    .venv/bin/python bench/fanout.py --quick               # tiny sizes: checks that the script runs

It prints README-ready tables and writes ``bench/results/fanout.json``:

1. seconds of one style-transfer evaluation with 1, 2, 4, ... torch threads,
   and the layout ``sizing.plan_layout`` chooses from them for the batch;
2. the same batch of ``--jobs`` optimizations (``--steps`` L-BFGS evaluations
   each, random pictures of the profile's size: the time does not depend on
   what they show) in this process with every core, and on a local cluster of
   each workers x threads layout that fits the cores (or ``--layouts``): the
   cluster's start-up (workers started, each loading its VGG-19 once) apart
   from the batch's wall time, and each worker's peak memory against
   ``sizing.optimization_bytes``. The fastest row is what the default
   sizing (``IN_PROCESS_CORES``, ``plan_layout``) should pick;
3. with ``--sections``: the sections built in-process and on a local cluster
   (the planned layout), each into a fresh folder, alternating ``--rounds``
   times; from the cluster's task stream every batch (its optimizations,
   seconds each), the time outside batches, and an estimate on paper for N
   machines like this one: the time outside the batches stays, each batch
   takes ceil(jobs / (N x workers)) rounds of its slowest optimization, plus
   sending its pictures over a 1 Gbit/s network.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nst_lib import VGG19, report, sizing
from nst_lib import cluster as clusters
from nst_lib.files import atomic_write
from nst_lib.jobs import InProcess, Job, run_in_order
from nst_lib.profiles import get_profile
from nst_lib.vgg import describe_device

RESULTS = Path(__file__).resolve().parent / "results"
NETWORK_BYTES_PER_SECOND = 125e6  # 1 Gbit/s
MACHINES = (1, 2, 4, 8, 16)


def table(heads, rows) -> str:
    lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def build(kind: str, sections, profile: str, address: str | None = None, threads: int | None = None) -> float:
    """Wall seconds of building ``sections`` into a fresh folder."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        report.build(Path(folder) / "report", profile=profile, only=sections, executor=kind, scheduler=address,
                     threads=threads, log=lambda line: None)
        return time.perf_counter() - start


def batches_of(stream: list[dict]) -> list[dict]:
    """The task stream grouped by batch: jobs, seconds per job, and the batch's span."""
    grouped: dict[str, list[dict]] = {}
    for task in stream:
        if task["key"].startswith("nst-"):
            grouped.setdefault(task["key"].rsplit("-", 1)[0], []).append(task)
    batches = []
    for tasks in grouped.values():
        computes = [s for t in tasks for s in t["startstops"] if s["action"] == "compute"]
        batches.append({
            "jobs": len(tasks),
            "job_seconds": [s["stop"] - s["start"] for s in computes],
            "span": max(s["stop"] for s in computes) - min(s["start"] for s in computes),
        })
    return batches


def estimate(wall: float, batches: list[dict], workers: int, transfer_bytes: int) -> list[tuple]:
    """(machines, estimated seconds, speed-up) for N machines of ``workers`` workers each."""
    outside = wall - sum(b["span"] for b in batches)
    rows = []
    for machines in MACHINES:
        seconds = outside
        for batch in batches:
            rounds = math.ceil(batch["jobs"] / (machines * workers))
            seconds += rounds * max(batch["job_seconds"]) + batch["jobs"] * transfer_bytes / NETWORK_BYTES_PER_SECOND
        rows.append((machines, seconds, rows[0][1] / seconds if rows else 1.0))
    return rows


def transfer_bytes(size: int) -> int:
    """Bytes one task moves: content and style pictures in, the picture and its loss history out."""
    picture = 3 * size * size * 4
    return 3 * picture + 4 * 1000


def peak_memory(client) -> list[int]:
    return list(client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024).values())


def batch_jobs(count: int, size: int, steps: int) -> list[Job]:
    """``count`` optimizations of random pictures (one content and one style each) with their own seeds."""
    generator = torch.Generator().manual_seed(0)
    jobs = []
    for index in range(count):
        content, style = (torch.rand(1, 3, size, size, generator=generator) for _ in range(2))
        options = {"content": content, "styles": [style], "seed": index, "steps": steps}
        jobs.append(Job(options, f"job {index}"))
    return jobs


def timed_batch(runner, model, jobs) -> tuple[float, int]:
    """Wall seconds of running ``jobs`` on ``runner``, and the evaluations they spent."""
    start = time.perf_counter()
    results = run_in_order(runner, model, jobs)
    return time.perf_counter() - start, sum(result.evaluations for result in results)


def in_process_row(model, jobs, cores: int) -> dict:
    seconds, evaluations = timed_batch(InProcess(cores), model, jobs)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"executor": "in-process", "workers": 1, "threads": cores, "start_seconds": 0.0, "seconds": seconds,
            "evaluations": evaluations, "peak_worker_bytes": own}


def cluster_row(model, jobs, workers: int, threads: int, size: int) -> dict:
    """A fresh local cluster of ``workers`` x ``threads``: its start-up (until every worker holds its network)
    and the batch's wall time on it."""
    start = time.perf_counter()
    cluster = clusters.local_cluster(workers=workers, threads=threads, size=size, log=lambda line: None)
    try:
        warm = [Job(dict(job.options, steps=1), "warm-up") for job in jobs[:workers]]
        run_in_order(cluster, model, warm)
        started = time.perf_counter() - start
        seconds, evaluations = timed_batch(cluster, model, jobs)
        peaks = peak_memory(cluster.client)
    finally:
        cluster.close()
    return {"executor": "local cluster", "workers": workers, "threads": threads, "start_seconds": started,
            "seconds": seconds, "evaluations": evaluations, "peak_worker_bytes": max(peaks)}


def layouts(cores: int, asked: str | None) -> list[tuple[int, int]]:
    """``asked`` ("4x1,2x2") or every (cores // threads) x threads with at least two workers, then one
    worker with every core (the cluster's own cost against in-process)."""
    if asked:
        return [tuple(int(n) for n in item.split("x")) for item in asked.split(",")]
    shapes = [(cores // t, t) for t in sizing.thread_candidates(cores) if cores // t >= 2]
    return shapes + [(1, cores)]


def run_batch(args, model, size: int, steps: int) -> dict:
    cores = sizing.available_cores()
    seconds = sizing.measure_threads(model, size, sizing.thread_candidates(cores))
    jobs = batch_jobs(args.jobs, size, steps)
    planned = sizing.plan_layout(cores, sizing.available_memory(), sizing.optimization_bytes((size, size)),
                                   seconds, tasks=len(jobs))
    rows = [in_process_row(model, jobs, cores)]
    for workers, threads in layouts(cores, args.layouts):
        rows.append(cluster_row(model, jobs, workers, threads, size))
    return {"size": size, "steps": steps, "jobs": len(jobs), "cores": cores, "thread_seconds": seconds,
            "planned": [planned.workers, planned.threads, planned.reason], "rows": rows,
            "estimated_worker_bytes": sizing.optimization_bytes((size, size)),
            "in_process_cores": sizing.IN_PROCESS_CORES}


def run_sections(args, size: int) -> dict:
    sections = args.sections.split(",")
    cluster = clusters.local_cluster(workers=args.workers, threads=args.threads, size=size)
    from distributed import get_task_stream

    walls = {"in-process": [], "local cluster": []}
    stream = []
    try:
        address = cluster.client.scheduler.address
        for _ in range(args.rounds):
            walls["in-process"].append(build("inprocess", sections, args.profile))
            with get_task_stream(cluster.client) as recorded:
                walls["local cluster"].append(build("auto", sections, args.profile, address, cluster.threads))
            stream = recorded.data
        workers, threads = cluster.workers, cluster.threads
        peaks = peak_memory(cluster.client)
    finally:
        cluster.close()
    return {"sections": sections, "walls": walls, "workers": workers, "threads": threads,
            "batches": batches_of(stream), "peak_worker_bytes": peaks}


def batch_tables(results: dict, machine: str) -> None:
    size, cores = results["size"], results["cores"]
    print(f"\nOne evaluation at {size} px ({machine}, {cores} cores):\n")
    base = next(iter(results["thread_seconds"].values()))  # one thread
    print(table(["torch threads", "seconds", "speed-up"],
                [(t, f"{s:.3f}", f"{base / s:.2f}x") for t, s in results["thread_seconds"].items()]))
    workers, threads, reason = results["planned"]
    print(f"\nplan_layout for {results['jobs']} jobs: {workers} workers x {threads} threads ({reason})")
    print(f"\nA batch of {results['jobs']} optimizations, {results['steps']} evaluations each, {size} px "
          f"(estimated memory per optimization {results['estimated_worker_bytes'] / 2**30:.2f} GiB):\n")
    rows = results["rows"]
    base = rows[0]["seconds"]
    best = min(rows, key=lambda row: row["seconds"])
    print(table(["executor", "workers x threads", "start-up", "batch wall time", "evaluations / s", "speed-up",
                 "peak memory per worker"],
                [(row["executor"] + (" (fastest)" if row is best else ""), f"{row['workers']} x {row['threads']}",
                  f"{row['start_seconds']:.1f} s", f"{row['seconds']:.1f} s",
                  f"{row['evaluations'] / row['seconds']:.1f}", f"{base / row['seconds']:.2f}x",
                  f"{row['peak_worker_bytes'] / 2**30:.2f} GiB") for row in rows]))
    default = "in-process" if cores <= results["in_process_cores"] else f"local cluster {workers} x {threads}"
    print(f"\nThe default here (IN_PROCESS_CORES = {results['in_process_cores']}, plan_layout): {default}; "
          f"fastest measured: {best['executor']} {best['workers']} x {best['threads']}.")


def section_tables(results: dict, size: int, profile: str) -> None:
    inproc = statistics.median(results["walls"]["in-process"])
    cluster = statistics.median(results["walls"]["local cluster"])
    layout = f"{results['workers']} workers x {results['threads']} threads"
    print(f"\nSections {','.join(results['sections'])}, {profile} profile (median of "
          f"{len(results['walls']['in-process'])}):\n")
    print(table(["executor", "layout", "wall time", "speed-up"],
                [("in-process", f"1 process x {torch.get_num_threads()} threads", f"{inproc:.0f} s", "1.00x"),
                 ("local cluster", layout, f"{cluster:.0f} s", f"{inproc / cluster:.2f}x")]))
    batches = results["batches"]
    jobs = [s for b in batches for s in b["job_seconds"]]
    moved = transfer_bytes(size)
    print(f"\nOn the cluster: {len(batches)} batches, {sum(b['jobs'] for b in batches)} optimizations "
          f"(median {statistics.median(jobs) if jobs else 0:.1f} s each), "
          f"{cluster - sum(b['span'] for b in batches):.0f} s outside batches; peak memory per worker "
          f"{max(results['peak_worker_bytes']) / 2**30:.2f} GiB; {moved / 1e6:.1f} MB sent per optimization.\n")
    rows = estimate(cluster, batches, results["workers"], moved)
    print(table(["machines", f"workers ({results['workers']} each)", "estimated wall time", "speed-up"],
                [(n, n * results["workers"], f"{s:.0f} s", f"{x:.2f}x") for n, s, x in rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="standard", help="its image size and steps (default: standard)")
    parser.add_argument("--jobs", type=int, default=8, help="optimizations in the batch (default: 8)")
    parser.add_argument("--steps", type=int, help="evaluations per optimization (default: 50)")
    parser.add_argument("--layouts", help="cluster layouts to time, e.g. 4x1,2x2 (default: every one that fits)")
    parser.add_argument("--quick", action="store_true", help="64 px, 4 jobs of 5 steps, random-weight VGG")
    parser.add_argument("--sections", help="also build these report sections, e.g. 01,03")
    parser.add_argument("--workers", type=int, help="sections' cluster workers (default: planned)")
    parser.add_argument("--threads", type=int, help="sections' torch threads per worker (default: planned)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating in-process / cluster section builds")
    args = parser.parse_args()
    size = 64 if args.quick else get_profile(args.profile).size
    if args.quick:
        args.jobs = min(args.jobs, 4)
    steps = args.steps or (5 if args.quick else 50)
    model = VGG19("random", precision="float32") if args.quick else VGG19()
    machine = describe_device(torch.device("cpu"))
    results = {"profile": args.profile, "machine": machine, "torch": torch.__version__,
               "batch": run_batch(args, model, size, steps)}
    batch_tables(results["batch"], machine)
    if args.sections:
        results["sections"] = run_sections(args, size)
        section_tables(results["sections"], size, args.profile)
    RESULTS.mkdir(exist_ok=True)
    with atomic_write(RESULTS / "fanout.json", "w") as handle:
        json.dump(results, handle, indent=1)
    print(f"\nwrote {RESULTS / 'fanout.json'}")


if __name__ == "__main__":
    main()
