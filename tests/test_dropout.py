"""Dropout's CUDA kernel and binding. On a GPU the kernel must drop exactly the elements the CPU
kernel drops for the same (seed, p, n) (both draw csrc/dropout_mask.h); here, without one, the
CUDA binding's argument checks run on fake CUDA arrays. The CPU kernel's own tests (mask rate,
backward, the documented stream on every ISA and thread count) are in test_nn.py."""
import numpy as np
import pytest

import fastnn
from cuda_fakes import FakeCudaArray, expected_runtime_error
from fastnn import _C

cuda_build = pytest.mark.skipif(not fastnn.build_info()["cuda"], reason="built without CUDA")

# 2 * 65535 * 256 + 3 elements: more pairs than the grid's 65535 blocks of 256 threads, so the
# grid-stride loop takes a second step, and odd, so the last pair has one element.
PAST_ONE_GRID = 2 * 65535 * 256 + 3


@pytest.mark.parametrize("shape", [(0,), (1,), (2,), (3,), (511,), (512,), (513,), (3, 5, 7), (100_003,),
                                   (PAST_ONE_GRID,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_cuda_dropout_is_bit_identical_to_the_cpu(require_gpu, shape, dtype, p):
    import cupy
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
    x_gpu = cupy.asarray(x)
    for seed in (0, 12345, 2**64 - 1):
        y = _C.cuda.dropout(x_gpu, p, seed)
        assert isinstance(y, cupy.ndarray) and y.dtype == dtype and y.shape == shape
        np.testing.assert_array_equal(y.get(), _C.dropout(x, p, seed), err_msg=f"seed {seed}")


def test_cuda_dropout_draws_a_fresh_mask_per_seed(require_gpu):
    import cupy
    kept = [_C.cuda.dropout(cupy.ones(10_000, cupy.float32), 0.5, seed).get() != 0 for seed in (1, 2)]
    assert 0.45 < kept[0].mean() < 0.55 and 0.45 < (kept[0] == kept[1]).mean() < 0.55


@cuda_build
@pytest.mark.parametrize("typestr,dtype", [("<f2", "float16"), ("<i4", "int32"), ("<c8", "complex64")])
def test_cuda_dropout_rejects_other_dtypes(typestr, dtype):
    with pytest.raises(TypeError, match=f"dropout: input must be float32, got {dtype}"):
        _C.cuda.dropout(FakeCudaArray((4,), typestr), 0.5, 1)


@cuda_build
def test_cuda_dropout_rejects_a_host_array():
    with pytest.raises(TypeError, match=r"dropout: input must be a CUDA array .*got numpy.ndarray"):
        _C.cuda.dropout(np.ones(4, np.float32), 0.5, 1)


@cuda_build
@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_cuda_dropout_checks_p_as_the_cpu_does(p):
    with pytest.raises(ValueError) as cpu:
        _C.dropout(np.ones(4, np.float32), p, 1)
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\), got") as gpu:
        _C.cuda.dropout(FakeCudaArray((4,)), p, 1)
    assert str(gpu.value) == str(cpu.value)


@cuda_build
@pytest.mark.parametrize("typestr,strides", [("<f4", (4, 16)), ("<f8", (8, 32)), ("<f4", (16, 8))])
def test_cuda_dropout_rejects_strided_inputs(typestr, strides):
    with pytest.raises(ValueError, match="dropout: input must be C-contiguous"):
        _C.cuda.dropout(FakeCudaArray((4, 3), typestr, strides), 0.5, 1)


@cuda_build
@pytest.mark.parametrize("shape", [(), (5,), (4, 3), (2, 3, 4, 5)])
@pytest.mark.parametrize("typestr", ["<f4", "<f8"])
def test_cuda_dropout_passes_valid_arrays_of_any_rank_to_the_runtime(shape, typestr):
    error, message = expected_runtime_error()
    with pytest.raises(error, match=message):
        _C.cuda.dropout(FakeCudaArray(shape, typestr), 0.5, 1)
