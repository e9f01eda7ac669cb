#include "trainer/checkpoint_file.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace pianola {
namespace {

namespace fs = std::filesystem;

constexpr char kLatestFile[] = "latest";
constexpr int kChecksumOffset = 56;
// Upper bound on a checkpoint read into memory (a `base` model with Adam
// state is ~100 MB; this leaves room for much larger models).
constexpr int64_t kMaxCheckpointBytes = int64_t{64} << 30;

template <typename T>
void Put(std::string* out, size_t offset, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::memcpy(out->data() + offset, &value, sizeof(T));  // little-endian hosts only
}
template <typename T>
T Get(const std::string& in, size_t offset) {
  T value;
  std::memcpy(&value, in.data() + offset, sizeof(T));
  return value;
}

uint64_t Checksum(const std::string& bytes) {
  // Header without the checksum field, then config and payload.
  StableHasher h;
  h.Update(bytes.data(), kChecksumOffset);
  h.Update(bytes.data() + kCheckpointHeaderBytes, bytes.size() - kCheckpointHeaderBytes);
  return h.Finish();
}

// Parses "ckpt-<step>.pt".
bool ParseCheckpointName(const std::string& name, int64_t* step) {
  if (!absl::StartsWith(name, "ckpt-") || !absl::EndsWith(name, ".pt")) return false;
  const std::string digits = name.substr(5, name.size() - 8);
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) {
    return false;
  }
  return absl::SimpleAtoi(digits, step);
}

}  // namespace

std::string EncodeCheckpoint(const CheckpointContents& c) {
  std::string out(kCheckpointHeaderBytes, '\0');
  out.reserve(kCheckpointHeaderBytes + c.config_bytes.size() + c.payload.size());
  std::memcpy(out.data(), kCheckpointMagic, sizeof(kCheckpointMagic));
  Put<uint32_t>(&out, 8, kCheckpointVersion);
  Put<uint32_t>(&out, 12, kCheckpointHeaderBytes);
  Put<int64_t>(&out, 16, c.step);
  Put<uint64_t>(&out, 24, c.data_epoch);
  Put<uint64_t>(&out, 32, c.data_cursor);
  Put<uint64_t>(&out, 40, c.config_bytes.size());
  Put<uint64_t>(&out, 48, c.payload.size());
  out += c.config_bytes;
  out += c.payload;
  Put<uint64_t>(&out, kChecksumOffset, Checksum(out));
  return out;
}

absl::StatusOr<CheckpointContents> DecodeCheckpoint(std::string bytes,
                                                    const std::string& source) {
  auto loss = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(source, ": corrupt checkpoint: ", why));
  };
  if (bytes.size() < static_cast<size_t>(kCheckpointHeaderBytes)) {
    return loss(absl::StrCat("truncated: ", bytes.size(), " bytes, shorter than the ",
                             kCheckpointHeaderBytes, "-byte header"));
  }
  if (std::memcmp(bytes.data(), kCheckpointMagic, sizeof(kCheckpointMagic)) != 0) {
    return loss("bad magic (not a Pianola checkpoint)");
  }
  const uint32_t version = Get<uint32_t>(bytes, 8);
  if (version != kCheckpointVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        source, ": checkpoint format version ", version, " is not supported (this build reads ",
        kCheckpointVersion, ")"));
  }
  if (Get<uint32_t>(bytes, 12) != kCheckpointHeaderBytes) {
    return loss(absl::StrCat("header size ", Get<uint32_t>(bytes, 12), ", expected ",
                             kCheckpointHeaderBytes));
  }
  const uint64_t config_len = Get<uint64_t>(bytes, 40);
  const uint64_t payload_len = Get<uint64_t>(bytes, 48);
  const uint64_t body = bytes.size() - kCheckpointHeaderBytes;
  if (config_len > body || payload_len > body || config_len + payload_len != body) {
    return loss(absl::StrCat(config_len + payload_len < body ? "trailing bytes" : "truncated",
                             ": header promises ", config_len, " config + ", payload_len,
                             " payload bytes, file holds ", body));
  }
  const uint64_t stored = Get<uint64_t>(bytes, kChecksumOffset);
  const uint64_t actual = Checksum(bytes);
  if (stored != actual) {
    return loss(absl::StrCat("checksum mismatch (stored ", absl::Hex(stored), ", computed ",
                             absl::Hex(actual), ")"));
  }
  CheckpointContents c;
  c.step = Get<int64_t>(bytes, 16);
  c.data_epoch = Get<uint64_t>(bytes, 24);
  c.data_cursor = Get<uint64_t>(bytes, 32);
  if (c.step < 0) return loss(absl::StrCat("negative step ", c.step));
  c.config_bytes = bytes.substr(kCheckpointHeaderBytes, config_len);
  bytes.erase(0, kCheckpointHeaderBytes + config_len);
  c.payload = std::move(bytes);
  return c;
}

