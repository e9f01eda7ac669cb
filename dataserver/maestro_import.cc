#include "dataserver/maestro_import.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/status_macros.h"
#include "dataserver/audio_io.h"
#include "dataserver/dataset.h"
#include "dataserver/midi.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace pianola {
namespace {

namespace fs = std::filesystem;

constexpr const char* kMaestroColumns[] = {"canonical_composer", "canonical_title", "split", "year",
                                           "midi_filename", "audio_filename"};

// Column positions by header name; InvalidArgument naming missing columns.
absl::StatusOr<std::map<std::string, size_t>> Columns(const std::vector<std::string>& header,
                                                      const std::vector<std::string>& required,
                                                      absl::string_view name) {
  std::map<std::string, size_t> at;
  for (size_t i = 0; i < header.size(); ++i) {
    at[std::string(absl::StripAsciiWhitespace(header[i]))] = i;
  }
  std::vector<std::string> missing;
  for (const std::string& r : required) {
    if (!at.count(r)) missing.push_back(r);
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": header lacks column(s) ",
                                                   absl::StrJoin(missing, ", ")));
  }
  return at;
}

std::string Cell(const std::vector<std::string>& record, const std::map<std::string, size_t>& at,
                 const std::string& column) {
  auto it = at.find(column);
  if (it == at.end() || it->second >= record.size()) return "";
  return std::string(absl::StripAsciiWhitespace(record[it->second]));
}

std::string MaestroPiece(const std::string& composer, const std::string& title) {
  return absl::StrCat(composer, ": ", title);
}

std::string MaestroTimbre(const std::string& year) {
  return year.empty() ? "" : absl::StrCat("maestro-", year);
}

std::string Dir(const std::string& file) {
  fs::path p = fs::path(file).parent_path();
  return p.empty() ? "." : p.string();
}

std::string Resolve(const std::string& base, const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  return absl::StrCat(base, "/", path);
}

// "maestro-v3.0.0.csv" sorts by its version numbers.
std::vector<int> VersionOf(const std::string& file) {
  std::vector<int> v;
  int cur = -1;
  for (char c : file) {
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      cur = (cur < 0 ? 0 : cur * 10) + (c - '0');
    } else if (cur >= 0) {
      v.push_back(cur);
      cur = -1;
    }
  }
  if (cur >= 0) v.push_back(cur);
  return v;
}

}  // namespace

absl::StatusOr<std::vector<std::vector<std::string>>> ParseCsv(absl::string_view text,
                                                               absl::string_view name) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false, field_started = false, after_quote = false;
  int line = 1, quote_line = 0;
  auto end_field = [&] {
    record.push_back(std::move(field));
    field.clear();
    field_started = after_quote = false;
  };
  auto end_record = [&] {
    end_field();
    // A blank line is no record.
    if (!(record.size() == 1 && record[0].empty())) records.push_back(std::move(record));
    record.clear();
  };
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 BOM
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
          after_quote = true;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_record();
      ++line;
    } else if (c == '"') {
      if (field_started || after_quote) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ":", line, ": stray '\"' inside an unquoted field"));
      }
      quoted = true;
      quote_line = line;
      field_started = true;
    } else {
      if (after_quote) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ":", line, ": text after a closing '\"'"));
      }
      field.push_back(c);
      field_started = true;
    }
  }
  if (quoted) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ":", quote_line, ": quoted field never closed"));
  }
  if (field_started || after_quote || !record.empty()) end_record();
  return records;
}

