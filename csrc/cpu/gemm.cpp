// BLIS-style GEMM: B is packed into KC x NR micro-panels, A into MR x KC micro-panels, and the
// ISA's register micro-kernel multiplies one pair at a time. Threads split the (NR panel,
// MR panel) tiles of each block, so both tall and wide products use every core.
#include "fastnn/gemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/parallel.h"

namespace fastnn::cpu {
namespace {

// An MR=8 x KC=256 micro-panel of A (8 KB) stays in L1 while the micro-kernel runs it against
// every KC x NR micro-panel of a KC x NC=768 block of B (768 KB with AVX-512's NR=48), which
// stays in L2; C is walked along its rows, tile after tile, which the hardware prefetcher
// follows. MKL's sgemm hot loop streams its 48-wide panel and broadcasts from an 8-wide one the
// same way. On a Xeon (1 thread, 2048^3, loops over packed panels, same process as MKL) this
// order ran at 1.06x MKL's whole sgemm where B panels in L1 against A blocks from L2 (walking C
// down its columns, 8 rows and pages per tile) ran at 0.84-0.90x; a B block of 1.5 MB, past
// L2, lost it again (0.87x). A is packed in blocks of up to MC=2048 rows, once per KC block
// (a 2 MB buffer per thread), so a row-major A is transposed once; B is packed once per A block.
constexpr int64_t kKC = 256;
constexpr int64_t kMCRows = 2048;
constexpr int64_t kNCCols = 768;
// Below ~2^21 flops (e.g. 128^3) a parallel region costs more than it saves.
constexpr int64_t kParallelFlops = int64_t(1) << 21;
// Up to ~400^3 multiply-adds, A is not packed (see direct_a).
constexpr int64_t kSmallProductFlops = int64_t(1) << 26;

struct AlignedBuffer {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data;
  int64_t capacity = 0;

