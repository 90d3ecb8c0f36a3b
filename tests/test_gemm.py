import numpy as np
import pytest

import fastnn
from cuda_fakes import FakeCudaArray, expected_runtime_error
from opcheck import check_inputs, check_op, randn

pytestmark = pytest.mark.usefixtures("isa")

# Odd sizes, size 1, and sizes off every ISA's MR (8, 6, 4) and NR (48, 16, 8) and KC (256); the
# last panels take 1, 2 and 3 vectors (65, 80, 129 on AVX-512), whole and partial, and 49-64
# columns run as two 2-vector panels on AVX-512 (57, 64). All are small enough that gemm reads A
# in place rather than packing it.
SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 9), (13, 33, 17), (12, 32, 256), (9, 80, 40), (10, 57, 30), (16, 64, 64),
          (25, 65, 257), (67, 129, 300)]


@pytest.mark.parametrize("M,N,K", SHAPES)
def test_matmul_2d(M, N, K, device):
    check_op("matmul", [randn(M, K), randn(K, N)], reduction=K, device=device)


# The CUDA kernel's 128 x 128 tiles of C and 8-deep steps through K, whole and partial, with odd
# strides and with K or N a multiple of 4 (float4 loads of A or B), and empty products: K = 0
# gives zeros, M or N = 0 an empty C.
@pytest.mark.parametrize("M,N,K", [(127, 129, 7), (128, 128, 8), (129, 256, 36), (130, 132, 17), (128, 1, 1),
                                   (1, 130, 64), (3, 4, 0), (0, 4, 3), (3, 0, 4)])
def test_matmul_tile_edges_and_empty(M, N, K, device):
    check_op("matmul", [randn(M, K), randn(K, N)], reduction=K, device=device)


@pytest.mark.parametrize("batch,M,N,K", [(1, 3, 4, 5), (3, 13, 33, 17), (4, 1, 40, 7), (2, 70, 65, 20)])
def test_matmul_batched(batch, M, N, K, device):
    check_op("matmul", [randn(batch, M, K), randn(batch, K, N)], reduction=K, device=device)


def test_matmul_batched_times_shared_matrix(device):
    check_op("matmul", [randn(3, 13, 17), randn(17, 21)], reduction=3 * 13, device=device)


def test_matmul_batch_past_the_grid_limit(device):
    # 70000 products: past CUDA's 65535 blocks in the grid's z dimension, so blocks take several.
    check_op("matmul", [randn(70000, 2, 3), randn(70000, 3, 2)], reduction=3, kernel_fd=False, device=device)


def test_matmul_large_uses_all_blocks():
    # Crosses the KC, MC and NC block edges, so every packing loop runs more than once.
    a, b = randn(300, 520), randn(520, 3100)
    expected = a.astype(np.float64) @ b
    np.testing.assert_allclose(fastnn.ops.matmul(a, b), expected, atol=1e-3 * np.abs(expected).max())


