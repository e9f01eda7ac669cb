// Standard MIDI File reader. Policies (see docs/midi.md for the full list):
//
// - Formats 0 and 1: every track is read and all tracks share one time line.
//   A format-0 header that declares more than one track is read like format 1
//   and counted in Warnings::header_mismatches.
// - Format 2 (independent single-track patterns): each track is its own
//   sequence, played one after another in file order. Each sequence starts at
//   the default tempo (120 bpm) and only its own tempo events apply to it;
//   ticks in Note/PedalEvent are on the concatenated tick axis.
// - Tempo map (formats 0 and 1): tempo events from every track, merged by tick;
//   at equal ticks the one read last (later track, later in the track) wins.
//   With SMPTE division, tempo events are ignored (the spec's rule).
// - Running status survives meta and sysex events (many writers rely on it,
//   though the spec says they cancel it). A data byte with no running status
//   is an error.
// - Note-on with velocity 0 is a note-off. A note-off closes the oldest
//   sounding note of its (track, channel, key): FIFO. A note-off with nothing
//   sounding is ignored (orphan_note_offs); a note still sounding at the end
//   of its track ends there (unclosed_notes); a note-off at its note's onset
//   tick makes a zero-length note that is kept (zero_length_notes).
// - Errors: DataLoss for corrupt or truncated structure, InvalidArgument for
//   input that is not an SMF or uses values the format forbids. Messages name
//   the file, the byte offset (in the file as given, RIFF wrapper included)
//   and the reason. Nothing is allocated from a header field: containers grow
//   from what was actually read, and reservations are bounded by input size.