  float* get(int64_t count) {
    if (count > capacity) {
      size_t bytes = ((size_t(count) * sizeof(float) + 63) / 64) * 64;
      data.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
      capacity = count;
    }
    return data.get();
  }
};

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

void scale_c(int64_t M, int64_t N, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

// Packing A (a transpose for row-major A) costs about a cycle per element, which each element
// repays over only N/NR micro-kernel calls: small products read A in place instead (it stays in
// cache there). Measured on a Xeon, 1 thread: 64^3 +26%, 128^3 +15%, 256^3 +10%; from 512^3
// on, reading A's rows (or, transposed, its columns) across pages costs more than packing,
// unless N is at most one block of B: a row-major A's panel then streams its MR rows through
// L1 for a few micro-kernel calls. 1 thread, same process, packed -> in place, 11 alternations:
// 64x9216 @ 9216x128 (linear's forward, B transposed) 100 -> 117 GF/s (faster 11/11), 2048x96x2048
// 93 -> 124 (10/11); AVX2 the forward 44 -> 51 (11/11). Past one block, 1024^3 and 2048^3 lost
// 1-2% (faster 2/11 and 3/11).
bool small_product(int64_t M, int64_t N, int64_t K) { return M * N * K <= kSmallProductFlops; }
bool direct_a(int64_t M, int64_t N, int64_t K, int64_t a_col_stride) {
  return small_product(M, N, K) || (a_col_stride == 1 && N <= kNCCols);
}

// Packing B costs a load and a store per element, repaid over M/MR micro-kernel calls; a small
// row-major B that stays in L1 is read in place instead, in the panels whose width is whole
// vectors (64^3, 1 thread: packing was 11% of the product's profile). A B of up to 64K floats
// read in place (rows past L1, a row stride apart) measured within noise at 256^3 and lost at
// 192^3 (118 -> 106 GF/s, 1 thread, CPU time, faster 9/25) and 1024x1024x64 (102 -> 90, 7/25).
constexpr int64_t kDirectBFloats = 8192;
bool direct_b(int64_t M, int64_t N, int64_t K, int64_t b_col_stride) {
  return b_col_stride == 1 && N * K <= kDirectBFloats && small_product(M, N, K);
}

// A row-major B is packed kPackBRows rows at a time across all the block's panels, not a whole
// panel at a time: a panel's rows are 64-192 bytes a row stride apart (8 KB at N=2048), a stride
// the hardware prefetcher does not follow, so each row missed to memory; 16 rows of every panel
// read each row's 3 KB in order. 1 thread, cycles sampled in pack_b, two runs each: 512^3 AVX2
// -30%, AVX-512 -28%; 1024^3 AVX2 -35%; its share of 2048^3 under AVX2 2.4-3.0% -> 1.1-1.3%;
// 128^3 alike. 8, 32 and 64 rows measured as 16.
constexpr int64_t kPackBRows = 16;

// A packed by pack_a: K blocks of rows_rounded rows each; row_offset is where this product's
// first row sits in them (a thread's share of the rows).
struct PrepackedA {
  const float* data;
  int64_t rows_rounded, row_offset;
};

// One thread's product, with A given by strides (packed block by block here) or prepacked.
void gemm_serial(int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_row_stride,
                 int64_t a_col_stride, const PrepackedA* prepacked, const float* b, int64_t b_row_stride,
                 int64_t b_col_stride, float beta, float* c, int64_t ldc) {
  const GemmKernels& kernels = *isa().gemm;
  const int64_t nr = kernels.nr, width = kernels.width;
  const bool read_a_in_place = !prepacked && direct_a(M, N, K, a_col_stride);
  const bool read_b_in_place = direct_b(M, N, K, b_col_stride);
  // With both operands read in place, N a multiple of the wide tile's columns runs in wide
  // tiles (AVX-512: 6 x 64), whose rows need no packed panel.
  const bool wide = kernels.wide && read_a_in_place && read_b_in_place && N % kernels.wide_cols == 0;
  const int64_t mr = wide ? kernels.wide_rows : kernels.mr;
  // 49-64 columns on AVX-512 run as two 2-vector panels, not a 3-vector and a 1-vector one,
  // whose 8 accumulators barely cover the FMA latency (64^3, 1 thread, medians: +8%).
  const int64_t panel_cols = wide ? kernels.wide_cols : N > nr && N <= 2 * (nr - width) ? nr - width : nr;
  const int64_t kc_max = std::min(kKC, K);
  const int64_t mc_max = kMCRows / mr * mr;  // a block of whole panels: none straddles two blocks
  thread_local AlignedBuffer a_buffer, b_buffer;
  float* a_packed = prepacked || read_a_in_place ? nullptr : a_buffer.get(round_up(std::min(mc_max, M), mr) * kc_max);
  float* b_packed = b_buffer.get((std::min(kNCCols, N) + panel_cols - 1) / panel_cols * nr * kc_max);
  for (int64_t pc = 0; pc < K; pc += kKC) {
    const int64_t kc = std::min(kKC, K - pc);
    const float block_beta = pc == 0 ? beta : 1.0f;
    for (int64_t ic = 0; ic < M; ic += mc_max) {
      const int64_t mc = std::min(mc_max, M - ic);
      const int64_t m_panels = (mc + mr - 1) / mr;
      const float* a_block = a_packed;
      if (prepacked) {
        a_block = prepacked->data + pc * prepacked->rows_rounded + (prepacked->row_offset + ic) * kc;
      } else if (!read_a_in_place) {
        for (int64_t ip = 0; ip < m_panels; ++ip) {
          const int64_t i0 = ic + ip * mr;
          kernels.pack_a(a + i0 * a_row_stride + pc * a_col_stride, a_row_stride, a_col_stride, std::min(mr, M - i0),
                         kc, a_packed + ip * mr * kc);
        }
      }
      for (int64_t jc = 0; jc < N; jc += kNCCols) {
        const int64_t nc = std::min(kNCCols, N - jc);
        const int64_t n_panels = (nc + panel_cols - 1) / panel_cols;
        const auto in_place = [&](int64_t j0) { return read_b_in_place && (N - j0 >= panel_cols || N % width == 0); };
        const int64_t k_step = b_col_stride == 1 ? kPackBRows : kc;
        for (int64_t k0 = 0; k0 < kc; k0 += k_step)
          for (int64_t jp = 0; jp < n_panels; ++jp) {
            const int64_t j0 = jc + jp * panel_cols;
            if (!in_place(j0))
              kernels.pack_b(b + (pc + k0) * b_row_stride + j0 * b_col_stride, b_row_stride, b_col_stride,
                             std::min(panel_cols, N - j0), std::min(k_step, kc - k0),
                             b_packed + jp * nr * kc + k0 * nr);
          }
        for (int64_t ip = 0; ip < m_panels; ++ip)
          for (int64_t jp = 0; jp < n_panels; ++jp) {
            const int64_t i0 = ic + ip * mr, j0 = jc + jp * panel_cols;
            const int64_t cols = std::min(panel_cols, N - j0);
            const float* a_panel = read_a_in_place ? a + i0 * a_row_stride + pc * a_col_stride : a_block + ip * mr * kc;
            const bool b_in_place = in_place(j0);
            (wide ? kernels.wide : kernels.micro[(cols + width - 1) / width - 1])(
                kc, a_panel, read_a_in_place ? a_row_stride : 1, read_a_in_place ? a_col_stride : mr,
                b_in_place ? b + pc * b_row_stride + j0 : b_packed + jp * nr * kc, b_in_place ? b_row_stride : nr,
                c + i0 * ldc + j0, ldc, std::min(mr, M - i0), cols, alpha, block_beta);
          }
      }
    }
  }
}

// A small C (at most 128x128) over a long K splits K, in whole KC blocks: each thread computes
// its blocks' sum into C (the first thread) or a buffer of its own, and the buffers are added to
// C after. Split along either side of C, each thread would pack all of the other operand for a
// few tiles of its own (linear's forward, 64x128 outputs of K=9216: each thread packed all of
// the 128x9216 weight) or run narrow tiles. 1 thread, CPU time, one thread's share of that
// forward: 32 of its 64 rows 79-81 GF/s, 64 of its 128 columns 77-84, half its K 97-100; the
// whole forward at 2 threads, flops per process CPU second: 78 -> 92 GF/s. Adding the buffers
// costs M*N per thread, against M*N*K/threads multiply-adds.
constexpr int64_t kSplitKOutputs = 128 * 128;

void gemm_split_k(int64_t threads, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_row_stride,
                  int64_t a_col_stride, const float* b, int64_t b_row_stride, int64_t b_col_stride, float beta,
                  float* c, int64_t ldc) {
  const int64_t blocks = (K + kKC - 1) / kKC;
  thread_local AlignedBuffer partial_buffer;  // the caller's: the threads write into it, the caller sums it
  float* partial = partial_buffer.get((threads - 1) * M * N);
  parallel_for(threads, 1, [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t) {
      const int64_t k0 = blocks * t / threads * kKC, k1 = std::min(K, blocks * (t + 1) / threads * kKC);
      float* out = t == 0 ? c : partial + (t - 1) * M * N;
      gemm_serial(M, N, k1 - k0, alpha, a + k0 * a_col_stride, a_row_stride, a_col_stride, nullptr,
                  b + k0 * b_row_stride, b_row_stride, b_col_stride, t == 0 ? beta : 0.0f, out, t == 0 ? ldc : N);
    }
  });
  for (int64_t t = 1; t < threads; ++t)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) c[i * ldc + j] += partial[(t - 1) * M * N + i * N + j];
}

// Threads split C into one block each, along its longer side in whole tiles, and run
// gemm_serial on it with their own packing buffers: no shared state and no barrier inside the
// product (with another process on the cores, each barrier can cost a scheduler time slice).
// Each thread packs all of the shorter operand, threads/N_tiles extra packing per FMA: small.
// Packing B once between 2 threads instead (each packed half the rows of every block of B into
// one of two shared buffers, one barrier per block) lost: 2 threads, products during which no
// thread waited on a run queue, medians: 256^3 214 -> 196 GF/s, 512^3 276 -> 258; under load,
// flops per process CPU second at 512^3 35 -> 18 (likely: each thread read the other's half from
// the other core, and each block waited for the slower thread). Splitting a square by columns (A
// read in place, each thread packing its half of B) or in 2-D measured as by rows (1 thread, CPU
// time, one thread's share of 256^3 and 512^3, 30 alternations); 32-row strips taken from a shared
// counter measured as fixed halves, alone and beside a busy process pinned to one core (there
// every library's product waited a time slice for its preempted thread: the OpenMP join needs it).
// The threads' relative speeds, learned from the products before, which set each thread's share
// of the next. On this shared VM one core can run 7-11% slower than the other for seconds at a
// time (likely its sibling hyperthread busy with another tenant's work): with equal shares the
// faster thread then waited at the join for the difference (2 threads, per-thread busy time a
// call: 2048^3 71.8 vs 64.2 ms, 1024^3 7.9 vs 8.5 ms). Weighted, 2 threads, medians over 16
// alternated process pairs: 256^3 232 -> 234 GF/s, 512^3 235 -> 264, 1024^3 236 -> 242, 2048^3
// 238 -> 241 (an earlier 20 pairs: 238 -> 258, 241 -> 259, 240 -> 249); with a busy loop pinned to
// one core, within noise (1024^3 104 -> 108).
// Each reading moves a weight a quarter of the way, so one preempted call moves the shares little.
// Only products of at least kLearnedSplitFlops multiply-adds (~80 us a thread here) learn and
// use the weights: shorter shares time mostly the timer and the fork. Weighting every product,
// 128^3 ran 14% slower (194 -> 167 GF/s), likely split by weights that an outlier call had set.
// Which thread computes a C element does not change how, so the result is bitwise the same.
class ThreadSpeeds {
 public:
  ThreadSpeeds() {
    for (auto& w : weights_) w.store(1.0f, std::memory_order_relaxed);
  }

