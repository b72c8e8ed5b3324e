"""Shoal's demo: real Dask work on a local Shoal cluster (scheduler + 2 workers on this
machine), checked against Dask's own threaded scheduler.

    python examples/dask_demo.py
"""

from __future__ import annotations

import time
import warnings

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd

import shoal


def main() -> None:
    # Dask warns that the matmul below multiplies chunks: expected, and not Shoal's business.
    warnings.filterwarnings("ignore", category=da.PerformanceWarning)
    with shoal.LocalCluster(n_workers=2) as cluster, cluster.get_client() as client:
        print(f"Shoal cluster at {cluster.address}; dashboard at {client.dashboard_link}")

        x = da.random.RandomState(42).normal(10, 2, size=(4_000, 4_000), chunks=(250, 250))
        stats = (x.mean(), x.std(), (x @ x.T)[:10, :10].sum())
        start = time.perf_counter()
        on_shoal = dask.compute(*stats, scheduler=client)
        took = time.perf_counter() - start
        reference = dask.compute(*stats, scheduler="threads")
        assert np.allclose(on_shoal, reference), (on_shoal, reference)
        print(f"dask.array 4000x4000 in 256 chunks: mean={on_shoal[0]:.4f} std={on_shoal[1]:.4f} "
              f"matmul corner sum={on_shoal[2]:.1f}  ({took:.2f}s, equal to the threaded scheduler)")

        rng = np.random.default_rng(0)
        pdf = pd.DataFrame({
            "region": rng.choice(["north", "south", "east", "west"], 400_000),
            "product": rng.integers(0, 5, 400_000),
            "sales": rng.random(400_000) * 100,
        })
        df = dd.from_pandas(pdf, npartitions=16)
        summary = df.groupby(["region", "product"]).sales.agg(["sum", "mean", "count"])
        start = time.perf_counter()
        (on_shoal,) = dask.compute(summary, scheduler=client)
        took = time.perf_counter() - start
        (reference,) = dask.compute(summary, scheduler="threads")
        pd.testing.assert_frame_equal(on_shoal.sort_index(), reference.sort_index())
        print(f"dask.dataframe group-by on 2 columns over 16 partitions ({took:.2f}s, equal to the threaded scheduler):")
        print(on_shoal.sort_index().head(8).round(2).to_string())

        futures = client.map(lambda v: v * v, range(10_000))
        start = time.perf_counter()
        total = sum(client.gather(futures))
        print(f"client.map of 10,000 Python tasks: sum of squares = {total} ({time.perf_counter() - start:.2f}s)")


if __name__ == "__main__":
    main()
