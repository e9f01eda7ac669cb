#include "trainer/gated_layer_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "trainer/kernel_variants_for_test.h"

namespace pianola {
namespace {

// A WaveNet-like layer with every size off the kernel's blocking: gate rows
// not a multiple of the panel height, three sources (a 1x1 "MIDI" source and
// two taps of one buffer at offsets -3 and +5, reading zeros past its ends),
// and output rows split between an out-of-place destination and an in-place
// accumulation.
class GatedLayerKernelTest : public ::testing::Test {
 protected:
  static constexpr int64_t kG = 7, kH = 5, kR = 9, kS = 4, kColumns = 160;
  static constexpr int64_t kLeft = -3, kRight = 5;

  void SetUp() override {
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 0.5f);
    auto fill = [&](std::vector<float>& v, int64_t n) {
      v.resize(n);
      for (float& x : v) x = normal(rng);
    };
    fill(hidden_, kH * kColumns);
    fill(stream_, kR * kColumns);
    fill(pre_w_, 2 * kG * (kH + 2 * kR));
    fill(pre_bias_, 2 * kG);
    fill(out_w_, (kR + kS) * kG);
    fill(out_bias_, kR + kS);
    fill(skip_, kS * kColumns);
    next_.assign(kR * kColumns, -7.0f);  // never read; columns outside the range stay
    pre_ = PanelMatrix(pre_w_.data(), 2 * kG, kH + 2 * kR, kH + 2 * kR);
    out_ = PanelMatrix(out_w_.data(), kR + kS, kG, kG);
  }

  GatedLayer Layer() {
    GatedLayer layer{.pre = &pre_, .pre_bias = pre_bias_.data(), .out = &out_,
                     .out_bias = out_bias_.data()};
    layer.sources = {{hidden_.data(), kH, kColumns, 0, kColumns},
                     {stream_.data(), kR, kColumns, kLeft, kColumns},
                     {stream_.data(), kR, kColumns, kRight, kColumns}};
    for (int64_t c = 0; c < kR; ++c) {
      layer.init.push_back(stream_.data() + c * kColumns);
      layer.dest.push_back(next_.data() + c * kColumns);
    }
    for (int64_t c = 0; c < kS; ++c) {
      layer.init.push_back(skip_.data() + c * kColumns);
      layer.dest.push_back(skip_.data() + c * kColumns);
    }
    return layer;
  }

  // Row c of the stream at column t, zero outside it (the padding).
  double Stream(int64_t c, int64_t t) const {
    return t >= 0 && t < kColumns ? stream_[c * kColumns + t] : 0.0;
  }

  // The layer in double, straight from the definitions, for column t:
  // rows [next; skip] as they should be after the kernel.
  std::vector<double> Reference(int64_t t, const std::vector<float>& skip_before) const {
    std::vector<double> a(2 * kG);
    for (int64_t row = 0; row < 2 * kG; ++row) {
      const float* w = pre_w_.data() + row * (kH + 2 * kR);
      double sum = pre_bias_[row];
      for (int64_t k = 0; k < kH; ++k) sum += double{w[k]} * hidden_[k * kColumns + t];
      for (int64_t k = 0; k < kR; ++k) {
        sum += double{w[kH + k]} * Stream(k, t + kLeft);
        sum += double{w[kH + kR + k]} * Stream(k, t + kRight);
      }
      a[row] = sum;
    }
    std::vector<double> gated(kG);
    for (int64_t c = 0; c < kG; ++c) gated[c] = std::tanh(a[c]) / (1 + std::exp(-a[kG + c]));
    std::vector<double> out(kR + kS);
    for (int64_t row = 0; row < kR + kS; ++row) {
      double sum = out_bias_[row];
      for (int64_t c = 0; c < kG; ++c) sum += double{out_w_[row * kG + c]} * gated[c];
      sum += row < kR ? Stream(row, t)
                      : double{skip_before[(row - kR) * kColumns + t]};
      out[row] = sum;
    }
    return out;
  }

