#include "dataserver/renderer.h"

#include <fluidsynth.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "dataserver/audio_io.h"
#include "dataserver/dataset.h"
#include "dataserver/timbres.h"

namespace pianola {
namespace {

constexpr int kChannels = 16;
constexpr int kMinKey = 21;
constexpr int kMaxKey = 108;
constexpr int kSustainCc = 64;
constexpr int kReverbSendCc = 91;
constexpr int kChorusSendCc = 93;
constexpr int kRenderBlock = 4096;  // frames per fluid_synth_write_float call at most

void FluidLog(int level, const char* message, void* /*data*/) {
  // Lending a soundfont back (fluid_synth_remove_sfont) resets the channels'
  // programs, which warns for each channel; nothing plays on that synth again.
  if (level == FLUID_WARN && absl::StartsWith(message, "No preset found on channel")) return;
  if (level <= FLUID_ERR) {
    LogError("fluidsynth", message);
  } else {
    LogWarning("fluidsynth", message);
  }
}

// One MIDI-like action at a sample position. Sort order at one sample:
// note-offs, then pedal changes, then note-ons, then the offs of notes that
// start and end at that same sample.
struct Event {
  int64_t sample;
  int order;  // 0 off, 1 pedal, 2 on, 3 off of a zero-length note
  int note;   // index into the note list, or -1 for pedal
  int value;  // pedal: 127 down / 0 up
  bool operator<(const Event& o) const {
    return std::tie(sample, order, note) < std::tie(o.sample, o.order, o.note);
  }
};

}  // namespace

void RouteFluidSynthLog() {
  static std::once_flag once;
  std::call_once(once, [] {
    fluid_set_log_function(FLUID_PANIC, FluidLog, nullptr);
    fluid_set_log_function(FLUID_ERR, FluidLog, nullptr);
    fluid_set_log_function(FLUID_WARN, FluidLog, nullptr);
    fluid_set_log_function(FLUID_INFO, nullptr, nullptr);
    fluid_set_log_function(FLUID_DBG, nullptr, nullptr);
  });
}

struct Renderer::Synth {
  fluid_settings_t* settings = nullptr;
  fluid_synth_t* library = nullptr;  // holds the loaded soundfonts; never renders
  ~Synth() {
    if (library) delete_fluid_synth(library);
    if (settings) delete_fluid_settings(settings);
  }
};

Renderer::Renderer(const RenderOptions& options) : options_(options) {}
Renderer::~Renderer() = default;

absl::StatusOr<std::unique_ptr<Renderer>> Renderer::Create(const RenderOptions& options) {
  if (options.sample_rate < 8000 || options.sample_rate > 96000) {
    return absl::InvalidArgumentError(
        absl::StrCat("render sample rate ", options.sample_rate, " Hz outside 8000..96000"));
  }
  if (!(options.release_tail_seconds >= 0 && options.release_tail_seconds <= 60)) {
    return absl::InvalidArgumentError(
        absl::StrCat("release tail ", options.release_tail_seconds, " s outside 0..60"));
  }
  if (options.polyphony < 16 || options.polyphony > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("polyphony ", options.polyphony, " outside 16..65535"));
  }
  RouteFluidSynthLog();
  std::unique_ptr<Renderer> r(new Renderer(options));
  r->synth_ = std::make_unique<Synth>();
  Synth& s = *r->synth_;
  s.settings = new_fluid_settings();
  if (s.settings == nullptr) return absl::InternalError("new_fluid_settings failed");
  if (fluid_settings_setnum(s.settings, "synth.sample-rate", options.sample_rate) != FLUID_OK ||
      fluid_settings_setint(s.settings, "synth.polyphony", options.polyphony) != FLUID_OK ||
      fluid_settings_setint(s.settings, "synth.reverb.active", 1) != FLUID_OK ||
      fluid_settings_setint(s.settings, "synth.chorus.active", 1) != FLUID_OK ||
      fluid_settings_setint(s.settings, "synth.cpu-cores", 1) != FLUID_OK ||
      fluid_settings_setint(s.settings, "synth.threadsafe-api", 0) != FLUID_OK) {
    return absl::InternalError("setting FluidSynth options failed");
  }
  s.library = new_fluid_synth(s.settings);
  if (s.library == nullptr) return absl::InternalError("new_fluid_synth failed");
  return r;
}

