#include "dataserver/dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "google/protobuf/text_format.h"

namespace pianola {
namespace {

std::string JoinPath(const std::string& dir, absl::string_view file) {
  return dir.empty() ? std::string(file) : absl::StrCat(dir, "/", file);
}

template <typename Field>
void HashField(StableHasher& h, const Field& field) {
  h.UpdateWord(static_cast<uint64_t>(field.size()));
  if (field.size() > 0) h.Update(field.data(), sizeof(field.Get(0)) * field.size());
}

}  // namespace

absl::StatusOr<MappedFile> MappedFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
    return absl::InternalError(absl::StrCat(path, ": open: ", std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size % 2 != 0) {
    ::close(fd);
    return absl::DataLossError(absl::StrCat(path, ": odd size or unreadable"));
  }
  MappedFile f;
  if (st.st_size > 0) {
    void* m = ::mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
      ::close(fd);
      return absl::InternalError(absl::StrCat(path, ": mmap: ", std::strerror(errno)));
    }
    f.data_ = m;
    f.bytes_ = static_cast<size_t>(st.st_size);
  }
  ::close(fd);
  return f;
}

MappedFile::MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(data_, bytes_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, bytes_);
}

uint64_t ComputeFingerprint(const DatasetManifest& manifest, const DatasetIndex& index,
                            absl::Span<const int16_t> audio) {
  StableHasher h;
  h.UpdateWord(static_cast<uint64_t>(manifest.sample_rate()));
  h.UpdateWord(static_cast<uint64_t>(manifest.recordings_size()));
  for (const RecordingEntry& e : manifest.recordings()) {
    h.Update(e.id());
    h.Update(e.piece());
    h.Update(e.timbre());
    h.UpdateWord(static_cast<uint64_t>(e.split()));
    h.UpdateWord(static_cast<uint64_t>(e.num_samples()));
  }
  for (const RecordingIndex& r : index.recordings()) {
    h.UpdateWord(static_cast<uint64_t>(r.audio_offset()));
    h.UpdateWord(static_cast<uint64_t>(r.num_samples()));
    HashField(h, r.note_start());
    HashField(h, r.note_end());
    HashField(h, r.note_key());
    HashField(h, r.note_velocity());
    HashField(h, r.pedal_start());
    HashField(h, r.pedal_end());
  }
  h.UpdateWord(audio.size());
  h.Update(audio.data(), audio.size() * sizeof(int16_t));
  return h.Finish();
}

std::string SplitName(Split split) {
  switch (split) {
    case TRAIN:
      return "train";
    case VALIDATION:
      return "validation";
    case TEST:
      return "test";
    default:
      return "unspecified";
  }
}

absl::StatusOr<Split> ParseSplit(absl::string_view name) {
  if (name == "train") return TRAIN;
  if (name == "validation" || name == "valid" || name == "val") return VALIDATION;
  if (name == "test") return TEST;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown split '", name, "' (want train, validation or test)"));
}

Dataset::~Dataset() = default;

absl::Span<const int16_t> Dataset::audio(int r) const {
  const RecordingIndex& ri = index_.recordings(r);
  return absl::Span<const int16_t>(audio_ + ri.audio_offset(), ri.num_samples());
}

