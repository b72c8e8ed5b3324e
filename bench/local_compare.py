"""Data-heavy work on one machine: Shoal against Dask's threaded scheduler and dask.distributed.

Chunked-array and dataframe workloads with MB-sized chunks, of the kinds our users run
(satellite composites, climate anomalies, genotype counts), where moving values between
tasks costs more than scheduling them:

- ``elementwise``: ``((x - x.mean(axis=0)) ** 2).sum(axis=1)`` over 4096x4096 floats in
  2 MiB chunks (a reduction broadcast back over every chunk);
- ``lookup``: an RGB composite, a 256-entry lookup table applied with ``map_blocks`` to
  three 2048x2048 uint8 channels in 512x512 chunks, the composite gathered;
- ``climatology``: a 240x180x360 monthly cube in 6 MiB chunks reshaped to years x months,
  its monthly means, and the standard deviation of the anomalies;
- ``allele counts``: an int8 genotype cube (variants x samples x 2) summed over ploidy and
  its per-variant frequencies;
- ``tsqr svd``: ``da.linalg.svd`` of a tall-skinny 200,000x100 matrix in 8 MiB row blocks,
  its singular values;
- ``groupby``: a dataframe of 40 partitions of 100,000 rows made in the graph
  (``from_map``), grouped by three columns;
- ``rechunk``: 4096x4096 floats from column blocks to row blocks, then row sums.

Each workload's collection is built once and computed on each scheduler: Dask's threaded
scheduler (one thread per core), dask.distributed (``LocalCluster``, 2 worker processes x 1
thread, ``worker-saturation: inf``, as tuned in ``bench/dask_compare.py``) and
``shoal.LocalCluster()`` with its defaults (one worker, an executor per core; or
``--shoal-workers N --shoal-cores C``); each cluster first runs every workload once
untimed (processes started, modules imported, code paths warm), then the timed runs
(``--repeat N``: the best of N). Results are checked equal. One row per workload prints
each time and the ratios (ratio = the other's time / Shoal's time); the last line is
``min_ratio_vs_threads=<x> min_ratio_vs_distributed=<y> geomean_vs_distributed=<z>``.
Nothing is asserted.

Two more columns argue what the threaded scheduler's ratio can be: ``written MiB``, the bytes
Shoal's workers wrote into their shared-memory store in one more run of the workload (large
results another process had to read; one read only by the executor that made it stays
live there and is never written), from the workers' heartbeats, and ``bound``, the ratio
vs threads of a scheduler as fast as threads in all but writing those bytes once, at the
cost per byte measured here at the start (writing fresh /dev/shm pages, mapping and
reading them), spread over the cores. Threads share results in one process and never pay
it.

    python bench/local_compare.py              # the best of 3 timed runs of each (default)
    python bench/local_compare.py --repeat 1   # one timed run of each
    python bench/local_compare.py --shoal-workers 2 --shoal-cores 1   # another topology
"""

from __future__ import annotations

import argparse
import gc
import math
import mmap
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd

import shoal


@dataclass
class Workload:
    name: str
    # The collection computed (built once: only computing is timed).
    collection: Any
    # A result comparable with ``same`` from what ``dask.compute`` returned.
    result: Callable[[Any], Any]


