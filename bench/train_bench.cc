// Training throughput: target audio samples per second of the C++ trainer's
// step (forward, loss, backward, gradient clipping, Adam) against an
// equivalent PyTorch eager implementation in Python (bench/train_bench.py),
// same torch 2.11 from the project's venv, same machine, same run, same
// thread count, same batch.
//
//   train_bench [--presets tiny,small] [--decoders autoregressive[,parallel]]
//       [--steps N] [--warmup N] [--repeats N] [--threads N] [--python PATH]
//       [--profile] [--device cpu|cuda] [--peak-tflops F]
//
// Per preset, the batch shape, optimizer and clipping come from
// configs/<preset>.textproto (the experiment a user would train), the model
// from the preset for each decoder kind. The step mirrors TrainingRun::Step
// in trainer/trainer.cc minus the data client (benchmarked in client_bench):
// zero_grad, Autoencoder::Loss, backward, ClipGradNorm, the FusedAdam step,
// with deterministic algorithms on as the CPU trainer sets them
// (trainer/determinism.h). The Python side is what a PyTorch user writes:
// the full-window forward, tanh * sigmoid, torch.optim.Adam's defaults,
// clip_grad_norm_ (docs/perf.md says which differences the ratio measures).
//
// Equivalence: this program writes the model shape (JSON) and its initial
// weights and the batch (one binary file); the Python side loads the weights
// by parameter name (every name and shape must match) and reports its step-0
// loss, which must equal ours within 1e-3 relative, or the benchmark fails
// (exit 1): the two sides compute the same function. C++ and Python runs
// alternate `repeats` times; the best rate of each is reported.
//
// --device cuda: both sides as the trainer runs on a GPU: bf16 autocast, TF32,
// cuDNN autotuning; the C++ side timed twice, eagerly and with the step's
// forward + backward + clipping captured as a CUDA graph
// (trainer/cuda_graph_step.h, as `cuda_graphs: true` in a config); the
// ratio is the graphed C++ step against eager Python. Also prints the model
// FLOPs per step (3 x the forward's convolution and matrix-product FLOPs,
// trainer/flop_counter.h) as TFLOP/s and as a share of --peak-tflops (default
// for an H100/H200: 989, dense bf16 by the datasheet).
//
// On the CPU the rows also give the C++ step's model GFLOP/s (same count),
// to hold against the machine's GEMM rate, and minor page faults per step.
//
// --profile: after the timed runs, both sides profile kProfileSteps more steps
// with the Kineto CPU profiler (torch::autograd::profiler here,
// torch.profiler in Python) and print per-op self and total times per step,
// aggregated by op name the same way on both sides; for the C++ side also
// where copy_, fill_ and add_ come from (their outermost enclosing op). With
// --device cuda the profilers also record the GPU's activity (CUPTI) and both
// sides print the kernels' time per step, the share of the profiled wall time
// the GPU was busy, launches per step and the kernels taking the most time;
// the C++ side profiles its eager and its CUDA-graphed step. A failure of the
// Python side's profile is printed and does not fail the benchmark.
//
// Threads: both sides call set_num_threads(--threads). OpenMP reads
// OMP_WAIT_POLICY when libtorch loads, so it cannot be set from here; the
// header prints it, and the Python subprocess inherits it. PASSIVE helps only
// on an oversubscribed machine (spinning workers take cores from everything
// else); on a quiet one it makes steps 2-3x slower on both sides, since a step
// is hundreds of short parallel regions (docs/perf.md).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <ftw.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <kineto/ActivityType.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "common/file_util.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/args.h"
#include "trainer/autocast_scope.h"
#include "trainer/autoencoder.h"
#include "trainer/cuda_graph_step.h"
#include "trainer/determinism.h"
#include "trainer/experiment_config.h"
#include "trainer/flop_counter.h"
#include "trainer/fused_adam.h"
#include "trainer/grad_clip.h"
#include "trainer/model_config.h"