#include "dataserver/midi.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace pianola::midi {
namespace {

constexpr int64_t kMaxFileBytes = int64_t{64} << 20;
constexpr uint32_t kDefaultTempo = 500000;  // microseconds per quarter note (120 bpm)
constexpr int kKeys = 16 * 128;             // (channel, key) pairs

uint32_t ReadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint32_t ReadLe32(const uint8_t* p) {
  return (uint32_t{p[3]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | p[0];
}
uint16_t ReadBe16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// A printable chunk id ("MTrk", "XFIH"), or its bytes in hex for the error message.
std::string DescribeId(const uint8_t* p, size_t n) {
  bool printable = true;
  for (size_t i = 0; i < n; ++i) printable &= p[i] >= 0x20 && p[i] < 0x7f;
  if (printable) return absl::StrCat("'", absl::string_view(reinterpret_cast<const char*>(p), n), "'");
  std::string hex;
  for (size_t i = 0; i < n; ++i) absl::StrAppend(&hex, i ? " " : "", absl::Hex(p[i], absl::kZeroPad2));
  return hex;
}

bool IsChunkId(const uint8_t* p) {
  for (int i = 0; i < 4; ++i) {
    if (p[i] < 0x20 || p[i] >= 0x7f) return false;
  }
  return true;
}

struct TempoChange {
  int64_t tick;
  uint32_t usec_per_quarter;
};

// One piece of the tick -> seconds map: from `tick` on, each tick lasts `spt` seconds.
struct Segment {
  int64_t tick;
  double seconds;
  double spt;
};

// Converts ticks (in any order) to seconds, caching the last segment used
// because successive queries are mostly close together.
class TickClock {
 public:
  explicit TickClock(std::vector<Segment> segments) : segments_(std::move(segments)) {}
  double Seconds(int64_t tick) {
    if (!(tick >= segments_[last_].tick &&
          (last_ + 1 == segments_.size() || tick < segments_[last_ + 1].tick))) {
      auto it = std::upper_bound(segments_.begin(), segments_.end(), tick,
                                 [](int64_t t, const Segment& s) { return t < s.tick; });
      last_ = it == segments_.begin() ? 0 : static_cast<size_t>(it - segments_.begin() - 1);
    }
    const Segment& s = segments_[last_];
    return s.seconds + static_cast<double>(tick - s.tick) * s.spt;
  }

 private:
  std::vector<Segment> segments_;
  size_t last_ = 0;
};

class Parser {
 public:
  Parser(absl::string_view bytes, absl::string_view name)
      : data_(reinterpret_cast<const uint8_t*>(bytes.data())), size_(bytes.size()), name_(name) {}

  absl::StatusOr<Performance> Parse();

 private:
  absl::Status Err(absl::StatusCode code, size_t offset, absl::string_view reason) const {
    return absl::Status(code, absl::StrCat(name_, ": byte offset ", offset, ": ", reason));
  }
  absl::Status Corrupt(size_t offset, absl::string_view reason) const {
    return Err(absl::StatusCode::kDataLoss, offset, reason);
  }
  size_t Off(const uint8_t* p) const { return static_cast<size_t>(p - data_); }

  absl::Status UnwrapRiff(size_t* begin, size_t* end);
  absl::Status ParseTrack(int track, size_t begin, size_t end, int64_t tick_offset,
                          int64_t* end_tick);
  // Reads a variable-length quantity of at most 4 bytes from [*p, end).
  absl::Status ReadVlq(const uint8_t** p, const uint8_t* end, absl::string_view what,
                       uint32_t* out) const;
  std::vector<Segment> BuildTempoMap() const;

  const uint8_t* data_;
  size_t size_;
  absl::string_view name_;

  Performance perf_;
  int ppq_ = 0;
  double smpte_tps_ = 0;
  std::vector<TempoChange> tempos_;
  // FIFO of sounding notes per (channel, key) within the current track: an
  // intrusive list threaded through `next_` (parallel to perf_.notes).
  std::array<int32_t, kKeys> head_;
  std::array<int32_t, kKeys> tail_;
  std::vector<int32_t> next_;
  int open_notes_ = 0;
};

absl::Status Parser::ReadVlq(const uint8_t** p, const uint8_t* end, absl::string_view what,
                             uint32_t* out) const {
  const uint8_t* q = *p;
  uint32_t v = 0;
  for (int i = 0;; ++i) {
    if (q == end) {
      return Corrupt(Off(q), absl::StrCat("track data ends inside the ", what,
                                          " (truncated variable-length quantity)"));
    }
    const uint8_t b = *q++;
    v = (v << 7) | (b & 0x7f);
    if (!(b & 0x80)) break;
    if (i == 3) {
      return Corrupt(Off(*p), absl::StrCat("the ", what,
                                           " is a variable-length quantity longer than 4 bytes"));
    }
  }
  *p = q;
  *out = v;
  return absl::OkStatus();
}

// RIFF RMID (".rmi"): a RIFF container whose "data" chunk is a complete SMF.
absl::Status Parser::UnwrapRiff(size_t* begin, size_t* end) {
  if (size_ < 12) return Corrupt(size_, "RIFF header truncated (needs 12 bytes)");
  if (std::memcmp(data_ + 8, "RMID", 4) != 0) {
    return Err(absl::StatusCode::kInvalidArgument, 8,
               absl::StrCat("RIFF file of type ", DescribeId(data_ + 8, 4),
                            ", not RMID: not a MIDI file"));
  }
  const uint64_t riff_end = std::min<uint64_t>(uint64_t{ReadLe32(data_ + 4)} + 8, size_);
  size_t p = 12;
  while (p + 8 <= riff_end) {
    const uint64_t len = ReadLe32(data_ + p + 4);
    if (len > riff_end - p - 8) {
      return Corrupt(p, absl::StrCat("RIFF chunk ", DescribeId(data_ + p, 4), " declares ", len,
                                     " bytes but only ", riff_end - p - 8, " remain (truncated)"));
    }
    if (std::memcmp(data_ + p, "data", 4) == 0) {
      *begin = p + 8;
      *end = p + 8 + len;
      return absl::OkStatus();
    }
    p += 8 + len + (len & 1);  // RIFF chunks are padded to even sizes
  }
  return Corrupt(p, "RIFF RMID file has no 'data' chunk");
}

absl::Status Parser::ParseTrack(int track, size_t begin, size_t end, int64_t tick_offset,
                                int64_t* end_tick) {
  const uint8_t* p = data_ + begin;
  const uint8_t* const e = data_ + end;
  int64_t tick = tick_offset;
  uint8_t running = 0;
  bool end_of_track = false;
  std::vector<Note>& notes = perf_.notes;

  while (p < e) {
    uint32_t delta;
    RETURN_IF_ERROR(ReadVlq(&p, e, "delta time", &delta));
    tick += delta;
    if (p == e) return Corrupt(Off(p), "track data ends after a delta time, before its event");
    const uint8_t* event = p;
    uint8_t status = *p;
    if (status & 0x80) {
      ++p;
    } else if (running) {
      status = running;
    } else {
      return Corrupt(Off(p), absl::StrFormat("data byte 0x%02X where a status byte was expected "
                                             "(no running status in effect)",
                                             status));
    }

    if (status < 0xF0) {  // channel message
      running = status;
      const int type = status >> 4;
      const int n = (type == 0xC || type == 0xD) ? 1 : 2;
      if (e - p < n) {
        return Corrupt(Off(event), absl::StrFormat("channel message 0x%02X truncated by the end of "
                                                   "the track chunk",
                                                   status));
      }
      const uint8_t d1 = p[0];
      const uint8_t d2 = n == 2 ? p[1] : 0;
      if ((d1 | d2) & 0x80) {
        const uint8_t* bad = (d1 & 0x80) ? p : p + 1;
        return Corrupt(Off(bad), absl::StrFormat("byte 0x%02X inside channel message 0x%02X: data "
                                                 "bytes must be below 0x80",
                                                 *bad, status));
      }
      p += n;
      const int channel = status & 0x0f;
      if (type == 0x9 && d2 != 0) {
        const int ck = channel * 128 + d1;
        const int32_t idx = static_cast<int32_t>(notes.size());
        Note& note = notes.emplace_back();
        note.pitch = d1;
        note.velocity = d2;
        note.channel = channel;
        note.track = track;
        note.start_tick = tick;
        note.end_tick = tick;
        next_.push_back(-1);
        if (head_[ck] < 0) {
          head_[ck] = idx;
        } else {
          next_[tail_[ck]] = idx;
        }
        tail_[ck] = idx;
        ++open_notes_;
      } else if (type == 0x8 || type == 0x9) {
        const int ck = channel * 128 + d1;
        const int32_t idx = head_[ck];
        if (idx < 0) {
          ++perf_.warnings.orphan_note_offs;
        } else {
          head_[ck] = next_[idx];
          notes[idx].end_tick = tick;
          if (tick == notes[idx].start_tick) ++perf_.warnings.zero_length_notes;
          --open_notes_;
        }
      } else if (type == 0xB && d1 == 64) {
        PedalEvent& pe = perf_.pedal.emplace_back();
        pe.tick = tick;
        pe.value = d2;
        pe.channel = channel;
      }
      continue;
    }

    if (status == 0xFF) {  // meta event; running status is kept
      if (p == e) return Corrupt(Off(event), "meta event truncated before its type byte");
      const uint8_t type = *p++;
      uint32_t len;
      RETURN_IF_ERROR(ReadVlq(&p, e, "meta event length", &len));
      if (len > static_cast<size_t>(e - p)) {
        return Corrupt(Off(event), absl::StrFormat("meta event 0x%02X declares %u bytes but only "
                                                   "%d remain in the track chunk",
                                                   type, len, e - p));
      }
      if (type == 0x51) {
        if (len != 3) {
          return Corrupt(Off(event), absl::StrCat("set-tempo meta event has length ", len,
                                                  ", must be 3"));
        }
        const uint32_t usec = (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
        if (usec == 0) {
          return Err(absl::StatusCode::kInvalidArgument, Off(event),
                     "set-tempo meta event with tempo 0 microseconds per quarter note");
        }
        tempos_.push_back({tick, usec});
      } else if (type == 0x2F) {
        if (len != 0) {
          return Corrupt(Off(event), absl::StrCat("end-of-track meta event has length ", len,
                                                  ", must be 0"));
        }
        end_of_track = true;
      }
      p += len;
      if (end_of_track) break;
      continue;
    }

    if (status == 0xF0 || status == 0xF7) {  // sysex or escape; running status is kept
      uint32_t len;
      RETURN_IF_ERROR(ReadVlq(&p, e, status == 0xF0 ? "sysex length" : "escape length", &len));
      if (len > static_cast<size_t>(e - p)) {
        return Corrupt(Off(event), absl::StrFormat("%s event declares %u bytes but only %d remain "
                                                   "in the track chunk",
                                                   status == 0xF0 ? "sysex" : "escape", len, e - p));
      }
      p += len;
      continue;
    }

    return Err(absl::StatusCode::kInvalidArgument, Off(event),
               absl::StrFormat("status byte 0x%02X is a system %s message, which a Standard MIDI "
                               "File may not contain",
                               status, status < 0xF8 ? "common" : "real-time"));
  }

  if (end_of_track && p != e) {
    return Corrupt(Off(p), absl::StrCat(e - p, " bytes after the end-of-track event inside track ",
                                        track, "'s chunk (padding or a corrupt length)"));
  }
  if (!end_of_track) ++perf_.warnings.missing_end_of_track;

  if (open_notes_ > 0) {
    for (int ck = 0; ck < kKeys; ++ck) {
      for (int32_t idx = head_[ck]; idx >= 0; idx = next_[idx]) {
        notes[idx].end_tick = tick;
        ++perf_.warnings.unclosed_notes;
      }
      head_[ck] = -1;
    }
    open_notes_ = 0;
  }
  *end_tick = tick;
  return absl::OkStatus();
}

std::vector<Segment> Parser::BuildTempoMap() const {
  std::vector<Segment> segments;
  if (smpte_tps_ > 0) {
    segments.push_back({0, 0.0, 1.0 / smpte_tps_});
    return segments;
  }
  const double ppq = ppq_;
  segments.reserve(tempos_.size() + 1);
  segments.push_back({0, 0.0, kDefaultTempo / (1e6 * ppq)});
  for (const TempoChange& t : tempos_) {  // stably sorted by tick
    const double spt = t.usec_per_quarter / (1e6 * ppq);
    Segment& last = segments.back();
    if (t.tick == last.tick) {
      last.spt = spt;  // a later change at the same tick wins
    } else {
      const double seconds = last.seconds + static_cast<double>(t.tick - last.tick) * last.spt;
      segments.push_back({t.tick, seconds, spt});
    }
  }
  return segments;
}

absl::StatusOr<Performance> Parser::Parse() {
  if (size_ == 0) {
    return Err(absl::StatusCode::kInvalidArgument, 0, "empty file (0 bytes), not a MIDI file");
  }
  size_t begin = 0, end = size_;
  if (size_ >= 4 && std::memcmp(data_, "RIFF", 4) == 0) RETURN_IF_ERROR(UnwrapRiff(&begin, &end));
  if (end - begin < 4 || std::memcmp(data_ + begin, "MThd", 4) != 0) {
    return Err(absl::StatusCode::kInvalidArgument, begin,
               absl::StrCat("not a Standard MIDI File: expected 'MThd', found ",
                            DescribeId(data_ + begin, std::min<size_t>(4, end - begin))));
  }
  if (end - begin < 14) {
    return Corrupt(end, absl::StrCat("header chunk truncated: ", end - begin,
                                     " bytes, a header needs 14"));
  }
  const uint32_t header_len = ReadBe32(data_ + begin + 4);
  if (header_len < 6) {
    return Corrupt(begin + 4, absl::StrCat("header chunk length ", header_len, " is below 6"));
  }
  if (header_len > end - begin - 8) {
    return Corrupt(begin + 4, absl::StrCat("header chunk declares ", header_len,
                                           " bytes but only ", end - begin - 8, " remain"));
  }
  const int format = ReadBe16(data_ + begin + 8);
  const int declared_tracks = ReadBe16(data_ + begin + 10);
  const uint16_t division = ReadBe16(data_ + begin + 12);
  if (format > 2) {
    return Err(absl::StatusCode::kInvalidArgument, begin + 8,
               absl::StrCat("unknown SMF format ", format, " (0, 1 or 2)"));
  }
  if (declared_tracks == 0) {
    return Err(absl::StatusCode::kInvalidArgument, begin + 10, "header declares 0 tracks");
  }
  if (division & 0x8000) {
    const int fps = -static_cast<int8_t>(division >> 8);
    const int ticks_per_frame = division & 0xff;
    if ((fps != 24 && fps != 25 && fps != 29 && fps != 30) || ticks_per_frame == 0) {
      return Err(absl::StatusCode::kInvalidArgument, begin + 12,
                 absl::StrCat("SMPTE division with ", fps, " frames/s and ", ticks_per_frame,
                              " ticks/frame (frames/s must be 24, 25, 29 or 30; ticks > 0)"));
    }
    smpte_tps_ = (fps == 29 ? 30000.0 / 1001.0 : fps) * ticks_per_frame;
  } else {
    if (division == 0) {
      return Err(absl::StatusCode::kInvalidArgument, begin + 12, "division of 0 ticks per quarter note");
    }
    ppq_ = division;
  }
  perf_.format = format;
  perf_.ticks_per_quarter = ppq_;
  perf_.smpte_ticks_per_second = smpte_tps_;
  if (format == 0 && declared_tracks != 1) ++perf_.warnings.header_mismatches;

  // Reservations bounded by the input: a sounding note takes >= 3 bytes of
  // track data; typical files spend ~8 bytes per note (on + off).
  perf_.notes.reserve((end - begin) / 8);
  next_.reserve((end - begin) / 8);
  head_.fill(-1);
  tail_.fill(-1);

  size_t p = begin + 8 + header_len;
  int tracks = 0;
  int64_t tick_offset = 0;
  int64_t max_tick = 0;
  while (tracks < declared_tracks) {
    if (p == end) {
      return Corrupt(p, absl::StrCat("header declares ", declared_tracks,
                                     " tracks but the file ends after ", tracks));
    }
    if (end - p < 8) {
      return Corrupt(p, absl::StrCat("chunk header truncated: ", end - p,
                                     " bytes left, a chunk header needs 8"));
    }
    if (!IsChunkId(data_ + p)) {
      return Corrupt(p, absl::StrCat("expected a chunk id, found bytes ", DescribeId(data_ + p, 4)));
    }
    const uint32_t len = ReadBe32(data_ + p + 4);
    const bool is_track = std::memcmp(data_ + p, "MTrk", 4) == 0;
    if (len > end - p - 8) {
      return Corrupt(p, absl::StrCat(is_track ? absl::StrCat("track ", tracks, " chunk")
                                              : absl::StrCat("chunk ", DescribeId(data_ + p, 4)),
                                     " declares ", len, " bytes but only ", end - p - 8,
                                     " remain (truncated file or corrupt length)"));
    }
    if (!is_track) {
      ++perf_.warnings.unknown_chunks;
      p += 8 + len;
      continue;
    }
    int64_t end_tick = 0;
    RETURN_IF_ERROR(ParseTrack(tracks, p + 8, p + 8 + len, format == 2 ? tick_offset : 0, &end_tick));
    if (format == 2) {
      // The next sequence starts where this one ended, at the default tempo.
      tick_offset = end_tick;
      tempos_.push_back({end_tick, kDefaultTempo});
    }
    max_tick = std::max(max_tick, end_tick);
    ++tracks;
    p += 8 + len;
  }
  perf_.warnings.trailing_bytes += static_cast<int>(end - p);
  perf_.num_tracks = tracks;

  // Formats 0 and 1 merge every track's tempo changes by tick, stably so that
  // at equal ticks the one read last wins. Format 2's list is already in tick
  // order (sequences follow one another), each sequence's own changes after
  // the reset to the default tempo at its start.
  if (format != 2) {
    std::stable_sort(tempos_.begin(), tempos_.end(),
                     [](const TempoChange& a, const TempoChange& b) { return a.tick < b.tick; });
  }
  TickClock clock(BuildTempoMap());

  for (Note& n : perf_.notes) {
    n.start = clock.Seconds(n.start_tick);
    n.end = clock.Seconds(n.end_tick);
  }
  for (PedalEvent& e : perf_.pedal) e.time = clock.Seconds(e.tick);
  perf_.end_seconds = clock.Seconds(max_tick);

  std::sort(perf_.notes.begin(), perf_.notes.end(), [](const Note& a, const Note& b) {
    if (a.start != b.start) return a.start < b.start;
    if (a.pitch != b.pitch) return a.pitch < b.pitch;
    if (a.channel != b.channel) return a.channel < b.channel;
    if (a.track != b.track) return a.track < b.track;
    if (a.end != b.end) return a.end < b.end;
    return a.velocity < b.velocity;
  });
  std::stable_sort(perf_.pedal.begin(), perf_.pedal.end(),
                   [](const PedalEvent& a, const PedalEvent& b) { return a.tick < b.tick; });
  return std::move(perf_);
}

}  // namespace

std::string Warnings::Summary() const {
  std::string out;
  auto add = [&out](int n, absl::string_view what) {
    if (n > 0) absl::StrAppend(&out, out.empty() ? "" : ", ", n, " ", what);
  };
  add(unclosed_notes, "unclosed notes (closed at end of track)");
  add(orphan_note_offs, "orphan note-offs (ignored)");
  add(zero_length_notes, "zero-length notes (kept)");
  add(trailing_bytes, "trailing bytes after the last track (ignored)");
  add(unknown_chunks, "unknown chunks (skipped)");
  add(missing_end_of_track, "tracks without end-of-track");
  add(header_mismatches, "header mismatches (format 0 with several tracks, all read)");
  return out;
}

absl::StatusOr<Performance> ParseMidi(absl::string_view bytes, absl::string_view name) {
  return Parser(bytes, name).Parse();
}

absl::StatusOr<Performance> ReadMidiFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, kMaxFileBytes));
  return ParseMidi(bytes, path);
}