def _lookup(channel: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[channel]


def _frame_partition(i: int, rows: int = 100_000) -> pd.DataFrame:
    rng = np.random.default_rng(i)
    return pd.DataFrame(
        {
            "a": rng.integers(0, 20, rows),
            "b": rng.integers(0, 10, rows),
            "c": rng.integers(0, 5, rows),
            "x": rng.random(rows),
            "y": rng.random(rows),
        }
    )


def workloads() -> list[Workload]:
    rng = da.random.RandomState(0)
    plain = np.asarray

    x = rng.random_sample((4096, 4096), chunks=(512, 512))
    elementwise = ((x - x.mean(axis=0)) ** 2).sum(axis=1)

    table = (np.arange(256) ** 0.8).astype(np.uint8)
    channels = [rng.randint(0, 256, (2048, 2048), chunks=(512, 512)).astype(np.uint8) for _ in range(3)]
    composite = da.stack([c.map_blocks(_lookup, table, dtype=np.uint8) for c in channels])

    cube = rng.standard_normal((240, 180, 360), chunks=(12, 180, 360))
    years = cube.reshape(20, 12, 180, 360)
    climatology = (years - years.mean(axis=0)).std(axis=0)

    genotypes = rng.randint(0, 2, (40_000, 1_000, 2), chunks=(2_500, 1_000, 2)).astype(np.int8)
    frequencies = genotypes.sum(axis=2).mean(axis=1)

    tall = rng.random_sample((200_000, 100), chunks=(10_000, 100))
    _, singular, _ = da.linalg.svd(tall)

    frame = dd.from_map(_frame_partition, range(40))
    grouped = frame.groupby(["a", "b", "c"]).agg({"x": "sum", "y": "mean"})

    columns = rng.random_sample((4096, 4096), chunks=(4096, 128))
    rechunked = columns.rechunk((128, 4096)).sum(axis=1)

    return [
        Workload("elementwise + reductions", elementwise, plain),
        Workload("map_blocks lookup (RGB)", composite, plain),
        Workload("climatology anomaly", climatology, plain),
        Workload("allele counts", frequencies, plain),
        Workload("tall-skinny svd", singular, plain),
        Workload("groupby(a,b,c)", grouped, lambda out: out.sort_index()),
        Workload("rechunk columns->rows", rechunked, plain),
    ]


def same(a, b) -> bool:
    if isinstance(a, pd.DataFrame):
        return a.index.equals(b.index) and bool(np.allclose(a.to_numpy(), b.to_numpy(), rtol=1e-9))
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=1e-12))


def run_all(work: list[Workload], compute: Callable[[Any], Any], repeat: int) -> list[tuple[float, Any]]:
    """Each workload once untimed, then ``repeat`` timed runs of each (the best kept)."""
    for w in work:
        compute(w.collection)
    out = []
    for w in work:
        best = math.inf
        for _ in range(repeat):
            gc.collect()
            start = time.perf_counter()
            value = compute(w.collection)
            best = min(best, time.perf_counter() - start)
        out.append((best, w.result(value)))
    return out


def run_threads(work: list[Workload], repeat: int) -> list[tuple[float, Any]]:
    return run_all(work, lambda c: dask.compute(c, scheduler="threads")[0], repeat)


def run_distributed(work: list[Workload], repeat: int) -> list[tuple[float, Any]]:
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.worker-saturation": float("inf")}):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster) as client:
                return run_all(work, lambda c: dask.compute(c, scheduler=client)[0], repeat)


def run_shoal(work: list[Workload], repeat: int, topology: dict) -> tuple[list[tuple[float, Any]], list[int]]:
    """The timed runs, and per workload the bytes the workers wrote into their
    shared-memory stores in one more run (from their heartbeats)."""
    with shoal.LocalCluster(**topology) as cluster:
        with cluster.get_client() as client:
            runs = run_all(work, lambda c: dask.compute(c, scheduler=client)[0], repeat)
            written = []
            before = settled_written(client)
            for w in work:
                dask.compute(w.collection, scheduler=client)
                after = settled_written(client)
                written.append(after - before)
                before = after
            return runs, written


# Workers report every 2 s (the scheduler's heartbeat interval): a figure unchanged for
# longer than that includes everything done before it was first read.
HEARTBEAT_SECONDS = 2.0


def settled_written(client) -> int:
    """The bytes all workers wrote into their shared-memory stores, once no heartbeat has
    changed the figure for a whole interval."""
    figure = sum(w.shared_written_bytes for w in client.cluster_info().workers)
    since = time.monotonic()
    while time.monotonic() - since < HEARTBEAT_SECONDS * 1.25:
        time.sleep(0.1)
        now = sum(w.shared_written_bytes for w in client.cluster_info().workers)
        if now != figure:
            figure, since = now, time.monotonic()
    return figure


