// Softmax, log-softmax and the classifier losses on NVIDIA GPUs (fastnn/cuda/softmax.h). As on
// the CPU (cpu/softmax.cpp) every op works on rows: the D values of one (outer, inner) position
// of the (outer, D, inner) view. Which threads share a row depends on where its values lie:
// - inner == 1 (softmax over the last dim, (N, C) losses): a row is contiguous; a warp takes it
//   when D <= 1024 (at most 32 values per lane), a block of 256 threads when longer, consecutive
//   lanes reading consecutive addresses;
// - inner > 1: one thread takes a row, its values `inner` apart; neighbouring threads take
//   neighbouring rows (columns of the view), so each of their D reads is coalesced.
// Rows are computed in float with the max subtracted, as on the CPU; the losses' sums to one
// value are in double, by one block in a fixed order. The only atomic is first_bad_target's
// atomicMin of an index, so every result has the same bits every run.
#include "fastnn/cuda/softmax.h"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/launch.h"

namespace fastnn::cuda {
namespace {

using cpu::Reduction;

constexpr int kWarp = 32;
constexpr int kThreads = 256;  // per block, in every kernel here
constexpr int kWarpsPerBlock = kThreads / kWarp;
constexpr int64_t kWarpRowLimit = 1024;  // longer contiguous rows take a block

struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

struct Plus {
  template <class T>
  __device__ T operator()(T a, T b) const { return a + b; }
};

// v combined over the calling warp's 32 lanes by a butterfly. Every lane ends with the same bits:
// at each step the two lanes of a pair combine the same two values, and both ops commute.
template <class T, class Op>
__device__ T warp_reduce(T v, Op op) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// v combined over the calling block (kThreads threads); every thread gets the same bits, as each
// combines the warps' results in the same order. scratch: kWarpsPerBlock values in shared memory.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T* scratch) {
  v = warp_reduce(v, op);
  __syncthreads();  // every thread has read the previous reduction's results from scratch
  if (threadIdx.x % kWarp == 0) scratch[threadIdx.x / kWarp] = v;
  __syncthreads();
  v = scratch[0];
  for (int w = 1; w < kWarpsPerBlock; ++w) v = op(v, scratch[w]);
  return v;
}

// The threads that share a row: one thread, a warp or a block. A member takes the row's indices
// first(), first() + step(), ...; max and sum combine the members' partial results and give each
// member the row's. A row is the same for all its members, so all of them reach each reduction.
struct OneThread {
  __device__ int64_t first() const { return 0; }
  __device__ int64_t step() const { return 1; }
  __device__ float max(float v) const { return v; }
  __device__ float sum(float v) const { return v; }
};

struct OneWarp {
  __device__ int64_t first() const { return threadIdx.x % kWarp; }
  __device__ int64_t step() const { return kWarp; }
  __device__ float max(float v) const { return warp_reduce(v, Max()); }
  __device__ float sum(float v) const { return warp_reduce(v, Plus()); }
};

struct OneBlock {
  float* scratch;
  __device__ int64_t first() const { return threadIdx.x; }
  __device__ int64_t step() const { return kThreads; }
  __device__ float max(float v) const { return block_reduce(v, Max(), scratch); }
  __device__ float sum(float v) const { return block_reduce(v, Plus(), scratch); }
};

// The kernels below call row(group, r, start, stride) for every row r of the view: row r starts
// at element `start`, its D values `stride` apart. Grid-stride loops over rows; a warp's or a
// block's loop variable is the same in all its threads.
template <class Row>
__global__ void rows_by_thread(int64_t rows, int64_t D, int64_t inner, Row row) {
  for (int64_t r = int64_t(blockIdx.x) * kThreads + threadIdx.x; r < rows; r += int64_t(gridDim.x) * kThreads)
    row(OneThread(), r, (r / inner) * D * inner + r % inner, inner);
}

template <class Row>
__global__ void rows_by_warp(int64_t rows, int64_t D, Row row) {
  const int64_t warp = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  for (int64_t r = warp; r < rows; r += int64_t(gridDim.x) * kWarpsPerBlock) row(OneWarp(), r, r * D, int64_t(1));
}

template <class Row>
__global__ void rows_by_block(int64_t rows, int64_t D, Row row) {
  __shared__ float scratch[kWarpsPerBlock];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) row(OneBlock{scratch}, r, r * D, int64_t(1));
}