  std::vector<float> hidden_, stream_, pre_w_, pre_bias_, out_w_, out_bias_, skip_, next_;
  PanelMatrix pre_, out_;
};

TEST_F(GatedLayerKernelTest, EqualsTheLayerInDoubleInsideTheColumnRange) {
  ForEachKernelVariant([&] {
    SetUp();
    const std::vector<float> skip_before = skip_;
    // 112 columns: one full block of 64 and a partial one of 48.
    const int64_t begin = 16, end = 128;
    std::vector<float> scratch(GatedLayerScratchFloats(Layer()));
    GatedLayerKernel(Layer(), begin, end, scratch.data());
    for (int64_t t = 0; t < kColumns; ++t) {
      if (t < begin || t >= end) {
        for (int64_t c = 0; c < kR; ++c) EXPECT_EQ(next_[c * kColumns + t], -7.0f) << t;
        for (int64_t c = 0; c < kS; ++c) {
          EXPECT_EQ(skip_[c * kColumns + t], skip_before[c * kColumns + t]);
        }
        continue;
      }
      const std::vector<double> want = Reference(t, skip_before);
      for (int64_t row = 0; row < kR + kS; ++row) {
        const float got = row < kR ? next_[row * kColumns + t] : skip_[(row - kR) * kColumns + t];
        EXPECT_NEAR(got, want[row], 1e-5 * (1 + std::fabs(want[row])))
            << "row " << row << " t " << t;
      }
    }
  });
}

// Threads split a layer's columns at tile boundaries; any split gives the
// same bits as one call (each tile's sums run in the same order).
TEST_F(GatedLayerKernelTest, ColumnSplitsGiveIdenticalResults) {
  ForEachKernelVariant([&] {
    SetUp();
    const std::vector<float> skip_before = skip_;
    std::vector<float> scratch(GatedLayerScratchFloats(Layer()));
    GatedLayerKernel(Layer(), 0, kColumns, scratch.data());
    const std::vector<float> next_once = next_, skip_once = skip_;
    skip_ = skip_before;
    next_.assign(next_.size(), 0.0f);
    for (int64_t t = 0; t < kColumns; t += 48) {
      GatedLayerKernel(Layer(), t, std::min<int64_t>(kColumns, t + 48), scratch.data());
    }
    EXPECT_EQ(next_, next_once);
    EXPECT_EQ(skip_, skip_once);
  });
}

// The 512-bit variant is the same sums in the same order, two tiles at a
// time: on a machine with both (the AVX2 one then has FMA too), the same bits.
TEST_F(GatedLayerKernelTest, WideVariantGivesTheSameBits) {
  if (!WideKernelsSupported()) GTEST_SKIP() << "no AVX-512 here";
  const std::vector<float> skip_before = skip_;
  std::vector<float> scratch(GatedLayerScratchFloats(Layer()));
  std::vector<float> next[2], skip[2];
  for (bool wide : {false, true}) {
    const bool before = SetWideKernels(wide);
    skip_ = skip_before;
    next_.assign(next_.size(), 0.0f);
    GatedLayerKernel(Layer(), 0, kColumns, scratch.data());
    next[wide] = next_;
    skip[wide] = skip_;
    SetWideKernels(before);
  }
  EXPECT_EQ(next[0], next[1]);
  EXPECT_EQ(skip[0], skip[1]);
}

TEST(PanelMatrixTest, PanelsHoldColumnsOfRowsZeroPadded) {
  // 7 rows x 3 columns, row stride 4: two panels, the second with one row.
  std::vector<float> a(7 * 4);
  for (int64_t r = 0; r < 7; ++r) {
    for (int64_t k = 0; k < 4; ++k) a[r * 4 + k] = static_cast<float>(10 * r + k);
  }
  const PanelMatrix m(a.data(), 7, 3, 4);
  ASSERT_EQ(m.panels(), 2);
  const int64_t h = PanelMatrix::kPanelRows;
  for (int64_t r = 0; r < 2 * h; ++r) {
    for (int64_t k = 0; k < 3; ++k) {
      const float want = r < 7 ? static_cast<float>(10 * r + k) : 0.0f;
      EXPECT_EQ(m.panel(r / h)[k * h + r % h], want) << r << " " << k;
    }
  }
}

// ShiftedProduct over bounded sources, each in a buffer of exactly its rows
// (so a read outside them is an error under ASan): a 1x1 source, taps of
// one unpadded buffer shifted left, right and past its end, and a tap of a
// narrower view of it (rows longer than the source's columns); column ranges
// that start at tile boundaries and end off them. Columns outside a bounded source read as
// zeros; columns outside [begin, end) of dest stay untouched.
TEST(ShiftedProductTest, BoundedSourcesReadZerosOutsideTheirColumns) {
  ForEachKernelVariant([&] {
    constexpr int64_t kRows = 13, kN = 150, kX = 7, kLen = 141, kH = 5;
    constexpr int64_t kViewStart = 2, kViewLen = 100, kViewShift = -3;
    const int64_t shifts[] = {-37, 5, 146};
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    auto random = [&](int64_t n) {
      std::vector<float> v(n);
      for (float& x : v) x = uniform(rng);
      return v;
    };
    const std::vector<float> hidden = random(kH * kN), x = random(kX * kLen);
    const int64_t cols = kH + 4 * kX;
    const std::vector<float> w = random(kRows * cols), bias = random(kRows);
    const PanelMatrix a(w.data(), kRows, cols, cols);
    std::vector<RowSource> sources = {{hidden.data(), kH, kN, 0, kN}};
    for (int64_t shift : shifts) sources.push_back({x.data(), kX, kLen, shift, kLen});
    sources.push_back({x.data() + kViewStart, kX, kLen, kViewShift, kViewLen});

    // Column t of the stacked sources, from the definitions.
    auto value = [&](int64_t k, int64_t t) -> double {
      if (k < kH) return hidden[k * kN + t];
      k -= kH;
      const int64_t tap = k / kX, c = k % kX;
      if (tap < 3) {
        const int64_t col = t + shifts[tap];
        return col >= 0 && col < kLen ? x[c * kLen + col] : 0.0;
      }
      const int64_t col = t + kViewShift;
      return col >= 0 && col < kViewLen ? x[c * kLen + kViewStart + col] : 0.0;
    };
    for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, kN}, {16, 150}, {32, 97}, {0, 9},
                              {144, 150}, {48, 64}}) {
      std::vector<float> out(kRows * kN, -7.0f);
      std::vector<float*> dest(kRows);
      for (int64_t r = 0; r < kRows; ++r) dest[r] = out.data() + r * kN;
      ShiftedProduct(a, sources, bias.data(), dest.data(), begin, end);
      for (int64_t r = 0; r < kRows; ++r) {
        for (int64_t t = 0; t < kN; ++t) {
          if (t < begin || t >= end) {
            ASSERT_EQ(out[r * kN + t], -7.0f) << r << " " << t;
            continue;
          }
          double want = bias[r];
          for (int64_t k = 0; k < cols; ++k) want += double{w[r * cols + k]} * value(k, t);
          ASSERT_NEAR(out[r * kN + t], want, 1e-4) << begin << "-" << end << ": " << r << " " << t;
        }
      }
    }
  });
}

