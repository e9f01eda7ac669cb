#include "trainer/checkpoint.h"

#include <cstring>
#include <mutex>
#include <utility>

#include <ATen/Context.h>
#include <c10/core/GeneratorImpl.h>
#include <torch/cuda.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace pianola {
namespace {

// Generators whose state a checkpoint carries: the CPU one, and one per CUDA
// device where CUDA is present.
std::vector<std::pair<std::string, at::Generator>> Generators() {
  std::vector<std::pair<std::string, at::Generator>> out;
  out.emplace_back("rng/cpu", at::globalContext().defaultGenerator(at::Device(at::kCPU)));
  if (torch::cuda::is_available()) {
    const int n = static_cast<int>(torch::cuda::device_count());
    for (int i = 0; i < n; ++i) {
      out.emplace_back(absl::StrCat("rng/cuda/", i),
                       at::globalContext().defaultGenerator(at::Device(at::kCUDA, i)));
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> EncodeTrainingPayload(const TrainingStateRefs& state) {
  if (state.model == nullptr || state.optimizer == nullptr) {
    return absl::InvalidArgumentError("checkpoint: model and optimizer are required");
  }
  try {
    torch::serialize::OutputArchive root;
    torch::serialize::OutputArchive optimizer;
    // Parameters and buffers flat, by their full names, so that loading can
    // check every name and shape (Module::load would accept other shapes).
    int64_t count = 0;
    for (const auto& item : state.model->named_parameters(/*recurse=*/true)) {
      root.write(absl::StrCat("model/", item.key()), item.value(), /*is_buffer=*/false);
      ++count;
    }
    for (const auto& item : state.model->named_buffers(/*recurse=*/true)) {
      root.write(absl::StrCat("model/", item.key()), item.value(), /*is_buffer=*/true);
      ++count;
    }
    root.write("model_tensors", torch::tensor(count));
    state.optimizer->save(optimizer);
    root.write("optimizer", optimizer);
    if (state.ema != nullptr) {
      root.write("ema/count", torch::tensor(static_cast<int64_t>(state.ema->size())));
      for (size_t i = 0; i < state.ema->size(); ++i) {
        root.write(absl::StrCat("ema/", i), (*state.ema)[i]);
      }
    }
    if (state.counters != nullptr) {
      root.write("counters", torch::tensor(*state.counters, torch::kInt64));
    }
    for (auto& [key, gen] : Generators()) {
      std::lock_guard<std::mutex> lock(gen.mutex());
      root.write(key, gen.get_state());
    }
    std::string out;
    root.save_to([&out](const void* data, size_t size) -> size_t {
      out.append(static_cast<const char*>(data), size);
      return size;
    });
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("checkpoint: serializing: ", e.what_without_backtrace()));
  }
}

absl::Status DecodeTrainingPayload(const std::string& payload, const std::string& source,
                                   torch::Device device, const TrainingStateRefs& state) {
  if (state.model == nullptr) return absl::InvalidArgumentError("checkpoint: model is required");
  const std::string stage_error = absl::StrCat(source, ": checkpoint does not fit this run: ");
  try {
    torch::serialize::InputArchive root;
    root.load_from(payload.data(), payload.size(), device);
    torch::serialize::InputArchive optimizer;
    {
      torch::NoGradGuard no_grad;
      int64_t count = 0;
      auto restore = [&](const std::string& name, torch::Tensor& target,
                         bool is_buffer) -> absl::Status {
        torch::Tensor t;
        if (!root.try_read(absl::StrCat("model/", name), t, is_buffer)) {
          return absl::DataLossError(absl::StrCat(stage_error, "no tensor '", name, "'"));
        }
        if (!t.sizes().equals(target.sizes()) || t.dtype() != target.dtype()) {
          return absl::DataLossError(absl::StrCat(
              stage_error, "tensor '", name, "' is ", c10::str(t.sizes()), " ",
              c10::str(t.dtype()), ", the model's is ", c10::str(target.sizes()), " ",
              c10::str(target.dtype())));
        }
        target.copy_(t);
        ++count;
        return absl::OkStatus();
      };
      for (auto& item : state.model->named_parameters(/*recurse=*/true)) {
        RETURN_IF_ERROR(restore(item.key(), item.value(), false));
      }
      for (auto& item : state.model->named_buffers(/*recurse=*/true)) {
        RETURN_IF_ERROR(restore(item.key(), item.value(), true));
      }
      torch::Tensor stored;
      if (!root.try_read("model_tensors", stored) || stored.item<int64_t>() != count) {
        return absl::DataLossError(absl::StrCat(
            stage_error, "it holds ", stored.defined() ? stored.item<int64_t>() : -1,
            " model tensors, the model has ", count));
      }
    }
    if (state.optimizer != nullptr) {
      root.read("optimizer", optimizer);
      state.optimizer->load(optimizer);
    }
    if (state.ema != nullptr) {
      torch::Tensor count;
      if (!root.try_read("ema/count", count)) {
        return absl::DataLossError(absl::StrCat(stage_error, "no EMA weights stored"));
      }
      if (count.item<int64_t>() != static_cast<int64_t>(state.ema->size())) {
        return absl::DataLossError(absl::StrCat(stage_error, "stored ", count.item<int64_t>(),
                                                " EMA tensors, the model has ",
                                                state.ema->size()));
      }
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < state.ema->size(); ++i) {
        torch::Tensor t;
        root.read(absl::StrCat("ema/", i), t);
        if (!t.sizes().equals((*state.ema)[i].sizes())) {
          return absl::DataLossError(absl::StrCat(stage_error, "EMA tensor ", i, " has shape ",
                                                  c10::str(t.sizes()), ", expected ",
                                                  c10::str((*state.ema)[i].sizes())));
        }
        (*state.ema)[i].copy_(t);
      }
    }
    if (state.counters != nullptr) {
      torch::Tensor c;
      if (root.try_read("counters", c)) {
        c = c.to(torch::kCPU).contiguous();
        state.counters->assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
      }
    }
    for (auto& [key, gen] : Generators()) {
      torch::Tensor s;
      // A checkpoint from a machine without (or with fewer) GPUs carries no
      // CUDA generator state for them: those generators keep their seeding.
      if (!root.try_read(key, s)) continue;
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(s.to(torch::kCPU));
    }
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return absl::DataLossError(absl::StrCat(stage_error, e.what_without_backtrace()));
  }
}

absl::StatusOr<std::string> SaveCheckpoint(const std::string& out_dir, int keep_last,
                                           CheckpointContents meta,
                                           const TrainingStateRefs& state) {
  ASSIGN_OR_RETURN(meta.payload, EncodeTrainingPayload(state));
  return CommitCheckpoint(out_dir, meta, keep_last);
}

absl::StatusOr<CheckpointContents> LoadCheckpoint(const std::string& path, torch::Device device,
                                                  const TrainingStateRefs& state) {
  ASSIGN_OR_RETURN(CheckpointContents c, ReadCheckpointFile(path));
  RETURN_IF_ERROR(DecodeTrainingPayload(c.payload, path, device, state));
  c.payload.clear();
  c.payload.shrink_to_fit();
  return c;
}

}  // namespace pianola
