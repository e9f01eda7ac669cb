// serve_bench: window serving through gRPC on loopback, against a raw byte
// stream of the same message sizes through the same gRPC stack, in one run.
//
// A child process runs two servers: the real DataServer (producer threads as
// given) over an in-memory synthetic dataset, and a trivial callback-API
// generic service that streams one preallocated buffer of the same size as a
// real WindowBatch message over and over. The parent is the client for both
// (generic stub, bytes counted but not parsed, so client cost is the same for
// both). Reported:
//   - windows/s and MB/s of each, and real/raw (target >= 50%)
//   - windows per second of server CPU (the child's utime+stime; target >= 10,000)
//   - conditioning bytes as a share of audio bytes (target <= 5%)
//   - single-thread in-process assembly rate (no gRPC)
//   - the Python numpy/pretty_midi pipeline (bench/python_pipeline_bench.py,
//     run as a subprocess when a Python is available) and C++/Python per core.
//
//   serve_bench [--seconds S] [--streams N] [--threads N] [--batch B]
//               [--window 16000] [--context 0] [--reference 16000] [--python PATH]

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "dataserver/data_server.h"
#include "dataserver/data_service_impl.h"
#include "dataserver/synthetic_dataset.h"
#include "proto/data_service.pb.h"

namespace pianola {
namespace {

struct Config {
  double seconds = 3;
  int streams = 2;
  int threads = 1;
  int batch = 16;
  int window = 16000;
  int context = 0;
  int reference = 16000;
  std::string python = PIANOLA_PYTHON_DEFAULT;
  std::string source_dir = PIANOLA_SOURCE_DIR_DEFAULT;
};

SyntheticDatasetOptions DatasetOptions() {
  SyntheticDatasetOptions o;
  o.name = "bench";
  o.pieces = 8;
  o.piece_seconds = {60, 45, 75, 50};
  o.notes_per_second = 10;  // a busy piano part
  return o;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// --- the raw baseline service: streams `count` copies of a `size`-byte buffer.
// The request is a StreamWindowsRequest whose max_windows is the count and
// seed the message size.
class RawService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    class Reactor final : public grpc::ServerGenericBidiReactor {
     public:
      Reactor() { StartRead(&request_); }
      void OnReadDone(bool ok) override {
        if (!ok) return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request"));
        std::vector<grpc::Slice> slices;
        std::string bytes;
        if (request_.Dump(&slices).ok()) {
          for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
        }
        StreamWindowsRequest req;
        req.ParseFromString(bytes);
        left_ = req.max_windows();
        std::string payload(static_cast<size_t>(req.seed()), 'x');
        grpc::Slice slice(payload);
        message_ = grpc::ByteBuffer(&slice, 1);
        Next();
      }
      void OnWriteDone(bool ok) override {
        if (!ok) return Finish(grpc::Status::CANCELLED);
        Next();
      }
      void OnDone() override { delete this; }

     private:
      void Next() {
        if (left_ == 0) return Finish(grpc::Status::OK);
        --left_;
        StartWrite(&message_);
      }
      grpc::ByteBuffer request_;
      grpc::ByteBuffer message_;
      uint64_t left_ = 0;
    };
    return new Reactor();
  }
};

[[noreturn]] void RunChild(const Config& cfg, int to_parent, int from_parent) {
  auto ds = MakeSyntheticDataset(DatasetOptions());
  if (!ds.ok()) std::_Exit(3);
  DataServerOptions options;
  options.producer_threads = cfg.threads;
  options.queue_batches = 4;
  auto server = DataServer::Create(options, {std::shared_ptr<const Dataset>(std::move(ds).value())});
  if (!server.ok() || !(*server)->Start().ok()) std::_Exit(4);
  RawService raw;
  grpc::ServerBuilder builder;
  int raw_port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &raw_port);
  builder.RegisterCallbackGenericService(&raw);
  std::unique_ptr<grpc::Server> raw_server = builder.BuildAndStart();
  if (raw_server == nullptr) std::_Exit(5);
  const std::string ports = absl::StrCat((*server)->BoundPort(), " ", raw_port, "\n");
  if (write(to_parent, ports.data(), ports.size()) < 0) std::_Exit(6);
  char c;
  while (read(from_parent, &c, 1) > 0) {
  }
  raw_server->Shutdown();
  (*server)->Stop();
  std::_Exit(0);
}

// Streams one call through the generic stub; returns bytes and messages.
struct CallResult {
  int64_t bytes = 0;
  int64_t messages = 0;
  std::string first;  // the first message
  grpc::Status status;
};