template <class Row>
void for_each_row(int64_t outer, int64_t D, int64_t inner, const Row& row, cudaStream_t stream, const char* op) {
  const int64_t rows = outer * inner;
  if (rows == 0 || D == 0) return;
  if (inner > 1)
    rows_by_thread<<<grid_for(rows, kThreads), kThreads, 0, stream>>>(rows, D, inner, row);
  else if (D <= kWarpRowLimit)
    rows_by_warp<<<grid_for(rows * kWarp, kThreads), kThreads, 0, stream>>>(rows, D, row);
  else
    rows_by_block<<<grid_for(rows * kThreads, kThreads), kThreads, 0, stream>>>(rows, D, row);
  check_launch(op);
}

template <class Group>
__device__ float row_max(Group g, int64_t D, const float* x, int64_t s) {
  float max = -INFINITY;
  for (int64_t j = g.first(); j < D; j += g.step()) max = fmaxf(max, x[j * s]);
  return g.max(max);
}

// sum(exp(x - shift)) over the row. With shift the max, a row of all -inf has every term NaN,
// as torch gives; a NaN anywhere makes the sum NaN, so it fills the row.
template <class Group>
__device__ float row_exp_sum(Group g, int64_t D, const float* x, int64_t s, float shift) {
  float sum = 0.0f;
  for (int64_t j = g.first(); j < D; j += g.step()) sum += expf(x[j * s] - shift);
  return g.sum(sum);
}

struct SoftmaxRow {
  int64_t D;
  const float* x;
  float* y;

  template <class Group>
  __device__ void operator()(Group g, int64_t, int64_t at, int64_t s) const {
    const float max = row_max(g, D, x + at, s);
    const float scale = 1.0f / row_exp_sum(g, D, x + at, s, max);
    for (int64_t j = g.first(); j < D; j += g.step()) y[at + j * s] = expf(x[at + j * s] - max) * scale;
  }
};

struct LogSoftmaxRow {
  int64_t D;
  const float* x;
  float* y;

  template <class Group>
  __device__ void operator()(Group g, int64_t, int64_t at, int64_t s) const {
    const float max = row_max(g, D, x + at, s);
    const float log_sum = logf(row_exp_sum(g, D, x + at, s, max));
    // (x - max) - log_sum rather than x - (max + log_sum): x - max is exact for large logits.
    for (int64_t j = g.first(); j < D; j += g.step()) y[at + j * s] = (x[at + j * s] - max) - log_sum;
  }
};

// grad_x = y * (grad_y - sum(grad_y * y)). A member reads y[j] before writing grad_x[j], and the
// reduction between the passes waits for every member's reads, so grad_x may be y.
struct SoftmaxBackwardRow {
  int64_t D;
  const float* grad_y;
  const float* y;
  float* grad_x;

  template <class Group>
  __device__ void operator()(Group g, int64_t, int64_t at, int64_t s) const {
    float dot = 0.0f;
    for (int64_t j = g.first(); j < D; j += g.step()) dot += grad_y[at + j * s] * y[at + j * s];
    dot = g.sum(dot);
    for (int64_t j = g.first(); j < D; j += g.step()) {
      const int64_t k = at + j * s;
      grad_x[k] = y[k] * (grad_y[k] - dot);
    }
  }
};

// grad_x = grad_y - exp(y) * sum(grad_y), y being the log-softmax; may alias as above.
struct LogSoftmaxBackwardRow {
  int64_t D;
  const float* grad_y;
  const float* y;
  float* grad_x;

  template <class Group>
  __device__ void operator()(Group g, int64_t, int64_t at, int64_t s) const {
    float sum = 0.0f;
    for (int64_t j = g.first(); j < D; j += g.step()) sum += grad_y[at + j * s];
    sum = g.sum(sum);
    for (int64_t j = g.first(); j < D; j += g.step()) {
      const int64_t k = at + j * s;
      grad_x[k] = grad_y[k] - expf(y[k]) * sum;
    }
  }
};

// ---- losses ----
// Position r = n * inner + i has target[r] and its class-c logit at input[(n * C + c) * inner + i].

__device__ float class_weight(const float* weight, int64_t c) { return weight ? weight[c] : 1.0f; }

// A target that is neither ignore_index nor a class; never used as an index (see the header).
__device__ bool out_of_range(int64_t t, int64_t C) { return t < 0 || t >= C; }

// What a position adds to a mean's divisor: weight[t], 0 when ignored, NaN when out of range.
__device__ double counted_weight(int64_t t, const float* weight, int64_t C, int64_t ignore_index) {
  if (t == ignore_index) return 0.0;
  return out_of_range(t, C) ? NAN : class_weight(weight, t);
}

