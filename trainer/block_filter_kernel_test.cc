#include "trainer/block_filter_kernel.h"

#include <cstdint>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace pianola {
namespace {

// Every block of F samples dotted with every filter, against the definition
// in double; the output rows are strided, and the values around them stay.
TEST(BlockFilterKernelTest, DotsEachBlockWithEachFilter) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const auto& [f, m, blocks] : {std::tuple<int64_t, int64_t, int64_t>{16, 2, 37},
                                     {8, 1, 5}, {32, 3, 1}}) {
    std::vector<float> x(blocks * f), filters(m * f);
    for (float& v : x) v = uniform(rng);
    for (float& v : filters) v = uniform(rng);
    const int64_t stride = blocks + 3;
    std::vector<float> out(m * stride, -9.0f);
    BlockFilterKernel(x.data(), blocks, f, filters.data(), m, out.data(), stride);
    for (int64_t row = 0; row < m; ++row) {
      for (int64_t j = 0; j < stride; ++j) {
        if (j >= blocks) {
          EXPECT_EQ(out[row * stride + j], -9.0f);
          continue;
        }
        double want = 0;
        for (int64_t i = 0; i < f; ++i) want += double{filters[row * f + i]} * x[j * f + i];
        EXPECT_NEAR(out[row * stride + j], want, 1e-5) << f << " " << m << " " << row << " " << j;
      }
    }
  }
}

// The filters' gradient from one channel, against the definition in
// double, added to what the output held; odd and even block counts.
TEST(BlockFilterKernelTest, GradientSumsBlocksScaledByTheirOutputGradient) {
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const auto& [f, m, blocks] : {std::tuple<int64_t, int64_t, int64_t>{16, 2, 37},
                                     {8, 1, 6}, {64, 3, 1}}) {
    std::vector<float> x(blocks * f);
    for (float& v : x) v = uniform(rng);
    const int64_t stride = blocks + 3;
    std::vector<float> grad(m * stride);
    for (float& v : grad) v = uniform(rng);
    std::vector<float> out(m * f, 0.25f);
    BlockFilterGradKernel(x.data(), blocks, f, grad.data(), m, stride, out.data());
    for (int64_t row = 0; row < m; ++row) {
      for (int64_t i = 0; i < f; ++i) {
        double want = 0.25;
        for (int64_t j = 0; j < blocks; ++j) want += double{grad[row * stride + j]} * x[j * f + i];
        EXPECT_NEAR(out[row * f + i], want, 1e-4) << f << " " << m << " " << row << " " << i;
      }
    }
  }
}

}  // namespace
}  // namespace pianola
