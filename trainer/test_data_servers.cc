#include "trainer/test_data_servers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "dataserver/data_server.h"
#include "dataserver/synthetic_dataset.h"

namespace pianola {

namespace {

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
  so.notes_per_second = options.notes_per_second;
  so.seed = options.seed;
  ASSIGN_OR_RETURN(std::unique_ptr<Dataset> dataset, MakeSyntheticDataset(so));
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
