// scalpel train: trains a classifier on an image dataset (apps/train/trainer.h).
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "apps/cli.h"
#include "apps/image_inputs.h"
#include "apps/model_flags.h"
#include "apps/progress.h"
#include "apps/train/distributed.h"
#include "apps/train/segmentation.h"
#include "apps/train/trainer.h"
#include "cuda/nccl.h"
#include "data/augment.h"
#include "data/medmnist.h"
#include "data/split.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::cli {
namespace {

int train_from_args(const Args& args, nn::Communicator* comm);

int run_train(const std::vector<std::string>& argv) {
  Args args("train",
            "(--model M | --weights CHECKPOINT) --data DIR --out DIR [--classes N] [--epochs E] [--batch B] [--lr X]\n"
            "       [--freeze-backbone | --unfreeze-last N | --head-epochs E1 [--finetune-lr X]] [--sampler S] ...");
  add_model_flags(args);
  args.option("data", "dataset folder (ImageFolder, train/val/test folders, HAM10000, ... see data/dataset.h; "
                      "DIR/images + DIR/masks for a segmentation model such as unet) or a MedMNIST .npz file")
      .option("class-names", "names for the data's classes, comma-separated in label order (e.g. for .npz files)")
      .option("out", "output folder: best/last checkpoints, history.csv/json, split.csv")
      .option("epochs", "epochs", "10")
      .option("batch", "batch size", "32")
      .flag("drop-last", "drop each epoch's incomplete last batch (a last batch of 1 image is always dropped)")
      .option("optimizer", "sgd | adam | adamw | rmsprop", "adam")
      .option("lr", "learning rate", "0.001")
      .option("head-lr", "learning rate of the classifier head while the backbone trains too (default: the "
                         "backbone's)")
      .option("momentum", "SGD momentum", "0.9")
      .option("weight-decay", "weight decay (decoupled for adamw)", "0")
      .option("schedule", "LR schedule per step, e.g. constant, cosine, step:500:0.1 (layers/schedule.h)", "constant")
      .option("clip-grad-norm", "clip the gradients' total 2-norm to this (0 = off)", "0")
      .option("label-smoothing", "label smoothing of the cross entropy", "0")
      .option("class-weights", "balanced | NAME=W,... | W1,W2,... (default: none)")
      .option("sampler", "order of the training samples per epoch: shuffle | sequential | weighted (draws with "
                         "replacement, inverse class frequency) | oversample (minority classes repeated)", "shuffle")
      .flag("no-shuffle", "keep dataset order (ImageFolder order) every epoch: --sampler sequential")
      .option("augment", "augmentation of the training split: none | xray (no flips: anatomy is not left-right "
                         "symmetric) | dermoscopy (flips, any rotation)[,key=value...]", "xray")
      .flag("no-augment", "same as --augment none")
      .option("size", "input height and width (default: the model's input size)", "", 2)
      .option("normalize", "normalization preset: imagenet | tf | unit | caffe | none", "imagenet")
      .option("split", "train/val/test percentages when the data has no fixed splits, e.g. 70/15/15 "
                       "(default: train on every sample, no validation)")
      .option("seed", "seed of the initialization, sample order and augmentation", "0")
      .option("workers", "data loader threads", "2")
      .flag("freeze-backbone", "train only the classifier head")
      .option("unfreeze-last", "train only the head and the backbone's last N parameterized layers (with "
                               "--head-epochs: in the second phase)", "0")
      .option("head-epochs", "two phases: train only the head for this many of --epochs at --lr, then fine-tune "
                             "(all layers, or --unfreeze-last N) at --finetune-lr for the rest", "0")
      .option("finetune-lr", "learning rate of the fine-tuning phase of --head-epochs (default: --lr / 10)")
      .option("patience", "stop after this many epochs without improvement of --monitor (0 = off)", "0")
      .option("monitor", "classifier: val_loss | val_accuracy | val_macro_f1, default val_loss; segmentation: "
                         "val_dice | val_iou | val_loss, default val_dice")
      .flag("resume", "continue from OUT/last.safetensors")
      .option("log-json", "write one JSON object per optimizer step to this file")
      .flag("distributed", "data-parallel training over the ranks of mpirun, --batch per rank (implied when "
                           "mpirun starts more than one; docs/distributed.md)")
      .option("distributed-backend", "communication of --distributed: auto (nccl for --device cuda when libnccl "
                                     "loads, else mpi), mpi, or nccl (an error where it cannot run)", "auto")
      .flag("sync-bn", "distributed: batch-norm statistics over every rank's batch (default: per rank, as "
                       "PyTorch DDP)")
      .option("bucket-mb", "distributed: gradient allreduce bucket size in MiB", "25")
      .flag("no-overlap", "distributed: start the gradient allreduce after backward instead of during it, as "
                          "each bucket's gradients are final (to measure what the overlap gains)")
      .option("dist-timeout", "distributed: seconds a collective waits for a rank that does not respond (hangs, "
                              "is stopped) before the run stops with an error naming it", "1800");
  add_max_pixels_flag(args);
  if (!args.parse(argv)) return 0;
  apply_max_pixels_flag(args);
  if (!args.has("distributed") && train::launcher_world_size() == 1) return train_from_args(args, nullptr);
  const Device device = parse_device(args.get("device"));
  const std::unique_ptr<nn::Communicator> comm =
      train::start_distributed(args.get("distributed-backend"), device, args.get_double("dist-timeout"));
  if (comm->rank() == 0) {
    std::cout << fmt::format("distributed: {} rank{}, backend {}{}, device {}\n", comm->size(),
                             comm->size() == 1 ? "" : "s", comm->backend(),
                             comm->backend() == "nccl" ? " " + cuda::nccl::version() : "", device.str());
    if (device.type == DeviceType::CUDA && comm->backend() == "mpi")
      std::cout << fmt::format("note: the gradients of --device cuda go through host memory and MPI{}\n",
                               cuda::nccl::load_error().empty() ? "" : " (" + cuda::nccl::load_error() + ")");
  }
  if (comm->size() == 1) return train_from_args(args, comm.get());
  try {
    return train_from_args(args, comm.get());
  } catch (const std::exception& e) {
    train::abort_distributed(*comm, e.what());
  }
}

int train_from_args(const Args& args, nn::Communicator* comm) {
  const bool writer = comm == nullptr || comm->rank() == 0;  // rank 0 prints and writes files
  std::ostream silent(nullptr);
  std::ostream& out = writer ? std::cout : silent;
  std::ostream& err = writer ? std::cerr : silent;

  const std::string data_dir = args.require("data");
  train::TrainConfig config;
  config.out_dir = args.require("out");
  SCALPEL_CHECK(!args.has("no-shuffle") || !args.has("sampler") || args.get("sampler") == "sequential",
                "--no-shuffle contradicts --sampler {}", args.get("sampler"));
  config.sampler = args.has("no-shuffle") ? "sequential" : args.get("sampler");
  config.seed = static_cast<uint64_t>(args.get_int("seed"));
  data::Warnings warnings;
  data::Dataset dataset = data::load_dataset(data_dir, warnings);
  if (args.has("class-names")) data::rename_classes(dataset, args.get("class-names"));
  // Before the model is built: its random initialization draws from the default generator.
  manual_seed(config.seed);
  // A segmentation model (unet) defaults to one mask channel (binary: sigmoid, Dice + BCE) rather
  // than a classifier's 1000 outputs; see apps/train/segmentation.h. A MedMNIST file says how
  // many classes it has.
  models::ModelOptions defaults;
  if (args.has("model") && models::model_info(args.get("model")).task == "segmentation") defaults.classes = 1;
  else if (dataset.layout == "medmnist") defaults.classes = static_cast<int64_t>(dataset.classes.size());
  err << warnings.report();  // before the check: they may say why masks are missing
  // A classifier without --classes gets one output per class folder (over a checkpoint's count).
  const TrainingLoad training{.data_classes = static_cast<int64_t>(dataset.classes.size())};
  ModelSetup setup = load_model_from_flags(args, defaults, &training);
  const bool segmentation = setup.info.task == "segmentation";
  if (!segmentation && !args.has("classes") && !dataset.classes.empty())
    err << fmt::format("note: --classes {} from the class folders of {} ({})\n", dataset.classes.size(),
                             data_dir, fmt::join(dataset.classes, ", "));
  train::check_task_fits_data(setup.info, dataset);
  if (!dataset.has_fixed_splits()) {
    if (args.has("split")) {
      data::assign_splits(dataset, data::parse_split_ratios(args.get("split")), config.seed);
    } else {
      for (auto& s : dataset.samples) s.split = "train";
    }
  }

  config.log_json = args.get("log-json");
  config.epochs = args.get_int("epochs");
  config.batch_size = static_cast<int>(args.get_int("batch"));
  config.drop_last = args.has("drop-last");
  config.optimizer = args.get("optimizer");
  config.lr = args.get_double("lr");
  if (args.has("head-lr")) config.head_lr = args.get_double("head-lr");
  config.momentum = args.get_double("momentum");
  config.weight_decay = args.get_double("weight-decay");
  config.schedule = args.get("schedule");
  config.clip_grad_norm = args.get_double("clip-grad-norm");
  config.label_smoothing = args.get_double("label-smoothing");
  config.class_weights = args.get("class-weights");
  config.augment = args.has("no-augment") ? "none" : args.get("augment");
  config.workers = static_cast<int>(args.get_int("workers"));
  config.freeze_backbone = args.has("freeze-backbone");
  config.unfreeze_last = args.get_int("unfreeze-last");
  config.head_epochs = args.get_int("head-epochs");
  if (args.has("finetune-lr")) config.finetune_lr = args.get_double("finetune-lr");
  config.patience = args.get_int("patience");
  if (args.has("monitor")) config.monitor = args.get("monitor");
  else if (segmentation) config.monitor = "val_dice";
  config.resume = args.has("resume");
  // mpirun hands its ranks a terminal even when its own output goes to a file: no bar there.
  config.progress_bar = stdout_is_terminal() && train::launcher_world_size() == 1;

  data::Preprocess& p = config.preprocess;
  p.width = p.height = static_cast<int>(setup.info.input_size);
  if (args.has("size")) {
    const auto [h, w] = args.get_hw("size");
    p.height = static_cast<int>(h);
    p.width = static_cast<int>(w);
  }
  p.fit = data::Fit::stretch;
  p.norm = data::normalization_preset(args.get("normalize"));
  p.channels = setup.model->in_channels() == 1 ? 1 : 3;

  models::CheckpointInfo info;
  info.model = setup.info.name;
  info.options = setup.model->options();
  info.class_names = segmentation ? train::mask_class_names(setup.model->options().classes) : dataset.classes;
  info.preprocess = preprocess_to_json(p);

  config.communicator = comm;
  config.sync_bn = args.has("sync-bn");
  const double bucket_mb = args.get_double("bucket-mb");
  SCALPEL_CHECK(bucket_mb > 0, "--bucket-mb must be positive, got {}", bucket_mb);
  config.bucket_bytes = static_cast<int64_t>(bucket_mb * (1 << 20));
  config.overlap_allreduce = !args.has("no-overlap");

  std::filesystem::create_directories(config.out_dir);
  if (writer) {  // another rank's removal could race rank 0's writing
    for (const std::string& stale : remove_stale_temporaries(config.out_dir))
      std::cerr << fmt::format("note: removed {}, left by a run that was killed while writing it\n", stale);
  }
  out << fmt::format("samples: train {}, val {}, test {}\naugment: {}\n",
                           dataset.split_part("train").samples.size(), dataset.split_part("val").samples.size(),
                           dataset.split_part("test").samples.size(), data::parse_augment(config.augment).describe());
  // split.csv goes with the first checkpoint: a run that fails before it leaves no manifest of
  // a training that never happened.
  config.on_epoch = [&, written = false](const train::EpochStats&) mutable {
    if (!written && writer) data::write_split_manifest(config.out_dir + "/split.csv", dataset);
    written = true;
  };
  const train::TrainResult r = segmentation ? train::train_segmenter(*setup.model, dataset, info, config, std::cout)
                                            : train::train_classifier(*setup.model, dataset, info, config, std::cout);
  out << fmt::format("best epoch {} ({} {:.4f}): {}\nlast: {}\n", r.best_epoch, r.monitor, r.best_metric,
                           r.best_path, r.last_path);
  return 0;
}

SCALPEL_REGISTER_COMMAND(Command{"train", "train a classifier, or a segmentation model on images with masks", run_train});

}  // namespace
}  // namespace scalpel::cli