__device__ int64_t first_index() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ int64_t index_step() { return int64_t(gridDim.x) * blockDim.x; }

__global__ void find_bad_targets(int64_t count, const int64_t* target, int64_t C, int64_t ignore_index,
                                 unsigned long long* first) {
  for (int64_t r = first_index(); r < count; r += index_step()) {
    const int64_t t = target[r];
    if (t != ignore_index && out_of_range(t, C)) atomicMin(first, static_cast<unsigned long long>(r));
  }
}

// losses[r] = -weight[t] * input[t], 0 for an ignored target.
__global__ void nll_losses(int64_t count, int64_t C, int64_t inner, const float* input, const int64_t* target,
                           const float* weight, int64_t ignore_index, float* losses) {
  for (int64_t r = first_index(); r < count; r += index_step()) {
    const int64_t t = target[r];
    float loss = 0.0f;
    if (t != ignore_index)
      loss = out_of_range(t, C) ? NAN : -class_weight(weight, t) * input[((r / inner) * C + t) * inner + r % inner];
    losses[r] = loss;
  }
}

// losses[r] = (1 - s) * weight[t] * -logp[t] + (s / C) * sum_c weight[c] * -logp[c] with
// -logp[c] = log_sum - (x[c] - max) and s the label smoothing, combined in double as on the CPU;
// 0 for an ignored target.
struct CrossEntropyRow {
  int64_t C;
  const float* input;
  const int64_t* target;
  const float* weight;
  int64_t ignore_index;
  float smoothing;
  float* losses;

  template <class Group>
  __device__ void operator()(Group g, int64_t r, int64_t at, int64_t s) const {
    const int64_t t = target[r];
    const float* x = input + at;
    float loss = 0.0f;
    if (t != ignore_index && out_of_range(t, C)) {
      loss = NAN;
    } else if (t != ignore_index) {
      const float max = row_max(g, C, x, s);
      const float log_sum = logf(row_exp_sum(g, C, x, s, max));
      double total = (1.0 - smoothing) * class_weight(weight, t) * (log_sum - (x[t * s] - max));
      if (smoothing != 0.0f) {
        float smooth = 0.0f;
        for (int64_t c = g.first(); c < C; c += g.step())
          smooth += class_weight(weight, c) * (log_sum - (x[c * s] - max));
        total += double(smoothing) / C * g.sum(smooth);
      }
      loss = static_cast<float>(total);
    }
    if (g.first() == 0) losses[r] = loss;  // the group's first member writes for all
  }
};

// d loss / d x_c = p_c * ((1 - s) w_t + (s / C) sum(w)) - (1 - s) w_t [c == t] - (s / C) w_c,
// times the position's gradient scale, as the CPU's cross_entropy_backward_row; 0 when ignored.
struct CrossEntropyBackwardRow {
  int64_t C;
  const float* input;
  const int64_t* target;
  const float* weight;
  int64_t ignore_index;
  float smoothing;
  Reduction reduction;
  const float* grad_output;  // read per position for Reduction::none
  const float* scales;       // loss_backward_scales' output
  float* grad_input;

  template <class Group>
  __device__ void operator()(Group g, int64_t r, int64_t at, int64_t s) const {
    const int64_t t = target[r];
    const float* x = input + at;
    float* grad = grad_input + at;
    if (t == ignore_index || out_of_range(t, C)) {
      const float fill = t == ignore_index ? 0.0f : NAN;
      for (int64_t c = g.first(); c < C; c += g.step()) grad[c * s] = fill;
      return;
    }
    const float scale = reduction == Reduction::none ? grad_output[r] : scales[0];
    const float max = row_max(g, C, x, s);
    const float sum = row_exp_sum(g, C, x, s, max);
    const float target_part = (1.0f - smoothing) * class_weight(weight, t);
    const float smooth_per_class = smoothing / static_cast<float>(C);
    const float p_scale = scale / sum * (target_part + smooth_per_class * scales[1]);
    const float w_scale = scale * smooth_per_class;
    for (int64_t c = g.first(); c < C; c += g.step()) {
      float v = p_scale * expf(x[c * s] - max) - w_scale * class_weight(weight, c);
      if (c == t) v -= scale * target_part;
      grad[c * s] = v;
    }
  }
};

