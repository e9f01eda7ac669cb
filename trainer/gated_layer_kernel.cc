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

// The products run in two variants (kernel_clones.h): V = Vec8 (the AVX2
// clone, and the baseline one) one micro-tile at a time, V = Vec16 (512-bit)
// two at once. Either way 2 x kR accumulators stay in registers. Each output
// column's sum runs over the same k in the same order in every variant and
// blocking, so column splits give the same bits, and so do the two variants
// on a machine that has both (its AVX2 clone uses FMA too).

// kBlocks micro-tiles: rows [0, rows) of a panel times kBlocks x 16
// columns, block j's 16 from its own [depth, 16] block at b + j * block_step
// (`depth` rows, `stride` floats apart: a staged tile or the gate's rows);
// written to dest[r] + dst_col + 16 j (plus init[r] there where init and
// init[r] are not null), with bias[r].
template <typename V, int kBlocks>
PIANOLA_INLINE void Tile(const float* __restrict panel, const float* b, int64_t block_step,
                         int64_t depth, int64_t stride, int rows, const float* bias,
                         const float* const* init, float* const* dest, int64_t dst_col) {
  constexpr int kLanes = kVecLanes<V>;
  constexpr int kPerBlock = kTile / kLanes;
  constexpr int kVecs = kBlocks * kPerBlock;
  static_assert(kVecs * kLanes == kBlocks * kTile);
  V acc[kR][kVecs];
#pragma GCC unroll 6
  for (int r = 0; r < kR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) acc[r][v] = V{};
  }
  for (int64_t k = depth; k > 0; --k) {
    V bv[kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) {
      bv[v] = LoadVec<V>(b + v / kPerBlock * block_step + v % kPerBlock * kLanes);
    }
#pragma GCC unroll 6
    for (int r = 0; r < kR; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) acc[r][v] += panel[r] * bv[v];
    }
    panel += kR;
    b += stride;
  }
#pragma GCC unroll 6
  for (int r = 0; r < kR; ++r) {
    if (r >= rows) break;
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) {
      const int64_t col = dst_col + v / kPerBlock * kTile + v % kPerBlock * kLanes;
      V x = acc[r][v] + bias[r];
      if (init != nullptr && init[r] != nullptr) x += LoadVec<V>(init[r] + col);
      StoreVec(dest[r] + col, x);
    }
  }
}

// p rounded up to a 64-byte boundary, a cache line: the micro-kernel's
// loads of staged tiles from there never straddle two lines (every 512-bit
// load of a misaligned buffer would). Buffers keep kLineFloats of room.
constexpr int64_t kLineFloats = 16;
PIANOLA_INLINE float* AlignToLine(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t{63});
}

// Micro-tiles at a time: two in the 512-bit variant.
template <typename V>
inline constexpr int kTilesAtOnce = kVecLanes<V> == 16 ? 2 : 1;

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

// Micro-tiles over columns [0, columns) (a multiple of kTile), kTilesAtOnce
// at a time, the rest one by one: column t's block at b + t * col_step.
template <typename V>
PIANOLA_INLINE void Tiles(const float* panel, const float* b, int64_t col_step, int64_t columns,
                          int64_t depth, int64_t stride, int rows, const float* bias,
                          const float* const* init, float* const* dest, int64_t dst_col) {
  constexpr int kAtOnce = kTilesAtOnce<V>;
  int64_t t = 0;
  for (; t + kAtOnce * kTile <= columns; t += kAtOnce * kTile) {
    Tile<V, kAtOnce>(panel, b + t * col_step, kTile * col_step, depth, stride, rows, bias, init,
                     dest, dst_col + t);
  }
  for (; t < columns; t += kTile) {
    Tile<V, 1>(panel, b + t * col_step, 0, depth, stride, rows, bias, init, dest, dst_col + t);
  }
}

