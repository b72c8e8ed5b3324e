"""Shoal against dask.distributed, same workloads, same machine, same run.

Dask runs on its ``LocalCluster`` (2 worker processes, 1 thread each) twice: with its
defaults, and tuned for throughput (``distributed.scheduler.worker-saturation: inf``);
Shoal runs on ``shoal.LocalCluster()`` with its defaults (one worker with an executor process
per core: on 2 cores, 2 processes run tasks, as Dask's 2 workers do; ``--shoal-workers N
--shoal-cores C`` for another topology). Each workload runs once on each cluster,
or ``--repeat N`` times with the best time kept (the same for every scheduler; single runs
of the sub-second Shoal rows vary by up to 2x on a noisy machine, and ``--quick --repeat 2``
takes nearly 3 minutes here). Each row prints both throughputs and the ratio Shoal / faster
Dask; results are checked equal. Each row also prints the bound: the ratio a scheduler that
cost nothing would reach. It would still wait for Dask to optimize the collection and build
its graph (Dask's own code, run in the client before any scheduler sees a task: 0.11-0.13 s
of the dataframe row here), then run the workload's own tasks (timed one after the other in
this process, each node run as Shoal's executors run it) split perfectly over the 2 cores.
The last line is ``min_speedup=<x>``, the smallest ratio over the workloads.

    python bench/dask_compare.py            # full sizes (long: Dask needs many minutes)
    python bench/dask_compare.py --quick    # smaller sizes, a few minutes at most
    python bench/dask_compare.py --quick --repeat 2   # best of two runs everywhere
    python bench/dask_compare.py --quick --shoal-workers 2 --shoal-cores 1   # another topology
"""

from __future__ import annotations

import argparse
import gc
import operator
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


def inc(x):
    return x + 1


@dataclass
class Workload:
    name: str
    tasks: int
    # Runs the workload against a client; returns a comparable result. Collections are
    # built beforehand (the same object for every scheduler): only computing is timed.
    run: Callable[[Any], Any]
    # What no scheduler can go below (see ``Floor``), measured in this process.
    floor: Callable[[], Floor]


@dataclass
class Floor:
    # Seconds Dask takes to optimize the collection and build its graph (0 for client.map):
    # every scheduler waits for it before the first task.
    build: float
    # Seconds the workload's own tasks take run one after the other, with no scheduler at
    # all: on 2 cores, no scheduler goes below half of it.
    tasks: float

    def seconds(self, cores: int) -> float:
        """The least time a scheduler costing nothing takes on ``cores`` cores."""
        return self.build + self.tasks / cores

    @staticmethod
    def best(a: Floor, b: Floor) -> Floor:
        return Floor(min(a.build, b.build), min(a.tasks, b.tasks))


def _materialized(collection) -> dict:
    """The optimized graph of a collection, as Shoal receives it (task-based shuffles)."""
    from shoal import dask_hook

    with dask.config.set({"dataframe.shuffle.method": "tasks"}):
        expr = dask_hook._collections_expr([collection], True)
        graph, _ = dask_hook.materialize(expr, dask_hook._flatten(list(expr.__dask_keys__())))
    return graph


def graph_size(collection) -> int:
    """Tasks of the collection's optimized graph, as Shoal receives it."""
    return len(_materialized(collection))


def graph_floor(collection) -> Callable[[], Floor]:
    """Builds the collection's graph as Shoal receives it, then runs every node in
    dependency order, in this thread; times both. The nodes run as Shoal's executors run
    them (``_dask_nodes``: no per-node checks, about 60 µs a node less than calling Dask's
    nodes), encoded and ordered before the timing starts."""

    def floor() -> Floor:
        from shoal import _dask_nodes, dask_hook

        gc.collect()
        start = time.perf_counter()
        graph = _materialized(collection)
        build = time.perf_counter() - start
        order = dask_hook.depth_first_order(graph)
        slot = {key: i for i, key in enumerate(order)}
        encoder = _dask_nodes.Encoder()
        nodes = tuple((encoder.node(graph[key], slot), ()) for key in order)
        start = time.perf_counter()
        _dask_nodes.run_group(tuple(order), nodes, [], "floor")
        return Floor(build, time.perf_counter() - start)

    return floor


def map_workload(n: int) -> Workload:
    def run(client):
        futures = client.map(inc, range(n))
        values = client.gather(futures)
        del futures
        return sum(values)

    def floor() -> Floor:
        start = time.perf_counter()
        sum(inc(i) for i in range(n))
        return Floor(0.0, time.perf_counter() - start)

    return Workload(f"client.map inc x{n:,}", n, run, floor)