def shared_memory_seconds_per_byte() -> float:
    """What putting a value in shared memory costs here, per byte: writing it into fresh
    pages of a /dev/shm file, and mapping and reading it elsewhere, less reading it in
    private memory. A scheduler that keeps results outside the process that made them pays
    this at least once per result; threads never do."""
    data = np.random.default_rng(0).random(4 * 2**20 // 8)
    rounds = 32
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        start = time.perf_counter()
        for i in range(rounds):
            path = os.path.join(folder, str(i))
            with open(path, "wb") as f:
                f.write(memoryview(data))
            with open(path, "rb") as f:
                mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            np.frombuffer(mapping, dtype=np.float64).sum()
            mapping.close()
            os.unlink(path)
        shared = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(rounds):
        data.sum()
    private = time.perf_counter() - start
    return max(0.0, shared - private) / (rounds * data.nbytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each workload per scheduler, the best kept")
    parser.add_argument("--shoal-workers", type=int, help="Shoal's workers (default: LocalCluster's)")
    parser.add_argument("--shoal-cores", type=int, help="cores per Shoal worker (default: LocalCluster's)")
    args = parser.parse_args()
    topology = {k: v for k, v in (("n_workers", args.shoal_workers), ("cores", args.shoal_cores)) if v}
    # Task-based shuffles everywhere: Shoal has no p2p shuffle, and the comparison is of
    # the same graph.
    with dask.config.set({"dataframe.shuffle.method": "tasks"}):
        work = workloads()
        shoal_runs, written = run_shoal(work, args.repeat, topology)
        per_byte = shared_memory_seconds_per_byte()
        threads = run_threads(work, args.repeat)
        distributed = run_distributed(work, args.repeat)
    cores = len(os.sched_getaffinity(0))
    header = (
        f"{'workload':26} | {'threads':>8} {'distributed':>11} {'shoal':>8} | "
        f"{'vs threads':>10} {'vs distributed':>14} | {'written MiB':>11} {'bound':>6}"
    )
    print(header)
    print("-" * len(header))
    vs_threads, vs_distributed = [], []
    for w, (ts, rs), (tt, rt), (td, rd), nbytes in zip(work, shoal_runs, threads, distributed, written):
        if not (same(rs, rt) and same(rs, rd)):
            raise SystemExit(f"{w.name}: results differ between Shoal, Dask threads and dask.distributed")
        vs_threads.append(tt / ts)
        vs_distributed.append(td / ts)
        bound = tt / (tt + nbytes * per_byte / cores)
        print(
            f"{w.name:26} | {tt:>7.2f}s {td:>10.2f}s {ts:>7.2f}s | "
            f"{tt / ts:>9.2f}x {td / ts:>13.2f}x | {nbytes / 2**20:>11.0f} {bound:>5.2f}x",
            flush=True,
        )
    geomean = math.exp(sum(map(math.log, vs_distributed)) / len(vs_distributed))
    print(
        "(wall seconds from dask.compute to the result in the client, the best of --repeat runs, "
        "collections built beforehand; ratio = the other scheduler's time / Shoal's time)"
    )
    print(
        f"(written MiB: what Shoal's workers wrote into shared memory in one run, the results other "
        f"processes read; bound: the best ratio vs threads for a scheduler that writes those bytes "
        f"once, at the {per_byte * 2**30:.2f} s/GiB measured here, spread over {cores} cores, and is "
        f"otherwise as fast as threads)"
    )
    print(
        f"min_ratio_vs_threads={min(vs_threads):.2f} min_ratio_vs_distributed={min(vs_distributed):.2f} "
        f"geomean_vs_distributed={geomean:.2f}"
    )


if __name__ == "__main__":
    main()
