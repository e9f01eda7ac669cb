#include "trainer/test_data_servers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <numbers>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "dataserver/data_server.h"
#include "dataserver/synthetic_dataset.h"

namespace pianola {

namespace {

// Replaces every recording's samples with its notes as decaying harmonic tones.
void RenderTones(const TestDataServersOptions& options, SyntheticDatasetParts* parts) {
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

absl::StatusOr<std::unique_ptr<DataServer>> StartServer(const TestDataServersOptions& options,
                                                        std::shared_ptr<const Dataset> dataset,
                                                        const std::string& listen) {
  DataServerOptions o;
  o.listen = listen;
  o.producer_threads = options.producer_threads;
  o.queue_batches = options.queue_batches;
  o.drain_timeout = options.drain_timeout;
  ASSIGN_OR_RETURN(std::unique_ptr<DataServer> server, DataServer::Create(o, {std::move(dataset)}));
  RETURN_IF_ERROR(server->Start());
  return server;
}

}  // namespace

struct TestDataServers::State {
  TestDataServersOptions options;
  std::shared_ptr<const Dataset> dataset;
  std::vector<std::string> addresses;
  absl::Mutex mu;
  std::vector<std::unique_ptr<DataServer>> servers ABSL_GUARDED_BY(mu);
};

TestDataServersOptions LearnableTestDataset() {
  TestDataServersOptions o;
  o.servers = 1;
  o.name = "tones";
  o.timbres = {"pure", "bright"};
  o.pieces = 6;
  o.piece_seconds = {2.0};
  o.validation_every_nth_piece = 3;
  o.notes_per_second = 4;
  o.tone_audio = true;
  return o;
}

absl::StatusOr<std::unique_ptr<TestDataServers>> TestDataServers::Start(
    const TestDataServersOptions& options) {
  auto state = std::make_unique<State>();
  state->options = options;
  SyntheticDatasetOptions so;
  so.name = options.name;
  so.sample_rate = options.sample_rate;
  so.timbres = options.timbres;
  so.pieces = options.pieces;
  so.piece_seconds = options.piece_seconds;
  if (options.validation_every_nth_piece > 0) {
    so.piece_splits.assign(static_cast<size_t>(options.validation_every_nth_piece), TRAIN);
    so.piece_splits.back() = VALIDATION;
  }
  so.notes_per_second = options.notes_per_second;
  so.seed = options.seed;
  SyntheticDatasetParts parts = MakeSyntheticDatasetParts(so);
  if (options.tone_audio) RenderTones(options, &parts);
  ASSIGN_OR_RETURN(std::unique_ptr<Dataset> dataset,
                   Dataset::FromMemory(std::move(parts.manifest), std::move(parts.index),
                                       std::move(parts.audio)));
  state->dataset = std::move(dataset);
  absl::MutexLock l(&state->mu);
  for (int i = 0; i < options.servers; ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<DataServer> server,
                     StartServer(options, state->dataset, "127.0.0.1:0"));
    state->addresses.push_back(absl::StrCat("127.0.0.1:", server->BoundPort()));
    state->servers.push_back(std::move(server));
  }
  return std::unique_ptr<TestDataServers>(new TestDataServers(std::move(state)));
}

absl::Status TestDataServers::Restart(int i) {
  ASSIGN_OR_RETURN(std::unique_ptr<DataServer> server,
                   StartServer(state_->options, state_->dataset, state_->addresses.at(i)));
  absl::MutexLock l(&state_->mu);
  if (state_->servers.at(i) != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("server ", i, " is running"));
  }
  state_->servers[i] = std::move(server);
  return absl::OkStatus();
}

TestDataServers::TestDataServers(std::unique_ptr<State> state) : state_(std::move(state)) {}

TestDataServers::~TestDataServers() {
  for (int i = 0; i < static_cast<int>(state_->addresses.size()); ++i) Stop(i);
}

std::string TestDataServers::address(int i) const { return state_->addresses.at(i); }
std::vector<std::string> TestDataServers::addresses() const { return state_->addresses; }
const std::string& TestDataServers::dataset_name() const { return state_->options.name; }

void TestDataServers::Stop(int i) {
  std::unique_ptr<DataServer> server;
  {
    absl::MutexLock l(&state_->mu);
    server = std::move(state_->servers.at(i));
  }
  if (server != nullptr) {
    server->Stop();
    server->Join();
  }
}

int16_t TestDataServers::Sample(int recording, int64_t i) const {
  if (i < 0 || i >= state_->dataset->recording_index(recording).num_samples()) return 0;
  return state_->dataset->audio(recording)[i];
}

absl::StatusOr<std::unique_ptr<BlackHole>> BlackHole::Start() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  // The kernel completes TCP handshakes into the backlog; nobody ever accepts.
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd);
    return absl::InternalError(absl::StrCat("black hole socket: ", error));
  }
  return std::unique_ptr<BlackHole>(new BlackHole(fd, ntohs(addr.sin_port)));
}

BlackHole::BlackHole(int fd, int port) : fd_(fd), port_(port) {}
BlackHole::~BlackHole() { ::close(fd_); }
std::string BlackHole::address() const { return absl::StrCat("127.0.0.1:", port_); }

std::string UnusedAddress() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 1;  // privileged and unused on test machines, if all else fails
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  if (fd >= 0) ::close(fd);  // bound, never listened: connections are refused
  return absl::StrCat("127.0.0.1:", port);
}

}  // namespace pianola
