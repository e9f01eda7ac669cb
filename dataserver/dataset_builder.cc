#include "dataserver/dataset_builder.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/status_macros.h"
#include "dataserver/audio_io.h"
#include "dataserver/dataset.h"
#include "dataserver/renderer.h"
#include "dataserver/timbres.h"
#include "google/protobuf/text_format.h"

namespace pianola {
namespace {

namespace fs = std::filesystem;

constexpr int kMinKey = 21;
constexpr int kMaxKey = 108;

std::string Join(const std::string& dir, absl::string_view file) {
  return absl::StrCat(dir, "/", file);
}

// Position of a piece in [0, 1) from a stable hash of its name.
double PieceHash(const std::string& piece) {
  StableHasher h;
  h.Update(std::string_view(piece.data(), piece.size()));
  return static_cast<double>(h.Finish() >> 11) / static_cast<double>(uint64_t{1} << 53);
}

std::string DatasetName(const BuildOptions& options) {
  if (!options.name.empty()) return options.name;
  fs::path p = fs::path(options.out_dir).lexically_normal();
  std::string name = p.filename().string();
  if (name.empty()) name = p.parent_path().filename().string();
  return name.empty() ? "dataset" : name;
}

bool HasPianoNotes(const midi::Performance& p) {
  for (const midi::Note& n : p.notes) {
    if (n.channel != midi::kDrumChannel && n.pitch >= kMinKey && n.pitch <= kMaxKey &&
        n.velocity >= 1) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::string BuildReport::Summary(absl::string_view inputs_noun) const {
  return absl::StrCat(inputs, " ", inputs_noun, ", ", pieces, " pieces, ", recordings,
                      " recordings, ", skipped.size(), " skipped");
}

std::string BuildReport::Text(absl::string_view inputs_noun) const {
  std::string out = Summary(inputs_noun) + "\n";
  for (const std::string& s : skipped) absl::StrAppend(&out, "skipped: ", s, "\n");
  return out;
}

int EffectiveThreads(int threads, int n) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, std::min(threads, n));
}

absl::Status ParallelFor(int n, int threads,
                         const std::function<absl::Status(int index, int worker)>& fn) {
  if (n <= 0) return absl::OkStatus();
  threads = EffectiveThreads(threads, n);
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  absl::Status first_error;
  auto work = [&](int worker) {
    while (!failed.load()) {
      int i = next.fetch_add(1);
      if (i >= n) return;
      absl::Status s = fn(i, worker);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = s;
        failed.store(true);
      }
    }
  };
  if (threads == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(work, t);
    for (std::thread& t : pool) t.join();
  }
  return first_error;
}

RecordingIndex IndexRecording(const midi::Performance& performance, int sample_rate,
                              int64_t num_samples) {
  struct N {
    int64_t start, end;
    uint32_t key, velocity;
  };
  std::vector<N> notes;
  for (const midi::Note& n : midi::PianoNotes(performance)) {
    if (n.pitch < kMinKey || n.pitch > kMaxKey || n.velocity < 1 || n.velocity > 127) continue;
    int64_t start = SecondsToSample(n.start, sample_rate);
    int64_t end = std::max(start, SecondsToSample(n.end, sample_rate));
    if (start < 0 || start >= num_samples) continue;
    notes.push_back({start, std::min(end, num_samples), static_cast<uint32_t>(n.pitch),
                     static_cast<uint32_t>(n.velocity)});
  }
  std::sort(notes.begin(), notes.end(), [](const N& a, const N& b) {
    return std::tie(a.start, a.key, a.end, a.velocity) < std::tie(b.start, b.key, b.end, b.velocity);
  });
  RecordingIndex ri;
  ri.set_num_samples(num_samples);
  for (const N& n : notes) {
    ri.add_note_start(n.start);
    ri.add_note_end(n.end);
    ri.add_note_key(n.key);
    ri.add_note_velocity(n.velocity);
  }
  for (const midi::Interval& iv : midi::SustainIntervals(performance)) {
    int64_t start = std::max<int64_t>(0, SecondsToSample(iv.start, sample_rate));
    int64_t end = std::min(num_samples, SecondsToSample(iv.end, sample_rate));
    if (end <= start) continue;
    if (ri.pedal_end_size() > 0 && start < ri.pedal_end(ri.pedal_end_size() - 1)) {
      start = ri.pedal_end(ri.pedal_end_size() - 1);  // rounding never overlaps; be sure
      if (end <= start) continue;
    }
    ri.add_pedal_start(start);
    ri.add_pedal_end(end);
  }
  return ri;
}

std::map<std::string, Split> SplitPieces(const std::vector<std::string>& pieces) {
  std::map<std::string, Split> out;
  std::map<std::string, double> hash;
  for (const std::string& p : pieces) {
    double u = PieceHash(p);
    hash[p] = u;
    out[p] = u < 0.8 ? TRAIN : u < 0.9 ? VALIDATION : TEST;
  }
  auto count = [&](Split s) {
    return std::count_if(out.begin(), out.end(), [s](const auto& kv) { return kv.second == s; });
  };
  // Moves the piece of split `from` whose hash is nearest `target` to `to`.
  auto move = [&](Split from, Split to, double target) {
    const std::string* best = nullptr;
    for (const auto& [name, split] : out) {
      if (split != from) continue;
      if (best == nullptr || std::abs(hash[name] - target) < std::abs(hash[*best] - target) ||
          (std::abs(hash[name] - target) == std::abs(hash[*best] - target) && name < *best)) {
        best = &name;
      }
    }
    if (best) out[*best] = to;
  };
  if (!out.empty() && count(TRAIN) == 0) {
    move(count(TEST) > 0 ? TEST : VALIDATION, TRAIN, 0.8);
    if (count(TRAIN) == 0) move(VALIDATION, TRAIN, 0.8);
  }
  if (out.size() >= 3) {
    if (count(VALIDATION) == 0) {
      if (count(TRAIN) > 1) move(TRAIN, VALIDATION, 0.85);
      else move(TEST, VALIDATION, 0.85);
    }
    if (count(TEST) == 0) {
      if (count(TRAIN) > 1) move(TRAIN, TEST, 0.95);
      else move(VALIDATION, TEST, 0.95);
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> FindMidiFiles(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, ": not a directory"));
  }
  std::vector<std::string> out;
  fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": ", ec.message()));
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat(dir, ": ", ec.message()));
    if (!it->is_regular_file(ec)) continue;
    std::string ext = absl::AsciiStrToLower(it->path().extension().string());
    if (ext == ".mid" || ext == ".midi") {
      out.push_back(fs::relative(it->path(), dir, ec).generic_string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string PieceNameFromPath(absl::string_view relative_path) {
  std::string path(relative_path);
  size_t slash = path.rfind('/');
  size_t dot = path.rfind('.');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash) && dot > 0) {
    path.resize(dot);
  }
  std::string out;
  for (char c : path) {
    bool ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    out.push_back(ok ? c : '_');
  }
  while (!out.empty() && out.front() == '.') out.erase(out.begin());
  return out.empty() ? "piece" : out;
}