template <typename V>
PIANOLA_INLINE void BlockImpl(const GatedLayer& layer, int64_t first, int64_t columns,
                              float* scratch) {
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
    Tiles<V>(layer.pre->panel(p), staged, source_rows, columns, source_rows, kTile, rows,
             layer.pre_bias + p * kR, nullptr, rows_out, 0);
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
    Tiles<V>(layer.out->panel(p), gated, 1, columns, g, kBlock, rows, layer.out_bias + p * kR,
             layer.init.data() + p * kR, layer.dest.data() + p * kR, first);
  }
}

PIANOLA_KERNEL_CLONES
void Block(const GatedLayer& layer, int64_t first, int64_t columns, float* scratch) {
  BlockImpl<Vec8>(layer, first, columns, scratch);
}

PIANOLA_WIDE_TARGET
void BlockWide(const GatedLayer& layer, int64_t first, int64_t columns, float* scratch) {
  BlockImpl<Vec16>(layer, first, columns, scratch);
}

template <typename V>
PIANOLA_INLINE void ProductTilesImpl(const PanelMatrix& a, const RowSource* sources,
                                     size_t n_sources, const float* bias, float* const* dest,
                                     int64_t begin, int64_t end) {
  static const float kZeros[kR] = {};
  constexpr int64_t kRound = kTilesAtOnce<V> * kTile;
  // Round by round (kTilesAtOnce tiles): each tile's columns of the sources
  // copied into one contiguous block (in L1 while every panel of A passes
  // over it: no strided reads or TLB misses in the micro-kernel), zeros
  // supplied where a source has no column.
  int64_t rows = 0;
  for (size_t s = 0; s < n_sources; ++s) rows += sources[s].rows;
  std::vector<float> staged_buffer(rows * kRound + kLineFloats);
  float* const staged = AlignToLine(staged_buffer.data());
  for (int64_t t = begin; t < end; t += kRound) {
    const int64_t width = std::min(kRound, end - t);
    const int64_t whole = width / kTile * kTile;  // the round's columns in whole tiles
    for (int64_t u = 0; u < width; u += kTile) {
      StageTile(sources, n_sources, t + u, staged + u * rows);
    }
    for (int64_t p = 0; p < a.panels(); ++p) {
      const int panel_rows = static_cast<int>(std::min<int64_t>(kR, a.rows() - p * kR));
      const float* b = bias != nullptr ? bias + p * kR : kZeros;
      Tiles<V>(a.panel(p), staged, rows, whole, rows, kTile, panel_rows, b, nullptr,
               dest + p * kR, t);
      if (whole == width) continue;
      float tile[kR][kTile];  // the last, partial tile, through a local one
      float* tile_rows[kR];
      for (int r = 0; r < kR; ++r) tile_rows[r] = tile[r];
      Tile<V, 1>(a.panel(p), staged + whole * rows, 0, rows, kTile, panel_rows, b, nullptr,
                 tile_rows, 0);
      for (int r = 0; r < panel_rows; ++r) {
        std::copy(tile[r], tile[r] + (width - whole), dest[p * kR + r] + t + whole);
      }
    }
  }
}

PIANOLA_KERNEL_CLONES
void ProductTiles(const PanelMatrix& a, const RowSource* sources, size_t n_sources,
                  const float* bias, float* const* dest, int64_t begin, int64_t end) {
  ProductTilesImpl<Vec8>(a, sources, n_sources, bias, dest, begin, end);
}

PIANOLA_WIDE_TARGET
void ProductTilesWide(const PanelMatrix& a, const RowSource* sources, size_t n_sources,
                      const float* bias, float* const* dest, int64_t begin, int64_t end) {
  ProductTilesImpl<Vec16>(a, sources, n_sources, bias, dest, begin, end);
}

// RowDots has one variant (Vec8): a 512-bit one measured 0.9x of it on an
// AVX-512 Xeon (the dots stream their rows from L2; twice the arithmetic
// rate needs twice that bandwidth).
constexpr int kDotRows = 4, kDotCols = 3;
constexpr int64_t kLanes = kVecLanes<Vec8>;