absl::StatusOr<std::vector<ImportRow>> ReadMaestroCsv(absl::string_view text, absl::string_view name) {
  ASSIGN_OR_RETURN(auto records, ParseCsv(text, name));
  if (records.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": empty"));
  std::vector<std::string> required(std::begin(kMaestroColumns), std::end(kMaestroColumns));
  ASSIGN_OR_RETURN(auto at, Columns(records[0], required, name));
  std::vector<ImportRow> rows;
  for (size_t r = 1; r < records.size(); ++r) {
    ImportRow row;
    row.row = static_cast<int>(r);
    row.source = std::string(name);
    row.piece = MaestroPiece(Cell(records[r], at, "canonical_composer"),
                             Cell(records[r], at, "canonical_title"));
    row.timbre = MaestroTimbre(Cell(records[r], at, "year"));
    row.split = Cell(records[r], at, "split");
    row.midi = Cell(records[r], at, "midi_filename");
    row.audio = Cell(records[r], at, "audio_filename");
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<std::vector<ImportRow>> ReadMaestroJson(absl::string_view text,
                                                       absl::string_view name) {
  google::protobuf::Struct root;
  auto status = google::protobuf::util::JsonStringToMessage(std::string(text), &root);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not a JSON object: ", std::string(status.message())));
  }
  std::map<std::string, const google::protobuf::Struct*> columns;
  for (const char* column : kMaestroColumns) {
    auto it = root.fields().find(column);
    if (it == root.fields().end() || !it->second.has_struct_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": field ", column, ": missing or not an object of row -> value"));
    }
    columns[column] = &it->second.struct_value();
  }
  // Row keys ("0", "1", ...) of the midi_filename column, in numeric order.
  std::vector<std::pair<int64_t, std::string>> keys;
  for (const auto& [key, value] : columns["midi_filename"]->fields()) {
    int64_t k;
    if (!absl::SimpleAtoi(key, &k)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": field midi_filename: row key '", key, "' is not a number"));
    }
    keys.emplace_back(k, key);
  }
  std::sort(keys.begin(), keys.end());
  auto cell = [&](const char* column, const std::string& key) -> std::string {
    const auto& fields = columns[column]->fields();
    auto it = fields.find(key);
    if (it == fields.end()) return "";
    const google::protobuf::Value& v = it->second;
    if (v.has_string_value() || v.kind_case() == google::protobuf::Value::kStringValue) {
      return std::string(absl::StripAsciiWhitespace(v.string_value()));
    }
    if (v.kind_case() == google::protobuf::Value::kNumberValue) {
      double d = v.number_value();
      if (d == static_cast<double>(static_cast<int64_t>(d))) return absl::StrCat(static_cast<int64_t>(d));
      return absl::StrCat(d);
    }
    return "";
  };
  std::vector<ImportRow> rows;
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string& key = keys[i].second;
    ImportRow row;
    row.row = static_cast<int>(keys[i].first) + 1;
    row.source = std::string(name);
    row.piece = MaestroPiece(cell("canonical_composer", key), cell("canonical_title", key));
    row.timbre = MaestroTimbre(cell("year", key));
    row.split = cell("split", key);
    row.midi = cell("midi_filename", key);
    row.audio = cell("audio_filename", key);
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<std::vector<ImportRow>> ReadManifestCsv(absl::string_view text,
                                                       absl::string_view name) {
  ASSIGN_OR_RETURN(auto records, ParseCsv(text, name));
  if (records.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": empty"));
  ASSIGN_OR_RETURN(auto at, Columns(records[0], {"midi", "audio", "timbre", "split"}, name));
  std::vector<ImportRow> rows;
  for (size_t r = 1; r < records.size(); ++r) {
    ImportRow row;
    row.row = static_cast<int>(r);
    row.source = std::string(name);
    row.midi = Cell(records[r], at, "midi");
    row.audio = Cell(records[r], at, "audio");
    row.timbre = Cell(records[r], at, "timbre");
    row.split = Cell(records[r], at, "split");
    row.piece = Cell(records[r], at, "piece");
    if (row.piece.empty() && !row.midi.empty()) row.piece = PieceNameFromPath(row.midi);
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<std::string> FindMaestroIndex(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return absl::NotFoundError(absl::StrCat(root, ": not a directory"));
  std::vector<std::string> csv, json;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    std::string file = entry.path().filename().string();
    if (!absl::StartsWith(file, "maestro-v")) continue;
    if (absl::EndsWith(file, ".csv")) csv.push_back(file);
    if (absl::EndsWith(file, ".json")) json.push_back(file);
  }
  auto newest = [](std::vector<std::string>& v) {
    return *std::max_element(v.begin(), v.end(), [](const std::string& a, const std::string& b) {
      return VersionOf(a) < VersionOf(b);
    });
  };
  if (!csv.empty()) return absl::StrCat(root, "/", newest(csv));
  if (!json.empty()) return absl::StrCat(root, "/", newest(json));
  return absl::NotFoundError(absl::StrCat(root, ": no maestro-v*.csv or maestro-v*.json"));
}

