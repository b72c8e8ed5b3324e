"""The executor process's task runner, driven in this process (no worker): the value cache
and grouped Dask nodes."""

from __future__ import annotations

import pickle

import pytest

from shoal import _payload, executor
from shoal.v1 import executor_pb2


def run(ex: executor.Executor, func, inputs: list[bytes], args: tuple, task: int = 1):
    """Runs ``func(*args)`` as a ``call`` task, its function already sent as a shared blob."""
    code = _payload.dumps_code(func)
    spec = executor_pb2.ExecTask(task=task, key=f"t{task}", inputs=inputs)
    spec.payload.pickled = _payload.dumps(("call", args, {}))
    spec.payload.shared = _payload.blob_id(code)
    ex.shared[spec.payload.shared] = _payload.loads(code)
    reply = ex.run(spec)
    assert not reply.HasField("error"), reply.error.detail
    return reply


SEEN: list = []


def grab(x):
    SEEN.append(x)
    return 0


def make():
    SEEN.append({"k": [1]})
    return SEEN[-1]


def test_a_value_read_twice_is_unpickled_once():
    """Two tasks reading the same bytes get the very same object."""
    SEEN.clear()
    ex = executor.Executor("w")
    data = pickle.dumps([1, 2, 3], protocol=5)
    run(ex, grab, [data], (_payload.Dep(0),), task=1)
    run(ex, grab, [bytes(data)], (_payload.Dep(0),), task=2)
    assert SEEN[0] == [1, 2, 3] and SEEN[0] is SEEN[1]


def test_a_result_is_kept_for_tasks_of_the_same_executor():
    """A task's own result, read back by a later task, is the object it returned."""
    SEEN.clear()
    ex = executor.Executor("w")
    reply = run(ex, make, [], (), task=1)
    run(ex, grab, [reply.value], (_payload.Dep(0),), task=2)
    assert SEEN[1] is SEEN[0]


def test_cache_drops_least_recently_used_over_budget_and_skips_large_pickles():
    """The cache stays within its budget, dropping the oldest entries; large pickles are
    unpickled every time and never kept."""
    cache = executor.ValueCache(budget=3 * (100 + executor.ENTRY_OVERHEAD))
    blobs = [pickle.dumps(bytes([i]) * 80, protocol=5) for i in range(4)]
    assert all(len(b) <= 100 for b in blobs)
    first = cache.loads(blobs[0])
    cache.loads(blobs[1])
    cache.loads(blobs[2])
    assert cache.loads(blobs[0]) is first  # used again: now the newest
    cache.loads(blobs[3])
    assert list(cache.entries) == [blobs[2], blobs[0], blobs[3]]
    assert cache.size <= cache.budget
    large = pickle.dumps(b"x" * (executor.VALUE_CACHE_MAX_ITEM + 1), protocol=5)
    assert cache.loads(large) is not cache.loads(large)
    assert large not in cache.entries


@pytest.mark.parametrize(("limit", "budget"), [(0, executor.VALUE_CACHE_BYTES), (2**30, executor.VALUE_CACHE_BYTES), (2**24, 2**20)])
def test_cache_budget_follows_the_memory_limit(limit, budget):
    """At most a sixteenth of the executor's memory limit, and never over the default."""
    assert executor.cache_budget(limit) == budget
