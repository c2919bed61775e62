#include "data/loader.h"

#include <algorithm>

#include "data/balance.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::data {

Sampling parse_sampling(const std::string& name) {
  if (name == "sequential") return Sampling::sequential;
  if (name == "shuffle") return Sampling::shuffle;
  if (name == "weighted") return Sampling::weighted;
  if (name == "oversample") return Sampling::oversample;
  fail("unknown sampling '{}' (sequential, shuffle, weighted, oversample)", name);
}

namespace {

// splitmix64 finalizer: decorrelates nearby seeds (epoch e and e + 1, sample p and p + 1).
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
uint64_t derive_seed(uint64_t seed, int64_t epoch, uint64_t stream) {
  return mix(mix(mix(seed) ^ static_cast<uint64_t>(epoch)) ^ stream);
}
constexpr uint64_t kOrderStream = ~uint64_t{0};  // the epoch's order; samples use their position

}  // namespace

DataLoader::DataLoader(Dataset dataset, LoaderConfig config, Warnings& warnings)
    : dataset_(std::move(dataset)), config_(std::move(config)), warnings_(warnings) {
  SCALPEL_CHECK(!dataset_.samples.empty(), "data loader: dataset '{}' has no samples", dataset_.root);
  SCALPEL_CHECK(config_.batch_size > 0, "data loader: batch size {} must be positive", config_.batch_size);
  SCALPEL_CHECK(config_.shard_count > 0 && config_.shard_rank >= 0 && config_.shard_rank < config_.shard_count,
                "data loader: shard {} of {} does not exist", config_.shard_rank, config_.shard_count);
  SCALPEL_CHECK(config_.workers >= 0 && config_.prefetch >= 1,
                "data loader: workers must be >= 0 and prefetch >= 1 (got {} and {})", config_.workers,
                config_.prefetch);
  if (config_.sampling == Sampling::weighted) {
    if (config_.sample_weights.empty()) {
      std::vector<int64_t> labels;
      for (const Sample& s : dataset_.samples) labels.push_back(s.label);
      config_.sample_weights = inverse_frequency_weights(labels);
    }
    SCALPEL_CHECK(config_.sample_weights.size() == dataset_.samples.size(),
                  "data loader: {} sample weights for {} samples", config_.sample_weights.size(),
                  dataset_.samples.size());
  }
  if (config_.load_masks) {
    for (const Sample& s : dataset_.samples)
      SCALPEL_CHECK(!s.mask_path.empty(), "data loader: image '{}' has no mask", s.path);
  }
  cache_.resize(dataset_.samples.size());
}

DataLoader::~DataLoader() { stop_workers(); }

std::vector<size_t> DataLoader::epoch_order(int64_t epoch) const {
  const size_t n = dataset_.samples.size();
  Generator gen(derive_seed(config_.seed, epoch, kOrderStream));
  std::vector<size_t> order;
  switch (config_.sampling) {
    case Sampling::sequential:
    case Sampling::shuffle:
      order.resize(n);
      for (size_t i = 0; i < n; ++i) order[i] = i;
      break;
    case Sampling::weighted:
      return weighted_sample(config_.sample_weights, n, gen);
    case Sampling::oversample: {
      std::vector<int64_t> labels;
      for (const Sample& s : dataset_.samples) labels.push_back(s.label);
      order = oversample(labels, gen);
      break;
    }
  }
  if (config_.sampling != Sampling::sequential)
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen.below(i)]);
  return order;
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = config_.sampling == Sampling::oversample ? static_cast<int64_t>(epoch_order(0).size())
                                                             : static_cast<int64_t>(dataset_.samples.size());
  return batches_for(n);
}

int64_t DataLoader::global_batch() const {
  return static_cast<int64_t>(config_.batch_size) * config_.shard_count;
}

int64_t DataLoader::batches_for(int64_t n) const {
  const int64_t g = global_batch();
  if (config_.shard_count > 1) {
    // Every shard gets at least min(batch_size, 2) samples of the last batch (batch norm trains
    // on 2 or more), or none has it: the ranks must take the same steps.
    const int64_t smallest_last = static_cast<int64_t>(config_.shard_count) * std::min(config_.batch_size, 2);
    return n / g + (!config_.drop_last && n % g >= smallest_last ? 1 : 0);
  }
  return config_.drop_last ? n / g : (n + g - 1) / g;
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void DataLoader::start_epoch(int64_t epoch) {
  stop_workers();
  epoch_ = epoch;
  order_ = epoch_order(epoch);
  const auto n = static_cast<int64_t>(order_.size());
  num_batches_ = batches_for(n);
  ready_.clear();
  next_claim_ = next_deliver_ = 0;
  stopping_ = false;
  for (int w = 0; w < config_.workers; ++w) threads_.emplace_back([this] { worker_loop(); });
}

void DataLoader::worker_loop() {
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || next_claim_ < next_deliver_ + config_.prefetch; });
      if (stopping_ || next_claim_ >= num_batches_) return;
      b = next_claim_++;
    }
    Slot slot;
    try {
      slot.batch = build_batch(b);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_[b] = std::move(slot);
    }
    cv_.notify_all();
  }
}