  // Thread t's share of `units` is bounds[t]..bounds[t + 1]; equal shares unless `weighted`.
  std::vector<int64_t> split(int64_t units, int64_t threads, bool weighted) const {
    std::vector<double> weights(threads);
    double total = 0.0;
    for (int64_t t = 0; t < threads; ++t) total += weights[t] = weighted ? weight(t) : 1.0;
    std::vector<int64_t> bounds(threads + 1, units);
    double before = 0.0;
    for (int64_t t = 0; t < threads; ++t) {
      bounds[t] = std::min(units, int64_t(double(units) * before / total + 0.5));
      before += weights[t];
    }
    return bounds;
  }

  void learn(const std::vector<int64_t>& bounds, const std::vector<double>& seconds) {
    const int64_t threads = int64_t(seconds.size());
    std::vector<double> speed(threads);
    double mean = 0.0;
    for (int64_t t = 0; t < threads; ++t) {
      if (bounds[t + 1] == bounds[t]) return;
      mean += speed[t] = double(bounds[t + 1] - bounds[t]) / seconds[t];
    }
    mean /= double(threads);
    for (int64_t t = 0; t < std::min(threads, kTracked); ++t) {
      const float observed = float(std::clamp(speed[t] / mean, 0.5, 2.0));
      weights_[t].store(0.75f * weight(t) + 0.25f * observed, std::memory_order_relaxed);
    }
  }

