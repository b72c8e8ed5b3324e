"""The worker's shared-memory store: results with large buffers stay live in the executor
that made them (its tasks read the object itself) and are written once into the worker's
directory under /dev/shm when another process reads them, mapped read-only there; a crash
mid-write leaves nothing visible; a live result lost with its executor is computed again;
values go when nothing needs them; spilling moves them to disk and back intact; inputs are
read-only.

Each test starts its own one-worker cluster, so that its figures and its store directory
are its own."""

from __future__ import annotations

import glob
import os
import signal
import time

import numpy as np
import pytest
from conftest import local_cluster

MIB = 2**20
CHUNK = 2 * MIB // 8  # float64 elements in a 2 MiB chunk


def make_chunk(seed: int = 0) -> np.ndarray:
    return np.arange(CHUNK, dtype=np.float64) + seed


def worker_pid() -> int:
    return os.getppid()


def mapping_of(address: int) -> dict:
    """The /proc/self/smaps entry (path and kB fields) of the mapping holding ``address``."""
    with open("/proc/self/smaps") as f:
        lines = f.read().splitlines()
    entry = None
    for line in lines:
        head = line.split()
        if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            entry = {"path": head[5] if len(head) > 5 else "", "inside": lo <= address < hi}
            continue
        if entry is not None and entry["inside"] and head[0].endswith(":"):
            if head[0] == "VmFlags:":
                return entry
            entry[head[0][:-1]] = int(head[1])
    raise AssertionError(f"no mapping holds {address:#x}")


def where_is(x: np.ndarray, i: int) -> dict:
    """Run by each reader: where its input's data lives, and what that mapping costs."""
    found = mapping_of(x.__array_interface__["data"][0])
    return {"pid": os.getpid(), "path": found["path"], "writeable": x.flags.writeable,
            "anonymous_kb": found["Anonymous"], "rss_kb": found["Rss"],
            "sum": float(x.sum()), "reader": i}


