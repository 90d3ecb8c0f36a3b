import re

import numpy as np
import pytest

import fastnn
import reference
from cuda_fakes import FakeCudaArray, expected_runtime_error
from opcheck import assert_close, check_inputs, check_op, on_device, randn, tolerance

pytestmark = pytest.mark.usefixtures("isa")


def check_conv2d(n, c_in, h, w, c_out, kernel, bias=True, device="cpu", **kwargs):
    """check_op on random arrays on `device`; kernel is (KH, KW)."""
    groups = kwargs.get("groups", 1)
    x, weight = randn(n, c_in, h, w), randn(c_out, c_in // groups, *kernel)
    b = randn(c_out) if bias else None
    out_plane = np.prod(fastnn.ops.conv2d(x, weight, b, **kwargs).shape[2:])
    # The longest sums: one output (C_in/groups * KH * KW), one weight gradient (N * OH * OW).
    check_op("conv2d", [x, weight, b], kwargs, reduction=max(c_in // groups * kernel[0] * kernel[1], n * out_plane),
             device=device)


# Every stride/padding/dilation combination on an odd, non-square input whose sizes are no
# multiple of any vector width.
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
def test_stride_padding_dilation(stride, padding, dilation, device):
    check_conv2d(2, 3, 9, 11, 5, (3, 3), stride=stride, padding=padding, dilation=dilation, device=device)


@pytest.mark.parametrize("groups,c_in,c_out", [(1, 4, 6), (2, 4, 6), (4, 4, 4), (3, 3, 6)])
@pytest.mark.parametrize("bias", [True, False])
def test_groups(groups, c_in, c_out, bias, device):  # (4, 4, 4) and (3, 3, 6) are depthwise
    check_conv2d(2, c_in, 7, 6, c_out, (3, 3), bias=bias, groups=groups, padding=1, stride=(1, 2), device=device)


@pytest.mark.parametrize("kernel", [(1, 1), (5, 5), (1, 3), (3, 1), (2, 4)])
def test_kernel_sizes(kernel, device):
    check_conv2d(2, 3, 8, 9, 4, kernel, padding=(kernel[0] // 2, kernel[1] // 2), device=device)


@pytest.mark.parametrize("n,c_in,h,w,c_out,groups", [(3, 5, 7, 9, 6, 1), (1, 4, 5, 5, 8, 2), (2, 1, 4, 3, 1, 1)])
def test_pointwise_takes_the_input_as_columns(n, c_in, h, w, c_out, groups, device):
    check_conv2d(n, c_in, h, w, c_out, (1, 1), groups=groups, device=device)


@pytest.mark.parametrize("stride,padding", [(2, 0), (1, 1)])
def test_pointwise_with_stride_or_padding(stride, padding, device):
    check_conv2d(2, 3, 7, 6, 4, (1, 1), stride=stride, padding=padding, device=device)


@pytest.mark.parametrize("n,c_in,c_out", [(1, 1, 1), (1, 3, 2), (3, 1, 4)])
def test_single_image_and_channel(n, c_in, c_out, device):
    check_conv2d(n, c_in, 5, 7, c_out, (3, 3), padding=1, device=device)


# Few taps (C_in * KH * KW <= 32, stride 1 across) take the direct kernels: output channels in
# blocks of 8 with a partial one, rows in groups of up to 3 vectors (1 on AVX2) plus a partial
# group, taps in blocks of 3 with a partial one, padding, dilation and a row stride.
@pytest.mark.parametrize("n,c_in,h,w,c_out,kernel,kwargs", [
    (3, 1, 28, 29, 32, (3, 3), {}),  # the first layer of the training example, an odd width
    (2, 1, 9, 41, 19, (3, 3), dict(padding=1)),
    (2, 2, 7, 20, 5, (1, 2), dict(padding=(0, 1))),
    (2, 3, 11, 13, 17, (3, 3), dict(stride=(2, 1), dilation=(1, 2), padding=2)),
    (1, 1, 5, 4, 3, (5, 5), dict(padding=2)),  # 25 taps, rows shorter than a vector
    (2, 32, 6, 7, 4, (1, 1), dict(padding=1)),  # 32 taps
    (1, 1, 5, 70, 9, (3, 3), {}),  # 68-wide rows: a group of 3 vectors and one of 2
])
def test_direct_few_taps(n, c_in, h, w, c_out, kernel, kwargs, device):
    check_conv2d(n, c_in, h, w, c_out, kernel, **kwargs, device=device)


def test_direct_weight_gradient_ignores_inputs_past_the_row():
    # The last input column is read only by the last kernel column; the kernel's partial row
    # vectors must not turn an inf there into NaN in the other columns' gradients.
    x, w = randn(2, 1, 6, 21), randn(4, 1, 3, 3)
    x[..., -1] = np.inf
    grad_w = fastnn.ops.conv2d_backward(np.ones((2, 4, 4, 19), np.float32), x, w)[1]
    x[..., -1] = 0
    expected = reference.conv2d_backward(np.ones((2, 4, 4, 19), np.float32), x, w)[1]
    assert_close("grad_weight", grad_w[..., :2], expected[..., :2], tolerance(2 * 4 * 19))


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, True), (False, False, True)])
@pytest.mark.parametrize("c_in", [1, 6])  # direct and GEMM paths
def test_backward_skips_gradients_not_needed(needs, c_in, device):
    x, w, b = randn(2, c_in, 7, 9), randn(5, c_in, 3, 3), randn(5)
    g = randn(2, 5, 7, 9)
    conv2d_backward = on_device(fastnn.ops.conv2d_backward, device)
    full = conv2d_backward(g, x, w, b, padding=1)
    some = conv2d_backward(g, x, w, b, padding=1, needs_input_grad=needs)
    for need, got, expected in zip(needs, some, full):
        if need:
            np.testing.assert_array_equal(got, expected)
        else:
            assert got is None


# col is built for blocks of output rows (2^18 floats): 144 x 38-wide rows make blocks of 47
# rows (95 of the 19-wide stride-2 rows), the last one partial, each with its own padding rows.
@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(stride=2, padding=2, dilation=2)])
def test_column_blocks_of_rows(kwargs, device):
    check_conv2d(2, 16, 200, 38, 6, (3, 3), **kwargs, device=device)