@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_packed_a_path_tile_edges(transpose_a, transpose_b):
    # M*N*K past the limit below which A is read in place, and N past one block of B, so A is
    # packed; M, N and K are off every MR, NR and KC multiple (K's last block, 7 rows, is under
    # one 16-row step of B's packing), and transposed operands go through packing too.
    M, N, K = 133, 805, 1031
    a = randn(K, M).T if transpose_a else randn(M, K)
    b = randn(N, K).T if transpose_b else randn(K, N)
    expected = a.astype(np.float64) @ b
    np.testing.assert_allclose(fastnn.ops.matmul(a, b), expected, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_row_major_a_in_place_past_the_small_product_limit(transpose_b):
    # A linear layer's shape: N within one block of B, so a row-major A is read in place even
    # past the small-product limit; M off MR (the last panel's rows repeat row M-1, and no row past
    # it is read), K off KC.
    M, N, K = 67, 131, 9000
    a = randn(M, K)
    b = randn(N, K).T if transpose_b else randn(K, N)
    expected = a.astype(np.float64) @ b
    np.testing.assert_allclose(fastnn.ops.matmul(a, b), expected, atol=1e-4 * np.abs(expected).max())


def test_matmul_packed_a_crosses_the_row_block_with_a_narrow_last_panel():
    # Past the 2048-row A block with A packed (transposed: a row-major A is read in place when N
    # is one block of B), and N 5 columns past a whole number of NR panels on every ISA (48, 16,
    # 8), so the last panel runs the one-vector kernel; K off KC. One thread: two would each take
    # half the rows, under the block and the packing limit.
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    try:
        a, b = randn(700, 2100).T, randn(700, 101)
        expected = a.astype(np.float64) @ b
        np.testing.assert_allclose(fastnn.ops.matmul(a, b), expected, atol=1e-4 * np.abs(expected).max())
    finally:
        fastnn.set_num_threads(before)


@pytest.mark.parametrize("M", [1, 7, 8, 9, 63])
def test_matmul_in_place_a_rows_past_the_tile(M):
    # A read in place, row-major and transposed: a tile's rows past M are neither read nor
    # written (ASan checks the bounds).
    check_op("matmul", [randn(M, 21), randn(21, 40)], reduction=21)
    check_op("matmul", [randn(21, M).T, randn(21, 40)], reduction=21)


@pytest.mark.parametrize("N", [4, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 100])
def test_matmul_in_place_b_panels(N):
    # A small row-major B is read in place in its panels of whole vectors, packed in the others
    # (a last panel of 4 or 8 columns, or 100 = 48 + 48 + 4 on AVX-512); its last row ends the
    # buffer, so ASan sees any read past it. A view with a row stride past N is read in place too.
    check_op("matmul", [randn(9, 60), randn(60, N)], reduction=60)
    wide = randn(60, N + 16)
    a = randn(9, 60)
    np.testing.assert_allclose(fastnn.ops.matmul(a, wide[:, 16:]), a.astype(np.float64) @ wide[:, 16:],
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("M", [1, 5, 6, 13, 64])
@pytest.mark.parametrize("N", [64, 128])
def test_matmul_wide_tiles(M, N):
    # A and B read in place with N a multiple of 64 run in 6 x 64 tiles on AVX-512: a last tile of
    # fewer rows, two tiles across, and A transposed.
    check_op("matmul", [randn(M, 48), randn(48, N)], reduction=48)
    check_op("matmul", [randn(48, M).T, randn(48, N)], reduction=48)


@pytest.mark.parametrize("lead", [(), (6,), (2, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(lead, bias, device):
    x, w = randn(*lead, 19), randn(11, 19)
    b = randn(11) if bias else None
    check_op("linear", [x, w, b], reduction=max(19, int(np.prod(lead or (1,)))), device=device)


@pytest.mark.parametrize("M,in_features,out_features", [(300, 33, 70), (0, 5, 3), (4, 0, 3)])
def test_linear_many_rows_and_empty(M, in_features, out_features, device):
    # grad_bias sums 300 rows over columns in blocks of 32 (70: a partial last block); no rows give
    # a zero grad_weight and grad_bias, no input features y = bias.
    x, w, b = randn(M, in_features), randn(out_features, in_features), randn(out_features)
    check_op("linear", [x, w, b], reduction=max(M, in_features), device=device)


def test_input_layouts():
    check_inputs("matmul", [randn(6, 5), randn(5, 7)], batch_axes=[0, None])
    check_inputs("linear", [randn(6, 5), randn(4, 5), randn(4)], batch_axes=[0, None, None])


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="a has K=5 columns but b has 4 rows"):
        fastnn.ops.matmul(randn(3, 5), randn(4, 2))
    with pytest.raises(ValueError, match="weight has in_features=4 but input has 5"):
        fastnn.ops.linear(randn(3, 5), randn(2, 4))
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        fastnn.ops.linear(randn(3, 5), randn(2, 5), randn(3))
    with pytest.raises(ValueError, match="a must have shape"):
        fastnn.ops.matmul(randn(2, 3, 4, 5), randn(5, 2))


def test_matmul_transposed_views_are_not_copied_and_correct(device):
    a, b = randn(40, 30), randn(50, 40)
    check_op("matmul", [a.T, b.T], reduction=40, device=device)
    c = np.zeros((20, 60), dtype=np.float32)
    c[:, ::2] = randn(20, 30)
    check_op("matmul", [c[:, ::2], randn(30, 7)], reduction=30, device=device)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("M,N,K", [(3000, 40, 50), (40, 3000, 50), (100, 100, 300), (60, 100, 1000)])
def test_threads_split_tall_wide_and_deep_products(threads, M, N, K):
    # The last shape's small C over a long K splits K (1000: blocks of 256 and a partial one).
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        a, b = randn(M, K), randn(K, N)
        expected = a.astype(np.float64) @ b
        np.testing.assert_allclose(fastnn.ops.matmul(a, b), expected, atol=1e-4 * np.abs(expected).max())
        np.testing.assert_allclose(fastnn.ops.matmul(b.T, a.T), expected.T, atol=1e-4 * np.abs(expected).max())
    finally:
        fastnn.set_num_threads(before)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("M,N,K", [(300, 200, 700), (72, 1000, 300), (513, 515, 129), (2048, 64, 256)])
def test_threads_shares_do_not_change_the_product(threads, M, N, K):
    # Each thread's share of C follows the speeds the threads showed in the products before, so
    # the shares move from call to call; every C element must still come out bitwise the same.
    before = fastnn.get_num_threads()
    try:
        a, b = randn(M, K), randn(K, N)
        fastnn.set_num_threads(1)
        expected = fastnn.ops.matmul(a, b)
        fastnn.set_num_threads(threads)
        for _ in range(10):
            np.testing.assert_array_equal(fastnn.ops.matmul(a, b), expected)
    finally:
        fastnn.set_num_threads(before)


@pytest.mark.parametrize("threads", [2, 3])
def test_linear_split_k_adds_the_bias_once(threads):
    # linear's forward is beta = 1 on C preset to the bias; with K split, only one thread's share
    # may start from it (37x50x1200 is past the 2^21 flops below which gemm runs on one thread).
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        x, w, b = randn(37, 1200), randn(50, 1200), randn(50)
        expected = x.astype(np.float64) @ w.T.astype(np.float64) + b
        np.testing.assert_allclose(fastnn.ops.linear(x, w, b), expected, atol=1e-4 * np.abs(expected).max())
    finally:
        fastnn.set_num_threads(before)


# ---- CUDA: fastnn::cuda::gemm itself, and the bindings' checks ----

needs_cuda_build = pytest.mark.skipif(not fastnn.build_info()["cuda"], reason="built without CUDA")


@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("batch,M,N,K,share", [(1, 1, 1, 1, False), (3, 65, 70, 17, False), (2, 64, 129, 48, True),
                                               (2, 132, 136, 40, False), (2, 5, 7, 0, False), (1, 0, 3, 2, False),
                                               (2, 3, 0, 2, False)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.5, 0.0), (2.0, 1.0), (0.5, -3.0)])
def test_cuda_gemm_strides_alpha_beta(require_gpu, transpose_a, transpose_b, batch, M, N, K, share, alpha, beta):
    # Transposed operands are other strides; a batch stride of 0 shares A; C has a row stride past
    # N whose extra columns must stay untouched; with beta == 0 C starts as NaN, which must not leak.
    import cupy
    a = randn(1 if share else batch, K, M).transpose(0, 2, 1) if transpose_a else randn(1 if share else batch, M, K)
    b = randn(batch, N, K).transpose(0, 2, 1) if transpose_b else randn(batch, K, N)
    ldc = N + 3
    c = np.full((batch, M, ldc), np.nan, np.float32) if beta == 0 else randn(batch, M, ldc)
    expected = alpha * (a.astype(np.float64) @ b) + (0.0 if beta == 0 else beta * c[:, :, :N].astype(np.float64))
    # The buffers as laid out in memory (a transposed view's base), and the views' element strides.
    a_buffer, b_buffer = (x.base if x.base is not None else x for x in (a, b))
    a_strides, b_strides = (tuple(s // 4 for s in x.strides) for x in (a, b))
    if share:
        a_strides = (0,) + a_strides[1:]
    c_gpu = cupy.asarray(c.ravel())
    fastnn._C.cuda._gemm(batch, M, N, K, alpha, cupy.asarray(a_buffer.ravel()), a_strides,
                         cupy.asarray(b_buffer.ravel()), b_strides, beta, c_gpu, (M * ldc, ldc))
    out = cupy.asnumpy(c_gpu).reshape(batch, M, ldc)
    np.testing.assert_allclose(out[:, :, :N], expected, rtol=1e-5, atol=1e-5 * np.sqrt(max(K, 1)) * 4)
    np.testing.assert_array_equal(out[:, :, N:], c[:, :, N:])  # NaN == NaN here: untouched


def test_cuda_gemm_checks_the_operands_extent(require_gpu):
    import cupy
    buffer = cupy.zeros(12, dtype=cupy.float32)
    # b is K x N = 4 x 3 with row stride 4: its element (3, 2) is at 3 * 4 + 2 = 14.
    with pytest.raises(ValueError, match="_gemm: b's last element is at 14 but it holds 12 floats"):
        fastnn._C.cuda._gemm(1, 2, 3, 4, 1.0, buffer, (0, 4, 1), buffer, (0, 4, 1), 0.0, buffer, (0, 3))
    with pytest.raises(ValueError, match=r"_gemm: a's strides must be >= 0, got \(0, -4, 1\)"):
        fastnn._C.cuda._gemm(1, 2, 3, 4, 1.0, buffer, (0, -4, 1), buffer, (0, 3, 1), 0.0, buffer, (0, 3))


def test_cuda_grad_bias_is_deterministic(require_gpu):
    import cupy
    g, x, w = (cupy.asarray(v) for v in (randn(5000, 40), randn(5000, 8), randn(40, 8)))
    first = fastnn.ops.linear_backward(g, x, w, w[:, 0])
    second = fastnn.ops.linear_backward(g, x, w, w[:, 0])
    for one, two in zip(first, second):
        assert cupy.array_equal(one, two)


def raised(call):
    """(type, message) of the exception `call` raises."""
    with pytest.raises(Exception) as info:
        call()
    return info.type, str(info.value)


def fake(shape, typestr="<f4", strides=None, address=0):
    """A fake CUDA array at address 0, which the bindings take as empty (no memory query), so that
    checks between arrays run after each array's own; fakes at a real address reach the runtime."""
    return FakeCudaArray(shape, typestr, strides, address)


@needs_cuda_build
def test_cuda_binding_shape_errors_are_the_cpu_bindings():
    # Host arrays and fakes of the same shapes (non-tuple items are other arguments) must raise
    # the same ValueError: both bindings share matmul_shape and linear_shape.
    cases = [("matmul", [(3, 5), (4, 2)]),  # K mismatch, 2-D
             ("matmul", [(2, 3, 5), (2, 4, 2)]),
             ("matmul", [(3, 5), (2, 5, 2)]),  # b batched, a not
             ("matmul", [(2, 3, 5), (3, 5, 2)]),  # batch mismatch
             ("matmul", [(2, 3, 4, 5), (5, 2)]),  # rank
             ("matmul", [(3, 5), (5,)]),
             ("matmul", [(2, 3, 4, 5), (3,)]),  # both wrong: a is reported
             ("matmul_backward", [(3, 3), (3, 5), (5, 2)]),  # grad_output shape, 2-D
             ("matmul_backward", [(2, 3, 3), (2, 3, 5), (2, 5, 2)]),
             ("matmul_backward", [(3, 2), (2, 3, 5), (5, 2)]),  # shared b: grad_output (2, 3, 2)
             ("linear", [(3, 5), (2, 4)]),
             ("linear", [(3, 5, 1), (2, 5)]),
             ("linear", [(3,), (2, 5, 1)]),  # both wrong: input is reported
             ("linear", [(3, 5), (2, 5), (3,)]),
             ("linear", [(3, 5), (2, 5), (2, 1)]),
             ("linear_backward", [(3, 3), (3, 5), (2, 5), True]),
             ("linear_backward", [(3, 2, 1), (3, 5), (2, 5), False])]
    for name, shapes in cases:
        host = [np.zeros(s, np.float32) if isinstance(s, tuple) else s for s in shapes]
        device = [fake(s) if isinstance(s, tuple) else s for s in shapes]
        error = raised(lambda: getattr(fastnn._C, name)(*host))
        assert error[0] is ValueError, (name, shapes, error)
        assert raised(lambda: getattr(fastnn._C.cuda, name)(*device)) == error, (name, shapes)


@needs_cuda_build
def test_cuda_binding_type_and_layout_errors():
    G = fastnn._C.cuda
    with pytest.raises(TypeError, match="matmul: a must be float32, got float64"):
        G.matmul(fake((3, 5), "<f8"), fake((5, 2)))
    with pytest.raises(TypeError, match="matmul_backward: b must be float32, got int64"):
        G.matmul_backward(fake((3, 2)), fake((3, 5)), fake((5, 2), "<i8"))
    with pytest.raises(TypeError, match="linear: bias must be float32, got float16"):
        G.linear(fake((3, 5)), fake((2, 5)), fake((2,), "<f2"))
    with pytest.raises(TypeError, match="linear_backward: grad_output must be float32, got float64"):
        G.linear_backward(fake((3, 2), "<f8"), fake((3, 5)), fake((2, 5)), True)
    with pytest.raises(TypeError, match="matmul: b must be a CUDA array"):
        G.matmul(fake((3, 5)), np.zeros((5, 2), np.float32))
    with pytest.raises(TypeError, match="_gemm: c must be float32, got float64"):
        G._gemm(1, 1, 1, 1, 1.0, fake((1,)), (0, 1, 1), fake((1,)), (0, 1, 1), 0.0, fake((1,), "<f8"), (0, 1))
    with pytest.raises(ValueError, match="matmul: a must be C-contiguous"):
        G.matmul(fake((3, 5), strides=(4, 12)), fake((5, 2)))
    with pytest.raises(ValueError, match="matmul_backward: grad_output must be C-contiguous"):
        G.matmul_backward(fake((2, 3, 2), strides=(24, 4, 12)), fake((2, 3, 5)), fake((2, 5, 2)))
    with pytest.raises(ValueError, match="linear: weight must be C-contiguous"):
        G.linear(fake((3, 5)), fake((2, 5), strides=(4, 8)))
    with pytest.raises(ValueError, match="linear_backward: input must be C-contiguous"):
        G.linear_backward(fake((3, 2)), fake((3, 5), strides=(4, 12)), fake((2, 5)), False)


@needs_cuda_build
def test_cuda_binding_reaches_the_runtime_with_valid_arrays():
    G = fastnn._C.cuda
    error, pattern = expected_runtime_error()
    real = FakeCudaArray  # at an address, so each array's memory query runs
    calls = [lambda: G.matmul(real((3, 5)), real((5, 2))),
             lambda: G.matmul(real((2, 3, 5)), real((5, 2))),
             lambda: G.matmul(real((2, 3, 5)), real((2, 5, 2))),
             lambda: G.matmul_backward(real((2, 3, 2)), real((2, 3, 5)), real((5, 2))),
             lambda: G.linear(real((3, 5)), real((2, 5)), real((2,))),
             lambda: G.linear_backward(real((3, 2)), real((3, 5)), real((2, 5)), True),
             lambda: G._gemm(1, 2, 3, 4, 1.0, real((8,)), (0, 4, 1), real((12,)), (0, 3, 1), 0.0, real((6,)), (0, 3))]
    for call in calls:
        with pytest.raises(error, match=pattern):
            call()