CallResult GenericStream(grpc::GenericStub* stub, const std::string& method,
                         const std::string& request) {
  class Reactor final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    Reactor(grpc::GenericStub* stub, const std::string& method, const std::string& request) {
      grpc::Slice slice(request);
      request_ = grpc::ByteBuffer(&slice, 1);
      stub->PrepareBidiStreamingCall(&ctx_, method, grpc::StubOptions(), this);
      StartWrite(&request_);
      StartWritesDone();
      StartRead(&incoming_);
      StartCall();
    }
    void OnReadDone(bool ok) override {
      if (!ok) return;
      result_.bytes += static_cast<int64_t>(incoming_.Length());
      if (result_.messages++ == 0) {
        std::vector<grpc::Slice> slices;
        if (incoming_.Dump(&slices).ok()) {
          for (auto& s : slices) {
            result_.first.append(reinterpret_cast<const char*>(s.begin()), s.size());
          }
        }
      }
      StartRead(&incoming_);
    }
    void OnDone(const grpc::Status& s) override {
      result_.status = s;
      done_.Notify();
    }
    CallResult Wait() {
      done_.WaitForNotification();
      return result_;
    }

   private:
    grpc::ClientContext ctx_;
    grpc::ByteBuffer request_, incoming_;
    CallResult result_;
    absl::Notification done_;
  };
  Reactor reactor(stub, method, request);
  return reactor.Wait();
}

struct Phase {
  double wall = 0, server_cpu = 0;
  int64_t bytes = 0, messages = 0, windows = 0;
};

// Runs `streams` concurrent clients, each issuing calls back to back until
// `seconds` have passed.
Phase RunPhase(const Config& cfg, pid_t child, grpc::GenericStub* stub, const std::string& method,
               const std::function<std::string(int stream, int call)>& request,
               int windows_per_message, std::string* first) {
  Phase p;
  std::atomic<int64_t> bytes{0}, messages{0};
  std::vector<std::thread> threads;
  const double cpu0 = ProcessCpuSeconds(child), t0 = Now();
  for (int s = 0; s < cfg.streams; ++s) {
    threads.emplace_back([&, s] {
      for (int call = 0; Now() - t0 < cfg.seconds; ++call) {
        CallResult r = GenericStream(stub, method, request(s, call));
        if (!r.status.ok()) {
          std::fprintf(stderr, "%s failed: %s\n", method.c_str(), r.status.error_message().c_str());
          std::exit(1);
        }
        if (s == 0 && call == 0 && first != nullptr) *first = r.first;
        bytes += r.bytes;
        messages += r.messages;
      }
    });
  }
  for (auto& t : threads) t.join();
  p.wall = Now() - t0;
  p.server_cpu = ProcessCpuSeconds(child) - cpu0;
  p.bytes = bytes;
  p.messages = messages;
  p.windows = p.messages * windows_per_message;
  return p;
}

// Conditioning share and single-thread assembly rate, in process.
void AssemblyStats(const Config& cfg, double* conditioning_share, double* windows_per_s) {
  auto ds = MakeSyntheticDataset(DatasetOptions());
  auto impl = DataServiceImpl::Create({std::shared_ptr<const Dataset>(std::move(ds).value())});
  StreamWindowsRequest req;
  req.set_batch_size(cfg.batch);
  req.set_window_samples(cfg.window);
  req.set_context_samples(cfg.context);
  req.set_reference_samples(cfg.reference);
  auto stream = (*impl)->StreamWindows(req);
  WindowBatch batch;
  int64_t audio = 0, conditioning = 0, windows = 0;
  const double t0 = Now();
  for (int epoch = 0; Now() - t0 < 1.0; ++epoch) {
    req.set_epoch(epoch);
    stream = (*impl)->StreamWindows(req);
    while ((*stream)->Next(&batch).value()) {
      windows += batch.windows_size();
      if (epoch == 0) {
        for (const Window& w : batch.windows()) {
          audio += static_cast<int64_t>(w.audio().size() + w.reference().size());
          conditioning += static_cast<int64_t>(w.conditioning().ByteSizeLong());
        }
      }
    }
  }
  *windows_per_s = windows / (Now() - t0);
  *conditioning_share = static_cast<double>(conditioning) / static_cast<double>(audio);
}

