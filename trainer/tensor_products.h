#ifndef PIANOLA_TRAINER_TENSOR_PRODUCTS_H_
#define PIANOLA_TRAINER_TENSOR_PRODUCTS_H_

// trainer/gated_layer_kernel.h's products over float CPU [B, C, T] tensors,
// for the autograd nodes built on them (trainer/dilated_conv.h,
// trainer/layer_outputs.h): rows of an item as kernel sources, the product
// A · sources per item with columns split over the intra-op threads, and the
// weight gradients' dot products over time with rows split over them. No
// result depends on the thread count.

#include <algorithm>
#include <cstdint>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "trainer/gated_layer_kernel.h"

namespace pianola::tensor_products {

inline constexpr int64_t kTile = kGatedLayerTileColumns;

// Row c of item b of a float [B, C, T] tensor.
inline float* Row(const torch::Tensor& t, int64_t b, int64_t c) {
  return t.data_ptr<float>() + b * t.stride(0) + c * t.stride(1);
}

// t itself when its time steps are adjacent (a narrowed view is read in
// place), a contiguous copy otherwise.
inline torch::Tensor TimeContiguous(const torch::Tensor& t) {
  return t.stride(2) == 1 ? t : t.contiguous();
}

// Item b of t [B, C, T] as a bounded source read at `offset`: columns
// outside [0, T) read as zeros (the convolution's padding, and the tail of
// the last tile).
inline RowSource Source(const torch::Tensor& t, int64_t b, int64_t offset) {
  return {Row(t, b, 0), t.size(1), t.stride(1), offset, t.size(2)};
}

// dest[b] = bias[b] + A · sources(b) over columns [0, n) of every item,
// columns split over the intra-op threads at tile boundaries.
template <typename SourcesFn>
void Product(const PanelMatrix& a, int64_t batch, const SourcesFn& sources_of,
             const torch::Tensor& bias, const torch::Tensor& dest, int64_t n) {
  const int64_t tiles = (n + kTile - 1) / kTile;
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<RowSource> sources = sources_of(b);
    std::vector<float*> rows(a.rows());
    for (int64_t r = 0; r < a.rows(); ++r) rows[r] = Row(dest, b, r);
    const float* bias_b = bias.defined() ? bias.data_ptr<float>() + b * bias.stride(0) : nullptr;
    at::parallel_for(0, tiles, 8, [&](int64_t begin, int64_t end) {
      ShiftedProduct(a, sources, bias_b, rows.data(), begin * kTile, std::min(n, end * kTile));
    });
  }
}

// out[i][j] += sum over items and t < n of a[i][t] * b[j][t], rows of `out`
// split over the threads in groups of 4 (RowDots' blocks).
inline void Dots(const RowBlock& a, const RowBlock& b, int64_t items, int64_t n, float* out,
                 int64_t out_stride) {
  at::parallel_for(0, (a.rows + 3) / 4, 1, [&](int64_t begin, int64_t end) {
    const int64_t first = begin * 4;
    const RowBlock part{a.base + first * a.stride, std::min(a.rows, end * 4) - first, a.stride,
                        a.item_stride};
    RowDots(part, b, items, n, out + first * out_stride, out_stride);
  });
}

// Rows [0, rows) of t [B, C, T] from column `column` on, as a RowBlock.
inline RowBlock Rows(const torch::Tensor& t, int64_t rows, int64_t column) {
  return {Row(t, 0, 0) + column, rows, t.stride(1), t.stride(0)};
}

}  // namespace pianola::tensor_products

#endif  // PIANOLA_TRAINER_TENSOR_PRODUCTS_H_
