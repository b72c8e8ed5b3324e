"""Where one ``dask.compute`` on Shoal spends its time, phase by phase, for the
``dask.array`` or ``dask.dataframe`` workload of ``dask_compare.py``.

Prints, per warm run: Dask's optimisation and materialisation, Shoal's node encoding and
submission, and the rest (execution and gather); then the same graph's nodes run in order
in one thread with no scheduler, the floor of its task cost. Nothing is asserted.

    PYTHONPATH=bench SHOAL_BIN=target/release/shoal python bench/dask_phases.py \
        [--workload array|dataframe] [--chunks N] [--partitions N] [--workers N]
"""

from __future__ import annotations

import argparse
import time

import dask
import dask.array as da

import shoal
from shoal import dask_hook


def timed(phases: dict, name: str, func):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def task_floor(total) -> tuple[int, float]:
    """Runs every node of the graph Shoal runs in dependency order, in this thread."""
    expr = dask_hook._collections_expr([total], True)
    graph, _ = dask_hook.materialize(expr, dask_hook._flatten(list(expr.__dask_keys__())))
    order = dask_hook.depth_first_order(graph)
    values: dict = {}
    start = time.perf_counter()
    for key in order:
        node = graph[key]
        values[key] = node({d: values[d] for d in node.dependencies})
    return len(order), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["array", "dataframe"], default="array")
    parser.add_argument("--chunks", type=int, default=2000, help="array chunks")
    parser.add_argument("--partitions", type=int, default=500, help="dataframe partitions (200 rows each)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()

    phases: dict = {}
    dask_hook.materialize = timed(phases, "materialize", dask_hook.materialize)
    dask_hook.submit = timed(phases, "encode+submit", dask_hook.submit)
    if args.workload == "array":
        total = da.ones((args.chunks * 10,), chunks=10).sum()
    else:
        from dask_compare import frame_groupby

        dask.config.set({"dataframe.shuffle.method": "tasks"})  # as Shoal clients do
        total = frame_groupby(args.partitions, 200 * args.partitions)
    with shoal.LocalCluster(n_workers=args.workers) as cluster, cluster.get_client() as client:
        client.gather(client.map(abs, range(200)))  # warm every executor
        for run in range(args.runs):
            phases.clear()
            start = time.perf_counter()
            dask.compute(total, scheduler=client.get)
            wall = time.perf_counter() - start
            rest = wall - sum(phases.values())
            shown = "  ".join(f"{k} {v:.3f}s" for k, v in phases.items())
            print(f"run {run}: wall {wall:.3f}s  {shown}  execution+gather {rest:.3f}s")
    tasks, seconds = task_floor(total)
    print(f"{tasks} nodes run in order in one thread, no scheduler: {seconds:.3f}s ({seconds / tasks * 1e6:.0f} us/task)")


if __name__ == "__main__":
    main()
