"""The executor process's task runner, driven in this process (no worker): the value cache,
grouped Dask nodes, and large results kept live until another process asks for them."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from shoal import _objects, _payload, executor
from shoal.v1 import executor_pb2


def run(ex: executor.Executor, func, inputs: list[tuple[int, bytes]], args: tuple, task: int = 1):
    """Runs ``func(*args)`` as a ``call`` task, its function already sent as a shared blob;
    ``inputs`` are (task id, pickled value) pairs."""
    code = _payload.dumps_code(func)
    spec = executor_pb2.ExecTask(
        task=task, key=f"t{task}", inputs=[x for _, x in inputs], input_tasks=[i for i, _ in inputs]
    )
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


def append(x):
    x.append(len(x) + 1)
    return len(x)


def grab_both(x, y):
    SEEN.extend((x, y))
    return 0


def make():
    SEEN.append({"k": [1]})
    return SEEN[-1]


def test_one_key_read_twice_is_unpickled_once():
    """Two tasks reading the same key get the very same object."""
    SEEN.clear()
    ex = executor.Executor("w")
    data = pickle.dumps([1, 2, 3], protocol=5)
    run(ex, grab, [(7, data)], (_payload.Dep(0),), task=1)
    run(ex, grab, [(7, bytes(data))], (_payload.Dep(0),), task=2)
    assert SEEN[0] == [1, 2, 3] and SEEN[0] is SEEN[1]


def test_two_keys_with_equal_bytes_never_share_an_object():
    """A task changing its input in place changes only that key's value: another key whose
    value pickles to the same bytes keeps its own object (the bug of keying by bytes)."""
    SEEN.clear()
    ex = executor.Executor("w")
    data = pickle.dumps([1, 2, 3], protocol=5)
    run(ex, append, [(7, data)], (_payload.Dep(0),), task=1)
    run(ex, grab, [(8, data)], (_payload.Dep(0),), task=2)
    run(ex, grab, [(7, data)], (_payload.Dep(0),), task=3)
    assert SEEN[0] == [1, 2, 3]
    assert SEEN[1] == [1, 2, 3, 4]  # key 7's own object, changed by the task that read it


def test_a_result_is_kept_for_tasks_of_the_same_executor():
    """A task's own result, read back by a later task, is the object it returned."""
    SEEN.clear()
    ex = executor.Executor("w")
    reply = run(ex, make, [], (), task=1)
    run(ex, grab, [(1, reply.value)], (_payload.Dep(0),), task=2)
    assert SEEN[1] is SEEN[0]


def test_released_keys_are_forgotten():
    """After the worker releases a key, its value is unpickled anew (and the size counts
    only what is still kept)."""
    SEEN.clear()
    ex = executor.Executor("w")
    data = pickle.dumps([1], protocol=5)
    run(ex, grab_both, [(7, data), (9, data)], (_payload.Dep(0), _payload.Dep(1)), task=1)
    ex.values.release([7, 12345])
    assert list(ex.values.entries) == [9, 1]
    run(ex, grab, [(7, data)], (_payload.Dep(0),), task=2)
    assert SEEN[0] == SEEN[2] and SEEN[0] is not SEEN[2]
    assert ex.values.size == sum(size + executor.ENTRY_OVERHEAD for _, size in ex.values.entries.values())


def test_inputs_without_ids_are_never_shared():
    """A task whose inputs come without task ids (an older worker) unpickles every input."""
    SEEN.clear()
    ex = executor.Executor("w")
    data = pickle.dumps([1], protocol=5)
    for task in (1, 2):
        spec = executor_pb2.ExecTask(task=task, key="t", inputs=[data])
        code = _payload.dumps_code(grab)
        spec.payload.pickled = _payload.dumps(("call", (_payload.Dep(0),), {}))
        spec.payload.shared = _payload.blob_id(code)
        ex.shared[spec.payload.shared] = _payload.loads(code)
        assert not ex.run(spec).HasField("error")
    assert SEEN[0] is not SEEN[1]


