#ifndef PIANOLA_TRAINER_GATED_LAYER_KERNEL_H_
#define PIANOLA_TRAINER_GATED_LAYER_KERNEL_H_

// One WaveNet layer's inference arithmetic on the CPU, fused over blocks of
// columns (time steps) so its intermediates never leave the core's caches:
//
//   a     = pre_bias + Pre · [rows of the sources]      [2G, n]
//   gated = tanh(a[:G]) * sigmoid(a[G:])                [G, n]
//   dest  = init + out_bias + Out · gated               [M, n]
//
// The sources are row ranges of [channels, time] buffers read at a column
// offset, so a dilated convolution's taps are shifted views of one buffer
// (no im2col of the whole input) and the MIDI 1x1 convolution is one more
// source; the output rows point anywhere (the residual stream's next buffer
// and the skip sum, accumulated in place). Each 16-column tile of the
// sources is copied once into a contiguous block that every panel of Pre
// then reads (one row per 64 bytes instead of one per page: strided rows
// cost TLB misses and defeat the hardware prefetcher). The products run on
// a register-blocked micro-kernel (kPanelRows rows x 16 columns), the gate is
// GateKernel's. Where torch's GEMMs re-read and re-write the [2G, T]
// pre-activation per tap, pack their shifted right-hand sides, and make one
// more pass for the gate, each block of columns here stays in L1/L2
// (docs/perf.md).
//
// Torch-free plain C++ (GCC vector extensions), compiled -O3 with an AVX2 +
// FMA clone chosen at load time and a 512-bit variant taken where
// WideKernels() (kernel_clones.h). Thread-safe: callers give each thread its
// own scratch and disjoint column ranges.

#include <cstdint>
#include <vector>

namespace pianola {

// A [rows, cols] matrix repacked for the micro-kernel: panels of kPanelRows
// rows, each stored column by column (one step of the product reads
// kPanelRows consecutive values); the last panel is zero-padded.
class PanelMatrix {
 public:
  static constexpr int64_t kPanelRows = 6;

  PanelMatrix() = default;
  // `a` row-major with `row_stride` floats between rows.
  PanelMatrix(const float* a, int64_t rows, int64_t cols, int64_t row_stride);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t panels() const { return (rows_ + kPanelRows - 1) / kPanelRows; }
  const float* panel(int64_t p) const { return data_.data() + p * kPanelRows * cols_; }

 private:
  int64_t rows_ = 0, cols_ = 0;
  std::vector<float> data_;
};

// `rows` rows of a product's right-hand side, `stride` floats apart, read at
// a column offset into `length` columns: column t of row k is
// base[k * stride + offset + t] when 0 <= offset + t < length, and zero
// otherwise (those addresses are never touched). A tap at offset o of a
// [C, n] buffer is {x, C, stride, o, n}: its zero padding comes free.
struct RowSource {
  const float* base;
  int64_t rows;
  int64_t stride;
  int64_t offset;
  int64_t length;
};

struct GatedLayer {
  const PanelMatrix* pre;           // [2G, sum of the sources' rows]
  std::vector<RowSource> sources;   // stacked in Pre's column order
  const float* pre_bias;            // [2G]
  const PanelMatrix* out;           // [M, G]
  const float* out_bias;            // [M]
  // M row pointers each: dest[r][t] = init[r][t] (when init[r] is not
  // null) + out_bias[r] + (Out · gated)[r][t]. dest may equal init (in-place
  // accumulation) but must not overlap any source.
  std::vector<const float*> init;
  std::vector<float*> dest;
};

// Columns per micro-kernel tile: GatedLayerKernel's column ranges are
// multiples of it.
inline constexpr int64_t kGatedLayerTileColumns = 16;

// Floats of scratch one GatedLayerKernel call on `layer` needs.
int64_t GatedLayerScratchFloats(const GatedLayer& layer);

// Computes columns [begin, end) of `layer` (both multiples of
// kGatedLayerTileColumns), using `scratch` (GatedLayerScratchFloats floats,
// owned by the calling thread).
void GatedLayerKernel(const GatedLayer& layer, int64_t begin, int64_t end, float* scratch);

// The products on their own, for the training layer's forward and backward
// (trainer/dilated_gate.h):
//
// dest[r][t] = bias[r] (bias may be null: 0) + (A · sources)[r][t] for t in
// [begin, end): begin a multiple of kGatedLayerTileColumns, end anywhere.
// Each tile's columns of the sources are first copied into one contiguous
// block, zeros where a source has none. dest must not overlap any source.
void ShiftedProduct(const PanelMatrix& a, const std::vector<RowSource>& sources,
                    const float* bias, float* const* dest, int64_t begin, int64_t end);

// `rows` rows of `items` [rows, n] matrices: row r of item m starts at
// base + m * item_stride + r * stride.
struct RowBlock {
  const float* base;
  int64_t rows;
  int64_t stride;
  int64_t item_stride;
};

// out[i * out_stride + j] += sum over items m and t in [0, n) of a(m)[i][t] *
// b(m)[j][t]: the weight gradients (the activations' rows dotted with the
// output gradient's over time and the batch). Deterministic: the same
// summation order for any caller.
void RowDots(const RowBlock& a, const RowBlock& b, int64_t items, int64_t n, float* out,
             int64_t out_stride);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_GATED_LAYER_KERNEL_H_