// Runs the Python pipeline; returns its windows/s (0 if unavailable).
double RunPython(const Config& cfg) {
  const std::string script = cfg.source_dir + "/bench/python_pipeline_bench.py";
  const std::string cmd =
      absl::StrCat(cfg.python, " ", script, " --seconds ", cfg.seconds, " --window ", cfg.window,
                   " --context ", cfg.context, " --reference ", cfg.reference, " --batch ",
                   cfg.batch, " 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return 0;
  char line[512];
  double rate = 0;
  while (std::fgets(line, sizeof(line), p) != nullptr) {
    std::string l(line);
    std::fputs(("  python: " + l).c_str(), stdout);
    const std::string key = "windows_per_second ";
    if (l.rfind(key, 0) == 0) absl::SimpleAtod(l.substr(key.size(), l.size() - key.size() - 1), &rate);
  }
  const int status = pclose(p);
  return status == 0 ? rate : 0;
}

int Main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--seconds") cfg.seconds = std::stod(value);
    else if (flag == "--streams") cfg.streams = std::stoi(value);
    else if (flag == "--threads") cfg.threads = std::stoi(value);
    else if (flag == "--batch") cfg.batch = std::stoi(value);
    else if (flag == "--window") cfg.window = std::stoi(value);
    else if (flag == "--context") cfg.context = std::stoi(value);
    else if (flag == "--reference") cfg.reference = std::stoi(value);
    else if (flag == "--python") cfg.python = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  std::printf("serve_bench: %d streams, batch %d, window %d + context %d, reference %d, "
              "%d producer thread(s), %.1f s per phase, %u cores\n",
              cfg.streams, cfg.batch, cfg.window, cfg.context, cfg.reference, cfg.threads,
              cfg.seconds, std::thread::hardware_concurrency());
  // Fork before anything starts gRPC threads in this process.
  int up[2], down[2];
  if (pipe(up) != 0 || pipe(down) != 0) return 1;
  const pid_t child = fork();
  if (child == 0) {
    close(up[0]);
    close(down[1]);
    RunChild(cfg, up[1], down[0]);
  }
  close(up[1]);
  close(down[0]);
  char buf[64] = {0};
  ssize_t n = read(up[0], buf, sizeof(buf) - 1);
  int real_port = 0, raw_port = 0;
  if (n <= 0 || std::sscanf(buf, "%d %d", &real_port, &raw_port) != 2) {
    std::fprintf(stderr, "server child failed to start\n");
    return 1;
  }

  double share = 0, assembly_rate = 0;
  AssemblyStats(cfg, &share, &assembly_rate);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  grpc::GenericStub real_stub(grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", real_port),
                                                        grpc::InsecureChannelCredentials(), args));
  grpc::GenericStub raw_stub(grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", raw_port),
                                                       grpc::InsecureChannelCredentials(), args));
  auto real_request = [&](int stream, int call) {
    StreamWindowsRequest r;
    r.set_dataset("bench");
    r.set_seed(stream);
    r.set_epoch(call);
    r.set_batch_size(cfg.batch);
    r.set_window_samples(cfg.window);
    r.set_context_samples(cfg.context);
    r.set_reference_samples(cfg.reference);
    return r.SerializeAsString();
  };
  std::string first;
  // Warm-up, then the measured phases.
  RunPhase({.seconds = 0.3, .streams = 1}, child, &real_stub, "/pianola.DataService/StreamWindows",
           real_request, cfg.batch, &first);
  Phase real = RunPhase(cfg, child, &real_stub, "/pianola.DataService/StreamWindows",
                        real_request, cfg.batch, &first);
  WindowBatch sample;
  if (!sample.ParseFromString(first) || sample.windows_size() != cfg.batch) {
    std::fprintf(stderr, "first real message is not a full WindowBatch\n");
    return 1;
  }
  const int64_t message_size = real.bytes / std::max<int64_t>(1, real.messages);
  auto raw_request = [&](int, int) {
    StreamWindowsRequest r;
    r.set_seed(static_cast<uint64_t>(message_size));
    r.set_max_windows(256);
    return r.SerializeAsString();
  };
  Phase raw = RunPhase(cfg, child, &raw_stub, "/pianola.Bench/Raw", raw_request, cfg.batch,
                       nullptr);
  close(down[1]);
  waitpid(child, nullptr, 0);

  auto report = [&](const char* name, const Phase& p) {
    std::printf("%-5s %8.0f windows/s  %8.1f MB/s  %7.0f msgs/s of %lld B  server CPU %.2f s -> "
                "%.0f windows per server CPU-second\n",
                name, p.windows / p.wall, p.bytes / 1e6 / p.wall, p.messages / p.wall,
                static_cast<long long>(p.bytes / std::max<int64_t>(1, p.messages)), p.server_cpu,
                p.server_cpu > 0 ? p.windows / p.server_cpu : 0.0);
  };
  report("real", real);
  report("raw", raw);
  const double ratio = (real.bytes / real.wall) / (raw.bytes / raw.wall);
  const double per_core = real.server_cpu > 0 ? real.windows / real.server_cpu : 0;
  std::printf("real/raw throughput: %.2f (target >= 0.50)\n", ratio);
  std::printf("windows per server core: %.0f (target >= 10000)\n", per_core);
  std::printf("conditioning bytes / audio bytes: %.3f%% (target <= 5%%)\n", 100 * share);
  std::printf("in-process assembly, one thread, no gRPC: %.0f windows/s\n", assembly_rate);
  const double python = RunPython(cfg);
  if (python > 0) {
    std::printf("python pipeline: %.0f windows/s per core; C++ server per core / python: %.1fx\n",
                python, per_core / python);
  } else {
    std::printf("python pipeline: unavailable (%s)\n", cfg.python.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace pianola

int main(int argc, char** argv) { return pianola::Main(argc, argv); }