absl::Status WriteCheckpointFile(const std::string& path, const CheckpointContents& contents) {
  return WriteFileAtomic(path, EncodeCheckpoint(contents));
}

absl::StatusOr<CheckpointContents> ReadCheckpointFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, kMaxCheckpointBytes));
  return DecodeCheckpoint(std::move(bytes), path);
}

std::string CheckpointDir(const std::string& out_dir) {
  return (fs::path(out_dir) / "checkpoints").string();
}

std::string CheckpointPath(const std::string& out_dir, int64_t step) {
  return (fs::path(CheckpointDir(out_dir)) / absl::StrCat("ckpt-", step, ".pt")).string();
}

absl::StatusOr<std::vector<CheckpointEntry>> ListCheckpoints(const std::string& out_dir) {
  std::vector<CheckpointEntry> out;
  const fs::path dir = CheckpointDir(out_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    int64_t step = 0;
    if (it->is_regular_file(ec) && ParseCheckpointName(it->path().filename().string(), &step)) {
      out.push_back({step, it->path().string()});
    }
  }
  if (ec) {
    return absl::InternalError(absl::StrCat(dir.string(), ": listing: ", ec.message()));
  }
  std::sort(out.begin(), out.end(),
            [](const CheckpointEntry& a, const CheckpointEntry& b) { return a.step < b.step; });
  return out;
}

bool HasCheckpoints(const std::string& out_dir) {
  absl::StatusOr<std::vector<CheckpointEntry>> list = ListCheckpoints(out_dir);
  return list.ok() && !list->empty();
}

absl::StatusOr<std::string> CommitCheckpoint(const std::string& out_dir,
                                             const CheckpointContents& contents, int keep_last) {
  const std::string dir = CheckpointDir(out_dir);
  RETURN_IF_ERROR(MakeDirs(dir));
  const std::string path = CheckpointPath(out_dir, contents.step);
  RETURN_IF_ERROR(WriteCheckpointFile(path, contents));
  RETURN_IF_ERROR(WriteFileAtomic((fs::path(dir) / kLatestFile).string(),
                                  absl::StrCat(fs::path(path).filename().string(), "\n")));
  if (keep_last > 0) {
    ASSIGN_OR_RETURN(std::vector<CheckpointEntry> all, ListCheckpoints(out_dir));
    const int excess = static_cast<int>(all.size()) - keep_last;
    for (int i = 0; i < excess; ++i) {
      if (all[i].step == contents.step) continue;  // never the one just written
      std::error_code ec;
      fs::remove(all[i].path, ec);
      if (ec) LogWarning("checkpoint", "cannot delete old checkpoint ", all[i].path, ": ",
                         ec.message());
    }
  }
  return path;
}

absl::StatusOr<std::string> ResolveCheckpoint(const std::string& file_or_dir) {
  std::error_code ec;
  if (fs::is_regular_file(file_or_dir, ec)) return file_or_dir;
  if (!fs::is_directory(file_or_dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat(file_or_dir, ": no such checkpoint file or run directory"));
  }
  // A run directory, or its checkpoints/ directory.
  std::string run = file_or_dir;
  fs::path normal = fs::path(file_or_dir).lexically_normal();
  if (normal.filename().empty()) normal = normal.parent_path();  // trailing '/'
  if (!fs::is_directory(CheckpointDir(run), ec) && normal.filename() == "checkpoints") {
    run = normal.parent_path().empty() ? std::string(".") : normal.parent_path().string();
  }
  const fs::path latest = fs::path(CheckpointDir(run)) / kLatestFile;
  if (fs::is_regular_file(latest, ec)) {
    ASSIGN_OR_RETURN(std::string name, ReadFile(latest.string(), 4096));
    name = std::string(absl::StripAsciiWhitespace(name));
    int64_t step = 0;
    if (!ParseCheckpointName(name, &step)) {
      return absl::DataLossError(
          absl::StrCat(latest.string(), ": does not name a checkpoint: '", name, "'"));
    }
    const fs::path path = fs::path(CheckpointDir(run)) / name;
    if (fs::is_regular_file(path, ec)) return path.string();
    LogWarning("checkpoint", latest.string(), " names missing ", path.string(),
               "; using the newest checkpoint present");
  }
  ASSIGN_OR_RETURN(std::vector<CheckpointEntry> all, ListCheckpoints(run));
  if (all.empty()) {
    return absl::NotFoundError(absl::StrCat(file_or_dir, ": no checkpoints (expected ",
                                            CheckpointDir(run), "/ckpt-<step>.pt)"));
  }
  return all.back().path;
}

}  // namespace pianola