 private:
  static constexpr int64_t kTracked = 64;  // threads past these get weight 1
  float weight(int64_t t) const { return t < kTracked ? weights_[t].load(std::memory_order_relaxed) : 1.0f; }
  std::atomic<float> weights_[kTracked];
};

ThreadSpeeds gemm_thread_speeds;
constexpr int64_t kLearnedSplitFlops = int64_t(1) << 24;

void gemm_blocks(int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_row_stride,
                 int64_t a_col_stride, const float* a_prepacked, const float* b, int64_t b_row_stride,
                 int64_t b_col_stride, float beta, float* c, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, c, ldc);
    return;
  }
  const int64_t mr = isa().gemm->mr, nr = isa().gemm->nr, width = isa().gemm->width;
  const PrepackedA whole{a_prepacked, round_up(M, mr), 0};
  const int64_t threads = !in_parallel_region() && M * N * K >= kParallelFlops ? num_threads() : 1;
  if (threads <= 1) {
    gemm_serial(M, N, K, alpha, a, a_row_stride, a_col_stride, a_prepacked ? &whole : nullptr, b, b_row_stride,
                b_col_stride, beta, c, ldc);
    return;
  }
  if (!a_prepacked && M * N <= kSplitKOutputs && K >= threads * kKC) {
    gemm_split_k(threads, M, N, K, alpha, a, a_row_stride, a_col_stride, b, b_row_stride, b_col_stride, beta, c, ldc);
    return;
  }
  const int64_t row_tiles = (M + mr - 1) / mr, col_tiles = (N + nr - 1) / nr;
  const bool split_columns = col_tiles >= row_tiles;
  // Columns split in whole vectors, not whole NR-wide tiles: 256 columns go 128/128, not
  // 144/112 as 3 and 2.3 tiles of 48.
  const int64_t unit = split_columns ? width : mr;
  const int64_t units = ((split_columns ? N : M) + unit - 1) / unit;
  const bool weighted = M * N * K >= kLearnedSplitFlops;
  const std::vector<int64_t> bounds = gemm_thread_speeds.split(units, threads, weighted);
  std::vector<double> seconds(threads, 0.0);
  parallel_for(threads, 1, [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t) {
      const auto start = std::chrono::steady_clock::now();
      const int64_t unit_begin = bounds[t], unit_end = bounds[t + 1];
      if (unit_begin == unit_end) continue;
      if (split_columns) {
        const int64_t j0 = unit_begin * width, j1 = std::min(N, unit_end * width);
        gemm_serial(M, j1 - j0, K, alpha, a, a_row_stride, a_col_stride, a_prepacked ? &whole : nullptr,
                    b + j0 * b_col_stride, b_row_stride, b_col_stride, beta, c + j0, ldc);
      } else {
        const int64_t i0 = unit_begin * mr, i1 = std::min(M, unit_end * mr);
        const PrepackedA rows{a_prepacked, whole.rows_rounded, i0};
        gemm_serial(i1 - i0, N, K, alpha, a + i0 * a_row_stride, a_row_stride, a_col_stride,
                    a_prepacked ? &rows : nullptr, b, b_row_stride, b_col_stride, beta, c + i0 * ldc, ldc);
      }
      seconds[t] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  });
  if (weighted) gemm_thread_speeds.learn(bounds, seconds);
}

}  // namespace

