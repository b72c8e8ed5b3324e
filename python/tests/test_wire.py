"""The hand-written submission encoding (``shoal._wire``) against the generated protobuf
classes: same bytes, and chunks that parse and keep blobs ahead of their tasks."""

from __future__ import annotations

from shoal import _wire
from shoal.v1 import client_pb2, common_pb2


def _spec(**kw) -> client_pb2.TaskSpec:
    return client_pb2.TaskSpec(**kw)


def _framed(spec: client_pb2.TaskSpec) -> bytes:
    return client_pb2.GraphChunk(tasks=[spec]).SerializeToString()


def test_task_encoding_matches_protobuf():
    """Every TaskSpec field we send encodes exactly as protobuf encodes it."""
    python = common_pb2.TaskPayload(python=common_pb2.PythonTask(pickled=b"x" * 300, shared=2**63 + 5))
    cases = [
        (dict(key="a", payload=python), dict(key="a", payload=_wire.python_payload(b"x" * 300, 2**63 + 5))),
        (
            dict(key="ключ-" * 40, deps=[0, 1, 300, 70000], existing_deps=["e1", "é2"], payload=python,
                 priority=-12345, wanted=True),
            dict(key="ключ-" * 40, deps=[0, 1, 300, 70000], existing_deps=["e1", "é2"],
                 payload=_wire.python_payload(b"x" * 300, 2**63 + 5), priority=-12345, wanted=True),
        ),
        (
            dict(key="c", payload=common_pb2.TaskPayload(builtin=common_pb2.BuiltinTask(constant=b"\x00" * 200)),
                 priority=2**40),
            dict(key="c", payload=_wire.constant_payload(b"\x00" * 200), priority=2**40),
        ),
        (
            dict(key="d", payload=common_pb2.TaskPayload(python=common_pb2.PythonTask(pickled=b"p"))),
            dict(key="d", payload=_wire.python_payload(b"p")),
        ),
        (
            dict(key="e", payload=common_pb2.TaskPayload(python=common_pb2.PythonTask(pickled=b"p")),
                 max_retries=0, resources=[client_pb2.ResourceAmount(name="highmem", amount=1.5)]),
            dict(key="e", payload=_wire.python_payload(b"p"), max_retries=0, resources={"highmem": 1.5}),
        ),
    ]
    for proto_kw, wire_kw in cases:
        assert _wire.task(**wire_kw) == _framed(_spec(**proto_kw))


def test_retries_and_resources_parse():
    """max_retries distinguishes 0 from unset, and every resource entry parses back."""
    chunk = client_pb2.GraphChunk.FromString(
        _wire.task("k", _wire.python_payload(b"p"), max_retries=2, resources={"gpu": 2, "highmem": 1})
        + _wire.task("j", _wire.python_payload(b"p"))
    )
    with_all, plain = chunk.tasks
    assert with_all.HasField("max_retries") and with_all.max_retries == 2
    assert {r.name: r.amount for r in with_all.resources} == {"gpu": 2.0, "highmem": 1.0}
    assert not plain.HasField("max_retries") and not plain.resources


def test_map_fast_path_matches_protobuf():
    """The map fast path encodes wanted Python tasks with a shared blob like protobuf."""
    keys = ["k-0", "k" * 200]
    pickled = [b"a" * 10, b"b" * 1000]
    got = b"".join(_wire.map_tasks(keys, pickled, 42))
    want = client_pb2.GraphChunk(tasks=[
        _spec(key=k, payload=common_pb2.TaskPayload(python=common_pb2.PythonTask(pickled=p, shared=42)), wanted=True)
        for k, p in zip(keys, pickled)
    ]).SerializeToString()
    assert got == want


def test_chunks_parse_keep_order_and_send_blobs_first():
    """Chunks are about the target size, parse as GraphChunk, keep task order, carry the
    session id, and hold each blob in or before the chunk of its first task."""
    tasks = [_wire.task(f"t{i}", _wire.python_payload(b"z" * 1000, 7)) for i in range(100)]
    blob = _wire.blob(7, b"code" * 10)
    chunks = list(_wire.chunks(9, tasks, {60: [blob]}, target=10_000))
    parsed = [client_pb2.GraphChunk.FromString(c) for c in chunks]
    assert len(parsed) > 5
    assert all(len(c) < 12_000 for c in chunks)
    assert [t.key for c in parsed for t in c.tasks] == [f"t{i}" for i in range(100)]
    assert all(c.session_id == 9 for c in parsed)
    first_with_blob = next(i for i, c in enumerate(parsed) if c.blobs)
    holder = next(i for i, c in enumerate(parsed) if any(t.key == "t60" for t in c.tasks))
    assert first_with_blob <= holder
    assert parsed[first_with_blob].blobs[0] == common_pb2.SharedBlob(id=7, data=b"code" * 10)