absl::StatusOr<BuildReport> BuildRenderedDataset(const BuildOptions& options) {
  if (options.midi_dir.empty() || options.out_dir.empty()) {
    return absl::InvalidArgumentError("build needs a MIDI directory and an output directory");
  }
  TimbreSet timbres = options.timbres.timbre_size() > 0 ? options.timbres : DefaultTimbres();
  RETURN_IF_ERROR(ValidateTimbreSet(timbres, "timbres"));
  RenderOptions render;
  render.sample_rate = options.sample_rate;
  render.release_tail_seconds = options.release_tail_seconds;
  render.max_seconds = options.seconds_limit;
  {
    // Fail before any work on a timbre whose soundfont or preset is unusable.
    ASSIGN_OR_RETURN(std::unique_ptr<Renderer> checker, Renderer::Create(render));
    for (const Timbre& t : timbres.timbre()) RETURN_IF_ERROR(checker->CheckTimbre(t));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> files, FindMidiFiles(options.midi_dir));
  BuildReport report;
  report.inputs = static_cast<int>(files.size());
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(options.midi_dir, ": no .mid or .midi files"));
  }
  RETURN_IF_ERROR(MakeDirs(Join(options.out_dir, "audio")));
  RETURN_IF_ERROR(MakeDirs(Join(options.out_dir, "midi")));

  // Unique piece names, in file order.
  std::vector<std::string> piece_of(files.size());
  {
    std::set<std::string> used;
    for (size_t i = 0; i < files.size(); ++i) {
      std::string base = PieceNameFromPath(files[i]), name = base;
      for (int k = 2; !used.insert(name).second; ++k) name = absl::StrCat(base, "-", k);
      piece_of[i] = name;
    }
  }

  // Pass 1: parse every file; copy the good ones.
  std::vector<std::string> error_of(files.size());
  const int threads = EffectiveThreads(options.threads, static_cast<int>(files.size() * timbres.timbre_size()));
  RETURN_IF_ERROR(ParallelFor(static_cast<int>(files.size()), threads, [&](int i, int) -> absl::Status {
    const std::string path = Join(options.midi_dir, files[i]);
    absl::StatusOr<std::string> bytes = ReadFile(path, int64_t{64} << 20);
    if (!bytes.ok()) {
      error_of[i] = std::string(bytes.status().message());
      return absl::OkStatus();
    }
    absl::StatusOr<midi::Performance> perf = midi::ParseMidi(*bytes, path);
    if (!perf.ok()) {
      error_of[i] = std::string(perf.status().message());
      return absl::OkStatus();
    }
    if (!HasPianoNotes(*perf)) {
      error_of[i] = absl::StrCat(path, ": no piano notes (keys 21..108 off the drum channel)");
      return absl::OkStatus();
    }
    if (perf->warnings.Total() > 0) {
      LogWarning("build", path, ": repaired: ", perf->warnings.Summary());
    }
    return WriteFileAtomic(Join(options.out_dir, absl::StrCat("midi/", piece_of[i], ".mid")), *bytes);
  }));
  std::vector<int> good;
  for (size_t i = 0; i < files.size(); ++i) {
    if (error_of[i].empty()) {
      good.push_back(static_cast<int>(i));
    } else {
      report.skipped.push_back(error_of[i]);
      LogWarning("build", "skipping ", error_of[i]);
    }
  }
  if (good.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(options.midi_dir, ": none of ", files.size(),
                                                   " MIDI files could be used:\n",
                                                   absl::StrJoin(report.skipped, "\n")));
  }
  std::vector<std::string> pieces;
  for (int i : good) pieces.push_back(piece_of[i]);
  std::map<std::string, Split> splits = SplitPieces(pieces);

  // Pass 2: render every (piece, timbre) on per-thread renderers.
  const int jobs = static_cast<int>(good.size()) * timbres.timbre_size();
  std::vector<int64_t> samples_of(jobs, -1);
  std::vector<std::string> render_error(jobs);
  std::vector<std::unique_ptr<Renderer>> renderers(threads);
  Progress progress("build", "recordings", jobs, absl::Seconds(1),
                    stderr);
  absl::Status status = ParallelFor(jobs, threads, [&](int j, int worker) -> absl::Status {
    const int file = good[j / timbres.timbre_size()];
    const Timbre& timbre = timbres.timbre(j % timbres.timbre_size());
    if (!renderers[worker]) {
      ASSIGN_OR_RETURN(renderers[worker], Renderer::Create(render));
    }
    const std::string path = Join(options.midi_dir, files[file]);
    absl::StatusOr<midi::Performance> perf = midi::ReadMidiFile(path);
    absl::StatusOr<std::vector<int16_t>> audio =
        perf.ok() ? renderers[worker]->Render(*perf, timbre) : perf.status();
    if (!audio.ok()) {
      render_error[j] = absl::StrCat(path, " with timbre ", timbre.name(), ": ", audio.status().message());
    } else {
      const std::string id = absl::StrCat(piece_of[file], "__", timbre.name());
      RETURN_IF_ERROR(WriteWavFile(Join(options.out_dir, absl::StrCat("audio/", id, ".wav")), *audio,
                                   options.sample_rate));
      samples_of[j] = static_cast<int64_t>(audio->size());
    }
    if (options.progress) progress.Add(1);
    return absl::OkStatus();
  });
  if (options.progress) progress.Finish();
  RETURN_IF_ERROR(status);
  renderers.clear();

  DatasetManifest manifest;
  manifest.set_name(DatasetName(options));
  manifest.set_sample_rate(options.sample_rate);
  *manifest.mutable_timbres() = timbres.timbre();
  std::set<std::string> pieces_used;
  for (int j = 0; j < jobs; ++j) {
    if (!render_error[j].empty()) {
      report.skipped.push_back(render_error[j]);
      continue;
    }
    const int file = good[j / timbres.timbre_size()];
    const Timbre& timbre = timbres.timbre(j % timbres.timbre_size());
    RecordingEntry* e = manifest.add_recordings();
    e->set_id(absl::StrCat(piece_of[file], "__", timbre.name()));
    e->set_piece(piece_of[file]);
    e->set_timbre(timbre.name());
    e->set_split(splits[piece_of[file]]);
    e->set_midi(absl::StrCat("midi/", piece_of[file], ".mid"));
    e->set_audio(absl::StrCat("audio/", e->id(), ".wav"));
    e->set_num_samples(samples_of[j]);
    e->set_duration_seconds(static_cast<double>(samples_of[j]) / options.sample_rate);
    pieces_used.insert(piece_of[file]);
  }
  report.pieces = static_cast<int>(pieces_used.size());
  report.recordings = manifest.recordings_size();
  if (manifest.recordings_size() == 0) {
    return absl::InternalError(absl::StrCat("nothing rendered:\n", absl::StrJoin(report.skipped, "\n")));
  }
  manifest.set_created_by(absl::StrCat("pianola-dataserver build: ", report.Summary(),
                                       report.skipped.empty() ? "" : " (see build_report.txt)"));
  RETURN_IF_ERROR(WriteFileAtomic(Join(options.out_dir, kBuildReportFile), report.Text()));
  RETURN_IF_ERROR(BuildIndex(options.out_dir, std::move(manifest), options.progress));
  return report;
}