absl::StatusOr<fluid_sfont_t*> Renderer::Soundfont(const Timbre& timbre) {
  RETURN_IF_ERROR(ValidateTimbre(timbre, "renderer"));
  fluid_sfont_t* sfont = nullptr;
  auto it = soundfonts_.find(timbre.soundfont());
  if (it != soundfonts_.end()) {
    sfont = it->second;
  } else {
    int id = fluid_synth_sfload(synth_->library, timbre.soundfont().c_str(), /*reset_presets=*/0);
    if (id == FLUID_FAILED) {
      return absl::InvalidArgumentError(absl::StrCat("timbre '", timbre.name(), "': soundfont '",
                                                     timbre.soundfont(),
                                                     "' could not be loaded by FluidSynth"));
    }
    // Looked up now: lending the soundfont to a render synth renumbers it.
    sfont = fluid_synth_get_sfont_by_id(synth_->library, id);
    if (sfont == nullptr) return absl::InternalError("FluidSynth lost a loaded soundfont");
    soundfonts_[timbre.soundfont()] = sfont;
  }
  if (fluid_sfont_get_preset(sfont, timbre.bank(), timbre.preset()) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("timbre '", timbre.name(), "': soundfont '",
                                                   timbre.soundfont(), "' has no bank ",
                                                   timbre.bank(), " preset ", timbre.preset()));
  }
  return sfont;
}

absl::Status Renderer::CheckTimbre(const Timbre& timbre) { return Soundfont(timbre).status(); }

