#ifndef PIANOLA_DATASERVER_DATASET_H_
#define PIANOLA_DATASERVER_DATASET_H_

// A dataset ready for window assembly: the manifest, the index (notes and
// pedal in sample units) and every recording's int16 samples, memory-mapped.
//
// On disk (see proto/dataset.proto): manifest.textproto, index.binpb,
// audio.i16, plus audio/ and midi/ (the sources the index was built from).
// Open() checks every size and cross-reference and refuses a dataset whose
// parts disagree (DataLoss naming the file and field), so assembly code can
// index without bounds checks of its own.
//
// Immutable after construction; thread-safe for concurrent readers.

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "proto/dataset.pb.h"

namespace pianola {

// The one conversion from MIDI time to the audio sample grid, used by the
// index builder, the renderer and every test that checks alignment.
inline int64_t SecondsToSample(double seconds, int sample_rate) {
  return static_cast<int64_t>(std::llround(seconds * sample_rate));
}

inline constexpr char kManifestFile[] = "manifest.textproto";
inline constexpr char kIndexFile[] = "index.binpb";
inline constexpr char kAudioCacheFile[] = "audio.i16";

// A read-only memory mapping of an int16 file (audio.i16). Movable, not copyable.
class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const std::string& path);
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  ~MappedFile();
  int64_t samples() const { return static_cast<int64_t>(bytes_ / 2); }
  absl::Span<const int16_t> span() const {
    return {static_cast<const int16_t*>(data_), bytes_ / 2};
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

class Dataset {
 public:
  // Opens a dataset directory written by WriteDataset().
  static absl::StatusOr<std::unique_ptr<Dataset>> Open(const std::string& dir);

  // A dataset held in memory. `index.recordings(r).audio_offset` must point
  // into `audio`; the fingerprint is computed here (index.fingerprint ignored).
  static absl::StatusOr<std::unique_ptr<Dataset>> FromMemory(DatasetManifest manifest,
                                                             DatasetIndex index,
                                                             std::vector<int16_t> audio);
  ~Dataset();
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  const std::string& name() const { return manifest_.name(); }
  const std::string& directory() const { return dir_; }  // empty for FromMemory
  int sample_rate() const { return manifest_.sample_rate(); }
  uint64_t fingerprint() const { return index_.fingerprint(); }
  const DatasetManifest& manifest() const { return manifest_; }
  const DatasetIndex& index() const { return index_; }

  int num_recordings() const { return manifest_.recordings_size(); }
  const RecordingEntry& entry(int r) const { return manifest_.recordings(r); }
  const RecordingIndex& recording_index(int r) const { return index_.recordings(r); }
  // The recording's samples (num_samples of them).
  absl::Span<const int16_t> audio(int r) const;

 private:
  Dataset() = default;

  std::string dir_;
  DatasetManifest manifest_;
  DatasetIndex index_;
  std::vector<int16_t> owned_audio_;     // FromMemory
  const int16_t* audio_ = nullptr;       // owned_audio_.data() or the mapping
  int64_t audio_samples_ = 0;
  MappedFile mapping_;                   // audio.i16 (Open)
};

// Checks that a manifest, an index and an audio cache of `audio_samples`
// samples agree: sizes, offsets, note and pedal arrays (sorted, in range).
// DataLoss naming `where`, the recording and the field otherwise.
absl::Status ValidateDataset(const std::string& where, const DatasetManifest& manifest,
                             const DatasetIndex& index, int64_t audio_samples);

// The fingerprint stored in DatasetIndex.fingerprint: a stable hash of the
// manifest's recordings (id, piece, timbre, split, num_samples), the sample
// rate, every index array and every audio sample.
uint64_t ComputeFingerprint(const DatasetManifest& manifest, const DatasetIndex& index,
                            absl::Span<const int16_t> audio);

// Appends recordings' samples to DIR/audio.i16 (through a temporary file that
// Finish() fsyncs and renames), so a dataset of any size is written with
// bounded memory. Not thread-safe: one writer appends in manifest order.
class AudioCacheWriter {
 public:
  static absl::StatusOr<std::unique_ptr<AudioCacheWriter>> Create(const std::string& dir);
  ~AudioCacheWriter();  // abandons an unfinished file
  // Returns the offset (in samples) of the appended recording.
  absl::StatusOr<int64_t> Append(absl::Span<const int16_t> samples);
  absl::Status Finish();

 private:
  AudioCacheWriter(std::string dir, int fd) : dir_(std::move(dir)), fd_(fd) {}
  std::string dir_;
  int fd_ = -1;
  int64_t samples_ = 0;
};

// Completes a dataset directory whose audio.i16 is written: computes the
// fingerprint, then writes index.binpb and, last, manifest.textproto, each
// atomically, so a crash leaves no manifest pointing at missing data.
// `index.recordings(r).audio_offset` must point into audio.i16.
absl::Status WriteDatasetIndex(const std::string& dir, const DatasetManifest& manifest,
                               DatasetIndex index);

// Split names as used in manifests and on the command line: "train",
// "validation", "test".
std::string SplitName(Split split);
absl::StatusOr<Split> ParseSplit(absl::string_view name);

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_DATASET_H_