namespace pianola {
namespace {

constexpr uint64_t kNoiseSeed = 1234;
constexpr int kProfileSteps = 3;
constexpr int kProfileTopOps = 30;

// The first three fields of /proc/loadavg ("?" where unreadable): the VM is
// shared, so runs record the load they ran under.
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  if (!(in >> one >> five >> fifteen)) return "?";
  return absl::StrCat(one, " ", five, " ", fifteen);
}

// Minor page faults of this process so far (all threads): a step that maps
// fresh memory for its large tensors pays the kernel's page zeroing on every
// step (docs/perf.md, "Training throughput").
int64_t MinorFaults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct BenchArgs {
  std::vector<std::string> presets = {"tiny", "small"};
  std::vector<DecoderKind> decoders = {DecoderKind::kAutoregressive};
  int steps = 0;  // 0: per preset (tiny 40, small 8)
  int warmup = 3;
  int repeats = 2;
  int threads = 2;
  bool profile = false;
  bool cuda = false;         // --device cuda
  double peak_tflops = 0;    // 0: from the device name where known
  std::string python = PIANOLA_PYTHON_DEFAULT;
  std::string source_dir = PIANOLA_SOURCE_DIR_DEFAULT;
};

std::string Json(const ModelConfig& m, const TrainOptions& o, int64_t context, int threads,
                 int steps, int warmup, bool profile, bool cuda) {
  const EncoderConfig& e = m.encoder;
  const DecoderConfig& d = m.decoder;
  std::vector<std::string> res;
  for (const StftResolution& r : m.loss.stft_resolutions) {
    res.push_back(absl::StrCat("[", r.fft_size, ",", r.hop, ",", r.win_length, "]"));
  }
  return absl::StrCat(
      "{\"sample_rate\":", m.sample_rate, ",\"device\":\"", cuda ? "cuda" : "cpu",
      "\",\"bf16\":", cuda ? "true" : "false", ",\"context_samples\":", context,
      ",\"window_samples\":", o.data.window_samples, ",\"threads\":", threads,
      ",\"steps\":", steps, ",\"warmup_steps\":", warmup, ",\"noise_seed\":", kNoiseSeed,
      ",\"profile_steps\":", profile ? kProfileSteps : 0,
      ",\"profile_top_ops\":", kProfileTopOps,
      ",\"grad_clip_norm\":", o.grad_clip_norm,
      ",\"optimizer\":{\"lr\":", o.optimizer.lr, ",\"beta1\":", o.optimizer.beta1,
      ",\"beta2\":", o.optimizer.beta2, ",\"eps\":", o.optimizer.eps,
      ",\"weight_decay\":", o.optimizer.weight_decay, "}",
      ",\"encoder\":{\"channels\":", e.channels, ",\"layers\":", e.layers,
      ",\"kernel_size\":", e.kernel_size, ",\"z_dim\":", e.z_dim, ",\"mel\":{\"n_fft\":",
      e.mel.n_fft, ",\"hop\":", e.mel.hop, ",\"n_mels\":", e.mel.n_mels, ",\"f_min\":",
      e.mel.f_min, ",\"f_max\":", e.mel.f_max, ",\"log_floor\":", e.mel.log_floor, "}}",
      ",\"decoder\":{\"kind\":\"", DecoderKindName(d.kind), "\",\"layers_per_cycle\":",
      d.layers_per_cycle, ",\"cycles\":", d.cycles, ",\"kernel_size\":", d.kernel_size,
      ",\"residual_channels\":", d.residual_channels, ",\"gate_channels\":", d.gate_channels,
      ",\"skip_channels\":", d.skip_channels, ",\"cond_channels\":", d.cond_channels,
      ",\"cond_hidden_channels\":", d.cond_hidden_channels,
      ",\"quantization_levels\":", d.quantization_levels, ",\"fold\":", d.effective_fold(),
      ",\"cond_fold_filters\":", d.cond_fold_filters, "}",
      ",\"loss\":{\"stft_resolutions\":[", absl::StrJoin(res, ","), "],\"stft_weight\":",
      m.loss.stft_weight, ",\"spectral_convergence_weight\":",
      m.loss.spectral_convergence_weight, ",\"log_magnitude_weight\":",
      m.loss.log_magnitude_weight, ",\"waveform_l1_weight\":", m.loss.waveform_l1_weight,
      "}}");
}

// "PNLBENCH", u32 count, then per tensor: u32 name length, name, u32 ndim,
// u32 dtype (0 float32, 1 int64), i64 dims[ndim], raw little-endian data.
bool WriteTensors(const std::string& path,
                  const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::ofstream out(path, std::ios::binary);
  auto put32 = [&](uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  out.write("PNLBENCH", 8);
  put32(static_cast<uint32_t>(tensors.size()));
  for (const auto& [name, tensor] : tensors) {
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const bool is_long = t.scalar_type() == torch::kLong;
    if (!is_long) t = t.to(torch::kFloat);
    put32(static_cast<uint32_t>(name.size()));
    out.write(name.data(), static_cast<std::streamsize>(name.size()));
    put32(static_cast<uint32_t>(t.dim()));
    put32(is_long ? 1 : 0);
    for (int64_t d : t.sizes()) out.write(reinterpret_cast<const char*>(&d), 8);
    out.write(static_cast<const char*>(t.data_ptr()),
              static_cast<std::streamsize>(t.numel() * t.element_size()));
  }
  return out.good();
}

// The value after "key": in a flat JSON object (NaN when absent).
double JsonNumber(const std::string& json, const std::string& key) {
  const std::string needle = absl::StrCat("\"", key, "\": ");
  size_t at = json.find(needle);
  if (at == std::string::npos) return std::nan("");
  at += needle.size();
  const size_t end = json.find_first_of(",}", at);
  double v = 0;
  return absl::SimpleAtod(json.substr(at, end - at), &v) ? v : std::nan("");
}

// Prints the GPU activity of a profile (CUDA events: kernels, copies, fills):
// their time per step, the share of `wall` it covers, launches per step, and
// the kTopKernels names taking the most time, in the format of
// train_bench.py's profile_steps.
void PrintDeviceActivity(const std::string& label,
                         const std::vector<torch::autograd::profiler::KinetoEvent>& events,
                         double wall) {
  constexpr int kTopKernels = 15;
  struct Agg {
    int64_t calls = 0;
    double ns = 0;
  };
  std::map<std::string, Agg> by_name;
  double total_ns = 0;
  int64_t launches = 0;
  for (const auto& e : events) {
    // Work the device did: kernels, copies, fills. Not the GPU-side spans of
    // user annotations (record_function ranges), which overlap the kernels
    // they contain and would count their time twice.
    if (e.deviceType() != c10::DeviceType::CUDA ||
        e.activityType() == static_cast<uint8_t>(libkineto::ActivityType::GPU_USER_ANNOTATION)) {
      continue;
    }
    Agg& a = by_name[e.name()];
    ++a.calls;
    a.ns += static_cast<double>(e.durationNs());
    total_ns += static_cast<double>(e.durationNs());
    ++launches;
  }
  std::printf("  GPU %s: device activity %.2f ms/step, busy %.0f%% of the profiled wall, "
              "%lld launches/step\n",
              label.c_str(), total_ns / 1e6 / kProfileSteps, 100 * total_ns / 1e9 / wall,
              static_cast<long long>(launches / kProfileSteps));
  std::vector<std::pair<std::string, Agg>> rows(by_name.begin(), by_name.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
  std::printf("    %-60s %7s %10s\n", "kernel", "calls", "ms");
  for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(kTopKernels); ++i) {
    std::printf("    %-60s %7.0f %10.3f\n", rows[i].first.substr(0, 60).c_str(),
                static_cast<double>(rows[i].second.calls) / kProfileSteps,
                rows[i].second.ns / 1e6 / kProfileSteps);
  }
}

// An empty profiler session recording CPU and CUDA activity.
void InitProfilerForCudaGraphs() {
  namespace prof = torch::autograd::profiler;
  namespace impl = torch::profiler::impl;
  const std::set<impl::ActivityType> activities = {impl::ActivityType::CPU,
                                                   impl::ActivityType::CUDA};
  prof::prepareProfiler(impl::ProfilerConfig(impl::ProfilerState::KINETO), activities);
  prof::enableProfiler(impl::ProfilerConfig(impl::ProfilerState::KINETO), activities);
  (void)prof::disableProfiler();
}

// Runs `step` kProfileSteps times under the Kineto profiler and prints the
// ops with the largest self time on the CPU, per step: name, calls, self ms,
// total ms (total includes the ops an op calls; self excludes them).
// Aggregated as torch.profiler's key_averages() does, so the two sides'
// tables compare. With `cuda`, also the GPU's activity (PrintDeviceActivity).
template <typename Step>
void ProfileSteps(const std::string& label, bool cuda, Step step) {
  namespace prof = torch::autograd::profiler;
  namespace impl = torch::profiler::impl;
  std::set<impl::ActivityType> activities = {impl::ActivityType::CPU};
  if (cuda) activities.insert(impl::ActivityType::CUDA);
  prof::prepareProfiler(impl::ProfilerConfig(impl::ProfilerState::KINETO), activities);
  prof::enableProfiler(impl::ProfilerConfig(impl::ProfilerState::KINETO), activities);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kProfileSteps; ++i) step();
  if (cuda) torch::cuda::synchronize();
  const double wall = Seconds(start);
  std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();
  struct Span {
    uint64_t thread, start, end;
    std::string name;
  };
  std::vector<Span> spans;
  for (const prof::KinetoEvent& e : result->events()) {
    if (e.deviceType() != c10::DeviceType::CPU || e.isHiddenEvent()) continue;
    spans.push_back({e.startThreadId(), e.startNs(), e.endNs(), e.name()});
  }
  // Outer spans first: by thread, start, then longest.
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    if (a.thread != b.thread) return a.thread < b.thread;
    if (a.start != b.start) return a.start < b.start;
    return a.end > b.end;
  });
  struct Agg {
    int64_t calls = 0;
    double self_ns = 0, total_ns = 0;
  };
  std::map<std::string, Agg> by_name;
  std::vector<size_t> stack;  // indices of open spans on the current thread
  std::vector<double> self(spans.size());
  std::vector<size_t> root(spans.size());  // the outermost open span when it began
  for (size_t i = 0; i < spans.size(); ++i) {
    const Span& sp = spans[i];
    while (!stack.empty() && (spans[stack.back()].thread != sp.thread ||
                              spans[stack.back()].end <= sp.start)) {
      stack.pop_back();
    }
    const double d = static_cast<double>(sp.end - sp.start);
    self[i] = d;
    if (!stack.empty()) self[stack.back()] -= d;
    root[i] = stack.empty() ? i : stack.front();
    stack.push_back(i);
  }
  double self_sum = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    Agg& a = by_name[spans[i].name];
    ++a.calls;
    a.self_ns += self[i];
    a.total_ns += static_cast<double>(spans[i].end - spans[i].start);
    self_sum += self[i];
  }
  std::vector<std::pair<std::string, Agg>> rows(by_name.begin(), by_name.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.self_ns > b.second.self_ns; });
  std::printf("  profile %s: %.1f ms/step wall (profiled), ops' self time %.1f ms/step\n",
              label.c_str(), 1e3 * wall / kProfileSteps, self_sum / 1e6 / kProfileSteps);
  std::printf("    %-44s %7s %10s %10s\n", "op", "calls", "self ms", "total ms");
  for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(kProfileTopOps); ++i) {
    const Agg& a = rows[i].second;
    std::printf("    %-44s %7.0f %10.2f %10.2f\n", rows[i].first.substr(0, 44).c_str(),
                static_cast<double>(a.calls) / kProfileSteps, a.self_ns / 1e6 / kProfileSteps,
                a.total_ns / 1e6 / kProfileSteps);
  }
  // Memory-bound helper ops, by the outermost op (or autograd node) they ran
  // under: which layer code asked for the copies and fills.
  for (const char* helper : {"aten::copy_", "aten::fill_", "aten::add_"}) {
    std::map<std::string, double> by_root;
    double sum = 0;
    for (size_t i = 0; i < spans.size(); ++i) {
      if (spans[i].name != helper) continue;
      by_root[root[i] == i ? std::string("(top level)") : spans[root[i]].name] += self[i];
      sum += self[i];
    }
    if (sum <= 0) continue;
    std::vector<std::pair<std::string, double>> parents(by_root.begin(), by_root.end());
    std::sort(parents.begin(), parents.end(),
              [](const auto& a, const auto& b) { return a.second > b.second; });
    std::printf("    %s %.2f ms/step, under:", helper, sum / 1e6 / kProfileSteps);
    for (size_t i = 0; i < parents.size() && i < 4; ++i) {
      std::printf(" %s %.2f;", parents[i].first.substr(0, 48).c_str(),
                  parents[i].second / 1e6 / kProfileSteps);
    }
    std::printf("\n");
  }
  if (cuda) PrintDeviceActivity(label, result->events(), wall);
  std::fflush(stdout);  // each table out before the next profile (CUPTI under graphs)
}

