#include "dataserver/timbres.h"

#include <sys/stat.h>

#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace pianola {
namespace {

Timbre MakeTimbre(const std::string& name, const std::string& soundfont, int preset, double gain) {
  Timbre t;
  t.set_name(name);
  t.set_soundfont(soundfont);
  t.set_bank(0);
  t.set_preset(preset);
  t.set_gain(gain);
  return t;
}

void SetReverb(Timbre* t, double room, double damping, double width, double level) {
  ReverbSettings* r = t->mutable_reverb();
  r->set_enabled(true);
  r->set_room_size(room);
  r->set_damping(damping);
  r->set_width(width);
  r->set_level(level);
}

void SetChorus(Timbre* t, int voices, double level, double speed, double depth) {
  ChorusSettings* c = t->mutable_chorus();
  c->set_enabled(true);
  c->set_voices(voices);
  c->set_level(level);
  c->set_speed(speed);
  c->set_depth(depth);
}

// Collects the text-format parser's errors as "file:line:column: message".
class Collector : public google::protobuf::io::ErrorCollector {
 public:
  explicit Collector(std::string name) : name_(std::move(name)) {}
  void AddError(int line, int column, const std::string& message) override {
    errors_.push_back(absl::StrCat(name_, ":", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int line, int column, const std::string& message) override {
    AddError(line, column, message);
  }
  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::string name_;
  std::vector<std::string> errors_;
};

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

TimbreSet DefaultTimbres(const std::string& root) {
  const std::string fluid = root + "/sf2/FluidR3_GM.sf2";
  const std::string muse = root + "/sf3/MuseScore_General.sf3";
  const std::string tim = root + "/sf2/TimGM6mb.sf2";
  TimbreSet set;
  // General MIDI: 0 acoustic grand, 1 bright acoustic, 2 electric grand,
  // 3 honky-tonk, 4 electric piano 1 (Rhodes), 5 electric piano 2 (FM).
  *set.add_timbre() = MakeTimbre("fluidr3-grand", fluid, 0, 0.5);
  {
    Timbre t = MakeTimbre("fluidr3-grand-hall", fluid, 0, 0.5);
    SetReverb(&t, 0.8, 0.3, 60, 0.6);
    *set.add_timbre() = t;
  }
  *set.add_timbre() = MakeTimbre("fluidr3-bright", fluid, 1, 0.5);
  *set.add_timbre() = MakeTimbre("fluidr3-honkytonk", fluid, 3, 0.5);
  *set.add_timbre() = MakeTimbre("fluidr3-epiano", fluid, 4, 0.6);
  *set.add_timbre() = MakeTimbre("musescore-grand", muse, 0, 0.5);
  {
    Timbre t = MakeTimbre("musescore-grand-room", muse, 0, 0.45);
    SetReverb(&t, 0.3, 0.5, 20, 0.4);
    *set.add_timbre() = t;
  }
  *set.add_timbre() = MakeTimbre("musescore-epiano", muse, 4, 0.6);
  {
    Timbre t = MakeTimbre("musescore-epiano-chorus", muse, 5, 0.6);
    SetChorus(&t, 3, 1.5, 0.4, 8);
    *set.add_timbre() = t;
  }
  *set.add_timbre() = MakeTimbre("timgm-grand", tim, 0, 0.6);
  *set.add_timbre() = MakeTimbre("timgm-epiano", tim, 4, 0.7);
  return set;
}

absl::Status ValidateTimbre(const Timbre& t, absl::string_view where) {
  const std::string at = absl::StrCat(where, ": timbre '", t.name(), "'");
  auto bad = [&](absl::string_view field, auto&&... why) {
    return absl::InvalidArgumentError(absl::StrCat(at, ": field ", field, ": ", why...));
  };
  if (t.name().empty() || t.name().size() > 64) return bad("name", "must be 1..64 characters");
  for (char c : t.name()) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return bad("name", "only letters, digits, '-', '_' and '.' are allowed (it names files)");
    }
  }
  if (t.name().find("__") != std::string::npos) {
    return bad("name", "must not contain '__' (it separates piece and timbre in file names)");
  }
  if (t.soundfont().empty()) return bad("soundfont", "missing");
  if (!FileExists(t.soundfont())) {
    return absl::NotFoundError(
        absl::StrCat(at, ": field soundfont: no such file '", t.soundfont(), "'"));
  }
  if (t.bank() < 0 || t.bank() > 16383) return bad("bank", t.bank(), " outside 0..16383");
  if (t.preset() < 0 || t.preset() > 127) return bad("preset", t.preset(), " outside 0..127");
  if (!(t.gain() >= 0 && t.gain() <= 10)) return bad("gain", t.gain(), " outside 0..10");
  if (t.reverb().enabled()) {
    const ReverbSettings& r = t.reverb();
    if (!(r.room_size() >= 0 && r.room_size() <= 1)) return bad("reverb.room_size", r.room_size(), " outside 0..1");
    if (!(r.damping() >= 0 && r.damping() <= 1)) return bad("reverb.damping", r.damping(), " outside 0..1");
    if (!(r.width() >= 0 && r.width() <= 100)) return bad("reverb.width", r.width(), " outside 0..100");
    if (!(r.level() >= 0 && r.level() <= 1)) return bad("reverb.level", r.level(), " outside 0..1");
  }
  if (t.chorus().enabled()) {
    const ChorusSettings& c = t.chorus();
    if (c.voices() < 0 || c.voices() > 99) return bad("chorus.voices", c.voices(), " outside 0..99");
    if (!(c.level() >= 0 && c.level() <= 10)) return bad("chorus.level", c.level(), " outside 0..10");
    if (!(c.speed() >= 0.1 && c.speed() <= 5)) return bad("chorus.speed", c.speed(), " outside 0.1..5 Hz");
    if (!(c.depth() >= 0 && c.depth() <= 256)) return bad("chorus.depth", c.depth(), " outside 0..256 ms");
  }
  return absl::OkStatus();
}

absl::Status ValidateTimbreSet(const TimbreSet& set, absl::string_view where) {
  if (set.timbre_size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": no timbre entries"));
  }
  std::set<std::string> names;
  for (const Timbre& t : set.timbre()) {
    RETURN_IF_ERROR(ValidateTimbre(t, where));
    if (!names.insert(t.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": timbre '", t.name(), "': field name: used twice"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TimbreSet> ParseTimbreSet(absl::string_view text, absl::string_view name) {
  TimbreSet set;
  google::protobuf::TextFormat::Parser parser;
  Collector errors{std::string(name)};
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &set)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a valid pianola.TimbreSet: ", errors.Joined()));
  }
  RETURN_IF_ERROR(ValidateTimbreSet(set, name));
  return set;
}

absl::StatusOr<TimbreSet> LoadTimbreSet(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path, int64_t{1} << 24));
  return ParseTimbreSet(text, path);
}

}  // namespace pianola