def private_kb(pid: int) -> int:
    """Anonymous (private, not file-backed) resident memory of a process, in kB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))


def store_dir(pid: int) -> str:
    (found,) = glob.glob(f"/dev/shm/shoal-*-{pid}")
    return found


def wait_for(check, what: str, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


@pytest.fixture
def client():
    with local_cluster(n_workers=1, cores=2) as cluster, cluster.get_client() as c:
        yield c


def test_a_2mb_chunk_read_by_8_tasks_exists_once(client):
    """Once another process needs it (here the client first), one copy in shared memory,
    mapped by each executor once: no reader, executor or the worker holds a private copy
    of it, and the executor that made it let its own go."""
    pid = client.submit(worker_pid).result()
    before = private_kb(pid)
    chunk = client.submit(make_chunk, key="chunk")
    np.testing.assert_array_equal(chunk.result(), make_chunk())
    readers = [client.submit(where_is, chunk, i, key=f"reader-{i}") for i in range(8)]
    seen = client.gather(readers)
    directory = store_dir(pid)
    files = os.listdir(directory)
    assert len(files) == 1, files
    size = os.path.getsize(os.path.join(directory, files[0]))
    assert 2 * MIB <= size < 2 * MIB + 4096, size
    expected = float(make_chunk().sum())
    for s in seen:
        assert s["path"] == os.path.join(directory, files[0]), s
        assert s["writeable"] is False, s
        # The pages it reads are the file's (tmpfs pages count as dirty, so Private_Dirty
        # only says no other process maps them yet); a private copy would be anonymous.
        assert s["anonymous_kb"] == 0 and s["rss_kb"] * 1024 <= size + 4096, s
        assert s["sum"] == expected
    executors = {s["pid"] for s in seen}
    # Each executor maps the file once, however many of the readers it ran.
    for executor in executors:
        with open(f"/proc/{executor}/maps") as f:
            maps = [line for line in f if line.rstrip().endswith(files[0])]
        assert len(maps) == 1, maps
    grown = private_kb(pid) - before
    print(f"worker private growth {grown} kB; executors {sorted(executors)}; file {size} B")
    assert grown < 2 * 1024, f"the worker's private memory grew {grown} kB: a copy of the chunk"


def test_a_chunk_read_by_tasks_of_the_executor_that_made_it_is_never_written():
    """Tasks run by the executor that made a chunk read that very object (one address, as
    Dask's threads would), read-only; a chunk only tasks read is never written to shared
    memory. One a client wants (it will gather it) is written at once, by its task (and
    the worker reports those bytes)."""
    with local_cluster(n_workers=1, cores=1) as cluster, cluster.get_client() as c:
        pid = c.submit(worker_pid).result()
        directory = store_dir(pid)
        graph = {"chunk": (make_chunk,)}
        graph.update({f"reader-{i}": (where_is, "chunk", i) for i in range(8)})
        graph.update({f"address-{i}": (data_address, "chunk", i) for i in range(4)})
        readers = [f"reader-{i}" for i in range(8)]
        *seen, addresses = c.get(graph, [*readers, [f"address-{i}" for i in range(4)]])
        assert os.listdir(directory) == [], "nothing was written"
        assert len({s["pid"] for s in seen}) == 1
        assert {s["path"] for s in seen} == {"[heap]"}, seen
        assert all(s["writeable"] is False and s["sum"] == float(make_chunk().sum()) for s in seen)
        assert len(set(addresses)) == 1, f"every reader has the one object: {addresses}"
        assert c.cluster_info().workers[0].shared_written_bytes == 0
        wanted = c.submit(make_chunk, 1, key="wanted")
        wait_for(lambda: wanted.done(), "the wanted chunk")
        assert len(os.listdir(directory)) == 1, "written at once: the client wants it"
        np.testing.assert_array_equal(wanted.result(), make_chunk(1))
        written = wait_for(
            lambda: c.cluster_info().workers[0].shared_written_bytes,
            "the worker to report what it wrote",
        )
        assert 2 * MIB <= written < 2 * MIB + 4096, written


def data_address(x: np.ndarray, i: int) -> int:
    return x.__array_interface__["data"][0]


class KillOnce:
    """Kills the process pickling it, the first time only (a file records that it did)."""

    def __init__(self, gate: str) -> None:
        self.gate = gate

    def __reduce__(self):
        if not os.path.exists(self.gate):
            open(self.gate, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return (KillOnce, (self.gate,))


def big_then_kill(gate: str):
    return make_chunk(1), KillOnce(gate)


def test_an_executor_killed_while_writing_a_result_leaves_the_store_clean_and_reruns(client, tmp_path):
    """The half-written file is deleted, nothing of it is visible, and the task runs once
    more and gives its value."""
    gate = str(tmp_path / "killed")
    pid = client.submit(worker_pid).result()
    future = client.submit(big_then_kill, gate, key="dies-writing")
    value, again = future.result()
    assert os.path.exists(gate), "the executor was never killed"
    np.testing.assert_array_equal(value, make_chunk(1))
    assert isinstance(again, KillOnce)
    files = os.listdir(store_dir(pid))
    assert not [f for f in files if f.startswith(".tmp-")], files
    assert len(files) == 1, files  # the task's one sealed result


def test_a_value_is_freed_once_nothing_needs_it(client):
    """After a graph, and once the client lets go of its result, the store is back to
    idle: no files, no stored bytes."""
    pid = client.submit(worker_pid).result()
    directory = store_dir(pid)
    chunks = [client.submit(make_chunk, i, key=f"part-{i}") for i in range(10)]
    total = client.submit(lambda *xs: float(sum(x.sum() for x in xs)), *chunks, key="total")
    assert total.result() == sum(float(make_chunk(i).sum()) for i in range(10))
    del chunks, total
    wait_for(lambda: not os.listdir(directory), "the store's directory to empty")
    info = wait_for(
        lambda: (w := client.cluster_info().workers[0]).stored_bytes == 0 and w,
        "the worker to report no stored bytes",
    )
    assert info.stored_bytes == 0


def checksums(*xs) -> list[float]:
    return [float(x.sum()) for x in xs]


def test_spilling_from_shared_memory_to_disk_and_back_gives_equal_values(monkeypatch):
    """Results past the store's target leave /dev/shm for the spill directory; tasks and
    the client read them back equal."""
    monkeypatch.setenv("SHOAL_MEMORY_LIMIT", str(40 * MIB))
    monkeypatch.setenv("SHOAL_MEMORY_TARGET", "0.3")
    monkeypatch.setenv("SHOAL_MEMORY_SPILL", "0")
    monkeypatch.setenv("SHOAL_MEMORY_PAUSE", "0")
    monkeypatch.setenv("SHOAL_MEMORY_TERMINATE", "0")
    with local_cluster(n_workers=1, cores=2) as cluster, cluster.get_client() as c:
        pid = c.submit(worker_pid).result()
        chunks = [c.submit(make_chunk, i, key=f"spilled-{i}") for i in range(10)]
        c.gather(chunks)
        wait_for(
            lambda: c.cluster_info().workers[0].spilled_bytes >= 5 * 2 * MIB,
            "the worker to report 10 MiB spilled",
        )
        assert len(os.listdir(store_dir(pid))) <= 6
        expected = [float(make_chunk(i).sum()) for i in range(10)]
        assert c.submit(checksums, *chunks, key="read-back").result() == expected
        for i, value in enumerate(c.gather(chunks)):
            np.testing.assert_array_equal(value, make_chunk(i))


def add_one_in_place(x: np.ndarray) -> float:
    x += 1
    return float(x.sum())


def add_one_to_a_copy(x: np.ndarray) -> float:
    x = x.copy()
    x += 1
    return float(x.sum())


def total_of(x: np.ndarray, _after) -> float:
    return float(x.sum())


def test_a_task_changing_its_input_in_place_changes_no_other_tasks_input(client):
    """Large inputs are read-only views: an in-place write fails with how to fix it, the
    next reader sees the value unchanged, and a task that copies first may change it."""
    chunk = client.submit(make_chunk, key="shared-chunk")
    bad = client.submit(add_one_in_place, chunk, key="in-place")
    with pytest.raises(ValueError, match="read-only") as raised:
        bad.result()
    assert "x = x.copy()" in "".join(getattr(raised.value, "__notes__", [])) + str(raised.value)
    good = client.submit(add_one_to_a_copy, chunk, key="copy-first")
    base = float(make_chunk().sum())
    assert good.result() == base + CHUNK
    assert client.submit(total_of, chunk, good, key="after").result() == base
    # The client's copy is its own: read from the worker's file copy-on-write, writable.
    mine = chunk.result()
    mine += 1
    assert client.submit(total_of, chunk, mine.sum(), key="after-client").result() == base


# Small heap blocks kept between tasks, each above an array freed under it.
PINNED: list = []


def fragment_heap(arrays: int) -> tuple[int, int]:
    """Allocates ``arrays`` 4 MiB arrays, each followed by a small block that stays, then
    frees the arrays: their pages are free heap below a block in use, which freeing alone
    never hands back. Returns this executor's pid and its private memory then (kB)."""
    held = []
    for _ in range(arrays):
        held.append(np.ones(4 * MIB // 8))
        PINNED.append(bytearray(4096))
    del held
    return os.getpid(), private_kb(os.getpid())


def test_an_idle_executor_hands_freed_heap_back(client):
    """Executors keep freed chunk-sized arrays for reuse while busy (glibc's thresholds
    raised: no page faults for the next chunk), and hand them back once idle, so the
    worker's memory figures do not count memory nobody uses."""
    pid, busy_kb = client.submit(fragment_heap, 32, key="fragment").result()
    assert busy_kb > 100 * 1024, f"the freed arrays stay in the heap while busy: {busy_kb} kB"
    wait_for(lambda: private_kb(pid) < busy_kb - 100 * 1024, "the idle executor to trim its heap")


def owned_chunk(seed: int, pids: str) -> tuple[int, np.ndarray]:
    """A chunk, with the pid of the executor that made it (also appended to ``pids``)."""
    with open(pids, "a") as f:
        f.write(f"{os.getpid()}\n")
    return os.getpid(), make_chunk(seed)


def wait_for_gate(gate: str, started: str | None = None) -> int:
    if started:
        open(started, "w").close()
    while not os.path.exists(gate):
        time.sleep(0.01)
    return 0


def checksum_of_owned(owned: tuple[int, np.ndarray], _gate: int) -> tuple[int, float]:
    return owned[0], float(owned[1].sum())


def test_results_live_in_an_executor_that_dies_are_computed_again(tmp_path):
    """An executor killed while it keeps a result live (no client wants it, so it is never
    written) loses it: the worker reports it lost, the scheduler computes it again, and the
    task reading it gets the right value, from a new executor."""
    import dask

    pids, gate, started = (str(tmp_path / name) for name in ("pids", "gate", "started"))
    owned = dask.delayed(owned_chunk)(3, pids, dask_key_name="owned")
    with local_cluster(n_workers=1, cores=2) as cluster, cluster.get_client() as c:
        # The gate runs first, in one executor; the chunk is then made in the other (were
        # they submitted together, the chunk and the gate would be one family of the
        # reader, made in one executor, and the kill would fail the gate too).
        opened = c.submit(wait_for_gate, gate, started, key="gate")
        wait_for(lambda: os.path.exists(started), "the gate to run")
        reader = dask.delayed(checksum_of_owned)(owned, opened, dask_key_name="reader")
        future = c.compute(reader)
        maker = int(wait_for(lambda: os.path.exists(pids) and open(pids).read().split(), "the chunk")[0])
        os.kill(maker, signal.SIGKILL)
        # Reaped by the worker: it has seen the death before the reader can start.
        wait_for(lambda: not os.path.exists(f"/proc/{maker}"), "the worker to reap the executor")
        open(gate, "w").close()
        pid, checksum = future.result()
        assert checksum == float(make_chunk(3).sum())
        assert pid != maker, "computed again by a new executor"
        assert len(open(pids).read().split()) == 2, "made twice"
