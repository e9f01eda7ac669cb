#include "trainer/gated_layer_kernel.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "trainer/gate_kernel.h"
#include "trainer/kernel_clones.h"
#include "trainer/vec8.h"

namespace pianola {
namespace {

constexpr int kR = PanelMatrix::kPanelRows;
constexpr int64_t kTile = kGatedLayerTileColumns;
// Columns per block: the block's pre-activation [2G, kBlock] and gate output
// [G, kBlock] stay in L1/L2 between the three steps.
constexpr int64_t kBlock = 64;

using Vec = Vec8;
static_assert(kTile == 2 * sizeof(Vec) / sizeof(float));

// One tile: rows [0, rows) of a panel times 16 columns of a [depth, 16]
// block (`depth` rows, `stride` floats apart: a staged tile or the gate's
// rows, read from column src_col); written to dest[r] + dst_col (plus
// init[r] + dst_col where init and init[r] are not null) with bias[r]. 2 x kR
// accumulators stay in registers through the whole product.
PIANOLA_INLINE void Tile(const float* __restrict panel, const float* b, int64_t depth,
                         int64_t stride, int64_t src_col, int rows, const float* bias,
                         const float* const* init, float* const* dest, int64_t dst_col) {
  Vec lo[kR], hi[kR];
#pragma GCC unroll 6
  for (int r = 0; r < kR; ++r) lo[r] = hi[r] = Vec{};
  b += src_col;
  for (int64_t k = depth; k > 0; --k) {
    const Vec b0 = LoadVec8(b), b1 = LoadVec8(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < kR; ++r) {
      lo[r] += panel[r] * b0;
      hi[r] += panel[r] * b1;
    }
    panel += kR;
    b += stride;
  }
#pragma GCC unroll 6
  for (int r = 0; r < kR; ++r) {
    if (r >= rows) break;
    Vec l = lo[r] + bias[r], h = hi[r] + bias[r];
    if (init != nullptr && init[r] != nullptr) {
      l += LoadVec8(init[r] + dst_col);
      h += LoadVec8(init[r] + dst_col + 8);
    }
    StoreVec8(dest[r] + dst_col, l);
    StoreVec8(dest[r] + dst_col + 8, h);
  }
}

// Copies columns [t, t + kTile) of the sources' rows into `staged` (one
// [rows, kTile] block, rows in the sources' order): zeros where a bounded
// source has no column.
PIANOLA_INLINE void StageTile(const RowSource* sources, size_t n_sources, int64_t t,
                              float* staged) {
  for (size_t s = 0; s < n_sources; ++s) {
    const RowSource& src = sources[s];
    const int64_t col = src.offset + t;  // of the tile's first column
    const float* in = src.base + col;
    if (col >= 0 && col + kTile <= src.length) {
      for (int64_t k = 0; k < src.rows; ++k, in += src.stride, staged += kTile) {
        // The row's next tiles: one stream per row is more than the
        // hardware prefetcher follows.
        __builtin_prefetch(in + 2 * kTile);
        StoreVec8(staged, LoadVec8(in));
        StoreVec8(staged + 8, LoadVec8(in + 8));
      }
      continue;
    }
    const int64_t lo = std::clamp<int64_t>(-col, 0, kTile);
    const int64_t hi = std::clamp<int64_t>(src.length - col, lo, kTile);
    for (int64_t k = 0; k < src.rows; ++k, staged += kTile) {
      const float* row = src.base + k * src.stride + col;
      for (int64_t u = 0; u < kTile; ++u) staged[u] = u >= lo && u < hi ? row[u] : 0.0f;
    }
  }
}

PIANOLA_KERNEL_CLONES
void Block(const GatedLayer& layer, int64_t first, int64_t columns, float* scratch) {
  const int64_t g2 = layer.pre->rows();
  const int64_t g = g2 / 2;
  float* pre = scratch;                  // [2G, kBlock]
  float* gated = scratch + g2 * kBlock;  // [G, kBlock]
  float* staged = gated + g * kBlock;    // [kBlock / kTile][source rows][kTile]
  float* rows_out[kR];

  // The block's columns of the sources, tile by tile, contiguous.
  const int64_t source_rows = layer.pre->cols();
  for (int64_t t = 0; t < columns; t += kTile) {
    StageTile(layer.sources.data(), layer.sources.size(), first + t, staged + t * source_rows);
  }
  // a = pre_bias + Pre · sources, into the block's scratch.
  for (int64_t p = 0; p < layer.pre->panels(); ++p) {
    const int rows = static_cast<int>(std::min<int64_t>(kR, g2 - p * kR));
    for (int r = 0; r < rows; ++r) rows_out[r] = pre + (p * kR + r) * kBlock;
    for (int64_t t = 0; t < columns; t += kTile) {
      Tile(layer.pre->panel(p), staged + t * source_rows, source_rows, kTile, 0, rows,
           layer.pre_bias + p * kR, nullptr, rows_out, t);
    }
  }
  // The gate: f rows then g rows, as one run when the block is full.
  if (columns == kBlock) {
    GateKernel(pre, pre + g * kBlock, g * kBlock, gated);
  } else {
    for (int64_t c = 0; c < g; ++c) {
      GateKernel(pre + c * kBlock, pre + (g + c) * kBlock, columns, gated + c * kBlock);
    }
  }
  // dest = init + out_bias + Out · gated.
  const int64_t m = layer.out->rows();
  for (int64_t p = 0; p < layer.out->panels(); ++p) {
    const int rows = static_cast<int>(std::min<int64_t>(kR, m - p * kR));
    for (int64_t t = 0; t < columns; t += kTile) {
      Tile(layer.out->panel(p), gated, g, kBlock, t, rows, layer.out_bias + p * kR,
           layer.init.data() + p * kR, layer.dest.data() + p * kR, first + t);
    }
  }
}

PIANOLA_KERNEL_CLONES
void ProductTiles(const PanelMatrix& a, const RowSource* sources, size_t n_sources,
                  const float* bias, float* const* dest, int64_t begin, int64_t end) {
  static const float kZeros[kR] = {};
  // Tile by tile: the sources' 16 columns copied into one contiguous block
  // (in L1 while every panel of A passes over it: no strided reads or TLB
  // misses in the micro-kernel), zeros supplied for bounded sources.
  int64_t rows = 0;
  for (size_t s = 0; s < n_sources; ++s) rows += sources[s].rows;
  std::vector<float> staged(rows * kTile);
  for (int64_t t = begin; t < end; t += kTile) {
    StageTile(sources, n_sources, t, staged.data());
    const int64_t width = std::min(kTile, end - t);
    for (int64_t p = 0; p < a.panels(); ++p) {
      const int panel_rows = static_cast<int>(std::min<int64_t>(kR, a.rows() - p * kR));
      const float* b = bias != nullptr ? bias + p * kR : kZeros;
      if (width == kTile) {
        Tile(a.panel(p), staged.data(), rows, kTile, 0, panel_rows, b, nullptr, dest + p * kR, t);
        continue;
      }
      float tile[kR][kTile];  // the last, partial tile, through a local one
      float* tile_rows[kR];
      for (int r = 0; r < kR; ++r) tile_rows[r] = tile[r];
      Tile(a.panel(p), staged.data(), rows, kTile, 0, panel_rows, b, nullptr, tile_rows, 0);
      for (int r = 0; r < panel_rows; ++r) {
        std::copy(tile[r], tile[r] + width, dest[p * kR + r] + t);
      }
    }
  }
}

constexpr int kDotRows = 4, kDotCols = 3;
constexpr int64_t kLanes = sizeof(Vec) / sizeof(float);

// Up to kDotRows x kDotCols dot products over n values at once, added to
// their vector partial sums in `acc_out` (kLanes floats per product,
// row-major, acc_stride products per row, unaligned): each vector of a's
// rows is loaded once for kDotCols products and each of b's once for
// kDotRows. The values past the last whole vector go into lane 0.
template <int kRows, int kCols>
PIANOLA_INLINE void DotBlock(const float* a, int64_t a_stride, const float* b, int64_t b_stride,
                             int64_t n, float* acc_out, int64_t acc_stride) {
  Vec acc[kRows][kCols];
#pragma GCC unroll 4
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < kCols; ++j) acc[i][j] = LoadVec8(acc_out + (i * acc_stride + j) * kLanes);
  }
  int64_t t = 0;
  for (; t + kLanes <= n; t += kLanes) {
    Vec bv[kCols];
#pragma GCC unroll 4
    for (int j = 0; j < kCols; ++j) bv[j] = LoadVec8(b + j * b_stride + t);
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const Vec av = LoadVec8(a + i * a_stride + t);
#pragma GCC unroll 4
      for (int j = 0; j < kCols; ++j) acc[i][j] += av * bv[j];
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < kCols; ++j) {
      for (int64_t u = t; u < n; ++u) acc[i][j][0] += a[i * a_stride + u] * b[j * b_stride + u];
      StoreVec8(acc_out + (i * acc_stride + j) * kLanes, acc[i][j]);
    }
  }
}