std::vector<Note> PianoNotes(const Performance& performance) {
  std::vector<Note> out;
  out.reserve(performance.notes.size());
  for (const Note& n : performance.notes) {
    if (n.channel != kDrumChannel) out.push_back(n);
  }
  return out;
}

std::vector<Interval> SustainIntervals(const Performance& performance) {
  std::vector<Interval> out;
  std::array<bool, 16> down{};
  int channels_down = 0;
  double start = 0;
  for (const PedalEvent& e : performance.pedal) {  // sorted by time
    if (e.channel == kDrumChannel) continue;
    const bool now = e.value >= 64;
    if (now == down[e.channel]) continue;
    down[e.channel] = now;
    if (now) {
      if (channels_down++ == 0) start = e.time;
    } else if (--channels_down == 0 && e.time > start) {
      out.push_back({start, e.time});
    }
  }
  if (channels_down > 0 && performance.end_seconds > start) {
    out.push_back({start, performance.end_seconds});
  }
  return out;
}

double PianoEndSeconds(const Performance& performance) {
  double end = 0;
  for (const Note& n : performance.notes) {
    if (n.channel != kDrumChannel) end = std::max(end, n.end);
  }
  for (const Interval& i : SustainIntervals(performance)) end = std::max(end, i.end);
  return end;
}

}  // namespace pianola::midi
