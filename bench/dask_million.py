"""Million-node Dask graphs: Shoal's own cost per Dask node, against Dask's schedulers.

Two graphs, each at 100,000 and 1,000,000 (``--quick``: 2,500 and 10,000):

- ``array``: ``da.ones((s, s), chunks=1).sum()`` with s*s chunks (1.33 nodes per chunk);
- ``tree``: a binary tree of ``add`` over ``inc(i)`` leaves (2 nodes per leaf), its
  ``Task`` graph built directly (what ``dask.delayed`` makes, without a minute of building
  Delayed objects).

Each (scheduler, graph, size) runs in its own process, so that peak RSS is its own:
Shoal (``LocalCluster``, 2 workers), Dask's ``sync`` and ``threads`` schedulers, and
dask.distributed (2 worker processes x 1 thread, ``worker-saturation: inf``) at the smaller
size only (it does not finish the larger one in 10 minutes here). Every process warms up
on a small graph of the same kind first; results are checked against the exact value. One
more process per row runs Dask's own optimisation and materialisation alone, with no
scheduler: its peak RSS is the least memory a client of any scheduler needs for that graph,
printed beside Shoal's and Dask sync's.

For Shoal the phases of the same ``dask.compute`` are measured: Dask's own optimisation and
materialisation (``dask.compute`` up to ``Client.get``, then the expression's annotations and
its graph in ``dask_hook.annotations_of`` and ``dask_hook.materialize``), Shoal's grouping, encoding and submission
(``dask_hook.submit``), and the rest (execution and gather). Shoal's own cost per node is
everything but Dask's part, divided by the graph's nodes. Nothing is asserted. The last line
is ``shoal_us_per_node=<x> speedup_vs_dask_best=<y>`` for the larger size: the larger of the
two graphs' own costs and the smaller of their speedups over the fastest Dask scheduler.

    python bench/dask_million.py            # 100k and 1M (long: Dask needs many minutes)
    python bench/dask_million.py --quick    # 2.5k and 10k, about a minute
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import resource
import subprocess
import sys
import time

CHILD_TIMEOUT = 1800


def inc(x):
    return x + 1


def array_graph(size: int):
    import dask.array as da

    side = math.isqrt(size)
    return da.ones((side, side), chunks=1).sum(), float(side * side)


def tree_graph(size: int):
    """A binary tree of ``add`` over ``size`` leaves ``inc(i)``, as ``dask.delayed`` builds
    it: one ``Task`` per node, dependencies as ``TaskRef``."""
    from dask._task_spec import Task, TaskRef
    from dask.delayed import Delayed

    graph = {}
    level = []
    for i in range(size):
        key = f"inc-{i}"
        graph[key] = Task(key, inc, i)
        level.append(key)
    depth = 0
    while len(level) > 1:
        depth += 1
        nxt = []
        for j in range(0, len(level) - 1, 2):
            key = f"add-{depth}-{j // 2}"
            graph[key] = Task(key, operator.add, TaskRef(level[j]), TaskRef(level[j + 1]))
            nxt.append(key)
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return Delayed(level[0], graph), size * (size + 1) // 2


GRAPHS = {"array": array_graph, "tree": tree_graph}


def nodes_of(collection) -> int:
    """Nodes of the graph as Dask materialises it for a scheduler."""
    from shoal import dask_hook

    expr = dask_hook._collections_expr([collection], True)
    graph, _ = dask_hook.materialize(expr, dask_hook._flatten(list(expr.__dask_keys__())))
    return len(graph)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(scheduler: str, graph: str, size: int) -> dict:
    """One computation in this process; returns its figures."""
    import dask

    make = GRAPHS[graph]
    warm, _ = make(64)
    collection, expected = make(size)
    out: dict = {}
    if scheduler == "graph":
        # Dask's own optimisation and materialisation, and no scheduler: the least memory
        # any scheduler of this collection needs in the client.
        from dask._expr import FinalizeCompute
        from dask._task_spec import convert_legacy_graph
        from dask.base import collections_to_expr

        start = time.perf_counter()
        expr = FinalizeCompute(collections_to_expr([collection], True)).optimize()
        graph = convert_legacy_graph(dict(expr.__dask_graph__()))
        out["seconds"] = time.perf_counter() - start
        out["peak_rss_mb"] = _peak_rss_mb()
        out["nodes"] = len(graph)
        return out
    if scheduler in ("sync", "threads"):
        dask.compute(warm, scheduler=scheduler)
        start = time.perf_counter()
        (value,) = dask.compute(collection, scheduler=scheduler)
        out["seconds"] = time.perf_counter() - start
    elif scheduler == "distributed":
        from distributed import Client, LocalCluster

        with dask.config.set({"distributed.scheduler.worker-saturation": float("inf")}):
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
                with Client(cluster) as client:
                    dask.compute(warm, scheduler=client)
                    start = time.perf_counter()
                    (value,) = dask.compute(collection, scheduler=client)
                    out["seconds"] = time.perf_counter() - start
    else:
        from dask_phases import timed

        import shoal
        from shoal import client as shoal_client
        from shoal import dask_hook

        with shoal.LocalCluster(n_workers=2) as cluster:
            with cluster.get_client() as client:
                dask.compute(warm, scheduler=client)
                phases: dict = {}
                # Dask's own: the expression's annotations (which materialise its graph) and
                # the materialisation itself.
                dask_hook.annotations_of = timed(phases, "materialize", dask_hook.annotations_of)
                dask_hook.materialize = timed(phases, "materialize", dask_hook.materialize)
                dask_hook.submit = timed(phases, "submit", dask_hook.submit)
                shoal_client.Client.get = timed(phases, "get", shoal_client.Client.get)
                start = time.perf_counter()
                (value,) = dask.compute(collection, scheduler=client)
                total = time.perf_counter() - start
    if scheduler == "shoal":
        dask_part = total - phases["get"] + phases["materialize"]
        out.update(
            seconds=total,
            dask_part=dask_part,
            submit=phases["submit"],
            rest=phases["get"] - phases["materialize"] - phases["submit"],
        )
    out["peak_rss_mb"] = _peak_rss_mb()
    # Counted after the run: Dask caches a materialised graph, which would hide its cost.
    out["nodes"] = nodes_of(collection)
    if scheduler == "shoal":
        out["own_us_per_node"] = (out["seconds"] - out["dask_part"]) / out["nodes"] * 1e6
    if float(value) != float(expected):
        raise SystemExit(f"{scheduler} {graph} {size}: result {value!r}, expected {expected!r}")
    return out


def run_child(scheduler: str, graph: str, size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", scheduler, graph, str(size)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"no result in {CHILD_TIMEOUT} s"}
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{scheduler} {graph} {size}: exit code {done.returncode} (its stderr is above)")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cell(result: dict | None, nodes: int) -> str:
    if result is None:
        return f"{'-':>16}"
    if "error" in result:
        return f"{'timeout':>16}"
    return f"{result['seconds']:>7.1f}s {nodes / result['seconds'] / 1000:>5.1f}k/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,500 and 10,000 instead of 100k and 1M")
    parser.add_argument("--child", nargs=3, metavar=("SCHEDULER", "GRAPH", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        scheduler, graph, size = args.child
        print(json.dumps(child(scheduler, graph, int(size))))
        return
    small, large = (2_500, 10_000) if args.quick else (100_000, 1_000_000)
    header = (
        f"{'graph':>6} {'size':>9} {'nodes':>9} | {'dask sync':>16} {'dask threads':>16} {'distributed':>16} "
        f"| {'shoal':>16} {'dask part':>9} {'submit':>7} {'rest':>7} {'own/node':>9} {'speedup':>7} "
        f"| {'RSS shoal':>9} {'dask sync':>9} {'dask graph':>10}"
    )
    print(header)
    print("-" * len(header), flush=True)
    last = []
    for size in (small, large):
        for graph in GRAPHS:
            shoal = run_child("shoal", graph, size)
            sync = run_child("sync", graph, size)
            threads = run_child("threads", graph, size)
            dist = run_child("distributed", graph, size) if size == small else None
            bound = run_child("graph", graph, size)
            nodes = shoal["nodes"]
            best = min(r["seconds"] for r in (sync, threads, dist) if r and "seconds" in r)
            speedup = best / shoal["seconds"]
            print(
                f"{graph:>6} {size:>9,} {nodes:>9,} | {_cell(sync, nodes)} {_cell(threads, nodes)} {_cell(dist, nodes)} "
                f"| {_cell(shoal, nodes)} {shoal['dask_part']:>8.1f}s {shoal['submit']:>6.1f}s {shoal['rest']:>6.1f}s "
                f"{shoal['own_us_per_node']:>7.2f}us {speedup:>6.2f}x "
                f"| {shoal['peak_rss_mb']:>7.0f}MB {sync['peak_rss_mb']:>7.0f}MB {bound['peak_rss_mb']:>8.0f}MB",
                flush=True,
            )
            if size == large:
                last.append((shoal["own_us_per_node"], speedup))
    print(
        "(seconds of the whole dask.compute, graphs built beforehand; dask part = Dask's own optimise + "
        "materialise inside Shoal's compute; submit = Shoal's grouping + encoding + submission; rest = "
        "execution + gather; own/node = (shoal - dask part) / nodes; speedup = fastest Dask / shoal; "
        "RSS = peak resident memory of the Shoal client process, of Dask's sync scheduler, and of Dask's own "
        "optimisation + materialisation with no scheduler (dask graph: what any scheduler's client needs))"
    )
    print(f"shoal_us_per_node={max(u for u, _ in last):.2f} speedup_vs_dask_best={min(s for _, s in last):.2f}")


if __name__ == "__main__":
    main()
