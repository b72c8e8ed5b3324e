"""The stored-object format (``shoal._objects``): values with large buffers prepared (their
buffers kept as views), written out of band into a sealed file and read back as views;
everything else a plain pickle."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from shoal import _objects


@pytest.fixture
def folder(tmp_path):
    return str(tmp_path)


def write(value, folder, name="v"):
    """What an executor stores: a plain pickle, or ``None`` once the object is written."""
    prepared = _objects.prepare(value)
    if isinstance(prepared, bytes):
        return prepared
    _objects.write_prepared(prepared, folder, name)
    return None


def roundtrip(value, folder):
    data = write(value, folder)
    if data is not None:
        return _objects.loads(data), None
    return _objects.load_file(os.path.join(folder, "v"))[0], os.path.getsize(os.path.join(folder, "v"))


def test_a_large_array_is_written_out_of_band_and_read_as_a_read_only_view(folder):
    """The file holds the buffer once (aligned); the array read back is a view of it."""
    value = {"a": np.arange(100_000, dtype=np.float64), "tag": "x"}
    out, size = roundtrip(value, folder)
    assert size is not None and 800_000 <= size < 800_000 + 4096
    np.testing.assert_array_equal(out["a"], value["a"])
    assert out["tag"] == "x" and not out["a"].flags.writeable
    assert out["a"].__array_interface__["data"][0] % _objects.ALIGN == 0
    assert os.listdir(folder) == ["v"], "no temporary file is left"


def test_a_broadcast_array_goes_as_its_distinct_elements(folder):
    """numpy would pickle every element of a broadcast view; here it costs a few bytes."""
    value = np.broadcast_to(np.arange(3.0)[:, None], (3, 1_000_000))
    data = write(value, folder)
    assert data is not None and len(data) < 1024
    out = _objects.loads(data)
    np.testing.assert_array_equal(out, value)


def test_a_strided_array_goes_out_of_band_as_one_contiguous_copy(folder):
    value = np.arange(400_000.0)[::2]
    out, size = roundtrip(value, folder)
    assert size is not None and size < value.nbytes + 4096
    np.testing.assert_array_equal(out, value)


def test_small_values_are_plain_pickles(folder):
    data = write([1, np.ones(10)], folder)
    assert data is not None and data[:1] == b"\x80" and os.listdir(folder) == []


def test_a_value_that_fails_to_pickle_raises_with_only_its_marker_made(folder):
    """The marker says a large value was being stored (the executor removes it); nothing
    else is written."""

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("no")

    marker = os.path.join(folder, _objects.temporary_name("v"))
    with pytest.raises(RuntimeError):
        _objects.prepare((np.ones(100_000), Unpicklable()), marker)
    assert os.listdir(folder) == [os.path.basename(marker)]


def test_a_store_that_cannot_be_written_gives_the_value_as_bytes(tmp_path):
    """A full or missing /dev/shm costs speed, never the value: writing fails leaving
    nothing, and the object travels as bytes, read back as views of them."""
    value = np.arange(100_000.0)
    prepared = _objects.prepare(value)
    with pytest.raises(OSError):
        _objects.write_prepared(prepared, str(tmp_path / "gone"), "v")
    assert os.listdir(tmp_path) == []
    np.testing.assert_array_equal(_objects.loads(prepared.to_bytes()), value)


def test_a_stored_array_is_made_read_only_and_so_reported(folder):
    """What goes out of band is read-only in the value too, so that the executor that made
    it may hand the value itself to its next tasks; a writable buffer of another kind is
    reported as such (that value is then written at once, never kept live)."""
    array = np.arange(100_000, dtype=np.float64)
    prepared = _objects.prepare({"a": array})
    assert prepared.readonly and [v.nbytes for v in prepared.buffers] == [array.nbytes]
    assert not array.flags.writeable
    small = np.arange(10.0)
    _objects.prepare([small, np.ones(100_000)])
    assert small.flags.writeable, "arrays that stay in band are left alone"
    buffer = bytearray(400_000)
    prepared = _objects.prepare(pickle.PickleBuffer(buffer))
    assert not prepared.readonly and [v.nbytes for v in prepared.buffers] == [len(buffer)]


def test_writable_loads_copy_a_read_only_buffer(folder):
    value = np.arange(100_000.0)
    write(value, folder)
    with open(os.path.join(folder, "v"), "rb") as f:
        data = f.read()
    out = _objects.loads(data, writable=True)
    out += 1
    np.testing.assert_array_equal(out, value + 1)
    mapped = _objects.load_file(os.path.join(folder, "v"), writable=True)[0]
    mapped += 1  # copy-on-write: the file is unchanged
    np.testing.assert_array_equal(_objects.load_file(os.path.join(folder, "v"))[0], value)