absl::StatusOr<std::vector<int16_t>> Renderer::Render(const midi::Performance& performance,
                                                      const Timbre& timbre) {
  ASSIGN_OR_RETURN(fluid_sfont_t * sfont, Soundfont(timbre));
  const int rate = options_.sample_rate;

  // The notes and pedal the index will hold, in samples.
  std::vector<midi::Note> notes;
  for (const midi::Note& n : midi::PianoNotes(performance)) {
    if (n.pitch >= kMinKey && n.pitch <= kMaxKey && n.velocity >= 1 && n.velocity <= 127) {
      notes.push_back(n);
    }
  }
  if (notes.empty()) {
    return absl::InvalidArgumentError("no piano notes (keys 21..108 off the drum channel) to render");
  }
  std::vector<Event> events;
  events.reserve(notes.size() * 2 + 16);
  int64_t end_sample = 0;
  for (int i = 0; i < static_cast<int>(notes.size()); ++i) {
    int64_t on = SecondsToSample(notes[i].start, rate);
    int64_t off = std::max(on, SecondsToSample(notes[i].end, rate));
    events.push_back({on, 2, i, 0});
    events.push_back({off, off == on ? 3 : 0, i, 0});
    end_sample = std::max(end_sample, off);
  }
  for (const midi::Interval& iv : midi::SustainIntervals(performance)) {
    int64_t down = SecondsToSample(iv.start, rate);
    int64_t up = std::max(down, SecondsToSample(iv.end, rate));
    events.push_back({down, 1, -1, 127});
    events.push_back({up, 1, -1, 0});
    end_sample = std::max(end_sample, up);
  }
  std::stable_sort(events.begin(), events.end());
  int64_t total = end_sample + SecondsToSample(options_.release_tail_seconds, rate);
  if (options_.max_seconds > 0) total = std::min(total, SecondsToSample(options_.max_seconds, rate));
  if (total <= 0) return absl::InvalidArgumentError("the performance renders to no audio");

  // A fresh synth per render: FluidSynth's reset keeps the reverb and chorus
  // state, so a reused synth would let one render's tail into the next. The
  // soundfont itself stays loaded in the library synth and is only lent.
  fluid_synth_t* synth = new_fluid_synth(synth_->settings);
  if (synth == nullptr) return absl::InternalError("new_fluid_synth failed");
  struct Lent {
    fluid_synth_t* synth;
    fluid_sfont_t* sfont;
    ~Lent() {
      fluid_synth_remove_sfont(synth, sfont);
      delete_fluid_synth(synth);
    }
  };
  const int lent_id = fluid_synth_add_sfont(synth, sfont);
  if (lent_id == FLUID_FAILED) {
    delete_fluid_synth(synth);
    return absl::InternalError("fluid_synth_add_sfont failed");
  }
  Lent lent{synth, sfont};
  for (int ch = 0; ch < kChannels; ++ch) {
    if (ch == midi::kDrumChannel) continue;
    if (fluid_synth_program_select(synth, ch, lent_id, timbre.bank(), timbre.preset()) != FLUID_OK) {
      return absl::InternalError(absl::StrCat("timbre '", timbre.name(), "': program_select failed"));
    }
  }
  // Effect sends (CC91 reverb, CC93 chorus): full when the effect is on, so
  // the timbre's level settings alone decide how wet it sounds.
  for (int ch = 0; ch < kChannels; ++ch) {
    if (ch == midi::kDrumChannel) continue;
    fluid_synth_cc(synth, ch, kReverbSendCc, timbre.reverb().enabled() ? 127 : 0);
    fluid_synth_cc(synth, ch, kChorusSendCc, timbre.chorus().enabled() ? 127 : 0);
  }
  fluid_synth_set_gain(synth, timbre.gain() > 0 ? static_cast<float>(timbre.gain()) : 0.5f);
  fluid_synth_reverb_on(synth, -1, timbre.reverb().enabled() ? 1 : 0);
  if (timbre.reverb().enabled()) {
    const ReverbSettings& rv = timbre.reverb();
    fluid_synth_set_reverb_group_roomsize(synth, -1, rv.room_size());
    fluid_synth_set_reverb_group_damp(synth, -1, rv.damping());
    fluid_synth_set_reverb_group_width(synth, -1, rv.width());
    fluid_synth_set_reverb_group_level(synth, -1, rv.level());
  }
  fluid_synth_chorus_on(synth, -1, timbre.chorus().enabled() ? 1 : 0);
  if (timbre.chorus().enabled()) {
    const ChorusSettings& c = timbre.chorus();
    fluid_synth_set_chorus_group_nr(synth, -1, c.voices());
    fluid_synth_set_chorus_group_level(synth, -1, c.level());
    fluid_synth_set_chorus_group_speed(synth, -1, c.speed());
    fluid_synth_set_chorus_group_depth(synth, -1, c.depth());
  }

  std::vector<int16_t> out;
  out.reserve(static_cast<size_t>(total));
  std::vector<float> left(kRenderBlock), right(kRenderBlock);
  auto render_until = [&](int64_t sample) -> absl::Status {
    while (static_cast<int64_t>(out.size()) < sample) {
      int n = static_cast<int>(std::min<int64_t>(kRenderBlock, sample - static_cast<int64_t>(out.size())));
      if (fluid_synth_write_float(synth, n, left.data(), 0, 1, right.data(), 0, 1) != FLUID_OK) {
        return absl::InternalError("fluid_synth_write_float failed");
      }
      for (int i = 0; i < n; ++i) out.push_back(FloatToInt16(0.5f * (left[i] + right[i])));
    }
    return absl::OkStatus();
  };

  // Channel bookkeeping: which keys sound on which channel (by our events).
  std::vector<std::array<bool, 128>> sounding(kChannels);
  for (auto& keys : sounding) keys.fill(false);
  std::vector<int> channel_of(notes.size(), 0);
  for (const Event& e : events) {
    if (e.sample >= total) break;
    RETURN_IF_ERROR(render_until(e.sample));
    if (e.note < 0) {
      for (int ch = 0; ch < kChannels; ++ch) {
        if (ch != midi::kDrumChannel) fluid_synth_cc(synth, ch, kSustainCc, e.value);
      }
      continue;
    }
    const midi::Note& n = notes[e.note];
    if (e.order == 2) {
      int ch = n.channel != midi::kDrumChannel ? n.channel : 0;
      if (sounding[ch][n.pitch]) {
        for (int c = 0; c < kChannels; ++c) {
          if (c != midi::kDrumChannel && !sounding[c][n.pitch]) {
            ch = c;
            break;
          }
        }
      }
      sounding[ch][n.pitch] = true;
      channel_of[e.note] = ch;
      fluid_synth_noteon(synth, ch, n.pitch, n.velocity);
    } else {
      int ch = channel_of[e.note];
      sounding[ch][n.pitch] = false;
      fluid_synth_noteoff(synth, ch, n.pitch);
    }
  }
  RETURN_IF_ERROR(render_until(total));
  return out;
}

}  // namespace pianola
