#ifndef PIANOLA_DATASERVER_DATASET_BUILDER_H_
#define PIANOLA_DATASERVER_DATASET_BUILDER_H_

// Building dataset directories (layout: proto/dataset.proto, docs/datasets.md).
//
// BuildRenderedDataset: every MIDI file under a directory (recursive, .mid /
// .midi) rendered with every timbre of a TimbreSet on N threads, written as
// OUT/audio/<piece>__<timbre>.wav with the MIDI copied to OUT/midi/<piece>.mid;
// then the index. A piece is one MIDI file; its split is a deterministic
// function of the piece names (SplitPieces). Bad MIDI files are skipped,
// counted and listed (BuildReport, OUT/build_report.txt, the manifest's
// created_by).
//
// BuildIndex: reads each recording's MIDI with our reader and its WAV,
// converts notes and pedal to samples exactly as the renderer does, appends
// the audio to audio.i16 in manifest order and writes index.binpb and
// manifest.textproto. Memory holds one recording at a time.
//
// Thread-safe: free functions; each call owns its output directory.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dataserver/midi.h"
#include "proto/dataset.pb.h"

namespace pianola {

inline constexpr char kBuildReportFile[] = "build_report.txt";

struct BuildOptions {
  std::string midi_dir;  // required: searched recursively for .mid/.midi
  std::string out_dir;   // required: created if missing
  // Timbres to render with; empty means DefaultTimbres().
  TimbreSet timbres;
  // Rendering threads; 0 means one per hardware thread.
  int threads = 0;
  int sample_rate = 16000;
  // If > 0, each recording is cut at this many seconds (for demos and tests).
  double seconds_limit = 0;
  double release_tail_seconds = 1.0;
  // Dataset name; empty means the out_dir's last path component.
  std::string name;
  // Print a progress line (rate, ETA) to stderr.
  bool progress = true;
};

// What a build or import did. `skipped` lines name the file (and row and
// field, for imports) and the reason.
struct BuildReport {
  int inputs = 0;       // MIDI files found / index rows read
  int pieces = 0;       // pieces in the dataset
  int recordings = 0;   // recordings in the dataset
  std::vector<std::string> skipped;
  // "12 MIDI files, 10 pieces, 20 recordings, 2 skipped".
  std::string Summary(absl::string_view inputs_noun = "MIDI files") const;
  // The summary, then one skipped entry per line.
  std::string Text(absl::string_view inputs_noun = "MIDI files") const;
};

absl::StatusOr<BuildReport> BuildRenderedDataset(const BuildOptions& options);

// Rebuilds audio.i16, index.binpb and manifest.textproto of DIR from its
// manifest, MIDI and audio (the `index` subcommand).
absl::Status BuildIndex(const std::string& dir, bool progress = true);

// Writes audio.i16 and index.binpb for `manifest`, then the manifest itself
// (num_samples and duration_seconds taken from the audio as read).
absl::Status BuildIndex(const std::string& dir, DatasetManifest manifest, bool progress = true);

// --- pieces of the above, exposed for tests and for maestro_import ----------

// The index of one recording: piano notes (keys 21..108, velocity 1..127, off
// the drum channel) and merged sustain intervals in samples via
// SecondsToSample, clipped to [0, num_samples), sorted by (start, key).
RecordingIndex IndexRecording(const midi::Performance& performance, int sample_rate,
                              int64_t num_samples);

// Splits per piece, ~80/10/10 from a stable hash of each name; with >= 3
// pieces at least one is VALIDATION and one TEST (moving the pieces whose
// hash lies nearest those splits), with >= 1 piece at least one is TRAIN.
// A function of the set of names only.
std::map<std::string, Split> SplitPieces(const std::vector<std::string>& pieces);

// Every .mid/.midi file under `dir`, recursively, as paths relative to it,
// sorted. NotFound if `dir` is not a directory.
absl::StatusOr<std::vector<std::string>> FindMidiFiles(const std::string& dir);

// A file-name-safe piece name from a relative MIDI path: extension dropped,
// '/' and characters outside [A-Za-z0-9._-] become '_'.
std::string PieceNameFromPath(absl::string_view relative_path);

// Runs fn(i, worker) for i in 0..n-1 on `threads` threads (0: hardware
// threads); `worker` in 0..threads-1 names the calling thread, for per-thread
// state. Stops handing out work after the first error and returns it.
absl::Status ParallelFor(int n, int threads,
                         const std::function<absl::Status(int index, int worker)>& fn);

// min(threads or hardware threads, n), at least 1.
int EffectiveThreads(int threads, int n);

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_DATASET_BUILDER_H_
