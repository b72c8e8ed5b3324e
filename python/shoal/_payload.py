"""What a Python task's bytes hold (``PythonTask.pickled``), shared by the client that
makes them and the executor that runs them. Not part of the public API.

Formats (the first element is the format tag):

- ``("dask-nodes", keys, nodes)``: one or more nodes of ``dask._task_spec`` (a group, see
  ``_grouping``) as ``_dask_nodes`` encodes them: their Dask keys and, per node in run order,
  its encoding over the task's inputs and the values of the nodes before it; the task's
  value is the last node's. When the task has a shared blob (the function most of the nodes
  call travels by value: a lambda, a function of ``__main__``), the nodes were pickled with
  that function replaced by the persistent id ``"shared"`` (``dumps_sharing``): the
  function travels once, as the blob.
- ``("call", args, kwargs)``: the function is the task's shared blob (``PythonTask.shared``);
  ``Dep(i)`` placeholders in ``args``/``kwargs`` (at the top level, or directly inside a
  list, tuple or dict argument) are replaced by the task's i-th input.

Values (results and inputs) are pickled with protocol 5, falling back to cloudpickle for
objects plain pickle cannot take (lambdas, classes defined in ``__main__``); ``loads`` also
reads the objects of ``_objects`` (large buffers out of band).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import types
from typing import Any

import cloudpickle

from shoal._objects import dumps, loads

__all__ = [
    "Dep", "blob_id", "dumps", "dumps_code", "dumps_sharing", "dumps_sharing_found", "loads", "loads_sharing",
    "substitute",
]


class Dep:
    """Placeholder for the i-th input of a ``call`` task."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self):
        return (Dep, (self.index,))

    def __repr__(self) -> str:
        return f"Dep({self.index})"


def dumps_code(obj: Any) -> bytes:
    """Pickles code (functions, task nodes) with cloudpickle: notebook functions travel by value."""
    return cloudpickle.dumps(obj, protocol=5)


class _SharingPickler(pickle.Pickler):
    def __init__(self, file, shared: Any) -> None:
        super().__init__(file, protocol=5)
        self._shared = shared

    def persistent_id(self, obj: Any):
        return "shared" if obj is self._shared else None


class _SharingUnpickler(pickle.Unpickler):
    def __init__(self, file, shared: Any) -> None:
        super().__init__(file)
        self._shared = shared

    def persistent_load(self, pid: Any) -> Any:
        if pid == "shared":
            return self._shared
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")


def dumps_sharing(value: Any, shared: Any) -> bytes:
    """Pickles ``value`` (plain pickle) with every occurrence of ``shared`` left out, as a
    reference to the task's shared blob."""
    buffer = io.BytesIO()
    _SharingPickler(buffer, shared).dump(value)
    return buffer.getvalue()


class _FirstSharingPickler(pickle.Pickler):
    """Leaves out the first function ``by_value(obj)`` is true of, and every occurrence of
    it; meeting a second such function is an error (a task has one shared blob)."""

    def __init__(self, file, by_value) -> None:
        super().__init__(file, protocol=5)
        self._by_value = by_value
        self.shared: Any = None

    def persistent_id(self, obj: Any):
        if obj is None:
            return None
        if obj is self.shared:
            return "shared"
        if isinstance(obj, types.FunctionType) and self._by_value(obj):
            if self.shared is not None:
                raise pickle.PicklingError("more than one function travels by value")
            self.shared = obj
            return "shared"
        return None


def dumps_sharing_found(value: Any, by_value) -> tuple[bytes, Any]:
    """Like ``dumps_sharing``, the shared object being the function found inside ``value``
    that ``by_value`` says must travel by value (None: there is none)."""
    buffer = io.BytesIO()
    pickler = _FirstSharingPickler(buffer, by_value)
    pickler.dump(value)
    return buffer.getvalue(), pickler.shared


def loads_sharing(data: bytes, shared: Any) -> Any:
    """Unpickles what ``dumps_sharing`` made, putting ``shared`` back."""
    return _SharingUnpickler(io.BytesIO(data), shared).load()


def blob_id(data: bytes) -> int:
    """The id of a shared blob: 64 bits of its BLAKE2b digest (never 0)."""
    value = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
    return value or 1


def _fill(value: Any, inputs: list) -> Any:
    if isinstance(value, Dep):
        return inputs[value.index]
    return value


def _fill_argument(value: Any, inputs: list) -> Any:
    """An argument with its placeholders filled: itself, or directly inside a container."""
    if isinstance(value, Dep):
        return inputs[value.index]
    if type(value) in (list, tuple):
        return type(value)(_fill(x, inputs) for x in value)
    if type(value) is dict:
        return {k: _fill(v, inputs) for k, v in value.items()}
    return value


def substitute(args: tuple, kwargs: dict, inputs: list) -> tuple[tuple, dict]:
    """Replaces ``Dep`` placeholders by inputs (top level and one container level deep)."""
    return (
        tuple(_fill_argument(a, inputs) for a in args),
        {k: _fill_argument(v, inputs) for k, v in kwargs.items()},
    )
