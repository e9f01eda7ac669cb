#ifndef PIANOLA_DATASERVER_MIDI_H_
#define PIANOLA_DATASERVER_MIDI_H_

// Standard MIDI File reading: bytes -> a performance (notes and sustain pedal
// in seconds), written for Pianola.
//
// Handles formats 0 and 1 (format 2: see midi.cc for the policy), running
// status (also across meta and sysex events), sysex and escape events, every
// meta event, a tempo map merged from all tracks, SMPTE time division,
// note-on with velocity 0 as note-off, overlapping notes of one key (note-offs
// pair with that channel+key's note-ons first-in-first-out), notes never
// released (closed at the end of their track and counted in warnings),
// sustain pedal CC64 (down when value >= 64) per channel from any track.
// Malformed input (truncated or padded anywhere) gives InvalidArgument /
// DataLoss naming the file, the byte offset and the reason; header fields
// never cause allocations beyond the input's size.
//
// Thread-safe: free functions over immutable inputs.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pianola::midi {

inline constexpr int kDrumChannel = 9;  // channel 10, counted from 1

struct Note {
  int pitch = 0;       // 0..127
  int velocity = 0;    // 1..127
  double start = 0;    // seconds
  double end = 0;      // seconds, >= start
  int channel = 0;     // 0..15
  int track = 0;
  int64_t start_tick = 0;
  int64_t end_tick = 0;
};

// A change of the sustain pedal (CC64) state on one channel.
struct PedalEvent {
  double time = 0;  // seconds
  int value = 0;    // raw CC64 value 0..127; down when >= 64
  int channel = 0;
  int64_t tick = 0;
};

// A sustain-down interval [start, end) in seconds.
struct Interval {
  double start = 0;
  double end = 0;
};

// Defects that were repaired rather than refused.
struct Warnings {
  int unclosed_notes = 0;      // note-on never released; closed at end of track
  int orphan_note_offs = 0;    // note-off with no sounding note
  int zero_length_notes = 0;   // note-off at the onset tick (kept, end == start)
  int trailing_bytes = 0;      // bytes after the last track chunk (ignored)
  int unknown_chunks = 0;      // non-MTrk chunks (skipped per the spec)
  int missing_end_of_track = 0;  // track ended without FF 2F 00
  int header_mismatches = 0;     // format-0 header declaring several tracks (all read)
  int Total() const {
    return unclosed_notes + orphan_note_offs + zero_length_notes + trailing_bytes +
           unknown_chunks + missing_end_of_track + header_mismatches;
  }
  // "2 unclosed notes (closed at end of track), 1 orphan note-offs (ignored)";
  // empty when there are none.
  std::string Summary() const;
};

struct Performance {
  int format = 0;                 // SMF format 0, 1 or 2
  int num_tracks = 0;
  int ticks_per_quarter = 0;      // 0 when the division is SMPTE
  double smpte_ticks_per_second = 0;  // > 0 when the division is SMPTE
  // Every note (drums included, see Note::channel), sorted by (start, pitch, channel).
  std::vector<Note> notes;
  // Sustain pedal changes of every channel, sorted by time.
  std::vector<PedalEvent> pedal;
  // Time of the last event of any kind (end of the longest track), seconds.
  double end_seconds = 0;
  Warnings warnings;
};

// Parses a Standard MIDI File. `name` (a path) prefixes every error message.
absl::StatusOr<Performance> ParseMidi(absl::string_view bytes, absl::string_view name);

// Reads and parses a file (refusing files over 64 MiB).
absl::StatusOr<Performance> ReadMidiFile(const std::string& path);

// The piano notes: every note not on the drum channel, in the order of `notes`.
std::vector<Note> PianoNotes(const Performance& performance);

// Sustain-down intervals of the non-drum channels, merged across channels
// (the pedal is down while any channel holds it), sorted and disjoint. An
// interval still open at the end closes at `performance.end_seconds`.
std::vector<Interval> SustainIntervals(const Performance& performance);

// End time of the piano content: the latest end among PianoNotes and
// SustainIntervals (0 if there are none). Piano rolls span this.
double PianoEndSeconds(const Performance& performance);

}  // namespace pianola::midi

#endif  // PIANOLA_DATASERVER_MIDI_H_
