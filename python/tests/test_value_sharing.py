"""Which tasks share one Python object: only the readers of the same key (as in Dask's
workers and its threaded scheduler), never two keys whose values pickle to equal bytes,
never two graphs. Runs on one worker with one executor, so every task meets every cached
value."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from conftest import local_cluster


@pytest.fixture(scope="module")
def client():
    with local_cluster(n_workers=1, cores=1) as cluster, cluster.get_client() as c:
        yield c


def append_four(values):
    values.append(4)
    return len(values)


def length(values, _after):
    return len(values)


def same_object(a, b):
    return a is b


def test_a_task_changing_its_input_leaves_an_equal_value_of_another_key_alone(client):
    """Two keys with equal values; a task appends to one of them in place; a later task
    reading the other still sees its 3 elements."""
    a = client.submit(list, [1, 2, 3], key="part-A")
    b = client.submit(list, [1, 2, 3], key="part-B")
    appended = client.submit(append_four, a, key="append-A")
    assert client.submit(length, b, appended, key="len-B").result() == 3
    assert client.submit(length, a, appended, key="len-A").result() == 4  # same key: shared, as in Dask


def test_readers_of_one_key_share_one_object_and_two_keys_do_not(client):
    """The value cache still serves its purpose: tasks reading one key get one object."""
    a = client.submit(list, [5], key="one-A")
    b = client.submit(list, [5], key="one-B")
    assert client.submit(same_object, a, a).result() is True
    assert client.submit(same_object, a, b).result() is False


def make_frame() -> dd.DataFrame:
    """A fresh collection over the same data each call (so a threaded run never sees what
    an earlier run changed in place)."""
    rng = np.random.RandomState(3)
    n = 600
    pdf = pd.DataFrame({
        "g": rng.randint(0, 3, n),
        "h": rng.randint(0, 2, n),
        "x": rng.random(n),
        "y": rng.random(n) * 10,
        "s": rng.choice(["p", "q"], n),
    })
    return dd.from_pandas(pdf, npartitions=4)


def name_index(df):
    df.index.name = "row"
    return df


def add_column(df):
    df["z"] = df["x"] * 2
    return df


def set_first_value(df):
    df.loc[df.index[0], "y"] = -1.0
    return df


def delete_column(df):
    del df["s"]
    return df


def assert_same(got, expected):
    """Equal values, index and column names, and dtypes."""
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected, check_exact=False)
        assert got.index.names == expected.index.names and list(got.columns.names) == list(expected.columns.names)
    else:
        pd.testing.assert_series_equal(got, expected, check_exact=False)
        assert got.index.names == expected.index.names


AGGREGATIONS = [
    pytest.param(lambda f, n: f.groupby(["g", "h"]).cov(numeric_only=n), id="cov"),
    pytest.param(lambda f, n: f.groupby(["g", "h"]).corr(numeric_only=n), id="corr"),
]


@pytest.mark.parametrize("agg", AGGREGATIONS)
def test_multi_level_groupby_twice_with_different_numeric_only_equals_threaded(client, agg):
    """cov/corr over a two-column group-by, run with numeric_only=False and then True on the
    same frame, and then both in one compute: equal to the threaded scheduler's results,
    names and dtypes included."""
    frame = make_frame()[["g", "h", "x", "y"]]
    for numeric_only in (False, True):
        expected = agg(make_frame()[["g", "h", "x", "y"]], numeric_only).compute(scheduler="threads")
        assert_same(agg(frame, numeric_only).compute(scheduler=client.get), expected)
    both = dask.compute(agg(frame, False), agg(frame, True), scheduler=client.get)
    for got, numeric_only in zip(both, (False, True)):
        expected = agg(make_frame()[["g", "h", "x", "y"]], numeric_only).compute(scheduler="threads")
        assert_same(got, expected)


@pytest.mark.parametrize("change", [name_index, add_column, set_first_value, delete_column])
def test_in_place_changes_inside_map_partitions_stay_in_their_graph(client, change):
    """A map_partitions function that changes its partition in place, then plain
    computations over the same data: each equals its threaded result (no graph sees another
    graph's change)."""
    assert_same(make_frame().map_partitions(change).compute(scheduler=client.get),
                make_frame().map_partitions(change).compute(scheduler="threads"))
    assert_same(make_frame().compute(scheduler=client.get), make_frame().compute(scheduler="threads"))
    assert_same(make_frame().groupby("g").x.sum().compute(scheduler=client.get),
                make_frame().groupby("g").x.sum().compute(scheduler="threads"))