absl::Status ValidateDataset(const std::string& where, const DatasetManifest& manifest,
                             const DatasetIndex& index, int64_t audio_samples) {
  auto loss = [&](auto&&... parts) {
    return absl::DataLossError(absl::StrCat(where, ": ", parts...));
  };
  if (manifest.sample_rate() <= 0) return loss("manifest sample_rate ", manifest.sample_rate());
  if (index.sample_rate() != manifest.sample_rate()) {
    return loss("index sample_rate ", index.sample_rate(), " != manifest sample_rate ",
                manifest.sample_rate());
  }
  if (index.recordings_size() != manifest.recordings_size()) {
    return loss("index has ", index.recordings_size(), " recordings, manifest ",
                manifest.recordings_size());
  }
  for (int r = 0; r < index.recordings_size(); ++r) {
    const RecordingIndex& ri = index.recordings(r);
    const RecordingEntry& e = manifest.recordings(r);
    const std::string rec = absl::StrCat("recording ", r, " (", e.id(), ")");
    if (ri.num_samples() != e.num_samples()) {
      return loss(rec, ": index num_samples ", ri.num_samples(), " != manifest ", e.num_samples());
    }
    if (ri.audio_offset() < 0 || ri.num_samples() < 0 ||
        ri.audio_offset() > audio_samples - ri.num_samples()) {
      return loss(rec, ": audio_offset ", ri.audio_offset(), " + num_samples ", ri.num_samples(),
                  " outside ", kAudioCacheFile, " (", audio_samples, " samples)");
    }
    const int n = ri.note_start_size();
    if (ri.note_end_size() != n || ri.note_key_size() != n || ri.note_velocity_size() != n) {
      return loss(rec, ": note arrays differ in length");
    }
    for (int i = 0; i < n; ++i) {
      if (ri.note_start(i) < 0 || ri.note_end(i) < ri.note_start(i) || ri.note_key(i) < 21 ||
          ri.note_key(i) > 108 || ri.note_velocity(i) < 1 || ri.note_velocity(i) > 127 ||
          (i > 0 && ri.note_start(i) < ri.note_start(i - 1))) {
        return loss(rec, ": note ", i, " invalid or out of order");
      }
    }
    if (ri.pedal_start_size() != ri.pedal_end_size()) {
      return loss(rec, ": pedal arrays differ in length");
    }
    for (int i = 0; i < ri.pedal_start_size(); ++i) {
      if (ri.pedal_end(i) < ri.pedal_start(i) ||
          (i > 0 && ri.pedal_start(i) < ri.pedal_end(i - 1))) {
        return loss(rec, ": pedal interval ", i, " invalid, overlapping or out of order");
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Dataset>> Dataset::Open(const std::string& dir) {
  std::unique_ptr<Dataset> ds(new Dataset());
  ds->dir_ = dir;
  const std::string manifest_path = JoinPath(dir, kManifestFile);
  ASSIGN_OR_RETURN(std::string text, ReadFile(manifest_path, int64_t{1} << 30));
  if (!google::protobuf::TextFormat::ParseFromString(text, &ds->manifest_)) {
    return absl::DataLossError(absl::StrCat(manifest_path, ": not a valid DatasetManifest"));
  }
  const std::string index_path = JoinPath(dir, kIndexFile);
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(index_path, int64_t{1} << 31));
  if (!ds->index_.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat(index_path, ": not a valid DatasetIndex"));
  }
  const std::string audio_path = JoinPath(dir, kAudioCacheFile);
  ASSIGN_OR_RETURN(ds->mapping_, MappedFile::Open(audio_path));
  ds->audio_ = ds->mapping_.span().data();
  ds->audio_samples_ = ds->mapping_.samples();
  if (ds->index_.total_samples() != ds->audio_samples_) {
    return absl::DataLossError(absl::StrCat(audio_path, ": ", ds->audio_samples_,
                                            " samples, index total_samples says ",
                                            ds->index_.total_samples()));
  }
  RETURN_IF_ERROR(ValidateDataset(dir, ds->manifest_, ds->index_, ds->audio_samples_));
  return ds;
}

absl::StatusOr<std::unique_ptr<Dataset>> Dataset::FromMemory(DatasetManifest manifest,
                                                             DatasetIndex index,
                                                             std::vector<int16_t> audio) {
  std::unique_ptr<Dataset> ds(new Dataset());
  ds->manifest_ = std::move(manifest);
  ds->index_ = std::move(index);
  ds->owned_audio_ = std::move(audio);
  ds->audio_ = ds->owned_audio_.data();
  ds->audio_samples_ = static_cast<int64_t>(ds->owned_audio_.size());
  ds->index_.set_sample_rate(ds->manifest_.sample_rate());
  ds->index_.set_total_samples(ds->audio_samples_);
  RETURN_IF_ERROR(ValidateDataset("in-memory dataset '" + ds->manifest_.name() + "'",
                                  ds->manifest_, ds->index_, ds->audio_samples_));
  ds->index_.set_fingerprint(ComputeFingerprint(ds->manifest_, ds->index_, ds->owned_audio_));
  return ds;
}

absl::StatusOr<std::unique_ptr<AudioCacheWriter>> AudioCacheWriter::Create(const std::string& dir) {
  RETURN_IF_ERROR(MakeDirs(dir));
  std::string tmp = JoinPath(dir, std::string(kAudioCacheFile) + ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat(tmp, ": ", std::strerror(errno)));
  return std::unique_ptr<AudioCacheWriter>(new AudioCacheWriter(dir, fd));
}

AudioCacheWriter::~AudioCacheWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(JoinPath(dir_, std::string(kAudioCacheFile) + ".tmp").c_str());
  }
}

absl::StatusOr<int64_t> AudioCacheWriter::Append(absl::Span<const int16_t> samples) {
  if (fd_ < 0) return absl::FailedPreconditionError("AudioCacheWriter already finished");
  const char* p = reinterpret_cast<const char*>(samples.data());
  size_t left = samples.size() * sizeof(int16_t);
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InternalError(absl::StrCat(JoinPath(dir_, kAudioCacheFile), ".tmp: write: ",
                                              std::strerror(errno)));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  int64_t offset = samples_;
  samples_ += static_cast<int64_t>(samples.size());
  return offset;
}

absl::Status AudioCacheWriter::Finish() {
  if (fd_ < 0) return absl::FailedPreconditionError("AudioCacheWriter already finished");
  std::string tmp = JoinPath(dir_, std::string(kAudioCacheFile) + ".tmp");
  if (::fsync(fd_) != 0) {
    return absl::InternalError(absl::StrCat(tmp, ": fsync: ", std::strerror(errno)));
  }
  ::close(fd_);
  fd_ = -1;
  std::string path = JoinPath(dir_, kAudioCacheFile);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(path, ": rename: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status WriteDatasetIndex(const std::string& dir, const DatasetManifest& manifest,
                               DatasetIndex index) {
  const std::string audio_path = JoinPath(dir, kAudioCacheFile);
  ASSIGN_OR_RETURN(MappedFile audio, MappedFile::Open(audio_path));
  index.set_sample_rate(manifest.sample_rate());
  index.set_total_samples(audio.samples());
  RETURN_IF_ERROR(ValidateDataset(dir, manifest, index, audio.samples()));
  index.set_fingerprint(ComputeFingerprint(manifest, index, audio.span()));
  std::string index_bytes;
  if (!index.SerializeToString(&index_bytes)) {
    return absl::InternalError("serializing DatasetIndex");
  }
  RETURN_IF_ERROR(WriteFileAtomic(JoinPath(dir, kIndexFile), index_bytes));
  std::string text;
  google::protobuf::TextFormat::PrintToString(manifest, &text);
  return WriteFileAtomic(JoinPath(dir, kManifestFile), text);
}

}  // namespace pianola
