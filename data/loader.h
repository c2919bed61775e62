#pragma once
// A multithreaded prefetching loader: worker threads decode, fit, augment and normalize
// whole batches ahead of the consumer, at most `prefetch` batches ahead.
//
// Determinism: the sample order of an epoch depends only on (seed, epoch), and the
// augmentation of the sample at position p of epoch e uses its own Generator seeded from
// (seed, e, p). Batches are handed out in order, so the output is identical for any number
// of workers (0 = load in the calling thread).
//
// Bad files: a sample whose image (or mask) cannot be decoded, or whose mask has another
// aspect ratio than its image, is left out of its batch with a warning naming the file
// (once; later epochs skip it silently), so batches can be smaller than batch_size and a
// batch whose samples all failed is skipped. In strict mode (Warnings::strict) next()
// throws the Error instead.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "tensor/tensor.h"

namespace scalpel::data {

// How an epoch walks the dataset:
//   sequential  dataset order (ImageFolder order for folder layouts)
//   shuffle     a fresh permutation per epoch
//   weighted    as many draws with replacement as samples, with `sample_weights`
//               (default: inverse class frequency, i.e. class-balanced)
//   oversample  minority classes repeated up to the largest class (see balance.h), shuffled
enum class Sampling { sequential, shuffle, weighted, oversample };
Sampling parse_sampling(const std::string& name);

struct LoaderConfig {
  Preprocess preprocess;
  AugmentConfig augment;  // applied to every sample; give "none" for val/test
  Sampling sampling = Sampling::sequential;
  std::vector<double> sample_weights;  // for Sampling::weighted; one per sample
  int batch_size = 32;
  bool drop_last = false;
  // Data-parallel sharding: the epoch's order is cut into global batches of batch_size *
  // shard_count samples and this loader yields part shard_rank of each (parts differ by at
  // most one sample; a last global batch too small to give every shard min(batch_size, 2)
  // samples is dropped, since batch norm trains on 2 or more and the ranks must step together),
  // so shard_count loaders together see exactly what one loader of the global batch would.
  int shard_rank = 0, shard_count = 1;
  uint64_t seed = 0;
  int workers = 2;
  int prefetch = 4;          // batches queued ahead of the consumer
  bool cache = false;        // keep fitted uint8 images (and masks) in memory after first use
  bool load_masks = false;   // every sample must then have a mask
  bool binary_masks = true;  // mask value >= 128 -> 1, else 0; false keeps values as class ids
};

struct Batch {
  Tensor images;                 // float32 [N, C, H, W], normalized
  Tensor labels;                 // int64 [N] (class index, -1 when unlabelled)
  Tensor masks;                  // int64 [N, H, W] when load_masks, else undefined
  std::vector<size_t> indices;   // index into loader.dataset().samples of each of the N samples
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

class DataLoader {
 public:
  // Keeps a copy of `dataset`; `warnings` must outlive the loader.
  DataLoader(Dataset dataset, LoaderConfig config, Warnings& warnings);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  const Dataset& dataset() const { return dataset_; }
  const LoaderConfig& config() const { return config_; }
  // Dataset indices visited by epoch `epoch`, in order.
  std::vector<size_t> epoch_order(int64_t epoch) const;
  int64_t batches_per_epoch() const;

  // Starts (or restarts) epoch `epoch`; stops the workers of a previous one.
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch; false at its end.
  bool next(Batch& batch);

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };
  Batch build_batch(int64_t b);
  int64_t global_batch() const;  // batch_size * shard_count
  int64_t batches_for(int64_t samples) const;
  // Fitted image (and mask) of sample `index`, through the cache; false for a bad file.
  bool load_fitted(size_t index, Image& image, Image& mask);
  void stop_workers();
  void worker_loop();

  Dataset dataset_;
  LoaderConfig config_;
  Warnings& warnings_;
  int64_t epoch_ = 0;
  std::vector<size_t> order_;
  int64_t num_batches_ = 0;

  std::mutex mutex_;
  std::condition_variable cv_;
  int64_t next_claim_ = 0;     // next batch a worker will build
  int64_t next_deliver_ = 0;   // next batch next() returns
  bool stopping_ = false;
  std::map<int64_t, Slot> ready_;
  std::vector<std::thread> threads_;

  std::mutex cache_mutex_;
  std::vector<std::shared_ptr<const std::pair<Image, Image>>> cache_;
  std::set<size_t> bad_;  // samples already reported as unreadable
};

}  // namespace scalpel::data