// Time steps per pass of RowDots: a pass's rows of b (and a block of a's)
// stay in L2 while every block of a's rows reads them.
constexpr int64_t kDotSpan = 512;

// One span of one item into the partial sums acc [a_rows][b_rows][kLanes].
PIANOLA_KERNEL_CLONES
void RowDotsSpan(const float* a, int64_t a_rows, int64_t a_stride, const float* b,
                 int64_t b_rows, int64_t b_stride, int64_t n, float* acc) {
  int64_t i = 0;
  for (; i + kDotRows <= a_rows; i += kDotRows) {
    int64_t j = 0;
    for (; j + kDotCols <= b_rows; j += kDotCols) {
      DotBlock<kDotRows, kDotCols>(a + i * a_stride, a_stride, b + j * b_stride, b_stride, n,
                                   acc + (i * b_rows + j) * kLanes, b_rows);
    }
    for (; j < b_rows; ++j) {
      DotBlock<kDotRows, 1>(a + i * a_stride, a_stride, b + j * b_stride, b_stride, n,
                            acc + (i * b_rows + j) * kLanes, b_rows);
    }
  }
  for (; i < a_rows; ++i) {
    int64_t j = 0;
    for (; j + kDotCols <= b_rows; j += kDotCols) {
      DotBlock<1, kDotCols>(a + i * a_stride, a_stride, b + j * b_stride, b_stride, n,
                            acc + (i * b_rows + j) * kLanes, b_rows);
    }
    for (; j < b_rows; ++j) {
      DotBlock<1, 1>(a + i * a_stride, a_stride, b + j * b_stride, b_stride, n,
                     acc + (i * b_rows + j) * kLanes, b_rows);
    }
  }
}

}  // namespace

