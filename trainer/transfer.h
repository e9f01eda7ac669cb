#ifndef PIANOLA_TRAINER_TRANSFER_H_
#define PIANOLA_TRAINER_TRANSFER_H_

// Style transfer (`pianola-trainer transfer`): render a MIDI performance in
// the timbre of a reference recording with a trained model.
//
//   checkpoint (file or run directory) -> model + its config (EMA weights when
//     the run kept them, unless use_ema is false)
//   reference audio (anything libsndfile reads; downmixed, resampled to the
//     model's rate) -> crops of the trained reference length -> timbre
//     encoder -> z averaged over the crops
//   MIDI (our reader) -> sparse events over [0, T) (trainer/midi_conditioning.h,
//     the data plane's own conversion) -> dense [177, T] features through
//     FillFeatures (trainer/batch_tensors.h, the trainer's own code)
//   decoder: autoregressive through the cached generator (trainer/generator.h,
//     O(layers) work per sample, never recomputing the receptive field) or
//     parallel in one pass over noise, in overlapping chunks for long inputs
//   -> OUT.wav (int16 mono at the model's rate), OUT.png (spectrogram of the
//     output) and OUT.reference.png (spectrogram of the reference as the model
//     heard it, i.e. after resampling).
//
// Reference crops: the encoder was trained on clips of the experiment's
// data.reference_samples. A reference no longer than that is encoded whole.
// A longer one is cut into up to `reference_crops` clips of exactly that
// length at evenly spaced offsets (first at the start, last at the end),
// silent clips (RMS below -60 dBFS) are dropped unless all are silent, and z is
// the mean of the clips' vectors: a summary of the whole recording, in the
// input distribution the encoder learned.
//
// Takes: `batch` > 1 renders that many takes of the same performance in one
// batched pass (different random draws; same z and features). Take 1 is
// OUT.wav / OUT.png, take k >= 2 is OUT.take<k>.wav / OUT.take<k>.png.
//
// Determinism: for a fixed seed, device and thread count, the output is
// identical from run to run (every random draw comes from a generator
// seeded with `seed`).
//
// Errors name the file at fault: NotFound (missing checkpoint, reference or
// MIDI), DataLoss (corrupt checkpoint, truncated audio), InvalidArgument (a
// reference libsndfile cannot read or too short for the encoder, a bad MIDI
// file or one without piano notes, bad options), FailedPrecondition (CUDA
// asked for but absent), Internal (LibTorch errors, with their message).
//
// This header is torch-free (the implementation is not), so the command-line
// tool compiles without LibTorch's headers. RunTransfer sets LibTorch's
// process-wide thread count when cpu_threads > 0; not reentrant.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/spectrogram_png.h"

namespace pianola {

struct TransferOptions {
  std::string checkpoint;  // a checkpoint file or a training output directory
  std::string reference;   // reference recording
  std::string midi;        // the performance to render
  std::string out;         // output WAV path; PNGs go beside it

  // Output length in seconds; <= 0: the MIDI's piano content plus
  // tail_seconds (so the last notes can ring out).
  double seconds = 0;
  double tail_seconds = 1.0;
  // Autoregressive sampling temperature (<= 0: greedy). Ignored by the
  // parallel decoder.
  double temperature = 1.0;
  int batch = 1;               // takes rendered together (1..64)
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  uint64_t seed = 0;
  int reference_crops = 8;     // at most this many clips are encoded (>= 1)
  bool use_ema = true;         // the EMA weights when the checkpoint has them
  // Parallel decoder: output samples per pass (each pass also reads half the
  // receptive field on each side); <= 0: one pass.
  double chunk_seconds = 4.0;
  // Autoregressive: steps whose conditioning is projected together.
  int64_t block_samples = 1024;
  int cpu_threads = 0;         // > 0: torch::set_num_threads; 0: LibTorch's default
  bool progress = true;        // progress line with the real-time factor on stderr
  bool spectrograms = true;    // write the PNGs
  SpectrogramOptions spectrogram;
};

struct TransferResult {
  std::string checkpoint_path;  // the checkpoint file actually loaded
  int64_t checkpoint_step = 0;
  std::string decoder;          // "autoregressive" | "parallel"
  std::string device;           // "cpu", "cuda:0"
  bool used_ema = false;
  int sample_rate = 0;
  int64_t samples = 0;          // per take; = round(seconds * sample_rate)
  int reference_crops = 0;      // clips whose z was averaged
  int64_t notes = 0;            // piano notes starting in the rendered span
  double render_seconds = 0;    // wall time of the decoder alone
  // Audio produced per wall second of rendering, as a multiple of real time
  // (all takes counted): > 1 is faster than real time.
  double real_time_factor = 0;
  int64_t clipped_samples = 0;  // output samples outside [-1, 1] (clipped in the WAV)
  std::vector<std::string> wav_paths;  // one per take
  std::vector<std::string> png_paths;  // one per take (empty without spectrograms)
  std::string reference_png;
};

// The output file names for take `take` (1-based) of OUT: OUT itself for
// take 1, else OUT's stem + ".take<k>" + its extension; `extension` replaces
// OUT's (".png"); empty keeps it.
std::string TakePath(const std::string& out, int take, const std::string& extension = "");
// OUT's stem + ".reference.png".
std::string ReferencePngPath(const std::string& out);

absl::StatusOr<TransferResult> RunTransfer(const TransferOptions& options);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_TRANSFER_H_