// RowDots over several items and spans, with row counts off its 4 x 3
// blocks and a length off the vector width and past one span: the sums of
// products in double, added to what `out` held.
TEST(RowDotsTest, AddsDotProductsOverItemsAndTime) {
  ForEachKernelVariant([&] {
    constexpr int64_t kItems = 3, kA = 7, kB = 5, kN = 1100, kStride = 1111, kItem = 9000;
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> a(kItems * kItem), b(kItems * kItem);
    for (float& v : a) v = uniform(rng);
    for (float& v : b) v = uniform(rng);
    constexpr int64_t kOutStride = kB + 2;
    std::vector<float> out(kA * kOutStride, 0.5f);
    RowDots({a.data() + 3, kA, kStride, kItem}, {b.data() + 1, kB, kStride, kItem}, kItems, kN,
            out.data(), kOutStride);
    for (int64_t i = 0; i < kA; ++i) {
      for (int64_t j = 0; j < kB; ++j) {
        double want = 0.5;
        for (int64_t m = 0; m < kItems; ++m) {
          for (int64_t t = 0; t < kN; ++t) {
            want += double{a[3 + m * kItem + i * kStride + t]} * b[1 + m * kItem + j * kStride + t];
          }
        }
        EXPECT_NEAR(out[i * kOutStride + j], want, 1e-3) << i << " " << j;
      }
      EXPECT_EQ(out[i * kOutStride + kB], 0.5f);  // past b's rows: untouched
    }
  });
}

}  // namespace
}  // namespace pianola
