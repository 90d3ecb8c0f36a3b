// Calls a fastnn kernel from plain C++, with no Python: a 3x3 convolution of a 4x4 image whose
// pixel (i, j) is 4i + j, with an all-ones kernel and bias 0.5. Each output is the sum of a 3x3
// window plus the bias: 45 at the top left, +9 per step right, +36 per step down.
//   inc=$(python -c 'import fastnn; print(fastnn.get_include())')
//   lib=$(python -c 'import fastnn; print(fastnn.get_library())')
//   c++ -std=c++17 conv2d_example.cpp -I"$inc" "$lib" -Wl,-rpath,"$(dirname "$lib")"
// or with CMake: see CMakeLists.txt beside this file.
#include <fastnn/fastnn.h>

#include <cstdio>
#include <exception>

int main() {
  try {
    float image[16], weight[9], bias = 0.5f, output[4];
    for (int p = 0; p < 16; ++p) image[p] = static_cast<float>(p);  // row-major: (i, j) is 4i + j
    for (float& w : weight) w = 1.0f;

    fastnn::cpu::Conv2dShape s{};
    s.batch = 1, s.in_channels = 1, s.in_h = 4, s.in_w = 4;
    s.out_channels = 1, s.kernel_h = 3, s.kernel_w = 3;
    s.stride_h = s.stride_w = 1, s.pad_h = s.pad_w = 0, s.dilation_h = s.dilation_w = 1;
    s.groups = 1, s.out_h = 2, s.out_w = 2;
    fastnn::cpu::conv2d(s, image, weight, &bias, output);

    const float expected[4] = {45.5f, 54.5f, 81.5f, 90.5f};
    std::printf("conv2d: %g %g %g %g\n", output[0], output[1], output[2], output[3]);
    for (int p = 0; p < 4; ++p) {
      if (output[p] != expected[p]) {
        std::fprintf(stderr, "output[%d] = %g, expected %g\n", p, output[p], expected[p]);
        return 1;
      }
    }
    return 0;
  } catch (const std::exception& e) {  // e.g. FASTNN_ISA names an ISA this CPU lacks
    std::fprintf(stderr, "fastnn: %s\n", e.what());
    return 1;
  }
}