absl::StatusOr<BuildReport> ImportDataset(const ImportOptions& options) {
  if (options.maestro_root.empty() == options.manifest_csv.empty()) {
    return absl::InvalidArgumentError("import needs exactly one of --maestro ROOT and --manifest CSV");
  }
  if (options.out_dir.empty()) return absl::InvalidArgumentError("import needs --out DATASET");
  if (options.sample_rate < 1000 || options.sample_rate > 192000) {
    return absl::InvalidArgumentError(absl::StrCat("sample rate ", options.sample_rate, " outside 1000..192000"));
  }
  std::string index_path, base;
  std::vector<ImportRow> rows;
  if (!options.maestro_root.empty()) {
    ASSIGN_OR_RETURN(index_path, FindMaestroIndex(options.maestro_root));
    base = options.maestro_root;
    ASSIGN_OR_RETURN(std::string text, ReadFile(index_path, int64_t{256} << 20));
    if (absl::EndsWith(index_path, ".json")) {
      ASSIGN_OR_RETURN(rows, ReadMaestroJson(text, index_path));
    } else {
      ASSIGN_OR_RETURN(rows, ReadMaestroCsv(text, index_path));
    }
  } else {
    index_path = options.manifest_csv;
    base = Dir(index_path);
    ASSIGN_OR_RETURN(std::string text, ReadFile(index_path, int64_t{256} << 20));
    ASSIGN_OR_RETURN(rows, ReadManifestCsv(text, index_path));
  }
  const bool maestro = !options.maestro_root.empty();
  const char* midi_field = maestro ? "midi_filename" : "midi";
  const char* audio_field = maestro ? "audio_filename" : "audio";
  const char* timbre_field = maestro ? "year" : "timbre";

  RETURN_IF_ERROR(MakeDirs(absl::StrCat(options.out_dir, "/audio")));
  RETURN_IF_ERROR(MakeDirs(absl::StrCat(options.out_dir, "/midi")));

  // Recording ids from the audio path, unique.
  std::vector<std::string> id_of(rows.size());
  {
    std::set<std::string> used;
    for (size_t i = 0; i < rows.size(); ++i) {
      std::string base_id = PieceNameFromPath(rows[i].audio.empty() ? absl::StrCat("row", rows[i].row)
                                                                    : rows[i].audio);
      std::string id = base_id;
      for (int k = 2; !used.insert(id).second; ++k) id = absl::StrCat(base_id, "-", k);
      id_of[i] = id;
    }
  }

  std::vector<std::string> error_of(rows.size());
  std::vector<Split> split_of(rows.size(), SPLIT_UNSPECIFIED);
  Progress progress("import", "recordings", static_cast<int64_t>(rows.size()), absl::Seconds(1), stderr);
  AudioDecodeOptions decode;
  decode.target_rate = options.sample_rate;
  absl::Status status = ParallelFor(static_cast<int>(rows.size()), options.threads,
                                    [&](int i, int) -> absl::Status {
    const ImportRow& row = rows[i];
    auto fail = [&](absl::string_view field, absl::string_view why) {
      error_of[i] = absl::StrCat(row.source, ":", row.row, ": field ", field, ": ", why);
      if (options.progress) progress.Add(1);
      return absl::OkStatus();
    };
    if (row.midi.empty()) return fail(midi_field, "empty");
    if (row.audio.empty()) return fail(audio_field, "empty");
    if (row.timbre.empty()) return fail(timbre_field, "empty");
    if (row.piece.empty() || row.piece == ": ") return fail(maestro ? "canonical_title" : "piece", "empty");
    absl::StatusOr<Split> split = ParseSplit(row.split);
    if (!split.ok()) return fail("split", split.status().message());
    split_of[i] = *split;
    const std::string midi_path = Resolve(base, row.midi);
    absl::StatusOr<std::string> midi_bytes = ReadFile(midi_path, int64_t{64} << 20);
    if (!midi_bytes.ok()) return fail(midi_field, midi_bytes.status().message());
    absl::StatusOr<midi::Performance> perf = midi::ParseMidi(*midi_bytes, midi_path);
    if (!perf.ok()) return fail(midi_field, perf.status().message());
    absl::StatusOr<DecodedAudio> audio = ReadAudioFile(Resolve(base, row.audio), decode);
    if (!audio.ok()) return fail(audio_field, audio.status().message());
    RETURN_IF_ERROR(WriteWavFile(absl::StrCat(options.out_dir, "/audio/", id_of[i], ".wav"),
                                 audio->samples, options.sample_rate));
    RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(options.out_dir, "/midi/", id_of[i], ".mid"), *midi_bytes));
    if (options.progress) progress.Add(1);
    return absl::OkStatus();
  });
  if (options.progress) progress.Finish();
  RETURN_IF_ERROR(status);

  BuildReport report;
  report.inputs = static_cast<int>(rows.size());
  DatasetManifest manifest;
  if (!options.name.empty()) {
    manifest.set_name(options.name);
  } else {
    fs::path p = fs::path(options.out_dir).lexically_normal();
    std::string n = p.filename().string();
    if (n.empty()) n = p.parent_path().filename().string();
    manifest.set_name(n.empty() ? "dataset" : n);
  }
  manifest.set_sample_rate(options.sample_rate);
  std::set<std::string> pieces;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!error_of[i].empty()) {
      report.skipped.push_back(error_of[i]);
      LogWarning("import", "skipping ", error_of[i]);
      continue;
    }
    RecordingEntry* e = manifest.add_recordings();
    e->set_id(id_of[i]);
    e->set_piece(rows[i].piece);
    e->set_timbre(rows[i].timbre);
    e->set_split(split_of[i]);
    e->set_midi(absl::StrCat("midi/", id_of[i], ".mid"));
    e->set_audio(absl::StrCat("audio/", id_of[i], ".wav"));
    pieces.insert(rows[i].piece);
  }
  report.pieces = static_cast<int>(pieces.size());
  report.recordings = manifest.recordings_size();
  if (manifest.recordings_size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": no usable rows:\n",
                                                   absl::StrJoin(report.skipped, "\n")));
  }
  manifest.set_created_by(absl::StrCat("pianola-dataserver import ", index_path, ": ",
                                       report.Summary("rows"),
                                       report.skipped.empty() ? "" : " (see build_report.txt)"));
  RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(options.out_dir, "/", kBuildReportFile),
                                  report.Text("rows")));
  RETURN_IF_ERROR(BuildIndex(options.out_dir, std::move(manifest), options.progress));
  return report;
}

}  // namespace pianola
