"""Fixtures: one local Shoal cluster (2 workers x 1 core) for the whole session, and a
fresh client (its own session, closed after each test).

The cluster runs the ``shoal`` binary found by ``shoal.cluster.find_binary`` (``SHOAL_BIN``,
``PATH``, or ``target/release/shoal`` of this checkout). This folder is put on the workers'
``PYTHONPATH`` so that functions defined in test modules (pickled by reference, as for
any importable module) can be imported by the executors.
"""

from __future__ import annotations

import contextlib
import os
import pathlib

import pytest

import shoal

TESTS = pathlib.Path(__file__).resolve().parent


@contextlib.contextmanager
def local_cluster(**kwargs):
    """A LocalCluster whose executors can import the test modules."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), *([old] if old else [])])
    try:
        with shoal.LocalCluster(**kwargs) as c:
            yield c
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="session")
def cluster():
    with local_cluster(n_workers=2, cores=1) as c:
        yield c


@pytest.fixture
def client(cluster):
    with cluster.get_client() as c:
        yield c
