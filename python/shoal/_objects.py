"""Values as stored objects: a pickle (protocol 5) whose large buffers are out of band.

A value with no buffer of ``MIN_BUFFER`` bytes or more (most values) is a plain pickle. A
value with large buffers (numpy arrays, pandas blocks, Arrow buffers, ``PickleBuffer``) is
an *object*: the buffers laid out raw, 64-byte aligned, then the pickle stream, then a table
of where each buffer is. Such an object is read without copying its buffers: the numpy
arrays of a value read from a mapped file are views of the mapping.

Layout (little-endian)::

    0   MAGIC (8 bytes)
    8   u64 offset of the pickle stream
    16  u64 length of the pickle stream
    24  u64 offset of the buffer table (it runs to the end: u64 offset, u64 length per buffer)
    32  the buffers, each at a multiple of 64, then the stream, then the table

An executor writes a result straight into the worker's shared-memory directory
(``write_object``): buffers as pickling meets them, into a temporary file
``.tmp-<pid>-<name>``, sealed by renaming it to ``<name>`` once whole. A crash leaves only
the temporary file, which the worker deletes; readers never see half a value.

Not here: which file holds which task (the worker names them by task id), the executor.
"""

from __future__ import annotations

import copyreg
import io
import mmap
import os
import pickle
import struct
import sys
from typing import Any

import cloudpickle

MAGIC = b"SHOALOB1"
_HEADER = struct.Struct("<8sQQQ")
_ENTRY = struct.Struct("<QQ")
ALIGN = 64
# Buffers at least this large go out of band (smaller ones stay in the pickle stream): below
# it a file costs more than the pipe. The dataframe row of bench/dask_compare.py --quick
# (2 workers, best of 5) ran 1.91 s at 64 KiB, 1.66 at 256 KiB, 1.73 at 1 MiB, 1.74 with no
# store.
MIN_BUFFER = 256 * 1024


