// Memory with transparent huge pages, as NumPy gives its large arrays: one TLB entry per 2 MiB
// instead of 512. With the kernel's THP mode "madvise" (this VM's), memory gets them only when asked.
#pragma once
#include <cstddef>
#include <cstdlib>

#include <sys/mman.h>

namespace fastnn::cpu {

constexpr size_t kHugePageBytes = size_t(2) << 20;

// `bytes`, a multiple of kHugePageBytes, aligned to a huge page and advised to use them; free it
// with std::free. Null when out of memory.
inline void* allocate_huge_pages(size_t bytes) {
  void* data = std::aligned_alloc(kHugePageBytes, bytes);
#ifdef MADV_HUGEPAGE
  if (data) madvise(data, bytes, MADV_HUGEPAGE);
#endif
  return data;
}

}  // namespace fastnn::cpu
