#ifndef PIANOLA_TRAINER_MIDI_CONDITIONING_H_
#define PIANOLA_TRAINER_MIDI_CONDITIONING_H_

// MIDI conditioning for inference: a whole performance as the sparse events
// of one span [0, num_samples) of audio samples, exactly as a data server
// would send them for a window of a recording rendered from that MIDI file
// with the window starting at sample 0.
//
// The conversion is the data plane's own: the dataset builder's
// IndexRecording() (piano notes = keys 21..108, velocity 1..127, off the drum
// channel; times through SecondsToSample; notes and merged sustain intervals
// clipped to the span) followed by the window assembler's rules for a span
// that starts at sample 0 (every note is an onset, none is held; an offset
// for each note ending inside the span, ordered by (sample, key); pedal
// intervals as they are). trainer/batch_tensors.h's FillFeatures then turns
// these events into the [177, T] features the model was trained on, so the
// features a trained model sees at inference are built by the same code as
// those it saw in training.
//
// Torch-free (it uses the dataset index proto, which torch translation units
// must not include). Free functions; thread-safe.

#include <cstdint>

#include "absl/status/statusor.h"
#include "dataserver/midi.h"
#include "trainer/data_client.h"

namespace pianola {

struct MidiConditioning {
  int64_t num_samples = 0;
  SparseEvents events;   // span [0, num_samples)
  int64_t notes = 0;     // piano notes starting in the span
  int64_t notes_cut = 0; // of them, notes still sounding at the span's end
};

// The conditioning of `performance` over [0, num_samples) at `sample_rate`.
// InvalidArgument for num_samples < 1 or a sample rate <= 0, or when
// num_samples does not fit the 32-bit sample offsets of SparseEvents.
absl::StatusOr<MidiConditioning> ConditioningFromPerformance(const midi::Performance& performance,
                                                             int sample_rate, int64_t num_samples);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_MIDI_CONDITIONING_H_