// Up to kDotRows x kDotCols dot products over n values (a whole number of
// vectors) at once, added to their vector partial sums in `acc_out` (kLanes
// floats per product, row-major, acc_stride products per row, unaligned):
// each vector of a's rows is loaded once for kDotCols products and each of
// b's once for kDotRows.
template <int kRows, int kCols>
PIANOLA_INLINE void DotBlock(const float* a, int64_t a_stride, const float* b, int64_t b_stride,
                             int64_t n, float* acc_out, int64_t acc_stride) {
  Vec8 acc[kRows][kCols];
#pragma GCC unroll 4
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < kCols; ++j) acc[i][j] = LoadVec8(acc_out + (i * acc_stride + j) * kLanes);
  }
  for (int64_t t = 0; t < n; t += kLanes) {
    Vec8 bv[kCols];
#pragma GCC unroll 4
    for (int j = 0; j < kCols; ++j) bv[j] = LoadVec8(b + j * b_stride + t);
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const Vec8 av = LoadVec8(a + i * a_stride + t);
#pragma GCC unroll 4
      for (int j = 0; j < kCols; ++j) acc[i][j] += av * bv[j];
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < kCols; ++j) StoreVec8(acc_out + (i * acc_stride + j) * kLanes, acc[i][j]);
  }
}

// Time steps per pass of RowDots: a pass's rows of b (and a block of a's)
// stay in L2 while every block of a's rows reads them.
constexpr int64_t kDotSpan = 512;

// One span of one item (n a whole number of vectors) into the partial sums
// acc [a_rows][b_rows][kLanes].
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

// Rows [0, block.rows) of item m, columns [t, t + len), copied into `rows`
// (`stride` floats apart) and zero-padded to `padded` columns.
void StageRows(const RowBlock& block, int64_t m, int64_t t, int64_t len, int64_t padded,
               float* rows, int64_t stride) {
  for (int64_t r = 0; r < block.rows; ++r) {
    const float* in = block.base + m * block.item_stride + r * block.stride + t;
    std::copy(in, in + len, rows + r * stride);
    std::fill(rows + r * stride + len, rows + r * stride + padded, 0.0f);
  }
}

}  // namespace

void RowDots(const RowBlock& a, const RowBlock& b, int64_t items, int64_t n, float* out,
             int64_t out_stride) {
  // Each span of each item is first copied into line-aligned rows, zero-padded
  // to whole vectors: the rows of a [B, C, T] tensor start anywhere, and
  // loads that straddle cache lines cost twice (aligned: ~5 % faster here);
  // no scalar tail either. Vector partial sums over every item and span, one
  // horizontal sum per product at the end instead of one per span and item.
  std::vector<float> acc(a.rows * b.rows * kLanes, 0.0f);
  const int64_t stride = (std::min(kDotSpan, n) + kLineFloats - 1) / kLineFloats * kLineFloats;
  std::vector<float> buffer((a.rows + b.rows) * stride + kLineFloats);
  float* const a_rows = AlignToLine(buffer.data());
  float* const b_rows = a_rows + a.rows * stride;
  for (int64_t m = 0; m < items; ++m) {
    for (int64_t t = 0; t < n; t += kDotSpan) {
      const int64_t len = std::min(kDotSpan, n - t);
      const int64_t padded = (len + kLanes - 1) / kLanes * kLanes;
      StageRows(a, m, t, len, padded, a_rows, stride);
      StageRows(b, m, t, len, padded, b_rows, stride);
      RowDotsSpan(a_rows, a.rows, stride, b_rows, b.rows, stride, padded, acc.data());
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
  (WideKernels() ? ProductTilesWide : ProductTiles)(a, sources.data(), sources.size(), bias,
                                                    dest, begin, end);
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
  return (3 * layer.pre->rows() / 2 + layer.pre->cols()) * kBlock + kLineFloats;
}

void GatedLayerKernel(const GatedLayer& layer, int64_t begin, int64_t end, float* scratch) {
  const auto block = WideKernels() ? BlockWide : Block;
  scratch = AlignToLine(scratch);
  for (int64_t first = begin; first < end; first += kBlock) {
    block(layer, first, std::min(kBlock, end - first), scratch);
  }
}

}  // namespace pianola
