#ifndef PIANOLA_DATASERVER_MAESTRO_IMPORT_H_
#define PIANOLA_DATASERVER_MAESTRO_IMPORT_H_

// Importing recorded corpora into a dataset directory (the `import`
// subcommand): audio decoded, downmixed and resampled to the dataset rate and
// stored as int16 WAV under OUT/audio/, MIDI copied to OUT/midi/, then the
// index (BuildIndex).
//
// Two index formats:
//  * MAESTRO (ROOT/maestro-v*.csv, or the column-oriented maestro-v*.json):
//    columns canonical_composer, canonical_title, split, year, midi_filename,
//    audio_filename, duration; paths relative to ROOT. Piece = composer +
//    title, timbre = "maestro-<year>" (the recording year: one piano/session
//    per year of the competition), split from the index.
//  * A generic CSV (--manifest FILE.csv) with header midi,audio,timbre,split
//    (and optionally piece; default: the MIDI path without extension), paths
//    relative to the CSV's directory.
// Rows that cannot be used (missing file, empty field, unknown split,
// unreadable MIDI or audio) are skipped, counted and reported as
// "FILE:ROW: field NAME: reason" in the BuildReport and OUT/build_report.txt.
//
// Thread-safe: free functions.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dataserver/dataset_builder.h"

namespace pianola {

struct ImportOptions {
  // Exactly one of the two sources.
  std::string maestro_root;  // directory holding maestro-v*.csv or maestro-v*.json
  std::string manifest_csv;  // generic CSV manifest
  std::string out_dir;       // required
  int sample_rate = 16000;
  int threads = 0;           // 0: one per hardware thread
  std::string name;          // empty: out_dir's last component
  bool progress = true;
};

absl::StatusOr<BuildReport> ImportDataset(const ImportOptions& options);

// --- parts, exposed for tests ---------------------------------------------------

// RFC 4180 CSV: fields separated by commas, records by LF or CRLF; a field in
// double quotes may hold commas, newlines and "" (a quote). InvalidArgument
// naming `name` and the line for an unterminated quote or stray quote.
absl::StatusOr<std::vector<std::vector<std::string>>> ParseCsv(absl::string_view text,
                                                               absl::string_view name);

// One row of a corpus index, whatever its format. Paths are as written.
struct ImportRow {
  int row = 0;              // 1-based data row (header excluded) in `source`
  std::string source;       // the index file
  std::string piece;
  std::string timbre;
  std::string split;
  std::string midi;
  std::string audio;
};

// The rows of a MAESTRO CSV / JSON index, and of a generic CSV manifest.
// A missing required column is an error for the whole file; problems in a
// single row are reported when the row is imported.
absl::StatusOr<std::vector<ImportRow>> ReadMaestroCsv(absl::string_view text, absl::string_view name);
absl::StatusOr<std::vector<ImportRow>> ReadMaestroJson(absl::string_view text, absl::string_view name);
absl::StatusOr<std::vector<ImportRow>> ReadManifestCsv(absl::string_view text, absl::string_view name);

// ROOT/maestro-v*.csv if there is one (the highest version), else
// ROOT/maestro-v*.json. NotFound otherwise.
absl::StatusOr<std::string> FindMaestroIndex(const std::string& root);

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_MAESTRO_IMPORT_H_