class _BufferWriter:
    """The ``buffer_callback`` of a pickler: writes each large buffer into the file as it
    comes (opened on the first) and keeps small ones in band."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file: io.BufferedWriter | None = None
        self.offset = _HEADER.size
        self.table: list[tuple[int, int]] = []

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        view = buffer.raw()
        if view.nbytes < MIN_BUFFER:
            return True
        if self.file is None:
            self.file = open(self.path, "wb")
            self.file.write(bytes(_HEADER.size))
        pad = -self.offset % ALIGN
        if pad:
            self.file.write(bytes(pad))
            self.offset += pad
        self.file.write(view)
        self.table.append((self.offset, view.nbytes))
        self.offset += view.nbytes
        return False

    def finish(self, stream: bytes, final: str) -> None:
        assert self.file is not None
        f = self.file
        pad = -self.offset % ALIGN
        f.write(bytes(pad))
        stream_at = self.offset + pad
        f.write(stream)
        table_at = stream_at + len(stream)
        for entry in self.table:
            f.write(_ENTRY.pack(*entry))
        f.seek(0)
        f.write(_HEADER.pack(MAGIC, stream_at, len(stream), table_at))
        f.close()
        os.rename(self.path, final)

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self.offset = _HEADER.size
        self.table = []


def _broadcast(compact, shape):
    """A broadcast array again (read-only, as ``numpy.broadcast_to`` makes them)."""
    import numpy

    return numpy.broadcast_to(compact, shape)


def _reduce_array(array):
    """numpy's own reduction, except for a large array that is not contiguous: numpy
    pickles those in band, as a copy of every element in the stream (a broadcast array of
    a few bytes as its whole logical size, as Dask's reductions make them). A broadcast
    array goes as its distinct elements, any other as one contiguous copy (the array
    numpy's own pickle would give back), both then out of band."""
    flags = array.flags
    if array.nbytes < MIN_BUFFER or flags.c_contiguous or flags.f_contiguous or array.dtype.hasobject:
        return array.__reduce_ex__(5)
    import numpy

    if 0 in array.strides:
        index = tuple(slice(0, 1) if step == 0 else slice(None) for step in array.strides)
        return _broadcast, (numpy.ascontiguousarray(array[index]), array.shape)
    return numpy.ascontiguousarray(array).__reduce_ex__(5)


# copyreg's reductions and ``_reduce_array`` for numpy arrays (looked up by the C pickler
# for each object's exact type: no Python call for anything else), rebuilt when numpy is
# first seen and when copyreg gains entries.
_DISPATCH: dict | None = None
_DISPATCH_FROM = 0


def _dispatch() -> dict | None:
    global _DISPATCH, _DISPATCH_FROM
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None
    if _DISPATCH is None or _DISPATCH_FROM != len(copyreg.dispatch_table):
        _DISPATCH = {**copyreg.dispatch_table, numpy.ndarray: _reduce_array}
        _DISPATCH_FROM = len(copyreg.dispatch_table)
    return _DISPATCH


def _pickle(value: Any, buffer_callback) -> bytes:
    stream = io.BytesIO()
    pickler = pickle.Pickler(stream, protocol=5, buffer_callback=buffer_callback)
    dispatch = _dispatch()
    if dispatch is not None:
        pickler.dispatch_table = dispatch
    pickler.dump(value)
    return stream.getvalue()


def write_object(value: Any, directory: str, name: str) -> bytes | None:
    """Pickles ``value``: its plain pickle when it has no large buffer, else ``None`` once
    it is written and sealed as ``directory/name``. If the directory is full or gone the
    value comes back as bytes (an object that holds its buffers in band)."""
    writer = _BufferWriter(os.path.join(directory, f".tmp-{os.getpid()}-{name}"))
    try:
        try:
            stream = _pickle(value, writer)
        except Exception:  # noqa: BLE001 - whatever plain pickle refuses, cloudpickle may take
            writer.abort()
            stream = cloudpickle.dumps(value, protocol=5, buffer_callback=writer)
        if writer.file is None:
            return stream
        writer.finish(stream, os.path.join(directory, name))
        return None
    except OSError:
        writer.abort()
        return dumps(value)
    except BaseException:
        writer.abort()
        raise


def dumps(value: Any) -> bytes:
    """Pickles a value with its buffers in band (protocol 5), with cloudpickle when plain
    pickle cannot."""
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:  # noqa: BLE001 - whatever plain pickle refuses, cloudpickle may take
        return cloudpickle.dumps(value, protocol=5)


def loads(data, writable: bool = False) -> Any:
    """The value of a plain pickle or an object (any buffer: bytes, bytearray, mmap).
    An object's buffers are views of ``data``: read-only when ``data`` is, unless
    ``writable`` (then a read-only buffer is copied)."""
    if data[:8] != MAGIC:
        return pickle.loads(data)
    view = memoryview(data)
    _, stream_at, stream_len, table_at = _HEADER.unpack_from(view)
    buffers = []
    for at in range(table_at, len(view), _ENTRY.size):
        offset, length = _ENTRY.unpack_from(view, at)
        buffer = view[offset:offset + length]
        buffers.append(bytearray(buffer) if writable and buffer.readonly else buffer)
    return pickle.loads(view[stream_at:stream_at + stream_len], buffers=buffers)


def load_file(path: str, writable: bool = False) -> tuple[Any, int]:
    """The value in a file of the store, and about how many bytes of private memory it
    took. An object is mapped read-only: its arrays are views of the shared pages, so
    reading it copies nothing (only its pickle stream is private), and writing to them
    raises. With ``writable`` (the client's results) it is mapped copy-on-write: still no
    copy, and a page written becomes the reader's own. A plain pickle is read as usual: a
    private copy of the whole file."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return loads(b""), 0
        access = mmap.ACCESS_COPY if writable else mmap.ACCESS_READ
        mapping = mmap.mmap(f.fileno(), 0, access=access)
    if mapping[:8] != MAGIC:
        try:
            return pickle.loads(mapping), size
        finally:
            mapping.close()
    _, _, stream_len, _ = _HEADER.unpack_from(mapping)
    return loads(mapping), stream_len
