// Output buffers of >= 1 MiB are kept for reuse when NumPy frees them, up to 256 MiB in all
// (oldest freed first out). Training and benchmarks call the same ops with the same shapes
// over and over, so an exact-size match is the common case; a kept buffer's pages are already
// mapped, so writing it costs memory bandwidth only, not a page fault per 4 KiB.
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <mutex>

#include "bindings/common.h"
#include "cpu/huge_pages.h"

namespace fastnn::bindings {
namespace {

constexpr size_t kMinCachedBytes = size_t(1) << 20;
constexpr size_t kMaxIdleBytes = size_t(256) << 20;

struct Block {
  void* data;
  size_t bytes;
};

std::mutex cache_mutex;
std::deque<Block> idle;  // freed blocks, oldest first
size_t idle_bytes = 0;

// Null when out of memory. Buffers of whole huge pages get them.
void* allocate(size_t bytes) {
  if (bytes < cpu::kHugePageBytes || bytes % cpu::kHugePageBytes) return std::aligned_alloc(64, bytes);
  return cpu::allocate_huge_pages(bytes);
}

Block take(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    for (auto it = idle.rbegin(); it != idle.rend(); ++it) {
      if (it->bytes == bytes) {
        Block block = *it;
        idle.erase(std::next(it).base());
        idle_bytes -= bytes;
        return block;
      }
    }
  }
  return {allocate(bytes), bytes};
}

void give_back(Block block) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  idle.push_back(block);
  idle_bytes += block.bytes;
  while (idle_bytes > kMaxIdleBytes) {
    idle_bytes -= idle.front().bytes;
    std::free(idle.front().data);
    idle.pop_front();
  }
}

}  // namespace

template <class T>
py::array_t<T> new_array(const Shape& shape) {
  const int64_t count = product(shape);
  if (count > PTRDIFF_MAX / int64_t(sizeof(T)))
    value_error("an output of shape ", shape_str(shape), " would take more than 2^63 bytes");
  const size_t bytes = size_t(count) * sizeof(T);
  if (bytes < kMinCachedBytes) return py::array_t<T>(shape);
  // aligned_alloc wants a multiple of the alignment; equal sizes still round alike.
  const Block taken = take((bytes + 63) / 64 * 64);
  if (!taken.data) {
    PyErr_Format(PyExc_MemoryError, "unable to allocate %zu bytes for an output of shape %s", bytes,
                 shape_str(shape).c_str());
    throw py::error_already_set();
  }
  Block* block = new Block(taken);
  py::capsule owner(block, [](void* pointer) {
    Block* freed = static_cast<Block*>(pointer);
    give_back(*freed);
    delete freed;
  });
  return py::array_t<T>(shape, static_cast<T*>(block->data), owner);
}

template py::array_t<float> new_array<float>(const Shape& shape);
template py::array_t<double> new_array<double>(const Shape& shape);
template py::array_t<int64_t> new_array<int64_t>(const Shape& shape);

}  // namespace fastnn::bindings