// grad_input[(n * C + c) * inner + i] = -weight[t] * scale when c is position r's target t, else 0.
__global__ void nll_loss_grads(int64_t N, int64_t C, int64_t inner, const float* grad_output, const int64_t* target,
                               const float* weight, int64_t ignore_index, Reduction reduction, const float* scales,
                               float* grad_input) {
  const int64_t total = N * C * inner;
  for (int64_t e = first_index(); e < total; e += index_step()) {
    const int64_t i = e % inner, c = (e / inner) % C, n = e / (inner * C);
    const int64_t r = n * inner + i;
    const int64_t t = target[r];
    float grad = 0.0f;
    if (t != ignore_index && out_of_range(t, C))
      grad = NAN;
    else if (t != ignore_index && c == t)
      grad = -class_weight(weight, t) * (reduction == Reduction::none ? grad_output[r] : scales[0]);
    grad_input[e] = grad;
  }
}

// One block: out[0] = the losses' sum, for mean divided by the counted targets' weight sum
// (0 / 0 = NaN when none counts, as torch), summed in double in a fixed order.
__global__ void reduce_losses(int64_t count, int64_t C, const float* losses, const int64_t* target,
                              const float* weight, int64_t ignore_index, Reduction reduction, float* out) {
  __shared__ double scratch[kWarpsPerBlock];
  const bool mean = reduction == Reduction::mean;
  double total = 0.0, target_weights = 0.0;
  for (int64_t r = threadIdx.x; r < count; r += kThreads) {
    total += losses[r];
    if (mean) target_weights += counted_weight(target[r], weight, C, ignore_index);
  }
  total = block_reduce(total, Plus(), scratch);
  target_weights = block_reduce(target_weights, Plus(), scratch);
  if (threadIdx.x == 0) out[0] = static_cast<float>(mean ? total / target_weights : total);
}

// One block: the backward's workspace. scales[0] = d(output) / d(a position's loss) for mean
// (grad_output over the counted targets' weight sum) and sum (grad_output); scales[1] = the
// class weights' sum (label smoothing's gradient has it). Sums in double, as on the CPU.
__global__ void loss_backward_scales(int64_t count, int64_t C, const float* grad_output, const int64_t* target,
                                     const float* weight, int64_t ignore_index, Reduction reduction, float* scales) {
  __shared__ double scratch[kWarpsPerBlock];
  double target_weights = 0.0, class_weights = 0.0;
  if (reduction == Reduction::mean)
    for (int64_t r = threadIdx.x; r < count; r += kThreads)
      target_weights += counted_weight(target[r], weight, C, ignore_index);
  for (int64_t c = threadIdx.x; c < C; c += kThreads) class_weights += class_weight(weight, c);
  target_weights = block_reduce(target_weights, Plus(), scratch);
  class_weights = block_reduce(class_weights, Plus(), scratch);
  if (threadIdx.x == 0) {
    float shared = 0.0f;  // none reads grad_output per position
    if (reduction == Reduction::mean) shared = static_cast<float>(grad_output[0] / target_weights);
    if (reduction == Reduction::sum) shared = grad_output[0];
    scales[0] = shared;
    scales[1] = static_cast<float>(class_weights);
  }
}

// Mean and sum: the per-position losses (in the workspace) reduced into out.
void reduce_to_output(int64_t count, int64_t C, const float* losses, const int64_t* target, const float* weight,
                      int64_t ignore_index, Reduction reduction, float* out, cudaStream_t stream, const char* op) {
  if (reduction == Reduction::none) return;
  reduce_losses<<<1, kThreads, 0, stream>>>(count, C, losses, target, weight, ignore_index, reduction, out);
  check_launch(op);
}

void launch_backward_scales(int64_t count, int64_t C, const float* grad_output, const int64_t* target,
                            const float* weight, int64_t ignore_index, Reduction reduction, float* scales,
                            cudaStream_t stream, const char* op) {
  loss_backward_scales<<<1, kThreads, 0, stream>>>(count, C, grad_output, target, weight, ignore_index, reduction,
                                                   scales);
  check_launch(op);
}

}  // namespace

void softmax(int64_t outer, int64_t D, int64_t inner, const float* x, float* y, cudaStream_t stream) {
  for_each_row(outer, D, inner, SoftmaxRow{D, x, y}, stream, "softmax");
}

void log_softmax(int64_t outer, int64_t D, int64_t inner, const float* x, float* y, cudaStream_t stream) {
  for_each_row(outer, D, inner, LogSoftmaxRow{D, x, y}, stream, "log_softmax");
}