void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_row_stride,
          int64_t a_col_stride, const float* b, int64_t b_row_stride, int64_t b_col_stride, float beta,
          float* c, int64_t ldc) {
  gemm_blocks(M, N, K, alpha, a, a_row_stride, a_col_stride, nullptr, b, b_row_stride, b_col_stride, beta, c, ldc);
}

int64_t packed_a_size(int64_t M, int64_t K) { return round_up(M, isa().gemm->mr) * K; }

// The K blocks in order, each holding all MR-row panels: block pc starts at pc * M rounded up
// to MR, and the panel of rows i0.. at i0 * kc within it, where gemm_blocks looks for them.
void pack_a(int64_t M, int64_t K, const float* a, int64_t a_row_stride, int64_t a_col_stride, float* packed) {
  const GemmKernels& kernels = *isa().gemm;
  const int64_t mr = kernels.mr;
  for (int64_t pc = 0; pc < K; pc += kKC) {
    const int64_t kc = std::min(kKC, K - pc);
    for (int64_t i0 = 0; i0 < M; i0 += mr)
      kernels.pack_a(a + i0 * a_row_stride + pc * a_col_stride, a_row_stride, a_col_stride, std::min(mr, M - i0), kc,
                     packed + pc * round_up(M, mr) + i0 * kc);
  }
}

