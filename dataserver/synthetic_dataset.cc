#include "dataserver/synthetic_dataset.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace pianola {
namespace {

struct NoteRow {
  int64_t start, end;
  uint32_t key, velocity;
};

}  // namespace

int16_t SyntheticSample(uint64_t seed, int r, int64_t i) {
  return static_cast<int16_t>(
      HashCombine(HashCombine(seed, static_cast<uint64_t>(r)), static_cast<uint64_t>(i)) &
      0xffff);
}

SyntheticDatasetParts MakeSyntheticDatasetParts(const SyntheticDatasetOptions& options) {
  SyntheticDatasetParts parts;
  parts.manifest.set_name(options.name);
  parts.manifest.set_sample_rate(options.sample_rate);
  parts.manifest.set_created_by("pianola synthetic dataset");
  uint64_t rng = HashCombine(options.seed, 0x5359);
  auto next = [&rng](uint64_t bound) {
    rng = Mix64(rng);
    return bound == 0 ? 0 : rng % bound;
  };
  int r = 0;
  for (int p = 0; p < options.pieces; ++p) {
    const double seconds = options.piece_seconds[p % options.piece_seconds.size()];
    const Split split = options.piece_splits[p % options.piece_splits.size()];
    const int64_t num_samples = static_cast<int64_t>(seconds * options.sample_rate);
    // The piece's notes, shared by all its renderings.
    std::vector<NoteRow> notes;
    const int64_t count = static_cast<int64_t>(seconds * options.notes_per_second);
    for (int64_t n = 0; n < count; ++n) {
      NoteRow note;
      note.start = static_cast<int64_t>(next(static_cast<uint64_t>(std::max<int64_t>(num_samples, 1))));
      // Mostly short notes, a few held for a long time (up to the end).
      const int64_t max_len = next(10) == 0 ? num_samples : options.sample_rate / 2;
      note.end = std::min(num_samples, note.start + 1 + static_cast<int64_t>(next(max_len)));
      note.key = 21 + static_cast<uint32_t>(next(88));
      note.velocity = 1 + static_cast<uint32_t>(next(127));
      notes.push_back(note);
    }
    std::sort(notes.begin(), notes.end(), [](const NoteRow& a, const NoteRow& b) {
      return std::tie(a.start, a.key, a.end) < std::tie(b.start, b.key, b.end);
    });
    // Sustain intervals: alternating up/down stretches.
    std::vector<std::pair<int64_t, int64_t>> pedal;
    for (int64_t t = static_cast<int64_t>(next(options.sample_rate)); t < num_samples;) {
      const int64_t end = std::min(num_samples, t + 1 + static_cast<int64_t>(next(options.sample_rate)));
      pedal.emplace_back(t, end);
      t = end + 1 + static_cast<int64_t>(next(options.sample_rate));
    }
    for (const std::string& timbre : options.timbres) {
      RecordingEntry* e = parts.manifest.add_recordings();
      e->set_id(absl::StrCat("piece", p, "-", timbre));
      e->set_piece(absl::StrCat("piece", p));
      e->set_timbre(timbre);
      e->set_split(split);
      e->set_midi(absl::StrCat("midi/piece", p, ".mid"));
      e->set_audio(absl::StrCat("audio/", e->id(), ".wav"));
      e->set_num_samples(num_samples);
      e->set_duration_seconds(static_cast<double>(num_samples) / options.sample_rate);
      RecordingIndex* ri = parts.index.add_recordings();
      ri->set_audio_offset(static_cast<int64_t>(parts.audio.size()));
      ri->set_num_samples(num_samples);
      for (const NoteRow& note : notes) {
        ri->add_note_start(note.start);
        ri->add_note_end(note.end);
        ri->add_note_key(note.key);
        ri->add_note_velocity(note.velocity);
      }
      for (const auto& [start, end] : pedal) {
        ri->add_pedal_start(start);
        ri->add_pedal_end(end);
      }
      for (int64_t i = 0; i < num_samples; ++i) {
        parts.audio.push_back(SyntheticSample(options.seed, r, i));
      }
      ++r;
    }
  }
  parts.index.set_sample_rate(options.sample_rate);
  parts.index.set_total_samples(static_cast<int64_t>(parts.audio.size()));
  return parts;
}

absl::StatusOr<std::unique_ptr<Dataset>> MakeSyntheticDataset(
    const SyntheticDatasetOptions& options) {
  SyntheticDatasetParts parts = MakeSyntheticDatasetParts(options);
  return Dataset::FromMemory(std::move(parts.manifest), std::move(parts.index),
                             std::move(parts.audio));
}

absl::Status WriteSyntheticDataset(const SyntheticDatasetOptions& options,
                                   const std::string& dir) {
  SyntheticDatasetParts parts = MakeSyntheticDatasetParts(options);
  ASSIGN_OR_RETURN(std::unique_ptr<AudioCacheWriter> writer, AudioCacheWriter::Create(dir));
  ASSIGN_OR_RETURN(int64_t offset, writer->Append(parts.audio));
  (void)offset;
  RETURN_IF_ERROR(writer->Finish());
  return WriteDatasetIndex(dir, parts.manifest, std::move(parts.index));
}

}  // namespace pianola