void softmax_backward(int64_t outer, int64_t D, int64_t inner, const float* grad_y, const float* y, float* grad_x,
                      cudaStream_t stream) {
  for_each_row(outer, D, inner, SoftmaxBackwardRow{D, grad_y, y, grad_x}, stream, "softmax_backward");
}

void log_softmax_backward(int64_t outer, int64_t D, int64_t inner, const float* grad_y, const float* y,
                          float* grad_x, cudaStream_t stream) {
  for_each_row(outer, D, inner, LogSoftmaxBackwardRow{D, grad_y, y, grad_x}, stream, "log_softmax_backward");
}

BadTarget first_bad_target(int64_t count, const int64_t* target, int64_t C, int64_t ignore_index,
                           int64_t* workspace, cudaStream_t stream) {
  const char* op = "first_bad_target";
  BadTarget bad{-1, 0};
  if (count == 0) return bad;
  auto* first = reinterpret_cast<unsigned long long*>(workspace);
  // All ones is past every index: atomicMin leaves the lowest bad one, or this when none is.
  cudaMemsetAsync(first, 0xff, sizeof(*first), stream);
  find_bad_targets<<<grid_for(count, kThreads), kThreads, 0, stream>>>(count, target, C, ignore_index, first);
  check_launch(op);
  unsigned long long index = 0;
  cudaMemcpyAsync(&index, first, sizeof(index), cudaMemcpyDeviceToHost, stream);
  cudaStreamSynchronize(stream);
  check_launch(op);  // a failed copy or wait is the runtime's last error, as a failed launch is
  if (index == ~0ull) return bad;
  bad.index = static_cast<int64_t>(index);
  cudaMemcpyAsync(&bad.value, target + bad.index, sizeof(bad.value), cudaMemcpyDeviceToHost, stream);
  cudaStreamSynchronize(stream);
  check_launch(op);
  return bad;
}

void nll_loss(int64_t N, int64_t C, int64_t inner, const float* input, const int64_t* target, const float* weight,
              int64_t ignore_index, Reduction reduction, float* out, float* workspace, cudaStream_t stream) {
  const char* op = "nll_loss";
  const int64_t count = N * inner;
  float* losses = reduction == Reduction::none ? out : workspace;
  if (count > 0) {
    nll_losses<<<grid_for(count, kThreads), kThreads, 0, stream>>>(count, C, inner, input, target, weight,
                                                                    ignore_index, losses);
    check_launch(op);
  }
  reduce_to_output(count, C, losses, target, weight, ignore_index, reduction, out, stream, op);
}

void nll_loss_backward(int64_t N, int64_t C, int64_t inner, const float* grad_output, const int64_t* target,
                       const float* weight, int64_t ignore_index, Reduction reduction, float* grad_input,
                       float* workspace, cudaStream_t stream) {
  const char* op = "nll_loss_backward";
  launch_backward_scales(N * inner, C, grad_output, target, weight, ignore_index, reduction, workspace, stream, op);
  const int64_t total = N * C * inner;
  if (total == 0) return;
  nll_loss_grads<<<grid_for(total, kThreads), kThreads, 0, stream>>>(N, C, inner, grad_output, target, weight,
                                                                      ignore_index, reduction, workspace, grad_input);
  check_launch(op);
}

void cross_entropy(int64_t N, int64_t C, int64_t inner, const float* input, const int64_t* target,
                   const float* weight, int64_t ignore_index, float label_smoothing, Reduction reduction,
                   float* out, float* workspace, cudaStream_t stream) {
  const char* op = "cross_entropy";
  float* losses = reduction == Reduction::none ? out : workspace;
  for_each_row(N, C, inner, CrossEntropyRow{C, input, target, weight, ignore_index, label_smoothing, losses}, stream,
               op);
  reduce_to_output(N * inner, C, losses, target, weight, ignore_index, reduction, out, stream, op);
}

void cross_entropy_backward(int64_t N, int64_t C, int64_t inner, const float* grad_output, const float* input,
                            const int64_t* target, const float* weight, int64_t ignore_index,
                            float label_smoothing, Reduction reduction, float* grad_input, float* workspace,
                            cudaStream_t stream) {
  const char* op = "cross_entropy_backward";
  launch_backward_scales(N * inner, C, grad_output, target, weight, ignore_index, reduction, workspace, stream, op);
  const CrossEntropyBackwardRow row{C, input, target, weight, ignore_index, label_smoothing, reduction,
                                    grad_output, workspace, grad_input};
  for_each_row(N, C, inner, row, stream, op);
}

}  // namespace fastnn::cuda
