#ifndef PIANOLA_DATASERVER_TIMBRES_H_
#define PIANOLA_DATASERVER_TIMBRES_H_

// Timbre sets: the pianos a rendered dataset is played with.
//
// DefaultTimbres() is the set `pianola-dataserver build` uses without
// --timbres: the piano and electric-piano presets of the General-MIDI
// soundfonts Debian ships (FluidR3_GM, MuseScore_General (sf3), TimGM6mb),
// plus a few gain/reverb/chorus variants. LoadTimbreSet() reads a --timbres
// file (text-format pianola.TimbreSet) strictly: unknown fields, duplicate or
// malformed names, missing soundfont files and out-of-range settings are
// InvalidArgument / NotFound errors naming the file, the timbre and the field.
// Whether a bank/preset exists inside a soundfont is checked when the
// soundfont is loaded (Renderer::CheckTimbre).
//
// Thread-safe: free functions.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/dataset.pb.h"

namespace pianola {

// Where Debian's soundfont packages install (fluid-soundfont-gm,
// timgm6mb-soundfont, musescore-general-soundfont-small).
inline constexpr char kDefaultSoundfontRoot[] = "/usr/share/sounds";

// The default set, with soundfont paths under `soundfont_root`.
TimbreSet DefaultTimbres(const std::string& soundfont_root = kDefaultSoundfontRoot);

// Parses text-format TimbreSet; `name` (a path) prefixes errors. Validates.
absl::StatusOr<TimbreSet> ParseTimbreSet(absl::string_view text, absl::string_view name);

// Reads and parses a --timbres file.
absl::StatusOr<TimbreSet> LoadTimbreSet(const std::string& path);

// Checks one timbre's fields: name (1..64 chars of [A-Za-z0-9._-], used in
// file names), soundfont file exists, bank 0..16383, preset 0..127, gain
// 0..10, reverb and chorus within FluidSynth's ranges. `where` prefixes errors.
absl::Status ValidateTimbre(const Timbre& timbre, absl::string_view where);

// ValidateTimbre for each, at least one timbre, names unique.
absl::Status ValidateTimbreSet(const TimbreSet& set, absl::string_view where);

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_TIMBRES_H_
