#include "trainer/tone_data_servers.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "dataserver/data_server.h"
#include "dataserver/synthetic_dataset.h"

namespace pianola {

struct ToneDataServers::State {
  ToneDatasetOptions options;
  std::shared_ptr<const Dataset> dataset;
  std::vector<std::unique_ptr<DataServer>> servers;
  std::vector<std::string> addresses;
};

namespace {

// Replaces every recording's samples with its notes as decaying harmonic tones.
void RenderTones(const ToneDatasetOptions& options, SyntheticDatasetParts* parts) {
  std::vector<float> mix;
  for (int r = 0; r < parts->index.recordings_size(); ++r) {
    const RecordingIndex& rec = parts->index.recordings(r);
    const std::string& timbre = parts->manifest.recordings(r).timbre();
    const int harmonics =
        1 + static_cast<int>(std::find(options.timbres.begin(), options.timbres.end(), timbre) -
                             options.timbres.begin());
    mix.assign(static_cast<size_t>(rec.num_samples()), 0.0f);
    for (int n = 0; n < rec.note_start_size(); ++n) {
      const double f0 = 440.0 * std::pow(2.0, (static_cast<int>(rec.note_key(n)) - 69) / 12.0);
      const double amp = 0.15 * rec.note_velocity(n) / 127.0;
      const int64_t end = std::min<int64_t>(rec.note_end(n), rec.num_samples());
      for (int64_t i = std::max<int64_t>(rec.note_start(n), 0); i < end; ++i) {
        const double t = static_cast<double>(i - rec.note_start(n)) / options.sample_rate;
        double v = 0;
        for (int h = 1; h <= harmonics; ++h) {
          if (f0 * h >= options.sample_rate / 2.0) break;
          v += std::sin(2 * std::numbers::pi * f0 * h * t) / h;
        }
        mix[static_cast<size_t>(i)] += static_cast<float>(amp * std::exp(-3.0 * t) * v);
      }
    }
    int16_t* out = parts->audio.data() + rec.audio_offset();
    for (int64_t i = 0; i < rec.num_samples(); ++i) {
      out[i] = static_cast<int16_t>(std::clamp(std::lround(mix[static_cast<size_t>(i)] * 32767.0),
                                               -32768L, 32767L));
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ToneDataServers>> ToneDataServers::Start(
    const ToneDatasetOptions& options) {
  auto state = std::make_unique<State>();
  state->options = options;
  SyntheticDatasetOptions so;
  so.name = options.name;
  so.sample_rate = options.sample_rate;
  so.timbres = options.timbres;
  so.pieces = options.pieces;
  so.piece_seconds = {options.piece_seconds};
  so.piece_splits = {TRAIN, TRAIN, VALIDATION};
  so.notes_per_second = options.notes_per_second;
  so.seed = options.seed;
  SyntheticDatasetParts parts = MakeSyntheticDatasetParts(so);
  RenderTones(options, &parts);
  ASSIGN_OR_RETURN(std::unique_ptr<Dataset> dataset,
                   Dataset::FromMemory(std::move(parts.manifest), std::move(parts.index),
                                       std::move(parts.audio)));
  state->dataset = std::move(dataset);
  for (int i = 0; i < options.servers; ++i) {
    DataServerOptions o;
    o.listen = "127.0.0.1:0";
    o.producer_threads = 1;
    o.queue_batches = 2;
    o.drain_timeout = absl::ZeroDuration();
    ASSIGN_OR_RETURN(std::unique_ptr<DataServer> server, DataServer::Create(o, {state->dataset}));
    RETURN_IF_ERROR(server->Start());
    state->addresses.push_back(absl::StrCat("127.0.0.1:", server->BoundPort()));
    state->servers.push_back(std::move(server));
  }
  return std::unique_ptr<ToneDataServers>(new ToneDataServers(std::move(state)));
}

ToneDataServers::ToneDataServers(std::unique_ptr<State> state) : state_(std::move(state)) {}

ToneDataServers::~ToneDataServers() {
  for (auto& server : state_->servers) {
    server->Stop();
    server->Join();
  }
}

std::vector<std::string> ToneDataServers::addresses() const { return state_->addresses; }
const std::string& ToneDataServers::dataset_name() const { return state_->options.name; }

}  // namespace pianola
