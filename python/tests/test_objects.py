"""The stored-object format (``shoal._objects``): values with large buffers written out of
band into a sealed file and read back as views, everything else a plain pickle."""

from __future__ import annotations

import os

import numpy as np
import pytest

from shoal import _objects


@pytest.fixture
def folder(tmp_path):
    return str(tmp_path)


def roundtrip(value, folder):
    data = _objects.write_object(value, folder, "v")
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
    data = _objects.write_object(value, folder, "v")
    assert data is not None and len(data) < 1024
    out = _objects.loads(data)
    np.testing.assert_array_equal(out, value)


def test_a_strided_array_goes_out_of_band_as_one_contiguous_copy(folder):
    value = np.arange(400_000.0)[::2]
    out, size = roundtrip(value, folder)
    assert size is not None and size < value.nbytes + 4096
    np.testing.assert_array_equal(out, value)


def test_small_values_are_plain_pickles(folder):
    data = _objects.write_object([1, np.ones(10)], folder, "v")
    assert data is not None and data[:1] == b"\x80" and os.listdir(folder) == []


def test_a_value_that_fails_to_pickle_leaves_no_file(folder):
    """The buffers written before the failure go with the temporary file."""

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        _objects.write_object((np.ones(100_000), Unpicklable()), folder, "v")
    assert os.listdir(folder) == []


def test_a_store_that_cannot_be_written_gives_the_value_as_bytes(tmp_path):
    """A full or missing /dev/shm costs speed, never the value."""
    value = np.arange(100_000.0)
    data = _objects.write_object(value, str(tmp_path / "gone"), "v")
    assert data is not None
    np.testing.assert_array_equal(_objects.loads(data), value)


def test_writable_loads_copy_a_read_only_buffer(folder):
    value = np.arange(100_000.0)
    _objects.write_object(value, folder, "v")
    with open(os.path.join(folder, "v"), "rb") as f:
        data = f.read()
    out = _objects.loads(data, writable=True)
    out += 1
    np.testing.assert_array_equal(out, value + 1)
    mapped = _objects.load_file(os.path.join(folder, "v"), writable=True)[0]
    mapped += 1  # copy-on-write: the file is unchanged
    np.testing.assert_array_equal(_objects.load_file(os.path.join(folder, "v"))[0], value)
