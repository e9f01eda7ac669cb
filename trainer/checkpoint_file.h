#ifndef PIANOLA_TRAINER_CHECKPOINT_FILE_H_
#define PIANOLA_TRAINER_CHECKPOINT_FILE_H_

// The on-disk framing of a training checkpoint and the checkpoint directory
// of a run. Torch-free: the tensors travel as an opaque payload (a LibTorch
// archive written by trainer/checkpoint.h), so tools without LibTorch (the
// coordinator, `info`) can read a checkpoint's step, data cursor and config.
//
// File layout (little-endian), one file per checkpoint:
//   0  char[8]  magic "PNLACKPT"
//   8  u32      format version (kCheckpointVersion)
//  12  u32      header size (64)
//  16  i64      step (optimizer steps completed)
//  24  u64      data epoch      } the training data client's position:
//  32  u64      data cursor     } resuming streams from here
//  40  u64      config length C (serialized pianola.ExperimentConfig)
//  48  u64      payload length P (the tensors)
//  56  u64      checksum: StableHasher over bytes 0..55, the config and the payload
//  64  config bytes, then payload bytes; the file is exactly 64 + C + P bytes.
// A file that is shorter or longer, has a bad magic or a checksum mismatch is
// DataLoss naming the file; an unknown version is FailedPrecondition.
//
// A run directory OUT holds OUT/checkpoints/ckpt-<step>.pt and
// OUT/checkpoints/latest, a one-line file naming the newest checkpoint. Both
// are written atomically (temporary file, fsync, rename, directory fsync) and
// `latest` only after the checkpoint it names is complete, so a crash leaves
// either the old or the new state, never a partial file.
//
// Free functions; safe to call concurrently on different paths. One writer
// per run directory.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pianola {

inline constexpr char kCheckpointMagic[8] = {'P', 'N', 'L', 'A', 'C', 'K', 'P', 'T'};
inline constexpr uint32_t kCheckpointVersion = 1;
inline constexpr int kCheckpointHeaderBytes = 64;

struct CheckpointContents {
  int64_t step = 0;
  uint64_t data_epoch = 0;
  uint64_t data_cursor = 0;
  std::string config_bytes;  // serialized pianola.ExperimentConfig
  std::string payload;       // tensors (trainer/checkpoint.h)
};

// The framed bytes of a checkpoint, and their inverse (`source` names the
// bytes in errors).
std::string EncodeCheckpoint(const CheckpointContents& contents);
absl::StatusOr<CheckpointContents> DecodeCheckpoint(std::string bytes, const std::string& source);

// Writes `path` atomically.
absl::Status WriteCheckpointFile(const std::string& path, const CheckpointContents& contents);
// Reads and verifies `path`.
absl::StatusOr<CheckpointContents> ReadCheckpointFile(const std::string& path);

// OUT/checkpoints and OUT/checkpoints/ckpt-<step>.pt.
std::string CheckpointDir(const std::string& out_dir);
std::string CheckpointPath(const std::string& out_dir, int64_t step);

struct CheckpointEntry {
  int64_t step = 0;
  std::string path;
};

// The checkpoints of a run directory (files named ckpt-<step>.pt), oldest
// first; empty when there are none (or no checkpoints/ directory).
absl::StatusOr<std::vector<CheckpointEntry>> ListCheckpoints(const std::string& out_dir);

// Writes ckpt-<step>.pt, then `latest`, then deletes the oldest checkpoints
// beyond the newest `keep_last` (0 keeps all). Returns the checkpoint's path.
absl::StatusOr<std::string> CommitCheckpoint(const std::string& out_dir,
                                             const CheckpointContents& contents, int keep_last);

// What `C` means on a command line: a checkpoint file is itself; a run
// directory (or its checkpoints/ directory) means the checkpoint its `latest`
// names, or else its newest ckpt-<step>.pt. NotFound when there is none.
absl::StatusOr<std::string> ResolveCheckpoint(const std::string& file_or_dir);

// Whether a run directory holds any checkpoint.
bool HasCheckpoints(const std::string& out_dir);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_CHECKPOINT_FILE_H_
