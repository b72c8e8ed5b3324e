"""Values larger than one gRPC message (256 MiB): a 1 GiB result is fetched by a task on
another worker and gathered by the client, both in pieces, on real processes."""

from __future__ import annotations

import pytest
from procs import ProcessCluster

GIB = 2**30


def make(n: int) -> bytes:
    return b"\x07" * (n - 2) + b"\x01\x02"


def summary(value: bytes) -> tuple:
    return len(value), value[:1], value[-2:], value.count(b"\x07")


@pytest.fixture
def cluster():
    with ProcessCluster() as c:
        yield c


def test_a_1_gib_result_is_fetched_between_workers_and_gathered(cluster):
    """A result four times the message limit reaches a task on another worker and the
    client whole, byte for byte."""
    cluster.add_worker("maker", "--resources", "maker=1")
    cluster.add_worker("reader", "--resources", "reader=1")
    with cluster.connect(2) as client:
        big = client.submit(make, GIB, resources={"maker": 1})
        read = client.submit(summary, big, resources={"reader": 1})
        assert read.result(timeout=300) == (GIB, b"\x07", b"\x01\x02", GIB - 2)
        value = big.result(timeout=300)
        assert len(value) == GIB and value[-2:] == b"\x01\x02"
