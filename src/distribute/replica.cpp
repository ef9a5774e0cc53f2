// Replica: fit's data-parallel side (see replica.h). Gradients are summed in buckets of about
// bucket_bytes, the parameters taken last layer first (the order backward finishes them); on the
// CPU each bucket's all-reduce starts as soon as backward has completed its gradients, on a GPU
// after backward, on the device (device_gradient_sum.h).
#include "distribute/replica.h"

#include <algorithm>
#include <cstring>

#include "distribute/communicator.h"
#include "kiln/autograd.h"
#include "kiln/callbacks.h"
#include "kiln/error.h"
#include "kiln/layers/batch_normalization.h"
#include "kiln/optimizers.h"
#include "layers/random_stream.h"
#include "model/log_sums.h"
#include "model/step_work.h"
#include "tensor/tensor_impl.h"

namespace kiln::distribute {

namespace {

// The ranks (as text, "1, 3") whose entry of `values` differs from rank 0's.
std::string ranks_differing(const std::vector<int64_t>& values) {
  std::string out;
  for (std::size_t r = 1; r < values.size(); ++r)
    if (values[r] != values[0]) out += (out.empty() ? "" : ", ") + std::to_string(r);
  return out;
}

// FNV-1a over `bytes` bytes, continuing from `h`.
uint64_t fnv1a(const void* data, std::size_t bytes, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

// Packs `n` gradient elements times `scale` (in double, then rounded to T: a scale of 1 copies).
template <typename T>
void pack(const Tensor& grad, double scale, int64_t n, unsigned char* out) {
  auto* dst = reinterpret_cast<T*>(out);
  if (!grad.defined()) {
    std::fill(dst, dst + n, T(0));
    return;
  }
  const T* src = grad.data<T>();
  if (scale == 1.0) {
    std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(static_cast<double>(src[i]) * scale);
}

// Every moving statistic averages the ranks that trained on rows: sum / ranks.
template <typename T>
void average(T* dst, const unsigned char* sum, int64_t n, double ranks) {
  const auto* src = reinterpret_cast<const T*>(sum);
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(static_cast<double>(src[i]) / ranks);
}

Elem elem_of(DType dt) {
  if (dt == DType::Float64) return Elem::Float64;
  if (dt == DType::Float32) return Elem::Float32;
  throw Error("fit", "a parameter is " + dtype_name(dt) + "; expected float32 or float64 under a strategy");
}

// Restores from a backup on every rank, writes nothing (the chief writes).
class RestoreOnly final : public Callback {
 public:
  explicit RestoreOnly(std::shared_ptr<Callback> backup) : backup_(std::move(backup)) {}
  void on_train_begin(Model& model) override { backup_->on_train_begin(model); }
  int resume_epoch(Model& model) override { return backup_->resume_epoch(model); }

 private:
  std::shared_ptr<Callback> backup_;
};

}  // namespace

void Replica::check(Strategy& strategy, int64_t batch_size) {
  const int p = strategy.num_replicas_in_sync();
  if (batch_size < p)
    throw Error("fit", "batch_size " + std::to_string(batch_size) + " is smaller than the " + std::to_string(p) +
                           " replicas of " + strategy.name() +
                           "; expected the global batch, at least one sample per replica (batch_size >= " +
                           std::to_string(p) + ")");
}

Replica::Replica(Strategy& strategy, Model& model, model::Batches& batches, const FitOptions& options)
    : comm_(strategy.communicator()),
      context_(comm_),
      model_(model),
      batches_(batches),
      bucket_bytes_(strategy.options().bucket_bytes),
      check_replicas_(strategy.options().check_replicas),
      chief_decides_(strategy.callbacks_on_chief_only()) {
  // Everything the ranks must agree on, gathered in one round and named when it differs.
  const std::vector<std::pair<std::string, int64_t>> fields = {
      {"training samples", batches.samples()},
      {"batch_size", options.batch_size},
      {"epochs", options.epochs},
      {"shuffle", options.shuffle ? 1 : 0},
      {"model parameters", model.count_params()},
      {"validation samples", options.validation_data ? options.validation_data->x.front().size(0) : -1},
      {"a model on a GPU (1) or the CPU (0)", model.device().is_cpu() ? 0 : 1},
  };
  std::vector<std::vector<int64_t>> gathered(fields.size(), std::vector<int64_t>(static_cast<std::size_t>(size())));
  for (std::size_t i = 0; i < fields.size(); ++i) comm_.start_all_gather(&fields[i].second, gathered[i].data());
  comm_.wait("the start of fit");
  for (std::size_t i = 0; i < fields.size(); ++i)
    if (const std::string odd = ranks_differing(gathered[i]); !odd.empty())
      throw Error("fit", "the ranks disagree on " + fields[i].first + ": rank 0 has " + std::to_string(gathered[i][0]) +
                             ", rank(s) " + odd +
                             " another value; expected every "
                             "rank to call fit with the same data, model and options (each trains on its shard of "
                             "every global batch)");

  // A synchronized BatchNormalization needs rows on every replica at every step: a last batch of
  // fewer rows than replicas is refused here, on every rank alike, before any step.
  const int64_t last = batches.samples() % options.batch_size;
  for (const auto& layer : model.layers())
    if (const auto* bn = dynamic_cast<const layers::BatchNormalization*>(layer.get());
        bn && bn->options().synchronized && bn->trainable() && last > 0 && last < size())
      throw Error("fit", bn->name() + " is synchronized, and the last batch of " + std::to_string(last) +
                             " rows leaves some of the " + std::to_string(size()) +
                             " replicas without rows; expected every batch to give each replica a row (drop the "
                             "last " +
                             std::to_string(last) + " samples, or choose a batch_size that divides the " +
                             std::to_string(batches.samples()) + " samples or leaves at least " +
                             std::to_string(size()) + ")");
  for (const auto& layer : model.layers()) {
    if (layer->class_name() == "BatchNormalization" && layer->trainable())
      for (const auto& w : layer->all_weights())
        if (!w.trainable) statistics_.push_back(w.value);
    for (const auto& w : layer->all_weights())
      if (w.name == layers::kStreamCounter && w.value.dtype() == DType::Int64) counters_.push_back(w.value);
  }
  batches_.set_shard(comm_.rank(), comm_.size());
  if (!model.device().is_cpu()) {
    device_group_ = &strategy.device_collectives(model.device());
    device_sum_ = std::make_unique<DeviceGradientSum>(*device_group_, statistics_, counters_, size());
    context_.set_device_group(device_group_);
  }
}

std::vector<std::shared_ptr<Callback>> Replica::callbacks(const std::vector<std::shared_ptr<Callback>>& given) const {
  if (chief()) return given;
  std::vector<std::shared_ptr<Callback>> out;
  if (chief_decides_) return out;
  for (const auto& cb : given) {
    if (dynamic_cast<callbacks::ModelCheckpoint*>(cb.get()) || dynamic_cast<callbacks::CSVLogger*>(cb.get())) continue;
    if (dynamic_cast<callbacks::BackupAndRestore*>(cb.get()))
      out.push_back(std::make_shared<RestoreOnly>(cb));
    else
      out.push_back(cb);
  }
  return out;
}

int Replica::agree_on_first_epoch(int first_epoch) {
  if (chief_decides_) {  // only the chief ran the callbacks that may resume
    int64_t chosen = first_epoch;
    comm_.start_broadcast(&chosen, sizeof chosen, 0);
    comm_.wait("the choice of the first epoch");
    return static_cast<int>(chosen);
  }
  const int64_t mine = first_epoch;
  std::vector<int64_t> all(static_cast<std::size_t>(size()));
  comm_.start_all_gather(&mine, all.data());
  comm_.wait("the choice of the first epoch");
  if (const std::string odd = ranks_differing(all); !odd.empty())
    throw Error("fit", "rank 0 starts at epoch " + std::to_string(all[0] + 1) + ", rank(s) " + odd +
                           " at another (initial_epoch, or a backup of BackupAndRestore one rank sees and another "
                           "does not); expected every rank to resume from the same checkpoint (a backup_dir on a "
                           "file system every rank shares)");
  return first_epoch;
}

void Replica::broadcast_state() {
  for (const auto& layer : model_.layers())
    for (const auto& w : layer->all_weights()) {
      Tensor t = w.value;
      broadcast_tensor(t);
    }
  comm_.wait("the broadcast of rank 0's weights");
  synchronize("the broadcast of rank 0's weights");
  std::string state = model_.generator().state();
  int64_t length = static_cast<int64_t>(state.size());
  comm_.start_broadcast(&length, sizeof length, 0);
  comm_.wait("the broadcast of rank 0's weights");
  state.resize(static_cast<std::size_t>(length));
  comm_.start_broadcast(state.data(), length, 0);
  comm_.wait("the broadcast of rank 0's random generator");
  if (!model_.generator().set_state(state))
    throw Error("fit",
                "rank 0's random generator state does not parse here; expected every rank to run the same "
                "build of kiln");
  broadcast_optimizer_state();
}

void Replica::broadcast_tensor(Tensor& t) {
  if (device_group_ && !t.device().is_cpu())
    device_group_->broadcast(t.raw_data(), t.nbytes(), 0);
  else
    comm_.start_broadcast(t.raw_data(), static_cast<int64_t>(t.nbytes()), 0);
}

void Replica::broadcast_optimizer_state() {
  const std::string what = "the broadcast of rank 0's optimizer state";
  Optimizer& opt = *model_.optimizer();
  opt.synchronize();  // loss scaling's count settled first
  const std::vector<Tensor> params = model_.trainable_weights();
  int64_t header[2] = {static_cast<int64_t>(opt.slots().size()), opt.iterations()};
  comm_.start_broadcast(header, sizeof header, 0);
  comm_.wait(what);
  std::vector<std::vector<Tensor>> slots;
  if (header[0] > 0 && static_cast<std::size_t>(header[0]) == opt.slots().size()) {
    slots = opt.slots();
  } else if (header[0] > 0) {
    if (static_cast<std::size_t>(header[0]) != params.size())
      throw Error("fit", "rank 0's optimizer holds slots for " + std::to_string(header[0]) +
                             " weights, the model has " + std::to_string(params.size()) +
                             " trainable weights; expected the same model on every rank");
    const std::size_t per_param = opt.slot_names().size();
    for (const Tensor& p : params) {
      slots.emplace_back();
      for (std::size_t s = 0; s < per_param; ++s)
        slots.back().push_back(Tensor::zeros(p.shape(), p.dtype(), p.device()));
    }
  }
  for (auto& group : slots)
    for (Tensor& t : group) broadcast_tensor(t);
  comm_.wait(what);
  synchronize(what);
  opt.restore(std::move(slots), header[1]);
  auto variables = opt.state_variables();
  for (auto& [name, value] : variables) {
    value = value.to(Device::cpu()).clone();
    comm_.start_broadcast(value.raw_data(), static_cast<int64_t>(value.nbytes()), 0);
  }
  comm_.wait(what);
  opt.restore_state_variables(variables);
}

void Replica::begin_epoch(int epoch) {
  if (!chief_decides_) return;
  // The chief's callbacks may have set a fixed learning rate (LearningRateScheduler,
  // ReduceLROnPlateau); the other replicas take it. A schedule gives every replica the same rate.
  Optimizer& opt = *model_.optimizer();
  double rate[2] = {0.0, 0.0};  // whether the chief's optimizer has a learning rate, and the rate
  if (chief()) try {
      rate[1] = opt.learning_rate();
      rate[0] = 1.0;
    } catch (const Error&) {
      // an optimizer without a learning rate: nothing to follow
    }
  comm_.start_broadcast(rate, sizeof rate, 0);
  comm_.wait("the start of epoch " + std::to_string(epoch + 1));
  if (!chief() && rate[0] != 0.0 && opt.learning_rate() != rate[1]) opt.set_learning_rate(rate[1]);
}

void Replica::begin_step(int64_t step) {
  const auto [begin, end] = batches_.shard_range(step);
  const int64_t n = batches_.rows(step), batch_first = step * batches_.batch_size();
  share_.rows = end - begin;
  share_.global_rows = n;
  // This rank's mean loss covers `rows` of the global batch: its share of the global mean.
  share_.scale = static_cast<double>(share_.rows) / static_cast<double>(n);
  // Shard r of n rows has n * (r + 1) / P - n * r / P rows: every rank knows them all.
  share_.ranks_with_rows = 0;
  for (int64_t r = 0; r < size(); ++r) share_.ranks_with_rows += n * (r + 1) / size() > n * r / size() ? 1 : 0;
  context_.set_shard({.first_row = begin - batch_first, .rows = share_.rows, .global_rows = n});
}

void Replica::make_buckets(const std::vector<Tensor>& params) {
  // Last parameters first: backward finishes them first.
  std::vector<Entry> order;
  for (std::size_t i = params.size(); i-- > 0;) order.push_back({params[i], false, i});
  for (const Tensor& s : statistics_) order.push_back({s, true, 0});
  for (const Entry& e : order) {
    const int64_t bytes = static_cast<int64_t>(e.tensor.nbytes());
    const bool fits = !buckets_.empty() && buckets_.back().dtype == e.tensor.dtype() &&
                      static_cast<int64_t>(buckets_.back().bytes.size()) + bytes <= bucket_bytes_;
    if (!fits) buckets_.push_back({e.tensor.dtype(), {}, {}});
    buckets_.back().entries.push_back(e);
    buckets_.back().bytes.resize(buckets_.back().bytes.size() + static_cast<std::size_t>(bytes));
  }
  bucket_of_param_.assign(params.size(), 0);
  for (std::size_t b = 0; b < buckets_.size(); ++b)
    for (const Entry& e : buckets_[b].entries)
      if (!e.statistic) bucket_of_param_[e.param] = b;
  for (std::size_t i = 0; i < params.size(); ++i) param_of_impl_[params[i].impl().get()] = i;
}

void Replica::start_bucket(Bucket& b, const std::vector<Tensor>& params, int64_t rows, double scale) {
  std::size_t at = 0;
  for (const Entry& e : b.entries) {
    // A rank without rows did not update its statistics: it adds zeros and is not counted.
    const Tensor src = e.statistic ? (rows > 0 ? e.tensor : Tensor()) : params[e.param].grad();
    const double s = e.statistic ? 1.0 : scale;
    const int64_t n = e.tensor.numel();
    if (b.dtype == DType::Float64)
      pack<double>(src, s, n, b.bytes.data() + at);
    else
      pack<float>(src, s, n, b.bytes.data() + at);
    at += e.tensor.nbytes();
  }
  const int64_t count = static_cast<int64_t>(b.bytes.size() / dtype_size(b.dtype));
  comm_.start_all_reduce(b.bytes.data(), count, elem_of(b.dtype), ReduceOp::Sum);
}

void Replica::start_ready_buckets(const std::vector<Tensor>& params) {
  for (; next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0; ++next_bucket_)
    start_bucket(buckets_[next_bucket_], params, share_.rows, share_.scale);
}

autograd::LeafReady Replica::gradient_ready_hook(const std::vector<Tensor>& params) {
  if (buckets_.empty()) make_buckets(params);
  for (Bucket& b : buckets_)
    b.pending = static_cast<int>(
        std::count_if(b.entries.begin(), b.entries.end(), [](const Entry& e) { return !e.statistic; }));
  next_bucket_ = 0;
  return [this, &params](const Tensor& leaf) {
    const auto it = param_of_impl_.find(leaf.impl().get());
    if (it == param_of_impl_.end()) return;  // an input that requires grad, not a parameter
    --buckets_[bucket_of_param_[it->second]].pending;
    start_ready_buckets(params);
    comm_.progress();
  };
}

void Replica::all_reduce_gradients_on_device(std::vector<Tensor>& params) {
  if (!device_sum_)
    throw Error("fit", "the gradient sum of a CPU model was asked to run on a device; expected a model on a GPU");
  device_sum_->run(params, share_.rows, share_.global_rows, share_.ranks_with_rows);
}

void Replica::synchronize(const std::string& what) {
  if (device_group_ && !device_group_->wait(comm_.timeout_seconds())) device_deadline_missed(what);
}

void Replica::device_deadline_missed(const std::string& what) {
  // The GPU group cannot say who is missing; a round of the host collectives can.
  barrier(what);
  throw Error("fit", "every rank reached " + what + " but the GPU collectives did not complete within " +
                         std::to_string(comm_.timeout_seconds()) +
                         " s; expected the GPUs of every rank to reach each other (NCCL_DEBUG=INFO says more)");
}

std::optional<double> Replica::all_reduce_gradients(std::vector<Tensor>& params, const Tensor& loss, int64_t step,
                                                    int epoch) {
  if (device_sum_) {
    (void)loss, (void)epoch, (void)step;
    all_reduce_gradients_on_device(params);
    return std::nullopt;
  }
  if (buckets_.empty()) make_buckets(params);
  const int64_t rows = share_.rows;
  const double scale = share_.scale;
  // The buckets backward did not start (a parameter without a gradient, an empty shard, no hook),
  // in order, then the step's other sums: the same order on every rank.
  for (; next_bucket_ < buckets_.size(); ++next_bucket_) start_bucket(buckets_[next_bucket_], params, rows, scale);
  next_bucket_ = 0;
  meta_.assign(1 + params.size(), 0.0);
  meta_[0] = loss.defined() ? loss.item() * scale : 0.0;
  for (std::size_t i = 0; i < params.size(); ++i) meta_[1 + i] = params[i].grad().defined() ? 1.0 : 0.0;
  comm_.start_all_reduce(meta_.data(), static_cast<int64_t>(meta_.size()), Elem::Float64, ReduceOp::Sum);
  // A rank with an empty shard did not advance its random layers' counters: take the furthest.
  counter_values_.clear();
  for (const Tensor& c : counters_) counter_values_.push_back(*c.data<int64_t>());
  if (!counters_.empty())
    comm_.start_all_reduce(counter_values_.data(), static_cast<int64_t>(counter_values_.size()), Elem::Int64,
                           ReduceOp::Max);
  comm_.wait("the gradient all-reduce of epoch " + std::to_string(epoch) + ", step " + std::to_string(step + 1));
  const double ranks_with_rows = share_.ranks_with_rows;
  for (std::size_t i = 0; i < counters_.size(); ++i) {
    Tensor c = counters_[i];
    *c.data<int64_t>() = counter_values_[i];
  }
  for (Bucket& b : buckets_) {
    std::size_t at = 0;
    for (const Entry& e : b.entries) {
      const int64_t n = e.tensor.numel();
      if (e.statistic) {
        Tensor t = e.tensor;
        if (b.dtype == DType::Float64)
          average(t.data<double>(), b.bytes.data() + at, n, ranks_with_rows);
        else
          average(t.data<float>(), b.bytes.data() + at, n, ranks_with_rows);
      } else if (meta_[1 + e.param] > 0) {
        // A fresh gradient tensor: the old one may share storage with backward's intermediates.
        Tensor g = Tensor::empty(e.tensor.shape(), e.tensor.dtype(), e.tensor.device());
        std::memcpy(g.raw_data(), b.bytes.data() + at, e.tensor.nbytes());
        params[e.param].impl()->grad = g;
      }
      at += e.tensor.nbytes();
    }
  }
  return meta_[0];
}

void Replica::reduce_logs(std::vector<std::pair<std::string, double>>& logs, int64_t samples, const std::string& what) {
  if (size() == 1) return;  // the means are already global; keeps one replica's logs bit for bit
  std::vector<double> sums;
  sums.reserve(logs.size() + 1);
  for (const auto& [name, mean] : logs) sums.push_back(mean * static_cast<double>(samples));
  sums.push_back(static_cast<double>(samples));
  comm_.start_all_reduce(sums.data(), static_cast<int64_t>(sums.size()), Elem::Float64, ReduceOp::Sum);
  comm_.wait(what);
  const double total = sums.back();
  for (std::size_t i = 0; i < logs.size(); ++i) logs[i].second = total > 0 ? sums[i] / total : 0.0;
}

std::vector<std::pair<std::string, double>> Replica::evaluate(const std::vector<Tensor>& x,
                                                              const std::vector<Tensor>& y, int64_t batch_size,
                                                              int epoch) {
  NoGradGuard no_grad;
  model::Batches batches(x, y, batch_size);
  batches.set_shard(comm_.rank(), comm_.size());
  model::LogSums sums(model_.output_metrics(), model_.output_names(), model_.device());
  model::EvaluationWork work(model_, sums);
  for (int64_t s = 0; s < batches.steps(); ++s) {
    const auto [begin, end] = batches.shard_range(s);
    if (end == begin) continue;  // a last batch smaller than the number of ranks
    const auto [xb, yb] = batches.batch(s);
    work.body(xb, yb);
  }
  auto logs = sums.results();
  reduce_logs(logs, sums.samples(), "the validation of epoch " + std::to_string(epoch));
  return logs;
}

bool Replica::all_keep_going(bool keep_going, int epoch) {
  int64_t stop = keep_going ? 0 : 1;
  comm_.start_all_reduce(&stop, 1, Elem::Int64, ReduceOp::Max);
  comm_.wait("the end of epoch " + std::to_string(epoch));
  return stop == 0;
}

void Replica::check_replicas(int epoch) {
  if (!check_replicas_) return;
  // Every weight: the trained ones, the averaged moving statistics, the random layers' counters
  // and the frozen ones.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const auto& layer : model_.layers())
    for (const auto& w : layer->all_weights()) {
      const Tensor host = w.value.to(Device::cpu());
      h = fnv1a(host.raw_data(), host.nbytes(), h);
    }
  int64_t mine = 0;
  std::memcpy(&mine, &h, sizeof mine);
  std::vector<int64_t> all(static_cast<std::size_t>(size()));
  comm_.start_all_gather(&mine, all.data());
  comm_.wait("the replicas check of epoch " + std::to_string(epoch));
  if (const std::string odd = ranks_differing(all); !odd.empty())
    throw Error("fit", "after epoch " + std::to_string(epoch) + " the weights of rank(s) " + odd +
                           " differ from rank 0's (check_replicas); expected bit-identical replicas (the same "
                           "summed gradients and update on every rank)");
}

void Replica::barrier(const std::string& what) {
  int64_t one = 1;
  comm_.start_all_reduce(&one, 1, Elem::Int64, ReduceOp::Sum);
  comm_.wait(what);
}

}  // namespace kiln::distribute