void gemm_packed_a(int64_t M, int64_t N, int64_t K, float alpha, const float* a_packed, const float* b,
                   int64_t b_row_stride, int64_t b_col_stride, float beta, float* c, int64_t ldc) {
  gemm_blocks(M, N, K, alpha, nullptr, 0, 0, a_packed, b, b_row_stride, b_col_stride, beta, c, ldc);
}

void matmul(int64_t batch, int64_t M, int64_t N, int64_t K, const float* a, const float* b,
            int64_t b_batch_stride, float* c) {
  if (b_batch_stride == 0) {  // one shared B: the batch is just more rows of A
    gemm(batch * M, N, K, 1.0f, a, K, 1, b, N, 1, 0.0f, c, N);
    return;
  }
  // Small products run one per thread; big ones parallelize inside gemm.
  const int64_t per_thread = std::max<int64_t>(1, kParallelFlops / std::max<int64_t>(1, M * N * K));
  parallel_for(batch, per_thread, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      gemm(M, N, K, 1.0f, a + i * M * K, K, 1, b + i * b_batch_stride, N, 1, 0.0f, c + i * M * N, N);
  });
}

void matmul_backward(int64_t batch, int64_t M, int64_t N, int64_t K, const float* grad_c, const float* a,
                     const float* b, int64_t b_batch_stride, float* grad_a, float* grad_b) {
  if (b_batch_stride == 0) {
    if (grad_a) gemm(batch * M, K, N, 1.0f, grad_c, N, 1, b, 1, N, 0.0f, grad_a, K);
    if (grad_b) gemm(K, N, batch * M, 1.0f, a, 1, K, grad_c, N, 1, 0.0f, grad_b, N);
    return;
  }
  const int64_t per_thread = std::max<int64_t>(1, kParallelFlops / std::max<int64_t>(1, M * N * K));
  parallel_for(batch, per_thread, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* gc = grad_c + i * M * N;
      if (grad_a) gemm(M, K, N, 1.0f, gc, N, 1, b + i * b_batch_stride, 1, N, 0.0f, grad_a + i * M * K, K);
      if (grad_b) gemm(K, N, M, 1.0f, a + i * M * K, 1, K, gc, N, 1, 0.0f, grad_b + i * K * N, N);
    }
  });
}

void linear(int64_t M, int64_t in, int64_t out, const float* x, const float* w, const float* bias, float* y) {
  if (bias) {
    for (int64_t i = 0; i < M; ++i) std::memcpy(y + i * out, bias, out * sizeof(float));
  }
  gemm(M, out, in, 1.0f, x, in, 1, w, 1, in, bias ? 1.0f : 0.0f, y, out);
}

void linear_backward(int64_t M, int64_t in, int64_t out, const float* grad_y, const float* x, const float* w,
                     float* grad_x, float* grad_w, float* grad_bias) {
  if (grad_x) gemm(M, in, out, 1.0f, grad_y, out, 1, w, in, 1, 0.0f, grad_x, in);
  if (grad_w) gemm(out, in, M, 1.0f, grad_y, 1, out, x, in, 1, 0.0f, grad_w, in);
  if (grad_bias) {
    parallel_for(out, 256, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) grad_bias[o] = 0.0f;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t o = begin; o < end; ++o) grad_bias[o] += grad_y[i * out + o];
    });
  }
}

}  // namespace fastnn::cpu