absl::Status BuildIndex(const std::string& dir, bool progress) {
  const std::string path = Join(dir, kManifestFile);
  ASSIGN_OR_RETURN(std::string text, ReadFile(path, int64_t{1} << 30));
  DatasetManifest manifest;
  if (!google::protobuf::TextFormat::ParseFromString(text, &manifest)) {
    return absl::DataLossError(absl::StrCat(path, ": not a valid DatasetManifest"));
  }
  return BuildIndex(dir, std::move(manifest), progress);
}

absl::Status BuildIndex(const std::string& dir, DatasetManifest manifest, bool progress) {
  if (manifest.sample_rate() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": manifest sample_rate ", manifest.sample_rate()));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<AudioCacheWriter> cache, AudioCacheWriter::Create(dir));
  DatasetIndex index;
  Progress bar("index", "recordings", manifest.recordings_size(), absl::Seconds(1),
               stderr);
  AudioDecodeOptions decode;
  decode.target_rate = manifest.sample_rate();
  for (int r = 0; r < manifest.recordings_size(); ++r) {
    RecordingEntry* e = manifest.mutable_recordings(r);
    const std::string where = absl::StrCat(dir, ": recording ", r, " (", e->id(), ")");
    absl::StatusOr<midi::Performance> perf = midi::ReadMidiFile(Join(dir, e->midi()));
    if (!perf.ok()) return Annotate(perf.status(), absl::StrCat(where, ": field midi"));
    absl::StatusOr<DecodedAudio> audio = ReadAudioFile(Join(dir, e->audio()), decode);
    if (!audio.ok()) return Annotate(audio.status(), absl::StrCat(where, ": field audio"));
    const int64_t n = static_cast<int64_t>(audio->samples.size());
    e->set_num_samples(n);
    e->set_duration_seconds(static_cast<double>(n) / manifest.sample_rate());
    RecordingIndex ri = IndexRecording(*perf, manifest.sample_rate(), n);
    ASSIGN_OR_RETURN(int64_t offset, cache->Append(audio->samples));
    ri.set_audio_offset(offset);
    *index.add_recordings() = std::move(ri);
    if (progress) bar.Add(1);
  }
  if (progress) bar.Finish();
  RETURN_IF_ERROR(cache->Finish());
  return WriteDatasetIndex(dir, manifest, std::move(index));
}

}  // namespace pianola