def tree_workload(leaves: int) -> Workload:
    level = [dask.delayed(inc)(i) for i in range(leaves)]
    while len(level) > 1:
        nxt = [dask.delayed(operator.add)(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    root = level[0]

    def run(client):
        (total,) = dask.compute(root, scheduler=client)
        return total

    return Workload(f"delayed tree {leaves:,} leaves", graph_size(root), run, graph_floor(root))


def array_workload(chunks: int) -> Workload:
    total = da.ones((chunks * 10,), chunks=10).sum()

    def run(client):
        (value,) = dask.compute(total, scheduler=client)
        return float(value)

    return Workload(f"dask.array sum {chunks:,} chunks", graph_size(total), run, graph_floor(total))


def frame_groupby(partitions: int, rows: int):
    """The group-by of the dataframe workload, on random data."""
    rng = np.random.default_rng(0)
    pdf = pd.DataFrame(
        {
            "a": rng.integers(0, 20, rows),
            "b": rng.integers(0, 5, rows),
            "x": rng.random(rows),
            "y": rng.random(rows),
        }
    )

    df = dd.from_pandas(pdf, npartitions=partitions)
    return df.groupby(["a", "b"]).agg({"x": "sum", "y": "mean"})


def dataframe_workload(partitions: int, rows: int) -> Workload:
    agg = frame_groupby(partitions, rows)

    def run(client):
        (out,) = dask.compute(agg, scheduler=client)
        return out.sort_index().round(9)

    return Workload(f"dataframe groupby(a,b) {partitions} parts", graph_size(agg), run, graph_floor(agg))


def workloads(quick: bool) -> list[Workload]:
    if quick:
        return [
            map_workload(5_000),
            tree_workload(5_000),
            array_workload(2_000),
            dataframe_workload(500, 100_000),
        ]
    return [
        map_workload(100_000),
        tree_workload(100_000),
        tree_workload(1_000_000),
        array_workload(100_000),
        dataframe_workload(2_000, 2_000_000),
    ]


def timed(run, client, repeat: int) -> tuple[float, Any]:
    """The best of ``repeat`` runs (each after a garbage collection), and the last result."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = run(client)
        best = min(best, time.perf_counter() - start)
    return best, result


def same(a, b) -> bool:
    if isinstance(a, pd.DataFrame):
        return a.equals(b) or bool(np.allclose(a.to_numpy(), b.to_numpy()))
    if isinstance(a, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a))
    return a == b


def warm_up(client) -> None:
    """Before timing, every worker has run tasks of each kind: processes started, and the
    modules the workloads use (dask.array, pandas, ...) imported, on Dask as on Shoal."""
    client.gather(client.map(inc, range(200)))
    for w in (tree_workload(64), array_workload(64), dataframe_workload(16, 4_000)):
        w.run(client)


def run_dask(work: list[Workload], tuned: bool, repeat: int) -> list[tuple[float, Any]]:
    from distributed import Client, LocalCluster

    config = {"distributed.scheduler.worker-saturation": float("inf")} if tuned else {}
    with dask.config.set(config):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster) as client:
                warm_up(client)
                return [timed(w.run, client, repeat) for w in work]


def run_shoal(work: list[Workload], repeat: int, topology: dict) -> list[tuple[float, Any]]:
    with shoal.LocalCluster(**topology) as cluster:
        with cluster.get_client() as client:
            warm_up(client)
            return [timed(w.run, client, repeat) for w in work]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes at most")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each workload on each cluster, the best one kept"
    )
    parser.add_argument("--shoal-workers", type=int, help="Shoal's workers (default: LocalCluster's)")
    parser.add_argument("--shoal-cores", type=int, help="cores per Shoal worker (default: LocalCluster's)")
    args = parser.parse_args()
    topology = {k: v for k, v in (("n_workers", args.shoal_workers), ("cores", args.shoal_cores)) if v}
    work = workloads(args.quick)
    # Before any cluster runs: threads they leave behind in this process slow it down.
    floors = [Floor.best(w.floor(), w.floor()) for w in work]
    shoal_runs = run_shoal(work, args.repeat, topology)
    dask_default = run_dask(work, tuned=False, repeat=args.repeat)
    dask_tuned = run_dask(work, tuned=True, repeat=args.repeat)
    header = (
        f"{'workload':34} {'tasks':>9} {'dask':>11} {'dask tuned':>11} {'shoal':>11} "
        f"{'speedup':>8} {'bound':>8}"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for w, (ts, rs), (td, rd), (tt, rt), floor in zip(work, shoal_runs, dask_default, dask_tuned, floors):
        if not (same(rs, rd) and same(rs, rt)):
            raise SystemExit(f"{w.name}: results differ: shoal {rs!r}, dask {rd!r}, dask tuned {rt!r}")
        best = min(td, tt)
        ratio = best / ts
        ratios.append(ratio)
        print(
            f"{w.name:34} {w.tasks:>9,} {w.tasks / td:>9,.0f}/s {w.tasks / tt:>9,.0f}/s "
            f"{w.tasks / ts:>9,.0f}/s {ratio:>7.1f}x {best / floor.seconds(2):>7.1f}x"
        )
    print("(tasks/s = tasks of the optimized graph as Shoal runs it / wall seconds from compute() "
          "to the gathered result; collections built beforehand; speedup = faster Dask time / "
          "Shoal time; bound = the speedup of a scheduler costing nothing: faster Dask time / "
          "(the time Dask takes to optimize and build the graph + half the time the graph's "
          "tasks take run one after the other in one thread)")
    print(f"min_speedup={min(ratios):.1f}")


if __name__ == "__main__":
    main()
