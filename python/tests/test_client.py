"""``shoal.Client`` against a real local cluster: session, submission, results, errors,
futures and key release."""

from __future__ import annotations

import gc
import operator
import os
import time

import numpy as np
import pytest

import shoal
import shoal.client
from shoal.v1 import client_pb2


def inc(x):
    return x + 1


def add(*xs, extra=0):
    return sum(xs) + extra


def boom(x):
    raise ValueError(f"bad value {x}")


def slow(seconds, value=None):
    time.sleep(seconds)
    return value


def gated(path, value=None):
    """Returns once the test creates ``path``: orders events without timing (60 s guard)."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return value


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("this exception refuses to be pickled")


def raise_unpicklable():
    raise Unpicklable("cannot travel")


# ---- session ---------------------------------------------------------------------------


def test_handshake_opens_a_session_on_the_cluster(client):
    """A client handshakes, sees the cluster's workers and the scheduler's counts."""
    info = client.cluster_info()
    assert len(info.workers) == 2
    assert info.version.runtime_version == shoal.__version__
    assert client.status == "running"
    assert client.dashboard_link and "/status?token=" in client.dashboard_link


def test_version_mismatch_is_refused_with_the_schedulers_message(cluster, monkeypatch):
    """Another client version is refused at the handshake; the scheduler's message (which
    names both versions and the fix) is surfaced as is."""
    monkeypatch.setattr(shoal.client, "__version__", "0.0.0-test")
    with pytest.raises(shoal.VersionMismatchError) as info:
        shoal.Client(cluster.address, token=cluster.token)
    message = str(info.value)
    assert "version mismatch" in message and "0.0.0-test" in message and "pip install" in message


def test_wrong_token_is_refused(cluster):
    """A wrong token fails the handshake with AuthenticationError, not a hang."""
    with pytest.raises(shoal.AuthenticationError, match="token"):
        shoal.Client(cluster.address, token="not-the-token")


def test_missing_token_says_how_to_provide_one(cluster, monkeypatch):
    """Without token= or SHOAL_TOKEN the error names both ways to give one."""
    monkeypatch.delenv("SHOAL_TOKEN", raising=False)
    with pytest.raises(shoal.ShoalError, match="SHOAL_TOKEN"):
        shoal.Client(cluster.address)


def test_address_and_token_come_from_the_environment(cluster, monkeypatch):
    """Client() with no arguments connects to $SHOAL_SCHEDULER_ADDRESS with $SHOAL_TOKEN (a
    ShoalJob runner's environment); without the address it says how to give one."""
    monkeypatch.setenv("SHOAL_SCHEDULER_ADDRESS", cluster.address)
    monkeypatch.setenv("SHOAL_TOKEN", cluster.token)
    with shoal.Client() as client:
        assert client.submit(operator.add, 1, 2).result() == 3
    monkeypatch.delenv("SHOAL_SCHEDULER_ADDRESS")
    with pytest.raises(shoal.ShoalError, match="SHOAL_SCHEDULER_ADDRESS"):
        shoal.Client()


def test_unreachable_scheduler_fails_within_the_timeout():
    """A dead address fails the handshake after `timeout`, naming the address."""
    start = time.monotonic()
    with pytest.raises(shoal.SchedulerError, match="127.0.0.1:9"):
        shoal.Client("127.0.0.1:9", token="x", timeout=0.5)
    assert time.monotonic() - start < 5


def test_closed_client_fails_pending_futures_and_new_calls(cluster):
    """Closing ends the session: pending futures fail with ConnectionLostError and the
    client refuses new work with a clear error."""
    with cluster.get_client() as c:
        f = c.submit(slow, 1)
    with pytest.raises(shoal.ConnectionLostError):
        f.result(timeout=5)
    with pytest.raises(shoal.ShoalError, match="closed"):
        c.submit(inc, 1)


# ---- submission and results ------------------------------------------------------------


def test_scatter_and_gather_round_trip(client):
    """Scattered values (run as builtin constant tasks) come back equal, in the shape given."""
    arr = np.arange(10_000, dtype="float64")
    single = client.scatter(arr)
    many = client.scatter([1, "two", {"three": 3}])
    named = client.scatter({"x": 1, "y": (2, 3)})
    assert np.array_equal(single.result(), arr)
    assert client.gather(many) == [1, "two", {"three": 3}]
    assert client.gather(named) == {"x": 1, "y": (2, 3)}


def test_submit_replaces_futures_in_arguments(client):
    """Futures at the top level, inside a list/tuple/dict argument and as keyword
    arguments are replaced by their values."""
    a, b = client.submit(inc, 1), client.scatter(10)
    assert client.submit(operator.add, a, b).result() == 12
    assert client.submit(sum, [a, b, 5]).result() == 17
    assert client.submit(lambda d: d["a"] * d["b"], {"a": a, "b": b}).result() == 20
    assert client.submit(add, a, a, extra=b).result() == 14


def test_future_nested_too_deep_is_refused_naming_the_key(client):
    """A Future two levels deep cannot be replaced: the error names it and the fix."""
    a = client.scatter(1)
    with pytest.raises(TypeError, match=a.key):
        client.submit(len, [[a]])


def test_default_keys_are_unique_and_named_after_the_function(client):
    """Two submissions of the same call get distinct keys starting with the function name."""
    f, g = client.submit(inc, 1), client.submit(inc, 1)
    assert f.key != g.key and f.key.startswith("inc-") and g.key.startswith("inc-")
    assert client.submit(inc, 1, key="my-key").key == "my-key"


def test_map_over_several_iterables_with_kwargs(client):
    """map zips its iterables, passes kwargs to every call and keeps the order."""
    futures = client.map(add, range(20), range(100, 120), extra=1000, key_prefix="sum3")
    assert all(f.key.startswith("sum3-") for f in futures)
    assert client.gather(futures) == [i + 100 + i + 1000 for i in range(20)]


def test_map_accepts_futures_as_items(client):
    """Futures among map items become dependencies of each item's task."""
    xs = client.map(inc, range(5))
    assert client.gather(client.map(inc, xs)) == [i + 2 for i in range(5)]


def test_map_of_100k_items(cluster):
    """A 100,000-item map is one submission whose every result comes back (its speed is
    measured by bench/dask_compare.py, not here)."""
    with cluster.get_client() as c:
        futures = c.map(inc, range(100_000))
        assert len(futures) == 100_000
        assert futures[-1].result(timeout=120) == 100_000
        assert sum(c.gather(futures)) == sum(range(1, 100_001))


def test_gather_keeps_nested_structures(client):
    """gather returns lists, tuples and dicts of futures with values in place; other
    values pass through."""
    a, b = client.submit(inc, 1), client.submit(inc, 2)
    assert client.gather({"a": a, "rest": [b, (a, "x")], "n": 5}) == {"a": 2, "rest": [3, (2, "x")], "n": 5}


# ---- errors ----------------------------------------------------------------------------


def test_remote_exception_keeps_type_message_key_and_worker(client):
    """A task's exception is re-raised with its type and message, noting key and worker."""
    f = client.submit(boom, 3)
    with pytest.raises(ValueError, match="bad value 3") as info:
        f.result()
    notes = "\n".join(info.value.__notes__)
    assert f.key in notes and "local-worker-" in notes
    assert "Remote traceback" in notes and "boom" in notes
    assert f.status == "error"
    assert isinstance(f.exception(), ValueError)


def test_failed_dependency_is_named_by_the_dependent(client):
    """A task whose input failed raises the input's exception, naming the failed key."""
    bad = client.submit(boom, 1)
    dependent = client.submit(inc, bad)
    with pytest.raises(ValueError) as info:
        dependent.result()
    notes = "\n".join(info.value.__notes__)
    assert dependent.key in notes and f'dependency "{bad.key}" failed' in notes


def test_unpicklable_exception_becomes_task_error(client):
    """An exception that cannot travel is raised as TaskError with kind, key and worker."""
    f = client.submit(raise_unpicklable)
    with pytest.raises(shoal.TaskError) as info:
        f.result()
    err = info.value
    assert err.kind == "Unpicklable" and err.key == f.key and err.worker.startswith("local-worker-")
    assert "cannot travel" in str(err)


def test_gather_raises_the_first_failure(client):
    """gather raises a failed future's exception instead of returning partial results."""
    with pytest.raises(ValueError, match="bad value 2"):
        client.gather([client.submit(inc, 1), client.submit(boom, 2)])


def test_submission_refused_by_the_scheduler_names_the_keys(client):
    """An invalid graph (a dependency the scheduler does not hold) is refused with the
    scheduler's message naming the keys."""
    from shoal import _payload, _wire

    task = _wire.task("orphan", _wire.constant_payload(_payload.dumps(1)), existing_deps=["never-submitted"], wanted=True)
    with pytest.raises(shoal.SchedulerError, match="never-submitted") as info:
        client._submit(["orphan"], [task], ["orphan"])
    assert "orphan" in str(info.value)
    assert client._status("orphan") == "released"


def test_events_before_the_submission_reply_are_not_lost(client, monkeypatch):
    """A completion event that arrives before SubmitGraph answers (its serial is not
    mapped yet) is kept and applied once the submission's first serial is known."""
    real = client._submit_raw

    def event_first(chunks, **kwargs):
        result = real(chunks, **kwargs)
        client._on_events(client_pb2.ClientEvents(finished_serials=[result.first_serial]))
        assert client._orphans == [result.first_serial]
        return result

    monkeypatch.setattr(client, "_submit_raw", event_first)
    f = client.submit(slow, 0.5)  # only the early event can have finished it yet
    assert f.status == "finished" and not client._orphans


# ---- futures ---------------------------------------------------------------------------


def test_future_status_done_and_result_timeout(client, tmp_path):
    """A running future is pending; result(timeout) raises TimeoutError; then it finishes."""
    gate = str(tmp_path / "gate")
    f = client.submit(gated, gate, "done")
    assert f.status == "pending" and not f.done()
    with pytest.raises(TimeoutError, match=f.key):
        f.result(timeout=0.1)
    open(gate, "w").close()
    assert f.result(timeout=30) == "done"
    assert f.done() and f.status == "finished" and f.exception() is None


def test_cancel_fails_the_future_with_cancelled_error(client):
    """Cancelling an unfinished task makes its future raise shoal.CancelledError."""
    f = client.submit(slow, 2)  # short: a cancelled running task still holds its core
    f.cancel()
    with pytest.raises(shoal.CancelledError, match=f.key):
        f.result(timeout=10)
    assert f.cancelled()


def test_done_callback_runs_once_finished(client):
    """add_done_callback runs after completion, and at once on a finished future."""
    seen = []
    f = client.submit(slow, 0.2, 7)
    f.add_done_callback(lambda fut: seen.append(fut.result()))
    f.result()
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    f.add_done_callback(lambda fut: seen.append("again"))
    assert seen == [7, "again"]


def test_as_completed_yields_in_completion_order(client, tmp_path):
    """as_completed yields futures as they finish, not in submission order."""
    gate = str(tmp_path / "gate")
    first = client.submit(gated, gate, 0)  # finishes only once the test opens the gate
    second = client.submit(inc, 0)
    completed = shoal.as_completed([first, second])
    order = [next(completed).result()]
    open(gate, "w").close()  # (after the second was yielded: no race between the two)
    order.append(next(completed).result())
    assert order == [1, 0]


def test_wait_first_completed_and_all(client, tmp_path):
    """wait returns at the first completion or when all are done, as asked."""
    gate = str(tmp_path / "gate")
    long = client.submit(gated, gate)
    fast = client.submit(inc, 1)
    done, not_done = shoal.wait([fast, long], return_when=shoal.FIRST_COMPLETED)
    assert done == {fast} and not_done == {long}
    with pytest.raises(TimeoutError):
        shoal.wait([long], timeout=0.1)
    open(gate, "w").close()
    done, not_done = shoal.wait([fast, long], timeout=30)
    assert done == {fast, long} and not not_done


def test_key_is_released_when_its_last_future_is_collected(client):
    """Dropping every Future of a key releases it on the scheduler (batched Release);
    another Future of the key keeps it held."""
    f = client.submit(inc, 1)
    assert f.result() == 2
    key = f.key
    twin = shoal.Future(key, client)
    del f
    gc.collect()
    time.sleep(0.3)
    assert client._status(key) == "finished" and client.gather(twin) == 2
    del twin
    gc.collect()
    deadline = time.monotonic() + 5
    while client._status(key) != "released" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client._status(key) == "released"
    with pytest.raises(shoal.SchedulerError, match="NOT_FOUND"):
        client._fetch([key])


def test_cluster_info_counts_tasks(client):
    """GetClusterInfo answers with task counts that grow as tasks finish."""
    before = client.cluster_info().tasks.finished_total
    client.gather(client.map(inc, range(10)))
    assert isinstance(client.cluster_info(), client_pb2.ClusterStatus)
    assert client.cluster_info().tasks.finished_total >= before + 10