# im2col gathers rows a vector at a time and col2im adds them back the same way (strides 1 and
# 2; 3 in test_stride_padding_dilation):
# rows of several vectors, the last partial, and a left padding wider than a vector, so that
# whole vectors of a row are padding.
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [(1, 20), (0, 3)])
def test_im2col_rows_of_several_vectors(stride, padding, device):
    check_conv2d(2, 4, 5, 45, 3, (3, 3), stride=stride, padding=padding, device=device)


# 3x3 stride-1 layers with >= 8 channels take Winograd F(2x2, 3x3) forward and backward:
# odd output sizes (a half tile at the bottom/right), padding 0..2 per axis (2 - padding in the
# backward-data), tile rows wider than one vector (out_w 35: 18 tiles) and of exactly one or two
# (w 32 with padding 1: 16 tiles, whose last reads 2 columns past the first 32 the vector loads).
@pytest.mark.parametrize("h,w", [(7, 9), (3, 3), (6, 37), (5, 32)])
@pytest.mark.parametrize("padding", [0, 1, 2, (2, 0)])
@pytest.mark.parametrize("bias", [True, False])
def test_winograd(h, w, padding, bias, device):
    check_conv2d(2, 8, h, w, 11, (3, 3), bias=bias, padding=padding, device=device)


def test_winograd_blocks_of_tile_rows(device):
    # 8 + 8 channels and 64 tiles a row: blocks of 3 * 2**17 / (16 * 16 * 64) = 24 of the 100
    # tile rows, the last partial (test_winograd has blocks of two whole images).
    check_conv2d(1, 8, 200, 128, 8, (3, 3), padding=1, device=device)


@pytest.mark.parametrize("c_in,c_out", [(9, 33), (33, 9)])
def test_winograd_output_channels_in_several_blocks(c_in, c_out, device):
    # The products take output channels 8 at a time: 33 is five blocks, the last partial,
    # forward and in the backward-data (whose outputs are the input channels).
    check_conv2d(2, c_in, 10, 13, c_out, (3, 3), padding=1, device=device)


def test_winograd_scratch_reused_across_shapes(device):
    # Each thread keeps its Winograd buffers between calls: a smaller layer after a larger one
    # with more padding must not read the larger one's leftovers as its zero padding.
    check_conv2d(2, 16, 30, 31, 12, (3, 3), padding=2, device=device)
    check_conv2d(2, 8, 9, 7, 10, (3, 3), padding=(0, 1), device=device)
    check_conv2d(3, 32, 26, 26, 64, (3, 3), device=device)  # the second layer of the training example


@pytest.mark.parametrize("kernel,dilation", [((3, 3), 1), ((2, 4), 1), ((3, 2), (2, 1))])
def test_padding_same_and_valid(kernel, dilation, device):
    check_conv2d(2, 3, 7, 8, 4, kernel, padding="same", dilation=dilation, device=device)
    assert fastnn.ops.conv2d(randn(1, 3, 7, 8), randn(4, 3, *kernel), padding="same").shape == (1, 4, 7, 8)
    check_conv2d(2, 3, 7, 8, 4, kernel, padding="valid", dilation=dilation, device=device)


