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

Writing is in two steps. ``prepare`` pickles a value and keeps its large buffers as views
of the value's own memory (no copy; a large numpy array is made read-only then, since it is
shared from now on). ``write_prepared`` lays them out in a temporary file
``.tmp-<pid>-<name>`` in the worker's shared-memory directory, sealed by renaming it to
``<name>`` once whole: it runs no code of the value's, so an executor may do it in another
thread while a task runs. A crash leaves only the temporary file, which the worker
deletes; readers never see half a value.

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
# Maps a read-only file's pages in one call (Linux only; elsewhere pages fault in as read),
# for files up to POPULATE_LIMIT bytes: a larger value may be read in part only (a slice of
# a large array), and mapping all of it would cost more than the pages read (about 80 ms a
# GiB here).
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
POPULATE_LIMIT = 64 * 2**20
# Buffers at least this large go out of band (smaller ones stay in the pickle stream): below
# it a file costs more than the pipe. The dataframe row of bench/dask_compare.py --quick
# (2 workers, best of 5) ran 1.91 s at 64 KiB, 1.66 at 256 KiB, 1.73 at 1 MiB, 1.74 with no
# store.
MIN_BUFFER = 256 * 1024


class Prepared:
    """A value pickled for the store: its pickle stream and its large buffers, views of the
    value's own memory (or of the contiguous copies pickling made)."""

    __slots__ = ("stream", "buffers", "readonly")

    def __init__(self, stream: bytes, buffers: list[memoryview], readonly: bool) -> None:
        self.stream = stream
        self.buffers = buffers
        # Whether every buffer is read-only in the value too (its numpy arrays were made
        # so): the value can then be read as it is by other tasks of its process.
        self.readonly = readonly

    def layout(self) -> tuple[list[tuple[int, int]], int, int]:
        """Where each buffer goes, where the stream goes, and the object's size."""
        table = []
        offset = _HEADER.size
        for view in self.buffers:
            offset += -offset % ALIGN
            table.append((offset, view.nbytes))
            offset += view.nbytes
        stream_at = offset + -offset % ALIGN
        return table, stream_at, stream_at + len(self.stream) + _ENTRY.size * len(table)

    def to_bytes(self) -> bytes:
        """The object as one piece of memory (what the file would hold)."""
        table, stream_at, size = self.layout()
        out = bytearray(size)
        _HEADER.pack_into(out, 0, MAGIC, stream_at, len(self.stream), stream_at + len(self.stream))
        for (offset, length), view in zip(table, self.buffers):
            out[offset:offset + length] = view.cast("B")
        out[stream_at:stream_at + len(self.stream)] = self.stream
        at = stream_at + len(self.stream)
        for entry in table:
            _ENTRY.pack_into(out, at, *entry)
            at += _ENTRY.size
        return bytes(out)


class _BufferCollector:
    """The ``buffer_callback`` of a pickler: keeps large buffers out of band, as views.
    With a ``marker`` path, creates that (empty) file at the first one: it says that a
    large value is being stored, to whoever finds it after a crash."""

    def __init__(self, marker: str | None) -> None:
        self.buffers: list[memoryview] = []
        self.readonly = True
        self.marker = marker

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        view = buffer.raw()
        if view.nbytes < MIN_BUFFER:
            return True
        if not self.buffers and self.marker is not None:
            try:
                open(self.marker, "wb").close()
            except OSError:
                self.marker = None
        self.buffers.append(view)
        self.readonly = self.readonly and view.readonly
        return False


def _broadcast(compact, shape):
    """A broadcast array again (read-only, as ``numpy.broadcast_to`` makes them)."""
    import numpy

    return numpy.broadcast_to(compact, shape)


def _reduce_array(array):
    """numpy's own reduction, with two changes for large arrays, which go out of band.
    Such an array is made read-only once reduced: it is shared from now on (the executor
    that made it may hand the value itself to its next tasks, which must see what every
    other reader sees), while the pickle still says writable, so a reader asking for a
    writable copy gets one. And a large array that is not contiguous goes out of band too:
    numpy pickles those in band, as a copy of every element in the stream (a broadcast
    array of a few bytes as its whole logical size, as Dask's reductions make them). A
    broadcast array goes as its distinct elements, any other as one contiguous copy (the
    array numpy's own pickle would give back)."""
    flags = array.flags
    if array.nbytes < MIN_BUFFER or array.dtype.hasobject:
        return array.__reduce_ex__(5)
    if flags.c_contiguous or flags.f_contiguous:
        reduced = array.__reduce_ex__(5)
    else:
        import numpy

        if 0 in array.strides:
            index = tuple(slice(0, 1) if step == 0 else slice(None) for step in array.strides)
            reduced = _broadcast, (numpy.ascontiguousarray(array[index]), array.shape)
        else:
            copy = numpy.ascontiguousarray(array)
            reduced = copy.__reduce_ex__(5)
            copy.flags.writeable = False
    flags.writeable = False
    return reduced


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


def prepare(value: Any, marker: str | None = None) -> bytes | Prepared:
    """Pickles ``value``: its plain pickle when it has no large buffer, else the stream and
    the large buffers to write with ``write_prepared``. A ``marker`` file is created at
    the first large buffer (the caller removes it, or writes the object over it)."""
    collector = _BufferCollector(marker)
    try:
        stream = _pickle(value, collector)
    except Exception:  # noqa: BLE001 - whatever plain pickle refuses, cloudpickle may take
        collector = _BufferCollector(marker)
        stream = cloudpickle.dumps(value, protocol=5, buffer_callback=collector)
    if not collector.buffers:
        return stream
    return Prepared(stream, collector.buffers, collector.readonly)


def temporary_name(name: str) -> str:
    """The name an object is written under before it is sealed as ``name``."""
    return f".tmp-{os.getpid()}-{name}"


def write_prepared(prepared: Prepared, directory: str, name: str) -> None:
    """Writes ``prepared`` as ``directory/name``, sealed by renaming it into place. Raises
    ``OSError`` (the directory full or gone) with nothing left behind."""
    temp = os.path.join(directory, temporary_name(name))
    table, stream_at, _ = prepared.layout()
    try:
        with open(temp, "wb") as f:
            f.write(_HEADER.pack(MAGIC, stream_at, len(prepared.stream), stream_at + len(prepared.stream)))
            at = _HEADER.size
            for (offset, length), view in zip(table, prepared.buffers):
                f.write(bytes(offset - at))
                f.write(view)
                at = offset + length
            f.write(bytes(stream_at - at))
            f.write(prepared.stream)
            for entry in table:
                f.write(_ENTRY.pack(*entry))
        os.rename(temp, os.path.join(directory, name))
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
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
        if writable:
            # Not populated: that would write-fault, so copy, every page at once.
            mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        else:
            # Read-only, every page mapped at once (up to POPULATE_LIMIT): one call
            # instead of a page fault per 4 KiB as the task reads it (the local_compare
            # rechunk row reads 64 MiB of 4 MiB files so, 0.17-0.18 s instead of 0.19-0.20).
            populate = _POPULATE if size <= POPULATE_LIMIT else 0
            mapping = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | populate, prot=mmap.PROT_READ)
    if mapping[:8] != MAGIC:
        try:
            return pickle.loads(mapping), size
        finally:
            mapping.close()
    _, _, stream_len, _ = _HEADER.unpack_from(mapping)
    return loads(mapping), stream_len
