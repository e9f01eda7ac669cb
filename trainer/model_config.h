#ifndef PIANOLA_TRAINER_MODEL_CONFIG_H_
#define PIANOLA_TRAINER_MODEL_CONFIG_H_

// The shape of a Pianola model (timbre encoder + WaveNet decoder) and of its
// losses, as a plain C++ struct.
//
// Torch-free on purpose: LibTorch's include directory carries protobuf 3.13
// headers that shadow Debian's 3.21, so torch code never sees generated .pb.h
// files. The experiment config proto is converted to this struct in a
// separate torch-free file; the torch modules (autoencoder.h and friends) only
// read this struct. Named presets live here, in one place.
//
// Plain values; thread-compatible.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pianola {

// Dense MIDI conditioning channels at the audio rate, as the data client
// builds them: 88 onset impulses (velocity / 127 at the onset sample), 88
// note-active frames, 1 sustain pedal.
inline constexpr int kMidiFeatureChannels = 177;

enum class DecoderKind {
  // Causal WaveNet over previous samples, 256-way µ-law softmax (NSynth /
  // MAESTRO style), trained with cross-entropy, generated sample by sample.
  kAutoregressive,
  // Non-causal WaveNet: noise in, waveform out in one pass (Parallel WaveGAN
  // generator style), trained with the multi-resolution STFT loss.
  kParallel,
};

enum class EncoderKind {
  // log-mel spectrogram -> non-causal Conv1d stack -> mean/std pooling.
  kMel,
  // raw audio -> dilated non-causal Conv1d stack (NSynth style) -> average
  // pooling by `raw_pool` -> mean/std pooling.
  kRawDilated,
};

// How the autoregressive decoder sees the previous sample.
enum class ArInput {
  kEmbedding,  // a learned vector per µ-law class (nn::Embedding)
  kScalar,     // the µ-law companded value in [-1, 1] through a 1x1 conv
};

absl::string_view DecoderKindName(DecoderKind kind);  // "autoregressive" | "parallel"
absl::StatusOr<DecoderKind> ParseDecoderKind(absl::string_view name);
absl::string_view EncoderKindName(EncoderKind kind);  // "mel" | "raw_dilated"
absl::StatusOr<EncoderKind> ParseEncoderKind(absl::string_view name);

// Log-mel spectrogram front end (trainer/mel.h). The mel scale is HTK's
// (2595 * log10(1 + f / 700)); filters are unnormalized triangles.
struct MelConfig {
  int n_fft = 1024;       // FFT size; also the Hann window length
  int hop = 256;          // frame hop in samples
  int n_mels = 80;        // mel bands; at most n_fft / 2 + 1
  double f_min = 0.0;     // Hz
  double f_max = 0.0;     // Hz; 0 means sample_rate / 2
  double log_floor = 1e-5;  // log(mel power + log_floor)

  bool operator==(const MelConfig&) const = default;
};

struct EncoderConfig {
  EncoderKind kind = EncoderKind::kMel;
  MelConfig mel;
  int channels = 128;    // hidden channels of the conv stack
  int layers = 4;        // mel: conv layers; raw: layers per cycle (dilations 1..2^(layers-1))
  int kernel_size = 3;   // odd: the stack is non-causal ("same" padding)
  int raw_cycles = 1;    // raw_dilated only: repetitions of the dilation cycle
  int raw_pool = 256;    // raw_dilated only: average-pooling stride before mean/std pooling
  int z_dim = 64;        // timbre vector size

  bool operator==(const EncoderConfig&) const = default;
};

struct DecoderConfig {
  DecoderKind kind = DecoderKind::kAutoregressive;
  int layers_per_cycle = 10;  // dilations 1, 2, ..., 2^(layers_per_cycle-1)
  int cycles = 2;             // how many times the dilation cycle repeats
  int kernel_size = 2;        // autoregressive: >= 2 (causal); parallel: odd >= 3
  int residual_channels = 64;
  int gate_channels = 64;     // channels after tanh * sigmoid (the conv makes 2x)
  int skip_channels = 64;
  int cond_channels = kMidiFeatureChannels;
  // The MIDI features first go through one shared 1x1 conv to this many
  // channels, then through each layer's own 1x1 conv (a low-rank
  // factorization of per-layer 177-channel projections, which would otherwise
  // cost more than the dilated convs themselves). 0: per-layer 1x1 convs
  // straight from cond_channels.
  int cond_hidden_channels = 64;
  int quantization_levels = 256;  // autoregressive: µ-law classes
  ArInput ar_input = ArInput::kEmbedding;
  // Parallel only: fold (space-to-depth) factor F. The stack runs at
  // sample_rate / F: the noise [B, T] becomes F channels at T / F steps (T
  // zero-padded up to a multiple of F, the output cropped back), the MIDI
  // features reach the folded rate through a learned strided conv (kernel F,
  // stride F; see cond_fold_filters), dilations count folded steps, and the
  // head's F output channels are unfolded back into F consecutive samples.
  // Each layer then costs 1/F of its unfolded price per output sample. 1: no
  // folding, the stack runs at the audio rate. Autoregressive: must be 1.
  int fold = 1;
  // Parallel with fold > 1: the strided conv that brings the MIDI features to
  // the folded rate is factored as a learned temporal basis of this many
  // length-F filters shared by all channels (each channel's F samples of a
  // block -> cond_fold_filters values), then a 1x1 conv from cond_channels *
  // cond_fold_filters to cond_hidden_channels. Two filters suffice to keep an
  // onset impulse's velocity and its position within the block (a sum and a
  // ramp can be learned); fold filters make it a full-rank strided conv.
  int cond_fold_filters = 2;

