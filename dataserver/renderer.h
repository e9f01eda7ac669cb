#ifndef PIANOLA_DATASERVER_RENDERER_H_
#define PIANOLA_DATASERVER_RENDERER_H_

// Renders a parsed MIDI performance with one timbre through FluidSynth's C
// library (not its CLI, not its MIDI player), so that the audio and the
// dataset's conditioning come from the same parse (midi::ParseMidi) and the
// same time conversion (SecondsToSample).
//
// What is played is exactly what the index conditions on: the piano notes
// (midi::PianoNotes, keys 21..108) and the merged sustain-pedal intervals
// (midi::SustainIntervals), the pedal applied to every channel. Notes keep
// their MIDI channel where they can; an overlapping note of a key that is
// still sounding on its channel moves to a free channel, so FluidSynth never
// cuts a note the conditioning says is still held.
//
// Timing: the synth is driven in blocks split at each event's sample
// position. FluidSynth itself starts voices at its internal 64-sample block
// boundaries, so an event at sample s is heard from the first multiple of 64
// at or after s: onsets in the audio lag the conditioning by 0..63 samples
// (< 4 ms at 16 kHz), never lead it. renderer_test measures this.
//
// Effects: with Timbre.reverb / Timbre.chorus enabled, every channel's
// send (CC91 / CC93) is 127 and the effect unit gets the timbre's settings;
// disabled, the send is 0 and the unit is off.
//
// Output: the stereo synth output averaged to mono, int16, at
// options.sample_rate, from time 0 to the last note/pedal end plus
// options.release_tail_seconds (capped at options.max_seconds when set).
//
// A Renderer loads each soundfont once, on first use, into a "library"
// synth that never plays, and renders each performance on a fresh synth that
// borrows the loaded soundfont (fluid_synth_add_sfont): FluidSynth's reset
// does not clear reverb and chorus state, and a render must not hear the
// previous one's tail. Rendering is deterministic: the same performance and
// timbre give the same samples on any Renderer.
// Not thread-safe: use one Renderer per thread (FluidSynth shares loaded
// sample data between synths).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataserver/midi.h"
#include "proto/dataset.pb.h"

typedef struct _fluid_sfont_t fluid_sfont_t;  // <fluidsynth/types.h>

namespace pianola {

struct RenderOptions {
  // Output rate in Hz; FluidSynth accepts 8000..96000.
  int sample_rate = 16000;
  // Audio kept after the last note or pedal release, for the decay.
  double release_tail_seconds = 1.0;
  // If > 0, the audio is cut at this many seconds (notes beyond are not
  // heard; the index clips its notes to the recording's length).
  double max_seconds = 0;
  // FluidSynth's voice limit (synth.polyphony). Pedalled piano music with
  // layered presets needs more than FluidSynth's default of 256.
  int polyphony = 512;
};

class Renderer {
 public:
  static absl::StatusOr<std::unique_ptr<Renderer>> Create(const RenderOptions& options);
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  // Checks that the timbre is valid (ValidateTimbre), its soundfont loads and
  // holds its bank/preset. NotFound / InvalidArgument naming the timbre.
  absl::Status CheckTimbre(const Timbre& timbre);

  // Renders the performance. InvalidArgument if it has no piano notes.
  absl::StatusOr<std::vector<int16_t>> Render(const midi::Performance& performance,
                                              const Timbre& timbre);

  const RenderOptions& options() const { return options_; }

 private:
  struct Synth;
  explicit Renderer(const RenderOptions& options);
  // The loaded soundfont of a timbre (loading it on first use), with its
  // bank/preset checked.
  absl::StatusOr<fluid_sfont_t*> Soundfont(const Timbre& timbre);

  RenderOptions options_;
  std::unique_ptr<Synth> synth_;
  std::map<std::string, fluid_sfont_t*> soundfonts_;  // path -> loaded, owned by the library synth
};

// Routes FluidSynth's log to common/log.h (warnings and errors; its info and
// debug chatter is dropped). Called by Renderer::Create; idempotent.
void RouteFluidSynthLog();

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_RENDERER_H_
