import numpy as np
import pytest

import fastnn
from opcheck import check_inputs, check_op, randn

pytestmark = pytest.mark.usefixtures("isa")

# Odd sizes, size 1, and sizes off every ISA's MR (8, 6, 4) and NR (48, 16, 8) and KC (256); the
# last panels take 1, 2 and 3 vectors (65, 80, 129 on AVX-512), whole and partial, and 49-64
# columns run as two 2-vector panels on AVX-512 (57, 64). All are small enough that gemm reads A
# in place rather than packing it.
SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 9), (13, 33, 17), (12, 32, 256), (9, 80, 40), (10, 57, 30), (16, 64, 64),
          (25, 65, 257), (67, 129, 300)]


@pytest.mark.parametrize("M,N,K", SHAPES)
def test_matmul_2d(M, N, K):
    check_op("matmul", [randn(M, K), randn(K, N)], reduction=K)


@pytest.mark.parametrize("batch,M,N,K", [(1, 3, 4, 5), (3, 13, 33, 17), (4, 1, 40, 7)])
def test_matmul_batched(batch, M, N, K):
    check_op("matmul", [randn(batch, M, K), randn(batch, K, N)], reduction=K)


def test_matmul_batched_times_shared_matrix():
    check_op("matmul", [randn(3, 13, 17), randn(17, 21)], reduction=3 * 13)


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
def test_linear(lead, bias):
    x, w = randn(*lead, 19), randn(11, 19)
    b = randn(11) if bias else None
    check_op("linear", [x, w, b], reduction=max(19, int(np.prod(lead or (1,)))))


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


def test_matmul_transposed_views_are_not_copied_and_correct():
    a, b = randn(40, 30), randn(50, 40)
    check_op("matmul", [a.T, b.T], reduction=40)
    c = np.zeros((20, 60), dtype=np.float32)
    c[:, ::2] = randn(20, 30)
    check_op("matmul", [c[:, ::2], randn(30, 7)], reduction=30)


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