  int num_layers() const { return layers_per_cycle * cycles; }
  // The fold actually applied (1 for the autoregressive decoder).
  int effective_fold() const { return kind == DecoderKind::kParallel ? fold : 1; }

  bool operator==(const DecoderConfig&) const = default;
};

// One STFT resolution of the multi-resolution STFT loss (Hann window of
// `win_length` centred in `fft_size`).
struct StftResolution {
  int fft_size = 1024;
  int hop = 80;
  int win_length = 400;

  bool operator==(const StftResolution&) const = default;
};

// Default resolutions: Parallel WaveGAN's (1024,120,600), (2048,240,1200),
// (512,50,240) at 24 kHz with hops and windows scaled by 2/3 for 16 kHz
// (same time spans), FFT sizes kept.
std::vector<StftResolution> DefaultStftResolutions();

struct LossConfig {
  // Autoregressive: weight of the µ-law cross-entropy.
  double cross_entropy_weight = 1.0;
  // Parallel: multi-resolution STFT loss = mean over resolutions of
  // (spectral_convergence_weight * SC + log_magnitude_weight * L1(log |S|)).
  std::vector<StftResolution> stft_resolutions = DefaultStftResolutions();
  double stft_weight = 1.0;
  double spectral_convergence_weight = 1.0;
  double log_magnitude_weight = 1.0;
  // Parallel (optional): L1 between predicted and target waveforms.
  double waveform_l1_weight = 0.0;

  bool operator==(const LossConfig&) const = default;
};

struct ModelConfig {
  int sample_rate = 16000;
  EncoderConfig encoder;
  DecoderConfig decoder;
  LossConfig loss;

  bool operator==(const ModelConfig&) const = default;
};

// Preset names, in size order: "tiny" (unit tests, seconds on CPU), "small"
// (CPU demos), "base" (GPU, NSynth / UMT scale). The decoder sizes differ by
// kind: a parallel decoder runs every layer on every sample in one pass, an
// autoregressive one pays per generated sample.
std::vector<std::string> ModelPresetNames();
absl::StatusOr<ModelConfig> ModelPreset(absl::string_view name,
                                        DecoderKind kind = DecoderKind::kAutoregressive);

// InvalidArgument naming the first bad field ("decoder.kernel_size: ...").
absl::Status Validate(const ModelConfig& config);

// Decoder receptive field in samples: how many input positions one output
// depends on, F * (1 + (kernel_size - 1) * sum of dilations) with F the fold
// (1 unless parallel): an output sample depends on whole folded blocks of F
// samples, 1 + (kernel_size - 1) * sum of dilations of them.
int64_t DecoderReceptiveField(const DecoderConfig& config);

// Samples one output depends on on each side of its own folded block: the
// overlap chunked parallel rendering needs, F * (kernel_size - 1) / 2 * sum of
// dilations (the left half of (receptive field - F)). Parallel only; for the
// autoregressive decoder it is the receptive field (see ContextSamples).
int64_t DecoderContextSamples(const DecoderConfig& config);

// Samples of audio (and conditioning) a training window needs before its
// first loss position: the `R` of the data request's `L + R` target samples.
// Autoregressive: the receptive field (the prediction of sample t reads
// samples t-R .. t-1). Parallel: DecoderContextSamples, the left half of the
// receptive field beyond the output's own folded block (any R >= it puts the
// first loss sample's block at least that far from the window's start; the
// right half past the window's end sees zero padding, as at a piece's end).
int64_t ContextSamples(const ModelConfig& config);

// The fewest reference samples the timbre encoder takes: the mel encoder's
// frames are centred with reflect padding of n_fft / 2 on each side, which
// needs more than n_fft / 2 samples; the raw encoder takes any.
int64_t MinReferenceSamples(const EncoderConfig& config);

// A few lines describing the model (kinds, sizes, receptive field in samples
// and milliseconds, context) for logs and tools.
std::string DescribeModelConfig(const ModelConfig& config);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_MODEL_CONFIG_H_