struct PythonRun {
  bool ok = false;
  double samples_per_second = 0;
  double first_loss = 0;
  double faults_per_step = 0;
  std::string output;
};

PythonRun RunPython(const BenchArgs& args, const std::string& spec, const std::string& tensors) {
  const std::string cmd = absl::StrCat("'", args.python, "' '", args.source_dir,
                                       "/bench/train_bench.py' --spec '", spec, "' --tensors '",
                                       tensors, "' 2>&1");
  PythonRun r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) r.output.append(buf, n);
  const int status = pclose(pipe);
  r.samples_per_second = JsonNumber(r.output, "samples_per_second");
  r.first_loss = JsonNumber(r.output, "first_loss");
  r.faults_per_step = JsonNumber(r.output, "faults_per_step");
  r.ok = status == 0 && std::isfinite(r.samples_per_second) && std::isfinite(r.first_loss);
  return r;
}

std::string CudaDeviceName() { return at::cuda::getCurrentDeviceProperties()->name; }

// The device's dense bf16 peak in TFLOP/s where the name is known (0: not).
double PeakTflops(const BenchArgs& args) {
  if (args.peak_tflops > 0 || !args.cuda) return args.peak_tflops;
  const std::string name = CudaDeviceName();
  return name.find("H100") != std::string::npos || name.find("H200") != std::string::npos
             ? 989.0
             : 0.0;
}

