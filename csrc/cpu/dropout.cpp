// Dropout: one pass that draws the mask and scales (cpu/dropout_slice.h); float runs the
// kernel compiled for the CPU's ISA, where the mask's 64-bit multiplies vectorize.
#include "fastnn/dropout.h"

#include <type_traits>

#include "cpu/dispatch.h"
#include "cpu/dropout_slice.h"
#include "cpu/parallel.h"

namespace fastnn::cpu {
namespace {

// 32K elements take ~30 us on the baseline ISA: smaller arrays stay on the calling thread.
constexpr int64_t kMinPairsPerThread = int64_t(1) << 14;

}  // namespace

template <class T>
void dropout(int64_t n, const T* x, double p, uint64_t seed, T* y) {
  const uint64_t threshold = drop_threshold(p);
  const T scale = keep_scale<T>(p);
  parallel_for((n + 1) / 2, kMinPairsPerThread, [&](int64_t begin, int64_t end) {
    const int64_t first = 2 * begin, count = std::min(2 * end, n) - first;
    if constexpr (std::is_same_v<T, float>)
      isa().activation->dropout(count, x + first, threshold, scale, seed, first, y + first);
    else
      dropout_slice<T>(count, x + first, threshold, scale, seed, first, y + first);
  });
}

template void dropout<float>(int64_t, const float*, double, uint64_t, float*);
template void dropout<double>(int64_t, const double*, double, uint64_t, double*);

}  // namespace fastnn::cpu
