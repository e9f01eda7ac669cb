#include "dataserver/data_service_impl.h"

#include <chrono>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "dataserver/dataserver_metrics.h"

namespace pianola {
namespace {

bool ValidSplit(int split) { return split >= SPLIT_UNSPECIFIED && split <= TEST; }

}  // namespace

absl::Status WindowStream::FillBatch(uint64_t k, WindowBatch* out) const {
  const uint64_t first = start_ + k * batch_size_;
  if (k >= num_batches()) {
    return absl::OutOfRangeError(absl::StrCat("batch ", k, " of a stream of ", num_batches()));
  }
  const uint64_t last = std::min(end_, first + batch_size_);
  out->Clear();
  out->set_epoch(request_.epoch());
  out->set_cursor(last);
  out->set_shard_size(shard_size_);
  out->set_epoch_size(epoch_size_);
  const uint64_t rank = request_.rank();
  for (uint64_t p = first; p < last; ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    const WindowSpec spec = sampler_->ShardWindow(request_.seed(), request_.epoch(), rank, world_, p);
    RETURN_IF_ERROR(served_->assembler.Assemble(spec, geometry_, request_.encoding(),
                                                out->add_windows()));
    if (metrics_ != nullptr) {
      metrics_->ObserveAssembly(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (spec.reference_kind != ReferenceKind::kOtherPiece) {
        metrics_->ReferenceFallback(spec.reference_kind);
      }
    }
  }
  const size_t bytes = out->ByteSizeLong();
  if (static_cast<int64_t>(bytes) > max_message_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "batch ending at cursor ", last, " serializes to ", bytes,
        " bytes, over the max message size ", max_message_bytes_, "; lower batch_size"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> WindowStream::Next(WindowBatch* out) {
  if (next_batch_ >= num_batches()) return false;
  RETURN_IF_ERROR(FillBatch(next_batch_, out));
  ++next_batch_;
  return true;
}

absl::StatusOr<std::unique_ptr<DataServiceImpl>> DataServiceImpl::Create(
    std::vector<std::shared_ptr<const Dataset>> datasets, DataServiceLimits limits,
    DataServerMetrics* metrics) {
  if (limits.max_batch_size < 1 || limits.max_span_samples < 1 || limits.max_message_bytes < 1) {
    return absl::InvalidArgumentError("DataServiceLimits must all be positive");
  }
  std::unique_ptr<DataServiceImpl> impl(new DataServiceImpl(limits, metrics));
  for (std::shared_ptr<const Dataset>& ds : datasets) {
    if (ds == nullptr) return absl::InvalidArgumentError("null dataset");
    const std::string name = ds->name();
    auto served = std::make_shared<const ServedDataset>(std::move(ds));
    if (!impl->datasets_.emplace(name, std::move(served)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("two datasets are named '", name, "'; dataset names must be unique"));
    }
  }
  return impl;
}

std::vector<std::string> DataServiceImpl::dataset_names() const {
  std::vector<std::string> names;
  for (const auto& [name, ds] : datasets_) names.push_back(name);
  return names;
}

absl::StatusOr<std::shared_ptr<const ServedDataset>> DataServiceImpl::Find(
    const std::string& name) const {
  if (name.empty()) {
    if (datasets_.size() == 1) return datasets_.begin()->second;
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset: empty, but ", datasets_.size(), " datasets are served (",
        absl::StrJoin(dataset_names(), ", "), "); name one"));
  }
  auto it = datasets_.find(name);
  if (it == datasets_.end()) {
    return absl::NotFoundError(absl::StrCat("dataset '", name, "' is not served here (serving: ",
                                            absl::StrJoin(dataset_names(), ", "), ")"));
  }
  return it->second;
}

void DataServiceImpl::FillInfo(const ServedDataset& served, int64_t window_samples,
                               DatasetInfo* info) const {
  const Dataset& ds = *served.dataset;
  info->set_name(ds.name());
  info->set_fingerprint(ds.fingerprint());
  info->set_sample_rate(ds.sample_rate());
  info->set_conditioning_channels(kConditioningChannels);
  std::set<std::string> timbres;
  for (int r = 0; r < ds.num_recordings(); ++r) timbres.insert(ds.entry(r).timbre());
  for (const std::string& t : timbres) info->add_timbres(t);
  for (Split split : {TRAIN, VALIDATION, TEST}) {
    uint32_t recordings = 0;
    int64_t samples = 0;
    std::set<std::string> pieces;
    for (int r = 0; r < ds.num_recordings(); ++r) {
      if (NormalizeSplit(ds.entry(r).split()) != split) continue;
      ++recordings;
      samples += ds.recording_index(r).num_samples();
      pieces.insert(ds.entry(r).piece());
    }
    if (recordings == 0) continue;
    SplitInfo* s = info->add_splits();
    s->set_split(split);
    s->set_recordings(recordings);
    s->set_pieces(static_cast<uint32_t>(pieces.size()));
    s->set_samples(samples);
    s->set_windows_per_epoch(WindowSampler::EpochSize(ds, split, window_samples));
  }
}

absl::Status DataServiceImpl::GetDatasetInfo(const GetDatasetInfoRequest& request,
                                             DatasetInfo* response) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const ServedDataset> served, Find(request.dataset()));
  int64_t window = request.window_samples();
  if (window == 0) window = served->dataset->sample_rate();
  if (window > limits_.max_span_samples) {
    return absl::InvalidArgumentError(absl::StrCat("window_samples ", window, " exceeds the limit ",
                                                   limits_.max_span_samples));
  }
  response->Clear();
  FillInfo(*served, window, response);
  return absl::OkStatus();
}

absl::Status DataServiceImpl::ListDatasets(const ListDatasetsRequest& request,
                                           ListDatasetsResponse* response) const {
  response->Clear();
  for (const auto& [name, served] : datasets_) {
    FillInfo(*served, served->dataset->sample_rate(), response->add_datasets());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<WindowStream>> DataServiceImpl::StreamWindows(
    const StreamWindowsRequest& request) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const ServedDataset> served, Find(request.dataset()));
  auto invalid = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(parts...));
  };
  if (!ValidSplit(request.split())) {
    return invalid("split: ", static_cast<int>(request.split()), " is not a Split value");
  }
  const uint64_t world = request.world_size() == 0 ? 1 : request.world_size();
  if (request.rank() >= world) {
    return invalid("rank ", request.rank(), " must be < world_size ", world);
  }
  if (request.batch_size() < 1 || request.batch_size() > static_cast<uint32_t>(limits_.max_batch_size)) {
    return invalid("batch_size must be in 1..", limits_.max_batch_size, ", got ",
                   request.batch_size());
  }
  if (request.window_samples() == 0) return invalid("window_samples must be > 0");
  if (request.reference_samples() == 0) return invalid("reference_samples must be > 0");
  const int64_t span = int64_t{request.window_samples()} + request.context_samples();
  if (span > limits_.max_span_samples) {
    return invalid("window_samples + context_samples = ", span, " exceeds the limit ",
                   limits_.max_span_samples);
  }
  if (request.reference_samples() > limits_.max_span_samples) {
    return invalid("reference_samples ", request.reference_samples(), " exceeds the limit ",
                   limits_.max_span_samples);
  }
  if (request.encoding() != SPARSE && request.encoding() != DENSE_UINT8) {
    return invalid("encoding: ", static_cast<int>(request.encoding()),
                   " is not a ConditioningEncoding value");
  }
  const int64_t per_window = 2 * (span + request.reference_samples()) +
                             (request.encoding() == DENSE_UINT8 ? kConditioningChannels * span : 0);
  const int64_t batch_bytes = per_window * request.batch_size();
  if (batch_bytes > limits_.max_message_bytes) {
    return invalid("batch_size ", request.batch_size(), " x ", per_window,
                   " bytes of audio", request.encoding() == DENSE_UINT8 ? " and dense conditioning" : "",
                   " per window = ", batch_bytes, " bytes exceeds the max message size ",
                   limits_.max_message_bytes);
  }
  const Split split = NormalizeSplit(request.split());
  const WindowGeometry geometry{request.window_samples(), request.context_samples(),
                                request.reference_samples()};
  ASSIGN_OR_RETURN(std::unique_ptr<WindowSampler> sampler,
                   WindowSampler::Create(*served->dataset, split, geometry));
  if (sampler->epoch_size() == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "dataset '", served->dataset->name(), "' split ", SplitName(split),
        " has no window of ", request.window_samples(), " samples (no recording that long)"));
  }
  std::unique_ptr<WindowStream> stream(new WindowStream());
  stream->shard_size_ = sampler->shard_size(request.rank(), world);
  if (request.start_cursor() > stream->shard_size_) {
    return absl::OutOfRangeError(absl::StrCat("start_cursor ", request.start_cursor(),
                                              " is past the end of rank ", request.rank(),
                                              "'s shard of ", stream->shard_size_, " windows"));
  }
  stream->served_ = std::move(served);
  stream->request_ = request;
  stream->request_.set_dataset(stream->served_->dataset->name());
  stream->request_.set_split(split);
  stream->request_.set_world_size(static_cast<uint32_t>(world));
  stream->geometry_ = geometry;
  stream->world_ = world;
  stream->batch_size_ = request.batch_size();
  stream->epoch_size_ = sampler->epoch_size();
  stream->start_ = request.start_cursor();
  stream->end_ = stream->shard_size_;
  if (request.max_windows() > 0 && request.max_windows() < stream->end_ - stream->start_) {
    stream->end_ = stream->start_ + request.max_windows();
  }
  stream->max_message_bytes_ = limits_.max_message_bytes;
  stream->metrics_ = metrics_;
  stream->sampler_ = std::move(sampler);
  return stream;
}

}  // namespace pianola