void RowDots(const RowBlock& a, const RowBlock& b, int64_t items, int64_t n, float* out,
             int64_t out_stride) {
  // Vector partial sums over every item and span: one horizontal sum per
  // product at the end instead of one per span and item.
  std::vector<float> acc(a.rows * b.rows * kLanes, 0.0f);
  for (int64_t m = 0; m < items; ++m) {
    for (int64_t t = 0; t < n; t += kDotSpan) {
      RowDotsSpan(a.base + m * a.item_stride + t, a.rows, a.stride, b.base + m * b.item_stride + t,
                  b.rows, b.stride, std::min(kDotSpan, n - t), acc.data());
    }
  }
  for (int64_t i = 0; i < a.rows; ++i) {
    for (int64_t j = 0; j < b.rows; ++j) {
      out[i * out_stride + j] += SumVec8(LoadVec8(acc.data() + (i * b.rows + j) * kLanes));
    }
  }
}

void ShiftedProduct(const PanelMatrix& a, const std::vector<RowSource>& sources,
                    const float* bias, float* const* dest, int64_t begin, int64_t end) {
  ProductTiles(a, sources.data(), sources.size(), bias, dest, begin, end);
}

PanelMatrix::PanelMatrix(const float* a, int64_t rows, int64_t cols, int64_t row_stride)
    : rows_(rows), cols_(cols), data_(panels() * kPanelRows * cols, 0.0f) {
  for (int64_t r = 0; r < rows; ++r) {
    float* panel = data_.data() + r / kPanelRows * kPanelRows * cols;
    for (int64_t k = 0; k < cols; ++k) {
      panel[k * kPanelRows + r % kPanelRows] = a[r * row_stride + k];
    }
  }
}

int64_t GatedLayerScratchFloats(const GatedLayer& layer) {
  return (3 * layer.pre->rows() / 2 + layer.pre->cols()) * kBlock;
}

void GatedLayerKernel(const GatedLayer& layer, int64_t begin, int64_t end, float* scratch) {
  for (int64_t first = begin; first < end; first += kBlock) {
    Block(layer, first, std::min(kBlock, end - first), scratch);
  }
}

}  // namespace pianola