bool DataLoader::next(Batch& batch) {
  SCALPEL_CHECK(!order_.empty(), "data loader: call start_epoch() before next()");
  for (;;) {
    Slot slot;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (next_deliver_ >= num_batches_) return false;
      if (config_.workers == 0) {
        const int64_t b = next_deliver_++;
        lock.unlock();
        slot.batch = build_batch(b);
      } else {
        cv_.wait(lock, [&] { return ready_.count(next_deliver_) > 0; });
        slot = std::move(ready_[next_deliver_]);
        ready_.erase(next_deliver_++);
      }
    }
    cv_.notify_all();
    if (slot.error) std::rethrow_exception(slot.error);
    if (slot.batch.size() == 0) continue;  // every sample of this batch was unreadable
    batch = std::move(slot.batch);
    return true;
  }
}

bool DataLoader::load_fitted(size_t index, Image& image, Image& mask) {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (bad_.count(index)) return false;
    if (const auto& hit = cache_[index]) {
      image = hit->first;
      mask = hit->second;
      return true;
    }
  }
  const Sample& s = dataset_.samples[index];
  const Preprocess& p = config_.preprocess;
  try {
    const Image raw = load_image(s.path);
    image = fit_image(raw, p);
    if (config_.load_masks) {
      const Image raw_mask = load_image(s.mask_path);
      const double ratio = (static_cast<double>(raw.width) / raw.height) /
                           (static_cast<double>(raw_mask.width) / raw_mask.height);
      SCALPEL_CHECK(std::abs(ratio - 1.0) < 0.01, "mask '{}' is {}x{} but its image '{}' is {}x{}",
                    s.mask_path, raw_mask.width, raw_mask.height, s.path, raw.width, raw.height);
      mask = fit_mask(raw_mask, raw.width, raw.height, p);
    }
  } catch (const Error& e) {
    {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (!bad_.insert(index).second) return false;
    }
    warnings_.add(fmt::format("{}; sample left out", e.what()));  // throws in strict mode
    return false;
  }
  if (config_.cache) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    cache_[index] = std::make_shared<const std::pair<Image, Image>>(image, mask);
  }
  return true;
}

Batch DataLoader::build_batch(int64_t b) {
  const Preprocess& p = config_.preprocess;
  const int64_t global_begin = b * global_batch();
  const int64_t global_size = std::min<int64_t>(global_batch(), static_cast<int64_t>(order_.size()) - global_begin);
  const int64_t begin = global_begin + global_size * config_.shard_rank / config_.shard_count;
  const int64_t end = global_begin + global_size * (config_.shard_rank + 1) / config_.shard_count;
  const int64_t plane = static_cast<int64_t>(p.width) * p.height;
  const int64_t image_numel = plane * p.channels;
  std::vector<float> pixels;
  std::vector<int64_t> labels, masks;
  pixels.reserve(static_cast<size_t>((end - begin) * image_numel));
  Batch batch;
  for (int64_t pos = begin; pos < end; ++pos) {
    const size_t index = order_[pos];
    Image image, mask;
    if (!load_fitted(index, image, mask)) continue;
    Generator gen(derive_seed(config_.seed, epoch_, static_cast<uint64_t>(pos)));
    const ImageF augmented = augment(to_float(image), config_.augment, gen, config_.load_masks ? &mask : nullptr);
    pixels.resize(pixels.size() + image_numel);
    normalize_to_chw(augmented, p.norm, pixels.data() + pixels.size() - image_numel);
    labels.push_back(dataset_.samples[index].label);
    if (config_.load_masks)
      for (uint8_t v : mask.pixels) masks.push_back(config_.binary_masks ? (v >= 128 ? 1 : 0) : v);
    batch.indices.push_back(index);
  }
  const int64_t n = batch.size();
  if (n == 0) return batch;
  batch.images = Tensor::from_data(pixels.data(), {n, p.channels, p.height, p.width});
  batch.labels = Tensor::from_data(labels.data(), {n});
  if (config_.load_masks) batch.masks = Tensor::from_data(masks.data(), {n, p.height, p.width});
  return batch;
}

}  // namespace scalpel::data