def test_cache_drops_least_recently_used_over_budget_and_skips_large_values():
    """The cache stays within its budget, dropping the oldest entries; a value over a
    quarter of the budget is unpickled every time and never kept."""
    cache = executor.ValueCache(budget=3 * (100 + executor.ENTRY_OVERHEAD))
    blobs = [pickle.dumps(bytes([i]) * 80, protocol=5) for i in range(4)]
    assert all(len(b) <= 100 for b in blobs)
    first = cache.loads(0, blobs[0])
    cache.loads(1, blobs[1])
    cache.loads(2, blobs[2])
    assert cache.loads(0, blobs[0]) is first  # used again: now the newest
    cache.loads(3, blobs[3])
    assert list(cache.entries) == [2, 0, 3]
    assert cache.size <= cache.budget
    large = pickle.dumps(b"x" * (cache.budget // 4 + 1), protocol=5)
    assert cache.loads(5, large) is not cache.loads(5, large)
    assert 5 not in cache.entries


@pytest.mark.parametrize(
    ("limit", "budget"), [(0, executor.VALUE_CACHE_BYTES), (2**30, executor.VALUE_CACHE_BYTES), (2**24, 2**20)]
)
def test_cache_budget_follows_the_memory_limit(limit, budget):
    """At most a sixteenth of the executor's memory limit, and never over the default."""
    assert executor.cache_budget(limit) == budget


def make_large():
    SEEN.append(np.arange(100_000.0))
    return SEEN[-1]


def read_stored(ex: executor.Executor, task: int, input_task: int):
    """Runs ``grab`` on a stored input (the worker sends no bytes, only where it is)."""
    code = _payload.dumps_code(grab)
    spec = executor_pb2.ExecTask(task=task, key=f"t{task}", inputs=[b""], input_tasks=[input_task], in_store=[True])
    spec.payload.pickled = _payload.dumps(("call", (_payload.Dep(0),), {}))
    spec.payload.shared = _payload.blob_id(code)
    ex.shared[spec.payload.shared] = _payload.loads(code)
    reply = ex.run(spec)
    assert not reply.HasField("error"), reply.error.detail
    return reply


def test_a_large_result_stays_live_until_another_process_asks(tmp_path):
    """A large result is kept, not written: the next task of this executor reads the
    object itself, read-only. Asked to publish, the executor writes it once and lets its
    own copy go; its next reader maps the file."""
    SEEN.clear()
    ex = executor.Executor("w", store_dir=str(tmp_path))
    reply = run(ex, make_large, [], (), task=1)
    assert reply.live and not reply.in_store and reply.size > 800_000
    assert os.listdir(tmp_path) == [], "nothing written"
    read_stored(ex, 2, 1)
    assert SEEN[1] is SEEN[0] and not SEEN[1].flags.writeable
    (published,) = ex.publish([1])
    assert published.in_store and os.listdir(tmp_path) == [f"{1:016x}"]
    assert os.path.getsize(tmp_path / f"{1:016x}") == reply.size
    assert 1 not in ex.live
    read_stored(ex, 3, 1)
    assert SEEN[2] is not SEEN[0]
    np.testing.assert_array_equal(SEEN[2], SEEN[0])
    assert ex.publish([1])[0].gone, "written already: nothing live to write"


def test_a_live_result_the_store_cannot_take_goes_as_bytes_and_stays_live(tmp_path):
    """With /dev/shm full or gone the value travels as bytes, and the tasks already sent to
    this executor to read it still find it live."""
    SEEN.clear()
    store = tmp_path / "store"
    store.mkdir()
    ex = executor.Executor("w", store_dir=str(store))
    run(ex, make_large, [], (), task=1)
    store.rmdir()
    (published,) = ex.publish([1])
    assert published.WhichOneof("place") == "value"
    np.testing.assert_array_equal(_objects.loads(published.value), SEEN[0])
    read_stored(ex, 2, 1)
    assert SEEN[1] is SEEN[0]


def test_a_result_a_client_wants_is_written_at_once(tmp_path):
    """It will be gathered: written by its task, not kept live."""
    ex = executor.Executor("w", store_dir=str(tmp_path))
    code = _payload.dumps_code(make_large)
    spec = executor_pb2.ExecTask(task=1, key="t1", wanted=True)
    spec.payload.pickled = _payload.dumps(("call", (), {}))
    spec.payload.shared = _payload.blob_id(code)
    ex.shared[spec.payload.shared] = _payload.loads(code)
    reply = ex.run(spec)
    assert reply.in_store and not reply.live and not ex.live
    assert os.listdir(tmp_path) == [f"{1:016x}"]