// Returns false when the two implementations disagree or Python fails.
bool RunCase(const std::string& preset, DecoderKind kind, const BenchArgs& args) {
  const std::string config = absl::StrCat(args.source_dir, "/configs/", preset, ".textproto");
  absl::StatusOr<TrainOptions> loaded = LoadExperimentConfig(config);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
    return false;
  }
  const TrainOptions& o = *loaded;
  absl::StatusOr<ModelConfig> model_config = ModelPreset(o.preset, kind);
  if (!model_config.ok()) {
    std::fprintf(stderr, "%s\n", model_config.status().ToString().c_str());
    return false;
  }
  const ModelConfig& mc = *model_config;
  const int64_t context = ContextSamples(mc);
  const int64_t batch = o.data.batch_size;
  const int64_t n = context + o.data.window_samples;
  const int steps =
      args.steps > 0 ? args.steps : (args.cuda ? 100 : (preset == "tiny" ? 40 : 8));
  const torch::Device device = args.cuda ? torch::Device(torch::kCUDA, 0) : torch::kCPU;

  torch::manual_seed(1);
  Autoencoder model = *MakeAutoencoder(mc);
  model->train();
  at::Generator data_gen = at::detail::createCPUGenerator(7);
  ModelBatch mb{
      .audio = (torch::randn({batch, n}, data_gen) * 0.2).clamp(-1, 1),
      .conditioning =
          (torch::rand({batch, kMidiFeatureChannels, n}, data_gen) > 0.99).to(torch::kFloat),
      .reference = (torch::randn({batch, static_cast<int64_t>(o.data.reference_samples)},
                                 data_gen) * 0.2).clamp(-1, 1)};

  // Exchange files for the Python side.
  const std::string dir = absl::StrCat(std::filesystem::temp_directory_path().string(),
                                       "/train_bench_", getpid());
  std::filesystem::create_directories(dir);
  const std::string spec = dir + "/spec.json", tensors = dir + "/tensors.bin";
  std::ofstream(spec) << Json(mc, o, context, args.threads, steps, args.warmup, args.profile,
                              args.cuda);
  std::vector<std::pair<std::string, torch::Tensor>> all;
  for (const auto& p : model->named_parameters()) all.emplace_back("model/" + p.key(), p.value());
  for (const auto& b : model->named_buffers()) all.emplace_back("model/" + b.key(), b.value());
  all.emplace_back("batch/audio", mb.audio);
  all.emplace_back("batch/conditioning", mb.conditioning);
  all.emplace_back("batch/reference", mb.reference);
  if (!WriteTensors(tensors, all)) {
    std::fprintf(stderr, "cannot write %s\n", tensors.c_str());
    return false;
  }
  model->to(device);
  mb = {.audio = mb.audio.to(device), .conditioning = mb.conditioning.to(device),
        .reference = mb.reference.to(device)};

  // Model FLOPs of a step: 3 x the forward's (backward ~ 2 x forward). The
  // forward is the training step's own, with autograd recording: without it
  // the decoder takes its inference path, whose fused CPU kernel no ATen
  // observer sees.
  double step_flops = 0;
  {
    AutocastScope autocast(args.cuda);
    at::Generator count_gen = at::detail::createCPUGenerator(kNoiseSeed);
    std::optional<torch::Generator> count_noise;
    if (!args.cuda) count_noise = count_gen;
    FlopCounter counter;
    (void)model->Loss(mb, count_noise)->total;
    step_flops = 3 * counter.flops();
  }

  std::vector<torch::Tensor> params = model->parameters();
  std::unique_ptr<torch::optim::Optimizer> adam = MakeOptimizer(o.optimizer, params);
  const double clip =
      o.grad_clip_norm > 0 ? o.grad_clip_norm : std::numeric_limits<double>::infinity();
  // The parallel decoder's noise: a seeded CPU generator on the CPU; on CUDA
  // the default generator (what a CUDA graph replays), seeded before step 0.
  at::Generator cpu_noise = at::detail::createCPUGenerator(kNoiseSeed);
  std::optional<torch::Generator> noise;
  if (args.cuda) {
    torch::cuda::manual_seed(kNoiseSeed);
  } else {
    noise = cpu_noise;
  }
  std::unique_ptr<CudaGraphStep> graph;
  if (args.cuda) {
    // A profiler session before the capture, as torch.profiler's
    // _init_for_cuda_graphs does: CUPTI set up after a graph was captured
    // can break that graph's replays (pytorch#75504).
    if (args.profile) InitProfilerForCudaGraphs();
    absl::StatusOr<std::unique_ptr<CudaGraphStep>> made = CudaGraphStep::Create(device);
    if (!made.ok()) {
      std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
      return false;
    }
    graph = *std::move(made);
  }
  // As TrainingRun::Step: the loss's device work (eager, or through
  // `through`, the graph), the loss read back, the optimizer step.
  torch::Tensor loss_t, norm_t;
  auto step = [&](CudaGraphStep* through) {
    if (through == nullptr) {
      // Eager. Once the graph is captured, its gradient buffers must stay
      // the parameters' .grad (replays write them, the optimizer reads
      // them): zero them in place rather than set them to None.
      adam->zero_grad(/*set_to_none=*/graph == nullptr || !graph->captured());
    } else if (!through->captured()) {
      adam->zero_grad();  // warm-up and capture allocate the gradients
    }
    auto work = [&] {
      torch::Tensor total;
      {
        AutocastScope autocast(args.cuda, /*cache_enabled=*/through == nullptr);
        total = model->Loss(mb, noise)->total;
      }
      loss_t = total.detach();
      total.backward();
      norm_t = ClipGradNormTensor(params, clip);
    };
    if (through != nullptr) {
      through->Run(work);
    } else {
      work();
    }
    const double value = loss_t.item<double>();
    adam->step();
    return value;
  };
  auto sync = [&] {
    if (args.cuda) torch::cuda::synchronize();
  };
  // Seconds per step over `steps` steps.
  auto timed = [&](CudaGraphStep* through) {
    sync();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) step(through);
    sync();
    return Seconds(start) / steps;
  };
  const double samples = static_cast<double>(batch) * o.data.window_samples;
  double best_cpp = 0, best_graph = 0, best_py = 0, cpp_first = 0, py_first = 0;
  double cpp_faults = 0, py_faults = 0;  // minor page faults per step, of the best runs
  std::string py_profile;
  for (int r = 0; r < args.repeats; ++r) {
    if (r == 0) {
      cpp_first = step(nullptr);
      for (int i = 1; i < args.warmup; ++i) step(nullptr);
    } else {
      for (int i = 0; i < args.warmup; ++i) step(nullptr);
    }
    const int64_t faults = MinorFaults();
    const double rate = samples / timed(nullptr);
    if (rate > best_cpp) {
      best_cpp = rate;
      cpp_faults = static_cast<double>(MinorFaults() - faults) / steps;
    }
    if (graph != nullptr) {
      // Eager calls, the capture, then replays; warm-up covers all three.
      while (graph->calls() < CudaGraphStep::kDefaultWarmupCalls + 1 + args.warmup) {
        step(graph.get());
      }
      best_graph = std::max(best_graph, samples / timed(graph.get()));
    }

    PythonRun py = RunPython(args, spec, tensors);
    if (!py.ok) {
      std::fprintf(stderr, "python baseline failed:\n%s\n", py.output.c_str());
      (void)RemoveTree(dir);
      return false;
    }
    py_first = py.first_loss;
    if (py.samples_per_second > best_py) {
      best_py = py.samples_per_second;
      py_faults = py.faults_per_step;
    }
    // The Python side prints its profile (when asked) after its JSON line.
    const size_t table = py.output.find("  profile ");
    if (table != std::string::npos) py_profile = py.output.substr(table);
  }
  (void)RemoveTree(dir);

  // bf16 autocast rounds differently in the two processes' kernel choices.
  const double tolerance = args.cuda ? 1e-2 : 1e-3;
  const bool same =
      std::abs(cpp_first - py_first) <= tolerance * std::max(1.0, std::abs(cpp_first));
  const std::string name = absl::StrCat(preset, " ", DecoderKindName(kind));
  if (args.cuda) {
    const double tflops = step_flops * best_graph / samples / 1e12;
    const double peak = PeakTflops(args);
    std::printf("%-22s %3lld x %-5u %9lld %12.0f %12.0f %12.0f %7.2fx %7.2fx %8.1f %9.2f %6s"
                "   %.6f / %.6f%s\n",
                name.c_str(), static_cast<long long>(batch), o.data.window_samples,
                static_cast<long long>(model->ParameterCount()), best_cpp, best_graph, best_py,
                best_graph / best_py, best_cpp / best_py, tflops, step_flops / 1e9,
                peak > 0 ? absl::StrFormat("%.2f%%", 100 * tflops / peak).c_str() : "?",
                cpp_first, py_first, same ? "" : "  MISMATCH");
  } else {
    std::printf("%-22s %3lld x %-5u %9lld %12.0f %12.0f %7.2fx %8.1f %9.2f %9.0f / %-9.0f "
                "%.6f / %.6f%s\n",
                name.c_str(), static_cast<long long>(batch), o.data.window_samples,
                static_cast<long long>(model->ParameterCount()), best_cpp, best_py,
                best_cpp / best_py, step_flops * best_cpp / samples / 1e9, step_flops / 1e9,
                cpp_faults, py_faults, cpp_first, py_first, same ? "" : "  MISMATCH");
  }
  if (args.profile) {
    ProfileSteps("C++", args.cuda, [&] { return step(nullptr); });
    if (graph != nullptr) ProfileSteps("C++ graphed", true, [&] { return step(graph.get()); });
    std::printf("%s", py_profile.c_str());
  }
  std::fflush(stdout);
  return same;
}

}  // namespace
}  // namespace pianola