def test_kernel_as_large_as_the_padded_input(device):
    check_conv2d(2, 2, 3, 4, 3, (5, 4), padding=(1, 0), device=device)


# On the GPU the batch goes through in chunks whose column matrices fill at most 2^26 floats, and
# the weight gradient sums per-image partial sums, in slots of at most 2^23 floats, in a fixed
# order: 60 images of 8 * 9 x 128 * 128 columns are chunks of 56 and 4; a 2^20-float weight
# gradient has 8 slots for 20 images (8, 8 and 4 a gemm), one of 2^20 + 2^17 floats 7 (7 and 3).
@pytest.mark.parametrize("n,c_in,h,w,c_out,kernel,kwargs", [(60, 8, 128, 128, 2, (3, 3), dict(padding=1)),
                                                            (20, 1024, 4, 4, 1024, (1, 1), {}),
                                                            (10, 512, 4, 4, 512, (3, 3), dict(padding=1, groups=2))])
def test_cuda_batch_in_chunks(n, c_in, h, w, c_out, kernel, kwargs, require_gpu):
    groups = kwargs.get("groups", 1)
    x, weight, b = randn(n, c_in, h, w), randn(c_out, c_in // groups, *kernel), randn(c_out)
    expected = reference.conv2d(x, weight, b, **kwargs)
    g = randn(*expected.shape)
    assert_close("output", on_device(fastnn.ops.conv2d, "cuda")(x, weight, b, **kwargs), expected,
                 tolerance(c_in // groups * kernel[0] * kernel[1]))
    backward = on_device(fastnn.ops.conv2d_backward, "cuda")
    grads = backward(g, x, weight, b, **kwargs)
    sums = [c_out // groups * kernel[0] * kernel[1], n * h * w, n * h * w]
    for name, got, want, sum_length in zip(["grad_input", "grad_weight", "grad_bias"], grads,
                                           reference.conv2d_backward(g, x, weight, b, **kwargs), sums):
        assert_close(name, got, want, tolerance(sum_length))
    for got, again in zip(grads, backward(g, x, weight, b, **kwargs)):
        np.testing.assert_array_equal(got, again)  # deterministic


@pytest.mark.parametrize("x_shape,w_shape,padding", [((2, 3, 0, 4), (4, 3, 1, 1), 1),  # all padding
                                                     ((2, 3, 5, 5), (0, 3, 3, 3), 0),  # no filters
                                                     ((2, 0, 5, 5), (3, 0, 3, 3), 0)])  # output = bias
def test_empty_dimensions(x_shape, w_shape, padding, device):
    check_op("conv2d", [randn(*x_shape), randn(*w_shape), randn(w_shape[0])], dict(padding=padding), reduction=50,
             device=device)


def test_batch_split_across_threads():
    # Enough work per image that the batch is split over threads, each summing its own part of
    # grad_weight; four threads even on a smaller machine.
    threads = fastnn.get_num_threads()
    fastnn.set_num_threads(4)
    try:
        check_conv2d(9, 16, 18, 18, 16, (3, 3), padding=1)
        check_conv2d(9, 16, 18, 18, 16, (1, 1))
        check_conv2d(9, 1, 18, 18, 40, (3, 3))  # direct kernels
    finally:
        fastnn.set_num_threads(threads)


def test_input_layouts():
    x = np.repeat(randn(1, 4, 6, 7), 3, axis=0)  # equal images, so a broadcast view is tried too
    args = [x, randn(6, 2, 3, 3), randn(6)]
    check_inputs("conv2d", args, dict(padding=1, groups=2), batch_axes=[0, None, None])
    check_inputs("conv2d", [x, randn(5, 4, 1, 1), None], batch_axes=[0, None, None])


@pytest.mark.parametrize("kernel", [(3, 3), (1, 1)])  # im2col and the input as columns
def test_zero_batch_backward(kernel, device):
    x, w = randn(0, 3, 5, 5), randn(4, 3, *kernel)
    out = randn(0, 4, 6 - kernel[0], 6 - kernel[1])
    grad_x, grad_w, grad_b = on_device(fastnn.ops.conv2d_backward, device)(out, x, w, randn(4))
    assert grad_x.shape == (0, 3, 5, 5)
    np.testing.assert_array_equal(grad_w, np.zeros_like(w))
    np.testing.assert_array_equal(grad_b, np.zeros(4, np.float32))


def test_errors_name_the_argument():
    x, w = randn(2, 4, 6, 6), randn(5, 4, 3, 3)
    conv = fastnn.ops.conv2d
    with pytest.raises(ValueError, match=r"input must have shape \(N, C_in, H, W\), got shape \(4, 6, 6\)"):
        conv(x[0], w)
    with pytest.raises(ValueError, match="weight must have shape"):
        conv(x, w[0])
    with pytest.raises(ValueError, match=r"weight has 3 input channels per group but input has 4 channels "
                                         r"\(groups=1\)"):
        conv(x, randn(5, 3, 3, 3))
    with pytest.raises(ValueError, match="weight has 4 input channels per group but input has 4 channels .groups=2"):
        conv(x, randn(6, 4, 3, 3), groups=2)
    with pytest.raises(ValueError, match="groups=3 must divide the input's 4 channels"):
        conv(x, randn(6, 1, 3, 3), groups=3)
    with pytest.raises(ValueError, match="groups=2 must divide weight's 5 output channels"):
        conv(x, randn(5, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="groups must be >= 1, got 0"):
        conv(x, w, groups=0)
    with pytest.raises(ValueError, match=r"stride must be >= 1, got \(1, 0\)"):
        conv(x, w, stride=(1, 0))
    with pytest.raises(ValueError, match=r"dilation must be >= 1, got \(0, 0\)"):
        conv(x, w, dilation=0)
    with pytest.raises(ValueError, match=r"padding must be >= 0, got \(-1, -1\)"):
        conv(x, w, padding=-1)
    with pytest.raises(ValueError, match="padding must be 'valid', 'same' or a pair of ints, got 'full'"):
        conv(x, w, padding="full")
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1, got stride \(2, 2\)"):
        conv(x, w, padding="same", stride=2)
    with pytest.raises(ValueError, match="stride must be an int or a pair of ints"):
        conv(x, w, stride=(1, 2, 3))
    with pytest.raises(ValueError, match=r"dilated kernel height 7 \(dilation 3 \* \(3 - 1\) \+ 1\) exceeds padded "
                                         r"input height 6 \(6 \+ padding 0\)"):
        conv(x, w, dilation=(3, 1))
    with pytest.raises(ValueError, match="dilated kernel width 9 .* exceeds padded input width 8"):
        conv(x, randn(5, 4, 3, 9), padding=1)
    with pytest.raises(ValueError, match="weight must have a kernel of at least 1x1, got 0x3"):
        conv(x, randn(5, 4, 0, 3))
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\), got \(4,\)"):
        conv(x, w, randn(4))
    with pytest.raises(ValueError, match=r"grad_output must have shape \(2, 5, 4, 4\) \(the output of conv2d\), "
                                         r"got \(2, 5, 6, 6\)"):
        fastnn.ops.conv2d_backward(randn(2, 5, 6, 6), x, w)
    with pytest.raises(TypeError, match="input must be float32, got float64"):
        conv(x.astype(np.float64), w)


def test_binding_checks_layout_itself():
    # _C is safe to call directly: a non-contiguous array is refused, not misread.
    x, w = randn(2, 4, 6, 6), randn(5, 4, 3, 3)
    with pytest.raises(ValueError, match="input must be C-contiguous"):
        fastnn._C.conv2d(np.asfortranarray(x), w)
    with pytest.raises(TypeError, match="weight must be float32"):
        fastnn._C.conv2d(x, w.astype(np.float64))
    with pytest.raises(ValueError, match="grad_output must be C-contiguous"):
        fastnn._C.conv2d_backward(fastnn.ops.conv2d(x, w)[..., ::2], x, w, False)


# The CUDA bindings' argument checks, run here without a GPU on FakeCudaArrays. A fake at
# address 0 skips the memory query (as an empty array's would), so the checks after it run.
needs_cuda_build = pytest.mark.skipif(not fastnn.build_info()["cuda"], reason="built without CUDA")


def fake(array, strides=None):
    return FakeCudaArray(array.shape, array.dtype.str, strides, address=0)


def error_of(call):
    try:
        call()
    except (TypeError, ValueError) as e:
        return type(e), str(e)
    raise AssertionError("the CPU binding accepted the arguments")


@needs_cuda_build
@pytest.mark.parametrize("x_shape,w_shape,b_shape,kwargs", [
    ((4, 6, 6), (5, 4, 3, 3), None, {}),
    ((2, 4, 6, 6), (4, 3, 3), None, {}),
    ((2, 4, 6, 6), (5, 3, 3, 3), None, {}),
    ((2, 4, 6, 6), (6, 1, 3, 3), None, dict(groups=3)),
    ((2, 4, 6, 6), (5, 2, 3, 3), None, dict(groups=2)),
    ((2, 4, 6, 6), (5, 4, 3, 3), None, dict(groups=0)),
    ((2, 4, 6, 6), (5, 4, 3, 3), None, dict(stride=(1, 0))),
    ((2, 4, 6, 6), (5, 4, 3, 3), None, dict(dilation=(3, 1))),
    ((2, 4, 6, 6), (5, 4, 3, 3), None, dict(padding="same", stride=(2, 2))),
    ((2, 4, 6, 6), (5, 4, 3, 3), None, dict(padding="full")),
    ((2, 4, 6, 6), (5, 4, 0, 3), None, {}),
    ((2, 4, 6, 6), (5, 4, 3, 3), (4,), {}),
    ((2, 4, 6, 6), (5, 4, 3, 3), (1, 5), {}),
])
def test_cuda_binding_checks_shapes_as_the_cpu_one(x_shape, w_shape, b_shape, kwargs):
    x, w = randn(*x_shape), randn(*w_shape)
    b = None if b_shape is None else randn(*b_shape)
    error, message = error_of(lambda: fastnn._C.conv2d(x, w, b, **kwargs))
    with pytest.raises(error, match=re.escape(message)):
        fastnn._C.cuda.conv2d(fake(x), fake(w), None if b is None else fake(b), **kwargs)


@needs_cuda_build
def test_cuda_binding_checks_grad_output_as_the_cpu_one():
    x, w = randn(2, 4, 6, 6), randn(5, 4, 3, 3)
    for g in [randn(2, 5, 6, 6), randn(2, 5, 4)]:
        error, message = error_of(lambda: fastnn._C.conv2d_backward(g, x, w, True, padding=(0, 0)))
        with pytest.raises(error, match=re.escape(message)):
            fastnn._C.cuda.conv2d_backward(fake(g), fake(x), fake(w), True, padding=(0, 0))
    error, message = error_of(lambda: fastnn._C.conv2d_backward(g, x, w, True, groups=3))
    with pytest.raises(error, match=re.escape(message)):
        fastnn._C.cuda.conv2d_backward(fake(g), fake(x), fake(w), True, groups=3)


@needs_cuda_build
def test_cuda_binding_checks_dtype_and_layout():
    x, w, b = randn(2, 4, 6, 6), randn(5, 4, 3, 3), randn(5)
    conv = fastnn._C.cuda.conv2d
    with pytest.raises(TypeError, match="conv2d: input must be float32, got float64"):
        conv(fake(x.astype(np.float64)), fake(w))
    with pytest.raises(TypeError, match="conv2d: weight must be float32, got float16"):
        conv(fake(x), fake(w.astype(np.float16)))
    with pytest.raises(TypeError, match="conv2d: bias must be float32, got int32"):
        conv(fake(x), fake(w), fake(b.astype(np.int32)))
    with pytest.raises(TypeError, match="conv2d_backward: grad_output must be float32, got float64"):
        fastnn._C.cuda.conv2d_backward(fake(np.zeros((2, 5, 4, 4))), fake(x), fake(w), False)
    with pytest.raises(TypeError, match="conv2d: weight must be a CUDA array"):
        conv(fake(x), w)
    fortran = (4, 8, 32, 192)  # byte strides of a Fortran-order (2, 4, 6, 6) float32 array
    with pytest.raises(ValueError, match="conv2d: input must be C-contiguous"):
        conv(fake(x, strides=fortran), fake(w))
    with pytest.raises(ValueError, match="conv2d_backward: grad_output must be C-contiguous"):
        fastnn._C.cuda.conv2d_backward(fake(np.zeros((2, 5, 4, 4), np.float32), strides=(320, 64, 16, 8)),
                                       fake(x), fake(w), False)


@needs_cuda_build
def test_cuda_binding_reaches_the_runtime_with_valid_arrays():
    # Arrays that pass every check reach the runtime's memory query: no driver here, and with a
    # GPU the fakes' address is host memory.
    x, w, b = randn(2, 4, 6, 6), randn(6, 2, 3, 3), randn(6)
    error, pattern = expected_runtime_error()
    kwargs = dict(padding="same", dilation=(2, 2), groups=2)
    with pytest.raises(error, match=pattern):
        fastnn._C.cuda.conv2d(FakeCudaArray(x.shape), FakeCudaArray(w.shape), FakeCudaArray(b.shape), **kwargs)
    with pytest.raises(error, match=pattern):
        fastnn._C.cuda.conv2d_backward(FakeCudaArray((2, 6, 6, 6)), FakeCudaArray(x.shape), FakeCudaArray(w.shape),
                                       True, **kwargs)
