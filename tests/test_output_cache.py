"""Large kernel outputs come from a cache of freed buffers: reuse must never alias a live array."""
import gc

import numpy as np

import fastnn


def test_reused_large_outputs_never_alias_live_arrays():
    x = np.random.default_rng(0).standard_normal(1 << 19).astype(np.float32)  # 2 MiB: cached size
    first, second = fastnn.ops.relu(x), fastnn.ops.relu(-x)
    assert not np.shares_memory(first, second)
    view = first[7:]
    del first
    third = fastnn.ops.relu(x)  # first's buffer is still referenced by its view: not reusable
    assert not np.shares_memory(third, view)
    del view
    gc.collect()
    fourth = fastnn.ops.relu(-x)  # may now take first's buffer
    np.testing.assert_array_equal(second, np.maximum(-x, 0))
    np.testing.assert_array_equal(third, np.maximum(x, 0))
    np.testing.assert_array_equal(fourth, np.maximum(-x, 0))
    assert fourth.flags.writeable and fourth.flags.c_contiguous
    fourth[:] = 1
    np.testing.assert_array_equal(third, np.maximum(x, 0))