int main(int argc, char** argv) {
  using namespace pianola;
  ArgParser p("train_bench [--presets tiny,small] [--decoders autoregressive,parallel] "
              "[--steps N] [--warmup N] [--repeats N] [--threads N] [--python PATH] "
              "[--profile] [--device cpu|cuda] [--peak-tflops F]");
  p.AddFlag("presets").AddFlag("decoders").AddFlag("steps").AddFlag("warmup")
      .AddFlag("repeats").AddFlag("threads").AddFlag("python").AddBool("profile")
      .AddFlag("device").AddFlag("peak-tflops");
  absl::StatusOr<Args> parsed = p.Parse(argc - 1, argv + 1);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\nusage: %s\n", std::string(parsed.status().message()).c_str(),
                 p.usage().c_str());
    return 2;
  }
  BenchArgs args;
  if (parsed->Has("presets")) args.presets = parsed->GetAll("presets");
  if (parsed->Has("decoders")) {
    args.decoders.clear();
    for (const std::string& d : parsed->GetAll("decoders")) {
      absl::StatusOr<DecoderKind> kind = ParseDecoderKind(d);
      if (!kind.ok()) {
        std::fprintf(stderr, "--decoders: %s\n", std::string(kind.status().message()).c_str());
        return 2;
      }
      args.decoders.push_back(*kind);
    }
  }
  for (auto [flag, target] : {std::pair<const char*, int*>{"steps", &args.steps},
                              {"warmup", &args.warmup},
                              {"repeats", &args.repeats},
                              {"threads", &args.threads}}) {
    absl::StatusOr<int64_t> v = parsed->GetInt(flag, *target);
    if (!v.ok() || *v < 0 || *v > 100000) {
      std::fprintf(stderr, "--%s: expected a count\n", flag);
      return 2;
    }
    *target = static_cast<int>(*v);
  }
  if (args.warmup < 1 || args.repeats < 1 || args.threads < 1) {
    std::fprintf(stderr, "--warmup, --repeats and --threads must be >= 1\n");
    return 2;
  }
  args.python = parsed->Get("python", args.python);
  args.profile = parsed->GetBool("profile");
  const std::string device = parsed->Get("device", "cpu");
  if (device != "cpu" && device != "cuda") {
    std::fprintf(stderr, "--device: expected cpu or cuda, got '%s'\n", device.c_str());
    return 2;
  }
  args.cuda = device == "cuda";
  if (args.cuda && !torch::cuda::is_available()) {
    std::fprintf(stderr, "--device cuda: no CUDA device is available\n");
    return 2;
  }
  if (!absl::SimpleAtod(parsed->Get("peak-tflops", "0"), &args.peak_tflops) ||
      !(args.peak_tflops >= 0)) {
    std::fprintf(stderr, "--peak-tflops: expected a non-negative number\n");
    return 2;
  }
  if (const char* src = std::getenv("PIANOLA_SOURCE_DIR")) args.source_dir = src;

  torch::set_num_threads(args.threads);
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  if (args.cuda) {
    // As the trainer on CUDA (TrainingRun::ConfigureTorch).
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
    at::globalContext().setBenchmarkCuDNN(true);
    const double peak = PeakTflops(args);
    std::printf("training step throughput (target audio samples/s) on %s, bf16 autocast + "
                "TF32, torch %s, peak %s TFLOP/s\n",
                CudaDeviceName().c_str(), TORCH_VERSION,
                peak > 0 ? absl::StrCat(peak).c_str() : "unknown (--peak-tflops)");
    std::printf("%-22s %-11s %9s %12s %12s %12s %8s %8s %8s %9s %6s   %s\n", "preset decoder",
                "batch", "params", "C++ eager", "C++ graph", "Python", "graph/Py", "eager/Py",
                "TFLOP/s", "GFLOP/st", "peak", "step-0 loss C++ / Python");
  } else {
    UseDeterministicCpuAlgorithms();  // as the trainer on a CPU
    std::printf("training step throughput (target audio samples/s), %d threads, torch %s, "
                "OMP_WAIT_POLICY=%s, load %s\n",
                args.threads, TORCH_VERSION, wait_policy != nullptr ? wait_policy : "(unset)",
                LoadAverage().c_str());
    std::printf("%-22s %-11s %9s %12s %12s %8s %8s %9s %-21s %s\n", "preset decoder", "batch",
                "params", "C++", "Python", "ratio", "GFLOP/s", "GFLOP/st",
                " faults/step C++ / Py", "step-0 loss C++ / Python");
  }
  bool ok = true;
  for (const std::string& preset : args.presets) {
    for (DecoderKind kind : args.decoders) ok = RunCase(preset, kind, args) && ok;
  }
  std::printf("load at the end: %s\n", LoadAverage().c_str());
  return ok ? 0 : 1;
}
